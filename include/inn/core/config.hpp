#pragma once
// Basic vocabulary shared by every header: index type, scalar concept.

#include <concepts>
#include <cstddef>

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
