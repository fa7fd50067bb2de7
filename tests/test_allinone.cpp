// AllInOneBlock: round trips, log-determinants against finite differences, an
// independent per-sample reference of the forward formula, FrEIA's initial values, the RNG
// order at construction, state_dict layout, shape errors and run-time buffer replacement.
// Parity with the recorded FrEIA files is a separate test (the aio_* fixtures).

#include <catch2/catch.hpp>

#include <bit>
#include <map>
#include <string>
#include <vector>

#include <inn/inn.hpp>
#include <inn/modules/all_in_one_block.hpp>
#include <inn/train.hpp>

#include "support/checks.hpp"

// Everything in this file has internal linkage: test files reuse names (subnets,
// node structs) that would otherwise collide across translation units (ODR).
namespace {

using namespace inn;
using inn::test::max_rel_error;

namespace {

// Smooth subnets, so that finite differences are accurate everywhere.
struct fc_allinone {
    template <int I, int O>
    using net = nn::Sequential<nn::Linear<I, 16>, nn::Tanh, nn::Linear<16, O>>;
};
struct conv_allinone {
    template <int I, int O>
    using net = nn::Sequential<nn::Conv2d<I, 6, 3>, nn::Tanh, nn::Conv2d<6, O, 3>>;
};

// Options spelled with their type: clang rejects a bare braced list as a template argument.
using opt = AllInOneOptions;
template <opt O = opt{}>
using fc_block = AllInOneBlock<fc_allinone, O>;
template <opt O = opt{}>
using conv_block = AllInOneBlock<conv_allinone, O>;

// One network per option (double; float through with_scalar). Odd channel counts on purpose.
using DefaultNet = SequenceINN<Shape<6>, Repeat<2, fc_block<>>>::with_scalar<double>;
using SoftNet =
    SequenceINN<Shape<5>, Repeat<2, fc_block<opt{.permute_soft = true}>>>::with_scalar<double>;
using HouseholderNet =
    SequenceINN<Shape<7>, fc_block<opt{.permute_soft = true, .learned_householder_permutation = 2}>,
                fc_block<opt{.permute_soft = true, .learned_householder_permutation = 2,
                             .reverse_permutation = true}>>::with_scalar<double>;
using GinNet =
    SequenceINN<Shape<6>, Repeat<2, fc_block<opt{.gin_block = true}>>>::with_scalar<double>;
using SigmoidNet =
    SequenceINN<Shape<5>,
                Repeat<2, fc_block<opt{.affine_clamping = 1.5, .global_affine_init = 0.8,
                                       .global_affine_type = global_affine_type::sigmoid}>>>::
        with_scalar<double>;
using ExpNet =
    SequenceINN<Shape<6>, Repeat<2, fc_block<opt{.affine_clamping = 1.0, .global_affine_init = 1.3,
                                                 .global_affine_type = global_affine_type::exp}>>>::
        with_scalar<double>;
using ReverseNet =
    SequenceINN<Shape<7>, Repeat<2, fc_block<opt{.reverse_permutation = true}>>>::
        with_scalar<double>;
using VecCondNet =
    SequenceINN<Shape<6>, Conditions<Shape<3>>, Conditioned<fc_block<>, 0>,
                Conditioned<fc_block<opt{.gin_block = true, .permute_soft = true}>, 0>>::
        with_scalar<double>;
using ImageNet =
    SequenceINN<Shape<4, 3, 4>, conv_block<>,
                conv_block<opt{.gin_block = true, .reverse_permutation = true}>,
                conv_block<opt{.global_affine_type = global_affine_type::exp, .permute_soft = true,
                               .learned_householder_permutation = 2}>>::with_scalar<double>;
using ImageCondNet =
    SequenceINN<Shape<3, 4, 5>, Conditions<Shape<2, 4, 5>>, Conditioned<conv_block<>, 0>,
                Conditioned<conv_block<opt{.permute_soft = true, .reverse_permutation = true}>,
                            0>>::with_scalar<double>;

/// Moves every parameter away from FrEIA's near-identity start: subnets produce large
/// coefficients (some clamped by tanh), global scales and offsets differ per channel.
/// Fixed tensors (permutations, w_0) keep their values.
template <class Net>
void perturb(Net& net, unsigned seed = 7) {
    generator g(seed);
    using S = typename Net::scalar;
    net.visit([&](const std::string& key, const tensor_ref<S>& t) {
        if (!t.real || !t.trainable) return;
        const bool global = key.ends_with("global_scale") || key.ends_with("global_offset");
        for (std::int64_t i = 0; i < t.shape.numel(); ++i)
            t.real[i] = S(global ? double(t.real[i]) + 0.3 * g.normal<double>()
                                 : 0.9 * g.normal<double>());
    });
}

/// The double network's state in a float network of the same architecture.
template <class From, class To>
void copy_state(From& from, To& to) {
    std::map<std::string, std::vector<double>> real;
    std::map<std::string, std::vector<std::int64_t>> integer;
    from.visit([&](const std::string& key, const tensor_ref<double>& t) {
        auto n = std::size_t(t.shape.numel());
        if (t.real) real[key].assign(t.real, t.real + n);
        if (t.integer) integer[key].assign(t.integer, t.integer + n);
    });
    to.visit([&](const std::string& key, const tensor_ref<float>& t) {
        if (t.real)
            for (std::size_t i = 0; i < real.at(key).size(); ++i) t.real[i] = float(real[key][i]);
        if (t.integer) std::copy(integer.at(key).begin(), integer.at(key).end(), t.integer);
    });
}

// Calls with or without the network's one condition.
template <class Net, class X, class C>
auto fwd(Net& net, const X& x, const C& c) {
    if constexpr (Net::n_conditions == 0)
        return net.forward(x);
    else
        return net.forward(x, conditions(c));
}
template <class Net, class X, class C>
auto inv(Net& net, const X& z, const C& c) {
    if constexpr (Net::n_conditions == 0)
        return net.inverse(z);
    else
        return net.inverse(z, conditions(c));
}
template <class Net>
Eigen::VectorXd numerical(Net& net, const row_matrix<double>& x, const row_matrix<double>& c) {
    if constexpr (Net::n_conditions == 0)
        return inn::test::numerical_log_det(net, x);
    else
        return inn::test::numerical_log_det(net, x, conditions(c));
}

/// The checks every option gets, in double and in float: inverse(forward(x)) == x, the inverse
/// log-det is minus the forward one, and the forward one is log|det J| by finite differences
/// (float: equal to the double network's, which finite differences confirmed).
template <class Net>
void check_network(Eigen::Index batch, bool volume_preserving = false, unsigned seed = 3) {
    Net net(seed);
    perturb(net, seed + 10);
    const auto x = inn::test::random_batch(batch, Net::input_dims().size(), seed);
    row_matrix<double> c;
    if constexpr (Net::n_conditions > 0)
        c = inn::test::random_batch(batch, Net::condition_dims().size(), seed + 1);

    auto [z, ljd] = fwd(net, x, c);
    auto [xr, ljd_rev] = inv(net, z, c);
    CHECK(max_rel_error(xr, x) < 1e-12);
    CHECK(max_rel_error(ljd_rev, (-ljd).eval()) < 1e-12);
    CHECK(max_rel_error(ljd, numerical(net, x, c)) < 1e-6);
    if (volume_preserving)
        CHECK(ljd.cwiseAbs().maxCoeff() < 1e-12);
    else
        CHECK(ljd.cwiseAbs().maxCoeff() > 0.1);  // not vacuous
    CHECK(max_rel_error(z, x) > 0.1);

    typename Net::template with_scalar<float> netf;
    copy_state(net, netf);
    const row_matrix<float> xf = x.template cast<float>(), cf = c.template cast<float>();
    auto [zf, ljdf] = fwd(netf, xf, cf);
    auto [xrf, ljd_revf] = inv(netf, zf, cf);
    CHECK(max_rel_error(xrf, xf) < 1e-5);
    CHECK(max_rel_error(ljd_revf, (-ljdf).eval()) < 1e-5);
    CHECK(max_rel_error(zf, z) < 1e-4);
    CHECK(max_rel_error(ljdf, ljd) < 1e-4);
}

// ---- an independent reference of FrEIA's formula, one sample at a time, in plain loops -----

using mat = Eigen::MatrixXd;

/// The permutation matrix P (y = P x per position) of a bound block, built from its state.
template <class B>
mat permutation_matrix(B& m) {
    const int C = B::channels;
    mat P = mat::Zero(C, C);
    if constexpr (B::householder) {
        mat W = Eigen::Map<const row_matrix<double>>(m.w_0.data(), C, C);
        for (int k = 0; k < B::K; ++k) {
            Eigen::VectorXd v = m.vk_householder.values.segment(k * C, C);
            W = W * (mat::Identity(C, C) - (2 * v * v.transpose()) / v.dot(v));
        }
        P = W;
    } else if constexpr (B::soft) {
        P = Eigen::Map<const row_matrix<double>>(m.w_perm.data(), C, C);
    } else {
        for (int i = 0; i < C; ++i) P(i, int(m.w_perm.values[std::size_t(i)])) = 1;
    }
    return P;
}

/// One block forward on one sample `x` (C x n_pix, channels as rows) with condition `c`.
template <class B>
mat reference_forward(B& m, mat x, const mat& c, double& ljd) {
    constexpr int C = B::channels, l1 = B::len1, l2 = B::len2;
    constexpr auto o = B::options;
    const mat P = permutation_matrix(m);
    if (o.reverse_permutation) x = P.transpose() * x;  // P^-1 = P^T for all three kinds
    mat in(l1 + c.rows(), x.cols());
    in << x.topRows(l1), c;
    row_matrix<double> in_rows = in, a(1, 2 * l2 * x.cols());
    std::vector<double> scratch(std::size_t(nn::layer_scratch<typename B::subnet_type>(1)) + 1);
    m.subnet.forward(cview<double>(in_rows.data(), in_rows.size()),
                     view<double>{a.data(), a.size()}, 1, scratch.data());
    mat s(l2, x.cols()), t(l2, x.cols());
    for (int i = 0; i < l2; ++i)
        for (Eigen::Index p = 0; p < x.cols(); ++p) {
            const double alpha = o.affine_clamping;
            s(i, p) = alpha * std::tanh(0.1 * a(0, i * x.cols() + p) / alpha);
            t(i, p) = 0.1 * a(0, (l2 + i) * x.cols() + p);
        }
    if (o.gin_block) s.array() -= s.mean();
    mat u = x;
    u.bottomRows(l2) = (x.bottomRows(l2).array() * s.array().exp() + t.array()).matrix();
    ljd = s.sum();
    for (int k = 0; k < C; ++k) {
        const double sigma =
            o.gin_block ? 1.0 : B::global_scale_activation(m.global_scale.values[k]);
        u.row(k) = u.row(k) * sigma + mat::Constant(1, x.cols(), m.global_offset.values[k]);
        ljd += double(x.cols()) * std::log(sigma);
    }
    return P * u;
}

/// The network's forward against the reference applied block after block, sample by sample.
template <class Net>
void check_against_reference(unsigned seed = 5) {
    Net net(seed);
    perturb(net, seed + 20);
    const Eigen::Index batch = 3;
    const dims d = Net::input_dims();
    const auto x = inn::test::random_batch(batch, d.size(), seed);
    row_matrix<double> c;
    if constexpr (Net::n_conditions > 0)
        c = inn::test::random_batch(batch, Net::condition_dims().size(), seed + 1);
    auto [z, ljd] = fwd(net, x, c);
    for (Eigen::Index b = 0; b < batch; ++b) {
        const Eigen::Index pix = d.spatial_size();
        mat v = Eigen::Map<const row_matrix<double>>(x.row(b).data(), d.channels(), pix);
        mat cb(0, pix);
        if constexpr (Net::n_conditions > 0)
            cb = Eigen::Map<const row_matrix<double>>(c.row(b).data(),
                                                      Net::condition_dims().channels(), pix);
        double total = 0;
        graph::executor_of(net).for_each_module([&](auto, auto& m) {
            double l = 0;
            v = reference_forward(m, v, cb, l);
            total += l;
        });
        const row_matrix<double> want = v;
        const row_matrix<double> got =
            Eigen::Map<const row_matrix<double>>(z.row(b).data(), d.channels(), pix);
        CHECK(max_rel_error(got, want) < 1e-13);
        CHECK(std::abs(ljd(b) - total) < 1e-12 * (1 + std::abs(total)));
    }
}

template <class Net>
std::vector<std::string> keys_of(Net& net) {
    std::vector<std::string> keys;
    net.visit([&](const std::string& key, const tensor_ref<typename Net::scalar>& t) {
        keys.push_back(key + " " + to_string(t.shape) + (t.trainable ? " trainable" : "") +
                       (t.integer ? " int64" : ""));
    });
    return keys;
}

template <class Subnet>
const auto& first_weight(const Subnet& subnet) {
    return std::get<0>(subnet.layers).weight.values;
}

constexpr signature vector_signature(int channels) {
    return signature{make_ports({make_dims({channels})}), {}};
}

}  // namespace

TEST_CASE("AllInOneBlock inverts and its log-det matches finite differences", "[allinone]") {
    SECTION("default: hard permutation") { check_network<DefaultNet>(4); }
    SECTION("permute_soft, C = 5") { check_network<SoftNet>(4); }
    SECTION("learned householder K = 2 with permute_soft, C = 7, also reversed") {
        check_network<HouseholderNet>(4);
    }
    SECTION("gin_block: volume preserving") { check_network<GinNet>(4, true); }
    SECTION("global_affine_type sigmoid") { check_network<SigmoidNet>(4); }
    SECTION("global_affine_type exp") { check_network<ExpNet>(4); }
    SECTION("reverse_permutation, C = 7") { check_network<ReverseNet>(4); }
    SECTION("vector condition") { check_network<VecCondNet>(4); }
    SECTION("images, Conv2d subnets: hard, gin + reverse, householder") {
        check_network<ImageNet>(2);
    }
    SECTION("images with an image condition, C = 3") { check_network<ImageCondNet>(2); }
    SECTION("batch 1") {
        check_network<DefaultNet>(1);
        check_network<VecCondNet>(1);
        check_network<ImageNet>(1);
    }
}

TEST_CASE("AllInOneBlock forward equals an independent reference of the formula", "[allinone]") {
    SECTION("default") { check_against_reference<DefaultNet>(); }
    SECTION("permute_soft") { check_against_reference<SoftNet>(); }
    SECTION("householder") { check_against_reference<HouseholderNet>(); }
    SECTION("gin_block") { check_against_reference<GinNet>(); }
    SECTION("sigmoid") { check_against_reference<SigmoidNet>(); }
    SECTION("exp") { check_against_reference<ExpNet>(); }
    SECTION("reverse_permutation") { check_against_reference<ReverseNet>(); }
    SECTION("vector condition") { check_against_reference<VecCondNet>(); }
    SECTION("images") { check_against_reference<ImageNet>(); }
    SECTION("image condition") { check_against_reference<ImageCondNet>(); }
}

TEST_CASE("AllInOneBlock global scale: Psi(g0) equals the init", "[allinone]") {
    struct row {
        global_affine_type type;
        double init;
        float g0;  // FrEIA's float32 global_scale
    };
    const row rows[] = {
        {global_affine_type::softplus, 1.0, 9.986478805541992f},
        {global_affine_type::sigmoid, 1.0, -0.19722457230091095f},
        {global_affine_type::exp, 1.0, 0.0f},
        {global_affine_type::softplus, 0.5, 4.828699111938477f},
        {global_affine_type::sigmoid, 0.5, -0.9444389939308167f},
        {global_affine_type::exp, 0.5, -0.6931471824645996f},
        {global_affine_type::softplus, 2.0, 19.999908447265625f},
        {global_affine_type::sigmoid, 2.0, 0.6137056350708008f},
        {global_affine_type::exp, 2.0, 0.6931471824645996f},
    };
    for (const row& r : rows) {
        INFO("type " << int(r.type) << ", init " << r.init);
        const double g0 = aio_global_scale_init(r.type, r.init);
        CHECK(float(g0) == r.g0);
        CHECK(aio_global_scale_activation<double>(r.type, g0) == Approx(r.init).epsilon(1e-14));
        CHECK(aio_global_scale_activation<float>(r.type, r.g0) == Approx(r.init).epsilon(1e-6));
    }
    // The block stores g0 per channel; Psi of it is the identity scale at construction.
    SequenceINN<Shape<6>, Repeat<2, fc_block<>>> net;
    auto& block = *net.module<0>();
    CHECK((block.global_scale.values.array() == 9.986478805541992f).all());
    CHECK((block.global_offset.values.array() == 0.0f).all());
    CHECK(block.global_scale_activation(block.global_scale.values[0]) == Approx(1.0f));
    // A double network keeps g0 in double (FrEIA under torch's float64 default dtype).
    SigmoidNet sig;
    CHECK(sig.module<1>()->global_scale.values[3] ==
          aio_global_scale_init(global_affine_type::sigmoid, 0.8));
}

TEST_CASE("AllInOneBlock draws from the generator in FrEIA's order", "[allinone]") {
    using block = fc_block<>::bind<double, vector_signature(6)>;
    SECTION("hard: randperm(C) first; seed 0, C = 6 gives FrEIA's permutation") {
        generator g(0);
        block m(g);
        CHECK(m.w_perm.values == std::vector<std::int64_t>{2, 5, 3, 0, 1, 4});
        CHECK(m.w_perm_inv.values == std::vector<std::int64_t>{3, 4, 0, 2, 5, 1});
        generator h(0);
        (void)h.randperm(6);
        block::subnet_type subnet(h);  // then the subnet, from the rest of the stream
        CHECK(first_weight(subnet) == first_weight(m.subnet));
        // The same block inside a network built with seed 0.
        DefaultNet net(0);
        CHECK(net.module<0>()->w_perm.values == m.w_perm.values);
    }
    SECTION("soft: SO(C) from the NumPy state, the torch stream untouched") {
        using soft = fc_block<opt{.permute_soft = true}>::bind<double, vector_signature(6)>;
        generator g(0);
        soft m(g);
        generator h(0);
        const Eigen::MatrixXd w = h.numpy().special_ortho_group(6);
        const row_matrix<double> got = Eigen::Map<const row_matrix<double>>(m.w_perm.data(), 6, 6);
        const row_matrix<double> got_inv =
            Eigen::Map<const row_matrix<double>>(m.w_perm_inv.data(), 6, 6);
        CHECK(got == w);
        CHECK(got_inv == w.transpose());
        CHECK(m.w_perm.shape == tensor_shape{6, 6});
        CHECK(std::abs(got.determinant() - 1) < 1e-12);
        soft::subnet_type subnet(h);  // the torch stream starts with the subnet
        CHECK(std::get<2>(subnet.layers).bias.values == std::get<2>(m.subnet.layers).bias.values);
    }
    SECTION("householder: SO(C) from NumPy, then 0.2 * randn(K, C), then the subnet") {
        using hh = fc_block<opt{.permute_soft = true, .learned_householder_permutation = 3}>::bind<
            double, vector_signature(6)>;
        generator g(1);
        hh m(g);
        generator h(1);
        const Eigen::MatrixXd w = h.numpy().special_ortho_group(6);
        CHECK(row_matrix<double>(Eigen::Map<const row_matrix<double>>(m.w_0.data(), 6, 6)) == w);
        std::vector<double> v(18);
        h.fill_normal(v.data(), v.size(), 0.0, 1.0);
        for (std::size_t i = 0; i < v.size(); ++i)
            CHECK(m.vk_householder.values[index_t(i)] == 0.2 * v[i]);
        hh::subnet_type subnet(h);
        CHECK(first_weight(subnet) == first_weight(m.subnet));
    }
}

TEST_CASE("AllInOneBlock state_dict keys, shapes and order are FrEIA's", "[allinone]") {
    SECTION("hard permutation, vectors") {
        VecCondNet net;
        auto keys = keys_of(net);
        keys.resize(8);  // block 0
        CHECK(keys == std::vector<std::string>{
                          "module_list.0.global_scale [1, 6] trainable",
                          "module_list.0.global_offset [1, 6] trainable",
                          "module_list.0.w_perm [6] int64",
                          "module_list.0.w_perm_inv [6] int64",
                          "module_list.0.subnet.0.weight [16, 6] trainable",  // len1 3 + cc 3
                          "module_list.0.subnet.0.bias [16] trainable",
                          "module_list.0.subnet.2.weight [6, 16] trainable",
                          "module_list.0.subnet.2.bias [6] trainable"});
        CHECK(keys_of(net)[10] == "module_list.1.w_perm [6, 6]");  // soft, vectors: (C, C)
    }
    SECTION("soft permutation and householder, images") {
        ImageNet net;
        auto keys = keys_of(net);
        REQUIRE(keys.size() == 24);
        CHECK(keys[0] == "module_list.0.global_scale [1, 4, 1, 1] trainable");
        CHECK(keys[2] == "module_list.0.w_perm [4] int64");
        CHECK(keys[4] == "module_list.0.subnet.0.weight [6, 2, 3, 3] trainable");
        CHECK(keys[17] == "module_list.2.global_offset [1, 4, 1, 1] trainable");
        CHECK(keys[18] == "module_list.2.vk_householder [2, 4] trainable");
        CHECK(keys[19] == "module_list.2.w_0 [4, 4]");
        CHECK(keys[20] == "module_list.2.subnet.0.weight [6, 2, 3, 3] trainable");
        ImageCondNet cond;
        auto ck = keys_of(cond);
        CHECK(ck[10] == "module_list.1.w_perm [3, 3, 1, 1]");
        CHECK(ck[11] == "module_list.1.w_perm_inv [3, 3, 1, 1]");
        CHECK(ck[12] == "module_list.1.subnet.0.weight [6, 4, 3, 3] trainable");  // len1 2 + cc 2
    }
    SECTION("parameter count") {
        DefaultNet net;
        // Per block: 2 * 6 global + (3 * 16 + 16) + (16 * 6 + 6).
        CHECK(net.parameter_count() == 2 * (12 + 64 + 102));
    }
}

TEST_CASE("AllInOneBlock follows parameter changes", "[allinone]") {
    SECTION("hard permutations are run-time buffers") {
        DefaultNet net(1);
        perturb(net);
        const auto x = inn::test::random_batch(3, 6);
        auto z0 = net.forward(x).z;
        auto& m = *net.module<1>();
        const std::vector<std::int64_t> old_inv = m.w_perm_inv.values;
        const std::vector<std::int64_t> p = {5, 4, 3, 2, 1, 0};
        m.w_perm.values = p;
        m.w_perm_inv.values = p;  // its own inverse
        auto z1 = net.forward(x).z;
        // z1[:, i] = v[:, 5 - i] and z0[:, j] = v[:, old[j]], so z1[:, i] = z0[:, old_inv[5 - i]].
        for (int i = 0; i < 6; ++i)
            CHECK(z1.col(i) == z0.col(Eigen::Index(old_inv[std::size_t(5 - i)])));
        CHECK(max_rel_error(net.inverse(z1).x, x) < 1e-12);
        // A change through a kept reference is announced; the next call checks it.
        m.w_perm.values[2] = 6;
        net.parameters_changed();
        CHECK_THROWS_WITH(net.forward(x), Catch::Contains("module_list.1.w_perm") &&
                                              Catch::Contains("[2] = 6 is outside [0, 6)"));
        CHECK_THROWS_AS(net.forward(x), inn::parameter_error);
        m.w_perm.values[2] = 3;
        CHECK_NOTHROW(net.forward(x));
    }
    SECTION("global scale and householder vectors are re-read after a change") {
        HouseholderNet net(2);
        perturb(net);
        const auto x = inn::test::random_batch(3, 7);
        auto z0 = net.forward(x).z;
        net.module<0>()->vk_householder.values[3] += 0.5;
        net.module<1>()->global_scale.values[2] += 0.5;
        auto [z1, ljd1] = net.forward(x);
        CHECK(max_rel_error(z1, z0) > 1e-3);
        CHECK(max_rel_error(net.inverse(z1).x, x) < 1e-12);
        CHECK(max_rel_error(ljd1, inn::test::numerical_log_det(net, x)) < 1e-6);
    }
    SECTION("jac = false leaves the log-det alone and gives the same output") {
        DefaultNet net(1);
        perturb(net);
        const auto x = inn::test::random_batch(3, 6);
        auto [z, ljd] = net.forward(x, false);
        CHECK(z == net.forward(x).z);
        CHECK((ljd.array() == 0).all());
    }
}

TEST_CASE("AllInOneBlock shape rules", "[allinone]") {
    constexpr auto vec = [](int c) { return make_dims({c}); };
    constexpr auto sig = [](dims in, port_list cond = {}) {
        return signature{make_ports({in}), cond};
    };
    using hard = fc_block<>;
    STATIC_REQUIRE(hard::output_shapes(sig(vec(5))).outputs[0] == vec(5));
    STATIC_REQUIRE(hard::output_shapes(sig(make_dims({2, 3, 4, 5}))).ok());  // rank 4 (3-D data)
    STATIC_REQUIRE(hard::output_shapes(sig(vec(1))).ok());  // C = 1: empty active half, as FrEIA
    STATIC_REQUIRE(fc_block<opt{.permute_soft = true}>::output_shapes(sig(vec(1))).error ==
                   shape_error::too_few_channels);
    // FrEIA crashes (UnboundLocalError) on householder without permute_soft; we refuse it.
    STATIC_REQUIRE(fc_block<opt{.learned_householder_permutation = 1}>::output_shapes(sig(vec(4)))
                       .error == shape_error::invalid_option);
    STATIC_REQUIRE(fc_block<opt{.permute_soft = true, .learned_householder_permutation = -1}>::
                       output_shapes(sig(vec(4)))
                           .error == shape_error::invalid_option);
    STATIC_REQUIRE(fc_block<opt{.affine_clamping = 0}>::output_shapes(sig(vec(4))).error ==
                   shape_error::invalid_option);
    constexpr AllInOneOptions sigmoid_10{.global_affine_init = 10,
                                         .global_affine_type = global_affine_type::sigmoid};
    STATIC_REQUIRE(fc_block<sigmoid_10>::output_shapes(sig(vec(4))).error ==
                   shape_error::invalid_option);
    STATIC_REQUIRE(fc_block<opt{.global_affine_init = 0}>::output_shapes(sig(vec(4))).error ==
                   shape_error::invalid_option);
    constexpr dims image = make_dims({4, 8, 8});
    STATIC_REQUIRE(hard::output_shapes(sig(image, make_ports({make_dims({2, 8, 7})}))).error ==
                   shape_error::condition_spatial_mismatch);
    STATIC_REQUIRE(hard::output_shapes(sig(image, make_ports({make_dims({2})}))).error ==
                   shape_error::condition_spatial_mismatch);
    // FrEIA checks only condition 0; concatenation needs every one to match.
    STATIC_REQUIRE(hard::output_shapes(sig(image, make_ports({make_dims({2, 8, 8}),
                                                              make_dims({1, 4, 4})})))
                       .error == shape_error::condition_spatial_mismatch);
    STATIC_REQUIRE(hard::output_shapes(signature{make_ports({vec(2), vec(2)}), {}}).error ==
                   shape_error::wrong_input_count);
    // Rank > 4 cannot be expressed: dims and Shape stop at rank 4 (FrEIA's "Must be 1D-4D").
    STATIC_REQUIRE(max_rank == 4);
}

TEST_CASE("AllInOneBlock with one channel is the global affine map", "[allinone]") {
    // FrEIA's C = 1 has an empty active half (len2 = 0) and a subnet with no outputs.
    using block = fc_block<>::bind<double, vector_signature(1)>;
    generator g(0);
    block m(g);
    m.global_scale.values[0] = 0.3;
    m.global_offset.values[0] = 0.2;
    m.prepare();  // a module used on its own is prepared by hand after its parameters change
    const double sigma = aio_global_scale_activation<double>(global_affine_type::softplus, 0.3);
    row_matrix<double> x(2, 1), y(2, 1), back(2, 1);
    x << 1.5, -0.25;
    std::vector<double> ljd(2, 0.0), scratch(std::size_t(block::scratch_size(2)) + 1);
    auto run = [&](const row_matrix<double>& from, row_matrix<double>& to, bool forward) {
        const cview<double> in[] = {{from.data(), 1}};
        const view<double> out[] = {{to.data(), 1}};
        run_args<double> args{2, in, out, {}, ljd.data(), true, scratch.data()};
        forward ? m.forward(args) : m.inverse(args);
    };
    run(x, y, true);
    CHECK(y(0, 0) == 1.5 * sigma + 0.2);
    CHECK(y(1, 0) == -0.25 * sigma + 0.2);
    CHECK(ljd[0] == Approx(std::log(sigma)).epsilon(1e-15));
    run(y, back, false);
    CHECK(max_rel_error(back, x) < 1e-15);
    CHECK(std::abs(ljd[1]) < 1e-15);  // forward + inverse
}

// ---- bfloat16 weights (network::use_bf16_weights) ------------------------------------------

struct wide_subnet {  // wide enough for whole vectors of every width, and a tail
    template <int I, int O>
    using net = nn::Sequential<nn::Linear<I, 45>, nn::ReLU, nn::Linear<45, O>>;
};
using Bf16Net = SequenceINN<Shape<37>, Conditions<Shape<3>>,
                            Repeat<3, Conditioned<AllInOneBlock<wide_subnet,
                                                                opt{.permute_soft = true}>,
                                                  0>>>;

// Every weight that offers a bfloat16 copy, rounded to bfloat16 in place.
template <class Net>
int round_offered_weights(Net& net) {
    int rounded = 0;
    net.visit([&](const std::string&, const tensor_ref<float>& t) {
        if (!t.bf16) return;
        ++rounded;
        for (std::int64_t i = 0; i < t.shape.numel(); ++i)
            t.real[i] = nn::kernels::from_bf16(nn::kernels::to_bf16(t.real[i]));
    });
    return rounded;
}

// ---- packed weights (network::use_packed_weights) -------------------------------------------

TEST_CASE("packed weights: the same bits as the stored weights, following every change",
          "[allinone][packed]") {
    // Bf16Net's subnets (22 -> 45 -> 36: each a part of a packed block of 48 outputs) and
    // soft permutations of 37 channels; batches of 3 and more may read the packed copies.
    Bf16Net net(11);
    Bf16Net unpacked = net;
    unpacked.use_packed_weights(false);
    CHECK(net.packed_weights());
    CHECK_FALSE(unpacked.packed_weights());
    auto packed_floats = [](Bf16Net& n) {
        std::int64_t count = 0;
        n.visit([&](const std::string&, const tensor_ref<float>& t) {
            if (t.packed) count += t.packed->size();
        });
        return count;
    };
    // Every copy holds W [out, in] as blocks of 48 outputs, each [in][48], zero past out.
    auto copies_hold_the_weights = [](Bf16Net& n) {
        int copies = 0;
        n.visit([&](const std::string& key, const tensor_ref<float>& t) {
            if (!t.packed || t.packed->empty()) return;
            INFO(key);
            ++copies;
            const std::int64_t out = t.shape.extent[0], in = t.shape.extent[1];
            const std::int64_t blocks = (out + 47) / 48;
            REQUIRE(t.packed->size() == blocks * 48 * in);
            bool same = true;
            for (std::int64_t o = 0; o < blocks * 48; ++o)
                for (std::int64_t k = 0; k < in; ++k)
                    same = same && t.packed->data()[(o / 48) * 48 * in + k * 48 + o % 48] ==
                                       (o < out ? t.real[o * in + k] : 0.f);
            CHECK(same);
        });
        return copies;
    };
    // The products of `net` read the packed copies: the measured pick of each of its shapes
    // (subnets 22 -> 45 -> 36, permutations 37 x 37) is made here, as the packed candidate -
    // the last one - for every batch class below. `unpacked` has no copies (other slots): it
    // picks its own plans (timed) before, and the test ends with no pick timed in between.
    for (int b : {3, 50, 64, 200}) {
        const row_matrix<float> x = inn::test::random_batch(b, 37, 1).cast<float>();
        const row_matrix<float> c = inn::test::random_batch(b, 3, 2).cast<float>();
        unpacked.inverse(unpacked.forward(x, conditions(c)).z, conditions(c));
    }
    const int picks_before = nn::kernels::detail::pick_count().load();
    auto pick_packed = [&]<index_t In, index_t Out>(int batch) {
        nn::kernels::gemm_plan plans[2];
        const int n = nn::kernels::gemm_candidates<float>(In, Out, batch,
                                                          nn::kernels::gemm_pick_panels, plans);
        nn::kernels::detail::gemm_pick_slots<float, In, Out, true>::slot[std::bit_width(
            unsigned(batch))] = n + 1;
    };
    for (int b : {3, 50, 64, 200}) {
        pick_packed.template operator()<22, 45>(b);
        pick_packed.template operator()<45, 36>(b);
        pick_packed.template operator()<37, 37>(b);
    }
    for (int b : {3, 50, 200}) {
        INFO("batch " << b);
        const row_matrix<float> x = inn::test::random_batch(b, 37, 5).cast<float>();
        const row_matrix<float> c = inn::test::random_batch(b, 3, 6).cast<float>();
        for (int call = 0; call < 2; ++call) {
            auto [z, ljd] = net.forward(x, conditions(c));
            auto [zu, ljdu] = unpacked.forward(x, conditions(c));
            CHECK((z.array() == zu.array()).all());
            CHECK((ljd.array() == ljdu.array()).all());
            auto [xr, ljdr] = net.inverse(z, conditions(c));
            auto [xu, ljdru] = unpacked.inverse(z, conditions(c));
            CHECK((xr.array() == xu.array()).all());
        }
    }
    // Made at the first call: two Linear layers and two soft permutations per block; none
    // while off. (A visit marks the parameters changed: the copies are made again.)
    CHECK(copies_hold_the_weights(net) == 3 * 4);
    CHECK(packed_floats(unpacked) == 0);
    // The copies follow the weights: changed through visit, the next call reads the new ones;
    // a copied network carries its copies.
    net.visit([](const std::string&, const tensor_ref<float>& t) {
        if (t.packed)
            for (std::int64_t i = 0; i < t.shape.numel(); ++i) t.real[i] *= 0.75f;
    });
    unpacked.visit([](const std::string&, const tensor_ref<float>& t) {
        if (t.packed)
            for (std::int64_t i = 0; i < t.shape.numel(); ++i) t.real[i] *= 0.75f;
    });
    const row_matrix<float> x = inn::test::random_batch(64, 37, 7).cast<float>();
    const row_matrix<float> c = inn::test::random_batch(64, 3, 8).cast<float>();
    const auto zu = unpacked.forward(x, conditions(c)).z;
    CHECK((net.forward(x, conditions(c)).z.array() == zu.array()).all());
    CHECK(copies_hold_the_weights(net) == 3 * 4);
    Bf16Net copy = net;
    CHECK((copy.forward(x, conditions(c)).z.array() == zu.array()).all());
    // Off frees the copies at the next call; on makes them again.
    net.use_packed_weights(false);
    CHECK((net.forward(x, conditions(c)).z.array() == zu.array()).all());
    CHECK(packed_floats(net) == 0);
    net.use_packed_weights();
    CHECK((net.forward(x, conditions(c)).z.array() == zu.array()).all());
    CHECK(packed_floats(net) > 0);
    // Every product found its pick made above (the shapes and batch classes were right).
    CHECK(nn::kernels::detail::pick_count().load() == picks_before);
}

TEST_CASE("packed weights: an optimiser step repacks nothing it did not change",
          "[allinone][packed][train]") {
    // The soft permutations are fixed (not trainable): their packed copies stay valid through
    // training and are not made again at every step (12 matrices of 784 x 784 in mnist-cinn).
    // The subnets' weights carry gradients while the trainer is attached, so they have none.
    Bf16Net net(13);
    const row_matrix<float> x = inn::test::random_batch(64, 37, 3).cast<float>();
    const row_matrix<float> c = inn::test::random_batch(64, 3, 4).cast<float>();
    net.forward(x, conditions(c)); // makes the copies
    // Marks one entry of every copy through a const visit (which changes no parameter).
    auto mark = [&](float value) {
        std::as_const(net).visit([&](const std::string&, const tensor_ref<float>& t) {
            if (t.packed && !t.packed->empty())
                t.packed->data()[0] = value;
        });
    };
    // Copies whose first entry holds `value`, and how many copies there are (the first entry
    // of a copy is W[0, 0]).
    auto holding = [&](auto value_of) {
        int n = 0, copies = 0;
        std::as_const(net).visit([&](const std::string&, const tensor_ref<float>& t) {
            if (!t.packed || t.packed->empty())
                return;
            ++copies;
            n += t.packed->data()[0] == value_of(t) && !t.trainable;
        });
        return std::pair{n, copies};
    };
    auto marked = [](const tensor_ref<float>&) { return -123.f; };
    auto weight = [](const tensor_ref<float>& t) { return t.real[0]; };
    train::trainer t{net};
    train::Adam adam{net, {.lr = 0.01}};
    t.step(x, train::max_likelihood, conditions(c));
    adam.step();
    net.forward(x, conditions(c)); // prepares: Linear copies dropped, permutations' kept
    mark(-123.f);
    t.step(x, train::max_likelihood, conditions(c));
    adam.step();
    net.forward(x, conditions(c));
    // Only the six soft permutations (w_perm, w_perm_inv of three blocks) have copies, marked
    // still: not remade.
    CHECK(holding(marked) == std::pair{6, 6});
    // The network's results are those of the same parameters without packed copies.
    net.parameters_changed(); // anything may have changed: every copy is made again
    Bf16Net unpacked = net;
    unpacked.use_packed_weights(false);
    const auto ref = unpacked.forward(x, conditions(c));
    const auto got = net.forward(x, conditions(c));
    CHECK(holding(weight) == std::pair{6, 6}); // remade from the weights
    CHECK((got.z.array() == ref.z.array()).all());
    CHECK((got.log_jac_det.array() == ref.log_jac_det.array()).all());
}

// Subnets of one input with ReLU (2-d data, as the moons model's) run in the form of their ReLU
// units (nn/kernels/relu_units.hpp), which the network makes when parameters change.
struct relu_allinone {
    template <int I, int O>
    using net = nn::Sequential<nn::Linear<I, 64>, nn::ReLU, nn::Linear<64, O>>;
};
using UnitsNet =
    SequenceINN<Shape<2>, Repeat<3, AllInOneBlock<relu_allinone, opt{.permute_soft = true}>>>;

TEST_CASE("ReLU units: made with the parameters, equal to the layers to rounding, the training "
          "form in training",
          "[allinone][relu_units][train]") {
    UnitsNet net(21);
    UnitsNet::with_scalar<double> ref(21); // the same parameters, in double
    std::map<std::string, std::vector<double>> values;
    std::as_const(net).visit([&](const std::string& key, const tensor_ref<float>& t) {
        if (t.real)
            values[key].assign(t.real, t.real + t.shape.numel());
    });
    ref.visit([&](const std::string& key, const tensor_ref<double>& t) {
        if (t.real)
            std::copy(values.at(key).begin(), values.at(key).end(), t.real);
    });
    auto forms = [&] {
        const auto& n = std::as_const(net);
        return int(!n.module<0>()->subnet.units.empty()) + !n.module<1>()->subnet.units.empty() +
               !n.module<2>()->subnet.units.empty();
    };
    CHECK(forms() == 0); // made by the first call's prepare
    // Batches with whole groups of samples and a rest (one sample per lane), and one sample.
    for (index_t batch : {1, 37, 100}) {
        INFO("batch " << batch);
        const row_matrix<double> x = inn::test::random_batch(batch, 2, 5);
        const auto got = net.forward(x.cast<float>().eval());
        CHECK(forms() == 3);
        const auto want = ref.forward(x);
        CHECK(max_rel_error(got.z.cast<double>().eval(), want.z) < 2e-5);
        CHECK(max_rel_error(got.log_jac_det.cast<double>().eval(), want.log_jac_det) < 2e-5);
        const auto back = net.inverse(got.z);
        CHECK(max_rel_error(back.x.cast<double>().eval(), x) < 2e-5);
    }
    // A NaN sample stays NaN (ReLU keeps a NaN input, as PyTorch does); the others are finite.
    row_matrix<float> xn = inn::test::random_batch(20, 2, 6).cast<float>();
    xn(3, 0) = std::numeric_limits<float>::quiet_NaN();
    const auto zn = net.forward(xn).z;
    CHECK(std::isnan(zn(3, 0)));
    CHECK(std::isnan(zn(3, 1)));
    CHECK(zn.topRows(3).allFinite());
    CHECK(zn.bottomRows(16).allFinite());
    // While a trainer's gradients are attached the parameters change every step: the training
    // form (the pieces, and the exact points for the backward); without the trainer the
    // inference form again.
    const row_matrix<float> x = inn::test::random_batch(32, 2, 7).cast<float>();
    {
        train::trainer t{net};
        train::Adam adam{net, {.lr = 0.01}};
        t.step(x, train::max_likelihood);
        adam.step();
        net.forward(x);
        CHECK(forms() == 3);
        CHECK(std::as_const(net).module<1>()->subnet.units.trained());
    }
    net.forward(x);
    CHECK(forms() == 3);
    CHECK(!std::as_const(net).module<1>()->subnet.units.trained());
}

TEST_CASE("bfloat16 rounding: nearest, ties to even, Inf and NaN kept", "[allinone][bf16]") {
    using nn::kernels::from_bf16;
    using nn::kernels::to_bf16;
    CHECK(from_bf16(to_bf16(1.0f)) == 1.0f);
    // At 1 a bfloat16's ulp is 2^-7: 1 + 2^-8 is a tie.
    CHECK(from_bf16(to_bf16(1.0f + 0x1p-8f)) == 1.0f);                 // tie: to even (down)
    CHECK(from_bf16(to_bf16(1.0f + 3 * 0x1p-8f)) == 1.0f + 0x1p-6f);   // tie: to even (up)
    CHECK(from_bf16(to_bf16(1.0f + 0x1p-8f + 0x1p-20f)) == 1.0f + 0x1p-7f); // above the tie
    CHECK(from_bf16(to_bf16(-2.5f)) == -2.5f);
    CHECK(std::isinf(from_bf16(to_bf16(std::numeric_limits<float>::infinity()))));
    CHECK(std::isnan(from_bf16(to_bf16(std::numeric_limits<float>::quiet_NaN()))));
    for (float v : {0.1f, -7.3f, 1e-3f, 12345.678f}) // within half an ulp: 2^-8 relative
        CHECK(std::abs(from_bf16(to_bf16(v)) - v) <= std::abs(v) * 0x1p-8f);
}

TEST_CASE("bfloat16 weights: batches up to 6 run on the rounded weights, larger ones as before",
          "[allinone][bf16]") {
    static_assert(inn::nn::kernels::bf16_max_batch == 6);
    Bf16Net net(7); // PyTorch's init: well conditioned, so that float32 rounding stays small
    for (int b : {1, 2, 3, 7}) { // 3: a pair of samples and one alone
        INFO("batch " << b);
        const row_matrix<float> x = inn::test::random_batch(b, 37, 3).cast<float>();
        const row_matrix<float> c = inn::test::random_batch(b, 3, 4).cast<float>();
        auto [z, ljd] = net.forward(x, conditions(c));
        auto [xr, ljd_rev] = net.inverse(z, conditions(c));

        // The truth: a copy whose offered weights are rounded to bfloat16, run in float32.
        Bf16Net rounded = net;
        CHECK(round_offered_weights(rounded) == 3 * (2 + 2)); // two Linear, w_perm, w_perm_inv
        auto [zr, ljdr] = rounded.forward(x, conditions(c));
        auto [xrr, ljd_revr] = rounded.inverse(z, conditions(c));
        CHECK(max_rel_error(zr, z) > 1e-5); // rounding the weights does change the result

        net.use_bf16_weights();
        auto [zh, ljdh] = net.forward(x, conditions(c));
        auto [xh, ljd_revh] = net.inverse(z, conditions(c));
        if (b <= 6) { // equal to the rounded network's up to the order of the sums
            CHECK(max_rel_error(zh, zr) < 1e-5);
            CHECK(max_rel_error(ljdh, ljdr) < 1e-5);
            CHECK(max_rel_error(xh, xrr) < 1e-5);
            CHECK(max_rel_error(ljd_revh, ljd_revr) < 1e-5);
        } else { // compute-bound batches keep the float32 weights: the same bits
            CHECK((zh.array() == z.array()).all());
            CHECK((xh.array() == xr.array()).all());
        }
        // The copies follow the weights: changed after the switch, the next call sees them.
        Bf16Net changed = net;
        changed.visit([](const std::string&, const tensor_ref<float>& t) {
            if (t.bf16)
                for (std::int64_t i = 0; i < t.shape.numel(); ++i) t.real[i] *= 0.75f;
        });
        Bf16Net changed_rounded = changed;
        changed_rounded.use_bf16_weights(false);
        changed.use_bf16_weights();
        round_offered_weights(changed_rounded);
        if (b <= 6)
            CHECK(max_rel_error(changed.forward(x, conditions(c)).z,
                                changed_rounded.forward(x, conditions(c)).z) < 1e-5);

        net.use_bf16_weights(false); // off: the float32 weights' bits again
        auto [z2, ljd2] = net.forward(x, conditions(c));
        CHECK((z2.array() == z.array()).all());
        CHECK((ljd2.array() == ljd.array()).all());
    }
}

}  // namespace
