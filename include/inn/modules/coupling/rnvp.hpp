#pragma once
// RNVPCouplingBlock (FrEIA): affine coupling with separate s- and t-subnets.
//   y1 = exp(s2) * x1 + t2  (s2 = clamp*g(subnet_s2(u)), t2 = subnet_t2(u), u = cat(x2, c))
//   y2 = exp(s1) * x2 + t1  (from u = cat(y1, c))
// Subnets in construction order subnet_s1, subnet_t1 (len1 + cl -> len2), subnet_s2, subnet_t2
// (len2 + cl -> len1): FrEIA's RNG order and state_dict keys.

#include <string_view>

#include "base.hpp"

namespace inn {

template <nn::SubnetConstructor Subnet, CouplingOptions O = CouplingOptions{}>
struct RNVPCouplingBlock {
    static constexpr std::string_view name = "RNVPCouplingBlock";

    static constexpr shape_result output_shapes(const signature& s) { return check_coupling(s, O); }

    template <Scalar S, signature Sig>
    struct bind : detail::two_sided_coupling<bind<S, Sig>, S, Sig, O> {
        using layout = detail::coupling_layout<Sig, O>;
        using net1_t =
            detail::coupling_subnet<Subnet, S, layout::in1, layout::len2, RNVPCouplingBlock>;
        using net2_t =
            detail::coupling_subnet<Subnet, S, layout::in2, layout::len1, RNVPCouplingBlock>;
        static constexpr bool has_log_det = true;
        static constexpr index_t width = std::max(layout::n1, layout::n2);

        net1_t subnet_s1, subnet_t1;
        net2_t subnet_s2, subnet_t2;

        explicit bind(generator& g) : subnet_s1(g), subnet_t1(g), subnet_s2(g), subnet_t2(g) {}

        // s and t outputs, then the subnets' own scratch.
        static constexpr index_t work_size(index_t batch) {
            return 2 * width * batch + std::max(nn::layer_scratch<net1_t>(batch),
                                                nn::layer_scratch<net2_t>(batch));
        }

        template <int Side, bool Rev>
        void couple(cview<S> active, cview<S> u, view<S> result, index_t batch, S* j,
                    S* work) const {
            constexpr int len = Side == 1 ? layout::len1 : layout::len2;
            constexpr index_t n = Side == 1 ? layout::n1 : layout::n2;
            const view<S> s{work, n}, t{work + width * batch, n};
            S* sub = work + 2 * width * batch;
            if constexpr (Side == 1) {  // part 1 is scaled by the subnets of part 2
                subnet_s2.forward(u, s, batch, sub);
                subnet_t2.forward(u, t, batch, sub);
            } else {
                subnet_s1.forward(u, s, batch, sub);
                subnet_t1.forward(u, t, batch, sub);
            }
            detail::affine_coupling<O, Rev>(active, s, t, result, len, layout::pixels, batch, j);
        }

        // Widest subnet input per sample.
        static constexpr index_t u_width =
            std::max(layout::n1, layout::n2) + detail::condition_concat<S, Sig>::cond_size;

        // s recomputed, dL/ds (or t, for a t-subnet whose backward reads it), the t-subnet's
        // input gradient, then the subnets' own scratch.
        static constexpr index_t backward_work_size(index_t batch) {
            return (2 * width + u_width) * batch + std::max(detail::subnet_work<net1_t>(batch),
                                                            detail::subnet_work<net2_t>(batch));
        }

        template <int Side>
        void couple_backward(cview<S> active, cview<S> u, view<S> g, view<S> gu, const S* gl,
                             index_t batch, S* work, const backward_args<S>& args) const {
            constexpr int len = Side == 1 ? layout::len1 : layout::len2;
            constexpr index_t n = Side == 1 ? layout::n1 : layout::n2;
            const view<S> s{work, n}, gs{work + width * batch, n};
            const view<S> gut{work + 2 * width * batch, gu.stride};
            S* sub = work + (2 * width + u_width) * batch;
            auto run = [&](const auto& s_net, const auto& t_net) {
                using t_net_t = std::decay_t<decltype(t_net)>;
                // t first: its output gradient is dL/dy, which g holds until the coupling's
                // backward overwrites it.
                cview<S> t{};
                if constexpr (nn::layer_backward_reads_y<t_net_t>()) {
                    t_net.forward(u, gs, batch, sub);
                    t = gs;
                }
                detail::subnet_backward(t_net, u, t, g, gut, batch, sub, args);
                s_net.forward(u, s, batch, sub);
                detail::affine_coupling_backward<O>(active, s, g, view<S>{}, gs, gl, len,
                                                    layout::pixels, batch);
                detail::subnet_backward(s_net, u, s, gs, gu, batch, sub, args);
                gu.matrix(batch, gu.stride) += cview<S>(gut).matrix(batch, gu.stride);
            };
            if constexpr (Side == 1)  // part 1 is scaled by the subnets of part 2
                run(subnet_s2, subnet_t2);
            else
                run(subnet_s1, subnet_t1);
        }

        template <class V>
        void visit(V&& v, const std::string& prefix) {
            nn::visit_layer(subnet_s1, v, prefix + "subnet_s1.");
            nn::visit_layer(subnet_t1, v, prefix + "subnet_t1.");
            nn::visit_layer(subnet_s2, v, prefix + "subnet_s2.");
            nn::visit_layer(subnet_t2, v, prefix + "subnet_t2.");
        }
    };
};

}  // namespace inn
