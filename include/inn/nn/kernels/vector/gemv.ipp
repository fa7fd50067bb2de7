// The matrix-vector products of one vector target (see simd.ipp): a few samples through a
// Linear layer, W in the network's scalar type or in bfloat16 (public entry points and their
// documentation: gemm.hpp, bf16.hpp). No include guard: one copy per target.

/// y = act(W x + bias) for each of `samples` samples (rows of x and y, ldx and ldy apart), W
/// [Out, In] row-major: each output a dot product with its sample's inputs in two chains of
/// multiply-adds, walked as `walk` says (caches.hpp): `cached` - tile_rows rows of W at a time
/// sharing each load of x, the next rows prefetched while these are read, one sample after the
/// other; for W from L3 or memory, read once per pair of samples, `one_stream` - one row after
/// the other, a single stream the CPU's prefetchers follow (helped by prefetch_far_ahead), or
/// `side_by_side` - half a tile's rows at a time. Every output is the same chains in the same
/// order whatever the walk and the batch: the same bits.
template <Scalar S, class F>
void gemv(target, const S* W, index_t In, index_t Out, const S* x, index_t ldx, index_t samples,
          const S* bias, S* y, index_t ldy, F act, weight_walk walk) {
    using V = simd<S>;
    using vec = typename V::vec;
    constexpr int L = V::lanes, R = tile_rows;
    const index_t body = In / (2 * L) * (2 * L);
    const bool streamed = walk == weight_walk::one_stream;
    // N rows from row o, for NB samples from the rows of xr and yr.
    auto rows = [&]<int N, int NB>(index_t o, bool next, const S* xr, S* yr) {
        const S* w = W + o * In;
        vec e[N][NB] = {}, d[N][NB] = {}; // (a chained `e[r] = d[r] = vec{}` crashes nvcc 13)
        for (index_t i = 0; i < body; i += 2 * L) {
            if (streamed) // once per cache line
                INN_UNROLL for (int v = 0; v < 2; ++v) if (v * L * sizeof(S) % 64 == 0)
                    prefetch_far_ahead(w + i + v * L);
            vec x0[NB], x1[NB];
            INN_UNROLL for (int b = 0; b < NB; ++b) {
                x0[b] = V::load(xr + b * ldx + i);
                x1[b] = V::load(xr + b * ldx + i + L);
            }
            INN_UNROLL for (int r = 0; r < N; ++r) {
                if (next) {
                    __builtin_prefetch(w + (N + r) * In + i);
                    __builtin_prefetch(w + (N + r) * In + i + L);
                }
                const vec w0 = V::load(w + r * In + i), w1 = V::load(w + r * In + i + L);
                INN_UNROLL for (int b = 0; b < NB; ++b) {
                    e[r][b] += w0 * x0[b];
                    d[r][b] += w1 * x1[b];
                }
            }
        }
        index_t tail = body;
        if (tail + L <= In) {
            INN_UNROLL for (int r = 0; r < N; ++r) {
                const vec w0 = V::load(w + r * In + tail);
                INN_UNROLL for (int b = 0; b < NB; ++b) {
                    e[r][b] += w0 * V::load(xr + b * ldx + tail);
                }
            }
            tail += L;
        }
        INN_UNROLL for (int r = 0; r < N; ++r) {
            INN_UNROLL for (int b = 0; b < NB; ++b) {
                const S* xb = xr + b * ldx;
                S s = V::sum(e[r][b] + d[r][b]);
                for (index_t i = tail; i < In; ++i)
                    s += w[r * In + i] * xb[i];
                yr[b * ldy + o + r] = act(s + (bias ? bias[o + r] : S(0)));
            }
        }
    };
    if (streamed) {
        index_t b = 0;
        for (; b + 2 <= samples; b += 2)
            for (index_t o = 0; o < Out; ++o)
                rows.template operator()<1, 2>(o, false, x + b * ldx, y + b * ldy);
        if (b < samples)
            for (index_t o = 0; o < Out; ++o)
                rows.template operator()<1, 1>(o, false, x + b * ldx, y + b * ldy);
        return;
    }
    index_t b = 0;
    if (walk == weight_walk::side_by_side) { // half the rows for two samples: W read once
        constexpr int R2 = R / 2;
        const index_t pair_blocks = Out / R2;
        for (; b + 2 <= samples; b += 2) {
            for (index_t k = 0; k < pair_blocks; ++k)
                rows.template operator()<R2, 2>(k * R2, k + 1 < pair_blocks, x + b * ldx,
                                                y + b * ldy);
            for (index_t o = pair_blocks * R2; o < Out; ++o)
                rows.template operator()<1, 2>(o, false, x + b * ldx, y + b * ldy);
        }
    }
    const index_t blocks = Out / R;
    for (; b < samples; ++b) {
        for (index_t k = 0; k < blocks; ++k)
            rows.template operator()<R, 1>(k * R, k + 1 < blocks, x + b * ldx, y + b * ldy);
        for (index_t o = blocks * R; o < Out; ++o)
            rows.template operator()<1, 1>(o, false, x + b * ldx, y + b * ldy);
    }
}

