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
//   void backward(const layer_backward_args<S>&) const;          // for training (below)
//   static constexpr index_t backward_scratch_size(index_t batch);  // optional
//   static constexpr bool backward_reads_x, backward_reads_y;     // optional, default true
//   static constexpr index_t kept_width();                        // optional, with
//   void forward_keeping(cview<S> in, view<S> out, index_t batch, view<S> kept,
//                        S* scratch) const;                         // (below)
// and, optionally, on the spec itself
//   static constexpr dims output_shape(dims in);   // bind's `out`, or dims{} (rank 0) if the
//                                                  // layer does not take `in`
// which lets a module check a subnet's widths before binding it (see subnet_for).
//
// A *subnet constructor*, the counterpart of FrEIA's `subnet_constructor(c_in, c_out)`, is a
// class with a member template `net<c_in, c_out>` naming a layer spec:
//
//   namespace {  // internal linkage: a same-named subnet in another file is another type
//   struct subnet_fc {  // FrEIA: subnet_constructor(c_in, c_out)
//       template <int In, int Out>
//       using net = inn::nn::Sequential<inn::nn::Linear<In, 512>, inn::nn::ReLU,
//                                       inn::nn::Linear<512, Out>>;
//   };
//   }  // namespace
//
// It is a class, not an alias template, because a class has linkage: the networks built from
// two different `subnet_fc` in two files are two types. Alias templates have none and are
// mangled by their name alone, so two of them would silently share one network type.

#include <concepts>
#include <string>
#include <type_traits>
#include <utility>

#include "../core/error_report.hpp"
#include "../core/module.hpp"
#include "../core/parameters.hpp"

namespace inn::nn {

namespace detail {
template <template <int, int> class>
struct takes_two_widths {};
}  // namespace detail

/// FrEIA's `subnet_constructor(c_in, c_out)`: a class with a member template `net<In, Out>`
/// (checked without instantiating it). An old-style alias template passed where a module expects
/// this is rejected by the compiler as "expected a type": wrap it in a struct (docs/tutorial.md).
template <class T>
concept SubnetConstructor = requires { typename detail::takes_two_widths<T::template net>; };

template <class L, Scalar S, dims In>
using bind_layer = typename L::template bind<S, In>;

/// The vector-Jacobian product of one layer y = f(x; θ): given x, y and dL/dy, writes dL/dx
/// (unless `gx.data` is null: the layer's input is data nobody differentiates) and, with
/// `param_grads`, adds dL/dθ into each parameter's gradient (`grad_of(p)`, see
/// backward_args in core/module.hpp for `grad_shift`). An element-wise layer may be given
/// gx.data == gy.data (in place); otherwise gx overlaps none of x, y, gy. A layer that declares
/// `backward_reads_x = false` (`backward_reads_y = false`) may be given a null x.data (y.data):
/// nn::Sequential keeps only the intermediate results that some backward reads. `scratch` holds
/// backward_scratch_size(batch) scalars. `kept` holds what forward_keeping kept of this call's
/// forward (kept_width() scalars per sample), or null data: the layer recomputes what it needs.
template <Scalar S>
struct layer_backward_args {
    index_t batch = 0;
    cview<S> x;
    cview<S> y;
    cview<S> gy;
    view<S> gx;
    S* scratch = nullptr;
    bool param_grads = true;
    index_t grad_shift = 0;
    cview<S> kept;

    S* grad_of(const parameter<S>& p) const {
        return param_grads && p.grad ? p.grad + grad_shift : nullptr;
    }
};

template <class B>
constexpr index_t layer_backward_scratch(index_t batch) {
    if constexpr (requires { B::backward_scratch_size(batch); })
        return B::backward_scratch_size(batch);
    else
        return 0;
}

/// Scalars per sample that a layer's forward_keeping keeps for its backward (intermediate
/// results it would otherwise recompute from x); 0 for layers without it.
template <class B>
constexpr index_t layer_kept_width() {
    if constexpr (requires { B::kept_width(); })
        return B::kept_width();
    else
        return 0;
}

/// The forward of a training step that keeps back: like forward, and the layer's intermediate
/// results into `kept` (layer_kept_width scalars per sample), which its backward then reads
/// (layer_backward_args::kept) instead of recomputing them. `scratch` as forward's.
template <class B, Scalar S>
void layer_forward_keeping(const B& layer, std::type_identity_t<cview<S>> x, view<S> y,
                           index_t batch, std::type_identity_t<view<S>> kept, S* scratch) {
    if constexpr (layer_kept_width<B>() > 0)
        layer.forward_keeping(x, y, batch, kept, scratch);
    else
        layer.forward(x, y, batch, scratch);
}

/// Whether a layer's backward reads its input x (its output y); true unless it says otherwise.
template <class B>
constexpr bool layer_backward_reads_x() {
    if constexpr (requires { B::backward_reads_x; })
        return B::backward_reads_x;
    else
        return true;
}
template <class B>
constexpr bool layer_backward_reads_y() {
    if constexpr (requires { B::backward_reads_y; })
        return B::backward_reads_y;
    else
        return true;
}

/// Whether a layer may have trainable parameters (it has `visit`).
template <class B>
constexpr bool layer_has_parameters() {
    return requires(B& b, void (*v)(const std::string&, const tensor_ref<double>&)) {
        b.visit(v, std::string());
    };
}

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

/// A layer spec that states its output shape without being bound (`output_shape`, above).
template <class L>
concept LayerWithOutputShape = requires(dims d) {
    { L::output_shape(d) } -> std::same_as<dims>;
};

/// The output shape of layer spec `L` bound to inputs of shape `In`: dims{} (rank 0) if `L`
/// does not take `In`. A layer without `output_shape` is bound to find out (its own
/// static_asserts then report a misfit).
template <class L, Scalar S, dims In>
constexpr dims layer_output_shape() {
    if constexpr (LayerWithOutputShape<L>)
        return L::output_shape(In);
    else
        return bind_layer<L, S, In>::out;
}

namespace detail {
/// Stands in for a subnet whose widths do not fit, so that the reporter's message is the only
/// error (binding it would add the layers' own errors to it).
template <Scalar S, dims Out>
struct unbuilt_subnet {
    static constexpr dims out = Out;
    explicit unbuilt_subnet(generator&) {}
    void forward(cview<S>, view<S>, index_t, S*) const {}
};
struct subnet_fits {};
}  // namespace detail

}  // namespace inn::nn

