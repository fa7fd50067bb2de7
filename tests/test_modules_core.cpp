// Core modules: PermuteRandom, Split, Concat, Flatten, Reshape, ActNorm. Round trips in double and
// float, log-dets against finite differences, FrEIA's worked values, section rules of
// Split, ActNorm's data-dependent initialisation in both directions, state_dict
// keys and shapes, and the shape rules' error codes.

#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <map>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include <Eigen/Dense>
#include <inn/modules/actnorm.hpp>
#include <inn/modules/concat.hpp>
#include <inn/modules/permute_random.hpp>
#include <inn/modules/reshape.hpp>
#include <inn/modules/split.hpp>

#include "support/checks.hpp"

// Everything in this file has internal linkage: test files reuse names (subnets,
// node structs) that would otherwise collide across translation units (ODR).
namespace {

using namespace inn;
using inn::test::max_rel_error;
using inn::test::numerical_log_det;
using inn::test::random_batch;

namespace {

/// The state_dict entries of a network: key -> (shape, kind).
struct entry {
    tensor_shape shape;
    char kind = '?';  // 'r' real, 'i' int64, 'b' bool
    bool trainable = false;
};
template <class Net>
std::map<std::string, entry> state_of(Net& net) {
    std::map<std::string, entry> m;
    net.visit([&](const std::string& key, const auto& t) {
        m[key] = {t.shape, t.real ? 'r' : (t.integer ? 'i' : 'b'), t.trainable};
    });
    return m;
}

/// The int64 buffer `key` of a network.
template <class Net>
std::vector<std::int64_t> index_buffer_of(Net& net, const std::string& key) {
    std::vector<std::int64_t> v;
    net.visit([&](const std::string& k, const auto& t) {
        if (k == key) v.assign(t.integer, t.integer + t.shape.numel());
    });
    return v;
}

template <class S>
double tolerance() {
    return std::is_same_v<S, double> ? 1e-12 : 1e-5;
}

/// x -> z -> x of a single-input, single-output network; returns z.
template <class Net>
row_matrix<typename Net::scalar> check_round_trip(Net& net,
                                                  const row_matrix<typename Net::scalar>& x) {
    using S = typename Net::scalar;
    auto [z, ljd] = net.forward(x);
    auto [xr, ljd_rev] = net.inverse(z);
    CHECK(max_rel_error(xr, x) < tolerance<S>());
    REQUIRE(ljd.size() == x.rows());
    for (Eigen::Index b = 0; b < x.rows(); ++b)
        CHECK(double(ljd_rev(b)) == Approx(-double(ljd(b))).margin(tolerance<S>()));
    return z;
}

/// Forward log-det against finite differences (double networks only).
template <class Net>
void check_log_det(Net& net, const row_matrix<double>& x) {
    const Eigen::VectorXd numeric = numerical_log_det(net, x);
    const auto ljd = net.forward(x).log_jac_det;
    for (Eigen::Index b = 0; b < x.rows(); ++b) CHECK(ljd(b) == Approx(numeric(b)).margin(1e-6));
}

/// Data with per-column offsets and scales, so that ActNorm has something to normalise.
template <class S>
row_matrix<S> shifted_batch(Eigen::Index batch, Eigen::Index features, unsigned seed) {
    row_matrix<S> x = random_batch<S>(batch, features, seed);
    for (Eigen::Index j = 0; j < features; ++j)
        x.col(j) = x.col(j) * S(0.5 + 0.25 * double(j % 7)) +
                   row_matrix<S>::Constant(batch, 1, S(j % 5) - S(2));
    return x;
}

/// Per-channel mean and unbiased std of `x` (rows of C * n_pix values).
std::pair<Eigen::VectorXd, Eigen::VectorXd> channel_stats(const row_matrix<double>& x,
                                                          int channels) {
    const Eigen::Index n_pix = x.cols() / channels;
    Eigen::VectorXd mean(channels), std(channels);
    for (int c = 0; c < channels; ++c) {
        const auto block = x.middleCols(c * n_pix, n_pix);
        const double m = block.mean();
        mean(c) = m;
        std(c) = std::sqrt((block.array() - m).square().sum() / double(block.size() - 1));
    }
    return {mean, std};
}

// ---- graphs -------------------------------------------------------------------------------------

// Split with unequal explicit sections and a slack section (FrEIA: [3, 4] on 10 -> [3, 4, 3]).
struct sec_in : InputNode<Shape<10>> {};
struct sec_split : Node<Split<SplitOptions{.section_sizes = {3, 4}}>, sec_in> {};
struct sec_out0 : OutputNode<out<sec_split, 0>> {};
struct sec_out1 : OutputNode<out<sec_split, 1>> {};
struct sec_out2 : OutputNode<out<sec_split, 2>> {};
using SectionsGraph = GraphINN<sec_in, sec_split, sec_out0, sec_out1, sec_out2>;

// n_sections = 3 on 11: the first 11 % 3 = 2 sections get the extra element.
struct ns_in : InputNode<Shape<11>> {};
struct ns_split : Node<Split<SplitOptions{.n_sections = 3}>, ns_in> {};
struct ns_out0 : OutputNode<out<ns_split, 0>> {};
struct ns_out1 : OutputNode<out<ns_split, 1>> {};
struct ns_out2 : OutputNode<out<ns_split, 2>> {};
using NSectionsGraph = GraphINN<ns_in, ns_split, ns_out0, ns_out1, ns_out2>;

// Split into 3, ActNorm on the middle part, Concat in another order: one input, one output.
struct mix_in : InputNode<Shape<9>> {};
struct mix_split : Node<Split<SplitOptions{.n_sections = 3}>, mix_in> {};
struct mix_norm : Node<ActNorm, out<mix_split, 1>> {};
struct mix_cat : Node<Concat<>, inputs<out<mix_split, 2>, mix_norm, out<mix_split, 0>>> {};
struct mix_out : OutputNode<mix_cat> {};
using MixGraph = GraphINN<mix_in, mix_split, mix_norm, mix_cat, mix_out>;

// Image (C, H, W) split along the height (int form 3) and the width, concatenated swapped
// (as the fixture split_concat_img_dims).
struct img_in : InputNode<Shape<4, 8, 6>> {};
struct img_split_h : Node<Split<SplitOptions{.section_sizes = {3}, .dim = 1}>, img_in> {};
struct img_cat_h
    : Node<Concat<ConcatOptions{.dim = 1}>, inputs<out<img_split_h, 1>, out<img_split_h, 0>>> {};
struct img_split_w : Node<Split<SplitOptions{.section_sizes = {2, 3}, .dim = 2}>, img_cat_h> {};
struct img_perm : Node<PermuteRandom<>, out<img_split_w, 1>> {};
struct img_cat_w : Node<Concat<ConcatOptions{.dim = 2}>,
                        inputs<out<img_split_w, 2>, img_perm, out<img_split_w, 0>>> {};
struct img_out : OutputNode<img_cat_w> {};
using ImageGraph =
    GraphINN<img_in, img_split_h, img_cat_h, img_split_w, img_perm, img_cat_w, img_out>;

// Two inputs of different channel counts concatenated, then split back unevenly.
struct two_a : InputNode<Shape<3, 2>> {};
struct two_b : InputNode<Shape<2, 2>> {};
struct two_cat : Node<ConcatChannel<>, inputs<two_a, two_b>> {};
struct two_split : Node<Split1D<SplitOptions{.section_sizes = {1}}>, two_cat> {};
struct two_out0 : OutputNode<out<two_split, 0>> {};
struct two_out1 : OutputNode<out<two_split, 1>> {};
using TwoInputGraph = GraphINN<two_a, two_b, two_cat, two_split, two_out0, two_out1>;

// y[b, (c, h, w)] of a (C, H, W) sample stored row-major.
template <class M>
auto at(const M& m, Eigen::Index b, int c, int h, int w, int height, int width) {
    return m(b, (c * height + h) * width + w);
}

}  // namespace

// ==== PermuteRandom ==============================================================================

TEST_CASE("PermuteRandom: seed 3 on 5 channels gives FrEIA's permutation",
          "[modules][permute]") {
    using Net =
        SequenceINN<Shape<5>, PermuteRandom<PermuteRandomOptions{.seed = 3}>>::with_scalar<double>;
    Net net(123);  // the seed re-seeds the NumPy state: the network's seed does not matter
    CHECK(index_buffer_of(net, "module_list.0.perm") == std::vector<std::int64_t>{3, 4, 1, 0, 2});
    CHECK(index_buffer_of(net, "module_list.0.perm_inv") ==
          std::vector<std::int64_t>{3, 2, 4, 0, 1});

    const row_matrix<double> x = random_batch(4, 5, 7);
    const auto z = net.forward(x).z;
    const int perm[] = {3, 4, 1, 0, 2};
    for (int i = 0; i < 5; ++i) CHECK(z.col(i) == x.col(perm[i]));
    check_round_trip(net, x);
    CHECK(net.forward(x).log_jac_det.isZero());
}

TEST_CASE("PermuteRandom: a seed re-seeds the NumPy state for later modules",
          "[modules][permute]") {
    using Net = SequenceINN<Shape<6>, PermuteRandom<PermuteRandomOptions{.seed = 3}>,
                            PermuteRandom<>, PermuteRandom<PermuteRandomOptions{.seed = 3}>>;
    Net net(99);
    numpy_random_state np(3);
    const std::vector<int> first = np.permutation(6);
    const std::vector<int> second = np.permutation(6);
    auto as64 = [](const std::vector<int>& v) {
        return std::vector<std::int64_t>(v.begin(), v.end());
    };
    CHECK(index_buffer_of(net, "module_list.0.perm") == as64(first));
    CHECK(index_buffer_of(net, "module_list.1.perm") == as64(second));  // drawn after the re-seed
    CHECK(index_buffer_of(net, "module_list.2.perm") == as64(first));
}

TEST_CASE("PermuteRandom: without a seed it draws from the generator's NumPy state",
          "[modules][permute]") {
    using Net = SequenceINN<Shape<7>, PermuteRandom<>, PermuteRandom<>>;
    Net net(11);
    numpy_random_state np(11);
    const std::vector<int> a = np.permutation(7), b = np.permutation(7);
    CHECK(index_buffer_of(net, "module_list.0.perm") ==
          std::vector<std::int64_t>(a.begin(), a.end()));
    CHECK(index_buffer_of(net, "module_list.1.perm") ==
          std::vector<std::int64_t>(b.begin(), b.end()));
    const auto inv = index_buffer_of(net, "module_list.0.perm_inv");
    for (int i = 0; i < 7; ++i) CHECK(inv[std::size_t(a[std::size_t(i)])] == i);
}

TEST_CASE("PermuteRandom: round trips, log-det, odd channels, batch 1, images",
          "[modules][permute]") {
    SECTION("vector, double, odd channel count") {
        using Net =
            SequenceINN<Shape<7>, PermuteRandom<>, PermuteRandom<PermuteRandomOptions{.seed = 5}>>;
        Net::with_scalar<double> net(1);
        const row_matrix<double> x = random_batch(5, 7, 2);
        check_round_trip(net, x);
        check_log_det(net, x);
        check_round_trip(net, random_batch(1, 7, 3));
    }
    SECTION("vector, float") {
        SequenceINN<Shape<9>, PermuteRandom<>> net(4);
        check_round_trip(net, random_batch<float>(3, 9, 5));
        check_round_trip(net, random_batch<float>(1, 9, 6));
    }
    SECTION("image: whole channel planes move") {
        using Net =
            SequenceINN<Shape<3, 4, 5>,
                        PermuteRandom<PermuteRandomOptions{.seed = 0}>>::with_scalar<double>;
        Net net(0);
        const row_matrix<double> x = random_batch(2, 60, 8);
        const auto z = check_round_trip(net, x);
        const auto perm = index_buffer_of(net, "module_list.0.perm");
        for (int c = 0; c < 3; ++c)
            CHECK(z.middleCols(c * 20, 20) == x.middleCols(perm[std::size_t(c)] * 20, 20));
        check_log_det(net, random_batch(1, 60, 9));
        SequenceINN<Shape<3, 4, 5>, PermuteRandom<>> netf(2);
        check_round_trip(netf, random_batch<float>(1, 60, 10));
    }
}

TEST_CASE("PermuteRandom: state_dict keys and loaded permutations are used at run time",
          "[modules][permute]") {
    SequenceINN<Shape<4, 2>, PermuteRandom<>>::with_scalar<double> net(3);
    auto state = state_of(net);
    REQUIRE(state.size() == 2);
    CHECK(state["module_list.0.perm"].kind == 'i');
    CHECK(state["module_list.0.perm"].shape == tensor_shape{4});
    CHECK(state["module_list.0.perm_inv"].shape == tensor_shape{4});
    CHECK_FALSE(state["module_list.0.perm"].trainable);
    CHECK(net.parameter_count() == 0);

    // As a state_dict load would: replace both buffers.
    const std::int64_t perm[] = {2, 0, 3, 1}, inv[] = {1, 3, 0, 2};
    net.visit([&](const std::string& key, const tensor_ref<double>& t) {
        const std::int64_t* src = key.ends_with("perm_inv") ? inv : perm;
        std::copy(src, src + 4, t.integer);
    });
    const row_matrix<double> x = random_batch(3, 8, 4);
    const auto z = check_round_trip(net, x);
    for (int i = 0; i < 4; ++i) CHECK(z.middleCols(2 * i, 2) == x.middleCols(2 * perm[i], 2));

    // An index outside the channels (a corrupt state) is refused instead of read out of bounds,
    // once, when the parameters change (here: at the next call), with the key in the message.
    net.visit([&](const std::string& key, const tensor_ref<double>& t) {
        if (key.ends_with(".perm")) t.integer[1] = 4;
    });
    CHECK_THROWS_AS(net.forward(x), inn::parameter_error);
    CHECK_THROWS_WITH(net.forward(x), Catch::Contains("'module_list.0.perm' [1] = 4 is outside"));
}

// ==== Split / Concat =============================================================================

TEST_CASE("Split: explicit unequal sections get a slack section", "[modules][split]") {
    static_assert(SectionsGraph::n_outputs == 3);
    static_assert(SectionsGraph::output_shape<sec_out0> == Shape<3>{});
    static_assert(SectionsGraph::output_shape<sec_out1> == Shape<4>{});
    static_assert(SectionsGraph::output_shape<sec_out2> == Shape<3>{});

    SectionsGraph::with_scalar<double> net(0);
    const row_matrix<double> x = random_batch(5, 10, 1);
    auto [z, ljd] = net.forward(x);
    CHECK(z[0] == x.middleCols(0, 3));
    CHECK(z[1] == x.middleCols(3, 4));
    CHECK(z[2] == x.middleCols(7, 3));
    CHECK(ljd.isZero());
    auto [xr, ljd_rev] = net.inverse(inputs(z[0], z[1], z[2]));
    CHECK(xr == x);
    CHECK(ljd_rev.isZero());
    CHECK(state_of(net).empty());

    SectionsGraph netf(0);
    const row_matrix<float> xf = random_batch<float>(1, 10, 2);
    auto zf = netf.forward(xf).z;
    CHECK(netf.inverse(inputs(zf[0], zf[1], zf[2])).x == xf);
}

TEST_CASE("Split: n_sections gives the extra elements to the first sections", "[modules][split]") {
    static_assert(NSectionsGraph::output_shape<ns_out0> == Shape<4>{});
    static_assert(NSectionsGraph::output_shape<ns_out1> == Shape<4>{});
    static_assert(NSectionsGraph::output_shape<ns_out2> == Shape<3>{});
    NSectionsGraph::with_scalar<double> net;
    const row_matrix<double> x = random_batch(3, 11, 3);
    auto z = net.forward(x).z;
    CHECK(z[0] == x.middleCols(0, 4));
    CHECK(z[1] == x.middleCols(4, 4));
    CHECK(z[2] == x.middleCols(8, 3));
    CHECK(net.inverse(inputs(z[0], z[1], z[2])).x == x);

    // Default: two parts, the first one larger for odd lengths.
    constexpr signature sig{make_ports({make_dims({7})}), {}};
    constexpr shape_result r = Split<>::output_shapes(sig);
    static_assert(r.ok() && r.outputs.count == 2);
    static_assert(r.outputs[0] == make_dims({4}) && r.outputs[1] == make_dims({3}));
}

TEST_CASE("Split/Concat: a split, ActNorm and a reordering concat in one graph",
          "[modules][split][concat]") {
    MixGraph::with_scalar<double> net(0);
    const row_matrix<double> x = shifted_batch<double>(32, 9, 5);
    const auto z = check_round_trip(net, x);
    CHECK(z.middleCols(0, 3) == x.middleCols(6, 3));
    CHECK(z.middleCols(6, 3) == x.middleCols(0, 3));
    // The ActNorm part is normalised with the statistics of the first batch.
    const auto [mean, std] = channel_stats(z.middleCols(3, 3), 3);
    CHECK(mean.cwiseAbs().maxCoeff() < 1e-12);
    CHECK((std.array() - 1).abs().maxCoeff() < 1e-12);
    check_log_det(net, random_batch(3, 9, 6));
    check_log_det(net, random_batch(1, 9, 7));

    MixGraph netf(0);
    check_round_trip(netf, shifted_batch<float>(16, 9, 8));
    check_round_trip(netf, random_batch<float>(1, 9, 9));
}

TEST_CASE("Split/Concat: along the height and the width of an image", "[modules][split][concat]") {
    static_assert(ImageGraph::output_shape<img_split_h, 0> == Shape<4, 3, 6>{});
    static_assert(ImageGraph::output_shape<img_split_h, 1> == Shape<4, 5, 6>{});
    static_assert(ImageGraph::output_shape<img_split_w, 0> == Shape<4, 8, 2>{});
    static_assert(ImageGraph::output_shape<img_split_w, 1> == Shape<4, 8, 3>{});
    static_assert(ImageGraph::output_shape<img_split_w, 2> == Shape<4, 8, 1>{});
    static_assert(ImageGraph::output_shape<img_out> == Shape<4, 8, 6>{});

    ImageGraph::with_scalar<double> net(2);
    constexpr int C = 4, H = 8, W = 6;
    const row_matrix<double> x = random_batch(3, C * H * W, 10);
    const auto z = check_round_trip(net, x);
    const auto perm = index_buffer_of(net, "module_list.3.perm");
    REQUIRE(perm.size() == 4);
    // h' = rows [3, 8) then [0, 3); w' = columns [5, 6), [2, 5) (channels permuted), [0, 2).
    auto source_h = [](int h) { return h < 5 ? h + 3 : h - 5; };
    auto source_w = [](int w) { return w < 1 ? w + 5 : (w < 4 ? w + 1 : w - 4); };
    for (Eigen::Index b = 0; b < x.rows(); ++b)
        for (int c = 0; c < C; ++c)
            for (int h = 0; h < H; ++h)
                for (int w = 0; w < W; ++w) {
                    const int cs = (w >= 1 && w < 4) ? int(perm[std::size_t(c)]) : c;
                    CHECK(at(z, b, c, h, w, H, W) == at(x, b, cs, source_h(h), source_w(w), H, W));
                }
    check_log_det(net, random_batch(1, C * H * W, 11));

    ImageGraph netf(2);
    check_round_trip(netf, random_batch<float>(2, C * H * W, 12));
}

TEST_CASE("Split/Concat: two inputs, deprecated aliases", "[modules][split][concat]") {
    static_assert(std::is_same_v<SplitChannel<>, Split<>>);
    static_assert(std::is_same_v<Split1D<SplitOptions{.n_sections = 3}>,
                                 Split<SplitOptions{.n_sections = 3}>>);
    static_assert(std::is_same_v<ConcatChannel<>, Concat<>>);
    static_assert(
        std::is_same_v<Concat1d<ConcatOptions{.dim = 1}>, Concat<ConcatOptions{.dim = 1}>>);
    static_assert(Split1D<>::name == "Split" && Concat1d<>::name == "Concat");
    static_assert(TwoInputGraph::output_shape<two_out0> == Shape<1, 2>{});
    static_assert(TwoInputGraph::output_shape<two_out1> == Shape<4, 2>{});

    TwoInputGraph::with_scalar<double> net;
    const row_matrix<double> a = random_batch(2, 6, 1), b = random_batch(2, 4, 2);
    auto [z, ljd] = net.forward(inputs(a, b));
    CHECK(z[0] == a.middleCols(0, 2));
    CHECK(z[1].middleCols(0, 4) == a.middleCols(2, 4));
    CHECK(z[1].middleCols(4, 4) == b);
    auto [xs, ljd_rev] = net.inverse(inputs(z[0], z[1]));
    CHECK(xs[0] == a);
    CHECK(xs[1] == b);
    CHECK((ljd.isZero() && ljd_rev.isZero()));
}

TEST_CASE("Split/Concat: shape rules reject bad signatures with the right code",
          "[modules][split][concat]") {
    constexpr auto one = [](std::initializer_list<int> d) {
        return signature{make_ports({make_dims(d)}), {}};
    };
    // Split
    static_assert(Split<SplitOptions{.section_sizes = {6, 5}}>::output_shapes(one({10})).error ==
                  shape_error::split_sections_too_large);
    static_assert(Split<SplitOptions{.section_sizes = {6, 5}}>::output_shapes(one({10})).dim == 0);
    static_assert(
        Split<SplitOptions{.section_sizes = {10}}>::output_shapes(one({10})).outputs.count == 1);
    static_assert(Split<SplitOptions{.dim = 1}>::output_shapes(one({10})).error ==
                  shape_error::split_bad_dim);
    static_assert(Split<SplitOptions{.dim = 1}>::output_shapes(one({10})).dim == 1);
    static_assert(Split<SplitOptions{.dim = -1}>::output_shapes(one({10})).error ==
                  shape_error::split_bad_dim);
    static_assert(Split<SplitOptions{.n_sections = 1}>::output_shapes(one({10})).error ==
                  shape_error::invalid_option);
    static_assert(Split<SplitOptions{.n_sections = 4}>::output_shapes(one({3})).error ==
                  shape_error::invalid_option);
    static_assert(Split<SplitOptions{.section_sizes = {3, 0, 4}}>::output_shapes(one({10})).error ==
                  shape_error::invalid_option);
    static_assert(Split<SplitOptions{.section_sizes = {-1}}>::output_shapes(one({10})).error ==
                  shape_error::invalid_option);
    static_assert(
        Split<SplitOptions{.section_sizes = {1, 1, 1, 1, 1, 1, 1, 1}}>::output_shapes(one({9}))
            .error == shape_error::invalid_option);  // 8 + slack > 8 outputs
    static_assert(
        Split<SplitOptions{.section_sizes = {1, 1, 1, 1, 1, 1, 1, 1}}>::output_shapes(one({8}))
            .ok());
    constexpr signature conditioned{make_ports({make_dims({4})}), make_ports({make_dims({2})})};
    static_assert(Split<>::output_shapes(conditioned).error == shape_error::condition_not_accepted);
    constexpr signature two{make_ports({make_dims({4}), make_dims({4})}), {}};
    static_assert(Split<>::output_shapes(two).error == shape_error::wrong_input_count);

    // Concat
    constexpr signature mism{make_ports({make_dims({2, 3}), make_dims({2, 3}), make_dims({1, 4})}),
                             {}};
    constexpr shape_result m = Concat<>::output_shapes(mism);
    static_assert(m.error == shape_error::concat_mismatch && m.port_a == 0 && m.port_b == 2 &&
                  m.dim == 1);
    static_assert(Concat<ConcatOptions{.dim = 1}>::output_shapes(mism).error ==
                  shape_error::concat_mismatch);
    static_assert(Concat<ConcatOptions{.dim = 1}>::output_shapes(mism).dim == 0);
    constexpr signature ranks{make_ports({make_dims({2, 3}), make_dims({2})}), {}};
    static_assert(Concat<>::output_shapes(ranks).error == shape_error::concat_mismatch);
    static_assert(Concat<>::output_shapes(ranks).port_b == 1);
    static_assert(Concat<>::output_shapes(one({3})).error == shape_error::wrong_input_count);
    static_assert(Concat<ConcatOptions{.dim = 2}>::output_shapes(mism).error ==
                  shape_error::split_bad_dim);
    constexpr signature ok{make_ports({make_dims({2, 3}), make_dims({5, 3})}), {}};
    static_assert(Concat<>::output_shapes(ok).outputs[0] == make_dims({7, 3}));
    constexpr signature okc{make_ports({make_dims({2, 3})}), make_ports({make_dims({2, 3})})};
    constexpr signature okc2{make_ports({make_dims({2, 3}), make_dims({2, 3})}),
                             make_ports({make_dims({1})})};
    static_assert(Concat<>::output_shapes(okc).error == shape_error::wrong_input_count);
    static_assert(Concat<>::output_shapes(okc2).error == shape_error::condition_not_accepted);
    SUCCEED();
}

// ==== Flatten / Reshape ==========================================================================

TEST_CASE("Flatten/Reshape: row-major reshapes round-trip, log-det 0", "[modules][reshape]") {
    using Net = SequenceINN<Shape<4, 3, 2>, Flatten, Reshape<Shape<6, 4>>, PermuteRandom<>,
                            Reshape<Shape<4, 3, 2>>>;
    static_assert(Net::output_dims() == make_dims({4, 3, 2}));
    static_assert(Flatten::name == "Flatten" && Reshape<Shape<2>>::name == "Reshape");

    SECTION("pure reshapes are the identity on the data") {
        using Plain =
            SequenceINN<Shape<4, 3, 2>, Flatten, Reshape<Shape<8, 3>>, Reshape<Shape<4, 3, 2>>>;
        Plain::with_scalar<double> net;
        const row_matrix<double> x = random_batch(3, 24, 1);
        auto [z, ljd] = net.forward(x);
        CHECK(z == x);
        CHECK(ljd.isZero());
        CHECK(net.inverse(z).x == x);
        CHECK(state_of(net).empty());
    }
    SECTION("double, with a permutation of the reshaped rows in between") {
        Net::with_scalar<double> net(5);
        const row_matrix<double> x = random_batch(4, 24, 2);
        const auto z = check_round_trip(net, x);
        // Reshape (6, 4): channel i is elements [4i, 4i + 4) of the flat sample.
        const auto perm = index_buffer_of(net, "module_list.2.perm");
        for (int i = 0; i < 6; ++i)
            CHECK(z.middleCols(4 * i, 4) == x.middleCols(4 * perm[std::size_t(i)], 4));
        check_log_det(net, random_batch(1, 24, 3));
    }
    SECTION("float, batch 1") {
        Net net(6);
        check_round_trip(net, random_batch<float>(1, 24, 4));
    }
    SECTION("shape rules") {
        constexpr signature img{make_ports({make_dims({3, 4, 5})}), {}};
        static_assert(Flatten::output_shapes(img).outputs[0] == make_dims({60}));
        static_assert(Reshape<Shape<6, 10>>::output_shapes(img).outputs[0] == make_dims({6, 10}));
        static_assert(Reshape<Shape<6, 11>>::output_shapes(img).error ==
                      shape_error::reshape_size_mismatch);
        constexpr signature cond{make_ports({make_dims({3})}), make_ports({make_dims({3})})};
        static_assert(Flatten::output_shapes(cond).error == shape_error::condition_not_accepted);
        static_assert(Reshape<Shape<3>>::output_shapes(cond).error ==
                      shape_error::condition_not_accepted);
        SUCCEED();
    }
}

// ==== ActNorm ====================================================================================

TEST_CASE("ActNorm: initialises from the first forward batch", "[modules][actnorm]") {
    using Net = SequenceINN<Shape<5>, ActNorm>::with_scalar<double>;
    Net net(0);
    CHECK_FALSE(net.module<0>()->initialized());
    const row_matrix<double> x = shifted_batch<double>(64, 5, 1);
    auto [z, ljd] = net.forward(x);
    REQUIRE(net.module<0>()->initialized());
    const auto [mean, std] = channel_stats(z, 5);
    CHECK(mean.cwiseAbs().maxCoeff() < 1e-12);
    CHECK((std.array() - 1).abs().maxCoeff() < 1e-12);
    // log_scale = ln(std of x), loc = mean of x; log-det = -sum(log_scale).
    const auto [xm, xs] = channel_stats(x, 5);
    auto& m = *net.module<0>();
    CHECK(max_rel_error(m.loc.values, xm) < 1e-12);
    CHECK(max_rel_error(m.log_scale.values, Eigen::VectorXd(xs.array().log())) < 1e-12);
    for (Eigen::Index b = 0; b < x.rows(); ++b)
        CHECK(ljd(b) == Approx(-xs.array().log().sum()).epsilon(1e-12));

    // Later batches use the stored statistics.
    const row_matrix<double> x2 = shifted_batch<double>(3, 5, 2);
    check_round_trip(net, x2);
    check_log_det(net, x2);
    CHECK(max_rel_error(m.loc.values, xm) == 0);
    check_round_trip(net, random_batch(1, 5, 3));  // batch 1 is fine once initialised
}

TEST_CASE("ActNorm: images normalise per channel over batch and pixels", "[modules][actnorm]") {
    using Net = SequenceINN<Shape<3, 4, 5>, ActNorm>;
    Net::with_scalar<double> net;
    const row_matrix<double> x = shifted_batch<double>(8, 60, 4);
    auto [z, ljd] = net.forward(x);
    const auto [mean, std] = channel_stats(z, 3);
    CHECK(mean.cwiseAbs().maxCoeff() < 1e-12);
    CHECK((std.array() - 1).abs().maxCoeff() < 1e-12);
    // log-det = -n_pix * sum(log_scale)
    const double expected = -20.0 * net.module<0>()->log_scale.values.sum();
    for (Eigen::Index b = 0; b < x.rows(); ++b) CHECK(ljd(b) == Approx(expected).epsilon(1e-12));
    check_round_trip(net, shifted_batch<double>(2, 60, 5));
    check_log_det(net, random_batch(1, 60, 6));

    // One image already has 20 values per channel: batch 1 initialises fine.
    Net netf;
    const row_matrix<float> xf = shifted_batch<float>(1, 60, 7);
    const auto zf = check_round_trip(netf, xf);
    const auto [mf, sf] = channel_stats(zf.cast<double>(), 3);
    CHECK(mf.cwiseAbs().maxCoeff() < 1e-5);
    CHECK((sf.array() - 1).abs().maxCoeff() < 1e-5);
}

TEST_CASE("ActNorm: initialisation from the inverse direction uses the latent batch",
          "[modules][actnorm]") {
    SequenceINN<Shape<3>, ActNorm>::with_scalar<double> net;
    const row_matrix<double> z = shifted_batch<double>(16, 3, 8);
    auto [x, ljd_rev] = net.inverse(z);
    REQUIRE(net.module<0>()->initialized());
    // FrEIA: loc = mean(z), log_scale = ln std(z), then x = exp(log_scale) * z + loc.
    const auto [zm, zs] = channel_stats(z, 3);
    CHECK(max_rel_error(net.module<0>()->loc.values, zm) < 1e-12);
    CHECK(max_rel_error(net.module<0>()->log_scale.values, Eigen::VectorXd(zs.array().log())) <
          1e-12);
    for (Eigen::Index b = 0; b < z.rows(); ++b)
        for (int c = 0; c < 3; ++c)
            CHECK(x(b, c) == Approx(zs(c) * z(b, c) + zm(c)).epsilon(1e-12));
    for (Eigen::Index b = 0; b < z.rows(); ++b)
        CHECK(ljd_rev(b) == Approx(zs.array().log().sum()).epsilon(1e-12));
    // and the forward direction inverts it
    CHECK(max_rel_error(net.forward(x).z, z) < 1e-12);

    SequenceINN<Shape<3>, ActNorm> netf;  // float, through inverse_t
    inverse_t<decltype(netf)> sampler(netf);
    const row_matrix<float> zf = shifted_batch<float>(16, 3, 9);
    const auto xf = sampler.forward(zf).z;
    CHECK(sampler.module<0>()->initialized());
    CHECK(max_rel_error(sampler.inverse(xf).x, zf) < 1e-5);
}

TEST_CASE("ActNorm: batches that cannot initialise are refused", "[modules][actnorm]") {
    SequenceINN<Shape<4>, ActNorm>::with_scalar<double> net;
    net.reserve(16);  // the first call would otherwise size the buffers for batch 1
    SECTION("one value per channel (FrEIA silently gives NaN)") {
        CHECK_THROWS_WITH(net.forward(random_batch(1, 4, 1)),
                          Catch::Contains("ActNorm") && Catch::Contains("1 value"));
        CHECK_FALSE(net.module<0>()->initialized());
        CHECK_THROWS_AS(net.inverse(random_batch(1, 4, 1)), std::invalid_argument);
        // a proper batch afterwards initialises as usual
        check_round_trip(net, shifted_batch<double>(10, 4, 2));
        CHECK(net.module<0>()->initialized());
    }
    SECTION("a constant channel (FrEIA's ValueError)") {
        row_matrix<double> x = random_batch(6, 4, 3);
        x.col(2).setConstant(1.5);
        CHECK_THROWS_WITH(net.forward(x),
                          Catch::Contains("ActNorm") && Catch::Contains("channel 2"));
        CHECK_FALSE(net.module<0>()->initialized());
    }
    SECTION("NaN in the data") {
        row_matrix<double> x = random_batch(6, 4, 4);
        x(3, 1) = std::nan("");
        CHECK_THROWS_WITH(net.forward(x),
                          Catch::Contains("channel 1") && Catch::Contains("non-finite"));
    }
}

TEST_CASE("ActNorm: state_dict keys, shapes, loading and explicit initialisation",
          "[modules][actnorm]") {
    SECTION("vector: (1, C)") {
        SequenceINN<Shape<5>, ActNorm>::with_scalar<double> net;
        auto state = state_of(net);
        REQUIRE(state.size() == 3);
        CHECK(state["module_list.0.log_scale"].shape == tensor_shape{1, 5});
        CHECK(state["module_list.0.loc"].shape == tensor_shape{1, 5});
        CHECK(state["module_list.0.log_scale"].trainable);
        CHECK(state["module_list.0.loc"].kind == 'r');
        CHECK(state["module_list.0.is_initialized"].kind == 'b');
        CHECK(state["module_list.0.is_initialized"].shape.rank == 0);
        CHECK_FALSE(state["module_list.0.is_initialized"].trainable);
        CHECK(net.parameter_count() == 10);

        // Loading a state sets the flag: no data-dependent initialisation afterwards.
        net.visit([](const std::string& key, const tensor_ref<double>& t) {
            if (t.flag) *t.flag = true;
            if (key.ends_with("log_scale"))
                for (int c = 0; c < 5; ++c) t.real[c] = 0.1 * c;
            if (key.ends_with("loc"))
                for (int c = 0; c < 5; ++c) t.real[c] = -1.0 + c;
        });
        CHECK(net.module<0>()->initialized());
        const row_matrix<double> x = random_batch(1, 5, 1);
        const auto [z, ljd] = net.forward(x);
        for (int c = 0; c < 5; ++c)
            CHECK(z(0, c) == Approx((x(0, c) - (-1.0 + c)) / std::exp(0.1 * c)));
        CHECK(ljd(0) == Approx(-1.0));
    }
    SECTION("image: (1, C, 1, 1); explicit initialize()") {
        SequenceINN<Shape<2, 3, 3>, ActNorm> net;
        auto state = state_of(net);
        CHECK(state["module_list.0.log_scale"].shape == tensor_shape{1, 2, 1, 1});
        CHECK(state["module_list.0.loc"].shape == tensor_shape{1, 2, 1, 1});
        const row_matrix<float> init = shifted_batch<float>(4, 18, 2);
        net.module<0>()->initialize(cview<float>(init.data(), 18), 4);
        REQUIRE(net.module<0>()->initialized());
        const auto [mean, std] = channel_stats(net.forward(init).z.cast<double>(), 2);
        CHECK(mean.cwiseAbs().maxCoeff() < 1e-5);
        CHECK((std.array() - 1).abs().maxCoeff() < 1e-5);
        bool flag = false;
        net.visit([&](const std::string&, const tensor_ref<float>& t) {
            if (t.flag) flag = *t.flag;
        });
        CHECK(flag);
    }
    SECTION("shape rules") {
        constexpr signature cond{make_ports({make_dims({3})}), make_ports({make_dims({3})})};
        static_assert(ActNorm::output_shapes(cond).error == shape_error::condition_not_accepted);
        constexpr signature two{make_ports({make_dims({3}), make_dims({3})}), {}};
        static_assert(ActNorm::output_shapes(two).error == shape_error::wrong_input_count);
        static_assert(ActNorm::name == "ActNorm" && PermuteRandom<>::name == "PermuteRandom");
        SUCCEED();
    }
}

}  // namespace
