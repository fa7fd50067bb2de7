#pragma once
// Shared machinery of FrEIA's coupling family (docs/freia-semantics.md#coupling-blocks):
//   * coupling_layout   - the split (len1 | len2) and subnet input shapes of a signature;
//   * condition_concat  - the subnet input cat(part, c...) per sample, built in scratch;
//   * affine_coupling   - soft-clamped affine map of one part (RNVP, GLOW, GIN, one-sided, CAT);
//   * two_sided_coupling - FrEIA's generic two-sided forward/reverse (NICE, RNVP, GLOW, GIN).
//
// Scratch of a two-sided block: [j1 | j2 | concatenated subnet input | module work area].

#include <algorithm>
#include <span>
#include <type_traits>

#include "../../core/module.hpp"
#include "../../core/parameters.hpp"
#include "../../nn/layer.hpp"
#include "../../nn/kernels.hpp"
#include "options.hpp"

namespace inn::detail {

/// Compile-time geometry of a coupling block built for `Sig` with options `O`.
template <signature Sig, CouplingOptions O>
struct coupling_layout {
    static constexpr dims in = Sig.in();
    static constexpr int channels = in.channels();
    static constexpr index_t pixels = in.spatial_size();
    static constexpr int len1 = coupling_split_len1(channels, O);
    static constexpr int len2 = channels - len1;
    static constexpr int cond_channels = Sig.conditions.total_channels();
    static constexpr index_t n1 = index_t(len1) * pixels;  // scalars of part 1 per sample
    static constexpr index_t n2 = index_t(len2) * pixels;
    /// Subnet inputs: cat(part, c...) has `len + condition_length` channels.
    static constexpr dims in1 = in.with(0, len1 + cond_channels);
    static constexpr dims in2 = in.with(0, len2 + cond_channels);
};

/// The subnet input cat(part, c_0, c_1, ...) along channels. Channels-first samples make
/// this a concatenation of whole per-sample blocks.
template <Scalar S, signature Sig>
struct condition_concat {
    static constexpr int n_cond = Sig.conditions.count;
    static constexpr index_t cond_size = index_t(Sig.conditions.total_channels()) *
                                         Sig.in().spatial_size();

    /// Whether `make` reads its input in place (no copy, no scratch).
    static constexpr bool in_place(index_t part_size) {
        return n_cond == 0 || (part_size == 0 && n_cond == 1);
    }
    /// Scratch scalars `make` needs for a part of `part_size` scalars per sample.
    static constexpr index_t scratch_size(index_t part_size, index_t batch) {
        return in_place(part_size) ? 0 : (part_size + cond_size) * batch;
    }

