// The benchmark switches (include/inn/nn/kernels/switches.hpp) in a build like the benchmarks':
// compiled with INN_BENCHMARK_SWITCHES and for this machine's widest vectors. This file is an
// executable of its own (tests/CMakeLists.txt): a program must not mix translation units of inn
// code with and without the macro (Catch2's main, tests/main.cpp, has none).
//
// Each switch off must give the numbers of the fast path (to rounding), and NaN and ±Inf must
// pass through every path as in PyTorch, the off paths included (im2col convolutions, Eigen's
// GEMM, the small MLP layer by layer, activations in a pass of their own). Fused chains of
// element-wise modules are checked against the unfused modules here too, on the parity
// fixtures that have such chains.

#include <catch2/catch.hpp>

#if !defined(INN_BENCHMARK_SWITCHES)
#error "test_benchmark_switches.cpp needs INN_BENCHMARK_SWITCHES (set by tests/CMakeLists.txt)"
#endif

#include "support/checks.hpp"
#include "support/fixture.hpp"
#include "support/nn_nonfinite.hpp"
#include "support/parity_nets.hpp"

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
    const auto off = {&sw::gemm,          &sw::conv,  &sw::mlp,           &sw::fuse_activation,
                      &sw::share_buffers, &sw::views, &sw::fuse_coupling, &sw::fuse_elementwise,
                      &sw::pack_weights};
    check_same_with_off<Keep>(off, 1e-13);
    check_same_with_off<Chain>(off, 1e-13);
    check_same_with_off<Kernels>(off, 1e-13);
}

// ---- fusion across modules: chains of element-wise modules as one pass ------------------------

namespace fusion {
using views::subnet;
// Two chains: ActNorm ... PermuteRandom on the network's input (a view, Flatten, inside it) and
// PermuteRandom -> LearnedElementwiseScaling on the network's output, a coupling between them.
using Chains = SequenceINN<Shape<4, 4, 4>, ActNorm, PermuteRandom<PermuteRandomOptions{.seed = 1}>,
                           LearnedElementwiseScaling<{.init_scale = 1.5}>, IRevNetDownsampling<>,
                           Flatten, PermuteRandom<PermuteRandomOptions{.seed = 2}>,
                           GLOWCouplingBlock<subnet>, PermuteRandom<PermuteRandomOptions{.seed = 3}>,
                           LearnedElementwiseScaling<{.init_scale = 0.5}>>;
// A chain that is the whole network: its input and output would share memory unfused.
using Pair = SequenceINN<Shape<8>, PermuteRandom<>, LearnedElementwiseScaling<{.init_scale = 2}>>;
// A lone element-wise module between couplings is not a chain.
using Lone = SequenceINN<Shape<8>, GLOWCouplingBlock<subnet>, PermuteRandom<>, Flatten,
                         GLOWCouplingBlock<subnet>>;

/// Forward (twice: the first call initialises ActNorm module by module) and inverse of the
/// fused network equal the unfused one's to `tol`, on `threads` threads. The chains' log-dets are
/// added module by module in the unfused order: where no data-dependent module follows a chain,
/// the log-dets keep their bits (`same_ljd_bits`).
template <class Net> void check_fused(int threads, double tol, bool same_ljd_bits = false) {
    using S = typename Net::scalar;
    const auto x = test::random_batch<S>(37, Net::input_dims().size(), 5);
    Net fused(7), unfused(7);
    fused.set_threads(threads);
    unfused.set_threads(threads);
    (void)fused.forward(x);
    const auto [z, ljd] = fused.forward(x);
    const auto [x1, ljd_inv] = fused.inverse(z);
    row_matrix<S> z2, x2;
    vector<S> ljd2, ljd_inv2;
    {
        switched_off guard({&sw::fuse_elementwise});
        (void)unfused.forward(x);
        auto r = unfused.forward(x);
        z2 = r.z;
        ljd2 = r.log_jac_det;
        auto i = unfused.inverse(z);
        x2 = i.x;
        ljd_inv2 = i.log_jac_det;
        CHECK(unfused.summary().find("fused pass") == std::string::npos);
    }
    INFO("threads " << threads);
    CHECK(test::max_rel_error(z, z2) < tol);
    CHECK(test::max_rel_error(x1, x2) < tol);
    CHECK(test::max_rel_error(x1, x) < 100 * tol);
    CHECK(test::max_rel_error(ljd, ljd2) < tol);
    CHECK(test::max_rel_error(ljd_inv, ljd_inv2) < tol);
    if (same_ljd_bits) {
        CHECK(ljd == ljd2);
        CHECK(ljd_inv == ljd_inv2);
    }
}

/// A parity fixture's network loaded twice, run fused and unfused on the recorded data: equal
/// to `tol` (the parity suite compares the fused network with FrEIA's numbers).
template <class Arch, Scalar T> void check_fixture_fused(const std::string& name, double tol) {
    using Net = typename Arch::template with_scalar<T>;
    test::fixture f(name);
    INFO("fixture " << name);
    std::vector<row_matrix<T>> x, c, z;
    for (int i = 0; i < f.count("test.x."); ++i) x.push_back(f.matrix<T>("test.x." + std::to_string(i)));
    for (int j = 0; j < f.count("test.c."); ++j) c.push_back(f.matrix<T>("test.c." + std::to_string(j)));
    for (int i = 0; i < f.count("test.z."); ++i) z.push_back(f.matrix<T>("test.z." + std::to_string(i)));
    auto run = [&](Net& net) {
        test::apply_graph_prefixes(net, f.arch);
        load_state_dict(net, f.file, {.strict = true, .ignore_prefixes = {"test."}});
        auto fwd = test::run_tuple<false>(net, x, c, std::make_index_sequence<std::size_t(Net::n_inputs)>{});
        auto inv = test::run_tuple<true>(net, z, c, std::make_index_sequence<std::size_t(Net::n_outputs)>{});
        return std::make_pair(fwd, inv);
    };
    Net fused, unfused;
    const auto [f_fwd, f_inv] = run(fused);
    CHECK(fused.summary().find("fused pass 1 (1/2)") != std::string::npos);
    switched_off guard({&sw::fuse_elementwise});
    const auto [u_fwd, u_inv] = run(unfused);
    for (std::size_t i = 0; i < f_fwd.first.size(); ++i)
        CHECK(test::max_rel_error(f_fwd.first[i], u_fwd.first[i]) < tol);
    for (std::size_t i = 0; i < f_inv.first.size(); ++i)
        CHECK(test::max_rel_error(f_inv.first[i], u_inv.first[i]) < tol);
    CHECK(test::max_rel_error(f_fwd.second, u_fwd.second) < tol);
    CHECK(test::max_rel_error(f_inv.second, u_inv.second) < tol);
}
} // namespace fusion

