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

using namespace inn;

namespace {  // FrEIA: subnet_conv(c_in, c_out), subnet_conv_1x1, subnet_fc
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

struct input : InputNode<Shape<3, 32, 32>> {};

// Higher resolution convolutional part.
template <int K> struct permute_high_res;
template <int K>
struct conv_high_res : Node<GLOWCouplingBlock<subnet_conv, {.clamp = 1.2}>,
                            std::conditional_t<K == 0, input, permute_high_res<K - 1>>> {};
template <int K>
struct permute_high_res : Node<PermuteRandom<{.seed = K}>, conv_high_res<K>> {};

struct downsample : Node<IRevNetDownsampling<>, permute_high_res<3>> {};

// Lower resolution convolutional part: 1x1 subnets on even k, 3x3 on odd k.
template <int K> struct permute_low_res;
template <int K>
struct conv_low_res
    : Node<std::conditional_t<K % 2 == 0, GLOWCouplingBlock<subnet_conv_1x1, {.clamp = 1.2}>,
                              GLOWCouplingBlock<subnet_conv, {.clamp = 1.2}>>,
           std::conditional_t<K == 0, downsample, permute_low_res<K - 1>>> {};
template <int K>
struct permute_low_res : Node<PermuteRandom<{.seed = K}>, conv_low_res<K>> {};

// Flatten, then split off a quarter for the fully connected part.
struct flatten : Node<Flatten, permute_low_res<11>> {};
struct split : Node<Split<{.section_sizes = {ndim_x / 4, 3 * ndim_x / 4}}>, flatten> {};

template <int K> struct permute_fc;
template <int K>
struct fully_connected : Node<GLOWCouplingBlock<subnet_fc, {.clamp = 2.0}>,
                              std::conditional_t<K == 0, out<split, 0>, permute_fc<K - 1>>> {};
template <int K>
struct permute_fc : Node<PermuteRandom<{.seed = K}>, fully_connected<K>> {};

// Concatenate the fully connected part and the skip connection into a single output.
struct concat : Node<Concat<>, inputs<permute_fc<11>, out<split, 1>>> {};
struct output : OutputNode<concat> {};

using ConvINN = GraphINN<input,
                         repeat_nodes<conv_high_res, 4>, repeat_nodes<permute_high_res, 4>,
                         downsample,
                         repeat_nodes<conv_low_res, 12>, repeat_nodes<permute_low_res, 12>,
                         flatten, split,
                         repeat_nodes<fully_connected, 12>, repeat_nodes<permute_fc, 12>,
                         concat, output>;

static_assert(ConvINN::output_shape<downsample> == Shape<12, 16, 16>{});
static_assert(ConvINN::output_shape<split, 0> == Shape<768>{});
static_assert(ConvINN::output_shape<output> == Shape<ndim_x>{});

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
