#pragma once
// Shapes of one sample (no batch dimension), channels first as in PyTorch.
//
// Two forms of one concept: `dims` is a constexpr value that the graph planner computes with
// (it can be stored in arrays, compared, passed to constexpr functions and used as a template
// argument), `Shape<C, H, W>` is the type users write. `shape_of<d>` converts back.

#include <array>
#include <ostream>
#include <string>
#include <utility>

#include "config.hpp"

namespace inn {

inline constexpr int max_rank = 4;  // (C), (C, L), (C, H, W), (C, D, H, W): FrEIA's 1-4D data

/// A per-sample shape as a value.
struct dims {
    int rank = 0;
    int extent[max_rank] = {};

    constexpr int operator[](int i) const { return extent[i]; }
    /// Number of scalars of one sample.
    constexpr index_t size() const {
        index_t n = 1;
        for (int i = 0; i < rank; ++i) n *= extent[i];
        return n;
    }
    constexpr int channels() const { return rank > 0 ? extent[0] : 1; }
    /// Product of the non-channel extents ("n_pix" in FrEIA).
    constexpr index_t spatial_size() const {
        index_t n = 1;
        for (int i = 1; i < rank; ++i) n *= extent[i];
        return n;
    }
    /// The same shape with dimension `d` replaced by `extent`.
    constexpr dims with(int d, int value) const {
        dims r = *this;
        r.extent[d] = value;
        return r;
    }
    friend constexpr bool operator==(const dims&, const dims&) = default;
};

constexpr dims make_dims(std::initializer_list<int> e) {
    dims d;
    for (int v : e) d.extent[d.rank++] = v;
    return d;
}

inline std::string to_string(const dims& d) {
    std::string s = "(";
    for (int i = 0; i < d.rank; ++i) s += (i ? ", " : "") + std::to_string(d.extent[i]);
    return s + (d.rank == 1 ? ",)" : ")");
}

inline std::ostream& operator<<(std::ostream& os, const dims& d) { return os << to_string(d); }

namespace detail {
// FrEIA declares an index condition (GaussianMixtureModel's i) with dims (0,); here every
// condition is a tensor of the network's scalar type, an index one value per sample.
template <int... Extent>
inline constexpr bool freia_index_shape = sizeof...(Extent) == 1 && ((Extent == 0) && ...);
}  // namespace detail

/// The shape of one sample as a type: `Shape<2>`, `Shape<3, 32, 32>`.
template <int... Extent>
struct Shape {
    static_assert(sizeof...(Extent) >= 1, "inn: a Shape needs at least one dimension");
    static_assert(sizeof...(Extent) <= max_rank, "inn: Shapes of rank above 4 are not supported");
    static_assert(!detail::freia_index_shape<Extent...>,
                  "inn: Shape<0> holds no values; where FrEIA declares a condition with dims (0,) "
                  "(GaussianMixtureModel's component index), use Shape<1>: one index per sample");
    static_assert(detail::freia_index_shape<Extent...> || ((Extent > 0) && ...),
                  "inn: every extent of a Shape must be positive");

    // (Shape<0> stands in as Shape<1>, so that its message is the only error.)
    static constexpr dims value = detail::freia_index_shape<Extent...>
                                      ? dims{1, {1}}
                                      : dims{sizeof...(Extent), {Extent...}};
    static constexpr int rank = sizeof...(Extent);
    static constexpr index_t size = value.size();

    constexpr operator dims() const { return value; }
};

template <int... A, int... B>
constexpr bool operator==(Shape<A...>, Shape<B...>) {
    return Shape<A...>::value == Shape<B...>::value;
}

template <class T>
inline constexpr bool is_shape = false;
template <int... E>
inline constexpr bool is_shape<Shape<E...>> = true;

template <class T>
concept ShapeType = is_shape<T>;

namespace detail {
template <dims D, class Seq = std::make_index_sequence<std::size_t(D.rank)>>
struct shape_of_t;
template <dims D, std::size_t... I>
struct shape_of_t<D, std::index_sequence<I...>> {
    using type = Shape<D.extent[I]...>;
};
}  // namespace detail

/// The `Shape<...>` type of a `dims` value.
template <dims D>
using shape_of = typename detail::shape_of_t<D>::type;

}  // namespace inn
