// Parity with FrEIA's golden files (tests/data/freia, fixtures README §5.1, §5.13, §5.14,
// §5.21, §5.23) for the core modules: AllInOneBlock in all its options, ActNorm (re-initialised
// from the recorded batch test.init_x by the harness and compared with the stored loc /
// log_scale), PermuteRandom, Flatten / Reshape, and Split / Concat in graphs (section sizes,
// n_sections, image dims, the deprecated aliases SplitChannel / ConcatChannel).
//
// Each architecture is the fixture's architecture JSON written as a C++ type; graph nodes are
// named like the fixture's nodes so that the harness maps their state_dict prefixes. The
// harness loads the state_dict strictly by key and compares outputs, inverses and log-dets in
// double (1e-10) and float (2e-4).

#include <inn/modules/actnorm.hpp>
#include <inn/modules/all_in_one_block.hpp>
#include <inn/modules/concat.hpp>
#include <inn/modules/coupling/glow.hpp>
#include <inn/modules/coupling/nice.hpp>
#include <inn/modules/permute_random.hpp>
#include <inn/modules/reshape.hpp>
#include <inn/modules/split.hpp>

#include "support/fixture.hpp"

// Everything in this file has internal linkage: test files reuse names (subnets,
// node structs) that would otherwise collide across translation units (ODR).
namespace {

using namespace inn;
using inn::test::check_parity_both;

namespace {

// ---- subnets of the fixtures ----------------------------------------------------------------

struct fc_parity_core {
    template <int I, int O>
    using net = nn::Sequential<nn::Linear<I, 32>, nn::ReLU, nn::Linear<32, O>>;
};
struct conv3_parity_core {
    template <int I, int O>
    using net = nn::Sequential<nn::Conv2d<I, 8, 3, 1>, nn::ReLU, nn::Conv2d<8, O, 3, 1>>;
};
struct conv1_parity_core {
    template <int I, int O>
    using net = nn::Sequential<nn::Conv2d<I, 8, 1, 0>, nn::ReLU, nn::Conv2d<8, O, 1, 0>>;
};

// ---- AllInOneBlock: two blocks each (three in aio_vec_odd_cond_soft) -------------------------

// Every architecture spelled out with named options (no alias template taking the options):
// nvcc compiles this file too, for the GPU (inn_cuda_tests), and its regenerated host code
// loses some option values passed through an alias template ("__T7 was not declared").
constexpr AllInOneOptions aio_default{};
constexpr AllInOneOptions aio_soft{.permute_soft = true};
constexpr AllInOneOptions aio_gin{.gin_block = true};
constexpr AllInOneOptions aio_reverse{.reverse_permutation = true};
constexpr AllInOneOptions aio_householder{.permute_soft = true,
                                          .learned_householder_permutation = 3};
constexpr AllInOneOptions aio_householder_reverse{
    .permute_soft = true, .learned_householder_permutation = 2, .reverse_permutation = true};
constexpr AllInOneOptions aio_sigmoid{.affine_clamping = 1.5,
                                      .global_affine_init = 0.8,
                                      .global_affine_type = global_affine_type::sigmoid};
constexpr AllInOneOptions aio_softplus_init{.global_affine_init = 0.7};
constexpr AllInOneOptions aio_exp{.affine_clamping = 1.0,
                                  .global_affine_init = 1.3,
                                  .global_affine_type = global_affine_type::exp};
constexpr AllInOneOptions aio_gin_reverse{.gin_block = true, .reverse_permutation = true};
constexpr AllInOneOptions aio_img_householder{.global_affine_type = global_affine_type::exp,
                                              .permute_soft = true,
                                              .learned_householder_permutation = 2};
constexpr AllInOneOptions sigmoid_scale{.global_affine_type = global_affine_type::sigmoid};

using AioVecDefault = SequenceINN<Shape<6>, Repeat<2, AllInOneBlock<fc_parity_core, aio_default>>>;
using AioVecPermuteSoft = SequenceINN<Shape<6>, Repeat<2, AllInOneBlock<fc_parity_core, aio_soft>>>;
using AioVecGin = SequenceINN<Shape<6>, Repeat<2, AllInOneBlock<fc_parity_core, aio_gin>>>;
using AioVecReversePerm =
    SequenceINN<Shape<6>, Repeat<2, AllInOneBlock<fc_parity_core, aio_reverse>>>;
using AioVecHouseholder =
    SequenceINN<Shape<6>, Repeat<2, AllInOneBlock<fc_parity_core, aio_householder>>>;
using AioVecHouseholderReverse =
    SequenceINN<Shape<6>, Repeat<2, AllInOneBlock<fc_parity_core, aio_householder_reverse>>>;
using AioVecSigmoid = SequenceINN<Shape<6>, Repeat<2, AllInOneBlock<fc_parity_core, aio_sigmoid>>>;
using AioVecSoftplusInit =
    SequenceINN<Shape<6>, Repeat<2, AllInOneBlock<fc_parity_core, aio_softplus_init>>>;
using AioVecExp = SequenceINN<Shape<6>, Repeat<2, AllInOneBlock<fc_parity_core, aio_exp>>>;
using AioVecCond = SequenceINN<Shape<6>, Conditions<Shape<3>>,
                               Repeat<2, Conditioned<AllInOneBlock<fc_parity_core, aio_default>>>>;
using AioVecOddCondSoft =
    SequenceINN<Shape<5>, Conditions<Shape<3>>,
                Repeat<3, Conditioned<AllInOneBlock<fc_parity_core, aio_soft>>>>;

using AioImgDefault =
    SequenceINN<Shape<4, 8, 8>, Repeat<2, AllInOneBlock<conv3_parity_core, aio_default>>>;
using AioImgPermuteSoft =
    SequenceINN<Shape<4, 8, 8>, Repeat<2, AllInOneBlock<conv3_parity_core, aio_soft>>>;
using AioImgCond =
    SequenceINN<Shape<4, 8, 8>, Conditions<Shape<2, 8, 8>>,
                Repeat<2, Conditioned<AllInOneBlock<conv3_parity_core, aio_default>>>>;
using AioImgGinReverse =
    SequenceINN<Shape<4, 8, 8>, Repeat<2, AllInOneBlock<conv3_parity_core, aio_gin_reverse>>>;
using AioImgHouseholder =
    SequenceINN<Shape<4, 8, 8>, Repeat<2, AllInOneBlock<conv1_parity_core, aio_img_householder>>>;
using AioImgOddSigmoid =
    SequenceINN<Shape<3, 8, 8>, Repeat<2, AllInOneBlock<conv1_parity_core, sigmoid_scale>>>;

using ActNormVec = SequenceINN<Shape<6>, GLOWCouplingBlock<fc_parity_core>, ActNorm>;
using ActNormImg = SequenceINN<Shape<4, 8, 8>, ActNorm>;
using PermuteVec = SequenceINN<Shape<5>, PermuteRandom<PermuteRandomOptions{.seed = 3}>>;
using PermuteImg = SequenceINN<Shape<4, 8, 8>, PermuteRandom<>>;
using FlattenReshape =
    SequenceINN<Shape<4, 8, 8>, Flatten, Reshape<Shape<8, 32>>, Reshape<Shape<4, 8, 8>>>;

// ---- Split / Concat graphs (node names as in the fixtures) --------------------------------------

namespace sections {
// Split [3, 4] of 10 adds a slack section of 3; Concat(out 2, out 0) feeds a GLOW.
struct x : InputNode<Shape<10>> {};
struct split : Node<Split<SplitOptions{.section_sizes = {3, 4}}>, x> {};
struct concat : Node<Concat<>, inputs<out<split, 2>, out<split, 0>>> {};
struct glow : Node<GLOWCouplingBlock<fc_parity_core>, concat> {};
struct z_a : OutputNode<glow> {};
struct z_b : OutputNode<out<split, 1>> {};
using Net = GraphINN<x, split, concat, glow, z_a, z_b>;
}  // namespace sections

namespace nsections {
// n_sections=3 of 11: sizes 4, 4, 3; ActNorm on the middle one.
struct x : InputNode<Shape<11>> {};
struct split3 : Node<Split<SplitOptions{.n_sections = 3}>, x> {};
struct actnorm : Node<ActNorm, out<split3, 1>> {};
struct z0 : OutputNode<out<split3, 0>> {};
struct z1 : OutputNode<actnorm> {};
struct z2 : OutputNode<out<split3, 2>> {};
using Net = GraphINN<x, split3, actnorm, z0, z1, z2>;
}  // namespace nsections

namespace img_dims {
// Height: FrEIA's int section_sizes=3 (rows 0-2 | 3-7); width: [2, 6], concatenated swapped.
struct x : InputNode<Shape<4, 8, 8>> {};
struct split_h : Node<Split<SplitOptions{.section_sizes = {3}, .dim = 1}>, x> {};
struct glow_top : Node<GLOWCouplingBlock<conv3_parity_core>, out<split_h, 0>> {};
struct concat_h : Node<Concat<ConcatOptions{.dim = 1}>, inputs<glow_top, out<split_h, 1>>> {};
struct split_w : Node<Split<SplitOptions{.section_sizes = {2, 6}, .dim = 2}>, concat_h> {};
struct concat_w
    : Node<Concat<ConcatOptions{.dim = 2}>, inputs<out<split_w, 1>, out<split_w, 0>>> {};
struct z : OutputNode<concat_w> {};
using Net = GraphINN<x, split_h, glow_top, concat_h, split_w, concat_w, z>;
}  // namespace img_dims

namespace aliases {
// FrEIA's deprecated names; the same modules as Split / Concat.
struct x : InputNode<Shape<6>> {};
struct split : Node<SplitChannel<>, x> {};
struct concat : Node<ConcatChannel<>, inputs<out<split, 1>, out<split, 0>>> {};
struct nice : Node<NICECouplingBlock<fc_parity_core>, concat> {};
struct z : OutputNode<nice> {};
using Net = GraphINN<x, split, concat, nice, z>;
static_assert(std::is_same_v<SplitChannel<>, Split<>> && std::is_same_v<ConcatChannel<>, Concat<>>);
}  // namespace aliases

}  // namespace

TEST_CASE("parity: ActNorm matches FrEIA, data initialisation included", "[parity][actnorm]") {
    SECTION("actnorm_vec") { check_parity_both<ActNormVec>("actnorm_vec", "actnorm"); }
    SECTION("actnorm_img") { check_parity_both<ActNormImg>("actnorm_img", "actnorm"); }
}

TEST_CASE("parity: PermuteRandom matches FrEIA", "[parity][permute]") {
    SECTION("permute_random_vec") {
        check_parity_both<PermuteVec>("permute_random_vec", "permute_random");
    }
    SECTION("permute_random_img") {
        check_parity_both<PermuteImg>("permute_random_img", "permute_random");
    }
}

TEST_CASE("parity: PermuteRandom(seed=3) draws FrEIA's permutation", "[parity][permute]") {
    // The stored perm is FrEIA's np.random.seed(3) draw: a fresh network must hold it already.
    PermuteVec::with_scalar<double> fresh;
    test::fixture f("permute_random_vec");
    const auto stored = f.file.to_vector<std::int64_t>(f.file.at("module_list.0.perm"));
    std::vector<std::int64_t> ours;
    fresh.visit([&](const std::string& key, const tensor_ref<double>& t) {
        if (key == "module_list.0.perm") ours.assign(t.integer, t.integer + t.shape.numel());
    });
    CHECK(ours == stored);
}

TEST_CASE("parity: Flatten / Reshape match FrEIA", "[parity][reshape]") {
    check_parity_both<FlattenReshape>("flatten_reshape", "reshape");
}

TEST_CASE("parity: Split / Concat graphs match FrEIA", "[parity][split]") {
    SECTION("split_sections_concat") {
        check_parity_both<sections::Net>("split_sections_concat", "split_concat");
    }
    SECTION("split_nsections_actnorm") {
        check_parity_both<nsections::Net>("split_nsections_actnorm", "split_concat");
    }
    SECTION("split_concat_img_dims") {
        check_parity_both<img_dims::Net>("split_concat_img_dims", "split_concat");
    }
    SECTION("split_concat_deprecated_aliases") {
        check_parity_both<aliases::Net>("split_concat_deprecated_aliases", "split_concat");
    }
}

TEST_CASE("parity: AllInOneBlock on vectors matches FrEIA", "[parity][allinone]") {
    SECTION("aio_vec_default") { check_parity_both<AioVecDefault>("aio_vec_default", "aio"); }
    SECTION("aio_vec_permute_soft") {
        check_parity_both<AioVecPermuteSoft>("aio_vec_permute_soft", "aio");
    }
    SECTION("aio_vec_gin") { check_parity_both<AioVecGin>("aio_vec_gin", "aio"); }
    SECTION("aio_vec_cond") { check_parity_both<AioVecCond>("aio_vec_cond", "aio"); }
    SECTION("aio_vec_batch1") { check_parity_both<AioVecCond>("aio_vec_batch1", "aio"); }
    SECTION("aio_vec_reverse_perm") {
        check_parity_both<AioVecReversePerm>("aio_vec_reverse_perm", "aio");
    }
    SECTION("aio_vec_householder") {
        check_parity_both<AioVecHouseholder>("aio_vec_householder", "aio");
    }
    SECTION("aio_vec_householder_reverse") {
        check_parity_both<AioVecHouseholderReverse>("aio_vec_householder_reverse", "aio");
    }
    SECTION("aio_vec_sigmoid") { check_parity_both<AioVecSigmoid>("aio_vec_sigmoid", "aio"); }
    SECTION("aio_vec_softplus_init") {
        check_parity_both<AioVecSoftplusInit>("aio_vec_softplus_init", "aio");
    }
    SECTION("aio_vec_exp") { check_parity_both<AioVecExp>("aio_vec_exp", "aio"); }
    SECTION("aio_vec_odd_cond_soft") {
        check_parity_both<AioVecOddCondSoft>("aio_vec_odd_cond_soft", "aio");
    }
}

TEST_CASE("parity: AllInOneBlock on images matches FrEIA", "[parity][allinone]") {
    SECTION("aio_img_default") { check_parity_both<AioImgDefault>("aio_img_default", "aio"); }
    SECTION("aio_img_permute_soft") {
        check_parity_both<AioImgPermuteSoft>("aio_img_permute_soft", "aio");
    }
    SECTION("aio_img_cond") { check_parity_both<AioImgCond>("aio_img_cond", "aio"); }
    SECTION("aio_img_gin_reverse") {
        check_parity_both<AioImgGinReverse>("aio_img_gin_reverse", "aio");
    }
    SECTION("aio_img_householder") {
        check_parity_both<AioImgHouseholder>("aio_img_householder", "aio");
    }
    SECTION("aio_img_odd_sigmoid") {
        check_parity_both<AioImgOddSigmoid>("aio_img_odd_sigmoid", "aio");
    }
}

}  // namespace
