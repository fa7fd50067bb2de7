#pragma once
// Basic vocabulary shared by every header: index type, scalar concept.

#include <concepts>
#include <cstddef>

// A loop over a register tile (a compile-time count of accumulators or lanes), unrolled at every
// optimisation level: without it GCC 12 at -O2 (RelWithDebInfo, distribution packages) keeps
// such tiles in memory, and the products run 3.5x slower than at -O3. nvcc's host pass takes
// neither pragma spelling without a warning, so there it is left to the host compiler; the
// sanitizer builds, where speed does not matter but compile time does, leave it out too
// (INN_NO_UNROLL does so anywhere). Unrolling never changes a result.
#if defined(INN_NO_UNROLL) || defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define INN_UNROLL
#elif defined(__CUDA_ARCH__) || (defined(__clang__) && !defined(__CUDACC__))
#define INN_UNROLL _Pragma("unroll")
#elif defined(__GNUC__) && !defined(__CUDACC__)
#define INN_UNROLL _Pragma("GCC unroll 64")
#else
#define INN_UNROLL
#endif

namespace inn {

using index_t = std::ptrdiff_t;

/// The arithmetic types a network can run in (FrEIA: float32 by default, float64 on request).
template <class T>
concept Scalar = std::same_as<T, float> || std::same_as<T, double>;

namespace detail {
template <class...>
inline constexpr bool always_false = false;
}  // namespace detail

}  // namespace inn
