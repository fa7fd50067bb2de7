// FrEIA's coupling family: NICE, RNVP, GLOW, GIN,
// AffineCouplingOneSided, ConditionalAffineTransform.
//
// Every module runs in four configurations (vector/image, conditional or not, C = 5 and 7, each
// clamp activation, int and float split) through one templated check: exact inversion, inverse
// log-det = -forward, log-det = log|det J| by finite differences, per-sample independence
// (batch size 1), jac=false, condition routing, and float against double. Vector cases are
// also compared with a direct transcription of FrEIA's formulas, which pins down the split, the
// [s | t] order, which subnet reads which half and the state_dict keys.

#include <map>
#include <sstream>
#include <vector>

#include "support/checks.hpp"

#include <inn/modules/coupling.hpp>

// Everything in this file has internal linkage: test files reuse names (subnets,
// node structs) that would otherwise collide across translation units (ODR).
namespace {

namespace {

using namespace inn;
using test::max_rel_error;
using mat = row_matrix<double>;

struct fc_coupling {
    template <int I, int O>
    using net = nn::Sequential<nn::Linear<I, 16>, nn::ReLU, nn::Linear<16, O>>;
};
struct conv_coupling {
    template <int I, int O>
    using net = nn::Sequential<nn::Conv2d<I, 6, 3>, nn::ReLU, nn::Conv2d<6, O, 3>>;
};

constexpr CouplingOptions opt_atan{};
constexpr CouplingOptions opt_tanh{.clamp = 1.5, .activation = clamp_activation::tanh};
constexpr CouplingOptions opt_sigmoid{
    .clamp = 1.0, .activation = clamp_activation::sigmoid, .split_channels = 3};

template <class Subnet, CouplingOptions O>
using NICE = NICECouplingBlock<Subnet, O>;
template <class Subnet, CouplingOptions O>
using RNVP = RNVPCouplingBlock<Subnet, O>;
template <class Subnet, CouplingOptions O>
using GLOW = GLOWCouplingBlock<Subnet, O>;
template <class Subnet, CouplingOptions O>
using GIN = GINCouplingBlock<Subnet, O>;
template <class Subnet, CouplingOptions O>
using ACOS = AffineCouplingOneSided<Subnet, O>;
template <class Subnet, CouplingOptions O>
using CAT = ConditionalAffineTransform<Subnet, O>;

template <class Net>
using in_double = typename Net::template with_scalar<double>;

// ---- the four configurations of a module family ------------------------------------------------

// `Cond`: the unconditional configurations get a condition too (ConditionalAffineTransform).
template <template <class, CouplingOptions> class M, bool Cond>
struct configs {
    // (5,): split 2|3, ATAN clamp 2.
    using vec_a = in_double<SequenceINN<Shape<5>, M<fc_coupling, opt_atan>>>;
    // (5, 4, 3) images: split_channels 3 -> 3|2, SIGMOID clamp 1.
    using img_a = in_double<SequenceINN<Shape<5, 4, 3>, M<conv_coupling, opt_sigmoid>>>;
};
template <template <class, CouplingOptions> class M>
struct configs<M, true> {
    using vec_a = in_double<SequenceINN<Shape<5>, Conditions<Shape<2>>,
                              Conditioned<M<fc_coupling, opt_atan>>>>;
    using img_a = in_double<SequenceINN<Shape<5, 4, 3>, Conditions<Shape<1, 4, 3>>,
                              Conditioned<M<conv_coupling, opt_sigmoid>>>>;
};
// (7,) with a (3,) condition: split 4|3, TANH clamp 1.5.
template <template <class, CouplingOptions> class M>
using vec_b = in_double<SequenceINN<Shape<7>, Conditions<Shape<3>>,
                          Conditioned<M<fc_coupling, opt_tanh>>>>;
// (7, 3, 4) images with a (2, 3, 4) condition: split 4|3, ATAN clamp 2.
template <template <class, CouplingOptions> class M>
using img_b = in_double<SequenceINN<Shape<7, 3, 4>, Conditions<Shape<2, 3, 4>>,
                          Conditioned<M<conv_coupling, opt_atan>>>>;

// ---- running with or without a condition ------------------------------------------------------

template <class Net, class X, class C>
auto fwd(Net& net, const X& x, const C& c, bool jac = true) {
    if constexpr (Net::n_conditions == 0)
        return net.forward(x, jac);
    else
        return net.forward(x, conditions(c), jac);
}
template <class Net, class X, class C>
auto inv(Net& net, const X& z, const C& c) {
    if constexpr (Net::n_conditions == 0)
        return net.inverse(z);
    else
        return net.inverse(z, conditions(c));
}

template <class Net>
mat random_condition(Eigen::Index batch, unsigned seed) {
    if constexpr (Net::n_conditions == 0)
        return mat();
    else
        return test::random_batch(batch, Net::condition_dims(0).size(), seed);
}

double max_abs(const Eigen::VectorXd& v) { return v.cwiseAbs().maxCoeff(); }

template <class From, class To>
void copy_parameters(From& from, To& to) {
    std::vector<std::vector<double>> values;
    from.visit([&](const std::string&, const tensor_ref<double>& t) {
        values.emplace_back(t.real, t.real + t.shape.numel());
    });
    std::size_t i = 0;
    to.visit([&](const std::string&, const tensor_ref<typename To::scalar>& t) {
        REQUIRE(i < values.size());
        for (std::int64_t k = 0; k < t.shape.numel(); ++k)
            t.real[k] = typename To::scalar(values[i][std::size_t(k)]);
        ++i;
    });
    REQUIRE(i == values.size());
}

/// Everything checked of one double network: see the file comment.
template <class Net>
void check_network(unsigned seed, bool has_log_det) {
    const Eigen::Index batch = 7, n = Net::input_dims().size();
    Net net(seed);
    const mat x = test::random_batch(batch, n, seed + 1);
    const mat c = random_condition<Net>(batch, seed + 2);

    auto f = fwd(net, x, c);
    auto r = inv(net, f.z, c);
    CHECK(max_rel_error(r.x, x) < 1e-12);
    CHECK(max_abs(f.log_jac_det + r.log_jac_det) <= 1e-12 * (1 + max_abs(f.log_jac_det)));
    CHECK(max_rel_error(f.z, x) > 1e-3);  // not the identity

    // jac = false: the same output (same buffers, so bit for bit), no log-det.
    auto nj = fwd(net, x, c, false);
    CHECK(max_rel_error(nj.z, f.z) == 0.0);
    CHECK(max_abs(nj.log_jac_det) == 0.0);

    // log|det J| from central differences.
    Eigen::VectorXd numerical;
    if constexpr (Net::n_conditions == 0)
        numerical = test::numerical_log_det(net, x);
    else
        numerical = test::numerical_log_det(net, x, conditions(c));
    CHECK(max_abs(numerical - f.log_jac_det) < 1e-6);
    if (has_log_det) {
        CHECK(max_abs(f.log_jac_det) > 1e-3);
    } else {
        CHECK(max_abs(f.log_jac_det) == 0.0);  // NICE, GIN: volume preserving
    }

    // Samples are independent: each row alone (batch size 1) gives its row of the batch. A fresh
    // network first run with batch 1 also covers buffers sized for one sample.
    Net single(seed);
    for (Eigen::Index b = 0; b < batch; ++b) {
        const mat xb = x.row(b), cb = Net::n_conditions ? mat(c.row(b)) : mat();
        auto fb = fwd(single, xb, cb);
        CHECK(max_rel_error(fb.z, mat(f.z.row(b))) < 1e-14);
        CHECK(std::abs(fb.log_jac_det(0) - f.log_jac_det(b)) < 1e-12);
        auto rb = inv(single, fb.z, cb);
        CHECK(max_rel_error(rb.x, xb) < 1e-12);
    }

    if constexpr (Net::n_conditions > 0) {
        // The condition reaches the subnets: another one changes z, and the inverse needs it.
        const mat c2 = random_condition<Net>(batch, seed + 3);
        auto f2 = fwd(net, x, c2);
        CHECK(max_rel_error(f2.z, f.z) > 1e-3);
        auto r2 = inv(net, f.z, c2);
        CHECK(max_rel_error(r2.x, x) > 1e-3);
    }
}

/// The same network in float (parameters copied from double): invertible to float precision and
/// close to the double results.
template <class NetD>
void check_float(unsigned seed) {
    using NetF = typename NetD::template with_scalar<float>;
    using matf = row_matrix<float>;
    NetD nd(seed);
    NetF nf(0);
    copy_parameters(nd, nf);
    const mat x = test::random_batch(5, NetD::input_dims().size(), seed + 1);
    const mat c = random_condition<NetD>(5, seed + 2);
    const matf xf = x.cast<float>(), cf = c.cast<float>();

    auto fd = fwd(nd, x, c);
    auto ff = fwd(nf, xf, cf);
    CHECK(max_rel_error(ff.z, fd.z) < 1e-4);
    CHECK(max_rel_error(ff.log_jac_det, fd.log_jac_det) < 1e-4);
    auto rf = inv(nf, ff.z, cf);
    CHECK(max_rel_error(rf.x, xf) < 1e-5);
    CHECK(max_rel_error(rf.log_jac_det, (-ff.log_jac_det).eval()) < 1e-5);
}

template <template <class, CouplingOptions> class M, bool Cond = false>
void check_family(bool has_log_det) {
    using C = configs<M, Cond>;
    SECTION("vector 5 split 2|3 ATAN") { check_network<typename C::vec_a>(11, has_log_det); }
    SECTION("vector 7 conditional split 4|3 TANH") {
        check_network<vec_b<M>>(12, has_log_det);
    }
    SECTION("image 5x4x3 split_channels 3 SIGMOID") {
        check_network<typename C::img_a>(13, has_log_det);
    }
    SECTION("image 7x3x4 conditional split 4|3 ATAN") {
        check_network<img_b<M>>(14, has_log_det);
    }
    SECTION("float vector") { check_float<typename C::vec_a>(15); }
    SECTION("float image conditional") { check_float<img_b<M>>(16); }
}

// ---- FrEIA's formulas, transcribed ------------------------------------------------------------

enum class kind { nice, rnvp, glow, gin, acos, cat };

struct params {
    std::map<std::string, mat> t;
    std::vector<std::string> keys;

