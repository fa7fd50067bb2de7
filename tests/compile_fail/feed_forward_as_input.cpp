// A FeedForwardNode's output used as an input: it can only condition (FrEIA: TypeError).
#include <inn/inn.hpp>
#include <inn/modules/concat.hpp>
using namespace inn;
struct x : InputNode<Shape<4>> {};
struct c : ConditionNode<Shape<3>> {};
struct feat : FeedForwardNode<nn::Linear<3, 4>, conditions<c>> {};
struct join : Node<Concat<>, inputs<x, feat>> {};
struct z : OutputNode<join> {};
using Net = GraphINN<x, c, feat, join, z>;
Net net;
