// An xtensor expression without storage (a + b) handed to a network: it must be evaluated first.
#include <xtensor/xarray.hpp>

#include <inn/inn.hpp>
#include <inn/modules/permute_random.hpp>

using Net = inn::SequenceINN<inn::Shape<4>, inn::PermuteRandom<>>::with_scalar<double>;

int main() {
    Net net(0);
    xt::xarray<double> a = xt::zeros<double>({2, 4});
    auto r = net.forward(a + a);
    return static_cast<int>(r.z.rows());
}
