// IResNetLayer (docs/freia-semantics.md#iresnet-reverse-logdet) and GaussianMixtureModel.
// Independent truths: the FrEIA fixtures (z, x_rev, and the exact log-dets FrEIA's generator
// computed with autograd), finite-difference log-dets, the statistics of the Hutchinson
// estimator around the exact value, singular values from an SVD for the Lipschitz correction,
// and layer-by-layer initialisation from the same generator.

#include <catch2/catch.hpp>

#include <cmath>
#include <map>
#include <string>
#include <vector>

#include <Eigen/Dense>
#include <inn/io/state_dict.hpp>
#include <inn/modules/gaussian_mixture.hpp>
#include <inn/modules/iresnet.hpp>
#include <inn/modules/orthogonal.hpp>

#include "support/checks.hpp"
#include "support/fixture.hpp"

// Everything in this file has internal linkage: test files reuse names (subnets,
// node structs) that would otherwise collide across translation units (ODR).
namespace {

using namespace inn;
using inn::test::max_rel_error;
using mat = row_matrix<double>;

namespace {

// ---- the fixtures' architectures ----------------------------------------------------------------

// iresnet_vec: internal_size 14, defaults otherwise. Exact log-det; FrEIA's reverse log-det
// point (the reverse input z) so that test.log_jac_det_rev_exact applies.
constexpr IResNetLayerOptions vec_freia{.internal_size = 14,
                                        .logdet = iresnet_logdet::exact,
                                        .freia_reverse_logdet = true};
constexpr IResNetLayerOptions img_freia{.internal_size = 4,
                                        .jacobian_iterations = 10,
                                        .logdet = iresnet_logdet::exact,
                                        .freia_reverse_logdet = true};
using IResVecFreia = SequenceINN<Shape<6>, IResNetLayer<vec_freia>>;
using IResImgFreia = SequenceINN<Shape<2, 4, 4>, IResNetLayer<img_freia>>;

// The same layers with this library's defaults (automatic = exact here, reverse log-det at x).
using IResVec = SequenceINN<Shape<6>, IResNetLayer<IResNetLayerOptions{.internal_size = 14}>>::
    with_scalar<double>;
using IResImg = SequenceINN<Shape<2, 4, 4>, IResNetLayer<IResNetLayerOptions{
                                                 .internal_size = 4, .jacobian_iterations = 10}>>::
    with_scalar<double>;
// FrEIA's stochastic estimate.
using IResVecEst =
    SequenceINN<Shape<6>, IResNetLayer<IResNetLayerOptions{
                              .internal_size = 14, .logdet = iresnet_logdet::estimate}>>::
        with_scalar<double>;
// Early stop of the inverse.
using IResVecTol =
    SequenceINN<Shape<6>, IResNetLayer<IResNetLayerOptions{.internal_size = 14,
                                                           .fixed_point_iterations = 500,
                                                           .fixed_point_tolerance = 1e-13}>>::
        with_scalar<double>;
// Two layers with two internal layers each, default width: init order, keys, finite differences.
using IResDeep =
    SequenceINN<Shape<5>, Repeat<2, IResNetLayer<IResNetLayerOptions{.n_internal_layers = 2}>>>::
        with_scalar<double>;

namespace gmm_graph {
struct x : InputNode<Shape<4>> {};
struct w : ConditionNode<Shape<3>> {};
struct mu : ConditionNode<Shape<3, 4>> {};
struct U : ConditionNode<Shape<3, 10>> {};
struct i : ConditionNode<Shape<1>> {};
struct gmm : Node<GaussianMixtureModel, x, conditions<w, mu, U, i>> {};
struct z : OutputNode<gmm> {};
using Net = GraphINN<x, w, mu, U, i, gmm, z>;
}  // namespace gmm_graph

double max_abs(const Eigen::VectorXd& v) { return v.cwiseAbs().maxCoeff(); }

template <class Net>
void load_fixture(Net& net, const test::fixture& f) {
    load_state_dict(net, f.file, {.strict = true, .ignore_prefixes = {"test."}});
}

/// The weights of a network by key.
template <class Net>
std::map<std::string, mat> weights_of(Net& net) {
    std::map<std::string, mat> m;
    net.visit([&](const std::string& key, const tensor_ref<double>& t) {
        const index_t rows = t.shape.extent[0];
        m[key] = Eigen::Map<mat>(t.real, rows, index_t(t.shape.numel()) / rows);
    });
    return m;
}

double spectral_norm(const mat& W) {
    return Eigen::JacobiSVD<Eigen::MatrixXd>(W).singularValues()(0);
}

}  // namespace

// ---- IResNetLayer -------------------------------------------------------------------------------

TEST_CASE("IResNetLayer: FrEIA parity of iresnet_vec and iresnet_img", "[iresnet]") {
    static_assert(IResVecFreia::inversion == inverse_kind::iterative);
    // z and x_rev exact (x_rev is FrEIA's 50-step fixed point), log-dets against the exact
    // values FrEIA's generator computed with autograd (fixtures README §3).
    const test::tolerance tol{1e-10, 1e-10, 1e-8, 1e-8};
    SECTION("vectors") { test::check_parity_both<IResVecFreia>("iresnet_vec", "iresnet", tol); }
    SECTION("images") { test::check_parity_both<IResImgFreia>("iresnet_img", "iresnet", tol); }
}

TEST_CASE("IResNetLayer: the reverse log-det is taken at the reconstructed x (FrEIA's bug fixed)",
          "[iresnet]") {
    auto check = [](auto& net, const std::string& name) {
        test::fixture f(name);
        load_fixture(net, f);
        const mat x = f.matrix<double>("test.x.0"), z = f.matrix<double>("test.z.0");
        const mat x_in = x, z_in = z;
        const Eigen::VectorXd exact = f.vec<double>("test.log_jac_det_exact");
        const Eigen::VectorXd freia_rev = f.vec<double>("test.log_jac_det_rev_exact");

        auto fw = net.forward(x);
        CHECK(max_rel_error(fw.z, z) < 1e-10);
        CHECK(max_abs(fw.log_jac_det - exact) < 1e-8);
        auto rv = net.inverse(z);
        CHECK(max_rel_error(rv.x, f.matrix<double>("test.x_rev.0")) < 1e-10);
        // log|det| of the inverse map at z = -log|det J_f| at x.
        CHECK(max_abs(rv.log_jac_det + exact) < 1e-8);
        // ... which is not FrEIA's value (its estimate is taken at z).
        CHECK(max_abs(rv.log_jac_det - freia_rev) > 1e-6);  // 100x the tolerance above
        // FrEIA's fixed point: 50 iterations and one more evaluation, converged here.
        const auto& layer = *net.template module<0>();
        CHECK(layer.last_inverse_iterations() == 51);
        CHECK(layer.last_inverse_residual() < 1e-13);
        // Inputs untouched (FrEIA flips requires_grad on its caller's tensor).
        CHECK(x == x_in);
        CHECK(z == z_in);
    };
    IResVec vec;
    IResImg img;
    check(vec, "iresnet_vec");
    check(img, "iresnet_img");
}

TEST_CASE("IResNetLayer: Hutchinson estimate is unbiased around the exact log-det", "[iresnet]") {
    test::fixture f("iresnet_vec");
    IResVecEst est;
    load_fixture(est, f);
    const mat x = f.matrix<double>("test.x.0");
    const Eigen::VectorXd exact = f.vec<double>("test.log_jac_det_exact");
    // Every sample repeated n times: each row gets its own Rademacher probe.
    const index_t n = 4000, B = x.rows();
    mat xs(B * n, x.cols());
    for (index_t b = 0; b < B; ++b)
        for (index_t r = 0; r < n; ++r) xs.row(b * n + r) = x.row(b);
    const Eigen::VectorXd ljd = est.forward(xs).log_jac_det;
    for (index_t b = 0; b < B; ++b) {
        const Eigen::VectorXd s = ljd.segment(b * n, n);
        const double mean = s.mean();
        const double sd = std::sqrt((s.array() - mean).square().sum() / double(n - 1));
        INFO("sample " << b << ": mean " << mean << ", sd " << sd << ", exact " << exact(b));
        CHECK(sd > 1e-4);                                            // stochastic
        CHECK(std::abs(mean - exact(b)) < 5 * sd / std::sqrt(double(n)));  // unbiased
        CHECK((s.array() - exact(b)).abs().maxCoeff() < 1.0);       // FrEIA's spread: 0.2
    }
    // Reverse: minus the estimate at the reconstructed x.
    const Eigen::VectorXd rev = est.inverse(est.forward(xs).z).log_jac_det;
    for (index_t b = 0; b < B; ++b)
        CHECK(std::abs(rev.segment(b * n, n).mean() + exact(b)) <
              5 * 0.5 / std::sqrt(double(n)) + 1e-3);

    SECTION("seeded: the same network seed gives the same estimates, jac=false draws nothing") {
        IResVecEst a(11), b(11), c(12);
        load_fixture(a, f);
        load_fixture(b, f);
        load_fixture(c, f);
        const auto nj = a.forward(x, false);
        CHECK(max_abs(nj.log_jac_det) == 0.0);
        CHECK(nj.z == a.forward(x).z);  // after a jac=false call, a's probes are still b's
        CHECK(a.inverse(x, false).log_jac_det.cwiseAbs().maxCoeff() == 0.0);
        b.forward(x);
        CHECK(max_abs(a.forward(x).log_jac_det - b.forward(x).log_jac_det) == 0.0);
        CHECK(max_abs(a.forward(x).log_jac_det - c.forward(x).log_jac_det) > 1e-6);
        a.module<0>()->seed_probes(5);
        c.module<0>()->seed_probes(5);
        CHECK(max_abs(a.forward(x).log_jac_det - c.forward(x).log_jac_det) == 0.0);
    }
}

TEST_CASE("IResNetLayer: exact log-det against finite differences, after Lipschitz correction",
          "[iresnet]") {
    generator g(3);
    SECTION("vectors, two layers of two internal layers") {
        IResDeep net(7);
        net.module<0>()->lipschitz_correction(g);
        net.module<1>()->lipschitz_correction(g);
        const mat x = test::random_batch(6, 5, 4);
        auto fw = net.forward(x);
        CHECK(max_abs(test::numerical_log_det(net, x) - fw.log_jac_det) < 1e-7);
        CHECK(max_abs(fw.log_jac_det) > 1e-2);
        auto rv = net.inverse(fw.z);
        CHECK(max_rel_error(rv.x, x) < 1e-12);
        CHECK(max_abs(rv.log_jac_det + fw.log_jac_det) < 1e-10);
    }
    SECTION("images") {
        IResImg net(8);
        net.module<0>()->lipschitz_correction(g);
        const mat x = test::random_batch(3, 32, 5);
        auto fw = net.forward(x);
        CHECK(max_abs(test::numerical_log_det(net, x) - fw.log_jac_det) < 1e-7);
        auto rv = net.inverse(fw.z);
        CHECK(max_rel_error(rv.x, x) < 1e-12);
        CHECK(max_abs(rv.log_jac_det + fw.log_jac_det) < 1e-10);
    }
}

TEST_CASE("IResNetLayer: lipschitz_correction scales weights to the spectral norm bound",
          "[iresnet]") {
    SECTION("Linear layers: sigma from an SVD") {
        IResDeep net(21);
        auto& layer = *net.module<0>();
        // Make every weight too large, except layer 2, which is left below the bound.
        net.visit([&](const std::string& key, const tensor_ref<double>& t) {
            if (!key.ends_with("weight")) return;
            Eigen::Map<Eigen::VectorXd> w(t.real, t.shape.numel());
            const double s = key.find("residual.2.") != std::string::npos ? 0.5 : 3.0;
            const mat W = Eigen::Map<mat>(t.real, t.shape.extent[0], t.shape.extent[1]);
            w *= s / spectral_norm(W);
        });
        const auto before = weights_of(net);
        generator g(4);
        layer.lipschitz_correction(g);
        const auto after = weights_of(net);
        for (const auto& [key, W] : after) {
            INFO(key);
            if (!key.starts_with("module_list.0.") || !key.ends_with("weight")) {
                CHECK(W == before.at(key));  // biases and the other layer untouched
                continue;
            }
            const double s = spectral_norm(W);
            if (key.find("residual.2.") != std::string::npos) {
                CHECK(W == before.at(key));
            } else {
                // A pure rescaling, to the bound up to the power iteration's accuracy.
                const double c = W(0, 0) / before.at(key)(0, 0);
                CHECK(max_rel_error(W, mat(c * before.at(key))) < 1e-14);
                CHECK(s >= 0.8 * (1 - 1e-9));
                CHECK(s < 0.8 * 1.05);
            }
        }
    }
    SECTION("Conv2d layers: FrEIA's unpadded convolution, sigma from its matrix") {
        IResImg net(22);
        auto& layer = *net.module<0>();
        net.visit([&](const std::string&, const tensor_ref<double>& t) {
            Eigen::Map<Eigen::VectorXd>(t.real, t.shape.numel()) *= 4.0;
        });
        const auto before = weights_of(net);
        generator g(5);
        layer.lipschitz_correction(g);
        const auto after = weights_of(net);
        // The unpadded 3x3 convolution of a 4x4 image as a matrix [out*2*2, in*4*4].
        auto conv_matrix = [](const mat& W, int co, int ci) {
            Eigen::MatrixXd A = Eigen::MatrixXd::Zero(co * 4, ci * 16);
            for (int o = 0; o < co; ++o)
                for (int p = 0; p < 2; ++p)
                    for (int q = 0; q < 2; ++q)
                        for (int i = 0; i < ci; ++i)
                            for (int s = 0; s < 3; ++s)
                                for (int t = 0; t < 3; ++t)
                                    A(o * 4 + p * 2 + q, i * 16 + (p + s) * 4 + q + t) +=
                                        W(o, (i * 3 + s) * 3 + t);
            return A;
        };
        const int shapes[3][2] = {{4, 2}, {4, 4}, {2, 4}};
        for (int l = 0; l < 3; ++l) {
            const std::string key = "module_list.0.residual." + std::to_string(2 * l) + ".weight";
            INFO(key);
            const mat& W = after.at(key);
            const int co = shapes[l][0], ci = shapes[l][1];
            const double s0 = spectral_norm(conv_matrix(before.at(key), co, ci));
            const double s1 = spectral_norm(conv_matrix(W, co, ci));
            REQUIRE(s0 > 0.8);
            CHECK(max_rel_error(W, mat((s1 / s0) * before.at(key))) < 1e-12);
            CHECK(s1 >= 0.8 * (1 - 1e-9));
            CHECK(s1 < 0.8 * 1.05);
        }
    }
}

TEST_CASE("IResNetLayer: fixed-point tolerance and the residual reached", "[iresnet]") {
    test::fixture f("iresnet_vec");
    const mat x = f.matrix<double>("test.x.0"), z = f.matrix<double>("test.z.0");
    IResVecTol net;
    load_fixture(net, f);
    auto rv = net.inverse(z);
    const auto& layer = *net.module<0>();
    CHECK(layer.last_inverse_residual() <= 1e-13);
    CHECK(layer.last_inverse_iterations() > 5);
    CHECK(layer.last_inverse_iterations() < 60);  // stopped early, not after 501 evaluations
    CHECK(max_rel_error(rv.x, x) < 1e-12);

    SECTION("a non-contractive residual is reported, not hidden") {
        IResVec big;
        load_fixture(big, f);
        big.visit([](const std::string& key, const tensor_ref<double>& t) {
            if (key.ends_with("weight"))
                Eigen::Map<Eigen::VectorXd>(t.real, t.shape.numel()) *= 4.0;
        });
        big.inverse(z, false);
        const double r = big.module<0>()->last_inverse_residual();
        CHECK(!(r < 1e-3));  // large or NaN
    }
}

TEST_CASE("IResNetLayer: parameters, keys and draw order are FrEIA's", "[iresnet]") {
    IResDeep net(31);
    generator g(31);
    std::vector<std::string> keys;
    std::vector<mat> want;
    // Layer by layer, weight then bias, PyTorch's default init: Linear(5,10), 2x Linear(10,10),
    // Linear(10,5), twice.
    for (int m = 0; m < 2; ++m) {
        auto add = [&](auto layer, int index) {
            keys.push_back("module_list." + std::to_string(m) + ".residual." +
                           std::to_string(index) + ".weight");
            const auto& e = layer.weight.shape.extent;
            want.push_back(layer.weight.matrix(e[0], e[1]));
            keys.push_back("module_list." + std::to_string(m) + ".residual." +
                           std::to_string(index) + ".bias");
            want.push_back(layer.bias.values.transpose());
        };
        add(nn::Linear<5, 10>::bind<double, make_dims({5})>(g), 0);
        add(nn::Linear<10, 10>::bind<double, make_dims({10})>(g), 2);
        add(nn::Linear<10, 10>::bind<double, make_dims({10})>(g), 4);
        add(nn::Linear<10, 5>::bind<double, make_dims({10})>(g), 6);
    }
    std::vector<std::string> got_keys;
    std::vector<mat> got;
    net.visit([&](const std::string& key, const tensor_ref<double>& t) {
        got_keys.push_back(key);
        CHECK(t.trainable);
        const index_t rows = t.shape.rank == 2 ? t.shape.extent[0] : 1;
        got.push_back(Eigen::Map<mat>(t.real, rows, index_t(t.shape.numel()) / rows));
    });
    REQUIRE(got_keys == keys);
    for (std::size_t k = 0; k < keys.size(); ++k) {
        INFO(keys[k]);
        CHECK(got[k] == want[k]);
    }

    // Image layer: Conv2d weights (out, in, 3, 3), the default width 2 C.
    using Img = SequenceINN<Shape<3, 4, 4>, IResNetLayer<>>;
    Img img;
    std::vector<std::vector<std::int64_t>> shapes;
    img.visit([&](const std::string&, const tensor_ref<float>& t) {
        shapes.push_back(t.shape.as_vector());
    });
    CHECK(shapes == std::vector<std::vector<std::int64_t>>{
                        {6, 3, 3, 3}, {6}, {6, 6, 3, 3}, {6}, {3, 6, 3, 3}, {3}});
}

TEST_CASE("IResNetLayer: shape rules", "[iresnet]") {
    auto sig = [](dims d, int n_cond = 0) {
        signature s;
        s.inputs = make_ports({d});
        for (int j = 0; j < n_cond; ++j) s.conditions.push(make_dims({3}));
        return s;
    };
    using L = IResNetLayer<>;
    CHECK(L::output_shapes(sig(make_dims({4}))).ok());
    CHECK(L::output_shapes(sig(make_dims({2, 8, 8}))).ok());
    CHECK(L::output_shapes(sig(make_dims({4}), 1)).ok());  // conditions ignored
    CHECK(L::output_shapes(sig(make_dims({4, 5}))).error == shape_error::wrong_rank);
    CHECK(L::output_shapes(sig(make_dims({1, 2, 3, 4}))).error == shape_error::wrong_rank);
    CHECK(IResNetLayer<IResNetLayerOptions{.spectral_norm_max = 1.5}>::output_shapes(
                       sig(make_dims({4})))
                       .error == shape_error::invalid_option);
    CHECK(IResNetLayer<IResNetLayerOptions{.hutchinson_samples = 0}>::output_shapes(
                       sig(make_dims({4})))
                       .error == shape_error::invalid_option);
    signature two;
    two.inputs = make_ports({make_dims({4}), make_dims({4})});
    CHECK(L::output_shapes(two).error == shape_error::wrong_input_count);
}

// ---- GaussianMixtureModel ---------------------------------------------------------------------

TEST_CASE("GaussianMixtureModel: FrEIA parity of gmm_fixed_components", "[gmm]") {
    static_assert(gmm_graph::Net::inversion == inverse_kind::exact);
    test::check_parity_both<gmm_graph::Net>("gmm_fixed_components", "gmm");
}

TEST_CASE("GaussianMixtureModel: closed form, log-det and index checks", "[gmm]") {
    using Net = gmm_graph::Net::with_scalar<double>;
    Net net;
    const index_t B = 5, K = 3, D = 4;
    const mat x = test::random_batch(B, D, 1);
    const mat w = mat::Constant(B, K, 1.0 / 3);
    const mat mu = test::random_batch(B, K * D, 2);
    const mat U = 0.5 * test::random_batch(B, K * 10, 3);
    mat idx(B, 1);
    idx << 0, 2, 1, 2, 0;

    auto fw = net.forward(x, conditions(w, mu, U, idx));
    for (index_t b = 0; b < B; ++b) {
        // U_k: diagonal exp(U[:D]), strict upper triangle row-major from U[D:].
        const index_t k = index_t(idx(b, 0));
        Eigen::MatrixXd Uk = Eigen::MatrixXd::Zero(D, D);
        int e = 0;
        for (index_t r = 0; r < D; ++r) Uk(r, r) = std::exp(U(b, k * 10 + r));
        for (index_t r = 0; r < D; ++r)
            for (index_t c = r + 1; c < D; ++c) Uk(r, c) = U(b, k * 10 + D + e++);
        const Eigen::VectorXd want =
            Uk * (x.row(b) - mu.row(b).segment(k * D, D)).transpose();
        CHECK((fw.z.row(b).transpose() - want).cwiseAbs().maxCoeff() < 1e-12);
        CHECK(std::abs(fw.log_jac_det(b) - std::log(Uk.determinant())) < 1e-12);
    }
    const Eigen::VectorXd numeric = test::numerical_log_det(net, x, conditions(w, mu, U, idx));
    CHECK(max_abs(numeric - fw.log_jac_det) < 1e-7);
    auto rv = net.inverse(fw.z, conditions(w, mu, U, idx));
    CHECK(max_rel_error(rv.x, x) < 1e-12);
    CHECK(max_abs(rv.log_jac_det + fw.log_jac_det) < 1e-12);

    mat bad = idx;
    bad(3, 0) = 3;  // K = 3 components: 0..2
    CHECK_THROWS_AS(net.forward(x, conditions(w, mu, U, bad)), data_error);
    bad(3, 0) = 0.5;
    CHECK_THROWS_AS(net.inverse(x, conditions(w, mu, U, bad)), data_error);
    bad(3, 0) = -1;
    CHECK_THROWS_AS(net.forward(x, conditions(w, mu, U, bad)), data_error);
}

TEST_CASE("GaussianMixtureModel: static helpers", "[gmm]") {
    const index_t B = 20000;
    mat w(B, 3);
    w.rowwise() = Eigen::RowVector3d(0.2, 0.5, 0.3);
    const Eigen::VectorXi a = GaussianMixtureModel::pick_mixture_component(w, 7);
    CHECK(a == GaussianMixtureModel::pick_mixture_component(w, 7));  // seeded
    CHECK(a != GaussianMixtureModel::pick_mixture_component(w, 8));
    CHECK(a.minCoeff() == 0);
    CHECK(a.maxCoeff() == 2);
    for (int k = 0; k < 3; ++k) {
        const double freq = double((a.array() == k).count()) / double(B);
        CHECK(std::abs(freq - w(0, k)) < 5 * std::sqrt(w(0, k) * (1 - w(0, k)) / double(B)));
    }

    mat raw(2, 3);
    raw << 1.0, 2.0, 3.0, -1.0, 0.0, 5.0;
    const mat p = GaussianMixtureModel::normalize_weights(raw);
    for (index_t b = 0; b < 2; ++b) {
        const Eigen::RowVectorXd e = raw.row(b).array().exp();
        CHECK(max_rel_error(mat(p.row(b)), mat(e / e.sum())) < 1e-15);
    }

    // K = 2 components of D = 2: the loss by hand.
    mat ww(1, 2), zz(1, 4), jj(1, 2);
    ww << 0.25, 0.75;
    zz << 0.5, -1.0, 2.0, 0.1;
    jj << 0.3, -0.2;
    const double a0 = -0.5 * (0.25 + 1.0) + 0.3, a1 = -0.5 * (4.0 + 0.01) - 0.2;
    CHECK(GaussianMixtureModel::nll_loss(ww, zz, jj)(0) ==
          Approx(-std::log(0.25 * std::exp(a0) + 0.75 * std::exp(a1))).epsilon(1e-14));
    CHECK(GaussianMixtureModel::nll_upper_bound(ww, zz, jj)(0) ==
          Approx(-(std::log(0.25) + a0 + std::log(0.75) + a1)).epsilon(1e-14));
}

TEST_CASE("GaussianMixtureModel: shape rules", "[gmm]") {
    using G = GaussianMixtureModel;
    auto sig = [](dims mu, dims u, dims i) {
        signature s;
        s.inputs = make_ports({make_dims({4})});
        s.conditions = make_ports({make_dims({3}), mu, u, i});
        return s;
    };
    const dims mu = make_dims({3, 4}), u = make_dims({3, 10}), i = make_dims({1});
    CHECK(G::output_shapes(sig(make_dims({3, 4}), make_dims({3, 10}), make_dims({1}))).ok());
    CHECK(G::output_shapes(sig(make_dims({3, 5}), u, i)).error ==
          shape_error::condition_spatial_mismatch);
    CHECK(G::output_shapes(sig(make_dims({3, 5}), u, i)).port_b == 1);
    CHECK(G::output_shapes(sig(mu, make_dims({3, 9}), i)).port_b == 2);
    CHECK(G::output_shapes(sig(mu, u, make_dims({2}))).port_b == 3);
    signature three = sig(mu, u, i);
    three.conditions.count = 3;
    CHECK(G::output_shapes(three).error == shape_error::condition_required);
    signature img = sig(mu, u, i);
    img.inputs = make_ports({make_dims({4, 2})});
    CHECK(G::output_shapes(img).error == shape_error::wrong_rank);
}


// With threads, a module with per-call state runs whole batches (IResNetLayer: probes drawn from
// its own generator, the inverse's residual), and parameter caches are refreshed before the
// threads start (HouseholderPerm): the two-thread numbers equal the one-thread numbers exactly.
// (Splitting would be a data race on the generator; whether a race shows in the numbers depends
// on timing, hence the static check of the trait as well.)
TEST_CASE("threads: per-call state and parameter caches", "[iresnet][threads]") {
    using Net =
        SequenceINN<Shape<6>, HouseholderPerm<HouseholderPermOptions{.n_reflections = 3}>,
                    IResNetLayer<IResNetLayerOptions{.internal_size = 14,
                                                     .logdet = iresnet_logdet::estimate}>>::
            with_scalar<double>;
    static_assert(!Net::batch_parallel);
    static_assert(SequenceINN<Shape<6>, HouseholderPerm<HouseholderPermOptions{.n_reflections = 3}>>::
                      batch_parallel);
    Net one(11), two(11);
    two.set_threads(2);
    auto x = test::random_batch(64, 6, 12);
    auto [z1, ljd1] = one.forward(x);
    auto [z2, ljd2] = two.forward(x);
    CHECK(z2 == z1);
    CHECK(ljd2 == ljd1);  // the same probes in the same order
    auto [x1, i1] = one.inverse(z1);
    auto [x2, i2] = two.inverse(z2);
    CHECK(x2 == x1);
    CHECK(two.module<1>()->last_inverse_iterations() == one.module<1>()->last_inverse_iterations());
}

}  // namespace
