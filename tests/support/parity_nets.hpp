#pragma once
// Two of the networks of the parity suite (tests/test_parity_nets.cpp), shared with the switch
// tests (tests/test_benchmark_switches.cpp), which run them fused and unfused: the reduced
// convolutional INN graph (PermuteRandom -> IRevNetDownsampling is a fused chain) and the mixed
// sequence (PermuteRandom -> LearnedElementwiseScaling at its end). Each is the fixture's
// architecture JSON written as a C++ type; graph nodes are matched to FrEIA's node names by the
// harness (tests/support/fixture.hpp).

#include <type_traits>

#include <inn/modules/actnorm.hpp>
#include <inn/modules/all_in_one_block.hpp>
#include <inn/modules/concat.hpp>
#include <inn/modules/coupling/glow.hpp>
#include <inn/modules/coupling/rnvp.hpp>
#include <inn/modules/elementwise_scaling.hpp>
#include <inn/modules/haar.hpp>
#include <inn/modules/invauto.hpp>
#include <inn/modules/irevnet.hpp>
#include <inn/modules/permute_random.hpp>
#include <inn/modules/reshape.hpp>
#include <inn/modules/split.hpp>

// Internal linkage: the including test files reuse names (subnets, node structs).
namespace {

using namespace inn;

// Subnet constructors of a given width (and kernel size).
template <int Hidden>
struct fc_of {
    template <int I, int O>
    using net = nn::Sequential<nn::Linear<I, Hidden>, nn::ReLU, nn::Linear<Hidden, O>>;
};
template <int Hidden, int Kernel>
struct conv_of {
    template <int I, int O>
    using net = nn::Sequential<nn::Conv2d<I, Hidden, Kernel, Kernel / 2>, nn::ReLU,
                               nn::Conv2d<Hidden, O, Kernel, Kernel / 2>>;
};

// ---- net_conv_inn_reduced: examples/conv_inn.cpp at 3x16x16 with fewer, narrower stages -------

namespace conv_inn {
using subnet_conv_parity_nets = conv_of<16, 3>;
using subnet_conv_1x1_parity_nets = conv_of<16, 1>;
using subnet_fc_parity_nets = fc_of<64>;
constexpr CouplingOptions conv_clamp{.clamp = 1.2};

struct input : InputNode<Shape<3, 16, 16>> {};

// 2 x [GLOW 3x3 + PermuteRandom(seed=k)] at high resolution.
template <int K> struct permute_high_res;
template <int K>
struct conv_high_res
    : Node<GLOWCouplingBlock<subnet_conv_parity_nets, conv_clamp>,
           std::conditional_t<K == 0, input, permute_high_res<K - 1>>> {};
template <int K>
struct permute_high_res : Node<PermuteRandom<PermuteRandomOptions{.seed = K}>, conv_high_res<K>> {};

struct downsample : Node<IRevNetDownsampling<>, permute_high_res<1>> {};

// 4 x [GLOW (1x1 subnets on even k, 3x3 on odd k) + PermuteRandom(seed=k)].
template <int K> struct permute_low_res;
template <int K>
struct conv_low_res
    : Node<std::conditional_t<K % 2 == 0, GLOWCouplingBlock<subnet_conv_1x1_parity_nets, conv_clamp>,
                              GLOWCouplingBlock<subnet_conv_parity_nets, conv_clamp>>,
           std::conditional_t<K == 0, downsample, permute_low_res<K - 1>>> {};
template <int K>
struct permute_low_res : Node<PermuteRandom<PermuteRandomOptions{.seed = K}>, conv_low_res<K>> {};

struct flatten : Node<Flatten, permute_low_res<3>> {};
struct split : Node<Split<SplitOptions{.section_sizes = {192, 576}}>, flatten> {};

// 2 x [GLOW fully connected + PermuteRandom(seed=k)] on the first quarter.
template <int K> struct permute;
template <int K>
struct fully_connected
    : Node<GLOWCouplingBlock<subnet_fc_parity_nets, CouplingOptions{.clamp = 2.0}>,
           std::conditional_t<K == 0, out<split, 0>, permute<K - 1>>> {};
template <int K>
struct permute : Node<PermuteRandom<PermuteRandomOptions{.seed = K}>, fully_connected<K>> {};

struct concat : Node<Concat<>, inputs<permute<1>, out<split, 1>>> {};
struct output : OutputNode<concat> {};

using Net = GraphINN<input, repeat_nodes<conv_high_res, 2>, repeat_nodes<permute_high_res, 2>,
                     downsample, repeat_nodes<conv_low_res, 4>, repeat_nodes<permute_low_res, 4>,
                     flatten, split, repeat_nodes<fully_connected, 2>, repeat_nodes<permute, 2>,
                     concat, output>;
static_assert(Net::output_shape<downsample> == Shape<12, 8, 8>{});
}  // namespace conv_inn

// ---- net_mixed_sequence: most module kinds in one chain, image and vector conditions -----------

using Mixed = SequenceINN<
    Shape<4, 8, 8>, Conditions<Shape<2, 8, 8>, Shape<3>>,
    ActNorm,
    Conditioned<AllInOneBlock<conv_of<8, 3>, AllInOneOptions{.permute_soft = true}>, 0>,
    HaarDownsampling<HaarOptions{.rebalance = 0.5}>,
    GLOWCouplingBlock<conv_of<8, 1>, CouplingOptions{.clamp = 1.0}>,
    InvAutoActTwoSided<>,
    IRevNetUpsampling<>,
    Flatten,
    Conditioned<RNVPCouplingBlock<fc_of<32>>, 1>,
    PermuteRandom<PermuteRandomOptions{.seed = 7}>,
    LearnedElementwiseScaling<>>;

}  // namespace
