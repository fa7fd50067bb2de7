// A negative Repeat count: inn's message, not the standard library's integer_pack error.
#include <inn/inn.hpp>
#include <inn/modules/permute_random.hpp>
using namespace inn;
using Net = SequenceINN<Shape<4>, Repeat<-1, PermuteRandom<>>>;
Net net;
