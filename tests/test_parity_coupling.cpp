// Parity with FrEIA's golden files (tests/data/freia, fixtures README §5.0-§5.7) for the
// coupling family: NICECouplingBlock, RNVPCouplingBlock, GLOWCouplingBlock, GINCouplingBlock,
// AffineCouplingOneSided and ConditionalAffineTransform, on vectors and images, with and
// without conditions, every clamp activation, float and int split lengths, batch size 1, and a
// graph whose ConditionalAffineTransform concatenates two condition nodes.
//
// Each architecture below is the fixture's architecture JSON written as a C++ type (subnet
// widths, kernel sizes, paddings and activations from its `subnets` entries). The harness loads
// the state_dict strictly by key and compares outputs, inverses and log-dets in double (1e-10)
// and float (2e-4).
//
// Option mapping of the odd cases:
//   *_odd_options       clamp=1.5, clamp_activation='TANH', split_len=0.3, Linear-Tanh-Linear
//   *_odd_sigmoidclamp  clamp_activation='SIGMOID', 1x1 conv subnets
//   nice_vec_odd_splitlen  integer split_len=2 -> .split_channels = 2

#include <inn/modules/coupling.hpp>

#include "support/fixture.hpp"

// Everything in this file has internal linkage: test files reuse names (subnets,
// node structs) that would otherwise collide across translation units (ODR).
namespace {

using namespace inn;
using inn::test::check_parity_both;

namespace {

// ---- subnets of the fixtures (all hidden widths are FrEIA test sizes) ---------------------------

struct fc_parity_coupling {
    template <int I, int O>
    using net = nn::Sequential<nn::Linear<I, 32>, nn::ReLU, nn::Linear<32, O>>;
};
struct fc_tanh_parity_coupling {
    template <int I, int O>
    using net = nn::Sequential<nn::Linear<I, 32>, nn::Tanh, nn::Linear<32, O>>;
};
struct conv3_parity_coupling {
    template <int I, int O>
    using net = nn::Sequential<nn::Conv2d<I, 8, 3, 1>, nn::ReLU, nn::Conv2d<8, O, 3, 1>>;
};
struct conv1_parity_coupling {
    template <int I, int O>
    using net = nn::Sequential<nn::Conv2d<I, 8, 1, 0>, nn::ReLU, nn::Conv2d<8, O, 1, 0>>;
};

constexpr CouplingOptions odd_options{
    .clamp = 1.5, .activation = clamp_activation::tanh, .split_len = 0.3};
constexpr CouplingOptions sigmoid_clamp{.activation = clamp_activation::sigmoid};

using Vec = Shape<6>;
using Odd = Shape<5>;
using Img = Shape<4, 8, 8>;
using OddImg = Shape<3, 8, 8>;
using VecCond = Conditions<Shape<3>>;
using ImgCond = Conditions<Shape<2, 8, 8>>;

// The six configurations every two-sided coupling fixture family has.
template <template <class, CouplingOptions> class M>
struct family {
    using vec = SequenceINN<Vec, M<fc_parity_coupling, CouplingOptions{}>>;
    using vec_cond = SequenceINN<Vec, VecCond, Conditioned<M<fc_parity_coupling, CouplingOptions{}>>>;
    using img = SequenceINN<Img, M<conv3_parity_coupling, CouplingOptions{}>>;
    using img_cond = SequenceINN<Img, ImgCond, Conditioned<M<conv3_parity_coupling, CouplingOptions{}>>>;
    using vec_odd_options = SequenceINN<Odd, M<fc_tanh_parity_coupling, odd_options>>;
    using img_odd_sigmoidclamp = SequenceINN<OddImg, M<conv1_parity_coupling, sigmoid_clamp>>;
};

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

/// Runs the six fixtures `<prefix>_{vec, vec_cond, img, img_cond, vec_odd_options,
/// img_odd_sigmoidclamp}` of one family.
template <template <class, CouplingOptions> class M>
void check_family(const std::string& prefix) {
    using F = family<M>;
    SECTION(prefix + "_vec") { check_parity_both<typename F::vec>(prefix + "_vec", prefix); }
    SECTION(prefix + "_vec_cond") {
        check_parity_both<typename F::vec_cond>(prefix + "_vec_cond", prefix);
    }
    SECTION(prefix + "_img") { check_parity_both<typename F::img>(prefix + "_img", prefix); }
    SECTION(prefix + "_img_cond") {
        check_parity_both<typename F::img_cond>(prefix + "_img_cond", prefix);
    }
    SECTION(prefix + "_vec_odd_options") {
        check_parity_both<typename F::vec_odd_options>(prefix + "_vec_odd_options", prefix);
    }
    SECTION(prefix + "_img_odd_sigmoidclamp") {
        check_parity_both<typename F::img_odd_sigmoidclamp>(prefix + "_img_odd_sigmoidclamp",
                                                            prefix);
    }
}

// NICE has no clamp: its fixtures are the four basic ones plus an integer split.
using NiceVec = SequenceINN<Vec, NICECouplingBlock<fc_parity_coupling>>;
using NiceVecCond = SequenceINN<Vec, VecCond, Conditioned<NICECouplingBlock<fc_parity_coupling>>>;
using NiceImg = SequenceINN<Img, NICECouplingBlock<conv3_parity_coupling>>;
using NiceImgCond = SequenceINN<Img, ImgCond, Conditioned<NICECouplingBlock<conv3_parity_coupling>>>;
using NiceOddSplit =
    SequenceINN<Odd, NICECouplingBlock<fc_parity_coupling, CouplingOptions{.split_channels = 2}>>;

// Two GLOW blocks on one image sample.
using GlowImgBatch1 = SequenceINN<Img, Repeat<2, GLOWCouplingBlock<conv3_parity_coupling>>>;

// ConditionalAffineTransform: the subnet reads only the condition(s) and writes 2 C channels.
using CatVec = SequenceINN<Vec, VecCond, Conditioned<ConditionalAffineTransform<fc_parity_coupling>>>;
using CatImg = SequenceINN<Img, ImgCond, Conditioned<ConditionalAffineTransform<conv3_parity_coupling>>>;
using CatVecTanhOdd =
    SequenceINN<Odd, VecCond,
                Conditioned<ConditionalAffineTransform<
                    fc_parity_coupling, CouplingOptions{.clamp = 1.5, .activation = clamp_activation::tanh}>>>;

// graph_cat_two_conditions: node names as in the fixture.
namespace two_conditions {
struct x : InputNode<Shape<6>> {};
struct c1 : ConditionNode<Shape<3>> {};
struct c2 : ConditionNode<Shape<2>> {};
struct cat : Node<ConditionalAffineTransform<fc_parity_coupling>, x, conditions<c1, c2>> {};
struct glow : Node<GLOWCouplingBlock<fc_parity_coupling>, cat, conditions<c2>> {};
struct z : OutputNode<glow> {};
using Net = GraphINN<x, c1, c2, cat, glow, z>;
}  // namespace two_conditions

}  // namespace

TEST_CASE("parity: NICECouplingBlock matches FrEIA", "[parity][coupling]") {
    SECTION("nice_vec") { check_parity_both<NiceVec>("nice_vec", "nice"); }
    SECTION("nice_vec_cond") { check_parity_both<NiceVecCond>("nice_vec_cond", "nice"); }
    SECTION("nice_img") { check_parity_both<NiceImg>("nice_img", "nice"); }
    SECTION("nice_img_cond") { check_parity_both<NiceImgCond>("nice_img_cond", "nice"); }
    SECTION("nice_vec_odd_splitlen") {
        check_parity_both<NiceOddSplit>("nice_vec_odd_splitlen", "nice");
    }
}

TEST_CASE("parity: RNVPCouplingBlock matches FrEIA", "[parity][coupling]") {
    check_family<RNVP>("rnvp");
}

TEST_CASE("parity: GLOWCouplingBlock matches FrEIA", "[parity][coupling]") {
    check_family<GLOW>("glow");
    SECTION("glow_img_batch1") { check_parity_both<GlowImgBatch1>("glow_img_batch1", "glow"); }
}

TEST_CASE("parity: GINCouplingBlock matches FrEIA", "[parity][coupling]") {
    check_family<GIN>("gin");
}

TEST_CASE("parity: AffineCouplingOneSided matches FrEIA", "[parity][coupling]") {
    check_family<ACOS>("acos");
}

TEST_CASE("parity: ConditionalAffineTransform matches FrEIA", "[parity][coupling]") {
    SECTION("cat_vec") { check_parity_both<CatVec>("cat_vec", "cat"); }
    SECTION("cat_img") { check_parity_both<CatImg>("cat_img", "cat"); }
    SECTION("cat_vec_tanh_odd") { check_parity_both<CatVecTanhOdd>("cat_vec_tanh_odd", "cat"); }
    SECTION("graph_cat_two_conditions") {
        check_parity_both<two_conditions::Net>("graph_cat_two_conditions", "cat");
    }
}

}  // namespace
