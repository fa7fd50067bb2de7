#pragma once
// Shared machinery of FrEIA's coupling family (docs/freia-semantics.md#coupling-blocks):
//   * coupling_layout   - the split (len1 | len2) and subnet input shapes of a signature;
//   * condition_concat  - the subnet input cat(part, c...) per sample, built in scratch;
//   * affine_coupling   - soft-clamped affine map of one part (RNVP, GLOW, GIN, one-sided, CAT);
//   * affine_coupling_backward - its reverse mode (through the soft clamp and the log-det);
//   * two_sided_coupling - FrEIA's generic two-sided forward/reverse (NICE, RNVP, GLOW, GIN) and
//     the reverse mode of its forward.
//
// Scratch of a two-sided block: forward/inverse [j1 | j2 | concatenated subnet input | module
// work area]; backward [concatenated subnet input | dL/du1 | dL/du2 | module work area].

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

    /// grad_cond[j] += the condition columns of `gu` (a subnet input's gradient, per sample
    /// [part | c_0 | c_1 ...], `part_size + cond_size` wide), plus those of `gu2` when given:
    /// both gradients summed first and added once (accumulation adds exactly what this module
    /// contributes). Nothing when the condition gradients are not wanted.
    static void add_condition_gradient(std::span<const view<S>> grad_cond, index_t batch,
                                       const S* gu, index_t part_size, const S* gu2 = nullptr,
                                       index_t part_size2 = 0) {
        if (grad_cond.empty()) return;
        const index_t width = part_size + cond_size, width2 = part_size2 + cond_size;
        for (index_t b = 0; b < batch; ++b) {
            const S* src = gu + b * width + part_size;
            const S* src2 = gu2 ? gu2 + b * width2 + part_size2 : nullptr;
            for (int j = 0; j < n_cond; ++j) {
                const index_t n = Sig.conditions[j].size();
                S* dst = grad_cond[std::size_t(j)].row(b);
                if (src2) {
                    for (index_t i = 0; i < n; ++i) dst[i] += src[i] + src2[i];
                    src2 += n;
                } else {
                    for (index_t i = 0; i < n; ++i) dst[i] += src[i];
                }
                src += n;
            }
        }
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
            // log-det sum, s never written back.
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
                    const A sv = soft_clamp(A(cmap(raw + i)), O.clamp, O.activation);
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

/// The reverse mode of affine_coupling's forward map y = exp(s) * x + t, j = sum(s) (s from the
/// subnet's raw output `raw` through the soft clamp, centred with `Center`): `g` holds dL/dy and
/// is overwritten with dL/dx; dL/draw goes to `graw` and, when `gt.data` is set, dL/dt (= dL/dy)
/// to `gt` (before g changes). `gl` is dL/dj per sample (null: 0); GIN's j is not a log-det and
/// gets none. `raw` and `x` may not overlap the outputs.
template <CouplingOptions O, bool Center = false, Scalar S>
void affine_coupling_backward(std::type_identity_t<cview<S>> x,
                              std::type_identity_t<cview<S>> raw, view<S> g, view<S> gt,
                              view<S> graw, const S* gl, index_t len, index_t pixels,
                              index_t batch) {
    const index_t n = len * pixels;
    if constexpr (!Center) {
        // One pass per sample, a SIMD packet at a time, as the forward's fused path (the
        // clamp's derivative lane by lane).
        constexpr int L = nn::kernels::simd<S>::lanes;
        using A = Eigen::Array<S, L, 1>;
        using map = Eigen::Map<A>;
        using cmap = Eigen::Map<const A>;
        const index_t whole = n - n % L;
        for (index_t b = 0; b < batch; ++b) {
            const S* rb = raw.row(b);
            const S* xb = x.row(b);
            S* gb = g.row(b);
            S* tb = gt.data ? gt.row(b) : nullptr;
            S* sb = graw.row(b);
            const S lb = gl ? gl[b] : S(0);
            for (index_t i = 0; i < whole; i += L) {
                const A sv = soft_clamp(A(cmap(rb + i)), O.clamp, O.activation);
                A dv;
                for (int l = 0; l < L; ++l)
                    dv[l] = soft_clamp_derivative(rb[i + l], O.clamp, O.activation);
                const A gy = cmap(gb + i);
                if (tb) map(tb + i) = gy;
                const A ge = gy * sv.exp();
                map(sb + i) = (ge * cmap(xb + i) + lb) * dv;
                map(gb + i) = ge;
            }
            for (index_t i = whole; i < n; ++i) {
                const S si = soft_clamp(rb[i], O.clamp, O.activation);
                const S gy = gb[i];
                if (tb) tb[i] = gy;
                const S ge = gy * std::exp(si);
                sb[i] = (ge * xb[i] + lb) * soft_clamp_derivative(rb[i], O.clamp, O.activation);
                gb[i] = ge;
            }
        }
    } else {
        // GIN: s = s' - mean_c(s') per pixel, so dL/ds' = dL/ds - mean_c(dL/ds).
        (void)gl;
        for (index_t b = 0; b < batch; ++b) {
            const S* rb = raw.row(b);
            const S* xb = x.row(b);
            S* gb = g.row(b);
            S* tb = gt.data ? gt.row(b) : nullptr;
            S* sb = graw.row(b);
            for (index_t i = 0; i < n; ++i) sb[i] = soft_clamp(rb[i], O.clamp, O.activation);
            for (index_t p = 0; p < pixels; ++p) {
                S sum = 0;
                for (index_t c = 0; c < len; ++c) sum += sb[c * pixels + p];
                const S mean = sum / S(len);
                S gsum = 0;
                for (index_t c = 0; c < len; ++c) {
                    const index_t q = c * pixels + p;
                    const S gy = gb[q];
                    if (tb) tb[q] = gy;
                    const S ge = gy * std::exp(sb[q] - mean);
                    gb[q] = ge;
                    sb[q] = ge * xb[q];
                    gsum += sb[q];
                }
                const S gmean = gsum / S(len);
                for (index_t c = 0; c < len; ++c) {
                    const index_t q = c * pixels + p;
                    sb[q] = (sb[q] - gmean) *
                            soft_clamp_derivative(rb[q], O.clamp, O.activation);
                }
            }
        }
    }
}

/// The backward call of a subnet `net` on input `u` (output `y`, where its last layer reads it),
/// given dL/dy `gy`: dL/du into `gu` (null data: not wanted), parameter gradients as `a` asks;
/// `kept`: what nn::layer_forward_keeping kept of the forward (null data: recomputed).
template <class Net, Scalar S, class Args>
void subnet_backward(const Net& net, std::type_identity_t<cview<S>> u,
                     std::type_identity_t<cview<S>> y, std::type_identity_t<cview<S>> gy,
                     view<S> gu, index_t batch, S* scratch, const Args& a,
                     std::type_identity_t<cview<S>> kept = {}) {
    nn::layer_backward_args<S> la;
    la.batch = batch;
    la.x = u;
    la.y = y;
    la.gy = gy;
    la.gx = gu;
    la.scratch = scratch;
    la.param_grads = a.param_grads;
    la.grad_shift = a.grad_shift;
    la.kept = kept;
    net.backward(la);
}

/// Scratch of a subnet's recomputed forward and of its backward.
template <class Net>
constexpr index_t subnet_work(index_t batch) {
    return std::max(nn::layer_scratch<Net>(batch), nn::layer_backward_scratch<Net>(batch));
}

/// FrEIA's `_BaseCouplingBlock` forward/reverse over a derived bound module `D` that
/// provides
///   static constexpr bool has_log_det;            // false: NICE, GIN (LJD 0)
///   static constexpr index_t work_size(index_t batch);  // its own scratch (subnet outputs, ...)
///   template <int Side, bool Rev>
///   void couple(cview<S> active, cview<S> u, view<S> result, index_t batch, S* j, S* work) const;
/// Side 1 transforms part 1 with a subnet of u = cat(part 2, c...), side 2 part 2 with a subnet
/// of u = cat(new part 1, c...). Forward runs side 1 then side 2, reverse the opposite order.
/// A D that declares `saved_per_sample` takes one more argument in forward (Rev false), the
/// call's run_args::saved (null unless a training forward in store mode), and its backward
/// reads it back from backward_args::saved.
///
/// For backward, D provides
///   static constexpr index_t backward_work_size(index_t batch);
///   template <int Side>
///   void couple_backward(cview<S> active, cview<S> u, view<S> g, view<S> gu, const S* gl,
///                        index_t batch, S* work, const backward_args<S>& a) const;
/// which, g holding dL/d(result), overwrites g with dL/d(active) and writes dL/du into gu
/// (`len + cond_size` per sample); `gl` is dL/d(log-det) (null: 0), parameter gradients as `a`
/// asks. The subnet inputs are known from x and y (side 1 reads cat(x2, c), side 2 cat(y1, c)),
/// so backward runs side 2 then side 1 without inverting anything.
template <class D, Scalar S, signature Sig, CouplingOptions O>
struct two_sided_coupling {
    using layout = coupling_layout<Sig, O>;
    using concat = condition_concat<S, Sig>;

    static constexpr index_t scratch_size(index_t batch) {
        return 2 * batch + cat_size(batch) + D::work_size(batch);
    }
    static constexpr index_t scratch_size(pass p, index_t batch) {
        if (p != pass::backward) return scratch_size(batch);
        return cat_size(batch) + (layout::n1 + layout::n2 + 2 * concat::cond_size) * batch +
               D::backward_work_size(batch);
    }

    void forward(const run_args<S>& a) const { run<false>(a); }
    void inverse(const run_args<S>& a) const { run<true>(a); }

    void backward(const backward_args<S>& a) const {
        constexpr index_t n1 = layout::n1, n2 = layout::n2, nc = concat::cond_size;
        const index_t batch = a.batch;
        const S* gl = D::has_log_det ? a.grad_ljd : nullptr;
        S* cat = a.scratch;
        S* gu1 = cat + cat_size(batch);  // dL/d cat(y1, c), from side 2's subnet
        S* gu2 = gu1 + (n1 + nc) * batch;  // dL/d cat(x2, c), from side 1's subnet
        S* work = gu2 + (n2 + nc) * batch;
        const D& d = static_cast<const D&>(*this);

        const cview<S> x1 = a.in[0], x2 = a.in[0].shifted(n1), y1 = a.out[0];
        const view<S> g1 = a.grad_in[0], g2 = a.grad_in[0].shifted(n1);
        g1.matrix(batch, n1) = a.grad_out[0].matrix(batch, n1);
        g2.matrix(batch, n2) = a.grad_out[0].shifted(n1).matrix(batch, n2);
        // Side 2: y2 = f(x2; cat(y1, c)); y1 gets the subnet's input gradient on top of dL/dy1.
        d.template couple_backward<2>(x2, concat::make(y1, n1, a.cond, batch, cat), g2,
                                      view<S>{gu1, n1 + nc}, gl, batch, work, a);
        g1.matrix(batch, n1) += cview<S>{gu1, n1 + nc}.matrix(batch, n1);
        // Side 1: y1 = f(x1; cat(x2, c)).
        d.template couple_backward<1>(x1, concat::make(x2, n2, a.cond, batch, cat), g1,
                                      view<S>{gu2, n2 + nc}, gl, batch, work, a);
        g2.matrix(batch, n2) += cview<S>{gu2, n2 + nc}.matrix(batch, n2);
        concat::add_condition_gradient(a.grad_cond, batch, gu1, n1, gu2, n2);
    }

private:
    static constexpr index_t cat_size(index_t batch) {
        return std::max(concat::scratch_size(layout::n1, batch),
                        concat::scratch_size(layout::n2, batch));
    }

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
            // A training forward in store mode hands modules that keep something a.saved.
            auto side = [&]<int Side>(cview<S> active, cview<S> u, view<S> result, S* j) {
                if constexpr (requires { D::saved_per_sample; })
                    d.template couple<Side, false>(active, u, result, batch, j, work, a.saved);
                else
                    d.template couple<Side, false>(active, u, result, batch, j, work);
            };
            side.template operator()<1>(in1, concat::make(in2, n2, a.cond, batch, cat), out1,
                                        jac ? j1 : nullptr);
            side.template operator()<2>(in2, concat::make(out1, n1, a.cond, batch, cat), out2,
                                        jac ? j2 : nullptr);
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
