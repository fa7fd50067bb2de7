#pragma once
// nn::Conv2d<In, Out, Kernel, Padding>: torch.nn.Conv2d with stride 1, zero padding.
// A 1x1 convolution is one product per sample, W [Out, In] times the sample [In, H·W], through
// the register-tiled kernel of kernels::gemm_rows. A larger kernel runs kernels::conv_direct:
// taps read straight from a zero-padded copy of the sample, no im2col matrix. Bias and a
// following activation (fused by nn::Sequential) are applied as the output is written.
// (The im2col + Eigen GEMM formulation is kept for odd sizes and as the reference path.)

#include <cmath>

#include "kernels/conv.hpp"
#include "kernels/switches.hpp"
#include "layer.hpp"

namespace inn::nn {

template <int In, int Out, int Kernel = 3, int Padding = Kernel / 2, bool Bias = true>
struct Conv2d {
    static_assert(Kernel >= 1 && Padding >= 0, "inn: nn::Conv2d needs Kernel >= 1, Padding >= 0");

    static constexpr dims output_shape(dims d) {
        if (d.rank != 3 || d[0] != In) return dims{};
        const int ho = d[1] + 2 * Padding - Kernel + 1, wo = d[2] + 2 * Padding - Kernel + 1;
        return ho > 0 && wo > 0 ? make_dims({Out, ho, wo}) : dims{};
    }

    template <Scalar S, dims D>
    struct bind {
        static_assert(D.rank == 3, "inn: nn::Conv2d applies to (C, H, W) data");
        static_assert(D[0] == In, "inn: nn::Conv2d<In, ...> was given an input with other than In channels");
        static constexpr int H = D[1], W = D[2];
        static constexpr int Ho = H + 2 * Padding - Kernel + 1, Wo = W + 2 * Padding - Kernel + 1;
        static_assert(Ho > 0 && Wo > 0, "inn: nn::Conv2d kernel larger than the padded input");
        static constexpr dims out = make_dims({Out, Ho, Wo});
        static constexpr index_t patch = index_t(In) * Kernel * Kernel;
        static constexpr index_t pixels = index_t(Ho) * Wo;
        static constexpr bool direct = Kernel == 1 && Padding == 0;

        parameter<S> weight{tensor_shape{Out, In, Kernel, Kernel}};
        parameter<S> bias{tensor_shape{Bias ? Out : 0}};

        explicit bind(generator& g) {
            S bound = S(torch_default_init_bound(patch));
            g.fill_uniform(weight.data(), std::size_t(weight.size()), -bound, bound);
            if constexpr (Bias) g.fill_uniform(bias.data(), std::size_t(bias.size()), -bound, bound);
        }

        static constexpr int lanes = kernels::simd<S>::lanes;
        // The fast paths: 1x1 products over whole vectors of pixels; the direct kernel.
        static constexpr bool fast_1x1 = direct && pixels % lanes == 0;
        using direct_conv = kernels::conv_direct<S, In, Out, Kernel, Padding, H, W>;
        static constexpr bool fast_direct =
            !direct && Ho == direct_conv::Ho && Wo == direct_conv::Wo;

        static constexpr index_t scratch_size(index_t) {
            // (The reference path's im2col matrix is always provided for: it can be switched on.)
            return std::max<index_t>(fast_direct ? direct_conv::scratch_size : 0,
                                     direct ? 0 : patch * pixels);
        }

        void forward(cview<S> in, view<S> y, index_t batch, S* scratch) const {
            forward_act(in, y, batch, scratch, kernels::no_act{});
        }

        /// y = act(conv(x) + b): nn::Sequential fuses a following element-wise layer this way.
        template <class F>
        void forward_act(cview<S> in, view<S> y, index_t batch, S* scratch, F act) const {
            const S* b = Bias ? bias.data() : nullptr;
            if constexpr (kernels::switchable) {
                if (!kernels::tuning().conv) {  // measuring the reference
                    for (index_t n = 0; n < batch; ++n)
                        reference(in.row(n), y.row(n), scratch, act);
                    return;
                }
            }
            for (index_t n = 0; n < batch; ++n) {
                if constexpr (fast_1x1)
                    kernels::gemm_rows<S, Out, In>(weight.data(), in.row(n), pixels, pixels, b,
                                                   y.row(n), pixels, act);
                else if constexpr (fast_direct)
                    direct_conv::run(weight.data(), b, in.row(n), y.row(n), scratch, act);
                else
                    reference(in.row(n), y.row(n), scratch, act);
            }
        }

        // im2col + Eigen GEMM, one sample.
        template <class F>
        void reference(const S* x, S* yrow, S* scratch, F act) const {
            using map = Eigen::Map<row_matrix<S>>;
            using cmap = Eigen::Map<const row_matrix<S>>;
            auto Wm = weight.matrix(Out, patch);
            map Y(yrow, Out, pixels);
            if constexpr (direct) {
                Y.noalias() = Wm * cmap(x, In, pixels);
            } else {
                im2col(x, scratch);
                Y.noalias() = Wm * cmap(scratch, patch, pixels);
            }
            if constexpr (Bias) Y.colwise() += bias.values;
            Y = Y.unaryExpr(act);
        }

        // Row (c, u, v) of the patch matrix holds x[c, i + u - P, j + v - P] for every output (i, j).
        static void im2col(const S* x, S* col) {
            for (int c = 0; c < In; ++c)
                for (int u = 0; u < Kernel; ++u)
                    for (int v = 0; v < Kernel; ++v) {
                        S* row = col + ((index_t(c) * Kernel + u) * Kernel + v) * pixels;
                        for (int i = 0; i < Ho; ++i) {
                            int yy = i + u - Padding;
                            S* dst = row + index_t(i) * Wo;
                            if (yy < 0 || yy >= H) {
                                std::fill(dst, dst + Wo, S(0));
                                continue;
                            }
                            const S* src = x + (index_t(c) * H + yy) * W;
                            for (int j = 0; j < Wo; ++j) {
                                int xx = j + v - Padding;
                                dst[j] = (xx >= 0 && xx < W) ? src[xx] : S(0);
                            }
                        }
                    }
        }

        static constexpr index_t flops(index_t batch) { return 2 * patch * Out * pixels * batch; }

        template <class V>
        void visit(V&& v, const std::string& prefix) {
            v(prefix + "weight", weight.ref());
            if constexpr (Bias) v(prefix + "bias", bias.ref());
        }
    };
};

}  // namespace inn::nn
