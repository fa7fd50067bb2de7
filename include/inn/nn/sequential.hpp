#pragma once
// nn::Sequential<Layers...>: layers applied in order (torch.nn.Sequential). Layer i's tensors are
// named `<i>.weight`, `<i>.bias` — activations take an index too, as in PyTorch.
// Intermediate results ping-pong between two scratch regions; element-wise layers run in place,
// or inside the layer before them (Linear/Conv2d + activation in one pass over the output);
// Linear -> activation -> Linear with small ends runs as one kernel (kernels::small_mlp), and
// Conv2d -> activation -> Conv2d keeping the image size as one chain (kernels::conv_direct_chain).
// Backward recomputes the intermediate results it needs from x (see backward below).

#include <algorithm>
#include <array>
#include <tuple>
#include <utility>

#include <boost/hana/at.hpp>
#include <boost/hana/fold_left.hpp>
#include <boost/hana/prepend.hpp>
#include <boost/hana/tuple.hpp>
#include <boost/hana/type.hpp>
#include <boost/hana/unpack.hpp>

#include "kernels/conv.hpp"
#include "kernels/grad.hpp"
#include "kernels/mlp.hpp"
#include "kernels/relu_units.hpp"
#include "kernels/simd.hpp"
#include "kernels/switches.hpp"
#include "layer.hpp"

namespace inn::nn {

namespace hana = boost::hana;

namespace detail {
/// Layer specs bound in order, each to the output shape of the one before (the first to `In`),
/// as a hana tuple of types. (A function at namespace scope:
/// nvcc mistypes a static member built with a lambda.)
template <Scalar S, dims In>
constexpr auto bind_layers() {
    return hana::tuple_t<>;
}
template <Scalar S, dims In, class L, class... Rest>
constexpr auto bind_layers() {
    using B = bind_layer<L, S, In>;
    return hana::prepend(bind_layers<S, B::out, Rest...>(), hana::type_c<B>);
}

/// Bound layer L can apply the activation of element-wise layer A as it writes its output.
/// (A concept of its own: nvcc rejects this requires-expression inside the class.)
template <class L, class A, class S>
concept fuses_activation = requires { typename A::function; } &&
                           requires(const L& l, cview<S> x, view<S> y, index_t b, S* w) {
                               l.forward_act(x, y, b, w, typename A::function{});
                           };

/// The kernel of a Conv2d -> activation -> Conv2d chain (nn::Sequential::conv_chain), or
/// nothing.
template <Scalar S, class L0, class L2, bool Chain>
struct conv_chain_kernel {
    static constexpr index_t scratch_size = 0;
};
template <Scalar S, class L0, class L2>
struct conv_chain_kernel<S, L0, L2, true>
    : kernels::conv_direct_chain<S, L0::in_channels, L0::out_channels, L2::out_channels,
                                 L0::kernel_size, L0::H, L0::W> {};

/// The largest output size of the bound layers in `bound` (a hana tuple of types).
template <class Bound>
constexpr index_t widest_output(Bound bound) {
    return hana::fold_left(bound, index_t(0), [](index_t w, auto t) {
        return std::max(w, decltype(t)::type::out.size());
    });
}
/// An activation that kernels may take as ReLU (nn/activation.hpp: `relu = true`).
template <class F>
concept relu_function = requires {
    F::relu;
};

/// Nothing kept: a Sequential that is not a small MLP of one input and ReLU.
struct no_relu_units {};
}  // namespace detail

template <class... Layers>
struct Sequential {
    static_assert(sizeof...(Layers) >= 1, "inn: nn::Sequential needs at least one layer");

    static constexpr dims output_shape(dims d)
        requires(LayerWithOutputShape<Layers> && ...)
    {
        ((d = d.rank == 0 ? d : Layers::output_shape(d)), ...);
        return d;
    }

    /// The first layer (from 0) that does not take what the layers before it make of `d`, or
    /// -1; with the shape it is given (the subnet diagnostics name both).
    static constexpr std::pair<int, dims> misfit_layer(dims d)
        requires(LayerWithOutputShape<Layers> && ...)
    {
        int k = 0, bad = -1;
        dims given{};
        auto step = [&](dims out) {
            if (bad < 0 && out.rank == 0) {
                bad = k;
                given = d;
            }
            if (bad < 0)
                d = out;
            ++k;
        };
        (step(bad < 0 ? Layers::output_shape(d) : dims{}), ...);
        return {bad, given};
    }

