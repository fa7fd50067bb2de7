#pragma once
// RationalQuadraticSpline (FrEIA): a two-sided coupling whose halves go
// through monotone rational-quadratic splines (Durkan et al. 2019) with affine tails.
//
//   RationalQuadraticSpline<subnet>                                              // bins = 10
//   RationalQuadraticSpline<subnet, SplineCouplingOptions{.bins = 8, .identity_tails = true}>
//
// P = 3*bins + 1 raw parameters per transformed scalar (3*bins with identity tails): the
// BinnedSplineBase slots (binned.hpp) then `deltas` (bins - 1), the inner knot derivatives
// softplus(raw + ln(e - 1)); the boundary derivatives equal the tail slope, so the map is C1.
//
// The inverse is FrEIA's closed-form root (exact up to rounding). Two guards where
// rounding leaves the exact-arithmetic domain (both are no-ops otherwise, so FrEIA's numbers are
// unchanged): a discriminant made slightly negative is clamped to 0 where FrEIA raises
// RuntimeError, and the root is clamped to the bin, xi in [0, 1], where FrEIA would
// return a point just outside the bin and possibly a NaN log-derivative.

#include <algorithm>
#include <cmath>
#include <string_view>

#include "binned.hpp"

namespace inn {

namespace detail {

/// The rational-quadratic segment, with the operation order of FrEIA's formulas.
struct rq_spline {
    static constexpr int extra_slots(int bins) { return bins - 1; }
    /// Knot derivatives [scale, inner..., scale]: also for one bin, where there is no inner one.
    static constexpr bool derivatives = true;

    /// The forward log-derivative at relative position xi of a bin.
    template <Scalar S>
    static S log_derivative(S s, S q, S dk, S dk1, S xi) {
        const S one_m = S(1) - xi;
        const S num = (s * s) * (((dk1 * (xi * xi)) + (((S(2) * s) * xi) * one_m)) +
                                 (dk * (one_m * one_m)));
        const S den = s + (q * xi) * one_m;
        return std::log(num) - std::log(den * den);
    }

    /// Forward x -> y (or, Rev, y -> x) in the bin [xk, xk1] x [yk, yk1] with knot derivatives
    /// d[0], d[1]; `lj` receives the forward log-derivative at the point when `jac`.
    template <bool Rev, Scalar S>
    static S segment(S xk, S xk1, S yk, S yk1, const S* d, S v, S& lj, bool jac) {
        const S dk = d[0], dk1 = d[1];
        const S dx = xk1 - xk, dy = yk1 - yk;
        const S s = dy / dx;
        const S q = (dk1 + dk) - S(2) * s;
        S xi, out;
        if constexpr (!Rev) {
            xi = (v - xk) / dx;
            const S num = dy * ((s * (xi * xi)) + ((dk * xi) * (S(1) - xi)));
            const S den = s + (q * xi) * (S(1) - xi);
            out = yk + num / den;
        } else {
            const S r = v - yk;
            const S a = dy * (s - dk) + r * q;
            const S b = dy * dk - r * q;
            const S c = (-s) * r;
            // Clamped: b^2 - 4ac >= 0 in exact arithmetic for a monotone segment.
            const S disc = std::max(b * b - (S(4) * a) * c, S(0));
            // The stable root (no cancellation as r -> 0: b -> dy*dk > 0, xi -> 0).
            xi = (S(2) * c) / ((-b) - std::sqrt(disc));
            // The root lies in [0, 1] for v in (yk, yk1]; rounding (with a tiny or clamped
            // discriminant) can leave it just outside, where the log-derivative below can turn
            // negative (NaN). Clamping changes nothing for roots inside.
            xi = std::clamp(xi, S(0), S(1));
            out = xi * dx + xk;
        }
        if (jac) lj = log_derivative(s, q, dk, dk1, xi);
        return out;
    }

    /// The adjoint of the forward segment at v: for dL/dy = gy and dL/d(log-derivative) = gl,
    /// writes dL/d(xk, xk1, yk, yk1, dk, dk1) into g[0..6) and returns dL/dv.
    template <Scalar S>
    static S segment_backward(S xk, S xk1, S yk, S yk1, const S* d, S v, S gy, S gl, S* g) {
        const S dk = d[0], dk1 = d[1];
        const S dx = xk1 - xk, dy = yk1 - yk;
        const S s = dy / dx;
        const S q = (dk1 + dk) - S(2) * s;
        const S xi = (v - xk) / dx, om = S(1) - xi;
        // y = yk + dy * U / den, U = s xi^2 + dk xi om, den = s + q xi om;
        // lj = log(s^2 T) - 2 log(den), T = dk1 xi^2 + 2 s xi om + dk om^2.
        const S U = s * (xi * xi) + (dk * xi) * om;
        const S den = s + (q * xi) * om;
        const S T = dk1 * (xi * xi) + S(2) * s * xi * om + dk * (om * om);
        const S g_num = gy / den; // num = dy * U
        const S g_den = -gy * (dy * U) / (den * den) - S(2) * gl / den;
        const S g_T = gl / T;
        S g_s = S(2) * gl / s + g_T * S(2) * xi * om + g_den;
        const S g_U = g_num * dy;
        S g_dy = g_num * U;
        S g_dk = g_U * xi * om + g_T * om * om;
        S g_dk1 = g_T * xi * xi;
        g_s += g_U * xi * xi;
        S g_xi = g_U * (S(2) * s * xi + dk * (om - xi)) + g_den * q * (om - xi) +
                 g_T * (S(2) * dk1 * xi + S(2) * s * (om - xi) - S(2) * dk * om);
        const S g_q = g_den * xi * om;
        g_dk1 += g_q;
        g_dk += g_q;
        g_s -= S(2) * g_q;
        // xi = (v - xk) / dx, s = dy / dx.
        const S g_v = g_xi / dx;
        S g_dx = -g_xi * xi / dx - g_s * s / dx;
        g_dy += g_s / dx;
        g[0] = -g_v - g_dx; // xk: through xi and dx
        g[1] = g_dx;        // xk1
        g[2] = gy - g_dy;   // yk: y = yk + ..., and dy
        g[3] = g_dy;        // yk1
        g[4] = g_dk;
        g[5] = g_dk1;
        return g_v;
    }
};

}  // namespace detail

template <nn::SubnetConstructor Subnet, SplineCouplingOptions O = SplineCouplingOptions{}>
struct RationalQuadraticSpline : BinnedSpline<detail::rq_spline, Subnet, O> {
    static constexpr std::string_view name = "RationalQuadraticSpline";
};

}  // namespace inn
