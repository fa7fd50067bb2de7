#pragma once
// The orthogonal modules of FrEIA.modules.orthogonal, for vectors (rank-1 inputs) without
// conditions:
//
//   OrthogonalTransform<>                                      // correction_interval 256, clamp 5
//   OrthogonalTransform<OrthogonalTransformOptions{.clamp = 1.5}>
//   HouseholderPerm<HouseholderPermOptions{.n_reflections = 3}>
//   HouseholderPerm<HouseholderPermOptions{.n_reflections = 3, .fixed = true}>
//
// OrthogonalTransform (FrEIA), state `weights` (D, D), `bias` (1, D), `scaling` (1, D):
//   ℓ = (clamp · 0.636) · atan(scaling / clamp)   (clamp · 0.636 folded in double, then rounded
//                                                  to the Scalar, as Python/PyTorch do)
//   forward  y = (x · weights + bias) · exp(ℓ),       log|det J| = Σ ℓ
//   reverse  x = (y · exp(−ℓ) − bias) · weightsᵀ,     log|det J| = −Σ ℓ
// The reverse is the exact inverse while `weights` is orthogonal (it is at construction and in
// FrEIA checkpoints). Construction draws, in FrEIA's order: back_counter = randint(0,
// correction_interval) // 2 from the NumPy state; A = randn(D, D) (torch), A + Aᵀ, weights = U of
// its SVD (computed in double; column signs are backend-defined in FrEIA too); bias = 0.05 ·
// randn(1, D); scaling = 0.02 · randn(1, D).
// FrEIA re-orthogonalises `weights` from a backward hook every ~correction_interval training
// steps. That correction is no part of the gradient: `backward` differentiates the
// forward map above with respect to x, `weights`, `bias` and `scaling` (ℓ through the atan
// clamp), and `orthogonalize_weights()` is FrEIA's Gram–Schmidt correction, for a trainer to
// call after its steps (`back_counter` is kept for that).
// Rejected at compile time: clamp == 0 or NaN (NaN log-scales), correction_interval < 1 (NumPy's
// randint raises) -> shape_error::invalid_option.
//
// HouseholderPerm (FrEIA), state `Vs` (n_reflections, D):
//   W = H(v_0) H(v_1) ⋯ H(v_{n−1}),  H(v) = I − 2 v vᵀ / (vᵀv)
//   forward y = x · W, reverse x = y · Wᵀ, log-det 0.
// Its gradient with respect to `Vs` (learned mode) differentiates this product of normalised
// reflections exactly; fixed mode has nothing trainable and only passes dL/dx = dL/dy · Wᵀ.
// W is computed with FrEIA's blocked WY scheme (`_fast_h`, stride 2) in the network's Scalar, and
// recomputed whenever `Vs` changed since the last call (a load or a training step). With
// `fixed = true`, Vs = randn(D, n)ᵀ (else eye(D, n) + 0.1 · randn(D, n), transposed) and W is
// computed once and stored; FrEIA registers that one tensor twice, so the state_dict has `Vs`,
// `W`, `weight` — both keys name the same storage here too (loading writes `W` then `weight`
// into it, as PyTorch does), and the run uses it as stored.
// Deliberate differences from FrEIA (docs/freia-semantics.md#householder-perm):
//   * n_reflections < 2 is rejected as in FrEIA (ValueError there), so the default
//     HouseholderPerm<> does not compile: shape_error::invalid_option.
//   * the conditional mode (reflection vectors from a condition) crashes in FrEIA (`mm` with
//     batched matrices); conditions are rejected: shape_error::condition_not_accepted.
//   * with fixed = true FrEIA leaves `Vs` trainable although the run never reads it; here `Vs` is
//     marked non-trainable (its values and key are unchanged).

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>

#include <Eigen/Dense>

#include "../core/module.hpp"
#include "../core/parameters.hpp"

