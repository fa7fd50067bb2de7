// Two nodes feeding each other.
#include <inn/inn.hpp>
#include <inn/modules/concat.hpp>
#include <inn/modules/permute_random.hpp>
#include <inn/modules/split.hpp>
using namespace inn;
struct in1 : InputNode<Shape<8>> {};
struct concat1;
struct split1 : Node<Split<>, concat1> {};
struct concat1 : Node<Concat<>, inputs<in1, out<split1, 0>>> {};
struct out1 : OutputNode<out<split1, 1>> {};
using Net = GraphINN<in1, split1, concat1, out1>;
Net net;
