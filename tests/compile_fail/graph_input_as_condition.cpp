// An InputNode used only as a condition: it should be a ConditionNode.
#include <inn/inn.hpp>
#include <inn/modules/coupling/glow.hpp>
using namespace inn;
struct subnet {
    template <int I, int O>
    using net = nn::Sequential<nn::Linear<I, 8>, nn::ReLU, nn::Linear<8, O>>;
};
struct x : InputNode<Shape<8>> {};
struct label : InputNode<Shape<3>> {};
struct glow : Node<GLOWCouplingBlock<subnet>, x, conditions<label>> {};
struct z : OutputNode<glow> {};
using Net = GraphINN<x, label, glow, z>;
Net net;
