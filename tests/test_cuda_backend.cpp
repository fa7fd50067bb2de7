// inn::cuda::network beyond the golden files: the device network against its host twin on
// blocks the fixtures do not reach (wide soft permutations, which take the layer-by-layer path
// rather than the fused small-block kernel), the inverse as a network, parameters uploaded
// again, CUDA-graph replays, no device allocation per call, and every refused argument.
// Built twice: by g++ on thrust's host system (inn_cuda_host_tests) and by nvcc for a GPU
// (inn_cuda_tests, tests/cuda/test_cuda_backend.cu). Options are named constants and every
// type is spelled out, as nvcc needs (tests/cuda/test_cuda_parity.cu).

#include <catch2/catch.hpp>

#include <inn/cuda.hpp>
#include <inn/inn.hpp>
#include <inn/modules/actnorm.hpp>
#include <inn/modules/all_in_one_block.hpp>
#include <inn/modules/permute_random.hpp>

#include <cmath>
#include <vector>

namespace {

using namespace inn;

struct fc24 {
    template <int I, int O>
    using net = nn::Sequential<nn::Linear<I, 24>, nn::Tanh, nn::Linear<24, O>>;
};
struct fc_relu { // Linear-ReLU-Linear on 40 channels: the layer-by-layer path
    template <int I, int O>
    using net = nn::Sequential<nn::Linear<I, 48>, nn::ReLU, nn::Linear<48, O>>;
};
struct fc_wide { // Linear-ReLU-Linear-ReLU-Linear: not the fused kernel's shape
    template <int I, int O>
    using net = nn::Sequential<nn::Linear<I, 16>, nn::ReLU, nn::Linear<16, 16>, nn::ReLU,
                               nn::Linear<16, O>>;
};

constexpr AllInOneOptions soft{.permute_soft = true};
constexpr AllInOneOptions gin_hard{.gin_block = true};
constexpr AllInOneOptions householder{.permute_soft = true, .learned_householder_permutation = 2};
constexpr PermuteRandomOptions seed5{.seed = 5};

// 40 channels: the layer-by-layer path; two conditions, read by alternate blocks.
using WideSoft = SequenceINN<
    Shape<40>, Conditions<Shape<3>, Shape<2>>, Conditioned<AllInOneBlock<fc24, soft>, 0>,
    Conditioned<AllInOneBlock<fc24, soft>, 1>, Conditioned<AllInOneBlock<fc24, soft>, 0>>;
using WideGin =
    SequenceINN<Shape<40>, Repeat<2, AllInOneBlock<fc24, gin_hard>>, PermuteRandom<seed5>>;
using WideRelu = SequenceINN<Shape<40>, Repeat<2, AllInOneBlock<fc_relu, soft>>>;
using WideHouseholder = SequenceINN<Shape<20>, Repeat<2, AllInOneBlock<fc_wide, householder>>>;
// 6 channels and a small subnet: the fused kernel.
using SmallSoft = SequenceINN<Shape<6>, Repeat<4, AllInOneBlock<fc24, soft>>>;
// Conditioned small blocks: still one chain.
using SmallCond =
    SequenceINN<Shape<5>, Conditions<Shape<3>, Shape<2>>, Conditioned<AllInOneBlock<fc24, soft>, 0>,
                Conditioned<AllInOneBlock<fc24, soft>, 1>,
                Conditioned<AllInOneBlock<fc24, soft>, 1>>;
using WithActNorm = SequenceINN<Shape<6>, ActNorm, AllInOneBlock<fc24, soft>>;

template <Scalar S> row_matrix<S> data(index_t rows, index_t cols, int seed) {
    row_matrix<S> m(rows, cols);
    for (index_t i = 0; i < m.size(); ++i)
        m.data()[i] = S(std::sin(0.37 * double(i) + seed) * 1.5);
    return m;
}

template <class A, class B> double max_rel(const A& a, const B& b) {
    return double((a - b).cwiseAbs().maxCoeff()) / (1.0 + double(b.cwiseAbs().maxCoeff()));
}

// The device against the host on `batch` samples, both directions; tol relative.
template <class Net>
void compare_with_host(Net& host, index_t batch, double tol, bool fusion = true,
                       bool epilogues = false) {
    using S = typename Net::scalar;
    inn::cuda::network<Net> g(host);
    g.use_fusion(fusion);
    g.use_epilogues(epilogues);
    const row_matrix<S> x = data<S>(batch, Net::input_dims().size(), 1);
    if constexpr (Net::n_conditions == 0) {
        auto [z, l] = host.forward(x);
        auto [dz, dl] = g.forward(x);
        CHECK(max_rel(dz, z) <= tol);
        CHECK(max_rel(dl, l) <= tol);
        auto [xr, lr] = host.inverse(z);
        auto [dxr, dlr] = g.inverse(z);
        CHECK(max_rel(dxr, xr) <= tol);
        CHECK(max_rel(dlr, lr) <= tol);
        CHECK(max_rel(dxr, x) <= 100 * tol); // and it inverts
    }
}

// A host network that still awaits ActNorm's data initialisation is refused (once ActNorm is
// on the device; a template, so that the check compiles away until then).
template <class Net> void refuses_uninitialised() {
    if constexpr (inn::cuda::runs_on_device<Net>) {
        Net fresh{1};
        REQUIRE_THROWS_WITH(inn::cuda::network<Net>(fresh), Catch::Contains("ActNorm"));
    }
}

} // namespace

