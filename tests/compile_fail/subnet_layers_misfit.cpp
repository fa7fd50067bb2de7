// Must not compile: a subnet whose first layer takes c_in but whose last layer expects 32 values
// where the layer before gives 16. The error names the layer (index 2, given Shape<16>), not c_in.
#include <inn/inn.hpp>
#include <inn/modules/coupling.hpp>

namespace {
struct subnet_misfit {
    template <int In, int Out>
    using net = inn::nn::Sequential<inn::nn::Linear<In, 16>, inn::nn::ReLU, inn::nn::Linear<32, Out>>;
};
}  // namespace

using Net = inn::SequenceINN<inn::Shape<4>, inn::GLOWCouplingBlock<subnet_misfit>>;

int main() {
    Net net(0);
    return static_cast<int>(net.parameter_count() > 0);
}
