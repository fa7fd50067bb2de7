#pragma once
// The products of nn::Linear: Y = act(X Wᵀ + b), all sizes but the batch template arguments.
//
//   * gemm_tile     the register tile: MR rows of W (broadcast) times NV vectors of a packed
//                   row-major panel, MR * NV accumulators;
//   * gemm_nt       Y = act(X Wᵀ + b), a matrix-vector product per sample for tiny batches
//                   (streams W once per sample, no packing), packed panels through gemm_tile
//                   for larger ones, bias and activation applied as the tile is stored;
//                   Eigen's GEMM where the tile would not pay (fewer than 16 inputs);
//   * bias_act      Y = act(Y + b) in one pass over Y (bias and activation fused).

#include <algorithm>
#include <cstring>
#include <utility>

#include <Eigen/Core>

#include "../../core/config.hpp"
#include "simd.hpp"
#include "switches.hpp"

namespace inn::nn::kernels {

/// The register tile of the GEMMs: MR rows of W (broadcast) times NV vectors of a row-major
/// B panel (loaded), MR * NV accumulators.
template <Scalar S, int MR, int NV> struct gemm_tile {
    using V = simd<S>;
    using vec = typename V::vec;
    static constexpr int L = V::lanes;
    vec acc[MR][NV];

    /// acc = W[0..MR) [0..K) · B[0..K) [0..NV*L); W rows `ldw` apart, B rows `ldb` apart. (K is
    /// a run-time bound: one instantiation serves every layer shape.)
    void run(const S* W, index_t ldw, const S* B, index_t ldb, index_t K) {
        for (int r = 0; r < MR; ++r)
            for (int v = 0; v < NV; ++v)
                acc[r][v] = vec{};
        for (index_t k = 0; k < K; ++k) {
            vec b[NV];
            for (int v = 0; v < NV; ++v)
                b[v] = V::load(B + k * ldb + v * L);
            for (int r = 0; r < MR; ++r) {
                const S a = W[r * ldw + k];
                for (int v = 0; v < NV; ++v)
                    acc[r][v] += b[v] * a;
            }
        }
    }
};

/// How gemm_nt_dense walks a product: `panels` panels of samples are packed at a time, and W
/// is taken `row_block` rows at a time (0: all of it), each block multiplied into every packed
/// panel before the next block is read - so a block of W stays in cache while the samples
/// stream (one panel and all of W: W streams once per panel). Every plan gives the same bits:
/// each output is one chain of multiply-adds over k in order, whatever the tiling (tested), so
/// the measured pick (gemm_pick.hpp) can choose any of them.
struct gemm_plan {
    index_t panels = 1;
    index_t row_block = 0;
    friend constexpr bool operator==(gemm_plan, gemm_plan) = default;
};

/// Samples in one packed panel of gemm_nt_dense.
template <Scalar S> inline constexpr index_t gemm_panel = 3 * simd<S>::lanes;

/// Scratch of gemm_nt for a layer with `In` inputs: `panels` packed panels of inputs (one is
/// what the default plan needs).
template <Scalar S, index_t In> constexpr index_t gemm_nt_scratch(index_t panels = 1) {
    return In * gemm_panel<S> * panels;
}

namespace detail {
/// Panel [In x P] of samples m0 .. m0 + width: column j is sample m0 + j, unused columns zero.
template <Scalar S>
void pack_panel(const S* X, index_t ldx, index_t m0, index_t width, index_t In, S* dst) {
    constexpr index_t P = gemm_panel<S>, L = simd<S>::lanes;
    const index_t filled = (width + L - 1) / L * L;
    for (index_t k = 0; k < In; ++k, dst += P) {
        for (index_t j = 0; j < width; ++j)
            dst[j] = X[(m0 + j) * ldx + k];
        for (index_t j = width; j < filled; ++j)
            dst[j] = S(0);
    }
}

/// Rows [r0, r1) of Y's samples m0 .. m0 + width from their packed panel, a register tile of
/// MR rows at a time, bias and activation applied as the tile is stored (transposed).
template <Scalar S, class F>
void panel_rows(const S* panel, index_t width, const S* W, const S* bias, S* Y, index_t ldy,
                index_t m0, index_t In, index_t r0, index_t r1, F act) {
    using V = simd<S>;
    constexpr int L = V::lanes, MR = 8;
    constexpr index_t P = gemm_panel<S>;
    auto tiles = [&]<int NV>() {
        auto rows = [&]<int R>(index_t n0) {
            gemm_tile<S, R, NV> t;
            t.run(W + n0 * In, In, panel, P, In);
            // Transposed through a small sample-major block, so that each sample's R outputs
            // leave as one contiguous store: R scalar stores per sample into rows of Y a
            // power-of-two apart (Out = 512) hit the same few cache sets and thrash L1.
            S tile[NV * L][R];
            for (int r = 0; r < R; ++r) {
                const S b = bias ? bias[n0 + r] : S(0);
                for (int v = 0; v < NV; ++v) {
                    const typename V::vec y = V::apply(act, t.acc[r][v] + b);
                    for (int l = 0; l < L; ++l)
                        tile[v * L + l][r] = y[l];
                }
            }
            for (index_t j = 0; j < width; ++j)
                std::memcpy(Y + (m0 + j) * ldy + n0, tile[j], sizeof(tile[j]));
        };
        index_t n0 = r0;
        for (; n0 + MR <= r1; n0 += MR)
            rows.template operator()<MR>(n0);
        // The last (r1 - r0) % MR rows: one tile of exactly that many (a run-time count).
        [&]<int... R>(std::integer_sequence<int, R...>) {
            ((r1 - n0 == R + 1 ? rows.template operator()<R + 1>(n0) : void()), ...);
        }(std::make_integer_sequence<int, MR - 1>{});
    };
    const int nv = int((width + L - 1) / L);
    if (nv == 3)
        tiles.template operator()<3>();
    else if (nv == 2)
        tiles.template operator()<2>();
    else
        tiles.template operator()<1>();
}
} // namespace detail

/// Y (batch x Out) = act(X (batch x In) Wᵀ + bias), W row-major [Out, In] as torch.nn.Linear
/// stores it. One or two samples: matrix-vector products (W streams through once per sample,
/// nothing is packed). Otherwise panels of 3 vectors' worth of samples are transposed into
/// `scratch` and multiplied by W one register tile at a time, W broadcast from its rows, in the
/// order `plan` gives (it must fit the scratch: gemm_nt_scratch(plan.panels)); the tile is
/// written back transposed, with bias and activation applied on the way.
// The sizes are run-time values here: one instantiation per scalar type and activation serves
// every layer shape (compile time), while the inner loops live in gemm_tile.
template <Scalar S, class F>
void gemm_nt_dense(const S* X, index_t ldx, const S* W, const S* bias, S* Y, index_t ldy,
                   index_t batch, index_t In, index_t Out, S* scratch, F act, gemm_plan plan = {}) {
    constexpr index_t P = gemm_panel<S>;
    using rmat = Eigen::Matrix<S, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
    using stride = Eigen::Stride<Eigen::Dynamic, 1>;
    const Eigen::Map<const rmat> Wm(W, Out, In);
    // Few inputs per output (In < 16): the tile would mostly write (its outputs leave one
    // scalar at a time), so Eigen's product does better there.
    bool eigen_gemm = In < 16;
    if constexpr (switchable)
        eigen_gemm = eigen_gemm || !tuning().gemm;
    if (batch > 2 && eigen_gemm) {
        Eigen::Map<rmat, 0, stride> y(Y, batch, Out, stride(ldy, 1));
        y.noalias() =
            Eigen::Map<const rmat, 0, stride>(X, batch, In, stride(ldx, 1)) * Wm.transpose();
        for (index_t b = 0; b < batch; ++b)
            for (index_t o = 0; o < Out; ++o)
                Y[b * ldy + o] = act(Y[b * ldy + o] + (bias ? bias[o] : S(0)));
        return;
    }
    if (batch <= 2 || scratch == nullptr) {
        using vec = Eigen::Matrix<S, Eigen::Dynamic, 1>;
        for (index_t b = 0; b < batch; ++b) {
            Eigen::Map<vec> y(Y + b * ldy, Out);
            y.noalias() = Wm * Eigen::Map<const vec>(X + b * ldx, In);
            for (index_t o = 0; o < Out; ++o)
                y[o] = act(y[o] + (bias ? bias[o] : S(0)));
        }
        return;
    }
    const index_t panels = std::max<index_t>(1, plan.panels);
    const index_t block = plan.row_block > 0 ? plan.row_block : Out;
    for (index_t m0 = 0; m0 < batch; m0 += panels * P) {
        const index_t n_panels = std::min(panels, (batch - m0 + P - 1) / P);
        for (index_t p = 0; p < n_panels; ++p)
            detail::pack_panel(X, ldx, m0 + p * P, std::min(P, batch - m0 - p * P), In,
                               scratch + p * In * P);
        for (index_t r0 = 0; r0 < Out; r0 += block)
            for (index_t p = 0; p < n_panels; ++p)
                detail::panel_rows(scratch + p * In * P, std::min(P, batch - m0 - p * P), W, bias,
                                   Y, ldy, m0 + p * P, In, r0, std::min(Out, r0 + block), act);
    }
}

template <Scalar S, index_t In, index_t Out, class F>
void gemm_nt(const S* X, index_t ldx, const S* W, const S* bias, S* Y, index_t ldy, index_t batch,
             S* scratch, F act) {
    if constexpr (Out == 0) {
        return;
    } else if constexpr (In == 0) { // no inputs: the bias alone
        for (index_t b = 0; b < batch; ++b)
            for (index_t o = 0; o < Out; ++o)
                Y[b * ldy + o] = act(bias ? bias[o] : S(0));
    } else {
        gemm_nt_dense<S>(X, ldx, W, bias, Y, ldy, batch, In, Out, scratch, act);
    }
}

/// The same without bias and activation, and without scratch for tiny batches.
template <Scalar S, index_t In, index_t Out>
void gemm_nt(const S* X, index_t ldx, const S* W, S* Y, index_t ldy, index_t batch,
             S* scratch = nullptr) {
    gemm_nt<S, In, Out>(X, ldx, W, static_cast<const S*>(nullptr), Y, ldy, batch, scratch,
                        no_act{});
}

/// Y = act(Y + b) row by row (b may be null: no bias).
template <Scalar S, index_t N, class F>
void bias_act(S* Y, index_t ldy, index_t rows, const S* bias, F act) {
    for (index_t r = 0; r < rows; ++r) {
        S* y = Y + r * ldy;
        if (bias)
            for (index_t i = 0; i < N; ++i)
                y[i] = act(y[i] + bias[i]);
        else
            for (index_t i = 0; i < N; ++i)
                y[i] = act(y[i]);
    }
}

} // namespace inn::nn::kernels
