// The register-tiled products of one vector target (see simd.ipp): the tile, the packed-panel
// product of gemm_nt and the row-major product of gemm_rows (public entry points and their
// documentation: gemm.hpp, conv.hpp). No include guard: one copy per target.

/// Rows of W per register tile of three vectors: AVX-512 has 32 vector registers (24
/// accumulators, three loaded vectors, a broadcast), AVX2 and SSE 16 (12 + 3 + 1).
inline constexpr int tile_rows = vector_bytes == 64 ? 8 : 4;

/// Row r of a register tile that has `count` rows of its own starting at `first`: a last,
/// partial tile reads its last row again in place of the rows it lacks (and stores only its
/// own), so that a few tile sizes serve every remainder (remainder_tile).
inline index_t tile_row(index_t first, int r, int count) {
    return first + (r < count ? r : count - 1);
}

/// The last `count` (1 .. MR - 1) rows of a walk over tiles of MR rows: `tile.template
/// operator()<R>()` with R the next power of two from 2 (at most MR), a partial tile (tile_row).
/// Three sizes in all where MR is 8: a tile per remainder size cost about a fifth more compile
/// time (docs/compile-cost.md), and one partial tile of MR for every remainder up to 2x the time
/// of a remainder of one to three rows (few accumulator chains are latency-bound, not slower
/// per row).
template <int MR, class F> void remainder_tile(int count, F&& tile) {
    if (count <= 2)
        tile.template operator()<2>();
    else if (count <= 4)
        tile.template operator()<(MR < 4 ? MR : 4)>();
    else
        tile.template operator()<MR>();
}

/// The register tile of the GEMMs: MR rows of W (broadcast) times NV vectors of a row-major
/// B panel (loaded), MR * NV accumulators.
template <Scalar S, int MR, int NV> struct gemm_tile {
    using V = simd<S>;
    using vec = typename V::vec;
    static constexpr int L = V::lanes;
    vec acc[MR][NV];

    /// acc = W[0..MR) [0..K) · B[0..K) [0..NV*L); W rows `ldw` apart, B rows `ldb` apart, rows
    /// of W past the first `count` read as the last of them (tile_row). (K is a run-time bound:
    /// one instantiation serves every layer shape.)
    void run(const S* W, index_t ldw, const S* B, index_t ldb, index_t K, int count = MR) {
        const S* w[MR];
        INN_UNROLL for (int r = 0; r < MR; ++r) w[r] = W + tile_row(0, r, count) * ldw;
        INN_UNROLL for (int r = 0; r < MR; ++r) INN_UNROLL for (int v = 0; v < NV; ++v) acc[r][v] =
            vec{};
        for (index_t k = 0; k < K; ++k) {
            vec b[NV];
            INN_UNROLL for (int v = 0; v < NV; ++v) b[v] = V::load(B + k * ldb + v * L);
            INN_UNROLL for (int r = 0; r < MR; ++r) {
                const S a = w[r][k];
                INN_UNROLL for (int v = 0; v < NV; ++v) acc[r][v] += b[v] * a;
            }
        }
    }
};

/// Samples in one packed panel of gemm_nt: three vectors.
template <Scalar S> inline constexpr index_t panel_samples = 3 * simd<S>::lanes;

