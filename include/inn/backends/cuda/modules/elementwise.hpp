#pragma once
// Element-wise scalings on the device: LearnedElementwiseScaling (modules/elementwise_scaling.hpp)
// and the invertible activations InvAutoAct / InvAutoActTwoSided (modules/invauto.hpp).
//
// The factors are computed on the host when parameters are uploaded, with the host's own
// expressions (Eigen's exp for the scaling, std::exp of FrEIA's per-sign log-slopes for the
// activations), so the device multiplies by the very same values. The activations' log-det is
// one pass per sample that counts the signs of each channel and adds them channel by channel,
// in the host's order.

#include <array>
#include <cmath>
#include <vector>

#include "../../../modules/elementwise_scaling.hpp"
#include "../../../modules/invauto.hpp"
#include "../buffer.hpp"
#include "../launch.hpp"
#include "../nn.hpp"

namespace inn::cuda {

/// y[b, i] = x[b, i] * scale[i] over rows of n scalars.
template <Scalar S> struct scale_elements {
    const S* x;
    index_t ldx;
    S* y;
    index_t ldy;
    const S* scale;
    index_t n;
    INN_HD void operator()(index_t k) const {
        const index_t b = fast_div(k, n), i = k - b * n;
        y[b * ldy + i] = x[b * ldx + i] * scale[i];
    }
};

template <Scalar S> struct add_value {
    S* ljd;
    S v;
    INN_HD void operator()(index_t b) const { ljd[b] += v; }
};

template <LearnedElementwiseScalingOptions O, Scalar S, signature Sig>
struct learned_elementwise_scaling {
    using host_type = typename LearnedElementwiseScaling<O>::template bind<S, Sig>;
    static constexpr index_t n = host_type::n;

    device_buffer<S> scale_fwd{n}, scale_inv{n};
    S sum = 0; // Σ s

    learned_elementwise_scaling(const context& ctx, const host_type& h) { upload(ctx, h); }
    void upload(const context& ctx, const host_type& h) {
        // exp(±s) and Σ s as the host's run() computes them.
        const vector<S> f = (S(1) * h.s.values).array().exp();
        const vector<S> r = (S(-1) * h.s.values).array().exp();
        sum = h.s.values.sum();
        copy_to_device(ctx, f.data(), scale_fwd.data(), n);
        copy_to_device(ctx, r.data(), scale_inv.data(), n);
        ctx.synchronize(); // f and r go out of scope
    }

    void forward(const run_args<S, device>& a) const { run(a, scale_fwd.data(), sum); }
    void inverse(const run_args<S, device>& a) const {
        run(a, scale_inv.data(), O.freia_reverse_logdet ? sum : -sum);
    }

