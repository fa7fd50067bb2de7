#pragma once
// LinearSpline (FrEIA): a two-sided coupling whose halves go through
// monotone piecewise-linear splines with affine tails.
//
//   LinearSpline<subnet>                                                  // bins = 10
//   LinearSpline<subnet, SplineCouplingOptions{.bins = 5, .domain_clamping = 3.5}>
//
// P = 2*bins + 2 raw parameters per transformed scalar (2*bins + 1 with identity tails): the
// BinnedSplineBase slots only (binned.hpp). In a bin, y = s*x + (yk - s*xk) with s = dy/dx and
// log-derivative log(dy) - log(dx). Exact inverse.

#include <cmath>
#include <string_view>

#include "binned.hpp"

namespace inn {

namespace detail {

struct linear_spline {
    static constexpr int extra_slots(int) { return 0; }
    static constexpr bool derivatives = false;

    template <bool Rev, Scalar S>
    static S segment(S xk, S xk1, S yk, S yk1, const S*, S v, S& lj, bool jac) {
        const S dx = xk1 - xk, dy = yk1 - yk;
        const S s = dy / dx;
        const S shift = yk - s * xk;
        if (jac) lj = std::log(dy) - std::log(dx);
        return Rev ? (v - shift) / s : s * v + shift;
    }

    /// The adjoint of the forward segment at v (y = yk + s (v - xk), lj = log dy - log dx):
    /// writes dL/d(xk, xk1, yk, yk1, -, -) into g and returns dL/dv.
    template <Scalar S>
    static S segment_backward(S xk, S xk1, S yk, S yk1, const S*, S v, S gy, S gl, S* g) {
        const S dx = xk1 - xk, dy = yk1 - yk;
        const S s = dy / dx;
        const S g_s = gy * (v - xk);
        const S g_dy = g_s / dx + gl / dy;
        const S g_dx = -g_s * s / dx - gl / dx;
        g[0] = -gy * s - g_dx;
        g[1] = g_dx;
        g[2] = gy - g_dy;
        g[3] = g_dy;
        g[4] = g[5] = S(0);
        return gy * s;
    }
};

}  // namespace detail

template <nn::SubnetConstructor Subnet, SplineCouplingOptions O = SplineCouplingOptions{}>
struct LinearSpline : BinnedSpline<detail::linear_spline, Subnet, O> {
    static constexpr std::string_view name = "LinearSpline";
};

}  // namespace inn
