// A block asking for condition 1 of a sequence that has only condition 0.
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
using Net = SequenceINN<Shape<4>, Conditions<Shape<2>>, Conditioned<AllInOneBlock<subnet>, 1>>;
Net net;
