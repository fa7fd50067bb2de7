#pragma once
// LearnedElementwiseScaling (FrEIA.modules.LearnedElementwiseScaling): every element
// of the input scaled by its own learned factor, for inputs of any rank.
//
//   LearnedElementwiseScaling<>                                      // init_scale = 1
//   LearnedElementwiseScaling<LearnedElementwiseScalingOptions{.init_scale = 2.0}>
//   LearnedElementwiseScaling<{.freia_reverse_logdet = true}>       // FrEIA's reverse log-det
//
// Parameter `s` of shape (1, *dims), trainable, initialised to ln(init_scale) (init_scale > 0,
// else shape_error::invalid_option: FrEIA would start from NaN or -inf). Forward y = x · exp(s),
// reverse x = y · exp(−s); no condition.
//
// Log-determinant: Σ s forward and −Σ s in reverse. This FIXES FrEIA's bug: FrEIA
// returns +Σ s in reverse too, so its `log_jac_det_rev` (recorded in the fixtures
// elementwise_scaling_vec / _img) is not the log-det of the inverse
// (docs/freia-semantics.md#elementwise-scaling-logdet). `.freia_reverse_logdet = true` reproduces
// FrEIA's +Σ s in reverse (as IResNetLayer's option of the same name), for numbers that must
// match a FrEIA model; the forward map, and so its gradient, is the same either way.
//
// Gradient (backward): dL/dx = dL/dy · exp(s), dL/ds = Σ_batch (dL/dy · y + dL/d(log-det)).

#include <cmath>
#include <cstddef>
#include <string>
#include <string_view>

#include "../core/module.hpp"
#include "../core/parameters.hpp"

namespace inn {

struct LearnedElementwiseScalingOptions {
    double init_scale = 1.0;  // exp(s) at initialisation; must be > 0
    bool freia_reverse_logdet = false;  // reverse log-det +Σ s as FrEIA (default: −Σ s, exact)
};

template <LearnedElementwiseScalingOptions O = LearnedElementwiseScalingOptions{}>
struct LearnedElementwiseScaling {
    static constexpr std::string_view name = "LearnedElementwiseScaling";
    static constexpr LearnedElementwiseScalingOptions options = O;

    static constexpr shape_result output_shapes(const signature& s) {
        if (auto r = expect_single_input(s); !r.ok()) return r;
        if (auto r = expect_no_condition(s); !r.ok()) return r;
        if (!(O.init_scale > 0)) return fail(shape_error::invalid_option);
        return returns({s.in()});
    }

    template <Scalar S, signature Sig>
    struct bind {
        static constexpr index_t n = Sig.in().size();

        parameter<S> s{state_shape()};

        // FrEIA: np.log(init_scale) * torch.ones(1, *dims), in the network's dtype.
        explicit bind(generator&) { s.values.setConstant(S(std::log(O.init_scale))); }

        /// exp(±s), computed once per call; backward also sums dL/ds over the batch there.
        static constexpr index_t scratch_size(pass p, index_t) {
            return p == pass::backward ? 2 * n : n;
        }

        void forward(const run_args<S>& a) const { run(a, S(1), S(1)); }
        void inverse(const run_args<S>& a) const {
            run(a, S(-1), O.freia_reverse_logdet ? S(1) : S(-1));
        }

        void backward(const backward_args<S>& a) const {
            Eigen::Map<vector<S>> scale(a.scratch, n);
            scale = s.values.array().exp();
            a.grad_in[0].matrix(a.batch, n) =
                a.grad_out[0].matrix(a.batch, n).array().rowwise() * scale.array().transpose();
            S* gs = a.grad_of(s);
            if (!gs) return;
            // Summed apart, then added once to what the gradient holds.
            using row = Eigen::Map<const Eigen::Array<S, Eigen::Dynamic, 1>>;
            Eigen::Map<vector<S>> sum(a.scratch + n, n);
            sum.setZero();
            for (index_t b = 0; b < a.batch; ++b) {
                // dL/dy · y = dL/dy · x · exp(s)
                sum.array() += row(a.grad_out[0].row(b), n) * row(a.in[0].row(b), n) * scale.array();
                if (a.grad_ljd) sum.array() += a.grad_ljd[b];
            }
            Eigen::Map<vector<S>>(gs, n) += sum;
        }

        /// For fusing with its neighbours (graph/fusion.hpp): the same scales and log-dets as
        /// forward and inverse.
        void affine_form(pass p, affine_gather<S>& m) const {
            const bool inverse = p == pass::inverse;
            m.set_identity(n);
            for (index_t j = 0; j < n; ++j)
                m.scale[std::size_t(j)] = std::exp((inverse ? S(-1) : S(1)) * s.values[j]);
            m.log_det = (!inverse || O.freia_reverse_logdet ? S(1) : S(-1)) * s.values.sum();
        }

        template <class V>
        void visit(V&& v, const std::string& prefix) {
            v(prefix + "s", s.ref());
        }

    private:
        static tensor_shape state_shape() {
            tensor_shape t;
            t.rank = Sig.in().rank + 1;
            t.extent[0] = 1;
            for (int d = 0; d < Sig.in().rank; ++d) t.extent[std::size_t(d) + 1] = Sig.in()[d];
            return t;
        }

        // direction +1: y = x · exp(s); −1: x = y · exp(−s). The log-det is ljd_sign · Σ s.
        void run(const run_args<S>& a, S direction, S ljd_sign) const {
            Eigen::Map<vector<S>> scale(a.scratch, n);
            scale = (direction * s.values).array().exp();
            a.out[0].matrix(a.batch, n) =
                a.in[0].matrix(a.batch, n).array().rowwise() * scale.array().transpose();
            if (a.jac) {
                const S ljd = ljd_sign * s.values.sum();
                for (index_t b = 0; b < a.batch; ++b) a.ljd[b] += ljd;
            }
        }
    };
};

}  // namespace inn
