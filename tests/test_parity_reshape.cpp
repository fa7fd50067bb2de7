// Parity with FrEIA's golden files (tests/data/freia, fixtures README §5.11, §5.12, §5.21) for
// the fixed reshaping and linear modules: IRevNetDownsampling / IRevNetUpsampling (both
// backends), HaarDownsampling / HaarUpsampling (channel orders, rebalance),
// FixedLinearTransform (with and without b) and Fixed1x1Conv.
//
// Every fixture's architecture is a single module; the fixture's state_dict (one-hot kernels,
// Haar filters, M, M_inv, b, logDetM) is loaded strictly by key and the outputs, inverses and
// log-dets are compared in double (1e-10) and float (2e-4).

#include <inn/modules/fixed_1x1_conv.hpp>
#include <inn/modules/fixed_linear.hpp>
#include <inn/modules/haar.hpp>
#include <inn/modules/irevnet.hpp>

#include "support/fixture.hpp"

// Everything in this file has internal linkage: test files reuse names (subnets,
// node structs) that would otherwise collide across translation units (ODR).
namespace {

using namespace inn;
using inn::test::check_parity_both;

namespace {

using IRevDown = SequenceINN<Shape<3, 8, 8>, IRevNetDownsampling<>>;
using IRevDownLegacy =
    SequenceINN<Shape<3, 8, 8>, IRevNetDownsampling<IRevNetOptions{.legacy_backend = true}>>;
using IRevUp = SequenceINN<Shape<12, 4, 4>, IRevNetUpsampling<>>;
using IRevUpLegacy =
    SequenceINN<Shape<12, 4, 4>, IRevNetUpsampling<IRevNetOptions{.legacy_backend = true}>>;

using HaarDown = SequenceINN<Shape<3, 8, 8>, HaarDownsampling<>>;
using HaarDownWavelet =
    SequenceINN<Shape<3, 8, 8>, HaarDownsampling<HaarOptions{.order_by_wavelet = true}>>;
using HaarDownRebalance = SequenceINN<
    Shape<4, 8, 8>, HaarDownsampling<HaarOptions{.order_by_wavelet = true, .rebalance = 0.5}>>;
using HaarUp = SequenceINN<Shape<12, 4, 4>, HaarUpsampling<>>;
using HaarUpOptions = SequenceINN<
    Shape<12, 4, 4>, HaarUpsampling<HaarOptions{.order_by_wavelet = true, .rebalance = 2.0}>>;

using FixedLinear = SequenceINN<Shape<6>, FixedLinearTransform>;
using Fixed1x1 = SequenceINN<Shape<4, 8, 8>, Fixed1x1Conv>;

}  // namespace

TEST_CASE("parity: IRevNetDownsampling / IRevNetUpsampling match FrEIA", "[parity][reshape]") {
    SECTION("irevnet_down") { check_parity_both<IRevDown>("irevnet_down", "irevnet"); }
    SECTION("irevnet_down_legacy") {
        check_parity_both<IRevDownLegacy>("irevnet_down_legacy", "irevnet");
    }
    SECTION("irevnet_up") { check_parity_both<IRevUp>("irevnet_up", "irevnet"); }
    SECTION("irevnet_up_legacy") {
        check_parity_both<IRevUpLegacy>("irevnet_up_legacy", "irevnet");
    }
}

TEST_CASE("parity: HaarDownsampling / HaarUpsampling match FrEIA", "[parity][reshape]") {
    SECTION("haar_down") { check_parity_both<HaarDown>("haar_down", "haar"); }
    SECTION("haar_down_wavelet_order") {
        check_parity_both<HaarDownWavelet>("haar_down_wavelet_order", "haar");
    }
    SECTION("haar_down_rebalance") {
        check_parity_both<HaarDownRebalance>("haar_down_rebalance", "haar");
    }
    SECTION("haar_up") { check_parity_both<HaarUp>("haar_up", "haar"); }
    SECTION("haar_up_options") { check_parity_both<HaarUpOptions>("haar_up_options", "haar"); }
}

TEST_CASE("parity: FixedLinearTransform / Fixed1x1Conv match FrEIA", "[parity][reshape]") {
    SECTION("fixed_linear") { check_parity_both<FixedLinear>("fixed_linear", "fixed_linear"); }
    SECTION("fixed_linear_no_b") {
        // FrEIA built without b stores `b` as a 0-dim scalar 0: switch the module to that layout
        // before loading, as a user porting such a model does.
        check_parity_both<FixedLinear>("fixed_linear_no_b", "fixed_linear", {},
                                       [](auto& net) { net.template module<0>()->set_scalar_b(); });
    }
    SECTION("fixed_1x1_conv") { check_parity_both<Fixed1x1>("fixed_1x1_conv", "fixed_1x1_conv"); }
}

TEST_CASE("parity: fixed_linear_no_b needs the scalar-b layout", "[parity][reshape]") {
    // Without set_scalar_b() the network expects b of shape (1, 6): the strict load names the key
    // and both shapes instead of broadcasting silently.
    FixedLinear::with_scalar<double> net;
    test::fixture f("fixed_linear_no_b");
    try {
        load_state_dict(net, f.file, {.ignore_prefixes = {"test."}});
        FAIL("load_state_dict accepted a 0-dim b for a (1, 6) buffer");
    } catch (const io_error& e) {
        const std::string msg = e.what();
        INFO(msg);
        CHECK(msg.find("module_list.0.b") != std::string::npos);
        CHECK(msg.find("[1, 6]") != std::string::npos);
        CHECK(msg.find("has shape []") != std::string::npos);
    }
}

}  // namespace
