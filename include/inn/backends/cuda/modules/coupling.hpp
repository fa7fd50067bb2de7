#pragma once
// FrEIA's coupling family on the device (modules/coupling/ has the formulas): GLOW, GIN, RNVP,
// NICE, AffineCouplingOneSided and ConditionalAffineTransform.
//
// A side of a two-sided block is: the subnet input cat(part, c...) (condition_concat), the
// subnet(s) as device layers writing [s | t] into scratch, then one element-wise pass for the
// coupling and (with the log-determinant) one pass per sample summing s. GIN first centres s
// per pixel (one pass per sample and pixel). The soft clamp is evaluated as the host evaluates
// it (g(raw) first, then times S(clamp)), so results agree to rounding; only the order of the
// log-determinant's sum differs from the host's packet-wise sum.
//
// A block whose subnet has a layer without a device twin has no device binding.

#include <algorithm>

#include "../../../modules/coupling/conditional_affine.hpp"
#include "../../../modules/coupling/gin.hpp"
#include "../../../modules/coupling/glow.hpp"
#include "../../../modules/coupling/nice.hpp"
#include "../../../modules/coupling/one_sided.hpp"
#include "../../../modules/coupling/rnvp.hpp"
#include "../launch.hpp"
#include "../math.hpp"
#include "../nn.hpp"
#include "condition_concat.hpp"

