// A GLOWCouplingBlock on (4, 8, 8) images conditioned on a (2, 4, 4) tensor: every condition of
// a coupling block must share the input's non-channel dims (FrEIA asserts at construction).
#include <inn/inn.hpp>
#include <inn/modules/coupling.hpp>

struct subnet_conv {
    template <int I, int O>
    using net = inn::nn::Sequential<inn::nn::Conv2d<I, 8, 3>, inn::nn::ReLU,
                                    inn::nn::Conv2d<8, O, 3>>;
};

using Net = inn::SequenceINN<inn::Shape<4, 8, 8>, inn::Conditions<inn::Shape<2, 4, 4>>,
                             inn::Conditioned<inn::GLOWCouplingBlock<subnet_conv>>>;

int main() {
    Net net(0);
    return static_cast<int>(net.parameter_count() > 0);
}