    template <class Net>
    explicit params(Net& net) {
        net.visit([&](const std::string& k, const tensor_ref<double>& r) {
            keys.push_back(k + " " + to_string(r.shape));
            const Eigen::Index rows = r.shape.extent[0];
            const Eigen::Index cols = r.shape.rank == 2 ? r.shape.extent[1] : 1;
            t[k] = Eigen::Map<const mat>(r.real, rows, cols);
        });
    }
    // fc_coupling subnet: Linear, ReLU, Linear.
    Eigen::VectorXd mlp(const std::string& p, const Eigen::VectorXd& u) const {
        Eigen::VectorXd h = t.at(p + "0.weight") * u + t.at(p + "0.bias");
        h = h.cwiseMax(0.0);
        return t.at(p + "2.weight") * h + t.at(p + "2.bias");
    }
};

Eigen::VectorXd cat(const Eigen::VectorXd& a, const Eigen::VectorXd& b) {
    Eigen::VectorXd r(a.size() + b.size());
    r << a, b;
    return r;
}

Eigen::VectorXd clamp(const Eigen::VectorXd& raw, const CouplingOptions& o) {
    Eigen::VectorXd s(raw.size());
    for (Eigen::Index i = 0; i < raw.size(); ++i) {
        const double u = raw(i);
        double g = 2.0 * (1 / (1 + std::exp(-u)) - 0.5);  // SIGMOID
        if (o.activation == clamp_activation::atan) g = 0.636 * std::atan(u);
        if (o.activation == clamp_activation::tanh) g = std::tanh(u);
        s(i) = o.clamp * g;
    }
    return s;
}

using vec = Eigen::VectorXd;

/// One sample through FrEIA's module (state_dict prefix `m`): z and log|det J|.
std::pair<vec, double> reference(kind k, const params& p, const std::string& m,
                                 const CouplingOptions& o, int len1, const vec& x, const vec& c) {
    const int C = int(x.size()), len2 = C - len1;
    const vec x1 = x.head(len1), x2 = x.tail(len2);
    auto affine = [&](const vec& xa, const vec& s, const vec& t) {
        return vec(s.array().exp() * xa.array() + t.array());
    };
    auto centred = [](Eigen::VectorXd s) { return Eigen::VectorXd(s.array() - s.mean()); };
    switch (k) {
        case kind::nice: {
            Eigen::VectorXd y1 = x1 + p.mlp(m + "F.", cat(x2, c));
            Eigen::VectorXd y2 = x2 + p.mlp(m + "G.", cat(y1, c));
            return {cat(y1, y2), 0.0};
        }
        case kind::rnvp: {
            Eigen::VectorXd u = cat(x2, c);
            Eigen::VectorXd s2 = clamp(p.mlp(m + "subnet_s2.", u), o);
            Eigen::VectorXd y1 = affine(x1, s2, p.mlp(m + "subnet_t2.", u));
            u = cat(y1, c);
            Eigen::VectorXd s1 = clamp(p.mlp(m + "subnet_s1.", u), o);
            Eigen::VectorXd y2 = affine(x2, s1, p.mlp(m + "subnet_t1.", u));
            return {cat(y1, y2), s2.sum() + s1.sum()};
        }
        case kind::glow:
        case kind::gin: {
            const bool gin = k == kind::gin;
            Eigen::VectorXd a = p.mlp(m + "subnet2.", cat(x2, c));
            Eigen::VectorXd s2 = clamp(a.head(len1), o);
            if (gin) s2 = centred(s2);
            Eigen::VectorXd y1 = affine(x1, s2, a.tail(len1));
            a = p.mlp(m + "subnet1.", cat(y1, c));
            Eigen::VectorXd s1 = clamp(a.head(len2), o);
            if (gin) s1 = centred(s1);
            Eigen::VectorXd y2 = affine(x2, s1, a.tail(len2));
            return {cat(y1, y2), gin ? 0.0 : s2.sum() + s1.sum()};
        }
        case kind::acos: {
            Eigen::VectorXd a = p.mlp(m + "subnet.", cat(x1, c));
            Eigen::VectorXd s = clamp(a.head(len2), o);
            return {cat(x1, affine(x2, s, a.tail(len2))), s.sum()};
        }
        default: {  // cat
            Eigen::VectorXd a = p.mlp(m + "subnet.", c);
            Eigen::VectorXd s = clamp(a.head(C), o);
            return {affine(x, s, a.tail(C)), s.sum()};
        }
    }
}

template <class Net>
void check_reference(kind k, const CouplingOptions& o, int len1,
                     const std::vector<std::string>& expected_keys) {
    Net net(21);
    const params p(net);
    CHECK(p.keys == expected_keys);
    const mat x = test::random_batch(4, Net::input_dims().size(), 22);
    const mat c = random_condition<Net>(4, 23);
    auto f = fwd(net, x, c);
    for (Eigen::Index b = 0; b < x.rows(); ++b) {
        const Eigen::VectorXd cb = Net::n_conditions ? Eigen::VectorXd(c.row(b).transpose())
                                                     : Eigen::VectorXd();
        auto [z, ljd] = reference(k, p, "module_list.0.", o, len1, x.row(b).transpose(), cb);
        CHECK(max_rel_error(f.z.row(b), z.transpose()) < 1e-13);
        CHECK(std::abs(f.log_jac_det(b) - ljd) < 1e-13);
    }
}

std::vector<std::string> keys(std::initializer_list<std::string> subnets_and_shapes) {
    // "name in out" -> the four entries of an fc_coupling subnet (hidden width 16).
    std::vector<std::string> r;
    for (const std::string& s : subnets_and_shapes) {
        std::istringstream is(s);
        std::string name;
        int in = 0, out = 0;
        is >> name >> in >> out;
        const std::string p = "module_list.0." + name + ".";
        r.push_back(p + "0.weight [16, " + std::to_string(in) + "]");
        r.push_back(p + "0.bias [16]");
        r.push_back(p + "2.weight [" + std::to_string(out) + ", 16]");
        r.push_back(p + "2.bias [" + std::to_string(out) + "]");
    }
    return r;
}

}  // namespace

// ---- options, split rule, shape errors ----------------------------------------------------------

TEST_CASE("CouplingOptions: split rule, soft clamp and shape errors", "[coupling]") {
    // Round half to even of C * split_len (docs/freia-semantics.md#channel-splits).
    static_assert(coupling_split_len1(5, {}) == 2 && coupling_split_len1(7, {}) == 4);
    static_assert(coupling_split_len1(3, {}) == 2 && coupling_split_len1(9, {}) == 4);
    static_assert(coupling_split_len1(11, {}) == 6 && coupling_split_len1(45, {}) == 22);
    static_assert(coupling_split_len1(5, {.split_len = 0.3}) == 2);  // 1.5 -> 2
    static_assert(coupling_split_len1(5, {.split_len = 0.1}) == 0);  // 0.5 -> 0
    static_assert(coupling_split_len1(5, {.split_len = 0.5, .split_channels = 1}) == 1);
    static_assert(detail::coupling_layout<signature{make_ports({make_dims({7, 3, 4})}), {}},
                                          CouplingOptions{}>::len2 == 3);

    // ATAN uses 0.636 literally; g first, then the clamp factor. The references call libm at run
    // time (volatile arguments): a constant argument would be folded by the compiler with
    // correct rounding, which libm need not match to the last bit.
    volatile double one = 1.0, u = 0.7;
    volatile float one_f = 1.0f;
    CHECK(soft_clamp(1.0, 2.0, clamp_activation::atan) == 2.0 * (0.636 * std::atan(double(one))));
    CHECK(soft_clamp(1.0f, 1.5, clamp_activation::atan) ==
          1.5f * (0.636f * std::atan(float(one_f))));
    CHECK(soft_clamp(0.7, 1.5, clamp_activation::tanh) ==
          Approx(1.5 * std::tanh(double(u))).epsilon(1e-15));
    CHECK(soft_clamp(0.7, 1.0, clamp_activation::sigmoid) ==
          Approx(2.0 * (1 / (1 + std::exp(-0.7)) - 0.5)).epsilon(1e-15));
    CHECK(soft_clamp(0.0, 2.0, clamp_activation::sigmoid) == 0.0);

    const signature vec5{make_ports({make_dims({5})}), {}};
    const signature vec1{make_ports({make_dims({1})}), {}};
    const signature img{make_ports({make_dims({4, 8, 8})}),
                        make_ports({make_dims({2, 8, 8}), make_dims({1, 4, 4})})};
    const signature two{make_ports({make_dims({4}), make_dims({4})}), {}};
    using G = GLOWCouplingBlock<fc_coupling>;
    CHECK(G::output_shapes(vec5).ok());
    CHECK(G::output_shapes(vec5).outputs == make_ports({make_dims({5})}));
    CHECK(G::output_shapes(vec1).error == shape_error::too_few_channels);
    CHECK(G::output_shapes(two).error == shape_error::wrong_input_count);
    const shape_result mismatch = G::output_shapes(img);
    CHECK(mismatch.error == shape_error::condition_spatial_mismatch);
    CHECK(mismatch.port_b == 1);
    CHECK(GLOWCouplingBlock<fc_coupling, {.split_len = 1.5}>::output_shapes(vec5).error ==
          shape_error::invalid_option);
    CHECK(GLOWCouplingBlock<fc_coupling, {.split_len = -0.1}>::output_shapes(vec5).error ==
          shape_error::invalid_option);
    CHECK(GLOWCouplingBlock<fc_coupling, {.split_channels = 6}>::output_shapes(vec5).error ==
          shape_error::invalid_option);
    CHECK(GLOWCouplingBlock<fc_coupling, {.split_channels = 5}>::output_shapes(vec5).error ==
          shape_error::invalid_option);  // an empty second part
    CHECK(RNVPCouplingBlock<fc_coupling, {.split_len = 0.0}>::output_shapes(vec5).error ==
          shape_error::invalid_option);  // an empty first part
    CHECK(NICECouplingBlock<fc_coupling>::output_shapes(vec1).error == shape_error::too_few_channels);
    CHECK(AffineCouplingOneSided<fc_coupling>::output_shapes(vec1).error == shape_error::too_few_channels);

    // ConditionalAffineTransform: a condition is required; nothing is split, so C = 1 is fine.
    using CA = ConditionalAffineTransform<fc_coupling>;
    CHECK(CA::output_shapes(vec5).error == shape_error::condition_required);
    const signature vec1c{make_ports({make_dims({1})}), make_ports({make_dims({3})})};
    CHECK(CA::output_shapes(vec1c).ok());
    CHECK(ConditionalAffineTransform<fc_coupling, {.split_len = 2.0}>::output_shapes(vec1c).error ==
          shape_error::invalid_option);
    CHECK(CA::output_shapes(img).error == shape_error::condition_spatial_mismatch);

    CHECK(module_name<G>() == "GLOWCouplingBlock");
    CHECK(module_name<CA>() == "ConditionalAffineTransform");
}

// ---- per module ------------------------------------------------------------------------------

TEST_CASE("NICECouplingBlock: round trip and log-det", "[coupling]") {
    check_family<NICE>(false);
}
TEST_CASE("NICECouplingBlock: FrEIA formulas and state_dict keys", "[coupling]") {
    check_reference<configs<NICE, false>::vec_a>(kind::nice, opt_atan, 2, keys({"F 3 2", "G 2 3"}));
    check_reference<vec_b<NICE>>(kind::nice, opt_tanh, 4, keys({"F 6 4", "G 7 3"}));
}

TEST_CASE("RNVPCouplingBlock: round trip and log-det", "[coupling]") {
    check_family<RNVP>(true);
}
TEST_CASE("RNVPCouplingBlock: FrEIA formulas and state_dict keys", "[coupling]") {
    check_reference<configs<RNVP, false>::vec_a>(
        kind::rnvp, opt_atan, 2,
        keys({"subnet_s1 2 3", "subnet_t1 2 3", "subnet_s2 3 2", "subnet_t2 3 2"}));
    check_reference<vec_b<RNVP>>(
        kind::rnvp, opt_tanh, 4,
        keys({"subnet_s1 7 3", "subnet_t1 7 3", "subnet_s2 6 4", "subnet_t2 6 4"}));
}

TEST_CASE("GLOWCouplingBlock: round trip and log-det", "[coupling]") {
    check_family<GLOW>(true);
}
TEST_CASE("GLOWCouplingBlock: FrEIA formulas and state_dict keys", "[coupling]") {
    check_reference<configs<GLOW, false>::vec_a>(kind::glow, opt_atan, 2,
                                                 keys({"subnet1 2 6", "subnet2 3 4"}));
    check_reference<vec_b<GLOW>>(kind::glow, opt_tanh, 4, keys({"subnet1 7 6", "subnet2 6 8"}));
}

TEST_CASE("GINCouplingBlock: round trip and log-det", "[coupling]") {
    check_family<GIN>(false);
}
TEST_CASE("GINCouplingBlock: FrEIA formulas and state_dict keys", "[coupling]") {
    check_reference<configs<GIN, false>::vec_a>(kind::gin, opt_atan, 2,
                                                keys({"subnet1 2 6", "subnet2 3 4"}));
    check_reference<vec_b<GIN>>(kind::gin, opt_tanh, 4, keys({"subnet1 7 6", "subnet2 6 8"}));
}

TEST_CASE("AffineCouplingOneSided: round trip and log-det", "[coupling]") {
    check_family<ACOS>(true);
}
TEST_CASE("AffineCouplingOneSided: FrEIA formulas and state_dict keys", "[coupling]") {
    check_reference<configs<ACOS, false>::vec_a>(kind::acos, opt_atan, 2, keys({"subnet 2 6"}));
    check_reference<vec_b<ACOS>>(kind::acos, opt_tanh, 4, keys({"subnet 7 6"}));
}

TEST_CASE("ConditionalAffineTransform: round trip and log-det", "[coupling]") {
    check_family<CAT, true>(true);
}
TEST_CASE("ConditionalAffineTransform: FrEIA formulas and state_dict keys", "[coupling]") {
    check_reference<configs<CAT, true>::vec_a>(kind::cat, opt_atan, 2, keys({"subnet 2 10"}));
    check_reference<vec_b<CAT>>(kind::cat, opt_tanh, 4, keys({"subnet 3 14"}));
}

// ---- several conditions: cat(data, c_0, c_1) in the node's order -------------------------------

namespace {
struct gx : InputNode<Shape<5>> {};
struct gc0 : ConditionNode<Shape<2>> {};
struct gc1 : ConditionNode<Shape<3>> {};
struct gcat : Node<CAT<fc_coupling, opt_tanh>, gx, conditions<gc1, gc0>> {};
struct gglow : Node<GLOW<fc_coupling, opt_atan>, gcat, conditions<gc0, gc1>> {};
struct gz : OutputNode<gglow> {};
using two_conditions = GraphINN<gx, gc0, gc1, gcat, gglow, gz>::with_scalar<double>;
}  // namespace

TEST_CASE("GLOWCouplingBlock: several conditions are concatenated in order (graph)", "[coupling]") {
    two_conditions net(31);
    const params p(net);
    CHECK(p.t.at("module_list.0.subnet.0.weight").cols() == 5);  // CAT: 3 + 2 condition channels
    CHECK(p.t.at("module_list.1.subnet1.0.weight").cols() == 2 + 5);
    const mat x = test::random_batch(3, 5, 32), c0 = test::random_batch(3, 2, 33),
              c1 = test::random_batch(3, 3, 34);
    auto f = net.forward(x, conditions(c0, c1));
    auto r = net.inverse(f.z, conditions(c0, c1));
    CHECK(max_rel_error(r.x, x) < 1e-12);
    CHECK(max_abs(f.log_jac_det + r.log_jac_det) < 1e-12);

    // The graph's modules one after the other, by FrEIA's formulas.
    for (Eigen::Index b = 0; b < x.rows(); ++b) {
        const vec v0 = c0.row(b).transpose(), v1 = c1.row(b).transpose();
        const vec xb = x.row(b).transpose();
        auto [h, l1] = reference(kind::cat, p, "module_list.0.", opt_tanh, 0, xb, cat(v1, v0));
        auto [z, l2] = reference(kind::glow, p, "module_list.1.", opt_atan, 2, h, cat(v0, v1));
        CHECK(max_rel_error(f.z.row(b), z.transpose()) < 1e-13);
        CHECK(std::abs(f.log_jac_det(b) - (l1 + l2)) < 1e-12);
    }
    CHECK(max_abs(test::numerical_log_det(net, x, conditions(c0, c1)) - f.log_jac_det) < 1e-6);
}

}  // namespace
