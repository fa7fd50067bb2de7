#pragma once
// GaussianMixtureModel (FrEIA, fixtures README §5.24): maps data x to the
// standard-normal latent of one chosen component of a Gaussian mixture whose parameters arrive
// as conditions, z = U_k (x - mu_k), with U_k the upper-triangular Cholesky factor of component
// k's precision matrix.
//
//   struct x  : InputNode<Shape<4>> {};
//   struct w  : ConditionNode<Shape<3>> {};       // K weights (unused when indices are given)
//   struct mu : ConditionNode<Shape<3, 4>> {};    // K means of D values
//   struct U  : ConditionNode<Shape<3, 10>> {};   // K x D(D+1)/2 entries of U
//   struct i  : ConditionNode<Shape<1>> {};       // the component index of each sample
//   struct gmm : Node<GaussianMixtureModel, x, conditions<w, mu, U, i>> {};
//   struct z  : OutputNode<gmm> {};
//
// Conditions, in FrEIA's order [w, mu, U, i]:
//   w  (K)                 mixture weights;
//   mu (K, D)              means;
//   U  (K, D(D+1)/2)       per component: the log of U's diagonal (first D entries), then the
//                          strict upper triangle row-major ((0,1), (0,2), ..., (1,2), ...);
//   i  (1)                 the component index of the sample, as a real number (0 .. K-1).
// FrEIA passes i as an int64 tensor of shape (B,) (declared as a (0,)-shaped condition); here it
// is a one-value condition of the network's scalar type holding an integer. A value that is not
// an integer in [0, K) throws inn::sample_error (a data_error) naming the sample.
//
// Forward z = U_k (x - mu_k), log|det J| = sum of the log-diagonal of U_k; inverse
// x = mu_k + U_k^{-1} z by back substitution (FrEIA forms the explicit inverse; same values to
// rounding), log-det negated. No parameters or buffers (FrEIA's two masks are not state).
//
// Gradient (backward): dL/dx = U_kᵀ dL/dz, and into the conditions dL/dmu_k = −dL/dx and dL/dU_k
// (the log-diagonal entries including dL/d(log-det)); the other components' entries get
// nothing. The weights w do not enter the map, and the index i is piecewise constant: both get
// zero gradient (nothing is added to theirs).
//
// Not offered: FrEIA's other two modes of `i` — None (all K components at once, output (K, D)
// with a (B, K) log-det, which FrEIA's own containers cannot sum, fixtures README §7) and an int
// seed (a random component per call; use `pick_mixture_component` below to choose indices and
// feed them as the condition). The static helpers of FrEIA are provided on Eigen matrices.

#include <cmath>
#include <cstdint>
#include <span>
#include <sstream>
#include <string>
#include <string_view>

#include <Eigen/Core>

#include "../core/batch_io.hpp"
#include "../core/module.hpp"
#include "../core/random.hpp"

namespace inn {

struct GaussianMixtureModel {
    static constexpr std::string_view name = "GaussianMixtureModel";

    static constexpr shape_result output_shapes(const signature& s) {
        if (auto r = expect_single_input(s, 1, 1); !r.ok()) return r;
        if (s.conditions.count < 4) return fail(shape_error::condition_required, 0, 0, 0, 4);
        if (s.conditions.count > 4) return fail(shape_error::condition_not_accepted, 0, 4, 0, 4);
        const int d = s.in()[0];
        const dims& w = s.conditions[0];
        if (w.rank != 1) return fail(shape_error::condition_spatial_mismatch, 0, 0);
        const int k = w[0];
        const dims& mu = s.conditions[1];
        if (!(mu.rank == 2 && mu[0] == k && mu[1] == d))
            return fail(shape_error::condition_spatial_mismatch, 0, 1);
        const dims& u = s.conditions[2];
        if (!(u.rank == 2 && u[0] == k && u[1] == d * (d + 1) / 2))
            return fail(shape_error::condition_spatial_mismatch, 0, 2);
        if (s.conditions[3].size() != 1) return fail(shape_error::condition_spatial_mismatch, 0, 3);
        return returns({s.in()});
    }

