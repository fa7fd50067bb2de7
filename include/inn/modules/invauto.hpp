#pragma once
// The "invertible autoencoder" layers of FrEIA (FrEIA.modules.inv_auto_layers;
// docs/freia-semantics.md#invauto):
//
//   InvAutoAct<{.slope_init = 2.0, .learnable = true}>             leaky-ReLU-like, slopes e^±α
//   InvAutoActTwoSided<{.init_pos = 2.0, .init_neg = 0.5}>         separate slopes per side
//   InvAutoFC<>                        y = x Wᵀ + b, "inverse" (y − b) W       (approximate)
//   InvAutoConv2D<{.kernel_size = 3, .padding = 1}>                 conv / transposed conv
//
// (spell `InvAutoAct<InvAutoActOptions{...}>` for clang.) None accepts a condition (FrEIA's
// forward has no `c`).
//
// InvAutoAct / InvAutoActTwoSided are exact bijections of inputs of any rank, one log-slope per
// channel (dim 0 of a sample): y = x · exp(ℓ), log|det J| = Σ ℓ over all non-batch dims, with
//   InvAutoAct:          ℓ = α · sign(x)                      (sign(0) = 0: zero stays zero)
//   InvAutoActTwoSided:  ℓ = α₊ + 0.5 · (α₋ − α₊) · (1 − sign(x))
// and ℓ ← −ℓ in reverse (the sign taken from the reverse input, which has the same sign). ℓ only
// takes three values per channel, so they are computed once per channel and call with FrEIA's
// formula (exactly the per-element values), and the log-det is Σ_c (counts · values).
// Parameters `alpha` / `alpha_pos`, `alpha_neg` of shape (1, C, 1, ...) start at ln(slope);
// `learnable = false` only marks them non-trainable (they stay in the state_dict).
//
// InvAutoFC / InvAutoConv2D are NOT bijections: the reverse pass is the transpose (adjoint) of
// the linear map, which inverts it only while the weight is orthogonal. They declare
// `inversion = inverse_kind::approximate`, so `static_assert(Net::inversion ==
// inverse_kind::exact)` rejects a network containing them. Their log-det is 0 in both
// directions, as in FrEIA (the true log|det W| is not computed); FrEIA also warns on every
// jac=True call and InvAutoFC prints its parameter shapes at construction — here
// the `inversion` trait carries that warning and nothing is printed.
//
// Deliberate differences from FrEIA (compile-time shape errors instead of runtime trouble):
//   * InvAutoFC with dims_out != D and InvAutoConv2D whose output shape differs from its input
//     (dims_out with other channels, or a kernel_size / padding that changes H, W) are not
//     bijective in any sense -> shape_error::invalid_option. So are slopes <= 0 (FrEIA: log of a
//     non-positive number, NaN or -inf parameters), kernel_size < 1 and padding < 0.
//   * InvAutoActFixed (deprecated in FrEIA, and not actually fixed there) is kept as a
//     deprecated subclass with identical behaviour and its own class name.

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <string>
#include <string_view>
#include <utility>

#include "../core/module.hpp"
#include "../core/parameters.hpp"
#include "../nn/conv2d.hpp"

