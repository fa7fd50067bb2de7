// The README's models on the GPU (inn::cuda::network) beside the host backend, one table:
//
//   inn_gpu_bench [--batches=1,256,4096] [--rounds=15] [--json=FILE]
//
// Per model, batch and direction: the median time per call on the GPU (each round times a run
// of back-to-back calls on one stream with CUDA events, so the figure includes launch costs),
// the host backend's median on this machine's CPU (all cores), and at the largest batch the
// fraction of the GPU's FP32 FLOP floor reached. Models whose modules are not all on the device
// yet are listed as such. Weights are the host network's initialisation (timing does not depend
// on the values; parity is the tests' business).

#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include <inn/cuda.hpp>

#include "models.hpp"

namespace {

using inn::index_t;

std::vector<long> parse_list(std::string s) {
    std::vector<long> v;
    std::size_t at = 0;
    while (at < s.size()) {
        const std::size_t comma = s.find(',', at);
        v.push_back(std::stol(s.substr(at, comma - at)));
        if (comma == std::string::npos)
            break;
        at = comma + 1;
    }
    return v;
}

// 2 * multiply-adds of a GLOW block's two subnets (as benchmarks/bench_conv.cpp counts them).
constexpr double glow_conv(double len1, double len2, double k, double pixels) {
    return 2 * pixels * k * k * 256 * (len1 + 2 * len2) +
           2 * pixels * k * k * 256 * (len2 + 2 * len1);
}
constexpr double glow_fc(double len1, double len2) {
    return 2.0 * 512 * (len1 + 2 * len2) + 2.0 * 512 * (len2 + 2 * len1);
}

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}

void check(cudaError_t e) {
    if (e != cudaSuccess) {
        std::fprintf(stderr, "CUDA: %s\n", cudaGetErrorString(e));
        std::exit(1);
    }
}

struct gpu_info {
    std::string name;
    double fp32_flops = 0; // peak, FMA = 2 FLOPs
    double bytes_per_s = 0;
};

gpu_info query_gpu() {
    int dev = 0;
    check(cudaGetDevice(&dev));
    cudaDeviceProp p{};
    check(cudaGetDeviceProperties(&p, dev));
    int clock_khz = 0, mem_khz = 0, bus = 0;
    check(cudaDeviceGetAttribute(&clock_khz, cudaDevAttrClockRate, dev));
    check(cudaDeviceGetAttribute(&mem_khz, cudaDevAttrMemoryClockRate, dev));
    check(cudaDeviceGetAttribute(&bus, cudaDevAttrGlobalMemoryBusWidth, dev));
    // 128 FP32 lanes per SM on sm_80+ data-centre parts (sm_90: H100/H200).
    const int lanes = p.major >= 8 ? (p.major == 8 && p.minor == 0 ? 64 : 128) : 64;
    return {p.name, double(p.multiProcessorCount) * lanes * 2.0 * clock_khz * 1e3,
            2.0 * mem_khz * 1e3 * bus / 8.0};
}

struct row {
    std::string model, dir;
    long batch;
    double gpu_us, host_us, gflop;
};

template <class T> void fill(std::vector<T>& v, unsigned seed) {
    for (std::size_t i = 0; i < v.size(); ++i)
        v[i] = T(((seed + i * 2654435761u) % 2001) / 1000.0 - 1.0) * T(0.5);
}

// How the device network runs (inn::cuda::network's switches).
struct variant {
    bool fusion = true;     // use_fusion
    bool epilogues = false; // use_epilogues
    bool host = true;       // time the host backend too (the variants' rows leave it out)
};

