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
template <SplineOptions O, int Extra, Scalar S>
void constrain_spline(const S* raw, index_t step, const spline_constants<S>& c, S* k) {
    using slot = spline_slots<O, Extra>;
    using K = knots<O.bins, (Extra > 0)>;
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
    if constexpr (Extra > 0) {
        // Derivatives at the knots: [scale, softplus(raw + ln(e - 1))..., scale].
        k[K::d] = scale;
        for (int i = 1; i < B; ++i)
            k[K::d + i] = softplus(raw[(slot::extra + i - 1) * step] + S(log_e_minus_1));
        k[K::d + B] = scale;
    }
}

/// Evaluates the constrained spline `k` at `v` (forward: x -> y with the x knots; Rev: y -> x
/// with the y knots) and stores the forward log-derivative at the point in `lj`.
template <class Kind, int Bins, bool Rev, Scalar S>
S eval_spline(const S* k, S v, S& lj, bool jac) {
    using K = knots<Bins, (Kind::extra_slots(Bins) > 0)>;
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

/// FrEIA's binned_spline on one part of a batch: `len` channels of `pixels` scalars per sample
/// read from `x` (row stride of the view), raw parameters `raw` (B, len*P, *S) channel-major.
/// Writes `y` and, with `j`, j[b] = +-sum of the log-derivatives (negated in reverse).
template <class Kind, SplineOptions O, bool Rev, Scalar S>
void binned_spline(std::type_identity_t<cview<S>> x, std::type_identity_t<cview<S>> raw, view<S> y,
                   index_t len, index_t pixels, index_t batch, const spline_constants<S>& c,
                   S* j) {
    constexpr int extra = Kind::extra_slots(O.bins);
    constexpr int P = spline_slots<O, extra>::count;
    std::array<S, std::size_t(knots<O.bins, (extra > 0)>::size)> k;
    const bool jac = j != nullptr;
    for (index_t b = 0; b < batch; ++b) {
        const S* xb = x.row(b);
        const S* rb = raw.row(b);
        S* yb = y.row(b);
        S sum = 0;
        // Channel-last order as FrEIA sums: pixels outer, channels inner.
        for (index_t q = 0; q < pixels; ++q)
            for (index_t ch = 0; ch < len; ++ch) {
                constrain_spline<O, extra>(rb + ch * P * pixels + q, pixels, c, k.data());
                S lj = 0;
                const index_t i = ch * pixels + q;
                yb[i] = eval_spline<Kind, O.bins, Rev>(k.data(), xb[i], lj, jac);
                sum += lj;
            }
        if (jac) j[b] = Rev ? -sum : sum;
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
