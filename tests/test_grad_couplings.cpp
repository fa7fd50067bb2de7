// Reverse mode of the coupling family: AllInOneBlock, NICECouplingBlock, RNVPCouplingBlock,
// GLOWCouplingBlock, GINCouplingBlock, AffineCouplingOneSided and ConditionalAffineTransform, in
// every option family (with conditions).
// Each backward is checked against central finite differences of its forward
// (tests/support/gradcheck.hpp, double, relative error <= 1e-6) and against the conventions of
// backward_args (tests/support/backward_checks.hpp).

#include <catch2/catch.hpp>

#include <cstddef>
#include <limits>

#include <inn/modules/all_in_one_block.hpp>
#include <inn/modules/coupling/conditional_affine.hpp>
#include <inn/modules/coupling/gin.hpp>
#include <inn/modules/coupling/glow.hpp>
#include <inn/modules/coupling/nice.hpp>
#include <inn/modules/coupling/one_sided.hpp>
#include <inn/modules/coupling/rnvp.hpp>
#include <inn/nn/activation.hpp>
#include <inn/nn/conv2d.hpp>
#include <inn/nn/linear.hpp>
#include <inn/nn/sequential.hpp>

#include "support/backward_checks.hpp"
#include "support/gradcheck.hpp"

namespace {

using namespace inn;

// Smooth subnets, so that finite differences are accurate everywhere.
struct fc {
    template <int I, int O>
    using net = nn::Sequential<nn::Linear<I, 8>, nn::Tanh, nn::Linear<8, O>>;
};
struct conv {
    template <int I, int O>
    using net = nn::Sequential<nn::Conv2d<I, 4, 3>, nn::Tanh, nn::Conv2d<4, O, 3>>;
};

constexpr signature vec(int c) { return {make_ports({make_dims({c})}), {}}; }
constexpr signature vec_cond(int c) {
    return {make_ports({make_dims({c})}), make_ports({make_dims({3}), make_dims({2})})};
}
constexpr signature image(int c) { return {make_ports({make_dims({c, 3, 4})}), {}}; }
constexpr signature image_cond(int c) {
    return {make_ports({make_dims({c, 3, 4})}), make_ports({make_dims({2, 3, 4})})};
}

/// The gradient check (at least `min_entries` tensors: inputs, conditions, parameters) and the
/// conventions check of `Spec` bound for `Sig`.
template <class Spec, signature Sig>
void check_backward(std::size_t min_entries, const test::gradcheck_options& o = {}) {
    const auto r = test::check_module_gradients<Spec, Sig>(o);
    INFO(r.describe());
    CHECK(r.entries.size() >= min_entries);
    CHECK(r.worst() <= 1e-6);
    const auto c = test::check_backward_conventions<Spec, Sig>(o);
    INFO(c.describe());
    // The subnet's nn layers accumulate their parameter gradients inside the matrix product
    // (fill + sum rounds once per element, where a clean run rounds sum alone), so where the
    // accumulators are prefilled (with 1 and 5) the results may differ from the clean run by an
    // ulp of fill + gradient: at most 64 eps for the O(1..10) gradients of these checks. Every
    // other rule is exact.
    REQUIRE(c.entries.size() == 4);
    for (const auto& e : c.entries) {
        INFO(e.tensor);
        if (e.tensor == "gradients added to, grad_in written" || e.tensor == "grad_cond not wanted")
            CHECK(e.error <= 64 * std::numeric_limits<double>::epsilon());
        else
            CHECK(e.error == 0);
    }
}

using opt = AllInOneOptions;
template <opt O = opt{}> using fc_block = AllInOneBlock<fc, O>;
template <opt O = opt{}> using conv_block = AllInOneBlock<conv, O>;

// x, global_scale, global_offset and the subnet's four tensors (+ conditions, + vk_householder).
constexpr std::size_t aio_entries = 7;

} // namespace

TEST_CASE("AllInOneBlock backward: default options, odd and even widths, conditions",
          "[grad][allinone]") {
    check_backward<fc_block<>, vec(5)>(aio_entries);
    check_backward<fc_block<>, vec(6)>(aio_entries);
    check_backward<fc_block<opt{.affine_clamping = 0.7}>, vec_cond(5)>(aio_entries + 2);
    check_backward<conv_block<>, image(3)>(aio_entries);
    check_backward<conv_block<>, image_cond(4)>(aio_entries + 1);
}

TEST_CASE("AllInOneBlock backward: GIN and global affine types", "[grad][allinone]") {
    check_backward<fc_block<opt{.gin_block = true}>, vec(6)>(aio_entries - 1);
    check_backward<fc_block<opt{.gin_block = true}>, vec_cond(5)>(aio_entries + 1);
    check_backward<fc_block<opt{.global_affine_type = global_affine_type::sigmoid}>, vec(5)>(
        aio_entries);
    check_backward<fc_block<opt{.global_affine_type = global_affine_type::exp}>, vec(6)>(
        aio_entries);
    check_backward<fc_block<opt{.global_affine_init = 0.4,
                                .global_affine_type = global_affine_type::softplus}>,
                   vec(5)>(aio_entries);
    check_backward<conv_block<opt{.gin_block = true}>, image(4)>(aio_entries - 1);
    check_backward<conv_block<opt{.global_affine_type = global_affine_type::exp}>, image(3)>(
        aio_entries);
}

