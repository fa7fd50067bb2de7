// A module listed where a node belongs (it goes into a Node<...>).
#include <inn/inn.hpp>
#include <inn/modules/permute_random.hpp>
using namespace inn;
struct in1 : InputNode<Shape<8>> {};
struct perm : Node<PermuteRandom<>, in1> {};
struct out1 : OutputNode<perm> {};
using Net = GraphINN<in1, PermuteRandom<>, perm, out1>;
Net net;
