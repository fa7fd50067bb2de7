// Uses the installed headers and what inn::inn brings (Eigen, threads), without inn::io: a
// small network built, run forward and inverse, and the round trip checked.
#include <inn/inn.hpp>
#include <inn/modules/all_in_one_block.hpp>

#include <cstdio>

namespace {
struct subnet_fc {
    template <int In, int Out>
    using net =
        inn::nn::Sequential<inn::nn::Linear<In, 16>, inn::nn::ReLU, inn::nn::Linear<16, Out>>;
};
using Net = inn::SequenceINN<inn::Shape<4>, inn::Repeat<3, inn::AllInOneBlock<subnet_fc>>>;
} // namespace

int main() {
    Net net(0);
    net.set_threads(2); // Threads::Threads comes with inn::inn
    inn::row_matrix<float> x = inn::row_matrix<float>::Random(64, 4);
    const auto [z, ljd] = net.forward(x);
    const auto [x_rev, ljd_rev] = net.inverse(z);
    const float err = (x_rev - x).cwiseAbs().maxCoeff();
    std::printf("inn consumer: %d modules, max |x_rev - x| = %.2g\n", Net::n_modules, err);
    return err < 1e-4f && (ljd_rev + ljd).cwiseAbs().maxCoeff() < 1e-4f ? 0 : 1;
}