namespace detail {
/// Panel [In x P] of samples m0 .. m0 + width: column j is sample m0 + j, unused columns zero.
template <Scalar S>
void pack_panel(const S* X, index_t ldx, index_t m0, index_t width, index_t In, S* dst) {
    constexpr index_t P = panel_samples<S>, L = simd<S>::lanes;
    const index_t filled = (width + L - 1) / L * L;
    for (index_t k = 0; k < In; ++k, dst += P) {
        for (index_t j = 0; j < width; ++j)
            dst[j] = X[(m0 + j) * ldx + k];
        for (index_t j = width; j < filled; ++j)
            dst[j] = S(0);
    }
}

/// Rows [r0, r1) of Y's samples m0 .. m0 + width from their packed panel, a register tile of
/// MR rows at a time, bias and activation applied as the tile is stored (transposed).
template <Scalar S, class F>
void panel_rows(const S* panel, index_t width, const S* W, const S* bias, S* Y, index_t ldy,
                index_t m0, index_t In, index_t r0, index_t r1, F act) {
    using V = simd<S>;
    constexpr int L = V::lanes, MR = tile_rows;
    constexpr index_t P = panel_samples<S>;
    auto tiles = [&]<int NV>() {
        // Rows n0 .. n0 + count of W in a tile of R; `Partial`: count < R (tile_row).
        auto rows = [&]<int R, bool Partial>(index_t n0, int count) {
            gemm_tile<S, R, NV> t;
            t.run(W + n0 * In, In, panel, P, In, Partial ? count : R);
            // Transposed through a small sample-major block, so that each sample's outputs
            // leave as one contiguous store: R scalar stores per sample into rows of Y a
            // power-of-two apart (Out = 512) hit the same few cache sets and thrash L1.
            S tile[NV * L][R];
            INN_UNROLL for (int r = 0; r < R; ++r) {
                const S b = bias ? bias[tile_row(n0, r, Partial ? count : R)] : S(0);
                INN_UNROLL for (int v = 0; v < NV; ++v) {
                    const typename V::vec y = V::apply(act, t.acc[r][v] + b);
                    INN_UNROLL for (int l = 0; l < L; ++l) tile[v * L + l][r] = y[l];
                }
            }
            const std::size_t bytes = sizeof(S) * std::size_t(Partial ? count : R);
            for (index_t j = 0; j < width; ++j)
                std::memcpy(Y + (m0 + j) * ldy + n0, tile[j], bytes);
        };
        index_t n0 = r0;
        for (; n0 + MR <= r1; n0 += MR)
            rows.template operator()<MR, false>(n0, MR);
        if (n0 < r1)
            remainder_tile<MR>(int(r1 - n0), [&]<int R>() {
                rows.template operator()<R, true>(n0, int(r1 - n0));
            });
    };
    const int nv = int((width + L - 1) / L);
    if (nv == 3)
        tiles.template operator()<3>();
    else if (nv == 2)
        tiles.template operator()<2>();
    else
        tiles.template operator()<1>();
}
} // namespace detail

/// gemm_nt_dense's packed path: `panels` panels of samples packed into `scratch` at a time,
/// W taken `row_block` rows at a time (0: all of it), each block multiplied into every packed
/// panel before the next block is read.
template <Scalar S, class F>
void gemm_panels(target, const S* X, index_t ldx, const S* W, const S* bias, S* Y, index_t ldy,
                 index_t batch, index_t In, index_t Out, S* scratch, F act, index_t panels,
                 index_t row_block) {
    constexpr index_t P = panel_samples<S>;
    const index_t block = row_block > 0 ? row_block : Out;
    for (index_t m0 = 0; m0 < batch; m0 += panels * P) {
        const index_t n_panels = std::min(panels, (batch - m0 + P - 1) / P);
        for (index_t p = 0; p < n_panels; ++p)
            detail::pack_panel(X, ldx, m0 + p * P, std::min(P, batch - m0 - p * P), In,
                               scratch + p * In * P);
        for (index_t r0 = 0; r0 < Out; r0 += block)
            for (index_t p = 0; p < n_panels; ++p)
                detail::panel_rows(scratch + p * In * P, std::min(P, batch - m0 - p * P), W, bias,
                                   Y, ldy, m0 + p * P, In, r0, std::min(Out, r0 + block), act);
    }
}

