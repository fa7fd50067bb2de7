// A ConditionNode used as a module's input.
#include <inn/inn.hpp>
#include <inn/modules/concat.hpp>
#include <inn/modules/permute_random.hpp>
#include <inn/modules/split.hpp>
using namespace inn;
struct in1 : InputNode<Shape<8>> {};
struct cond : ConditionNode<Shape<8>> {};
struct concat1 : Node<Concat<>, inputs<in1, cond>> {};
struct out1 : OutputNode<concat1> {};
using Net = GraphINN<in1, cond, concat1, out1>;
Net net;
