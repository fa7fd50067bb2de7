// A FeedForwardNode whose layer does not take its source's shape.
#include <inn/inn.hpp>
#include <inn/modules/coupling/glow.hpp>
using namespace inn;
struct subnet {
    template <int I, int O>
    using net = nn::Sequential<nn::Linear<I, 8>, nn::ReLU, nn::Linear<8, O>>;
};
struct x : InputNode<Shape<4>> {};
struct c : ConditionNode<Shape<3>> {};
struct feat : FeedForwardNode<nn::Linear<5, 2>, conditions<c>> {};
struct glow : Node<GLOWCouplingBlock<subnet>, x, conditions<feat>> {};
struct z : OutputNode<glow> {};
using Net = GraphINN<x, c, feat, glow, z>;
Net net;
