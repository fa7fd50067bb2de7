#pragma once
// ConditionalAffineTransform (FrEIA): an affine map of the whole input whose
// [s | t] come from the conditions alone: a = subnet(cat(c_0, c_1, ...)) (cl -> 2*C),
//   y = exp(clamp*g(a[:C])) * x + a[C:]         reverse x = (y - t) * exp(-s)
// Needs at least one condition (shape_error::condition_required). `split_len` is validated as
// FrEIA does but unused; C = 1 is accepted (nothing is split).

#include <string_view>

#include "base.hpp"

namespace inn {

template <nn::SubnetConstructor Subnet, CouplingOptions O = CouplingOptions{}>
struct ConditionalAffineTransform {
    static constexpr std::string_view name = "ConditionalAffineTransform";

    static constexpr shape_result output_shapes(const signature& s) {
        shape_result r = check_coupling(s, O, false);
        if (r.ok() && !s.conditional()) return fail(shape_error::condition_required);
        return r;
    }

    template <Scalar S, signature Sig>
    struct bind {
        using concat = detail::condition_concat<S, Sig>;
        static constexpr dims in = Sig.in();
        static constexpr int channels = in.channels();
        static constexpr index_t n = in.size();
        static constexpr dims cond_in = in.with(0, Sig.conditions.total_channels());
        using subnet_t =
            detail::coupling_subnet<Subnet, S, cond_in, 2 * channels, ConditionalAffineTransform>;

        subnet_t subnet;

        explicit bind(generator& g) : subnet(g) {}

        // [j | cat(c...) | [s | t] | subnet scratch]
        static constexpr index_t scratch_size(index_t batch) {
            return batch + concat::scratch_size(0, batch) + 2 * n * batch +
                   nn::layer_scratch<subnet_t>(batch);
        }

        void forward(const run_args<S>& a) const { run<false>(a); }
        void inverse(const run_args<S>& a) const { run<true>(a); }

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
            const view<S> st{cat + concat::scratch_size(0, batch), 2 * n};
            S* sub = st.data + 2 * n * batch;

            subnet.forward(concat::make({}, 0, a.cond, batch, cat), st, batch, sub);
            detail::affine_coupling<O, Rev>(a.in[0], st, st.shifted(n), a.out[0], channels,
                                            in.spatial_size(), batch, j);
            if (j)
                for (index_t b = 0; b < batch; ++b) a.ljd[b] += j[b];
        }
    };
};

}  // namespace inn
