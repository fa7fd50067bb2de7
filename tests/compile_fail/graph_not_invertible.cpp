// A node conditioned on its own input: forward is fine, the inverse would need its own output.
#include <inn/inn.hpp>
#include <inn/modules/concat.hpp>
#include <inn/modules/permute_random.hpp>
#include <inn/modules/split.hpp>
using namespace inn;
#include <inn/modules/all_in_one_block.hpp>
struct subnet {
    template <int I, int O>
    using net = nn::Sequential<nn::Linear<I, 8>, nn::ReLU, nn::Linear<8, O>>;
};
struct in1 : InputNode<Shape<8>> {};
struct split1 : Node<Split<>, in1> {};
struct coupling : Node<AllInOneBlock<subnet>, out<split1, 0>, conditions<out<split1, 0>>> {};
struct concat1 : Node<Concat<>, inputs<coupling, out<split1, 1>>> {};
struct out1 : OutputNode<concat1> {};
using Net = GraphINN<in1, split1, coupling, concat1, out1>;
Net net;
