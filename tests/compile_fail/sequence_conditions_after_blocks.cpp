// Conditions<...> written after the blocks of a SequenceINN (it belongs right after the input
// shape): said in one message, not as a block that is no module and a missing condition.
#include <inn/inn.hpp>
#include <inn/modules/coupling.hpp>

struct subnet_fc {
    template <int I, int O>
    using net = inn::nn::Sequential<inn::nn::Linear<I, 16>, inn::nn::ReLU, inn::nn::Linear<16, O>>;
};

using Net = inn::SequenceINN<inn::Shape<4>, inn::Conditioned<inn::GLOWCouplingBlock<subnet_fc>>,
                             inn::Conditions<inn::Shape<2>>>;

int main() {
    Net net(0);
    return static_cast<int>(net.parameter_count() > 0);
}
