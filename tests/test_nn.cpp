// The subnet layers (inn::nn) as production code compiles them: NaN and ±Inf through every
// activation on every kernel path (support/nn_nonfinite.hpp: hand-stated NaN patterns, PyTorch's
// values at ±Inf, a double reference), and the benchmark switches as compile-time constants.
// The same checks with the switches off run in test_benchmark_switches.cpp.

#include "support/nn_nonfinite.hpp"
#include "support/vector_targets.hpp"

#include <inn/core/aligned_vector.hpp>
#include <inn/nn/activation.hpp>
#include <inn/nn/conv2d.hpp>
#include <inn/nn/kernels.hpp>
#include <inn/nn/linear.hpp>
#include <inn/nn/sequential.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

namespace {

using namespace inn;
using namespace inn::test::nonfinite;

// Without INN_BENCHMARK_SWITCHES every switch is the constant `true`: the paths kept only for
// measuring are compiled out.
static_assert(!nn::kernels::switchable);
static_assert(nn::kernels::tuning().gemm && nn::kernels::tuning().conv &&
              nn::kernels::tuning().mlp && nn::kernels::tuning().fuse_activation &&
              nn::kernels::tuning().share_buffers && nn::kernels::tuning().views &&
              nn::kernels::tuning().fuse_coupling && nn::kernels::tuning().fuse_elementwise &&
              nn::kernels::tuning().pack_weights);

TEMPLATE_TEST_CASE("nn: NaN and +-Inf through the element-wise activation layers", "[nn][nan]",
                   float, double) {
    elementwise<TestType>(every_act{});
}

TEMPLATE_TEST_CASE("nn: NaN and +-Inf through Linear + activation, register-tiled product",
                   "[nn][nan]", float, double) {
    linear_tiled<TestType>(every_act{});
}

TEMPLATE_TEST_CASE("nn: NaN and +-Inf through Linear + activation, Eigen's product", "[nn][nan]",
                   float, double) {
    linear_eigen<TestType>(every_act{});
}

TEMPLATE_TEST_CASE("nn: NaN and +-Inf through Linear + activation, matrix-vector products",
                   "[nn][nan]", float, double) {
    linear_gemv<TestType>(every_act{});
}

TEMPLATE_TEST_CASE("nn: NaN and +-Inf through the fused small MLP", "[nn][nan]", float, double) {
    small_mlp<TestType>(every_act{});
}

TEMPLATE_TEST_CASE("nn: NaN and +-Inf through Conv2d 3x3 + activation, direct kernel", "[nn][nan]",
                   float, double) {
    conv_3x3<TestType>(every_act{});
}

TEMPLATE_TEST_CASE("nn: NaN and +-Inf through Conv2d 1x1 + activation, tiled and Eigen",
                   "[nn][nan]", float, double) {
    conv_1x1_tiled<TestType>(every_act{});
    conv_1x1_eigen<TestType>(every_act{});
}

// Every plan of the tiled product gives the same bits (each output one chain of multiply-adds
// over k in order), so the measured pick can never change a result; and the bits are a product:
// they agree with a long-double reference to rounding.
template <class S>
void check_gemm_plans(index_t In, index_t Out, index_t batch) {
    std::vector<S> X(std::size_t(batch * (In + 3)));
    std::vector<S> W(std::size_t(Out * In));
    std::vector<S> b(static_cast<std::size_t>(Out));
    generator g(std::uint64_t(In * 1000 + Out * 10 + batch));
    g.fill_uniform(X.data(), X.size(), S(-1), S(1));
    g.fill_uniform(W.data(), W.size(), S(-1), S(1));
    g.fill_uniform(b.data(), b.size(), S(-1), S(1));
    const index_t ldx = In + 3, ldy = Out + 5;
    const nn::kernels::gemm_plan plans[] = {{1, 0}, {2, 0}, {4, 8}, {4, 16}, {3, 24}, {4, 13},
                                            {4, 1}, {1, 7}};
    std::vector<S> scratch(std::size_t(nn::kernels::gemm_nt_scratch<S, 1>(4) * In));
    std::vector<S> first;
    const nn::detail::relu_fn relu{};
    for (const auto& plan : plans) {
        std::vector<S> Y(std::size_t(batch * ldy), S(7));
        nn::kernels::gemm_nt_dense<S>(X.data(), ldx, W.data(), b.data(), Y.data(), ldy, batch, In,
                                      Out, scratch.data(), relu, plan);
        if (first.empty()) {
            first = Y;
            for (index_t s = 0; s < batch; ++s)
                for (index_t o = 0; o < Out; ++o) {
                    long double ref = b[std::size_t(o)], mag = std::abs(ref);
                    for (index_t k = 0; k < In; ++k) {
                        const long double t = (long double)X[std::size_t(s * ldx + k)] *
                                              W[std::size_t(o * In + k)];
                        ref += t, mag += std::abs(t);
                    }
                    ref = std::max(ref, (long double)0);
                    CHECK(std::abs(Y[std::size_t(s * ldy + o)] - ref) <=
                          mag * 4 * std::numeric_limits<S>::epsilon());
                }
            for (index_t s = 0; s < batch; ++s) // the padding between rows is untouched
                for (index_t o = Out; o < ldy; ++o)
                    CHECK(Y[std::size_t(s * ldy + o)] == S(7));
        } else {
            INFO("plan " << plan.panels << " panels, " << plan.row_block << " rows");
            CHECK(std::memcmp(Y.data(), first.data(), Y.size() * sizeof(S)) == 0);
        }
    }
    // W's packed copy (zero past Out in its last block), through the plan and directly.
    aligned_vector<S> packed;
    packed.resize(nn::kernels::packed_size<S>(In, Out));
    nn::kernels::pack_weights(W.data(), In, Out, packed.data());
    for (bool through_plan : {true, false}) {
        INFO("packed W" << (through_plan ? ", through the plan" : ""));
        std::vector<S> Y(std::size_t(batch * ldy), S(7));
        if (through_plan)
            nn::kernels::gemm_nt_dense<S>(X.data(), ldx, W.data(), b.data(), Y.data(), ldy, batch,
                                          In, Out, scratch.data(), relu, {.packed = true},
                                          packed.data());
        else
            nn::kernels::gemm_nt_packed<S>(X.data(), ldx, packed.data(), b.data(), Y.data(), ldy,
                                           batch, In, Out, relu);
        CHECK(std::memcmp(Y.data(), first.data(), Y.size() * sizeof(S)) == 0);
    }
}

TEMPLATE_TEST_CASE("nn: every plan of the tiled product gives the same bits", "[nn][gemm]", float,
                   double) {
    // Out 8 and 29: part of one packed block; 130: blocks and a part (float 48, double 24).
    for (const auto& [In, Out] : {std::pair<index_t, index_t>{16, 8}, {37, 29}, {64, 130}})
        for (index_t batch : {3, 6, 13, 47, 48, 49, 100, 200, 211}) {
            INFO(In << " x " << Out << ", batch " << batch);
            check_gemm_plans<TestType>(In, Out, batch);
        }
}

TEST_CASE("nn: aligned_vector moves leave an empty vector that takes copies", "[nn]") {
    aligned_vector<double> a;
    a.resize(5);
    for (index_t i = 0; i < 5; ++i) a.data()[i] = double(i) + 0.5;
    aligned_vector<double> b = std::move(a);
    CHECK(a.empty());
    CHECK(a.data() == nullptr);
    a = b;  // allocates again (a size left behind made it skip that)
    REQUIRE(a.size() == 5);
    CHECK(a.data() != b.data());
    CHECK(std::memcmp(a.data(), b.data(), 5 * sizeof(double)) == 0);
    aligned_vector<double> c;
    c.resize(2);
    c = std::move(b);
    CHECK(b.empty());
    CHECK(c.size() == 5);
    b = c;
    CHECK(b.size() == 5);
    CHECK(b.data()[4] == 4.5);
}

TEST_CASE("nn: the measured pick of a large Linear keeps the default plan's bits", "[nn][gemm]") {
    // W of 512 x 784 floats (1.6 MB) is larger than half of any L2 seen here: the first call
    // times the candidates, later calls run the pick; every result equals the default plan's.
    using L = nn::Linear<512, 784>::bind<float, make_dims({512})>;
    const int picks_before = nn::kernels::detail::pick_count().load();
    generator g(5);
    L layer(g);
    const index_t batch = 200;
    std::vector<float> X(std::size_t(batch * 512)), scratch(std::size_t(L::scratch_size(batch)));
    g.fill_uniform(X.data(), X.size(), -1.f, 1.f);
    std::vector<float> ref(std::size_t(batch * 784)), Y(ref.size());
    nn::kernels::gemm_nt_dense<float>(X.data(), 512, layer.weight.data(), layer.bias.data(),
                                      ref.data(), 784, batch, 512, 784, scratch.data(),
                                      nn::kernels::no_act{});
    nn::kernels::gemm_plan plans[2];
    const int candidates = nn::kernels::gemm_candidates<float>(512, 784, batch,
                                                               L::scratch_panels(batch), plans);
    for (int call = 0; call < 3; ++call) {
        std::fill(Y.begin(), Y.end(), 0.f);
        layer.forward(cview<float>{X.data(), 512}, view<float>{Y.data(), 784}, batch,
                      scratch.data());
        CHECK(std::memcmp(Y.data(), ref.data(), Y.size() * sizeof(float)) == 0);
    }
    // With W's packed copy (as a network keeps it) a second pick is made, between the same
    // plans and the packed one; still the default plan's bits.
    layer.weight.packed.resize(nn::kernels::packed_size<float>(512, 784));
    nn::kernels::pack_weights(layer.weight.data(), 512, 784, layer.weight.packed.data());
    for (int call = 0; call < 3; ++call) {
        std::fill(Y.begin(), Y.end(), 0.f);
        layer.forward(cview<float>{X.data(), 512}, view<float>{Y.data(), 784}, batch,
                      scratch.data());
        CHECK(std::memcmp(Y.data(), ref.data(), Y.size() * sizeof(float)) == 0);
    }
    const std::string picks = nn::kernels::gemm_picks();
    INFO(picks);
    int lines = 0;
    for (auto at = picks.find("float 512x784, batch 128-255"); at != std::string::npos;
         at = picks.find("float 512x784, batch 128-255", at + 1))
        ++lines;
    // gemm_picks() lists the first gemm_pick_records picks: where earlier test cases in this
    // process filled the list (all of them in one run), it says that more were made.
    const int made = candidates == 2 ? 2 : 1;
    if (picks_before + made <= nn::kernels::gemm_pick_records)
        CHECK(lines == made);
    else
        CHECK(picks.find(" more, not listed\n") != std::string::npos);
}

// --- vector targets (kernels/targets.hpp) ----------------------------------------------------
// The dense kernels run on the widest vector target the CPU has; limit_vector_bytes makes the
// process run as a narrower machine would. Each target compiled here must give the products
// of a long-double reference to rounding; the targets with fused multiply-adds (AVX2, AVX-512)
// the same bits wherever each output is one chain of multiply-adds in input order.

template <class S> std::vector<S> uniform(std::size_t n, std::uint64_t seed) {
    std::vector<S> v(n);
    generator g(seed);
    g.fill_uniform(v.data(), n, S(-1), S(1));
    return v;
}

// A long-double sum of n terms after init, and the sum of their magnitudes (the scale of the
// rounding a float or double result may carry).
template <class Term>
std::pair<long double, long double> dot_reference(Term&& term, index_t n, long double init) {
    long double s = init, mag = std::abs(init);
    for (index_t k = 0; k < n; ++k) {
        const long double t = term(k);
        s += t, mag += std::abs(t);
    }
    return {s, mag};
}

TEMPLATE_TEST_CASE("nn: every vector target gives the products of the reference", "[nn][targets]",
                   float, double) {
    using S = TestType;
    test::vector_targets targets;
    INFO("targets: " << targets.bytes.size() << ", widest " << targets.bytes.front() << " bytes");
#if INN_VECTOR_DISPATCH
    // A baseline x86-64 build with GCC compiles the wider targets; this CPU runs at least AVX2
    // wherever the CI machines seen so far ran it (both kinds have AVX-512).
    if (nn::kernels::cpu_vector_bytes() >= 32)
        CHECK(targets.bytes.size() >= 2);
#endif
    // gemm_nt's packed panels (batches that fill several panels and leave a part) and packed
    // weights, gemm_rows (P a whole number of vectors, and not), the direct convolution.
    constexpr index_t In = 37, Out = 29, ldx = In + 3, ldy = Out + 5;
    const auto X = uniform<S>(std::size_t(211 * ldx), 1), W = uniform<S>(std::size_t(Out * In), 2),
               b = uniform<S>(std::size_t(Out), 3);
    constexpr index_t N = 12, K = 7;
    const auto Wr = uniform<S>(std::size_t(N * K), 4), B = uniform<S>(std::size_t(K * 80), 5);
    using conv = nn::kernels::conv_direct<S, 3, 5, 3, 1, 8, 8>;
    const auto cw = uniform<S>(std::size_t(5 * 3 * 9), 6), cx = uniform<S>(std::size_t(3 * 64), 7),
               cb = uniform<S>(5, 8), cgy = uniform<S>(std::size_t(5 * 64), 9);
    struct result {
        int bytes;
        std::vector<S> gemm, rows64, rows36, conv, conv_dw;
    };
    std::vector<result> results;
    const nn::detail::relu_fn relu{};
    for (int bytes : targets.bytes) {
        nn::kernels::limit_vector_bytes(bytes);
        result r{bytes, {}, {}, {}, {}, {}};
        std::vector<S> scratch(std::size_t(nn::kernels::gemm_nt_scratch<S, In>(4)));
        r.gemm.assign(std::size_t(211 * ldy), S(7));
        nn::kernels::gemm_nt_dense<S>(X.data(), ldx, W.data(), b.data(), r.gemm.data(), ldy, 211,
                                      In, Out, scratch.data(), relu, {4, 16});
        // From W's packed copy, walked in passes of this target's tile (gemm_packed): the same
        // bits.
        {
            aligned_vector<S> packed;
            packed.resize(nn::kernels::packed_size<S>(In, Out));
            nn::kernels::pack_weights(W.data(), In, Out, packed.data());
            std::vector<S> Yp(r.gemm.size(), S(7));
            nn::kernels::gemm_nt_packed<S>(X.data(), ldx, packed.data(), b.data(), Yp.data(),
                                           ldy, 211, In, Out, relu);
            CHECK(Yp == r.gemm);
        }
        for (index_t P : {64, 36}) {
            auto& C = P == 64 ? r.rows64 : r.rows36;
            C.assign(std::size_t(N * 80), S(7));
            nn::kernels::gemm_rows<S, N, K>(Wr.data(), B.data(), 80, P, b.data(), C.data(), 80,
                                            nn::kernels::no_act{});
        }
        std::vector<S> cs(std::size_t(conv::scratch_size));
        r.conv.assign(std::size_t(5 * 64), S(0));
        conv::run(cw.data(), cb.data(), cx.data(), r.conv.data(), cs.data(), relu);
        r.conv_dw.assign(cw.size(), S(0));
        conv::weight_gradient(cx.data(), cgy.data(), r.conv_dw.data(), cs.data());
        results.push_back(std::move(r));
    }
    // Long-double references (dot_reference).
    const long double eps = std::numeric_limits<S>::epsilon();
    for (const auto& r : results) {
        INFO("target of " << r.bytes << " bytes");
        for (index_t s = 0; s < 211; ++s)
            for (index_t o = 0; o < ldy; ++o) {
                const S y = r.gemm[std::size_t(s * ldy + o)];
                if (o >= Out) {
                    CHECK(y == S(7)); // the padding between rows untouched
                    continue;
                }
                auto [ref, mag] = dot_reference(
                    [&](index_t k) {
                        return (long double)X[std::size_t(s * ldx + k)] * W[std::size_t(o * In + k)];
                    },
                    In, b[std::size_t(o)]);
                CHECK(std::abs(y - std::max(ref, 0.0L)) <= mag * 4 * eps);
            }
        for (index_t P : {64, 36}) {
            const auto& C = P == 64 ? r.rows64 : r.rows36;
            for (index_t n = 0; n < N; ++n)
                for (index_t p = 0; p < 80; ++p) {
                    const S c = C[std::size_t(n * 80 + p)];
                    if (p >= P) {
                        CHECK(c == S(7));
                        continue;
                    }
                    auto [ref, mag] = dot_reference(
                        [&](index_t k) {
                            return (long double)Wr[std::size_t(n * K + k)] * B[std::size_t(k * 80 + p)];
                        },
                        K, b[std::size_t(n)]);
                    CHECK(std::abs(c - ref) <= mag * 4 * eps);
                }
        }
        for (int o = 0; o < 5; ++o)
            for (int i = 0; i < 8; ++i)
                for (int j = 0; j < 8; ++j) {
                    auto [ref, mag] = dot_reference(
                        [&](index_t k) {
                            const int c = int(k / 9), u = int(k % 9 / 3), t = int(k % 3);
                            const int ii = i + u - 1, jj = j + t - 1;
                            if (ii < 0 || ii >= 8 || jj < 0 || jj >= 8) return 0.0L;
                            return (long double)cw[std::size_t(o * 27 + k)] *
                                   cx[std::size_t(c * 64 + ii * 8 + jj)];
                        },
                        27, cb[std::size_t(o)]);
                    CHECK(std::abs(r.conv[std::size_t(o * 64 + i * 8 + j)] - std::max(ref, 0.0L)) <=
                          mag * 4 * eps);
                }
        for (int o = 0; o < 5; ++o)
            for (index_t k = 0; k < 27; ++k) {
                auto [ref, mag] = dot_reference(
                    [&](index_t q) {
                        const int c = int(k / 9), u = int(k % 9 / 3), t = int(k % 3);
                        const int i = int(q / 8), j = int(q % 8), ii = i + u - 1, jj = j + t - 1;
                        if (ii < 0 || ii >= 8 || jj < 0 || jj >= 8) return 0.0L;
                        return (long double)cgy[std::size_t(o * 64 + q)] *
                               cx[std::size_t(c * 64 + ii * 8 + jj)];
                    },
                    64, 0.0L);
                CHECK(std::abs(r.conv_dw[std::size_t(o * 27 + k)] - ref) <= mag * 4 * eps);
            }
    }
    // Targets with fused multiply-adds: the same bits for the products (one chain per output).
    for (std::size_t i = 1; i < results.size(); ++i) {
        if (!test::vector_targets::fma(results[i].bytes) || !test::vector_targets::fma(results[0].bytes))
            continue;
        INFO(results[0].bytes << " against " << results[i].bytes << " bytes");
        CHECK(results[i].gemm == results[0].gemm);
        CHECK(results[i].rows64 == results[0].rows64);
        CHECK(results[i].rows36 == results[0].rows36);
        CHECK(results[i].conv == results[0].conv);
    }
}

TEMPLATE_TEST_CASE("nn: every vector target gives the matrix-vector and backward products of the "
                   "reference",
                   "[nn][targets]", float, double) {
    using S = TestType;
    test::vector_targets targets;
    const long double eps = std::numeric_limits<S>::epsilon();
    // gemv: a few samples (In with and without a tail past the last pair of vectors, Out not
    // a whole number of register tiles); in bfloat16 too, from the packed copy (In with and
    // without a partial last chunk, Out not a whole number of row blocks: nothing past Out
    // written). Three samples: a pair read together and one alone, each sample's outputs the
    // bits of its own batch-1 call.
    constexpr index_t Out = 29, ldy = Out + 3, batch = 3;
    for (index_t In : {index_t(37), index_t(83), index_t(128)}) {
        const index_t ldx = In + 2;
        const auto X = uniform<S>(std::size_t(batch * ldx), 11),
                   W = uniform<S>(std::size_t(Out * In), 12), b = uniform<S>(std::size_t(Out), 13);
        std::vector<std::uint16_t> W16; // packed: rows in blocks, columns in chunks, padded
        nn::kernels::pack_bf16(W.data(), Out, In, W16);
        std::vector<S> xs(std::size_t(nn::kernels::gemv_bf16_scratch(In)));
        for (int bytes : targets.bytes) {
            nn::kernels::limit_vector_bytes(bytes);
            INFO("In " << In << ", target of " << bytes << " bytes");
            std::vector<S> Y(std::size_t(batch * ldy), S(7)), Y16(Y), Yrows(Y), Y16one(Y);
            nn::kernels::gemm_nt_dense<S>(X.data(), ldx, W.data(), b.data(), Y.data(), ldy, batch,
                                          In, Out, nullptr, nn::detail::relu_fn{});
            // W this small is cached: a register tile's rows at a time, sample after sample.
            // Walked as where W comes from memory (one row after the other, or half a tile's
            // rows side by side, for a pair of samples at once and then the third): the same
            // bits.
            for (auto walk :
                 {nn::kernels::weight_walk::one_stream, nn::kernels::weight_walk::side_by_side}) {
                std::fill(Yrows.begin(), Yrows.end(), S(7));
                nn::kernels::dispatch([&](auto target) {
                    gemv(target, W.data(), In, Out, X.data(), ldx, batch, b.data(), Yrows.data(),
                         ldy, nn::detail::relu_fn{}, walk);
                    return true;
                });
                CHECK(Yrows == Y);
            }
            nn::kernels::gemv_bf16<S>(W16.data(), In, Out, X.data(), ldx, batch, b.data(),
                                      Y16.data(), ldy, xs.data(), nn::kernels::no_act{});
            for (index_t s = 0; s < batch; ++s)
                nn::kernels::gemv_bf16<S>(W16.data(), In, Out, X.data() + s * ldx, ldx, 1, b.data(),
                                          Y16one.data() + s * ldy, ldy, xs.data(),
                                          nn::kernels::no_act{});
            CHECK(Y16one == Y16);
            for (index_t s = 0; s < batch; ++s)
                for (index_t o = 0; o < ldy; ++o) {
                    const std::size_t at = std::size_t(s * ldy + o);
                    if (o >= Out) {
                        CHECK(Y[at] == S(7));
                        CHECK(Y16[at] == S(7));
                        continue;
                    }
                    auto [ref, mag] = dot_reference(
                        [&](index_t k) {
                            return (long double)X[std::size_t(s * ldx + k)] *
                                   W[std::size_t(o * In + k)];
                        },
                        In, b[std::size_t(o)]);
                    CHECK(std::abs(Y[at] - std::max(ref, 0.0L)) <= mag * 4 * eps);
                    auto [ref16, mag16] = dot_reference(
                        [&](index_t k) {
                            return (long double)X[std::size_t(s * ldx + k)] *
                                   nn::kernels::from_bf16(nn::kernels::to_bf16(
                                       float(W[std::size_t(o * In + k)])));
                        },
                        In, b[std::size_t(o)]);
                    CHECK(std::abs(Y16[at] - ref16) <= mag16 * 4 * eps);
                }
        }
    }
    // matmul: C = A B and C += A B, A row-major and given transposed; m not a whole number of
    // register tiles (m % 8 = 3, 6, 5 and m % 4 = 3, 2, 1: each size of a last, partial tile),
    // n a whole number of vectors and not (B and C end at column n: nothing past it is read or
    // written, which the sanitizer build checks); k 11, and 300: more than one block of
    // kernels::isa::build::matmul_depth, the last one partial, each block starting from C's
    // partial sums. Eigen's GEMM where the target has 16-byte vectors.
    static_assert(nn::kernels::isa::build::matmul_depth < 300);
    for (index_t k : {index_t(11), index_t(300)}) {
        for (index_t m : {index_t(3), index_t(6), index_t(13)})
            for (index_t n : {index_t(5), index_t(37), index_t(48), index_t(69)}) {
                const auto A = uniform<S>(std::size_t(m * k), 14),
                           At = uniform<S>(std::size_t(k * m), 15);
                const index_t ldc = n + 1;
                const auto B = uniform<S>(std::size_t(k * n), 16),
                           C0 = uniform<S>(std::size_t(m * ldc), 17);
                std::vector<std::vector<S>> first;
                for (int bytes : targets.bytes) {
                    nn::kernels::limit_vector_bytes(bytes);
                    INFO("m " << m << ", n " << n << ", k " << k << ", target of " << bytes
                              << " bytes");
                    std::vector<std::vector<S>> got;
                    for (int form = 0; form < 4; ++form) {
                        const bool transposed = form & 1, accumulate = form & 2;
                        std::vector<S> C = C0;
                        const S* a = transposed ? At.data() : A.data();
                        const index_t lda = transposed ? m : k;
                        if (transposed && accumulate)
                            nn::kernels::matmul<S, true, true>(C.data(), ldc, a, lda, B.data(), n,
                                                               m, n, k);
                        else if (transposed)
                            nn::kernels::matmul<S, false, true>(C.data(), ldc, a, lda, B.data(), n,
                                                                m, n, k);
                        else if (accumulate)
                            nn::kernels::matmul<S, true>(C.data(), ldc, a, lda, B.data(), n, m, n,
                                                         k);
                        else
                            nn::kernels::matmul<S, false>(C.data(), ldc, a, lda, B.data(), n, m, n,
                                                          k);
                        for (index_t i = 0; i < m; ++i)
                            for (index_t j = 0; j < ldc; ++j) {
                                const std::size_t at = std::size_t(i * ldc + j);
                                if (j >= n) {
                                    CHECK(C[at] == C0[at]);
                                    continue;
                                }
                                auto [ref, mag] = dot_reference(
                                    [&](index_t p) {
                                        const S aip = transposed ? At[std::size_t(p * m + i)]
                                                                 : A[std::size_t(i * k + p)];
                                        return (long double)aip * B[std::size_t(p * n + j)];
                                    },
                                    k, accumulate ? C0[at] : S(0));
                                CHECK(std::abs(C[at] - ref) <= mag * 4 * eps);
                            }
                        got.push_back(std::move(C));
                    }
                    // Dispatched targets give the same bits (one chain of fused multiply-adds per
                    // output, in order); the build's own runs Eigen's GEMM at 16 bytes, and may
                    // lack FMA where wider.
                    const bool tile = bytes != nn::kernels::build_vector_bytes;
                    if (first.empty() && tile)
                        first = got;
                    else if (tile)
                        CHECK(got == first);
                }
            }
    }
}

// Conv2d -> activation -> Conv2d keeping H x W runs as one chain (kernels::conv_direct_chain),
// the hidden layer stored straight into the second convolution's padded planes: the same bits
// as the two layers one by one (each with its own padded copy), on every vector target. Grids
// narrower than a block of three vectors and wider, hidden widths that are not whole tiles, 3x3
// and 5x5 kernels, samples with gaps between them (left untouched), NaN and Inf in the input.
template <class S, int In, int Hidden, int Out, int K, int H, int W, class Act>
void check_conv_chain() {
    using seq =
        nn::bind_layer<nn::Sequential<nn::Conv2d<In, Hidden, K>, Act, nn::Conv2d<Hidden, Out, K>>,
                       S, make_dims({In, H, W})>;
    static_assert(seq::conv_chain);
    generator g(std::uint64_t(In * 100 + Hidden * 10 + K));
    const seq net(g);
    constexpr index_t batch = 3, ldx = index_t(In) * H * W + 5, ldy = index_t(Out) * H * W + 3;
    std::vector<S> x(std::size_t(batch * ldx));
    g.fill_uniform(x.data(), x.size(), S(-2), S(2));
    x[std::size_t(ldx + 1)] = std::numeric_limits<S>::quiet_NaN();
    x[std::size_t(2 * ldx + W + 2)] = std::numeric_limits<S>::infinity();
    const auto& conv1 = std::get<0>(net.layers);
    const auto& conv2 = std::get<2>(net.layers);
    using L0 = std::remove_cvref_t<decltype(conv1)>;
    using L2 = std::remove_cvref_t<decltype(conv2)>;
    test::vector_targets targets;
    for (int bytes : targets.bytes) {
        INFO(bytes << "-byte vectors");
        nn::kernels::limit_vector_bytes(bytes);
        std::vector<S> chain(std::size_t(batch * ldy), S(7)), layers = chain;
        std::vector<S> scratch(std::size_t(seq::scratch_size(batch)), S(-3));
        net.forward({x.data(), ldx}, {chain.data(), ldy}, batch, scratch.data());
        // One by one: each layer with its own scratch, the hidden layer in a buffer of its own.
        std::vector<S> hidden(std::size_t(batch * L0::out.size()));
        std::vector<S> s1(std::size_t(std::max(L0::scratch_size(batch), L2::scratch_size(batch))));
        conv1.forward_act(
            {x.data(), ldx}, {hidden.data(), L0::out.size()}, batch, s1.data(),
            typename std::remove_cvref_t<decltype(std::get<1>(net.layers))>::function{});
        conv2.forward({hidden.data(), L0::out.size()}, {layers.data(), ldy}, batch, s1.data());
        CHECK(std::memcmp(chain.data(), layers.data(), chain.size() * sizeof(S)) == 0);
        for (index_t n = 0; n < batch; ++n) // the gaps between samples
            for (index_t k = index_t(Out) * H * W; k < ldy; ++k)
                CHECK(chain[std::size_t(n * ldy + k)] == S(7));
    }
}

TEMPLATE_TEST_CASE("nn: Conv2d -> activation -> Conv2d as one chain gives the layers' bits",
                   "[nn][conv]", float, double) {
    using S = TestType;
    check_conv_chain<S, 3, 20, 5, 3, 5, 7, nn::ReLU>();   // grid of 35 extended positions
    check_conv_chain<S, 1, 16, 2, 3, 12, 12, nn::ReLU>(); // several blocks per plane
    check_conv_chain<S, 2, 9, 4, 5, 6, 9, nn::Tanh>();    // 5x5, padding 2
}

TEMPLATE_TEST_CASE("nn: lane_sums gives every vector's sum of lanes in its lane", "[nn][simd]",
                   float, double) {
    using S = TestType;
    using V = nn::kernels::simd<S>;
    constexpr int L = V::lanes;
    std::mt19937 rng(5);
    std::uniform_int_distribution<int> small(-1000, 1000);
    std::normal_distribution<double> normal;
    for (int round = 0; round < 50; ++round) {
        // Integers: every order of additions gives the exact sum.
        typename V::vec v[L], w[L];
        S exact[L], real[L];
        for (int j = 0; j < L; ++j) {
            exact[j] = 0;
            double sum = 0;
            for (int l = 0; l < L; ++l) {
                v[j][l] = S(small(rng));
                exact[j] += v[j][l];
                w[j][l] = S(normal(rng));
                sum += double(w[j][l]);
            }
            real[j] = S(sum);
        }
        double magnitude_bound[L];
        for (int j = 0; j < L; ++j) {
            magnitude_bound[j] = 0;
            for (int l = 0; l < L; ++l) magnitude_bound[j] += std::abs(double(w[j][l]));
        }
        const auto ints = V::lane_sums(v);
        const auto reals = V::lane_sums(w);
        for (int j = 0; j < L; ++j) {
            INFO("lane " << j);
            CHECK(ints[j] == exact[j]);
            // Summed in another order: within L roundings of the magnitudes.
            CHECK(std::abs(double(reals[j]) - double(real[j])) <=
                  L * std::numeric_limits<S>::epsilon() * magnitude_bound[j]);
        }
    }
}

// nn::kernels::sum (the log-det sums of AllInOneBlock): exact on integers, within n roundings of
// the magnitudes on reals, and the same bits wherever the values lie in memory.
TEMPLATE_TEST_CASE("nn: kernels::sum adds a run of any length", "[nn][simd]", float, double) {
    using S = TestType;
    constexpr int L = nn::kernels::simd<S>::lanes;
    std::mt19937 rng(11);
    std::uniform_int_distribution<int> small(-1000, 1000);
    std::normal_distribution<double> normal;
    for (int n = 0; n <= 4 * L + 3; ++n) {
        INFO("n = " << n);
        const auto count = std::size_t(n);
        std::vector<S> ints(count), reals(count + L);
        long exact = 0;
        long double real = 0, magnitude = 0;
        for (int i = 0; i < n; ++i) {
            ints[std::size_t(i)] = S(small(rng));
            exact += long(ints[std::size_t(i)]);
            reals[std::size_t(i)] = S(normal(rng));
            real += reals[std::size_t(i)];
            magnitude += std::abs(reals[std::size_t(i)]);
        }
        CHECK(nn::kernels::sum(ints.data(), n) == S(exact));
        const S r = nn::kernels::sum(reals.data(), n);
        CHECK(std::abs(double(r - S(real))) <=
              double(n + 1) * double(std::numeric_limits<S>::epsilon() * magnitude));
        for (int shift = 1; shift < L; ++shift) { // the same values one to L - 1 places on
            std::copy_backward(reals.begin() + shift - 1, reals.begin() + shift - 1 + n,
                               reals.begin() + shift + n);
            CHECK(nn::kernels::sum(reals.data() + shift, n) == r);
        }
    }
}

// nn::kernels::atan (float; the soft clamp of the coupling blocks) against the exactly rounded
// atan (std::atan in double): within 2.5 ulp over all of float's range - every 8191st bit
// pattern, and every pattern near the ends of the reduction's ranges - and NaN, +-Inf, +-0 as
// std::atan. A packet gives each lane the bits of the scalar form.
TEST_CASE("nn: the vectorised float atan is within 2.5 ulp of atan", "[nn][atan]") {
    constexpr int L = 16;
    using A = Eigen::Array<float, L, 1>;
    std::vector<float> xs;
    for (std::uint32_t bits = 0; bits < 0x7f800000u; bits += 8191) {
        float x;
        std::memcpy(&x, &bits, sizeof x);
        xs.push_back(x);
        xs.push_back(-x);
    }
    for (float edge : {0.4142135623730950f, 2.414213562373095f, 1.f}) {
        float lo = edge, hi = edge;
        for (int k = 0; k < 2000; ++k) {
            lo = std::nextafter(lo, 0.f);
            hi = std::nextafter(hi, 10.f);
            xs.insert(xs.end(), {lo, hi, -lo, -hi});
        }
    }
    const float inf = std::numeric_limits<float>::infinity();
    xs.insert(xs.end(), {0.f, -0.f, inf, -inf, std::numeric_limits<float>::denorm_min(),
                         std::numeric_limits<float>::max(), -std::numeric_limits<float>::max()});
    while (xs.size() % L != 0)
        xs.push_back(1.f);

    double worst = 0;
    float worst_x = 0;
    bool same_bits = true;
    for (std::size_t i = 0; i < xs.size(); i += L) {
        const A y = nn::kernels::atan(A(Eigen::Map<const A>(xs.data() + i)));
        for (int l = 0; l < L; ++l) {
            const float x = xs[i + std::size_t(l)];
            const float s = nn::kernels::atan(x);
            same_bits = same_bits && std::memcmp(&s, &y[l], sizeof s) == 0;
            const double ref = std::atan(double(x));
            const float rf = std::fabs(float(ref));
            const double ulp = double(std::nextafter(rf, inf)) - double(rf);
            const double err = std::fabs(double(s) - ref) / ulp;
            if (err > worst) {
                worst = err;
                worst_x = x;
            }
        }
    }
    INFO("worst at x = " << worst_x << " (" << worst << " ulp)");
    CHECK(worst <= 2.5);
    CHECK(same_bits);
    const float nan = std::numeric_limits<float>::quiet_NaN();
    CHECK(std::isnan(nn::kernels::atan(nan)));
    CHECK(nn::kernels::atan(A(A::Constant(nan))).isNaN().all());
    CHECK(nn::kernels::atan(inf) == std::atan(inf));
    CHECK(nn::kernels::atan(-inf) == std::atan(-inf));
    CHECK(std::signbit(nn::kernels::atan(-0.f)));
    CHECK(std::signbit(nn::kernels::atan(A(A::Constant(-0.f)))[L - 1]));
}

} // namespace