namespace inn {

namespace detail {

/// FrEIA's per-channel parameter shape (1, C, 1, ...): one trailing 1 per spatial dim.
inline tensor_shape invauto_channel_shape(const dims& d) {
    tensor_shape t;
    t.rank = d.rank + 1;
    t.extent[0] = 1;
    t.extent[1] = d.channels();
    for (int i = 2; i < t.rank; ++i) t.extent[std::size_t(i)] = 1;
    return t;
}

/// y = x · exp(ℓ) with ℓ depending only on the channel and sign(x): `factors(c)` returns
/// (exp(ℓ), ℓ) for {x < 0, x == 0, x > 0} of channel c. Adds Σ ℓ to the log-det as
/// Σ_c (count of each sign) · ℓ.
template <Scalar S, index_t C, index_t P>
struct signed_scaling {
    template <class Factors>
    static void apply(const run_args<S>& a, Factors&& factors) {
        for (index_t c = 0; c < C; ++c) {
            const auto [f, l] = factors(c);  // f: exp(ℓ), l: ℓ, for {x < 0, x == 0, x > 0}
            for (index_t b = 0; b < a.batch; ++b) {
                const S* x = a.in[0].row(b) + c * P;
                S* y = a.out[0].row(b) + c * P;
                index_t neg = 0, zero = 0, pos = 0;
                S nan = 0;  // a NaN input makes y and the log-det NaN, as in FrEIA
                for (index_t p = 0; p < P; ++p) {
                    const S v = x[p];
                    if (v > S(0)) {
                        y[p] = v * f[2];
                        ++pos;
                    } else if (v < S(0)) {
                        y[p] = v * f[0];
                        ++neg;
                    } else if (v == S(0)) {
                        y[p] = v * f[1];
                        ++zero;
                    } else {
                        y[p] = v;
                        nan = v;
                    }
                }
                if (a.jac)
                    a.ljd[b] += S(neg) * l[0] + S(zero) * l[1] + S(pos) * l[2] + nan;
            }
        }
    }

    /// The adjoint of the forward apply: dL/dx = dL/dy · exp(ℓ), and for each channel c
    /// `add(c, g)` with g = Σ over the batch and pixels of dL/dℓ = dL/dy · y + dL/dljd, split by
    /// the sign of x {x < 0, x == 0, x > 0} (a NaN input counts nowhere; its dL/dx is NaN).
    template <class Factors, class Add>
    static void backward(const backward_args<S>& a, Factors&& factors, Add&& add) {
        for (index_t c = 0; c < C; ++c) {
            const auto [f, l] = factors(c);
            std::array<S, 3> g{};
            for (index_t b = 0; b < a.batch; ++b) {
                const S* x = a.in[0].row(b) + c * P;
                const S* y = a.out[0].row(b) + c * P;
                const S* gy = a.grad_out[0].row(b) + c * P;
                S* gx = a.grad_in[0].row(b) + c * P;
                const S gl = a.grad_ljd ? a.grad_ljd[b] : S(0);
                for (index_t p = 0; p < P; ++p) {
                    const S v = x[p];
                    const int k = v > S(0) ? 2 : (v < S(0) ? 0 : 1);
                    if (std::isnan(v)) {
                        gx[p] = v;
                        continue;
                    }
                    gx[p] = gy[p] * f[std::size_t(k)];
                    g[std::size_t(k)] += gy[p] * y[p] + gl;
                }
            }
            add(c, g);
        }
    }
};

}  // namespace detail

// ---- InvAutoAct, InvAutoActFixed ----------------------------------------------------------------

struct InvAutoActOptions {
    double slope_init = 2.0;  // e^α on the positive side; must be > 0
    bool learnable = true;
};

template <InvAutoActOptions O = InvAutoActOptions{}>
struct InvAutoAct {
    static constexpr std::string_view name = "InvAutoAct";
    static constexpr InvAutoActOptions options = O;

    static constexpr shape_result output_shapes(const signature& s) {
        if (auto r = expect_single_input(s); !r.ok()) return r;
        if (auto r = expect_no_condition(s); !r.ok()) return r;
        if (!(O.slope_init > 0)) return fail(shape_error::invalid_option);
        return returns({s.in()});
    }

    template <Scalar S, signature Sig>
    struct bind {
        static constexpr index_t C = Sig.in().channels();
        static constexpr index_t P = Sig.in().spatial_size();

        parameter<S> alpha{detail::invauto_channel_shape(Sig.in()), O.learnable};

        // FrEIA: np.log(slope_init) * torch.ones(...), in the network's dtype.
        explicit bind(generator&) { alpha.values.setConstant(S(std::log(O.slope_init))); }

        void forward(const run_args<S>& a) const { run(a, S(1)); }
        void inverse(const run_args<S>& a) const { run(a, S(-1)); }