TEST_CASE("switches: fused element-wise chains give the unfused numbers", "[switches][fusion]") {
    using namespace fusion;
    for (int threads : {1, 2}) {
        check_fused<Chains::with_scalar<double>>(threads, 1e-14);
        check_fused<Chains::with_scalar<float>>(threads, 1e-6);
        check_fused<Pair::with_scalar<double>>(threads, 1e-15, /*same_ljd_bits=*/true);
    }
    const std::string s = Chains::with_scalar<double>(7).summary();
    INFO(s);
    CHECK(s.find("block 0 (ActNorm): [(4, 4, 4)] -> [(4, 4, 4)]  params 8  | fused pass 1 (1/6)") !=
          std::string::npos);
    CHECK(s.find("(Flatten): [(16, 2, 2)] -> [(64,)]  params 0  | fused pass 1 (5/6)") !=
          std::string::npos);
    CHECK(s.find("(LearnedElementwiseScaling): [(64,)] -> [(64,)]  params 64  | fused pass 2 (2/2)") !=
          std::string::npos);
    CHECK(s.find("fused passes: 2") != std::string::npos);
    const std::string lone = Lone::with_scalar<double>(7).summary();
    INFO(lone);
    CHECK(lone.find("fused pass") == std::string::npos);
    CHECK(lone.find("(Flatten): [(8,)] -> [(8,)]  params 0  | view, no pass") != std::string::npos);
}

TEST_CASE("switches: parity fixtures with element-wise chains give the same numbers unfused",
          "[switches][fusion][parity]") {
    // net_conv_inn_reduced: PermuteRandom -> IRevNetDownsampling; net_mixed_sequence:
    // PermuteRandom -> LearnedElementwiseScaling. In float, the chain's last-bit differences
    // pass through the inverses of eight modules after it (two of them scaling by exp): 1e-4,
    // below the parity suite's 2e-4 for float against FrEIA.
    fusion::check_fixture_fused<conv_inn::Net, double>("net_conv_inn_reduced", 1e-13);
    fusion::check_fixture_fused<conv_inn::Net, float>("net_conv_inn_reduced", 1e-6);
    fusion::check_fixture_fused<Mixed, double>("net_mixed_sequence", 1e-13);
    fusion::check_fixture_fused<Mixed, float>("net_mixed_sequence", 1e-4);
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
