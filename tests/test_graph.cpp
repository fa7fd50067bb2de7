// The containers: planning, shapes, routing of conditions, the inverse as a type, summaries,
// state_dict prefixes and the jac flag. Independent truths: exact inverses, finite-difference
// log-dets and hand-computed shapes and orders.

#include "support/checks.hpp"

#include <inn/modules/actnorm.hpp>
#include <inn/modules/all_in_one_block.hpp>
#include <inn/modules/concat.hpp>
#include <inn/modules/coupling/glow.hpp>
#include <inn/modules/coupling/one_sided.hpp>
#include <inn/modules/permute_random.hpp>
#include <inn/modules/reshape.hpp>
#include <inn/modules/split.hpp>

// Everything in this file has internal linkage: test files reuse names (subnets,
// node structs) that would otherwise collide across translation units (ODR).
namespace {

using namespace inn;

struct subnet_fc_graph {
    template <int I, int O>
    using net = nn::Sequential<nn::Linear<I, 16>, nn::Tanh, nn::Linear<16, O>>;
};

namespace readme {
// The multi-input graph of FrEIA's documentation (target API), at small widths.
struct in1 : InputNode<Shape<10>> {};
struct in2 : InputNode<Shape<4>> {};
struct cond : ConditionNode<Shape<3>> {};
struct perm : Node<PermuteRandom<>, in1> {};
struct split1 : Node<Split<>, perm> {};
struct split2 : Node<Split<>, out<split1, 1>> {};
struct actnorm : Node<ActNorm, out<split2, 1>> {};
struct concat1 : Node<Concat<>, inputs<actnorm, in2>> {};
struct affine : Node<AffineCouplingOneSided<subnet_fc_graph>, concat1, conditions<cond>> {};
struct concat2 : Node<Concat<>, inputs<out<split2, 0>, affine>> {};
struct output1 : OutputNode<out<split1, 0>> {};
struct output2 : OutputNode<concat2> {};
using Net = GraphINN<in1, in2, cond, perm, split1, split2, actnorm, concat1, affine, concat2,
                     output1, output2>::with_scalar<double>;
}  // namespace readme

TEST_CASE("graph: shapes are inferred at compile time", "[graph]") {
    using Net = readme::Net;
    static_assert(Net::output_shape<readme::split1, 0> == Shape<5>{});
    static_assert(Net::output_shape<readme::split2, 1> == Shape<2>{});
    static_assert(Net::output_shape<readme::concat1> == Shape<6>{});
    static_assert(Net::output_shape<readme::output2> == Shape<9>{});
    static_assert(Net::n_inputs == 2 && Net::n_outputs == 2 && Net::n_conditions == 1);
    static_assert(Net::n_modules == 7);
    static_assert(Net::input_dims(1) == Shape<4>::value);
    static_assert(Net::condition_dims(0) == Shape<3>::value);
    static_assert(Net::inversion == inverse_kind::exact);
    SUCCEED();
}

TEST_CASE("graph: the README graph inverts exactly, with conditions", "[graph]") {
    readme::Net net(5);
    auto x1 = test::random_batch(9, 10, 1), x2 = test::random_batch(9, 4, 2);
    auto c = test::random_batch(9, 3, 3);
    auto [z, ljd] = net.forward(inputs(x1, x2), conditions(c));
    auto [x, ljd_rev] = net.inverse(inputs(z[0], z[1]), conditions(c));
    CHECK(test::max_rel_error(x[0], x1) < 1e-12);
    CHECK(test::max_rel_error(x[1], x2) < 1e-12);
    CHECK((ljd + ljd_rev).cwiseAbs().maxCoeff() < 1e-12);
    // The condition matters.
    auto [z2, ljd2] = net.forward(inputs(x1, x2), conditions(row_matrix<double>(c * 2)));
    CHECK((z2[1] - z[1]).cwiseAbs().maxCoeff() > 1e-3);
    // output1 is the first half of the permuted in1: a pure permutation of x1's entries.
    for (Eigen::Index b = 0; b < 9; ++b)
        for (Eigen::Index k = 0; k < 5; ++k) CHECK((x1.row(b).array() == z[0](b, k)).any());
}

TEST_CASE("graph: module order and state_dict prefixes", "[graph]") {
    readme::Net net;
    // Forward order follows the wiring; ties keep declaration order.
    CHECK(readme::Net::module_node_name(0) == "perm");
    CHECK(readme::Net::module_node_name(3) == "actnorm");
    CHECK(readme::Net::module_node_name(6) == "concat2");
    std::vector<std::string> keys;
    net.visit([&](const std::string& k, const tensor_ref<double>&) { keys.push_back(k); });
    CHECK(keys.front() == "module_list.0.perm");
    CHECK(std::find(keys.begin(), keys.end(), "module_list.5.subnet.0.weight") != keys.end());
    net.set_state_dict_prefix<readme::affine>("module_list.2");
    keys.clear();
    net.visit([&](const std::string& k, const tensor_ref<double>&) { keys.push_back(k); });
    CHECK(std::find(keys.begin(), keys.end(), "module_list.2.subnet.0.weight") != keys.end());
}

namespace cond_routing {
// A node conditioned on a tensor computed inside the graph (as in FrEIA): the split's second
// half conditions the coupling on the first half. In the inverse, the condition is the buffer
// that the Concat's inverse produces first.
struct x : InputNode<Shape<6>> {};
struct split : Node<Split<>, x> {};
struct coupling : Node<GLOWCouplingBlock<subnet_fc_graph>, out<split, 0>, conditions<out<split, 1>>> {};
struct join : Node<Concat<>, inputs<coupling, out<split, 1>>> {};
struct z : OutputNode<join> {};
using Net = GraphINN<x, split, coupling, join, z>::with_scalar<double>;
}  // namespace cond_routing

TEST_CASE("graph: conditions taken from inside the graph are routed in reverse", "[graph]") {
    cond_routing::Net net(2);
    auto x = test::random_batch(5, 6);
    auto [z, ljd] = net.forward(x);
    auto [xr, ljd_rev] = net.inverse(z);
    CHECK(test::max_rel_error(xr, x) < 1e-12);
    CHECK((ljd + ljd_rev).cwiseAbs().maxCoeff() < 1e-12);
    CHECK(test::max_rel_error(ljd.transpose(), test::numerical_log_det(net, x).transpose()) < 1e-6);
    // The conditioning half passes through unchanged.
    CHECK(test::max_rel_error(z.rightCols(3), x.rightCols(3)) == 0);
}

TEST_CASE("graph: the inverse is a network of its own", "[graph]") {
    readme::Net net(4);
    auto x1 = test::random_batch(3, 10, 1), x2 = test::random_batch(3, 4, 2);
    auto c = test::random_batch(3, 3, 3);
    auto [z, ljd] = net.forward(inputs(x1, x2), conditions(c));
    using Sampler = inverse_t<readme::Net>;
    static_assert(Sampler::n_inputs == 2 && Sampler::input_dims(1) == Shape<9>::value);
    static_assert(std::is_same_v<inverse_t<Sampler>, readme::Net>);
    Sampler sampler(net);  // shares the parameter layout; holds a copy of the values
    auto [x, ljd_s] = sampler.forward(inputs(z[0], z[1]), conditions(c));
    CHECK(test::max_rel_error(x[0], x1) < 1e-12);
    CHECK((ljd + ljd_s).cwiseAbs().maxCoeff() < 1e-12);
    // Same state_dict keys in both directions.
    std::vector<std::string> a, b;
    net.visit([&](const std::string& k, const tensor_ref<double>&) { a.push_back(k); });
    sampler.visit([&](const std::string& k, const tensor_ref<double>&) { b.push_back(k); });
    CHECK(a == b);
}

TEST_CASE("graph: summary lists nodes, shapes and parameter counts", "[graph]") {
    readme::Net net;
    std::string s = net.summary();
    INFO(s);
    CHECK(s.find("2 input(s), 2 output(s), 1 condition(s), 7 module(s)") != std::string::npos);
    CHECK(s.find("module_list.4  concat1: [(2,), (4,)] -> [(6,)]") != std::string::npos);
    // AffineCouplingOneSided on 6 with condition 3: subnet (3 + 3 -> 16 -> 2 * 3).
    CHECK(s.find("affine: [(6,)] -> [(6,)] | conditions [(3,)]  params " +
                 std::to_string((6 * 16 + 16) + (16 * 6 + 6))) != std::string::npos);
    CHECK(net.parameter_count() == (6 * 16 + 16) + (16 * 6 + 6) + 2 * 2);
}

TEST_CASE("sequence: conditions by index, Repeat, jac flag", "[sequence]") {
    using Net = SequenceINN<Shape<4>, Conditions<Shape<2>, Shape<3>>,
                            Repeat<2, Conditioned<AllInOneBlock<subnet_fc_graph>, 1>,
                                   Conditioned<GLOWCouplingBlock<subnet_fc_graph>, 0>>,
                            PermuteRandom<>>::with_scalar<double>;
    static_assert(Net::n_modules == 5 && Net::n_conditions == 2);
    Net net(9);
    auto x = test::random_batch(6, 4), c0 = test::random_batch(6, 2, 2), c1 = test::random_batch(6, 3, 3);
    auto [z, ljd] = net.forward(x, conditions(c0, c1));
    auto [xr, ljd_rev] = net.inverse(z, conditions(c0, c1));
    CHECK(test::max_rel_error(xr, x) < 1e-12);
    CHECK((ljd + ljd_rev).cwiseAbs().maxCoeff() < 1e-12);
    CHECK(test::max_rel_error(ljd.transpose(),
                              test::numerical_log_det(net, x, conditions(c0, c1)).transpose()) < 1e-6);
    // jac = false gives the same outputs.
    auto [z2, ljd2] = net.forward(x, conditions(c0, c1), false);
    CHECK(test::max_rel_error(z2, z) == 0);
    // Summary names blocks with their FrEIA class.
    CHECK(net.summary().find("block 1 (GLOWCouplingBlock)") != std::string::npos);
}

TEST_CASE("sequence: batch size 1 and an empty chain", "[sequence]") {
    SequenceINN<Shape<3>>::with_scalar<double> identity;
    auto x = test::random_batch(1, 3);
    auto [z, ljd] = identity.forward(x);
    CHECK(z == x);
    CHECK(ljd(0) == 0);
}


// ---- memory plan: views and shared buffers (graph/memory_plan.hpp) --------------------------

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
struct keep : Node<Concat<>, inputs<a2, out<split, 1>>> {};       // the split's order
struct swap : Node<Concat<>, inputs<out<split, 1>, a2>> {};       // the other order
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

template <class Net, class Node>
constexpr bool is_view() {
    constexpr int i = graph::index_in<Node, typename Net::description>();
    static_assert(i >= 0);
    return graph::executor<double, typename Net::description>::memory.is_view[i];
}

}  // namespace views