        /// y = x e^ℓ, ℓ = α sign(x): dL/dx = dL/dy e^ℓ (sign(x) is locally constant; at 0 the
        /// slope is e^0 = 1, as the forward's), dL/dα = Σ sign(x) (dL/dy · y + dL/dljd).
        void backward(const backward_args<S>& a) const {
            detail::signed_scaling<S, C, P>::backward(
                a, [&](index_t c) { return forward_factors(c); },
                [&](index_t c, const std::array<S, 3>& g) {
                    if (S* ga = a.grad_of(alpha))
                        ga[c] += g[2] - g[0];
                });
        }

        template <class V>
        void visit(V&& v, const std::string& prefix) {
            v(prefix + "alpha", alpha.ref());
        }

    private:
        // ℓ = α · sign(x), negated in reverse (FrEIA: log_slope *= -1).
      std::pair<std::array<S, 3>, std::array<S, 3>> factors(index_t c, S direction) const {
          const S al = alpha.values[c];
          const std::array<S, 3> l{direction * (al * S(-1)), direction * (al * S(0)),
                                   direction * (al * S(1))};
          return {std::array<S, 3>{std::exp(l[0]), std::exp(l[1]), std::exp(l[2])}, l};
      }
      std::pair<std::array<S, 3>, std::array<S, 3>> forward_factors(index_t c) const {
          return factors(c, S(1));
      }
        void run(const run_args<S>& a, S direction) const {
            detail::signed_scaling<S, C, P>::apply(
                a, [&](index_t c) { return factors(c, direction); });
        }
    };
};

/// Deprecated in FrEIA ("please use InvAutoAct with the learnable=False argument"): identical to
/// InvAutoAct with the same options; despite its name the slopes stay learnable.
template <InvAutoActOptions O = InvAutoActOptions{}>
struct [[deprecated("inn: InvAutoActFixed is deprecated (as in FrEIA) and not fixed; use "
                    "InvAutoAct<InvAutoActOptions{.learnable = false}>")]] InvAutoActFixed
    : InvAutoAct<O> {
    static constexpr std::string_view name = "InvAutoActFixed";
};

// ---- InvAutoActTwoSided -------------------------------------------------------------------------

struct InvAutoActTwoSidedOptions {
    double init_pos = 2.0;  // slope for x >= 0; must be > 0
    double init_neg = 0.5;  // slope for x < 0; must be > 0
    bool learnable = true;
};

template <InvAutoActTwoSidedOptions O = InvAutoActTwoSidedOptions{}>
struct InvAutoActTwoSided {
    static constexpr std::string_view name = "InvAutoActTwoSided";
    static constexpr InvAutoActTwoSidedOptions options = O;

    static constexpr shape_result output_shapes(const signature& s) {
        if (auto r = expect_single_input(s); !r.ok()) return r;
        if (auto r = expect_no_condition(s); !r.ok()) return r;
        if (!(O.init_pos > 0) || !(O.init_neg > 0)) return fail(shape_error::invalid_option);
        return returns({s.in()});
    }

    template <Scalar S, signature Sig>
    struct bind {
        static constexpr index_t C = Sig.in().channels();
        static constexpr index_t P = Sig.in().spatial_size();

        parameter<S> alpha_pos{detail::invauto_channel_shape(Sig.in()), O.learnable};
        parameter<S> alpha_neg{detail::invauto_channel_shape(Sig.in()), O.learnable};

        explicit bind(generator&) {
            alpha_pos.values.setConstant(S(std::log(O.init_pos)));
            alpha_neg.values.setConstant(S(std::log(O.init_neg)));
        }

        void forward(const run_args<S>& a) const { run(a, S(1)); }
        void inverse(const run_args<S>& a) const { run(a, S(-1)); }

