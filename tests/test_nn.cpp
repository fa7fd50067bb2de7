// The subnet layers (inn::nn) as production code compiles them: NaN and ±Inf through every
// activation on every kernel path (support/nn_nonfinite.hpp: hand-stated NaN patterns, PyTorch's
// values at ±Inf, a double reference), and the benchmark switches as compile-time constants.
// The same checks with the switches off run in test_benchmark_switches.cpp.

#include "support/nn_nonfinite.hpp"

#include <inn/nn/kernels.hpp>

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

} // namespace
