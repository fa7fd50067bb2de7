// StandardNormal and PushForward (FrEIA's bugs fixed). Independent truths: the closed-form normal
// density; networks whose data density is a known Gaussian (FixedLinearTransform:
// x = M^-1 (z - b); GaussianMixtureModel: N(mu_k, (U_k^T U_k)^-1)); numerical integration of
// the density of a conditional coupling network; sample moments against the density's moments.

#include <catch2/catch.hpp>

#include <cmath>
#include <span>
#include <vector>

#include <Eigen/Dense>
#include <inn/distributions.hpp>
#include <inn/modules/concat.hpp>
#include <inn/modules/coupling/glow.hpp>
#include <inn/modules/fixed_linear.hpp>
#include <inn/modules/gaussian_mixture.hpp>
#include <inn/modules/permute_random.hpp>
#include <inn/modules/split.hpp>

#include "support/checks.hpp"

// Everything in this file has internal linkage: test files reuse names (subnets,
// node structs) that would otherwise collide across translation units (ODR).
namespace {

using namespace inn;
using inn::test::max_rel_error;
using mat = row_matrix<double>;

namespace {

const double log_2pi = std::log(2.0 * 3.14159265358979323846);

double max_abs_of(const Eigen::VectorXd& v) { return v.cwiseAbs().maxCoeff(); }

/// log N(x; mu, Sigma) of each row of x, from a Cholesky factorisation of Sigma.
Eigen::VectorXd gaussian_log_density(const mat& x, const Eigen::VectorXd& mu,
                                     const Eigen::MatrixXd& sigma) {
    const Eigen::LLT<Eigen::MatrixXd> llt(sigma);
    const Eigen::MatrixXd L = llt.matrixL();
    const double log_det = 2 * L.diagonal().array().log().sum();
    Eigen::VectorXd r(x.rows());
    for (Eigen::Index b = 0; b < x.rows(); ++b) {
        const Eigen::VectorXd d = x.row(b).transpose() - mu;
        const Eigen::VectorXd u = L.triangularView<Eigen::Lower>().solve(d);
        r(b) = -0.5 * (double(mu.size()) * log_2pi + log_det + u.squaredNorm());
    }
    return r;
}

/// Sample mean and covariance of the rows of x.
struct moments {
    Eigen::VectorXd mean;
    Eigen::MatrixXd cov;
};
moments moments_of(const mat& x) {
    moments m;
    m.mean = x.colwise().mean().transpose();
    const Eigen::MatrixXd c = x.rowwise() - m.mean.transpose();
    m.cov = c.transpose() * c / double(x.rows() - 1);
    return m;
}

/// Mean and covariance of n samples agree with (mu, sigma): each mean within 5 standard errors,
/// each covariance entry within 5 standard errors of a Gaussian sample covariance.
void check_moments(const mat& x, const Eigen::VectorXd& mu, const Eigen::MatrixXd& sigma) {
    const moments m = moments_of(x);
    const double n = double(x.rows());
    for (Eigen::Index i = 0; i < mu.size(); ++i) {
        INFO("mean " << i << ": " << m.mean(i) << " vs " << mu(i));
        CHECK(std::abs(m.mean(i) - mu(i)) < 5 * std::sqrt(sigma(i, i) / n));
        for (Eigen::Index j = 0; j < mu.size(); ++j) {
            const double var = sigma(i, j) * sigma(i, j) + sigma(i, i) * sigma(j, j);
            const double se = std::sqrt(var / n);
            INFO("cov " << i << "," << j << ": " << m.cov(i, j) << " vs " << sigma(i, j));
            CHECK(std::abs(m.cov(i, j) - sigma(i, j)) < 5 * se);
        }
    }
}

// y = M x + b on 3 values.
using Linear3 = SequenceINN<Shape<3>, FixedLinearTransform>;

Eigen::Matrix3d test_matrix() {
    Eigen::Matrix3d M;
    M << 1.5, 0.3, -0.2, -0.4, 0.8, 0.1, 0.2, 0.5, 2.0;
    return M;
}
Eigen::Vector3d test_offset() { return {0.5, -1.0, 0.25}; }

// Two inputs, two outputs: (x1, x2) -> concat -> M . + b -> split (1 | 2).
namespace multi {
struct x1 : InputNode<Shape<2>> {};
struct x2 : InputNode<Shape<1>> {};
struct cat : Node<Concat<>, inputs<x1, x2>> {};
struct lin : Node<FixedLinearTransform, cat> {};
struct split : Node<Split<SplitOptions{.section_sizes = {1}}>, lin> {};
struct z1 : OutputNode<out<split, 0>> {};
struct z2 : OutputNode<out<split, 1>> {};
using Net = GraphINN<x1, x2, cat, lin, split, z1, z2>::with_scalar<double>;
}  // namespace multi

// A conditional coupling flow on 2 values, condition of 1 value. A small clamp keeps the density
// inside the integration window.
struct fc_distributions {
    template <int I, int O>
    using net = nn::Sequential<nn::Linear<I, 16>, nn::Tanh, nn::Linear<16, O>>;
};
using Glow = GLOWCouplingBlock<fc_distributions, CouplingOptions{.clamp = 0.5}>;
using CondFlow = SequenceINN<Shape<2>, Conditions<Shape<1>>, Conditioned<Glow, 0>, PermuteRandom<>,
                             Conditioned<Glow, 0>>::with_scalar<double>;

namespace gmm_graph {
struct x : InputNode<Shape<2>> {};
struct w : ConditionNode<Shape<2>> {};
struct mu : ConditionNode<Shape<2, 2>> {};
struct U : ConditionNode<Shape<2, 3>> {};
struct i : ConditionNode<Shape<1>> {};
struct gmm : Node<GaussianMixtureModel, x, conditions<w, mu, U, i>> {};
struct z : OutputNode<gmm> {};
using Net = GraphINN<x, w, mu, U, i, gmm, z>::with_scalar<double>;
}  // namespace gmm_graph

}  // namespace

TEST_CASE("StandardNormal: log_prob is the closed form, in every input form", "[distributions]") {
    StandardNormal<Shape<3>> base;
    const mat z = test::random_batch(5, 3, 1);
    const Eigen::VectorXd lp = base.log_prob(z);
    for (Eigen::Index b = 0; b < 5; ++b)
        CHECK(lp(b) == Approx(-0.5 * z.row(b).squaredNorm() - 1.5 * log_2pi).epsilon(1e-15));
    // Column-major data, a map of caller memory, float.
    const Eigen::MatrixXd zc = z;
    CHECK(max_rel_error(base.log_prob(zc), lp) == 0.0);
    const std::vector<double> flat(z.data(), z.data() + z.size());
    CHECK(max_rel_error(base.log_prob(Eigen::Map<const mat>(flat.data(), 5, 3)), lp) < 1e-15);
    const row_matrix<float> zf = z.cast<float>();
    CHECK(max_rel_error(base.log_prob(zf), lp) < 1e-6);
    CHECK_THROWS_AS(base.log_prob(mat(5, 4)), data_error);
    // Images: the event is the whole (C, H, W) sample.
    StandardNormal<Shape<2, 2, 2>> img;
    const mat zi = test::random_batch(4, 8, 2);
    const Eigen::VectorXd li = img.log_prob(zi);
    for (Eigen::Index b = 0; b < 4; ++b)
        CHECK(li(b) == Approx(-0.5 * zi.row(b).squaredNorm() - 4 * log_2pi).epsilon(1e-15));
}

TEST_CASE("StandardNormal: seeded samples with unit moments", "[distributions]") {
    StandardNormal<Shape<2, 2>> base;
    generator g1(42), g2(42), g3(43);
    const mat a = base.sample<double>(20000, g1);
    REQUIRE(a.rows() == 20000);
    REQUIRE(a.cols() == 4);
    CHECK(a == base.sample<double>(20000, g2));
    CHECK(a != base.sample<double>(20000, g3));
    check_moments(a, Eigen::VectorXd::Zero(4), Eigen::MatrixXd::Identity(4, 4));
    // Drawn as torch.randn(n, *shape): the generator's normal fill.
    generator g4(42);
    mat direct(20000, 4);
    g4.fill_normal<double>(direct.data(), std::size_t(direct.size()), 0.0, 1.0);
    CHECK(a == direct);
    std::vector<float> buf(7);
    CHECK_THROWS_AS(base.sample_into(std::span<float>(buf), g1), data_error);
    CHECK_THROWS_WITH(base.sample<double>(-1, g1), Catch::Contains("negative sample count"));
    CHECK(base.sample<double>(0, g1).rows() == 0);
}

TEST_CASE("PushForward: a linear flow has the Gaussian density and moments", "[distributions]") {
    const Eigen::Matrix3d M = test_matrix();
    const Eigen::Vector3d b = test_offset();
    // x = M^-1 (z - b), z ~ N(0, I): mean -M^-1 b, covariance (M^T M)^-1.
    const Eigen::Vector3d mu = -M.inverse() * b;
    const Eigen::Matrix3d sigma = (M.transpose() * M).inverse();

    Linear3::with_scalar<double> net;
    net.module<0>()->set(M, b);
    PushForward flow(net);
    const mat x = 2 * test::random_batch(9, 3, 5);
    const Eigen::VectorXd want = gaussian_log_density(x, mu, sigma);
    CHECK(max_rel_error(flow.log_prob(x), want) < 1e-13);
    // The log-det term is there: M has |det| != 1.
    CHECK(std::abs(std::log(std::abs(M.determinant()))) > 0.5);

    SECTION("float") {
        Linear3 netf;
        netf.module<0>()->set(M, b);
        PushForward flowf(netf);
        const row_matrix<float> xf = x.cast<float>();
        CHECK(max_rel_error(flowf.log_prob(xf).cast<double>().eval(), want) < 1e-5);
    }
    SECTION("samples: moments, reproducibility, log-density of the samples") {
        generator g(9), g_same(9);
        const mat s = flow.sample(40000, g);
        check_moments(s, mu, sigma);
        CHECK(s == flow.sample(40000, g_same));
        generator g1(10), g2(10);
        auto sl = flow.sample_with_log_prob(500, g1);
        CHECK(sl.x == flow.sample(500, g2));  // the same draws
        CHECK(max_rel_error(sl.log_prob, gaussian_log_density(sl.x, mu, sigma)) < 1e-12);
    }
    SECTION("no samples, or a negative count") {
        generator g(9);
        CHECK(flow.sample(0, g).rows() == 0);
        CHECK(flow.sample_with_log_prob(0, g).log_prob.size() == 0);
        CHECK_THROWS_WITH(flow.sample(-3, g), Catch::Contains("negative sample count -3"));
        CHECK_THROWS_AS(flow.sample_with_log_prob(-1, g), data_error);
    }
}

TEST_CASE("PushForward: several inputs and outputs of a graph (sum over outputs)",
          "[distributions]") {
    const Eigen::Matrix3d M = test_matrix();
    const Eigen::Vector3d b = test_offset();
    const Eigen::Vector3d mu = -M.inverse() * b;
    const Eigen::Matrix3d sigma = (M.transpose() * M).inverse();

    multi::Net net;
    net.module<1>()->set(M, b);  // forward order: cat, lin, split
    PushForward flow(net);
    const mat x = test::random_batch(8, 3, 6);
    const mat x1 = x.leftCols(2), x2 = x.rightCols(1);
    // The joint density of (x1, x2). A GraphINN with jac=false gives a zero log-det: FrEIA's
    // PushForwardDistribution bug would drop log|det M| here.
    CHECK(max_rel_error(flow.log_prob(inputs(x1, x2)), gaussian_log_density(x, mu, sigma)) < 1e-13);
    CHECK(max_abs_of(net.forward(inputs(x1, x2), false).log_jac_det) == 0.0);

    generator g(11);
    const std::array<mat, 2> s = flow.sample(40000, g);
    REQUIRE(s[0].cols() == 2);
    REQUIRE(s[1].cols() == 1);
    mat joined(40000, 3);
    joined << s[0], s[1];
    check_moments(joined, mu, sigma);
    generator g1(12);
    auto sl = flow.sample_with_log_prob(300, g1);
    mat sj(300, 3);
    sj << sl.x[0], sl.x[1];
    CHECK(max_rel_error(sl.log_prob, gaussian_log_density(sj, mu, sigma)) < 1e-12);
}

TEST_CASE("PushForward: a Gaussian mixture component with its parameters as conditions",
          "[distributions]") {
    gmm_graph::Net net;
    PushForward flow(net);
    // One component per sample: N(mu_k, (U_k^T U_k)^-1), U_k = [[e^a, c], [0, e^d]].
    const index_t B = 6;
    const mat w = mat::Constant(B, 2, 0.5);
    const mat mu = test::random_batch(B, 4, 7);
    const mat U = 0.4 * test::random_batch(B, 6, 8);
    mat idx(B, 1);
    idx << 1, 0, 0, 1, 1, 0;
    const mat x = test::random_batch(B, 2, 9);
    const Eigen::VectorXd lp = flow.log_prob(x, conditions(w, mu, U, idx));
    for (index_t b = 0; b < B; ++b) {
        const index_t k = index_t(idx(b, 0));
        Eigen::Matrix2d Uk;
        Uk << std::exp(U(b, 3 * k)), U(b, 3 * k + 2), 0, std::exp(U(b, 3 * k + 1));
        const Eigen::Vector2d m = mu.row(b).segment(2 * k, 2).transpose();
        const Eigen::Matrix2d sigma = (Uk.transpose() * Uk).inverse();
        CHECK(lp(b) == Approx(gaussian_log_density(x.row(b), m, sigma)(0)).epsilon(1e-13));
    }
    // Sampling for one fixed row of conditions (repeated): that component's moments.
    generator g(13);
    const mat c_w = w.row(2), c_mu = mu.row(2), c_U = U.row(2), c_i = idx.row(2);  // k = 0
    const mat s = flow.sample(40000, g, conditions(c_w, c_mu, c_U, c_i));
    Eigen::Matrix2d U0;
    U0 << std::exp(U(2, 0)), U(2, 2), 0, std::exp(U(2, 1));
    check_moments(s, mu.row(2).segment(0, 2).transpose(), (U0.transpose() * U0).inverse());
    mat wrong(3, 1);
    wrong.setZero();
    CHECK_THROWS_AS(flow.sample(10, g, conditions(c_w, c_mu, c_U, wrong)), data_error);
}

TEST_CASE("PushForward: a conditional coupling flow is a normalised density", "[distributions]") {
    CondFlow net(17);
    PushForward flow(net);
    for (double cv : {-1.0, 0.7}) {
        INFO("condition " << cv);
        // Midpoint rule on [-L, L]^2.
        const double L = 12, h = 0.04;
        const index_t n = index_t(2 * L / h);
        mat grid(n * n, 2);
        for (index_t i = 0; i < n; ++i)
            for (index_t j = 0; j < n; ++j) {
                grid(i * n + j, 0) = -L + (double(i) + 0.5) * h;
                grid(i * n + j, 1) = -L + (double(j) + 0.5) * h;
            }
        const mat c = mat::Constant(n * n, 1, cv);
        const Eigen::VectorXd lp = flow.log_prob(grid, conditions(c));
        const Eigen::ArrayXd p = lp.array().exp();
        const double mass = p.sum() * h * h;
        CHECK(std::abs(mass - 1.0) < 1e-3);
        // By hand: base log-density of f(x) plus the forward log-det.
        auto fw = net.forward(grid.topRows(50), conditions(mat(c.topRows(50))));
        for (index_t b = 0; b < 50; ++b)
            CHECK(lp(b) == Approx(-0.5 * fw.z.row(b).squaredNorm() - log_2pi + fw.log_jac_det(b))
                               .epsilon(1e-14));
        // The sampler draws from this density: its mean matches the integral of x p(x).
        Eigen::Vector2d mean_p = (grid.transpose() * p.matrix()) * h * h;
        generator g(23);
        const mat one_c = mat::Constant(1, 1, cv);
        auto sl = flow.sample_with_log_prob(20000, g, conditions(one_c));
        const moments m = moments_of(sl.x);
        for (int k = 0; k < 2; ++k)
            CHECK(std::abs(m.mean(k) - mean_p(k)) < 5 * std::sqrt(m.cov(k, k) / 20000.0));
        // ... and the log-density of the inverse pass is the forward one.
        const mat cs = mat::Constant(20000, 1, cv);
        CHECK(max_rel_error(sl.log_prob, flow.log_prob(sl.x, conditions(cs))) < 1e-10);
        // The condition matters.
        const mat other = (c.topRows(50).array() + 1.0).matrix();
        CHECK(max_rel_error(flow.log_prob(grid.topRows(50), conditions(other)),
                            Eigen::VectorXd(lp.head(50))) > 1e-3);
    }
}

}  // namespace
