// A module with two outputs in a SequenceINN: the chain has nowhere to put the second.
#include <inn/inn.hpp>
#include <inn/modules/permute_random.hpp>
#include <inn/modules/split.hpp>
using namespace inn;
using Net = SequenceINN<Shape<4>, PermuteRandom<>, Split<>>;
Net net;
