// Must not compile: a subnet written in the old form, an alias template passed as a template
// template argument. Subnets are classes now (inn::nn::SubnetConstructor): alias templates have
// no linkage, so two files with different subnets of one name made one network type.
#include <inn/inn.hpp>
#include <inn/modules/coupling/glow.hpp>

template <int In, int Out>
using subnet_fc = inn::nn::Sequential<inn::nn::Linear<In, 8>, inn::nn::ReLU,
                                      inn::nn::Linear<8, Out>>;

using Net = inn::SequenceINN<inn::Shape<4>, inn::GLOWCouplingBlock<subnet_fc>>;

int main() {
    Net net(0);
    return 0;
}