  private:
    static void run(const run_args<S, device>& a, const S* scale, S ljd) {
        for_each_index(*a.context, a.batch * n,
                       scale_elements<S>{a.in[0].data, a.in[0].stride, a.out[0].data,
                                         a.out[0].stride, scale, n});
        if (a.jac)
            for_each_index(*a.context, a.batch, add_value<S>{a.ljd, ljd});
    }
};

/// y = x * f[c][sign(x)] per element; f holds 3 factors per channel for x < 0, == 0, > 0 (a NaN
/// passes unscaled).
template <Scalar S> struct signed_scale {
    const S* x;
    index_t ldx;
    S* y;
    index_t ldy;
    const S* f;
    index_t size, pixels;
    INN_HD void operator()(index_t k) const {
        const index_t b = fast_div(k, size), q = k - b * size, c = fast_div(q, pixels);
        const S v = x[b * ldx + q];
        S out = v;
        if (v > S(0))
            out = v * f[3 * c + 2];
        else if (v < S(0))
            out = v * f[3 * c];
        else if (v == S(0))
            out = v * f[3 * c + 1];
        y[b * ldy + q] = out;
    }
};

/// ljd[b] += Σ_c (count of each sign in channel c) · l[c][sign], a NaN adding itself; the
/// lanes of a warp share a sample (the counts are exact whatever the order).
template <Scalar S> struct signed_log_det {
    const S* x;
    index_t ldx;
    S* ljd;
    const S* l;
    index_t channels, pixels;
    INN_HD void operator()(index_t b, int lane, int lanes) const {
        const S* xb = x + b * ldx;
        S sum = 0;
        for (index_t c = 0; c < channels; ++c) {
            index_t neg = 0, zero = 0, pos = 0;
            S nan = 0;
            for (index_t p = lane; p < pixels; p += lanes) {
                const S v = xb[c * pixels + p];
                if (v > S(0))
                    ++pos;
                else if (v < S(0))
                    ++neg;
                else if (v == S(0))
                    ++zero;
                else
                    nan = v;
            }
            lanes_sum(neg);
            lanes_sum(zero);
            lanes_sum(pos);
            lanes_sum(nan);
            sum += S(neg) * l[3 * c] + S(zero) * l[3 * c + 1] + S(pos) * l[3 * c + 2] + nan;
        }
        if (lane == 0)
            ljd[b] += sum;
    }
};

/// InvAutoAct (TwoSided = false) and InvAutoActTwoSided: log-slopes ℓ per channel and sign,
/// FrEIA's formulas (the host's private factors(), written out again).
template <class Host, Scalar S, bool TwoSided> struct invauto_activation {
    using host_type = Host;
    static constexpr index_t C = Host::C, P = Host::P;

    device_buffer<S> f_fwd{3 * C}, f_inv{3 * C}, l_fwd{3 * C}, l_inv{3 * C};

    invauto_activation(const context& ctx, const host_type& h) { upload(ctx, h); }
    void upload(const context& ctx, const host_type& h) {
        std::vector<S> ff(std::size_t(3 * C)), fi(ff.size()), lf(ff.size()), li(ff.size());
        for (index_t c = 0; c < C; ++c) {
            std::array<S, 3> l;
            if constexpr (TwoSided) {
                const S ap = h.alpha_pos.values[c];
                const S half = S(0.5) * (h.alpha_neg.values[c] - ap);
                l = {ap + half * (S(1) - S(-1)), ap + half * (S(1) - S(0)),
                     ap + half * (S(1) - S(1))};
            } else {
                const S al = h.alpha.values[c];
                l = {al * S(-1), al * S(0), al * S(1)};
            }
            for (std::size_t k = 0; k < 3; ++k) {
                const std::size_t i = std::size_t(3 * c) + k;
                lf[i] = S(1) * l[k]; // the host's direction * ℓ
                li[i] = S(-1) * l[k];
                ff[i] = std::exp(lf[i]);
                fi[i] = std::exp(li[i]);
            }
        }
        copy_to_device(ctx, ff.data(), f_fwd.data(), 3 * C);
        copy_to_device(ctx, fi.data(), f_inv.data(), 3 * C);
        copy_to_device(ctx, lf.data(), l_fwd.data(), 3 * C);
        copy_to_device(ctx, li.data(), l_inv.data(), 3 * C);
        ctx.synchronize(); // the host vectors go out of scope
    }

    void forward(const run_args<S, device>& a) const { run(a, f_fwd.data(), l_fwd.data()); }
    void inverse(const run_args<S, device>& a) const { run(a, f_inv.data(), l_inv.data()); }

  private:
    static void run(const run_args<S, device>& a, const S* f, const S* l) {
        // The log-det reads the input's signs: first, as the output may share its memory.
        if (a.jac)
            for_each_sample_warp(*a.context, a.batch,
                                 signed_log_det<S>{a.in[0].data, a.in[0].stride, a.ljd, l, C, P});
        for_each_index(*a.context, a.batch * C * P,
                       signed_scale<S>{a.in[0].data, a.in[0].stride, a.out[0].data, a.out[0].stride,
                                       f, C * P, P});
    }
};

} // namespace inn::cuda

namespace inn {
template <LearnedElementwiseScalingOptions O>
struct space_binding<LearnedElementwiseScaling<O>, cuda::device> {
    template <Scalar S, signature Sig> using bind = cuda::learned_elementwise_scaling<O, S, Sig>;
};
template <InvAutoActOptions O> struct space_binding<InvAutoAct<O>, cuda::device> {
    template <Scalar S, signature Sig>
    using bind = cuda::invauto_activation<typename InvAutoAct<O>::template bind<S, Sig>, S, false>;
};
template <InvAutoActTwoSidedOptions O> struct space_binding<InvAutoActTwoSided<O>, cuda::device> {
    template <Scalar S, signature Sig>
    using bind =
        cuda::invauto_activation<typename InvAutoActTwoSided<O>::template bind<S, Sig>, S, true>;
};
} // namespace inn
