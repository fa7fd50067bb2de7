// The module backwards inside the training executor (graph/backprop.hpp): networks built from
// ActNorm, PermuteRandom, LearnedElementwiseScaling, OrthogonalTransform, HouseholderPerm,
// InvertibleSigmoid, FixedLinearTransform, HaarDownsampling, IRevNetUpsampling/Downsampling,
// Split/Concat (as views and, along a later dim, as copies), Flatten, Reshape and Fixed1x1Conv.
// Independent truth: central finite differences of the network's own forward loss, in both
// memory modes (recompute runs every module's inverse), and one thread against two.

#include <catch2/catch.hpp>

#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include <inn/modules/actnorm.hpp>
#include <inn/modules/concat.hpp>
#include <inn/modules/elementwise_scaling.hpp>
#include <inn/modules/fixed_1x1_conv.hpp>
#include <inn/modules/fixed_linear.hpp>
#include <inn/modules/haar.hpp>
#include <inn/modules/invertible_sigmoid.hpp>
#include <inn/modules/irevnet.hpp>
#include <inn/modules/orthogonal.hpp>
#include <inn/modules/permute_random.hpp>
#include <inn/modules/reshape.hpp>
#include <inn/modules/split.hpp>
#include <inn/train/trainer.hpp>

#include "support/checks.hpp"

