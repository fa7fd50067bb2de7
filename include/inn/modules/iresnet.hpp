#pragma once
// IResNetLayer (FrEIA.modules.IResNetLayer, fixtures README §5.15): an invertible residual layer
// y = x + g(x) (Behrmann et al., i-ResNet), invertible while g is a contraction.
//
//   SequenceINN<Shape<6>, IResNetLayer<{.internal_size = 14}>>
//   IResNetLayer<IResNetLayerOptions{.internal_size = 14}>       // the same; clang needs this form
//
// The residual branch g is built from the options, as FrEIA does (no user subnet):
//   vectors (C):      Linear(C, h), ELU, [Linear(h, h), ELU] x n_internal_layers, Linear(h, C)
//   images (C, H, W): the same with Conv2d(., ., 3, padding=1)
// with h = internal_size (0 = FrEIA's None: 2 C), ELU with alpha = 1, PyTorch's default
// initialisation drawn layer by layer (weight, then bias). state_dict: residual.0.weight,
// residual.0.bias, residual.2.*, residual.4.*, ... (the ELUs take the odd indices). Other ranks
// are rejected (FrEIA only works for rank 1 and 3). Conditions are accepted and ignored.
//
// Inverse: FrEIA's fixed-point iteration x_0 = y, x_k = y - g(x_{k-1}), run for
// fixed_point_iterations steps and then once more (FrEIA's final evaluation with gradient):
// N + 1 evaluations of g in all. With `fixed_point_tolerance > 0` it stops as soon as
// max_batch |x_k - x_{k-1}| <= tolerance (0, the default, always runs all steps: FrEIA's numbers).
// The bound module keeps the last step size reached, max over the batch of |x_k - x_{k-1}|, and
// the number of evaluations: `net.module<K>().last_inverse_residual()` /
// `last_inverse_iterations()`. The iteration converges only for Lip(g) < 1; FrEIA does not
// enforce that, and neither does this module: call `lipschitz_correction(g)` after changing
// weights (FrEIA's method, never applied automatically), and check the residual.
//
// Log-determinant, log|det(I + J_g(x))|, by option `logdet`:
//   * iresnet_logdet::exact: the Jacobian J_g is built analytically by forward-mode
//     differentiation through the Linear/Conv2d-ELU stack (one tangent per input dimension),
//     then log|det| comes from an LU factorisation with partial pivoting. O(D^3) per sample for
//     D = C*H*W values per sample: meant for small D.
//   * iresnet_logdet::estimate: FrEIA's stochastic estimate, the power series
//     sum_{k=1..jacobian_iterations} (-1)^(k+1) tr(J_g^k) / k with Hutchinson's trace estimator
//     (Rademacher probes = sign of normal draws, averaged over hutchinson_samples). FrEIA forms
//     r^T J^k r with vector-Jacobian products; this module uses Jacobian-vector products, the
//     same number. Unbiased up to the series truncation; its spread is large (FrEIA's fixture
//     estimates are 0.2 off).
//   * iresnet_logdet::automatic (default): exact when D <= iresnet_exact_logdet_max_size (128),
//     else the estimate.
// The probes come from a generator the module owns: at construction it is seeded from the
// network's generator without consuming draws from it (so modules built later draw exactly as
// in FrEIA), hence a network built from the same seed gives the same estimates.
// `seed_probes(s)` re-seeds it. jac = false skips the log-det (and draws nothing).
//
// Gradient (`backward`, training): the exact gradient of what the forward computed, y = x + g(x)
// and its log-det. In estimate mode that is the truncated series at the probes the last forward
// call drew (the module keeps its probe generator's state from that call, a copy per forward with
// jac): the exact gradient of the estimate, not an estimate of the true log-det's gradient (FrEIA
// differentiates the same truncated series with autograd). It is reverse mode through the tangent
// computation: J_g = W_n D_{n-1} W_{n-1} ... D_0 W_0 with D_l = diag(ELU'(z_l)), so the adjoint
// reaches the weights directly and the pre-activations through ELU'' (= ELU' below 0, else 0),
// where it joins the ordinary backward through g. There is no gradient of the inverse (training
// keeps this layer's input rather than recomputing it).
//
// FrEIA's quirks, fixed (documented choices, docs/freia-semantics.md#iresnet-reverse-logdet):
//   * FrEIA's reverse log-det is minus the estimate evaluated at the reverse *input* z, which is
//     not the log-det of the inverse map. Here the reverse log-det is -log|det(I + J_g(x))| at the
//     reconstructed x, the true log|det| of the inverse map at z. `freia_reverse_logdet = true`
//     reproduces FrEIA's choice (evaluated at z), e.g. to compare with
//     test.log_jac_det_rev_exact of the fixtures.
//   * FrEIA sets requires_grad on the caller's input tensor; nothing here touches inputs.
//   * The log-det can be exact rather than stochastic (above).

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>

#include "../core/module.hpp"
#include "../core/parameters.hpp"
#include "../nn/conv2d.hpp"
#include "../nn/layer.hpp"
#include "../nn/linear.hpp"

