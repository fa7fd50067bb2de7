#pragma once
// The subnets' layers on the device: each nn layer spec gets a device twin built from the host
// layer (its parameters uploaded). Linear is a dense product (blas.hpp) and one element-wise
// pass adding the bias and applying a following activation (or, with context::use_epilogues,
// bias and ReLU in cuBLASLt's epilogue of the product); activations are element-wise
// functors; Sequential ping-pongs between two scratch regions as the host's does.
//
//   cuda::layer_t<Spec, S, In>   the device layer of `Spec` bound to input shape In
//
// A layer without a device twin is a compile error naming it.

#include <cstddef>
#include <tuple>
#include <utility>

#include "../../core/error_report.hpp"
#include "../../nn/activation.hpp"
#include "../../nn/layer.hpp"
#include "../../nn/linear.hpp"
#include "../../nn/sequential.hpp"
#include "blas.hpp"
#include "buffer.hpp"
#include "device.hpp"
#include "launch.hpp"
#include "math.hpp"

namespace inn::error {
template <class Layer> struct layer_not_ported_to_cuda {
    static_assert(check_failed<Layer>,
                  "inn::cuda: this nn layer (named above) has no CUDA implementation yet; "
                  "docs/gpu.md lists what runs on the device");
};
} // namespace inn::error

