// A node fed by a node that is not in the GraphINN's list.
#include <inn/inn.hpp>
#include <inn/modules/concat.hpp>
#include <inn/modules/permute_random.hpp>
#include <inn/modules/split.hpp>
using namespace inn;
struct in1 : InputNode<Shape<8>> {};
struct perm1 : Node<PermuteRandom<>, in1> {};
struct perm2 : Node<PermuteRandom<>, perm1> {};
struct out1 : OutputNode<perm2> {};
using Net = GraphINN<in1, perm2, out1>;
Net net;