TEST_CASE("memory plan: Flatten, Reshape, Split and Concat become views where that is safe",
          "[graph][memory]") {
    using namespace views;
    // Split and Concat in the same order: both views, z is x's memory.
    static_assert(is_view<Keep, split>());
    static_assert(is_view<Keep, keep>());
    // The Concat in the other order cannot be laid out in the split's memory: it copies.
    static_assert(is_view<Swap, split>());
    static_assert(!is_view<Swap, swap>());
    // b1 reads the split's first half and would write its output into the same columns.
    static_assert(is_view<InPlace, split_y>());
    static_assert(!is_view<InPlace, in_place_y>());
    // In a chain every reshape is a view.
    static_assert(graph::executor<double, Chain::description>::memory.n_views() == 3);
    // Views and sharing make the buffers smaller than one per connection.
    static_assert(Keep::workspace_bytes(1) <
                 Keep::unshared_buffer_bytes(1) +
                     index_t(sizeof(double)) * graph::executor<double, Keep::description>::scratch_size(1));
    // The same numbers with views and sharing switched off: test_benchmark_switches.cpp.
}


TEST_CASE("threads: a batch split across two threads gives the one-thread numbers",
          "[graph][threads]") {
    using Chain = SequenceINN<Shape<6>, Conditions<Shape<2>>,
                              Repeat<3, Conditioned<AllInOneBlock<subnet_fc_graph,
                                                                  {.permute_soft = true}>,
                                                    0>>>::with_scalar<double>;
    Chain net(3);
    for (index_t batch : {1, 31, 32, 100}) {
        auto x = test::random_batch(batch, 6, 5);
        auto c = test::random_batch(batch, 2, 6);
        net.set_threads(1);
        auto [z1, ljd1] = net.forward(x, conditions(c));
        net.set_threads(2);
        CHECK(net.threads() == 2);
        auto [z2, ljd2] = net.forward(x, conditions(c));
        auto [x2, ljd_inv] = net.inverse(z2, conditions(c));
        INFO("batch " << batch);
        CHECK(test::max_rel_error(z2, z1) < 1e-14);
        CHECK(test::max_rel_error(ljd2, ljd1) < 1e-14);
        CHECK(test::max_rel_error(x2, x) < 1e-12);
        CHECK(test::max_rel_error(ljd_inv, (-ljd1).eval()) < 1e-12);
    }
    // A copy has its own workers, as many.
    Chain copy = net;
    CHECK(copy.threads() == 2);
    // A graph with views splits the same way.
    views::Keep g(4), g2(4);
    g2.set_threads(2);
    auto x = test::random_batch(64, 8, 9);
    auto [z1, ljd1] = g.forward(x);
    auto [z2, ljd2] = g2.forward(x);
    CHECK(test::max_rel_error(z2, z1) < 1e-14);
    CHECK(test::max_rel_error(ljd2, ljd1) < 1e-14);
}

}  // namespace
