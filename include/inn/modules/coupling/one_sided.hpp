#pragma once
// AffineCouplingOneSided (FrEIA): part 1 passes unchanged and conditions the
// affine map of part 2 through one `subnet` (len1 + cl -> 2*len2, output [s | t]):
//   y = cat(x1, x2 * exp(clamp*g(s)) + t)        reverse x2 = (y2 - t) * exp(-s), LJD -sum(s)

#include <string_view>

#include "base.hpp"

namespace inn {

template <nn::SubnetConstructor Subnet, CouplingOptions O = CouplingOptions{}>
struct AffineCouplingOneSided {
    static constexpr std::string_view name = "AffineCouplingOneSided";

    static constexpr shape_result output_shapes(const signature& s) { return check_coupling(s, O); }

    template <Scalar S, signature Sig>
    struct bind {
        using layout = detail::coupling_layout<Sig, O>;
        using concat = detail::condition_concat<S, Sig>;
        using subnet_t = detail::coupling_subnet<Subnet, S, layout::in1, 2 * layout::len2,
                                                 AffineCouplingOneSided>;
        static constexpr index_t n1 = layout::n1, n2 = layout::n2;

        subnet_t subnet;

        explicit bind(generator& g) : subnet(g) {}

        // [j | cat(x1, c) | [s | t] | subnet scratch]
        static constexpr index_t scratch_size(index_t batch) {
            return batch + concat::scratch_size(n1, batch) + 2 * n2 * batch +
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
            const view<S> st{cat + concat::scratch_size(n1, batch), 2 * n2};
            S* sub = st.data + 2 * n2 * batch;

            // Part 1 is the same on both sides: copy it and condition on the input's copy.
            const cview<S> in1 = a.in[0];
            a.out[0].matrix(batch, n1) = in1.matrix(batch, n1);
            subnet.forward(concat::make(in1, n1, a.cond, batch, cat), st, batch, sub);
            detail::affine_coupling<O, Rev>(a.in[0].shifted(n1), st, st.shifted(n2),
                                            a.out[0].shifted(n1), layout::len2, layout::pixels,
                                            batch, j);
            if (j)
                for (index_t b = 0; b < batch; ++b) a.ljd[b] += j[b];
        }
    };
};

}  // namespace inn
