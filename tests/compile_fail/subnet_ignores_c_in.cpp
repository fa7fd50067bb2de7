// Must not compile: a subnet whose net<In, Out> ignores In (its first layer reads 3 values, the
// GLOW block gives it 2). The error names the module and the subnet, not the layers' internals.
#include <inn/inn.hpp>
#include <inn/modules/coupling.hpp>

namespace {
struct subnet_ignores_c_in {
    template <int In, int Out>
    using net = inn::nn::Sequential<inn::nn::Linear<3, 8>, inn::nn::ReLU, inn::nn::Linear<8, Out>>;
};
}  // namespace

using Net = inn::SequenceINN<inn::Shape<4>, inn::GLOWCouplingBlock<subnet_ignores_c_in>>;

int main() {
    Net net(0);
    return static_cast<int>(net.parameter_count() > 0);
}
