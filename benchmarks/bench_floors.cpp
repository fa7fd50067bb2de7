// The machine's limits that the model benchmarks are read against (one thread each):
//   floors/fma_peak     float32 FMAs on 12 independent vector accumulators (the FLOP ceiling);
//   floors/sgemm/N      Eigen's float32 GEMM, N x N x N (the best matrix product available);
//   floors/read_bw      streaming reads of a 1 GiB buffer (the memory ceiling for weights);
//   floors/read_bw_cycled/<bytes>  (registered by --read-bytes=N,M) a buffer of that size - a
//                       model's weights - read again and again: what the last-level cache keeps
//                       from one pass to the next counts, as it does for a network's weights
//                       from one call to the next.
// compare_pytorch.py divides each model's FLOPs and weight bytes by these.

#include <benchmark/benchmark.h>

#include <cstddef>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include <Eigen/Core>

namespace {

// The widest vector register of the target (-march=native): the FMA loop below must keep each
// accumulator in one register, so a vector wider than the registers would not compile.
#if defined(__AVX512F__)
constexpr int vector_bytes = 64;
#elif defined(__AVX__)
constexpr int vector_bytes = 32;
#else
constexpr int vector_bytes = 16;
#endif
constexpr int lanes = vector_bytes / int(sizeof(float));
typedef float vec __attribute__((vector_size(vector_bytes)));

// Twelve independent chains of FMAs (enough to cover the latency of two FMA pipes); the empty
// asm keeps each chain in a register and stops the compiler from shortening the loop.
__attribute__((noinline)) float fma_loop(long n, float seed) {
    vec b = vec{} + 0.999f, a = vec{} + 1e-3f;
    vec c0 = a + seed, c1 = c0 + 1, c2 = c0 + 2, c3 = c0 + 3, c4 = c0 + 4, c5 = c0 + 5;
    vec c6 = c0 + 6, c7 = c0 + 7, c8 = c0 + 8, c9 = c0 + 9, c10 = c0 + 10, c11 = c0 + 11;
    for (long k = 0; k < n; ++k) {
        c0 = c0 * b + a;
        c1 = c1 * b + a;
        c2 = c2 * b + a;
        c3 = c3 * b + a;
        c4 = c4 * b + a;
        c5 = c5 * b + a;
        c6 = c6 * b + a;
        c7 = c7 * b + a;
        c8 = c8 * b + a;
        c9 = c9 * b + a;
        c10 = c10 * b + a;
        c11 = c11 * b + a;
        asm volatile("" : "+v"(c0), "+v"(c1), "+v"(c2), "+v"(c3), "+v"(c4), "+v"(c5));
        asm volatile("" : "+v"(c6), "+v"(c7), "+v"(c8), "+v"(c9), "+v"(c10), "+v"(c11));
    }
    vec s = c0 + c1 + c2 + c3 + c4 + c5 + c6 + c7 + c8 + c9 + c10 + c11;
    float r = 0;
    for (int i = 0; i < lanes; ++i)
        r += s[i];
    return r;
}

void fma_peak(benchmark::State& st) {
    const long n = 1 << 20;
    for (auto _ : st)
        benchmark::DoNotOptimize(fma_loop(n, float(st.iterations())));
    st.counters["FLOP/s"] =
        benchmark::Counter(double(n) * 12 * lanes * 2, benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(fma_peak)->Name("floors/fma_peak")->UseRealTime();

void sgemm(benchmark::State& st) {
    const long n = st.range(0);
    Eigen::MatrixXf a = Eigen::MatrixXf::Random(n, n), b = Eigen::MatrixXf::Random(n, n), c(n, n);
    for (auto _ : st) {
        c.noalias() = a * b;
        benchmark::DoNotOptimize(c.data());
    }
    st.counters["FLOP/s"] = benchmark::Counter(2.0 * double(n) * double(n) * double(n),
                                               benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(sgemm)->Name("floors/sgemm")->Arg(512)->Arg(1024)->UseRealTime();

// Reads `bytes` (rounded up to whole groups of four vectors) once per iteration.
void read_buffer(benchmark::State& st, std::size_t bytes) {
    std::vector<vec> buf((bytes + 4 * sizeof(vec) - 1) / (4 * sizeof(vec)) * 4);
    for (std::size_t i = 0; i < buf.size(); ++i)
        buf[i] = vec{} + float(i & 7);
    for (auto _ : st) {
        vec s0{}, s1{}, s2{}, s3{};
        for (std::size_t i = 0; i < buf.size(); i += 4) {
            s0 += buf[i];
            s1 += buf[i + 1];
            s2 += buf[i + 2];
            s3 += buf[i + 3];
        }
        benchmark::DoNotOptimize(s0 + s1 + s2 + s3);
    }
    st.counters["B/s"] = benchmark::Counter(double(buf.size() * sizeof(vec)),
                                            benchmark::Counter::kIsIterationInvariantRate);
}

void read_bw(benchmark::State& st) { read_buffer(st, std::size_t(1) << 30); }
BENCHMARK(read_bw)->Name("floors/read_bw")->UseRealTime();

} // namespace

int main(int argc, char** argv) {
    std::vector<char*> rest;
    for (int i = 0; i < argc; ++i) {
        std::string_view a = argv[i];
        if (!a.starts_with("--read-bytes=")) {
            rest.push_back(argv[i]);
            continue;
        }
        for (a.remove_prefix(13); !a.empty();) {
            const auto comma = a.find(',');
            const std::string n(a.substr(0, comma));
            const std::size_t bytes = std::stoull(n);
            benchmark::RegisterBenchmark(("floors/read_bw_cycled/" + n).c_str(),
                                         [bytes](benchmark::State& st) {
                                             read_buffer(st, bytes);
                                         })
                ->UseRealTime();
            a = comma == std::string_view::npos ? std::string_view() : a.substr(comma + 1);
        }
    }
    int n = int(rest.size());
    benchmark::Initialize(&n, rest.data());
    if (benchmark::ReportUnrecognizedArguments(n, rest.data()))
        return 1;
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return 0;
}
