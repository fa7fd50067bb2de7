// The direct convolution of one vector target (see simd.ipp; public entry point and its
// documentation: conv.hpp). No include guard: one copy per target.

/// A stride-1 convolution with zero padding, computed directly: the input is copied once into
/// zero-padded planes (Hp x Wp, Hp = H + 2 pad, Wp = W + 2 pad), and output position q = i*Wp + j
/// of an "extended" grid (Ho rows of Wp columns, the last Wp - Wo of each row discarded) reads
/// tap (u, v) of channel c at plane offset q + u*Wp + v: every tap is a contiguous run, so the
/// register tile of gemm_tile streams through the planes with no im2col matrix (9x the input
/// for a 3x3 kernel) ever written. Weights [Out, In, K, K] as torch stores them.
template <Scalar S, int In, int Out, int KS, int Pad, int H, int W> struct conv_direct {
    using V = simd<S>;
    using vec = typename V::vec;
    static constexpr int L = V::lanes;
    static constexpr int Hp = H + 2 * Pad, Wp = W + 2 * Pad;
    static constexpr int Ho = Hp - KS + 1, Wo = Wp - KS + 1;
    static constexpr index_t ext = index_t(Ho) * Wp; // extended outputs
    // The layout is laid out for the widest vectors of any target (scratch_lanes: a multiple of
    // L), so that every target and translation unit agrees on scratch_size.
    static constexpr index_t SL = scratch_lanes<S>;
    static constexpr index_t ext_padded = (ext + 3 * SL - 1) / (3 * SL) * (3 * SL);
    // Planes keep room behind them for the reads of the last (discarded) columns.
    static constexpr index_t plane = index_t(Hp) * Wp + (KS - 1) + 3 * SL;
    static constexpr index_t scratch_size = index_t(In) * plane + index_t(Out) * ext_padded;
    static constexpr int MR = tile_rows;

    template <int R, int NV> static void tile(const S* w, const S* x, S* y) {
        vec acc[R][NV];
        INN_UNROLL for (int r = 0; r < R; ++r)
            INN_UNROLL for (int v = 0; v < NV; ++v)
                acc[r][v] = vec{};
        for (int c = 0; c < In; ++c)
            for (int u = 0; u < KS; ++u)
                for (int t = 0; t < KS; ++t) {
                    const S* xr = x + index_t(c) * plane + u * Wp + t;
                    vec b[NV];
                    INN_UNROLL for (int v = 0; v < NV; ++v)
                        b[v] = V::load(xr + v * L);
                    const index_t k = (index_t(c) * KS + u) * KS + t;
                    INN_UNROLL for (int r = 0; r < R; ++r) {
                        const S a = w[r * index_t(In) * KS * KS + k];
                        INN_UNROLL for (int v = 0; v < NV; ++v)
                            acc[r][v] += b[v] * a;
                    }
                }
        INN_UNROLL for (int r = 0; r < R; ++r)
            INN_UNROLL for (int v = 0; v < NV; ++v)
                V::store(y + r * ext_padded + v * L, acc[r][v]);
    }

    /// x (In, H, W) into its zero-padded planes.
    static void pad_input(const S* x, S* xp) {
        for (int c = 0; c < In; ++c) {
            S* dst = xp + index_t(c) * plane;
            std::fill(dst, dst + plane, S(0));
            for (int i = 0; i < H; ++i)
                std::copy_n(x + (index_t(c) * H + i) * W, W, dst + (i + Pad) * Wp + Pad);
        }
    }

    /// One sample: x (In, H, W) -> y (Out, Ho, Wo) = act(conv(x) + bias).
    template <class F>
    static void run(const S* weight, const S* bias, const S* x, S* y, S* scratch, F act) {
        S* xp = scratch;
        S* yext = scratch + index_t(In) * plane;
        pad_input(x, xp);
        for (index_t q0 = 0; q0 < ext; q0 += 3 * L) {
            index_t n0 = 0;
            for (; n0 + MR <= Out; n0 += MR)
                tile<MR, 3>(weight + n0 * In * KS * KS, xp + q0, yext + n0 * ext_padded + q0);
            if constexpr (Out % MR != 0)
                tile<Out % MR, 3>(weight + n0 * In * KS * KS, xp + q0, yext + n0 * ext_padded + q0);
        }
        for (int o = 0; o < Out; ++o) {
            const S b = bias ? bias[o] : S(0);
            for (int i = 0; i < Ho; ++i) {
                const S* src = yext + o * ext_padded + index_t(i) * Wp;
                S* dst = y + (index_t(o) * Ho + i) * Wo;
                for (int j = 0; j < Wo; ++j)
                    dst[j] = act(src[j] + b);
            }
        }
    }

    /// R rows of dW from the padded planes xp and the extended gradient g (R rows of
    /// ext_padded): dW[r, c, u, t] += Σ_q g[r, q] xp[c, u*Wp + t + q].
    template <int R> static void weight_gradient_tile(const S* xp, const S* g, S* gw) {
        constexpr index_t taps = index_t(In) * KS * KS;
        for (int c = 0; c < In; ++c)
            for (int u = 0; u < KS; ++u)
                for (int t = 0; t < KS; ++t) {
                    const S* xr = xp + index_t(c) * plane + u * Wp + t;
                    vec acc[R];
                    INN_UNROLL for (int r = 0; r < R; ++r)
                        acc[r] = vec{};
                    for (index_t q = 0; q < ext_padded; q += L) {
                        const vec xv = V::load(xr + q);
                        INN_UNROLL for (int r = 0; r < R; ++r)
                            acc[r] += V::load(g + r * ext_padded + q) * xv;
                    }
                    const index_t k = (index_t(c) * KS + u) * KS + t;
                    INN_UNROLL for (int r = 0; r < R; ++r)
                        gw[r * taps + k] += V::sum(acc[r]);
                }
    }

    /// dW += the weight gradient of one sample, gy (Out, Ho, Wo), through the same extended
    /// grid: gy is laid out on it with zeros in the discarded columns, so that each weight's
    /// gradient is one contiguous dot product over the planes. (As a product of gy and the
    /// im2col matrix, a layer with few outputs spends its time writing and packing that matrix
    /// for a product only Out columns wide.) Uses `scratch_size`.
    static void weight_gradient(const S* x, const S* gy, S* gw, S* scratch) {
        S* xp = scratch;
        S* gext = scratch + index_t(In) * plane;
        pad_input(x, xp);
        for (int o = 0; o < Out; ++o) {
            S* dst = gext + o * ext_padded;
            std::fill(dst, dst + ext_padded, S(0));
            for (int i = 0; i < Ho; ++i)
                std::copy_n(gy + (index_t(o) * Ho + i) * Wo, Wo, dst + index_t(i) * Wp);
        }
        constexpr index_t taps = index_t(In) * KS * KS;
        int o0 = 0;
        for (; o0 + MR <= Out; o0 += MR)
            weight_gradient_tile<MR>(xp, gext + o0 * ext_padded, gw + o0 * taps);
        if constexpr (Out % MR != 0)
            weight_gradient_tile<Out % MR>(xp, gext + o0 * ext_padded, gw + o0 * taps);
    }
};

/// The entry points of conv_direct for this target.
template <Scalar S, int In, int Out, int KS, int Pad, int H, int W, class F>
void conv_direct_run(target, const S* weight, const S* bias, const S* x, S* y, S* scratch, F act) {
    conv_direct<S, In, Out, KS, Pad, H, W>::run(weight, bias, x, y, scratch, act);
}
template <Scalar S, int In, int Out, int KS, int Pad, int H, int W>
void conv_direct_weight_gradient(target, const S* x, const S* gy, S* gw, S* scratch) {
    conv_direct<S, In, Out, KS, Pad, H, W>::weight_gradient(x, gy, gw, scratch);
}
