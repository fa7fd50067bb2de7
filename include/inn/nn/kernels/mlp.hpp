#pragma once
// The fused small MLP behind nn::Sequential: Linear<I, H> -> element-wise act -> Linear<H, O>
// for small I and O (FrEIA's subnets of low-dimensional data), the hidden layer never leaving
// registers. Whole groups of samples run sample-vectorised (one SIMD lane per sample, weights
// broadcast, no horizontal sums); the remainder, batch 1 included, runs hidden-vectorised per
// sample. Its backward (small_mlp_backward) runs sample-vectorised too.

#include <algorithm>
#include <type_traits>

#include "../../core/config.hpp"
#include "simd.hpp"
#include "targets.hpp"

namespace inn::nn::kernels {

/// Y = act(X W1ᵀ + b1) W2ᵀ + b2 with the hidden layer in registers. Sizes: W1 [H, I],
/// W2 [O, H]; I and O small (they are register counts); H a multiple of the build's lanes (a
/// wider target runs it where H is a multiple of its lanes). The kernel, one copy per vector
/// target: kernels/vector/mlp.ipp.
template <Scalar S, int I, int H, int O, class F> struct small_mlp {
    static void run(const S* X, index_t ldx, const S* W1, const S* b1, const S* W2, const S* b2,
                    S* Y, index_t ldy, index_t batch, F act) {
        dispatch([&](auto target) {
            if constexpr (H % target_lanes<S, decltype(target)> != 0) {
                return false;
            } else {
                small_mlp_run<S, I, H, O, F>(target, X, ldx, W1, b1, W2, b2, Y, ldy, batch, act);
                return true;
            }
        });
    }
};

/// The backward of small_mlp: the hidden layer recomputed in registers as forward computes it,
/// then per hidden unit k
///   gh = gy W2[:, k],  gp = act'(pre or h) gh,  gx += gp W1[k, :],
/// and the parameter gradients dW2 += gyᵀ h, db1 += Σ gp, dW1 += gpᵀ x accumulated (one sample
/// per lane, summed over the lanes at the end). gx (ldgx) and each gradient may be null.
/// db2 = Σ gy is the caller's. `batch` > 0.
template <Scalar S, int I, int H, int O, class F> struct small_mlp_backward {
    /// The partial sums and the padded rest of the batch (the same on every target).
    static constexpr index_t scratch_size =
        isa::build::small_mlp_backward<S, I, H, O, F>::scratch_size;

    static void run(const S* X, index_t ldx, const S* GY, index_t ldg, S* GX, index_t ldgx,
                    const S* W1, const S* b1, const S* W2, S* dW1, S* db1, S* dW2, index_t batch,
                    S* scratch, F act) {
        dispatch([&](auto target) {
            if constexpr (H % target_lanes<S, decltype(target)> != 0) {
                return false;
            } else {
                small_mlp_backward_run<S, I, H, O, F>(target, X, ldx, GY, ldg, GX, ldgx, W1, b1, W2,
                                                      dW1, db1, dW2, batch, scratch, act);
                return true;
            }
        });
    }
};

} // namespace inn::nn::kernels
