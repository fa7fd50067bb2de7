#pragma once
// Element-wise work: a functor `f(i)` called for every i in [0, n) on the context's stream.
// The functor is written once (INN_HD): under nvcc it is the body of a one-line kernel (one
// thread per index, launched directly: thrust::for_each_n queries the device on every launch,
// which costs microseconds per call where a small batch has nothing else to pay for); on the
// host system thrust's sequential for_each runs it. No launch allocates.
//
// The indices of one launch fit in 32 bits (checked), so functors split them with 32-bit
// division (fast_div), which a GPU does in a few instructions instead of a 64-bit library call.

#include <cstdint>
#include <stdexcept>

#include <thrust/execution_policy.h>
#include <thrust/for_each.h>
#include <thrust/iterator/counting_iterator.h>

#include "../../core/config.hpp"
#include "device.hpp"

#if !INN_CUDA_DEVICE
#include <thrust/system/cpp/execution_policy.h>
#endif

namespace inn::cuda {

/// a / b for the non-negative 32-bit indices of one launch.
INN_HD inline index_t fast_div(index_t a, index_t b) {
    return index_t(std::uint32_t(a) / std::uint32_t(b));
}

#if INN_CUDA_DEVICE
template <class F> __global__ void for_each_kernel(F f, std::uint32_t n) {
    const std::uint32_t i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n)
        f(index_t(i));
}
#endif

#if INN_CUDA_DEVICE
// One warp per sample: every lane takes every 32nd hidden unit, the partial sums meet by
// shuffles, lane 0 finishes the sample.
template <class F> __global__ void for_each_sample_kernel(F f, std::uint32_t batch) {
    using S = typename F::scalar;
    const std::uint32_t b = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
    const int lane = int(threadIdx.x % 32);
    if (b >= batch)
        return; // whole warps
    S u[F::inputs > 0 ? F::inputs : 1], v[F::channels], a[F::outputs];
    f.input(index_t(b), u, v);
    for (int o = 0; o < F::outputs; ++o)
        a[o] = S(0);
    f.hidden(u, lane, 32, a);
    for (int o = 0; o < F::outputs; ++o)
        for (int d = 16; d > 0; d /= 2)
            a[o] += __shfl_xor_sync(0xffffffffu, a[o], d);
    if (lane == 0)
        f.finish(index_t(b), a, v);
}
#endif

/// Per-sample work whose middle stage is a sum over many terms (a small subnet's hidden
/// units): `f.input(b, u, v)`, `f.hidden(u, first, step, a)` adding its share into a,
/// `f.finish(b, a, v)`. On a GPU one warp per sample shares the sum; on the host system one
/// call per sample does it all, in order.
template <class F> void for_each_sample(const context& ctx, index_t batch, F f) {
    if (batch <= 0)
        return;
    if (batch > index_t(0xffffffff) / 32)
        throw std::length_error("inn::cuda: batch too large for one launch");
#if INN_CUDA_DEVICE
    constexpr unsigned warps = 4; // samples per thread block
    for_each_sample_kernel<<<unsigned((batch + warps - 1) / warps), warps * 32, 0, ctx.stream()>>>(
        f, std::uint32_t(batch));
    check(cudaGetLastError(), "kernel launch");
#else
    (void)ctx;
    using S = typename F::scalar;
    for (index_t b = 0; b < batch; ++b) {
        S u[F::inputs > 0 ? F::inputs : 1], v[F::channels], a[F::outputs];
        f.input(b, u, v);
        for (int o = 0; o < F::outputs; ++o)
            a[o] = S(0);
        f.hidden(u, 0, 1, a);
        f.finish(b, a, v);
    }
#endif
}

template <class F> void for_each_index(const context& ctx, index_t n, F f) {
    if (n <= 0)
        return;
    if (n > index_t(0xffffffff))
        throw std::length_error("inn::cuda: more than 2^32 elements in one launch");
#if INN_CUDA_DEVICE
    constexpr unsigned threads = 256;
    for_each_kernel<<<unsigned((n + threads - 1) / threads), threads, 0, ctx.stream()>>>(
        f, std::uint32_t(n));
    check(cudaGetLastError(), "kernel launch");
#else
    (void)ctx;
    thrust::for_each_n(thrust::cpp::par, thrust::counting_iterator<index_t>(0), n, f);
#endif
}

} // namespace inn::cuda