namespace inn {

/// How IResNetLayer computes log|det J|.
enum class iresnet_logdet {
    automatic,  // exact up to iresnet_exact_logdet_max_size values per sample, else estimate
    exact,      // Jacobian by forward-mode differentiation, then LU
    estimate,   // FrEIA's Hutchinson power-series estimate (stochastic)
};

/// The largest sample size (C*H*W) for which `iresnet_logdet::automatic` is exact.
inline constexpr index_t iresnet_exact_logdet_max_size = 128;

/// FrEIA's constructor arguments (same names and defaults), plus the inverse's tolerance and the
/// log-det choices of this port.
struct IResNetLayerOptions {
    int internal_size = 0;  // FrEIA's None (or 0): 2 * channels
    int n_internal_layers = 1;
    int jacobian_iterations = 20;
    int hutchinson_samples = 1;
    int fixed_point_iterations = 50;
    int lipschitz_iterations = 10;
    int lipschitz_batchsize = 10;
    double spectral_norm_max = 0.8;  // must lie in (0, 1]
    /// Early stop of the inverse when max |x_k - x_{k-1}| <= tolerance; 0 = never (FrEIA).
    double fixed_point_tolerance = 0.0;
    iresnet_logdet logdet = iresnet_logdet::automatic;
    /// Reverse log-det at the reverse input z, as FrEIA does, instead of at x.
    bool freia_reverse_logdet = false;
};

namespace detail {

template <IResNetLayerOptions O, Scalar S, signature Sig>
struct iresnet_layer {
    static constexpr inverse_kind inversion = inverse_kind::iterative;

    static constexpr dims in_dims = Sig.in();
    static constexpr bool conv = in_dims.rank == 3;
    static constexpr int C = in_dims.channels();
    static constexpr index_t P = in_dims.spatial_size();  // pixels (1 for vectors)
    static constexpr index_t D = in_dims.size();           // values per sample
    static constexpr int h = O.internal_size > 0 ? O.internal_size : 2 * C;
    static constexpr index_t H = index_t(h) * P;  // values per sample of a hidden layer
    static constexpr int n_layers = O.n_internal_layers + 2;
    static constexpr int n_hidden = n_layers - 1;  // layers followed by an ELU
    static constexpr bool exact =
        O.logdet == iresnet_logdet::exact ||
        (O.logdet == iresnet_logdet::automatic && D <= iresnet_exact_logdet_max_size);

    template <int L>
    static constexpr int in_channels = L == 0 ? C : h;
    template <int L>
    static constexpr int out_channels = L == n_layers - 1 ? C : h;
    template <int L>
    using layer_spec = std::conditional_t<conv, nn::Conv2d<in_channels<L>, out_channels<L>, 3, 1>,
                                          nn::Linear<in_channels<L>, out_channels<L>>>;
    template <int L>
    struct layer_at {
        static constexpr dims in = in_dims.with(0, in_channels<L>);
        using type = nn::bind_layer<layer_spec<L>, S, in>;
    };
    template <int L>
    using layer_t = typename layer_at<L>::type;

    template <class Seq>
    struct layers_of;
    template <std::size_t... L>
    struct layers_of<std::index_sequence<L...>> {
        using type = std::tuple<layer_t<int(L)>...>;
    };
    using layers_type = typename layers_of<std::make_index_sequence<std::size_t(n_layers)>>::type;

    /// The Linear / Conv2d layers of g, in order (Sequential indices 0, 2, 4, ...).
    layers_type layers;

    explicit iresnet_layer(generator& g)
        : layers([&]<std::size_t... L>(std::index_sequence<L...>) {
              return layers_type{layer_t<int(L)>(g)...};  // left to right: FrEIA's draw order
          }(std::make_index_sequence<std::size_t(n_layers)>{})),
          probes_(probe_seed(g)), probes_at_forward_(probes_) {}

    // ---- scratch ------------------------------------------------------------------------------

    static constexpr index_t conv_scratch(index_t batch) {
        return [&]<std::size_t... L>(std::index_sequence<L...>) {
            index_t m = 0;
            ((m = std::max(m, nn::layer_scratch<layer_t<int(L)>>(batch))), ...);
            return m;
        }(std::make_index_sequence<std::size_t(n_layers)>{});
    }
    // Rows of the tangent buffers: the batch, or the D tangents of one sample (exact log-det).
    static constexpr index_t tangent_rows(index_t batch) {
        return exact ? std::max(batch, D) : batch;
    }
    static constexpr index_t probe_size(index_t batch) {
        return exact ? 2 * D * D : 3 * batch * D;
    }
    static constexpr index_t scratch_size(index_t batch) {
        return batch * D                          // g(x) during the inverse
               + index_t(n_hidden) * batch * H    // ELU derivatives at the log-det point
               + 2 * tangent_rows(batch) * H      // hidden activations / tangents
               + probe_size(batch)                // probes or the Jacobian
               + conv_scratch(batch);             // im2col
    }

    struct work {
        S* g;
        S* deriv;
        S* A;
        S* B;
        S* probe;
        S* conv;
    };
    static work layout(S* scratch, index_t batch) {
        work w;
        w.g = scratch;
        w.deriv = w.g + batch * D;
        w.A = w.deriv + index_t(n_hidden) * batch * H;
        w.B = w.A + tangent_rows(batch) * H;
        w.probe = w.B + tangent_rows(batch) * H;
        w.conv = w.probe + probe_size(batch);
        return w;
    }

    // ---- running ------------------------------------------------------------------------------

    // A call draws Hutchinson probes from the module's generator and records the inverse's
    // residual: a network with threads runs it on the whole batch, on one thread.
    static constexpr bool batch_parallel = false;