TEST_CASE("cuda: the layer-by-layer path equals the host on wide blocks", "[cuda]") {
    SECTION("soft permutation with two conditions, double") {
        WideSoft::with_scalar<double> host{3};
        inn::cuda::network<WideSoft::with_scalar<double>> g(host);
        const auto x = data<double>(9, 40, 1);
        const auto c0 = data<double>(9, 3, 2), c1 = data<double>(9, 2, 3);
        auto [z, l] = host.forward(x, conditions(c0, c1));
        // Through the device-pointer API, with strided rows (stride 48 for 40 scalars).
        const auto& ctx = g.device_context();
        row_matrix<double> xs = row_matrix<double>::Zero(9, 48);
        xs.leftCols(40) = x;
        inn::cuda::device_buffer<double> dx = inn::cuda::upload(ctx, xs.data(), xs.size());
        inn::cuda::device_buffer<double> dc0 = inn::cuda::upload(ctx, c0.data(), c0.size());
        inn::cuda::device_buffer<double> dc1 = inn::cuda::upload(ctx, c1.data(), c1.size());
        inn::cuda::device_buffer<double> dz(9 * 40), dl(9);
        const inn::cuda::dcview<double> in[1] = {{dx.data(), 48}};
        const inn::cuda::dview<double> out[1] = {{dz.data(), 40}};
        const inn::cuda::dcview<double> cs[2] = {{dc0.data(), 3}, {dc1.data(), 2}};
        g.forward_into(9, in, out, dl.data(), cs);
        row_matrix<double> z_dev(9, 40);
        vector<double> l_dev(9);
        inn::cuda::copy_to_host(ctx, static_cast<const double*>(dz.data()), z_dev.data(), 9 * 40);
        inn::cuda::copy_to_host(ctx, static_cast<const double*>(dl.data()), l_dev.data(), 9);
        g.synchronize();
        CHECK(max_rel(z_dev, z) <= 1e-12);
        CHECK(max_rel(l_dev, l) <= 1e-12);
        // The inverse through the same API gives x back.
        inn::cuda::device_buffer<double> dxr(9 * 40);
        const inn::cuda::dcview<double> zin[1] = {{dz.data(), 40}};
        const inn::cuda::dview<double> xout[1] = {{dxr.data(), 40}};
        g.inverse_into(9, zin, xout, dl.data(), cs);
        row_matrix<double> xr(9, 40);
        inn::cuda::copy_to_host(ctx, static_cast<const double*>(dxr.data()), xr.data(), 9 * 40);
        g.synchronize();
        CHECK(max_rel(xr, x) <= 1e-12);
    }
    SECTION("GIN with a hard permutation, then PermuteRandom, float") {
        WideGin host{4};
        compare_with_host(host, 17, 2e-5);
    }
    SECTION("learned Householder permutation and a deeper subnet, double") {
        WideHouseholder::with_scalar<double> host{5};
        compare_with_host(host, 5, 1e-12);
    }
    // Bias and ReLU in cuBLASLt's epilogue (on a GPU; the host system has one path).
    SECTION("dense layers with epilogues, float") {
        WideRelu host{11};
        compare_with_host(host, 37, 2e-5, true, true);
    }
    SECTION("dense layers with epilogues, double") {
        WideRelu::with_scalar<double> host{12};
        compare_with_host(host, 19, 1e-12, true, true);
    }
    SECTION("the fused small-block kernel, block by block, float") {
        SmallSoft host{6};
        compare_with_host(host, 33, 2e-5, false);
    }
    SECTION("the same blocks as one fused chain, float") {
        SmallSoft host{6};
        compare_with_host(host, 33, 2e-5);
    }
}

