// Threads: what set_threads(n) promises when something goes wrong, and the supported patterns
// of concurrent use. A separate executable (inn_thread_tests), built with
// INN_CHECK_CONCURRENT_CALLS=1 and, in CI, also under ThreadSanitizer.
//
// Supported: one network per thread (copies), or one network whose batches are split by
// set_threads(n). Not supported: two calls entering one network at once; the call guard turns
// that into a usage_error.

#include "support/checks.hpp"

#include <atomic>
#include <limits>
#include <thread>
#include <vector>

#include <inn/modules/all_in_one_block.hpp>
#include <inn/modules/gaussian_mixture.hpp>
#include <inn/modules/orthogonal.hpp>
#include <inn/modules/permute_random.hpp>

#if !INN_CHECK_CONCURRENT_CALLS
#error "inn_thread_tests must be built with INN_CHECK_CONCURRENT_CALLS=1"
#endif

namespace {

using namespace inn;
using test::max_rel_error;
using mat = row_matrix<double>;

namespace gmm_graph {
struct x : InputNode<Shape<4>> {};
struct w : ConditionNode<Shape<3>> {};
struct mu : ConditionNode<Shape<3, 4>> {};
struct U : ConditionNode<Shape<3, 10>> {};
struct i : ConditionNode<Shape<1>> {};
struct gmm : Node<GaussianMixtureModel, x, conditions<w, mu, U, i>> {};
struct z : OutputNode<gmm> {};
using Net = GraphINN<x, w, mu, U, i, gmm, z>::with_scalar<double>;
}  // namespace gmm_graph

TEST_CASE("threads: an exception in any slice reaches the caller, with the caller's sample",
          "[threads]") {
    gmm_graph::Net net;
    net.set_threads(2);
    const index_t B = 64;  // two slices of 32 samples
    const mat x = test::random_batch(B, 4, 1);
    const mat w = mat::Constant(B, 3, 1.0 / 3);
    const mat mu = test::random_batch(B, 12, 2);
    const mat U = 0.5 * test::random_batch(B, 30, 3);
    mat idx = mat::Zero(B, 1);
    const auto good = net.forward(x, conditions(w, mu, U, idx));

    for (index_t bad_row : {60, 3, 32}) {  // the worker's slice, the caller's, a slice start
        INFO("bad sample " << bad_row);
        mat bad = idx;
        bad(bad_row, 0) = 7;
        try {
            net.forward(x, conditions(w, mu, U, bad));
            FAIL("an out-of-range component index was accepted");
        } catch (const sample_error& e) {
            CHECK(e.sample() == bad_row);
            CHECK_THAT(e.what(), Catch::Contains("node 'gmm': sample " + std::to_string(bad_row) +
                                                     ": the GaussianMixtureModel component index "
                                                     "is 7, expected an integer in [0, 3)"));
        }
    }
    // Both bad: the lower slice's error is the one reported, whatever finishes first.
    mat two = idx;
    two(5, 0) = two(50, 0) = -1;
    CHECK_THROWS_WITH(net.forward(x, conditions(w, mu, U, two)), Catch::Contains("sample 5:"));
    // The workers are still there and the network still computes the same numbers.
    const auto again = net.forward(x, conditions(w, mu, U, idx));
    CHECK(again.z == good.z);
    CHECK(again.log_jac_det == good.log_jac_det);
}

using PermNet = SequenceINN<Shape<40>, PermuteRandom<>, PermuteRandom<>>::with_scalar<double>;
struct fc_threads {
    template <int In, int Out>
    using net = nn::Sequential<nn::Linear<In, 16>, nn::ReLU, nn::Linear<16, Out>>;
};
using AioNet = SequenceINN<Shape<6>, Repeat<2, AllInOneBlock<fc_threads>>>::with_scalar<double>;
using HouseNet =
    SequenceINN<Shape<6>, HouseholderPerm<HouseholderPermOptions{.n_reflections = 3}>>::
        with_scalar<double>;

TEST_CASE("threads: parameters are checked and caches refreshed before the batch is split",
          "[threads]") {
    SECTION("a bad permutation fails once, on the caller's thread, before any slice runs") {
        PermNet net(1);
        net.set_threads(2);
        net.visit([](const std::string& key, const tensor_ref<double>& t) {
            if (key == "module_list.1.perm") t.integer[39] = 40;
        });
        const mat x = test::random_batch(64, 40, 4);
        CHECK_THROWS_AS(net.forward(x), parameter_error);
        CHECK_THROWS_WITH(net.forward(x), Catch::Contains("module_list.1.perm"));
    }
    SECTION("AllInOneBlock with a NaN global scale: caches refreshed once, before the split") {
        AioNet one(3), two(3);
        two.set_threads(2);
        for (auto* net : {&one, &two})
            net->visit([](const std::string& key, const tensor_ref<double>& t) {
                if (key == "module_list.1.global_scale")
                    t.real[2] = std::numeric_limits<double>::quiet_NaN();
            });
        const mat x = test::random_batch(64, 6, 6);
        for (int call = 0; call < 3; ++call) {
            const auto [z1, ljd1] = one.forward(x);
            const auto [z2, ljd2] = two.forward(x);
            // Channel 2's scale is NaN: its outputs after the second block and every log-det are
            // NaN (not hidden), the same in both networks.
            CHECK(ljd1.array().isNaN().all());
            CHECK(ljd2.array().isNaN().all());
            CHECK((z1.array().isNaN() == z2.array().isNaN()).all());
            CHECK(z1.array().isNaN().any());
        }
    }
    SECTION("a NaN parameter recomputes nothing in the workers (no data race)") {
        HouseNet one(2), two(2);
        two.set_threads(2);
        for (auto* net : {&one, &two})
            net->visit([](const std::string& key, const tensor_ref<double>& t) {
                if (key.ends_with("Vs")) t.real[4] = std::numeric_limits<double>::quiet_NaN();
            });
        const mat x = test::random_batch(64, 6, 5);
        for (int call = 0; call < 3; ++call) {
            const mat z1 = one.forward(x).z, z2 = two.forward(x).z;
            // The reflection with the NaN makes every output NaN, in both networks alike.
            CHECK(z1.array().isNaN().all());
            CHECK(z2.array().isNaN().all());
        }
    }
}

/// Holds its caller inside forward() until released: makes two calls overlap for certain.
struct Gate {
    static inline std::atomic<bool> inside{false};
    static inline std::atomic<bool> release{false};
    static constexpr shape_result output_shapes(const signature& s) { return returns({s.in()}); }
    template <Scalar S, signature Sig>
    struct bind {
        explicit bind(generator&) {}
        void forward(const run_args<S>& r) const {
            inside = true;
            while (!release) std::this_thread::yield();
            r.out[0].matrix(r.batch, Sig.in().size()) = r.in[0].matrix(r.batch, Sig.in().size());
        }
        void inverse(const run_args<S>& r) const { forward(r); }
    };
};

TEST_CASE("threads: two calls entering one network at once are refused", "[threads]") {
    using Net = SequenceINN<Shape<3>, Gate>::with_scalar<double>;
    Net net;
    const mat x = test::random_batch(4, 3, 6);
    Gate::inside = false;
    Gate::release = false;
    mat first;
    std::thread t([&] { first = net.forward(x).z; });
    while (!Gate::inside) std::this_thread::yield();
    CHECK_THROWS_AS(net.forward(x), usage_error);
    CHECK_THROWS_WITH(net.inverse(x), Catch::Contains("two calls entered one network"));
    Gate::release = true;
    t.join();
    CHECK(first == x);
    CHECK(net.forward(x).z == x);  // free again
}

TEST_CASE("threads: one network per thread, and one network split across threads",
          "[threads]") {
    PermNet proto(3);
    const mat x = test::random_batch(256, 40, 7);
    const mat want = proto.forward(x).z;
    std::vector<PermNet> nets(4, proto);
    std::vector<mat> got(4);
    std::vector<std::thread> threads;
    for (std::size_t i = 0; i < 4; ++i)
        threads.emplace_back([&, i] {
            nets[i].set_threads(i % 2 == 0 ? 1 : 2);
            for (int k = 0; k < 20; ++k) got[i] = nets[i].forward(x).z;
        });
    for (auto& t : threads) t.join();
    for (const auto& z : got) CHECK(z == want);
}

}  // namespace
