// A FeedForwardNode reading the input of the coupling it conditions: the forward pass is fine,
// but in the inverse that input is only known once the coupling is inverted.
#include <inn/inn.hpp>
#include <inn/modules/concat.hpp>
#include <inn/modules/coupling/glow.hpp>
#include <inn/modules/split.hpp>
using namespace inn;
struct subnet {
    template <int I, int O>
    using net = nn::Sequential<nn::Linear<I, 8>, nn::ReLU, nn::Linear<8, O>>;
};
struct x : InputNode<Shape<8>> {};
struct split : Node<Split<>, x> {};
struct feat : FeedForwardNode<nn::Linear<4, 2>, out<split, 0>> {};
struct coupling : Node<GLOWCouplingBlock<subnet>, out<split, 0>, conditions<feat>> {};
struct join : Node<Concat<>, inputs<coupling, out<split, 1>>> {};
struct z : OutputNode<join> {};
using Net = GraphINN<x, split, feat, coupling, join, z>;
Net net;
