// The module contract as a network sees it: prepare() once per parameter change, data
// initialisation that is all-or-nothing, calls that check every argument before anything runs,
// moved-from networks, memory spaces and module_ref. Independent truths: counters kept by test
// modules, parameters compared before and after, exact inverses.

#include "support/checks.hpp"

#include <atomic>
#include <thread>

#include <filesystem>

#include <inn/io/state_dict.hpp>
#include <inn/modules/actnorm.hpp>
#include <inn/modules/elementwise_scaling.hpp>
#include <inn/modules/permute_random.hpp>

namespace {

using namespace inn;
using test::max_rel_error;
using mat = row_matrix<double>;

/// Multiplies by a learned factor `a` (state_dict key "a"); counts prepare() calls and records
/// the thread that ran the last one.
struct CountingScale {
    static constexpr std::string_view name = "CountingScale";
    static inline std::atomic<int> prepares{0};
    static inline std::thread::id prepared_on{};

    static constexpr shape_result output_shapes(const signature& s) {
        if (auto r = expect_single_input(s, 1, 1); !r.ok()) return r;
        return returns({s.in()});
    }
    template <Scalar S, signature Sig>
    struct bind {
        static constexpr index_t D = Sig.in().size();
        parameter<S> a{tensor_shape{1}};
        S log_a = 0;  // the cache prepare() keeps

