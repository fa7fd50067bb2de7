// Reverse mode of the modules that move, reshape or linearly mix data: ActNorm, PermuteRandom,
// Flatten, Reshape, Split, Concat, HaarDownsampling/Upsampling, IRevNetDownsampling/Upsampling,
// FixedLinearTransform, Fixed1x1Conv. Each backward is checked against central finite
// differences of its forward (tests/support/gradcheck.hpp, double, error <= 1e-6) for every
// option family, and against the conventions of backward_args (tests/support/backward_checks.hpp:
// a null grad_ljd is zero, accumulated gradients are added to, ...).

#include <catch2/catch.hpp>

#include <cstddef>

#include <inn/modules/actnorm.hpp>
#include <inn/modules/concat.hpp>
#include <inn/modules/fixed_1x1_conv.hpp>
#include <inn/modules/fixed_linear.hpp>
#include <inn/modules/haar.hpp>
#include <inn/modules/irevnet.hpp>
#include <inn/modules/permute_random.hpp>
#include <inn/modules/reshape.hpp>
#include <inn/modules/split.hpp>

#include "support/backward_checks.hpp"
#include "support/gradcheck.hpp"

namespace {

using namespace inn;

constexpr signature one(dims d) { return {make_ports({d}), {}}; }
constexpr signature many(std::initializer_list<dims> d) { return {make_ports(d), {}}; }

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

// ---- fixed matrices: a random M, so that the check is more than an identity ---------------------

/// Fills a d x d matrix with I * 2 + N(0, 0.5^2): well away from singular.
inline Eigen::MatrixXd random_matrix(generator& g, index_t d) {
    Eigen::MatrixXd m(d, d);
    for (index_t i = 0; i < d; ++i)
        for (index_t j = 0; j < d; ++j)
            m(i, j) = (i == j ? 2.0 : 0.0) + 0.5 * g.normal<double>();
    return m;
}

/// FixedLinearTransform given a random M and b (or FrEIA's scalar b) at construction.
template <bool ScalarB> struct RandomFixedLinear {
    static constexpr shape_result output_shapes(const signature& s) {
        return FixedLinearTransform::output_shapes(s);
    }
    template <Scalar S, signature Sig> struct bind : FixedLinearTransform::bind<S, Sig> {
        explicit bind(generator& g) : FixedLinearTransform::bind<S, Sig>(g) {
            constexpr index_t d = Sig.in()[0];
            const Eigen::MatrixXd m = random_matrix(g, d);
            if constexpr (ScalarB) {
                this->set(m);
                this->set_scalar_b(S(0.3));
            } else {
                Eigen::VectorXd b(d);
                for (index_t i = 0; i < d; ++i)
                    b(i) = g.normal<double>();
                this->set(m, b);
            }
        }
    };
};

/// Fixed1x1Conv given a random M at construction.
struct RandomFixed1x1Conv {
    static constexpr shape_result output_shapes(const signature& s) {
        return Fixed1x1Conv::output_shapes(s);
    }
    template <Scalar S, signature Sig> struct bind : Fixed1x1Conv::bind<S, Sig> {
        explicit bind(generator& g) : Fixed1x1Conv::bind<S, Sig>(g) {
            this->set(random_matrix(g, Sig.in()[0]));
        }
    };
};

// ---- ActNorm, PermuteRandom ---------------------------------------------------------------------

TEST_CASE("backward: ActNorm, vectors and images", "[grad][actnorm]") {
    // input, log_scale, loc
    check_backward<ActNorm, one(make_dims({5}))>(3);
    check_backward<ActNorm, one(make_dims({3, 4, 2}))>(3, {.batch = 2});
}

TEST_CASE("backward: PermuteRandom, vectors and images", "[grad][permute]") {
    check_backward<PermuteRandom<{.seed = 3}>, one(make_dims({5}))>(1);
    check_backward<PermuteRandom<>, one(make_dims({4, 3, 2}))>(1);
}

// ---- reshapes, Split, Concat -------------------------------------------------------------------

TEST_CASE("backward: Flatten and Reshape copy the gradient", "[grad][reshape]") {
    check_backward<Flatten, one(make_dims({2, 3, 4}))>(1);
    check_backward<Reshape<Shape<6, 4>>, one(make_dims({2, 3, 4}))>(1);
    check_backward<Reshape<Shape<2, 3, 4>>, one(make_dims({24}))>(1);
}

TEST_CASE("backward: Split along every dim, all section forms", "[grad][split]") {
    check_backward<Split<>, one(make_dims({5}))>(1);
    check_backward<Split<{.section_sizes = {3, 4}}>, one(make_dims({9}))>(1); // slack section
    check_backward<Split<{.n_sections = 3}>, one(make_dims({7, 2, 2}))>(1);
    check_backward<Split<{.n_sections = 3, .dim = 1}>, one(make_dims({2, 7, 3}))>(1);
    check_backward<Split<{.section_sizes = {2}, .dim = 2}>, one(make_dims({2, 3, 5}))>(1);
}

TEST_CASE("backward: Concat along every dim, two and three inputs", "[grad][concat]") {
    check_backward<Concat<>, many({make_dims({3}), make_dims({4})})>(2);
    check_backward<Concat<>, many({make_dims({2, 3, 4}), make_dims({3, 3, 4})})>(2);
    check_backward<Concat<{.dim = 1}>,
                   many({make_dims({2, 3, 4}), make_dims({2, 1, 4}), make_dims({2, 2, 4})})>(3);
    check_backward<Concat<{.dim = 2}>, many({make_dims({2, 3, 1}), make_dims({2, 3, 4})})>(2);
}

// ---- Haar, i-RevNet -----------------------------------------------------------------------------

TEST_CASE("backward: HaarDownsampling / HaarUpsampling, all options", "[grad][haar]") {
    constexpr signature high = one(make_dims({2, 4, 6})), low = one(make_dims({8, 2, 3}));
    check_backward<HaarDownsampling<>, high>(1);
    check_backward<HaarDownsampling<{.order_by_wavelet = true}>, high>(1);
    check_backward<HaarDownsampling<{.rebalance = 0.5}>, high>(1);
    check_backward<HaarDownsampling<{.order_by_wavelet = true, .rebalance = 0.25}>, high>(1);
    check_backward<HaarUpsampling<>, low>(1);
    check_backward<HaarUpsampling<{.order_by_wavelet = true}>, low>(1);
    check_backward<HaarUpsampling<{.order_by_wavelet = true, .rebalance = 0.5}>, low>(1);
    check_backward<HaarUpsampling<{.rebalance = 3.0}>, low>(1);
}

TEST_CASE("backward: IRevNetDownsampling / IRevNetUpsampling, both backends", "[grad][irevnet]") {
    constexpr signature high = one(make_dims({3, 4, 2})), low = one(make_dims({8, 2, 3}));
    check_backward<IRevNetDownsampling<>, high>(1);
    check_backward<IRevNetDownsampling<{.legacy_backend = true}>, high>(1);
    check_backward<IRevNetUpsampling<>, low>(1);
    check_backward<IRevNetUpsampling<{.legacy_backend = true}>, low>(1);
}

// ---- fixed linear maps --------------------------------------------------------------------------

TEST_CASE("backward: FixedLinearTransform and Fixed1x1Conv (random M)", "[grad][fixed]") {
    check_backward<RandomFixedLinear<false>, one(make_dims({5}))>(1);
    check_backward<RandomFixedLinear<true>, one(make_dims({4}))>(1);
    check_backward<RandomFixed1x1Conv, one(make_dims({3, 2, 3}))>(1);
    check_backward<FixedLinearTransform, one(make_dims({3}))>(1); // the identity default
}

} // namespace
