// FrEIA's conditional INN for MNIST-shaped data: 784 inputs, a one-hot label of 10 as the
// condition of every block, 12 AllInOneBlocks with subnets of width 512. Random images stand in
// for MNIST (no data set is downloaded); the example shows the API and checks invertibility.

#include <cstdio>
#include <memory>

#include <inn/inn.hpp>
#include <inn/modules/all_in_one_block.hpp>

#include "example_util.hpp"

namespace {
struct subnet_fc {  // FrEIA: subnet_fc(c_in, c_out)
    template <int In, int Out>
    using net = inn::nn::Sequential<inn::nn::Linear<In, 512>, inn::nn::ReLU,
                                    inn::nn::Linear<512, Out>>;
};
}  // namespace

using block = inn::AllInOneBlock<subnet_fc, inn::AllInOneOptions{.permute_soft = true}>;
using cINN = inn::SequenceINN<inn::Shape<784>, inn::Conditions<inn::Shape<10>>,
                              inn::Repeat<12, inn::Conditioned<block, 0>>>;

int main() {
    auto net = std::make_unique<cINN>(0);
    std::printf("%s\n", net->summary().c_str());

    const int batch = 64;
    net->reserve(batch);
    auto x = example::randn(batch, 784, 1);
    inn::row_matrix<float> labels = inn::row_matrix<float>::Zero(batch, 10);
    for (int i = 0; i < batch; ++i) labels(i, i % 10) = 1;  // one-hot digits

    auto [z, ljd] = net->forward(x, inn::conditions(labels));
    auto [x_rev, ljd_rev] = net->inverse(z, inn::conditions(labels));
    std::printf("max |x - inverse(forward(x))|    %.3g\n", example::max_abs_diff(x, x_rev));
    std::printf("max |ljd + ljd_rev|              %.3g\n", example::max_abs_diff(ljd, -ljd_rev));
    example::print_log_det("log|det J| (forward)", ljd);

    // Sampling: draw latents and run the inverse with the label of the digit wanted.
    inn::inverse_t<cINN> sampler(*net);
    auto zs = example::randn(10, 784, 2);
    inn::row_matrix<float> digits = inn::row_matrix<float>::Identity(10, 10);
    auto [samples, ljd_s] = sampler.forward(zs, inn::conditions(digits));
    std::printf("sampled %ld images of %ld pixels, one per digit\n", long(samples.rows()), long(samples.cols()));
    return example::max_abs_diff(x, x_rev) < 1e-2 ? 0 : 1;
}
