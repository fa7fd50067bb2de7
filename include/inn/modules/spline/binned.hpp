#pragma once
// FrEIA's binned splines: the parameter handling of BinnedSplineBase
// (options, buffers, splitting and constraining raw parameters, knots, tails, bin search) and
// the coupling wrapper BinnedSpline shared by RationalQuadraticSpline and LinearSpline.
//
//   RationalQuadraticSpline<subnet, SplineCouplingOptions{.bins = 8, .identity_tails = true}>
//   LinearSpline<subnet, SplineCouplingOptions{.split_len = 0.3, .domain_clamping = 4}>
//   ElementwiseRationalQuadraticSpline<SplineOptions{.bins = 6}>        (elementwise_rq.hpp)
//
// Per transformed scalar the raw parameters are P numbers in FrEIA's slot order:
// `widths (bins), heights (bins), bottom, left [, deltas (bins - 1)]`, or with identity tails
// `widths, heights, total_width [, deltas]`. A subnet output (B, n*P, *S) is read channel-major:
// raw channel k*P + p is slot position p of transformed channel k.
//
// Numerics (deliberate, documented choices; docs/freia-semantics.md#spline-discriminant):
//  * Bins are left-open/right-closed as in FrEIA: a value exactly on the left domain edge takes
//    the affine tail, one exactly on the right edge the last bin. Everything outside, ±Inf
//    included, takes the affine tail y = scale * x + shift (identity with identity_tails), so
//    ±Inf maps to ±Inf with a finite log-det and no NaN arises from the spline formulas.
//  * The rational-quadratic inverse uses the stable root xi = 2c / (-b - sqrt(b^2 - 4ac)) of
//    FrEIA and nflows. A discriminant that rounding makes slightly negative is clamped to 0;
//    FrEIA raises RuntimeError("Discriminant must be positive") instead. The root is
//    also clamped to the bin (xi in [0, 1]) where rounding leaves it just outside, which would
//    make the log-derivative NaN (rational_quadratic.hpp). Both are no-ops on FrEIA's numbers.
//  * The buffers `min_bin_sizes`, `default_domain`, `default_width` are used as stored (a loaded
//    state_dict gives FrEIA's numbers); `bins` and `identity_tails` are exposed so that
//    state_dicts load and save, but the compile-time options decide the layout (FrEIA cannot
//    change them after construction either).

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <string>
#include <type_traits>

#include "../../core/module.hpp"
#include "../../core/parameters.hpp"
#include "../../nn/layer.hpp"
#include "../coupling/base.hpp"
#include "../coupling/options.hpp"

