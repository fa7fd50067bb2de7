// Google Benchmark of the moons model (benchmarks/models.hpp); see bench_common.hpp.
// Also the reference the issue names: moons hand-written as one fused loop of fixed-size Eigen
// expressions per sample (moons-handwritten/fwd), with the network's own parameters.
#include <array>
#include <cmath>

#include "bench_common.hpp"

namespace {

struct handwritten_moons {
    struct block {
        Eigen::Matrix<float, 512, 1> w1, b1;
        Eigen::Matrix<float, 2, 512, Eigen::RowMajor> w2;
        Eigen::Vector2f b2, sig, off;
        Eigen::Matrix2f perm;
        float log_sig;
    };
    std::array<block, 8> blocks;

    explicit handwritten_moons(bench::Moons& net) {
        [&]<std::size_t... K>(std::index_sequence<K...>) {
            (take(blocks[K], *net.module<int(K)>()), ...);
        }
        (std::make_index_sequence<8>{});
    }
    template <class M> static void take(block& b, const M& m) {
        const auto& l0 = std::get<0>(m.subnet.layers);
        const auto& l2 = std::get<2>(m.subnet.layers);
        b.w1 = Eigen::Map<const Eigen::Matrix<float, 512, 1>>(l0.weight.data());
        b.b1 = Eigen::Map<const Eigen::Matrix<float, 512, 1>>(l0.bias.data());
        b.w2 = Eigen::Map<const Eigen::Matrix<float, 2, 512, Eigen::RowMajor>>(l2.weight.data());
        b.b2 = Eigen::Map<const Eigen::Vector2f>(l2.bias.data());
        b.log_sig = 0;
        for (int c = 0; c < 2; ++c) {
            b.sig[c] = inn::aio_global_scale_activation<float>(inn::global_affine_type::softplus,
                                                               m.global_scale.values[c]);
            b.off[c] = m.global_offset.values[c];
            b.log_sig += std::log(b.sig[c]);
        }
        b.perm = Eigen::Map<const Eigen::Matrix<float, 2, 2, Eigen::RowMajor>>(m.w_perm.data());
    }

    void forward(const float* x, float* z, float* ljd, long batch) const {
        for (long n = 0; n < batch; ++n) {
            Eigen::Vector2f v(x[2 * n], x[2 * n + 1]);
            float j = 0;
            for (const block& b : blocks) {
                const Eigen::Matrix<float, 512, 1> h = (b.w1 * v[0] + b.b1).cwiseMax(0.f);
                const Eigen::Vector2f a = b.w2 * h + b.b2;
                const float s = 2.f * std::tanh(0.1f * a[0] / 2.f);
                const Eigen::Vector2f u(v[0], v[1] * std::exp(s) + 0.1f * a[1]);
                v = b.perm * (u.cwiseProduct(b.sig) + b.off);
                j += s + b.log_sig;
            }
            z[2 * n] = v[0];
            z[2 * n + 1] = v[1];
            ljd[n] = j;
        }
    }
};

} // namespace

int main(int argc, char** argv) {
    // Per sample and block: Linear(1, 512) + Linear(512, 2) and the 2x2 soft permutation.
    constexpr double flops = 8 * (2.0 * (1 * 512 + 512 * 2) + 2.0 * 2 * 2);
    return bench::run<bench::Moons>(
        argc, argv, "moons", flops, {1, 16, 256, 4096}, {100, 256},
        [](bench::Moons& net, const std::vector<long>& batches) {
            auto ref = std::make_shared<handwritten_moons>(net);
            for (long b : batches) {
                std::string name =
                    "moons-handwritten/fwd/batch:" + std::to_string(b) + "/threads:1";
                benchmark::RegisterBenchmark(
                    name.c_str(),
                    [=](benchmark::State& st) {
                        bench::batch_data<bench::Moons> d(b);
                        for (auto _ : st) {
                            ref->forward(d.x.data(), d.z.data(), d.ljd.data(), b);
                            benchmark::ClobberMemory();
                        }
                        st.counters["FLOP/s"] = benchmark::Counter(
                            flops * double(b), benchmark::Counter::kIsIterationInvariantRate);
                    })
                    ->UseRealTime()
                    ->MeasureProcessCPUTime();
            }
        });
}