namespace inn::cuda {

// ---- activations ---------------------------------------------------------------------------

/// The device form of a host activation function (nn/activation.hpp), with PyTorch's NaN
/// behaviour kept: NaN in, NaN out.
template <class HostFn> struct activation;
template <> struct activation<nn::detail::relu_fn> {
    template <class T> INN_HD T operator()(T x) const { return T(0) > x ? T(0) : x; }
};
template <double Slope> struct activation<nn::detail::leaky_relu_fn<Slope>> {
    template <class T> INN_HD T operator()(T x) const { return x > T(0) ? x : T(Slope) * x; }
};
template <double Alpha> struct activation<nn::detail::elu_fn<Alpha>> {
    template <class T> INN_HD T operator()(T x) const {
        return x > T(0) ? x : T(Alpha) * math::expm1(x);
    }
};
template <> struct activation<nn::detail::tanh_fn> {
    template <class T> INN_HD T operator()(T x) const { return math::tanh(x); }
};
template <> struct activation<nn::detail::sigmoid_fn> {
    template <class T> INN_HD T operator()(T x) const { return T(1) / (T(1) + math::exp(-x)); }
};
/// No activation (a Linear layer that is not followed by one).
struct identity {
    template <class T> INN_HD T operator()(T x) const { return x; }
};

/// y[b, i] = f(x[b, i] (+ bias[i])) over a (rows x cols) strided batch; in place when x == y.
template <Scalar S, class F> struct map_rows {
    const S* x;
    index_t ldx;
    S* y;
    index_t ldy;
    const S* bias; // null: none
    index_t cols;
    F f;
    INN_HD void operator()(index_t k) const {
        const index_t b = fast_div(k, cols), i = k - b * cols;
        S v = x[b * ldx + i];
        if (bias)
            v += bias[i];
        y[b * ldy + i] = f(v);
    }
};

namespace detail {
// A spec without a device twin: the base's static_assert names it.
template <class Spec, Scalar S, dims In> struct layer_impl : error::layer_not_ported_to_cuda<Spec> {
    using type = void;
};
} // namespace detail

/// The device layer of spec `Spec` on inputs of shape In.
template <class Spec, Scalar S, dims In>
using layer_t = typename detail::layer_impl<Spec, S, In>::type;

/// The device function of an activation spec (ReLU -> activation<relu_fn>), `ok` false for any
/// other layer. (Spelled per spec, not detected through a requires-expression: nvcc's device
/// pass may judge such an expression differently from its host pass, and the two must agree on
/// which kernels exist.)
template <class Spec> struct activation_of {
    static constexpr bool ok = false;
    using type = identity;
};
template <> struct activation_of<nn::ReLU> {
    static constexpr bool ok = true;
    using type = activation<nn::detail::relu_fn>;
};
template <double Slope> struct activation_of<nn::LeakyReLU<Slope>> {
    static constexpr bool ok = true;
    using type = activation<nn::detail::leaky_relu_fn<Slope>>;
};
template <double Alpha> struct activation_of<nn::ELU<Alpha>> {
    static constexpr bool ok = true;
    using type = activation<nn::detail::elu_fn<Alpha>>;
};
template <> struct activation_of<nn::Tanh> {
    static constexpr bool ok = true;
    using type = activation<nn::detail::tanh_fn>;
};
template <> struct activation_of<nn::Sigmoid> {
    static constexpr bool ok = true;
    using type = activation<nn::detail::sigmoid_fn>;
};

/// Whether every layer of `Spec` has a device twin (modules with subnets check it before they
/// offer a device binding).
template <class Spec> constexpr bool layer_on_device = false;
template <int In, int Out, bool Bias>
constexpr bool layer_on_device<nn::Linear<In, Out, Bias>> = true;
template <class... Ls>
constexpr bool layer_on_device<nn::Sequential<Ls...>> = (layer_on_device<Ls> && ...);
template <> constexpr bool layer_on_device<nn::ReLU> = true;
template <double Slope> constexpr bool layer_on_device<nn::LeakyReLU<Slope>> = true;
template <double Alpha> constexpr bool layer_on_device<nn::ELU<Alpha>> = true;
template <> constexpr bool layer_on_device<nn::Tanh> = true;
template <> constexpr bool layer_on_device<nn::Sigmoid> = true;

/// An element-wise layer (activation) on the device.
template <Scalar S, dims D, class HostFn> struct elementwise_layer {
    using host_type = typename nn::detail::elementwise_layer<HostFn>::template bind<S, D>;
    using function = activation<HostFn>;
    static constexpr dims out = D;
    static constexpr bool elementwise = true;

    elementwise_layer(const context&, const host_type&) {}
    void upload(const context&, const host_type&) {}
    static constexpr index_t scratch_size(index_t) { return 0; }

    void forward(const context& ctx, dcview<S> x, dview<S> y, index_t batch, S*) const {
        for_each_index(ctx, batch * D.size(),
                       map_rows<S, function>{x.data, x.stride, y.data, y.stride, nullptr, D.size(),
                                             function{}});
    }
};

/// nn::Linear on the device: y = act(x Wᵀ + b), the product through blas::gemm_nt.
template <Scalar S, dims D, int In, int Out, bool Bias> struct linear_layer {
    using host_type = typename nn::Linear<In, Out, Bias>::template bind<S, D>;
    static constexpr dims out = host_type::out;

    device_buffer<S> weight{index_t(Out) * In};
    device_buffer<S> bias{Bias ? index_t(Out) : 0};

    linear_layer(const context& ctx, const host_type& h) { upload(ctx, h); }
    void upload(const context& ctx, const host_type& h) {
        copy_to_device(ctx, h.weight.data(), weight.data(), weight.size());
        if constexpr (Bias)
            copy_to_device(ctx, h.bias.data(), bias.data(), bias.size());
    }
    static constexpr index_t scratch_size(index_t) { return 0; }

    void forward(const context& ctx, dcview<S> x, dview<S> y, index_t batch, S* s) const {
        forward_act(ctx, x, y, batch, s, identity{});
    }
    template <class F>
    void forward_act(const context& ctx, dcview<S> x, dview<S> y, index_t batch, S*, F f) const {
        // Bias and ReLU inside the product where cuBLASLt offers it.
        constexpr bool relu = std::is_same_v<F, activation<nn::detail::relu_fn>>;
        if constexpr (relu || (Bias && std::is_same_v<F, identity>))
            if (ctx.epilogues() &&
                epilogue_.run(ctx, batch, Out, In, x.data, x.stride, weight.data(), y.data,
                              y.stride, Bias ? bias.data() : nullptr, relu))
                return;
        blas::gemm_nt<S>(ctx, batch, Out, In, x.data, x.stride, weight.data(), y.data, y.stride);
        if (Bias || !std::is_same_v<F, identity>)
            for_each_index(ctx, batch * Out,
                           map_rows<S, F>{y.data, y.stride, y.data, y.stride,
                                          Bias ? bias.data() : nullptr, Out, f});
    }

  private:
    blas::epilogue_gemm<S> epilogue_;
};

template <class Spec> constexpr bool is_linear = false;
template <int In, int Out, bool Bias> constexpr bool is_linear<nn::Linear<In, Out, Bias>> = true;

/// nn::Sequential on the device: layer outputs alternate between two scratch regions; a layer
/// followed by an activation applies it as it writes (the activation is then skipped).
template <Scalar S, dims In, class... Ls> struct sequential_layer {
    using host_type = typename nn::Sequential<Ls...>::template bind<S, In>;
    static constexpr std::size_t n = sizeof...(Ls);
    static constexpr dims out = host_type::out;
    static constexpr index_t width = host_type::width;

    template <std::size_t I> static constexpr dims input_of() {
        if constexpr (I == 0)
            return In;
        else
            return host_type::template bound_t<I - 1>::out;
    }
    template <class Seq> struct tuple_of;
    template <std::size_t... I> struct tuple_of<std::index_sequence<I...>> {
        using type = std::tuple<layer_t<Ls, S, input_of<I>()>...>;
    };
    using layers_t = typename tuple_of<std::index_sequence_for<Ls...>>::type;
    template <std::size_t I> using layer_at = std::tuple_element_t<I, layers_t>;

    layers_t layers;

    sequential_layer(const context& ctx, const host_type& h)
        : layers(make(ctx, h, std::index_sequence_for<Ls...>{})) {}
    void upload(const context& ctx, const host_type& h) {
        [&]<std::size_t... I>(std::index_sequence<I...>) {
            (std::get<I>(layers).upload(ctx, std::get<I>(h.layers)), ...);
        }
        (std::index_sequence_for<Ls...>{});
    }

    static constexpr index_t scratch_size(index_t batch) {
        index_t m = 0;
        [&]<std::size_t... I>(std::index_sequence<I...>) {
            ((m = std::max(m, layer_at<I>::scratch_size(batch))), ...);
        }
        (std::index_sequence_for<Ls...>{});
        return 2 * width * batch + m;
    }

    // Layer I is a Linear followed by an activation, which it applies as it writes. (Decided
    // from the specs: see activation_of.)
    template <std::size_t I> static constexpr bool fuses_next() {
        if constexpr (I + 1 >= n)
            return false;
        else
            return is_linear<std::tuple_element_t<I, std::tuple<Ls...>>> &&
                   activation_of<std::tuple_element_t<I + 1, std::tuple<Ls...>>>::ok;
    }
    template <std::size_t I> static constexpr bool skipped() {
        if constexpr (I == 0)
            return false;
        else
            return fuses_next<I - 1>() && !skipped<I - 1>();
    }

    void forward(const context& ctx, dcview<S> x, dview<S> y, index_t batch, S* scratch) const {
        S* ping = scratch;
        S* pong = scratch + width * batch;
        S* inner = scratch + 2 * width * batch;
        dcview<S> cur = x;
        [&]<std::size_t... I>(std::index_sequence<I...>) {
            (
                [&] {
                    if constexpr (!skipped<I>()) {
                        constexpr bool last = I + 1 == n || (I + 2 == n && fuses_next<I>());
                        dview<S> dst;
                        if constexpr (last)
                            dst = y;
                        else
                            dst = {cur.data == ping ? pong : ping, layer_at<I>::out.size()};
                        if constexpr (fuses_next<I>())
                            std::get<I>(layers).forward_act(ctx, cur, dst, batch, inner,
                                                            typename layer_at<I + 1>::function{});
                        else
                            std::get<I>(layers).forward(ctx, cur, dst, batch, inner);
                        cur = dst;
                    }
                }(),
                ...);
        }
        (std::index_sequence_for<Ls...>{});
    }

  private:
    template <std::size_t... I>
    static layers_t make(const context& ctx, const host_type& h, std::index_sequence<I...>) {
        return layers_t{layer_at<I>(ctx, std::get<I>(h.layers))...};
    }
};

namespace detail {
template <int In, int Out, bool Bias, Scalar S, dims D>
struct layer_impl<nn::Linear<In, Out, Bias>, S, D> {
    using type = linear_layer<S, D, In, Out, Bias>;
};
template <class... Ls, Scalar S, dims D> struct layer_impl<nn::Sequential<Ls...>, S, D> {
    using type = sequential_layer<S, D, Ls...>;
};
template <Scalar S, dims D> struct layer_impl<nn::ReLU, S, D> {
    using type = elementwise_layer<S, D, nn::detail::relu_fn>;
};
template <double Slope, Scalar S, dims D> struct layer_impl<nn::LeakyReLU<Slope>, S, D> {
    using type = elementwise_layer<S, D, nn::detail::leaky_relu_fn<Slope>>;
};
template <double Alpha, Scalar S, dims D> struct layer_impl<nn::ELU<Alpha>, S, D> {
    using type = elementwise_layer<S, D, nn::detail::elu_fn<Alpha>>;
};
template <Scalar S, dims D> struct layer_impl<nn::Tanh, S, D> {
    using type = elementwise_layer<S, D, nn::detail::tanh_fn>;
};
template <Scalar S, dims D> struct layer_impl<nn::Sigmoid, S, D> {
    using type = elementwise_layer<S, D, nn::detail::sigmoid_fn>;
};
} // namespace detail

} // namespace inn::cuda

// Layers with their own headers (they specialise layer_impl and layer_on_device above).
#include "conv2d.hpp"
