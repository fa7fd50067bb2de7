// The second half of the subnet linkage test (test_subnet_linkage_a.cpp): the same names as
// there, a different width.
#include <inn/modules/coupling/glow.hpp>

#include "support/subnet_linkage.hpp"

namespace {

struct subnet_fc {  // width 24 here, 8 in test_subnet_linkage_a.cpp
    template <int In, int Out>
    using net = inn::nn::Sequential<inn::nn::Linear<In, 24>, inn::nn::ReLU,
                                    inn::nn::Linear<24, Out>>;
};
using Net = inn::SequenceINN<inn::Shape<4>, inn::GLOWCouplingBlock<subnet_fc>>;

}  // namespace

inn::test::linkage::probe inn::test::linkage::probe_b() { return measure<Net>(); }
