#pragma once
// The arguments of a network call as users write them:
//
//   net.forward(x)                                  one input
//   net.forward(inputs(x1, x2), conditions(c), false)   several inputs, conditions, jac = false
//   net.forward_into(x, outputs(z1, z2), log_jac_det, conditions(c))
//
// `inputs` and `conditions` are the same names that wire graph nodes (graph/node.hpp); this
// header reads them back out of a call's argument list.

#include <concepts>
#include <tuple>
#include <type_traits>

#include "node.hpp"

namespace inn {

namespace detail {
/// A type other than `Self` (a constructor template that is no copy constructor).
template <class U, class Self>
concept other_than = !std::same_as<std::remove_cvref_t<U>, Self>;
} // namespace detail

/// Output tensors for `forward_into` / `inverse_into` of a network with several of them:
/// objects (`outputs(z1, z2)`) or views written in the call (`outputs(z.leftCols(3),
/// z.rightCols(3))`, `xt::view(...)`), held by reference for the call - as `inputs` and
/// `conditions` are, so the argument list is not meant to outlive its statement.
template <class... T>
struct outputs {
    std::tuple<T&...> items;
    template <detail::other_than<outputs>... U>
        requires(sizeof...(U) == sizeof...(T))
    constexpr explicit outputs(U&&... t) : items(t...) {}
};
template <class... T>
outputs(T&&...) -> outputs<std::remove_reference_t<T>...>;

namespace detail {

template <class T>
inline constexpr bool is_inputs = false;
template <class... T>
inline constexpr bool is_inputs<inputs<T...>> = true;
template <class T>
inline constexpr bool is_conditions = false;
template <class... T>
inline constexpr bool is_conditions<conditions<T...>> = true;
template <class T>
inline constexpr bool is_outputs = false;
template <class... T>
inline constexpr bool is_outputs<outputs<T...>> = true;

/// The input tensors of a call as a tuple of references.
template <class X>
auto input_tuple(const X& x) {
    if constexpr (is_inputs<X>)
        return x.items;
    else
        return std::tuple<const X&>(x);
}

/// The output tensors of an `_into` call as a tuple of references.
template <class Out>
auto output_tuple(Out& out) {
    if constexpr (is_outputs<Out>)
        return out.items;
    else
        return std::tuple<Out&>(out);
}

/// The condition tensors among the trailing arguments (none: an empty tuple).
inline std::tuple<> condition_tuple() { return {}; }
template <class R, class... Rs>
auto condition_tuple(const R& r, const Rs&... rs) {
    if constexpr (is_conditions<R>)
        return r.items;
    else
        return condition_tuple(rs...);
}

/// The `jac` flag among the trailing arguments (default true).
template <class... Rest>
bool jac_flag(const Rest&... rest) {
    bool jac = true;
    (
        [&] {
            if constexpr (std::is_same_v<Rest, bool>) jac = rest;
        }(),
        ...);
    return jac;
}

template <class... Rest>
inline constexpr bool valid_trailing_arguments =
    ((is_conditions<Rest> || std::is_same_v<Rest, bool>) && ...) &&
    ((is_conditions<Rest> ? 1 : 0) + ... + 0) <= 1;

}  // namespace detail

}  // namespace inn
