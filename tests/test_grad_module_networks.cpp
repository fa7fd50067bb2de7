// The module backwards inside the training executor (graph/backprop.hpp): networks built from
// ActNorm, PermuteRandom, LearnedElementwiseScaling, OrthogonalTransform, HouseholderPerm,
// InvertibleSigmoid, FixedLinearTransform, HaarDownsampling, IRevNetUpsampling/Downsampling,
// Split/Concat (as views and, along a later dim, as copies), Flatten, Reshape and Fixed1x1Conv.
// Independent truth: central finite differences of the network's own forward loss, in both
// memory modes (recompute runs every module's inverse), and one thread against two. Then the
// README's three models at small sizes (moons, conditional moons, the convolutional GraphINN).

#include <catch2/catch.hpp>

#include <cmath>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <inn/modules/actnorm.hpp>
#include <inn/modules/all_in_one_block.hpp>
#include <inn/modules/coupling/glow.hpp>
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
#include <inn/nn/activation.hpp>
#include <inn/nn/conv2d.hpp>
#include <inn/nn/linear.hpp>
#include <inn/nn/sequential.hpp>
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
template <class Net> void perturb(Net& net, unsigned seed, double sigma = 0.2) {
    generator g(seed);
    net.visit([&](const std::string& key, const tensor_ref<double>& t) {
        if (!t.real || !t.trainable || key.ends_with(".weights"))
            return;
        for (std::int64_t i = 0; i < t.shape.numel(); ++i)
            t.real[i] += sigma * g.normal<double>();
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
        CHECK(test::input_gradient_error(x, t.input_gradient(),
                                         [&](const mat& xv) { return nll(net, xv); }, h) < 1e-7);
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

// The README's models with narrow subnets. Tanh where the README has ReLU: the finite
// differences below must not straddle a kink.
struct fc16 {
    template <int In, int Out>
    using net = nn::Sequential<nn::Linear<In, 16>, nn::Tanh, nn::Linear<16, Out>>;
};
struct conv4 {
    template <int In, int Out>
    using net = nn::Sequential<nn::Conv2d<In, 4, 3, 1>, nn::Tanh, nn::Conv2d<4, Out, 3, 1>>;
};
struct conv4_1x1 {
    template <int In, int Out>
    using net = nn::Sequential<nn::Conv2d<In, 4, 1, 0>, nn::Tanh, nn::Conv2d<4, Out, 1, 0>>;
};

using MoonsINN =
    SequenceINN<Shape<2>, Repeat<8, AllInOneBlock<fc16, {.permute_soft = true}>>>::with_scalar<
        double>;
// With the README's ReLU: the subnets' backward runs from their sorted units
// (nn/kernels/relu_units.hpp). Finite differences of 1e-6 meet no kink at these seeds.
struct relu16 {
    template <int In, int Out>
    using net = nn::Sequential<nn::Linear<In, 16>, nn::ReLU, nn::Linear<16, Out>>;
};
using MoonsReluINN =
    SequenceINN<Shape<2>,
                Repeat<8, AllInOneBlock<relu16, {.permute_soft = true}>>>::with_scalar<double>;
using MoonsCINN =
    SequenceINN<Shape<2>, Conditions<Shape<4>>,
                Repeat<8, Conditioned<AllInOneBlock<fc16, {.permute_soft = true}>, 0>>>::
        with_scalar<double>;

namespace conv_readme {
// examples/conv_inn.cpp's node structure on 3x8x8 images: 4 GLOW blocks (3x3 subnets) with
// random permutations, i-RevNet downsampling to 12x4x4, 12 GLOW blocks alternating 1x1 and 3x3
// subnets with permutations, flatten, a quarter through 12 fully connected GLOW blocks with
// permutations, concatenated with the other three quarters.
constexpr int ndim_x = 3 * 8 * 8;
using glow_conv = GLOWCouplingBlock<conv4, CouplingOptions{.clamp = 1.2}>;
using glow_conv_1x1 = GLOWCouplingBlock<conv4_1x1, CouplingOptions{.clamp = 1.2}>;
using glow_fc = GLOWCouplingBlock<fc16, CouplingOptions{.clamp = 2.0}>;
template <int K> using permute = PermuteRandom<PermuteRandomOptions{.seed = K}>;

struct input : InputNode<Shape<3, 8, 8>> {};
template <int K> struct permute_high_res;
template <int K>
struct conv_high_res : Node<glow_conv, std::conditional_t<K == 0, input, permute_high_res<K - 1>>> {
};
template <int K> struct permute_high_res : Node<permute<K>, conv_high_res<K>> {};
struct downsample : Node<IRevNetDownsampling<>, permute_high_res<3>> {};
template <int K> struct permute_low_res;
template <int K>
struct conv_low_res : Node<std::conditional_t<K % 2 == 0, glow_conv_1x1, glow_conv>,
                           std::conditional_t<K == 0, downsample, permute_low_res<K - 1>>> {};
template <int K> struct permute_low_res : Node<permute<K>, conv_low_res<K>> {};
struct flatten : Node<Flatten, permute_low_res<11>> {};
struct split : Node<Split<SplitOptions{.section_sizes = {ndim_x / 4, 3 * ndim_x / 4}}>, flatten> {};
template <int K> struct permute_fc;
template <int K>
struct fully_connected
    : Node<glow_fc, std::conditional_t<K == 0, out<split, 0>, permute_fc<K - 1>>> {};
template <int K> struct permute_fc : Node<permute<K>, fully_connected<K>> {};
struct concat : Node<Concat<>, inputs<permute_fc<11>, out<split, 1>>> {};
struct output : OutputNode<concat> {};
using Net = GraphINN<input, repeat_nodes<conv_high_res, 4>, repeat_nodes<permute_high_res, 4>,
                     downsample, repeat_nodes<conv_low_res, 12>,
                     repeat_nodes<permute_low_res, 12>, flatten, split,
                     repeat_nodes<fully_connected, 12>, repeat_nodes<permute_fc, 12>, concat,
                     output>::with_scalar<double>;
static_assert(Net::output_shape<downsample> == Shape<12, 4, 4>{});
static_assert(Net::output_shape<split, 0> == Shape<48>{});
} // namespace conv_readme

/// The trainer's gradients in the first of `modes` against central finite differences of the
/// forward loss: every `stride`-th parameter (at least `min_checked` of them), every input
/// scalar and, with a condition matrix `c...`, every condition scalar. Every other mode's
/// gradients (all parameters, inputs, conditions) against the first mode's, to 1e-10 - which
/// the finite differences could not resolve. The parameters get N(0, noise²) on top of their
/// initial values.
template <class Net, class... C>
void check_readme_model(std::vector<train::memory_mode> modes, index_t batch, index_t size,
                        std::size_t stride, std::size_t min_checked, double noise,
                        const C&... c) {
    static_assert(sizeof...(C) <= 1);
    std::vector<mat> first; // the first mode's gradients: parameters (one column), x, c
    for (auto mode : modes) {
        INFO("mode " << (mode == train::store ? "store" : "recompute"));
        auto net = std::make_unique<Net>(3);
        perturb(*net, 4, noise);
        const mat x = test::random_batch(batch, size, 1);
        auto loss = [&](const mat& xv, const auto&... cv) {
            auto [z, ljd] = net->forward(xv, conditions(cv)...);
            double l = 0;
            for (Eigen::Index b = 0; b < ljd.size(); ++b)
                l += 0.5 * z.row(b).squaredNorm() - ljd(b);
            return l / double(ljd.size() * z.cols());
        };
        train::trainer t(*net, {.memory = mode});
        CHECK(t.step(x, train::max_likelihood, conditions(c)...) ==
              Approx(loss(x, c...)).epsilon(1e-12));
        const auto grads = parameter_gradients(*net);
        auto params = parameter_pointers(*net);
        REQUIRE(grads.size() == params.size());
        std::vector<mat> all{Eigen::Map<const mat>(grads.data(), Eigen::Index(grads.size()), 1),
                             t.input_gradient()};
        if constexpr (sizeof...(C) == 1)
            all.push_back(t.condition_gradient(0));
        if (!first.empty()) {
            for (std::size_t k = 0; k < all.size(); ++k) {
                INFO("gradient " << k << " (0: parameters, 1: input, 2: condition)");
                REQUIRE(all[k].rows() == first[k].rows());
                REQUIRE(all[k].cols() == first[k].cols());
                const double scale = std::max(1.0, first[k].cwiseAbs().maxCoeff());
                CHECK((all[k] - first[k]).cwiseAbs().maxCoeff() <= 1e-10 * scale);
            }
            continue;
        }
        first = all;
        const double h = 1e-6;
        // max |analytic - numeric| / max(1, max |numeric|) over one tensor's checked scalars.
        struct fd_error {
            double worst = 0, scale = 1;
            void add(double analytic, double numeric) {
                worst = std::max(worst, std::abs(numeric - analytic));
                scale = std::max(scale, std::abs(numeric));
            }
            double relative() const { return worst / scale; }
        };
        std::vector<std::string> keys;
        std::as_const(*net).visit([&](const std::string& key, const tensor_ref<double>& t) {
            if (t.real && t.trainable)
                for (std::int64_t i = 0; i < t.shape.numel(); ++i)
                    keys.push_back(key);
        });
        fd_error ep;
        std::size_t checked = 0;
        std::string worst_key;
        double worst_seen = 0;
        for (std::size_t i = 0; i < params.size(); i += stride, ++checked) {
            const double keep = *params[i];
            *params[i] = keep + h;
            net->parameters_changed();
            const double up = loss(x, c...);
            *params[i] = keep - h;
            net->parameters_changed();
            const double down = loss(x, c...);
            *params[i] = keep;
            net->parameters_changed();
            ep.add(grads[i], (up - down) / (2 * h));
            if (ep.worst > worst_seen) {
                worst_seen = ep.worst;
                worst_key = keys[i];
            }
        }
        INFO("worst parameter: " << worst_key);
        CHECK(checked >= min_checked);
        CHECK(ep.relative() <= 1e-6);
        const mat gx = t.input_gradient();
        fd_error ex;
        for (Eigen::Index i = 0; i < x.size(); ++i) {
            mat up = x, down = x;
            up.data()[i] += h;
            down.data()[i] -= h;
            ex.add(gx.data()[i], (loss(up, c...) - loss(down, c...)) / (2 * h));
        }
        CHECK(ex.relative() <= 1e-6);
        if constexpr (sizeof...(C) == 1) {
            const mat cond = (c, ...);
            const mat gc = t.condition_gradient(0);
            REQUIRE(gc.rows() == cond.rows());
            fd_error ec;
            for (Eigen::Index i = 0; i < cond.size(); ++i) {
                mat up = cond, down = cond;
                up.data()[i] += h;
                down.data()[i] -= h;
                ec.add(gc.data()[i], (loss(x, up) - loss(x, down)) / (2 * h));
            }
            CHECK(ec.relative() <= 1e-6);
        }
    }
}

TEST_CASE("backward in training: the README's moons model", "[grad][train][readme]") {
    // 8 blocks of 2 + 2 global affine and 1*16+16 + 16*2+2 subnet scalars: every one checked.
    check_readme_model<MoonsINN>({train::store, train::recompute}, 6, 2, 1, 8 * 70, 0.2);
}

TEST_CASE("backward in training: the README's moons model with ReLU, from the sorted units",
          "[grad][train][readme][relu_units]") {
    {
        MoonsReluINN net(3);
        train::trainer t(net);
        t.step(test::random_batch(6, 2, 1), train::max_likelihood);
        const auto& units = std::as_const(net).module<5>()->subnet.units;
        CHECK(units.trained()); // the form the checks below run on, forward and backward
        CHECK(!units.empty());
    }
    check_readme_model<MoonsReluINN>({train::store, train::recompute}, 6, 2, 1, 8 * 70, 0.2);
}

TEST_CASE("backward in training: the README's conditional moons model", "[grad][train][readme]") {
    // A one-hot condition as in examples/conditional_moons.cpp, relaxed to arbitrary reals so
    // that its gradient is checked everywhere; subnets see 1 + 4 inputs.
    const mat c = test::random_batch(6, 4, 2);
    check_readme_model<MoonsCINN>({train::store, train::recompute}, 6, 2, 1, 8 * 134, 0.2, c);
}

// Subnets that are no small MLP (12 inputs, two hidden layers): in store mode the blocks keep
// their subnets' outputs and hidden activations from the forward (run_args::saved,
// nn::Sequential::forward_keeping), which backward reads instead of recomputing them.
struct deep12 {
    template <int In, int Out>
    using net = nn::Sequential<nn::Linear<In, 12>, nn::Tanh, nn::Linear<12, 10>, nn::Tanh,
                               nn::Linear<10, Out>>;
};
using KeepingCINN =
    SequenceINN<Shape<18>, Conditions<Shape<3>>,
                Repeat<3, Conditioned<AllInOneBlock<deep12, {.permute_soft = true}>, 0>>>::
        with_scalar<double>;
// What the subnets keep: the Tanh outputs (read by the Tanh's and the next Linear's backward).
static_assert(nn::bind_layer<deep12::net<12, 18>, double, dims{1, {12}}>::kept_width() == 12 + 10);

TEST_CASE("backward in training: AllInOneBlocks keep their subnets' activations in store mode",
          "[grad][train]") {
    const mat c = test::random_batch(5, 3, 2);
    check_readme_model<KeepingCINN>({train::store, train::recompute}, 5, 18, 1, 1560, 0.2, c);
}

// A soft permutation's backward multiplies by W^T. Where w_perm_inv is W^T to the bit (FrEIA
// makes and saves it so), that runs as the inverse's product, from its packed copy; otherwise as
// the product from W. 24 channels and batch 6: the register-tiled products, packed or not.
template <bool Reverse> struct soft_inn {
    using type = SequenceINN<Shape<24>,
                             Repeat<2, AllInOneBlock<fc16, {.permute_soft = true,
                                                            .reverse_permutation = Reverse}>>>;
};
template <bool Reverse>
using SoftINN = typename soft_inn<Reverse>::type::template with_scalar<double>;

template <class Net> void scale_inverse_permutations(Net& net, double factor) {
    net.visit([&](const std::string& key, const tensor_ref<double>& t) {
        if (t.real && key.ends_with(".w_perm_inv"))
            for (std::int64_t i = 0; i < t.shape.numel(); ++i)
                t.real[i] *= factor;
    });
    net.parameters_changed();
}

/// max |a - b| / max(1, max |b|) over two gradient lists.
double gradient_difference(const std::vector<double>& a, const std::vector<double>& b) {
    REQUIRE(a.size() == b.size());
    double worst = 0, scale = 1;
    for (std::size_t i = 0; i < a.size(); ++i) {
        worst = std::max(worst, std::abs(a[i] - b[i]));
        scale = std::max(scale, std::abs(b[i]));
    }
    return worst / scale;
}

TEST_CASE("backward in training: a soft permutation's transpose, with w_perm_inv as saved or "
          "altered",
          "[grad][train]") {
    const mat x = test::random_batch(6, 24, 1);
    // Without reverse_permutation the forward never reads w_perm_inv: altering it changes
    // neither the loss nor any gradient (the altered network multiplies by W itself).
    {
        SoftINN<false> exact(3);
        perturb(exact, 4);
        SoftINN<false> altered = exact;
        scale_inverse_permutations(altered, 1.5);
        train::trainer te(exact, {.memory = train::store});
        train::trainer ta(altered, {.memory = train::store});
        const double le = te.step(x, train::max_likelihood);
        const double la = ta.step(x, train::max_likelihood);
        CHECK(la == Approx(le).epsilon(1e-14));
        CHECK(gradient_difference(parameter_gradients(altered), parameter_gradients(exact)) <
              1e-12);
        CHECK(test::max_rel_error(ta.input_gradient(), te.input_gradient()) < 1e-12);
        CHECK(parameter_gradients(exact).size() > 1000);
    }
    // With it the forward begins with x = w_perm_inv x0: as saved (W^T) and altered, the
    // input gradient (through w_perm_inv's transpose) against finite differences.
    for (double factor : {1.0, 1.5}) {
        INFO("w_perm_inv scaled by " << factor);
        SoftINN<true> net(3);
        perturb(net, 4);
        scale_inverse_permutations(net, factor);
        train::trainer t(net, {.memory = train::store});
        t.step(x, train::max_likelihood);
        CHECK(test::input_gradient_error(x, t.input_gradient(),
                                         [&](const mat& xv) { return nll(net, xv); }) < 1e-7);
    }
}

// On images with the fused convolution chain as subnet (3x3, padding 1): its forward keeps
// nothing, so in store mode the blocks keep only their subnets' outputs and the chain's backward
// recomputes its hidden layer.
using KeepingImageINN =
    SequenceINN<Shape<4, 4, 4>, Repeat<2, AllInOneBlock<conv4, {.permute_soft = true}>>>::
        with_scalar<double>;
static_assert(nn::bind_layer<conv4::net<2, 4>, double, dims{3, {2, 4, 4}}>::conv_chain);

TEST_CASE("backward in training: AllInOneBlocks on images with a convolution chain subnet",
          "[grad][train]") {
    check_readme_model<KeepingImageINN>({train::store, train::recompute}, 3, 64, 1, 400, 0.2);
}

// Noise 0.02: with the moons models' 0.2, 28 GLOW blocks of these fan-ins blow the loss up to
// ~2e5 per dimension, where h = 1e-6 finite differences are no truth (they disagree with the
// gradient by O(1) there).
// About 39 000 parameters: a sample of them (a stride coprime to the tensor sizes' usual
// factors walks through every tensor), every input scalar.
TEST_CASE("backward in training: the README's convolutional GraphINN", "[grad][train][readme]") {
    check_readme_model<conv_readme::Net>({train::store, train::recompute}, 2, conv_readme::ndim_x,
                                         29, 800, 0.02);
}

namespace split_chain {
// Regression: two modules between a Split and the Concat that joins their result with the
// Split's other part. Store mode once laid the Concat's input (the chain's last output) over
// the chain's first input as a view (dead for inference, still needed for backward), so the
// stored input was overwritten and the gradients were wrong by O(1).
struct v : InputNode<Shape<192>> {};
struct sp : Node<Split<SplitOptions{.section_sizes = {48, 144}}>, v> {};
struct f : Node<conv_readme::glow_fc, out<sp, 0>> {};
struct p : Node<PermuteRandom<>, f> {};
struct f2 : Node<conv_readme::glow_fc, p> {};
struct cc : Node<Concat<>, inputs<f2, out<sp, 1>>> {};
struct z : OutputNode<cc> {};
using Net = GraphINN<v, sp, f, p, f2, cc, z>::with_scalar<double>;
} // namespace split_chain

TEST_CASE("backward in training: Split then two modules then Concat", "[grad][train]") {
    check_readme_model<split_chain::Net>({train::store, train::recompute}, 2, 192, 1, 1, 0.02);
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
