#pragma once
// ElementwiseRationalQuadraticSpline (FrEIA): every scalar of the input goes
// through its own rational-quadratic spline with affine tails (not a coupling).
//
//   ElementwiseRationalQuadraticSpline<>                                   // learned, bins = 10
//   ElementwiseRationalQuadraticSpline<SplineOptions{.bins = 6, .domain_clamping = 3}>
//   ElementwiseRationalQuadraticSpline<SplineOptions{}, subnet>          // conditional
//
// Unconditional: a learned parameter `spline_parameters` of shape (C*P, *S), initialised to
// zeros (the identity map with the default domain) and shared by every sample; state_dict
// `spline_parameters` then the BinnedSplineBase buffers. Given a subnet and conditions (FrEIA:
// `subnet_constructor` with dims_c), `subnet = f(condition_length, C*P)` maps cat(c...) to the
// raw parameters per sample; state_dict: the buffers, then `subnet.*`. Without conditions the
// subnet is not built (as in FrEIA); conditions without a subnet are rejected
// (condition_not_accepted; FrEIA would call None). Conditions must share the input's spatial dims.
//
// Deliberate difference: FrEIA casts the condition to float32 (`.float()`), so its conditional
// module only runs in float32; here the condition is used in the network's Scalar (float64 gives
// the float32 results to ~1e-6, the tolerance its fixture states).

#include <string>
#include <string_view>
#include <type_traits>

#include "rational_quadratic.hpp"

namespace inn {

namespace detail {

/// The default "no subnet_constructor" (never built: conditions are rejected without a subnet).
struct no_subnet {
    template <int, int>
    struct net;
};

/// Unconditional: the constrained splines do not depend on the sample, so they are built once
/// per call (in scratch) and applied to every row.
template <SplineOptions O, Scalar S, signature Sig>
struct erqs_unconditional {
    static constexpr dims in = Sig.in();
    static constexpr int C = in.channels();
    static constexpr index_t pixels = in.spatial_size();
    static constexpr int extra = rq_spline::extra_slots(O.bins);
    static constexpr int P = spline_slots<O, extra>::count;
    using K = knots<O.bins, true>;

    parameter<S> spline_parameters{parameter_shape()};
    spline_buffers<S, O> base;

    explicit erqs_unconditional(generator&) {}

    static tensor_shape parameter_shape() {
        tensor_shape t;
        t.rank = in.rank;
        t.extent[0] = std::int64_t(C) * P;
        for (int d = 1; d < in.rank; ++d) t.extent[std::size_t(d)] = in[d];
        return t;
    }

    // Forward and inverse: the knots of every scalar. Backward: the knots, dL/d(knots) summed
    // over the batch, and dL/d(spline_parameters).
    static constexpr index_t scratch_size(pass p, index_t) {
        const index_t knots_size = index_t(C) * pixels * K::size;
        return p == pass::backward ? 2 * knots_size + index_t(C) * P * pixels : knots_size;
    }

    void forward(const run_args<S>& a) const { run<false>(a); }
    void inverse(const run_args<S>& a) const { run<true>(a); }

    /// dL/dx per value; dL/d(spline_parameters) sums every sample's dL/d(knots) first (the
    /// knots are shared), then goes once through the constraints.
    void backward(const backward_args<S>& a) const {
        constexpr index_t n = index_t(C) * pixels;
        S* k = a.scratch;
        S* gk = k + n * K::size;
        S* graw = gk + n * K::size;
        S* gp = a.grad_of(spline_parameters);
        const spline_constants<S> c = base.constants();
        for (index_t ch = 0; ch < C; ++ch)
            for (index_t q = 0; q < pixels; ++q)
                constrain_spline<O, extra, true>(spline_parameters.data() + ch * P * pixels + q,
                                                 pixels, c, k + (ch * pixels + q) * K::size);
        std::fill(gk, gk + n * K::size, S(0));
        for (index_t b = 0; b < a.batch; ++b) {
            const S* x = a.in[0].row(b);
            const S* gy = a.grad_out[0].row(b);
            S* gx = a.grad_in[0].row(b);
            const S gl = a.grad_ljd ? a.grad_ljd[b] : S(0);
            for (index_t i = 0; i < n; ++i)
                gx[i] = eval_spline_backward<rq_spline, O.bins>(k + i * K::size, x[i], gy[i], gl,
                                                                gk + i * K::size);
        }
        if (!gp)
            return;
        for (index_t ch = 0; ch < C; ++ch)
            for (index_t q = 0; q < pixels; ++q) {
                const index_t i = ch * pixels + q, r = ch * P * pixels + q;
                constrain_spline_backward<O, extra, true>(spline_parameters.data() + r, pixels, c,
                                                          k + i * K::size, gk + i * K::size,
                                                          graw + r, pixels);
            }
        for (index_t i = 0; i < n * P; ++i)
            gp[i] += graw[i];
    }

