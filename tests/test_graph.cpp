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
#include <inn/modules/split.hpp>

// Everything in this file has internal linkage: test files reuse names (subnet aliases,
// node structs) that would otherwise collide across translation units (ODR).
namespace {

using namespace inn;

template <int I, int O>
using subnet_fc_graph = nn::Sequential<nn::Linear<I, 16>, nn::Tanh, nn::Linear<16, O>>;

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
// A node conditioned on a tensor computed inside the graph (FrEIA §2.3.5): the split's second
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

}  // namespace
