// The matrix-vector products of one vector target (see simd.ipp): one sample through a Linear
// layer, W in the network's scalar type or in bfloat16 (public entry points and their
// documentation: gemm.hpp, bf16.hpp). No include guard: one copy per target.

/// y = act(W x + bias) for one sample, W [Out, In] row-major: tile_rows rows of W at a time,
/// each a dot product with x in two chains of multiply-adds, the next rows prefetched while
/// these are read (one or two samples stream W from memory: see bf16.hpp).
template <Scalar S, class F>
void gemv(target, const S* W, index_t In, index_t Out, const S* x, const S* bias, S* y, F act) {
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
    const index_t blocks = Out / R;
    for (index_t k = 0; k < blocks; ++k)
        rows.template operator()<R>(k * R, k + 1 < blocks);
    for (index_t o = blocks * R; o < Out; ++o)
        rows.template operator()<1>(o, false);
}

/// gemv_bf16 (bf16.hpp) for float: one sample, its inputs already split into even and odd
/// halves per block of 2L in `xs` (deinterleave_bf16_inputs). A vector of L 32-bit lanes
/// loaded from W holds 2L weights: shifted left by 16 the even ones become floats, masked the
/// odd ones (no shuffles).
template <class F>
void gemv_bf16(target, const std::uint16_t* W, index_t In, index_t Out, const float* x,
               const float* xs, const float* bias, float* y, F act) {
    using V = simd<float>;
    using vec = V::vec;
    constexpr int L = V::lanes, R = tile_rows;
    typedef std::uint32_t uvec __attribute__((vector_size(L * 4)));
    const index_t body = In / (2 * L) * (2 * L);
    // (A lambda that captures: see mlp.ipp.)
    auto widen = [&](const std::uint16_t* p, vec& even, vec& odd) {
        uvec u;
        std::memcpy(&u, p, sizeof u);
        const uvec e = u << 16, o = u & 0xffff0000u;
        std::memcpy(&even, &e, sizeof(vec));
        std::memcpy(&odd, &o, sizeof(vec));
    };
    auto rows = [&]<int N>(index_t o, bool next) {
        const std::uint16_t* w = W + o * In;
        vec e[N] = {}, d[N] = {}; // (a chained `e[r] = d[r] = vec{}` crashes nvcc 13)
        for (index_t i = 0; i < body; i += 2 * L) {
            const vec xe = V::load(xs + i), xo = V::load(xs + i + L);
            INN_UNROLL for (int r = 0; r < N; ++r) {
                // The next rows prefetched as these are read: the memory keeps more lines in
                // flight than its own prefetchers ask for (784 x 784 from DRAM: 31 -> 49 GB/s
                // on Zen 5).
                if (next)
                    __builtin_prefetch(w + (N + r) * In + i);
                vec we, wo;
                widen(w + r * In + i, we, wo);
                e[r] += we * xe;
                d[r] += wo * xo;
            }
        }
        INN_UNROLL for (int r = 0; r < N; ++r) {
            float s = V::sum(e[r] + d[r]);
            for (index_t i = body; i < In; ++i)
                s += std::bit_cast<float>(std::uint32_t(w[r * In + i]) << 16) * x[i];
            y[o + r] = act(s + (bias ? bias[o + r] : 0.f));
        }
    };
    const index_t blocks = Out / R;
    for (index_t k = 0; k < blocks; ++k)
        rows.template operator()<R>(k * R, k + 1 < blocks);
    for (index_t o = blocks * R; o < Out; ++o)
        rows.template operator()<1>(o, false);
}

/// xs = x's first body values (body a multiple of 2L), each block of 2L split into its even
/// and odd elements (L each), as gemv_bf16 reads them.
inline void deinterleave_bf16_inputs(target, const float* x, index_t In, float* xs) {
    constexpr int L = simd<float>::lanes;
    const index_t body = In / (2 * L) * (2 * L);
    for (index_t i = 0; i < body; i += 2 * L)
        for (int j = 0; j < L; ++j) {
            xs[i + j] = x[i + 2 * j];
            xs[i + L + j] = x[i + 2 * j + 1];
        }
}
