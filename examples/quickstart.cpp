// FrEIA's quick start in C++: an INN of 8 AllInOneBlocks learns the "two moons" by maximum
// likelihood (Adam, lr 1e-3, 1000 steps of 100 points), reports the held-out negative
// log-likelihood, then samples through the inverse and draws samples beside data into an SVG.
//
//   ./build/examples/quickstart [--seed N] [--svg FILE]

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <numbers>
#include <string>

#include <inn/data.hpp>
#include <inn/inn.hpp>
#include <inn/modules/all_in_one_block.hpp>
#include <inn/train.hpp>

// The subnet constructor, FrEIA's subnet_constructor(c_in, c_out): a struct whose member
// template `net` is the subnet for the widths a block asks for.
namespace {
struct subnet_fc {
    template <int In, int Out>
    using net =
        inn::nn::Sequential<inn::nn::Linear<In, 512>, inn::nn::ReLU, inn::nn::Linear<512, Out>>;
};

using MoonsINN = inn::SequenceINN<
    inn::Shape<2>,
    inn::Repeat<8, inn::AllInOneBlock<subnet_fc, inn::AllInOneOptions{.permute_soft = true}>>>;

// Two scatter plots side by side: data (left) and samples (right), both in [-1.5, 2.5] x [-1, 1.5].
void write_svg(const std::string& path, const inn::row_matrix<float>& data,
               const inn::row_matrix<float>& samples) {
    std::ofstream f(path);
    f << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"820\" height=\"300\" "
         "font-family=\"sans-serif\" font-size=\"14\">\n<rect width=\"820\" height=\"300\" "
         "fill=\"white\"/>\n";
    auto panel = [&](const inn::row_matrix<float>& x, double left, const char* title,
                     const char* colour) {
        f << "<text x=\"" << left + 190 << "\" y=\"20\" text-anchor=\"middle\">" << title
          << "</text>\n<rect x=\"" << left << "\" y=\"30\" width=\"380\" height=\"250\" "
          << "fill=\"none\" stroke=\"#999\"/>\n";
        for (inn::index_t i = 0; i < x.rows(); ++i) {
            const double px = left + (x(i, 0) + 1.5) / 4.0 * 380;
            const double py = 30 + (1.5 - x(i, 1)) / 2.5 * 250;
            if (px < left || px > left + 380 || py < 30 || py > 280)
                continue; // off the plot
            f << "<circle cx=\"" << int(px * 10) / 10.0 << "\" cy=\"" << int(py * 10) / 10.0
              << "\" r=\"1.5\" fill=\"" << colour << "\" fill-opacity=\"0.6\"/>\n";
        }
    };
    panel(data, 20, "data (make_moons, noise 0.05)", "#1f77b4");
    panel(samples, 420, "samples (inverse of z ~ N(0, I))", "#d62728");
    f << "</svg>\n";
}
} // namespace

int main(int argc, char** argv) {
    std::uint64_t seed = 0;
    std::string svg = "quickstart-samples.svg";
    for (int i = 1; i + 1 < argc; i += 2) {
        if (std::string(argv[i]) == "--seed")
            seed = std::strtoull(argv[i + 1], nullptr, 10);
        if (std::string(argv[i]) == "--svg")
            svg = argv[i + 1];
    }

    MoonsINN inn{seed}; // parameters initialised like FrEIA's
    inn::generator g{seed};
    inn::train::trainer trainer{inn};
    inn::train::Adam optimizer{inn, {.lr = 1e-3}};

    // The training loop of FrEIA's quick start: a fresh batch of moons each step.
    const auto start = std::chrono::steady_clock::now();
    for (int step = 1; step <= 1000; ++step) {
        const auto x = inn::data::make_moons(100, 0.05, g);
        const double loss = trainer.step(x, inn::train::max_likelihood);
        optimizer.step();
        if (step % 100 == 0) {
            const std::chrono::duration<double> t = std::chrono::steady_clock::now() - start;
            std::printf("step %4d  loss %7.4f  %6.0f steps/s\n", step, loss, step / t.count());
        }
    }

    // Held-out negative log-likelihood: nll() is per dimension, a sample has 2.
    const auto held_out = inn::data::make_moons(2000, 0.05, g);
    std::printf("held-out NLL: %.3f nats per sample\n", 2 * inn::train::nll(inn, held_out));

    // Sampling: standard normal latents through the inverse.
    const auto z = inn::data::randn(1000, 2, g);
    auto [samples, log_jac_det] = inn.inverse(z);
    write_svg(svg, inn::data::make_moons(1000, 0.05, g), samples);
    std::printf("1000 samples beside 1000 data points: %s\n", svg.c_str());
}
