// FrEIA README's custom modules, ported (examples/custom_modules.hpp), in both containers.

#include "../examples/custom_modules.hpp"
#include "support/backward_checks.hpp"
#include "support/checks.hpp"
#include "support/gradcheck.hpp"

// Everything in this file has internal linkage: test files reuse names (subnets,
// node structs) that would otherwise collide across translation units (ODR).
namespace {

using namespace inn;
using example::ConditionalSwap;
using example::FixedRandomElementwiseMultiply;

namespace readme_graph {
// FrEIA README: two inputs, one condition, a conditional swap between two multiplies.
struct in1 : InputNode<Shape<2>> {};
struct in2 : InputNode<Shape<2>> {};
struct cond : ConditionNode<Shape<1>> {};
struct mult1 : Node<FixedRandomElementwiseMultiply, in1> {};
struct swap : Node<ConditionalSwap, inputs<mult1, in2>, conditions<cond>> {};
struct mult2 : Node<FixedRandomElementwiseMultiply, out<swap, 1>> {};
struct out1 : OutputNode<out<swap, 0>> {};
struct out2 : OutputNode<mult2> {};
using Net = GraphINN<in1, in2, cond, mult1, swap, mult2, out1, out2>::with_scalar<double>;
}  // namespace readme_graph

TEST_CASE("custom modules: FixedRandomElementwiseMultiply in a SequenceINN", "[custom]") {
    using Net = SequenceINN<Shape<5>, Repeat<3, FixedRandomElementwiseMultiply>>::with_scalar<double>;
    Net net(7);
    auto x = test::random_batch(4, 5);
    auto [z, ljd] = net.forward(x);
    // Every factor is 1 or 2, so z / x is a product of three such factors per channel.
    for (Eigen::Index b = 0; b < 4; ++b)
        for (Eigen::Index k = 0; k < 5; ++k) {
            double r = z(b, k) / x(b, k);
            CHECK((r == 1 || r == 2 || r == 4 || r == 8));
        }
    auto [xr, ljd_rev] = net.inverse(z);
    CHECK(test::max_rel_error(xr, x) < 1e-14);
    CHECK((ljd + ljd_rev).cwiseAbs().maxCoeff() < 1e-14);
    CHECK(test::max_rel_error(ljd.transpose(), test::numerical_log_det(net, x).transpose()) < 1e-7);
}

TEST_CASE("custom modules: ConditionalSwap routes by the condition in a GraphINN", "[custom]") {
    using Net = readme_graph::Net;
    static_assert(Net::output_shape<readme_graph::out2> == Shape<2>{});
    static_assert(Net::n_inputs == 2 && Net::n_outputs == 2 && Net::n_conditions == 1);
    Net net(3);
    auto x1 = test::random_batch(6, 2, 1), x2 = test::random_batch(6, 2, 2);
    row_matrix<double> c(6, 1);
    c << 1, -1, 0.5, -2, 0, 3;
    auto [z, ljd] = net.forward(inputs(x1, x2), conditions(c));
    for (Eigen::Index b = 0; b < 6; ++b) {
        bool keep = c(b, 0) > 0;
        // Output 0 is the swap's first output: mult1(x1) where kept, else x2.
        if (!keep) CHECK(z[0].row(b).isApprox(x2.row(b), 0.0));
        if (keep) CHECK(!z[0].row(b).isApprox(x2.row(b), 1e-12));
    }
    auto [x, ljd_rev] = net.inverse(inputs(z[0], z[1]), conditions(c));
    CHECK(test::max_rel_error(x[0], x1) < 1e-14);
    CHECK(test::max_rel_error(x[1], x2) < 1e-14);
    CHECK((ljd + ljd_rev).cwiseAbs().maxCoeff() < 1e-14);
}

/// backward against finite differences of forward, and the backward_args conventions (exact).
template <class Spec, signature Sig>
void check_custom_backward(std::size_t entries, const test::gradcheck_options& o) {
    const auto r = test::check_module_gradients<Spec, Sig>(o);
    INFO(r.describe());
    CHECK(r.entries.size() == entries);
    CHECK(r.worst() <= 1e-10);
    const auto c = test::check_backward_conventions<Spec, Sig>(o);
    INFO(c.describe());
    CHECK(c.worst() == 0);
}

TEST_CASE("custom modules: backward of both README modules", "[custom][grad]") {
    // x only: the factors are fixed, not trainable.
    constexpr signature vec5{make_ports({make_dims({5})}), {}};
    check_custom_backward<FixedRandomElementwiseMultiply, vec5>(1, {.batch = 4});
    // x1, x2 and the condition, whose gradient is zero; conditions of both signs, away from 0
    // where the routing switches.
    constexpr signature two_in{make_ports({make_dims({3}), make_dims({3})}),
                               make_ports({make_dims({1})})};
    test::gradcheck_options o{.batch = 6};
    o.condition = [](test::grad_matrix& c, int) { c << 1.0, -0.5, 2.0, -1.5, 0.25, -3.0; };
    check_custom_backward<ConditionalSwap, two_in>(3, o);
}

}  // namespace