template <class Net>
void bench_model(const char* name, double flops_per_sample, const std::vector<long>& batches,
                 int rounds, std::vector<row>& out, variant how = {}) {
    if (batches.empty())
        return;
    if constexpr (!inn::cuda::runs_on_device<Net>) {
        std::printf("%-11s not on the device yet (docs/gpu.md)\n", name);
        (void)flops_per_sample;
        (void)batches;
        (void)rounds;
        (void)out;
    } else {
        using S = typename Net::scalar;
        const long max_batch = *std::max_element(batches.begin(), batches.end());
        auto host = std::make_unique<Net>(0);
        host->reserve(max_batch);
        host->set_threads(int(std::max(1u, std::thread::hardware_concurrency())));
        inn::cuda::network<Net> g(*host);
        g.use_fusion(how.fusion);
        g.use_epilogues(how.epilogues);
        g.reserve(max_batch);
        const index_t nx = Net::input_dims().size(), nz = Net::output_dims().size();
        const index_t nc = Net::n_conditions > 0 ? Net::condition_dims().size() : 0;
        std::vector<S> hx(std::size_t(max_batch * nx)), hc(std::size_t(max_batch * nc));
        fill(hx, 1);
        fill(hc, 2);
        const auto& ctx = g.device_context();
        inn::cuda::device_buffer<S> x = inn::cuda::upload(ctx, hx.data(), index_t(hx.size()));
        inn::cuda::device_buffer<S> c = inn::cuda::upload(ctx, hc.data(), index_t(hc.size()));
        inn::cuda::device_buffer<S> z(max_batch * nz), xr(max_batch * nx), l(max_batch);
        cudaEvent_t t0, t1;
        check(cudaEventCreate(&t0));
        check(cudaEventCreate(&t1));
        const S* cp = nc ? c.data() : nullptr;
        for (long b : batches) {
            for (int dir = 0; dir < 2; ++dir) {
                auto call = [&] {
                    if (dir == 0)
                        g.forward_into(b, x.data(), z.data(), l.data(), cp);
                    else
                        g.inverse_into(b, z.data(), xr.data(), l.data(), cp);
                };
                call(); // warm-up (and z for the inverse)
                g.synchronize();
                const int reps = b <= 16 ? 200 : b <= 256 ? 50 : 10;
                std::vector<double> times;
                for (int r = 0; r < rounds; ++r) {
                    check(cudaEventRecord(t0, ctx.stream()));
                    for (int i = 0; i < reps; ++i)
                        call();
                    check(cudaEventRecord(t1, ctx.stream()));
                    check(cudaEventSynchronize(t1));
                    float ms = 0;
                    check(cudaEventElapsedTime(&ms, t0, t1));
                    times.push_back(1e3 * ms / reps);
                }
                // The host backend on the same data.
                inn::row_matrix<S> hxm = Eigen::Map<inn::row_matrix<S>>(hx.data(), b, nx);
                inn::row_matrix<S> hcm =
                    Eigen::Map<inn::row_matrix<S>>(hc.data(), b, nc > 0 ? nc : 0);
                inn::row_matrix<S> hz(b, nz), hxr(b, nx);
                inn::vector<S> hl(b);
                auto host_call = [&] {
                    if constexpr (Net::n_conditions > 0) {
                        if (dir == 0)
                            host->forward_into(hxm, hz, hl, inn::conditions(hcm));
                        else
                            host->inverse_into(hz, hxr, hl, inn::conditions(hcm));
                    } else {
                        if (dir == 0)
                            host->forward_into(hxm, hz, hl);
                        else
                            host->inverse_into(hz, hxr, hl);
                    }
                };
                if (!how.host) {
                    out.push_back({name, dir == 0 ? "forward" : "inverse", b, median(times), 0,
                                   flops_per_sample * double(b) / 1e9});
                    continue;
                }
                if (dir == 1) { // z from a forward call
                    if constexpr (Net::n_conditions > 0)
                        host->forward_into(hxm, hz, hl, inn::conditions(hcm));
                    else
                        host->forward_into(hxm, hz, hl);
                }
                host_call();
                std::vector<double> htimes;
                const int hreps = b <= 16 ? 20 : 1;
                for (int r = 0; r < std::min(rounds, b >= 256 ? 3 : 7); ++r) {
                    const auto s = std::chrono::steady_clock::now();
                    for (int i = 0; i < hreps; ++i)
                        host_call();
                    htimes.push_back(std::chrono::duration<double, std::micro>(
                                         std::chrono::steady_clock::now() - s)
                                         .count() /
                                     hreps);
                }
                out.push_back({name, dir == 0 ? "forward" : "inverse", b, median(times),
                               median(htimes), flops_per_sample * double(b) / 1e9});
            }
        }
        cudaEventDestroy(t0);
        cudaEventDestroy(t1);
    }
}

