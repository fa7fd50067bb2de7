#pragma once
// The layer concept of subnets (inn::nn), the counterpart of torch.nn inside FrEIA subnets.
//
// A layer spec (`Linear<4, 32>`, `ReLU`) has `bind<Scalar, dims in>`: an object with
//   static constexpr dims out;                                   // output shape per sample
//   explicit bind(generator&);                                   // PyTorch's default init
//   void forward(cview<S> in, view<S> out, index_t batch, S* scratch) const;
//   static constexpr index_t scratch_size(index_t batch);        // optional
//   static constexpr bool elementwise;                           // optional: may run in place
//   template <class V> void visit(V&&, const std::string& prefix);  // optional: weight, bias
//   static constexpr index_t flops(index_t batch);               // optional, for benchmarks
// A "subnet constructor" is a template `template <int In, int Out> class` naming a layer spec,
// the counterpart of FrEIA's `subnet_constructor(c_in, c_out)`.

#include <string>

#include "../core/module.hpp"
#include "../core/parameters.hpp"

namespace inn::nn {

template <class L, Scalar S, dims In>
using bind_layer = typename L::template bind<S, In>;

template <class B>
constexpr index_t layer_scratch(index_t batch) {
    if constexpr (requires { B::scratch_size(batch); })
        return B::scratch_size(batch);
    else
        return 0;
}

template <class B>
constexpr bool layer_elementwise() {
    if constexpr (requires { B::elementwise; })
        return B::elementwise;
    else
        return false;
}

template <class B>
constexpr index_t layer_flops(index_t batch) {
    if constexpr (requires { B::flops(batch); })
        return B::flops(batch);
    else
        return 0;
}

template <class B, class V>
void visit_layer(B& layer, V&& visitor, const std::string& prefix) {
    if constexpr (requires { layer.visit(visitor, prefix); }) layer.visit(visitor, prefix);
}

/// The bound subnet a module builds: `Subnet<c_in, c_out>` on data of shape `in`.
template <template <int, int> class Subnet, Scalar S, dims In, int OutChannels>
struct subnet_for {
    using spec = Subnet<In.channels(), OutChannels>;
    using type = bind_layer<spec, S, In>;
    static_assert(type::out.channels() == OutChannels && type::out.spatial_size() == In.spatial_size(),
                  "inn: a subnet built by subnet_constructor(c_in, c_out) must map (c_in, *S) to "
                  "(c_out, *S)");
};

}  // namespace inn::nn
