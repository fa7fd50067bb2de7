// Must not compile: a subnet that maps to one channel more than c_out (AllInOneBlock on (4, 6, 6)
// images asks for c_out = 4: [s | t] of the 2 active channels).
#include <inn/inn.hpp>
#include <inn/modules/all_in_one_block.hpp>

namespace {
struct subnet_wrong_c_out {
    template <int In, int Out>
    using net = inn::nn::Sequential<inn::nn::Conv2d<In, 8, 3>, inn::nn::ReLU,
                                    inn::nn::Conv2d<8, Out + 1, 3>>;
};
}  // namespace

using Net = inn::SequenceINN<inn::Shape<4, 6, 6>, inn::AllInOneBlock<subnet_wrong_c_out>>;

int main() {
    Net net(0);
    return static_cast<int>(net.parameter_count() > 0);
}