TEST_CASE("AllInOneBlock backward: permutations", "[grad][allinone]") {
    check_backward<fc_block<opt{.permute_soft = true}>, vec(6)>(aio_entries);
    check_backward<fc_block<opt{.reverse_permutation = true}>, vec(5)>(aio_entries);
    check_backward<fc_block<opt{.permute_soft = true, .reverse_permutation = true}>, vec_cond(5)>(
        aio_entries + 2);
    check_backward<fc_block<opt{.permute_soft = true, .learned_householder_permutation = 3}>,
                   vec(6)>(aio_entries + 1);
    check_backward<fc_block<opt{.permute_soft = true,
                                .learned_householder_permutation = 2,
                                .reverse_permutation = true}>,
                   vec_cond(5)>(aio_entries + 3);
    check_backward<fc_block<opt{.gin_block = true, .reverse_permutation = true}>, vec(6)>(
        aio_entries - 1);
    // Wider than 16 channels: the blocked matrix products of backward's mixing.
    check_backward<fc_block<opt{.permute_soft = true, .reverse_permutation = true}>, vec(18)>(
        aio_entries);
    check_backward<fc_block<opt{.permute_soft = true,
                                .learned_householder_permutation = 2,
                                .reverse_permutation = true}>,
                   vec(17)>(aio_entries + 1);
    check_backward<conv_block<opt{.permute_soft = true, .reverse_permutation = true}>, image(3)>(
        aio_entries);
    check_backward<conv_block<opt{.permute_soft = true,
                                  .learned_householder_permutation = 2,
                                  .reverse_permutation = true}>,
                   image_cond(4)>(aio_entries + 2);
    check_backward<conv_block<opt{.permute_soft = true}>, image(18)>(aio_entries);
}

namespace {

using copt = CouplingOptions;
constexpr copt tanh_clamp{.clamp = 1.5, .activation = clamp_activation::tanh};
constexpr copt sigmoid_clamp{.clamp = 0.8, .activation = clamp_activation::sigmoid};
constexpr copt uneven{.split_channels = 2};
constexpr copt uneven_len{.split_len = 0.3};

// Two subnets of four tensors each, plus x (+ conditions); RNVP has four subnets.
constexpr std::size_t two_subnets = 9;

} // namespace

TEST_CASE("NICECouplingBlock backward", "[grad][coupling]") {
    check_backward<NICECouplingBlock<fc>, vec(5)>(two_subnets);
    check_backward<NICECouplingBlock<fc, uneven>, vec_cond(6)>(two_subnets + 2);
    check_backward<NICECouplingBlock<conv>, image_cond(3)>(two_subnets + 1);
}

TEST_CASE("RNVPCouplingBlock backward", "[grad][coupling]") {
    check_backward<RNVPCouplingBlock<fc>, vec(5)>(2 * two_subnets - 1);
    check_backward<RNVPCouplingBlock<fc, tanh_clamp>, vec_cond(6)>(2 * two_subnets + 1);
    check_backward<RNVPCouplingBlock<fc, sigmoid_clamp>, vec(4)>(2 * two_subnets - 1);
    check_backward<RNVPCouplingBlock<conv, uneven_len>, image_cond(4)>(2 * two_subnets);
}

TEST_CASE("GLOWCouplingBlock and GINCouplingBlock backward", "[grad][coupling]") {
    check_backward<GLOWCouplingBlock<fc>, vec(5)>(two_subnets);
    check_backward<GLOWCouplingBlock<fc, tanh_clamp>, vec_cond(6)>(two_subnets + 2);
    check_backward<GLOWCouplingBlock<fc, sigmoid_clamp>, vec(7)>(two_subnets);
    check_backward<GLOWCouplingBlock<conv, uneven>, image_cond(5)>(two_subnets + 1);
    check_backward<GINCouplingBlock<fc>, vec(6)>(two_subnets);
    check_backward<GINCouplingBlock<fc, tanh_clamp>, vec_cond(7)>(two_subnets + 2);
    check_backward<GINCouplingBlock<conv, sigmoid_clamp>, image_cond(4)>(two_subnets + 1);
}

TEST_CASE("AffineCouplingOneSided and ConditionalAffineTransform backward", "[grad][coupling]") {
    check_backward<AffineCouplingOneSided<fc>, vec(5)>(5);
    check_backward<AffineCouplingOneSided<fc, tanh_clamp>, vec_cond(6)>(7);
    check_backward<AffineCouplingOneSided<fc, sigmoid_clamp>, vec(4)>(5);
    check_backward<AffineCouplingOneSided<conv, uneven>, image_cond(3)>(6);
    check_backward<ConditionalAffineTransform<fc>, vec_cond(3)>(7);
    check_backward<ConditionalAffineTransform<fc, tanh_clamp>, vec_cond(1)>(7);
    check_backward<ConditionalAffineTransform<conv, sigmoid_clamp>, image_cond(3)>(6);
}
