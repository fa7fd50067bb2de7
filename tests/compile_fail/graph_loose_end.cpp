// Output 1 of a Split that goes nowhere: not invertible.
#include <inn/inn.hpp>
#include <inn/modules/concat.hpp>
#include <inn/modules/permute_random.hpp>
#include <inn/modules/split.hpp>
using namespace inn;
struct in1 : InputNode<Shape<8>> {};
struct split1 : Node<Split<>, in1> {};
struct out1 : OutputNode<out<split1, 0>> {};
using Net = GraphINN<in1, split1, out1>;
Net net;
