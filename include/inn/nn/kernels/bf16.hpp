#pragma once
// bfloat16 weights for the products that stream them (network::use_bf16_weights): a few
// samples read every weight once per pair, so their time is the weights' bytes over the memory
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

/// Where the copy made by pack_bf16 keeps W[o, i].
constexpr std::size_t bf16_index(index_t In, index_t o, index_t i) {
    const index_t block = o / bf16_rows, chunk = i / bf16_chunk;
    return std::size_t(
        ((block * (bf16_padded_in(In) / bf16_chunk) + chunk) * bf16_rows + o % bf16_rows) *
            bf16_chunk +
        i % bf16_chunk);
}

/// `out` = W [Out, In] as bfloat16, laid out as gemv_bf16 reads it: blocks of bf16_rows rows,
/// each block its rows' chunks of bf16_chunk columns ([block][chunk][row][column]), zeros past
/// Out and In. A product then reads the copy front to back, one stream the CPU's prefetchers
/// follow: mnist-cinn's batch-1 calls ran 1.4-2.4x as fast as with eight rows of row-major
/// weights read side by side (AMD EPYC Zen 4).
template <Scalar S>
void pack_bf16(const S* W, index_t Out, index_t In, std::vector<std::uint16_t>& out) {
    const index_t rows = (Out + bf16_rows - 1) / bf16_rows * bf16_rows;
    out.assign(std::size_t(rows * bf16_padded_in(In)), std::uint16_t(0));
    for (index_t o = 0; o < Out; ++o)
        for (index_t i = 0; i < In; ++i)
            out[bf16_index(In, o, i)] = to_bf16(float(W[o * In + i]));
}

/// The largest batch whose products read the bfloat16 copy: up to six samples (three passes
/// over it) still beat the float32 weights' register tile, which reads the weights once but
/// twice the bytes (mnist-cinn on the AMD EPYC Zen 4: 1.9-2.3 ms at three samples, 2.3-3.0 at
/// four, 3.1-3.4 at six, against 3.0-4.5 with the float32 weights; at eight the tile is as
/// fast). The crossover is this CPU's balance of memory bandwidth and FMA throughput.
inline constexpr index_t bf16_max_batch = 6;

/// Scratch of gemv_bf16 for `In` inputs: two samples' inputs, deinterleaved and padded.
inline constexpr index_t gemv_bf16_scratch(index_t In) { return 2 * bf16_padded_in(In); }

/// Y (batch x Out) = act(X Wᵀ + bias) with W [Out, In] given by its bfloat16 copy (pack_bf16),
/// matrix-vector products that read the copy once per pair of samples (for batches up to
/// bf16_max_batch, whose products stream the weights), on the widest vector target the CPU has
/// (kernels/vector/gemv.ipp); each sample's outputs are the same bits whatever the batch. A vector
/// of L 32-bit lanes loaded from W holds 2L weights: shifted left by 16 the even ones become
/// floats, masked the odd ones (no shuffles), so each sample's inputs are first split into even and
/// odd halves per block of 2L (`scratch`, gemv_bf16_scratch(In) values).
template <Scalar S, class F>
void gemv_bf16(const std::uint16_t* W, index_t In, index_t Out, const S* X, index_t ldx,
               index_t batch, const S* bias, S* Y, index_t ldy, S* scratch, F act) {
    if constexpr (std::is_same_v<S, float>) {
        dispatch([&](auto target) {
            // Two samples per pass read the copy once for both.
            const index_t ldxs = bf16_padded_in(In);
            index_t b = 0;
            for (; b + 2 <= batch; b += 2) {
                deinterleave_bf16_inputs(target, X + b * ldx, In, scratch);
                deinterleave_bf16_inputs(target, X + (b + 1) * ldx, In, scratch + ldxs);
                gemv_bf16<2>(target, W, In, Out, scratch, ldxs, bias, Y + b * ldy, ldy, act);
            }
            if (b < batch) {
                deinterleave_bf16_inputs(target, X + b * ldx, In, scratch);
                gemv_bf16<1>(target, W, In, Out, scratch, ldxs, bias, Y + b * ldy, ldy, act);
            }
            return true;
        });
    } else {
        (void)scratch;
        for (index_t b = 0; b < batch; ++b)
            for (index_t o = 0; o < Out; ++o) {
                S s = 0;
                for (index_t i = 0; i < In; ++i)
                    s += S(from_bf16(W[bf16_index(In, o, i)])) * X[b * ldx + i];
                Y[b * ldy + o] = act(s + (bias ? bias[o] : S(0)));
            }
    }
}

} // namespace inn::nn::kernels
