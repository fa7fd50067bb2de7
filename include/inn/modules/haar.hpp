#pragma once
// HaarDownsampling / HaarUpsampling (FrEIA.modules.Haar*): one level of the 2D Haar wavelet
// transform, (C, H, W) <-> (4C, H/2, W/2).
//
//   HaarDownsampling<>                                             // FrEIA's defaults
//   HaarDownsampling<{.order_by_wavelet = true, .rebalance = 0.5}>
//
// For each 2x2 patch [[a, b], [c, d]] of channel ch the four components
//   A = a+b+c+d,  V = a-b+c-d,  H = a+b-c-d,  D = a-b-c+d
// are multiplied by f_fwd = 0.5 * rebalance and stored in channel 4*ch + k (k = 0..3 for
// A, V, H, D), or k*C + ch with `order_by_wavelet`. The reverse multiplies by
// f_rev = 0.5 / rebalance and recombines a = A+V+H+D, b = A-V+H-D, c = A+V-H-D, d = A-V-H+D.
// log|det J| = N * j with N the elements of one sample and, in double as FrEIA,
//   j_fwd = (ln 16 + 4 ln f_fwd) / 4,  j_rev = (ln 16 + 4 ln f_rev) / 4
// (exactly 0 for rebalance 1; the reverse value is computed by its own formula, not negated).
//
// FrEIA stores the filters as `haar_weights` (4C, 1, 2, 2), C the high-resolution channel count.
// They are exposed (not trainable) so that state_dicts load; the computation uses the formulas
// above and never reads them.
//
// Deliberate fix: FrEIA's reverse without `order_by_wavelet` (and so
// HaarUpsampling's forward) scales the caller's input tensor in place by f_rev. Here inputs are
// never modified.

#include <cmath>
#include <string>
#include <string_view>

#include "../core/module.hpp"
#include "../core/parameters.hpp"
#include "detail/space_to_depth.hpp"