        /// y = x e^ℓ: dL/dx = dL/dy e^ℓ; ℓ is α₊ for x > 0, α₋ for x < 0 and (α₊ + α₋) / 2 at
        /// x == 0, so dL/dℓ = dL/dy · y + dL/dljd goes to α₊, α₋ or half to each.
        void backward(const backward_args<S>& a) const {
            S* gp = a.grad_of(alpha_pos);
            S* gn = a.grad_of(alpha_neg);
            detail::signed_scaling<S, C, P>::backward(
                a, [&](index_t c) { return factors(c, S(1)); },
                [&](index_t c, const std::array<S, 3>& g) {
                    if (gp)
                        gp[c] += g[2] + S(0.5) * g[1];
                    if (gn)
                        gn[c] += g[0] + S(0.5) * g[1];
                });
        }

        template <class V>
        void visit(V&& v, const std::string& prefix) {
            v(prefix + "alpha_pos", alpha_pos.ref());
            v(prefix + "alpha_neg", alpha_neg.ref());
        }

    private:
        // ℓ = α₊ + (0.5 · (α₋ − α₊)) · (1 − sign(x)), FrEIA's association; negated in reverse.
        // At x < 0 this is α₋ only up to rounding, at x == 0 the average of the two.
      std::pair<std::array<S, 3>, std::array<S, 3>> factors(index_t c, S direction) const {
          const S ap = alpha_pos.values[c];
          const S half = S(0.5) * (alpha_neg.values[c] - ap);
          const std::array<S, 3> l{direction * (ap + half * (S(1) - S(-1))),
                                   direction * (ap + half * (S(1) - S(0))),
                                   direction * (ap + half * (S(1) - S(1)))};
          return {std::array<S, 3>{std::exp(l[0]), std::exp(l[1]), std::exp(l[2])}, l};
      }
        void run(const run_args<S>& a, S direction) const {
            detail::signed_scaling<S, C, P>::apply(
                a, [&](index_t c) { return factors(c, direction); });
        }
    };
};

// ---- InvAutoFC ----------------------------------------------------------------------------------

struct InvAutoFCOptions {
    int dims_out = -1;  // FrEIA's dims_out=None (= D); any other value than D is rejected
};

template <InvAutoFCOptions O = InvAutoFCOptions{}>
struct InvAutoFC {
    static constexpr std::string_view name = "InvAutoFC";
    static constexpr InvAutoFCOptions options = O;

    static constexpr shape_result output_shapes(const signature& s) {
        if (auto r = expect_single_input(s, 1, 1); !r.ok()) return r;
        if (auto r = expect_no_condition(s); !r.ok()) return r;
        // dims_out != D maps R^D to another space: not even approximately invertible.
        if (O.dims_out != -1 && O.dims_out != s.in()[0])
            return fail(shape_error::invalid_option, 0, 0, 0, s.in()[0]);
        return returns({s.in()});
    }

    template <Scalar S, signature Sig>
    struct bind {
        static constexpr index_t D = Sig.in()[0];
        static constexpr inverse_kind inversion = inverse_kind::approximate;

        parameter<S> weights{tensor_shape{D, D}};
        parameter<S> bias{tensor_shape{1, D}};

        // FrEIA: weights = sqrt(1/dims_out) * randn(dims_out, D), then bias = randn(1, dims_out).
        explicit bind(generator& g) {
            g.fill_normal(weights.data(), std::size_t(weights.size()), S(0), S(1));
            weights.values *= S(std::sqrt(1.0 / double(D)));
            g.fill_normal(bias.data(), std::size_t(bias.size()), S(0), S(1));
        }

        /// (batch x D) for (y − b) in the reverse pass.
        static constexpr index_t scratch_size(index_t batch) { return batch * D; }

        // y = x Wᵀ + b (F.linear); log-det 0.
        void forward(const run_args<S>& a) const {
            auto y = a.out[0].matrix(a.batch, D);
            y.noalias() = a.in[0].matrix(a.batch, D) * weights.matrix(D, D).transpose();
            y.rowwise() += bias.values.transpose();
        }

        // x = (y − b) W: the transpose, not the inverse; log-det 0.
        void inverse(const run_args<S>& a) const {
            matrix_map<S> t(a.scratch, a.batch, D, Eigen::OuterStride<>(D));
            t = a.in[0].matrix(a.batch, D).rowwise() - bias.values.transpose();
            a.out[0].matrix(a.batch, D).noalias() = t * weights.matrix(D, D);
        }

