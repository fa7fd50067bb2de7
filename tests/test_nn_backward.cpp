// Reverse mode of the subnet layers (inn::nn): backward against central finite differences of
// forward in double (support/gradcheck.hpp) for every layer and option, the kernel paths of
// forward included; the contract's details (accumulation, grad_shift, no input gradient, in
// place); float against double; NaN in x or gy where PyTorch puts it, stated by hand.

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include <inn/nn/activation.hpp>
#include <inn/nn/conv2d.hpp>
#include <inn/nn/linear.hpp>
#include <inn/nn/sequential.hpp>

#include "support/gradcheck.hpp"
#include "support/vector_targets.hpp"

namespace {

using namespace inn;

constexpr double nan = std::numeric_limits<double>::quiet_NaN();

template <class L, dims In>
void gradcheck(index_t batch = 3, std::uint64_t seed = 1) {
    const auto r = test::check_layer_gradients<L, In>({.batch = batch, .seed = seed});
    INFO(r.describe());
    CHECK(r.worst() <= 1e-6);
}

constexpr dims vec(int n) { return make_dims({n}); }
constexpr dims img(int c, int h, int w) { return make_dims({c, h, w}); }

// ---------------------------------------------------------------------------------------------
// Gradient checks

TEST_CASE("nn backward: Linear against finite differences", "[nn][backward]") {
    SECTION("one input, batch 1 and 2 (matrix-vector products in forward)") {
        gradcheck<nn::Linear<1, 3>, vec(1)>(1);
        gradcheck<nn::Linear<1, 3>, vec(1)>(2);
    }
    SECTION("few inputs (Eigen's product in forward), without bias") {
        gradcheck<nn::Linear<5, 4, false>, vec(5)>(5);
    }
    SECTION("17 inputs (the register tile in forward)") {
        gradcheck<nn::Linear<17, 9>, vec(17)>(7);
    }
    SECTION("products cut into blocks: more than 128 inputs, outputs, samples") {
        gradcheck<nn::Linear<130, 3>, vec(130)>(2);
        gradcheck<nn::Linear<3, 130, false>, vec(3)>(2);
        gradcheck<nn::Linear<5, 4, false>, vec(5)>(300);
    }
    SECTION("no outputs: the input gradient is zero") {
        gradcheck<nn::Linear<3, 0>, vec(3)>(2);
    }
}

TEST_CASE("nn backward: Conv2d against finite differences", "[nn][backward]") {
    SECTION("1x1, pixels a multiple of the lanes (gemm_rows) and not") {
        gradcheck<nn::Conv2d<2, 3, 1>, img(2, 4, 4)>();
        gradcheck<nn::Conv2d<2, 3, 1>, img(2, 3, 3)>();
    }
    SECTION("3x3 with and without padding, non-square images") {
        gradcheck<nn::Conv2d<2, 3, 3>, img(2, 5, 4)>();
        gradcheck<nn::Conv2d<3, 2, 3, 0>, img(3, 4, 6)>(2);
    }
    SECTION("other kernel sizes: 2x2, 5x5, and a padding of Kernel - 1") {
        gradcheck<nn::Conv2d<2, 2, 2>, img(2, 3, 4)>(2);
        gradcheck<nn::Conv2d<1, 2, 5, 2>, img(1, 5, 5)>(2);
        gradcheck<nn::Conv2d<2, 2, 3, 2>, img(2, 3, 3)>(2);
    }
    SECTION("padding beyond Kernel - 1 (the input gradient scattered back)") {
        gradcheck<nn::Conv2d<2, 3, 1, 1>, img(2, 3, 2)>(2);
        gradcheck<nn::Conv2d<2, 2, 3, 3>, img(2, 2, 3)>(2);
    }
    SECTION("without bias") {
        gradcheck<nn::Conv2d<2, 3, 3, 1, false>, img(2, 4, 4)>(2);
        gradcheck<nn::Conv2d<3, 2, 1, 0, false>, img(3, 2, 4)>(2);
    }
}

TEST_CASE("nn backward: activations against finite differences", "[nn][backward]") {
    gradcheck<nn::ReLU, vec(9)>(4);
    gradcheck<nn::LeakyReLU<0.01>, vec(9)>(4);
    gradcheck<nn::LeakyReLU<-0.5>, vec(9)>(4);  // a negative slope: y's sign is not x's
    gradcheck<nn::ELU<1.0>, vec(9)>(4);
    gradcheck<nn::ELU<0.5>, img(2, 3, 3)>(2);
    gradcheck<nn::Tanh, vec(9)>(4);
    gradcheck<nn::Sigmoid, vec(9)>(4);
}

struct mlp_relu {  // the small-MLP kernel in forward
    using net = nn::Sequential<nn::Linear<3, 16>, nn::ReLU, nn::Linear<16, 2>>;
};
struct mlp_moons {  // the moons model's subnet shape: four groups per pass with AVX-512
    using net = nn::Sequential<nn::Linear<1, 16>, nn::ReLU, nn::Linear<16, 2>>;
};
struct mlp_elu {  // the small-MLP kernel with an activation that reads its input
    using net = nn::Sequential<nn::Linear<2, 8>, nn::ELU<>, nn::Linear<8, 3>>;
};
struct deep_fused {  // Linear + activation fused stores, tiled products
    using net = nn::Sequential<nn::Linear<18, 20>, nn::ReLU, nn::Linear<20, 20>, nn::Sigmoid,
                               nn::Linear<20, 20>, nn::LeakyReLU<0.1>, nn::Linear<20, 5>>;
};
struct conv_stack {
    using net = nn::Sequential<nn::Conv2d<2, 4, 3>, nn::ReLU, nn::Conv2d<4, 3, 1>, nn::Tanh,
                               nn::Conv2d<3, 2, 3, 1, false>>;
};
struct nested {  // a Sequential inside one; activations first and last
    using net = nn::Sequential<nn::Tanh, nn::Linear<4, 6>,
                               nn::Sequential<nn::ReLU, nn::Linear<6, 6>, nn::ELU<>>, nn::Sigmoid>;
};
struct activations_only {
    using net = nn::Sequential<nn::Sigmoid, nn::Tanh, nn::ReLU>;
};

TEST_CASE("nn backward: Sequential against finite differences", "[nn][backward]") {
    SECTION("Linear-ReLU-Linear with small ends (small_mlp in forward)") {
        // small_mlp_backward on passes of whole groups of lanes' worth of samples (pairs of
        // groups; fours with AVX-512 where they fit, as for mlp_moons), the rest as one more pass
        // of as many groups as it needs, padded with zero output gradients (8 double lanes with
        // AVX-512, mlp_moons: 9 -> a rest of 2 groups, 20 -> 3, 29 -> 4, 87 -> two passes and 3).
        gradcheck<mlp_relu::net, vec(3)>(1);
        gradcheck<mlp_relu::net, vec(3)>(9);
        gradcheck<mlp_relu::net, vec(3)>(29);
        gradcheck<mlp_relu::net, vec(3)>(37);
        for (index_t batch : {1, 9, 20, 29, 87})
            gradcheck<mlp_moons::net, vec(1)>(batch);
        gradcheck<mlp_elu::net, vec(2)>(5);
        gradcheck<mlp_elu::net, vec(2)>(35);
    }
    SECTION("deeper, Linear + activation fused") { gradcheck<deep_fused::net, vec(18)>(4); }
    SECTION("convolutions") { gradcheck<conv_stack::net, img(2, 4, 5)>(2); }
    SECTION("nested, activations at both ends") { gradcheck<nested::net, vec(4)>(3); }
    SECTION("only activations") { gradcheck<activations_only::net, vec(5)>(3); }
    SECTION("one layer") { gradcheck<nn::Sequential<nn::Linear<3, 2>>, vec(3)>(2); }
}

// What Sequential keeps for its backward: only the activations that a backward reads.
using deep_bound = nn::bind_layer<deep_fused::net, double, vec(18)>;
// Kept: the outputs of ReLU and Sigmoid (read as y by themselves and as x by the next Linear),
// LeakyReLU's input (it reads x) and output; two buffers of 20; Linear's forward panel.
static_assert(deep_bound::backward_scratch_size(10) ==
              (4 * 20 + 2 * 20) * 10 + nn::kernels::gemm_nt_scratch<double, 20>());
static_assert(!deep_bound::backward_reads_y);
static_assert(nn::bind_layer<nested::net, double, vec(4)>::backward_reads_y);

// ---------------------------------------------------------------------------------------------
// The contract

/// A bound layer with gradient storage attached to its parameters.
template <class Spec, Scalar S, dims In>
struct harness {
    using bound = nn::bind_layer<Spec, S, In>;
    static constexpr index_t nx = In.size(), ny = bound::out.size();
    generator g{3};
    bound layer{g};
    std::vector<tensor_ref<S>> params;
    std::vector<std::vector<S>> grads;
    std::vector<S> scratch;