namespace inn {

// ---- OrthogonalTransform ------------------------------------------------------------------------

struct OrthogonalTransformOptions {
    int correction_interval = 256;  // training only (see above); must be >= 1
    double clamp = 5.0;
};

template <OrthogonalTransformOptions O = OrthogonalTransformOptions{}>
struct OrthogonalTransform {
    static constexpr std::string_view name = "OrthogonalTransform";
    static constexpr OrthogonalTransformOptions options = O;

    static constexpr shape_result output_shapes(const signature& s) {
        if (auto r = expect_single_input(s, 1, 1); !r.ok()) return r;
        if (auto r = expect_no_condition(s); !r.ok()) return r;
        if (O.correction_interval < 1 || !(O.clamp != 0.0) || O.clamp != O.clamp)
            return fail(shape_error::invalid_option);
        return returns({s.in()});
    }

    template <Scalar S, signature Sig>
    struct bind {
        static constexpr index_t D = Sig.in()[0];

        parameter<S> weights{tensor_shape{D, D}};
        parameter<S> bias{tensor_shape{1, D}};
        parameter<S> scaling{tensor_shape{1, D}};
        /// FrEIA's hook counter (not in the state_dict); see orthogonalize_weights().
        std::int64_t back_counter = 0;

        explicit bind(generator& g) {
            back_counter = g.numpy().randint(0, O.correction_interval) / 2;
            parameter<S> a{tensor_shape{D, D}};
            g.fill_normal(a.data(), std::size_t(a.size()), S(0), S(1));
            const auto am = a.matrix(D, D);
            const Eigen::MatrixXd sym = (am + am.transpose()).template cast<double>();
            Eigen::JacobiSVD<Eigen::MatrixXd> svd(sym, Eigen::ComputeFullU);
            weights.matrix(D, D) = svd.matrixU().cast<S>();
            g.fill_normal(bias.data(), std::size_t(D), S(0), S(1));
            bias.values *= S(0.05);
            g.fill_normal(scaling.data(), std::size_t(D), S(0), S(1));
            scaling.values *= S(0.02);
        }

        /// ℓ and exp(±ℓ) (2 D), plus (y · exp(−ℓ) − bias) of the batch in the reverse pass and
        /// dL/dy · exp(ℓ) in the backward pass.
        static constexpr index_t scratch_size(index_t batch) { return 2 * D + batch * D; }

        void forward(const run_args<S>& a) const {
            const auto [l, e] = log_scale(a.scratch, S(1));
            auto y = a.out[0].matrix(a.batch, D);
            y.noalias() = a.in[0].matrix(a.batch, D) * weights.matrix(D, D);
            y.rowwise() += bias.values.transpose();
            y.array().rowwise() *= e.array().transpose();
            if (a.jac) add_log_det(a, l.sum());
        }

        void inverse(const run_args<S>& a) const {
            const auto [l, e] = log_scale(a.scratch, S(-1));
            matrix_map<S> t(a.scratch + 2 * D, a.batch, D, Eigen::OuterStride<>(D));
            t = a.in[0].matrix(a.batch, D).array().rowwise() * e.array().transpose();
            t.rowwise() -= bias.values.transpose();
            a.out[0].matrix(a.batch, D).noalias() = t * weights.matrix(D, D).transpose();
            if (a.jac) add_log_det(a, -l.sum());
        }