    void forward(const run_args<S>& a) const {
        const work w = layout(a.scratch, a.batch);
        eval_g(a.in[0], a.out[0], a.batch, w, a.jac ? w.deriv : nullptr);
        for (index_t b = 0; b < a.batch; ++b) {
            const S* x = a.in[0].row(b);
            S* y = a.out[0].row(b);
            for (index_t j = 0; j < D; ++j) y[j] = x[j] + y[j];  // FrEIA: x + residual(x)
        }
        if (a.jac) {
            if constexpr (!exact)
                probes_at_forward_ = probes_; // for backward: same probes
            add_log_det(a.batch, w, a.ljd, S(1));
        }
    }

    void inverse(const run_args<S>& a) const {
        const work w = layout(a.scratch, a.batch);
        const cview<S> y = a.in[0];
        const view<S> x = a.out[0];
        const view<S> gx{w.g, D};
        for (index_t b = 0; b < a.batch; ++b) std::copy(y.row(b), y.row(b) + D, x.row(b));
        S residual = 0;
        bool diverged = false;  // a NaN step stays visible in the residual (FrEIA would NaN too)
        int steps = 0;
        for (int k = 1; k <= O.fixed_point_iterations + 1; ++k) {
            eval_g(x, gx, a.batch, w, nullptr);
            residual = 0;
            for (index_t b = 0; b < a.batch; ++b) {
                const S* yb = y.row(b);
                const S* gb = gx.row(b);
                S* xb = x.row(b);
                for (index_t j = 0; j < D; ++j) {
                    const S next = yb[j] - gb[j];
                    const S step = std::abs(next - xb[j]);
                    // The max, except that a NaN, once seen, stays.
                    if (!(step <= residual) && !std::isnan(residual)) residual = step;
                    xb[j] = next;
                }
            }
            steps = k;
            diverged = diverged || std::isnan(residual);
            if (O.fixed_point_tolerance > 0 && residual <= S(O.fixed_point_tolerance)) break;
        }
        last_residual_ = diverged ? std::numeric_limits<double>::quiet_NaN() : double(residual);
        last_iterations_ = steps;
        if (a.jac) {
            const cview<S> at = O.freia_reverse_logdet ? y : cview<S>(x);
            eval_g(at, gx, a.batch, w, w.deriv);
            add_log_det(a.batch, w, a.ljd, S(-1));
        }
    }

    // ---- backward -----------------------------------------------------------------------------
    // The gradient of what forward computed: y = x + g(x) and, for the log-det, either the exact
    // log|det(I + J_g)| or the truncated Hutchinson series with the probes the last forward call
    // drew (its generator state is kept). The estimate's gradient is the exact gradient of that
    // estimate (the series truncated at jacobian_iterations, those probes), not an estimate of
    // the log-det's gradient. The log-det part is reverse mode through the tangent (Jacobian-
    // vector) computation: its adjoint reaches the weights directly and the ELU derivatives,
    // whose own derivative (ELU'' = ELU' below 0, else 0) brings it to the pre-activations; from
    // there it joins the ordinary backward through g.

    static constexpr index_t W_ = std::max(H, D); // widest value of any layer boundary
    static constexpr index_t K_ = O.jacobian_iterations;
    static constexpr index_t tangent_store(index_t rows) {
        return 2 * index_t(n_hidden) * rows * H;
    }
    static constexpr index_t layer_backward_work(index_t batch) {
        return [&]<std::size_t... L>(std::index_sequence<L...>) {
            index_t m = 0;
            ((m = std::max(m, nn::layer_backward_scratch<layer_t<int(L)>>(batch))), ...);
            return m;
        }
        (std::make_index_sequence<std::size_t(n_layers)>{});
    }
    static constexpr index_t backward_scratch(index_t batch) {
        const index_t tr = exact ? D : batch;    // rows of the tangent computation
        return 3 * index_t(n_hidden) * batch * H // activations, ELU', dL/dELU'
               + 2 * batch * W_                  // adjoints of the primal pass
               + tangent_store(tr)               // u_l = W_l t_l and t_{l+1} of every hidden layer
               + 2 * tr * W_                     // adjoints of the tangent pass
               + (exact ? 3 * D * D : (K_ + 4) * batch * D) // (I + J)^T, its inverse, adjoint /
                                                            // probes, v_0..v_K, adjoint, carry
               + std::max(
                     {conv_scratch(std::max(batch, tr)), layer_backward_work(batch), index_t(1)});
    }
    static constexpr index_t scratch_size(pass p, index_t batch) {
        return p == pass::backward ? backward_scratch(batch) : scratch_size(batch);
    }