    harness() {
        nn::visit_layer(
            layer, [&](const std::string&, const tensor_ref<S>& t) { params.push_back(t); }, "");
        grads.resize(params.size());
        for (std::size_t i = 0; i < params.size(); ++i) {
            grads[i].assign(std::size_t(params[i].shape.numel()), S(0));
            *params[i].grad_slot = grads[i].data();
        }
    }
    void zero_grads() {
        for (auto& v : grads)
            std::fill(v.begin(), v.end(), S(0));
    }
    row_matrix<S> forward(const row_matrix<S>& x) {
        row_matrix<S> y(x.rows(), ny);
        const index_t n = std::max(nn::layer_scratch<bound>(x.rows()),
                                   nn::layer_backward_scratch<bound>(x.rows()));
        scratch.assign(std::size_t(n) + 1, S(0));
        layer.forward({x.data(), nx}, {y.data(), ny}, x.rows(), scratch.data());
        return y;
    }
    /// gx (all NaN if `want_gx` is false, to show it was not written).
    row_matrix<S> backward(const row_matrix<S>& x, const row_matrix<S>& y, const row_matrix<S>& gy,
                           bool want_gx = true, bool param_grads = true, index_t shift = 0) {
        row_matrix<S> gx = row_matrix<S>::Constant(x.rows(), nx, S(nan));
        nn::layer_backward_args<S> a;
        a.batch = x.rows();
        a.x = {x.data(), nx};
        a.y = {y.data(), ny};
        a.gy = {gy.data(), ny};
        a.gx = {want_gx ? gx.data() : nullptr, nx};
        a.scratch = scratch.data();
        a.param_grads = param_grads;
        a.grad_shift = shift;
        layer.backward(a);
        return gx;
    }
};

template <Scalar S>
row_matrix<S> normal(index_t rows, index_t cols, std::uint64_t seed) {
    generator g(seed);
    row_matrix<S> m(rows, cols);
    for (index_t i = 0; i < m.size(); ++i)
        m.data()[i] = g.normal<S>();
    return m;
}

bool same(const std::vector<double>& a, const std::vector<double>& b) { return a == b; }

TEST_CASE("nn backward: parameter gradients are added, shifted, or left alone; gx optional",
          "[nn][backward]") {
    harness<deep_fused::net, double, vec(18)> h;
    const auto x = normal<double>(6, 18, 1), gy = normal<double>(6, 5, 2);
    const auto y = h.forward(x);
    const auto gx = h.backward(x, y, gy);
    const auto once = h.grads;
    for (const auto& g : once)
        CHECK(std::any_of(g.begin(), g.end(), [](double v) { return v != 0; }));

    SECTION("gradients are added to what the storage holds") {
        for (auto& g : h.grads)
            std::fill(g.begin(), g.end(), 1.0);
        CHECK(h.backward(x, y, gy) == gx);
        for (std::size_t p = 0; p < once.size(); ++p)
            for (std::size_t i = 0; i < once[p].size(); ++i)
                CHECK(h.grads[p][i] == Approx(1 + once[p][i]).epsilon(1e-14));
    }
    SECTION("without the input gradient: the same parameter gradients, gx untouched") {
        h.zero_grads();
        const auto none = h.backward(x, y, gy, false);
        CHECK(none.array().isNaN().all());
        for (std::size_t p = 0; p < once.size(); ++p)
            CHECK(same(h.grads[p], once[p]));
    }
    SECTION("param_grads off: gx alone, no parameter gradient touched") {
        h.zero_grads();
        CHECK(h.backward(x, y, gy, true, false) == gx);
        for (const auto& g : h.grads)
            CHECK(std::all_of(g.begin(), g.end(), [](double v) { return v == 0; }));
    }
    SECTION("grad_shift: a thread's copy after each parameter's own gradient") {
        // One shift for every tensor (the largest one's size), as for a per-thread copy.
        index_t shift = 0;
        for (const auto& g : h.grads)
            shift = std::max(shift, index_t(g.size()));
        std::vector<std::vector<double>> wide(h.grads.size());
        for (std::size_t p = 0; p < wide.size(); ++p) {
            wide[p].assign(std::size_t(shift) + h.grads[p].size(), 0.0);
            *h.params[p].grad_slot = wide[p].data();
        }
        h.backward(x, y, gy, true, true, shift);
        for (std::size_t p = 0; p < wide.size(); ++p) {
            CHECK(std::all_of(wide[p].begin(), wide[p].begin() + shift,
                              [](double v) { return v == 0; }));
            CHECK(same(std::vector<double>(wide[p].begin() + shift, wide[p].end()), once[p]));
        }
    }
}

TEST_CASE("nn backward: Conv2d without the input gradient", "[nn][backward]") {
    harness<conv_stack::net, double, img(2, 4, 5)> h;
    const auto x = normal<double>(3, 40, 4), gy = normal<double>(3, 40, 5);
    const auto y = h.forward(x);
    h.backward(x, y, gy);
    const auto once = h.grads;
    h.zero_grads();
    CHECK(h.backward(x, y, gy, false).array().isNaN().all());
    for (std::size_t p = 0; p < once.size(); ++p)
        CHECK(same(h.grads[p], once[p]));
}

TEST_CASE("nn backward: element-wise layers in place, and PyTorch's values at the kinks",
          "[nn][backward]") {
    // x = 0 and -0: ReLU's gradient is 0 (PyTorch's threshold_backward, y <= 0), LeakyReLU's
    // the slope, ELU's alpha (both take the x <= 0 branch).
    row_matrix<double> x(1, 4);
    x << 0.0, -0.0, 1.0, -1.0;
    const row_matrix<double> gy = row_matrix<double>::Constant(1, 4, 3.0);
    auto run = [&]<class Spec>(Spec, bool in_place) {
        harness<Spec, double, vec(4)> h;
        const auto y = h.forward(x);
        row_matrix<double> g = gy;
        nn::layer_backward_args<double> a;
        a.batch = 1;
        a.x = {x.data(), 4};
        a.y = {y.data(), 4};
        a.gy = {g.data(), 4};
        row_matrix<double> out(1, 4);
        a.gx = {in_place ? g.data() : out.data(), 4};
        h.layer.backward(a);
        return in_place ? g : out;
    };
    row_matrix<double> relu(1, 4), leaky(1, 4), elu(1, 4);
    relu << 0, 0, 3, 0;
    leaky << 3 * 0.2, 3 * 0.2, 3, 3 * 0.2;
    elu << 3 * 2.0, 3 * 2.0, 3, 3 * 2.0 * std::exp(-1.0);
    for (bool in_place : {false, true}) {
        INFO("in place: " << in_place);
        CHECK(run(nn::ReLU{}, in_place) == relu);
        CHECK(run(nn::LeakyReLU<0.2>{}, in_place) == leaky);
        const auto e = run(nn::ELU<2.0>{}, in_place);
        CHECK(e.leftCols(3) == elu.leftCols(3));
        CHECK(e(3) == Approx(elu(3)).epsilon(1e-15));  // exp a packet at a time: to rounding
    }
}

// ---------------------------------------------------------------------------------------------
// float against double

/// Copies the double layer's parameters into the float one, and rounds the double ones to the
/// float values, so that both compute the same function.
template <class Spec, dims In>
struct twins {
    harness<Spec, double, In> d;
    harness<Spec, float, In> f;
    twins() {
        for (std::size_t p = 0; p < d.params.size(); ++p)
            for (std::int64_t i = 0; i < d.params[p].shape.numel(); ++i) {
                f.params[p].real[i] = float(d.params[p].real[i]);
                d.params[p].real[i] = double(f.params[p].real[i]);
            }
    }
};

/// max |float - double| / max |double|, over one tensor.
double relative(const float* f, const double* d, std::size_t n) {
    double diff = 0, scale = 0;
    for (std::size_t i = 0; i < n; ++i) {
        diff = std::max(diff, std::abs(double(f[i]) - d[i]));
        scale = std::max(scale, std::abs(d[i]));
    }
    return scale > 0 ? diff / scale : diff;
}

template <class Spec, dims In>
void float_against_double(index_t batch) {
    twins<Spec, In> t;
    const row_matrix<float> xf = normal<float>(batch, In.size(), 7);
    const row_matrix<float> gyf = normal<float>(batch, t.f.ny, 8);
    const row_matrix<double> xd = xf.cast<double>(), gyd = gyf.cast<double>();
    const auto yf = t.f.forward(xf);
    const auto yd = t.d.forward(xd);
    const row_matrix<float> gxf = t.f.backward(xf, yf, gyf);
    const row_matrix<double> gxd = t.d.backward(xd, yd, gyd);
    CHECK(relative(gxf.data(), gxd.data(), std::size_t(gxd.size())) <= 1e-5);
    for (std::size_t p = 0; p < t.d.grads.size(); ++p) {
        INFO("parameter " << p);
        CHECK(relative(t.f.grads[p].data(), t.d.grads[p].data(), t.d.grads[p].size()) <= 1e-5);
    }
}

TEST_CASE("nn backward: float agrees with double to float rounding", "[nn][backward]") {
    float_against_double<nn::Linear<17, 9>, vec(17)>(40);
    float_against_double<nn::Conv2d<3, 4, 3>, img(3, 6, 5)>(3);
    float_against_double<nn::Conv2d<4, 3, 1>, img(4, 4, 4)>(3);
    float_against_double<mlp_relu::net, vec(3)>(20);
    float_against_double<deep_fused::net, vec(18)>(10);
    float_against_double<nn::ELU<>, vec(9)>(5);
    float_against_double<nn::Tanh, vec(9)>(5);
    float_against_double<nn::Sigmoid, vec(9)>(5);
}

// ---------------------------------------------------------------------------------------------
// NaN, as PyTorch propagates it

template <Scalar S>
bool nan_exactly(const S* v, index_t n, auto&& expected) {
    for (index_t i = 0; i < n; ++i)
        if (bool(std::isnan(v[i])) != bool(expected(i)))
            return false;
    return true;
}

TEMPLATE_TEST_CASE("nn backward: NaN in x or gy where PyTorch has it", "[nn][backward][nan]", float,
                   double) {
    using S = TestType;
    constexpr index_t batch = 3;
    SECTION("Linear") {
        harness<nn::Linear<5, 4>, S, vec(5)> h;
        auto x = normal<S>(batch, 5, 1), gy = normal<S>(batch, 4, 2);
        x(1, 2) = S(nan);  // input 2 of sample 1: column 2 of dW; gx and db stay finite
        auto y = h.forward(x);
        auto gx = h.backward(x, y, gy);
        CHECK(nan_exactly(gx.data(), gx.size(), [](index_t) { return false; }));
        CHECK(nan_exactly(h.grads[0].data(), 20, [](index_t i) { return i % 5 == 2; }));
        CHECK(nan_exactly(h.grads[1].data(), 4, [](index_t) { return false; }));
        // dL/dy of output 3, sample 0: gx's row 0, dW's row 3 and db[3].
        x(1, 2) = S(0.5);
        gy(0, 3) = S(nan);
        h.zero_grads();
        y = h.forward(x);
        gx = h.backward(x, y, gy);
        CHECK(nan_exactly(gx.data(), gx.size(), [](index_t i) { return i / 5 == 0; }));
        CHECK(nan_exactly(h.grads[0].data(), 20, [](index_t i) { return i / 5 == 3; }));
        CHECK(nan_exactly(h.grads[1].data(), 4, [](index_t i) { return i == 3; }));
    }
    SECTION("Conv2d 3x3, padding 1, on 2 x 5 x 5") {
        harness<nn::Conv2d<2, 3, 3>, S, img(2, 5, 5)> h;
        auto x = normal<S>(batch, 50, 3), gy = normal<S>(batch, 75, 4);
        // Pixel (2, 2) of channel 1: dW[:, 1, :, :] (every tap reads it); gx, db finite.
        x(0, 25 + 2 * 5 + 2) = S(nan);
        auto y = h.forward(x);
        auto gx = h.backward(x, y, gy);
        CHECK(nan_exactly(gx.data(), gx.size(), [](index_t) { return false; }));
        CHECK(nan_exactly(h.grads[0].data(), 54, [](index_t i) { return i % 18 / 9 == 1; }));
        CHECK(nan_exactly(h.grads[1].data(), 3, [](index_t) { return false; }));
        // dL/dy at output channel 2, pixel (0, 4) of sample 2: gx at the pixels of its 3x3
        // neighbourhood in both channels of sample 2, dW[2], db[2].
        x(0, 25 + 2 * 5 + 2) = S(0.5);
        gy(2, 50 + 0 * 5 + 4) = S(nan);
        h.zero_grads();
        y = h.forward(x);
        gx = h.backward(x, y, gy);
        CHECK(nan_exactly(gx.data(), gx.size(), [](index_t i) {
            const index_t b = i / 50, p = i % 25, r = p / 5, c = p % 5;
            return b == 2 && r <= 1 && c >= 3;
        }));
        CHECK(nan_exactly(h.grads[0].data(), 54, [](index_t i) { return i / 18 == 2; }));
        CHECK(nan_exactly(h.grads[1].data(), 3, [](index_t i) { return i == 2; }));
    }
    SECTION("activations") {
        // x = NaN: ReLU, ELU pass gy (their x <= 0 / y <= 0 is false), LeakyReLU scales it by
        // the slope, Tanh and Sigmoid give NaN (from y). gy = NaN: NaN, except where ReLU's
        // y <= 0 (a select, not a product).
        row_matrix<S> x(1, 3), gy(1, 3);
        x << S(nan), S(-1), S(2);
        gy << S(2), S(nan), S(nan);
        auto run = [&]<class Spec>(Spec) {
            harness<Spec, S, vec(3)> h;
            const auto y = h.forward(x);
            return h.backward(x, y, gy);
        };
        const auto relu = run(nn::ReLU{});
        CHECK(relu(0) == S(2));
        CHECK(relu(1) == S(0));
        CHECK(std::isnan(relu(2)));
        const auto leaky = run(nn::LeakyReLU<0.25>{});
        CHECK(leaky(0) == S(0.5));
        CHECK((std::isnan(leaky(1)) && std::isnan(leaky(2))));
        const auto elu = run(nn::ELU<>{});
        CHECK(elu(0) == S(2));
        CHECK((std::isnan(elu(1)) && std::isnan(elu(2))));
        CHECK(run(nn::Tanh{}).array().isNaN().all());
        CHECK(run(nn::Sigmoid{}).array().isNaN().all());
    }
    SECTION("Linear-ReLU-Linear (small_mlp in forward)") {
        // A NaN input makes the hidden row of its sample NaN: dW2 all NaN, dW1's column of that
        // input NaN; ReLU passes the (finite) gradient at a NaN y, so gx, dW1's other columns and
        // both biases stay finite - as in PyTorch.
        harness<mlp_relu::net, S, vec(3)> h;
        auto x = normal<S>(20, 3, 5);  // sample 1 in small_mlp_backward's groups
        const auto gy = normal<S>(20, 2, 6);
        x(1, 1) = S(nan);
        const auto y = h.forward(x);
        const auto gx = h.backward(x, y, gy);
        CHECK(nan_exactly(gx.data(), gx.size(), [](index_t) { return false; }));
        CHECK(nan_exactly(h.grads[0].data(), 48, [](index_t i) { return i % 3 == 1; }));
        CHECK(nan_exactly(h.grads[1].data(), 16, [](index_t) { return false; }));
        CHECK(nan_exactly(h.grads[2].data(), 32, [](index_t) { return true; }));
        CHECK(nan_exactly(h.grads[3].data(), 2, [](index_t) { return false; }));
    }
}

// ---------------------------------------------------------------------------------------------
// The fused small MLP runs whole groups of samples four at a time where the registers allow
// (moons' subnet ends on AVX-512), else two: each lane computes its sample's chain the same way
// in either pass, so a sample's outputs have the same bits in a batch of four groups as in one
// of two.
TEMPLATE_TEST_CASE("nn: the fused small MLP gives a sample the same bits in passes of four "
                   "groups and of two",
                   "[nn][targets]", float, double) {
    using S = TestType;
    using net = nn::Sequential<nn::Linear<1, 64>, nn::ReLU, nn::Linear<64, 2>>;
    harness<net, S, vec(1)> h;
    // The widest target's lanes: four groups there; halves of two groups each.
    const index_t L = nn::kernels::scratch_lanes<S>;
    const row_matrix<S> x = normal<double>(4 * L, 1, 9).cast<S>();
    const row_matrix<S> y = h.forward(x);
    for (index_t half = 0; half < 2; ++half) {
        const row_matrix<S> part = h.forward(x.middleRows(half * 2 * L, 2 * L));
        CHECK(part == y.middleRows(half * 2 * L, 2 * L));
    }
}

// A small MLP of one input and ReLU as the pieces of its piecewise-linear function
// (nn/kernels/relu_units.hpp), against a long-double evaluation of the layers, within the rounding
// of a sum of H terms: units of both signs, of w1 = 0 and sharing a switch point; samples on a
// switch point, NaN kept, ±inf the function's limit; parameters that would make a slope
// subnormal, or an intercept infinite, leave the form empty.
TEMPLATE_TEST_CASE("nn: the small MLP of one input as its linear pieces", "[nn][relu_units]", float,
                   double) {
    using S = TestType;
    constexpr int H = 80, O = 3;
    using net = nn::Sequential<nn::Linear<1, H>, nn::ReLU, nn::Linear<H, O>>;
    static_assert(nn::bind_layer<net, S, vec(1)>::relu_units);
    generator g{5};
    nn::bind_layer<net, S, vec(1)> seq{g};
    auto& l0 = std::get<0>(seq.layers);
    auto& l2 = std::get<2>(seq.layers);
    const row_matrix<double> w = normal<double>(H, 3, 11);
    for (index_t k = 0; k < H; ++k) {
        l0.weight.data()[k] = k % 7 == 3 ? S(0) : S(w(k, 0)); // some units constant
        l0.bias.data()[k] = S(w(k, 1));
    }
    for (index_t j = 0; j < O * H; ++j)
        l2.weight.data()[j] = S(normal<double>(O * H, 1, 12)(j, 0) / 8);
    // Two units switching at the same point, one on and one off above it.
    l0.weight.data()[1] = -2 * l0.weight.data()[2];
    l0.bias.data()[1] = -2 * l0.bias.data()[2];
    // remake_units is what the network calls (tensor_ref::remake on layer 0's weight).
    void (*remake)(void*) = nullptr;
    void* owner = nullptr;
    seq.visit(
        [&](const std::string&, const tensor_ref<S>& t) {
            if (t.remake)
                remake = t.remake, owner = t.owner;
        },
        "");
    REQUIRE(remake);
    REQUIRE(seq.units.empty());
    remake(owner);
    REQUIRE(!seq.units.empty());

    const index_t batch = 8 * 5 + 7; // groups of eight samples, then single ones
    row_matrix<S> x = normal<double>(batch, 1, 13).cast<S>();
    x(batch - 2, 0) = S(0);
    x(5, 0) = std::numeric_limits<S>::quiet_NaN();
    x(batch - 1, 0) = std::numeric_limits<S>::quiet_NaN();
    const S inf = std::numeric_limits<S>::infinity();
    x(9, 0) = inf;
    x(batch - 3, 0) = -inf;
    for (index_t k : {2, 4, 30}) // on a switch point, as rounded
        x(11 + k, 0) = S(-(long double)l0.bias.data()[k] / l0.weight.data()[k]);
    const double eps = std::numeric_limits<S>::epsilon();
    std::vector<S> scratch(std::size_t(nn::layer_scratch<decltype(seq)>(batch)) + 1);
    {
        row_matrix<S> y(batch, O);
        seq.forward({x.data(), 1}, {y.data(), O}, batch, scratch.data());
        for (index_t b = 0; b < batch; ++b) {
            INFO("sample " << b);
            if (std::isnan(x(b, 0))) {
                CHECK(y.row(b).array().isNaN().all());
                continue;
            }
            if (std::isinf(x(b, 0))) {
                // The limit: the slope of the units on at that end times x, or the intercept.
                for (int o = 0; o < O; ++o) {
                    long double slope = 0, at = l2.bias.data()[o];
                    for (index_t k = 0; k < H; ++k) {
                        const long double w1 = l0.weight.data()[k], b1 = l0.bias.data()[k],
                                          w2 = l2.weight.data()[o * H + k];
                        if (w1 == 0)
                            at += w2 * std::max(b1, 0.0L);
                        else if ((w1 > 0) == (x(b, 0) > 0))
                            slope += w2 * w1, at += w2 * b1;
                    }
                    REQUIRE(slope != 0);
                    CHECK(y(b, o) == (slope > 0 ? x(b, 0) : -x(b, 0)));
                }
                continue;
            }
            for (int o = 0; o < O; ++o) {
                long double want = l2.bias.data()[o], size = std::abs(want);
                for (index_t k = 0; k < H; ++k) {
                    const long double w1 = l0.weight.data()[k], b1 = l0.bias.data()[k],
                                      w2 = l2.weight.data()[o * H + k];
                    want += w2 * std::max(w1 * x(b, 0) + b1, 0.0L);
                    size += std::abs(w2) * (std::abs(w1 * x(b, 0)) + std::abs(b1));
                }
                // Each of the H + 1 terms rounded a few times, then summed.
                CHECK(std::abs(y(b, o) - want) <= 4 * (H + 2) * eps * size);
            }
        }
    }
    // A switch point that does not fit the scalar (b1 / w1 overflows): the plain kernel.
    l0.weight.data()[0] = std::numeric_limits<S>::denorm_min() * 4;
    remake(owner);
    CHECK(seq.units.empty());
    l0.weight.data()[0] = S(1);
    remake(owner);
    CHECK(!seq.units.empty());
    l2.bias.data()[1] = std::numeric_limits<S>::infinity();
    remake(owner);
    CHECK(seq.units.empty());
    // Finite parameters whose constant (b2 + sum of w2 b1) overflows: the plain kernel too.
    l2.bias.data()[1] = S(0);
    l0.bias.data()[0] = std::numeric_limits<S>::max() / 2;
    l2.weight.data()[0] = S(4);
    remake(owner);
    CHECK(seq.units.empty());

    // One unit whose slope w2 w1 is subnormal, or whose w2 b1 is: no form.
    nn::kernels::relu_units<S> one;
    const S tiny = std::sqrt(std::numeric_limits<S>::min()) / 4, zero = 0, half = S(0.5);
    CHECK(one.make(&half, &half, &half, &zero, 1, 1));
    CHECK(!one.make(&tiny, &half, &tiny, &zero, 1, 1));
    CHECK(one.empty());
    CHECK(!one.make(&half, &tiny, &tiny, &zero, 1, 1)); // b2 + w2 b1 subnormal right of -2 tiny
    CHECK(one.make(&half, &tiny, &half, &zero, 1, 1));

    // A flat end: relu(x / 2 + 1/2) / 2 is 0 below -1, so x = -inf gives 0 (0 * inf would be NaN).
    REQUIRE(one.make(&half, &half, &half, &zero, 1, 1));
    const S ends[3] = {-inf, inf, S(3)};
    S ys[3];
    nn::kernels::relu_units_mlp<S, 1>(one, ends, 1, ys, 1, 3);
    CHECK(ys[0] == 0);
    CHECK(ys[1] == inf);
    CHECK(ys[2] == S(1));
}

// The backward of a small MLP of one input and ReLU from its sorted units (the training form of
// nn/kernels/relu_units.hpp), against the layers' gradients summed in long double, within the
// rounding of their sums: units of both signs, of w1 = 0 (b1 above, below and at 0), samples
// exactly on switch points of both signs (ReLU's derivative at 0 is 0), groups of eight samples
// and a rest; gradients added to what is there, gx left alone when not asked for.
TEMPLATE_TEST_CASE("nn backward: the small MLP of one input from its sorted units",
                   "[nn][backward][relu_units]", float, double) {
    using S = TestType;
    constexpr int H = 80, O = 3;
    using net = nn::Sequential<nn::Linear<1, H>, nn::ReLU, nn::Linear<H, O>>;
    harness<net, S, vec(1)> h;
    auto& seq = h.layer;
    auto& l0 = std::get<0>(seq.layers);
    auto& l2 = std::get<2>(seq.layers);
    const row_matrix<double> w = normal<double>(H, 2, 21);
    for (index_t k = 0; k < H; ++k) {
        l0.weight.data()[k] = S(w(k, 0));
        l0.bias.data()[k] = S(w(k, 1));
    }
    const S w1s[] = {0, 0, 0, 2, -4, S(1.5), S(-0.75)}, b1s[] = {1, -1, 0, -1, 2, 0, 0};
    for (int k = 0; k < 7; ++k) // constant units; two switching at 0.5 and two at 0
        l0.weight.data()[k] = w1s[k], l0.bias.data()[k] = b1s[k];
    void (*remake)(void*) = nullptr;
    void* owner = nullptr;
    for (const auto& t : h.params)
        if (t.remake)
            remake = t.remake, owner = t.owner;
    REQUIRE(remake);
    remake(owner); // gradients attached (the harness's): the training form
    REQUIRE(seq.units.trained());
    REQUIRE(!seq.units.empty()); // the forward runs the pieces too

    const long double eps = std::numeric_limits<S>::epsilon();
    const index_t batch = 8 * 4 + 5;
    row_matrix<S> x = normal<double>(batch, 1, 22).cast<S>();
    x(3, 0) = S(0.5);
    x(20, 0) = S(0.5);
    x(34, 0) = S(0);
    x(7, 0) = S(-0.0);
    const row_matrix<S> gy = normal<double>(batch, O, 23).cast<S>();
    const row_matrix<S> y = h.forward(x);
    const std::vector<std::vector<S>> before = {
        std::vector<S>(h.grads[0].size(), S(0.25)), std::vector<S>(h.grads[1].size(), S(-0.5)),
        std::vector<S>(h.grads[2].size(), S(1)), std::vector<S>(h.grads[3].size(), S(0))};
    for (std::size_t i = 0; i < 4; ++i)
        h.grads[i] = before[i];
    const row_matrix<S> gx = h.backward(x, y, gy);

    // The truth: the layers' gradients term by term (a unit is on where w1 x + b1 > 0).
    std::vector<long double> dW1(H), db1(H), dW2(O * H), mW1(H), mb1(H), mW2(O * H);
    for (index_t b = 0; b < batch; ++b) {
        long double dx = 0, mx = 0;
        const long double xb = x(b, 0);
        for (index_t k = 0; k < H; ++k) {
            const long double w1 = l0.weight.data()[k], b1 = l0.bias.data()[k], pre = w1 * xb + b1;
            if (pre <= 0)
                continue;
            long double gh = 0, mh = 0;
            for (int o = 0; o < O; ++o) {
                const long double w2 = l2.weight.data()[o * H + k], g = gy(b, o);
                dW2[o * H + k] += g * pre;
                mW2[o * H + k] += std::abs(g) * (std::abs(w1 * xb) + std::abs(b1));
                gh += w2 * g;
                mh += std::abs(w2 * g);
            }
            db1[k] += gh;
            mb1[k] += mh;
            dW1[k] += gh * xb;
            mW1[k] += mh * std::abs(xb);
            dx += gh * w1;
            mx += mh * std::abs(w1);
        }
        INFO("sample " << b);
        CHECK(std::abs(gx(b, 0) - dx) <= 4 * (H + O) * eps * mx);
    }
    const long double tol = 4 * (batch + H + O) * eps;
    for (index_t k = 0; k < H; ++k) {
        INFO("unit " << k);
        CHECK(std::abs(h.grads[0][k] - before[0][k] - dW1[k]) <= tol * (mW1[k] + 1));
        CHECK(std::abs(h.grads[1][k] - before[1][k] - db1[k]) <= tol * (mb1[k] + 1));
        for (int o = 0; o < O; ++o)
            CHECK(std::abs(h.grads[2][o * H + k] - before[2][o * H + k] - dW2[o * H + k]) <=
                  tol * (mW2[o * H + k] + 1));
    }
    for (int o = 0; o < O; ++o) { // db2 = Σ gy
        long double want = 0;
        for (index_t b = 0; b < batch; ++b)
            want += gy(b, o);
        CHECK(std::abs(h.grads[3][o] - want) <= tol * batch * 4);
    }
    // Without gx: not written, the parameters' the same.
    const auto with_gx = h.grads;
    for (std::size_t i = 0; i < 4; ++i)
        h.grads[i] = before[i];
    const row_matrix<S> none = h.backward(x, y, gy, false);
    CHECK(none.array().isNaN().all());
    CHECK(h.grads == with_gx);
}

// Vector targets: the fused small MLP (forward and backward) on each target this CPU runs agrees
// with the widest to rounding (kernels/targets.hpp; the products' bits: test_nn.cpp).

TEMPLATE_TEST_CASE("nn backward: the fused small MLP agrees on every vector target",
                   "[nn][backward][targets]", float, double) {
    using S = TestType;
    // Moons' subnet shape at a width of 64 with two inputs; batches with a rest of the groups.
    using net = nn::Sequential<nn::Linear<2, 64>, nn::ReLU, nn::Linear<64, 2>>;
    harness<net, S, vec(2)> h;
    test::vector_targets targets;
    const double tol = std::is_same_v<S, float> ? 4e-6 : 1e-14;
    for (index_t batch : {1, 5, 100}) {
        INFO("batch " << batch);
        const row_matrix<S> x = normal<double>(batch, 2, 7).cast<S>(),
                            gy = normal<double>(batch, 2, 8).cast<S>();
        std::vector<row_matrix<S>> ys, gxs;
        std::vector<std::vector<std::vector<S>>> grads;
        for (int bytes : targets.bytes) {
            nn::kernels::limit_vector_bytes(bytes);
            h.zero_grads();
            ys.push_back(h.forward(x));
            gxs.push_back(h.backward(x, ys.back(), gy));
            grads.push_back(h.grads);
        }
        auto close = [](const auto& a, const auto& b, double t) {
            double m = 0, d = 0;
            for (std::size_t i = 0; i < std::size_t(a.size()); ++i) {
                m = std::max(m, double(std::abs(b.data()[i])));
                d = std::max(d, double(std::abs(a.data()[i] - b.data()[i])));
            }
            INFO("max difference " << d << ", largest value " << m);
            CHECK(m > 0);
            CHECK(d <= t * m);
        };
        for (std::size_t i = 1; i < ys.size(); ++i) {
            INFO(targets.bytes[0] << " against " << targets.bytes[i] << " bytes");
            close(ys[i], ys[0], tol);
            close(gxs[i], gxs[0], tol);
            for (std::size_t p = 0; p < grads[0].size(); ++p)
                close(grads[i][p], grads[0][p], 8 * tol);
        }
    }
}

}  // namespace
