// Elementwise, orthogonal and "invertible autoencoder" modules of FrEIA (quirks:
// docs/freia-semantics.md#invauto and the entries around it): InvAutoAct, InvAutoActFixed,
// InvAutoActTwoSided, InvAutoFC, InvAutoConv2D, LearnedElementwiseScaling, OrthogonalTransform,
// HouseholderPerm, InvertibleSigmoid.
//
// Independent truths: FrEIA's golden files (double and float), exact inverses, finite-difference
// log-dets, a naive Householder product, direct convolution / transposed-convolution loops and
// the adjoint identity <conv x, y> = <x, convᵀ y>, and the generator calls FrEIA makes.

#include <array>
#include <cmath>
#include <numbers>
#include <string>
#include <vector>

#include <Eigen/Dense>

#include <inn/modules/elementwise_scaling.hpp>
#include <inn/modules/invauto.hpp>
#include <inn/modules/invertible_sigmoid.hpp>
#include <inn/modules/orthogonal.hpp>

#include "support/checks.hpp"
#include "support/fixture.hpp"

// Everything in this file has internal linkage: test files reuse names (subnets,
// node structs) that would otherwise collide across translation units (ODR).
namespace {

using namespace inn;
using inn::test::check_parity_both;
using inn::test::max_rel_error;
using inn::test::numerical_log_det;
using inn::test::random_batch;
using mat = row_matrix<double>;

namespace {

// ---- the fixtures' architectures (float; the harness adds with_scalar<double>) ------------------

using ActVec = SequenceINN<Shape<6>, InvAutoAct<>>;
using ActImgFixed =
    SequenceINN<Shape<4, 8, 8>, InvAutoAct<InvAutoActOptions{.slope_init = 1.5, .learnable = false}>>;
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
using ActFixedClass = SequenceINN<Shape<5>, InvAutoActFixed<InvAutoActOptions{.slope_init = 3.0}>>;
static_assert(InvAutoActFixed<>::name == "InvAutoActFixed");
#pragma GCC diagnostic pop
using TwoSidedVec = SequenceINN<Shape<6>, InvAutoActTwoSided<>>;
using TwoSidedImg =
    SequenceINN<Shape<4, 8, 8>,
                InvAutoActTwoSided<InvAutoActTwoSidedOptions{.init_pos = 1.5, .init_neg = 0.3}>>;
using FCVec = SequenceINN<Shape<6>, InvAutoFC<>>;
using Conv1x1 =
    SequenceINN<Shape<4, 8, 8>, InvAutoConv2D<InvAutoConv2DOptions{.kernel_size = 1, .padding = 0}>>;
using Conv3x3 = SequenceINN<Shape<4, 8, 8>, InvAutoConv2D<>>;
using ScaleVec = SequenceINN<Shape<6>, LearnedElementwiseScaling<>>;
using ScaleImg = SequenceINN<Shape<4, 8, 8>,
                             LearnedElementwiseScaling<LearnedElementwiseScalingOptions{.init_scale = 2.0}>>;
// FrEIA's reverse log-det (+Σ s) on request.
using ScaleVecFreia =
    SequenceINN<Shape<6>, LearnedElementwiseScaling<{.freia_reverse_logdet = true}>>;
using ScaleImgFreia = SequenceINN<
    Shape<4, 8, 8>,
    LearnedElementwiseScaling<{.init_scale = 2.0, .freia_reverse_logdet = true}>>;
using OrthoVec = SequenceINN<Shape<6>, OrthogonalTransform<>>;
using OrthoClamp =
    SequenceINN<Shape<5>, OrthogonalTransform<OrthogonalTransformOptions{.correction_interval = 10,
                                                                         .clamp = 1.5}>>;
using House2 = SequenceINN<Shape<6>, HouseholderPerm<HouseholderPermOptions{.n_reflections = 2}>>;
using House5 = SequenceINN<Shape<5>, HouseholderPerm<HouseholderPermOptions{.n_reflections = 5}>>;
using HouseFixed =
    SequenceINN<Shape<6>, HouseholderPerm<HouseholderPermOptions{.n_reflections = 3, .fixed = true}>>;
using SigmoidVec = SequenceINN<Shape<6>, InvertibleSigmoid>;

// ---- networks of the property tests --------------------------------------------------------------

// Every exact vector module in one chain, odd size.
using VecChain =
    SequenceINN<Shape<7>, InvAutoAct<>, OrthogonalTransform<>, InvAutoActTwoSided<>,
                HouseholderPerm<HouseholderPermOptions{.n_reflections = 3}>,
                LearnedElementwiseScaling<>,
                HouseholderPerm<HouseholderPermOptions{.n_reflections = 4, .fixed = true}>,
                OrthogonalTransform<OrthogonalTransformOptions{.correction_interval = 10,
                                                               .clamp = 1.5}>>;
// The elementwise modules on an odd-sized image.
using ImgChain =
    SequenceINN<Shape<3, 5, 7>, InvAutoAct<InvAutoActOptions{.slope_init = 1.5}>,
                LearnedElementwiseScaling<LearnedElementwiseScalingOptions{.init_scale = 0.7}>,
                InvAutoActTwoSided<InvAutoActTwoSidedOptions{.init_pos = 1.3, .init_neg = 0.4}>>;
using SigmoidImg = SequenceINN<Shape<2, 3, 3>, InvertibleSigmoid>;
// A 5x5 kernel on an odd image: every border case of the transposed convolution.
using ConvOdd = SequenceINN<Shape<3, 5, 7>,
                            InvAutoConv2D<InvAutoConv2DOptions{.kernel_size = 5, .padding = 2}>>;

template <class Net>
using in_double = typename Net::template with_scalar<double>;

template <class S>
double tolerance() {
    return std::is_same_v<S, double> ? 1e-12 : 2e-5;
}

/// Adds N(0, scale²) to every trainable real tensor except OrthogonalTransform's `weights` (which
/// must stay orthogonal), so that default-initialised modules do something non-trivial.
template <class Net>
void perturb(Net& net, unsigned seed, double scale = 0.3) {
    using S = typename Net::scalar;
    generator g(seed);
    net.visit([&](const std::string& key, const tensor_ref<S>& t) {
        if (!t.real || !t.trainable || key.ends_with(".weights")) return;
        for (std::int64_t i = 0; i < t.shape.numel(); ++i) t.real[i] += S(scale * g.normal<double>());
    });
}

/// The real tensor `key` of a network, as a row-major matrix of `cols` columns.
template <class Net>
row_matrix<typename Net::scalar> tensor_of(Net& net, const std::string& key, Eigen::Index cols) {
    using S = typename Net::scalar;
    row_matrix<S> m;
    bool found = false;
    net.visit([&](const std::string& k, const tensor_ref<S>& t) {
        if (k != key) return;
        m = Eigen::Map<const row_matrix<S>>(t.real, Eigen::Index(t.shape.numel()) / cols, cols);
        found = true;
    });
    INFO("state_dict key " << key);
    REQUIRE(found);
    return m;
}

template <class Net>
void set_tensor(Net& net, const std::string& key, const row_matrix<typename Net::scalar>& value) {
    using S = typename Net::scalar;
    bool found = false;
    net.visit([&](const std::string& k, const tensor_ref<S>& t) {
        if (k != key) return;
        REQUIRE(t.shape.numel() == value.size());
        std::copy(value.data(), value.data() + value.size(), t.real);
        found = true;
    });
    INFO("state_dict key " << key);
    REQUIRE(found);
}

struct entry {
    tensor_shape shape;
    bool trainable = false;
    const void* data = nullptr;
};
template <class Net>
std::vector<std::pair<std::string, entry>> state_of(Net& net) {
    std::vector<std::pair<std::string, entry>> v;
    net.visit([&](const std::string& key, const auto& t) {
        v.push_back({key, {t.shape, t.trainable, t.real}});
    });
    return v;
}

/// x -> z -> x, inverse log-det = −forward; returns z.
template <class Net>
row_matrix<typename Net::scalar> check_round_trip(Net& net,
                                                  const row_matrix<typename Net::scalar>& x) {
    using S = typename Net::scalar;
    auto [z, ljd] = net.forward(x);
    auto [xr, ljd_rev] = net.inverse(z);
    CHECK(max_rel_error(xr, x) < tolerance<S>());
    REQUIRE(ljd.size() == x.rows());
    for (Eigen::Index b = 0; b < x.rows(); ++b)
        CHECK(double(ljd_rev(b)) ==
              Approx(-double(ljd(b))).margin(tolerance<S>() * (1 + std::abs(double(ljd(b))))));
    return z;
}

/// Forward log-det against central differences (double networks).
template <class Net>
void check_log_det(Net& net, const mat& x, double tol = 1e-6) {
    const Eigen::VectorXd numeric = numerical_log_det(net, x);
    const auto ljd = net.forward(x).log_jac_det;
    for (Eigen::Index b = 0; b < x.rows(); ++b) CHECK(ljd(b) == Approx(numeric(b)).margin(tol));
}

/// H(v_0) ⋯ H(v_{n−1}), H(v) = I − 2 v vᵀ / (vᵀv), one reflection at a time.
Eigen::MatrixXd householder_product(const mat& V) {
    const Eigen::Index d = V.cols();
    Eigen::MatrixXd W = Eigen::MatrixXd::Identity(d, d);
    for (Eigen::Index i = 0; i < V.rows(); ++i) {
        const Eigen::VectorXd v = V.row(i).transpose();
        W = W * (Eigen::MatrixXd::Identity(d, d) - 2.0 * v * v.transpose() / v.squaredNorm());
    }
    return W;
}

/// A random orthogonal matrix (Q of a QR decomposition).
Eigen::MatrixXd random_orthogonal(Eigen::Index d, unsigned seed) {
    const mat a = random_batch(d, d, seed);
    return Eigen::HouseholderQR<Eigen::MatrixXd>(a).householderQ();
}

/// y[o, i, j] = Σ_{c,u,v} K[o, c, u, v] x[c, i + u − P, j + v − P] (zero padding), one sample.
Eigen::VectorXd direct_conv(const Eigen::VectorXd& x, const Eigen::VectorXd& k, int C, int H,
                            int W, int K, int P) {
    Eigen::VectorXd y = Eigen::VectorXd::Zero(C * H * W);
    for (int o = 0; o < C; ++o)
        for (int i = 0; i < H; ++i)
            for (int j = 0; j < W; ++j)
                for (int c = 0; c < C; ++c)
                    for (int u = 0; u < K; ++u)
                        for (int v = 0; v < K; ++v) {
                            const int yy = i + u - P, xx = j + v - P;
                            if (yy < 0 || yy >= H || xx < 0 || xx >= W) continue;
                            y((o * H + i) * W + j) +=
                                k(((o * C + c) * K + u) * K + v) * x((c * H + yy) * W + xx);
                        }
    return y;
}

/// PyTorch's conv_transpose2d (stride 1) in gather form:
/// x[c, h, w] = Σ_{o,u,v} K[o, c, u, v] y[o, h − u + P, w − v + P].
Eigen::VectorXd direct_conv_transpose(const Eigen::VectorXd& y, const Eigen::VectorXd& k, int C,
                                      int H, int W, int K, int P) {
    Eigen::VectorXd x = Eigen::VectorXd::Zero(C * H * W);
    for (int c = 0; c < C; ++c)
        for (int h = 0; h < H; ++h)
            for (int w = 0; w < W; ++w)
                for (int o = 0; o < C; ++o)
                    for (int u = 0; u < K; ++u)
                        for (int v = 0; v < K; ++v) {
                            const int i = h - u + P, j = w - v + P;
                            if (i < 0 || i >= H || j < 0 || j >= W) continue;
                            x((c * H + h) * W + w) +=
                                k(((o * C + c) * K + u) * K + v) * y((o * H + i) * W + j);
                        }
    return x;
}

}  // namespace

// ==== parity with FrEIA ===========================================================================

TEST_CASE("InvAutoAct / InvAutoActFixed / InvAutoActTwoSided match FrEIA", "[elementwise][parity]") {
    SECTION("invauto_act_vec") { check_parity_both<ActVec>("invauto_act_vec", "invauto"); }
    SECTION("invauto_act_img_fixed") {
        check_parity_both<ActImgFixed>("invauto_act_img_fixed", "invauto");
    }
    SECTION("invauto_act_fixed_class") {
        check_parity_both<ActFixedClass>("invauto_act_fixed_class", "invauto");
    }
    SECTION("invauto_act_two_sided_vec") {
        check_parity_both<TwoSidedVec>("invauto_act_two_sided_vec", "invauto");
    }
    SECTION("invauto_act_two_sided_img") {
        check_parity_both<TwoSidedImg>("invauto_act_two_sided_img", "invauto");
    }
}

TEST_CASE("InvAutoFC / InvAutoConv2D match FrEIA (reverse = transpose)", "[elementwise][parity]") {
    // The random cases' x_rev is FrEIA's transpose-based pseudo-inverse, not x: an exact
    // computation all the same (fixtures README §3).
    SECTION("invauto_fc_orthogonal") { check_parity_both<FCVec>("invauto_fc_orthogonal", "invauto"); }
    SECTION("invauto_fc_random") { check_parity_both<FCVec>("invauto_fc_random", "invauto"); }
    SECTION("invauto_conv_1x1_orthogonal") {
        check_parity_both<Conv1x1>("invauto_conv_1x1_orthogonal", "invauto");
    }
    SECTION("invauto_conv_3x3_random") {
        check_parity_both<Conv3x3>("invauto_conv_3x3_random", "invauto");
    }
}

TEST_CASE("LearnedElementwiseScaling matches FrEIA, reverse log-det fixed", "[elementwise][parity]") {
    // FrEIA returns +Σ s in reverse too; we return −Σ s, so the reverse log-det is
    // compared with −test.log_jac_det instead of the recorded test.log_jac_det_rev.
    const inn::test::tolerance fixed_reverse{.ljd_rev_is_minus_forward = true};
    SECTION("elementwise_scaling_vec") {
        check_parity_both<ScaleVec>("elementwise_scaling_vec", "elementwise", fixed_reverse);
    }
    SECTION("elementwise_scaling_img") {
        check_parity_both<ScaleImg>("elementwise_scaling_img", "elementwise", fixed_reverse);
    }
    SECTION("the recorded FrEIA reverse log-det is +Σ s, ours is −Σ s") {
        for (const char* name : {"elementwise_scaling_vec", "elementwise_scaling_img"}) {
            INFO(name);
            inn::test::fixture f(name);
            const vector<double> fwd = f.vec<double>("test.log_jac_det");
            const vector<double> rev = f.vec<double>("test.log_jac_det_rev");
            const double sum_s = f.vec<double>("module_list.0.s").sum();
            CHECK(fwd.isConstant(sum_s, 1e-12));
            CHECK(rev.isConstant(sum_s, 1e-12));  // FrEIA's bug, recorded
            CHECK(std::abs(sum_s) > 0.1);        // so the sign matters
        }
        in_double<ScaleVec> net;
        perturb(net, 3);
        const double sum_s = tensor_of(net, "module_list.0.s", 6).sum();
        const mat x = random_batch(2, 6, 4);
        CHECK(net.forward(x).log_jac_det.isConstant(sum_s, 1e-14));
        CHECK(net.inverse(x).log_jac_det.isConstant(-sum_s, 1e-14));
    }
}

TEST_CASE("LearnedElementwiseScaling: .freia_reverse_logdet reproduces FrEIA's reverse log-det",
          "[elementwise][parity]") {
    // With the option the recorded test.log_jac_det_rev (+Σ s) is matched as it is.
    SECTION("elementwise_scaling_vec") {
        check_parity_both<ScaleVecFreia>("elementwise_scaling_vec", "elementwise");
    }
    SECTION("elementwise_scaling_img") {
        check_parity_both<ScaleImgFreia>("elementwise_scaling_img", "elementwise");
    }
    SECTION("hand-computed: +Σ s both ways with the option, −Σ s in reverse without") {
        in_double<ScaleImg> exact;
        in_double<ScaleImgFreia> freia;
        perturb(exact, 5);
        perturb(freia, 5);  // the same draws: the same s
        const mat s = tensor_of(exact, "module_list.0.s", 256);
        REQUIRE(s == tensor_of(freia, "module_list.0.s", 256));
        const double sum_s = s.sum();
        REQUIRE(std::abs(sum_s) > 0.1);  // so the sign matters
        const mat x = random_batch(3, 256, 8);
        const auto fe = exact.forward(x);
        const auto ff = freia.forward(x);
        CHECK(fe.log_jac_det.isConstant(sum_s, 1e-12));
        CHECK(ff.log_jac_det.isConstant(sum_s, 1e-12));
        CHECK(ff.z == fe.z);
        const auto re = exact.inverse(x);
        const auto rf = freia.inverse(x);
        CHECK(re.log_jac_det.isConstant(-sum_s, 1e-12));
        CHECK(rf.log_jac_det.isConstant(sum_s, 1e-12));
        CHECK(rf.x == re.x);  // only the log-det differs
        // x · exp(−s), elementwise
        const mat want = (x.array().rowwise() * (-s.row(0).array()).exp()).matrix();
        CHECK(max_rel_error(rf.x, want) < 1e-14);
    }
}

TEST_CASE("OrthogonalTransform / HouseholderPerm match FrEIA", "[elementwise][parity]") {
    SECTION("orthogonal_transform") {
        check_parity_both<OrthoVec>("orthogonal_transform", "orthogonal");
    }
    SECTION("orthogonal_transform_clamp") {
        check_parity_both<OrthoClamp>("orthogonal_transform_clamp", "orthogonal");
    }
    SECTION("householder_perm_2") { check_parity_both<House2>("householder_perm_2", "orthogonal"); }
    SECTION("householder_perm_5") { check_parity_both<House5>("householder_perm_5", "orthogonal"); }
    SECTION("householder_perm_fixed") {
        check_parity_both<HouseFixed>("householder_perm_fixed", "orthogonal");
    }
}

TEST_CASE("InvertibleSigmoid matches FrEIA", "[elementwise][parity]") {
    check_parity_both<SigmoidVec>("invertible_sigmoid", "elementwise");
}

// ==== compile-time rules ==========================================================================

// The inverse of InvAutoFC / InvAutoConv2D is only the transpose; every other module is exact.
static_assert(FCVec::inversion == inverse_kind::approximate);
static_assert(SequenceINN<Shape<6>, InvAutoFC<>>::inversion == inverse_kind::approximate);
static_assert(Conv3x3::inversion == inverse_kind::approximate);
static_assert(Conv1x1::inversion == inverse_kind::approximate);
static_assert(SequenceINN<Shape<6>, InvAutoAct<>, InvAutoFC<>>::inversion ==
              inverse_kind::approximate);
static_assert(ActVec::inversion == inverse_kind::exact);
static_assert(ActFixedClass::inversion == inverse_kind::exact);
static_assert(TwoSidedImg::inversion == inverse_kind::exact);
static_assert(ScaleImg::inversion == inverse_kind::exact);
static_assert(OrthoVec::inversion == inverse_kind::exact);
static_assert(HouseFixed::inversion == inverse_kind::exact);
static_assert(SigmoidVec::inversion == inverse_kind::exact);
static_assert(VecChain::inversion == inverse_kind::exact);

namespace {
constexpr signature sig(std::initializer_list<int> d) { return signature{make_ports({make_dims(d)}), {}}; }
constexpr signature sig_cond(std::initializer_list<int> d, std::initializer_list<int> c) {
    return signature{make_ports({make_dims(d)}), make_ports({make_dims(c)})};
}
template <class M>
constexpr shape_error error_of(const signature& s) {
    return M::output_shapes(s).error;
}
}  // namespace

TEST_CASE("Shape rules: ranks, conditions and options", "[elementwise][shapes]") {
    using E = shape_error;
    // Any rank for the elementwise modules; vectors only for FC / orthogonal; images for conv.
    static_assert(error_of<InvAutoAct<>>(sig({3, 4, 5, 6})) == E::none);
    static_assert(error_of<InvAutoActTwoSided<>>(sig({3, 4})) == E::none);
    static_assert(error_of<LearnedElementwiseScaling<>>(sig({2, 3, 4})) == E::none);
    static_assert(error_of<InvertibleSigmoid>(sig({2, 3, 4})) == E::none);
    static_assert(error_of<InvAutoFC<>>(sig({4, 8, 8})) == E::wrong_rank);
    static_assert(error_of<OrthogonalTransform<>>(sig({4, 8})) == E::wrong_rank);
    static_assert(error_of<HouseholderPerm<HouseholderPermOptions{.n_reflections = 2}>>(
                      sig({4, 8})) == E::wrong_rank);
    static_assert(error_of<InvAutoConv2D<>>(sig({4})) == E::wrong_rank);
    static_assert(error_of<InvAutoConv2D<>>(sig({4, 8, 8, 8})) == E::wrong_rank);

    // No module takes a condition (FrEIA's forward has no `c`; HouseholderPerm's conditional
    // mode crashes in FrEIA).
    static_assert(error_of<InvAutoAct<>>(sig_cond({4}, {2})) == E::condition_not_accepted);
    static_assert(error_of<InvAutoActTwoSided<>>(sig_cond({4}, {2})) == E::condition_not_accepted);
    static_assert(error_of<InvAutoFC<>>(sig_cond({4}, {2})) == E::condition_not_accepted);
    static_assert(error_of<InvAutoConv2D<>>(sig_cond({4, 8, 8}, {2, 8, 8})) ==
                  E::condition_not_accepted);
    static_assert(error_of<LearnedElementwiseScaling<>>(sig_cond({4}, {2})) ==
                  E::condition_not_accepted);
    static_assert(error_of<OrthogonalTransform<>>(sig_cond({4}, {2})) == E::condition_not_accepted);
    static_assert(error_of<HouseholderPerm<HouseholderPermOptions{.n_reflections = 2}>>(
                      sig_cond({4}, {8})) == E::condition_not_accepted);
    static_assert(error_of<InvertibleSigmoid>(sig_cond({4}, {2})) == E::condition_not_accepted);

    // Options: InvAutoFC with dims_out != D is not bijective.
    static_assert(error_of<InvAutoFC<InvAutoFCOptions{.dims_out = 6}>>(sig({6})) == E::none);
    static_assert(error_of<InvAutoFC<InvAutoFCOptions{.dims_out = 5}>>(sig({6})) ==
                  E::invalid_option);
    static_assert(error_of<InvAutoFC<InvAutoFCOptions{.dims_out = 8}>>(sig({6})) ==
                  E::invalid_option);
    // InvAutoConv2D: the output must keep the input's shape.
    static_assert(error_of<InvAutoConv2D<InvAutoConv2DOptions{.dims_out = make_dims({4, 8, 8})}>>(
                      sig({4, 8, 8})) == E::none);
    static_assert(error_of<InvAutoConv2D<InvAutoConv2DOptions{.dims_out = make_dims({6, 8, 8})}>>(
                      sig({4, 8, 8})) == E::invalid_option);
    static_assert(error_of<InvAutoConv2D<InvAutoConv2DOptions{.dims_out = make_dims({4, 6, 6})}>>(
                      sig({4, 8, 8})) == E::invalid_option);
    static_assert(error_of<InvAutoConv2D<InvAutoConv2DOptions{.kernel_size = 3, .padding = 0}>>(
                      sig({4, 8, 8})) == E::invalid_option);
    static_assert(error_of<InvAutoConv2D<InvAutoConv2DOptions{.kernel_size = 2, .padding = 1}>>(
                      sig({4, 8, 8})) == E::invalid_option);
    static_assert(error_of<InvAutoConv2D<InvAutoConv2DOptions{.kernel_size = 0, .padding = 0}>>(
                      sig({4, 8, 8})) == E::invalid_option);
    static_assert(error_of<InvAutoConv2D<InvAutoConv2DOptions{.kernel_size = 7, .padding = 3}>>(
                      sig({4, 8, 8})) == E::none);
    // Slopes and scales must be positive (FrEIA would take log of them).
    static_assert(error_of<InvAutoAct<InvAutoActOptions{.slope_init = 0.0}>>(sig({4})) ==
                  E::invalid_option);
    static_assert(error_of<InvAutoActTwoSided<InvAutoActTwoSidedOptions{.init_neg = -1.0}>>(
                      sig({4})) == E::invalid_option);
    static_assert(error_of<LearnedElementwiseScaling<LearnedElementwiseScalingOptions{
                      .init_scale = 0.0}>>(sig({4})) == E::invalid_option);
    // OrthogonalTransform: clamp 0 gives NaN, correction_interval < 1 fails NumPy's randint.
    static_assert(error_of<OrthogonalTransform<OrthogonalTransformOptions{.clamp = 0.0}>>(
                      sig({4})) == E::invalid_option);
    static_assert(error_of<OrthogonalTransform<OrthogonalTransformOptions{.correction_interval =
                                                                              0}>>(sig({4})) ==
                  E::invalid_option);
    static_assert(error_of<OrthogonalTransform<OrthogonalTransformOptions{.clamp = -2.0}>>(
                      sig({4})) == E::none);
    // HouseholderPerm: FrEIA's default n_reflections = 1 is rejected, as in FrEIA.
    static_assert(error_of<HouseholderPerm<>>(sig({4})) == E::invalid_option);
    static_assert(HouseholderPerm<>::output_shapes(sig({4})).expected == 2);
    static_assert(error_of<HouseholderPerm<HouseholderPermOptions{.n_reflections = 2}>>(
                      sig({1})) == E::none);

    static_assert(InvAutoAct<>::name == "InvAutoAct");
    static_assert(InvAutoActTwoSided<>::name == "InvAutoActTwoSided");
    static_assert(InvAutoFC<>::name == "InvAutoFC");
    static_assert(InvAutoConv2D<>::name == "InvAutoConv2D");
    static_assert(LearnedElementwiseScaling<>::name == "LearnedElementwiseScaling");
    static_assert(OrthogonalTransform<>::name == "OrthogonalTransform");
    static_assert(HouseholderPerm<>::name == "HouseholderPerm");
    static_assert(InvertibleSigmoid::name == "InvertibleSigmoid");
    SUCCEED();
}

// ==== exact modules: round trips and log-dets =====================================================

TEST_CASE("Exact vector modules: round trips, finite-difference log-dets, batch 1",
          "[elementwise][roundtrip]") {
    SECTION("double") {
        in_double<VecChain> net(5);
        perturb(net, 6);
        const mat x = random_batch(6, 7, 7);
        check_round_trip(net, x);
        check_log_det(net, x);
        check_round_trip(net, random_batch(1, 7, 8));
        check_log_det(net, random_batch(1, 7, 9));
        // jac = false: the same outputs, no log-det.
        CHECK(net.forward(x, false).z == net.forward(x).z);
    }
    SECTION("float") {
        VecChain net(5);
        perturb(net, 6);
        check_round_trip(net, random_batch<float>(6, 7, 7));
        check_round_trip(net, random_batch<float>(1, 7, 8));
    }
    SECTION("float agrees with double") {
        in_double<VecChain> netd(11);
        VecChain netf(11);
        perturb(netd, 12);
        // The same parameters in both.
        netd.visit([&](const std::string& key, const tensor_ref<double>& t) {
            netf.visit([&](const std::string& k, const tensor_ref<float>& u) {
                if (k == key && t.real)
                    for (std::int64_t i = 0; i < t.shape.numel(); ++i) u.real[i] = float(t.real[i]);
            });
        });
        const mat x = random_batch(4, 7, 13);
        auto [zd, ld] = netd.forward(x);
        auto [zf, lf] = netf.forward(row_matrix<float>(x.cast<float>()));
        CHECK(max_rel_error(zf, zd) < 1e-5);
        CHECK(max_rel_error(lf, ld) < 1e-5);
    }
}

TEST_CASE("Exact elementwise modules on odd images: round trips and log-dets",
          "[elementwise][roundtrip]") {
    SECTION("double") {
        in_double<ImgChain> net(1);
        perturb(net, 2);
        const mat x = random_batch(3, 105, 3);
        check_round_trip(net, x);
        check_log_det(net, x);
        check_round_trip(net, random_batch(1, 105, 4));
    }
    SECTION("float") {
        ImgChain net(1);
        perturb(net, 2);
        check_round_trip(net, random_batch<float>(3, 105, 3));
        check_round_trip(net, random_batch<float>(1, 105, 4));
    }
}

TEST_CASE("InvertibleSigmoid: log-det summed over all dims of an image (FrEIA's bug fixed)",
          "[elementwise][sigmoid]") {
    in_double<SigmoidImg> net;
    const mat x = random_batch(4, 18, 21);
    const mat z = check_round_trip(net, x);
    CHECK(z.minCoeff() > 0);
    CHECK(z.maxCoeff() < 1);
    CHECK(std::abs(z(0, 5) - 1 / (1 + std::exp(-x(0, 5)))) < 1e-15);
    check_log_det(net, x);  // FrEIA would return a (B, 3, 3) tensor here
    check_log_det(net, random_batch(1, 18, 22));

    // Far in the tails the log-det stays finite (FrEIA's formula overflows to -inf) and equals
    // −|x| − 2 log1p(e^−|x|).
    mat big(1, 18);
    big.setConstant(800.0);
    big(0, 1) = -800.0;
    CHECK(net.forward(big).log_jac_det(0) == Approx(-18 * 800.0).epsilon(1e-15));
    in_double<SigmoidVec> vec;
    mat x6(1, 6);
    x6 << 0.0, 1.0, -2.0, 3.5, -0.25, 10.0;
    double want = 0;
    for (int i = 0; i < 6; ++i)
        want += std::log(1 / ((1 + std::exp(x6(0, i))) * (1 + std::exp(-x6(0, i)))));
    CHECK(vec.forward(x6).log_jac_det(0) == Approx(want).epsilon(1e-14));
    SigmoidVec vecf;
    check_round_trip(vecf, random_batch<float>(3, 6, 23));
}

TEST_CASE("InvAutoAct / InvAutoActTwoSided: slopes, zeros, initial values, learnable",
          "[elementwise][invauto]") {
    in_double<ActVec> act;
    in_double<TwoSidedVec> two;
    // Initial values: ln(slope_init), ln(init_pos), ln(init_neg).
    CHECK(tensor_of(act, "module_list.0.alpha", 6).isConstant(std::log(2.0), 0));
    CHECK(tensor_of(two, "module_list.0.alpha_pos", 6).isConstant(std::log(2.0), 0));
    CHECK(tensor_of(two, "module_list.0.alpha_neg", 6).isConstant(std::log(0.5), 0));

    mat x(1, 6);
    x << 1.5, -2.0, 0.0, 3.0, -0.5, 0.0;
    auto [z, ljd] = act.forward(x);
    mat want(1, 6);
    want << 3.0, -1.0, 0.0, 6.0, -0.25, 0.0;
    CHECK(max_rel_error(z, want) < 1e-15);
    // Two positive, two negative entries: ℓ sums to 0; zeros contribute 0.
    CHECK(std::abs(ljd(0)) < 1e-15);
    auto [z2, ljd2] = two.forward(x);
    mat want2(1, 6);
    want2 << 3.0, -1.0, 0.0, 6.0, -0.25, 0.0;
    CHECK(max_rel_error(z2, want2) < 1e-15);
    // ℓ: 2 ln 2 (positives) + 2 ln 0.5 (negatives) + 2 · ½(ln 2 + ln 0.5) (zeros) = 0
    CHECK(std::abs(ljd2(0)) < 1e-15);
    x << 1, 1, 1, -1, 0, 0;
    CHECK(two.forward(x).log_jac_det(0) == Approx(3 * std::log(2.0) + std::log(0.5)));
    // A NaN input gives a NaN output and log-det (FrEIA: sign(NaN) is NaN).
    x(0, 2) = std::nan("");
    auto [zn, ljdn] = act.forward(x);
    CHECK(std::isnan(zn(0, 2)));
    CHECK(std::isnan(ljdn(0)));
    CHECK(zn(0, 0) == Approx(2.0));

    // learnable = false only marks the parameter; InvAutoActFixed stays learnable.
    in_double<ActImgFixed> fixed_img;
    in_double<ActFixedClass> fixed_class;
    auto s1 = state_of(fixed_img);
    REQUIRE(s1.size() == 1);
    CHECK(s1[0].first == "module_list.0.alpha");
    CHECK(s1[0].second.shape == tensor_shape{1, 4, 1, 1});
    CHECK_FALSE(s1[0].second.trainable);
    auto s2 = state_of(fixed_class);
    REQUIRE(s2.size() == 1);
    CHECK(s2[0].second.shape == tensor_shape{1, 5});
    CHECK(s2[0].second.trainable);
    CHECK(tensor_of(fixed_class, "module_list.0.alpha", 5).isConstant(std::log(3.0), 0));
    auto s3 = state_of(two);
    REQUIRE(s3.size() == 2);
    CHECK(s3[0].first == "module_list.0.alpha_pos");
    CHECK(s3[1].first == "module_list.0.alpha_neg");
}

TEST_CASE("LearnedElementwiseScaling: one scale per element", "[elementwise][scaling]") {
    in_double<ScaleImg> net;
    auto s = state_of(net);
    REQUIRE(s.size() == 1);
    CHECK(s[0].first == "module_list.0.s");
    CHECK(s[0].second.shape == tensor_shape{1, 4, 8, 8});
    CHECK(tensor_of(net, "module_list.0.s", 256).isConstant(std::log(2.0), 0));
    perturb(net, 9);
    const mat sv = tensor_of(net, "module_list.0.s", 256);
    const mat x = random_batch(2, 256, 10);
    auto [z, ljd] = net.forward(x);
    for (int i = 0; i < 256; i += 37) CHECK(z(1, i) == Approx(x(1, i) * std::exp(sv(0, i))));
    CHECK(ljd(0) == Approx(sv.sum()).epsilon(1e-14));
    CHECK(ljd(1) == Approx(sv.sum()).epsilon(1e-14));
}

// ==== OrthogonalTransform =========================================================================

TEST_CASE("OrthogonalTransform: construction draws, clamp, re-orthogonalisation",
          "[elementwise][orthogonal]") {
    SECTION("draws in FrEIA's order (float)") {
        OrthoVec net(17);
        generator g(17);
        const std::int64_t counter = g.numpy().randint(0, 256) / 2;
        std::vector<float> a(36), bias(6), scaling(6);
        g.fill_normal(a.data(), 36, 0.f, 1.f);
        g.fill_normal(bias.data(), 6, 0.f, 1.f);
        g.fill_normal(scaling.data(), 6, 0.f, 1.f);
        CHECK(net.module<0>()->back_counter == counter);
        const auto b = tensor_of(net, "module_list.0.bias", 6);
        const auto s = tensor_of(net, "module_list.0.scaling", 6);
        for (int i = 0; i < 6; ++i) {
            CHECK(b(0, i) == 0.05f * bias[std::size_t(i)]);
            CHECK(s(0, i) == 0.02f * scaling[std::size_t(i)]);
        }
        // weights = U of svd(A + Aᵀ): orthogonal, and it diagonalises the symmetric matrix.
        const Eigen::MatrixXd w = tensor_of(net, "module_list.0.weights", 6).cast<double>();
        Eigen::MatrixXd am(6, 6);
        for (int i = 0; i < 36; ++i) am(i / 6, i % 6) = a[std::size_t(i)];
        const Eigen::MatrixXd sym = am + am.transpose();
        CHECK((w.transpose() * w - Eigen::MatrixXd::Identity(6, 6)).cwiseAbs().maxCoeff() < 1e-6);
        Eigen::MatrixXd d = w.transpose() * sym * w;
        d.diagonal().setZero();
        CHECK(d.cwiseAbs().maxCoeff() < 1e-5);
        auto st = state_of(net);
        REQUIRE(st.size() == 3);
        CHECK(st[0].first == "module_list.0.weights");
        CHECK(st[1].first == "module_list.0.bias");
        CHECK(st[1].second.shape == tensor_shape{1, 6});
        CHECK(st[2].first == "module_list.0.scaling");
    }
    SECTION("log-scale (clamp · 0.636) · atan(scaling / clamp)") {
        in_double<OrthoClamp> net(3);
        mat sc(1, 5);
        sc << -4.0, -0.3, 0.0, 0.7, 9.0;
        set_tensor(net, "module_list.0.scaling", sc);
        double want = 0;
        for (int i = 0; i < 5; ++i) want += (1.5 * 0.636) * std::atan(sc(0, i) / 1.5);
        const mat x = random_batch(2, 5, 4);
        CHECK(net.forward(x).log_jac_det.isConstant(want, 1e-14));
        CHECK(net.inverse(x).log_jac_det.isConstant(-want, 1e-14));
        // Bounded by clamp · 0.636 · π/2 per entry.
        sc.setConstant(1e6);
        set_tensor(net, "module_list.0.scaling", sc);
        CHECK(net.forward(x).log_jac_det(0) < 5 * 1.5 * 0.636 * std::numbers::pi / 2);
        check_round_trip(net, x);
    }
    SECTION("orthogonalize_weights restores an orthogonal matrix (FrEIA's Gram–Schmidt)") {
        in_double<OrthoVec> net(8);
        perturb(net, 9);
        mat w = tensor_of(net, "module_list.0.weights", 6);
        const mat original = w;
        w += 0.01 * random_batch(6, 6, 10);
        set_tensor(net, "module_list.0.weights", w);
        const mat x = random_batch(3, 6, 11);
        CHECK(max_rel_error(net.inverse(net.forward(x).z).x, x) > 1e-6);  // no longer exact
        net.module<0>()->orthogonalize_weights();
        const mat w2 = tensor_of(net, "module_list.0.weights", 6);
        CHECK((w2 * w2.transpose() - mat::Identity(6, 6)).cwiseAbs().maxCoeff() < 1e-14);
        CHECK(max_rel_error(w2, original) < 0.05);  // a correction, not a new matrix
        // Row 0 is only normalised.
        CHECK(max_rel_error(w2.row(0), w.row(0) / w.row(0).norm()) < 1e-15);
        check_round_trip(net, x);
    }
}

// ==== HouseholderPerm =============================================================================

namespace {
template <int N>
using HouseNet =
    in_double<SequenceINN<Shape<7>, HouseholderPerm<HouseholderPermOptions{.n_reflections = N}>>>;

/// W = forward of the identity batch; compared with the naive product of the current Vs.
template <class Net>
void check_householder_product(Net& net, int n, int d) {
    const mat vs = tensor_of(net, "module_list.0.Vs", d);
    REQUIRE(vs.rows() == n);
    const mat w = net.forward(mat(mat::Identity(d, d))).z;
    CHECK((w - householder_product(vs)).cwiseAbs().maxCoeff() < 1e-14);
    CHECK((w * w.transpose() - mat::Identity(d, d)).cwiseAbs().maxCoeff() < 1e-14);
}
}  // namespace

TEST_CASE("HouseholderPerm: the WY product equals H(v_0)…H(v_{n−1}) for n = 2…5",
          "[elementwise][householder]") {
    // n = 2: one pair; 3: a pair and the odd remainder; 4: two pairs; 5: both.
    in_double<House2> n2(1);
    HouseNet<3> n3(2);
    HouseNet<4> n4(3);
    in_double<House5> n5(4);
    perturb(n2, 5, 1.0);
    perturb(n3, 6, 1.0);
    perturb(n4, 7, 1.0);
    perturb(n5, 8, 1.0);
    check_householder_product(n2, 2, 6);
    check_householder_product(n3, 3, 7);
    check_householder_product(n4, 4, 7);
    check_householder_product(n5, 5, 5);
    const mat x = random_batch(5, 7, 9);
    check_round_trip(n4, x);
    check_log_det(n3, x);  // log|det| = 0 for an orthogonal map
    check_round_trip(n4, random_batch(1, 7, 10));
    check_round_trip(n5, random_batch(3, 5, 10));

    // The product follows Vs: a changed Vs (a load, a training step) is seen by the next call.
    mat vs = tensor_of(n3, "module_list.0.Vs", 7);
    vs.row(1) = random_batch(1, 7, 11);
    set_tensor(n3, "module_list.0.Vs", vs);
    check_householder_product(n3, 3, 7);
    CHECK(max_rel_error(n3.inverse(n3.forward(x).z).x, x) < 1e-13);
}

TEST_CASE("HouseholderPerm: initialisation, fixed mode and its doubled state_dict entry",
          "[elementwise][householder]") {
    SECTION("not fixed: Vs = (eye(D, n) + 0.1 · randn(D, n))ᵀ, trainable") {
        House2 net(12);
        generator g(12);
        std::vector<float> r(12);
        g.fill_normal(r.data(), 12, 0.f, 1.f);
        const auto vs = tensor_of(net, "module_list.0.Vs", 6);
        REQUIRE(vs.rows() == 2);
        for (int d = 0; d < 6; ++d)
            for (int k = 0; k < 2; ++k)
                CHECK(vs(k, d) == (d == k ? 1.f : 0.f) + r[std::size_t(d * 2 + k)] * 0.1f);
        auto st = state_of(net);
        REQUIRE(st.size() == 1);
        CHECK(st[0].second.trainable);
    }
    SECTION("fixed: Vs = randn(D, n)ᵀ, W stored under W and weight (one tensor)") {
        in_double<HouseFixed> net(13);
        generator g(13);
        std::vector<double> r(18);
        g.fill_normal(r.data(), 18, 0.0, 1.0);
        const mat vs = tensor_of(net, "module_list.0.Vs", 6);
        for (int d = 0; d < 6; ++d)
            for (int k = 0; k < 3; ++k) CHECK(vs(k, d) == r[std::size_t(d * 3 + k)]);
        auto st = state_of(net);
        REQUIRE(st.size() == 3);
        CHECK(st[0].first == "module_list.0.Vs");
        CHECK(st[1].first == "module_list.0.W");
        CHECK(st[2].first == "module_list.0.weight");
        CHECK(st[1].second.shape == tensor_shape{6, 6});
        CHECK(st[1].second.data == st[2].second.data);  // registered twice, as in FrEIA
        CHECK_FALSE(st[0].second.trainable);            // FrEIA leaves Vs trainable
        CHECK_FALSE(st[1].second.trainable);
        const mat w = tensor_of(net, "module_list.0.W", 6);
        CHECK((w - householder_product(vs)).cwiseAbs().maxCoeff() < 1e-14);
        CHECK(net.parameter_count() == 0);

        // The stored W is used as stored: Vs is not read any more.
        const mat x = random_batch(3, 6, 14);
        const mat z = net.forward(x).z;
        CHECK(max_rel_error(z, mat(x * w)) < 1e-14);
        set_tensor(net, "module_list.0.Vs", mat(random_batch(3, 6, 15)));
        CHECK(net.forward(x).z == z);
        const mat q = random_orthogonal(6, 16);
        set_tensor(net, "module_list.0.weight", q);
        CHECK(max_rel_error(net.forward(x).z, mat(x * q)) < 1e-14);
        check_round_trip(net, x);
    }
}

// ==== InvAutoFC / InvAutoConv2D ==================================================================

TEST_CASE("InvAutoFC: draws, transpose inverse, exact only for orthogonal weights",
          "[elementwise][invauto]") {
    SECTION("draws: weights = sqrt(1/D) · randn(D, D), then bias = randn(1, D)") {
        FCVec net(21);
        generator g(21);
        std::vector<float> w(36), b(6);
        g.fill_normal(w.data(), 36, 0.f, 1.f);
        g.fill_normal(b.data(), 6, 0.f, 1.f);
        const auto wm = tensor_of(net, "module_list.0.weights", 6);
        const auto bm = tensor_of(net, "module_list.0.bias", 6);
        const float factor = float(std::sqrt(1.0 / 6));
        for (int i = 0; i < 36; ++i) CHECK(wm(i / 6, i % 6) == w[std::size_t(i)] * factor);
        for (int i = 0; i < 6; ++i) CHECK(bm(0, i) == b[std::size_t(i)]);
        auto st = state_of(net);
        REQUIRE(st.size() == 2);
        CHECK(st[0].first == "module_list.0.weights");
        CHECK(st[1].second.shape == tensor_shape{1, 6});
    }
    SECTION("random weight: forward x Wᵀ + b, reverse (y − b) W, log-det 0 both ways") {
        in_double<FCVec> net(22);
        const mat w = tensor_of(net, "module_list.0.weights", 6);
        const mat b = tensor_of(net, "module_list.0.bias", 6);
        const mat x = random_batch(4, 6, 23);
        auto [z, ljd] = net.forward(x);
        CHECK(max_rel_error(z, mat((x * w.transpose()).rowwise() + b.row(0))) < 1e-14);
        CHECK(ljd.isZero());
        auto [xr, ljd_rev] = net.inverse(z);
        CHECK(max_rel_error(xr, mat((z.rowwise() - b.row(0)) * w)) < 1e-14);
        CHECK(ljd_rev.isZero());
        CHECK(max_rel_error(xr, x) > 0.01);  // not an inverse
        // FrEIA's log-det 0 is not the true log|det W| unless W is orthogonal.
        const double true_log_det = std::log(std::abs(w.determinant()));
        CHECK(numerical_log_det(net, x)(0) == Approx(true_log_det).margin(1e-6));
        CHECK(std::abs(true_log_det) > 0.01);
    }
    SECTION("orthogonal weight: exact inverse, log-det 0 is correct") {
        in_double<FCVec> net(24);
        set_tensor(net, "module_list.0.weights", mat(random_orthogonal(6, 25)));
        const mat x = random_batch(5, 6, 26);
        check_round_trip(net, x);
        check_round_trip(net, random_batch(1, 6, 27));
        check_log_det(net, x);
    }
}

TEST_CASE("InvAutoConv2D: direct convolution, transposed convolution, adjoint",
          "[elementwise][invauto]") {
    constexpr int C = 3, H = 5, W = 7, K = 5, P = 2, N = C * H * W;
    in_double<ConvOdd> net(31);
    perturb(net, 32);
    const mat km = tensor_of(net, "module_list.0.conv2d.weight", K * K);
    const Eigen::VectorXd k = Eigen::Map<const Eigen::VectorXd>(km.data(), km.size());
    const mat b = tensor_of(net, "module_list.0.bias", 1);
    REQUIRE(k.size() == C * C * K * K);
    REQUIRE(b.size() == C);
    auto st = state_of(net);
    REQUIRE(st.size() == 2);
    CHECK(st[0].first == "module_list.0.bias");  // FrEIA's order: own parameter, then child
    CHECK(st[0].second.shape == tensor_shape{1, C, 1, 1});
    CHECK(st[1].first == "module_list.0.conv2d.weight");
    CHECK(st[1].second.shape == tensor_shape{C, C, K, K});

    const mat x = random_batch(3, N, 33), y = random_batch(3, N, 34);
    auto [z, ljd] = net.forward(x);
    auto [xr, ljd_rev] = net.inverse(y);
    CHECK(ljd.isZero());
    CHECK(ljd_rev.isZero());
    for (Eigen::Index n = 0; n < x.rows(); ++n) {
        const Eigen::VectorXd conv_x = direct_conv(x.row(n).transpose(), k, C, H, W, K, P);
        Eigen::VectorXd want = conv_x, shifted = y.row(n).transpose();
        for (int c = 0; c < C; ++c) {
            want.segment(c * H * W, H * W).array() += b(c, 0);
            shifted.segment(c * H * W, H * W).array() -= b(c, 0);
        }
        CHECK(max_rel_error(z.row(n), want.transpose()) < 1e-13);
        const Eigen::VectorXd want_rev = direct_conv_transpose(shifted, k, C, H, W, K, P);
        CHECK(max_rel_error(xr.row(n), want_rev.transpose()) < 1e-13);
        // The reverse is the adjoint of the linear part: <conv x, y − b> = <x, convᵀ(y − b)>.
        CHECK(conv_x.dot(shifted) == Approx(x.row(n).dot(xr.row(n))).epsilon(1e-12));
    }
    // Batch 1 gives the same rows.
    CHECK(max_rel_error(net.inverse(mat(y.row(2))).x, mat(xr.row(2))) < 1e-15);
}

TEST_CASE("InvAutoConv2D: draws, and the 1x1 case with an orthogonal kernel is exact",
          "[elementwise][invauto]") {
    SECTION("draws: Conv2d default init, then bias = randn(1, C, 1, 1)") {
        Conv3x3 net(41);
        generator g(41);
        std::vector<float> w(144), b(4);
        const float bound = float(torch_default_init_bound(36));
        g.fill_uniform(w.data(), 144, -bound, bound);
        g.fill_normal(b.data(), 4, 0.f, 1.f);
        const auto wm = tensor_of(net, "module_list.0.conv2d.weight", 9);
        const auto bm = tensor_of(net, "module_list.0.bias", 1);
        for (int i = 0; i < 144; ++i) CHECK(wm(i / 9, i % 9) == w[std::size_t(i)]);
        for (int i = 0; i < 4; ++i) CHECK(bm(i, 0) == b[std::size_t(i)]);
    }
    SECTION("orthogonal 1x1 kernel: exact inverse, log-det 0 correct") {
        in_double<Conv1x1> net(42);
        perturb(net, 43);
        set_tensor(net, "module_list.0.conv2d.weight", mat(random_orthogonal(4, 44)));
        const mat x = random_batch(3, 256, 45);
        check_round_trip(net, x);
        check_round_trip(net, random_batch(1, 256, 46));
        Conv1x1 netf(42);
        set_tensor(netf, "module_list.0.conv2d.weight",
                   row_matrix<float>(random_orthogonal(4, 44).cast<float>()));
        check_round_trip(netf, random_batch<float>(2, 256, 47));
    }
}

}  // namespace
