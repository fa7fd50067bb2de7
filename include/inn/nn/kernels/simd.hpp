#pragma once
// SIMD vectors of the dense kernels: GCC/Clang vector extensions as wide as the target's widest
// registers (64 bytes with AVX-512, 32 with AVX, else 16), lane-wise helpers (load, store, the
// sum of the lanes, an activation on every lane), and loops of whole Eigen packets.

#include <cstring>
#include <type_traits>

#include <Eigen/Core>

// nvcc's passes see x86 intrinsics (and Eigen's vectorisation) only where they did before.
#if defined(__AVX512F__) || (defined(__SSE2__) && !defined(__CUDACC__))
#include <immintrin.h>
#endif
#include <cmath>

#include "../../core/config.hpp"

namespace inn::nn::kernels {

/// The identity, for layers without an activation to fuse.
struct no_act {
    template <class T> T operator()(T x) const { return x; }
};

/// The widest vectors the target has (64 bytes with AVX-512, 32 with AVX, else 16): wider
/// ones would be split anyway, and passing them by value would change the ABI.
#if defined(__AVX512F__)
inline constexpr int vector_bytes = 64;
#elif defined(__AVX__)
inline constexpr int vector_bytes = 32;
#else
inline constexpr int vector_bytes = 16;
#endif

template <Scalar S> struct simd {
    static constexpr int lanes = vector_bytes / int(sizeof(S));
    typedef S vec __attribute__((vector_size(vector_bytes)));

    static vec load(const S* p) {
        vec v;
        std::memcpy(&v, p, sizeof(vec));
        return v;
    }
    static void store(S* p, const vec& v) { std::memcpy(p, &v, sizeof(vec)); }
    static vec broadcast(S s) { return vec{} + s; }
    /// The square root of every lane, correctly rounded as std::sqrt (the instruction where
    /// there is one: a loop of std::sqrt does not vectorise while sqrt may set errno).
    static vec sqrt(vec v) {
#if defined(__AVX512F__)
        if constexpr (std::is_same_v<S, float>)
            return _mm512_sqrt_ps(v);
        else
            return _mm512_sqrt_pd(v);
#elif defined(__AVX__) && !defined(__CUDACC__)
        if constexpr (std::is_same_v<S, float>)
            return _mm256_sqrt_ps(v);
        else
            return _mm256_sqrt_pd(v);
#elif defined(__SSE2__) && !defined(__CUDACC__)
        if constexpr (std::is_same_v<S, float>)
            return _mm_sqrt_ps(v);
        else
            return _mm_sqrt_pd(v);
#else
        for (int l = 0; l < lanes; ++l)
            v[l] = std::sqrt(v[l]);
        return v;
#endif
    }
    /// Sum of the lanes: halves added while wider than 16 bytes (the vector never goes to
    /// memory), then the last lanes one by one.
    static S sum(vec v) {
        typedef S v16b __attribute__((vector_size(16)));
        v16b q;
        if constexpr (vector_bytes == 64) {
            typedef S v32b __attribute__((vector_size(32)));
            v32b h;
            if constexpr (lanes == 16)
                h = __builtin_shufflevector(v, v, 0, 1, 2, 3, 4, 5, 6, 7) +
                    __builtin_shufflevector(v, v, 8, 9, 10, 11, 12, 13, 14, 15);
            else
                h = __builtin_shufflevector(v, v, 0, 1, 2, 3) +
                    __builtin_shufflevector(v, v, 4, 5, 6, 7);
            if constexpr (lanes == 16)
                q = __builtin_shufflevector(h, h, 0, 1, 2, 3) +
                    __builtin_shufflevector(h, h, 4, 5, 6, 7);
            else
                q = __builtin_shufflevector(h, h, 0, 1) + __builtin_shufflevector(h, h, 2, 3);
        } else if constexpr (vector_bytes == 32) {
            if constexpr (lanes == 8)
                q = __builtin_shufflevector(v, v, 0, 1, 2, 3) +
                    __builtin_shufflevector(v, v, 4, 5, 6, 7);
            else
                q = __builtin_shufflevector(v, v, 0, 1) + __builtin_shufflevector(v, v, 2, 3);
        } else {
            q = v;
        }
        constexpr int n = 16 / int(sizeof(S));
        if constexpr (n == 4)
            return (q[0] + q[2]) + (q[1] + q[3]);
        else
            return q[0] + q[1];
    }
    /// An element-wise functor applied to every lane. ReLU (a functor with `relu = true`) is one
    /// max instruction with AVX-512. Its operand order matters: vmaxps returns the second
    /// operand unless the first is greater, so max(0, x) keeps a NaN x (as PyTorch does) and
    /// gives exactly the scalar 0 > x ? 0 : x, -0 included.
    template <class F> static vec apply(F f, vec v) {
#if defined(__AVX512F__)
        if constexpr (requires { F::relu; }) {
            if constexpr (std::is_same_v<S, float>)
                return _mm512_max_ps(vec{}, v);
            else
                return _mm512_max_pd(vec{}, v);
        }
#endif
        for (int l = 0; l < lanes; ++l)
            v[l] = f(v[l]);
        return v;
    }
};

/// dst[0, n) = f(src[0, n)) for an Eigen array expression `f`, one full SIMD packet at a time
/// and the remaining elements one by one: Eigen's own loop over a dynamic size would leave runs
/// shorter than a packet to scalar code anyway, and a padded copy costs store-forwarding stalls.
template <Scalar S, class F> void apply_packets(const S* src, S* dst, index_t n, F f) {
    constexpr int L = simd<S>::lanes;
    using A = Eigen::Array<S, L, 1>;
    using A1 = Eigen::Array<S, 1, 1>;
    index_t i = 0;
    for (; i + L <= n; i += L)
        Eigen::Map<A>(dst + i) = f(Eigen::Map<const A>(src + i));
    for (; i < n; ++i) {
        const A1 v(src[i]);
        const A1 r = f(v);
        dst[i] = r(0);
    }
}

/// dst = alpha * tanh(src * tenth / alpha) (the soft clamp of AllInOneBlock, constants rounded
/// to S first as PyTorch does); one instantiation per scalar type.
template <Scalar S> void tanh_clamp(const S* src, S* dst, index_t n, S alpha, S tenth) {
    apply_packets(src, dst, n, [&](const auto& v) { return (v * tenth / alpha).tanh() * alpha; });
}
/// p = exp(p), or exp(-p) with `negate`.
template <Scalar S> void exp_inplace(S* p, index_t n, bool negate) {
    if (negate)
        apply_packets(p, p, n, [](const auto& v) { return (-v).exp(); });
    else
        apply_packets(p, p, n, [](const auto& v) { return v.exp(); });
}

} // namespace inn::nn::kernels
