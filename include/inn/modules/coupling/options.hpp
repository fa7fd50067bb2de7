#pragma once
// Options and shape rules shared by FrEIA's `_BaseCouplingBlock` family (NICE, RNVP, GLOW, GIN,
// AffineCouplingOneSided, ConditionalAffineTransform):
//
//   GLOWCouplingBlock<subnet, {.clamp = 1.5, .activation = clamp_activation::tanh}>
//   RNVPCouplingBlock<subnet, {.split_len = 0.3}>
//   NICECouplingBlock<subnet, {.split_channels = 2}>      // FrEIA's int split_len=2
//
// FrEIA's rules (split, conditions, clamp): docs/freia-semantics.md#channel-splits and after.

#include <cmath>
#include <type_traits>

#include <Eigen/Core>

#include "../../core/signature.hpp"
#include "../../nn/kernels/atan.hpp"

namespace inn {

/// FrEIA's `clamp_activation`: "ATAN", "TANH", "SIGMOID" (a user callable is not offered).
enum class clamp_activation { atan, tanh, sigmoid };

/// Constructor arguments of the coupling family. A structural type, so it is a template argument.
struct CouplingOptions {
    double clamp = 2.0;
    clamp_activation activation = clamp_activation::atan;
    /// FrEIA's float `split_len`: len1 = round_half_even(C * split_len); must lie in [0, 1].
    double split_len = 0.5;
    /// FrEIA's int `split_len` when >= 0 (then `split_len` above is ignored); must be <= C.
    int split_channels = -1;
};

/// FrEIA's soft-clamped log-scale `s = clamp * g(raw)`: g(raw) first, then multiplied by
/// clamp, each constant rounded to S, as PyTorch does with Python scalars: FrEIA's float parity.
/// Float's atan is nn::kernels::atan, as in the packet form below, so every path gives the
/// same s.
template <Scalar S>
inline S soft_clamp(S raw, double clamp, clamp_activation activation) {
    S g;
    switch (activation) {
        case clamp_activation::atan:
            if constexpr (std::is_same_v<S, float>)
                g = S(0.636) * nn::kernels::atan(raw); // 0.636 literally, not 2/pi
            else
                g = S(0.636) * std::atan(raw);
            break;
        case clamp_activation::tanh:
            g = std::tanh(raw);
            break;
        default:  // sigmoid
            g = S(2.0) * (S(1) / (S(1) + std::exp(-raw)) - S(0.5));
            break;
    }
    return S(clamp) * g;
}

/// soft_clamp of every lane of a packet (the fused coupling tails): float's atan vectorised,
/// the other activations lane by lane as the scalar form.
template <Scalar S, int L>
inline Eigen::Array<S, L, 1> soft_clamp(const Eigen::Array<S, L, 1>& raw, double clamp,
                                        clamp_activation activation) {
    if constexpr (std::is_same_v<S, float>) {
        if (activation == clamp_activation::atan)
            return S(clamp) * (S(0.636) * nn::kernels::atan(raw));
    }
    Eigen::Array<S, L, 1> s;
    for (int l = 0; l < L; ++l)
        s[l] = soft_clamp(raw[l], clamp, activation);
    return s;
}

/// d soft_clamp / d raw: clamp * g'(raw).
template <Scalar S>
inline S soft_clamp_derivative(S raw, double clamp, clamp_activation activation) {
    S d;
    switch (activation) {
        case clamp_activation::atan:
            d = S(0.636) / (S(1) + raw * raw);
            break;
        case clamp_activation::tanh: {
            const S t = std::tanh(raw);
            d = S(1) - t * t;
            break;
        }
        default: {  // sigmoid
            const S sg = S(1) / (S(1) + std::exp(-raw));
            d = S(2.0) * sg * (S(1) - sg);
            break;
        }
    }
    return S(clamp) * d;
}

namespace detail {

/// Python's round() of a non-negative value: half to even.
constexpr int round_half_even(double v) {
    const auto lower = static_cast<long long>(v);  // floor, v >= 0
    const double frac = v - double(lower);
    if (frac > 0.5) return int(lower + 1);
    if (frac < 0.5) return int(lower);
    return int(lower % 2 == 0 ? lower : lower + 1);
}

}  // namespace detail

/// Channels of the first part, `len1`; `len2 = C - len1`. C=5 -> 2|3, C=7 -> 4|3.
constexpr int coupling_split_len1(int channels, const CouplingOptions& o) {
    if (o.split_channels >= 0) return o.split_channels;
    return detail::round_half_even(double(channels) * o.split_len);  // product in double
}

/// Whether the options are valid for `channels` (FrEIA's ValueError on split_len).
constexpr bool coupling_options_valid(int channels, const CouplingOptions& o) {
    if (o.split_channels < -1) return false;
    if (o.split_channels >= 0) return o.split_channels <= channels;
    return o.split_len >= 0.0 && o.split_len <= 1.0;  // also false for NaN
}

/// The constructor checks of the coupling family, in order: one input of rank 1-4, valid
/// options, every condition with the input's non-channel dims, and - when the module
/// splits its input (`splits`) - two non-empty parts.
///
/// Deliberate difference: FrEIA builds zero-width subnets when a part is empty (C = 1 always
/// gives len1 = 0). We reject it: C = 1 -> too_few_channels; C > 1 with split_len 0 or 1 (or
/// split_channels 0 or C) -> invalid_option. ConditionalAffineTransform (no split) accepts C = 1.
constexpr shape_result check_coupling(const signature& s, const CouplingOptions& o,
                                      bool splits = true) {
    if (auto r = expect_single_input(s); !r.ok()) return r;
    const int c = s.in().channels();
    if (!coupling_options_valid(c, o)) return fail(shape_error::invalid_option);
    if (auto r = expect_conditions_match_spatial(s); !r.ok()) return r;
    if (splits) {
        if (c < 2) return fail(shape_error::too_few_channels, 0, 0, 0, 2);
        const int len1 = coupling_split_len1(c, o);
        if (len1 == 0 || len1 == c) return fail(shape_error::invalid_option);
    }
    return returns({s.in()});
}

}  // namespace inn
