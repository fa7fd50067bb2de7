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
};

}  // namespace detail

template <nn::SubnetConstructor Subnet, SplineCouplingOptions O = SplineCouplingOptions{}>
struct RationalQuadraticSpline : BinnedSpline<detail::rq_spline, Subnet, O> {
    static constexpr std::string_view name = "RationalQuadraticSpline";
};

}  // namespace inn
