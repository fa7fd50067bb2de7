#pragma once
// nn::Sequential<Layers...>: layers applied in order (torch.nn.Sequential). Layer i's tensors are
// named `<i>.weight`, `<i>.bias` — activations take an index too, as in PyTorch.
// Intermediate results ping-pong between two scratch regions; element-wise layers run in place,
// or inside the layer before them (Linear/Conv2d + activation in one pass over the output);
// Linear -> activation -> Linear with small ends runs as one kernel (kernels::small_mlp).

#include <algorithm>
#include <array>
#include <tuple>

#include <boost/hana/at.hpp>
#include <boost/hana/fold_left.hpp>
#include <boost/hana/prepend.hpp>
#include <boost/hana/tuple.hpp>
#include <boost/hana/type.hpp>
#include <boost/hana/unpack.hpp>

#include "kernels/mlp.hpp"
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

/// The largest output size of the bound layers in `bound` (a hana tuple of types).
template <class Bound>
constexpr index_t widest_output(Bound bound) {
    return hana::fold_left(bound, index_t(0), [](index_t w, auto t) {
        return std::max(w, decltype(t)::type::out.size());
    });
}
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

        static constexpr index_t scratch_size(index_t batch) {
            return 2 * width * batch +
                   hana::fold_left(bound_types{}, index_t(0), [&](index_t m, auto t) {
                       return std::max(m, layer_scratch<typename decltype(t)::type>(batch));
                   });
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

        void forward(cview<S> in, view<S> y, index_t batch, S* scratch) const {
            if constexpr (small_mlp) {
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
            [&]<std::size_t... I>(std::index_sequence<I...>) {
                (visit_layer(std::get<I>(layers), v, prefix + std::to_string(I) + "."), ...);
            }(std::make_index_sequence<n>{});
        }
    };
};

}  // namespace inn::nn
