// Google Benchmark of the convolutional CIFAR model (benchmarks/models.hpp); see bench_common.hpp.
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
} // namespace

int main(int argc, char** argv) {
    constexpr double flops = 4 * glow_conv(2, 1, 3, 32 * 32) + 6 * glow_conv(6, 6, 1, 16 * 16) +
                             6 * glow_conv(6, 6, 3, 16 * 16) + 12 * glow_fc(384, 384);
    return bench::run<bench::ConvCIFAR>(argc, argv, "conv-cifar", flops, {1, 16, 64}, {16});
}
