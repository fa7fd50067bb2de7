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
/// sample (for the one or two samples whose products stream the weights). A vector of L 32-bit
/// lanes loaded from W holds 2L weights: shifted left by 16 the even ones become floats, masked
/// the odd ones (no shuffles), so each sample's inputs are first split into even and odd halves
/// per block of 2L (`scratch`, gemv_bf16_scratch(In) values). Eight rows of W at a time, two
/// chains of multiply-adds each.
template <Scalar S, class F>
void gemv_bf16(const std::uint16_t* W, index_t In, index_t Out, const S* X, index_t ldx,
               index_t batch, const S* bias, S* Y, index_t ldy, S* scratch, F act) {
    if constexpr (std::is_same_v<S, float>) {
        using V = simd<float>;
        using vec = V::vec;
        constexpr int L = V::lanes;
        typedef std::uint32_t uvec __attribute__((vector_size(L * 4)));
        struct halves {
            vec even, odd;
        };
        auto widen = [](const std::uint16_t* p) {
            uvec u;
            std::memcpy(&u, p, sizeof u);
            const uvec e = u << 16, o = u & 0xffff0000u;
            halves h;
            std::memcpy(&h.even, &e, sizeof(vec));
            std::memcpy(&h.odd, &o, sizeof(vec));
            return h;
        };
        const index_t body = In / (2 * L) * (2 * L);
        float* xs = scratch;
        for (index_t b = 0; b < batch; ++b) {
            const float* x = X + b * ldx;
            float* y = Y + b * ldy;
            for (index_t i = 0; i < body; i += 2 * L)
                for (int j = 0; j < L; ++j) {
                    xs[i + j] = x[i + 2 * j];
                    xs[i + L + j] = x[i + 2 * j + 1];
                }
            auto tail = [&](const std::uint16_t* w) {
                float s = 0;
                for (index_t i = body; i < In; ++i)
                    s += from_bf16(w[i]) * x[i];
                return s;
            };
            // Eight rows at a time, the next eight prefetched as these are read: the memory
            // keeps more lines in flight than its own prefetchers ask for (a 784 x 784 matrix
            // from DRAM: 31 -> 49 GB/s on Zen 5; four rows without prefetch: 20 GB/s).
            const index_t blocks = Out / 8;
            for (index_t k = 0; k < blocks; ++k) {
                const index_t o = 8 * k;
                const std::uint16_t* w = W + o * In;
                const bool next = k + 1 < blocks;
                vec e[8] = {}, d[8] = {};
                for (index_t i = 0; i < body; i += 2 * L) {
                    const vec xe = V::load(xs + i), xo = V::load(xs + i + L);
                    for (int r = 0; r < 8; ++r) {
                        if (next)
                            __builtin_prefetch(w + (8 + r) * In + i);
                        const halves h = widen(w + r * In + i);
                        e[r] += h.even * xe;
                        d[r] += h.odd * xo;
                    }
                }
                for (int r = 0; r < 8; ++r)
                    y[o + r] =
                        act(V::sum(e[r] + d[r]) + tail(w + r * In) + (bias ? bias[o + r] : 0.f));
            }
            for (index_t r = 0; r < Out % 8; ++r) {
                const index_t o = 8 * blocks + r;
                const std::uint16_t* w = W + o * In;
                vec e{}, d{};
                for (index_t i = 0; i < body; i += 2 * L) {
                    const halves h = widen(w + i);
                    e += h.even * V::load(xs + i);
                    d += h.odd * V::load(xs + i + L);
                }
                y[o] = act(V::sum(e + d) + tail(w) + (bias ? bias[o] : 0.f));
            }
        }
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
