// FrEIA's convolutional INN for 3x32x32 images, with exactly the README's topology:
//   4 x [GLOW (3x3 conv subnets, clamp 1.2) + PermuteRandom] at high resolution,
//   IRevNetDownsampling,
//   12 x [GLOW (alternating 1x1 and 3x3 conv subnets) + PermuteRandom] at low resolution,
//   Flatten, Split into 1/4 and 3/4,
//   12 x [GLOW (fully connected, clamp 2) + PermuteRandom] on the first quarter,
//   Concat with the 3/4 skip connection, one output.
// Repeated stages are node templates indexed by an int; `repeat_nodes` lists them.

#include <cstdio>
#include <memory>
#include <type_traits>

#include <inn/inn.hpp>
#include <inn/modules/concat.hpp>
#include <inn/modules/coupling/glow.hpp>
#include <inn/modules/irevnet.hpp>
#include <inn/modules/permute_random.hpp>
#include <inn/modules/reshape.hpp>
#include <inn/modules/split.hpp>

#include "example_util.hpp"

namespace {  // FrEIA: subnet_conv(c_in, c_out), subnet_conv_1x1, subnet_fc
namespace nn = inn::nn;
struct subnet_conv {
    template <int In, int Out>
    using net = nn::Sequential<nn::Conv2d<In, 256, 3, 1>, nn::ReLU, nn::Conv2d<256, Out, 3, 1>>;
};
struct subnet_conv_1x1 {
    template <int In, int Out>
    using net = nn::Sequential<nn::Conv2d<In, 256, 1, 0>, nn::ReLU, nn::Conv2d<256, Out, 1, 0>>;
};
struct subnet_fc {
    template <int In, int Out>
    using net = nn::Sequential<nn::Linear<In, 512>, nn::ReLU, nn::Linear<512, Out>>;
};
}  // namespace

constexpr int ndim_x = 3 * 32 * 32;

// Options are spelled with their type (inn::CouplingOptions{.clamp = 1.2}), which every compiler
// takes, nvcc included (docs/tutorial.md, "Sequences").
using glow_conv = inn::GLOWCouplingBlock<subnet_conv, inn::CouplingOptions{.clamp = 1.2}>;
using glow_conv_1x1 = inn::GLOWCouplingBlock<subnet_conv_1x1, inn::CouplingOptions{.clamp = 1.2}>;
using glow_fc = inn::GLOWCouplingBlock<subnet_fc, inn::CouplingOptions{.clamp = 2.0}>;
template <int K>
using permute = inn::PermuteRandom<inn::PermuteRandomOptions{.seed = K}>;

struct input : inn::InputNode<inn::Shape<3, 32, 32>> {};

// Higher resolution convolutional part.
template <int K> struct permute_high_res;
template <int K>
struct conv_high_res
    : inn::Node<glow_conv, std::conditional_t<K == 0, input, permute_high_res<K - 1>>> {};
template <int K>
struct permute_high_res : inn::Node<permute<K>, conv_high_res<K>> {};

struct downsample : inn::Node<inn::IRevNetDownsampling<>, permute_high_res<3>> {};

// Lower resolution convolutional part: 1x1 subnets on even k, 3x3 on odd k.
template <int K> struct permute_low_res;
template <int K>
struct conv_low_res : inn::Node<std::conditional_t<K % 2 == 0, glow_conv_1x1, glow_conv>,
                                std::conditional_t<K == 0, downsample, permute_low_res<K - 1>>> {};
template <int K>
struct permute_low_res : inn::Node<permute<K>, conv_low_res<K>> {};

// Flatten, then split off a quarter for the fully connected part.
struct flatten : inn::Node<inn::Flatten, permute_low_res<11>> {};
struct split
    : inn::Node<inn::Split<inn::SplitOptions{.section_sizes = {ndim_x / 4, 3 * ndim_x / 4}}>,
                flatten> {};

template <int K> struct permute_fc;
template <int K>
struct fully_connected
    : inn::Node<glow_fc, std::conditional_t<K == 0, inn::out<split, 0>, permute_fc<K - 1>>> {};
template <int K>
struct permute_fc : inn::Node<permute<K>, fully_connected<K>> {};

// Concatenate the fully connected part and the skip connection into a single output.
struct concat : inn::Node<inn::Concat<>, inn::inputs<permute_fc<11>, inn::out<split, 1>>> {};
struct output : inn::OutputNode<concat> {};

using ConvINN = inn::GraphINN<input,
    inn::repeat_nodes<conv_high_res, 4>, inn::repeat_nodes<permute_high_res, 4>,
    downsample,
    inn::repeat_nodes<conv_low_res, 12>, inn::repeat_nodes<permute_low_res, 12>,
    flatten, split,
    inn::repeat_nodes<fully_connected, 12>, inn::repeat_nodes<permute_fc, 12>,
    concat, output>;

static_assert(ConvINN::output_shape<downsample> == inn::Shape<12, 16, 16>{});
static_assert(ConvINN::output_shape<split, 0> == inn::Shape<768>{});
static_assert(ConvINN::output_shape<output> == inn::Shape<ndim_x>{});

int main() {
    auto net = std::make_unique<ConvINN>(0);
    std::printf("%s\n", net->summary().c_str());
    const int batch = 4;
    net->reserve(batch);
    auto x = example::randn(batch, ndim_x, 1);
    auto [z, ljd] = net->forward(x);
    auto [x_rev, ljd_rev] = net->inverse(z);
    std::printf("max |x - inverse(forward(x))|    %.3g\n", example::max_abs_diff(x, x_rev));
    std::printf("max |ljd + ljd_rev|              %.3g\n", example::max_abs_diff(ljd, -ljd_rev));
    example::print_log_det("log|det J| (forward)", ljd);
    std::printf("workspace for batch %d: %.1f MB\n", batch, double(ConvINN::workspace_bytes(batch)) / 1e6);
    return example::max_abs_diff(x, x_rev) < 1e-2 ? 0 : 1;
}
