#pragma once
// NaN and ±Inf through the subnet layers (inn::nn), every activation on every kernel path.
// PyTorch keeps NaN: a NaN input, weight or bias makes NaN exactly the outputs that depend on it,
// and an activation never turns NaN into a number.
//
// Truths: the NaN pattern of each case stated by hand (a sample's row, an output's column, a
// neighbourhood of pixels, everything), the activations' values at ±Inf from PyTorch's
// definitions (a table written out below), and the layer recomputed in double term by term with
// torch's activations written independently of inn::nn, for the remaining outputs.
//
// Shared by test_nn.cpp (inn_tests: the production build, every switch a constant) and
// test_benchmark_switches.cpp (built like the benchmarks: the switches on and off, the target's
// widest vectors), so each path is checked as both builds compile it.

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include <inn/nn/activation.hpp>
#include <inn/nn/conv2d.hpp>
#include <inn/nn/linear.hpp>
#include <inn/nn/sequential.hpp>

namespace inn::test::nonfinite {

inline constexpr double nan = std::numeric_limits<double>::quiet_NaN();
inline constexpr double inf = std::numeric_limits<double>::infinity();

enum class act { relu, leaky_relu, elu, tanh, sigmoid };

template <act A> struct layer_of;
template <> struct layer_of<act::relu> { using type = nn::ReLU; };
template <> struct layer_of<act::leaky_relu> { using type = nn::LeakyReLU<0.01>; };
template <> struct layer_of<act::elu> { using type = nn::ELU<1.0>; };
template <> struct layer_of<act::tanh> { using type = nn::Tanh; };
template <> struct layer_of<act::sigmoid> { using type = nn::Sigmoid; };

inline const char* name(act a) {
    switch (a) {
    case act::relu:
        return "ReLU";
    case act::leaky_relu:
        return "LeakyReLU";
    case act::elu:
        return "ELU";
    case act::tanh:
        return "Tanh";
    case act::sigmoid:
        return "Sigmoid";
    }
    return "?";
}

/// torch.nn's definitions (LeakyReLU slope 0.01, ELU alpha 1), NaN passed through explicitly.
inline double torch_act(act a, double x) {
    if (std::isnan(x))
        return x;
    switch (a) {
    case act::relu:
        return x < 0 ? 0.0 : x;
    case act::leaky_relu:
        return x < 0 ? 0.01 * x : x;
    case act::elu:
        return x < 0 ? std::exp(x) - 1 : x;
    case act::tanh:
        return std::tanh(x);
    case act::sigmoid:
        return 1 / (1 + std::exp(-x));
    }
    return nan;
}

/// PyTorch's values at +Inf and -Inf, by hand: ReLU(-Inf) = 0, LeakyReLU(-Inf) = -Inf,
/// ELU(-Inf) = -1, Tanh(±Inf) = ±1, Sigmoid(+Inf) = 1, Sigmoid(-Inf) = 0.
inline double at_inf(act a, int sign) {
    switch (a) {
    case act::relu:
        return sign > 0 ? inf : 0.0;
    case act::leaky_relu:
        return sign > 0 ? inf : -inf;
    case act::elu:
        return sign > 0 ? inf : -1.0;
    case act::tanh:
        return sign > 0 ? 1.0 : -1.0;
    case act::sigmoid:
        return sign > 0 ? 1.0 : 0.0;
    }
    return nan;
}

template <act... A> struct acts {};
using every_act = acts<act::relu, act::leaky_relu, act::elu, act::tanh, act::sigmoid>;

/// A bound layer spec with its generator (PyTorch's default init, seed fixed).
template <class Spec, Scalar S, dims D> struct fixture {
    using bound = nn::bind_layer<Spec, S, D>;
    generator g{5};
    bound layer{g};

    row_matrix<S> forward(const row_matrix<S>& x) const {
        const index_t batch = x.rows();
        row_matrix<S> y(batch, bound::out.size());
        std::vector<S> scratch(std::size_t(nn::layer_scratch<bound>(batch)) + 1);
        layer.forward(cview<S>(x.data(), x.cols()), view<S>{y.data(), y.cols()}, batch,
                      scratch.data());
        return y;
    }
};

template <Scalar S> const char* scalar_name() {
    return std::is_same_v<S, float> ? "float" : "double";
}

template <Scalar S> row_matrix<S> random_input(index_t batch, index_t n, unsigned seed) {
    generator g(seed);
    row_matrix<S> x(batch, n);
    for (index_t i = 0; i < x.size(); ++i)
        x.data()[i] = g.normal<S>();
    return x;
}

template <Scalar S> std::vector<double> to_double(const S* p, index_t n) {
    return std::vector<double>(p, p + n);
}

/// y against the double reference: NaN exactly where `nan_at(b, j)` (the hand-stated pattern,
/// which the reference must agree with), infinities equal, finite values to rounding.
template <Scalar S, class Mask>
void compare(const row_matrix<S>& y, const row_matrix<double>& ref, Mask nan_at,
             const std::string& what) {
    REQUIRE(y.rows() == ref.rows());
    REQUIRE(y.cols() == ref.cols());
    const double tol = std::is_same_v<S, float> ? 1e-4 : 1e-11;
    int reference_disagrees = 0, wrong = 0, nans = 0;
    std::ostringstream first;
    for (index_t b = 0; b < y.rows(); ++b)
        for (index_t j = 0; j < y.cols(); ++j) {
            const bool expect_nan = nan_at(b, j);
            nans += expect_nan;
            const double r = ref(b, j), v = double(y(b, j));
            if (std::isnan(r) != expect_nan)
                ++reference_disagrees;
            bool ok;
            if (expect_nan)
                ok = std::isnan(v);
            else if (std::isinf(r))
                ok = v == r;
            else
                ok = std::isfinite(v) && std::abs(v - r) <= tol * (1 + std::abs(r));
            if (!ok && wrong++ == 0)
                first << "first wrong output: sample " << b << ", output " << j << ": " << v
                      << ", expected " << (expect_nan ? nan : r);
        }
    INFO(what << ": " << nans << " outputs expected NaN; " << first.str());
    CHECK(reference_disagrees == 0);
    CHECK(wrong == 0);
}

/// Sequential<Linear<In, Out>, act>: the activation fused into the product's store. NaN in
/// inputs (rows), a weight and a bias (a column); +Inf and -Inf in the first input of some
/// samples with the first weight column of alternating sign, so that output o of those samples
/// is act(±Inf), by hand.
template <Scalar S, act A, int In, int Out>
void linear_case(index_t batch, const std::vector<index_t>& samples, const char* path) {
    using Spec = nn::Sequential<nn::Linear<In, Out>, typename layer_of<A>::type>;
    fixture<Spec, S, make_dims({In})> f;
    static_assert(decltype(f)::bound::template fuses_next<0>(),
                  "the activation should be fused into the Linear");
    auto& lin = std::get<0>(f.layer.layers);
    const auto x0 = random_input<S>(batch, In, 11);
    const auto W0 = lin.weight.values;
    const auto b0 = lin.bias.values;
    const std::string where = std::string(path) + ", " + name(A) + ", " + scalar_name<S>();

    auto reference = [&](const row_matrix<S>& x) {
        const auto W = to_double(lin.weight.data(), lin.weight.size());
        const auto bias = to_double(lin.bias.data(), lin.bias.size());
        row_matrix<double> y(batch, Out);
        for (index_t b = 0; b < batch; ++b)
            for (index_t o = 0; o < Out; ++o) {
                double s = bias[std::size_t(o)];
                for (index_t i = 0; i < In; ++i)
                    s += double(x(b, i)) * W[std::size_t(o * In + i)];
                y(b, o) = torch_act(A, s);
            }
        return y;
    };
    auto in_samples = [&](index_t b) {
        return std::find(samples.begin(), samples.end(), b) != samples.end();
    };
    auto restore = [&] {
        lin.weight.values = W0;
        lin.bias.values = b0;
    };
    constexpr index_t i = In / 2, o = Out - 1;

    { // NaN inputs: those samples' rows
        auto x = x0;
        for (index_t s : samples)
            x(s, i) = S(nan);
        compare(
            f.forward(x), reference(x), [&](index_t b, index_t) { return in_samples(b); },
            where + ": NaN input");
    }
    { // a NaN weight: output o of every sample
        lin.weight.data()[o * In + i] = S(nan);
        compare(
            f.forward(x0), reference(x0), [&](index_t, index_t j) { return j == o; },
            where + ": NaN weight");
        restore();
    }
    { // a NaN bias: output o of every sample
        lin.bias.data()[o] = S(nan);
        compare(
            f.forward(x0), reference(x0), [&](index_t, index_t j) { return j == o; },
            where + ": NaN bias");
        restore();
    }
    for (int sign : {+1, -1}) { // ±Inf inputs: act(±Inf) in those rows, no NaN anywhere
        for (index_t k = 0; k < Out; ++k)
            lin.weight.data()[k * In] = k % 2 == 0 ? S(0.5) : S(-0.5);
        auto x = x0;
        for (index_t s : samples)
            x(s, 0) = S(sign * inf);
        const auto y = f.forward(x);
        compare(
            y, reference(x), [](index_t, index_t) { return false; },
            where + (sign > 0 ? ": +Inf input" : ": -Inf input"));
        for (index_t s : samples)
            for (index_t k = 0; k < Out; ++k) {
                INFO(where << ", sample " << s << ", output " << k << ", input " << sign << " Inf");
                CHECK(double(y(s, k)) == at_inf(A, k % 2 == 0 ? sign : -sign));
            }
        restore();
    }
}

/// Sequential<Linear<2, H>, act, Linear<H, 3>>: the fused small MLP (kernels::small_mlp) unless
/// switched off. The samples chosen cover its sample-vectorised groups and the per-sample rest.
template <Scalar S, act A> void mlp_case() {
    constexpr int H = 32;
    using Spec = nn::Sequential<nn::Linear<2, H>, typename layer_of<A>::type, nn::Linear<H, 3>>;
    fixture<Spec, S, make_dims({2})> f;
    static_assert(decltype(f)::bound::small_mlp, "this subnet should take the fused small MLP");
    constexpr index_t L = nn::kernels::simd<S>::lanes;
    const index_t batch = 3 * L + 3; // groups of 2L and L samples, then 3 one by one
    const std::vector<index_t> samples{0, 2 * L + 1, batch - 1};
    auto& l0 = std::get<0>(f.layer.layers);
    auto& l2 = std::get<2>(f.layer.layers);
    const auto x0 = random_input<S>(batch, 2, 12);
    const auto W1 = l0.weight.values, b1 = l0.bias.values;
    const auto W2 = l2.weight.values, b2 = l2.bias.values;
    const std::string where = std::string("small MLP, ") + name(A) + ", " + scalar_name<S>();

    auto reference = [&](const row_matrix<S>& x) {
        const auto w1 = to_double(l0.weight.data(), 2 * H), c1 = to_double(l0.bias.data(), H);
        const auto w2 = to_double(l2.weight.data(), 3 * H), c2 = to_double(l2.bias.data(), 3);
        row_matrix<double> y(batch, 3);
        for (index_t b = 0; b < batch; ++b) {
            std::vector<double> h(H);
            for (int k = 0; k < H; ++k)
                h[std::size_t(k)] =
                    torch_act(A, c1[std::size_t(k)] + double(x(b, 0)) * w1[std::size_t(2 * k)] +
                                     double(x(b, 1)) * w1[std::size_t(2 * k + 1)]);
            for (int o = 0; o < 3; ++o) {
                double s = c2[std::size_t(o)];
                for (int k = 0; k < H; ++k)
                    s += h[std::size_t(k)] * w2[std::size_t(o * H + k)];
                y(b, o) = s;
            }
        }
        return y;
    };
    auto in_samples = [&](index_t b) {
        return std::find(samples.begin(), samples.end(), b) != samples.end();
    };
    auto restore = [&] {
        l0.weight.values = W1;
        l0.bias.values = b1;
        l2.weight.values = W2;
        l2.bias.values = b2;
    };
    auto everything = [](index_t, index_t) { return true; };
    constexpr int k = 5;

    { // NaN inputs: those samples' rows
        auto x = x0;
        for (index_t s : samples)
            x(s, 1) = S(nan);
        compare(
            f.forward(x), reference(x), [&](index_t b, index_t) { return in_samples(b); },
            where + ": NaN input");
    }
    { // a NaN first-layer weight: hidden unit k of every sample, so every output
        l0.weight.data()[2 * k] = S(nan);
        compare(f.forward(x0), reference(x0), everything, where + ": NaN first-layer weight");
        restore();
    }
    { // a NaN first-layer bias: the same
        l0.bias.data()[k] = S(nan);
        compare(f.forward(x0), reference(x0), everything, where + ": NaN first-layer bias");
        restore();
    }
    { // a NaN second-layer weight: output 1 of every sample
        l2.weight.data()[1 * H + k] = S(nan);
        compare(
            f.forward(x0), reference(x0), [](index_t, index_t j) { return j == 1; },
            where + ": NaN second-layer weight");
        restore();
    }
    { // a NaN second-layer bias: output 2 of every sample
        l2.bias.data()[2] = S(nan);
        compare(
            f.forward(x0), reference(x0), [](index_t, index_t j) { return j == 2; },
            where + ": NaN second-layer bias");
        restore();
    }
    // ±Inf inputs with every first-layer weight on input 0 positive: every hidden unit of those
    // samples is act(±Inf). Second-layer rows: 0 all positive, 1 mixed, 2 all negative. An
    // infinite hidden value h gives outputs (h, NaN, -h); a finite one finite outputs.
    for (int sign : {+1, -1}) {
        for (int j = 0; j < H; ++j) {
            l0.weight.data()[2 * j] = S(0.5);
            S* w2 = l2.weight.data();
            w2[j] = std::abs(w2[j]);
            w2[H + j] = j % 2 == 0 ? std::abs(w2[H + j]) : -std::abs(w2[H + j]);
            w2[2 * H + j] = -std::abs(w2[2 * H + j]);
        }
        auto x = x0;
        for (index_t s : samples)
            x(s, 0) = S(sign * inf);
        const double h = at_inf(A, sign);
        const auto y = f.forward(x);
        compare(
            y, reference(x),
            [&](index_t b, index_t j) { return std::isinf(h) && in_samples(b) && j == 1; },
            where + (sign > 0 ? ": +Inf input" : ": -Inf input"));
        if (std::isinf(h))
            for (index_t s : samples) {
                INFO(where << ", sample " << s << ", input " << sign << " Inf");
                CHECK(double(y(s, 0)) == h);
                CHECK(double(y(s, 2)) == -h);
            }
        restore();
    }
}

/// Sequential<Conv2d<In, Out, K, Pad>, act> on (In, H, W): the activation fused into the
/// convolution's store. NaN in a pixel (its neighbourhood in every output channel), a centre-tap
/// weight and a bias (a whole output channel); ±Inf in a pixel with centre taps of alternating
/// sign, so that output channel o at that pixel is act(±Inf), by hand. (Only the centre tap
/// gets NaN or Inf: it lies inside the image for every output, so whether an implementation
/// multiplies the zero padding does not matter.)
template <Scalar S, act A, int In, int Out, int K, int Pad, int H, int W>
void conv_case(const char* path) {
    using Spec = nn::Sequential<nn::Conv2d<In, Out, K, Pad>, typename layer_of<A>::type>;
    using F = fixture<Spec, S, make_dims({In, H, W})>;
    F f;
    static_assert(F::bound::template fuses_next<0>(), "the activation should be fused");
    constexpr int Ho = H + 2 * Pad - K + 1, Wo = W + 2 * Pad - K + 1;
    static_assert(Ho == H && Wo == W, "the cases below assume 'same' padding");
    constexpr index_t pixels = index_t(H) * W, n_in = In * pixels;
    const index_t batch = 2;
    auto& conv = std::get<0>(f.layer.layers);
    const auto x0 = random_input<S>(batch, n_in, 13);
    const auto W0 = conv.weight.values;
    const auto b0 = conv.bias.values;
    const std::string where = std::string(path) + ", " + name(A) + ", " + scalar_name<S>();

    auto reference = [&](const row_matrix<S>& x) {
        const auto w = to_double(conv.weight.data(), conv.weight.size());
        const auto bias = to_double(conv.bias.data(), Out);
        row_matrix<double> y(batch, index_t(Out) * pixels);
        for (index_t b = 0; b < batch; ++b)
            for (int o = 0; o < Out; ++o)
                for (int i = 0; i < H; ++i)
                    for (int j = 0; j < W; ++j) {
                        double s = bias[std::size_t(o)];
                        for (int c = 0; c < In; ++c)
                            for (int u = 0; u < K; ++u)
                                for (int v = 0; v < K; ++v) {
                                    const int yy = i + u - Pad, xx = j + v - Pad;
                                    if (yy < 0 || yy >= H || xx < 0 || xx >= W)
                                        continue;
                                    s += w[std::size_t(((o * In + c) * K + u) * K + v)] *
                                         double(x(b, (index_t(c) * H + yy) * W + xx));
                                }
                        y(b, (index_t(o) * H + i) * W + j) = torch_act(A, s);
                    }
        return y;
    };
    auto restore = [&] {
        conv.weight.values = W0;
        conv.bias.values = b0;
    };
    auto centre = [&](int o, int c) -> S& {
        return conv.weight.data()[((index_t(o) * In + c) * K + Pad) * K + Pad];
    };
    const index_t s = batch - 1;
    constexpr int c = In - 1, o = Out - 1;
    // An edge pixel for NaN (its neighbourhood clipped), an inner one for Inf.
    constexpr int pi = H / 2, pj = W - 1, qi = H / 2, qj = W / 2;
    auto channel = [](index_t j) { return int(j / pixels); };
    auto near = [](index_t j, int i0, int j0) {
        const int i = int(j % pixels) / W, jj = int(j % pixels) % W;
        // Output (i, j) reads input (i + u - Pad, j + v - Pad), u, v in [0, K).
        return i0 - i + Pad >= 0 && i0 - i + Pad < K && j0 - jj + Pad >= 0 && j0 - jj + Pad < K;
    };

    { // a NaN pixel: the outputs whose window holds it, in every output channel
        auto x = x0;
        x(s, (index_t(c) * H + pi) * W + pj) = S(nan);
        compare(
            f.forward(x), reference(x),
            [&](index_t b, index_t j) { return b == s && near(j, pi, pj); }, where + ": NaN pixel");
    }
    { // a NaN centre tap: output channel o everywhere
        centre(o, c) = S(nan);
        compare(
            f.forward(x0), reference(x0), [&](index_t, index_t j) { return channel(j) == o; },
            where + ": NaN weight");
        restore();
    }
    { // a NaN bias: output channel o everywhere
        conv.bias.data()[o] = S(nan);
        compare(
            f.forward(x0), reference(x0), [&](index_t, index_t j) { return channel(j) == o; },
            where + ": NaN bias");
        restore();
    }
    for (int sign : {+1, -1}) { // a ±Inf pixel: ±Inf in its neighbourhood, act(±Inf) at it
        for (int k = 0; k < Out; ++k)
            centre(k, c) = k % 2 == 0 ? S(0.5) : S(-0.5);
        auto x = x0;
        x(s, (index_t(c) * H + qi) * W + qj) = S(sign * inf);
        const auto y = f.forward(x);
        compare(
            y, reference(x), [](index_t, index_t) { return false; },
            where + (sign > 0 ? ": +Inf pixel" : ": -Inf pixel"));
        for (int k = 0; k < Out; ++k) {
            INFO(where << ", output channel " << k << ", pixel " << sign << " Inf");
            CHECK(double(y(s, (index_t(k) * H + qi) * W + qj)) ==
                  at_inf(A, k % 2 == 0 ? sign : -sign));
        }
        restore();
    }
}

/// The element-wise layer on its own: NaN, ±Inf and finite values, by hand.
template <Scalar S, act A> void elementwise_case() {
    fixture<typename layer_of<A>::type, S, make_dims({8})> f;
    row_matrix<S> x(1, 8);
    x << S(nan), S(inf), S(-inf), S(0.5), S(-0.5), S(2), S(-3), S(0);
    const auto y = f.forward(x);
    const std::string where = std::string("element-wise ") + name(A) + ", " + scalar_name<S>();
    INFO(where);
    CHECK(std::isnan(y(0, 0)));
    CHECK(double(y(0, 1)) == at_inf(A, +1));
    CHECK(double(y(0, 2)) == at_inf(A, -1));
    row_matrix<double> ref(1, 8);
    for (index_t j = 0; j < 8; ++j)
        ref(0, j) = torch_act(A, double(x(0, j)));
    compare(
        y, ref, [](index_t, index_t j) { return j == 0; }, where);
}

// ---- every activation on each path ----------------------------------------------------------

template <Scalar S, act... A> void elementwise(acts<A...>) { (elementwise_case<S, A>(), ...); }
/// Linear, 20 inputs, batch 3 lanes + 5: the register-tiled product (two panels, the second
/// partial; 8 + 3 output rows).
template <Scalar S, act... A> void linear_tiled(acts<A...>) {
    constexpr index_t L = nn::kernels::simd<S>::lanes;
    (linear_case<S, A, 20, 11>(3 * L + 5, {0, 3 * L + 4}, "Linear, tiled GEMM"), ...);
}
/// Linear, fewer than 16 inputs, batch 9: Eigen's product, then bias and activation.
template <Scalar S, act... A> void linear_eigen(acts<A...>) {
    (linear_case<S, A, 5, 7>(9, {0, 8}, "Linear, Eigen GEMM"), ...);
}
/// Linear, batch 2: matrix-vector products.
template <Scalar S, act... A> void linear_gemv(acts<A...>) {
    (linear_case<S, A, 20, 11>(2, {1}, "Linear, matrix-vector"), ...);
}
template <Scalar S, act... A> void small_mlp(acts<A...>) { (mlp_case<S, A>(), ...); }
/// 3x3 convolution, padding 1, 9 output channels (8 + 1 rows of the register tile).
template <Scalar S, act... A> void conv_3x3(acts<A...>) {
    static_assert(nn::bind_layer<nn::Conv2d<2, 9, 3, 1>, S, make_dims({2, 5, 6})>::fast_direct);
    (conv_case<S, A, 2, 9, 3, 1, 5, 6>("Conv2d 3x3"), ...);
}
/// 1x1 convolution over a multiple of the lanes of pixels (4x4): the tiled product.
template <Scalar S, act... A> void conv_1x1_tiled(acts<A...>) {
    static_assert(nn::bind_layer<nn::Conv2d<3, 5, 1, 0>, S, make_dims({3, 4, 4})>::fast_1x1);
    (conv_case<S, A, 3, 5, 1, 0, 4, 4>("Conv2d 1x1, tiled"), ...);
}
/// 1x1 convolution over 3x3 pixels (not a multiple of the lanes): Eigen's product.
template <Scalar S, act... A> void conv_1x1_eigen(acts<A...>) {
    static_assert(!nn::bind_layer<nn::Conv2d<3, 5, 1, 0>, S, make_dims({3, 3, 3})>::fast_1x1);
    (conv_case<S, A, 3, 5, 1, 0, 3, 3>("Conv2d 1x1, Eigen"), ...);
}

/// Every path, every activation.
template <Scalar S> void every_path() {
    elementwise<S>(every_act{});
    linear_tiled<S>(every_act{});
    linear_eigen<S>(every_act{});
    linear_gemv<S>(every_act{});
    small_mlp<S>(every_act{});
    conv_3x3<S>(every_act{});
    conv_1x1_tiled<S>(every_act{});
    conv_1x1_eigen<S>(every_act{});
}

} // namespace inn::test::nonfinite
