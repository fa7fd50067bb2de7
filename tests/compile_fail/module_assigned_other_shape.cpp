// Assigning the module of a node from a node built for another shape: refused, naming both.
#include <inn/inn.hpp>
#include <inn/modules/actnorm.hpp>
using namespace inn;
struct x : InputNode<Shape<4>> {};
struct norm4 : Node<ActNorm, x> {};
struct z : OutputNode<norm4> {};
struct y : InputNode<Shape<6>> {};
struct norm6 : Node<ActNorm, y> {};
struct w : OutputNode<norm6> {};
int main() {
    GraphINN<x, norm4, z> a;
    GraphINN<y, norm6, w> b;
    a.module<0>() = b.module<0>();
}
