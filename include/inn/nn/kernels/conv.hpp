#pragma once
// The convolutions of nn::Conv2d (stride 1, zero padding), all sizes template arguments:
//
//   * gemm_rows     C = act(W B + bias) through the register tile of gemm.hpp: a 1x1
//                   convolution is one such product per sample, W [Out, In] times the sample
//                   [In, H·W];
//   * conv_direct   a larger kernel (3x3) read tap by tap straight from a zero-padded copy of
//                   the sample, no im2col matrix written; the weight gradient the same way;
//   * conv_direct_chain  two such convolutions keeping H x W with an activation between
//                   (a GLOW subnet), the hidden layer written straight into the second's
//                   padded planes.
//
// Bias and activation are applied as the output is stored.

#include <algorithm>

#include "../../core/config.hpp"
#include "gemm.hpp"
#include "simd.hpp"
#include "targets.hpp"

namespace inn::nn::kernels {

/// C (N x P, row-major, ldc) = act(W (N x K, row-major) · B (K x P, row-major, ldb) + bias),
/// the product of a convolution over im2col columns (B) or of a layer with a packed input.
/// B must be readable up to the next multiple of the build's lanes in P (the caller pads); a
/// wider target runs it where P is a whole number of its vectors.
template <Scalar S, index_t N, index_t K, class F>
void gemm_rows(const S* W, const S* B, index_t ldb, index_t P, const S* bias, S* C, index_t ldc,
               F act) {
    dispatch([&](auto target) {
        if (P % target_lanes<S, decltype(target)> != 0 &&
            decltype(target)::bytes != build_vector_bytes)
            return false;
        gemm_rows<S, N, K>(target, W, B, ldb, P, bias, C, ldc, act);
        return true;
    });
}

/// A stride-1 convolution with zero padding, computed directly: the input is copied once into
/// zero-padded planes (Hp x Wp, Hp = H + 2 pad, Wp = W + 2 pad), and output position q = i*Wp + j
/// of an "extended" grid (Ho rows of Wp columns, the last Wp - Wo of each row discarded) reads
/// tap (u, v) of channel c at plane offset q + u*Wp + v: every tap is a contiguous run, so the
/// register tile streams through the planes with no im2col matrix (9x the input for a 3x3
/// kernel) ever written. Weights [Out, In, K, K] as torch stores them. (The kernel:
/// kernels/vector/conv.ipp, one copy per vector target.)
template <Scalar S, int In, int Out, int KS, int Pad, int H, int W> struct conv_direct {
    static constexpr int Ho = H + 2 * Pad - KS + 1, Wo = W + 2 * Pad - KS + 1;
    /// Scratch of run and weight_gradient (the padded planes and the extended outputs; the same
    /// on every target).
    static constexpr index_t scratch_size =
        isa::build::conv_direct<S, In, Out, KS, Pad, H, W>::scratch_size;

    /// One sample: x (In, H, W) -> y (Out, Ho, Wo) = act(conv(x) + bias).
    template <class F>
    static void run(const S* weight, const S* bias, const S* x, S* y, S* scratch, F act) {
        dispatch([&](auto target) {
            conv_direct_run<S, In, Out, KS, Pad, H, W>(target, weight, bias, x, y, scratch, act);
            return true;
        });
    }

    /// dW += the weight gradient of one sample, gy (Out, Ho, Wo), through the same extended
    /// grid: gy is laid out on it with zeros in the discarded columns, so that each weight's
    /// gradient is one contiguous dot product over the planes. (As a product of gy and the
    /// im2col matrix, a layer with few outputs spends its time writing and packing that matrix
    /// for a product only Out columns wide.) Uses `scratch_size`.
    static void weight_gradient(const S* x, const S* gy, S* gw, S* scratch) {
        dispatch([&](auto target) {
            conv_direct_weight_gradient<S, In, Out, KS, Pad, H, W>(target, x, gy, gw, scratch);
            return true;
        });
    }
};

/// Conv2d<In, Hidden, KS> -> act -> Conv2d<Hidden, Out, KS>, both with the padding that keeps
/// H x W, as nn::Sequential runs them: the first layer's outputs, bias and activation applied,
/// are stored straight into the zero-padded planes the second reads (its discarded columns
/// fall on their padding), so the hidden layer is written once instead of three times (tiles,
/// output layout, the second layer's padded copy). The same bits as the two layers one by one.
template <Scalar S, int In, int Hidden, int Out, int KS, int H, int W> struct conv_direct_chain {
    static constexpr index_t scratch_size =
        isa::build::conv_direct_chain<S, In, Hidden, Out, KS, H, W>::scratch_size;

    /// `batch` samples, x (In, H, W) rows ldx apart -> y (Out, H, W) rows ldy apart:
    /// y = conv2(act(conv1(x) + b1)) + b2 (b1 required, b2 may be null).
    template <class F>
    static void run(const S* w1, const S* b1, const S* w2, const S* b2, const S* x, index_t ldx,
                    S* y, index_t ldy, index_t batch, S* scratch, F act) {
        dispatch([&](auto target) {
            conv_direct_chain_run<S, In, Hidden, Out, KS, H, W>(target, w1, b1, w2, b2, x, ldx, y,
                                                                ldy, batch, scratch, act, no_act{});
            return true;
        });
    }
};

} // namespace inn::nn::kernels
