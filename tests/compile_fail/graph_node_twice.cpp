// A node listed twice (once would do): named as such, not as the "consumed twice" it causes.
#include <inn/inn.hpp>
#include <inn/modules/permute_random.hpp>
using namespace inn;
struct in1 : InputNode<Shape<8>> {};
struct perm : Node<PermuteRandom<>, in1> {};
struct out1 : OutputNode<perm> {};
using Net = GraphINN<in1, perm, perm, out1>;
Net net;
