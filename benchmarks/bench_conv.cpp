// Google Benchmark of the convolutional CIFAR model (benchmarks/models.hpp); see bench_common.hpp.
// Also elementwise-chain/{fwd,inv}: the element-wise half of a Glow flow step at CIFAR size
// (ActNorm -> PermuteRandom -> LearnedElementwiseScaling -> IRevNetUpsampling), which the network
// runs as one fused pass (graph/fusion.hpp); --off=fuse_elementwise runs it module by module.
#include <inn/modules/actnorm.hpp>
#include <inn/modules/elementwise_scaling.hpp>

#include "bench_common.hpp"

namespace {
// 2 * multiply-adds of one GLOW block's two subnets: conv(c_in -> 256, k) + conv(256 -> c_out, k).
constexpr double glow_conv(double len1, double len2, double k, double pixels) {
    auto subnet = [&](double in, double out) { return 2 * pixels * k * k * 256 * (in + out); };
    return subnet(len1, 2 * len2) + subnet(len2, 2 * len1);
}
constexpr double glow_fc(double len1, double len2) {
    auto subnet = [&](double in, double out) { return 2.0 * 512 * (in + out); };
    return subnet(len1, 2 * len2) + subnet(len2, 2 * len1);
}

using Chain = inn::SequenceINN<inn::Shape<12, 16, 16>, inn::ActNorm, inn::PermuteRandom<>,
                               inn::LearnedElementwiseScaling<>, inn::IRevNetUpsampling<>>;

void register_chain(bench::ConvCIFAR&, const std::vector<long>& batches) {
    static Chain chain(3);  // reserved now: the switches are read by reserve()
    long max_batch = 1;
    for (long b : batches) max_batch = std::max(max_batch, b);
    chain.reserve(max_batch);
    for (int dir = 0; dir < 2; ++dir)
        for (long b : batches) {
            const std::string name = std::string("elementwise-chain/") + (dir ? "inv" : "fwd") +
                                     "/batch:" + std::to_string(b) + "/threads:1";
            benchmark::RegisterBenchmark(name.c_str(), [=](benchmark::State& st) {
                bench::batch_data<Chain> d(b);
                d.forward(chain);  // warm-up (ActNorm's data initialisation), and z
                for (auto _ : st) {
                    if (dir == 0)
                        d.forward(chain);
                    else
                        d.inverse(chain);
                    benchmark::ClobberMemory();
                }
                st.counters["B/s"] = benchmark::Counter(2.0 * 4 * 3072 * double(b),
                                                        benchmark::Counter::kIsIterationInvariantRate);
            })->UseRealTime();
        }
}
} // namespace

int main(int argc, char** argv) {
    constexpr double flops = 4 * glow_conv(2, 1, 3, 32 * 32) + 6 * glow_conv(6, 6, 1, 16 * 16) +
                             6 * glow_conv(6, 6, 3, 16 * 16) + 12 * glow_fc(384, 384);
    return bench::run<bench::ConvCIFAR>(argc, argv, "conv-cifar", flops, {1, 16, 64}, {16},
                                        register_chain);
}
