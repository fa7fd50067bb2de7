// An InputNode that feeds nothing.
#include <inn/inn.hpp>
#include <inn/modules/concat.hpp>
#include <inn/modules/permute_random.hpp>
#include <inn/modules/split.hpp>
using namespace inn;
struct in1 : InputNode<Shape<8>> {};
struct in2 : InputNode<Shape<3>> {};
struct perm : Node<PermuteRandom<>, in1> {};
struct out1 : OutputNode<perm> {};
using Net = GraphINN<in1, in2, perm, out1>;
Net net;
