#pragma once
// nn::Conv2d<In, Out, Kernel, Padding>: torch.nn.Conv2d with stride 1, zero padding.
// A 1x1 convolution is one product per sample, W [Out, In] times the sample [In, H·W], through
// the register-tiled kernel of kernels::gemm_rows. A larger kernel runs kernels::conv_direct:
// taps read straight from a zero-padded copy of the sample, no im2col matrix. Bias and a
// following activation (fused by nn::Sequential) are applied as the output is written.
// (The im2col + Eigen GEMM formulation is kept for odd sizes and as the reference path.)
//
// Backward, per sample: dW += gy colᵀ (col = im2col(x), or x itself for 1x1; for a larger kernel
// with few outputs, dot products over conv_direct's padded planes), db += Σ gy, and gx,
// the transposed convolution of gy: for a 1x1 kernel Wᵀ gy through gemm_rows; for a larger one
// a stride-1 convolution of gy zero-padded by Kernel - 1 - Padding with the kernel flipped and
// its channel axes swapped, through conv_direct; where Padding > Kernel - 1 (the border of the
// input is never read) Wᵀ gy scattered back onto the input's pixels (col2im).

#include <algorithm>
#include <cmath>

#include "kernels/conv.hpp"
#include "kernels/grad.hpp"
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
        static constexpr int in_channels = In, out_channels = Out, kernel_size = Kernel,
                             padding = Padding;
        static constexpr bool has_bias = Bias;

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

        // The adjoint of im2col: each entry of the patch matrix added back where im2col read it.
        static void col2im(const S* col, S* x) {
            std::fill(x, x + index_t(In) * H * W, S(0));
            for (int c = 0; c < In; ++c)
                for (int u = 0; u < Kernel; ++u)
                    for (int v = 0; v < Kernel; ++v) {
                        const S* row = col + ((index_t(c) * Kernel + u) * Kernel + v) * pixels;
                        for (int i = 0; i < Ho; ++i) {
                            const int yy = i + u - Padding;
                            if (yy < 0 || yy >= H) continue;
                            const S* src = row + index_t(i) * Wo;
                            S* dst = x + (index_t(c) * H + yy) * W;
                            for (int j = 0; j < Wo; ++j) {
                                const int xx = j + v - Padding;
                                if (xx >= 0 && xx < W) dst[xx] += src[j];
                            }
                        }
                    }
        }

        static constexpr bool backward_reads_x = true, backward_reads_y = false;
        // The input gradient as a convolution (conv_direct) where its padding is not negative.
        static constexpr bool transposed_direct = !direct && Padding <= Kernel - 1;
        using transposed_conv =
            kernels::conv_direct<S, Out, In, Kernel, transposed_direct ? Kernel - 1 - Padding : 0,
                                 Ho, Wo>;
        // Wᵀ [In, Out] for the 1x1 product, the flipped kernel [In, Out, K, K] for conv_direct.
        static constexpr index_t weight_copy =
            fast_1x1 ? index_t(In) * Out : (transposed_direct ? Out * patch : 0);
        // dW of a layer with few outputs straight from the padded planes (conv_direct): as a
        // product with the patch matrix, writing and packing that matrix is most of its time.
        static constexpr bool direct_weight_gradient = fast_direct && Out <= 16;

        /// The weight copy, then the patch matrix of one sample (or its gradient), or the
        /// transposed convolution's work space, or the direct weight gradient's.
        static constexpr index_t backward_scratch_size(index_t) {
            return weight_copy +
                   std::max({direct ? index_t(0) : patch * pixels,
                             transposed_direct ? transposed_conv::scratch_size : index_t(0),
                             direct_weight_gradient ? direct_conv::scratch_size : index_t(0)});
        }

        void backward(const layer_backward_args<S>& a) const {
            using map = Eigen::Map<row_matrix<S>>;
            using cmap = Eigen::Map<const row_matrix<S>>;
            if constexpr (Bias)
                if (S* gb = a.grad_of(bias))
                    for (index_t n = 0; n < a.batch; ++n)
                        Eigen::Map<vector<S>>(gb, Out) +=
                            cmap(a.gy.row(n), Out, pixels).rowwise().sum();
            S* gw = a.grad_of(weight);
            S* wcopy = a.scratch;
            S* work = a.scratch + weight_copy;
            if (a.gx.data) {
                const S* w = weight.data();
                if constexpr (fast_1x1) {
                    for (int o = 0; o < Out; ++o)
                        for (int c = 0; c < In; ++c)
                            wcopy[index_t(c) * Out + o] = w[index_t(o) * In + c];
                } else if constexpr (transposed_direct) {
                    constexpr int K = Kernel;
                    for (int o = 0; o < Out; ++o)
                        for (int c = 0; c < In; ++c)
                            for (int u = 0; u < K; ++u)
                                for (int v = 0; v < K; ++v)
                                    wcopy[((index_t(c) * Out + o) * K + u) * K + v] =
                                        w[((index_t(o) * In + c) * K + (K - 1 - u)) * K + K - 1 - v];
                }
            }
            for (index_t n = 0; n < a.batch; ++n) {
                const S* x = a.x.row(n);
                const S* g = a.gy.row(n);
                if (gw) {
                    bool via_planes = direct_weight_gradient;
                    if constexpr (kernels::switchable)
                        via_planes = via_planes && kernels::tuning().conv;
                    if constexpr (direct) {
                        kernels::product<S, true>(map(gw, Out, In), cmap(g, Out, pixels),
                                                  cmap(x, In, pixels).transpose());
                    } else if (via_planes) {
                        direct_conv::weight_gradient(x, g, gw, work);
                    } else {
                        im2col(x, work);
                        kernels::product<S, true>(map(gw, Out, patch), cmap(g, Out, pixels),
                                                  cmap(work, patch, pixels).transpose());
                    }
                }
                if (!a.gx.data) continue;
                S* gx = a.gx.row(n);
                if constexpr (fast_1x1) {
                    kernels::gemm_rows<S, In, Out>(wcopy, g, pixels, pixels,
                                                   static_cast<const S*>(nullptr), gx, pixels,
                                                   kernels::no_act{});
                } else if constexpr (direct) {
                    kernels::product<S, false>(map(gx, In, pixels),
                                               weight.matrix(Out, In).transpose(),
                                               cmap(g, Out, pixels));
                } else if constexpr (transposed_direct) {
                    transposed_conv::run(wcopy, static_cast<const S*>(nullptr), g, gx, work,
                                         kernels::no_act{});
                } else {
                    kernels::product<S, false>(map(work, patch, pixels),
                                               weight.matrix(Out, patch).transpose(),
                                               cmap(g, Out, pixels));
                    col2im(work, gx);
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
