// The benchmark switches (include/inn/nn/kernels/switches.hpp) in a build like the benchmarks':
// compiled with INN_BENCHMARK_SWITCHES and for this machine's widest vectors. This file is an
// executable of its own (tests/CMakeLists.txt): a program must not mix translation units with
// and without the macro.
//
// Each switch off must give the numbers of the fast path (to rounding), and NaN and ±Inf must
// pass through every path as in PyTorch, the off paths included (im2col convolutions, Eigen's
// GEMM, the small MLP layer by layer, activations in a pass of their own).

#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>

#if !defined(INN_BENCHMARK_SWITCHES)
#error "test_benchmark_switches.cpp needs INN_BENCHMARK_SWITCHES (set by tests/CMakeLists.txt)"
#endif

#include "support/checks.hpp"
#include "support/nn_nonfinite.hpp"

#include <initializer_list>

#include <inn/modules/concat.hpp>
#include <inn/modules/coupling/glow.hpp>
#include <inn/modules/reshape.hpp>
#include <inn/modules/split.hpp>

namespace {

using namespace inn;

static_assert(nn::kernels::switchable);

/// Turns the named switches off for its lifetime.
class switched_off {
  public:
    explicit switched_off(std::initializer_list<bool nn::kernels::switches::*> off)
        : saved_(nn::kernels::tuning()) {
        for (auto s : off)
            nn::kernels::tuning().*s = false;
    }
    switched_off(const switched_off&) = delete;
    switched_off& operator=(const switched_off&) = delete;
    ~switched_off() { nn::kernels::tuning() = saved_; }

  private:
    nn::kernels::switches saved_;
};

using sw = nn::kernels::switches;

// ---- whole networks: views, shared buffers, fused coupling tails, and every switch off ----------

namespace views {
struct subnet {
    template <int I, int O>
    using net = nn::Sequential<nn::Linear<I, 8>, nn::Tanh, nn::Linear<8, O>>;
};
using glow = GLOWCouplingBlock<subnet>;

struct x : InputNode<Shape<8>> {};
struct split : Node<Split<>, x> {};
struct a1 : Node<glow, out<split, 0>> {};
struct a2 : Node<glow, a1> {};
struct keep : Node<Concat<>, inputs<a2, out<split, 1>>> {}; // the split's order
struct swap : Node<Concat<>, inputs<out<split, 1>, a2>> {}; // the other order
struct z_keep : OutputNode<keep> {};
struct z_swap : OutputNode<swap> {};
using Keep = GraphINN<x, split, a1, a2, keep, z_keep>::with_scalar<double>;
using Swap = GraphINN<x, split, a1, a2, swap, z_swap>::with_scalar<double>;

struct y : InputNode<Shape<8>> {};
struct split_y : Node<Split<>, y> {};
struct b1 : Node<glow, out<split_y, 0>> {};
struct in_place_y : Node<Concat<>, inputs<b1, out<split_y, 1>>> {};
struct z_in_place : OutputNode<in_place_y> {};
using InPlace = GraphINN<y, split_y, b1, in_place_y, z_in_place>::with_scalar<double>;

using Chain = SequenceINN<Shape<2, 2, 2>, Flatten, GLOWCouplingBlock<subnet>, Reshape<Shape<2, 4>>,
                          Flatten>::with_scalar<double>;

// Wider subnets: a 3x3 and a 1x1 convolution, a Linear of 16+ inputs (the tiled product).
struct conv_subnet {
    template <int I, int O>
    using net = nn::Sequential<nn::Conv2d<I, 8, 3>, nn::ReLU, nn::Conv2d<8, O, 1>>;
};
struct wide_subnet {
    template <int I, int O>
    using net = nn::Sequential<nn::Linear<I, 32>, nn::ReLU, nn::Linear<32, O>>;
};
using Kernels = SequenceINN<Shape<4, 4, 4>, GLOWCouplingBlock<conv_subnet>, Flatten,
                            GLOWCouplingBlock<wide_subnet>>::with_scalar<double>;

/// The network with the switches `off` gives the numbers of the network with all on, to `tol`
/// (rounding: the log-det sums and the products run in another order).
template <class Net> void check_same_with_off(std::initializer_list<bool sw::*> off, double tol) {
    auto x = test::random_batch(5, Net::input_dims().size(), 3);
    Net with(7);
    auto [z, ljd] = with.forward(x);
    row_matrix<double> z2, x2;
    vector<double> ljd2;
    {
        switched_off guard(off);
        Net without(7);
        auto r = without.forward(x);
        z2 = r.z;
        ljd2 = r.log_jac_det;
        x2 = without.inverse(z2).x;
    }
    CHECK(test::max_rel_error(z2, z) < tol);
    CHECK(test::max_rel_error(ljd2, ljd) < tol);
    auto [x1, ljd_inv1] = with.inverse(z);
    CHECK(test::max_rel_error(x2, x1) < 10 * tol);
    CHECK(test::max_rel_error(x1, x) < 1e-12);
    CHECK(test::max_rel_error(ljd_inv1, (-ljd).eval()) < 1e-12);
}
} // namespace views

TEST_CASE("switches: views, shared buffers and the fused coupling tail off give the same numbers",
          "[switches][memory]") {
    using namespace views;
    const auto off = {&sw::views, &sw::share_buffers, &sw::fuse_coupling};
    check_same_with_off<Keep>(off, 1e-14);
    check_same_with_off<Swap>(off, 1e-14);
    check_same_with_off<InPlace>(off, 1e-14);
    check_same_with_off<Chain>(off, 1e-14);
}

TEST_CASE("switches: every switch off gives the same numbers", "[switches]") {
    using namespace views;
    const auto off = {&sw::gemm,          &sw::conv,  &sw::mlp,          &sw::fuse_activation,
                      &sw::share_buffers, &sw::views, &sw::fuse_coupling};
    check_same_with_off<Keep>(off, 1e-13);
    check_same_with_off<Chain>(off, 1e-13);
    check_same_with_off<Kernels>(off, 1e-13);
}

// ---- NaN and ±Inf on every path, with each kernel switch off in turn ---------------------------

TEST_CASE("switches: NaN and +-Inf on every path, every switch on", "[switches][nn][nan]") {
    test::nonfinite::every_path<float>();
    test::nonfinite::every_path<double>();
}

TEST_CASE("switches: NaN and +-Inf with gemm off (Eigen's product for every Linear)",
          "[switches][nn][nan]") {
    switched_off guard({&sw::gemm});
    test::nonfinite::every_path<float>();
    test::nonfinite::every_path<double>();
}

TEST_CASE("switches: NaN and +-Inf with conv off (im2col and Eigen's product)",
          "[switches][nn][nan]") {
    switched_off guard({&sw::conv});
    test::nonfinite::every_path<float>();
    test::nonfinite::every_path<double>();
}

TEST_CASE("switches: NaN and +-Inf with mlp off (the small MLP layer by layer)",
          "[switches][nn][nan]") {
    switched_off guard({&sw::mlp});
    test::nonfinite::every_path<float>();
    test::nonfinite::every_path<double>();
}

TEST_CASE("switches: NaN and +-Inf with fuse_activation off (activations in a pass of their own)",
          "[switches][nn][nan]") {
    switched_off guard({&sw::fuse_activation});
    test::nonfinite::every_path<float>();
    test::nonfinite::every_path<double>();
}

} // namespace
