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

namespace inn {

struct HaarOptions {
    bool order_by_wavelet = false;
    double rebalance = 1.0;
};

namespace detail {

/// The Haar analysis/synthesis between a high-resolution sample (C, H, W) and its components
/// (4C, H/2, W/2).
template <index_t C, index_t H, index_t W, bool ByWavelet> struct haar_transform {
    static constexpr index_t H2 = H / 2, W2 = W / 2, P2 = H2 * W2;

    static constexpr index_t channel(index_t c, index_t k) {
        return ByWavelet ? k * C + c : 4 * c + k;
    }

    /// x (high) -> y (components), scaled by f after the sums (FrEIA: conv, then multiply).
    template <Scalar S> static void analyse(const S* x, S* y, S f) {
        for (index_t c = 0; c < C; ++c) {
            S* yA = y + channel(c, 0) * P2;
            S* yV = y + channel(c, 1) * P2;
            S* yH = y + channel(c, 2) * P2;
            S* yD = y + channel(c, 3) * P2;
            for (index_t i = 0; i < H2; ++i) {
                const S* r0 = x + c * H * W + 2 * i * W;
                const S* r1 = r0 + W;
                for (index_t j = 0; j < W2; ++j) {
                    const S a = r0[2 * j], b = r0[2 * j + 1], cc = r1[2 * j], d = r1[2 * j + 1];
                    const index_t o = i * W2 + j;
                    yA[o] = (a + b + cc + d) * f;
                    yV[o] = (a - b + cc - d) * f;
                    yH[o] = (a + b - cc - d) * f;
                    yD[o] = (a - b - cc + d) * f;
                }
            }
        }
    }

    /// y (components) -> x (high), each component scaled by f before the sums (FrEIA: multiply,
    /// then transposed conv).
    template <Scalar S> static void synthesise(const S* y, S* x, S f) {
        for (index_t c = 0; c < C; ++c) {
            const S* yA = y + channel(c, 0) * P2;
            const S* yV = y + channel(c, 1) * P2;
            const S* yH = y + channel(c, 2) * P2;
            const S* yD = y + channel(c, 3) * P2;
            for (index_t i = 0; i < H2; ++i) {
                S* r0 = x + c * H * W + 2 * i * W;
                S* r1 = r0 + W;
                for (index_t j = 0; j < W2; ++j) {
                    const index_t o = i * W2 + j;
                    const S A = yA[o] * f, V = yV[o] * f, Hc = yH[o] * f, D = yD[o] * f;
                    r0[2 * j] = A + V + Hc + D;
                    r0[2 * j + 1] = A - V + Hc - D;
                    r1[2 * j] = A + V - Hc - D;
                    r1[2 * j + 1] = A - V - Hc + D;
                }
            }
        }
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
template <Scalar S, index_t C, index_t H, index_t W, HaarOptions Opt, bool Down> struct haar_bound {
    using transform = haar_transform<C, H, W, Opt.order_by_wavelet>;
    static constexpr index_t n = C * H * W; // elements per sample, the same on both sides

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
        if (auto r = expect_single_input(s, 3, 3); !r.ok())
            return r;
        if (auto r = expect_no_condition(s); !r.ok())
            return r;
        if (Opt.rebalance == 0)
            return fail(shape_error::invalid_option);
        const dims& d = s.in();
        if (d[1] % 2 != 0 || d[2] % 2 != 0)
            return fail(shape_error::odd_spatial_size);
        return returns({make_dims({4 * d[0], d[1] / 2, d[2] / 2})});
    }

    template <Scalar S, signature Sig>
    using bind = detail::haar_bound<S, Sig.in()[0], Sig.in()[1], Sig.in()[2], Opt, /*Down=*/true>;
};

/// (C, H, W) -> (C/4, 2H, 2W), the exact inverse of HaarDownsampling with the same options (the
/// channel order of its input is read as `order_by_wavelet` says); C must be divisible by 4.
/// Forward log|det J| is the downsampler's reverse formula and vice versa.
template <HaarOptions Opt = HaarOptions{}> struct HaarUpsampling {
    static constexpr std::string_view name = "HaarUpsampling";
    static constexpr HaarOptions options = Opt;

    static constexpr shape_result output_shapes(const signature& s) {
        if (auto r = expect_single_input(s, 3, 3); !r.ok())
            return r;
        if (auto r = expect_no_condition(s); !r.ok())
            return r;
        if (Opt.rebalance == 0)
            return fail(shape_error::invalid_option);
        const dims& d = s.in();
        if (d[0] % 4 != 0)
            return fail(shape_error::channels_not_divisible);
        return returns({make_dims({d[0] / 4, 2 * d[1], 2 * d[2]})});
    }

    template <Scalar S, signature Sig>
    using bind = detail::haar_bound<S, Sig.in()[0] / 4, 2 * Sig.in()[1], 2 * Sig.in()[2], Opt,
                                    /*Down=*/false>;
};

} // namespace inn
