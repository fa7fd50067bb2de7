// A network for a memory space that one of its modules does not provide: refused, naming the
// node and the module.
#include <inn/inn.hpp>
#include <inn/modules/permute_random.hpp>
using namespace inn;
struct fake_device {
    static constexpr std::string_view name = "fake_device";
};
struct x : InputNode<Shape<4>> {};
struct perm : Node<PermuteRandom<>, x> {};
struct z : OutputNode<perm> {};
using Net = GraphINN<x, perm, z>;
using Gpu = graph::executor<float, Net::description, fake_device>;
Gpu::modules_type* modules = nullptr;