    template <Scalar S, dims D>
    struct bind {
        static constexpr std::size_t n = sizeof...(Layers);

        // The layers bound in order, each to the output shape of the one before (the first to
        // D), as a hana tuple of types.
        // (A type, not a static constexpr auto member: nvcc loses the type of such a member
        // inside the class.)
        using bound_types = decltype(detail::bind_layers<S, D, Layers...>());
        using layers_t =
            typename decltype(hana::unpack(bound_types{}, hana::template_<std::tuple>))::type;
        template <std::size_t I>
        using bound_t = std::tuple_element_t<I, layers_t>;

        static constexpr dims out = bound_t<n - 1>::out;
        // The widest output of any layer: the size of each of the two ping-pong regions.
        static constexpr index_t width = detail::widest_output(bound_types{});

        layers_t layers;

        explicit bind(generator& g)
            : layers(hana::unpack(bound_types{}, [&](auto... t) {
                  return layers_t{typename decltype(t)::type(g)...};  // left to right: PyTorch's
              })) {}                                                  // init order

        // Conv2d -> activation -> Conv2d, both direct convolutions keeping H x W (a GLOW
        // subnet): the hidden layer written once, into the second's padded planes
        // (kernels::conv_direct_chain).
        static constexpr bool conv_chain = [] {
            if constexpr (n != 3) {
                return false;
            } else {
                using L0 = bound_t<0>;
                using L2 = bound_t<2>;
                if constexpr (requires {
                                  L0::kernel_size;
                                  L2::kernel_size;
                                  typename bound_t<1>::function;
                              }) {
                    return L0::fast_direct && L2::fast_direct && L0::has_bias &&
                           L0::kernel_size == L2::kernel_size && L0::padding == L2::padding &&
                           L0::kernel_size == 2 * L0::padding + 1;
                } else {
                    return false;
                }
            }
        }();
        using chain_kernel = detail::conv_chain_kernel<S, bound_t<0>, bound_t<n - 1>, conv_chain>;

        static constexpr index_t scratch_size(index_t batch) {
            return std::max(chain_kernel::scratch_size,
                            2 * width * batch +
                                hana::fold_left(bound_types{}, index_t(0), [&](index_t m, auto t) {
                                    return std::max(
                                        m, layer_scratch<typename decltype(t)::type>(batch));
                                }));
        }

        // Layer I hands its output through a following element-wise layer (Linear + ReLU):
        // the activation is applied as the output is written, and layer I + 1 is skipped.
        template <std::size_t I>
        static constexpr bool fuses_next() {
            if constexpr (I + 1 >= n) {
                return false;
            } else {
                using L = bound_t<I>;
                using A = bound_t<I + 1>;
                return layer_elementwise<A>() && detail::fuses_activation<L, A, S>;
            }
        }
        template <std::size_t I>
        static constexpr bool skipped() {
            if constexpr (I == 0)
                return false;
            else
                return fuses_next<I - 1>() && !skipped<I - 1>();
        }

        // Linear<I, H> -> activation -> Linear<H, O> with small I and O: one fused kernel
        // (kernels::small_mlp), the hidden layer kept in registers.
        static constexpr bool small_mlp = [] {
            if constexpr (n != 3) {
                return false;
            } else {
                using L0 = bound_t<0>;
                using L2 = bound_t<2>;
                if constexpr (requires {
                                  L0::in_features;
                                  L2::out_features;
                                  typename bound_t<1>::function;
                              }) {
                    return L0::has_bias && L2::has_bias && L0::in_features >= 1 &&
                           L0::in_features <= 8 && L2::out_features >= 1 &&
                           L2::out_features <= 8 &&
                           L0::out_features % kernels::simd<S>::lanes == 0;
                } else {
                    return false;
                }
            }
        }();

        // A small MLP of one input and ReLU (a subnet of 2-d data) also runs in the forms of
        // kernels/relu_units.hpp: forward a search among its linear pieces and O multiply-adds
        // per sample, backward a bucket per piece and a sweep over the units, whatever its width.
        // The network makes the forms when parameters change (tensor_ref::remake, set on layer
        // 0's weight by visit): the inference form, or while gradients are attached the training
        // form (both directions). Until then, or where a form cannot be made, small_mlp and
        // small_mlp_backward run.
        static constexpr bool relu_units = [] {
            if constexpr (small_mlp)
                return bound_t<0>::in_features == 1 &&
                       detail::relu_function<typename bound_t<1>::function>;
            else
                return false;
        }();
        [[no_unique_address]] std::conditional_t<relu_units, kernels::relu_units<S>,
                                                 detail::no_relu_units>
            units;

