// An output feeding two nodes: FrEIA's "Output 0 of node ... is already consumed".
#include <inn/inn.hpp>
#include <inn/modules/concat.hpp>
#include <inn/modules/permute_random.hpp>
#include <inn/modules/split.hpp>
using namespace inn;
struct in1 : InputNode<Shape<8>> {};
struct split1 : Node<Split<>, in1> {};
struct perm1 : Node<PermuteRandom<>, out<split1, 0>> {};
struct perm2 : Node<PermuteRandom<>, out<split1, 0>> {};
struct concat1 : Node<Concat<>, inputs<perm1, out<split1, 1>>> {};
struct out1 : OutputNode<concat1> {};
struct out2 : OutputNode<perm2> {};
using Net = GraphINN<in1, split1, perm1, perm2, concat1, out1, out2>;
Net net;
