#pragma once
// The README's three models at full size, as benchmarked (benchmarks/bench_*.cpp) and compared
// with PyTorch (benchmarks/compare_pytorch.py builds the same three in plain PyTorch):
//   * moons:      2-D input, 8 AllInOneBlocks with soft permutations, subnets of width 512
//                 (examples/quickstart.cpp);
//   * mnist-cinn: 784 inputs, a condition of 10 for every block, 12 AllInOneBlocks, width 512
//                 (examples/conditional_mnist.cpp);
//   * conv-cifar: the convolutional INN on 3x32x32 (examples/conv_inn.cpp), a GraphINN.

#include <type_traits>

#include <inn/inn.hpp>
#include <inn/modules/all_in_one_block.hpp>
#include <inn/modules/concat.hpp>
#include <inn/modules/coupling/glow.hpp>
#include <inn/modules/irevnet.hpp>
#include <inn/modules/permute_random.hpp>
#include <inn/modules/reshape.hpp>
#include <inn/modules/split.hpp>

namespace bench {

struct subnet_fc {
    template <int In, int Out>
    using net =
        inn::nn::Sequential<inn::nn::Linear<In, 512>, inn::nn::ReLU, inn::nn::Linear<512, Out>>;
};

using Moons = inn::SequenceINN<
    inn::Shape<2>,
    inn::Repeat<8, inn::AllInOneBlock<subnet_fc, inn::AllInOneOptions{.permute_soft = true}>>>;

using MnistCINN = inn::SequenceINN<
    inn::Shape<784>, inn::Conditions<inn::Shape<10>>,
    inn::Repeat<12,
                inn::Conditioned<
                    inn::AllInOneBlock<subnet_fc, inn::AllInOneOptions{.permute_soft = true}>, 0>>>;

namespace conv {
using namespace inn;

struct subnet_conv {
    template <int In, int Out>
    using net = nn::Sequential<nn::Conv2d<In, 256, 3, 1>, nn::ReLU, nn::Conv2d<256, Out, 3, 1>>;
};
struct subnet_conv_1x1 {
    template <int In, int Out>
    using net = nn::Sequential<nn::Conv2d<In, 256, 1, 0>, nn::ReLU, nn::Conv2d<256, Out, 1, 0>>;
};

constexpr int ndim_x = 3 * 32 * 32;

struct input : InputNode<Shape<3, 32, 32>> {};

template <int K> struct permute_high_res;
template <int K>
struct conv_high_res : Node<GLOWCouplingBlock<subnet_conv, CouplingOptions{.clamp = 1.2}>,
                            std::conditional_t<K == 0, input, permute_high_res<K - 1>>> {};
template <int K>
struct permute_high_res : Node<PermuteRandom<PermuteRandomOptions{.seed = K}>, conv_high_res<K>> {};

struct downsample : Node<IRevNetDownsampling<>, permute_high_res<3>> {};

template <int K> struct permute_low_res;
template <int K>
struct conv_low_res
    : Node<std::conditional_t<K % 2 == 0,
                              GLOWCouplingBlock<subnet_conv_1x1, CouplingOptions{.clamp = 1.2}>,
                              GLOWCouplingBlock<subnet_conv, CouplingOptions{.clamp = 1.2}>>,
           std::conditional_t<K == 0, downsample, permute_low_res<K - 1>>> {};
template <int K>
struct permute_low_res : Node<PermuteRandom<PermuteRandomOptions{.seed = K}>, conv_low_res<K>> {};

struct flatten : Node<Flatten, permute_low_res<11>> {};
struct split : Node<Split<SplitOptions{.section_sizes = {ndim_x / 4, 3 * ndim_x / 4}}>, flatten> {};

template <int K> struct permute_fc;
template <int K>
struct fully_connected : Node<GLOWCouplingBlock<subnet_fc, CouplingOptions{.clamp = 2.0}>,
                              std::conditional_t<K == 0, out<split, 0>, permute_fc<K - 1>>> {};
template <int K>
struct permute_fc : Node<PermuteRandom<PermuteRandomOptions{.seed = K}>, fully_connected<K>> {};

struct concat : Node<Concat<>, inputs<permute_fc<11>, out<split, 1>>> {};
struct output : OutputNode<concat> {};

using ConvINN =
    GraphINN<input, repeat_nodes<conv_high_res, 4>, repeat_nodes<permute_high_res, 4>, downsample,
             repeat_nodes<conv_low_res, 12>, repeat_nodes<permute_low_res, 12>, flatten, split,
             repeat_nodes<fully_connected, 12>, repeat_nodes<permute_fc, 12>, concat, output>;
} // namespace conv

using ConvCIFAR = conv::ConvINN;

} // namespace bench
