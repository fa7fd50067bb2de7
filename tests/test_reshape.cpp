// Reshaping and fixed linear modules: IRevNetDownsampling/Upsampling, HaarDownsampling/Upsampling,
// FixedLinearTransform, Fixed1x1Conv. Round trips, log-dets against finite differences, the
// worked values of FrEIA, state_dict keys and shapes, shape rules.

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <Eigen/Dense>
#include <inn/modules/fixed_1x1_conv.hpp>
#include <inn/modules/fixed_linear.hpp>
#include <inn/modules/haar.hpp>
#include <inn/modules/irevnet.hpp>

#include "support/checks.hpp"

// Everything in this file has internal linkage: test files reuse names (subnets,
// node structs) that would otherwise collide across translation units (ODR).
namespace {

using namespace inn;

namespace {

struct no_setup {
    template <class Net> void operator()(Net&) const {}
};

/// inverse(forward(x)) == x, inverse log-det == -forward, and (double) the log-det equals
/// log|det J| from finite differences.
template <class Net, class Setup = no_setup>
void check_invertible(Eigen::Index batch, Setup setup = {}) {
    using S = typename Net::scalar;
    const double tol = std::is_same_v<S, double> ? 1e-12 : 1e-5;
    Net net(7);
    setup(net);
    const row_matrix<S> x = test::random_batch<S>(batch, Net::input_dims().size(), 5);
    auto [z, ljd] = net.forward(x);
    REQUIRE(z.rows() == batch);
    REQUIRE(z.cols() == Net::output_dims().size());
    auto [xr, ljd_rev] = net.inverse(z);
    CHECK(test::max_rel_error(xr, x) < tol);
    const vector<S> minus = -ljd;
    CHECK(test::max_rel_error(ljd_rev, minus) < tol);
    if constexpr (std::is_same_v<S, double>) {
        const Eigen::VectorXd num = test::numerical_log_det(net, x);
        CHECK(test::max_rel_error(ljd, num) < 1e-6);
    }
}

/// Both scalar types of a float network type.
template <class Net, class Setup = no_setup> void check_invertible_both(Setup setup = {}) {
    for (Eigen::Index batch : {1, 3}) {
        check_invertible<typename Net::template with_scalar<double>>(batch, setup);
        check_invertible<Net>(batch, setup);
    }
}

struct entry {
    std::string key;
    std::vector<std::int64_t> shape;
    bool trainable;
    friend bool operator==(const entry&, const entry&) = default;
};

template <class Net> std::vector<entry> state_dict_of(Net& net) {
    std::vector<entry> r;
    net.visit([&](const std::string& key, const tensor_ref<typename Net::scalar>& t) {
        REQUIRE(t.real != nullptr);
        r.push_back({key, t.shape.as_vector(), t.trainable});
    });
    return r;
}

constexpr signature one_input(dims d) { return {make_ports({d}), {}}; }

/// A random, well-conditioned matrix; row 0 is negated so that its determinant is (for the seeds
/// used) negative: log-dets must use |det|.
Eigen::MatrixXd random_matrix(int n, unsigned seed) {
    generator g(seed);
    Eigen::MatrixXd m(n, n);
    for (Eigen::Index i = 0; i < m.size(); ++i)
        m.data()[i] = 0.4 * g.normal<double>();
    m += 1.5 * Eigen::MatrixXd::Identity(n, n);
    m.row(0) *= -1;
    return m;
}

} // namespace

// ---- shape rules -----------------------------------------------------------------------------

TEST_CASE("IRevNetDownsampling, HaarDownsampling: shape rules and errors", "[modules]") {
    using Down = IRevNetDownsampling<>;
    using Haar = HaarDownsampling<>;
    constexpr shape_result ok = Down::output_shapes(one_input(make_dims({3, 8, 6})));
    STATIC_REQUIRE(ok.ok());
    STATIC_REQUIRE(ok.outputs.count == 1);
    STATIC_REQUIRE(ok.outputs[0] == make_dims({12, 4, 3}));
    STATIC_REQUIRE(Haar::output_shapes(one_input(make_dims({3, 8, 6}))).outputs[0] ==
                   make_dims({12, 4, 3}));

    constexpr shape_result odd = Down::output_shapes(one_input(make_dims({3, 5, 4})));
    STATIC_REQUIRE(odd.error == shape_error::odd_spatial_size);
    STATIC_REQUIRE(Down::output_shapes(one_input(make_dims({3, 4, 5}))).error ==
                   shape_error::odd_spatial_size);
    STATIC_REQUIRE(Haar::output_shapes(one_input(make_dims({3, 4, 5}))).error ==
                   shape_error::odd_spatial_size);

    constexpr shape_result vec = Haar::output_shapes(one_input(make_dims({12})));
    STATIC_REQUIRE(vec.error == shape_error::wrong_rank);
    STATIC_REQUIRE(vec.expected == 3);
    STATIC_REQUIRE(Down::output_shapes(one_input(make_dims({2, 4, 4, 4}))).error ==
                   shape_error::wrong_rank);

    constexpr signature two{make_ports({make_dims({3, 4, 4}), make_dims({3, 4, 4})}), {}};
    STATIC_REQUIRE(Down::output_shapes(two).error == shape_error::wrong_input_count);
    constexpr signature cond{make_ports({make_dims({3, 4, 4})}),
                             make_ports({make_dims({1, 4, 4})})};
    STATIC_REQUIRE(Down::output_shapes(cond).error == shape_error::condition_not_accepted);
    STATIC_REQUIRE(Haar::output_shapes(cond).error == shape_error::condition_not_accepted);

    STATIC_REQUIRE(
        HaarDownsampling<{.rebalance = 0.0}>::output_shapes(one_input(make_dims({3, 4, 4})))
            .error == shape_error::invalid_option);
    STATIC_REQUIRE(
        HaarUpsampling<{.rebalance = 0.0}>::output_shapes(one_input(make_dims({12, 4, 4}))).error ==
        shape_error::invalid_option);
}

TEST_CASE("IRevNetUpsampling, HaarUpsampling: shape rules and errors", "[modules]") {
    using Up = IRevNetUpsampling<{.legacy_backend = true}>;
    using Haar = HaarUpsampling<>;
    STATIC_REQUIRE(Up::output_shapes(one_input(make_dims({12, 3, 5}))).outputs[0] ==
                   make_dims({3, 6, 10}));
    STATIC_REQUIRE(Haar::output_shapes(one_input(make_dims({4, 1, 1}))).outputs[0] ==
                   make_dims({1, 2, 2}));
    STATIC_REQUIRE(Up::output_shapes(one_input(make_dims({6, 4, 4}))).error ==
                   shape_error::channels_not_divisible);
    STATIC_REQUIRE(Haar::output_shapes(one_input(make_dims({6, 4, 4}))).error ==
                   shape_error::channels_not_divisible);
    STATIC_REQUIRE(Haar::output_shapes(one_input(make_dims({8, 4}))).error ==
                   shape_error::wrong_rank);
}

TEST_CASE("FixedLinearTransform, Fixed1x1Conv: shape rules and errors", "[modules]") {
    STATIC_REQUIRE(FixedLinearTransform::output_shapes(one_input(make_dims({7}))).outputs[0] ==
                   make_dims({7}));
    constexpr shape_result img =
        FixedLinearTransform::output_shapes(one_input(make_dims({3, 4, 4})));
    STATIC_REQUIRE(img.error == shape_error::wrong_rank);
    STATIC_REQUIRE(img.expected == 1);
    STATIC_REQUIRE(Fixed1x1Conv::output_shapes(one_input(make_dims({3, 5, 7}))).outputs[0] ==
                   make_dims({3, 5, 7}));
    constexpr shape_result vec = Fixed1x1Conv::output_shapes(one_input(make_dims({3})));
    STATIC_REQUIRE(vec.error == shape_error::wrong_rank);
    STATIC_REQUIRE(vec.expected == 3);
    constexpr signature cond{make_ports({make_dims({3})}), make_ports({make_dims({1})})};
    STATIC_REQUIRE(FixedLinearTransform::output_shapes(cond).error ==
                   shape_error::condition_not_accepted);
    STATIC_REQUIRE(module_name<Fixed1x1Conv>() == "Fixed1x1Conv");
    STATIC_REQUIRE(module_name<HaarUpsampling<>>() == "HaarUpsampling");
}

// ---- IRevNet ---------------------------------------------------------------------------------

TEST_CASE("IRevNetDownsampling: round trip, log-det 0, odd channels, batch 1", "[modules]") {
    check_invertible_both<SequenceINN<Shape<3, 4, 6>, IRevNetDownsampling<>>>();
    check_invertible_both<
        SequenceINN<Shape<3, 4, 6>, IRevNetDownsampling<{.legacy_backend = true}>>>();
    check_invertible_both<SequenceINN<Shape<1, 2, 2>, IRevNetDownsampling<>>>();

    using Net = SequenceINN<Shape<5, 2, 4>, IRevNetDownsampling<>>::with_scalar<double>;
    Net net;
    const row_matrix<double> x = test::random_batch(2, 40);
    auto [z, ljd] = net.forward(x);
    CHECK(ljd.isZero(0));
    // A permutation: the same multiset of values.
    std::vector<double> a(x.data(), x.data() + x.size()), b(z.data(), z.data() + z.size());
    std::sort(a.begin(), a.end());
    std::sort(b.begin(), b.end());
    CHECK(a == b);
}

TEST_CASE("IRevNetDownsampling: worked values of FrEIA", "[modules]") {
    // x of shape (1, 2, 4, 4) holding 0..31; output (8, 2, 2), pixel (0, 0) is entry 4 * channel.
    row_matrix<double> x(1, 32);
    for (int i = 0; i < 32; ++i)
        x(0, i) = i;
    auto pixel0 = [](const row_matrix<double>& z) {
        std::vector<double> r;
        for (int o = 0; o < 8; ++o)
            r.push_back(z(0, 4 * o));
        return r;
    };
    SequenceINN<Shape<2, 4, 4>, IRevNetDownsampling<>>::with_scalar<double> net;
    CHECK(pixel0(net.forward(x).z) == std::vector<double>{0, 1, 4, 5, 16, 17, 20, 21});
    SequenceINN<Shape<2, 4, 4>, IRevNetDownsampling<{.legacy_backend = true}>>::with_scalar<double>
        legacy;
    CHECK(pixel0(legacy.forward(x).z) == std::vector<double>{0, 16, 1, 17, 4, 20, 5, 21});

    // Every output entry: y[4c + k, i, j] = x[c, 2i + dy, 2j + dx], k = 2 dy + dx.
    auto z = net.forward(x).z;
    auto zl = legacy.forward(x).z;
    for (int c = 0; c < 2; ++c)
        for (int k = 0; k < 4; ++k)
            for (int i = 0; i < 2; ++i)
                for (int j = 0; j < 2; ++j) {
                    const double v = x(0, c * 16 + (2 * i + k / 2) * 4 + 2 * j + k % 2);
                    CHECK(z(0, (4 * c + k) * 4 + i * 2 + j) == v);
                    CHECK(zl(0, (k * 2 + c) * 4 + i * 2 + j) == v);
                }
}

TEST_CASE("IRevNetUpsampling: exact inverse of IRevNetDownsampling", "[modules]") {
    check_invertible_both<SequenceINN<Shape<12, 2, 3>, IRevNetUpsampling<>>>();
    check_invertible_both<
        SequenceINN<Shape<4, 1, 1>, IRevNetUpsampling<{.legacy_backend = true}>>>();

    const row_matrix<double> z = test::random_batch(3, 12 * 2 * 3);
    SequenceINN<Shape<3, 4, 6>, IRevNetDownsampling<>>::with_scalar<double> down;
    SequenceINN<Shape<12, 2, 3>, IRevNetUpsampling<>>::with_scalar<double> up;
    CHECK(up.forward(z).z == down.inverse(z).x);
    CHECK(up.inverse(down.inverse(z).x).x == z);
    SequenceINN<Shape<3, 4, 6>, IRevNetDownsampling<{.legacy_backend = true}>>::with_scalar<double>
        down_l;
    SequenceINN<Shape<12, 2, 3>, IRevNetUpsampling<{.legacy_backend = true}>>::with_scalar<double>
        up_l;
    CHECK(up_l.forward(z).z == down_l.inverse(z).x);
}

TEST_CASE("IRevNetDownsampling: state_dict downsample_kernel as FrEIA's", "[modules]") {
    SequenceINN<Shape<3, 8, 8>, IRevNetDownsampling<>> down;
    CHECK(state_dict_of(down) ==
          std::vector<entry>{{"module_list.0.downsample_kernel", {12, 1, 2, 2}, false}});
    CHECK(down.parameter_count() == 0);
    // Kernel 4c + k has its one at (dy, dx), k = 2 dy + dx.
    down.visit([](const std::string&, const tensor_ref<float>& t) {
        for (int o = 0; o < 12; ++o)
            for (int e = 0; e < 4; ++e)
                CHECK(t.real[o * 4 + e] == (e == o % 4 ? 1.f : 0.f));
    });
    SequenceINN<Shape<12, 4, 4>, IRevNetUpsampling<>> up; // kernel of the (3, 8, 8) side
    CHECK(state_dict_of(up) ==
          std::vector<entry>{{"module_list.0.downsample_kernel", {12, 1, 2, 2}, false}});
    SequenceINN<Shape<3, 8, 8>, IRevNetDownsampling<{.legacy_backend = true}>> legacy;
    CHECK(state_dict_of(legacy).empty());
    SequenceINN<Shape<12, 4, 4>, IRevNetUpsampling<{.legacy_backend = true}>> legacy_up;
    CHECK(state_dict_of(legacy_up).empty());
}

// ---- Haar ------------------------------------------------------------------------------------

TEST_CASE("HaarDownsampling: round trip and log-det, all options", "[modules]") {
    check_invertible_both<SequenceINN<Shape<3, 4, 6>, HaarDownsampling<>>>();
    check_invertible_both<
        SequenceINN<Shape<3, 4, 6>, HaarDownsampling<{.order_by_wavelet = true}>>>();
    check_invertible_both<SequenceINN<Shape<1, 2, 4>, HaarDownsampling<{.rebalance = 0.5}>>>();
    check_invertible_both<SequenceINN<
        Shape<5, 2, 2>, HaarDownsampling<{.order_by_wavelet = true, .rebalance = 2.0}>>>();
}

TEST_CASE("HaarDownsampling: log-det values N * j", "[modules]") {
    const row_matrix<double> x = test::random_batch(2, 48);
    SequenceINN<Shape<3, 4, 4>, HaarDownsampling<>>::with_scalar<double> plain;
    CHECK(plain.forward(x).log_jac_det.isZero(0)); // exactly 0 for rebalance 1

    // rebalance r: j_fwd = (ln 16 + 4 ln(r / 2)) / 4 = ln r, j_rev = -ln r.
    SequenceINN<Shape<3, 4, 4>, HaarDownsampling<{.rebalance = 0.5}>>::with_scalar<double> half;
    auto [z, ljd] = half.forward(x);
    CHECK(ljd(0) == Approx(48 * std::log(0.5)).epsilon(1e-14));
    CHECK(ljd(1) == ljd(0));
    CHECK(half.inverse(z).log_jac_det(0) == Approx(-48 * std::log(0.5)).epsilon(1e-14));

    SequenceINN<Shape<3, 4, 4>, HaarDownsampling<{.rebalance = 3.0}>> f32;
    const row_matrix<float> xf = x.cast<float>();
    CHECK(f32.forward(xf).log_jac_det(0) == Approx(48 * std::log(3.0)).epsilon(1e-6));
    CHECK(f32.forward(xf, false).log_jac_det.isZero(0)); // jac = false adds nothing
}

TEST_CASE("HaarDownsampling: worked values of FrEIA", "[modules]") {
    // The patch [[0, 1], [4, 5]]: components (A, V, H, D) * 0.5 * rebalance.
    const row_matrix<double> patch = (row_matrix<double>(1, 4) << 0, 1, 4, 5).finished();
    SequenceINN<Shape<1, 2, 2>, HaarDownsampling<>>::with_scalar<double> net;
    const row_matrix<double> z = net.forward(patch).z;
    CHECK(z == (row_matrix<double>(1, 4) << 5, -1, -4, 0).finished());
    CHECK(net.inverse(z).x == patch);
    SequenceINN<Shape<1, 2, 2>, HaarDownsampling<{.rebalance = 2.0}>>::with_scalar<double> twice;
    CHECK(twice.forward(patch).z == (row_matrix<double>(1, 4) << 10, -2, -8, 0).finished());

    // Two channels: channel 1 holds the patch + 10. Default order 4c + k, by wavelet k*C + c.
    const row_matrix<double> two =
        (row_matrix<double>(1, 8) << 0, 1, 4, 5, 10, 11, 14, 15).finished();
    SequenceINN<Shape<2, 2, 2>, HaarDownsampling<>>::with_scalar<double> by_channel;
    SequenceINN<Shape<2, 2, 2>, HaarDownsampling<{.order_by_wavelet = true}>>::with_scalar<double>
        by_wavelet;
    CHECK(by_channel.forward(two).z ==
          (row_matrix<double>(1, 8) << 5, -1, -4, 0, 25, -1, -4, 0).finished());
    CHECK(by_wavelet.forward(two).z ==
          (row_matrix<double>(1, 8) << 5, 25, -1, -1, -4, -4, 0, 0).finished());
}

TEST_CASE("HaarUpsampling: exact inverse of HaarDownsampling", "[modules]") {
    check_invertible_both<SequenceINN<Shape<12, 2, 3>, HaarUpsampling<>>>();
    check_invertible_both<SequenceINN<
        Shape<8, 1, 2>, HaarUpsampling<{.order_by_wavelet = true, .rebalance = 2.0}>>>();

    constexpr HaarOptions opt{.order_by_wavelet = true, .rebalance = 0.25};
    const row_matrix<double> z = test::random_batch(3, 12 * 2 * 2);
    SequenceINN<Shape<3, 4, 4>, HaarDownsampling<opt>>::with_scalar<double> down;
    SequenceINN<Shape<12, 2, 2>, HaarUpsampling<opt>>::with_scalar<double> up;
    auto [x_up, ljd_up] = up.forward(z);
    auto [x_down, ljd_down] = down.inverse(z);
    CHECK(x_up == x_down);
    CHECK(ljd_up == ljd_down); // the downsampler's reverse formula
    CHECK(ljd_up(0) == Approx(-48 * std::log(0.25)).epsilon(1e-14));
    auto [z2, ljd2] = up.inverse(x_up);
    CHECK(z2 == down.forward(x_up).z);
    CHECK(test::max_rel_error(z2, z) < 1e-14);
    CHECK(ljd2(0) == Approx(48 * std::log(0.25)).epsilon(1e-14));
}

TEST_CASE("HaarDownsampling: inputs are not modified (FrEIA's bug fixed)", "[modules]") {
    // FrEIA scales the input of its reverse in place; here the caller's data stay as they were.
    SequenceINN<Shape<12, 2, 2>, HaarUpsampling<{.rebalance = 2.0}>>::with_scalar<double> up;
    const row_matrix<double> z = test::random_batch(2, 48);
    row_matrix<double> copy = z;
    auto x = up.forward(z).z;
    CHECK(z == copy);
    SequenceINN<Shape<3, 4, 4>, HaarDownsampling<{.rebalance = 2.0}>>::with_scalar<double> down;
    CHECK(down.inverse(z).x == x);
    CHECK(z == copy);
}

TEST_CASE("HaarDownsampling: state_dict haar_weights as FrEIA's", "[modules]") {
    SequenceINN<Shape<3, 8, 8>, HaarDownsampling<>> down;
    CHECK(state_dict_of(down) ==
          std::vector<entry>{{"module_list.0.haar_weights", {12, 1, 2, 2}, false}});
    CHECK(down.parameter_count() == 0);
    const float k[4][4] = {{1, 1, 1, 1}, {1, -1, 1, -1}, {1, 1, -1, -1}, {1, -1, -1, 1}};
    down.visit([&](const std::string&, const tensor_ref<float>& t) {
        for (int o = 0; o < 12; ++o)
            for (int e = 0; e < 4; ++e)
                CHECK(t.real[o * 4 + e] == k[o % 4][e]);
    });
    SequenceINN<Shape<16, 4, 4>, HaarUpsampling<{.order_by_wavelet = true}>> up;
    CHECK(state_dict_of(up) ==
          std::vector<entry>{{"module_list.0.haar_weights", {16, 1, 2, 2}, false}});
}

// ---- FixedLinearTransform --------------------------------------------------------------------

TEST_CASE("FixedLinearTransform: y = M x + b, log-det log|det M|", "[modules]") {
    const Eigen::MatrixXd M = (Eigen::MatrixXd(3, 3) << 2, 1, 0, 0, 1, 0, 1, 0, -3).finished();
    const Eigen::VectorXd b = (Eigen::VectorXd(3) << 0.5, -1, 2).finished();
    using Net = SequenceINN<Shape<3>, FixedLinearTransform>::with_scalar<double>;
    Net net;
    net.module<0>()->set(M, b);
    const row_matrix<double> x = test::random_batch(4, 3);
    auto [z, ljd] = net.forward(x);
    const row_matrix<double> expect = (x * M.transpose()).rowwise() + b.transpose();
    CHECK(test::max_rel_error(z, expect) < 1e-15);
    for (int i = 0; i < 4; ++i)
        CHECK(ljd(i) == Approx(std::log(6.0)).epsilon(1e-13));
    auto [xr, ljd_rev] = net.inverse(z);
    CHECK(test::max_rel_error(xr, x) < 1e-14);
    CHECK(ljd_rev(0) == -ljd(0));

    // Without b: FrEIA's 0-dim b, y = M x.
    net.module<0>()->set(M);
    CHECK(net.module<0>()->scalar_b());
    CHECK(test::max_rel_error(net.forward(x).z, row_matrix<double>(x * M.transpose())) < 1e-15);
    // A 0-dim b is broadcast (what loading a non-zero scalar b gives).
    net.module<0>()->set_scalar_b(0.25);
    const row_matrix<double> shifted = (x * M.transpose()).array() + 0.25;
    CHECK(test::max_rel_error(net.forward(x).z, shifted) < 1e-15);
    CHECK(test::max_rel_error(net.inverse(shifted).x, x) < 1e-14);

    // Default: identity.
    Net identity;
    CHECK(identity.forward(x).z == x);
    CHECK(identity.forward(x).log_jac_det.isZero(0));

    CHECK_THROWS_AS(net.module<0>()->set(Eigen::MatrixXd::Identity(2, 2)), std::invalid_argument);
    CHECK_THROWS_AS(net.module<0>()->set(M, Eigen::VectorXd::Zero(4)), std::invalid_argument);
}

TEST_CASE("FixedLinearTransform: round trip and finite-difference log-det", "[modules]") {
    const Eigen::MatrixXd M = random_matrix(5, 11);
    const Eigen::VectorXd b = Eigen::VectorXd::LinSpaced(5, -1, 1);
    check_invertible_both<SequenceINN<Shape<5>, FixedLinearTransform>>(
        [&](auto& net) { net.template module<0>()->set(M, b); });
    check_invertible_both<SequenceINN<Shape<1>, FixedLinearTransform>>(
        [&](auto& net) { net.template module<0>()->set(Eigen::MatrixXd::Constant(1, 1, -3.0)); });
    // The log-det is log|det M| (sign of det ignored).
    SequenceINN<Shape<5>, FixedLinearTransform> f32;
    f32.module<0>()->set(M, b);
    REQUIRE(M.determinant() < 0);
    const row_matrix<float> zero = row_matrix<float>::Zero(1, 5);
    CHECK(f32.forward(zero).log_jac_det(0) ==
          Approx(std::log(std::abs(M.determinant()))).epsilon(1e-6));
}

TEST_CASE("FixedLinearTransform: state_dict M, M_inv, b, logDetM as FrEIA's", "[modules]") {
    using Net = SequenceINN<Shape<6>, FixedLinearTransform>::with_scalar<double>;
    Net net;
    CHECK(state_dict_of(net) == std::vector<entry>{{"module_list.0.M", {6, 6}, false},
                                                   {"module_list.0.M_inv", {6, 6}, false},
                                                   {"module_list.0.b", {1, 6}, false},
                                                   {"module_list.0.logDetM", {}, false}});
    const Eigen::MatrixXd M = random_matrix(6, 3);
    net.module<0>()->set(M);
    CHECK(state_dict_of(net)[2] == entry{"module_list.0.b", {}, false});
    CHECK(net.parameter_count() == 0);

    // Buffers hold M^T, inverse(M^T), log|det M|.
    net.visit([&](const std::string& key, const tensor_ref<double>& t) {
        Eigen::Map<const row_matrix<double>> m(t.real, 6, 6);
        if (key == "module_list.0.M")
            CHECK((m - M.transpose()).norm() < 1e-15);
        if (key == "module_list.0.M_inv")
            CHECK((m * M.transpose() - Eigen::MatrixXd::Identity(6, 6)).norm() < 1e-13);
        if (key == "module_list.0.logDetM")
            CHECK(*t.real == Approx(std::log(std::abs(M.determinant()))).epsilon(1e-13));
    });

    // A loader writes the buffers: the module computes with what was written (M_buf applied to
    // row vectors as FrEIA does, not re-derived).
    Net loaded;
    const Eigen::MatrixXd A = random_matrix(6, 5);
    loaded.visit([&](const std::string& key, const tensor_ref<double>& t) {
        Eigen::Map<row_matrix<double>> m(t.real, 6, 6);
        if (key == "module_list.0.M")
            m = A;
        if (key == "module_list.0.M_inv")
            m = A.inverse();
        if (key == "module_list.0.b")
            for (int i = 0; i < 6; ++i)
                t.real[i] = i;
        if (key == "module_list.0.logDetM")
            *t.real = 1.5;
    });
    const row_matrix<double> x = test::random_batch(2, 6);
    auto [z, ljd] = loaded.forward(x);
    const row_matrix<double> expect = (x * A).rowwise() + Eigen::RowVectorXd::LinSpaced(6, 0, 5);
    CHECK(test::max_rel_error(z, expect) < 1e-14);
    CHECK(ljd(1) == 1.5);
}

// ---- Fixed1x1Conv ----------------------------------------------------------------------------

TEST_CASE("Fixed1x1Conv: per pixel y = M^T x, log-det log|det M| * H * W", "[modules]") {
    const Eigen::MatrixXd M = (Eigen::MatrixXd(3, 3) << 2, 1, 0, 0, 1, 0, 1, 0, -3).finished();
    using Net = SequenceINN<Shape<3, 2, 5>, Fixed1x1Conv>::with_scalar<double>;
    Net net;
    net.module<0>()->set(M);
    const row_matrix<double> x = test::random_batch(2, 30);
    auto [z, ljd] = net.forward(x);
    for (int b = 0; b < 2; ++b) {
        Eigen::Map<const row_matrix<double>> xs(x.row(b).data(), 3, 10), zs(z.row(b).data(), 3, 10);
        CHECK((zs - M.transpose() * xs).norm() < 1e-14);
        CHECK(ljd(b) == Approx(std::log(6.0) * 10).epsilon(1e-13));
    }
    auto [xr, ljd_rev] = net.inverse(z);
    CHECK(test::max_rel_error(xr, x) < 1e-14);
    CHECK(ljd_rev(0) == -ljd(0));

    Net identity;
    CHECK(identity.forward(x).z == x);
    CHECK_THROWS_AS(net.module<0>()->set(Eigen::MatrixXd::Identity(4, 4)), std::invalid_argument);
}

TEST_CASE("Fixed1x1Conv: round trip, finite-difference log-det, odd channels, batch 1",
          "[modules]") {
    const Eigen::MatrixXd M = random_matrix(5, 17);
    check_invertible_both<SequenceINN<Shape<5, 3, 1>, Fixed1x1Conv>>(
        [&](auto& net) { net.template module<0>()->set(M); });
    check_invertible_both<SequenceINN<Shape<1, 2, 3>, Fixed1x1Conv>>(
        [&](auto& net) { net.template module<0>()->set(Eigen::MatrixXd::Constant(1, 1, 0.5)); });
    // Float network from a float matrix.
    SequenceINN<Shape<5, 3, 1>, Fixed1x1Conv> f32;
    f32.module<0>()->set(Eigen::MatrixXf(M.cast<float>()));
    const row_matrix<float> zero = row_matrix<float>::Zero(1, 15);
    CHECK(f32.forward(zero).log_jac_det(0) ==
          Approx(3 * std::log(std::abs(M.determinant()))).epsilon(1e-5));
}

TEST_CASE("Fixed1x1Conv: state_dict M, M_inv, logDetM as FrEIA's", "[modules]") {
    SequenceINN<Shape<4, 8, 8>, Fixed1x1Conv>::with_scalar<double> net;
    CHECK(state_dict_of(net) == std::vector<entry>{{"module_list.0.M", {4, 4, 1, 1}, false},
                                                   {"module_list.0.M_inv", {4, 4, 1, 1}, false},
                                                   {"module_list.0.logDetM", {}, false}});
    const Eigen::MatrixXd M = random_matrix(4, 2);
    net.module<0>()->set(M);
    net.visit([&](const std::string& key, const tensor_ref<double>& t) {
        Eigen::Map<const row_matrix<double>> m(t.real, 4, 4);
        if (key == "module_list.0.M")
            CHECK((m - M.transpose()).norm() < 1e-15);
        if (key == "module_list.0.M_inv")
            CHECK((m * M.transpose() - Eigen::MatrixXd::Identity(4, 4)).norm() < 1e-13);
    });
}

// ---- in a graph ------------------------------------------------------------------------------

namespace reshape_graph {
struct x_in : InputNode<Shape<3, 4, 4>> {};
struct haar : Node<HaarDownsampling<{.rebalance = 2.0}>, x_in> {};
struct mix : Node<Fixed1x1Conv, haar> {};
struct up : Node<IRevNetUpsampling<>, mix> {};
struct down : Node<IRevNetDownsampling<{.legacy_backend = true}>, up> {};
struct z_out : OutputNode<down> {};
using Net = GraphINN<x_in, haar, mix, up, down, z_out>;
} // namespace reshape_graph

TEST_CASE("IRevNetDownsampling, HaarDownsampling, Fixed1x1Conv: in a GraphINN and its inverse_t",
          "[modules]") {
    using namespace reshape_graph;
    static_assert(Net::output_shape<mix> == Shape<12, 2, 2>{});
    static_assert(Net::output_shape<up> == Shape<3, 4, 4>{});
    static_assert(Net::output_shape<z_out> == Shape<12, 2, 2>{});
    const Eigen::MatrixXd M = random_matrix(12, 4);
    check_invertible<Net::with_scalar<double>>(2,
                                               [&](auto& net) { net.template module<1>()->set(M); });
    check_invertible<Net>(1, [&](auto& net) { net.template module<1>()->set(M); });

    Net::with_scalar<double> net;
    net.module<1>()->set(M);
    CHECK(state_dict_of(net) ==
          std::vector<entry>{{"module_list.0.haar_weights", {12, 1, 2, 2}, false},
                             {"module_list.1.M", {12, 12, 1, 1}, false},
                             {"module_list.1.M_inv", {12, 12, 1, 1}, false},
                             {"module_list.1.logDetM", {}, false},
                             {"module_list.2.downsample_kernel", {12, 1, 2, 2}, false}});
    inverse_t<Net::with_scalar<double>> sampler(net);
    const row_matrix<double> x = test::random_batch(3, 48);
    auto [z, ljd] = net.forward(x);
    auto [x2, ljd2] = sampler.forward(z);
    CHECK(test::max_rel_error(x2, x) < 1e-12);
    CHECK(test::max_rel_error(ljd2, vector<double>(-ljd)) < 1e-12);
    const double expected = 48 * std::log(2.0) + 4 * std::log(std::abs(M.determinant()));
    CHECK(ljd(0) == Approx(expected).epsilon(1e-12));
}

}  // namespace
