// FeedForwardNode (FrEIA's non-invertible helper node): a condition computed through an ordinary
// network, in both directions. Independent truths: the features computed by hand from the
// node's own weights and fed to a copy of the network as a plain condition, exact inverses,
// finite-difference log-dets, FrEIA's module numbering and state_dict keys, the planner's
// inverse order worked out by hand.

#include "support/checks.hpp"

#include <cmath>
#include <map>
#include <string>
#include <vector>

#include <inn/modules/all_in_one_block.hpp>
#include <inn/modules/concat.hpp>
#include <inn/modules/coupling/glow.hpp>
#include <inn/modules/split.hpp>

// Everything in this file has internal linkage: test files reuse names (subnets,
// node structs) that would otherwise collide across translation units (ODR).
namespace {

using namespace inn;

struct subnet_ff {
    template <int I, int O>
    using net = nn::Sequential<nn::Linear<I, 16>, nn::Tanh, nn::Linear<16, O>>;
};

// ---- helpers: tensors by key, and the layers computed by hand -------------------------------

struct tensors {
    std::map<std::string, std::vector<double>> real;
    std::map<std::string, std::vector<std::int64_t>> integer;
};

template <class Net>
tensors state_of(const Net& net) {
    tensors t;
    net.visit([&](const std::string& k, const tensor_ref<double>& r) {
        const auto n = std::size_t(r.shape.numel());
        if (r.real) t.real[k].assign(r.real, r.real + n);
        if (r.integer) t.integer[k].assign(r.integer, r.integer + n);
    });
    return t;
}

/// Writes the tensors of `from` under prefix `from_prefix` into `net`'s tensors under
/// `to_prefix` (the same module under another module_list index).
template <class Net>
void copy_module(const tensors& from, const std::string& from_prefix, Net& net,
                 const std::string& to_prefix) {
    int copied = 0;
    net.visit([&](const std::string& k, const tensor_ref<double>& r) {
        if (k.rfind(to_prefix, 0) != 0) return;
        const std::string key = from_prefix + k.substr(to_prefix.size());
        if (r.real) {
            const auto& v = from.real.at(key);
            std::copy(v.begin(), v.end(), r.real);
        }
        if (r.integer) {
            const auto& v = from.integer.at(key);
            std::copy(v.begin(), v.end(), r.integer);
        }
        ++copied;
    });
    REQUIRE(copied > 0);
}

/// y = W x + b per sample (PyTorch's Linear; W is out x in, row-major), then an activation.
row_matrix<double> linear(const tensors& t, const std::string& prefix, const row_matrix<double>& x,
                          bool apply_tanh = false) {
    const auto& w = t.real.at(prefix + "weight");
    const auto& b = t.real.at(prefix + "bias");
    const Eigen::Index out = Eigen::Index(b.size()), in = x.cols();
    REQUIRE(Eigen::Index(w.size()) == out * in);
    row_matrix<double> y(x.rows(), out);
    for (Eigen::Index s = 0; s < x.rows(); ++s)
        for (Eigen::Index o = 0; o < out; ++o) {
            double v = b[std::size_t(o)];
            for (Eigen::Index i = 0; i < in; ++i) v += w[std::size_t(o * in + i)] * x(s, i);
            y(s, o) = apply_tanh ? std::tanh(v) : v;
        }
    return y;
}

// ---- a FeedForwardNode on a ConditionNode, read by two couplings -----------------------------

namespace from_condition {
using features = nn::Sequential<nn::Linear<4, 12>, nn::Tanh, nn::Linear<12, 3>>;
struct x : InputNode<Shape<6>> {};
struct c : ConditionNode<Shape<4>> {};
struct feat : FeedForwardNode<features, conditions<c>> {};
struct glow : Node<GLOWCouplingBlock<subnet_ff>, x, conditions<feat>> {};
struct aio : Node<AllInOneBlock<subnet_ff>, glow, conditions<feat>> {};
struct z : OutputNode<aio> {};
using Net = GraphINN<x, c, feat, glow, aio, z>::with_scalar<double>;

// The same couplings, conditioned on the features directly.
struct f : ConditionNode<Shape<3>> {};
struct glow_f : Node<GLOWCouplingBlock<subnet_ff>, x, conditions<f>> {};
struct aio_f : Node<AllInOneBlock<subnet_ff>, glow_f, conditions<f>> {};
struct z_f : OutputNode<aio_f> {};
using Fed = GraphINN<x, f, glow_f, aio_f, z_f>::with_scalar<double>;
}  // namespace from_condition

TEST_CASE("feed-forward: a condition computed from a condition, checked by hand",
          "[graph][feed_forward]") {
    using namespace from_condition;
    static_assert(Net::output_shape<feat> == Shape<3>{});  // inferred from the layers
    static_assert(Net::n_modules == 3 && Net::n_conditions == 1 && Net::n_inputs == 1);
    Net net(11);
    const auto xs = test::random_batch(7, 6, 1), cs = test::random_batch(7, 4, 2);
    auto [z_net, ljd] = net.forward(xs, conditions(cs));

    // The features by hand, from the node's own weights (module_list.0: the feed-forward
    // node runs first), fed as a plain condition to the same couplings.
    const tensors t = state_of(net);
    const row_matrix<double> hidden = linear(t, "module_list.0.0.", cs, /*apply_tanh=*/true);
    const row_matrix<double> fs = linear(t, "module_list.0.2.", hidden);
    Fed fed(0);
    copy_module(t, "module_list.1.", fed, "module_list.0.");
    copy_module(t, "module_list.2.", fed, "module_list.1.");
    auto [z_fed, ljd_fed] = fed.forward(xs, conditions(fs));
    CHECK(test::max_rel_error(z_net, z_fed) < 1e-12);
    // The feed-forward node adds nothing to the log-det.
    CHECK(test::max_rel_error(ljd.transpose(), ljd_fed.transpose()) < 1e-12);
    CHECK(test::max_rel_error(ljd.transpose(),
                              test::numerical_log_det(net, xs, conditions(cs)).transpose()) < 1e-6);

    // Inverse: the node runs again, before the couplings that read it.
    auto [x_rev, ljd_rev] = net.inverse(z_net, conditions(cs));
    CHECK(test::max_rel_error(x_rev, xs) < 1e-12);
    CHECK((ljd + ljd_rev).cwiseAbs().maxCoeff() < 1e-12);
    // So does the inverse as a network of its own.
    inverse_t<Net> sampler(net);
    auto [x_s, ljd_s] = sampler.forward(z_net, conditions(cs));
    CHECK(test::max_rel_error(x_s, xs) < 1e-12);

    // The condition matters through the node.
    auto [z2, ljd2] = net.forward(xs, conditions(row_matrix<double>(cs * 2)));
    CHECK((z2 - z_net).cwiseAbs().maxCoeff() > 1e-3);
    // jac = false: the same outputs.
    auto [z3, ljd3] = net.forward(xs, conditions(cs), false);
    CHECK(test::max_rel_error(z3, z_net) == 0);
}

TEST_CASE("feed-forward: module numbering, state_dict keys and summary as FrEIA's",
          "[graph][feed_forward]") {
    using namespace from_condition;
    Net net(2);
    // FrEIA's module_list holds the modules of Nodes and FeedForwardNodes in forward order; an
    // nn.Sequential's own keys follow the index directly.
    CHECK(Net::module_node_name(0) == "feat");
    CHECK(Net::module_node_name(1) == "glow");
    CHECK(Net::module_node_name(2) == "aio");
    std::vector<std::string> keys;
    net.visit([&](const std::string& k, const tensor_ref<double>&) { keys.push_back(k); });
    REQUIRE(keys.size() > 4);
    CHECK(std::vector<std::string>(keys.begin(), keys.begin() + 4) ==
          std::vector<std::string>{"module_list.0.0.weight", "module_list.0.0.bias",
                                   "module_list.0.2.weight", "module_list.0.2.bias"});
    CHECK(std::find(keys.begin(), keys.end(), "module_list.1.subnet1.0.weight") != keys.end());
    CHECK(std::find(keys.begin(), keys.end(), "module_list.2.global_scale") != keys.end());
    // Its own prefix can be set like any module's.
    net.set_state_dict_prefix<feat>("cond_net");
    CHECK(state_of(net).real.count("cond_net.2.bias") == 1);

    const int ff_params = (4 * 12 + 12) + (12 * 3 + 3);
    const std::string s = net.summary();
    INFO(s);
    CHECK(s.find("3 module(s)") != std::string::npos);
    CHECK(s.find("feat: feed-forward [(4,)] -> [(3,)]  params " + std::to_string(ff_params)) !=
          std::string::npos);
    CHECK(s.find("glow: [(6,)] -> [(6,)] | conditions [(3,)]") != std::string::npos);
    // The inverse runs the node first as well.
    const std::string r = inverse_t<Net>(net).summary();
    CHECK(r.find("feat: feed-forward") < r.find("aio:"));
    CHECK(r.find("aio:") < r.find("glow:"));
}

// ---- a FeedForwardNode on a tensor inside the graph ------------------------------------------

namespace from_tensor {
// The split's second half conditions the coupling on the first half through a small network. In
// the inverse, that half is what the Concat's inverse produces, so the node runs after it.
struct x : InputNode<Shape<8>> {};
struct split : Node<Split<>, x> {};
struct feat : FeedForwardNode<nn::Sequential<nn::Linear<4, 8>, nn::ReLU, nn::Linear<8, 2>>,
                              out<split, 1>> {};
struct coupling : Node<GLOWCouplingBlock<subnet_ff>, out<split, 0>, conditions<feat>> {};
struct join : Node<Concat<>, inputs<coupling, out<split, 1>>> {};
struct z : OutputNode<join> {};
using Net = GraphINN<x, split, feat, coupling, join, z>::with_scalar<double>;
}  // namespace from_tensor

TEST_CASE("feed-forward: a condition computed from a tensor of the graph, in both directions",
          "[graph][feed_forward]") {
    using namespace from_tensor;
    using D = Net::description;
    // Nodes: x 0, split 1, feat 2, coupling 3, join 4, z 5. Forward: split, feat, coupling,
    // join. Inverse: join (gives back the split's halves), feat (reads the second half),
    // coupling (reads feat), split.
    static_assert(D::plan.forward_order[0] == 1 && D::plan.forward_order[1] == 2 &&
                  D::plan.forward_order[2] == 3 && D::plan.forward_order[3] == 4);
    static_assert(D::plan.inverse_order[0] == 4 && D::plan.inverse_order[1] == 2 &&
                  D::plan.inverse_order[2] == 3 && D::plan.inverse_order[3] == 1);
    Net net(5);
    const auto xs = test::random_batch(6, 8, 3);
    auto [zs, ljd] = net.forward(xs);
    auto [x_rev, ljd_rev] = net.inverse(zs);
    CHECK(test::max_rel_error(x_rev, xs) < 1e-12);
    CHECK((ljd + ljd_rev).cwiseAbs().maxCoeff() < 1e-12);
    CHECK(test::max_rel_error(ljd.transpose(), test::numerical_log_det(net, xs).transpose()) <
          1e-6);
    // The conditioning half passes through; the coupled half changed.
    CHECK(test::max_rel_error(zs.rightCols(4), xs.rightCols(4)) == 0);
    CHECK((zs.leftCols(4) - xs.leftCols(4)).cwiseAbs().maxCoeff() > 1e-3);
}

// ---- two sources (concatenated along channels), and one node reading another ----------------

namespace two_sources {
struct subnet_conv {
    template <int I, int O>
    using net = nn::Sequential<nn::Conv2d<I, 8, 1, 0>, nn::Tanh, nn::Conv2d<8, O, 1, 0>>;
};
struct x : InputNode<Shape<2, 2, 2>> {};
struct c1 : ConditionNode<Shape<1, 2, 2>> {};
struct c2 : ConditionNode<Shape<2, 2, 2>> {};
struct feat1 : FeedForwardNode<nn::Conv2d<3, 2, 1, 0>, conditions<c1, c2>> {};
struct feat2 : FeedForwardNode<nn::Sequential<nn::Conv2d<2, 2, 1, 0>, nn::Tanh>, feat1> {};
struct glow : Node<GLOWCouplingBlock<subnet_conv>, x, conditions<feat1, feat2>> {};
struct z : OutputNode<glow> {};
using Net = GraphINN<x, c1, c2, feat1, feat2, glow, z>::with_scalar<double>;

struct f1 : ConditionNode<Shape<2, 2, 2>> {};
struct f2 : ConditionNode<Shape<2, 2, 2>> {};
struct glow_f : Node<GLOWCouplingBlock<subnet_conv>, x, conditions<f1, f2>> {};
struct z_f : OutputNode<glow_f> {};
using Fed = GraphINN<x, f1, f2, glow_f, z_f>::with_scalar<double>;
}  // namespace two_sources

/// A 1x1 convolution per sample (channels first): out[o][p] = sum_i W[o][i] in[i][p] + b[o].
row_matrix<double> conv1x1(const tensors& t, const std::string& prefix,
                           const row_matrix<double>& x, int pixels, bool apply_tanh = false) {
    const auto& w = t.real.at(prefix + "weight");
    const auto& b = t.real.at(prefix + "bias");
    const int out = int(b.size()), in = int(x.cols()) / pixels;
    row_matrix<double> y(x.rows(), out * pixels);
    for (Eigen::Index s = 0; s < x.rows(); ++s)
        for (int o = 0; o < out; ++o)
            for (int p = 0; p < pixels; ++p) {
                double v = b[std::size_t(o)];
                for (int i = 0; i < in; ++i) v += w[std::size_t(o * in + i)] * x(s, i * pixels + p);
                y(s, o * pixels + p) = apply_tanh ? std::tanh(v) : v;
            }
    return y;
}

TEST_CASE("feed-forward: several sources, and a node reading another", "[graph][feed_forward]") {
    using namespace two_sources;
    static_assert(Net::n_modules == 3);
    Net net(4);
    const auto xs = test::random_batch(5, 8, 1);
    const auto c1s = test::random_batch(5, 4, 2), c2s = test::random_batch(5, 8, 3);
    auto [z_net, ljd] = net.forward(xs, conditions(c1s, c2s));

    // By hand: [c1, c2] along channels is each sample's c1 values, then its c2 values.
    const tensors t = state_of(net);
    row_matrix<double> joined(5, 12);
    joined << c1s, c2s;
    const row_matrix<double> f1s = conv1x1(t, "module_list.0.", joined, 4);
    const row_matrix<double> f2s = conv1x1(t, "module_list.1.0.", f1s, 4, true);
    Fed fed(0);
    copy_module(t, "module_list.2.", fed, "module_list.0.");
    auto [z_fed, ljd_fed] = fed.forward(xs, conditions(f1s, f2s));
    CHECK(test::max_rel_error(z_net, z_fed) < 1e-12);
    CHECK(test::max_rel_error(ljd.transpose(), ljd_fed.transpose()) < 1e-12);

    auto [x_rev, ljd_rev] = net.inverse(z_net, conditions(c1s, c2s));
    CHECK(test::max_rel_error(x_rev, xs) < 1e-12);
    CHECK((ljd + ljd_rev).cwiseAbs().maxCoeff() < 1e-12);
}

TEST_CASE("feed-forward: a batch split across threads gives the one-thread numbers",
          "[graph][feed_forward][threads]") {
    using namespace from_condition;
    Net net(8);
    const auto xs = test::random_batch(100, 6, 4), cs = test::random_batch(100, 4, 5);
    auto [z1, ljd1] = net.forward(xs, conditions(cs));
    net.set_threads(2);
    auto [z2, ljd2] = net.forward(xs, conditions(cs));
    CHECK(test::max_rel_error(z2, z1) == 0);
    CHECK(test::max_rel_error(ljd2.transpose(), ljd1.transpose()) == 0);
    auto [x2, ljd_rev] = net.inverse(z2, conditions(cs));
    CHECK(test::max_rel_error(x2, xs) < 1e-12);
}

}  // namespace