        explicit bind(generator&) { a.values[0] = S(2); }
        void prepare() {
            ++prepares;
            prepared_on = std::this_thread::get_id();
            if (!(a.values[0] > 0)) throw parameter_error("a", "must be positive");
            log_a = std::log(a.values[0]);
        }
        void forward(const run_args<S>& r) const {
            r.out[0].matrix(r.batch, D) = r.in[0].matrix(r.batch, D) * a.values[0];
            for (index_t b = 0; b < r.batch; ++b) r.ljd[b] += S(D) * log_a;
        }
        void inverse(const run_args<S>& r) const {
            r.out[0].matrix(r.batch, D) = r.in[0].matrix(r.batch, D) / a.values[0];
            for (index_t b = 0; b < r.batch; ++b) r.ljd[b] -= S(D) * log_a;
        }
        template <class V>
        void visit(V&& v, const std::string& prefix) {
            v(prefix + "a", a.ref());
        }
    };
};

/// Sets channel 0 to a constant (not invertible; it only feeds an ActNorm that must fail).
struct ConstantChannel {
    static constexpr shape_result output_shapes(const signature& s) { return returns({s.in()}); }
    template <Scalar S, signature Sig>
    struct bind {
        explicit bind(generator&) {}
        void forward(const run_args<S>& r) const {
            r.out[0].matrix(r.batch, Sig.in().size()) = r.in[0].matrix(r.batch, Sig.in().size());
            for (index_t b = 0; b < r.batch; ++b) r.out[0].row(b)[0] = S(1);
        }
        void inverse(const run_args<S>& r) const { forward(r); }
    };
};

constexpr signature vector_signature{make_ports({make_dims({2})}), {}};
constexpr signature vector3_signature{make_ports({make_dims({3})}), {}};

using Counted = SequenceINN<Shape<3>, CountingScale, PermuteRandom<>>::with_scalar<double>;

TEST_CASE("contract: prepare() runs once per parameter change, on the calling thread",
          "[contract]") {
    Counted net(1);
    const mat x = test::random_batch(4, 3, 1);
    CountingScale::prepares = 0;
    auto z = net.forward(x).z;
    net.forward(x);
    net.inverse(z);
    CHECK(CountingScale::prepares == 1);
    CHECK(CountingScale::prepared_on == std::this_thread::get_id());

    // Reading the parameters changes nothing; a visit that may write, module<K>() and an
    // explicit parameters_changed() each make the next call prepare again.
    (void)net.parameter_count();
    (void)net.summary();
    std::as_const(net).visit([](const std::string&, const tensor_ref<double>&) {});
    net.forward(x);
    CHECK(CountingScale::prepares == 1);
    net.visit([](const std::string& key, const tensor_ref<double>& t) {
        if (key.ends_with(".a")) t.real[0] = 4;
    });
    auto [z4, ljd4] = net.forward(x);
    CHECK(CountingScale::prepares == 2);
    CHECK(ljd4(0) == Approx(3 * std::log(4.0)));  // the cache follows the change
    net.module<0>()->a.values[0] = 0.5;
    net.forward(x);
    CHECK(CountingScale::prepares == 3);
    net.parameters_changed();
    net.forward(x);
    CHECK(CountingScale::prepares == 4);

    // With threads, prepare() still runs once, here, before the batch is split.
    net.set_threads(2);
    net.parameters_changed();
    const mat big = test::random_batch(64, 3, 2);
    net.forward(big);
    net.forward(big);
    CHECK(CountingScale::prepares == 5);
    CHECK(CountingScale::prepared_on == std::this_thread::get_id());
}

TEST_CASE("contract: parameters a module cannot run with are refused, naming node and key",
          "[contract]") {
    Counted net(1);
    const mat x = test::random_batch(4, 3, 1);
    net.module<0>()->a.values[0] = -1;
    CHECK_THROWS_AS(net.forward(x), parameter_error);
    CHECK_THROWS_WITH(net.forward(x), Catch::Contains("'module_list.0.a' must be positive") &&
                                          Catch::Contains("block 0 (CountingScale)"));
    try {
        net.prepare();
        FAIL("prepare() accepted a negative factor");
    } catch (const parameter_error& e) {
        CHECK(e.key() == "module_list.0.a");
    }
    net.module<0>()->a.values[0] = 3;
    CHECK_NOTHROW(net.forward(x));

    // A permutation is checked when it changes: duplicates, and a perm_inv that is not its
    // inverse, are refused before they are used.
    auto set = [&](std::vector<std::int64_t> perm, std::vector<std::int64_t> inv) {
        net.visit([&](const std::string& key, const tensor_ref<double>& t) {
            if (key.ends_with(".perm")) std::copy(perm.begin(), perm.end(), t.integer);
            if (key.ends_with(".perm_inv")) std::copy(inv.begin(), inv.end(), t.integer);
        });
    };
    set({0, 0, 2}, {0, 1, 2});
    CHECK_THROWS_WITH(net.forward(x), Catch::Contains("'module_list.1.perm' holds 0 twice"));
    set({1, 2, 0}, {1, 2, 0});
    CHECK_THROWS_WITH(net.forward(x),
                      Catch::Contains("'module_list.1.perm_inv' is not the inverse of 'perm'"));
    set({1, 2, 0}, {2, 0, 1});
    auto [z, ljd] = net.forward(x);
    CHECK(max_rel_error(net.inverse(z).x, x) < 1e-15);
}

TEST_CASE("contract: loading a permutation that is not one fails and changes nothing",
          "[contract][io]") {
    const auto dir = std::filesystem::temp_directory_path();
    const auto path = dir / "inn_contract_bad_perm.safetensors";
    Counted source(7);
    // A file with a duplicate index (a corrupt or hand-edited checkpoint).
    source.visit([](const std::string& key, const tensor_ref<double>& t) {
        if (key == "module_list.1.perm") t.integer[2] = t.integer[0];
    });
    save_safetensors(source, path);

    Counted net(1);
    auto snapshot = [&] {
        std::vector<double> reals;
        std::vector<std::int64_t> ints;
        std::as_const(net).visit([&](const std::string&, const tensor_ref<double>& t) {
            for (std::int64_t i = 0; i < t.shape.numel(); ++i) {
                if (t.real) reals.push_back(t.real[i]);
                if (t.integer) ints.push_back(t.integer[i]);
            }
        });
        return std::pair{reals, ints};
    };
    const mat x = test::random_batch(4, 3, 9);
    const mat before_z = net.forward(x).z;
    const auto before = snapshot();
    CHECK_THROWS_AS(load_safetensors(net, path), io_error);
    CHECK_THROWS_WITH(load_safetensors(net, path),
                      Catch::Contains("module_list.1.perm") && Catch::Contains("twice"));
    CHECK(snapshot() == before);
    CHECK(net.forward(x).z == before_z);
    std::filesystem::remove(path);
}

using Normed = SequenceINN<Shape<3>, ActNorm, LearnedElementwiseScaling<>>::with_scalar<double>;
using TwoNorms = SequenceINN<Shape<3>, ActNorm, ConstantChannel, ActNorm>::with_scalar<double>;

TEST_CASE("contract: a call that fails on an argument has changed nothing", "[contract]") {
    Normed net(2);
    const mat x = test::random_batch(5, 3, 3);
    mat z(5, 3);
    std::vector<double> short_ljd(4);
    CHECK_THROWS_AS(net.forward_into(x, z, std::span<double>(short_ljd)), data_error);
    CHECK_FALSE(net.module<0>()->initialized());  // ActNorm did not see the data
    const mat c = test::random_batch(4, 3, 4);
    std::vector<double> wrong_output(7);
    Eigen::VectorXd ljd(5);
    CHECK_THROWS_AS(net.forward_into(x, std::span<double>(wrong_output), ljd), data_error);
    CHECK_FALSE(net.module<0>()->initialized());
    // The first call that succeeds initialises it.
    net.forward_into(x, z, ljd);
    CHECK(net.module<0>()->initialized());
}

TEST_CASE("contract: data initialisation is all-or-nothing", "[contract][actnorm]") {
    SECTION("a failed ActNorm initialisation leaves its state as it was") {
        using B = ActNorm::bind<double, vector3_signature>;
        generator g(0);
        B m(g);
        m.loc.values << 1, 2, 3;
        m.log_scale.values << 4, 5, 6;
        mat data = test::random_batch(6, 3, 5);
        data.col(2).setConstant(7);  // channel 2 has no spread: FrEIA's ValueError
        CHECK_THROWS_AS(m.initialize(cview<double>(data.data(), 3), 6), std::invalid_argument);
        CHECK(m.loc.values == Eigen::Vector3d(1, 2, 3));
        CHECK(m.log_scale.values == Eigen::Vector3d(4, 5, 6));
        CHECK_FALSE(m.initialized());
        const mat one = test::random_batch(1, 3, 6);
        CHECK_THROWS_AS(m.initialize(cview<double>(one.data(), 3), 1), std::invalid_argument);
        CHECK(m.loc.values == Eigen::Vector3d(1, 2, 3));
    }
    SECTION("a call that fails in a later module undoes the initialisation of earlier ones") {
        TwoNorms net(3);
        const mat x = test::random_batch(6, 3, 7);
        const Eigen::VectorXd loc0 = net.module<0>()->loc.values;
        CHECK_THROWS_AS(net.forward(x), std::invalid_argument);  // the second ActNorm: constant
        CHECK_FALSE(net.module<0>()->initialized());
        CHECK(net.module<0>()->loc.values == loc0);
        CHECK_FALSE(net.module<2>()->initialized());
    }
}

TEST_CASE("contract: a moved-from network refuses every call", "[contract]") {
    Counted a(1);
    const mat x = test::random_batch(4, 3, 1);
    const mat z = a.forward(x).z;
    Counted b = std::move(a);
    CHECK(a.moved_from());
    CHECK_THROWS_AS(a.forward(x), usage_error);
    CHECK_THROWS_AS(a.inverse(z), usage_error);
    CHECK_THROWS_WITH(a.forward(x), Catch::Contains("moved from"));
    mat out(4, 3);
    Eigen::VectorXd ljd(4);
    CHECK_THROWS_AS(a.forward_into(x, out, ljd), usage_error);
    CHECK_THROWS_AS(a.reserve(8), usage_error);
    CHECK_THROWS_AS(a.set_threads(2), usage_error);
    CHECK_THROWS_AS(a.visit([](const std::string&, const tensor_ref<double>&) {}), usage_error);
    CHECK_THROWS_AS(a.summary(), usage_error);
    const Counted copy = a;  // a copy of nothing is nothing
    CHECK(copy.moved_from());
    // The network it moved to works, and assigning one makes the moved-from usable again.
    CHECK(b.forward(x).z == z);
    a = Counted(1);
    CHECK(a.forward(x).z == z);
}

/// A module in a second memory space: binds for `test_space` as well as the host.
struct test_space {
    static constexpr std::string_view name = "test_space";
};
struct SpaceAware {
    static constexpr shape_result output_shapes(const signature& s) { return returns({s.in()}); }
    template <Scalar S, signature Sig, MemorySpace Space = host>
    struct bind {
        explicit bind(generator&) {}
        void forward(const run_args<S, Space>&) const {}
        void inverse(const run_args<S, Space>&) const {}
    };
};

/// A host-only module given a test_space implementation from outside (space_binding).
struct HostOnly {
    static constexpr shape_result output_shapes(const signature& s) { return returns({s.in()}); }
    template <Scalar S, signature Sig>
    struct bind {
        explicit bind(generator&) {}
        void forward(const run_args<S>&) const {}
        void inverse(const run_args<S>&) const {}
    };
};
template <Scalar S, signature Sig>
struct host_only_in_test_space {
    explicit host_only_in_test_space(generator&) {}
    void forward(const run_args<S, test_space>&) const {}
    void inverse(const run_args<S, test_space>&) const {}
};
}  // namespace
template <>
struct inn::space_binding<HostOnly, test_space> {
    template <Scalar S, signature Sig>
    using bind = host_only_in_test_space<S, Sig>;
};
namespace {

TEST_CASE("contract: modules are bound for a memory space when they provide it", "[contract]") {
    using Net = SequenceINN<Shape<2>, SpaceAware>;
    using D = Net::description;
    static constexpr signature sig = vector_signature;
    static_assert(D::plan.sig[1] == sig);
    static_assert(std::is_same_v<graph::module_at<float, D, 0, test_space>,
                                 SpaceAware::bind<float, sig, test_space>>);
    static_assert(std::is_same_v<graph::module_at<float, D, 0>, SpaceAware::bind<float, sig, host>>);
    // A module with only the two-parameter bind runs on the host.
    static_assert(std::is_same_v<bind_in<CountingScale, float, sig>, CountingScale::bind<float, sig>>);
    static_assert(std::is_void_v<bind_in<CountingScale, float, sig, test_space>>);
    static_assert(BoundModule<CountingScale::bind<float, sig>, float>);
    // ... or when a backend provides it from outside.
    static_assert(std::is_same_v<bind_in<HostOnly, float, sig, test_space>,
                                 host_only_in_test_space<float, sig>>);
    static_assert(std::is_same_v<bind_in<HostOnly, float, sig>, HostOnly::bind<float, sig>>);
    static_assert(BoundModule<host_only_in_test_space<float, sig>, float, test_space>);
    SUCCEED();
}

TEST_CASE("contract: module_ref assigns the state of a module of the same shape", "[contract]") {
    Counted a(1), b(2);
    b.module<0>()->a.values[0] = 5;
    a.module<0>() = b.module<0>();
    CHECK(a.module<0>()->a.values[0] == 5);
    a.module<1>() = b.module<1>();
    CHECK(a.module<1>()->perm.values == b.module<1>()->perm.values);
    const mat x = test::random_batch(4, 3, 8);
    CHECK(a.forward(x).z == b.forward(x).z);
}

}  // namespace