    template <class V>
    void visit(V&& v, const std::string& prefix) {
        v(prefix + "spline_parameters", spline_parameters.ref());
        base.visit(v, prefix);
    }

private:
    template <bool Rev>
    void run(const run_args<S>& a) const {
        const spline_constants<S> c = base.constants();
        for (index_t ch = 0; ch < C; ++ch)
            for (index_t q = 0; q < pixels; ++q)
                constrain_spline<O, rq_spline::extra_slots(O.bins), true>(
                    spline_parameters.data() + ch * P * pixels + q, pixels, c,
                    a.scratch + (ch * pixels + q) * K::size);
        for (index_t b = 0; b < a.batch; ++b) {
            const S* x = a.in[0].row(b);
            S* y = a.out[0].row(b);
            S sum = 0;
            for (index_t q = 0; q < pixels; ++q)  // channel-last order, as FrEIA sums
                for (index_t ch = 0; ch < C; ++ch) {
                    const index_t i = ch * pixels + q;
                    S lj = 0;
                    y[i] = eval_spline<rq_spline, O.bins, Rev>(a.scratch + i * K::size, x[i], lj,
                                                               a.jac);
                    sum += lj;
                }
            if (a.jac) a.ljd[b] += Rev ? -sum : sum;
        }
    }
};

/// Conditional: raw parameters = subnet(cat(c...)) per sample.
template <class Module, SplineOptions O, class Subnet, Scalar S, signature Sig>
struct erqs_conditional {
    static constexpr dims in = Sig.in();
    static constexpr int C = in.channels();
    static constexpr index_t pixels = in.spatial_size();
    static constexpr int P = spline_slots<O, rq_spline::extra_slots(O.bins)>::count;
    static constexpr index_t n_raw = index_t(C) * P * pixels;
    using concat = condition_concat<S, Sig>;
    using net_t =
        coupling_subnet<Subnet, S, in.with(0, Sig.conditions.total_channels()), C * P, Module>;

    spline_buffers<S, O> base;
    net_t subnet;

    explicit erqs_conditional(generator& g) : subnet(g) {}

    // Forward, inverse: [j | raw parameters | concatenated condition | subnet scratch].
    // Backward: [raw | dL/draw | concatenated condition | dL/d(it) | subnet scratch].
    static constexpr index_t scratch_size(pass p, index_t batch) {
        if (p != pass::backward)
            return batch + n_raw * batch + concat::scratch_size(0, batch) +
                   nn::layer_scratch<net_t>(batch);
        return 2 * n_raw * batch + concat::scratch_size(0, batch) + concat::cond_size * batch +
               std::max(nn::layer_scratch<net_t>(batch), nn::layer_backward_scratch<net_t>(batch));
    }

    void forward(const run_args<S>& a) const { run<false>(a); }
    void inverse(const run_args<S>& a) const { run<true>(a); }

    /// The raw parameters recomputed from the conditions, the splines' adjoint, then the
    /// subnet's backward (dL/dc and its parameters' gradients, when wanted).
    void backward(const backward_args<S>& a) const {
        const index_t batch = a.batch;
        const view<S> raw{a.scratch, n_raw};
        const view<S> graw{raw.data + n_raw * batch, n_raw};
        S* cat = graw.data + n_raw * batch;
        S* gc = cat + concat::scratch_size(0, batch);
        S* work = gc + concat::cond_size * batch;
        const cview<S> u = concat::make(cview<S>{}, 0, a.cond, batch, cat);
        subnet.forward(u, raw, batch, work);
        binned_spline_backward<rq_spline, O>(a.in[0], raw, a.grad_out[0], a.grad_ljd, a.grad_in[0],
                                             graw, C, pixels, batch, base.constants());
        const bool cond_wanted = !a.grad_cond.empty();
        subnet_backward(subnet, u, raw, graw,
                        cond_wanted ? view<S>{gc, concat::cond_size} : view<S>{}, batch, work, a);
        if (cond_wanted)
            concat::add_condition_gradient(a.grad_cond, batch, gc, 0);
    }

    template <class V>
    void visit(V&& v, const std::string& prefix) {
        base.visit(v, prefix);
        nn::visit_layer(subnet, v, prefix + "subnet.");
    }

private:
    template <bool Rev>
    void run(const run_args<S>& a) const {
        const index_t batch = a.batch;
        S* j = a.scratch;
        const view<S> raw{j + batch, n_raw};
        S* cat = raw.data + n_raw * batch;
        const cview<S> u = concat::make(cview<S>{}, 0, a.cond, batch, cat);
        subnet.forward(u, raw, batch, cat + concat::scratch_size(0, batch));
        binned_spline<rq_spline, O, Rev>(a.in[0], raw, a.out[0], C, pixels, batch,
                                         base.constants(), a.jac ? j : nullptr);
        if (a.jac)
            for (index_t b = 0; b < batch; ++b) a.ljd[b] += j[b];
    }
};

template <class Module, SplineOptions O, class Subnet, Scalar S, signature Sig,
          bool Conditional = Sig.conditional()>
struct erqs_bind_t {
    using type = erqs_unconditional<O, S, Sig>;
};
template <class Module, SplineOptions O, class Subnet, Scalar S, signature Sig>
struct erqs_bind_t<Module, O, Subnet, S, Sig, true> {
    using type = erqs_conditional<Module, O, Subnet, S, Sig>;
};

}  // namespace detail

template <SplineOptions O = SplineOptions{}, nn::SubnetConstructor Subnet = detail::no_subnet>
struct ElementwiseRationalQuadraticSpline {
    static constexpr std::string_view name = "ElementwiseRationalQuadraticSpline";

    static constexpr shape_result output_shapes(const signature& s) {
        if (auto r = expect_single_input(s); !r.ok()) return r;
        if (!spline_options_valid(O)) return fail(shape_error::invalid_option);
        if (s.conditional()) {
            if (std::is_same_v<Subnet, detail::no_subnet>)
                return fail(shape_error::condition_not_accepted);
            if (auto r = expect_conditions_match_spatial(s); !r.ok()) return r;
        }
        return returns({s.in()});
    }

    template <Scalar S, signature Sig>
    using bind =
        typename detail::erqs_bind_t<ElementwiseRationalQuadraticSpline, O, Subnet, S, Sig>::type;
};

}  // namespace inn
