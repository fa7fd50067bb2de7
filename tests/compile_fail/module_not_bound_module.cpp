// A custom module whose forward is not const: refused where it is bound, naming the node and
// the concept.
#include <inn/inn.hpp>
using namespace inn;
struct Scale {
    static constexpr shape_result output_shapes(const signature& s) { return returns({s.in()}); }
    template <Scalar S, signature Sig>
    struct bind {
        explicit bind(generator&) {}
        void forward(const run_args<S>&) {}  // missing const
        void inverse(const run_args<S>&) const {}
    };
};
struct x : InputNode<Shape<4>> {};
struct scale : Node<Scale, x> {};
struct z : OutputNode<scale> {};
using Net = GraphINN<x, scale, z>;
Net net;