        /// Remakes `units` from the layers' parameters (a no-op unless relu_units).
        void remake_units() {
            if constexpr (relu_units) {
                const auto& l0 = std::get<0>(layers);
                const auto& l2 = std::get<2>(layers);
                if (l0.weight.grad || l0.bias.grad || l2.weight.grad || l2.bias.grad)
                    units.make_for_training(l0.weight.data(), l0.bias.data(), l2.weight.data(),
                                            l2.bias.data(), bound_t<0>::out_features,
                                            bound_t<2>::out_features);
                else
                    units.make(l0.weight.data(), l0.bias.data(), l2.weight.data(), l2.bias.data(),
                               bound_t<0>::out_features, bound_t<2>::out_features);
            }
        }

        void forward(cview<S> in, view<S> y, index_t batch, S* scratch) const {
            if constexpr (relu_units) {
                if (!units.empty() && kernels::tuning().mlp && kernels::tuning().relu_units)
                    return kernels::relu_units_mlp<S, int(bound_t<2>::out_features)>(
                        units, in.data, in.stride, y.data, y.stride, batch);
            }
            if constexpr (conv_chain) {
                if constexpr (kernels::switchable)
                    if (!kernels::tuning().conv || !kernels::tuning().fuse_activation)
                        return forward_layers(in, y, batch, scratch);
                const auto& l0 = std::get<0>(layers);
                const auto& l2 = std::get<2>(layers);
                chain_kernel::run(l0.weight.data(), l0.bias.data(), l2.weight.data(),
                                  bound_t<2>::has_bias ? l2.bias.data() : nullptr, in.data,
                                  in.stride, y.data, y.stride, batch, scratch,
                                  typename bound_t<1>::function{});
            } else if constexpr (small_mlp) {
                if constexpr (kernels::switchable)
                    if (!kernels::tuning().mlp) return forward_layers(in, y, batch, scratch);
                using L0 = bound_t<0>;
                using L2 = bound_t<2>;
                using F = typename bound_t<1>::function;
                const auto& l0 = std::get<0>(layers);
                const auto& l2 = std::get<2>(layers);
                kernels::small_mlp<S, int(L0::in_features), int(L0::out_features),
                                   int(L2::out_features), F>::run(in.data, in.stride,
                                                                  l0.weight.data(),
                                                                  l0.bias.data(),
                                                                  l2.weight.data(),
                                                                  l2.bias.data(), y.data,
                                                                  y.stride, batch, F{});
            } else {
                forward_layers(in, y, batch, scratch);
            }
        }

    private:
        void forward_layers(cview<S> in, view<S> y, index_t batch, S* scratch) const {
            S* ping = scratch;
            S* pong = scratch + width * batch;
            S* layer_scratch_ptr = scratch + 2 * width * batch;
            cview<S> cur = in;
            [&]<std::size_t... I>(std::index_sequence<I...>) {
                (
                    [&] {
                        if constexpr (!skipped<I>()) {
                            // A fused pair writes the activation's output shape, the same.
                            constexpr bool last = I + 1 == n || (I + 2 == n && fuses_next<I>());
                            using L = bound_t<I>;
                            view<S> dst;
                            if constexpr (last) {
                                dst = y;
                            } else if (layer_elementwise<L>() && cur.data != in.data) {
                                dst = {const_cast<S*>(cur.data), L::out.size()};  // in place
                            } else {
                                dst = {cur.data == ping ? pong : ping, L::out.size()};
                            }
                            if constexpr (fuses_next<I>()) {
                                using A = bound_t<I + 1>;
                                auto fused = [&] {
                                    std::get<I>(layers).forward_act(cur, dst, batch,
                                                                    layer_scratch_ptr,
                                                                    typename A::function{});
                                };
                                if constexpr (!kernels::switchable) {
                                    fused();
                                } else if (kernels::tuning().fuse_activation) {
                                    fused();
                                } else {  // measuring: the activation as a pass of its own
                                    std::get<I>(layers).forward(cur, dst, batch, layer_scratch_ptr);
                                    std::get<I + 1>(layers).forward(dst, dst, batch, nullptr);
                                }
                            } else
                                std::get<I>(layers).forward(cur, dst, batch, layer_scratch_ptr);
                            cur = dst;
                        }
                    }(),
                    ...);
            }(std::make_index_sequence<n>{});
        }

