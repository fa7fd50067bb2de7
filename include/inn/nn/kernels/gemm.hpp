#pragma once
// The products of nn::Linear: Y = act(X Wᵀ + b), all sizes but the batch template arguments.
//
//   * gemm_tile     the register tile: MR rows of W (broadcast) times NV vectors of a packed
//                   row-major panel, MR * NV accumulators (kernels/vector/gemm.ipp, one copy
//                   per vector target, see targets.hpp); a last tile of fewer rows reads its
//                   last row again in place of the missing ones and stores only its own;
//   * gemm_nt       Y = act(X Wᵀ + b), a matrix-vector product per sample for tiny batches
//                   (kernels/vector/gemv.ipp: streams W once per sample, no packing, rows of W
//                   dotted with the sample's inputs), packed panels through gemm_tile
//                   for larger ones, bias and activation applied as the tile is stored;
//                   Eigen's GEMM where the tile would not pay (fewer than 16 inputs);
//   * gemm_nt_packed  the same from W's packed copy (pack_weights, kept by the network for
//                   weights that do not change every call): tiles of samples broadcast from
//                   their rows by outputs loaded from the copy, stored as they are - nothing
//                   transposed per call; the measured pick (gemm_pick.hpp) chooses it or not;
//   * bias_act      Y = act(Y + b) in one pass over Y (bias and activation fused).

#include <algorithm>
#include <cstring>
#include <utility>

#include <Eigen/Core>

#include "../../core/config.hpp"
#include "caches.hpp"
#include "simd.hpp"
#include "switches.hpp"
#include "targets.hpp"

namespace inn::nn::kernels {

/// How gemm_nt_dense walks a product: `panels` panels of samples are packed at a time, and W
/// is taken `row_block` rows at a time (0: all of it), each block multiplied into every packed
/// panel before the next block is read - so a block of W stays in cache while the samples
/// stream (one panel and all of W: W streams once per panel). Every plan gives the same bits:
/// each output is one chain of multiply-adds over k in order, whatever the tiling (tested), so
/// the measured pick (gemm_pick.hpp) can choose any of them.
struct gemm_plan {
    index_t panels = 1;
    index_t row_block = 0;
    /// Read W from its packed copy (pack_weights) where the caller has one: samples broadcast
    /// from their rows, nothing packed per call (gemm_nt_packed); panels and row_block unused.
    bool packed = false;
    friend constexpr bool operator==(gemm_plan, gemm_plan) = default;
};

/// Samples per packed panel that gemm_nt_dense's scratch holds: three 64-byte vectors, the
/// widest target's panel (a narrower target packs fewer; see scratch_lanes).
template <Scalar S> inline constexpr index_t gemm_panel = 3 * scratch_lanes<S>;

/// Scratch of gemm_nt for a layer with `In` inputs: `panels` packed panels of inputs (one is
/// what the default plan needs).
template <Scalar S, index_t In> constexpr index_t gemm_nt_scratch(index_t panels = 1) {
    return In * gemm_panel<S> * panels;
}

/// Outputs per block of a packed weight: three of the widest target's vectors.
template <Scalar S> inline constexpr index_t packed_block = gemm_panel<S>;

/// Size of W [Out, In] packed by pack_weights: whole blocks of outputs.
template <Scalar S> constexpr index_t packed_size(index_t In, index_t Out) {
    return (Out + packed_block<S> - 1) / packed_block<S> * packed_block<S> * In;
}

/// W [Out, In] (row-major, torch.nn.Linear's layout) packed for gemm_nt_packed: blocks of
/// packed_block<S> outputs, each block [In][packed_block] (input-major: one row of a block is
/// what the register tile loads for one input), outputs past Out zero.
template <Scalar S> void pack_weights(const S* W, index_t In, index_t Out, S* dst) {
    constexpr index_t B = packed_block<S>;
    for (index_t o0 = 0; o0 < Out; o0 += B, dst += B * In) {
        const index_t n = std::min(B, Out - o0);
        for (index_t j = 0; j < B; ++j) // one row of W at a time: W is read in order
            for (index_t k = 0; k < In; ++k)
                dst[k * B + j] = j < n ? W[(o0 + j) * In + k] : S(0);
    }
}

/// Y (batch x Out) = act(X (batch x In) Wᵀ + bias) from W packed by pack_weights (`Wp`): the
/// same bits as gemm_nt_dense's panels (each output one chain of multiply-adds over k in
/// order, then the bias, then the activation), without transposing samples into panels or
/// outputs out of the tile. Nothing of Wp is read past its packed_size. X and Y must not
/// overlap (rows of Y are written while later tiles still read X).
template <Scalar S, class F>
void gemm_nt_packed(const S* X, index_t ldx, const S* Wp, const S* bias, S* Y, index_t ldy,
                    index_t batch, index_t In, index_t Out, F act) {
    dispatch([&](auto target) {
        gemm_packed(target, X, ldx, Wp, bias, Y, ldy, batch, In, Out, act);
        return true;
    });
}

/// Y (batch x Out) = act(X (batch x In) Wᵀ + bias), W row-major [Out, In] as torch.nn.Linear
/// stores it. One or two samples: matrix-vector products (W streams through once per sample,
/// nothing is packed). Otherwise panels of 3 vectors' worth of samples are transposed into
/// `scratch` and multiplied by W one register tile at a time, W broadcast from its rows, in the
/// order `plan` gives (it must fit the scratch: gemm_nt_scratch(plan.panels)); the tile is
/// written back transposed, with bias and activation applied on the way. With `plan.packed`
/// and W's packed copy `Wp`, gemm_nt_packed instead (more than two samples).
// The sizes are run-time values here: one instantiation per scalar type and activation serves
// every layer shape (compile time), while the inner loops live in gemm_tile.
template <Scalar S, class F>
void gemm_nt_dense(const S* X, index_t ldx, const S* W, const S* bias, S* Y, index_t ldy,
                   index_t batch, index_t In, index_t Out, S* scratch, F act, gemm_plan plan = {},
                   const S* Wp = nullptr) {
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
        // W larger than half of L2 comes from L3 or memory: walked as this CPU's prefetchers
        // read best (caches.hpp), once for both samples of a pair.
        weight_walk walk = weight_walk::cached;
        if (long(In) * Out * long(sizeof(S)) > caches().l2 / 2) {
            walk = wide_weight_walk();
            if constexpr (switchable)
                if (!tuning().weight_walk)
                    walk = walk == weight_walk::one_stream ? weight_walk::side_by_side
                                                           : weight_walk::one_stream;
        }
        dispatch([&](auto target) {
            gemv(target, W, In, Out, X, ldx, batch, bias, Y, ldy, act, walk);
            return true;
        });
        return;
    }
    if (plan.packed && Wp)
        return gemm_nt_packed<S>(X, ldx, Wp, bias, Y, ldy, batch, In, Out, act);
    const index_t panels = std::max<index_t>(1, plan.panels);
    dispatch([&](auto target) {
        gemm_panels(target, X, ldx, W, bias, Y, ldy, batch, In, Out, scratch, act, panels,
                    plan.row_block);
        return true;
    });
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
