// Subnets do not merge across files. This file and test_subnet_linkage_b.cpp each define
// `subnet_fc` in an unnamed namespace, with different widths, and spell the same network,
// SequenceINN<Shape<4>, GLOWCouplingBlock<subnet_fc>>. A subnet is a class, so each file's
// network is its own type. (With subnets as alias templates, which have no linkage, the two
// spellings named one type and one file computed with the other's widths.)
#include <catch2/catch.hpp>

#include <inn/modules/coupling/glow.hpp>

#include "support/subnet_linkage.hpp"

namespace {

struct subnet_fc {  // width 8 here, 24 in test_subnet_linkage_b.cpp
    template <int In, int Out>
    using net = inn::nn::Sequential<inn::nn::Linear<In, 8>, inn::nn::ReLU,
                                    inn::nn::Linear<8, Out>>;
};
using Net = inn::SequenceINN<inn::Shape<4>, inn::GLOWCouplingBlock<subnet_fc>>;

static_assert(inn::nn::SubnetConstructor<subnet_fc>);
static_assert(!inn::nn::SubnetConstructor<subnet_fc::net<2, 4>>);  // a layer, not a constructor
static_assert(!inn::nn::SubnetConstructor<int>);

// GLOW on (4,): halves of 2 and 2; subnet1 and subnet2 are each net<2, 4> (c_out = [s | t] of
// 2 channels): Linear(2, w) + Linear(w, 4) = (2w + w) + (4w + 4) = 7w + 4 parameters.
constexpr std::int64_t glow4_parameters(std::int64_t w) { return 2 * (7 * w + 4); }

}  // namespace

inn::test::linkage::probe inn::test::linkage::probe_a() { return measure<Net>(); }

TEST_CASE("subnets: same-named subnets in two files make two networks", "[subnet][linkage]") {
    using namespace inn::test::linkage;
    const probe a = probe_a(), b = probe_b();
    CHECK(a.parameter_count == glow4_parameters(8));   // 120
    CHECK(b.parameter_count == glow4_parameters(24));  // 344
    CHECK(a.subnet1_weight0_shape == std::vector<std::int64_t>{8, 2});
    CHECK(b.subnet1_weight0_shape == std::vector<std::int64_t>{24, 2});
    // Same seed and input, different subnets: different outputs, each exactly invertible.
    CHECK(a.x == b.x);
    CHECK((a.z - b.z).cwiseAbs().maxCoeff() > 1e-3f);
    CHECK(a.round_trip_error < 1e-5);
    CHECK(b.round_trip_error < 1e-5);
}
