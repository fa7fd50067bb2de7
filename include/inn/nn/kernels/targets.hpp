#pragma once
// Vector targets: the dense kernels (register-tiled products, direct convolutions, the fused
// small MLP) compiled once per instruction set, and the widest one the CPU runs picked at run
// time. A package built for baseline x86-64 thereby runs them on AVX2 or AVX-512 vectors where
// the machine has them, without -march=native.
//
//   * isa::build    the build's own target (its widest vectors: 64 bytes with AVX-512, 32 with
//                   AVX, else 16); always compiled, and the only one where nothing else can be
//                   (other compilers than GCC, nvcc, other architectures, INN_NO_VECTOR_DISPATCH);
//   * isa::avx2     AVX2 + FMA, 32-byte vectors, where the build's are narrower;
//   * isa::avx512   AVX-512 F/BW/DQ/VL, 64-byte vectors, where the build's are narrower.
//
// Each target is the same source (kernels/vector/*.ipp) included into its own namespace under
// `#pragma GCC target`, which gives every function there - templates and their later
// instantiations included - that instruction set. Its entry points take the target's tag type
// as first argument, so that `dispatch` reaches them by argument-dependent lookup.
//
// Results: each output of a product is one chain of multiply-adds in the order of its inputs
// whatever the vector width, so AVX2 and AVX-512 give the same bits there (tested); a build
// target without FMA rounds each product and sum separately, and horizontal sums (one sample
// run across lanes) associate by width, so those differ from the others by rounding. The
// target is a property of the CPU: one machine always picks the same one.

#include <algorithm>
#include <atomic>
#include <bit>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <utility>

#include "../../core/config.hpp"
#include "caches.hpp"

#if defined(__AVX512F__) || (defined(__SSE2__) && !defined(__CUDACC__))
#include <immintrin.h>
#endif
#include <cmath>

// The build's vector width.
#if defined(__AVX512F__)
#define INN_BUILD_VECTOR_BYTES 64
#elif defined(__AVX__)
#define INN_BUILD_VECTOR_BYTES 32
#else
#define INN_BUILD_VECTOR_BYTES 16
#endif

// Whether wider targets are compiled beside the build's: GCC on x86-64 (Clang spells the
// pragma differently, nvcc's front end does not take it).
#if !defined(INN_NO_VECTOR_DISPATCH) && defined(__GNUC__) && !defined(__clang__) &&                \
    !defined(__CUDACC__) && !defined(__INTEL_LLVM_COMPILER) && defined(__x86_64__) &&              \
    INN_BUILD_VECTOR_BYTES < 64
#define INN_VECTOR_DISPATCH 1
#else
#define INN_VECTOR_DISPATCH 0
#endif

namespace inn::nn::kernels {
/// Scratch is laid out for 64-byte vectors on every target, whatever the build's and the CPU's:
/// the targets, and translation units compiled for different ones, agree on every buffer size.
inline constexpr int scratch_vector_bytes = 64;
template <Scalar S>
inline constexpr index_t scratch_lanes = scratch_vector_bytes / index_t(sizeof(S));
/// A bfloat16 weight copy (bf16.hpp) is laid out the same for every target: blocks of
/// bf16_rows rows, each block's rows cut into chunks of bf16_chunk columns (64 bytes).
inline constexpr index_t bf16_rows = 8, bf16_chunk = 32;
/// How far ahead the single-stream matrix-vector products (gemv's `one_stream`, gemv_bf16)
/// prefetch the weights they read front to back. Intel's L2 streamer stops at each 4 KiB page,
/// so one stream alone leaves memory idle at every page boundary; lines two pages ahead keep it
/// busy (mnist-cinn at batch 1 on an Intel Xeon, Ice Lake: bfloat16 weights 2.3-3.1 -> 1.4-2.6
/// ms, float 5.2-5.9 -> 4.8-5.4 ms; 4 KiB and 16 KiB ahead gained less; docs/performance.md).
inline constexpr index_t stream_prefetch_bytes = 8192;
/// Prefetches the line stream_prefetch_bytes past p, which may lie past the end of the weights:
/// the address is computed as an integer (no pointer leaves its array) and a prefetch never
/// faults.
inline void prefetch_far_ahead(const void* p) {
    __builtin_prefetch(
        reinterpret_cast<const void*>(reinterpret_cast<std::uintptr_t>(p) + stream_prefetch_bytes));
}
/// Columns of a weight with `In` inputs in its bfloat16 copy: whole chunks of bf16_chunk.
constexpr index_t bf16_padded_in(index_t In) {
    return (In + bf16_chunk - 1) / bf16_chunk * bf16_chunk;
}
} // namespace inn::nn::kernels