    template <Scalar S, signature Sig>
    struct bind {
        static constexpr index_t D = Sig.in()[0];
        static constexpr index_t K = Sig.conditions[0][0];
        static constexpr index_t T = D * (D + 1) / 2;  // entries of U per component

        explicit bind(generator&) {}

        void forward(const run_args<S>& a) const {
            for (index_t b = 0; b < a.batch; ++b) {
                const component c = pick(a.cond, a.first_sample, b);
                const S* x = a.in[0].row(b);
                S* z = a.out[0].row(b);
                // z_r = exp(u_rr) (x_r - mu_r) + sum_{j > r} u_rj (x_j - mu_j)
                for (index_t r = 0; r < D; ++r) {
                    S acc = std::exp(c.u[r]) * (x[r] - c.mu[r]);
                    const S* upper = c.u + D + upper_offset(r);
                    for (index_t j = r + 1; j < D; ++j) acc += upper[j - r - 1] * (x[j] - c.mu[j]);
                    z[r] = acc;
                }
                if (a.jac) a.ljd[b] += log_diag_sum(c.u);
            }
        }

        void inverse(const run_args<S>& a) const {
            for (index_t b = 0; b < a.batch; ++b) {
                const component c = pick(a.cond, a.first_sample, b);
                const S* z = a.in[0].row(b);
                S* x = a.out[0].row(b);
                // Back substitution of U v = z (v in x), then x = mu + v.
                for (index_t r = D; r-- > 0;) {
                    S acc = z[r];
                    const S* upper = c.u + D + upper_offset(r);
                    for (index_t j = r + 1; j < D; ++j) acc -= upper[j - r - 1] * x[j];
                    x[r] = acc / std::exp(c.u[r]);
                }
                for (index_t r = 0; r < D; ++r) x[r] = c.mu[r] + x[r];
                if (a.jac) a.ljd[b] -= log_diag_sum(c.u);
            }
        }

        void backward(const backward_args<S>& a) const {
            // Conditions whose gradient is wanted: mu (1) and U (2).
            const bool want_mu = a.grad_cond.size() > 1 && a.grad_cond[1].data;
            const bool want_u = a.grad_cond.size() > 2 && a.grad_cond[2].data;
            for (index_t b = 0; b < a.batch; ++b) {
                const component c = pick(a.cond, a.first_sample, b);
                const S* x = a.in[0].row(b);
                const S* gz = a.grad_out[0].row(b);
                S* gx = a.grad_in[0].row(b);
                // gx_j = exp(u_jj) gz_j + sum_{r < j} u_rj gz_r
                for (index_t j = 0; j < D; ++j) gx[j] = std::exp(c.u[j]) * gz[j];
                for (index_t r = 0; r < D; ++r) {
                    const S* upper = c.u + D + upper_offset(r);
                    for (index_t j = r + 1; j < D; ++j) gx[j] += upper[j - r - 1] * gz[r];
                }
                if (want_mu) {
                    S* gmu = a.grad_cond[1].row(b) + c.k * D;
                    for (index_t j = 0; j < D; ++j) gmu[j] -= gx[j];
                }
                if (want_u) {
                    S* gu = a.grad_cond[2].row(b) + c.k * T;
                    const S gl = a.grad_ljd ? a.grad_ljd[b] : S(0);
                    for (index_t r = 0; r < D; ++r) {
                        gu[r] += gz[r] * std::exp(c.u[r]) * (x[r] - c.mu[r]) + gl;
                        S* gupper = gu + D + upper_offset(r);
                        for (index_t j = r + 1; j < D; ++j)
                            gupper[j - r - 1] += gz[r] * (x[j] - c.mu[j]);
                    }
                }
            }
        }

    private:
        struct component {
            index_t k;
            const S* mu;
            const S* u;
        };
        // Row r of the strict upper triangle starts after rows 0..r-1: sum_{q<r} (D - 1 - q).
        static constexpr index_t upper_offset(index_t r) { return r * (D - 1) - r * (r - 1) / 2; }

        static S log_diag_sum(const S* u) {
            S s = 0;
            for (index_t r = 0; r < D; ++r) s += u[r];
            return s;
        }