    void backward(const backward_args<S>& a) const {
        const index_t batch = a.batch;
        const index_t tr = exact ? D : batch;
        S* acts = a.scratch;
        S* deriv = acts + index_t(n_hidden) * batch * H;
        S* dderiv = deriv + index_t(n_hidden) * batch * H;
        S* sa = dderiv + index_t(n_hidden) * batch * H;
        S* sb = sa + batch * W_;
        S* store = sb + batch * W_;
        S* ta = store + tangent_store(tr);
        S* tb = ta + tr * W_;
        S* extra = tb + tr * W_;
        S* lwork = extra + (exact ? 3 * D * D : (K_ + 4) * batch * D);

        // Primal pass, keeping every hidden activation and ELU'.
        forward_keep(a.in[0], batch, acts, deriv, lwork);
        std::fill(dderiv, dderiv + index_t(n_hidden) * batch * H, S(0));
        if (a.grad_ljd) {
            if constexpr (exact)
                exact_log_det_backward(a, deriv, dderiv, store, ta, tb, extra, lwork);
            else
                estimate_log_det_backward(a, deriv, dderiv, store, ta, tb, extra, lwork);
        }

        // Back through g. Layer l's output adjoint is in sa (the last layer's: dL/dy), its
        // pre-activation adjoint goes to sb, and the layer's backward writes its input adjoint
        // into sa again (or, for layer 0, dL/dx).
        [&]<std::size_t... R>(std::index_sequence<R...>) {
            (
                [&] {
                    constexpr int l = n_layers - 1 - int(R);
                    cview<S> gz = a.grad_out[0];
                    if constexpr (l < n_layers - 1) {
                        const S* d = deriv + index_t(l) * batch * H;
                        const S* dd = dderiv + index_t(l) * batch * H;
                        const S* act = acts + index_t(l) * batch * H;
                        for (index_t i = 0; i < batch * H; ++i)
                            // ELU''(z) = ELU'(z) for z <= 0 (where ELU(z) <= 0), else 0.
                            sb[i] = sa[i] * d[i] + (act[i] > S(0) ? S(0) : dd[i] * d[i]);
                        gz = cview<S>{sb, H};
                    }
                    static_assert(!nn::layer_backward_reads_y<layer_t<l>>());
                    nn::layer_backward_args<S> lb;
                    lb.batch = batch;
                    lb.x = l == 0 ? a.in[0] : cview<S>{acts + index_t(l - 1) * batch * H, H};
                    lb.gy = gz;
                    lb.gx = l == 0 ? a.grad_in[0] : view<S>{sa, H};
                    lb.scratch = lwork;
                    lb.param_grads = a.param_grads;
                    lb.grad_shift = a.grad_shift;
                    std::get<std::size_t(l)>(layers).backward(lb);
                }(),
                ...);
        }
        (std::make_index_sequence<std::size_t(n_layers)>{});
        // y = x + g(x).
        for (index_t b = 0; b < batch; ++b) {
            const S* gy = a.grad_out[0].row(b);
            S* gx = a.grad_in[0].row(b);
            for (index_t j = 0; j < D; ++j)
                gx[j] += gy[j];
        }
    }

    /// Max over the batch of |x_k - x_{k-1}| at the last step of the last inverse; NaN if any
    /// step of it produced NaN, even when later steps were finite again.
    double last_inverse_residual() const { return last_residual_; }
    /// Evaluations of g in the last inverse (fixed_point_iterations + 1 without early stop).
    int last_inverse_iterations() const { return last_iterations_; }

    /// The generator of the Hutchinson probes (estimate mode).
    generator& probe_generator() { return probes_; }
    void seed_probes(std::uint64_t seed) { probes_.manual_seed(seed); }

    /// FrEIA's `lipschitz_correction()`: for each layer weight, a power-iteration estimate of its
    /// spectral norm from `lipschitz_batchsize` normal start vectors drawn from `g` (Linear: v <-
    /// W^T W v; Conv2d: unpadded conv2d then conv_transpose2d, as FrEIA, not the layer's padded
    /// convolution), then W *= spectral_norm_max / sigma when sigma > spectral_norm_max.
    /// Allocates (a training-time call, not part of forward/inverse).
    void lipschitz_correction(generator& g) {
        [&]<std::size_t... L>(std::index_sequence<L...>) {
            (correct_layer<int(L)>(g), ...);
        }(std::make_index_sequence<std::size_t(n_layers)>{});
    }

    template <class V>
    void visit(V&& v, const std::string& prefix) {
        [&]<std::size_t... L>(std::index_sequence<L...>) {
            (nn::visit_layer(std::get<L>(layers), v,
                             prefix + "residual." + std::to_string(2 * L) + "."),
             ...);
        }(std::make_index_sequence<std::size_t(n_layers)>{});
    }

private:
    // g(in) -> out for `rows` samples. With `deriv`, stores ELU'(pre-activation) of every hidden
    // layer: layer l, row r at deriv + (l * rows + r) * H.
    void eval_g(cview<S> in, view<S> out, index_t rows, const work& w, S* deriv) const {
        cview<S> cur = in;
        [&]<std::size_t... L>(std::index_sequence<L...>) {
            (
                [&] {
                    constexpr int l = int(L);
                    if constexpr (l == n_layers - 1) {
                        std::get<L>(layers).forward(cur, out, rows, w.conv);
                    } else {
                        const view<S> dst{l % 2 == 0 ? w.A : w.B, H};
                        std::get<L>(layers).forward(cur, dst, rows, w.conv);
                        S* d = deriv ? deriv + index_t(l) * rows * H : nullptr;
                        for (index_t r = 0; r < rows; ++r) {
                            S* p = dst.row(r);
                            for (index_t j = 0; j < H; ++j) {
                                const S v = p[j];
                                // ELU(alpha = 1) and its derivative.
                                if (v > S(0)) {
                                    if (d) d[r * H + j] = S(1);
                                } else {
                                    if (d) d[r * H + j] = std::exp(v);
                                    p[j] = std::expm1(v);
                                }
                            }
                        }
                        cur = dst;
                    }
                }(),
                ...);
        }(std::make_index_sequence<std::size_t(n_layers)>{});
    }