// --- the build's target -----------------------------------------------------------------------
namespace inn::nn::kernels::isa::build {
#define INN_TARGET_BYTES INN_BUILD_VECTOR_BYTES
#if defined(__AVX512F__) || (defined(__SSE2__) && !defined(__CUDACC__))
#define INN_TARGET_X86 1
#else
#define INN_TARGET_X86 0
#endif
// Each file uses the ones before it:
// clang-format off
#include "vector/simd.ipp"
#include "vector/gemm.ipp"
#include "vector/gemv.ipp"
#include "vector/conv.ipp"
#include "vector/mlp.ipp"
// clang-format on
#undef INN_TARGET_X86
#undef INN_TARGET_BYTES
} // namespace inn::nn::kernels::isa::build

#if INN_VECTOR_DISPATCH
#define INN_TARGET_X86 1
#if INN_BUILD_VECTOR_BYTES < 32
namespace inn::nn::kernels::isa::avx2 {
#pragma GCC push_options
#pragma GCC target("avx2,fma")
#define INN_TARGET_BYTES 32
// Each file uses the ones before it:
// clang-format off
#include "vector/simd.ipp"
#include "vector/gemm.ipp"
#include "vector/gemv.ipp"
#include "vector/conv.ipp"
#include "vector/mlp.ipp"
// clang-format on
#undef INN_TARGET_BYTES
#pragma GCC pop_options
} // namespace inn::nn::kernels::isa::avx2
#endif
namespace inn::nn::kernels::isa::avx512 {
#pragma GCC push_options
#pragma GCC target("avx2,fma,avx512f,avx512bw,avx512dq,avx512vl")
#define INN_TARGET_BYTES 64
// Each file uses the ones before it:
// clang-format off
#include "vector/simd.ipp"
#include "vector/gemm.ipp"
#include "vector/gemv.ipp"
#include "vector/conv.ipp"
#include "vector/mlp.ipp"
// clang-format on
#undef INN_TARGET_BYTES
#pragma GCC pop_options
} // namespace inn::nn::kernels::isa::avx512
#undef INN_TARGET_X86
#endif

namespace inn::nn::kernels {

/// The build's vector width in bytes (what kernels outside the dispatched ones use).
inline constexpr int build_vector_bytes = INN_BUILD_VECTOR_BYTES;
/// Lanes of scalar type S in a target's vectors.
template <Scalar S, class Target>
inline constexpr int target_lanes = Target::bytes / int(sizeof(S));

/// The vector width in bytes of the widest target this CPU runs (read once: cpuid, and the
/// operating system's support for the registers, through GCC's __builtin_cpu_supports).
inline int cpu_vector_bytes() {
#if INN_VECTOR_DISPATCH
    static const int bytes = [] {
        __builtin_cpu_init();
        if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
            __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl") &&
            __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
            return 64;
        if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
            return std::max(32, build_vector_bytes);
        return build_vector_bytes;
    }();
    return bytes;
#else
    return build_vector_bytes;
#endif
}

namespace detail {
inline std::atomic<int>& vector_bytes_limit() {
    static std::atomic<int> limit{64};
    return limit;
}
} // namespace detail

/// Caps the targets the kernels pick at `bytes`-wide vectors (process-wide; the build's target
/// is the floor): to run as a machine with narrower vectors would, e.g. to compare the targets
/// (tests) or to measure one (benchmarks, --vector-bytes=). 64 lifts the cap.
inline void limit_vector_bytes(int bytes) {
    detail::vector_bytes_limit().store(bytes, std::memory_order_relaxed);
}

/// The vector width in bytes the dispatched kernels run at now.
inline int vector_target_bytes() {
    const int limit = detail::vector_bytes_limit().load(std::memory_order_relaxed);
    return std::max(build_vector_bytes, std::min(cpu_vector_bytes(), limit));
}

/// The name of the target the kernels run at now: "avx512", "avx2", or "build" (the build's
/// own, whatever its width).
inline const char* vector_target_name() {
    const int b = vector_target_bytes();
    if (!INN_VECTOR_DISPATCH || b == build_vector_bytes)
        return "build";
    return b == 64 ? "avx512" : "avx2";
}

/// Calls `run(target)` for the widest target that this CPU runs, the cap allows and the build
/// compiled; `run` returns whether it ran, and declines (false) where its sizes are not whole
/// vectors of that target, which moves on to the next narrower one. The build's target must
/// not decline. (One relaxed load and two predictable branches per call.)
template <class Run> void dispatch(Run&& run) {
#if INN_VECTOR_DISPATCH
    const int bytes = vector_target_bytes();
    if (bytes >= 64 && run(isa::avx512::target{}))
        return;
#if INN_BUILD_VECTOR_BYTES < 32
    if (bytes >= 32 && run(isa::avx2::target{}))
        return;
#endif
#endif
    run(isa::build::target{});
}

} // namespace inn::nn::kernels