/// gemm_rows (conv.hpp): C (N x P) = act(W (N x K) · B (K x P) + bias), B readable up to the
/// next multiple of this target's lanes in P.
template <Scalar S, index_t N, index_t K, class F>
void gemm_rows(target, const S* W, const S* B, index_t ldb, index_t P, const S* bias, S* C,
               index_t ldc, F act) {
    using V = simd<S>;
    constexpr int L = V::lanes;
    constexpr int MR = tile_rows;
    auto column_block = [&]<int NV>(index_t p0, index_t width) {
        auto rows = [&]<int R>(index_t n0) {
            gemm_tile<S, R, NV> t;
            t.run(W + n0 * K, K, B + p0, ldb, K);
            INN_UNROLL for (int r = 0; r < R; ++r) {
                const S b = bias ? bias[n0 + r] : S(0);
                S* c = C + (n0 + r) * ldc + p0;
                INN_UNROLL for (int v = 0; v < NV; ++v) {
                    const typename V::vec y = V::apply(act, t.acc[r][v] + b);
                    // Columns left from this vector on: > 0 by the choice of NV.
                    const index_t n = width - v * L;
                    if (n >= L)
                        V::store(c + v * L, y);
                    else
                        V::store_part(c + v * L, y, n);
                }
            }
        };
        index_t n0 = 0;
        for (; n0 + MR <= N; n0 += MR)
            rows.template operator()<MR>(n0);
        if constexpr (N % MR != 0)
            rows.template operator()<int(N % MR)>(n0);
    };
    // Whole blocks of three vectors, then the rest (P is often a constant here: spelled so
    // that the compiler sees which of the branches below is taken).
    const index_t blocks = P / (3 * L);
    for (index_t q = 0; q < blocks; ++q)
        column_block.template operator()<3>(q * 3 * L, 3 * L);
    const index_t p0 = blocks * 3 * L, rest = P - p0;
    if (rest > 2 * L)
        column_block.template operator()<3>(p0, rest);
    else if (rest > L)
        column_block.template operator()<2>(p0, rest);
    else if (rest > 0)
        column_block.template operator()<1>(p0, rest);
}

/// The register tile of the products whose loaded operand is contiguous (gemm_packed's packed
/// weights, matmul's panel): rows broadcast by vectors loaded. With 32 registers, 8 x 3 (24
/// accumulators); with 16, 6 x 2 (12 accumulators, two loaded vectors, a broadcast: one register
/// spare). 4 x 3 there takes all 16, and GCC then folds the loads into the FMAs: three times as
/// many vector loads, which bound the loop (mnist-cinn forward at batch 256 on an AVX2-only AMD
/// EPYC, Zen 3: 116 ms with 4 x 3, 89 ms with 6 x 2).
inline constexpr int packed_tile_rows = vector_bytes == 64 ? 8 : 6;
inline constexpr int packed_tile_vectors = vector_bytes == 64 ? 3 : 2;

/// Depth of one block of matmul_run: the block's packed panel of B (matmul_depth x
/// packed_tile_vectors vectors: 24 KiB at 64-byte vectors) stays in L1 while every register
/// tile of A's rows runs over it. (Unblocked, the panel of a depth-784 product streams from L2
/// once per tile, which a CPU with two vector FMA units per cycle cannot feed.)
inline constexpr index_t matmul_depth = 128;

