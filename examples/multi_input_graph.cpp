// FrEIA's multi-input GraphINN: two inputs, one condition, two outputs.
//
//   in1 (100) -> PermuteRandom -> Split -> [50 | 50]
//                                           |     `-> Split -> [25 | 25 -> ActNorm]
//                                           |                      |        `-> Concat(+ in2) -> AffineCouplingOneSided(cond)
//                                           |                      `-------------------------------> Concat -> output2 (70)
//                                           `-> output1 (50)

#include <cstdio>

#include <inn/inn.hpp>
#include <inn/modules/actnorm.hpp>
#include <inn/modules/concat.hpp>
#include <inn/modules/coupling/one_sided.hpp>
#include <inn/modules/permute_random.hpp>
#include <inn/modules/split.hpp>

#include "example_util.hpp"

namespace {
struct subnet_fc {  // FrEIA: subnet_fc(c_in, c_out)
    template <int In, int Out>
    using net = inn::nn::Sequential<inn::nn::Linear<In, 256>, inn::nn::ReLU,
                                    inn::nn::Linear<256, Out>>;
};
}  // namespace

// Names are spelled inn::... rather than brought in with `using namespace inn`: a node of your
// own named `out` (or `nodes`, `inputs`) would otherwise collide with inn's.
struct in1     : inn::InputNode<inn::Shape<100>> {};
struct in2     : inn::InputNode<inn::Shape<20>> {};
struct cond    : inn::ConditionNode<inn::Shape<42>> {};
struct perm    : inn::Node<inn::PermuteRandom<>, in1> {};
struct split1  : inn::Node<inn::Split<>, perm> {};
struct split2  : inn::Node<inn::Split<>, inn::out<split1, 1>> {};
struct actnorm : inn::Node<inn::ActNorm, inn::out<split2, 1>> {};
struct concat1 : inn::Node<inn::Concat<>, inn::inputs<actnorm, in2>> {};
struct affine  : inn::Node<inn::AffineCouplingOneSided<subnet_fc>, concat1,
                           inn::conditions<cond>> {};
struct concat2 : inn::Node<inn::Concat<>, inn::inputs<inn::out<split2, 0>, affine>> {};
struct output1 : inn::OutputNode<inn::out<split1, 0>> {};
struct output2 : inn::OutputNode<concat2> {};

using ExampleINN = inn::GraphINN<in1, in2, cond, perm, split1, split2, actnorm,
                                 concat1, affine, concat2, output1, output2>;

static_assert(ExampleINN::output_shape<output2> == inn::Shape<70>{});  // shape inference
using Sampler = inn::inverse_t<ExampleINN>;  // the inverse as a network of its own

int main() {
    ExampleINN net{0};
    std::printf("%s\n", net.summary().c_str());
    const int batch = 32;
    net.reserve(batch);
    auto x1 = example::randn(batch, 100, 1), x2 = example::randn(batch, 20, 2);
    auto c = example::randn(batch, 42, 3);

    // The first call initialises ActNorm from this batch (FrEIA's data-dependent init).
    auto [z, ljd] = net.forward(inn::inputs(x1, x2), inn::conditions(c));
    auto [x, ljd_rev] = net.inverse(inn::inputs(z[0], z[1]), inn::conditions(c));
    std::printf("outputs: %ld x %ld and %ld x %ld\n", long(z[0].rows()), long(z[0].cols()),
                long(z[1].rows()), long(z[1].cols()));
    std::printf("max |x1 - x1_rev|                %.3g\n", example::max_abs_diff(x1, x[0]));
    std::printf("max |x2 - x2_rev|                %.3g\n", example::max_abs_diff(x2, x[1]));
    std::printf("max |ljd + ljd_rev|              %.3g\n", example::max_abs_diff(ljd, -ljd_rev));
    example::print_log_det("log|det J| (forward)", ljd);

    // A sampler holds the same parameters and compiles only the inverse code.
    Sampler sampler(net);
    auto [xs, ljd_s] = sampler.forward(inn::inputs(z[0], z[1]), inn::conditions(c));
    std::printf("sampler reproduces the inverse:  %.3g\n", example::max_abs_diff(xs[0], x[0]));
    return example::max_abs_diff(x1, x[0]) < 1e-3 ? 0 : 1;
}