TEST_CASE("cuda: a chain of small blocks runs as one kernel", "[cuda]") {
    SECTION("which networks are such a chain") {
        SmallSoft small{1};
        WideGin wide{1};
        inn::cuda::network<SmallSoft> g(small);
        inn::cuda::network<WideGin> gw(wide);
        CHECK(g.fused());
        CHECK_FALSE(gw.fused());
        g.use_fusion(false);
        CHECK_FALSE(g.fused());
    }
    SECTION("conditions read where the caller has them; in place; without the log-det") {
        SmallCond::with_scalar<double> host{2};
        inn::cuda::network<SmallCond::with_scalar<double>> g(host), unfused(host);
        unfused.use_fusion(false);
        REQUIRE(g.fused());
        const auto x = data<double>(11, 5, 1), c0 = data<double>(11, 3, 2),
                   c1 = data<double>(11, 2, 3);
        auto [z, l] = host.forward(x, conditions(c0, c1));
        const auto& ctx = g.device_context();
        // Conditions with strided rows (3 scalars in rows of 4).
        row_matrix<double> c0s = row_matrix<double>::Zero(11, 4);
        c0s.leftCols(3) = c0;
        inn::cuda::device_buffer<double> dc0 = inn::cuda::upload(ctx, c0s.data(), c0s.size());
        inn::cuda::device_buffer<double> dc1 = inn::cuda::upload(ctx, c1.data(), c1.size());
        const inn::cuda::dcview<double> cs[2] = {{dc0.data(), 4}, {dc1.data(), 2}};
        for (auto* net : {&g, &unfused}) {
            inn::cuda::device_buffer<double> dx = inn::cuda::upload(ctx, x.data(), x.size()),
                                             dl(11);
            const inn::cuda::dcview<double> in[1] = {{dx.data(), 5}};
            const inn::cuda::dview<double> out[1] = {{dx.data(), 5}}; // in place
            net->forward_into(11, in, out, dl.data(), cs);
            row_matrix<double> z_dev(11, 5);
            vector<double> l_dev(11);
            inn::cuda::copy_to_host(ctx, static_cast<const double*>(dx.data()), z_dev.data(), 55);
            inn::cuda::copy_to_host(ctx, static_cast<const double*>(dl.data()), l_dev.data(), 11);
            net->synchronize();
            CHECK(max_rel(z_dev, z) <= 1e-12);
            CHECK(max_rel(l_dev, l) <= 1e-12);
            // Back again, in place, no log-determinant.
            net->inverse_into(11, in, out, nullptr, cs);
            row_matrix<double> x_dev(11, 5);
            inn::cuda::copy_to_host(ctx, static_cast<const double*>(dx.data()), x_dev.data(), 55);
            net->synchronize();
            CHECK(max_rel(x_dev, x) <= 1e-12);
        }
    }
}

TEST_CASE("cuda: the inverse as a network of its own runs on the device", "[cuda]") {
    SmallSoft::with_scalar<double> host{7};
    inverse_t<SmallSoft::with_scalar<double>> sampler(host);
    inn::cuda::network<inverse_t<SmallSoft::with_scalar<double>>> g(sampler);
    const auto z = data<double>(8, 6, 4);
    auto [x, l] = sampler.forward(z);
    auto [dx, dl] = g.forward(z);
    CHECK(max_rel(dx, x) <= 1e-12);
    CHECK(max_rel(dl, l) <= 1e-12);
}

