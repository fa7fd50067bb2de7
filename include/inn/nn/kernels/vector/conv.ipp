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

    // R outputs (weights w) at the extended positions [q0, q0 + NV·L), the taps summed in
    // registers. Stored raw at y (rows ext_padded apart: run applies bias, activation and the
    // output layout in one pass after), or - given an activation, in the first layer of a
    // conv_direct_chain - as act(sum + bias) straight into the next convolution's padded
    // planes (rows `plane` apart), the positions `pads` (offsets within the block: discarded
    // columns and the end of the grid) written as the zeros of that padding.
    template <int R, int NV, class F = std::nullptr_t>
    static void tile(const S* w, const S* x, S* y, const S* bias = nullptr, F act = nullptr,
                     const int* pads = nullptr, int n_pads = 0) {
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
        if constexpr (!std::is_same_v<F, std::nullptr_t>) {
            INN_UNROLL for (int r = 0; r < R; ++r) {
                const vec br = V::broadcast(bias[r]);
                INN_UNROLL for (int v = 0; v < NV; ++v)
                    V::store(y + r * plane + v * L, V::apply(act, acc[r][v] + br));
                for (int p = 0; p < n_pads; ++p)
                    y[r * plane + pads[p]] = S(0);
            }
        } else {
            INN_UNROLL for (int r = 0; r < R; ++r)
                INN_UNROLL for (int v = 0; v < NV; ++v)
                    V::store(y + r * ext_padded + v * L, acc[r][v]);
        }
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
        pad_input(x, scratch);
        run_padded(weight, bias, scratch, y, scratch + index_t(In) * plane, act);
    }

    /// The same from planes already padded (xp); yext holds the extended outputs.
    template <class F>
    static void run_padded(const S* weight, const S* bias, const S* xp, S* y, S* yext, F act) {
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

/// Conv2d<In, Hidden> -> act -> Conv2d<Hidden, Out>, both KS x KS with the padding that keeps
/// H x W (see conv.hpp). The first layer's extended grid, shifted by Pad rows and Pad columns,
/// is the second layer's padded plane - its discarded columns fall on the padding - so the
/// hidden layer is stored once, activated, where the second layer reads it: neither the pass
/// that lays out the first layer's output nor the second's copy into padded planes is left.
template <Scalar S, int In, int Hidden, int Out, int KS, int H, int W> struct conv_direct_chain {
    static constexpr int Pad = (KS - 1) / 2;
    static_assert(KS % 2 == 1, "a chain keeps H x W: an odd kernel");
    using first = conv_direct<S, In, Hidden, KS, Pad, H, W>;
    using second = conv_direct<S, Hidden, Out, KS, Pad, H, W>;
    static constexpr index_t plane = first::plane, ext = first::ext, Wp = first::Wp;
    static constexpr int Wo = first::Wo, L = first::L, MR = first::MR;
    static constexpr index_t offset = index_t(Pad) * Wp + Pad; // grid position 0 in the plane
    static_assert(offset + first::ext_padded <= plane, "the hidden tiles stay in their planes");
    // Stored by the tiles: [offset, offset + written) of each hidden plane (this target's blocks).
    static constexpr index_t written = (ext + 3 * L - 1) / (3 * L) * (3 * L);
    /// The input's padded planes, the hidden layer's, the second layer's extended outputs.
    static constexpr index_t scratch_size =
        (index_t(In) + Hidden) * plane + index_t(Out) * second::ext_padded;

    template <class F, class G>
    static void run(const S* w1, const S* b1, const S* w2, const S* b2, const S* x,
                    index_t ldx, S* y, index_t ldy, index_t batch, S* scratch, F act, G act2) {
        if (batch <= 0) return;  // no scratch may have been given
        S* xp = scratch;
        S* hp = scratch + index_t(In) * plane;
        S* yext = hp + index_t(Hidden) * plane;
        for (int c = 0; c < Hidden; ++c) { // the padding no tile writes, once for the batch
            S* p = hp + c * plane;
            std::fill(p, p + offset, S(0));
            std::fill(p + offset + written, p + plane, S(0));
        }
        constexpr index_t taps = index_t(In) * KS * KS;
        for (index_t n = 0; n < batch; ++n) {
            first::pad_input(x + n * ldx, xp);
            for (index_t q0 = 0; q0 < ext; q0 += 3 * L) {
                // The block's positions that are padding of the hidden planes.
                int pads[3 * L];
                int n_pads = 0;
                for (int k = 0; k < 3 * L; ++k)
                    if (q0 + k >= ext || (q0 + k) % Wp >= Wo) pads[n_pads++] = k;
                S* dst = hp + offset + q0;
                index_t n0 = 0;
                for (; n0 + MR <= Hidden; n0 += MR)
                    first::template tile<MR, 3>(w1 + n0 * taps, xp + q0, dst + n0 * plane,
                                                b1 + n0, act, pads, n_pads);
                if constexpr (Hidden % MR != 0)
                    first::template tile<Hidden % MR, 3>(w1 + n0 * taps, xp + q0, dst + n0 * plane,
                                                         b1 + n0, act, pads, n_pads);
            }
            second::run_padded(w2, b2, hp, y + n * ldy, yext, act2);
        }
    }
};

/// The entry points of conv_direct and conv_direct_chain for this target.
template <Scalar S, int In, int Out, int KS, int Pad, int H, int W, class F>
void conv_direct_run(target, const S* weight, const S* bias, const S* x, S* y, S* scratch, F act) {
    conv_direct<S, In, Out, KS, Pad, H, W>::run(weight, bias, x, y, scratch, act);
}
template <Scalar S, int In, int Out, int KS, int Pad, int H, int W>
void conv_direct_weight_gradient(target, const S* x, const S* gy, S* gw, S* scratch) {
    conv_direct<S, In, Out, KS, Pad, H, W>::weight_gradient(x, gy, gw, scratch);
}
template <Scalar S, int In, int Hidden, int Out, int KS, int H, int W, class F, class G>
void conv_direct_chain_run(target, const S* w1, const S* b1, const S* w2, const S* b2, const S* x,
                           index_t ldx, S* y, index_t ldy, index_t batch, S* scratch, F act,
                           G act2) {
    conv_direct_chain<S, In, Hidden, Out, KS, H, W>::run(w1, b1, w2, b2, x, ldx, y, ldy, batch,
                                                         scratch, act, act2);
}
