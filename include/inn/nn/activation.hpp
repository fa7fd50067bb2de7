#pragma once
// Element-wise activations (torch.nn.ReLU, LeakyReLU, ELU, Tanh, Sigmoid). They hold no state,
// occupy an index in a Sequential (so state_dict keys skip them as PyTorch's do) and run in place.
//
// Backward: gx = gy * f'(x), computed as PyTorch's autograd computes it (derivatives.yaml), from
// the output where PyTorch does (ReLU, Tanh, Sigmoid) and from the input otherwise (LeakyReLU,
// ELU), with PyTorch's branches, so that NaN and the kinks behave alike:
//   ReLU       y <= 0 ? 0 : gy          (threshold_backward: a select, so 0 at x = 0, and 0 even
//                                        for a NaN gy there; a NaN x gives gy)
//   LeakyReLU  x > 0 ? gy : gy * slope  (a NaN x gives gy * slope)
//   ELU        x <= 0 ? gy * alpha * exp(x) : gy   (a NaN x gives gy)
//   Tanh       gy * (1 - y * y)
//   Sigmoid    gy * (1 - y) * y
// Each states which of x and y it reads (backward_reads_x / backward_reads_y): nn::Sequential
// keeps only the activations some backward reads. The functions' `grad(x or y, gy)` is the
// scalar rule; `backward` over arrays where it is more than a loop of it (ELU's vector exp).

#include <cmath>

#include <Eigen/Core>

#include "kernels/simd.hpp"
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

        static constexpr bool backward_reads_x = F::reads_x;
        static constexpr bool backward_reads_y = !F::reads_x;
        /// gx = gy * f'(x); gx may be gy itself. x (y) may be null where it is not read.
        void backward(const layer_backward_args<S>& a) const {
            if (!a.gx.data) return;
            for (index_t b = 0; b < a.batch; ++b) {
                const S* in = F::reads_x ? a.x.row(b) : a.y.row(b);
                const S* g = a.gy.row(b);
                S* gx = a.gx.row(b);
                if constexpr (requires { F::backward(in, g, gx, D.size()); })
                    F::backward(in, g, gx, D.size());
                else
                    for (index_t i = 0; i < D.size(); ++i) gx[i] = F::grad(in[i], g[i]);
            }
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
    static constexpr bool reads_x = false;
    template <class T>
    static T grad(T y, T gy) { return y <= T(0) ? T(0) : gy; }
};
template <double Slope>
struct leaky_relu_fn {
    template <class T>
    T operator()(T x) const { return x > T(0) ? x : T(Slope) * x; }
    static constexpr bool reads_x = true;  // the sign of y is not that of x for a negative slope
    template <class T>
    static T grad(T x, T gy) { return x > T(0) ? gy : gy * T(Slope); }
};
template <double Alpha>
struct elu_fn {
    template <class T>
    T operator()(T x) const { return x > T(0) ? x : T(Alpha) * std::expm1(x); }
    // From x: alpha * exp(x) recovered as y + alpha would lose its digits where exp(x) is small.
    static constexpr bool reads_x = true;
    template <class T>
    static T grad(T x, T gy) { return x <= T(0) ? gy * T(Alpha) * std::exp(x) : gy; }
    template <class T>
    static void backward(const T* x, const T* gy, T* gx, index_t n) {
        // exp a packet at a time (Eigen's vectorised exp), then PyTorch's branch per element.
        constexpr int L = kernels::simd<T>::lanes;
        using A = Eigen::Array<T, L, 1>;
        index_t i = 0;
        for (; i + L <= n; i += L) {
            const A e = Eigen::Map<const A>(x + i).exp();
            for (int l = 0; l < L; ++l)
                gx[i + l] = x[i + l] <= T(0) ? gy[i + l] * T(Alpha) * e[l] : gy[i + l];
        }
        for (; i < n; ++i) gx[i] = grad(x[i], gy[i]);
    }
};
struct tanh_fn {
    template <class T>
    T operator()(T x) const { return std::tanh(x); }
    static constexpr bool reads_x = false;
    template <class T>
    static T grad(T y, T gy) { return gy * (T(1) - y * y); }
};
struct sigmoid_fn {
    template <class T>
    T operator()(T x) const { return T(1) / (T(1) + std::exp(-x)); }
    static constexpr bool reads_x = false;
    template <class T>
    static T grad(T y, T gy) { return gy * (T(1) - y) * y; }
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
