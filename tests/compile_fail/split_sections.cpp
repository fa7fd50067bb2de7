// Must not compile: Split sections {6, 5} add up to 11, more than the 10 channels. The
// static_assert names the node (`bad_split`) and its input shape.
#include <inn/inn.hpp>
#include <inn/modules/split.hpp>

struct x : inn::InputNode<inn::Shape<10>> {};
struct bad_split : inn::Node<inn::Split<inn::SplitOptions{.section_sizes = {6, 5}}>, x> {};
struct z0 : inn::OutputNode<inn::out<bad_split, 0>> {};
struct z1 : inn::OutputNode<inn::out<bad_split, 1>> {};

using Net = inn::GraphINN<x, bad_split, z0, z1>;

int main() {
    Net net;
    return int(net.n_modules);
}
