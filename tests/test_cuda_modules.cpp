// User-written modules on the CUDA backend: the device twins of examples/custom_modules.hpp
// (examples/custom_modules_cuda.hpp) run through inn::cuda::network, in a chain and in FrEIA's
// README graph (two inputs, a condition, a conditional swap), against the host network. Both
// sides compute the same IEEE operations (products and quotients by 1 or 2, copies), so the
// results must agree exactly. Built with INN_TEST_CUDA (thrust's host system here, the GPU when
// compiled by nvcc).

#include <catch2/catch.hpp>

#include <cstdlib>
#include <vector>

#include "../examples/custom_modules_cuda.hpp"
#include "support/device_parity.hpp"

namespace {

using example::ConditionalSwap;
using example::FixedRandomElementwiseMultiply;

struct in1 : inn::InputNode<inn::Shape<3>> {};
struct in2 : inn::InputNode<inn::Shape<3>> {};
struct cond : inn::ConditionNode<inn::Shape<1>> {};
struct mult1 : inn::Node<FixedRandomElementwiseMultiply, in1> {};
struct swap : inn::Node<ConditionalSwap, inn::inputs<mult1, in2>, inn::conditions<cond>> {};
struct mult2 : inn::Node<FixedRandomElementwiseMultiply, inn::out<swap, 1>> {};
struct out1 : inn::OutputNode<inn::out<swap, 0>> {};
struct out2 : inn::OutputNode<mult2> {};
using Graph = inn::GraphINN<in1, in2, cond, mult1, swap, mult2, out1, out2>::with_scalar<double>;

using Chain = inn::SequenceINN<inn::Shape<5>,
                               inn::Repeat<3, FixedRandomElementwiseMultiply>>::with_scalar<double>;

template <class M> M random_matrix(inn::index_t rows, inn::index_t cols, unsigned seed) {
    std::srand(seed);
    return M::Random(rows, cols);
}

} // namespace

TEST_CASE("cuda: custom modules run on the device as on the host", "[cuda][custom]") {
    using S = double;
    using mat = inn::row_matrix<S>;
    static_assert(inn::cuda::runs_on_device<Chain> && inn::cuda::runs_on_device<Graph>);

    auto cols = [](inn::index_t n) { return [n](int) { return n; }; };

    SECTION("chain of FixedRandomElementwiseMultiply") {
        Chain host(3);
        inn::cuda::network<Chain> g(host);
        const mat x = random_matrix<mat>(7, 5, 1);
        auto [z, ljd] = host.forward(x);
        auto [dz, dljd] = inn::test::run_on_device<true, Chain, S>(g, {x}, {}, 1, cols(5));
        REQUIRE(dz.size() == 1);
        CHECK(dz[0] == z);
        CHECK(dljd == ljd);
        // The factors are in {1, 2}, not all 1: the map is not the identity.
        CHECK(z != x);
        auto [x_rev, ljd_rev] = host.inverse(z);
        auto [dx, dljd_rev] = inn::test::run_on_device<false, Chain, S>(g, dz, {}, 1, cols(5));
        CHECK(dx[0] == x_rev);
        CHECK(dx[0] == x);
        CHECK(dljd_rev == ljd_rev);
    }

    SECTION("README graph with ConditionalSwap") {
        Graph host(5);
        inn::cuda::network<Graph> g(host);
        g.reserve(6);
        const mat a = random_matrix<mat>(6, 3, 2), b = random_matrix<mat>(6, 3, 3);
        mat c(6, 1);
        c << 1, -1, 0.5, -2, 0, 3; // both routes, and 0 (swapped: not positive)
        auto [z, ljd] = host.forward(inn::inputs(a, b), inn::conditions(c));
        auto [dz, dljd] = inn::test::run_on_device<true, Graph, S>(g, {a, b}, {c}, 2, cols(3));
        REQUIRE(dz.size() == 2);
        CHECK(dz[0] == z[0]);
        CHECK(dz[1] == z[1]);
        CHECK(dljd == ljd);
        auto [dx, dljd_rev] = inn::test::run_on_device<false, Graph, S>(g, dz, {c}, 2, cols(3));
        auto [xs, ljd_rev] = host.inverse(inn::inputs(z[0], z[1]), inn::conditions(c));
        CHECK(dx[0] == xs[0]);
        CHECK(dx[1] == xs[1]);
        CHECK(dx[0] == a);
        CHECK(dx[1] == b);
        CHECK(dljd_rev == ljd_rev);
    }
}