    public:
        static constexpr index_t flops(index_t batch) {
            return [&]<std::size_t... I>(std::index_sequence<I...>) {
                return (layer_flops<bound_t<I>>(batch) + ... + 0);
            }(std::make_index_sequence<n>{});
        }

        template <class V>
        void visit(V&& v, const std::string& prefix) {
            if constexpr (relu_units) {
                // Layer 0's weight names remake_units (tensor_ref::remake).
                const S* w1 = std::get<0>(layers).weight.data();
                visit_layers(
                    [&](const std::string& key, const tensor_ref<S>& t) {
                        if (t.real != w1)
                            return v(key, t);
                        tensor_ref<S> r = t;
                        r.remake = [](void* self) { static_cast<bind*>(self)->remake_units(); };
                        r.owner = this;
                        return v(key, r);
                    },
                    prefix);
            } else {
                visit_layers(v, prefix);
            }
        }

    private:
        template <class V>
        void visit_layers(V&& v, const std::string& prefix) {
            [&]<std::size_t... I>(std::index_sequence<I...>) {
                (visit_layer(std::get<I>(layers), v, prefix + std::to_string(I) + "."), ...);
            }(std::make_index_sequence<n>{});
        }

    public:
        // ---- Backward ----
        // Layer I maps a_I to a_{I+1} (a_0 = x, a_n = y). backward recomputes from x the a_i
        // (0 < i < n) that some layer's backward reads - layer i's input if it reads x, layer
        // i-1's output if it reads y - each into a slot of its own; the others pass through two
        // temporaries, with the forward's fusion of Linear/Conv2d + activation where the
        // activation's input is not kept (Linear + ReLU: only the ReLU's output is). Then the
        // layers' backward run from the last to the first, the gradients ping-ponging between
        // the same two buffers (element-wise layers in place), until no layer below wants one.

        static constexpr bool backward_reads_x = true;
        static constexpr bool backward_reads_y = layer_backward_reads_y<bound_t<n - 1>>();

    private:
        template <std::size_t I>
        static constexpr bool kept() {
            if constexpr (I == 0 || I >= n)
                return false;
            else
                return layer_backward_reads_x<bound_t<I>>() ||
                       layer_backward_reads_y<bound_t<I - 1>>();
        }
        template <std::size_t I>
        static constexpr index_t activation_width() {
            if constexpr (I == 0)
                return D.size();
            else
                return bound_t<I - 1>::out.size();
        }
        /// Scalars per sample of the slots of the kept a_i, i < I.
        template <std::size_t I>
        static constexpr index_t kept_before() {
            return [&]<std::size_t... J>(std::index_sequence<J...>) {
                return ((kept<J>() ? activation_width<J>() : 0) + ... + index_t(0));
            }(std::make_index_sequence<I>{});
        }
        static constexpr std::size_t last_kept = [] {
            std::size_t m = 0;
            [&]<std::size_t... I>(std::index_sequence<I...>) {
                ((m = kept<I>() ? I : m), ...);
            }(std::make_index_sequence<n>{});
            return m;
        }();
        static constexpr index_t max_output_width = [] {
            return [&]<std::size_t... I>(std::index_sequence<I...>) {
                return std::max({index_t(0), bound_t<I>::out.size()...});
            }(std::make_index_sequence<n>{});
        }();
        /// Whether a layer before layer I may have parameters.
        template <std::size_t I>
        static constexpr bool parameters_below() {
            return [&]<std::size_t... J>(std::index_sequence<J...>) {
                return (layer_has_parameters<bound_t<J>>() || ... || false);
            }(std::make_index_sequence<I>{});
        }
        // Recomputation: layer I writes the activation's output directly when a_{I+1} is not
        // kept, and the activation is then skipped.
        template <std::size_t I>
        static constexpr bool recompute_fuses() {
            if constexpr (I + 1 >= n)
                return false;
            else
                return fuses_next<I>() && !kept<I + 1>();
        }
        template <std::size_t I>
        static constexpr bool recompute_skipped() {
            if constexpr (I == 0)
                return false;
            else
                return recompute_fuses<I - 1>() && !recompute_skipped<I - 1>();
        }
        // Kept activations lie side by side in each sample's row of `slots` (kept_before<n>()
        // scalars, rows slots.stride apart).
        template <std::size_t I>
        static cview<S> kept_activation(cview<S> slots) {
            if constexpr (kept<I>())
                return {slots.data + kept_before<I>(), slots.stride};
            else
                return {nullptr, activation_width<I>()};
        }