        /// With u = x · weights + bias, y = u · exp(ℓ): t = dL/dy · exp(ℓ), dL/dx = t · weightsᵀ,
        /// dL/dweights = xᵀ t, dL/dbias = Σ t, dL/dℓ = Σ (dL/dy · y + dL/d(log-det)), and
        /// dℓ/dscaling = 0.636 / (1 + (scaling / clamp)²).
        void backward(const backward_args<S>& a) const {
            const auto e = log_scale(a.scratch, S(1)).second;
            matrix_map<S> t(a.scratch + 2 * D, a.batch, D, Eigen::OuterStride<>(D));
            t = a.grad_out[0].matrix(a.batch, D).array().rowwise() * e.array().transpose();
            a.grad_in[0].matrix(a.batch, D).noalias() = t * weights.matrix(D, D).transpose();
            if (S* gw = a.grad_of(weights))
                Eigen::Map<row_matrix<S>>(gw, D, D).noalias() +=
                    a.in[0].matrix(a.batch, D).transpose() * t;
            if (S* gb = a.grad_of(bias))
                Eigen::Map<vector<S>>(gb, D) += t.colwise().sum().transpose();
            if (S* gs = a.grad_of(scaling)) {
                S sum_gl = 0;
                if (a.grad_ljd)
                    for (index_t b = 0; b < a.batch; ++b) sum_gl += a.grad_ljd[b];
                const S factor = S(O.clamp * 0.636);
                const S clamp = S(O.clamp);
                const auto gy = a.grad_out[0].matrix(a.batch, D);
                const auto y = a.out[0].matrix(a.batch, D);
                for (index_t i = 0; i < D; ++i) {
                    const S q = scaling.values[i] / clamp;
                    const S g_l = gy.col(i).dot(y.col(i)) + sum_gl;
                    gs[i] += g_l * factor / (clamp * (S(1) + q * q));
                }
            }
        }

        /// FrEIA's `orth_correction`: classical Gram–Schmidt on the rows of `weights` (row 0
        /// normalised; row i minus its projections on rows 0..i−1, normalised). FrEIA runs it from
        /// a backward hook; call it after optimiser steps to keep the inverse exact.
        void orthogonalize_weights() {
            auto w = weights.matrix(D, D);
            w.row(0) /= w.row(0).norm();
            for (index_t i = 1; i < D; ++i) {
                // R[i] -= Σ_k (R[k] · R[i]) R[k] with the projections of the unmodified row i.
                const vector<S> proj = w.topRows(i) * w.row(i).transpose();
                w.row(i) -= proj.transpose() * w.topRows(i);
                w.row(i) /= w.row(i).norm();
            }
        }

        template <class V>
        void visit(V&& v, const std::string& prefix) {
            v(prefix + "weights", weights.ref());
            v(prefix + "bias", bias.ref());
            v(prefix + "scaling", scaling.ref());
        }

    private:
        // ℓ = fl(clamp · 0.636) · atan(scaling / fl(clamp)) into scratch[0, D), exp(sign · ℓ)
        // into scratch[D, 2D) (FrEIA: torch.exp(-log_scaling) in reverse).
        std::pair<Eigen::Map<vector<S>>, Eigen::Map<vector<S>>> log_scale(S* scratch,
                                                                          S sign) const {
            Eigen::Map<vector<S>> l(scratch, D), e(scratch + D, D);
            const S factor = S(O.clamp * 0.636);  // folded in double, as Python does
            const S clamp = S(O.clamp);
            for (index_t i = 0; i < D; ++i) {
                l[i] = factor * std::atan(scaling.values[i] / clamp);
                e[i] = std::exp(sign * l[i]);
            }
            return {l, e};
        }
        static void add_log_det(const run_args<S>& a, S value) {
            for (index_t b = 0; b < a.batch; ++b) a.ljd[b] += value;
        }
    };
};

// ---- HouseholderPerm ----------------------------------------------------------------------------

struct HouseholderPermOptions {
    int n_reflections = 1;  // FrEIA's default, rejected as in FrEIA: pass >= 2
    bool fixed = false;
};

template <HouseholderPermOptions O = HouseholderPermOptions{}>
struct HouseholderPerm {
    static constexpr std::string_view name = "HouseholderPerm";
    static constexpr HouseholderPermOptions options = O;

