#pragma once
// NICECouplingBlock (FrEIA): additive coupling, no clamp, LJD 0.
//   y1 = x1 + F(cat(x2, c)),  y2 = x2 + G(cat(y1, c))
// Subnets F: len2 + cl -> len1 and G: len1 + cl -> len2, built in that order; keys F.*, G.*.
// Only `split_len` / `split_channels` of the options are used (FrEIA has no clamp here).

#include <string_view>

#include "base.hpp"

namespace inn {

template <nn::SubnetConstructor Subnet, CouplingOptions O = CouplingOptions{}>
struct NICECouplingBlock {
    static constexpr std::string_view name = "NICECouplingBlock";

    static constexpr shape_result output_shapes(const signature& s) { return check_coupling(s, O); }

    template <Scalar S, signature Sig>
    struct bind : detail::two_sided_coupling<bind<S, Sig>, S, Sig, O> {
        using layout = detail::coupling_layout<Sig, O>;
        using F_t =
            detail::coupling_subnet<Subnet, S, layout::in2, layout::len1, NICECouplingBlock>;
        using G_t =
            detail::coupling_subnet<Subnet, S, layout::in1, layout::len2, NICECouplingBlock>;
        static constexpr bool has_log_det = false;
        static constexpr index_t width = std::max(layout::n1, layout::n2);

        F_t F;
        G_t G;

        explicit bind(generator& g) : F(g), G(g) {}

        // Subnet output, then the subnets' own scratch.
        static constexpr index_t work_size(index_t batch) {
            return width * batch + std::max(nn::layer_scratch<F_t>(batch),
                                            nn::layer_scratch<G_t>(batch));
        }

        template <int Side, bool Rev>
        void couple(cview<S> active, cview<S> u, view<S> result, index_t batch, S*,
                    S* work) const {
            constexpr index_t n = Side == 1 ? layout::n1 : layout::n2;
            const view<S> shift{work, n};
            if constexpr (Side == 1)
                F.forward(u, shift, batch, work + width * batch);
            else
                G.forward(u, shift, batch, work + width * batch);
            auto r = result.matrix(batch, n);
            if constexpr (!Rev)
                r = active.matrix(batch, n) + shift.matrix(batch, n);
            else
                r = active.matrix(batch, n) - shift.matrix(batch, n);
        }

        // The subnet output (recomputed only for a subnet whose backward reads it), then the
        // subnets' own scratch.
        static constexpr index_t backward_work_size(index_t batch) {
            return width * batch + std::max(detail::subnet_work<F_t>(batch),
                                            detail::subnet_work<G_t>(batch));
        }

        // y = x + F(u): dL/dx = dL/dy (g stays), dL/du = F'(u)^T dL/dy.
        template <int Side>
        void couple_backward(cview<S>, cview<S> u, view<S> g, view<S> gu, const S*,
                             index_t batch, S* work, const backward_args<S>& args) const {
            constexpr index_t n = Side == 1 ? layout::n1 : layout::n2;
            S* sub = work + width * batch;
            auto run = [&](const auto& net) {
                using net_t = std::decay_t<decltype(net)>;
                cview<S> y{};
                if constexpr (nn::layer_backward_reads_y<net_t>()) {
                    net.forward(u, view<S>{work, n}, batch, sub);
                    y = cview<S>{work, n};
                }
                detail::subnet_backward(net, u, y, g, gu, batch, sub, args);
            };
            if constexpr (Side == 1)
                run(F);
            else
                run(G);
        }

        template <class V>
        void visit(V&& v, const std::string& prefix) {
            nn::visit_layer(F, v, prefix + "F.");
            nn::visit_layer(G, v, prefix + "G.");
        }
    };
};

}  // namespace inn
