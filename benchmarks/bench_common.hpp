#pragma once
// The harness shared by bench_moons.cpp, bench_mnist.cpp and bench_conv.cpp: Google Benchmark
// cases for forward and inverse of one model at several batch sizes and thread counts, a
// training step in both memory modes, plus the modes benchmarks/compare_pytorch.py uses to hand
// both sides the same weights and inputs:
//
//   bench_moons [--weights=W.safetensors] [--threads=1,2] [--batches=1,16,256,4096]
//               [--train-batches=100,256] [--check=IN.safetensors:OUT.safetensors]
//               [--grad=IN.safetensors:OUT.safetensors] [--info] [Google Benchmark flags]
//
//   --weights  loads every parameter by its FrEIA state_dict key (inn::load_safetensors);
//   --train-batches  the batches of the training cases (empty: none);
//   --check    runs forward and inverse on IN's "x" (and "c") and writes "z", "ljd", "x_rev",
//              "ljd_rev" to OUT, then exits;
//   --grad     one evaluation of the maximum-likelihood loss on IN's "x" (and "c") and its
//              backward pass, in each memory mode on a copy of the loaded network: writes
//              "<mode>.loss" and "<mode>.<key>" (dL/dθ of every trainable parameter, by its
//              state_dict key) for mode = store, recompute to OUT, then exits;
//   --info     prints one JSON line: FLOPs per sample, parameter bytes, workspace bytes;
//   --bf16     the cases run with bfloat16 weights (network::use_bf16_weights; they matter at
//              batch 1 and 2); --check also writes "z_bf16", "ljd_bf16" (forward, one sample per
//              call) and "x_rev_bf16", "ljd_rev_bf16" (the inverse of the float32 z);
//   --vector-bytes=N  caps the dense kernels' vector target at N-byte vectors (64, 32, 16;
//              inn::nn::kernels::limit_vector_bytes): a build for baseline x86-64
//              (-DINN_BENCHMARK_ARCH=x86-64) runs as a machine without AVX-512 or AVX2 would;
//   --off=a,b  switches kernels off for the whole run, to measure what they buy
//              (inn::nn::kernels::tuning(): gemm, conv, mlp, fuse_activation,
//              share_buffers, views, fuse_coupling, fuse_elementwise, pack_weights,
//              weight_walk, relu_units;
//              mutable only with INN_BENCHMARK_SWITCHES, which benchmarks/CMakeLists.txt
//              defines for every benchmark).
//
// The cases are named <model>/<fwd|inv>/batch:<B>/threads:<T>; every call goes through the
// allocation-free forward_into / inverse_into with the workspace reserved beforehand. Training
// cases, <model>-train/<store|recompute>/batch:<B>/threads:1, time one step as FrEIA's quick
// start takes it: forward, max_likelihood loss, backward, Adam (lr 1e-3), on a copy of the
// loaded network (the weights the other cases see stay untouched), the same batch every step.

#if !defined(INN_BENCHMARK_SWITCHES)
#error "the benchmarks need INN_BENCHMARK_SWITCHES for --off (benchmarks/CMakeLists.txt sets it)"
#endif

#include <benchmark/benchmark.h>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <inn/inn.hpp>
#include <inn/io/safetensors.hpp>
#include <inn/io/state_dict.hpp>
#include <inn/train.hpp>

#include "models.hpp"

