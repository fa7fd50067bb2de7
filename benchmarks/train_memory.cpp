// Peak memory of one training step (forward, loss, backward) of the moons model (8 or 64
// AllInOneBlocks, subnets of width 512, float) at batch 256, in the trainer's store and
// recompute modes. One configuration per process, so that the peak RSS (getrusage) belongs to
// it alone:
//
//   for d in 8 64; do for m in store recompute; do build/benchmarks/train_memory $d $m; done; done
//
// Prints the values the trainer keeps for the backward pass (value_bytes: linear in depth in
// store mode, flat in recompute mode), all its buffers (workspace_bytes: those values, the
// edges' gradients, the modules' scratch - the subnets' hidden layers, shared by all blocks),
// the parameters (their gradients take as much again) and the process's peak RSS, also above a
// baseline taken before the network was built.

#include <sys/resource.h>

#include <cstdio>
#include <string>

#include <inn/data.hpp>
#include <inn/inn.hpp>
#include <inn/modules/all_in_one_block.hpp>
#include <inn/train.hpp>

namespace {
struct subnet_fc {
    template <int In, int Out>
    using net =
        inn::nn::Sequential<inn::nn::Linear<In, 512>, inn::nn::ReLU, inn::nn::Linear<512, Out>>;
};

template <int Depth>
using Moons = inn::SequenceINN<
    inn::Shape<2>,
    inn::Repeat<Depth, inn::AllInOneBlock<subnet_fc, inn::AllInOneOptions{.permute_soft = true}>>>;

double peak_rss_mib() {
    rusage u{};
    getrusage(RUSAGE_SELF, &u);
    return double(u.ru_maxrss) / 1024.0; // Linux: kibibytes
}

template <int Depth> int run(inn::train::memory_mode mode, const char* mode_name) {
    const double baseline = peak_rss_mib();
    inn::generator g{0};
    const auto x = inn::data::make_moons(256, 0.05, g);
    Moons<Depth> net{0};
    net.set_threads(1); // one gradient arena: the numbers do not depend on the machine's cores
    inn::train::trainer t{net, {.memory = mode}};
    const double loss = t.step(x, inn::train::max_likelihood);
    std::printf("blocks %3d  %-9s  kept values %7.1f KiB  trainer buffers %6.2f MiB  "
                "parameters %5.2f MiB  peak RSS %6.2f MiB (above baseline %5.2f MiB)  loss %.4f\n",
                Depth, mode_name, double(t.value_bytes()) / 1024,
                double(t.workspace_bytes()) / (1 << 20),
                double(t.parameter_scalars()) * sizeof(float) / (1 << 20), peak_rss_mib(),
                peak_rss_mib() - baseline, loss);
    return 0;
}
} // namespace

int main(int argc, char** argv) {
    const std::string depth = argc > 1 ? argv[1] : "8";
    const std::string mode = argc > 2 ? argv[2] : "store";
    if (mode != "store" && mode != "recompute") {
        std::fprintf(stderr, "usage: train_memory {8|64} {store|recompute}\n");
        return 2;
    }
    const auto m = mode == "store" ? inn::train::store : inn::train::recompute;
    if (depth == "8")
        return run<8>(m, mode.c_str());
    if (depth == "64")
        return run<64>(m, mode.c_str());
    std::fprintf(stderr, "usage: train_memory {8|64} {store|recompute}\n");
    return 2;
}
