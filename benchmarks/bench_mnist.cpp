// Google Benchmark of the conditional MNIST model (benchmarks/models.hpp); see bench_common.hpp.
#include "bench_common.hpp"

int main(int argc, char** argv) {
    // Per sample and block: Linear(392 + 10, 512) + Linear(512, 784), the 784x784 permutation.
    constexpr double flops = 12 * (2.0 * (402 * 512 + 512 * 784) + 2.0 * 784 * 784);
    return bench::run<bench::MnistCINN>(argc, argv, "mnist-cinn", flops, {1, 16, 256, 4096},
                                         {128, 256});
}
