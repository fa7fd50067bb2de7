// Reverse mode of the splines, IResNetLayer and the InvAuto layers.
//
// Splines: RationalQuadraticSpline and LinearSpline (couplings with subnets) and
// ElementwiseRationalQuadraticSpline (learned parameters or a conditional subnet), for every
// option family — bins (one included), custom domains and minimal bin sizes, identity tails,
// domain clamping, splits, conditions, images. Inputs are spread so that both the bins and the
// affine tails are hit (a few values far outside the domain).
// IResNetLayer: exact log-det, and the truncated Hutchinson estimate, whose gradient is defined
// as the exact gradient of the estimate the forward computed (same probes: the test module
// re-seeds them before every forward).
// InvAutoAct / InvAutoActFixed / InvAutoActTwoSided / InvAutoFC / InvAutoConv2D.
// All of them in one network, through the trainer (both memory modes).
//
// Each backward is checked against central finite differences of its forward
// (tests/support/gradcheck.hpp, double, error <= 1e-6) and against the conventions of
// backward_args (tests/support/backward_checks.hpp).

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <string>
#include <utility>
#include <vector>

#include <inn/modules/invauto.hpp>
#include <inn/modules/iresnet.hpp>
#include <inn/modules/spline.hpp>
#include <inn/nn.hpp>
#include <inn/train/trainer.hpp>

#include "support/backward_checks.hpp"
#include "support/checks.hpp"
#include "support/gradcheck.hpp"