/// matmul (grad.hpp): C (m x n, row-major) = or += A (m x k) · B (k x n, row-major), element
/// (i, p) of A at A[p * lda + i] where `ATransposed`, else A[i * lda + p]. Blocks of
/// matmul_depth along k; in each, panels of packed_tile_vectors vectors' worth of B's columns
/// are copied into `panel` (contiguous, zero past column n) and register tiles of
/// packed_tile_rows rows of A (broadcast) by the panel's vectors run over it, starting from C's
/// value (0 in the first block unless `Accumulate`). Each output is thereby one chain of
/// multiply-adds in the order of k from C's first value, whatever the blocking and the vector
/// width. The last vector of a row of C that n does not fill is loaded and stored in part
/// (nothing read or written past column n).
template <Scalar S, bool ATransposed, bool Accumulate>
void matmul_run(target, S* C, index_t ldc, const S* A, index_t lda, const S* B, index_t ldb,
                index_t m, index_t n, index_t k) {
    using V = simd<S>;
    using vec = typename V::vec;
    constexpr int L = V::lanes, MR = packed_tile_rows, NVmax = packed_tile_vectors, NB = NVmax * L;
    constexpr index_t KC = matmul_depth;
    if (k == 0) {
        if constexpr (!Accumulate)
            for (index_t i = 0; i < m; ++i)
                std::fill_n(C + i * ldc, n, S(0));
        return;
    }
    alignas(64) S panel[KC * NB];
    for (index_t p0 = 0; p0 < k; p0 += KC) {
        const index_t kb = std::min(KC, k - p0);
        const bool from_zero = !Accumulate && p0 == 0;
        const S* a0 = ATransposed ? A + p0 * lda : A + p0;
        // Columns j0 .. j0 + width of C from the packed panel, NV vectors of it.
        auto column_block = [&]<int NV>(index_t j0, index_t width) {
            const index_t last = width - (NV - 1) * L; // valid lanes of the last vector
            // Rows i0 .. i0 + count of A and C in a tile of R; `Partial`: count < R (tile_row).
            auto rows = [&]<int R, bool Partial>(index_t i0, int count) {
                vec acc[R][NV] = {}; // (`acc[r][v] = vec{}` in a lambda crashes nvcc 13)
                index_t row[R];
                INN_UNROLL for (int r = 0; r < R; ++r) row[r] =
                    tile_row(i0, r, Partial ? count : R);
                if (!from_zero)
                    INN_UNROLL for (int r = 0; r < R; ++r) {
                        const S* c = C + row[r] * ldc + j0;
                        INN_UNROLL for (int v = 0; v < NV; ++v) acc[r][v] =
                            v == NV - 1 && last < L ? V::load_part(c + v * L, last)
                                                    : V::load(c + v * L);
                    }
                for (index_t p = 0; p < kb; ++p) {
                    vec bv[NV];
                    INN_UNROLL for (int v = 0; v < NV; ++v) bv[v] = V::load(panel + p * NB + v * L);
                    INN_UNROLL for (int r = 0; r < R; ++r) {
                        const S a = ATransposed ? a0[p * lda + row[r]] : a0[row[r] * lda + p];
                        INN_UNROLL for (int v = 0; v < NV; ++v) acc[r][v] += bv[v] * a;
                    }
                }
                INN_UNROLL for (int r = 0; r < R; ++r) {
                    if (Partial && r >= count)
                        break;
                    S* c = C + (i0 + r) * ldc + j0;
                    INN_UNROLL for (int v = 0; v < NV; ++v) {
                        if (v == NV - 1 && last < L)
                            V::store_part(c + v * L, acc[r][v], last);
                        else
                            V::store(c + v * L, acc[r][v]);
                    }
                }
            };
            index_t i0 = 0;
            for (; i0 + MR <= m; i0 += MR)
                rows.template operator()<MR, false>(i0, MR);
            if (i0 < m)
                remainder_tile<MR>(int(m - i0), [&]<int R>() {
                    rows.template operator()<R, true>(i0, int(m - i0));
                });
        };
        for (index_t j0 = 0; j0 < n; j0 += NB) {
            const index_t width = std::min<index_t>(NB, n - j0);
            if (width == NB) // whole vectors, copied as such (a memcpy call per row costs ~5 %)
                for (index_t p = 0; p < kb; ++p)
                    INN_UNROLL for (int v = 0; v < NVmax; ++v) V::store(
                        panel + p * NB + v * L, V::load(B + (p0 + p) * ldb + j0 + v * L));
            else
                for (index_t p = 0; p < kb; ++p) {
                    S* d = panel + p * NB;
                    std::memcpy(d, B + (p0 + p) * ldb + j0, std::size_t(width) * sizeof(S));
                    std::fill(d + width, d + NB, S(0));
                }
            if (NVmax == 3 && width > 2 * L)
                column_block.template operator()<NVmax>(j0, width);
            else if (width > L)
                column_block.template operator()<2>(j0, width);
            else
                column_block.template operator()<1>(j0, width);
        }
    }
}

