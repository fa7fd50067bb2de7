#pragma once
// Element-wise work: a functor `f(i)` called for every i in [0, n) on the context's stream.
// The functor is written once (INN_HD): under nvcc it is the body of a one-line kernel (one
// thread per index, launched directly: thrust::for_each_n queries the device on every launch,
// which costs microseconds per call where a small batch has nothing else to pay for); on the
// host system thrust's sequential for_each runs it. No launch allocates.
//
// The indices of one launch fit in 32 bits (checked), so functors split them with 32-bit
// division (fast_div), which a GPU does in a few instructions instead of a 64-bit library call.

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <type_traits>

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

/// How many lanes share a sample, known at compile time (so that a lane's share of a loop has
/// a fixed trip count and unrolls: its loads are issued together): 32 on a GPU, 1 on the host.
template <int N> using lane_count = std::integral_constant<int, N>;

/// The sum of `v` over the lanes that share a sample, in every lane: on a GPU a warp's 32
/// lanes (butterfly shuffles), on the host system one lane (nothing to do). Called by every
/// lane of the warp.
template <class S> INN_HD inline void lanes_sum(S& v) {
#ifdef __CUDA_ARCH__
    for (int d = 16; d > 0; d /= 2)
        v += __shfl_xor_sync(0xffffffffu, v, d);
#else
    (void)v;
#endif
}

/// Asks for the `bytes` at p in L1 ahead of use, the lanes sharing the cache lines (a hint:
/// nothing on the host system).
template <class Lanes>
INN_HD inline void prefetch_l1(const void* p, std::size_t bytes, int lane, Lanes) {
#ifdef __CUDA_ARCH__
    const char* c = static_cast<const char*>(p);
    for (std::size_t at = std::size_t(lane) * 128; at < bytes; at += Lanes::value * 128)
        asm volatile("prefetch.global.L1 [%0];" ::"l"(c + at));
#else
    (void)p;
    (void)bytes;
    (void)lane;
#endif
}

#if INN_CUDA_DEVICE
template <class F> __global__ void for_each_sample_kernel(F f, std::uint32_t batch) {
    const std::uint32_t b = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
    if (b >= batch)
        return; // whole warps
    f(index_t(b), int(threadIdx.x % 32), lane_count<32>{});
}
#endif

/// Per-sample work shared by the lanes of one warp: `f(b, lane, lanes)` for every sample b,
/// where the lanes (a lane_count) split the sample's work (lane, lane + lanes, ...) and meet
/// through lanes_sum. On a GPU one warp per sample; on the host system one call per sample with one
/// lane, in order - the same code, so the host build tests the kernel's logic.
template <class F> void for_each_sample_warp(const context& ctx, index_t batch, F f) {
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
    for (index_t b = 0; b < batch; ++b)
        f(b, 0, lane_count<1>{});
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
