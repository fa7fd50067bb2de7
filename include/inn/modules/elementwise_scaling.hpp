#pragma once
// LearnedElementwiseScaling (FrEIA.modules.LearnedElementwiseScaling): every element
// of the input scaled by its own learned factor, for inputs of any rank.
//
//   LearnedElementwiseScaling<>                                      // init_scale = 1
//   LearnedElementwiseScaling<LearnedElementwiseScalingOptions{.init_scale = 2.0}>
//
// Parameter `s` of shape (1, *dims), trainable, initialised to ln(init_scale) (init_scale > 0,
// else shape_error::invalid_option: FrEIA would start from NaN or -inf). Forward y = x · exp(s),
// reverse x = y · exp(−s); no condition.
//
// Log-determinant: Σ s forward and −Σ s in reverse. This FIXES FrEIA's bug: FrEIA
// returns +Σ s in reverse too, so its `log_jac_det_rev` (recorded in the fixtures
// elementwise_scaling_vec / _img) is not the log-det of the inverse; the tests compare our
// reverse log-det with −log_jac_det instead (docs/freia-semantics.md#elementwise-scaling-logdet).

#include <cmath>
#include <cstddef>
#include <string>
#include <string_view>

#include "../core/module.hpp"
#include "../core/parameters.hpp"

namespace inn {

struct LearnedElementwiseScalingOptions {
    double init_scale = 1.0;  // exp(s) at initialisation; must be > 0
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

        /// exp(±s), computed once per call.
        static constexpr index_t scratch_size(index_t) { return n; }

        void forward(const run_args<S>& a) const { run(a, S(1)); }
        void inverse(const run_args<S>& a) const { run(a, S(-1)); }

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

        // direction +1: y = x · exp(s), log-det +Σ s; −1: x = y · exp(−s), log-det −Σ s (fixed).
        void run(const run_args<S>& a, S direction) const {
            Eigen::Map<vector<S>> scale(a.scratch, n);
            scale = (direction * s.values).array().exp();
            a.out[0].matrix(a.batch, n) =
                a.in[0].matrix(a.batch, n).array().rowwise() * scale.array().transpose();
            if (a.jac) {
                const S ljd = direction * s.values.sum();
                for (index_t b = 0; b < a.batch; ++b) a.ljd[b] += ljd;
            }
        }
    };
};

}  // namespace inn
