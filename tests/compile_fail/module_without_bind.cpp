// A custom module spec without its bind<Scalar, signature> template.
#include <inn/inn.hpp>
using namespace inn;
struct Scale {
    static constexpr shape_result output_shapes(const signature& s) { return returns({s.in()}); }
};
using Net = SequenceINN<Shape<4>, Scale>;
Net net;
