#pragma once
// The small MLP of one input with ReLU (a subnet of 2-d data: Linear(1, H) -> ReLU -> Linear(H, O))
// rewritten per hidden unit k, with c_k = b1_k / w1_k:
//
//   w1_k > 0:  w2_k relu(w1_k x + b1_k) = w2_k |w1_k| max( x, -c_k) + w2_k b1_k
//   w1_k < 0:  w2_k relu(w1_k x + b1_k) = w2_k |w1_k| max(-x,  c_k) + w2_k b1_k
//   w1_k = 0:  the constant w2_k relu(b1_k)
//
// The w2 b1 terms and b2 add up to one constant per output, so a unit costs one max and O
// multiply-adds instead of a multiply-add, a max and O multiply-adds, and reads 1 + O numbers
// instead of 2 + O: the whole MLP in fewer operations than its FLOP count, and at batch 1
// (where the weights come from L2) a quarter fewer bytes for O = 2. It rounds differently from
// the layers' order (each unit's threshold and weight are rounded once; an inactive unit's
// max(x, -c) term and its w2 b1 cancel to rounding), so it is used only where every threshold
// and constant is finite and every nonzero weight normal (a subnormal one would lose its
// digits); otherwise, and for NaN or infinite parameters, the plain fused kernel runs
// (kernels/mlp.hpp). The network makes the form when parameters change (tensor_ref::remake), never
// while a trainer has gradients attached.

#include <algorithm>
#include <cmath>

#include "../../core/aligned_vector.hpp"
#include "../../core/config.hpp"
#include "targets.hpp"

namespace inn::nn::kernels {

/// The form above of W1 [H, 1], b1 [H], W2 [O, H], b2 [O]. Layout (the same on every target):
/// `pos` chunks of units with w1 > 0, then `neg` chunks of units with w1 < 0, each chunk
/// `chunk` thresholds (-c for w1 > 0, c for w1 < 0) followed by O rows of `chunk` weights
/// w2 |w1|, units in their order and the last chunk of each sign padded with zero weights;
/// then the O constants.
template <Scalar S> struct relu_units {
    static constexpr index_t chunk = scratch_lanes<S>;

    aligned_vector<S> form;
    index_t pos = 0, neg = 0;

    bool empty() const { return form.empty(); }

    /// Makes the form; false, and empty, where a threshold or a constant would not be finite or a
    /// nonzero weight not normal.
    /// Sized for the most chunks any signs give, so that remaking it allocates nothing.
    bool make(const S* W1, const S* b1, const S* W2, const S* b2, index_t H, index_t O) {
        using wide = long double;
        for (index_t k = 0; k < H; ++k)
            if (!std::isfinite(W1[k]) || !std::isfinite(b1[k]))
                return drop();
        for (index_t j = 0; j < O * H; ++j)
            if (!std::isfinite(W2[j]))
                return drop();
        for (index_t o = 0; o < O; ++o)
            if (!std::isfinite(b2[o]))
                return drop();
        index_t n_pos = 0, n_neg = 0;
        for (index_t k = 0; k < H; ++k) {
            n_pos += W1[k] > 0;
            n_neg += W1[k] < 0;
        }
        pos = (n_pos + chunk - 1) / chunk;
        neg = (n_neg + chunk - 1) / chunk;
        const index_t stride = (1 + O) * chunk;
        form.resize(((H + chunk - 1) / chunk + 1) * stride + O);
        std::fill(form.data(), form.data() + form.size(), S(0));
        S* cst = form.data() + (pos + neg) * stride;
        for (index_t o = 0; o < O; ++o) {
            wide c = b2[o];
            for (index_t k = 0; k < H; ++k)
                c += wide(W2[o * H + k]) *
                     (W1[k] != 0 ? wide(b1[k]) : std::max(wide(b1[k]), wide(0)));
            cst[o] = S(c);
            if (!std::isfinite(cst[o]))
                return drop();
        }
        index_t slot[2] = {0, pos * chunk}; // next unit of each sign
        for (index_t k = 0; k < H; ++k) {
            if (W1[k] == 0)
                continue;
            const bool negative = W1[k] < 0;
            const index_t u = slot[negative]++;
            S* q = form.data() + u / chunk * stride + u % chunk;
            const wide c = wide(b1[k]) / wide(W1[k]);
            q[0] = S(negative ? c : -c);
            if (!std::isfinite(q[0]))
                return drop();
            for (index_t o = 0; o < O; ++o) {
                const S w = S(wide(W2[o * H + k]) * std::fabs(wide(W1[k])));
                if (W2[o * H + k] != 0 && !std::isnormal(w))
                    return drop();
                q[(1 + o) * chunk] = w;
            }
        }
        return true;
    }

    /// Empty (the plain kernel runs); keeps nothing allocated.
    bool drop() {
        form.clear();
        pos = neg = 0;
        return false;
    }
};

/// y = Σ_k w_k max(±x, d_k) + constant for every sample: the small MLP of one input and ReLU in
/// the form `units` made. The kernel, one copy per vector target: kernels/vector/mlp.ipp.
template <Scalar S, int O>
void relu_units_mlp(const relu_units<S>& units, const S* X, index_t ldx, S* Y, index_t ldy,
                    index_t batch) {
    dispatch([&](auto target) {
        relu_units_mlp_run<S, O>(target, units.form.data(), units.pos, units.neg, X, ldx, Y, ldy,
                                 batch);
        return true;
    });
}

} // namespace inn::nn::kernels
