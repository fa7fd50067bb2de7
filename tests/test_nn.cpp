// The subnet layers (inn::nn) as production code compiles them: NaN and ±Inf through every
// activation on every kernel path (support/nn_nonfinite.hpp: hand-stated NaN patterns, PyTorch's
// values at ±Inf, a double reference), and the benchmark switches as compile-time constants.
// The same checks with the switches off run in test_benchmark_switches.cpp.

#include "support/nn_nonfinite.hpp"

#include <inn/nn/kernels.hpp>
#include <inn/nn/linear.hpp>

#include <cstring>
#include <limits>
#include <string>
#include <vector>

namespace {

using namespace inn;
using namespace inn::test::nonfinite;

// Without INN_BENCHMARK_SWITCHES every switch is the constant `true`: the paths kept only for
// measuring are compiled out.
static_assert(!nn::kernels::switchable);
static_assert(nn::kernels::tuning().gemm && nn::kernels::tuning().conv &&
              nn::kernels::tuning().mlp && nn::kernels::tuning().fuse_activation &&
              nn::kernels::tuning().share_buffers && nn::kernels::tuning().views &&
              nn::kernels::tuning().fuse_coupling);

TEMPLATE_TEST_CASE("nn: NaN and +-Inf through the element-wise activation layers", "[nn][nan]",
                   float, double) {
    elementwise<TestType>(every_act{});
}

TEMPLATE_TEST_CASE("nn: NaN and +-Inf through Linear + activation, register-tiled product",
                   "[nn][nan]", float, double) {
    linear_tiled<TestType>(every_act{});
}

TEMPLATE_TEST_CASE("nn: NaN and +-Inf through Linear + activation, Eigen's product", "[nn][nan]",
                   float, double) {
    linear_eigen<TestType>(every_act{});
}

TEMPLATE_TEST_CASE("nn: NaN and +-Inf through Linear + activation, matrix-vector products",
                   "[nn][nan]", float, double) {
    linear_gemv<TestType>(every_act{});
}

TEMPLATE_TEST_CASE("nn: NaN and +-Inf through the fused small MLP", "[nn][nan]", float, double) {
    small_mlp<TestType>(every_act{});
}

TEMPLATE_TEST_CASE("nn: NaN and +-Inf through Conv2d 3x3 + activation, direct kernel", "[nn][nan]",
                   float, double) {
    conv_3x3<TestType>(every_act{});
}

TEMPLATE_TEST_CASE("nn: NaN and +-Inf through Conv2d 1x1 + activation, tiled and Eigen",
                   "[nn][nan]", float, double) {
    conv_1x1_tiled<TestType>(every_act{});
    conv_1x1_eigen<TestType>(every_act{});
}

// Every plan of the tiled product gives the same bits (each output one chain of multiply-adds
// over k in order), so the measured pick can never change a result; and the bits are a product:
// they agree with a long-double reference to rounding.
template <class S>
void check_gemm_plans(index_t In, index_t Out, index_t batch) {
    std::vector<S> X(std::size_t(batch * (In + 3)));
    std::vector<S> W(std::size_t(Out * In));
    std::vector<S> b(static_cast<std::size_t>(Out));
    generator g(std::uint64_t(In * 1000 + Out * 10 + batch));
    g.fill_uniform(X.data(), X.size(), S(-1), S(1));
    g.fill_uniform(W.data(), W.size(), S(-1), S(1));
    g.fill_uniform(b.data(), b.size(), S(-1), S(1));
    const index_t ldx = In + 3, ldy = Out + 5;
    const nn::kernels::gemm_plan plans[] = {{1, 0}, {2, 0}, {4, 8}, {4, 16}, {3, 24}, {4, 13},
                                            {4, 1}, {1, 7}};
    std::vector<S> scratch(std::size_t(nn::kernels::gemm_nt_scratch<S, 1>(4) * In));
    std::vector<S> first;
    const nn::detail::relu_fn relu{};
    for (const auto& plan : plans) {
        std::vector<S> Y(std::size_t(batch * ldy), S(7));
        nn::kernels::gemm_nt_dense<S>(X.data(), ldx, W.data(), b.data(), Y.data(), ldy, batch, In,
                                      Out, scratch.data(), relu, plan);
        if (first.empty()) {
            first = Y;
            for (index_t s = 0; s < batch; ++s)
                for (index_t o = 0; o < Out; ++o) {
                    long double ref = b[std::size_t(o)], mag = std::abs(ref);
                    for (index_t k = 0; k < In; ++k) {
                        const long double t = (long double)X[std::size_t(s * ldx + k)] *
                                              W[std::size_t(o * In + k)];
                        ref += t, mag += std::abs(t);
                    }
                    ref = std::max(ref, (long double)0);
                    CHECK(std::abs(Y[std::size_t(s * ldy + o)] - ref) <=
                          mag * 4 * std::numeric_limits<S>::epsilon());
                }
            for (index_t s = 0; s < batch; ++s) // the padding between rows is untouched
                for (index_t o = Out; o < ldy; ++o)
                    CHECK(Y[std::size_t(s * ldy + o)] == S(7));
        } else {
            INFO("plan " << plan.panels << " panels, " << plan.row_block << " rows");
            CHECK(std::memcmp(Y.data(), first.data(), Y.size() * sizeof(S)) == 0);
        }
    }
}

TEMPLATE_TEST_CASE("nn: every plan of the tiled product gives the same bits", "[nn][gemm]", float,
                   double) {
    for (const auto& [In, Out] : {std::pair<index_t, index_t>{16, 8}, {37, 29}, {64, 130}})
        for (index_t batch : {3, 47, 48, 49, 100, 200, 211}) {
            INFO(In << " x " << Out << ", batch " << batch);
            check_gemm_plans<TestType>(In, Out, batch);
        }
}

TEST_CASE("nn: the measured pick of a large Linear keeps the default plan's bits", "[nn][gemm]") {
    // W of 512 x 784 floats (1.6 MB) is larger than half of any L2 seen here: the first call
    // times the candidates, later calls run the pick; every result equals the default plan's.
    using L = nn::Linear<512, 784>::bind<float, make_dims({512})>;
    generator g(5);
    L layer(g);
    const index_t batch = 200;
    std::vector<float> X(std::size_t(batch * 512)), scratch(std::size_t(L::scratch_size(batch)));
    g.fill_uniform(X.data(), X.size(), -1.f, 1.f);
    std::vector<float> ref(std::size_t(batch * 784)), Y(ref.size());
    nn::kernels::gemm_nt_dense<float>(X.data(), 512, layer.weight.data(), layer.bias.data(),
                                      ref.data(), 784, batch, 512, 784, scratch.data(),
                                      nn::kernels::no_act{});
    nn::kernels::gemm_plan plans[2];
    const int candidates = nn::kernels::gemm_candidates<float>(512, 784, batch,
                                                               L::scratch_panels(batch), plans);
    for (int call = 0; call < 3; ++call) {
        std::fill(Y.begin(), Y.end(), 0.f);
        layer.forward(cview<float>{X.data(), 512}, view<float>{Y.data(), 784}, batch,
                      scratch.data());
        CHECK(std::memcmp(Y.data(), ref.data(), Y.size() * sizeof(float)) == 0);
    }
    const std::string picks = nn::kernels::gemm_picks();
    INFO(picks);
    CHECK((candidates == 2) == (picks.find("float 512x784, batch 128-255") != std::string::npos));
}

} // namespace