        static component pick(std::span<const cview<S>> cond, index_t first_sample, index_t b) {
            const S v = cond[3].row(b)[0];
            const double k = std::nearbyint(double(v));
            if (!(double(v) == k && k >= 0 && k < double(K)))
                throw sample_error(first_sample + b,
                                   "the GaussianMixtureModel component index is " +
                                       (std::ostringstream() << double(v)).str() +
                                       ", expected an integer in [0, " + std::to_string(K) + ")");
            const index_t i = index_t(k);
            return {i, cond[1].row(b) + i * D, cond[2].row(b) + i * T};
        }
    };

    // ---- FrEIA's static helpers -----------------------------------------------------------------

    /// Component indices drawn with probabilities `w` (batch x K, rows summing to 1): one uniform
    /// u per row from a fresh generator seeded with `seed` (torch.rand in the default float32),
    /// index = number of cumulative weights below u.
    template <class Derived>
    static Eigen::VectorXi pick_mixture_component(const Eigen::MatrixBase<Derived>& w,
                                                  std::uint64_t seed) {
        generator g(seed);
        Eigen::VectorXi idx(w.rows());
        for (Eigen::Index b = 0; b < w.rows(); ++b) {
            const double u = double(g.uniform<float>(0.0f, 1.0f));
            typename Derived::Scalar cum = 0;  // torch.cumsum in w's type
            int n = 0;
            for (Eigen::Index k = 0; k < w.cols(); ++k) {
                cum += w(b, k);
                if (u > double(cum)) ++n;
            }
            idx(b) = n;
        }
        return idx;
    }

    /// softmax(w - max(w)) along each row; the maximum is over the whole matrix, as FrEIA's.
    template <class Derived>
    static row_matrix<typename Derived::Scalar> normalize_weights(
        const Eigen::MatrixBase<Derived>& w) {
        using T = typename Derived::Scalar;
        row_matrix<T> e = (w.array() - w.maxCoeff()).exp().matrix();
        for (Eigen::Index b = 0; b < e.rows(); ++b) e.row(b) /= e.row(b).sum();
        return e;
    }

    /// -ln sum_k w_k exp(-|z_k|^2 / 2 + ljd_k) per row. `z` is batch x (K * D): the K latent codes
    /// of each sample side by side; `ljd` is batch x K.
    template <class DW, class DZ, class DL>
    static vector<typename DW::Scalar> nll_loss(const Eigen::MatrixBase<DW>& w,
                                                const Eigen::MatrixBase<DZ>& z,
                                                const Eigen::MatrixBase<DL>& ljd) {
        using T = typename DW::Scalar;
        const Eigen::Index k = w.cols(), d = z.cols() / k;
        vector<T> r(w.rows());
        for (Eigen::Index b = 0; b < w.rows(); ++b) {
            T s = 0;
            for (Eigen::Index j = 0; j < k; ++j) {
                const T a = T(-0.5) * z.row(b).segment(j * d, d).squaredNorm() + ljd(b, j);
                s += std::exp(a) * w(b, j);
            }
            r(b) = -std::log(s);
        }
        return r;
    }

    /// -sum_k (ln w_k - |z_k|^2 / 2 + ljd_k) per row (layouts as nll_loss).
    template <class DW, class DZ, class DL>
    static vector<typename DW::Scalar> nll_upper_bound(const Eigen::MatrixBase<DW>& w,
                                                       const Eigen::MatrixBase<DZ>& z,
                                                       const Eigen::MatrixBase<DL>& ljd) {
        using T = typename DW::Scalar;
        const Eigen::Index k = w.cols(), d = z.cols() / k;
        vector<T> r(w.rows());
        for (Eigen::Index b = 0; b < w.rows(); ++b) {
            T s = 0;
            for (Eigen::Index j = 0; j < k; ++j) {
                const T a = T(-0.5) * z.row(b).segment(j * d, d).squaredNorm() + ljd(b, j);
                s += std::log(w(b, j)) + a;
            }
            r(b) = -s;
        }
        return r;
    }
};

}  // namespace inn