    // The linear part of layer L (no bias) applied to `rows` tangents.
    template <int L>
    void linear_part(cview<S> in, view<S> out, index_t rows, S* conv_work) const {
        const auto& layer = std::get<std::size_t(L)>(layers);
        constexpr int ci = in_channels<L>, co = out_channels<L>;
        if constexpr (!conv) {
            out.matrix(rows, co).noalias() =
                in.matrix(rows, ci) * layer.weight.matrix(co, ci).transpose();
        } else {
            using LT = layer_t<L>;
            const auto Wm = layer.weight.matrix(co, LT::patch);
            for (index_t r = 0; r < rows; ++r) {
                LT::im2col(in.row(r), conv_work);
                Eigen::Map<row_matrix<S>>(out.row(r), co, P).noalias() =
                    Wm * Eigen::Map<const row_matrix<S>>(conv_work, LT::patch, P);
            }
        }
    }

    // t_out = J_g t_in for `rows` tangents; the ELU derivatives of layer l for tangent r are at
    // deriv + l * layer_stride + r * row_stride (row_stride 0: all tangents of one sample).
    void jvp(cview<S> t_in, view<S> t_out, index_t rows, const S* deriv, index_t layer_stride,
             index_t row_stride, const work& w) const {
        cview<S> cur = t_in;
        [&]<std::size_t... L>(std::index_sequence<L...>) {
            (
                [&] {
                    constexpr int l = int(L);
                    if constexpr (l == n_layers - 1) {
                        linear_part<l>(cur, t_out, rows, w.conv);
                    } else {
                        const view<S> dst{l % 2 == 0 ? w.A : w.B, H};
                        linear_part<l>(cur, dst, rows, w.conv);
                        for (index_t r = 0; r < rows; ++r) {
                            const S* d = deriv + index_t(l) * layer_stride + r * row_stride;
                            S* p = dst.row(r);
                            for (index_t j = 0; j < H; ++j) p[j] *= d[j];
                        }
                        cur = dst;
                    }
                }(),
                ...);
        }(std::make_index_sequence<std::size_t(n_layers)>{});
    }

    // g's hidden layers at x: the activations ELU(z_l) into acts (layer l, row b at
    // acts + (l * batch + b) * H) and ELU'(z_l) into deriv (the layout of eval_g's).
    void forward_keep(cview<S> x, index_t batch, S* acts, S* deriv, S* conv_work) const {
        cview<S> cur = x;
        [&]<std::size_t... L>(std::index_sequence<L...>) {
            (
                [&] {
                    constexpr int l = int(L);
                    if constexpr (l < n_layers - 1) {
                        const view<S> dst{acts + index_t(l) * batch * H, H};
                        std::get<L>(layers).forward(cur, dst, batch, conv_work);
                        S* d = deriv + index_t(l) * batch * H;
                        for (index_t i = 0; i < batch * H; ++i) {
                            const S v = dst.data[i];
                            if (v > S(0)) {
                                d[i] = S(1);
                            } else {
                                d[i] = std::exp(v);
                                dst.data[i] = std::expm1(v);
                            }
                        }
                        cur = dst;
                    }
                }(),
                ...);
        }
        (std::make_index_sequence<std::size_t(n_layers)>{});
    }

    // jvp, keeping u_l = W_l t_l and t_{l+1} = ELU'_l * u_l of every hidden layer l in `store`
    // (u_l at store + 2 l rows H, t_{l+1} after it). The same operations as jvp.
    void jvp_keep(cview<S> t_in, view<S> t_out, index_t rows, const S* deriv, index_t layer_stride,
                  index_t row_stride, S* store, S* conv_work) const {
        cview<S> cur = t_in;
        [&]<std::size_t... L>(std::index_sequence<L...>) {
            (
                [&] {
                    constexpr int l = int(L);
                    if constexpr (l == n_layers - 1) {
                        linear_part_to<l>(cur, t_out, rows, conv_work);
                    } else {
                        S* u = store + 2 * index_t(l) * rows * H;
                        S* t = u + rows * H;
                        linear_part_to<l>(cur, view<S>{u, H}, rows, conv_work);
                        for (index_t r = 0; r < rows; ++r) {
                            const S* d = deriv + index_t(l) * layer_stride + r * row_stride;
                            for (index_t j = 0; j < H; ++j)
                                t[r * H + j] = u[r * H + j] * d[j];
                        }
                        cur = cview<S>{t, H};
                    }
                }(),
                ...);
        }
        (std::make_index_sequence<std::size_t(n_layers)>{});
    }

    template <int L>
    void linear_part_to(cview<S> in, view<S> out, index_t rows, S* conv_work) const {
        linear_part<L>(in, out, rows, conv_work);
    }