namespace inn {

struct HaarOptions {
    bool order_by_wavelet = false;
    double rebalance = 1.0;
};

namespace detail {

/// The Haar analysis/synthesis between a high-resolution sample (C, H, W) and its components
/// (4C, H/2, W/2). Both are linear and their matrices are each other's transposes (the 4x4
/// component matrix is symmetric), which is what the backward passes use.
template <dims High, bool ByWavelet> struct haar_transform {
    using geometry = space_to_depth<High, ByWavelet>;

    /// x (high) -> y (components), scaled by f after the sums (FrEIA: conv, then multiply).
    template <Scalar S> static void analyse(const S* x, S* y, S f) {
        geometry::for_each_patch([&](const auto& hi, const auto& lo) {
            const S a = x[hi[0]], b = x[hi[1]], cc = x[hi[2]], d = x[hi[3]];
            y[lo[0]] = (a + b + cc + d) * f;
            y[lo[1]] = (a - b + cc - d) * f;
            y[lo[2]] = (a + b - cc - d) * f;
            y[lo[3]] = (a - b - cc + d) * f;
        });
    }

    /// y (components) -> x (high), each component scaled by f before the sums (FrEIA: multiply,
    /// then transposed conv).
    template <Scalar S> static void synthesise(const S* y, S* x, S f) {
        geometry::for_each_patch([&](const auto& hi, const auto& lo) {
            const S A = y[lo[0]] * f, V = y[lo[1]] * f, Hc = y[lo[2]] * f, D = y[lo[3]] * f;
            x[hi[0]] = A + V + Hc + D;
            x[hi[1]] = A - V + Hc - D;
            x[hi[2]] = A + V - Hc - D;
            x[hi[3]] = A - V - Hc + D;
        });
    }
};

/// FrEIA's `haar_weights`: the four 2x2 filters (rows dy, columns dx) repeated per channel.
template <Scalar S> parameter<S> haar_kernel(index_t channels) {
    static constexpr int sign[4][4] = {
        {1, 1, 1, 1}, {1, -1, 1, -1}, {1, 1, -1, -1}, {1, -1, -1, 1}};
    parameter<S> p(tensor_shape{4 * channels, 1, 2, 2}, /*learned=*/false);
    for (index_t c = 0; c < channels; ++c)
        for (index_t k = 0; k < 4; ++k)
            for (index_t e = 0; e < 4; ++e)
                p.values[(4 * c + k) * 4 + e] = S(sign[k][e]);
    return p;
}

/// The bound module of both directions; `Down` says which way `forward` goes.
/// `High` is the high-resolution side (C, H, W).
template <Scalar S, dims High, HaarOptions Opt, bool Down> struct haar_bound {
    using transform = haar_transform<High, Opt.order_by_wavelet>;
    static constexpr index_t C = High[0];
    static constexpr index_t n = transform::geometry::size; // elements per sample, both sides

    parameter<S> haar_weights;

    explicit haar_bound(generator&) : haar_weights(haar_kernel<S>(C)) {
        const double f_fwd = 0.5 * Opt.rebalance, f_rev = 0.5 / Opt.rebalance;
        fac_fwd_ = S(f_fwd);
        fac_rev_ = S(f_rev);
        // FrEIA: elements * (log(16) + 4 * log(fac)) / 4 in float64, converted once.
        ljd_fwd_ = S(double(n) * ((std::log(16.0) + 4 * std::log(f_fwd)) / 4));
        ljd_rev_ = S(double(n) * ((std::log(16.0) + 4 * std::log(f_rev)) / 4));
    }

    void forward(const run_args<S>& a) const { apply<Down>(a); }
    void inverse(const run_args<S>& a) const { apply<!Down>(a); }

    /// The transpose of forward's linear map: analysis scaled by f is undone in the gradient by
    /// synthesis with the same f, and vice versa. The log-determinant is constant.
    void backward(const backward_args<S>& a) const {
        for (index_t b = 0; b < a.batch; ++b) {
            if constexpr (Down)
                transform::synthesise(a.grad_out[0].row(b), a.grad_in[0].row(b), fac_fwd_);
            else
                transform::analyse(a.grad_out[0].row(b), a.grad_in[0].row(b), fac_rev_);
        }
    }

    template <class V> void visit(V&& v, const std::string& prefix) {
        v(prefix + "haar_weights", haar_weights.ref());
    }

  private:
    template <bool Analyse> void apply(const run_args<S>& a) const {
        for (index_t b = 0; b < a.batch; ++b) {
            if constexpr (Analyse)
                transform::analyse(a.in[0].row(b), a.out[0].row(b), fac_fwd_);
            else
                transform::synthesise(a.in[0].row(b), a.out[0].row(b), fac_rev_);
        }
        if (a.jac)
            for (index_t b = 0; b < a.batch; ++b)
                a.ljd[b] += Analyse ? ljd_fwd_ : ljd_rev_;
    }

    S fac_fwd_{}, fac_rev_{}, ljd_fwd_{}, ljd_rev_{};
};

} // namespace detail

/// (C, H, W) -> (4C, H/2, W/2); H and W must be even, rebalance non-zero.
template <HaarOptions Opt = HaarOptions{}> struct HaarDownsampling {
    static constexpr std::string_view name = "HaarDownsampling";
    static constexpr HaarOptions options = Opt;

    static constexpr shape_result output_shapes(const signature& s) {
        return detail::space_to_depth_shapes(s, Opt.rebalance != 0);
    }

    template <Scalar S, signature Sig>
    using bind = detail::haar_bound<S, Sig.in(), Opt, /*Down=*/true>;
};

/// (C, H, W) -> (C/4, 2H, 2W), the exact inverse of HaarDownsampling with the same options (the
/// channel order of its input is read as `order_by_wavelet` says); C must be divisible by 4.
/// Forward log|det J| is the downsampler's reverse formula and vice versa.
template <HaarOptions Opt = HaarOptions{}> struct HaarUpsampling {
    static constexpr std::string_view name = "HaarUpsampling";
    static constexpr HaarOptions options = Opt;

    static constexpr shape_result output_shapes(const signature& s) {
        return detail::depth_to_space_shapes(s, Opt.rebalance != 0);
    }

    template <Scalar S, signature Sig>
    using bind = detail::haar_bound<S, detail::high_resolution(Sig.in()), Opt, /*Down=*/false>;
};

} // namespace inn
