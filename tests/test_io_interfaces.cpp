// Data at the boundary: Eigen (row- and column-major, maps, blocks), xtensor, raw spans; wrong
// sizes and batches are exceptions that name the input; allocation-free *_into forms.

#include "support/checks.hpp"

#include <xtensor/xadapt.hpp>
#include <xtensor/xarray.hpp>
#include <xtensor/xtensor.hpp>

#include <inn/modules/coupling/glow.hpp>
#include <inn/modules/permute_random.hpp>

// Everything in this file has internal linkage: test files reuse names (subnets,
// node structs) that would otherwise collide across translation units (ODR).
namespace {

using namespace inn;

struct subnet_conv_io_interfaces {
    template <int I, int O>
    using net = nn::Sequential<nn::Conv2d<I, 8, 3>, nn::ReLU, nn::Conv2d<8, O, 3>>;
};

using ImageNet = SequenceINN<Shape<3, 4, 5>, GLOWCouplingBlock<subnet_conv_io_interfaces>, PermuteRandom<>>::with_scalar<double>;

TEST_CASE("io: Eigen row-major, column-major and blocks give the same result", "[io]") {
    ImageNet net(1);
    auto x = test::random_batch(4, 60);
    auto [z, ljd] = net.forward(x);
    Eigen::MatrixXd col = x;  // column-major copy
    auto [z2, ljd2] = net.forward(col);
    CHECK(z2 == z);
    row_matrix<double> wide(4, 70);
    wide.leftCols(60) = x;
    auto [z3, ljd3] = net.forward(wide.leftCols(60));  // a block: strided rows
    CHECK(z3 == z);
    Eigen::VectorXd one = x.row(0).transpose();  // one sample as a column vector
    auto [z4, ljd4] = net.forward(one);
    CHECK(z4.row(0) == z.row(0));
}

TEST_CASE("io: xtensor arrays (batch, C, H, W) and raw spans", "[io]") {
    ImageNet net(1);
    auto x = test::random_batch(2, 60);
    auto [z, ljd] = net.forward(x);
    xt::xarray<double> xa = xt::adapt(x.data(), std::size_t(x.size()), xt::no_ownership(),
                                      std::vector<std::size_t>{2, 3, 4, 5});
    auto [za, ljda] = net.forward(xa);
    CHECK(za == z);
    std::span<const double> flat(x.data(), std::size_t(x.size()));
    auto [zs, ljds] = net.forward(flat);
    CHECK(zs == z);
    // Writing into an xtensor of the output shape.
    xt::xtensor<double, 4> out = xt::zeros<double>({2, 3, 4, 5});
    vector<double> l(2);
    net.forward_into(x, out, l);
    CHECK(out(1, 2, 3, 4) == z(1, 59));
}

TEST_CASE("io: wrong sizes are exceptions that name the input", "[io]") {
    ImageNet net(1);
    row_matrix<double> bad(2, 59);
    CHECK_THROWS_WITH(net.forward(bad), Catch::Contains("input 'x'") && Catch::Contains("(3, 4, 5)"));
    xt::xarray<double> wrong = xt::zeros<double>({2, 3, 5, 4});
    CHECK_THROWS_WITH(net.forward(wrong), Catch::Contains("input 'x'"));
    std::vector<double> ragged(61);
    CHECK_THROWS_AS(net.forward(std::span<const double>(ragged)), data_error);
    // A batch beyond the reserved one.
    net.reserve(2);
    auto big = test::random_batch(3, 60);
    CHECK_THROWS_WITH(net.forward(big), Catch::Contains("more than the 2 reserved"));
    // Nothing was lost: the network still works.
    auto ok = test::random_batch(2, 60);
    auto [z, ljd] = net.forward(ok);
    auto [xr, l2] = net.inverse(z);
    CHECK(test::max_rel_error(xr, ok) < 1e-12);
}

namespace named {
struct in_a : InputNode<Shape<4>> {};
struct cond_b : ConditionNode<Shape<2>> {};
}  // namespace named

struct subnet_fc_io_interfaces {
    template <int I, int O>
    using net = nn::Sequential<nn::Linear<I, 8>, nn::ReLU, nn::Linear<8, O>>;
};

namespace named {
struct coupling : Node<GLOWCouplingBlock<subnet_fc_io_interfaces>, in_a, conditions<cond_b>> {};
struct z : OutputNode<coupling> {};
}  // namespace named

TEST_CASE("io: graph inputs and conditions are named in errors", "[io]") {
    using namespace named;
    GraphINN<in_a, cond_b, coupling, z>::with_scalar<double> net;
    auto x = test::random_batch(2, 4);
    row_matrix<double> bad_c(2, 3), bad_x(2, 5), c(2, 2);
    CHECK_THROWS_WITH(net.forward(x, conditions(bad_c)), Catch::Contains("condition 'cond_b'"));
    CHECK_THROWS_WITH(net.forward(bad_x, conditions(c)), Catch::Contains("input 'in_a'"));
    row_matrix<double> c3(3, 2);
    CHECK_THROWS_WITH(net.forward(x, conditions(c3)), Catch::Contains("condition 'cond_b' has batch 3"));
}

TEST_CASE("io: forward_into writes caller memory and a log-det span", "[io]") {
    ImageNet net(1);
    auto x = test::random_batch(3, 60);
    auto [z, ljd] = net.forward(x);
    row_matrix<double> zo(3, 60);
    std::array<double, 3> l{};
    net.forward_into(x, zo, std::span<double>(l));
    CHECK(zo == z);
    CHECK(l[2] == ljd(2));
    std::array<double, 2> short_l{};
    CHECK_THROWS_WITH(net.forward_into(x, zo, std::span<double>(short_l)),
                      Catch::Contains("log_jac_det has 2 entries"));
}

}  // namespace
