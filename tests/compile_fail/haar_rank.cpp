// Must not compile: HaarDownsampling of a vector (it takes (C, H, W) images).
#include <inn/inn.hpp>
#include <inn/modules/haar.hpp>

struct x : inn::InputNode<inn::Shape<12>> {};
struct haar : inn::Node<inn::HaarDownsampling<>, x> {};
struct z : inn::OutputNode<haar> {};
using Net = inn::GraphINN<x, haar, z>;

int main() {
    Net net;
    return 0;
}