namespace inn {

/// BinnedSplineBase's arguments (FrEIA names and defaults). ElementwiseRationalQuadraticSpline
/// takes these directly.
struct SplineOptions {
    int bins = 10;
    std::array<double, 2> min_bin_sizes = {0.1, 0.1};                // (min width, min height)
    std::array<double, 4> default_domain = {-3.0, 3.0, -3.0, 3.0};  // (left, right, bottom, top)
    bool identity_tails = false;
    /// FrEIA's `domain_clamping`; 0 means None (FrEIA would divide by it: 0 is never useful).
    double domain_clamping = 0.0;
};

/// RationalQuadraticSpline / LinearSpline arguments: the coupling split (as CouplingOptions:
/// float `split_len`, or FrEIA's int `split_len` as `split_channels` when >= 0) and the spline's.
struct SplineCouplingOptions {
    double split_len = 0.5;
    int split_channels = -1;
    int bins = 10;
    std::array<double, 2> min_bin_sizes = {0.1, 0.1};
    std::array<double, 4> default_domain = {-3.0, 3.0, -3.0, 3.0};
    bool identity_tails = false;
    double domain_clamping = 0.0;
};

constexpr SplineOptions spline_options_of(const SplineCouplingOptions& o) {
    return {o.bins, o.min_bin_sizes, o.default_domain, o.identity_tails, o.domain_clamping};
}

constexpr CouplingOptions coupling_options_of(const SplineCouplingOptions& o) {
    CouplingOptions c;
    c.split_len = o.split_len;
    c.split_channels = o.split_channels;
    return c;
}

/// FrEIA's constructor assertions (bins >= 1, min sizes >= 0, increasing domain wide enough for
/// `bins` minimal bins), plus domain_clamping >= 0 (0 = None; NaN rejected).
constexpr bool spline_options_valid(const SplineOptions& o) {
    const auto& d = o.default_domain;
    const auto& m = o.min_bin_sizes;
    return o.bins >= 1 && m[0] >= 0.0 && m[1] >= 0.0 && d[1] > d[0] && d[3] > d[2] &&
           d[1] - d[0] >= m[0] * o.bins && d[3] - d[2] >= m[1] * o.bins &&
           o.domain_clamping >= 0.0;
}

namespace detail {

/// PyTorch's softplus (beta 1, threshold 20).
template <Scalar S>
inline S softplus(S v) {
    return v > S(20) ? v : std::log1p(std::exp(v));
}

/// np.log(np.e - 1): softplus(0 + this) = 1, so zero raw outputs give unit derivatives/width.
inline constexpr double log_e_minus_1 = 0.5413248546129181;

/// Parameter slots of one transformed scalar for a spline kind with `Extra` slots
/// (RationalQuadraticSpline: deltas, bins - 1; LinearSpline: none).
template <SplineOptions O, int Extra>
struct spline_slots {
    static constexpr int bins = O.bins;
    static constexpr int widths = 0, heights = bins;
    static constexpr int bottom = 2 * bins, left = 2 * bins + 1;  // normal tails: bottom first
    static constexpr int total_width = 2 * bins;                  // identity tails
    static constexpr int extra = O.identity_tails ? 2 * bins + 1 : 2 * bins + 2;
    static constexpr int count = extra + Extra;  // P
};

/// Per-call values from the buffers (FrEIA recomputes them every call, in the module's dtype).
template <Scalar S>
struct spline_constants {
    S left = 0, bottom = 0;    // default_domain[0], default_domain[2]
    S min_w = 0, min_h = 0;    // min_bin_sizes
    S xshift = 0, yshift = 0;  // inverse softplus of (default bin size - min size)
    S default_width = 0;
};

/// One transformed scalar's constrained spline, in a flat array of `size` scalars:
/// kx[bins+1] | ky[bins+1] | d[bins+1] (knot derivatives, RQ only) | scale | shift | log(scale).
template <int Bins, bool Derivs>
struct knots {
    static constexpr int n = Bins + 1;
    static constexpr int kx = 0, ky = n, d = 2 * n;
    static constexpr int scale = (Derivs ? 3 : 2) * n, shift = scale + 1, log_scale = scale + 2;
    static constexpr int size = log_scale + 1;
};

/// FrEIA's constrain_parameters and knot construction for one scalar. `raw[p * step]` is slot p.
template <SplineOptions O, int Extra, bool Derivs, Scalar S>
void constrain_spline(const S* raw, index_t step, const spline_constants<S>& c, S* k) {
    using slot = spline_slots<O, Extra>;
    using K = knots<O.bins, Derivs>;
    constexpr int B = O.bins;
    constexpr bool clamped = O.domain_clamping > 0.0;
    const S dc = S(O.domain_clamping);
    auto clamp_domain = [&](S v) { return dc * std::tanh(v / dc); };

    std::array<S, std::size_t(B)> w, h;
    S left, bottom;
    if constexpr (O.identity_tails) {
        S total = c.default_width * softplus(raw[slot::total_width * step] + S(log_e_minus_1));
        if constexpr (clamped) total = clamp_domain(total);
        left = bottom = -total / S(2);
        // total * softmax(raw) over the bins, as torch: exp(v - max) / sum.
        auto softmax_scaled = [&](int first, std::array<S, std::size_t(B)>& out) {
            S m = raw[first * step];
            for (int i = 1; i < B; ++i) m = std::max(m, raw[(first + i) * step]);
            S sum = 0;
            for (int i = 0; i < B; ++i) {
                out[std::size_t(i)] = std::exp(raw[(first + i) * step] - m);
                sum += out[std::size_t(i)];
            }
            for (auto& v : out) v = total * (v / sum);
        };
        softmax_scaled(slot::widths, w);
        softmax_scaled(slot::heights, h);
    } else {
        left = raw[slot::left * step] + c.left;
        bottom = raw[slot::bottom * step] + c.bottom;
        for (int i = 0; i < B; ++i) {
            w[std::size_t(i)] = c.min_w + softplus(raw[(slot::widths + i) * step] + c.xshift);
            h[std::size_t(i)] = c.min_h + softplus(raw[(slot::heights + i) * step] + c.yshift);
        }
        if constexpr (clamped) {
            // Rescale so that the total width/height is clamped (ratio exactly 1 without it).
            S sw = 0, sh = 0;
            for (int i = 0; i < B; ++i) {
                sw += w[std::size_t(i)];
                sh += h[std::size_t(i)];
            }
            const S rw = clamp_domain(sw) / sw, rh = clamp_domain(sh) / sh;
            for (auto& v : w) v *= rw;
            for (auto& v : h) v *= rh;
            left *= rw;
            bottom *= rh;
        }
    }
    // Knots left + cumsum(widths): the cumulative sum first, then the offset (FrEIA's order).
    S cw = 0, ch = 0;
    k[K::kx] = left;
    k[K::ky] = bottom;
    for (int i = 0; i < B; ++i) {
        cw += w[std::size_t(i)];
        ch += h[std::size_t(i)];
        k[K::kx + i + 1] = left + cw;
        k[K::ky + i + 1] = bottom + ch;
    }
    const S scale = ch / cw;  // sum(heights) / sum(widths): the tails' slope
    k[K::scale] = scale;
    k[K::shift] = bottom - scale * left;
    k[K::log_scale] = std::log(scale);
    if constexpr (Derivs) {
        // Derivatives at the knots: [scale, softplus(raw + ln(e - 1))..., scale].
        k[K::d] = scale;
        for (int i = 1; i < B; ++i)
            k[K::d + i] = softplus(raw[(slot::extra + i - 1) * step] + S(log_e_minus_1));
        k[K::d + B] = scale;
    }
}

/// The derivative of softplus as PyTorch's backward computes it: 1 above the threshold (20),
/// else the logistic function.
template <Scalar S> inline S softplus_derivative(S v) {
    return v > S(20) ? S(1) : S(1) / (S(1) + std::exp(-v));
}

/// The adjoint of constrain_spline: given dL/dk for the knots `k` that constrain_spline built from
/// `raw` (same layout), writes dL/draw[p * gstep] for every slot p. The intermediate values
/// (bin sizes before clamping, softmax weights, ...) are recomputed from `raw` as the forward
/// computes them.
template <SplineOptions O, int Extra, bool Derivs, Scalar S>
void constrain_spline_backward(const S* raw, index_t step, const spline_constants<S>& c, const S* k,
                               const S* gk, S* graw, index_t gstep) {
    using slot = spline_slots<O, Extra>;
    using K = knots<O.bins, Derivs>;
    constexpr int B = O.bins;
    constexpr bool clamped = O.domain_clamping > 0.0;
    const S dc = S(O.domain_clamping);
    using arr = std::array<S, std::size_t(B)>;
    auto at = [](arr& a, int i) -> S& { return a[std::size_t(i)]; };

    // Tails: shift = bottom - scale * left, log_scale = log(scale); the boundary derivatives
    // d[0] = d[B] = scale; the inner ones softplus(raw + ln(e - 1)).
    const S scale = k[K::scale];
    const S left = k[K::kx];
    S g_scale = gk[K::scale] + gk[K::log_scale] / scale - gk[K::shift] * left;
    S g_left = -gk[K::shift] * scale;
    S g_bottom = gk[K::shift];
    if constexpr (Derivs) {
        g_scale += gk[K::d] + gk[K::d + B];
        for (int i = 1; i < B; ++i) {
            const S* r = raw + (slot::extra + i - 1) * step;
            graw[(slot::extra + i - 1) * gstep] =
                gk[K::d + i] * softplus_derivative(*r + S(log_e_minus_1));
        }
    }
    // Knots left + cumsum(widths): every knot moves with left, knot i with widths [0, i).
    arr g_w{}, g_h{};
    S sx = 0, sy = 0;
    for (int i = B; i >= 1; --i) {
        sx += gk[K::kx + i];
        sy += gk[K::ky + i];
        at(g_w, i - 1) = sx;
        at(g_h, i - 1) = sy;
    }
    g_left += sx + gk[K::kx];
    g_bottom += sy + gk[K::ky];

    if constexpr (O.identity_tails) {
        const S r_total = raw[slot::total_width * step] + S(log_e_minus_1);
        const S total0 = c.default_width * softplus(r_total);
        const S total = clamped ? dc * std::tanh(total0 / dc) : total0;
        // scale = sum(h) / sum(w) with w = total * softmax, h alike.
        arr sw, sh;
        auto softmax = [&](int first, arr& out) {
            S m = raw[first * step];
            for (int i = 1; i < B; ++i)
                m = std::max(m, raw[(first + i) * step]);
            S sum = 0;
            for (int i = 0; i < B; ++i) {
                at(out, i) = std::exp(raw[(first + i) * step] - m);
                sum += at(out, i);
            }
            for (auto& v : out)
                v = v / sum;
        };
        softmax(slot::widths, sw);
        softmax(slot::heights, sh);
        S cw = 0, ch = 0;
        for (int i = 0; i < B; ++i) {
            cw += total * at(sw, i);
            ch += total * at(sh, i);
        }
        for (int i = 0; i < B; ++i) {
            at(g_w, i) += -g_scale * scale / cw;
            at(g_h, i) += g_scale / cw;
        }
        // left = bottom = -total / 2; w = total * softmax(raw_w), h alike.
        S g_total = -(g_left + g_bottom) / S(2);
        auto softmax_backward = [&](int first, const arr& sm, const arr& g) {
            S dot = 0;
            for (int i = 0; i < B; ++i) {
                g_total += g[std::size_t(i)] * sm[std::size_t(i)];
                dot += g[std::size_t(i)] * sm[std::size_t(i)];
            }
            for (int i = 0; i < B; ++i)
                graw[(first + i) * gstep] = total * sm[std::size_t(i)] * (g[std::size_t(i)] - dot);
        };
        softmax_backward(slot::widths, sw, g_w);
        softmax_backward(slot::heights, sh, g_h);
        if constexpr (clamped) {
            const S t = std::tanh(total0 / dc);
            g_total *= S(1) - t * t;
        }
        graw[slot::total_width * gstep] = g_total * c.default_width * softplus_derivative(r_total);
    } else {
        arr w0, h0;
        S sw = 0, sh = 0;
        for (int i = 0; i < B; ++i) {
            at(w0, i) = c.min_w + softplus(raw[(slot::widths + i) * step] + c.xshift);
            at(h0, i) = c.min_h + softplus(raw[(slot::heights + i) * step] + c.yshift);
            sw += at(w0, i);
            sh += at(h0, i);
        }
        // scale = ch / cw over the (clamped) sizes.
        S cw = sw, ch = sh;
        S rw = 1, rh = 1;
        if constexpr (clamped) {
            rw = dc * std::tanh(sw / dc) / sw;
            rh = dc * std::tanh(sh / dc) / sh;
            cw = 0;
            ch = 0;
            for (int i = 0; i < B; ++i) {
                cw += at(w0, i) * rw;
                ch += at(h0, i) * rh;
            }
        }
        for (int i = 0; i < B; ++i) {
            at(g_w, i) += -g_scale * scale / cw;
            at(g_h, i) += g_scale / cw;
        }
        S g_left0 = g_left, g_bottom0 = g_bottom;
        if constexpr (clamped) {
            // w = w0 * r(sum w0), left = left0 * r, r(s) = d tanh(s / d) / s.
            const S left0 = raw[slot::left * step] + c.left;
            const S bottom0 = raw[slot::bottom * step] + c.bottom;
            auto ratio_derivative = [&](S s) {
                const S t = std::tanh(s / dc);
                return ((S(1) - t * t) * s - dc * t) / (s * s);
            };
            S g_rw = g_left * left0, g_rh = g_bottom * bottom0;
            for (int i = 0; i < B; ++i) {
                g_rw += at(g_w, i) * at(w0, i);
                g_rh += at(g_h, i) * at(h0, i);
            }
            const S dw = g_rw * ratio_derivative(sw), dh = g_rh * ratio_derivative(sh);
            for (int i = 0; i < B; ++i) {
                at(g_w, i) = at(g_w, i) * rw + dw;
                at(g_h, i) = at(g_h, i) * rh + dh;
            }
            g_left0 = g_left * rw;
            g_bottom0 = g_bottom * rh;
        }
        for (int i = 0; i < B; ++i) {
            graw[(slot::widths + i) * gstep] =
                at(g_w, i) * softplus_derivative(raw[(slot::widths + i) * step] + c.xshift);
            graw[(slot::heights + i) * gstep] =
                at(g_h, i) * softplus_derivative(raw[(slot::heights + i) * step] + c.yshift);
        }
        graw[slot::left * gstep] = g_left0;
        graw[slot::bottom * gstep] = g_bottom0;
    }
}

/// Evaluates the constrained spline `k` at `v` (forward: x -> y with the x knots; Rev: y -> x
/// with the y knots) and stores the forward log-derivative at the point in `lj`.
template <class Kind, int Bins, bool Rev, Scalar S>
S eval_spline(const S* k, S v, S& lj, bool jac) {
    using K = knots<Bins, Kind::derivatives>;
    const S* kn = k + (Rev ? K::ky : K::kx);
    // Left-open/right-closed domain; NaN and ±Inf fail the test and take the affine tail.
    if (!(kn[0] < v && v <= kn[Bins])) {
        lj = k[K::log_scale];
        return Rev ? (v - k[K::shift]) / k[K::scale] : k[K::scale] * v + k[K::shift];
    }
    // searchsorted(left): the first knot >= v, in [1, Bins] since kn[0] < v <= kn[Bins].
    const int upper = int(std::lower_bound(kn + 1, kn + Bins + 1, v) - kn);
    const int lower = upper - 1;
    const S* d = k + K::d;
    return Kind::template segment<Rev>(k[K::kx + lower], k[K::kx + upper], k[K::ky + lower],
                                       k[K::ky + upper], d + lower, v, lj, jac);
}

/// The adjoint of the forward eval_spline at `v`: adds dL/dk into `gk` (knots layout) for
/// dL/dy = gy and dL/d(log-derivative) = gl and returns dL/dv. The bin is the forward's: the bin
/// index is constant under changes of v and k small enough not to cross a knot. Outside the
/// domain y = scale * v + shift with log-derivative log(scale).
template <class Kind, int Bins, Scalar S>
S eval_spline_backward(const S* k, S v, S gy, S gl, S* gk) {
    constexpr bool derivs = Kind::derivatives;
    using K = knots<Bins, derivs>;
    const S* kn = k + K::kx;
    if (!(kn[0] < v && v <= kn[Bins])) {
        gk[K::scale] += gy * v;
        gk[K::shift] += gy;
        gk[K::log_scale] += gl;
        return gy * k[K::scale];
    }
    const int upper = int(std::lower_bound(kn + 1, kn + Bins + 1, v) - kn);
    const int lower = upper - 1;
    // dL/d(xk, xk1, yk, yk1, dk, dk1)
    std::array<S, 6> g{};
    const S gv = Kind::segment_backward(k[K::kx + lower], k[K::kx + upper], k[K::ky + lower],
                                        k[K::ky + upper], k + K::d + lower, v, gy, gl, g.data());
    gk[K::kx + lower] += g[0];
    gk[K::kx + upper] += g[1];
    gk[K::ky + lower] += g[2];
    gk[K::ky + upper] += g[3];
    if constexpr (derivs) {
        gk[K::d + lower] += g[4];
        gk[K::d + upper] += g[5];
    }
    return gv;
}

/// FrEIA's binned_spline on one part of a batch: `len` channels of `pixels` scalars per sample
/// read from `x` (row stride of the view), raw parameters `raw` (B, len*P, *S) channel-major.
/// Writes `y` and, with `j`, j[b] = +-sum of the log-derivatives (negated in reverse).
template <class Kind, SplineOptions O, bool Rev, Scalar S>
void binned_spline(std::type_identity_t<cview<S>> x, std::type_identity_t<cview<S>> raw, view<S> y,
                   index_t len, index_t pixels, index_t batch, const spline_constants<S>& c,
                   S* j) {
    constexpr int extra = Kind::extra_slots(O.bins);
    constexpr int P = spline_slots<O, extra>::count;
    std::array<S, std::size_t(knots<O.bins, Kind::derivatives>::size)> k;
    const bool jac = j != nullptr;
    for (index_t b = 0; b < batch; ++b) {
        const S* xb = x.row(b);
        const S* rb = raw.row(b);
        S* yb = y.row(b);
        S sum = 0;
        // Channel-last order as FrEIA sums: pixels outer, channels inner.
        for (index_t q = 0; q < pixels; ++q)
            for (index_t ch = 0; ch < len; ++ch) {
                constrain_spline<O, extra, Kind::derivatives>(rb + ch * P * pixels + q, pixels, c,
                                                              k.data());
                S lj = 0;
                const index_t i = ch * pixels + q;
                yb[i] = eval_spline<Kind, O.bins, Rev>(k.data(), xb[i], lj, jac);
                sum += lj;
            }
        if (jac) j[b] = Rev ? -sum : sum;
    }
}

/// The adjoint of the forward binned_spline: for dL/dy = `gy` and dL/dj[b] = gl[b] (null: 0),
/// writes dL/dx into `gx` and dL/draw into `graw` (the layout of `raw`, every slot written).
template <class Kind, SplineOptions O, Scalar S>
void binned_spline_backward(std::type_identity_t<cview<S>> x, std::type_identity_t<cview<S>> raw,
                            std::type_identity_t<cview<S>> gy, const S* gl, view<S> gx,
                            view<S> graw, index_t len, index_t pixels, index_t batch,
                            const spline_constants<S>& c) {
    constexpr int extra = Kind::extra_slots(O.bins);
    constexpr int P = spline_slots<O, extra>::count;
    using K = knots<O.bins, Kind::derivatives>;
    std::array<S, std::size_t(K::size)> k, gk;
    for (index_t b = 0; b < batch; ++b) {
        const S* xb = x.row(b);
        const S* rb = raw.row(b);
        const S* gyb = gy.row(b);
        S* gxb = gx.row(b);
        S* grb = graw.row(b);
        const S glb = gl ? gl[b] : S(0);
        for (index_t ch = 0; ch < len; ++ch)
            for (index_t q = 0; q < pixels; ++q) {
                const index_t i = ch * pixels + q, r = ch * P * pixels + q;
                constrain_spline<O, extra, Kind::derivatives>(rb + r, pixels, c, k.data());
                gk.fill(S(0));
                gxb[i] =
                    eval_spline_backward<Kind, O.bins>(k.data(), xb[i], gyb[i], glb, gk.data());
                constrain_spline_backward<O, extra, Kind::derivatives>(rb + r, pixels, c, k.data(),
                                                                       gk.data(), grb + r, pixels);
            }
    }
}

/// BinnedSplineBase's buffers, in FrEIA's state_dict order: bins (int32 scalar, saved as int64),
/// min_bin_sizes (2), default_domain (4), identity_tails (bool scalar), default_width (scalar).
/// Float buffers hold the float32 value of the option, as FrEIA's (then `.double()`) does.
template <Scalar S, SplineOptions O>
struct spline_buffers {
    std::int64_t bins = O.bins;
    parameter<S> min_bin_sizes{tensor_shape{2}, false};
    parameter<S> default_domain{tensor_shape{4}, false};
    bool identity_tails = O.identity_tails;
    parameter<S> default_width{tensor_shape{}, false};