/// gemm_nt_packed (gemm.hpp): Y = act(X Wᵀ + b) from W packed by pack_weights (blocks of
/// 3 * scratch_lanes outputs, each [In][block], zero past Out). Register tiles of
/// packed_tile_rows samples (broadcast from their rows of X, nothing packed per call) by up to
/// packed_tile_vectors vectors of a block's outputs (loaded); each sample's outputs leave as
/// whole vectors of its row of Y, bias and activation applied on the way. A narrower target
/// walks a block in several passes.
template <Scalar S, class F>
void gemm_packed(target, const S* X, index_t ldx, const S* Wp, const S* bias, S* Y, index_t ldy,
                 index_t batch, index_t In, index_t Out, F act) {
    using V = simd<S>;
    using vec = typename V::vec;
    constexpr int L = V::lanes, MR = packed_tile_rows, NVmax = packed_tile_vectors;
    constexpr index_t block = 3 * scratch_lanes<S>, pass = NVmax * L;
    // The rows of the block 16 inputs ahead are prefetched as a tile reads: a block that a few
    // tiles of samples read straight from L3 or memory (batch 16 of mnist-cinn's 784 x 784)
    // otherwise waits on every line (8.3 against 12 ms for 24 such products at batch 16 on the
    // Intel Xeon); in cache it costs nothing measurable.
    constexpr index_t ahead = 16;
    // Columns [c0, c0 + width) of Y, their packed weights at w (rows `block` apart).
    auto columns = [&]<int NV>(const S* w, index_t c0, index_t width) {
        // Valid lanes of the last vector (L where width fills it).
        const index_t last = width - (NV - 1) * L;
        vec b[NV] = {};
        if (bias) {
            INN_UNROLL for (int v = 0; v < NV; ++v) b[v] =
                v == NV - 1 ? V::load_part(bias + c0 + v * L, last) : V::load(bias + c0 + v * L);
        }
        // Samples s0 .. s0 + count in a tile of R; `Partial`: count < R (tile_row).
        auto rows = [&]<int R, bool Partial>(index_t s0, int count) {
            vec acc[R][NV] = {}; // (`acc[r][v] = vec{}` in a lambda crashes nvcc 13)
            const S* x[R];
            INN_UNROLL for (int r = 0; r < R; ++r) x[r] =
                X + tile_row(s0, r, Partial ? count : R) * ldx;
            for (index_t k = 0; k < In; ++k) {
                const S* next = w + std::min(k + ahead, In - 1) * block;
                INN_UNROLL for (int v = 0; v < NV; ++v) if (v * L * sizeof(S) % 64 == 0)
                    __builtin_prefetch(next + v * L); // once per cache line
                vec wv[NV];
                INN_UNROLL for (int v = 0; v < NV; ++v) wv[v] = V::load(w + k * block + v * L);
                INN_UNROLL for (int r = 0; r < R; ++r) {
                    const S a = x[r][k];
                    INN_UNROLL for (int v = 0; v < NV; ++v) acc[r][v] += wv[v] * a;
                }
            }
            INN_UNROLL for (int r = 0; r < R; ++r) {
                if (Partial && r >= count)
                    break;
                S* y = Y + (s0 + r) * ldy + c0;
                INN_UNROLL for (int v = 0; v < NV; ++v) {
                    const vec out = V::apply(act, acc[r][v] + b[v]);
                    if (v < NV - 1 || last == L)
                        V::store(y + v * L, out);
                    else
                        V::store_part(y + v * L, out, last);
                }
            }
        };
        index_t s0 = 0;
        for (; s0 + MR <= batch; s0 += MR)
            rows.template operator()<MR, false>(s0, MR);
        if (s0 < batch)
            remainder_tile<MR>(int(batch - s0), [&]<int R>() {
                rows.template operator()<R, true>(s0, int(batch - s0));
            });
    };
    for (index_t o0 = 0; o0 < Out; o0 += block)
        for (index_t c0 = o0; c0 < std::min(Out, o0 + block); c0 += pass) {
            const S* w = Wp + o0 * In + (c0 - o0);
            const index_t width = std::min(pass, Out - c0);
            if (NVmax == 3 && width > 2 * L)
                columns.template operator()<NVmax>(w, c0, width);
            else if (width > L)
                columns.template operator()<2>(w, c0, width);
            else
                columns.template operator()<1>(w, c0, width);
        }
}