    /// The subnet input: `part` itself without conditions, else a copy into `buf`.
    static cview<S> make(cview<S> part, index_t part_size, std::span<const cview<S>> cond,
                         index_t batch, S* buf) {
        if (in_place(part_size)) return n_cond == 0 ? part : cond[0];
        const index_t width = part_size + cond_size;
        for (index_t b = 0; b < batch; ++b) {
            S* dst = buf + b * width;
            if (part_size > 0) dst = std::copy_n(part.row(b), part_size, dst);
            for (int j = 0; j < n_cond; ++j) {
                const index_t n = Sig.conditions[j].size();
                dst = std::copy_n(cond[std::size_t(j)].row(b), n, dst);
            }
        }
        return {buf, width};
    }
};

/// One soft-clamped affine coupling of `len` channels (`n = len * pixels` scalars per sample):
/// s = clamp * g(raw) is written over `s`; GIN (`Center`) then subtracts the mean over channels
/// of each pixel. Forward y = exp(s) * x + t, reverse y = (x - t) * exp(-s). With `j`,
/// j[b] = +-sum(s) of sample b (the reverse's sign included).
template <CouplingOptions O, bool Rev, bool Center = false, Scalar S>
void affine_coupling(std::type_identity_t<cview<S>> x, view<S> s, std::type_identity_t<cview<S>> t,
                     view<S> y, index_t len, index_t pixels, index_t batch, S* j) {
    const index_t n = len * pixels;
    if constexpr (!Center) {
        if (nn::kernels::tuning().fuse_coupling) {
            // One pass per sample, a SIMD packet at a time: clamp, exp, multiply-add and the
            // log-det sum, s never written back (the clamp is scalar: Eigen has no vector atan).
            constexpr int L = nn::kernels::simd<S>::lanes;
            using A = Eigen::Array<S, L, 1>;
            using map = Eigen::Map<A>;
            using cmap = Eigen::Map<const A>;
            for (index_t b = 0; b < batch; ++b) {
                const S* raw = s.row(b);
                const S* xb = x.row(b);
                const S* tb = t.row(b);
                S* yb = y.row(b);
                A acc = A::Zero();
                S rest = 0;
                const index_t whole = n - n % L;  // scalars in whole packets
                for (index_t i = 0; i < whole; i += L) {
                    A sv;
                    for (int l = 0; l < L; ++l) sv[l] = soft_clamp(raw[i + l], O.clamp, O.activation);
                    acc += sv;
                    if constexpr (!Rev)
                        map(yb + i) = sv.exp() * cmap(xb + i) + cmap(tb + i);
                    else
                        map(yb + i) = (cmap(xb + i) - cmap(tb + i)) * (-sv).exp();
                }
                for (index_t i = whole; i < n; ++i) {
                    const S si = soft_clamp(raw[i], O.clamp, O.activation);
                    rest += si;
                    yb[i] = !Rev ? std::exp(si) * xb[i] + tb[i] : (xb[i] - tb[i]) * std::exp(-si);
                }
                if (j) j[b] = Rev ? -(acc.sum() + rest) : acc.sum() + rest;
            }
            return;
        }
    }
    // Pass by pass (GIN's centring needs every s of a sample first; and for measuring).
    for (index_t b = 0; b < batch; ++b) {
        S* sb = s.row(b);
        for (index_t i = 0; i < n; ++i) sb[i] = soft_clamp(sb[i], O.clamp, O.activation);
        if constexpr (Center) {
            // Per pixel: the mean over dim 1 only (FrEIA's GINCouplingBlock).
            for (index_t p = 0; p < pixels; ++p) {
                S sum = 0;
                for (index_t c = 0; c < len; ++c) sum += sb[c * pixels + p];
                const S mean = sum / S(len);
                for (index_t c = 0; c < len; ++c) sb[c * pixels + p] -= mean;
            }
        }
    }
    const auto sm = s.matrix(batch, n);
    const auto tm = t.matrix(batch, n);
    const auto xm = x.matrix(batch, n);
    auto ym = y.matrix(batch, n);
    if constexpr (!Rev)
        ym.array() = sm.array().exp() * xm.array() + tm.array();
    else
        ym.array() = (xm.array() - tm.array()) * (-sm.array()).exp();
    if (j) {
        for (index_t b = 0; b < batch; ++b) {
            const S sum = sm.row(b).sum();
            j[b] = Rev ? -sum : sum;
        }
    }
}

/// FrEIA's `_BaseCouplingBlock` forward/reverse over a derived bound module `D` that
/// provides
///   static constexpr bool has_log_det;            // false: NICE, GIN (LJD 0)
///   static constexpr index_t work_size(index_t batch);  // its own scratch (subnet outputs, ...)
///   template <int Side, bool Rev>
///   void couple(cview<S> active, cview<S> u, view<S> result, index_t batch, S* j, S* work) const;
/// Side 1 transforms part 1 with a subnet of u = cat(part 2, c...), side 2 part 2 with a subnet
/// of u = cat(new part 1, c...). Forward runs side 1 then side 2, reverse the opposite order.
template <class D, Scalar S, signature Sig, CouplingOptions O>
struct two_sided_coupling {
    using layout = coupling_layout<Sig, O>;
    using concat = condition_concat<S, Sig>;

    static constexpr index_t scratch_size(index_t batch) {
        return 2 * batch +
               std::max(concat::scratch_size(layout::n1, batch),
                        concat::scratch_size(layout::n2, batch)) +
               D::work_size(batch);
    }

    void forward(const run_args<S>& a) const { run<false>(a); }
    void inverse(const run_args<S>& a) const { run<true>(a); }

private:
    template <bool Rev>
    void run(const run_args<S>& a) const {
        constexpr index_t n1 = layout::n1, n2 = layout::n2;
        const index_t batch = a.batch;
        const bool jac = D::has_log_det && a.jac;
        S* j1 = a.scratch;
        S* j2 = j1 + batch;
        S* cat = j2 + batch;
        S* work = cat + std::max(concat::scratch_size(n1, batch), concat::scratch_size(n2, batch));
        const D& d = static_cast<const D&>(*this);

        // Forward reads x and writes y; reverse reads y (called x1, x2 in FrEIA) and writes x.
        const cview<S> in1 = a.in[0], in2 = a.in[0].shifted(n1);
        const view<S> out1 = a.out[0], out2 = a.out[0].shifted(n1);
        if constexpr (!Rev) {
            d.template couple<1, false>(in1, concat::make(in2, n2, a.cond, batch, cat), out1,
                                        batch, jac ? j1 : nullptr, work);
            d.template couple<2, false>(in2, concat::make(out1, n1, a.cond, batch, cat), out2,
                                        batch, jac ? j2 : nullptr, work);
        } else {
            d.template couple<2, true>(in2, concat::make(in1, n1, a.cond, batch, cat), out2,
                                       batch, jac ? j2 : nullptr, work);
            d.template couple<1, true>(in1, concat::make(out2, n2, a.cond, batch, cat), out1,
                                       batch, jac ? j1 : nullptr, work);
        }
        if (jac)
            for (index_t b = 0; b < batch; ++b) a.ljd[b] += j1[b] + j2[b];  // FrEIA: j1 + j2
    }
};

/// The bound subnet of a coupling: `Subnet::net<In.channels(), Out>` on inputs of shape `In`;
/// `Module` (the coupling's spec) is named in the error a misfitting subnet gives.
template <class Subnet, Scalar S, dims In, int Out, class Module>
using coupling_subnet = typename nn::subnet_for<Subnet, S, In, Out, Module>::type;

}  // namespace inn::detail