        /// a_1 .. a_last_kept from x, the kept ones into their slots; with `y.data`, on to the
        /// output y (forward_keeping).
        void recompute(cview<S> x, index_t batch, view<S> slots, S* tmp, S* work,
                       view<S> y = {}) const {
            S* t0 = tmp;
            S* t1 = tmp + max_output_width * batch;
            cview<S> cur = x;
            const bool to_output = y.data != nullptr;
            [&]<std::size_t... I>(std::index_sequence<I...>) {
                (
                    [&] {
                        if constexpr (!recompute_skipped<I>()) {
                            if (I >= last_kept && !to_output) return;
                            constexpr bool fuse = recompute_fuses<I>();
                            constexpr std::size_t k = fuse ? I + 2 : I + 1;  // a_k is written
                            constexpr index_t w = activation_width<k>();
                            using L = bound_t<I>;
                            const bool cur_is_tmp = cur.data == t0 || cur.data == t1;
                            view<S> dst;
                            if constexpr (k == n)
                                dst = y;
                            else if constexpr (kept<k>())
                                dst = {slots.data + kept_before<k>(), slots.stride};
                            else if (layer_elementwise<L>() && !fuse && cur_is_tmp)
                                dst = {const_cast<S*>(cur.data), w};  // in place
                            else
                                dst = {cur.data == t0 ? t1 : t0, w};
                            if constexpr (fuse)
                                std::get<I>(layers).forward_act(cur, dst, batch, work,
                                                                typename bound_t<I + 1>::function{});
                            else
                                std::get<I>(layers).forward(cur, dst, batch, work);
                            cur = dst;
                        }
                    }(),
                    ...);
            }(std::make_index_sequence<n>{});
        }

        static constexpr index_t layer_work(index_t batch) {
            return [&]<std::size_t... I>(std::index_sequence<I...>) {
                return std::max({index_t(0), layer_scratch<bound_t<I>>(batch)...,
                                 layer_backward_scratch<bound_t<I>>(batch)...});
            }(std::make_index_sequence<n>{});
        }

        // small_mlp_backward for a small MLP (void otherwise; named only where small_mlp holds).
        template <bool Small, class = void>
        struct small_mlp_kernel {
            using type = void;
            static constexpr index_t scratch = 0;
        };
        template <class Dummy>
        struct small_mlp_kernel<true, Dummy> {
            using type = kernels::small_mlp_backward<S, int(bound_t<0>::in_features),
                                                     int(bound_t<0>::out_features),
                                                     int(bound_t<2>::out_features),
                                                     typename bound_t<1>::function>;
            static constexpr index_t scratch = type::scratch_size;
        };

    public:
        /// Scalars per sample that forward_keeping keeps for backward: the activations some
        /// layer's backward reads. None for the fused kernels (small MLP, convolution chain),
        /// whose backward recomputes its hidden layer itself.
        static constexpr index_t kept_width() {
            return small_mlp || conv_chain ? 0 : kept_before<n>();
        }
        /// forward, keeping the activations that the layers' backward reads in `kept` (side by
        /// side in each sample's row); backward given them (layer_backward_args::kept) then
        /// recomputes nothing. Scratch as forward's.
        void forward_keeping(cview<S> x, view<S> y, index_t batch, view<S> kept,
                             S* scratch) const {
            if constexpr (kept_width() == 0)
                forward(x, y, batch, scratch);
            else
                recompute(x, batch, kept, scratch, scratch + 2 * max_output_width * batch, y);
        }

        /// The kept activations, two buffers of the widest layer output (temporaries, then
        /// gradients), and the layers' forward or backward scratch; for a small MLP, at least
        /// the partial sums of small_mlp_backward.
        static constexpr index_t backward_scratch_size(index_t batch) {
            index_t units_scratch = 0;
            if constexpr (relu_units)
                units_scratch = (kernels::relu_units<S>::backward_scratch_bytes(
                                     bound_t<0>::out_features, bound_t<2>::out_features, batch) +
                                 index_t(sizeof(S)) - 1) /
                                index_t(sizeof(S));
            return std::max({(kept_before<n>() + 2 * max_output_width) * batch + layer_work(batch),
                             small_mlp_kernel<small_mlp>::scratch, units_scratch});
        }

