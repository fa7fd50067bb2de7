#pragma once
// Element-wise activations (torch.nn.ReLU, LeakyReLU, ELU, Tanh, Sigmoid). They hold no state,
// occupy an index in a Sequential (so state_dict keys skip them as PyTorch's do) and run in place.

#include <cmath>

#include "layer.hpp"

namespace inn::nn {

namespace detail {
template <class F>
struct elementwise_layer {
    static constexpr dims output_shape(dims d) { return d; }
    template <Scalar S, dims D>
    struct bind {
        static constexpr dims out = D;
        static constexpr bool elementwise = true;
        /// The scalar function, for layers that apply it while writing their output.
        using function = F;
        explicit bind(generator&) {}
        void forward(cview<S> in, view<S> y, index_t batch, S*) const {
            y.matrix(batch, D.size()) = in.matrix(batch, D.size()).unaryExpr(F{});
        }
    };
};

// NaN in, NaN out, in every activation, as in PyTorch: a NaN weight or input must not turn
// into finite wrong outputs. (ReLU's comparison puts NaN on the branch that returns x; the
// others compute NaN from NaN.)
struct relu_fn {
    static constexpr bool relu = true;  // kernels may use a vector max (kernels/simd.hpp)
    // max(0, x) as PyTorch's clamp_min and x86's maxps compute it: x unless 0 is greater.
    template <class T>
    T operator()(T x) const { return T(0) > x ? T(0) : x; }
};
template <double Slope>
struct leaky_relu_fn {
    template <class T>
    T operator()(T x) const { return x > T(0) ? x : T(Slope) * x; }
};
template <double Alpha>
struct elu_fn {
    template <class T>
    T operator()(T x) const { return x > T(0) ? x : T(Alpha) * std::expm1(x); }
};
struct tanh_fn {
    template <class T>
    T operator()(T x) const { return std::tanh(x); }
};
struct sigmoid_fn {
    template <class T>
    T operator()(T x) const { return T(1) / (T(1) + std::exp(-x)); }
};
}  // namespace detail

struct ReLU : detail::elementwise_layer<detail::relu_fn> {};
template <double NegativeSlope = 0.01>
struct LeakyReLU : detail::elementwise_layer<detail::leaky_relu_fn<NegativeSlope>> {};
template <double Alpha = 1.0>
struct ELU : detail::elementwise_layer<detail::elu_fn<Alpha>> {};
struct Tanh : detail::elementwise_layer<detail::tanh_fn> {};
struct Sigmoid : detail::elementwise_layer<detail::sigmoid_fn> {};

}  // namespace inn::nn