// mnist-cinn's dense products alone, as the network issues them (cuBLAS, FP32), at `batch`:
// per block Linear(402, 512), Linear(512, 784) and the soft permutation's 784 x 784 product.
// What the rest of a call (element-wise passes, launches) costs is the network's time less
// this. Also the first product with its rows padded from 402 to 404 scalars (16-byte aligned
// rows), which cuBLAS may serve with faster kernels.
void bench_mnist_products(long batch, int rounds, const gpu_info& gpu) {
    inn::cuda::context ctx;
    const int b = int(batch);
    auto buffer = [&](long n) {
        std::vector<float> h(static_cast<std::size_t>(n));
        fill(h, 3);
        return inn::cuda::upload(ctx, h.data(), index_t(n));
    };
    auto x = buffer(long(b) * 404), w1 = buffer(512 * 404), h = buffer(long(b) * 512),
         w2 = buffer(784 * 512), a = buffer(long(b) * 784), wp = buffer(784 * 784),
         y = buffer(long(b) * 784);
    cudaEvent_t t0, t1;
    check(cudaEventCreate(&t0));
    check(cudaEventCreate(&t1));
    auto time = [&](auto&& work) {
        work();
        std::vector<double> times;
        for (int r = 0; r < rounds; ++r) {
            check(cudaEventRecord(t0, ctx.stream()));
            work();
            check(cudaEventRecord(t1, ctx.stream()));
            check(cudaEventSynchronize(t1));
            float ms = 0;
            check(cudaEventElapsedTime(&ms, t0, t1));
            times.push_back(1e3 * ms);
        }
        return median(times);
    };
    namespace blas = inn::cuda::blas;
    auto first = [&](int ld) {
        blas::gemm_nt<float>(ctx, b, 512, 402, x.data(), ld, w1.data(), h.data(), 512);
    };
    const double t_all = time([&] {
        for (int k = 0; k < 12; ++k) {
            first(402);
            blas::gemm_nt<float>(ctx, b, 784, 512, h.data(), 512, w2.data(), a.data(), 784);
            blas::gemm_nt<float>(ctx, b, 784, 784, a.data(), 784, wp.data(), y.data(), 784);
        }
    });
    const double t_first = time([&] {
        for (int k = 0; k < 12; ++k)
            first(402);
    });
    // (w1 read with rows of 402 either way: only x's rows change; cuBLAS picks by all of them.)
    const double t_first_padded = time([&] {
        for (int k = 0; k < 12; ++k)
            blas::gemm_nt<float>(ctx, b, 512, 400, x.data(), 404, w1.data(), h.data(), 512);
    });
    const double flops = 12.0 * 2 * double(b) * (402 * 512 + 512 * 784 + 784 * 784);
    std::printf("mnist-cinn products alone at batch %ld: %.1f us (%.0f%% of the FP32 floor); "
                "the 12 Linear(402, 512): %.1f us, with K = 400 and rows of 404: %.1f us\n",
                batch, t_all, 100.0 * flops / gpu.fp32_flops * 1e6 / t_all, t_first,
                t_first_padded);
    cudaEventDestroy(t0);
    cudaEventDestroy(t1);
}

} // namespace

