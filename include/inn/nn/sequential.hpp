#pragma once
// nn::Sequential<Layers...>: layers applied in order (torch.nn.Sequential). Layer i's tensors are
// named `<i>.weight`, `<i>.bias` — activations take an index too, as in PyTorch.
// Intermediate results ping-pong between two scratch regions; element-wise layers run in place,
// or inside the layer before them (Linear/Conv2d + activation in one pass over the output);
// Linear -> activation -> Linear with small ends runs as one kernel (kernels::small_mlp).

#include <algorithm>
#include <array>
#include <tuple>

#include "kernels/mlp.hpp"
#include "kernels/simd.hpp"
#include "kernels/switches.hpp"
#include "layer.hpp"

namespace inn::nn {

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

        template <std::size_t I, dims In, class... Ls>
        struct chain;

        // Binds layer I to the output of layer I-1.
        template <std::size_t I, dims In, class L, class... Rest>
        struct chain<I, In, L, Rest...> {
            using type = bind_layer<L, S, In>;
            using next = chain<I + 1, type::out, Rest...>;
            static constexpr dims out = next::out;
            static constexpr index_t max_width = std::max(type::out.size(), next::max_width);
            static constexpr index_t max_scratch(index_t b) {
                return std::max(layer_scratch<type>(b), next::max_scratch(b));
            }
        };
        template <std::size_t I, dims In>
        struct chain<I, In> {
            static constexpr dims out = In;
            static constexpr index_t max_width = 0;
            static constexpr index_t max_scratch(index_t) { return 0; }
        };
        using chain_t = chain<0, D, Layers...>;

        template <std::size_t I, class C>
        struct nth {
            using type = typename nth<I - 1, typename C::next>::type;
            using link = typename nth<I - 1, typename C::next>::link;
        };
        template <class C>
        struct nth<0, C> {
            using type = typename C::type;
            using link = C;
        };
        template <std::size_t I>
        using bound_t = typename nth<I, chain_t>::type;

        template <class Seq>
        struct tuple_of;
        template <std::size_t... I>
        struct tuple_of<std::index_sequence<I...>> {
            using type = std::tuple<bound_t<I>...>;
        };
        using layers_t = typename tuple_of<std::make_index_sequence<n>>::type;

        static constexpr dims out = chain_t::out;
        static constexpr index_t width = chain_t::max_width;

        layers_t layers;

        explicit bind(generator& g)
            : layers([&]<std::size_t... I>(std::index_sequence<I...>) {
                  return layers_t{bound_t<I>(g)...};  // left to right: PyTorch's init order
              }(std::make_index_sequence<n>{})) {}

        static constexpr index_t scratch_size(index_t batch) {
            return 2 * width * batch + chain_t::max_scratch(batch);
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
                return layer_elementwise<A>() && requires { typename A::function; } &&
                       requires(const L& l, cview<S> x, view<S> y, index_t b, S* w) {
                           l.forward_act(x, y, b, w, typename A::function{});
                       };
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