namespace {

using namespace inn;
using CO = SplineCouplingOptions;
using EO = SplineOptions;

struct fc_grad_spline {
    template <int In, int Out>
    using net = nn::Sequential<nn::Linear<In, 8>, nn::Tanh, nn::Linear<8, Out>>;
};
struct conv_grad_spline {
    template <int In, int Out>
    using net = nn::Sequential<nn::Conv2d<In, 4, 3>, nn::Tanh, nn::Conv2d<4, Out, 3>>;
};

constexpr signature one(dims d) { return {make_ports({d}), {}}; }
constexpr signature with_conditions(dims d, std::initializer_list<dims> c) {
    return {make_ports({d}), make_ports(c)};
}

/// 2.5 N(0, 1), with every seventh value far outside any domain used here (both signs): bins
/// and tails are both exercised.
void spread_input(test::grad_matrix& x, int) {
    generator g(11);
    for (Eigen::Index i = 0; i < x.size(); ++i) {
        const double v = 2.5 * g.normal<double>();
        x.data()[i] = i % 7 == 3 ? (v < 0 ? v - 6 : v + 6) : v;
    }
}

/// The gradient check and the conventions check of `Spec` bound for `Sig`; `entries` is the
/// number of tensors the gradient check must cover (inputs, conditions, trainable parameters).
/// `added_rounding`: how far gradients added to a destination holding 1 (5) may be from the
/// sum formed apart. 0 (exact) for modules that sum their contribution apart and add it once;
/// modules whose parameter gradients come from subnet layers (nn::Linear's bias adds row by row,
/// nn::Conv2d sample by sample) agree to rounding only — still far from the 1 (5) that
/// overwriting or adding twice would be off by.
template <class Spec, signature Sig>
void check_backward(std::size_t entries, test::gradcheck_options o = {},
                    double added_rounding = 0) {
    if (!o.input)
        o.input = spread_input;
    INFO(__PRETTY_FUNCTION__);
    const auto r = test::check_module_gradients<Spec, Sig>(o);
    INFO(r.describe());
    CHECK(r.entries.size() == entries);
    CHECK(r.worst() <= 1e-6);
    const auto c = test::check_backward_conventions<Spec, Sig>(o);
    INFO(c.describe());
    for (const auto& e : c.entries) {
        INFO(e.tensor);
        const bool added =
            e.tensor == "gradients added to, grad_in written" || e.tensor == "grad_cond not wanted";
        CHECK(e.error <= (added ? added_rounding : 0.0));
    }
}

/// check_backward for a module with subnet layers (see added_rounding).
template <class Spec, signature Sig>
void check_backward_layers(std::size_t entries, test::gradcheck_options o = {}) {
    check_backward<Spec, Sig>(entries, o, 1e-13);
}

// ---- couplings ----------------------------------------------------------------------------------

// Entries: input, [conditions], subnet1 (2 weights, 2 biases), subnet2 (the same).

TEST_CASE("backward: RationalQuadraticSpline, bins, tails, domains", "[grad][spline]") {
    constexpr signature v6 = one(make_dims({6}));
    check_backward_layers<RationalQuadraticSpline<fc_grad_spline>, v6>(9);
    check_backward_layers<RationalQuadraticSpline<fc_grad_spline, CO{.bins = 1}>, v6>(9);
    check_backward_layers<
        RationalQuadraticSpline<fc_grad_spline, CO{.bins = 4, .identity_tails = true}>,
        one(make_dims({5}))>(9, {.parameter_noise = 0.4});
    check_backward_layers<
        RationalQuadraticSpline<fc_grad_spline, CO{.split_len = 0.34,
                                                   .bins = 6,
                                                   .min_bin_sizes = {0.05, 0.08},
                                                   .default_domain = {-2.0, 2.5, -2.5, 2.0},
                                                   .domain_clamping = 4.0}>,
        v6>(9, {.parameter_noise = 0.4});
    check_backward_layers<
        RationalQuadraticSpline<
            fc_grad_spline,
            CO{.split_channels = 1, .bins = 3, .identity_tails = true, .domain_clamping = 2.5}>,
        one(make_dims({4}))>(9, {.parameter_noise = 0.4});
}

TEST_CASE("backward: RationalQuadraticSpline with conditions and on images", "[grad][spline]") {
    check_backward_layers<RationalQuadraticSpline<fc_grad_spline, CO{.bins = 5}>,
                          with_conditions(make_dims({5}), {make_dims({3})})>(10);
    check_backward_layers<
        RationalQuadraticSpline<fc_grad_spline, CO{.bins = 4, .identity_tails = true}>,
        with_conditions(make_dims({4}), {make_dims({2}), make_dims({1})})>(11);
    check_backward_layers<RationalQuadraticSpline<conv_grad_spline, CO{.bins = 3}>,
                          with_conditions(make_dims({3, 3, 2}), {make_dims({1, 3, 2})})>(
        10, {.batch = 2});
}

TEST_CASE("backward: LinearSpline, bins, tails, domains, conditions, images", "[grad][spline]") {
    check_backward_layers<LinearSpline<fc_grad_spline>, one(make_dims({6}))>(9);
    check_backward_layers<LinearSpline<fc_grad_spline, CO{.bins = 1, .identity_tails = true}>,
                          one(make_dims({4}))>(9);
    check_backward_layers<LinearSpline<fc_grad_spline, CO{.split_len = 0.3,
                                                          .bins = 5,
                                                          .min_bin_sizes = {0.05, 0.05},
                                                          .default_domain = {-4, 4, -3, 5},
                                                          .domain_clamping = 5}>,
                          one(make_dims({5}))>(9, {.parameter_noise = 0.4});
    check_backward_layers<
        LinearSpline<fc_grad_spline, CO{.bins = 4, .identity_tails = true, .domain_clamping = 3}>,
        with_conditions(make_dims({5}), {make_dims({2})})>(10, {.parameter_noise = 0.4});
    check_backward_layers<LinearSpline<conv_grad_spline, CO{.bins = 3}>, one(make_dims({2, 2, 3}))>(
        9, {.batch = 2});
}

// ---- ElementwiseRationalQuadraticSpline ---------------------------------------------------------

TEST_CASE("backward: ElementwiseRationalQuadraticSpline, learned parameters", "[grad][spline]") {
    // input, spline_parameters (zeros at construction: the noise makes the splines non-trivial)
    const test::gradcheck_options o{.parameter_noise = 0.5};
    check_backward<ElementwiseRationalQuadraticSpline<>, one(make_dims({4}))>(2, o);
    check_backward<ElementwiseRationalQuadraticSpline<EO{.bins = 1}>, one(make_dims({3}))>(2, o);
    check_backward<ElementwiseRationalQuadraticSpline<EO{.bins = 4, .identity_tails = true}>,
                   one(make_dims({2, 3, 2}))>(2, o);
    check_backward<ElementwiseRationalQuadraticSpline<EO{.bins = 6,
                                                         .min_bin_sizes = {0.02, 0.03},
                                                         .default_domain = {-1.5, 2.0, -2.0, 1.0},
                                                         .domain_clamping = 3.0}>,
                   one(make_dims({5}))>(2, o);
    check_backward<ElementwiseRationalQuadraticSpline<EO{
                       .bins = 3, .identity_tails = true, .domain_clamping = 2.5}>,
                   one(make_dims({3, 2}))>(2, o);
}

TEST_CASE("backward: ElementwiseRationalQuadraticSpline, conditional subnet", "[grad][spline]") {
    // input, conditions, subnet (2 weights, 2 biases)
    check_backward_layers<ElementwiseRationalQuadraticSpline<EO{.bins = 5}, fc_grad_spline>,
                          with_conditions(make_dims({3}), {make_dims({2})})>(6);
    check_backward_layers<
        ElementwiseRationalQuadraticSpline<
            EO{.bins = 3, .identity_tails = true, .domain_clamping = 2.0}, fc_grad_spline>,
        with_conditions(make_dims({4}), {make_dims({2}), make_dims({3})})>(7);
    check_backward_layers<ElementwiseRationalQuadraticSpline<EO{.bins = 4}, conv_grad_spline>,
                          with_conditions(make_dims({2, 2, 3}), {make_dims({1, 2, 3})})>(
        6, {.batch = 2});
}

// ---- one bin: the forward's knot derivatives ----------------------------------------------------

TEST_CASE("RationalQuadraticSpline with one bin is the tails' affine map everywhere", "[spline]") {
    // FrEIA's knot derivatives are [scale, scale] for one bin (no inner ones), and the bin's
    // slope dy/dx is scale = sum(heights) / sum(widths) too: q = 0 and the segment is the line
    // through the knots, the tails' line. (inn used to read the tail shift as the right knot's
    // derivative.) Scanned through the whole domain.
    using M = ElementwiseRationalQuadraticSpline<EO{.bins = 1}>::bind<double, one(make_dims({1}))>;
    generator g(21);
    M m(g);
    for (Eigen::Index i = 0; i < m.spline_parameters.size(); ++i)
        m.spline_parameters.values[i] = 0.8 * g.normal<double>();
    prepare_module(m);
    constexpr index_t n = 4001;
    const auto count = static_cast<std::size_t>(n);
    std::vector<double> x(count), y(count), ljd(count, 0.0);
    for (index_t i = 0; i < n; ++i)
        x[std::size_t(i)] = -10.0 + 20.0 * double(i) / double(n - 1);
    std::vector<double> scratch(
        std::size_t(std::max<index_t>(M::scratch_size(pass::forward, n), 1)));
    const cview<double> in[1] = {{x.data(), 1}};
    const view<double> out[1] = {{y.data(), 1}};
    m.forward(run_args<double>{n, in, out, {}, ljd.data(), true, scratch.data()});
    // x[0] = -10 lies in the left tail: y = scale x + shift with log(scale) = ljd[0].
    const double scale = std::exp(ljd[0]);
    REQUIRE(std::abs(ljd[0]) > 0.05); // a non-trivial slope
    double off_slope = 0, off_line = 0;
    for (std::size_t i = 0; i < std::size_t(n); ++i) {
        off_slope = std::max(off_slope, std::abs(ljd[i] - ljd[0]));
        off_line = std::max(off_line, std::abs(y[i] - (y[0] + scale * (x[i] - x[0]))));
    }
    CHECK(off_slope <= 1e-12);
    CHECK(off_line <= 1e-11);
}

// ---- identity tails: outside the domain the map is the identity ---------------------------------

TEST_CASE("backward: identity tails pass the gradient through unchanged outside the domain",
          "[grad][spline]") {
    using M = ElementwiseRationalQuadraticSpline<EO{
        .bins = 4, .identity_tails = true}>::bind<double, one(make_dims({4}))>;
    generator g(3);
    M m(g);
    std::vector<double> grad(std::size_t(m.spline_parameters.size()), 0.0);
    m.spline_parameters.grad = grad.data();
    for (Eigen::Index i = 0; i < m.spline_parameters.size(); ++i)
        m.spline_parameters.values[i] = 0.7 * g.normal<double>();
    // Far outside (the domain is at most default_width = 6 wide): the identity, log-det 0.
    const std::vector<double> x = {-40.0, -9.5, 12.0, 300.0};
    const std::vector<double> gy = {0.3, -1.2, 2.0, 0.9};
    const double gl = 1.7;
    std::vector<double> y(4), gx(4, std::nan("")), scratch(1000);
    double ljd = 0;
    const cview<double> in[1] = {{x.data(), 4}};
    const view<double> out[1] = {{y.data(), 4}};
    REQUIRE(M::scratch_size(pass::backward, 1) <= 1000);
    m.forward(run_args<double>{1, in, out, {}, &ljd, true, scratch.data()});
    for (int i = 0; i < 4; ++i)
        CHECK(y[std::size_t(i)] == Approx(x[std::size_t(i)]).margin(1e-12));
    CHECK(std::abs(ljd) <= 1e-15);
    const cview<double> yv[1] = {{y.data(), 4}}, gyv[1] = {{gy.data(), 4}};
    const view<double> gxv[1] = {{gx.data(), 4}};
    backward_args<double> a;
    a.batch = 1;
    a.in = in;
    a.out = yv;
    a.grad_out = gyv;
    a.grad_ljd = &gl;
    a.grad_in = gxv;
    a.scratch = scratch.data();
    m.backward(a);
    // dL/dx = dL/dy (slope 1); the parameters only move the tails by rounding (slope Σh/Σw = 1
    // and shift bottom - left = 0 whatever they are).
    for (int i = 0; i < 4; ++i)
        CHECK(std::abs(gx[std::size_t(i)] - gy[std::size_t(i)]) <= 1e-14);
    for (double v : grad)
        CHECK(std::abs(v) <= 1e-12);
}

// ---- IResNetLayer -------------------------------------------------------------------------------

/// IResNetLayer whose forward re-seeds its probe generator first: every forward of the finite
/// differences then evaluates the same (truncated, stochastic) log-det estimate, whose exact
/// gradient the backward computes.
template <IResNetLayerOptions O> struct SeededIResNet {
    static constexpr shape_result output_shapes(const signature& s) {
        return IResNetLayer<O>::output_shapes(s);
    }
    template <Scalar S, signature Sig> struct bind : IResNetLayer<O>::template bind<S, Sig> {
        using base = typename IResNetLayer<O>::template bind<S, Sig>;
        explicit bind(generator& g) : base(g) {}
        void forward(const run_args<S>& a) const {
            const_cast<bind*>(this)->seed_probes(77); // the tests' objects are not const
            base::forward(a);
        }
    };
};

using IRO = IResNetLayerOptions;
using inn::iresnet_logdet;

// Entries: input, [conditions], then weight and bias of each of the n_internal_layers + 2 layers.

TEST_CASE("backward: IResNetLayer, exact log-det", "[grad][iresnet]") {
    check_backward_layers<IResNetLayer<IRO{.internal_size = 5, .logdet = iresnet_logdet::exact}>,
                          one(make_dims({4}))>(7);
    check_backward_layers<
        IResNetLayer<IRO{.internal_size = 3, .n_internal_layers = 0}>, // automatic
        one(make_dims({3}))>(5);
    check_backward_layers<
        IResNetLayer<IRO{.n_internal_layers = 2, .logdet = iresnet_logdet::exact}>,
        with_conditions(make_dims({3}), {make_dims({2})})>(10);
    check_backward_layers<IResNetLayer<IRO{.internal_size = 3, .logdet = iresnet_logdet::exact}>,
                          one(make_dims({2, 3, 2}))>(7, {.batch = 2});
}

TEST_CASE("backward: IResNetLayer, the gradient of the truncated Hutchinson estimate",
          "[grad][iresnet]") {
    // The same estimate (probes re-seeded) in every forward: the backward must be its exact
    // gradient, series truncation and probes included.
    check_backward_layers<SeededIResNet<IRO{.internal_size = 6,
                                            .jacobian_iterations = 5,
                                            .hutchinson_samples = 2,
                                            .logdet = iresnet_logdet::estimate}>,
                          one(make_dims({4}))>(7);
    check_backward_layers<
        SeededIResNet<IRO{
            .n_internal_layers = 0, .jacobian_iterations = 1, .logdet = iresnet_logdet::estimate}>,
        one(make_dims({3}))>(5);
    check_backward_layers<
        SeededIResNet<IRO{
            .internal_size = 3, .jacobian_iterations = 4, .logdet = iresnet_logdet::estimate}>,
        one(make_dims({2, 2, 3}))>(7, {.batch = 2});
}

TEST_CASE("backward: IResNetLayer's estimate uses the probes of the last forward call",
          "[grad][iresnet]") {
    using M =
        IResNetLayer<IRO{.jacobian_iterations = 3,
                         .logdet = iresnet_logdet::estimate}>::bind<double, one(make_dims({3}))>;
    generator g(5);
    M m(g);
    const index_t batch = 2;
    std::vector<double> x(6), y(6), gy(6), gx1(6), gx2(6), gx3(6), ljd(2);
    const std::vector<double> gl = {0.8, -1.3};
    for (auto* v : {&x, &gy})
        for (double& e : *v)
            e = g.normal<double>();
    std::vector<double> scratch(std::size_t(
        std::max(M::scratch_size(pass::forward, batch), M::scratch_size(pass::backward, batch))));
    const cview<double> in[1] = {{x.data(), 3}}, out_c[1] = {{y.data(), 3}},
                        gout[1] = {{gy.data(), 3}};
    const view<double> out[1] = {{y.data(), 3}};
    auto forward = [&] {
        std::fill(ljd.begin(), ljd.end(), 0.0);
        m.forward(run_args<double>{batch, in, out, {}, ljd.data(), true, scratch.data()});
        return ljd;
    };
    auto backward = [&](std::vector<double>& gx) {
        const view<double> gin[1] = {{gx.data(), 3}};
        backward_args<double> a;
        a.batch = batch;
        a.in = in;
        a.out = out_c;
        a.grad_out = gout;
        a.grad_ljd = gl.data();
        a.grad_in = gin;
        a.scratch = scratch.data();
        m.backward(a);
    };
    m.seed_probes(9);
    const auto l1 = forward();
    backward(gx1);
    const auto l2 = forward(); // other probes: another estimate, another gradient
    backward(gx2);
    m.seed_probes(9);
    const auto l3 = forward(); // the first probes again
    backward(gx3);
    CHECK(l1 != l2);
    CHECK(l1 == l3);
    CHECK(gx1 != gx2);
    CHECK(gx1 == gx3);
}

// ---- InvAuto layers -----------------------------------------------------------------------------

TEST_CASE("backward: InvAutoAct, InvAutoActFixed, InvAutoActTwoSided", "[grad][invauto]") {
    // Entries: input, alpha (alpha_pos, alpha_neg); learnable = false leaves the input only.
    check_backward<InvAutoAct<>, one(make_dims({5}))>(2);
    check_backward<InvAutoAct<InvAutoActOptions{.slope_init = 0.7}>, one(make_dims({3, 2, 2}))>(2);
    check_backward<InvAutoAct<InvAutoActOptions{.slope_init = 1.5, .learnable = false}>,
                   one(make_dims({4}))>(1);
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
    check_backward<InvAutoActFixed<InvAutoActOptions{.slope_init = 3.0}>, one(make_dims({4}))>(2);
#pragma GCC diagnostic pop
    check_backward<InvAutoActTwoSided<>, one(make_dims({6}))>(3);
    check_backward<InvAutoActTwoSided<InvAutoActTwoSidedOptions{.init_pos = 1.3, .init_neg = 0.4}>,
                   one(make_dims({2, 3, 2}))>(3);
    check_backward<InvAutoActTwoSided<InvAutoActTwoSidedOptions{.learnable = false}>,
                   one(make_dims({3}))>(1);
}

TEST_CASE("backward: InvAuto slopes at x == 0", "[grad][invauto]") {
    // Zero inputs: ℓ = 0 for InvAutoAct (the α gradient gets nothing), (α₊ + α₋) / 2 for the
    // two-sided one (half to each); the slope at 0 is e^ℓ, as the forward applies it.
    using A = InvAutoActTwoSided<>::bind<double, one(make_dims({2}))>;
    generator g(1);
    A m(g);
    std::vector<double> gp(2, 0.0), gn(2, 0.0);
    m.alpha_pos.grad = gp.data();
    m.alpha_neg.grad = gn.data();
    const std::vector<double> x = {0.0, 0.0}, gy = {1.5, -2.0};
    std::vector<double> y = {0.0, 0.0}, gx(2);
    const double gl = 0.25;
    const cview<double> in[1] = {{x.data(), 2}}, out[1] = {{y.data(), 2}},
                        gout[1] = {{gy.data(), 2}};
    const view<double> gin[1] = {{gx.data(), 2}};
    backward_args<double> a;
    a.batch = 1;
    a.in = in;
    a.out = out;
    a.grad_out = gout;
    a.grad_ljd = &gl;
    a.grad_in = gin;
    m.backward(a);
    const double slope = std::exp(0.5 * (std::log(2.0) + std::log(0.5))); // e^0 = 1
    CHECK(gx[0] == Approx(1.5 * slope));
    CHECK(gx[1] == Approx(-2.0 * slope));
    CHECK(gp[0] == Approx(0.125)); // dL/dℓ = gy · y + gl = 0.25, half of it
    CHECK(gn[1] == Approx(0.125));
}

TEST_CASE("backward: InvAutoFC and InvAutoConv2D (the forward's linear map)", "[grad][invauto]") {
    // Entries: input, weights, bias (InvAutoFC); input, bias, conv2d.weight (InvAutoConv2D).
    check_backward<InvAutoFC<>, one(make_dims({5}))>(3);
    check_backward_layers<InvAutoConv2D<>, one(make_dims({2, 3, 3}))>(3, {.batch = 2});
    check_backward_layers<InvAutoConv2D<InvAutoConv2DOptions{.kernel_size = 1, .padding = 0}>,
                          one(make_dims({3, 2, 2}))>(3);
    check_backward_layers<InvAutoConv2D<InvAutoConv2DOptions{.kernel_size = 5, .padding = 2}>,
                          one(make_dims({2, 3, 4}))>(3, {.batch = 2});
}

// ---- in a network: the training executor -------------------------------------------------------

using TrainChain = SequenceINN<Shape<6>, RationalQuadraticSpline<fc_grad_spline, CO{.bins = 4}>,
                               LinearSpline<fc_grad_spline, CO{.bins = 3, .identity_tails = true}>,
                               ElementwiseRationalQuadraticSpline<EO{.bins = 5}>,
                               IResNetLayer<IRO{.internal_size = 5}>, InvAutoAct<>,
                               InvAutoActTwoSided<>, InvAutoFC<>>::with_scalar<double>;

TEST_CASE("backward in training: splines, IResNetLayer and InvAuto layers in one network",
          "[grad][train][spline][iresnet][invauto]") {
    // The trainer's gradients (both memory modes: recompute inverts the splines and the Act
    // layers, keeps the inputs of IResNetLayer and InvAutoFC) against central finite
    // differences of FrEIA's maximum-likelihood loss from the network's own forward.
    using mat = row_matrix<double>;
    auto nll = [](TrainChain& net, const mat& x) {
        auto [z, ljd] = net.forward(x);
        double l = 0;
        for (Eigen::Index b = 0; b < ljd.size(); ++b)
            l += 0.5 * z.row(b).squaredNorm() - ljd(b);
        return l / double(ljd.size() * z.cols());
    };
    for (auto mode : {train::store, train::recompute}) {
        INFO("mode " << (mode == train::store ? "store" : "recompute"));
        TrainChain net(3);
        {
            generator g(4);
            net.visit([&](const std::string&, const tensor_ref<double>& t) {
                if (!t.real || !t.trainable)
                    return;
                for (std::int64_t i = 0; i < t.shape.numel(); ++i)
                    t.real[i] += 0.1 * g.normal<double>();
            });
            net.parameters_changed();
        }
        const mat x = 1.5 * test::random_batch(4, 6, 1);
        train::trainer t(net, {.memory = mode});
        const double loss = t.step(x, train::max_likelihood);
        CHECK(loss == Approx(nll(net, x)).epsilon(1e-12));
        std::vector<double*> params;
        std::vector<double> grads;
        std::as_const(net).visit([&](const std::string&, const tensor_ref<double>& t) {
            if (!t.real || !t.trainable)
                return;
            for (std::int64_t i = 0; i < t.shape.numel(); ++i) {
                params.push_back(t.real + i);
                grads.push_back(t.grad()[i]);
            }
        });
        CHECK(params.size() > 500);
        const double h = 1e-6;
        double worst = 0, scale = 1;
        for (std::size_t i = 0; i < params.size(); ++i) {
            const double keep = *params[i];
            *params[i] = keep + h;
            net.parameters_changed();
            const double up = nll(net, x);
            *params[i] = keep - h;
            net.parameters_changed();
            const double down = nll(net, x);
            *params[i] = keep;
            net.parameters_changed();
            const double num = (up - down) / (2 * h);
            worst = std::max(worst, std::abs(num - grads[i]));
            scale = std::max(scale, std::abs(num));
        }
        CHECK(worst / scale < 1e-7);
        CHECK(test::input_gradient_error(x, t.input_gradient(),
                                         [&](const mat& xv) { return nll(net, xv); }, h) < 1e-7);
    }
}

} // namespace