int main(int argc, char** argv) {
    std::vector<long> batches{1, 256, 4096};
    int rounds = 15;
    std::string json;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (a.rfind("--batches=", 0) == 0)
            batches = parse_list(a.substr(10));
        else if (a.rfind("--rounds=", 0) == 0)
            rounds = std::stoi(a.substr(9));
        else if (a.rfind("--json=", 0) == 0)
            json = a.substr(7);
        else {
            std::fprintf(stderr,
                         "usage: inn_gpu_bench [--batches=1,256,4096] [--rounds=15] [--json=F]\n");
            return 2;
        }
    }
    const gpu_info gpu = query_gpu();
    std::printf("GPU: %s (FP32 peak %.1f TFLOP/s, memory %.0f GB/s); host: %u threads\n",
                gpu.name.c_str(), gpu.fp32_flops / 1e12, gpu.bytes_per_s / 1e9,
                std::thread::hardware_concurrency());
    std::vector<row> rows;
    bench_model<bench::Moons>("moons", 8 * (2.0 * (1 * 512 + 512 * 2) + 2.0 * 2 * 2), batches,
                              rounds, rows);
    // The same model module by module (each block its own kernel, copies in and out), beside
    // the fused chain above.
    bench_model<bench::Moons>("moons/unfused", 8 * (2.0 * (1 * 512 + 512 * 2) + 2.0 * 2 * 2),
                              batches, rounds, rows, variant{.fusion = false, .host = false});
    bench_model<bench::MnistCINN>("mnist-cinn",
                                  12 * (2.0 * (402 * 512 + 512 * 784) + 2.0 * 784 * 784), batches,
                                  rounds, rows);
    // Bias and ReLU in cuBLASLt's epilogues (off by default until checked on a GPU).
    bench_model<bench::MnistCINN>("mnist-cinn/lt",
                                  12 * (2.0 * (402 * 512 + 512 * 784) + 2.0 * 784 * 784), batches,
                                  rounds, rows, variant{.epilogues = true, .host = false});
    // conv-cifar at batch <= 256 (its activations at 4096 exceed what the comparison needs).
    std::vector<long> conv_batches;
    for (long b : batches)
        if (b <= 256)
            conv_batches.push_back(b);
    bench_model<bench::ConvCIFAR>("conv-cifar",
                                  4 * glow_conv(2, 1, 3, 32 * 32) +
                                      6 * glow_conv(6, 6, 1, 16 * 16) +
                                      6 * glow_conv(6, 6, 3, 16 * 16) + 12 * glow_fc(384, 384),
                                  conv_batches, rounds, rows);

    bench_mnist_products(*std::max_element(batches.begin(), batches.end()), rounds, gpu);

    std::printf("\n%-13s %-8s %6s %12s %12s %9s %12s\n", "model", "pass", "batch", "GPU us",
                "host us", "host/GPU", "FP32 floor");
    for (const row& r : rows) {
        const double floor_us = r.gflop * 1e9 / gpu.fp32_flops * 1e6;
        if (r.host_us > 0)
            std::printf("%-13s %-8s %6ld %12.1f %12.1f %8.1fx %11.0f%%\n", r.model.c_str(),
                        r.dir.c_str(), r.batch, r.gpu_us, r.host_us, r.host_us / r.gpu_us,
                        r.gflop > 0 ? 100.0 * floor_us / r.gpu_us : 0.0);
        else
            std::printf("%-13s %-8s %6ld %12.1f %12s %9s %11.0f%%\n", r.model.c_str(),
                        r.dir.c_str(), r.batch, r.gpu_us, "-", "-",
                        r.gflop > 0 ? 100.0 * floor_us / r.gpu_us : 0.0);
    }
    if (!json.empty()) {
        if (FILE* f = std::fopen(json.c_str(), "w")) {
            std::fprintf(f, "{\"gpu\": \"%s\", \"rows\": [", gpu.name.c_str());
            for (std::size_t i = 0; i < rows.size(); ++i)
                std::fprintf(f,
                             "%s{\"model\": \"%s\", \"pass\": \"%s\", \"batch\": %ld, "
                             "\"gpu_us\": %.3f, \"host_us\": %.3f}",
                             i ? ", " : "", rows[i].model.c_str(), rows[i].dir.c_str(),
                             rows[i].batch, rows[i].gpu_us, rows[i].host_us);
            std::fprintf(f, "]}\n");
            std::fclose(f);
        }
    }
    return 0;
}
