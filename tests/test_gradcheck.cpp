// The gradient-check harness (tests/support/gradcheck.hpp) checked on a module whose gradients
// are known in closed form: it must pass the right backward and catch a wrong one.

#include <catch2/catch.hpp>

#include "support/gradcheck.hpp"

namespace {

using namespace inn;

/// y = exp(a) * x + c * x^2, ljd = sum(a); `Wrong` scales dL/dc by 1.001.
template <bool Wrong>
struct AffineSq {
    static constexpr shape_result output_shapes(const signature& s) { return returns({s.in()}); }
    template <Scalar S, signature Sig>
    struct bind {
        static constexpr index_t D = Sig.in().size();
        parameter<S> a{tensor_shape{D}};
        S sum_a = 0;
        explicit bind(generator&) {}
        void prepare() { sum_a = a.values.sum(); }
        void forward(const run_args<S>& r) const {
            for (index_t b = 0; b < r.batch; ++b) {
                for (index_t i = 0; i < D; ++i) {
                    const S x = r.in[0].row(b)[i], c = r.cond[0].row(b)[i];
                    r.out[0].row(b)[i] = std::exp(a.values[i]) * x + c * x * x;
                }
                r.ljd[b] += sum_a;
            }
        }
        void inverse(const run_args<S>&) const {}
        void backward(const backward_args<S>& r) const {
            S* ga = r.grad_of(a);
            for (index_t b = 0; b < r.batch; ++b)
                for (index_t i = 0; i < D; ++i) {
                    const S x = r.in[0].row(b)[i], c = r.cond[0].row(b)[i], g = r.grad_out[0].row(b)[i];
                    r.grad_in[0].row(b)[i] = g * (std::exp(a.values[i]) + 2 * c * x);
                    r.grad_cond[0].row(b)[i] += g * x * x * (Wrong ? 1.001 : 1.0);
                    if (ga) ga[i] += g * std::exp(a.values[i]) * x + r.grad_ljd[b];
                }
        }
        template <class V> void visit(V&& v, const std::string& p) { v(p + "a", a.ref()); }
    };
};
constexpr signature sig{make_ports({make_dims({4})}), make_ports({make_dims({4})})};
TEST_CASE("gradcheck: the harness passes a right backward and catches a wrong one", "[gradcheck]") {
    auto ok = test::check_module_gradients<AffineSq<false>, sig>({});
    INFO(ok.describe());
    CHECK(ok.worst() < 1e-8);
    auto bad = test::check_module_gradients<AffineSq<true>, sig>({});
    INFO(bad.describe());
    CHECK(bad.worst() > 1e-4);
}

}  // namespace
