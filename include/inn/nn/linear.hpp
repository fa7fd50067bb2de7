#pragma once
// nn::Linear<In, Out>: y = x Wᵀ + b (torch.nn.Linear), W stored [out, in] as in the state_dict.
// Backward: dW += gyᵀ x, db += Σ gy, gx = gy W, each one product over the whole batch.

#include <algorithm>
#include <cmath>

#include "kernels/bf16.hpp"
#include "kernels/gemm_pick.hpp"
#include "kernels/grad.hpp"
#include "layer.hpp"

namespace inn::nn {

template <int In, int Out, bool Bias = true>
struct Linear {
    static_assert(In >= 0 && Out >= 0, "inn: nn::Linear needs non-negative widths");

    static constexpr dims output_shape(dims d) {
        return d.rank == 1 && d[0] == In ? make_dims({Out}) : dims{};
    }

    template <Scalar S, dims D>
    struct bind {
        static_assert(D.rank == 1, "inn: nn::Linear applies to vectors; use nn::Conv2d on images");
        static_assert(D[0] == In, "inn: nn::Linear<In, Out> was given an input whose size is not In");
        static constexpr dims out = make_dims({Out});

        parameter<S> weight{tensor_shape{Out, In}};
        parameter<S> bias{tensor_shape{Bias ? Out : 0}};

        explicit bind(generator& g) {
            // PyTorch: kaiming_uniform_(a=sqrt(5)) and bias U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
            S bound = S(torch_default_init_bound(In));
            g.fill_uniform(weight.data(), std::size_t(weight.size()), -bound, bound);
            if constexpr (Bias) g.fill_uniform(bias.data(), std::size_t(bias.size()), -bound, bound);
            weight.streamed = true;
        }

        static constexpr index_t in_features = In, out_features = Out;
        static constexpr bool has_bias = Bias;

        void forward(cview<S> in, view<S> y, index_t batch, S* scratch) const {
            forward_act(in, y, batch, scratch, kernels::no_act{});
        }
        /// y = act(x Wᵀ + b): nn::Sequential fuses a following element-wise layer this way.
        template <class F>
        void forward_act(cview<S> in, view<S> y, index_t batch, S* scratch, F act) const {
            // A few samples stream W: from its bfloat16 copy where the network keeps one.
            if (batch <= kernels::bf16_max_batch && scratch && !weight.bf16.empty())
                return kernels::gemv_bf16<S>(weight.bf16.data(), In, Out, in.data, in.stride,
                                             batch, Bias ? bias.data() : nullptr, y.data,
                                             y.stride, scratch, act);
            // More: W's packed copy where the network keeps one (the measured pick decides).
            kernels::gemm_nt_picked<S, In, Out>(
                in.data, in.stride, weight.data(), Bias ? bias.data() : nullptr, y.data, y.stride,
                batch, scratch, scratch_panels(batch), act,
                weight.packed.empty() ? nullptr : weight.packed.data());
        }
        /// Panels of transposed inputs for the matrix product: room for every plan the measured
        /// pick may choose at this batch (kernels/gemm_pick.hpp), one panel for small batches.
        static constexpr index_t scratch_panels(index_t batch) {
            return batch >= kernels::gemm_pick_panels * kernels::gemm_panel<S>
                       ? kernels::gemm_pick_panels
                       : 1;
        }
        static constexpr index_t scratch_size(index_t batch) {
            return std::max(kernels::gemm_nt_scratch<S, In>(scratch_panels(batch)),
                            kernels::gemv_bf16_scratch(In));
        }

        static constexpr index_t flops(index_t batch) { return 2 * index_t(In) * Out * batch; }

        static constexpr bool backward_reads_x = true, backward_reads_y = false;
        /// Parameter gradients first, then gx: nothing is read after gx is written.
        void backward(const layer_backward_args<S>& a) const {
            // gW += gyᵀ x, gx = gy W: B row-major in both (kernels::matmul).
            if (S* gw = a.grad_of(weight))
                kernels::matmul<S, true, true>(gw, In, a.gy.data, a.gy.stride, a.x.data,
                                               a.x.stride, Out, In, a.batch);
            if constexpr (Bias)
                if (S* gb = a.grad_of(bias))
                    kernels::add_row_sums(gb, a.gy.data, a.gy.stride, a.batch, index_t(Out));
            if (a.gx.data)
                kernels::matmul<S, false>(a.gx.data, a.gx.stride, a.gy.data, a.gy.stride,
                                          weight.data(), In, a.batch, In, Out);
        }

        template <class V>
        void visit(V&& v, const std::string& prefix) {
            v(prefix + "weight", weight.ref());
            if constexpr (Bias) v(prefix + "bias", bias.ref());
        }
    };
};

}  // namespace inn::nn
