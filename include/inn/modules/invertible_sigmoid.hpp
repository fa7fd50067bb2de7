#pragma once
// InvertibleSigmoid (FrEIA.modules.InvertibleSigmoid): the logistic function,
// elementwise on inputs of any rank; no parameters, no condition.
//
//   SequenceINN<Shape<6>, InvertibleSigmoid>
//
//   forward  y = 1 / (1 + exp(−x))
//   reverse  x = ln(y / (1 − y))            (NaN / ±Inf outside (0, 1), as in FrEIA)
//   log|det J| = Σ ln(1 / ((1 + exp(u)) (1 + exp(−u))))   at the x-side value u (the input
//                forward, the recovered x in reverse), negated in reverse.
//
// Deliberate differences from FrEIA (docs/freia-semantics.md#invertible-sigmoid):
//   * FrEIA sums the log-det over dim 1 only, which for rank > 1 returns a (B, *spatial) tensor
//     instead of one value per sample. Here it is summed over all non-batch dims (the log-det of
//     the whole map); for vectors (FrEIA's only working case, fixture invertible_sigmoid) both
//     agree.
//   * with jac = false FrEIA returns a 1-tuple that breaks its containers; here the log-det is
//     simply skipped.
//   * each term is evaluated as −(|u| + 2 log1p(exp(−|u|))), the same function without FrEIA's
//     overflow to −Inf for |u| beyond ~88 (float) / ~709 (double); values agree to rounding.

#include <cmath>
#include <string_view>

#include "../core/module.hpp"

namespace inn {

struct InvertibleSigmoid {
    static constexpr std::string_view name = "InvertibleSigmoid";

    static constexpr shape_result output_shapes(const signature& s) {
        if (auto r = expect_single_input(s); !r.ok()) return r;
        if (auto r = expect_no_condition(s); !r.ok()) return r;
        return returns({s.in()});
    }

    template <Scalar S, signature Sig>
    struct bind {
        static constexpr index_t n = Sig.in().size();

        explicit bind(generator&) {}

        void forward(const run_args<S>& a) const {
            for (index_t b = 0; b < a.batch; ++b) {
                const S* x = a.in[0].row(b);
                S* y = a.out[0].row(b);
                S ljd = 0;
                for (index_t i = 0; i < n; ++i) {
                    y[i] = S(1) / (S(1) + std::exp(-x[i]));
                    if (a.jac) ljd += log_derivative(x[i]);
                }
                if (a.jac) a.ljd[b] += ljd;
            }
        }

        void inverse(const run_args<S>& a) const {
            for (index_t b = 0; b < a.batch; ++b) {
                const S* y = a.in[0].row(b);
                S* x = a.out[0].row(b);
                S ljd = 0;
                for (index_t i = 0; i < n; ++i) {
                    x[i] = std::log(y[i] / (S(1) - y[i]));
                    if (a.jac) ljd += log_derivative(x[i]);
                }
                if (a.jac) a.ljd[b] -= ljd;
            }
        }

        /// dL/dx = dL/dy · σ'(x) + dL/d(log-det) · (1 − 2σ(x)), the last factor being
        /// d ln σ'(x) / dx = −tanh(x / 2); both written without cancellation for large |x|.
        void backward(const backward_args<S>& a) const {
            for (index_t b = 0; b < a.batch; ++b) {
                const S* x = a.in[0].row(b);
                const S* gy = a.grad_out[0].row(b);
                S* gx = a.grad_in[0].row(b);
                const S gl = a.grad_ljd ? a.grad_ljd[b] : S(0);
                for (index_t i = 0; i < n; ++i) {
                    const S e = std::exp(-std::abs(x[i]));
                    const S derivative = e / ((S(1) + e) * (S(1) + e));  // σ'(x) = σ(1 − σ)
                    gx[i] = gy[i] * derivative - gl * std::tanh(x[i] / S(2));
                }
            }
        }

    private:
        // ln σ'(u) = ln(1 / ((1 + e^u)(1 + e^−u))) = −(|u| + 2 ln(1 + e^−|u|)).
        static S log_derivative(S u) {
            const S m = std::abs(u);
            return -(m + S(2) * std::log1p(std::exp(-m)));
        }
    };
};

}  // namespace inn