    spline_buffers() {
        for (int i = 0; i < 2; ++i)
            min_bin_sizes.values[i] = S(float(O.min_bin_sizes[std::size_t(i)]));
        for (int i = 0; i < 4; ++i)
            default_domain.values[i] = S(float(O.default_domain[std::size_t(i)]));
        // right - left in double, then rounded to float32.
        default_width.values[0] = S(float(O.default_domain[1] - O.default_domain[0]));
    }

    spline_constants<S> constants() const {
        const auto& dd = default_domain.values;
        const auto& mb = min_bin_sizes.values;
        spline_constants<S> c;
        c.left = dd[0];
        c.bottom = dd[2];
        c.min_w = mb[0];
        c.min_h = mb[1];
        // Default bin sizes (float / int32 tensor in FrEIA) and the inverse softplus shifts.
        c.xshift = std::log(std::exp((dd[1] - dd[0]) / S(O.bins) - mb[0]) - S(1));
        c.yshift = std::log(std::exp((dd[3] - dd[2]) / S(O.bins) - mb[1]) - S(1));
        c.default_width = default_width.values[0];
        return c;
    }

    template <class V>
    void visit(V&& v, const std::string& prefix) {
        v(prefix + "bins", tensor_ref<S>{nullptr, &bins, nullptr, tensor_shape{}, false});
        v(prefix + "min_bin_sizes", min_bin_sizes.ref());
        v(prefix + "default_domain", default_domain.ref());
        v(prefix + "identity_tails",
          tensor_ref<S>{nullptr, nullptr, &identity_tails, tensor_shape{}, false});
        v(prefix + "default_width", default_width.ref());
    }
};

/// The bound BinnedSpline coupling: FrEIA's two-sided scheme, where — unlike GLOW —
/// subnet1 reads part 2 and parameterises part 1: subnet1 = f(len2 + cl, len1*P),
/// subnet2 = f(len1 + cl, len2*P). Children in state_dict order: spline_base, subnet1, subnet2.
template <class Module, class Kind, class Subnet, SplineCouplingOptions O, Scalar S, signature Sig>
struct binned_spline_coupling
    : two_sided_coupling<binned_spline_coupling<Module, Kind, Subnet, O, S, Sig>, S, Sig,
                         coupling_options_of(O)> {
    static constexpr SplineOptions spline = spline_options_of(O);
    using layout = coupling_layout<Sig, coupling_options_of(O)>;
    static constexpr int P = spline_slots<spline, Kind::extra_slots(O.bins)>::count;
    using net1_t = coupling_subnet<Subnet, S, layout::in2, layout::len1 * P, Module>;
    using net2_t = coupling_subnet<Subnet, S, layout::in1, layout::len2 * P, Module>;
    static constexpr bool has_log_det = true;
    static constexpr index_t width = P * std::max(layout::n1, layout::n2);

    spline_buffers<S, spline> spline_base;
    net1_t subnet1;
    net2_t subnet2;

    explicit binned_spline_coupling(generator& g) : subnet1(g), subnet2(g) {}

    // Raw subnet output, then the subnets' own scratch.
    static constexpr index_t work_size(index_t batch) {
        return width * batch +
               std::max(nn::layer_scratch<net1_t>(batch), nn::layer_scratch<net2_t>(batch));
    }

    template <int Side, bool Rev>
    void couple(cview<S> active, cview<S> u, view<S> result, index_t batch, S* j,
                S* work) const {
        constexpr int len = Side == 1 ? layout::len1 : layout::len2;
        const view<S> raw{work, P * len * layout::pixels};
        if constexpr (Side == 1)
            subnet1.forward(u, raw, batch, work + width * batch);
        else
            subnet2.forward(u, raw, batch, work + width * batch);
        binned_spline<Kind, spline, Rev>(active, raw, result, len, layout::pixels, batch,
                                         spline_base.constants(), j);
    }

    // ---- backward ----------------------------------------------------------------------------
    // The forward map: y1 = spline(x1; subnet1(cat(x2, c))), y2 = spline(x2; subnet2(cat(y1, c))).
    // Walked back: side 2 (its subnet input holds y1, so dL/dy1 collects its gradient), then
    // side 1. The subnet outputs are recomputed from x and y (nothing is kept from the forward).
    using concat = condition_concat<S, Sig>;
    using base = two_sided_coupling<binned_spline_coupling, S, Sig, coupling_options_of(O)>;
    static constexpr index_t n1 = layout::n1, n2 = layout::n2;
    static constexpr index_t cond_size = concat::cond_size;
    static constexpr index_t u_width = std::max(n1, n2) + cond_size;

    // [raw | graw | subnet input | its gradient | dL/dy1 | dL/dc | subnet scratch]
    static constexpr index_t backward_scratch(index_t batch) {
        return 2 * width * batch +
               std::max(concat::scratch_size(n1, batch), concat::scratch_size(n2, batch)) +
               u_width * batch + n1 * batch + cond_size * batch +
               std::max({nn::layer_scratch<net1_t>(batch), nn::layer_scratch<net2_t>(batch),
                         nn::layer_backward_scratch<net1_t>(batch),
                         nn::layer_backward_scratch<net2_t>(batch)});
    }
    static constexpr index_t scratch_size(pass p, index_t batch) {
        return p == pass::backward ? backward_scratch(batch) : base::scratch_size(batch);
    }

    void backward(const backward_args<S>& a) const {
        const index_t batch = a.batch;
        S* raw = a.scratch;
        S* graw = raw + width * batch;
        S* cat = graw + width * batch;
        S* gu = cat + std::max(concat::scratch_size(n1, batch), concat::scratch_size(n2, batch));
        S* gy1 = gu + u_width * batch;
        S* gc = gy1 + n1 * batch;
        S* work = gc + cond_size * batch;
        const spline_constants<S> c = spline_base.constants();
        const cview<S> x1 = a.in[0], x2 = a.in[0].shifted(n1), y1 = a.out[0];
        const view<S> gx1 = a.grad_in[0], gx2 = a.grad_in[0].shifted(n1);

        // Side 2: y2 = spline(x2; subnet2(cat(y1, c))).
        {
            constexpr index_t P2 = P * layout::len2 * layout::pixels;
            const cview<S> u = concat::make(y1, n1, a.cond, batch, cat);
            const view<S> r{raw, P2}, gr{graw, P2};
            subnet2.forward(u, r, batch, work);
            binned_spline_backward<Kind, spline>(x2, r, a.grad_out[0].shifted(n1), a.grad_ljd, gx2,
                                                 gr, layout::len2, layout::pixels, batch, c);
            subnet_backward(subnet2, u, r, gr, view<S>{gu, n1 + cond_size}, batch, work, a);
            for (index_t b = 0; b < batch; ++b) {
                const S* g = gu + b * (n1 + cond_size);
                const S* gy = a.grad_out[0].row(b);
                for (index_t i = 0; i < n1; ++i)
                    gy1[b * n1 + i] = gy[i] + g[i];
                std::copy_n(g + n1, cond_size, gc + b * cond_size);
            }
        }
        // Side 1: y1 = spline(x1; subnet1(cat(x2, c))).
        {
            constexpr index_t P1 = P * layout::len1 * layout::pixels;
            const cview<S> u = concat::make(x2, n2, a.cond, batch, cat);
            const view<S> r{raw, P1}, gr{graw, P1};
            subnet1.forward(u, r, batch, work);
            binned_spline_backward<Kind, spline>(x1, r, cview<S>{gy1, n1}, a.grad_ljd, gx1, gr,
                                                 layout::len1, layout::pixels, batch, c);
            subnet_backward(subnet1, u, r, gr, view<S>{gu, n2 + cond_size}, batch, work, a);
            for (index_t b = 0; b < batch; ++b) {
                const S* g = gu + b * (n2 + cond_size);
                S* gx = gx2.row(b);
                for (index_t i = 0; i < n2; ++i)
                    gx[i] += g[i];
                for (index_t i = 0; i < cond_size; ++i)
                    gc[b * cond_size + i] += g[n2 + i];
            }
        }
        concat::add_condition_gradient(a.grad_cond, batch, gc, 0);
    }

    template <class V>
    void visit(V&& v, const std::string& prefix) {
        spline_base.visit(v, prefix + "spline_base.");
        nn::visit_layer(subnet1, v, prefix + "subnet1.");
        nn::visit_layer(subnet2, v, prefix + "subnet2.");
    }
};

}  // namespace detail

/// FrEIA's BinnedSpline: the coupling wrapper of a spline `Kind` (detail::rq_spline,
/// detail::linear_spline). Shape rule: the coupling family's (one input of rank 1-4, conditions
/// matching its spatial dims, two non-empty parts; C = 1 -> too_few_channels) and valid spline
/// options (invalid_option).
template <class Kind, nn::SubnetConstructor Subnet,
          SplineCouplingOptions O = SplineCouplingOptions{}>
struct BinnedSpline {
    static constexpr std::string_view name = "BinnedSpline";

    static constexpr shape_result output_shapes(const signature& s) {
        if (auto r = expect_single_input(s); !r.ok()) return r;
        if (!spline_options_valid(spline_options_of(O))) return fail(shape_error::invalid_option);
        return check_coupling(s, coupling_options_of(O));
    }

    template <Scalar S, signature Sig>
    using bind = detail::binned_spline_coupling<BinnedSpline, Kind, Subnet, O, S, Sig>;
};

}  // namespace inn
