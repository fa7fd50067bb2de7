#pragma once
// The fused small MLP behind nn::Sequential: Linear<I, H> -> element-wise act -> Linear<H, O>
// for small I and O (FrEIA's subnets of low-dimensional data), the hidden layer never leaving
// registers. Whole groups of samples run sample-vectorised (one SIMD lane per sample, weights
// broadcast, no horizontal sums); the remainder, batch 1 included, runs hidden-vectorised per
// sample.

#include "../../core/config.hpp"
#include "simd.hpp"

namespace inn::nn::kernels {

/// Y = act(X W1ᵀ + b1) W2ᵀ + b2 with the hidden layer in registers. Sizes: W1 [H, I],
/// W2 [O, H]; I and O small (they are register counts).
template <Scalar S, int I, int H, int O, class F> struct small_mlp {
    using V = simd<S>;
    using vec = typename V::vec;
    static constexpr int L = V::lanes;
    static_assert(H % L == 0, "small_mlp: the hidden width must be a multiple of the lanes");

    // G groups of L samples, one sample per lane. Two accumulators per output (even and odd
    // hidden units) keep 2*G*O independent FMA chains in flight.
    template <int G>
    static void groups(const S* X, index_t ldx, const S* W1, const S* b1, const S* W2, const S* b2,
                       S* Y, index_t ldy, F act) {
        vec x[G][I > 0 ? I : 1];
        for (int g = 0; g < G; ++g)
            for (int i = 0; i < I; ++i)
                for (int l = 0; l < L; ++l)
                    x[g][i][l] = X[(g * L + l) * ldx + i];
        vec acc[2][G][O];
        for (int p = 0; p < 2; ++p)
            for (int g = 0; g < G; ++g)
                for (int o = 0; o < O; ++o)
                    acc[p][g][o] = vec{};
        for (int k = 0; k < H; k += 2) {
            for (int p = 0; p < 2; ++p) {
                const int kk = k + p;
                for (int g = 0; g < G; ++g) {
                    vec h = x[g][0] * W1[kk * I] + b1[kk];
                    for (int i = 1; i < I; ++i)
                        h += x[g][i] * W1[kk * I + i];
                    h = V::apply(act, h);
                    for (int o = 0; o < O; ++o)
                        acc[p][g][o] += h * W2[o * H + kk];
                }
            }
        }
        for (int g = 0; g < G; ++g)
            for (int o = 0; o < O; ++o) {
                const vec y = acc[0][g][o] + acc[1][g][o] + b2[o];
                for (int l = 0; l < L; ++l)
                    Y[(g * L + l) * ldy + o] = y[l];
            }
    }

    // One sample, the hidden units across lanes; one horizontal sum per output.
    static void single(const S* x, const S* W1, const S* b1, const S* W2, const S* b2, S* y,
                       F act) {
        // Two accumulators per output (even and odd chunks): twice the FMA chains in flight.
        constexpr int P = H % (2 * L) == 0 ? 2 : 1;
        vec acc[P][O];
        for (int p = 0; p < P; ++p)
            for (int o = 0; o < O; ++o)
                acc[p][o] = vec{};
        for (int k = 0; k < H; k += P * L) {
            for (int p = 0; p < P; ++p) {
                const int kk = k + p * L;
                vec h = V::load(b1 + kk);
                for (int i = 0; i < I; ++i) {
                    vec w;
                    if constexpr (I == 1)
                        w = V::load(W1 + kk);
                    else
                        for (int l = 0; l < L; ++l)
                            w[l] = W1[(kk + l) * I + i];
                    h += w * x[i];
                }
                h = V::apply(act, h);
                for (int o = 0; o < O; ++o)
                    acc[p][o] += h * V::load(W2 + o * H + kk);
            }
        }
        for (int o = 0; o < O; ++o) {
            vec a = acc[0][o];
            for (int p = 1; p < P; ++p)
                a += acc[p][o];
            y[o] = V::sum(a) + b2[o];
        }
    }

    static void run(const S* X, index_t ldx, const S* W1, const S* b1, const S* W2, const S* b2,
                    S* Y, index_t ldy, index_t batch, F act) {
        index_t b = 0;
        for (; b + 2 * L <= batch; b += 2 * L)
            groups<2>(X + b * ldx, ldx, W1, b1, W2, b2, Y + b * ldy, ldy, act);
        for (; b + L <= batch; b += L)
            groups<1>(X + b * ldx, ldx, W1, b1, W2, b2, Y + b * ldy, ldy, act);
        for (; b < batch; ++b)
            single(X + b * ldx, W1, b1, W2, b2, Y + b * ldy, act);
    }
};

} // namespace inn::nn::kernels