namespace bench {

inline std::vector<long> parse_list(std::string_view s) {
    std::vector<long> v;
    while (!s.empty()) {
        auto comma = s.find(',');
        v.push_back(std::stol(std::string(s.substr(0, comma))));
        if (comma == std::string_view::npos)
            break;
        s.remove_prefix(comma + 1);
    }
    return v;
}

template <class Net> void set_threads(Net& net, int n) {
    if constexpr (requires { net.set_threads(n); })
        net.set_threads(n);
}

template <class Net> constexpr bool conditional = Net::n_conditions > 0;

/// One model's data for a batch: inputs, a one-hot condition (conditional models), outputs.
template <class Net> struct batch_data {
    static constexpr inn::index_t n = Net::input_dims().size();
    static constexpr inn::index_t m = Net::output_dims().size();
    inn::row_matrix<float> x, z, c;
    inn::vector<float> ljd;

    explicit batch_data(inn::index_t batch) : x(batch, n), z(batch, m), ljd(batch) {
        inn::generator g(1);
        g.fill_normal(x.data(), std::size_t(x.size()), 0.f, 1.f);
        if constexpr (conditional<Net>) {
            c = inn::row_matrix<float>::Zero(batch, Net::condition_dims().size());
            for (inn::index_t i = 0; i < batch; ++i)
                c(i, i % c.cols()) = 1;
        }
    }
    void forward(Net& net) {
        if constexpr (conditional<Net>)
            net.forward_into(x, z, ljd, inn::conditions(c));
        else
            net.forward_into(x, z, ljd);
    }
    void inverse(Net& net) {
        if constexpr (conditional<Net>)
            net.inverse_into(z, x, ljd, inn::conditions(c));
        else
            net.inverse_into(z, x, ljd);
    }
};

/// Reads a float32 tensor of `rows x cols` from a safetensors file.
inline inn::row_matrix<float> read_matrix(const inn::io::safetensors_file& f, const char* key,
                                          inn::index_t cols) {
    const auto* t = f.find(key);
    if (!t)
        throw std::runtime_error(std::string("check input lacks tensor ") + key);
    inn::index_t numel = 1;
    for (auto d : t->shape)
        numel *= d;
    inn::row_matrix<float> m(numel / cols, cols);
    f.copy_to(*t, std::span<float>(m.data(), std::size_t(m.size())));
    return m;
}

template <class Net> int check(Net& net, const std::string& spec) {
    auto colon = spec.find(':');
    auto in = inn::io::safetensors_file::read(spec.substr(0, colon));
    auto x = read_matrix(in, "x", Net::input_dims().size());
    const inn::index_t batch = x.rows();
    inn::row_matrix<float> c;
    if constexpr (conditional<Net>)
        c = read_matrix(in, "c", Net::condition_dims().size());
    inn::row_matrix<float> z(batch, Net::output_dims().size()), xr(batch, x.cols());
    inn::vector<float> ljd(batch), ljd_rev(batch);
    net.reserve(batch);
    if constexpr (conditional<Net>) {
        net.forward_into(x, z, ljd, inn::conditions(c));
        net.inverse_into(z, xr, ljd_rev, inn::conditions(c));
    } else {
        net.forward_into(x, z, ljd);
        net.inverse_into(z, xr, ljd_rev);
    }
    auto vec = [](const auto& m) { return std::vector<float>(m.data(), m.data() + m.size()); };
    std::vector<inn::io::tensor_to_write> out;
    out.push_back(inn::io::make_tensor("z", {batch, z.cols()}, vec(z)));
    out.push_back(inn::io::make_tensor("ljd", {batch}, vec(ljd)));
    out.push_back(inn::io::make_tensor("x_rev", {batch, xr.cols()}, vec(xr)));
    out.push_back(inn::io::make_tensor("ljd_rev", {batch}, vec(ljd_rev)));
    // The same forward split across two threads (each runs its own rows).
    inn::row_matrix<float> z2(batch, Net::output_dims().size());
    inn::vector<float> ljd2(batch);
    set_threads(net, 2);
    if constexpr (conditional<Net>)
        net.forward_into(x, z2, ljd2, inn::conditions(c));
    else
        net.forward_into(x, z2, ljd2);
    set_threads(net, 1);
    out.push_back(inn::io::make_tensor("z_threads2", {batch, z2.cols()}, vec(z2)));
    // With bfloat16 weights, one sample per call (where they are read): z and log-det of x, and
    // x back from the float32 z, for their accuracy against float32.
    net.use_bf16_weights();
    inn::row_matrix<float> zh(batch, z.cols()), xh(batch, x.cols());
    inn::vector<float> ljdh(batch), ljd_revh(batch);
    for (inn::index_t b = 0; b < batch; ++b) {
        inn::row_matrix<float> xb = x.row(b), zb = z.row(b), zo(1, z.cols()), xo(1, x.cols());
        inn::vector<float> l(1), lr(1);
        if constexpr (conditional<Net>) {
            inn::row_matrix<float> cb = c.row(b);
            net.forward_into(xb, zo, l, inn::conditions(cb));
            net.inverse_into(zb, xo, lr, inn::conditions(cb));
        } else {
            net.forward_into(xb, zo, l);
            net.inverse_into(zb, xo, lr);
        }
        zh.row(b) = zo;
        xh.row(b) = xo;
        ljdh[b] = l[0];
        ljd_revh[b] = lr[0];
    }
    net.use_bf16_weights(false);
    out.push_back(inn::io::make_tensor("z_bf16", {batch, z.cols()}, vec(zh)));
    out.push_back(inn::io::make_tensor("ljd_bf16", {batch}, vec(ljdh)));
    out.push_back(inn::io::make_tensor("x_rev_bf16", {batch, x.cols()}, vec(xh)));
    out.push_back(inn::io::make_tensor("ljd_rev_bf16", {batch}, vec(ljd_revh)));
    inn::io::write_safetensors(spec.substr(colon + 1), out);
    return 0;
}

/// One loss evaluation and backward pass per memory mode on IN's batch; the gradients to OUT.
template <class Net> int gradients(const Net& loaded, const std::string& spec) {
    auto colon = spec.find(':');
    auto in = inn::io::safetensors_file::read(spec.substr(0, colon));
    const auto x = read_matrix(in, "x", Net::input_dims().size());
    inn::row_matrix<float> c;
    if constexpr (conditional<Net>)
        c = read_matrix(in, "c", Net::condition_dims().size());
    std::vector<inn::io::tensor_to_write> out;
    for (auto mode : {inn::train::store, inn::train::recompute}) {
        const std::string prefix = mode == inn::train::store ? "store." : "recompute.";
        auto net = std::make_unique<Net>(loaded);
        inn::train::trainer t{*net, {.memory = mode}};
        float loss;
        if constexpr (conditional<Net>)
            loss = t.step(x, inn::train::max_likelihood, inn::conditions(c));
        else
            loss = t.step(x, inn::train::max_likelihood);
        out.push_back(inn::io::make_tensor(prefix + "loss", {}, std::vector<float>{loss}));
        std::as_const(*net).visit([&](const std::string& key, const inn::tensor_ref<float>& p) {
            if (p.real && p.trainable && p.grad()) {
                const float* g = p.grad();
                out.push_back(inn::io::make_tensor(
                    prefix + key, p.shape.as_vector(),
                    std::vector<float>(g, g + p.shape.numel())));
            }
        });
    }
    inn::io::write_safetensors(spec.substr(colon + 1), out);
    return 0;
}

/// Registers the training cases of `net`'s model: one step per iteration, both memory modes.
template <class Net>
void register_training(Net& net, const char* name, double flops_per_sample,
                       const std::vector<long>& batches) {
    for (long b : batches)
        for (auto mode : {inn::train::store, inn::train::recompute}) {
            std::string case_name = std::string(name) + "-train/" +
                                    (mode == inn::train::store ? "store" : "recompute") +
                                    "/batch:" + std::to_string(b) + "/threads:1";
            Net* p = &net;
            benchmark::RegisterBenchmark(
                case_name.c_str(),
                [=](benchmark::State& st) {
                    auto copy = std::make_unique<Net>(*p);
                    set_threads(*copy, 1);
                    batch_data<Net> d(b);
                    inn::train::trainer t{*copy, {.memory = mode}};
                    inn::train::Adam opt{*copy, {.lr = 1e-3}};
                    auto step = [&] {
                        if constexpr (conditional<Net>)
                            return t.step(d.x, inn::train::max_likelihood, inn::conditions(d.c));
                        else
                            return t.step(d.x, inn::train::max_likelihood);
                    };
                    step(); // warm-up: the trainer's buffers
                    opt.step();
                    for (auto _ : st) {
                        benchmark::DoNotOptimize(step());
                        opt.step();
                    }
                    // Three times the forward FLOPs: the usual estimate of forward + backward.
                    st.counters["FLOP/s"] =
                        benchmark::Counter(3 * flops_per_sample * double(b),
                                           benchmark::Counter::kIsIterationInvariantRate);
                })
                ->UseRealTime()
                ->MeasureProcessCPUTime();
        }
}

/// Runs the harness for model `Net` named `name`. `flops(batch)`: the model's multiply-add
/// FLOPs per call (linear layers, convolutions, soft permutation matrices).
/// `train_batches`: the default batches of the training cases.
template <class Net, class Extra = void (*)(Net&, const std::vector<long>&)>
int run(int argc, char** argv, const char* name, double flops_per_sample, std::vector<long> batches,
        std::vector<long> train_batches, Extra extra = nullptr) {
    auto net = std::make_unique<Net>(0);
    std::vector<long> threads{1, 2};
    std::string check_spec, grad_spec;
    bool info = false;
    std::vector<char*> rest{argv[0]};
    for (int i = 1; i < argc; ++i) {
        std::string_view a = argv[i];
        if (a.starts_with("--weights="))
            inn::load_safetensors(*net, std::string(a.substr(10)));
        else if (a.starts_with("--threads="))
            threads = parse_list(a.substr(10));
        else if (a.starts_with("--batches="))
            batches = parse_list(a.substr(10));
        else if (a.starts_with("--train-batches="))
            train_batches = parse_list(a.substr(16));
        else if (a.starts_with("--grad="))
            grad_spec = std::string(a.substr(7));
        else if (a.starts_with("--check="))
            check_spec = std::string(a.substr(8));
        else if (a == "--info")
            info = true;
        else if (a == "--bf16")
            net->use_bf16_weights();
        else if (a.starts_with("--vector-bytes="))
            inn::nn::kernels::limit_vector_bytes(int(parse_list(a.substr(15)).at(0)));
        else if (a.starts_with("--off=")) {
            auto& t = inn::nn::kernels::tuning();
            for (std::string_view k = a.substr(6); !k.empty();) {
                auto comma = k.find(',');
                auto key = k.substr(0, comma);
                if (key == "gemm")
                    t.gemm = false;
                else if (key == "conv")
                    t.conv = false;
                else if (key == "mlp")
                    t.mlp = false;
                else if (key == "fuse_activation")
                    t.fuse_activation = false;
                else if (key == "share_buffers")
                    t.share_buffers = false;
                else if (key == "views")
                    t.views = false;
                else if (key == "fuse_coupling")
                    t.fuse_coupling = false;
                else if (key == "fuse_elementwise")
                    t.fuse_elementwise = false;
                else if (key == "pack_weights")
                    t.pack_weights = false;
                else if (key == "weight_walk")
                    t.weight_walk = false;
                else if (key == "relu_units")
                    t.relu_units = false;
                else
                    throw std::runtime_error("unknown switch " + std::string(key));
                k = comma == std::string_view::npos ? std::string_view() : k.substr(comma + 1);
            }
        } else
            rest.push_back(argv[i]);
    }
    if (!check_spec.empty())
        return check(*net, check_spec);
    if (!grad_spec.empty())
        return gradients(*net, grad_spec);
    if (info) {
        long long weights = 0;
        net->visit([&](const std::string&, const inn::tensor_ref<float>& t) {
            if (t.real)
                weights += t.shape.numel() * 4;
        });
        // Per sample at batch 256: the naive sum of all intermediate tensors (a buffer per
        // connection), the buffers as shared by the compile-time liveness analysis, and those
        // plus the scratch of the largest module (the whole workspace of one thread).
        const long long naive = (long long)Net::unshared_buffer_bytes(256) / 256;
        const long long ws = (long long)Net::workspace_bytes(256) / 256;
        const long long scratch =
            (long long)inn::graph::executor<float, typename Net::description>::scratch_size(256) *
            4 / 256;
        std::printf("{\"model\": \"%s\", \"flops_per_sample\": %.0f, \"param_bytes\": %lld, "
                    "\"edge_bytes_per_sample\": %lld, \"shared_edge_bytes_per_sample\": %lld, "
                    "\"workspace_bytes_per_sample\": %lld}\n",
                    name, flops_per_sample, weights, naive, ws - scratch, ws);
        return 0;
    }
    long max_batch = 1;
    for (long b : batches)
        max_batch = std::max(max_batch, b);
    net->reserve(max_batch);
    for (int dir = 0; dir < 2; ++dir)
        for (long t : threads)
            for (long b : batches) {
                std::string case_name = std::string(name) + (dir == 0 ? "/fwd" : "/inv") +
                                        "/batch:" + std::to_string(b) +
                                        "/threads:" + std::to_string(t);
                Net* p = net.get();
                benchmark::RegisterBenchmark(case_name.c_str(),
                                             [=](benchmark::State& st) {
                                                 set_threads(*p, int(t));
                                                 batch_data<Net> d(b);
                                                 d.forward(*p); // warm-up, and z for the inverse
                                                 for (auto _ : st) {
                                                     if (dir == 0)
                                                         d.forward(*p);
                                                     else
                                                         d.inverse(*p);
                                                     benchmark::ClobberMemory();
                                                 }
                                                 st.counters["FLOP/s"] = benchmark::Counter(
                                                     flops_per_sample * double(b),
                                                     benchmark::Counter::kIsIterationInvariantRate);
                                                 set_threads(*p, 1);
                                             })
                    ->UseRealTime()
                    ->MeasureProcessCPUTime();
            }
    if constexpr (!std::is_pointer_v<Extra>)
        extra(*net, batches);
    else if (extra)
        extra(*net, batches);
    register_training(*net, name, flops_per_sample, train_batches);
    int n = int(rest.size());
    benchmark::Initialize(&n, rest.data());
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    // Which kernels ran (stderr: the JSON on stdout stays the benchmark's own).
    const auto& c = inn::nn::kernels::caches();
    std::fprintf(stderr,
                 "%s: dense kernels on %s (%d-byte vectors; the build's: %d), L1d %ld KiB, L2 %ld "
                 "KiB; weights past half of L2 at batch 1-2 read %s; measured gemm picks:\n%s",
                 name, inn::nn::kernels::vector_target_name(),
                 inn::nn::kernels::vector_target_bytes(), inn::nn::kernels::build_vector_bytes,
                 c.l1d / 1024, c.l2 / 1024,
                 inn::nn::kernels::wide_weight_walk() == inn::nn::kernels::weight_walk::one_stream
                     ? "as one stream"
                     : "rows side by side",
                 inn::nn::kernels::gemm_picks().empty() ? "  (none: no product large enough)\n"
                                                        : inn::nn::kernels::gemm_picks().c_str());
    return 0;
}

} // namespace bench