    // The adjoint of jvp_keep for the output adjoint `s_out` (rows x D): adds into dderiv (the
    // layout of deriv) the adjoint of ELU'_l, into the weights' gradients (when wanted) the
    // adjoint of W_l, and writes the adjoint of t_in into `s_in` (null: not wanted). `ta`, `tb`
    // hold rows x W_ each.
    void jvp_backward(cview<S> t_in, const S* s_out, S* s_in, index_t rows, const S* deriv,
                      S* dderiv, index_t layer_stride, index_t row_stride, const S* store, S* ta,
                      S* tb, const backward_args<S>& a, S* conv_work) const {
        const S* s = s_out; // adjoint of u_l (the last layer's output first)
        [&]<std::size_t... R>(std::index_sequence<R...>) {
            (
                [&] {
                    constexpr int l = n_layers - 1 - int(R);
                    constexpr int ci = in_channels<l>, co = out_channels<l>;
                    const auto& layer = std::get<std::size_t(l)>(layers);
                    const S* t = l == 0 ? t_in.data : store + (2 * index_t(l - 1) + 1) * rows * H;
                    const index_t t_stride = l == 0 ? t_in.stride : H;
                    S* gw = a.grad_of(layer.weight);
                    S* st = l == 0 ? s_in : (s == ta ? tb : ta); // adjoint of t_l
                    if constexpr (!conv) {
                        const Eigen::Map<const row_matrix<S>> sm(s, rows, co);
                        const Eigen::Map<const row_matrix<S>, 0, Eigen::OuterStride<>> tm(
                            t, rows, ci, Eigen::OuterStride<>(t_stride));
                        if (gw)
                            Eigen::Map<row_matrix<S>>(gw, co, ci).noalias() += sm.transpose() * tm;
                        if (st)
                            Eigen::Map<row_matrix<S>>(st, rows, ci).noalias() =
                                sm * layer.weight.matrix(co, ci);
                    } else {
                        using LT = layer_t<l>;
                        const auto Wm = layer.weight.matrix(co, LT::patch);
                        for (index_t r = 0; r < rows; ++r) {
                            const Eigen::Map<const row_matrix<S>> sm(s + r * co * P, co, P);
                            if (gw) {
                                LT::im2col(t + r * t_stride, conv_work);
                                Eigen::Map<row_matrix<S>>(gw, co, LT::patch).noalias() +=
                                    sm * Eigen::Map<const row_matrix<S>>(conv_work, LT::patch, P)
                                             .transpose();
                            }
                            if (st) {
                                Eigen::Map<row_matrix<S>>(conv_work, LT::patch, P).noalias() =
                                    Wm.transpose() * sm;
                                LT::col2im(conv_work, st + r * index_t(ci) * P);
                            }
                        }
                    }
                    if constexpr (l > 0) {
                        // t_l = ELU'_{l-1} * u_{l-1}: the adjoints of ELU' and of u_{l-1}.
                        const S* u = store + 2 * index_t(l - 1) * rows * H;
                        for (index_t r = 0; r < rows; ++r) {
                            const index_t off = index_t(l - 1) * layer_stride + r * row_stride;
                            const S* d = deriv + off;
                            S* dd = dderiv + off;
                            S* sr = st + r * H;
                            for (index_t j = 0; j < H; ++j) {
                                dd[j] += sr[j] * u[r * H + j];
                                sr[j] *= d[j];
                            }
                        }
                        s = st;
                    }
                }(),
                ...);
        }
        (std::make_index_sequence<std::size_t(n_layers)>{});
    }

    // Exact log-det: per sample, (I + J)^T is rebuilt as in add_log_det and the adjoint of
    // log|det M| for M = (I + J)^T, dL/dM = gl M^{-T}, is sent back through the tangents.
    void exact_log_det_backward(const backward_args<S>& a, const S* deriv, S* dderiv, S* store,
                                S* ta, S* tb, S* extra, S* conv_work) const {
        const index_t batch = a.batch;
        S* M = extra;
        S* inv = M + D * D;
        S* adj = inv + D * D;
        for (index_t b = 0; b < batch; ++b) {
            const S gl = a.grad_ljd[b];
            if (gl == S(0))
                continue;
            Eigen::Map<row_matrix<S>>(adj, D, D).setIdentity(); // the tangents e_j
            jvp_keep(cview<S>(adj, D), view<S>{M, D}, D, deriv + b * H, batch * H, 0, store,
                     conv_work);
            for (index_t j = 0; j < D; ++j)
                M[j * D + j] += S(1);
            invert(M, inv, D);
            // Row j of M is the tangent output for e_j: its adjoint is row j of gl M^{-T}.
            for (index_t i = 0; i < D; ++i)
                for (index_t j = 0; j < D; ++j)
                    M[i * D + j] = gl * inv[j * D + i];
            Eigen::Map<row_matrix<S>>(adj, D, D).setIdentity();
            jvp_backward(cview<S>(adj, D), M, nullptr, D, deriv + b * H, dderiv + b * H, batch * H,
                         0, store, ta, tb, a, conv_work);
        }
    }

    // The estimate: sum_k c_k <r, J^k r>, c_k = weight (-1)^(k+1) / k, per probe set. Walking
    // k down, the adjoint of v_k = J^k r is gl c_k r + J^T (adjoint of v_{k+1}).
    void estimate_log_det_backward(const backward_args<S>& a, const S* deriv, S* dderiv, S* store,
                                   S* ta, S* tb, S* extra, S* conv_work) const {
        const index_t batch = a.batch, n = batch * D;
        S* r = extra;
        S* v = r + n; // v_0 .. v_K
        S* adj = v + (K_ + 1) * n;
        S* carry = adj + n;
        generator probes = probes_at_forward_;
        const S weight = S(1) / S(O.hutchinson_samples);
        for (int smp = 0; smp < O.hutchinson_samples; ++smp) {
            probes.fill_normal<S>(r, std::size_t(n), S(0), S(1));
            for (index_t i = 0; i < n; ++i)
                r[i] = r[i] > S(0) ? S(1) : (r[i] < S(0) ? S(-1) : S(0));
            std::copy(r, r + n, v);
            for (index_t k = 1; k <= K_; ++k)
                jvp(cview<S>(v + (k - 1) * n, D), view<S>{v + k * n, D}, batch, deriv, batch * H, H,
                    work_for_jvp(ta, tb, conv_work));
            std::fill(carry, carry + n, S(0));
            for (index_t k = K_; k >= 1; --k) {
                const S ck = (k % 2 == 1 ? S(1) : S(-1)) * weight / S(k);
                for (index_t b = 0; b < batch; ++b) {
                    const S gl = a.grad_ljd[b] * ck;
                    for (index_t j = 0; j < D; ++j)
                        adj[b * D + j] = gl * r[b * D + j] + carry[b * D + j];
                }
                jvp_keep(cview<S>(v + (k - 1) * n, D), view<S>{carry, D}, batch, deriv, batch * H,
                         H, store, conv_work);
                jvp_backward(cview<S>(v + (k - 1) * n, D), adj, k > 1 ? carry : nullptr, batch,
                             deriv, dderiv, batch * H, H, store, ta, tb, a, conv_work);
            }
        }
    }