namespace {

using namespace inn;
using mat = row_matrix<double>;

using VecChain =
    SequenceINN<Shape<6>, ActNorm, PermuteRandom<{.seed = 3}>, LearnedElementwiseScaling<>,
                OrthogonalTransform<>, HouseholderPerm<{.n_reflections = 3}>, FixedLinearTransform,
                HouseholderPerm<{.n_reflections = 2, .fixed = true}>, InvertibleSigmoid,
                ActNorm>::with_scalar<double>;

namespace img {
// Haar to 16 channels, halves as views, one half through an i-RevNet up/down pair, the other
// scaled; joined, cut along the height (copies, not views) and joined again; flattened and
// reshaped back.
struct x : InputNode<Shape<4, 4, 4>> {};
struct haar : Node<HaarDownsampling<{.rebalance = 0.5}>, x> {};
struct norm : Node<ActNorm, haar> {};
struct halves : Node<Split<>, norm> {};
struct up : Node<IRevNetUpsampling<>, out<halves, 0>> {};
struct down : Node<IRevNetDownsampling<{.legacy_backend = true}>, up> {};
struct scale : Node<LearnedElementwiseScaling<{.init_scale = 1.5}>, out<halves, 1>> {};
struct join : Node<Concat<>, inputs<down, scale>> {};
struct rows : Node<Split<{.section_sizes = {1}, .dim = 1}>, join> {};
struct perm : Node<PermuteRandom<>, out<rows, 1>> {};
struct rejoin : Node<Concat<{.dim = 1}>, inputs<perm, out<rows, 0>>> {};
struct conv : Node<Fixed1x1Conv, rejoin> {};
struct flat : Node<Flatten, conv> {};
struct shaped : Node<Reshape<Shape<4, 4, 4>>, flat> {};
struct wave : Node<HaarDownsampling<{.order_by_wavelet = true}>, shaped> {};
struct z : OutputNode<wave> {};
using Net = GraphINN<x, haar, norm, halves, up, down, scale, join, rows, perm, rejoin, conv, flat,
                     shaped, wave, z>::with_scalar<double>;
} // namespace img

/// Adds N(0, 0.2²) to every trainable tensor except OrthogonalTransform's weights (whose inverse
/// is only the transpose while they stay orthogonal: recompute mode needs it exact).
template <class Net> void perturb(Net& net, unsigned seed) {
    generator g(seed);
    net.visit([&](const std::string& key, const tensor_ref<double>& t) {
        if (!t.real || !t.trainable || key.ends_with(".weights"))
            return;
        for (std::int64_t i = 0; i < t.shape.numel(); ++i)
            t.real[i] += 0.2 * g.normal<double>();
    });
    net.parameters_changed();
}

template <class Net> std::vector<double*> parameter_pointers(Net& net) {
    std::vector<double*> p;
    std::as_const(net).visit([&](const std::string&, const tensor_ref<double>& t) {
        if (t.real && t.trainable)
            for (std::int64_t i = 0; i < t.shape.numel(); ++i)
                p.push_back(t.real + i);
    });
    return p;
}
template <class Net> std::vector<double> parameter_gradients(Net& net) {
    std::vector<double> gr;
    std::as_const(net).visit([&](const std::string&, const tensor_ref<double>& t) {
        if (t.real && t.trainable)
            for (std::int64_t i = 0; i < t.shape.numel(); ++i)
                gr.push_back(t.grad()[i]);
    });
    return gr;
}

/// FrEIA's maximum-likelihood loss from the network's own forward pass.
template <class Net> double nll(Net& net, const mat& x) {
    auto [z, ljd] = net.forward(x);
    double l = 0;
    for (Eigen::Index b = 0; b < ljd.size(); ++b)
        l += 0.5 * z.row(b).squaredNorm() - ljd(b);
    return l / double(ljd.size() * z.cols());
}

/// The trainer's parameter and input gradients against finite differences of nll, in both
/// memory modes; the first step also initialises the ActNorms from x.
template <class Net> void check_network(index_t batch, index_t size, std::size_t min_parameters) {
    for (auto mode : {train::store, train::recompute}) {
        INFO("mode " << (mode == train::store ? "store" : "recompute"));
        Net net(3);
        perturb(net, 4);
        const mat x = test::random_batch(batch, size, 1);
        train::trainer t(net, {.memory = mode});
        const double loss = t.step(x, train::max_likelihood);
        CHECK(loss == Approx(nll(net, x)).epsilon(1e-12));
        const auto grads = parameter_gradients(net);
        auto params = parameter_pointers(net);
        REQUIRE(grads.size() == params.size());
        CHECK(params.size() >= min_parameters);
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
        const mat gx = t.input_gradient();
        worst = 0;
        scale = 1;
        for (Eigen::Index i = 0; i < x.size(); ++i) {
            mat up = x, down = x;
            up.data()[i] += h;
            down.data()[i] -= h;
            const double num = (nll(net, up) - nll(net, down)) / (2 * h);
            worst = std::max(worst, std::abs(num - gx.data()[i]));
            scale = std::max(scale, std::abs(num));
        }
        CHECK(worst / scale < 1e-7);
    }
}

/// One thread against two: the same loss and gradients up to the order of the sums.
template <class Net> void check_threads(index_t size) {
    for (auto mode : {train::store, train::recompute}) {
        Net one(6), two(6);
        perturb(one, 2);
        perturb(two, 2);
        two.set_threads(2);
        const mat x = test::random_batch(64, size, 8);
        train::trainer t1(one, {.memory = mode});
        train::trainer t2(two, {.memory = mode});
        const double l1 = t1.step(x, train::max_likelihood);
        const double l2 = t2.step(x, train::max_likelihood);
        CHECK(l2 == Approx(l1).epsilon(1e-13));
        const auto g1 = parameter_gradients(one), g2 = parameter_gradients(two);
        double worst = 0;
        for (std::size_t i = 0; i < g1.size(); ++i)
            worst = std::max(worst, std::abs(g1[i] - g2[i]) / (1 + std::abs(g1[i])));
        CHECK(worst < 1e-12);
        CHECK(test::max_rel_error(t2.input_gradient(), t1.input_gradient()) < 1e-12);
    }
}

TEST_CASE("backward in training: a chain of vector modules", "[grad][train]") {
    // ActNorm 2 x 12, s 6, weights 36 + bias 6 + scaling 6, Vs 18
    check_network<VecChain>(5, 6, 96);
    check_threads<VecChain>(6);
}

TEST_CASE("backward in training: an image graph with views and copies", "[grad][train]") {
    // ActNorm 2 x 16, s 8 x 2 x 2
    check_network<img::Net>(3, 64, 64);
    check_threads<img::Net>(64);
}

} // namespace