    static constexpr shape_result output_shapes(const signature& s) {
        if (auto r = expect_single_input(s, 1, 1); !r.ok()) return r;
        // FrEIA's conditional mode is broken: not offered.
        if (auto r = expect_no_condition(s); !r.ok()) return r;
        if (O.n_reflections < 2) return fail(shape_error::invalid_option, 0, 0, 0, 2);
        return returns({s.in()});
    }

    template <Scalar S, signature Sig>
    struct bind {
        static constexpr index_t D = Sig.in()[0];
        static constexpr index_t n = O.n_reflections;

        parameter<S> Vs{tensor_shape{n, D}, !O.fixed};
        /// fixed: the stored product (state `W` and `weight`); otherwise the cached product of
        /// the current `Vs` (not in the state_dict).
        parameter<S> W{tensor_shape{D, D}, false};

        explicit bind(generator& g) {
            // init (D, n) drawn row-major, Vs = initᵀ.
            row_matrix<S> init(D, n);
            g.fill_normal(init.data(), std::size_t(init.size()), S(0), S(1));
            if constexpr (!O.fixed) {
                init *= S(0.1);
                for (index_t i = 0; i < std::min(D, n); ++i) init(i, i) += S(1);  // eye(D, n) +
            }
            Vs.matrix(n, D) = init.transpose();
            fast_h();
        }

        /// The product W of the reflections in Vs (learned mode); the network calls it when the
        /// parameters change, before any call that reads W.
        void prepare() {
            if constexpr (!O.fixed) fast_h();
        }

        void forward(const run_args<S>& a) const {
            a.out[0].matrix(a.batch, D).noalias() =
                a.in[0].matrix(a.batch, D) * W.matrix(D, D);
        }
        void inverse(const run_args<S>& a) const {
            a.out[0].matrix(a.batch, D).noalias() =
                a.in[0].matrix(a.batch, D) * W.matrix(D, D).transpose();
        }

        /// The running matrix Ḡ_i below (D x D) and one vector.
        static constexpr index_t scratch_size(pass p, index_t) {
            return p == pass::backward && !O.fixed ? D * D + D : 0;
        }

        /// dL/dx = dL/dy · Wᵀ. Learned mode, with W = H_0 ⋯ H_{n−1}, H_i = I − 2 u_i u_iᵀ and
        /// u_i = V_i / ‖V_i‖: G = dL/dW = xᵀ · dL/dy; dL/dH_i = Ḡ_i = (H_0 ⋯ H_{i−1})ᵀ G
        /// (H_{i+1} ⋯ H_{n−1})ᵀ, so Ḡ_0 = G H_{n−1} ⋯ H_1 and Ḡ_{i+1} = H_i Ḡ_i H_{i+1}
        /// (reflections are symmetric and their own inverses); dL/du_i = −2 (Ḡ_i + Ḡ_iᵀ) u_i and
        /// dL/dV_i = (I − u_i u_iᵀ) dL/du_i / ‖V_i‖. O(n D²) beyond the products with the batch.
        void backward(const backward_args<S>& a) const {
            const auto gy = a.grad_out[0].matrix(a.batch, D);
            a.grad_in[0].matrix(a.batch, D).noalias() = gy * W.matrix(D, D).transpose();
            if constexpr (!O.fixed) {
                S* gv = a.grad_of(Vs);
                if (!gv) return;
                Eigen::Map<row_matrix<S>> Gi(a.scratch, D, D);
                Eigen::Map<vector<S>> w(a.scratch + D * D, D);
                Gi.noalias() = a.in[0].matrix(a.batch, D).transpose() * gy;  // G
                // M ← M H(u) = M − 2 (M u) uᵀ and M ← H(u) M = M − 2 u (uᵀ M).
                auto reflect_right = [&](index_t i) {
                    const auto u = v_.row(i);
                    w.noalias() = Gi * u.transpose();
                    Gi.noalias() -= S(2) * w * u;
                };
                auto reflect_left = [&](index_t i) {
                    const auto u = v_.row(i);
                    w.noalias() = Gi.transpose() * u.transpose();
                    Gi.noalias() -= S(2) * u.transpose() * w.transpose();
                };
                for (index_t i = n - 1; i >= 1; --i) reflect_right(i);
                auto gvs = Eigen::Map<row_matrix<S>>(gv, n, D);
                for (index_t i = 0; i < n; ++i) {
                    if (i > 0) {
                        reflect_left(i - 1);
                        reflect_right(i);
                    }
                    const auto u = v_.row(i);
                    // dL/du = −2 (Ḡ u + Ḡᵀ u)
                    w.noalias() = Gi * u.transpose();
                    w.noalias() += Gi.transpose() * u.transpose();
                    w *= S(-2);
                    const S norm = Vs.matrix(n, D).row(i).norm();
                    gvs.row(i) += (w.transpose() - u.dot(w.transpose()) * u) / norm;
                }
            }
        }

