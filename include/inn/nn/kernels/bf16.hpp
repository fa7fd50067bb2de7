#pragma once
// bfloat16 weights for the products that stream them (network::use_bf16_weights): one or two
// samples read every weight once, so their time is the weights' bytes over the memory
// bandwidth, and storing the weights in half the bytes halves it. A bfloat16 is a float32's
// upper 16 bits, rounded to nearest even (relative error <= 2^-8); products and their sums stay
// in the network's scalar type.

#include <bit>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#include "../../core/config.hpp"
#include "simd.hpp"
#include "targets.hpp"

namespace inn::nn::kernels {

/// `f` rounded to the nearest bfloat16 (ties to even); NaN stays a (quiet) NaN.
inline std::uint16_t to_bf16(float f) {
    std::uint32_t u = std::bit_cast<std::uint32_t>(f);
    if ((u & 0x7fffffffu) > 0x7f800000u)
        return std::uint16_t((u >> 16) | 0x40u);
    u += 0x7fffu + ((u >> 16) & 1u);
    return std::uint16_t(u >> 16);
}
inline float from_bf16(std::uint16_t h) { return std::bit_cast<float>(std::uint32_t(h) << 16); }

/// `out` = the n values of `x` as bfloat16.
template <Scalar S> void to_bf16(const S* x, std::size_t n, std::vector<std::uint16_t>& out) {
    out.resize(n);
    for (std::size_t i = 0; i < n; ++i)
        out[i] = to_bf16(float(x[i]));
}

/// Scratch of gemv_bf16 for `In` inputs: one sample's inputs, deinterleaved.
inline constexpr index_t gemv_bf16_scratch(index_t In) { return In; }

/// Y (batch x Out) = act(X Wᵀ + bias) with W [Out, In] in bfloat16, a matrix-vector product per
/// sample (for the one or two samples whose products stream the weights), on the widest vector
/// target the CPU has (kernels/vector/gemv.ipp). A vector of L 32-bit lanes loaded from W holds
/// 2L weights: shifted left by 16 the even ones become floats, masked the odd ones (no
/// shuffles), so each sample's inputs are first split into even and odd halves per block of 2L
/// (`scratch`, gemv_bf16_scratch(In) values). A register tile's rows of W at a time, two chains
/// of multiply-adds each.
template <Scalar S, class F>
void gemv_bf16(const std::uint16_t* W, index_t In, index_t Out, const S* X, index_t ldx,
               index_t batch, const S* bias, S* Y, index_t ldy, S* scratch, F act) {
    if constexpr (std::is_same_v<S, float>) {
        dispatch([&](auto target) {
            for (index_t b = 0; b < batch; ++b) {
                deinterleave_bf16_inputs(target, X + b * ldx, In, scratch);
                gemv_bf16(target, W, In, Out, X + b * ldx, scratch, bias, Y + b * ldy, act);
            }
            return true;
        });
    } else {
        (void)scratch;
        for (index_t b = 0; b < batch; ++b)
            for (index_t o = 0; o < Out; ++o) {
                S s = 0;
                for (index_t i = 0; i < In; ++i)
                    s += S(from_bf16(W[o * In + i])) * X[b * ldx + i];
                Y[b * ldy + o] = act(s + (bias ? bias[o] : S(0)));
            }
    }
}

} // namespace inn::nn::kernels
