// FrEIA's quick start in C++: an INN for 2-D data (the "two moons"), 8 AllInOneBlocks with soft
// permutations and subnets of width 512. Runs forward and inverse on a batch and prints the
// reconstruction error and log-det statistics.

#include <cmath>
#include <cstdio>
#include <numbers>

#include <inn/inn.hpp>
#include <inn/modules/all_in_one_block.hpp>

#include "example_util.hpp"

// The subnet constructor, FrEIA's subnet_constructor(c_in, c_out): a struct whose member
// template `net` is the subnet for the widths a block asks for. The unnamed namespace gives it
// internal linkage: a different `subnet_fc` in another file is another type.
namespace {
struct subnet_fc {
    template <int In, int Out>
    using net = inn::nn::Sequential<inn::nn::Linear<In, 512>, inn::nn::ReLU,
                                    inn::nn::Linear<512, Out>>;
};
}  // namespace

using MoonsINN = inn::SequenceINN<inn::Shape<2>,
    inn::Repeat<8, inn::AllInOneBlock<subnet_fc, inn::AllInOneOptions{.permute_soft = true}>>>;

// Two interleaved half circles with noise (scikit-learn's make_moons).
inn::row_matrix<float> make_moons(int n, std::uint64_t seed) {
    inn::generator g(seed);
    inn::row_matrix<float> x(n, 2);
    for (int i = 0; i < n; ++i) {
        double t = std::numbers::pi * g.uniform01();
        bool upper = i % 2 == 0;
        x(i, 0) = float(upper ? std::cos(t) : 1 - std::cos(t)) + 0.1f * g.normal<float>();
        x(i, 1) = float(upper ? std::sin(t) : 0.5 - std::sin(t)) + 0.1f * g.normal<float>();
    }
    return x;
}

int main() {
    MoonsINN inn{/*seed=*/0};  // parameters initialised like FrEIA's
    std::printf("%s\n", inn.summary().c_str());

    const int batch = 256;
    inn.reserve(batch);
    auto x = make_moons(batch, 1);
    auto [z, log_jac_det] = inn.forward(x);
    auto [x_rev, log_jac_det_rev] = inn.inverse(z);

    std::printf("batch %d, input %s -> latent %s\n", batch, inn::to_string(MoonsINN::input_dims()).c_str(),
                inn::to_string(MoonsINN::output_dims()).c_str());
    std::printf("max |x - inverse(forward(x))|    %.3g\n", example::max_abs_diff(x, x_rev));
    std::printf("max |ljd + ljd_rev|              %.3g\n",
                example::max_abs_diff(log_jac_det, -log_jac_det_rev));
    example::print_log_det("log|det J| (forward)", log_jac_det);
    // Negative log-likelihood under a standard normal latent, as used for training.
    double nll = (0.5 * z.rowwise().squaredNorm().array() - log_jac_det.array()).mean();
    std::printf("mean NLL (untrained)             %.4f\n", nll);
    return example::max_abs_diff(x, x_rev) < 1e-3 ? 0 : 1;
}