namespace inn::error {

// A module's subnet does not fit (see nn::subnet_for). The module (void when the module did not
// say), the subnet constructor, the input shape the module feeds it, c_out and the output shape
// are the template arguments, which compilers print.
template <class Module, class Subnet, class InputShape, int COut>
struct subnet_does_not_take_its_input {
    static_assert(check_failed<Module, Subnet, InputShape>,
                  "inn: a module's subnet does not take the input the module gives it: "
                  "Subnet::net<c_in, c_out> must accept that shape, c_in being its first extent "
                  "(module, subnet, input shape and c_out are named above; FrEIA: "
                  "subnet_constructor(c_in, c_out))");
};
template <class Module, class Subnet, class InputShape, int COut, int Layer, class LayerInput>
struct subnet_layer_does_not_take_the_output_of_the_layer_before {
    static_assert(check_failed<Module, Subnet, InputShape>,
                  "inn: inside a module's subnet, a layer does not take the output of the layer "
                  "before it (the first layer takes c_in as it should): module, subnet, input "
                  "shape, c_out, the layer's index in the nn::Sequential (from 0) and the shape "
                  "it is given are named above");
};
template <class Module, class Subnet, class InputShape, int COut, class OutputShape>
struct subnet_output_has_the_wrong_shape {
    static_assert(check_failed<Module, Subnet, InputShape, OutputShape>,
                  "inn: a module's subnet gives an output of the wrong shape: Subnet::net<c_in, "
                  "c_out> must map (c_in, *S) to (c_out, *S) (module, subnet, input shape, c_out "
                  "and the subnet's output shape are named above; FrEIA: "
                  "subnet_constructor(c_in, c_out))");
};

}  // namespace inn::error

namespace inn::nn {

/// The bound subnet a module builds: `Subnet::net<c_in, c_out>` on data of shape `In` (c_in =
/// `In.channels()`), mapping it to (c_out, *S). `Module`, the module's spec, only names the
/// module in the error a misfit gives.
template <SubnetConstructor Subnet, Scalar S, dims In, int OutChannels, class Module = void>
struct subnet_for {
    using spec = typename Subnet::template net<In.channels(), OutChannels>;
    static constexpr dims expected = In.with(0, OutChannels);
    static constexpr dims got = layer_output_shape<spec, S, In>();
    static constexpr bool fits = got == expected;

    using type =
        std::conditional_t<fits, bind_layer<spec, S, In>, detail::unbuilt_subnet<S, expected>>;

    // Which layer of a Sequential refuses its input: the first one (c_in) or a later one.
    static constexpr std::pair<int, dims> misfit = [] {
        if constexpr (requires { spec::misfit_layer(In); })
            return spec::misfit_layer(In);
        else
            return std::pair<int, dims>{got.rank == 0 ? 0 : -1, In};
    }();

    using report = std::conditional_t<
        fits, detail::subnet_fits,
        std::conditional_t<
            got.rank == 0,
            std::conditional_t<
                (misfit.first > 0),
                error::subnet_layer_does_not_take_the_output_of_the_layer_before<
                    Module, Subnet, shape_of<In>, OutChannels, misfit.first,
                    shape_of<(misfit.first > 0 ? misfit.second : In)>>,
                error::subnet_does_not_take_its_input<Module, Subnet, shape_of<In>, OutChannels>>,
            error::subnet_output_has_the_wrong_shape<Module, Subnet, shape_of<In>, OutChannels,
                                                     shape_of<(got.rank == 0 ? expected : got)>>>>;
    static_assert(sizeof(report) > 0);  // instantiates the reporter of a misfit
    static_assert(type::out == expected, "inn: a layer's output_shape disagrees with its bind");
};

}  // namespace inn::nn