    // jvp's buffers: two tangent rows and the convolution work.
    static work work_for_jvp(S* ta, S* tb, S* conv_work) {
        work w{};
        w.A = ta;
        w.B = tb;
        w.conv = conv_work;
        return w;
    }

    // inv = a^{-1} (row-major n x n) by Gauss-Jordan elimination with partial pivoting; a is
    // destroyed.
    static void invert(S* a, S* inv, index_t n) {
        Eigen::Map<row_matrix<S>>(inv, n, n).setIdentity();
        for (index_t k = 0; k < n; ++k) {
            index_t p = k;
            for (index_t i = k + 1; i < n; ++i)
                if (std::abs(a[i * n + k]) > std::abs(a[p * n + k]))
                    p = i;
            if (p != k) {
                std::swap_ranges(a + p * n, a + p * n + n, a + k * n);
                std::swap_ranges(inv + p * n, inv + p * n + n, inv + k * n);
            }
            const S f = S(1) / a[k * n + k];
            for (index_t j = 0; j < n; ++j) {
                a[k * n + j] *= f;
                inv[k * n + j] *= f;
            }
            for (index_t i = 0; i < n; ++i) {
                if (i == k)
                    continue;
                const S m = a[i * n + k];
                if (m == S(0))
                    continue;
                for (index_t j = 0; j < n; ++j) {
                    a[i * n + j] -= m * a[k * n + j];
                    inv[i * n + j] -= m * inv[k * n + j];
                }
            }
        }
    }

    // ljd[b] += sign * log|det(I + J_g)| at the point whose ELU derivatives are in w.deriv.
    void add_log_det(index_t batch, const work& w, S* ljd, S sign) const {
        if constexpr (exact) {
            S* T0 = w.probe;
            S* T1 = w.probe + D * D;
            for (index_t b = 0; b < batch; ++b) {
                Eigen::Map<row_matrix<S>>(T0, D, D).setIdentity();
                // Row j of T1 = J e_j, so T1 = J^T; det(I + J^T) = det(I + J).
                jvp(cview<S>(T0, D), view<S>{T1, D}, D, w.deriv + b * H, batch * H, 0, w);
                for (index_t j = 0; j < D; ++j) T1[j * D + j] += S(1);
                ljd[b] += sign * log_abs_det(T1, D);
            }
        } else {
            S* r = w.probe;
            S* v = r + batch * D;
            S* v2 = v + batch * D;
            const S weight = S(1) / S(O.hutchinson_samples);
            for (int s = 0; s < O.hutchinson_samples; ++s) {
                // Rademacher probes: sign(randn_like(x)), as FrEIA.
                probes_.fill_normal<S>(r, std::size_t(batch * D), S(0), S(1));
                for (index_t i = 0; i < batch * D; ++i)
                    r[i] = r[i] > S(0) ? S(1) : (r[i] < S(0) ? S(-1) : S(0));
                std::copy(r, r + batch * D, v);
                for (int k = 1; k <= O.jacobian_iterations; ++k) {
                    jvp(cview<S>(v, D), view<S>{v2, D}, batch, w.deriv, batch * H, H, w);
                    std::swap(v, v2);
                    for (index_t b = 0; b < batch; ++b) {
                        S t = 0;
                        for (index_t j = 0; j < D; ++j) t += v[b * D + j] * r[b * D + j];
                        const S term = (k % 2 == 1 ? t : -t) / S(k);
                        ljd[b] += sign * weight * term;
                    }
                }
            }
        }
    }

    // log|det A| of a row-major n x n matrix by LU with partial pivoting, in place.
    static S log_abs_det(S* a, index_t n) {
        S sum = 0;
        for (index_t k = 0; k < n; ++k) {
            index_t p = k;
            for (index_t i = k + 1; i < n; ++i)
                if (std::abs(a[i * n + k]) > std::abs(a[p * n + k])) p = i;
            if (a[p * n + k] == S(0)) return -std::numeric_limits<S>::infinity();
            if (p != k) std::swap_ranges(a + p * n + k, a + p * n + n, a + k * n + k);
            const S pivot = a[k * n + k];
            sum += std::log(std::abs(pivot));
            const S* pivot_row = a + k * n;
            for (index_t i = k + 1; i < n; ++i) {
                S* row = a + i * n;
                const S f = row[k] / pivot;
                if (f == S(0)) continue;
                for (index_t j = k + 1; j < n; ++j) row[j] -= f * pivot_row[j];
            }
        }
        return sum;
    }