namespace inn::cuda {

/// The layer spec `Subnet` builds for `CIn` input and `Out` output channels.
template <class Subnet, int CIn, int Out>
using subnet_spec = typename Subnet::template net<CIn, Out>;

/// inn::soft_clamp on the device: clamp * g(raw), the options as values (not template
/// parameters, which device code may not read).
template <Scalar S> struct soft_clamp_fn {
    S clamp;
    clamp_activation activation;
    INN_HD S operator()(S raw) const {
        S g;
        switch (activation) {
        case clamp_activation::atan:
            g = S(0.636) * math::atan(raw);
            break;
        case clamp_activation::tanh:
            g = math::tanh(raw);
            break;
        default: // sigmoid
            g = S(2.0) * (S(1) / (S(1) + math::exp(-raw)) - S(0.5));
            break;
        }
        return clamp * g;
    }
};

template <Scalar S, CouplingOptions O> constexpr soft_clamp_fn<S> soft_clamp_of() {
    return {S(O.clamp), O.activation};
}

/// One affine coupling of `n = len * pixels` scalars per sample: s = clamp(raw) (GIN: minus the
/// per-pixel mean), y = exp(s) x + t, or (Rev) y = (x - t) exp(-s). One output per index.
template <Scalar S, bool Rev> struct affine_map {
    const S* x;
    index_t ldx;
    const S* s; // raw
    const S* t;
    index_t ldst; // row stride of s and t
    S* y;
    index_t ldy;
    const S* mean; // GIN: batch x pixels; else null
    index_t n, pixels;
    soft_clamp_fn<S> clamp;
    INN_HD void operator()(index_t k) const {
        const index_t b = fast_div(k, n), i = k - b * n;
        S si = clamp(s[b * ldst + i]);
        if (mean)
            si -= mean[b * pixels + i % pixels];
        const S xi = x[b * ldx + i], ti = t[b * ldst + i];
        y[b * ldy + i] = Rev ? (xi - ti) * math::exp(-si) : math::exp(si) * xi + ti;
    }
};

/// GIN: mean[b, p] = mean over the `len` channels of the clamped s at pixel p.
template <Scalar S> struct pixel_mean_of_s {
    const S* s;
    index_t lds;
    S* mean;
    index_t len, pixels;
    soft_clamp_fn<S> clamp;
    INN_HD void operator()(index_t k) const {
        const index_t b = fast_div(k, pixels), p = k - b * pixels;
        S sum = 0;
        for (index_t c = 0; c < len; ++c)
            sum += clamp(s[b * lds + c * pixels + p]);
        mean[k] = sum / S(len);
    }
};

/// j[b] = sign * sum of the clamped s of sample b; the lanes of a warp share a sample.
template <Scalar S> struct sum_of_s {
    const S* s;
    index_t lds;
    S* j;
    index_t n;
    S sign;
    soft_clamp_fn<S> clamp;
    INN_HD void operator()(index_t b, int lane, int lanes) const {
        S sum = 0;
        for (index_t i = lane; i < n; i += lanes)
            sum += clamp(s[b * lds + i]);
        lanes_sum(sum);
        if (lane == 0)
            j[b] = sign * sum;
    }
};

/// y = x + shift (NICE), or (Rev) x - shift.
template <Scalar S, bool Rev> struct additive_map {
    const S* x;
    index_t ldx;
    const S* shift;
    index_t lds;
    S* y;
    index_t ldy;
    index_t n;
    INN_HD void operator()(index_t k) const {
        const index_t b = fast_div(k, n), i = k - b * n;
        const S xi = x[b * ldx + i], si = shift[b * lds + i];
        y[b * ldy + i] = Rev ? xi - si : xi + si;
    }
};

/// ljd[b] += j1[b] + j2[b] (FrEIA's order: the two sides summed first).
template <Scalar S> struct add_two {
    S* ljd;
    const S* j1;
    const S* j2; // null: j1 alone
    INN_HD void operator()(index_t b) const { ljd[b] += j2 ? j1[b] + j2[b] : j1[b]; }
};

/// The affine coupling of one part given the subnet outputs s (raw) and t: the element pass,
/// with GIN's centring first and the log-determinant into j (null: not wanted).
template <Scalar S, CouplingOptions O, bool Rev, bool Center>
void affine_coupling(const context& ctx, dcview<S> x, dcview<S> s, dcview<S> t, index_t ldst,
                     dview<S> y, index_t len, index_t pixels, index_t batch, S* mean, S* j) {
    const index_t n = len * pixels;
    const soft_clamp_fn<S> clamp = soft_clamp_of<S, O>();
    if constexpr (Center)
        for_each_index(ctx, batch * pixels,
                       pixel_mean_of_s<S>{s.data, ldst, mean, len, pixels, clamp});
    for_each_index(ctx, batch * n,
                   affine_map<S, Rev>{x.data, x.stride, s.data, t.data, ldst, y.data, y.stride,
                                      Center ? mean : nullptr, n, pixels, clamp});
    if (j && !Center)
        for_each_sample_warp(ctx, batch,
                             sum_of_s<S>{s.data, ldst, j, n, Rev ? S(-1) : S(1), clamp});
}

/// FrEIA's two-sided forward/reverse over a derived device module `D` (the host's
/// detail::two_sided_coupling, on the device): D provides has_log_det, work_size(batch) and
/// couple<Side, Rev>(ctx, active, u, result, batch, j, work).
template <class D, Scalar S, signature Sig, CouplingOptions O> struct two_sided_coupling {
    using layout = inn::detail::coupling_layout<Sig, O>;
    using concat = condition_concat<S, Sig>;

    static constexpr index_t cat_size(index_t batch) {
        return std::max(concat::scratch_size(layout::n1, batch),
                        concat::scratch_size(layout::n2, batch));
    }
    // [j1 | j2 | cat(part, c...) | D's work]
    static constexpr index_t scratch_size(index_t batch) {
        return 2 * batch + cat_size(batch) + D::work_size(batch);
    }

    void forward(const run_args<S, device>& a) const { run<false>(a); }
    void inverse(const run_args<S, device>& a) const { run<true>(a); }

  private:
    template <bool Rev> void run(const run_args<S, device>& a) const {
        constexpr index_t n1 = layout::n1, n2 = layout::n2;
        const context& ctx = *a.context;
        const index_t batch = a.batch;
        const bool jac = D::has_log_det && a.jac;
        S* j1 = a.scratch;
        S* j2 = j1 + batch;
        S* cat = j2 + batch;
        S* work = cat + cat_size(batch);
        const D& d = static_cast<const D&>(*this);

        const dcview<S> in1 = a.in[0], in2 = a.in[0].shifted(n1);
        const dview<S> out1 = a.out[0], out2 = a.out[0].shifted(n1);
        if constexpr (!Rev) {
            d.template couple<1, false>(ctx, in1, concat::make(ctx, in2, n2, a.cond, batch, cat),
                                        out1, batch, jac ? j1 : nullptr, work);
            d.template couple<2, false>(ctx, in2, concat::make(ctx, out1, n1, a.cond, batch, cat),
                                        out2, batch, jac ? j2 : nullptr, work);
        } else {
            d.template couple<2, true>(ctx, in2, concat::make(ctx, in1, n1, a.cond, batch, cat),
                                       out2, batch, jac ? j2 : nullptr, work);
            d.template couple<1, true>(ctx, in1, concat::make(ctx, out2, n2, a.cond, batch, cat),
                                       out1, batch, jac ? j1 : nullptr, work);
        }
        if (jac)
            for_each_index(ctx, batch, add_two<S>{a.ljd, j1, j2});
    }
};

// ---- GLOW and GIN ----------------------------------------------------------------------------

template <class Module, class Subnet, CouplingOptions O, bool Gin, Scalar S, signature Sig>
struct glow_coupling
    : two_sided_coupling<glow_coupling<Module, Subnet, O, Gin, S, Sig>, S, Sig, O> {
    using host_type = inn::detail::glow_coupling<Module, Subnet, O, Gin, S, Sig>;
    using layout = inn::detail::coupling_layout<Sig, O>;
    using net1_t =
        layer_t<subnet_spec<Subnet, layout::in1.channels(), 2 * layout::len2>, S, layout::in1>;
    using net2_t =
        layer_t<subnet_spec<Subnet, layout::in2.channels(), 2 * layout::len1>, S, layout::in2>;
    static constexpr bool has_log_det = !Gin;
    static constexpr index_t width = host_type::width;

    net1_t subnet1;
    net2_t subnet2;

    glow_coupling(const context& ctx, const host_type& h)
        : subnet1(ctx, h.subnet1), subnet2(ctx, h.subnet2) {}
    void upload(const context& ctx, const host_type& h) {
        subnet1.upload(ctx, h.subnet1);
        subnet2.upload(ctx, h.subnet2);
    }

    // [s | t], GIN's per-pixel means, then the subnets' own scratch.
    static constexpr index_t work_size(index_t batch) {
        return (width + (Gin ? layout::pixels : 0)) * batch +
               std::max(net1_t::scratch_size(batch), net2_t::scratch_size(batch));
    }

    template <int Side, bool Rev>
    void couple(const context& ctx, dcview<S> active, dcview<S> u, dview<S> result, index_t batch,
                S* j, S* work) const {
        constexpr int len = Side == 1 ? layout::len1 : layout::len2;
        constexpr index_t n = Side == 1 ? layout::n1 : layout::n2;
        const dview<S> st{work, 2 * n};
        S* mean = work + width * batch;
        S* sub = mean + (Gin ? layout::pixels : 0) * batch;
        if constexpr (Side == 1) // part 1 is transformed by the subnet of part 2
            subnet2.forward(ctx, u, st, batch, sub);
        else
            subnet1.forward(ctx, u, st, batch, sub);
        affine_coupling<S, O, Rev, Gin>(ctx, active, st, st.shifted(n), 2 * n, result, len,
                                        layout::pixels, batch, mean, j);
    }
};

// ---- RNVP ------------------------------------------------------------------------------------

template <class Subnet, CouplingOptions O, Scalar S, signature Sig>
struct rnvp_coupling : two_sided_coupling<rnvp_coupling<Subnet, O, S, Sig>, S, Sig, O> {
    using host_type = typename RNVPCouplingBlock<Subnet, O>::template bind<S, Sig>;
    using layout = inn::detail::coupling_layout<Sig, O>;
    using net1_t =
        layer_t<subnet_spec<Subnet, layout::in1.channels(), layout::len2>, S, layout::in1>;
    using net2_t =
        layer_t<subnet_spec<Subnet, layout::in2.channels(), layout::len1>, S, layout::in2>;
    static constexpr bool has_log_det = true;
    static constexpr index_t width = host_type::width;

