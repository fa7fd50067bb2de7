// The matrix-vector products of one vector target (see simd.ipp): one sample through a Linear
// layer, W in the network's scalar type or in bfloat16 (public entry points and their
// documentation: gemm.hpp, bf16.hpp). No include guard: one copy per target.

/// y = act(W x + bias) for one sample, W [Out, In] row-major: each output a dot product with x
/// in two chains of multiply-adds. `streamed` (W comes from L3 or memory): one row after the
/// other, a single stream the CPU's prefetchers follow; else tile_rows rows of W at a time,
/// sharing each load of x, the next rows prefetched while these are read. Same bits both ways.
template <Scalar S, class F>
void gemv(target, const S* W, index_t In, index_t Out, const S* x, const S* bias, S* y, F act,
          bool streamed) {
    using V = simd<S>;
    using vec = typename V::vec;
    constexpr int L = V::lanes, R = tile_rows;
    const index_t body = In / (2 * L) * (2 * L);
    auto rows = [&]<int N>(index_t o, bool next) {
        const S* w = W + o * In;
        vec e[N] = {}, d[N] = {}; // (a chained `e[r] = d[r] = vec{}` crashes nvcc 13)
        for (index_t i = 0; i < body; i += 2 * L) {
            const vec x0 = V::load(x + i), x1 = V::load(x + i + L);
            INN_UNROLL for (int r = 0; r < N; ++r) {
                if (next) {
                    __builtin_prefetch(w + (N + r) * In + i);
                    __builtin_prefetch(w + (N + r) * In + i + L);
                }
                e[r] += V::load(w + r * In + i) * x0;
                d[r] += V::load(w + r * In + i + L) * x1;
            }
        }
        index_t tail = body;
        if (tail + L <= In) {
            const vec x0 = V::load(x + tail);
            INN_UNROLL for (int r = 0; r < N; ++r) e[r] += V::load(w + r * In + tail) * x0;
            tail += L;
        }
        INN_UNROLL for (int r = 0; r < N; ++r) {
            S s = V::sum(e[r] + d[r]);
            for (index_t i = tail; i < In; ++i)
                s += w[r * In + i] * x[i];
            y[o + r] = act(s + (bias ? bias[o + r] : S(0)));
        }
    };
    const index_t blocks = streamed ? 0 : Out / R;
    for (index_t k = 0; k < blocks; ++k)
        rows.template operator()<R>(k * R, k + 1 < blocks);
    for (index_t o = blocks * R; o < Out; ++o)
        rows.template operator()<1>(o, false);
}

/// gemv_bf16 (bf16.hpp) for float: one sample, its inputs already split into even and odd
/// halves per block of 2L and padded with zeros in `xs` (deinterleave_bf16_inputs), W the
/// packed copy of pack_bf16. A vector of L 32-bit lanes loaded from W holds 2L weights: shifted
/// left by 16 the even ones become floats, masked the odd ones (no shuffles). A block of
/// bf16_rows rows is one contiguous run of the copy, read front to back, so the whole product
/// is a single stream that the CPU's own prefetchers follow.
template <class F>
void gemv_bf16(target, const std::uint16_t* W, index_t In, index_t Out, const float* xs,
               const float* bias, float* y, F act) {
    using V = simd<float>;
    using vec = V::vec;
    constexpr int L = V::lanes, R = int(bf16_rows), C = int(bf16_chunk);
    static_assert(C % (2 * L) == 0);
    // Two chains per row where the registers allow (AVX-512 has 32), one elsewhere.
    constexpr bool two_chains = vector_bytes == 64;
    typedef std::uint32_t uvec __attribute__((vector_size(L * 4)));
    const index_t chunks = (In + C - 1) / C;
    for (index_t o = 0; o < Out; o += R) {
        vec e[R] = {}, d[R] = {}; // (a chained `e[r] = d[r] = vec{}` crashes nvcc 13)
        for (index_t c = 0; c < chunks; ++c, W += R * C)
            INN_UNROLL for (int j = 0; j < C; j += 2 * L) {
                const vec xe = V::load(xs + c * C + j), xo = V::load(xs + c * C + j + L);
                INN_UNROLL for (int r = 0; r < R; ++r) {
                    uvec u;
                    std::memcpy(&u, W + r * C + j, sizeof u);
                    const uvec ue = u << 16, uo = u & 0xffff0000u;
                    vec we, wo;
                    std::memcpy(&we, &ue, sizeof(vec));
                    std::memcpy(&wo, &uo, sizeof(vec));
                    e[r] += we * xe;
                    if constexpr (two_chains)
                        d[r] += wo * xo;
                    else
                        e[r] += wo * xo;
                }
            }
        const int rows = int(std::min<index_t>(R, Out - o));
        for (int r = 0; r < rows; ++r) {
            const float s = two_chains ? V::sum(e[r] + d[r]) : V::sum(e[r]);
            y[o + r] = act(s + (bias ? bias[o + r] : 0.f));
        }
    }
}

/// xs = x's In values padded with zeros to whole chunks of bf16_chunk, each block of 2L split
/// into its even and odd elements (L each), as gemv_bf16 reads them.
inline void deinterleave_bf16_inputs(target, const float* x, index_t In, float* xs) {
    constexpr int L = simd<float>::lanes;
    const index_t padded = (In + bf16_chunk - 1) / bf16_chunk * bf16_chunk;
    for (index_t i = 0; i < padded; i += 2 * L)
        for (int j = 0; j < L; ++j) {
            xs[i + j] = i + 2 * j < In ? x[i + 2 * j] : 0.f;
            xs[i + L + j] = i + 2 * j + 1 < In ? x[i + 2 * j + 1] : 0.f;
        }
}
