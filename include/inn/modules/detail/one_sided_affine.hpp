#pragma once
// The bound module shared by AffineCouplingOneSided and ConditionalAffineTransform: the first
// `Passive` channels pass unchanged and, with the conditions, feed one subnet whose output
// [s | t] scales and shifts the other channels:
//   a = subnet(cat(x1, c...)),  y = cat(x1, exp(clamp*g(a_s)) * x2 + a_t),  LJD sum(s)
// ConditionalAffineTransform is the case Passive = 0 (the subnet reads the conditions alone).
//
// Scratch: forward/inverse [j | cat(x1, c...) | [s | t] | subnet scratch]; backward
// [cat(x1, c...) | [s | t] | its gradient | dL/d cat(x1, c...) | subnet scratch].

#include <algorithm>
#include <string>

#include "../coupling/base.hpp"

namespace inn::detail {

template <class Subnet, CouplingOptions O, Scalar S, signature Sig, int Passive>
struct one_sided_affine {
    using concat = condition_concat<S, Sig>;
    using subnet_t = Subnet;
    static constexpr dims in = Sig.in();
    static constexpr index_t pixels = in.spatial_size();
    static constexpr int len1 = Passive, len2 = in.channels() - Passive;
    static constexpr index_t n1 = index_t(len1) * pixels, n2 = index_t(len2) * pixels;

    subnet_t subnet;

    explicit one_sided_affine(generator& g) : subnet(g) {}

    static constexpr index_t scratch_size(index_t batch) {
        return batch + concat::scratch_size(n1, batch) + 2 * n2 * batch +
               nn::layer_scratch<subnet_t>(batch);
    }
    static constexpr index_t scratch_size(pass p, index_t batch) {
        if (p != pass::backward) return scratch_size(batch);
        return concat::scratch_size(n1, batch) + (4 * n2 + n1 + concat::cond_size) * batch +
               subnet_work<subnet_t>(batch);
    }

    void forward(const run_args<S>& a) const { run<false>(a); }
    void inverse(const run_args<S>& a) const { run<true>(a); }

    void backward(const backward_args<S>& a) const {
        const index_t batch = a.batch;
        S* cat = a.scratch;
        const view<S> st{cat + concat::scratch_size(n1, batch), 2 * n2};
        const view<S> gst{st.data + 2 * n2 * batch, 2 * n2};
        const view<S> gu{gst.data + 2 * n2 * batch, n1 + concat::cond_size};
        S* sub = gu.data + gu.stride * batch;

        const cview<S> u = concat::make(a.in[0], n1, a.cond, batch, cat);
        subnet.forward(u, st, batch, sub);
        const view<S> g2 = a.grad_in[0].shifted(n1);
        g2.matrix(batch, n2) = a.grad_out[0].shifted(n1).matrix(batch, n2);
        affine_coupling_backward<O>(a.in[0].shifted(n1), st, g2, gst.shifted(n2), gst, a.grad_ljd,
                                    len2, pixels, batch);
        // The subnet's input gradient feeds x1 and the conditions (CAT without wanted condition
        // gradients: parameters only).
        const bool want_gu = n1 > 0 || !a.grad_cond.empty();
        subnet_backward(subnet, u, st, gst, want_gu ? gu : view<S>{}, batch, sub, a);
        if constexpr (n1 > 0)
            a.grad_in[0].matrix(batch, n1) =
                a.grad_out[0].matrix(batch, n1) + cview<S>(gu).matrix(batch, n1);
        concat::add_condition_gradient(a.grad_cond, batch, gu.data, n1);
    }

    template <class V>
    void visit(V&& v, const std::string& prefix) {
        nn::visit_layer(subnet, v, prefix + "subnet.");
    }

private:
    template <bool Rev>
    void run(const run_args<S>& a) const {
        const index_t batch = a.batch;
        S* j = a.jac ? a.scratch : nullptr;
        S* cat = a.scratch + batch;
        const view<S> st{cat + concat::scratch_size(n1, batch), 2 * n2};
        S* sub = st.data + 2 * n2 * batch;

        // Part 1 is the same on both sides: copy it and condition on the input's copy.
        const cview<S> in1 = a.in[0];
        a.out[0].matrix(batch, n1) = in1.matrix(batch, n1);
        subnet.forward(concat::make(in1, n1, a.cond, batch, cat), st, batch, sub);
        affine_coupling<O, Rev>(a.in[0].shifted(n1), st, st.shifted(n2), a.out[0].shifted(n1),
                                len2, pixels, batch, j);
        if (j)
            for (index_t b = 0; b < batch; ++b) a.ljd[b] += j[b];
    }
};

}  // namespace inn::detail