    net1_t subnet_s1, subnet_t1;
    net2_t subnet_s2, subnet_t2;

    rnvp_coupling(const context& ctx, const host_type& h)
        : subnet_s1(ctx, h.subnet_s1), subnet_t1(ctx, h.subnet_t1), subnet_s2(ctx, h.subnet_s2),
          subnet_t2(ctx, h.subnet_t2) {}
    void upload(const context& ctx, const host_type& h) {
        subnet_s1.upload(ctx, h.subnet_s1);
        subnet_t1.upload(ctx, h.subnet_t1);
        subnet_s2.upload(ctx, h.subnet_s2);
        subnet_t2.upload(ctx, h.subnet_t2);
    }

    // s, t, then the subnets' own scratch.
    static constexpr index_t work_size(index_t batch) {
        return 2 * width * batch +
               std::max(net1_t::scratch_size(batch), net2_t::scratch_size(batch));
    }

    template <int Side, bool Rev>
    void couple(const context& ctx, dcview<S> active, dcview<S> u, dview<S> result, index_t batch,
                S* j, S* work) const {
        constexpr int len = Side == 1 ? layout::len1 : layout::len2;
        constexpr index_t n = Side == 1 ? layout::n1 : layout::n2;
        const dview<S> s{work, n}, t{work + width * batch, n};
        S* sub = work + 2 * width * batch;
        if constexpr (Side == 1) { // part 1 is scaled by the subnets of part 2
            subnet_s2.forward(ctx, u, s, batch, sub);
            subnet_t2.forward(ctx, u, t, batch, sub);
        } else {
            subnet_s1.forward(ctx, u, s, batch, sub);
            subnet_t1.forward(ctx, u, t, batch, sub);
        }
        // s and t share the stride n.
        affine_coupling<S, O, Rev, false>(ctx, active, s, t, n, result, len, layout::pixels, batch,
                                          nullptr, j);
    }
};

// ---- NICE ------------------------------------------------------------------------------------

template <class Subnet, CouplingOptions O, Scalar S, signature Sig>
struct nice_coupling : two_sided_coupling<nice_coupling<Subnet, O, S, Sig>, S, Sig, O> {
    using host_type = typename NICECouplingBlock<Subnet, O>::template bind<S, Sig>;
    using layout = inn::detail::coupling_layout<Sig, O>;
    using F_t = layer_t<subnet_spec<Subnet, layout::in2.channels(), layout::len1>, S, layout::in2>;
    using G_t = layer_t<subnet_spec<Subnet, layout::in1.channels(), layout::len2>, S, layout::in1>;
    static constexpr bool has_log_det = false;
    static constexpr index_t width = host_type::width;

