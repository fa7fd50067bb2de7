#pragma once
// The 2x2 space-to-depth modules on the device (modules/detail/space_to_depth.hpp has the index
// map): IRevNetDownsampling / IRevNetUpsampling move the four pixels of each patch,
// HaarDownsampling / HaarUpsampling combine them into the four wavelet components (and back).
// One pass with one patch per index; Haar adds its constant log-determinant per sample.

#include <cmath>

#include "../../../modules/haar.hpp"
#include "../../../modules/irevnet.hpp"
#include "../launch.hpp"
#include "../nn.hpp"

namespace inn::cuda {

/// Where the four values of one 2x2 patch live on both sides, for patch index `k` of a batch.
struct patch_offsets {
    index_t hi[4], lo[4];
};
struct patch_geometry {
    index_t C, H, W;
    bool channel_major; // low channel k*C + c (Haar's order_by_wavelet, i-RevNet legacy)
    INN_HD index_t patches() const { return C * (H / 2) * (W / 2); }
    // Sample b's offsets are relative to its row.
    INN_HD patch_offsets at(index_t k, index_t& b) const {
        const index_t H2 = H / 2, W2 = W / 2, P2 = H2 * W2;
        const index_t n = C * P2;
        b = fast_div(k, n);
        const index_t r = k - b * n, c = fast_div(r, P2), l = r - c * P2, i = fast_div(l, W2),
                      j = l - i * W2;
        const index_t h = c * H * W + 2 * i * W + 2 * j;
        patch_offsets o;
        o.hi[0] = h;
        o.hi[1] = h + 1;
        o.hi[2] = h + W;
        o.hi[3] = h + W + 1;
        for (index_t q = 0; q < 4; ++q)
            o.lo[q] = (channel_major ? q * C + c : 4 * c + q) * P2 + l;
        return o;
    }
};

/// i-RevNet: the four pixels moved (ToLow: high -> low).
template <Scalar S> struct patch_move {
    patch_geometry g;
    const S* src;
    index_t lds;
    S* dst;
    index_t ldd;
    bool to_low;
    INN_HD void operator()(index_t k) const {
        index_t b;
        const patch_offsets o = g.at(k, b);
        const S* s = src + b * lds;
        S* d = dst + b * ldd;
        for (int q = 0; q < 4; ++q) {
            if (to_low)
                d[o.lo[q]] = s[o.hi[q]];
            else
                d[o.hi[q]] = s[o.lo[q]];
        }
    }
};

/// Haar: analysis (high -> components, scaled after the sums) or synthesis (components scaled,
/// then summed), as the host's haar_transform.
template <Scalar S> struct patch_haar {
    patch_geometry g;
    const S* src;
    index_t lds;
    S* dst;
    index_t ldd;
    bool analyse;
    S f;
    INN_HD void operator()(index_t k) const {
        index_t b;
        const patch_offsets o = g.at(k, b);
        const S* s = src + b * lds;
        S* d = dst + b * ldd;
        if (analyse) {
            const S a = s[o.hi[0]], bb = s[o.hi[1]], cc = s[o.hi[2]], dd = s[o.hi[3]];
            d[o.lo[0]] = (a + bb + cc + dd) * f;
            d[o.lo[1]] = (a - bb + cc - dd) * f;
            d[o.lo[2]] = (a + bb - cc - dd) * f;
            d[o.lo[3]] = (a - bb - cc + dd) * f;
        } else {
            const S A = s[o.lo[0]] * f, V = s[o.lo[1]] * f, Hc = s[o.lo[2]] * f, D = s[o.lo[3]] * f;
            d[o.hi[0]] = A + V + Hc + D;
            d[o.hi[1]] = A - V + Hc - D;
            d[o.hi[2]] = A + V - Hc - D;
            d[o.hi[3]] = A - V - Hc + D;
        }
    }
};

template <Scalar S> struct add_constant {
    S* ljd;
    S v;
    INN_HD void operator()(index_t b) const { ljd[b] += v; }
};

/// IRevNetDownsampling (Down) / IRevNetUpsampling, bound by their high-resolution side.
template <Scalar S, dims High, bool Legacy, bool Down> struct irevnet_module {
    using host_type = inn::detail::irevnet_bound<S, High, Legacy, Down>;
    static constexpr patch_geometry geometry{High[0], High[1], High[2], Legacy};

    irevnet_module(const context&, const host_type&) {}
    void upload(const context&, const host_type&) {}
    void forward(const run_args<S, device>& a) const { run(a, Down); }
    void inverse(const run_args<S, device>& a) const { run(a, !Down); }

  private:
    static void run(const run_args<S, device>& a, bool to_low) {
        for_each_index(*a.context, a.batch * geometry.patches(),
                       patch_move<S>{geometry, a.in[0].data, a.in[0].stride, a.out[0].data,
                                     a.out[0].stride, to_low});
    }
};

/// HaarDownsampling (Down) / HaarUpsampling, bound by their high-resolution side.
template <Scalar S, dims High, HaarOptions Opt, bool Down> struct haar_module {
    using host_type = inn::detail::haar_bound<S, High, Opt, Down>;
    static constexpr patch_geometry geometry{High[0], High[1], High[2], Opt.order_by_wavelet};
    static constexpr index_t n = High.size();

    // The host's constants, computed as it computes them (in double, converted once).
    S fac_fwd = S(0.5 * Opt.rebalance), fac_rev = S(0.5 / Opt.rebalance);
    S ljd_fwd = S(double(n) * ((std::log(16.0) + 4 * std::log(0.5 * Opt.rebalance)) / 4));
    S ljd_rev = S(double(n) * ((std::log(16.0) + 4 * std::log(0.5 / Opt.rebalance)) / 4));

    haar_module(const context&, const host_type&) {}
    void upload(const context&, const host_type&) {}
    void forward(const run_args<S, device>& a) const { run(a, Down); }
    void inverse(const run_args<S, device>& a) const { run(a, !Down); }

  private:
    void run(const run_args<S, device>& a, bool analyse) const {
        for_each_index(*a.context, a.batch * geometry.patches(),
                       patch_haar<S>{geometry, a.in[0].data, a.in[0].stride, a.out[0].data,
                                     a.out[0].stride, analyse, analyse ? fac_fwd : fac_rev});
        if (a.jac)
            for_each_index(*a.context, a.batch,
                           add_constant<S>{a.ljd, analyse ? ljd_fwd : ljd_rev});
    }
};

} // namespace inn::cuda

namespace inn {
template <IRevNetOptions O> struct space_binding<IRevNetDownsampling<O>, cuda::device> {
    template <Scalar S, signature Sig>
    using bind = cuda::irevnet_module<S, Sig.in(), O.legacy_backend, true>;
};
template <IRevNetOptions O> struct space_binding<IRevNetUpsampling<O>, cuda::device> {
    template <Scalar S, signature Sig>
    using bind =
        cuda::irevnet_module<S, detail::high_resolution(Sig.in()), O.legacy_backend, false>;
};
template <HaarOptions O> struct space_binding<HaarDownsampling<O>, cuda::device> {
    template <Scalar S, signature Sig> using bind = cuda::haar_module<S, Sig.in(), O, true>;
};
template <HaarOptions O> struct space_binding<HaarUpsampling<O>, cuda::device> {
    template <Scalar S, signature Sig>
    using bind = cuda::haar_module<S, detail::high_resolution(Sig.in()), O, false>;
};
} // namespace inn