        /// The forward's vector-Jacobian product (the log-det is the constant 0): dL/dx = dL/dy W,
        /// dL/dW += dL/dyᵀ x, dL/db += Σ dL/dy.
        void backward(const backward_args<S>& a) const {
            const auto gy = a.grad_out[0].matrix(a.batch, D);
            a.grad_in[0].matrix(a.batch, D).noalias() = gy * weights.matrix(D, D);
            if (S* gw = a.grad_of(weights))
                matrix_map<S>(gw, D, D, Eigen::OuterStride<>(D)).noalias() +=
                    gy.transpose() * a.in[0].matrix(a.batch, D);
            if (S* gb = a.grad_of(bias))
                Eigen::Map<vector<S>>(gb, D) += gy.colwise().sum().transpose();
        }

        template <class V>
        void visit(V&& v, const std::string& prefix) {
            v(prefix + "weights", weights.ref());
            v(prefix + "bias", bias.ref());
        }
    };
};

// ---- InvAutoConv2D ------------------------------------------------------------------------------

struct InvAutoConv2DOptions {
    dims dims_out = {};  // FrEIA's dims_out=None (= the input shape); must equal the input shape
    int kernel_size = 3;
    int padding = 1;
};

template <InvAutoConv2DOptions O = InvAutoConv2DOptions{}>
struct InvAutoConv2D {
    static constexpr std::string_view name = "InvAutoConv2D";
    static constexpr InvAutoConv2DOptions options = O;

    static constexpr shape_result output_shapes(const signature& s) {
        if (auto r = expect_single_input(s, 3, 3); !r.ok()) return r;
        if (auto r = expect_no_condition(s); !r.ok()) return r;
        if (O.kernel_size < 1 || O.padding < 0) return fail(shape_error::invalid_option);
        // The convolution's output shape (stride 1) must be the input's: a same-shape linear map
        // whose adjoint is the reverse pass.
        const int c_out = O.dims_out.rank == 0 ? s.in()[0] : O.dims_out[0];
        const dims conv_out = make_dims({c_out, s.in()[1] + 2 * O.padding - O.kernel_size + 1,
                                         s.in()[2] + 2 * O.padding - O.kernel_size + 1});
        if (O.dims_out.rank != 0 && O.dims_out != conv_out)
            return fail(shape_error::invalid_option);  // FrEIA: inconsistent dims_out
        if (conv_out != s.in()) return fail(shape_error::invalid_option);
        return returns({s.in()});
    }

    template <Scalar S, signature Sig>
    struct bind {
        static constexpr int C = Sig.in()[0];
        static constexpr int K = O.kernel_size, Pad = O.padding;
        static constexpr int H = Sig.in()[1], W = Sig.in()[2];
        static constexpr index_t pixels = index_t(H) * W;
        static constexpr index_t patch = index_t(C) * K * K;
        static constexpr bool direct = K == 1 && Pad == 0;
        static constexpr inverse_kind inversion = inverse_kind::approximate;
        using conv_type = nn::bind_layer<nn::Conv2d<C, C, K, Pad, false>, S, Sig.in()>;

        conv_type conv2d;  // FrEIA's child nn.Conv2d(C, C, kernel_size, padding, bias=False)
        parameter<S> bias{tensor_shape{1, C, 1, 1}};

        // FrEIA: the Conv2d's default init first, then bias = randn(1, C, 1, 1).
        explicit bind(generator& g) : conv2d(g) {
            g.fill_normal(bias.data(), std::size_t(bias.size()), S(0), S(1));
        }

        /// Forward: the convolution's im2col matrix. Reverse: y − b (C x pixels) and the patch
        /// matrix Wᵀ(y − b) (patch x pixels) of one sample.
        /// Backward: the convolution's backward scratch.
        static constexpr index_t scratch_size(pass p, index_t batch) {
            if (p == pass::backward)
                return nn::layer_backward_scratch<conv_type>(batch);
            return std::max(nn::layer_scratch<conv_type>(batch),
                            index_t(C) * pixels + (direct ? 0 : patch * pixels));
        }