/// gemv_bf16 (bf16.hpp) for float and NB (one or two) samples: their inputs already split into
/// even and odd halves per block of 2L and padded with zeros in `xs`, ldxs apart
/// (deinterleave_bf16_inputs); W the packed copy of pack_bf16. A vector of L 32-bit lanes
/// loaded from W holds 2L weights: shifted left by 16 the even ones become floats, masked the
/// odd ones (no shuffles), for every sample. A block of bf16_rows rows is one contiguous run of
/// the copy, read front to back, so the whole product is a single stream that the CPU's own
/// prefetchers follow, helped by prefetch_far_ahead. One chain of multiply-adds per row and
/// sample (its 2 x 8 accumulators fit AVX-512's registers; two chains per row were no faster
/// at batch 1 and spilled at 2): each output the same bits whatever NB.
template <int NB, class F>
void gemv_bf16(target, const std::uint16_t* W, index_t In, index_t Out, const float* xs,
               index_t ldxs, const float* bias, float* y, index_t ldy, F act) {
    using V = simd<float>;
    using vec = V::vec;
    constexpr int L = V::lanes, R = int(bf16_rows), C = int(bf16_chunk);
    static_assert(C % (2 * L) == 0);
    typedef std::uint32_t uvec __attribute__((vector_size(L * 4)));
    const index_t chunks = bf16_padded_in(In) / C;
    for (index_t o = 0; o < Out; o += R) {
        vec e[R][NB] = {};
        for (index_t c = 0; c < chunks; ++c, W += R * C) {
            INN_UNROLL for (int line = 0; line < R * C; line += 32) // 64 bytes
                prefetch_far_ahead(W + line);
            INN_UNROLL for (int j = 0; j < C; j += 2 * L) {
                vec xe[NB], xo[NB];
                INN_UNROLL for (int b = 0; b < NB; ++b) {
                    xe[b] = V::load(xs + b * ldxs + c * C + j);
                    xo[b] = V::load(xs + b * ldxs + c * C + j + L);
                }
                INN_UNROLL for (int r = 0; r < R; ++r) {
                    uvec u;
                    std::memcpy(&u, W + r * C + j, sizeof u);
                    const uvec ue = u << 16, uo = u & 0xffff0000u;
                    vec we, wo;
                    std::memcpy(&we, &ue, sizeof(vec));
                    std::memcpy(&wo, &uo, sizeof(vec));
                    INN_UNROLL for (int b = 0; b < NB; ++b) {
                        e[r][b] += we * xe[b];
                        e[r][b] += wo * xo[b];
                    }
                }
            }
        }
        const int rows = int(std::min<index_t>(R, Out - o));
        for (int r = 0; r < rows; ++r)
            for (int b = 0; b < NB; ++b)
                y[b * ldy + o + r] = act(V::sum(e[r][b]) + (bias ? bias[o + r] : 0.f));
    }
}

/// xs = x's In values padded with zeros to whole chunks of bf16_chunk, each block of 2L split
/// into its even and odd elements (L each), as gemv_bf16 reads them.
inline void deinterleave_bf16_inputs(target, const float* x, index_t In, float* xs) {
    constexpr int L = simd<float>::lanes;
    const index_t padded = bf16_padded_in(In);
    for (index_t i = 0; i < padded; i += 2 * L)
        for (int j = 0; j < L; ++j) {
            xs[i + j] = i + 2 * j < In ? x[i + 2 * j] : 0.f;
            xs[i + L + j] = i + 2 * j + 1 < In ? x[i + 2 * j + 1] : 0.f;
        }
}
