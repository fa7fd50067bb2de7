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

    template <bool Rev, Scalar S>
    static S segment(S xk, S xk1, S yk, S yk1, const S*, S v, S& lj, bool jac) {
        const S dx = xk1 - xk, dy = yk1 - yk;
        const S s = dy / dx;
        const S shift = yk - s * xk;
        if (jac) lj = std::log(dy) - std::log(dx);
        return Rev ? (v - shift) / s : s * v + shift;
    }
};

}  // namespace detail

template <nn::SubnetConstructor Subnet, SplineCouplingOptions O = SplineCouplingOptions{}>
struct LinearSpline : BinnedSpline<detail::linear_spline, Subnet, O> {
    static constexpr std::string_view name = "LinearSpline";
};

}  // namespace inn