        template <class V>
        void visit(V&& v, const std::string& prefix) {
            v(prefix + "Vs", Vs.ref());
            if constexpr (O.fixed) {
                v(prefix + "W", W.ref());
                v(prefix + "weight", W.ref());  // the same tensor, registered twice by FrEIA
            }
        }

    private:
        // Work space of fast_h, sized once (forward and inverse never allocate).
        row_matrix<S> v_ = row_matrix<S>(n, D);       // normalised reflection vectors
        row_matrix<S> y_ = row_matrix<S>(2, D);       // Y of one pair (as rows)
        row_matrix<S> t_ = row_matrix<S>(2, D);       // Yᵀ P
        vector<S> q_ = vector<S>(D);                  // P u of the odd last vector

        // FrEIA's _fast_h(Vs, stride=2) into W: v_i = V_i / ‖V_i‖, u_i = 2 v_i, pairs
        // (2g, 2g+1) with Wg = [u_2g, u_2g+1], Yg = [(I − u_2g+1 v_2g+1ᵀ) v_2g, v_2g+1];
        // P = I − W_{k−1} Y_{k−1}ᵀ; P = P − W_g (Y_gᵀ P) for g = k−2 … 0; for odd n finally
        // P = P − P (u_{n−1} v_{n−1}ᵀ). Equal to H(v_0) ⋯ H(v_{n−1}).
        void fast_h() {
            for (index_t i = 0; i < n; ++i) {
                const auto row = Vs.matrix(n, D).row(i);
                v_.row(i) = row / row.norm();
            }
            const index_t k = n / 2;
            auto P = W.matrix(D, D);
            auto pair_y = [&](index_t g) {
                const auto v0 = v_.row(2 * g), v1 = v_.row(2 * g + 1);
                // (I − u1 v1ᵀ) v0 with u1 = 2 v1
                y_.row(0) = v0 - (S(2) * v1) * v1.dot(v0);
                y_.row(1) = v1;
            };
            pair_y(k - 1);
            for (index_t r = 0; r < D; ++r)
                for (index_t c = 0; c < D; ++c)
                    P(r, c) = (r == c ? S(1) : S(0)) -
                              (S(2) * v_(2 * (k - 1), r) * y_(0, c) +
                               S(2) * v_(2 * (k - 1) + 1, r) * y_(1, c));
            for (index_t g = k - 2; g >= 0; --g) {
                pair_y(g);
                t_.noalias() = y_ * P;  // Ygᵀ P (Yg's columns are y_'s rows)
                for (index_t r = 0; r < D; ++r) {
                    const S w0 = S(2) * v_(2 * g, r), w1 = S(2) * v_(2 * g + 1, r);
                    P.row(r) -= w0 * t_.row(0) + w1 * t_.row(1);
                }
            }
            if constexpr (n % 2 == 1) {
                const auto v = v_.row(n - 1);
                q_.noalias() = P * (S(2) * v).transpose();  // P u
                P.noalias() -= q_ * v;
            }
        }
    };
};

}  // namespace inn
