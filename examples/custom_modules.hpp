#pragma once
// The two custom modules of FrEIA's README, ported: how to write an invertible module for inn.
//
// A module is a spec type with a shape rule and a `bind<Scalar, signature>` template that holds
// the parameters and runs (see include/inn/core/module.hpp and docs/tutorial.md). Both plug into
// SequenceINN and GraphINN exactly like the built-in modules.

#include <algorithm>
#include <cmath>
#include <string>

#include <inn/inn.hpp>

namespace example {

/// Multiplies each channel by a fixed random factor in {1, 2} (FrEIA README:
/// `self.random_factor = torch.randint(1, 3, size=(1, dims_in[0][0]))`).
struct FixedRandomElementwiseMultiply {
    static constexpr std::string_view name = "FixedRandomElementwiseMultiply";

    // FrEIA's output_dims: the shape is unchanged. Vectors only, as the README's broadcast.
    static constexpr inn::shape_result output_shapes(const inn::signature& s) {
        if (auto r = inn::expect_single_input(s, 1, 1); !r.ok()) return r;
        if (auto r = inn::expect_no_condition(s); !r.ok()) return r;
        return inn::returns({s.in()});
    }

    template <inn::Scalar S, inn::signature Sig>
    struct bind {
        static constexpr inn::index_t C = Sig.in().size();
        inn::vector<S> factor = inn::vector<S>(C);  // not part of the state_dict, as in FrEIA
        S log_det = 0;

        explicit bind(inn::generator& g) {
            for (inn::index_t i = 0; i < C; ++i) factor[i] = S(1 + g.next_u32() % 2);
            log_det = factor.array().log().sum();
        }

        void forward(const inn::run_args<S>& a) const {
            a.out[0].matrix(a.batch, C) = a.in[0].matrix(a.batch, C).array().rowwise() *
                                          factor.array().transpose();
            // The log-det is trivial, so it is returned even when jac is false (as in FrEIA).
            for (inn::index_t b = 0; b < a.batch; ++b) a.ljd[b] += log_det;
        }
        void inverse(const inn::run_args<S>& a) const {
            a.out[0].matrix(a.batch, C) = a.in[0].matrix(a.batch, C).array().rowwise() /
                                          factor.array().transpose();
            for (inn::index_t b = 0; b < a.batch; ++b) a.ljd[b] -= log_det;
        }
        // Training (optional): y = x * factor, so dL/dx = dL/dy * factor. The factors are fixed
        // (no parameter gradient) and the log-det does not depend on x.
        void backward(const inn::backward_args<S>& a) const {
            a.grad_in[0].matrix(a.batch, C) = a.grad_out[0].matrix(a.batch, C).array().rowwise() *
                                              factor.array().transpose();
        }
    };
};

/// Swaps two inputs sample by sample where the condition is not positive (FrEIA README). Forward
/// and inverse are the same map; its log-det is 0.
struct ConditionalSwap {
    static constexpr std::string_view name = "ConditionalSwap";

    static constexpr inn::shape_result output_shapes(const inn::signature& s) {
        if (s.inputs.count != 2) return inn::fail(inn::shape_error::wrong_input_count, 0, 0, 0, 2);
        if (s.inputs[0] != s.inputs[1]) return inn::fail(inn::shape_error::concat_mismatch, 0, 1);
        if (s.conditions.count != 1) return inn::fail(inn::shape_error::condition_required);
        return inn::returns({s.inputs[0], s.inputs[1]});
    }

    template <inn::Scalar S, inn::signature Sig>
    struct bind {
        static constexpr inn::index_t n = Sig.inputs[0].size();

        explicit bind(inn::generator&) {}

        void forward(const inn::run_args<S>& a) const {
            for (inn::index_t b = 0; b < a.batch; ++b) {
                bool keep = a.cond[0].row(b)[0] > S(0);
                const S* x1 = a.in[keep ? 0 : 1].row(b);
                const S* x2 = a.in[keep ? 1 : 0].row(b);
                std::copy(x1, x1 + n, a.out[0].row(b));
                std::copy(x2, x2 + n, a.out[1].row(b));
            }
        }
        void inverse(const inn::run_args<S>& a) const { forward(a); }
        // Training (optional): each output is a copy of one input, so the gradient is routed
        // back the same way. The condition only chooses the route: its gradient is zero, so
        // nothing is added to grad_cond.
        void backward(const inn::backward_args<S>& a) const {
            for (inn::index_t b = 0; b < a.batch; ++b) {
                bool keep = a.cond[0].row(b)[0] > S(0);
                const S* g1 = a.grad_out[0].row(b);
                const S* g2 = a.grad_out[1].row(b);
                std::copy(g1, g1 + n, a.grad_in[keep ? 0 : 1].row(b));
                std::copy(g2, g2 + n, a.grad_in[keep ? 1 : 0].row(b));
            }
        }
    };
};

}  // namespace example