    template <int L>
    void correct_layer(generator& g) {
        auto& layer = std::get<std::size_t(L)>(layers);
        constexpr int ci = in_channels<L>, co = out_channels<L>;
        const index_t nb = O.lipschitz_batchsize;
        S sigma = 0;
        if constexpr (!conv) {
            // x = randn(lipschitz_batchsize, in); rows are the vectors.
            row_matrix<S> v(nb, ci);
            g.fill_normal<S>(v.data(), std::size_t(v.size()), S(0), S(1));
            const auto W = layer.weight.matrix(co, ci);
            for (int it = 0; it < O.lipschitz_iterations; ++it) {
                row_matrix<S> u = v * W.transpose();
                v = u * W;
            }
            const row_matrix<S> Wv = v * W.transpose();
            for (index_t b = 0; b < nb; ++b)
                sigma = std::max(sigma, Wv.row(b).norm() / v.row(b).norm());
        } else {
            constexpr int Hs = in_dims[1], Ws = in_dims[2];
            constexpr int Ho = Hs - 2, Wo = Ws - 2;
            if constexpr (Ho <= 0 || Wo <= 0) {
                return;  // an unpadded 3x3 convolution of a smaller image is empty
            } else {
                const auto W = layer.weight.matrix(co, ci * 9);
                // x = randn(lipschitz_batchsize, in, H, W).
                row_matrix<S> v(nb, index_t(ci) * Hs * Ws);
                g.fill_normal<S>(v.data(), std::size_t(v.size()), S(0), S(1));
                row_matrix<S> u(nb, index_t(co) * Ho * Wo);
                // Unpadded cross-correlation: u[o, p, q] = sum W[o, i, s, t] v[i, p + s, q + t].
                auto conv_valid = [&](const row_matrix<S>& in, row_matrix<S>& out) {
                    out.setZero();
                    for (index_t b = 0; b < nb; ++b)
                        for (int o = 0; o < co; ++o)
                            for (int i = 0; i < ci; ++i)
                                for (int s = 0; s < 3; ++s)
                                    for (int t = 0; t < 3; ++t) {
                                        const S wv = W(o, (i * 3 + s) * 3 + t);
                                        for (int p = 0; p < Ho; ++p)
                                            for (int q = 0; q < Wo; ++q)
                                                out(b, (o * Ho + p) * Wo + q) +=
                                                    wv * in(b, (i * Hs + p + s) * Ws + q + t);
                                    }
                };
                // Its adjoint, conv_transpose2d without padding.
                auto conv_transpose = [&](const row_matrix<S>& in, row_matrix<S>& out) {
                    out.setZero();
                    for (index_t b = 0; b < nb; ++b)
                        for (int o = 0; o < co; ++o)
                            for (int i = 0; i < ci; ++i)
                                for (int s = 0; s < 3; ++s)
                                    for (int t = 0; t < 3; ++t) {
                                        const S wv = W(o, (i * 3 + s) * 3 + t);
                                        for (int p = 0; p < Ho; ++p)
                                            for (int q = 0; q < Wo; ++q)
                                                out(b, (i * Hs + p + s) * Ws + q + t) +=
                                                    wv * in(b, (o * Ho + p) * Wo + q);
                                    }
                };
                for (int it = 0; it < O.lipschitz_iterations; ++it) {
                    conv_valid(v, u);
                    conv_transpose(u, v);
                }
                conv_valid(v, u);
                for (index_t b = 0; b < nb; ++b)
                    sigma = std::max(sigma, u.row(b).norm() / v.row(b).norm());
            }
        }
        if (sigma > S(O.spectral_norm_max)) layer.weight.values *= S(O.spectral_norm_max) / sigma;
    }

    // A seed for the probe generator from the network's generator, without drawing from it.
    static std::uint64_t probe_seed(const generator& g) {
        generator copy = g;
        std::uint64_t z = copy.next_u64() + 0x9e3779b97f4a7c15ULL;  // splitmix64 finaliser
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
        return z ^ (z >> 31);
    }

    // What a call leaves behind (probes drawn, the inverse's diagnostics): written by the const
    // forward/inverse, which is why this module runs whole batches on one thread
    // (batch_parallel = false) and a network is used by one call at a time.
    mutable generator probes_;
    mutable generator probes_at_forward_; // probes_ as the last forward with jac found it
    mutable double last_residual_ = 0;
    mutable int last_iterations_ = 0;
};

}  // namespace detail

template <IResNetLayerOptions O = IResNetLayerOptions{}>
struct IResNetLayer {
    static constexpr std::string_view name = "IResNetLayer";
    static constexpr IResNetLayerOptions options = O;

    static constexpr shape_result output_shapes(const signature& s) {
        if (auto r = expect_single_input(s, 1, 3); !r.ok()) return r;
        // Vectors or images only (FrEIA builds Linear or Conv2d layers).
        if (s.in().rank == 2) return fail(shape_error::wrong_rank, 0, 0, 0, 1);
        if (!(O.spectral_norm_max > 0 && O.spectral_norm_max <= 1) || O.internal_size < 0 ||
            O.n_internal_layers < 0 || O.jacobian_iterations < 0 || O.hutchinson_samples < 1 ||
            O.fixed_point_iterations < 0 || O.lipschitz_iterations < 0 ||
            O.lipschitz_batchsize < 1 || !(O.fixed_point_tolerance >= 0))
            return fail(shape_error::invalid_option);
        return returns({s.in()});  // conditions accepted and ignored, as FrEIA
    }

    template <Scalar S, signature Sig>
    using bind = detail::iresnet_layer<O, S, Sig>;
};

}  // namespace inn
