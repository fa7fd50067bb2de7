// The CUDA backend on a GPU: FrEIA's golden files for the modules and networks that run on the
// device, through inn::cuda::network (tests/support/fixture.hpp with INN_TEST_CUDA compares the
// device's outputs, inverses and log-dets with the fixtures, in double and float). Built by nvcc
// (INN_BUILD_CUDA_TESTS; benchmarks/gpu_check.sh runs it). On machines without a GPU the same
// harness runs every parity fixture on thrust's host system (inn_cuda_host_tests).
//
// The architectures are those of tests/test_parity_core.cpp and test_parity_nets.cpp, with
// options as named constants and every type spelled out: nvcc's regenerated host code loses
// some options values passed through an alias template (it compiles those two files' spelling
// to "__T7 was not declared").

#include <inn/modules/all_in_one_block.hpp>
#include <inn/modules/concat.hpp>
#include <inn/modules/permute_random.hpp>
#include <inn/modules/reshape.hpp>
#include <inn/modules/split.hpp>

#include "../support/fixture.hpp"

namespace {

using namespace inn;
using inn::test::check_parity_both;

template <int Hidden>
struct fc_of {
    template <int I, int O>
    using net = nn::Sequential<nn::Linear<I, Hidden>, nn::ReLU, nn::Linear<Hidden, O>>;
};
using fc = fc_of<32>;

constexpr AllInOneOptions aio_default{};
constexpr AllInOneOptions aio_soft{.permute_soft = true};
constexpr AllInOneOptions aio_gin{.gin_block = true};
constexpr AllInOneOptions aio_householder{.permute_soft = true, .learned_householder_permutation = 3};
constexpr AllInOneOptions aio_sigmoid{.affine_clamping = 1.5, .global_affine_init = 0.8,
                                      .global_affine_type = global_affine_type::sigmoid};
constexpr AllInOneOptions aio_softplus_init{.global_affine_init = 0.7};
constexpr AllInOneOptions aio_exp{.affine_clamping = 1.0, .global_affine_init = 1.3,
                                  .global_affine_type = global_affine_type::exp};

// (Each spelled out: an alias template taking the options loses some of them in nvcc's output.)
using AioVecDefault = SequenceINN<Shape<6>, Repeat<2, AllInOneBlock<fc, aio_default>>>;
using AioVecPermuteSoft = SequenceINN<Shape<6>, Repeat<2, AllInOneBlock<fc, aio_soft>>>;
using AioVecGin = SequenceINN<Shape<6>, Repeat<2, AllInOneBlock<fc, aio_gin>>>;
using AioVecHouseholder = SequenceINN<Shape<6>, Repeat<2, AllInOneBlock<fc, aio_householder>>>;
using AioVecSigmoid = SequenceINN<Shape<6>, Repeat<2, AllInOneBlock<fc, aio_sigmoid>>>;
using AioVecSoftplusInit = SequenceINN<Shape<6>, Repeat<2, AllInOneBlock<fc, aio_softplus_init>>>;
using AioVecExp = SequenceINN<Shape<6>, Repeat<2, AllInOneBlock<fc, aio_exp>>>;
using AioVecCond = SequenceINN<Shape<6>, Conditions<Shape<3>>,
                               Repeat<2, Conditioned<AllInOneBlock<fc, aio_default>>>>;
using AioVecOddCondSoft = SequenceINN<Shape<5>, Conditions<Shape<3>>,
                                      Repeat<3, Conditioned<AllInOneBlock<fc, aio_soft>>>>;

constexpr PermuteRandomOptions seed3{.seed = 3};
using PermuteVec = SequenceINN<Shape<5>, PermuteRandom<seed3>>;
using PermuteImg = SequenceINN<Shape<4, 8, 8>, PermuteRandom<>>;
using FlattenReshape =
    SequenceINN<Shape<4, 8, 8>, Flatten, Reshape<Shape<8, 32>>, Reshape<Shape<4, 8, 8>>>;

using QuickStart = SequenceINN<Shape<2>, Repeat<8, AllInOneBlock<fc_of<512>, aio_soft>>>;
using CinnMnist = SequenceINN<Shape<64>, Conditions<Shape<10>>,
                              Repeat<4, Conditioned<AllInOneBlock<fc_of<64>, aio_default>>>>;

}  // namespace

TEST_CASE("cuda parity: AllInOneBlock on vectors", "[cuda][parity]") {
    SECTION("aio_vec_default") { check_parity_both<AioVecDefault>("aio_vec_default", "aio"); }
    SECTION("aio_vec_permute_soft") {
        check_parity_both<AioVecPermuteSoft>("aio_vec_permute_soft", "aio");
    }
    SECTION("aio_vec_gin") { check_parity_both<AioVecGin>("aio_vec_gin", "aio"); }
    SECTION("aio_vec_cond") { check_parity_both<AioVecCond>("aio_vec_cond", "aio"); }
    SECTION("aio_vec_batch1") { check_parity_both<AioVecCond>("aio_vec_batch1", "aio"); }
    SECTION("aio_vec_householder") {
        check_parity_both<AioVecHouseholder>("aio_vec_householder", "aio");
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

TEST_CASE("cuda parity: PermuteRandom and reshapes", "[cuda][parity]") {
    SECTION("permute_random_vec") {
        check_parity_both<PermuteVec>("permute_random_vec", "permute_random");
    }
    SECTION("permute_random_img") {
        check_parity_both<PermuteImg>("permute_random_img", "permute_random");
    }
    SECTION("flatten_reshape") { check_parity_both<FlattenReshape>("flatten_reshape", "reshape"); }
}

TEST_CASE("cuda parity: FrEIA's quick-start INN and the reduced cINN", "[cuda][parity]") {
    SECTION("net_quickstart_2d") { check_parity_both<QuickStart>("net_quickstart_2d", "nets"); }
    SECTION("net_cinn_mnist_reduced") {
        check_parity_both<CinnMnist>("net_cinn_mnist_reduced", "nets");
    }
}
