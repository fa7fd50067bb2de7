#pragma once
// GLOWCouplingBlock (FrEIA): affine coupling, one subnet per side producing
// [s | t]. subnet1 reads part 1 (len1 + cl -> 2*len2), subnet2 reads part 2 (len2 + cl -> 2*len1).
//   a = subnet2(cat(x2, c)): y1 = exp(clamp*g(a[:len1])) * x1 + a[len1:]
//   a = subnet1(cat(y1, c)): y2 = exp(clamp*g(a[:len2])) * x2 + a[len2:]

#include <string_view>

#include "base.hpp"

namespace inn {

namespace detail {

/// The bound GLOW block; GINCouplingBlock is the same with `Gin` (centred s, LJD 0).
template <class Module, class Subnet, CouplingOptions O, bool Gin, Scalar S, signature Sig>
struct glow_coupling
    : two_sided_coupling<glow_coupling<Module, Subnet, O, Gin, S, Sig>, S, Sig, O> {
    using layout = coupling_layout<Sig, O>;
    using net1_t = coupling_subnet<Subnet, S, layout::in1, 2 * layout::len2, Module>;
    using net2_t = coupling_subnet<Subnet, S, layout::in2, 2 * layout::len1, Module>;
    static constexpr bool has_log_det = !Gin;
    static constexpr index_t width = 2 * std::max(layout::n1, layout::n2);

    net1_t subnet1;
    net2_t subnet2;

    explicit glow_coupling(generator& g) : subnet1(g), subnet2(g) {}

    // A training forward in store mode keeps each side's subnet output [s | t] (side 1's, then
    // side 2's) and what each subnet keeps for its backward (run_args::saved): backward then
    // runs no subnet forward.
    static constexpr index_t saved_kept1 = 2 * layout::n1 + 2 * layout::n2;
    static constexpr index_t saved_kept2 = saved_kept1 + nn::layer_kept_width<net2_t>();
    static constexpr index_t saved_per_sample = saved_kept2 + nn::layer_kept_width<net1_t>();
    template <int Side>
    static constexpr index_t saved_output = Side == 1 ? 0 : 2 * layout::n1;

    // [s | t] output, then the subnets' own scratch.
    static constexpr index_t work_size(index_t batch) {
        return width * batch +
               std::max(nn::layer_scratch<net1_t>(batch), nn::layer_scratch<net2_t>(batch));
    }

    template <int Side, bool Rev>
    void couple(cview<S> active, cview<S> u, view<S> result, index_t batch, S* j, S* work,
                S* saved = nullptr) const {
        constexpr int len = Side == 1 ? layout::len1 : layout::len2;
        constexpr index_t n = Side == 1 ? layout::n1 : layout::n2;
        const view<S> a{work, 2 * n};
        auto run = [&](const auto& net) {
            if (!saved) {
                net.forward(u, a, batch, work + width * batch);
                return;
            }
            nn::layer_forward_keeping(
                net, u, a, batch,
                view<S>{saved + (Side == 1 ? saved_kept1 : saved_kept2), saved_per_sample},
                work + width * batch);
            for (index_t b = 0; b < batch; ++b)  // before affine_coupling overwrites s
                std::copy_n(a.row(b), 2 * n,
                            saved + b * saved_per_sample + saved_output<Side>);
        };
        if constexpr (Side == 1)  // part 1 is transformed by the subnet of part 2
            run(subnet2);
        else
            run(subnet1);
        affine_coupling<O, Rev, Gin>(active, a, a.shifted(n), result, len, layout::pixels, batch,
                                     j);
    }

    // The subnet output [s | t] (kept or recomputed), its gradient, then the subnets' own
    // scratch.
    static constexpr index_t backward_work_size(index_t batch) {
        return 2 * width * batch + std::max(subnet_work<net1_t>(batch), subnet_work<net2_t>(batch));
    }

    template <int Side>
    void couple_backward(cview<S> active, cview<S> u, view<S> g, view<S> gu, const S* gl,
                         index_t batch, S* work, const backward_args<S>& args) const {
        constexpr int len = Side == 1 ? layout::len1 : layout::len2;
        constexpr index_t n = Side == 1 ? layout::n1 : layout::n2;
        const view<S> a{work, 2 * n}, ga{work + width * batch, 2 * n};
        S* sub = work + 2 * width * batch;
        auto run = [&](const auto& net) {
            cview<S> kept{};
            if (args.saved) {  // kept by the forward
                for (index_t b = 0; b < batch; ++b)
                    std::copy_n(args.saved + b * saved_per_sample + saved_output<Side>, 2 * n,
                                a.row(b));
                if (nn::layer_kept_width<std::decay_t<decltype(net)>>() > 0)
                    kept = {args.saved + (Side == 1 ? saved_kept1 : saved_kept2),
                            saved_per_sample};
            } else {
                net.forward(u, a, batch, sub);
            }
            affine_coupling_backward<O, Gin>(active, a, g, ga.shifted(n), ga, gl, len,
                                             layout::pixels, batch);
            subnet_backward(net, u, a, ga, gu, batch, sub, args, kept);
        };
        if constexpr (Side == 1)
            run(subnet2);
        else
            run(subnet1);
    }

    template <class V>
    void visit(V&& v, const std::string& prefix) {
        nn::visit_layer(subnet1, v, prefix + "subnet1.");
        nn::visit_layer(subnet2, v, prefix + "subnet2.");
    }
};

}  // namespace detail

template <nn::SubnetConstructor Subnet, CouplingOptions O = CouplingOptions{}>
struct GLOWCouplingBlock {
    static constexpr std::string_view name = "GLOWCouplingBlock";

    static constexpr shape_result output_shapes(const signature& s) { return check_coupling(s, O); }

    template <Scalar S, signature Sig>
    using bind = detail::glow_coupling<GLOWCouplingBlock, Subnet, O, false, S, Sig>;
};

}  // namespace inn