        // y = conv2d(x) + b; log-det 0.
        void forward(const run_args<S>& a) const {
            conv2d.forward(a.in[0], a.out[0], a.batch, a.scratch);
            for (index_t n = 0; n < a.batch; ++n) {
                S* y = a.out[0].row(n);
                for (int c = 0; c < C; ++c) {
                    const S b = bias.values[c];
                    for (index_t p = 0; p < pixels; ++p) y[c * pixels + p] += b;
                }
            }
        }

        // x = conv_transpose2d(y − b, W, padding): the adjoint of the convolution, per sample
        // Wᵀ(y − b) as a patch matrix scattered back (col2im); log-det 0.
        void inverse(const run_args<S>& a) const {
            using map = Eigen::Map<row_matrix<S>>;
            using cmap = Eigen::Map<const row_matrix<S>>;
            const auto w = conv2d.weight.matrix(C, patch);
            S* t = a.scratch;
            S* col = a.scratch + index_t(C) * pixels;
            for (index_t n = 0; n < a.batch; ++n) {
                const S* y = a.in[0].row(n);
                for (int c = 0; c < C; ++c) {
                    const S b = bias.values[c];
                    for (index_t p = 0; p < pixels; ++p) t[c * pixels + p] = y[c * pixels + p] - b;
                }
                if constexpr (direct) {
                    map(a.out[0].row(n), C, pixels).noalias() =
                        w.transpose() * cmap(t, C, pixels);
                } else {
                    map(col, patch, pixels).noalias() = w.transpose() * cmap(t, C, pixels);
                    col2im(col, a.out[0].row(n));
                }
            }
        }

        /// The forward's vector-Jacobian product (log-det 0): the convolution's backward, and
        /// dL/db[c] += Σ over pixels of dL/dy[c].
        void backward(const backward_args<S>& a) const {
            nn::layer_backward_args<S> l;
            l.batch = a.batch;
            l.x = a.in[0];
            l.y = cview<S>{}; // the convolution's backward does not read y (nor could it: y has b)
            l.gy = a.grad_out[0];
            l.gx = a.grad_in[0];
            l.scratch = a.scratch;
            l.param_grads = a.param_grads;
            l.grad_shift = a.grad_shift;
            conv2d.backward(l);
            if (S* gb = a.grad_of(bias))
                for (int c = 0; c < C; ++c) {
                    S sum = 0; // summed apart, added once
                    for (index_t n = 0; n < a.batch; ++n) {
                        const S* gy = a.grad_out[0].row(n) + c * pixels;
                        for (index_t p = 0; p < pixels; ++p)
                            sum += gy[p];
                    }
                    gb[c] += sum;
                }
        }

        template <class V>
        void visit(V&& v, const std::string& prefix) {
            v(prefix + "bias", bias.ref());  // FrEIA's order: own parameter, then the child
            conv2d.visit(v, prefix + "conv2d.");
        }

    private:
        // The adjoint of im2col: x[c, i + u − P, j + v − P] += col[(c, u, v), (i, j)].
        static void col2im(const S* col, S* x) {
            std::fill(x, x + index_t(C) * pixels, S(0));
            for (int c = 0; c < C; ++c)
                for (int u = 0; u < K; ++u)
                    for (int v = 0; v < K; ++v) {
                        const S* row = col + ((index_t(c) * K + u) * K + v) * pixels;
                        for (int i = 0; i < H; ++i) {
                            const int yy = i + u - Pad;
                            if (yy < 0 || yy >= H) continue;
                            S* dst = x + (index_t(c) * H + yy) * W;
                            const S* src = row + index_t(i) * W;
                            const int j0 = std::max(0, Pad - v), j1 = std::min(W, W + Pad - v);
                            for (int j = j0; j < j1; ++j) dst[j + v - Pad] += src[j];
                        }
                    }
        }
    };
};

}  // namespace inn
