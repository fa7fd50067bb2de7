// Reverse mode of the elementwise, orthogonal and mixture modules: LearnedElementwiseScaling,
// InvertibleSigmoid, OrthogonalTransform, HouseholderPerm (learned and fixed),
// GaussianMixtureModel. Each backward is checked against central finite differences of its
// forward (tests/support/gradcheck.hpp, double, error <= 1e-6) and against the conventions of
// backward_args (tests/support/backward_checks.hpp).

#include <catch2/catch.hpp>

#include <cstddef>

#include <inn/modules/elementwise_scaling.hpp>
#include <inn/modules/gaussian_mixture.hpp>
#include <inn/modules/invertible_sigmoid.hpp>
#include <inn/modules/orthogonal.hpp>

#include "support/backward_checks.hpp"
#include "support/gradcheck.hpp"

namespace {

using namespace inn;

constexpr signature one(dims d) { return {make_ports({d}), {}}; }

/// The gradient check and the conventions check of `Spec` bound for `Sig`; `entries` is the
/// number of tensors the gradient check must cover (inputs, conditions, trainable parameters).
template <class Spec, signature Sig>
void check_backward(std::size_t entries, const test::gradcheck_options& o = {}) {
    const auto r = test::check_module_gradients<Spec, Sig>(o);
    INFO(r.describe());
    CHECK(r.entries.size() == entries);
    CHECK(r.worst() <= 1e-6);
    const auto c = test::check_backward_conventions<Spec, Sig>(o);
    INFO(c.describe());
    CHECK(c.worst() == 0);
}

TEST_CASE("backward: LearnedElementwiseScaling, vectors and images", "[grad][elementwise]") {
    // input, s
    check_backward<LearnedElementwiseScaling<>, one(make_dims({5}))>(2);
    check_backward<LearnedElementwiseScaling<{.init_scale = 2.0}>, one(make_dims({2, 3, 3}))>(2);
    // The option changes only the reverse log-det: the forward map and its gradient are the same.
    check_backward<LearnedElementwiseScaling<{.freia_reverse_logdet = true}>, one(make_dims({4}))>(
        2);
}

TEST_CASE("backward: InvertibleSigmoid, vectors, images and saturated inputs",
          "[grad][elementwise]") {
    check_backward<InvertibleSigmoid, one(make_dims({6}))>(1);
    check_backward<InvertibleSigmoid, one(make_dims({2, 3, 2}))>(1);
    // |x| up to ~40: σ' underflows towards 0 and ln σ' is linear there; no cancellation.
    check_backward<InvertibleSigmoid, one(make_dims({6}))>(
        1, {.input = [](test::grad_matrix& x, int) {
            for (Eigen::Index i = 0; i < x.size(); ++i)
                x.data()[i] = (i % 2 ? -1.0 : 1.0) * (5.0 + 7.0 * double(i % 6));
        }});
}

TEST_CASE("backward: OrthogonalTransform (weights, bias, scaling), clamp options",
          "[grad][orthogonal]") {
    // input, weights, bias, scaling; the noise makes `weights` non-orthogonal, which the forward
    // map (and so its gradient) does not care about.
    check_backward<OrthogonalTransform<>, one(make_dims({5}))>(4);
    check_backward<OrthogonalTransform<{.correction_interval = 10, .clamp = 1.5}>,
                   one(make_dims({4}))>(4, {.parameter_noise = 1.0});
}

TEST_CASE("backward: HouseholderPerm, learned reflections and fixed mode", "[grad][orthogonal]") {
    // input, Vs
    check_backward<HouseholderPerm<{.n_reflections = 2}>, one(make_dims({6}))>(2);
    check_backward<HouseholderPerm<{.n_reflections = 3}>, one(make_dims({4}))>(2);
    check_backward<HouseholderPerm<{.n_reflections = 5}>, one(make_dims({5}))>(
        2, {.parameter_noise = 0.5});
    check_backward<HouseholderPerm<{.n_reflections = 7}>, one(make_dims({3}))>(2); // n > D
    // Fixed: nothing trainable, only dL/dx.
    check_backward<HouseholderPerm<{.n_reflections = 3, .fixed = true}>, one(make_dims({6}))>(1);
}

/// GaussianMixtureModel's conditions: normal w, mu, U; the index of sample b is b mod K, so
/// every component is used.
template <int K> test::gradcheck_options gmm_options(index_t batch) {
    return {.batch = batch,
            .condition =
                [](test::grad_matrix& c, int j) {
                    generator g(std::uint64_t(11 + j));
                    if (j == 3)
                        for (Eigen::Index b = 0; b < c.rows(); ++b)
                            c(b, 0) = double(b % K);
                    else
                        g.fill_normal(c.data(), std::size_t(c.size()), 0.0, 1.0);
                },
            .constant_conditions = {3}};
}

template <int D, int K> constexpr signature gmm_signature() {
    return {make_ports({make_dims({D})}),
            make_ports({make_dims({K}), make_dims({K, D}), make_dims({K, D * (D + 1) / 2}),
                        make_dims({1})})};
}

TEST_CASE("backward: GaussianMixtureModel, x and the mu / U conditions of several components",
          "[grad][gmm]") {
    // input, w (zero: unused), mu, U; the index is piecewise constant and not differentiated.
    check_backward<GaussianMixtureModel, gmm_signature<3, 3>()>(4, gmm_options<3>(7));
    check_backward<GaussianMixtureModel, gmm_signature<4, 2>()>(4, gmm_options<2>(4));
    check_backward<GaussianMixtureModel, gmm_signature<1, 1>()>(4, gmm_options<1>(2));
}

TEST_CASE("backward: GaussianMixtureModel names a bad component index", "[grad][gmm]") {
    using B = GaussianMixtureModel::bind<double, gmm_signature<2, 2>()>;
    generator g(1);
    const B m(g);
    test::grad_matrix x(2, 2), w(2, 2), mu(2, 4), u(2, 6), idx(2, 1), gx(2, 2);
    x.setOnes();
    w.setOnes();
    mu.setZero();
    u.setZero();
    idx << 1, 2; // sample 1 is out of range
    std::vector<cview<double>> in{{x.data(), 2}},
        cond{{w.data(), 2}, {mu.data(), 4}, {u.data(), 6}, {idx.data(), 1}};
    std::vector<view<double>> gin{{gx.data(), 2}};
    backward_args<double> a;
    a.batch = 2;
    a.in = in;
    a.out = in;
    a.cond = cond;
    a.grad_out = in;
    a.grad_in = gin;
    a.first_sample = 5;
    CHECK_THROWS_WITH(m.backward(a),
                      Catch::Contains("sample 6") && Catch::Contains("component index is 2"));
}

} // namespace