TEST_CASE("cuda: upload() follows the host's parameters; replays repeat the first call", "[cuda]") {
    SmallSoft::with_scalar<double> host{8};
    inn::cuda::network<SmallSoft::with_scalar<double>> g(host);
    const auto x = data<double>(12, 6, 5);
    auto first = g.forward(x);
    for (int i = 0; i < 3; ++i) { // recorded on the first call, replayed after
        auto again = g.forward(x);
        CHECK(again.z == first.z);
        CHECK(again.log_jac_det == first.log_jac_det);
    }
    host.visit([](const std::string& key, const tensor_ref<double>& t) {
        if (t.real && key.ends_with("global_offset"))
            for (index_t i = 0; i < t.shape.numel(); ++i)
                t.real[i] += 0.25;
    });
    auto stale = g.forward(x);
    CHECK(stale.z == first.z); // the device keeps its copy until told
    g.upload(host);
    auto [z, l] = host.forward(x);
    auto [dz, dl] = g.forward(x);
    CHECK(max_rel(dz, z) <= 1e-12);
    CHECK(max_rel(dl, l) <= 1e-12);
    CHECK(max_rel(dz, first.z) > 1e-3);
}

TEST_CASE("cuda: calls allocate no device memory once reserved", "[cuda]") {
    SmallSoft host{9};
    WideGin wide{9};
    inn::cuda::network<SmallSoft> g(host);
    inn::cuda::network<WideGin> gw(wide);
    g.reserve(64);
    gw.reserve(64);
    const auto& ctx = g.device_context();
    const auto x = data<float>(64, 6, 1), xw = data<float>(64, 40, 1);
    inn::cuda::device_buffer<float> dx = inn::cuda::upload(ctx, x.data(), x.size()), dz(64 * 6),
                                    dl(64);
    inn::cuda::device_buffer<float> dxw = inn::cuda::upload(ctx, xw.data(), xw.size()),
                                    dzw(64 * 40);
    g.forward_into(64, dx.data(), dz.data(), dl.data());
    gw.forward_into(64, dxw.data(), dzw.data(), dl.data());
    const auto before = inn::cuda::device_allocations();
    for (int i = 0; i < 5; ++i) {
        g.forward_into(64 - i, dx.data(), dz.data(), dl.data());
        g.inverse_into(64, dz.data(), dx.data(), nullptr);
        gw.forward_into(32, dxw.data(), dzw.data(), dl.data());
        gw.inverse_into(64, dzw.data(), dxw.data(), dl.data());
    }
    g.synchronize();
    gw.synchronize();
    CHECK(inn::cuda::device_allocations() == before);
}

TEST_CASE("cuda: bad arguments are refused before anything runs", "[cuda]") {
    SmallSoft host{10};
    inn::cuda::network<SmallSoft> g(host);
    g.reserve(8);
    const auto& ctx = g.device_context();
    inn::cuda::device_buffer<float> dx(16 * 6), dz(16 * 6), dl(16);
    // More than reserved.
    REQUIRE_THROWS_AS(g.forward_into(9, dx.data(), dz.data(), dl.data()), data_error);
    // A null input, output or condition names the node.
    REQUIRE_THROWS_WITH(g.forward_into(4, nullptr, dz.data(), dl.data()),
                        Catch::Contains("input") && Catch::Contains("null"));
    REQUIRE_THROWS_WITH(g.inverse_into(4, dz.data(), nullptr, dl.data()),
                        Catch::Contains("output") && Catch::Contains("null"));
    // Rows shorter than a sample.
    const inn::cuda::dcview<float> in[1] = {{dx.data(), 5}};
    const inn::cuda::dview<float> out[1] = {{dz.data(), 6}};
    REQUIRE_THROWS_WITH(g.forward_into(4, in, out, dl.data()), Catch::Contains("stride 5"));
    // The wrong number of tensors.
    const inn::cuda::dview<float> outs[2] = {{dz.data(), 6}, {dz.data(), 6}};
    const inn::cuda::dcview<float> in6[1] = {{dx.data(), 6}};
    REQUIRE_THROWS_AS(g.forward_into(4, in6, outs, dl.data()), data_error);
    REQUIRE_THROWS_AS(g.forward(data<float>(3, 5, 1)), data_error); // 5 columns, not 6
    refuses_uninitialised<WithActNorm>();
    (void)ctx;
}