        /// A small MLP (forward's small_mlp) runs small_mlp_backward on every sample (the last
        /// ones as a padded group), or relu_units_backward where it has the training form; any
        /// other Sequential the layers' backward (backward_layers).
        void backward(const layer_backward_args<S>& a) const {
            if (!a.gx.data && !(a.param_grads && parameters_below<n>())) return;
            if constexpr (small_mlp) {
                bool fused = true;
                if constexpr (kernels::switchable) fused = kernels::tuning().mlp;
                if constexpr (relu_units)
                    if (fused && units.trained() && kernels::tuning().relu_units)
                        return backward_units(a);
                if (fused) return backward_small_mlp(a);
            }
            backward_layers(a);
        }

    private:
        void backward_units(const layer_backward_args<S>& a) const {
            constexpr index_t O = bound_t<2>::out_features;
            const auto& l0 = std::get<0>(layers);
            const auto& l2 = std::get<2>(layers);
            kernels::relu_units_backward<S, int(O)>(
                units, a.x.data, a.x.stride, a.gy.data, a.gy.stride, a.gx.data, a.gx.stride,
                l0.weight.data(), l0.bias.data(), l2.weight.data(), a.grad_of(l0.weight),
                a.grad_of(l0.bias), a.grad_of(l2.weight), bound_t<0>::out_features, a.batch,
                a.scratch);
            if (S* gb = a.grad_of(l2.bias))
                kernels::add_row_sums(gb, a.gy.data, a.gy.stride, a.batch, O);
        }

        void backward_small_mlp(const layer_backward_args<S>& a) const {
            using kernel = typename small_mlp_kernel<true>::type;
            constexpr index_t O = bound_t<2>::out_features;
            const auto& l0 = std::get<0>(layers);
            const auto& l2 = std::get<2>(layers);
            if (a.batch == 0) return;
            kernel::run(a.x.data, a.x.stride, a.gy.data, a.gy.stride, a.gx.data, a.gx.stride,
                        l0.weight.data(), l0.bias.data(), l2.weight.data(), a.grad_of(l0.weight),
                        a.grad_of(l0.bias), a.grad_of(l2.weight), a.batch, a.scratch,
                        typename bound_t<1>::function{});
            if (S* gb = a.grad_of(l2.bias))
                kernels::add_row_sums(gb, a.gy.data, a.gy.stride, a.batch, O);
        }

        void backward_layers(const layer_backward_args<S>& a) const {
            const index_t batch = a.batch;
            S* buf = a.scratch + kept_before<n>() * batch;
            S* work = buf + 2 * max_output_width * batch;
            // forward_keeping's (none where it keeps nothing: the fused kernels' forward), or
            // recomputed now
            cview<S> slots = kept_width() > 0 ? a.kept : cview<S>{};
            if (!slots.data) {
                recompute(a.x, batch, {a.scratch, kept_before<n>()}, buf, work);
                slots = {a.scratch, kept_before<n>()};
            }
            S* g0 = buf;
            S* g1 = buf + max_output_width * batch;
            cview<S> gy = a.gy;
            bool more = true;
            [&]<std::size_t... R>(std::index_sequence<R...>) {
                (
                    [&] {
                        constexpr std::size_t I = n - 1 - R;
                        using L = bound_t<I>;
                        if (!more) return;
                        layer_backward_args<S> b;
                        b.batch = batch;
                        b.gy = gy;
                        b.scratch = work;
                        b.param_grads = a.param_grads;
                        b.grad_shift = a.grad_shift;
                        if constexpr (I == 0) {
                            b.x = a.x;
                            b.gx = a.gx;
                        } else {
                            b.x = kept_activation<I>(slots);
                            const bool wanted =
                                a.gx.data || (a.param_grads && parameters_below<I>());
                            constexpr index_t w = activation_width<I>();
                            if (!wanted) {
                                more = false;  // nothing below wants a gradient
                                if constexpr (!layer_has_parameters<L>()) return;
                            } else if (layer_elementwise<L>() && (gy.data == g0 || gy.data == g1)) {
                                b.gx = {const_cast<S*>(gy.data), w};  // in place
                            } else {
                                b.gx = {gy.data == g0 ? g1 : g0, w};
                            }
                        }
                        if constexpr (I + 1 == n)
                            b.y = a.y;
                        else
                            b.y = kept_activation<I + 1>(slots);
                        std::get<I>(layers).backward(b);
                        gy = b.gx;
                    }(),
                    ...);
            }(std::make_index_sequence<n>{});
        }
    };
};

}  // namespace inn::nn