    F_t F;
    G_t G;

    nice_coupling(const context& ctx, const host_type& h) : F(ctx, h.F), G(ctx, h.G) {}
    void upload(const context& ctx, const host_type& h) {
        F.upload(ctx, h.F);
        G.upload(ctx, h.G);
    }

    static constexpr index_t work_size(index_t batch) {
        return width * batch + std::max(F_t::scratch_size(batch), G_t::scratch_size(batch));
    }

    template <int Side, bool Rev>
    void couple(const context& ctx, dcview<S> active, dcview<S> u, dview<S> result, index_t batch,
                S*, S* work) const {
        constexpr index_t n = Side == 1 ? layout::n1 : layout::n2;
        const dview<S> shift{work, n};
        if constexpr (Side == 1)
            F.forward(ctx, u, shift, batch, work + width * batch);
        else
            G.forward(ctx, u, shift, batch, work + width * batch);
        for_each_index(ctx, batch * n,
                       additive_map<S, Rev>{active.data, active.stride, shift.data, n, result.data,
                                            result.stride, n});
    }
};

// ---- AffineCouplingOneSided and ConditionalAffineTransform -------------------------------------

/// The host's detail::one_sided_affine on the device: part 1 (Passive channels) copied, part 2
/// coupled with [s | t] = subnet(cat(x1, c...)).
template <class HostBound, class Subnet, CouplingOptions O, Scalar S, signature Sig, int Passive>
struct one_sided_affine {
    using host_type = HostBound;
    using concat = condition_concat<S, Sig>;
    static constexpr dims in = Sig.in();
    static constexpr index_t pixels = in.spatial_size();
    static constexpr int len1 = Passive, len2 = in.channels() - Passive;
    static constexpr index_t n1 = index_t(len1) * pixels, n2 = index_t(len2) * pixels;
    static constexpr dims subnet_in = in.with(0, len1 + Sig.conditions.total_channels());
    using spec = subnet_spec<Subnet, subnet_in.channels(), 2 * len2>;
    using subnet_t = layer_t<spec, S, subnet_in>;

    subnet_t subnet;

    one_sided_affine(const context& ctx, const host_type& h) : subnet(ctx, h.subnet) {}
    void upload(const context& ctx, const host_type& h) { subnet.upload(ctx, h.subnet); }

    // [j | cat(x1, c...) | [s | t] | subnet scratch]
    static constexpr index_t scratch_size(index_t batch) {
        return batch + concat::scratch_size(n1, batch) + 2 * n2 * batch +
               subnet_t::scratch_size(batch);
    }

    void forward(const run_args<S, device>& a) const { run<false>(a); }
    void inverse(const run_args<S, device>& a) const { run<true>(a); }

