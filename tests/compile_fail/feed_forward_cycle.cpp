// A FeedForwardNode reading the output of the coupling it conditions: no forward order exists.
#include <inn/inn.hpp>
#include <inn/modules/coupling/glow.hpp>
using namespace inn;
struct subnet {
    template <int I, int O>
    using net = nn::Sequential<nn::Linear<I, 8>, nn::ReLU, nn::Linear<8, O>>;
};
struct x : InputNode<Shape<4>> {};
struct feat;
struct coupling : Node<GLOWCouplingBlock<subnet>, x, conditions<feat>> {};
struct feat : FeedForwardNode<nn::Linear<4, 2>, coupling> {};
struct z : OutputNode<coupling> {};
using Net = GraphINN<x, feat, coupling, z>;
Net net;
