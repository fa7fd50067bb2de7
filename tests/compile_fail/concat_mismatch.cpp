// Must not compile: Concat of (3, 2) and (2, 4) along dim 0 — the shapes differ outside the
// concatenation dim. The static_assert names the node (`bad_concat`) and both shapes.
#include <inn/inn.hpp>
#include <inn/modules/concat.hpp>

struct in_a : inn::InputNode<inn::Shape<3, 2>> {};
struct in_b : inn::InputNode<inn::Shape<2, 4>> {};
struct bad_concat : inn::Node<inn::Concat<>, inn::inputs<in_a, in_b>> {};
struct result : inn::OutputNode<bad_concat> {};

using Net = inn::GraphINN<in_a, in_b, bad_concat, result>;

int main() {
    Net net;
    return int(net.n_modules);
}