  private:
    template <bool Rev> void run(const run_args<S, device>& a) const {
        const context& ctx = *a.context;
        const index_t batch = a.batch;
        S* j = a.jac ? a.scratch : nullptr;
        S* cat = a.scratch + batch;
        const dview<S> st{cat + concat::scratch_size(n1, batch), 2 * n2};
        S* sub = st.data + 2 * n2 * batch;

        const dcview<S> in1 = a.in[0];
        if constexpr (n1 > 0)
            copy_rows(ctx, copy_kind::device_to_device, in1.data, in1.stride, a.out[0].data,
                      a.out[0].stride, batch, n1);
        subnet.forward(ctx, concat::make(ctx, in1, n1, a.cond, batch, cat), st, batch, sub);
        affine_coupling<S, O, Rev, false>(ctx, a.in[0].shifted(n1), st, st.shifted(n2), 2 * n2,
                                          a.out[0].shifted(n1), len2, pixels, batch, nullptr, j);
        if (j)
            for_each_index(ctx, batch, add_two<S>{a.ljd, j, nullptr});
    }
};

template <class Subnet, CouplingOptions O, Scalar S, signature Sig>
using one_sided_coupling =
    one_sided_affine<typename AffineCouplingOneSided<Subnet, O>::template bind<S, Sig>, Subnet, O,
                     S, Sig, inn::detail::coupling_layout<Sig, O>::len1>;

template <class Subnet, CouplingOptions O, Scalar S, signature Sig>
using conditional_affine =
    one_sided_affine<typename ConditionalAffineTransform<Subnet, O>::template bind<S, Sig>, Subnet,
                     O, S, Sig, 0>;

} // namespace inn::cuda

namespace inn::cuda {
// The subnet specs of a two-sided block: side 1's (reads part 1, `Out1` channels out) and
// side 2's, known without instantiating the device block (whose layers need device twins).
template <class Subnet, CouplingOptions O, signature Sig, int Scale> struct two_sided_specs {
    using layout = inn::detail::coupling_layout<Sig, O>;
    static constexpr bool on_device =
        layer_on_device<subnet_spec<Subnet, layout::in1.channels(), Scale * layout::len2>> &&
        layer_on_device<subnet_spec<Subnet, layout::in2.channels(), Scale * layout::len1>>;
};
template <class Subnet, CouplingOptions O, signature Sig, int Passive>
constexpr bool one_sided_on_device =
    layer_on_device<subnet_spec<Subnet, Passive + Sig.conditions.total_channels(),
                                2 * (Sig.in().channels() - Passive)>>;
} // namespace inn::cuda

namespace inn {
template <class Subnet, CouplingOptions O>
struct space_binding<GLOWCouplingBlock<Subnet, O>, cuda::device> {
    template <Scalar S, signature Sig>
    using bind = std::conditional_t<
        cuda::two_sided_specs<Subnet, O, Sig, 2>::on_device,
        cuda::glow_coupling<GLOWCouplingBlock<Subnet, O>, Subnet, O, false, S, Sig>, void>;
};
template <class Subnet, CouplingOptions O>
struct space_binding<GINCouplingBlock<Subnet, O>, cuda::device> {
    template <Scalar S, signature Sig>
    using bind = std::conditional_t<
        cuda::two_sided_specs<Subnet, O, Sig, 2>::on_device,
        cuda::glow_coupling<GINCouplingBlock<Subnet, O>, Subnet, O, true, S, Sig>, void>;
};
template <class Subnet, CouplingOptions O>
struct space_binding<RNVPCouplingBlock<Subnet, O>, cuda::device> {
    template <Scalar S, signature Sig>
    using bind = std::conditional_t<cuda::two_sided_specs<Subnet, O, Sig, 1>::on_device,
                                    cuda::rnvp_coupling<Subnet, O, S, Sig>, void>;
};
template <class Subnet, CouplingOptions O>
struct space_binding<NICECouplingBlock<Subnet, O>, cuda::device> {
    template <Scalar S, signature Sig>
    using bind = std::conditional_t<cuda::two_sided_specs<Subnet, O, Sig, 1>::on_device,
                                    cuda::nice_coupling<Subnet, O, S, Sig>, void>;
};
template <class Subnet, CouplingOptions O>
struct space_binding<AffineCouplingOneSided<Subnet, O>, cuda::device> {
    template <Scalar S, signature Sig>
    using bind = std::conditional_t<
        cuda::one_sided_on_device<Subnet, O, Sig, inn::detail::coupling_layout<Sig, O>::len1>,
        cuda::one_sided_coupling<Subnet, O, S, Sig>, void>;
};
template <class Subnet, CouplingOptions O>
struct space_binding<ConditionalAffineTransform<Subnet, O>, cuda::device> {
    template <Scalar S, signature Sig>
    using bind = std::conditional_t<cuda::one_sided_on_device<Subnet, O, Sig, 0>,
                                    cuda::conditional_affine<Subnet, O, S, Sig>, void>;
};
} // namespace inn
