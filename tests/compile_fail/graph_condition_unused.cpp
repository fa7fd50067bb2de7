// A ConditionNode that conditions nothing.
#include <inn/inn.hpp>
#include <inn/modules/concat.hpp>
#include <inn/modules/permute_random.hpp>
#include <inn/modules/split.hpp>
using namespace inn;
struct in1 : InputNode<Shape<8>> {};
struct cond : ConditionNode<Shape<2>> {};
struct perm : Node<PermuteRandom<>, in1> {};
struct out1 : OutputNode<perm> {};
using Net = GraphINN<in1, cond, perm, out1>;
Net net;
