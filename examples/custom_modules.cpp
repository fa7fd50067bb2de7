// FrEIA README's custom modules (examples/custom_modules.hpp) used in a SequenceINN and in the
// README's GraphINN with two inputs, a condition and a conditional swap.

#include <cstdio>

#include "custom_modules.hpp"
#include "example_util.hpp"

using example::ConditionalSwap;
using example::FixedRandomElementwiseMultiply;

struct in1 : inn::InputNode<inn::Shape<2>> {};
struct in2 : inn::InputNode<inn::Shape<2>> {};
struct cond : inn::ConditionNode<inn::Shape<1>> {};
struct mult1 : inn::Node<FixedRandomElementwiseMultiply, in1> {};
struct swap : inn::Node<ConditionalSwap, inn::inputs<mult1, in2>, inn::conditions<cond>> {};
struct mult2 : inn::Node<FixedRandomElementwiseMultiply, inn::out<swap, 1>> {};
struct out1 : inn::OutputNode<inn::out<swap, 0>> {};
struct out2 : inn::OutputNode<mult2> {};

int main() {
    // In a chain.
    inn::SequenceINN<inn::Shape<2>, inn::Repeat<3, FixedRandomElementwiseMultiply>> chain(0);
    auto x = example::randn(8, 2, 1);
    auto [z, ljd] = chain.forward(x);
    auto [x_rev, ljd_rev] = chain.inverse(z);
    std::printf("sequence: max |x - x_rev| %.3g, log|det J| = %.4f for every sample\n",
                example::max_abs_diff(x, x_rev), double(ljd[0]));

    // In a graph.
    inn::GraphINN<in1, in2, cond, mult1, swap, mult2, out1, out2> graph(0);
    std::printf("%s\n", graph.summary().c_str());
    auto a = example::randn(8, 2, 2), b = example::randn(8, 2, 3), c = example::randn(8, 1, 4);
    auto [zs, l] = graph.forward(inn::inputs(a, b), inn::conditions(c));
    auto [xs, l_rev] = graph.inverse(inn::inputs(zs[0], zs[1]), inn::conditions(c));
    std::printf("graph: max |x1 - x1_rev| %.3g, max |x2 - x2_rev| %.3g\n",
                example::max_abs_diff(a, xs[0]), example::max_abs_diff(b, xs[1]));
    example::print_log_det("graph log|det J|", l);
    return example::max_abs_diff(a, xs[0]) < 1e-5 ? 0 : 1;
}
