#pragma once
// The network's boundary: user data (Eigen matrices, xtensor arrays, raw spans) in and out.
//
// Every form is reduced to a strided batch (`batch_source` / `batch_sink`): where the first sample
// starts, the stride between samples and the layout of one sample (up to max_rank dimensions,
// each with its own stride), then copied into or out of the network's own buffers through those
// strides. So inputs and outputs may be row- or column-major, blocks, maps with any strides,
// xtensor views with an offset, transposes. Sizes are checked here, and a mismatch is a
// `data_error` that names the tensor.
//
// Destinations are checked in two steps, so that a network can check every one of them before it
// touches any: `plan_sink` / `plan_log_jac_det` only look (and throw), `bind_sink` /
// `bind_log_jac_det` then resize what the plan says may and must be resized and give the place to
// write. Only owning containers with dynamic extents are resized (Eigen Matrix/Array, std::vector,
// xt::xarray / xt::xtensor); anything else must already have exactly the right size.
//
// xtensor is recognised by its interface (`expression_tag`, `data()`, `strides()`, ...), so this
// header does not include it.

#include <algorithm>
#include <array>
#include <cstdlib>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include <Eigen/Core>

#include "errors.hpp"
#include "shape.hpp"
#include "tensor_view.hpp"

namespace inn {


/// Where the values of one sample lie: `rank` dimensions, outermost first, each `extent` values
/// `stride` scalars apart, visited in row-major order (the order of the network's buffers).
/// Dimensions that continue each other in memory are merged, so a contiguous sample is a single
/// dimension of stride 1.
struct sample_layout {
    int rank = 1;
    std::array<index_t, max_rank> extent{1};
    std::array<index_t, max_rank> stride{1};

    /// From extents and strides of up to max_rank dimensions, outermost first.
    static constexpr sample_layout of(std::span<const index_t> ext, std::span<const index_t> str) {
        sample_layout l;
        l.rank = 0;
        for (std::size_t k = 0; k < ext.size(); ++k) {
            if (ext[k] == 1)
                continue; // its stride never matters
            if (l.rank > 0 && l.stride[std::size_t(l.rank - 1)] == str[k] * ext[k]) {
                l.extent[std::size_t(l.rank - 1)] *= ext[k];
                l.stride[std::size_t(l.rank - 1)] = str[k];
            } else {
                l.extent[std::size_t(l.rank)] = ext[k];
                l.stride[std::size_t(l.rank)] = str[k];
                ++l.rank;
            }
        }
        if (l.rank == 0)
            l = sample_layout{}; // a single value
        return l;
    }
    /// `n` values `stride` apart.
    static constexpr sample_layout flat(index_t n, index_t stride) {
        const index_t e[1] = {n}, s[1] = {stride};
        return of(e, s);
    }

    constexpr index_t size() const {
        index_t n = 1;
        for (int k = 0; k < rank; ++k)
            n *= extent[std::size_t(k)];
        return n;
    }
    constexpr bool contiguous() const { return rank == 1 && stride[0] == 1; }

    /// Calls `f(value)` (a T&) for every value of the sample that starts at `base`, in row-major
    /// order.
    template <class T, class F> void for_each(T* base, F&& f) const {
        if (rank == 1) {
            const index_t s = stride[0];
            for (index_t i = 0; i < extent[0]; ++i)
                f(base[i * s]);
            return;
        }
        static_assert(max_rank == 4, "inn: sample_layout::for_each walks four dimensions");
        std::array<index_t, max_rank> e, s;
        e.fill(1);
        s.fill(0);
        const int pad = max_rank - rank;
        for (int k = 0; k < rank; ++k) {
            e[std::size_t(pad + k)] = extent[std::size_t(k)];
            s[std::size_t(pad + k)] = stride[std::size_t(k)];
        }
        for (index_t i0 = 0; i0 < e[0]; ++i0)
            for (index_t i1 = 0; i1 < e[1]; ++i1)
                for (index_t i2 = 0; i2 < e[2]; ++i2) {
                    T* p = base + i0 * s[0] + i1 * s[1] + i2 * s[2];
                    for (index_t i3 = 0; i3 < e[3]; ++i3)
                        f(p[i3 * s[3]]);
                }
    }
};

/// A batch in user memory, read-only: sample b starts at data + b * row_stride.
template <Scalar S> struct batch_source {
    const S* data = nullptr;
    index_t batch = 0;
    index_t row_stride = 0; // between samples
    sample_layout sample;   // within a sample

    const S* row(index_t b) const { return data + b * row_stride; }
    /// Calls `f(value)` for every value of sample b, in the network's order.
    template <class F> void for_each(index_t b, F&& f) const { sample.for_each(row(b), f); }
};

/// A batch in user memory to write.
template <Scalar S> struct batch_sink {
    S* data = nullptr;
    index_t row_stride = 0;
    sample_layout sample;
};

/// The outcome of checking a destination (`plan_sink`, `plan_log_jac_det`): where to write if it
/// fits as it is, or the shape to resize it to.
template <Scalar S> struct sink_plan {
    batch_sink<S> sink; // valid unless `resize`
    bool resize = false;
    int form = 0; // which accepted shape (see plan_sink)
    std::array<index_t, max_rank + 1> shape{};
    int rank = 0; // of `shape`
};

namespace detail {

template <class D> void eigen_dense_base(const Eigen::DenseBase<D>*);
/// Any Eigen dense object, also those that derive from another's DenseBase (VectorBlock).
template <class T>
concept EigenDense = requires(const T* t) {
    detail::eigen_dense_base(t);
};
/// Eigen Matrix / Array: own their storage and may be resized in their dynamic extents.
template <class T>
inline constexpr bool eigen_owning = std::is_base_of_v<Eigen::PlainObjectBase<T>, T>;

template <class T>
concept XtensorExpression = requires(const T& t) {
    typename T::expression_tag;
    t.shape();
    t.dimension();
};
/// An xtensor container or view with strided storage: the first value at data() + data_offset().
template <class T>
concept XtensorStrided = XtensorExpression<T> && requires(const T& t) {
    t.data();
    t.strides();
    t.data_offset();
};
template <class T>
concept XtensorResizing = requires(T& t, typename T::shape_type s) {
    t.resize(s);
};
/// xtensor_fixed: its `resize` is const and only checks the shape.
template <class T>
concept XtensorFixed = requires(const T& t, typename T::shape_type s) {
    t.resize(s);
};
/// xarray_adaptor / xtensor_adaptor: views of someone else's buffer.
template <class T>
concept XtensorAdaptor = requires(T& t, typename T::value_type* p) {
    t.reset_buffer(p, std::size_t(0));
};
/// xt::xarray and xt::xtensor: they own their storage and may change shape.
template <class T>
concept XtensorResizable =
    XtensorStrided<T> && XtensorResizing<T> && !XtensorFixed<T> && !XtensorAdaptor<T>;

template <class T> inline constexpr bool is_std_vector = false;
template <class T, class A> inline constexpr bool is_std_vector<std::vector<T, A>> = true;

[[noreturn]] inline void fail(std::string_view what, std::string_view name,
                              const std::string& problem) {
    throw data_error("inn: " + std::string(what) + " '" + std::string(name) + "' " + problem);
}

inline std::string sample_text(const dims& d) {
    return "per-sample shape " + to_string(d) + " (" + std::to_string(d.size()) +
           " values per sample)";
}

[[noreturn]] inline void size_mismatch(std::string_view what, std::string_view name,
                                       const std::string& got, const dims& expected) {
    fail(what, name, "has " + got + ", expected " + sample_text(expected));
}

/// (batch, *d) as text.
inline std::string batch_shape_text(index_t batch, const dims& d) {
    std::string s = "(" + std::to_string(batch);
    for (int k = 0; k < d.rank; ++k)
        s += ", " + std::to_string(d[k]);
    return s + ")";
}

template <class Shape> std::string shape_text(const Shape& sh, std::size_t rank) {
    std::string s = "(";
    for (std::size_t k = 0; k < rank; ++k)
        s += (k ? ", " : "") + std::to_string(sh[k]);
    return s + (rank == 1 ? ",)" : ")");
}

// Strides between rows and between columns of an Eigen object, in scalars.
template <class X> index_t eigen_row_stride(const X& x) {
    return X::IsRowMajor ? index_t(x.outerStride()) : index_t(x.innerStride());
}
template <class X> index_t eigen_col_stride(const X& x) {
    return X::IsRowMajor ? index_t(x.innerStride()) : index_t(x.outerStride());
}

/// Whether X owns its storage and may become rows x cols: only its dynamic extents change.
template <class X> constexpr bool eigen_resizable_to(index_t rows, index_t cols) {
    if constexpr (!eigen_owning<X>) {
        return false;
    } else {
        auto may = [](int fixed, int max, index_t n) {
            return (fixed == Eigen::Dynamic || fixed == n) && (max == Eigen::Dynamic || n <= max);
        };
        return may(X::RowsAtCompileTime, X::MaxRowsAtCompileTime, rows) &&
               may(X::ColsAtCompileTime, X::MaxColsAtCompileTime, cols);
    }
}

/// Which accepted shape an xtensor of shape `sh` (rank `r`) has: 1 = (batch, *d),
/// 2 = (batch, d.size()), 0 = neither. The batch extent is not checked.
template <class Shape> int xtensor_form(const Shape& sh, std::size_t r, const dims& d) {
    if (r == std::size_t(d.rank) + 1) {
        bool same = true;
        for (int k = 0; k < d.rank; ++k)
            same = same && index_t(sh[std::size_t(k) + 1]) == d[k];
        if (same)
            return 1;
    }
    if (r == 2 && index_t(sh[1]) == d.size())
        return 2;
    return 0;
}

/// The layout of one sample of an xtensor of the given form.
template <class Strides> sample_layout xtensor_sample(const Strides& st, int form, const dims& d) {
    if (form == 2)
        return sample_layout::flat(d.size(), index_t(st[1]));
    std::array<index_t, max_rank> e{}, s{};
    for (int k = 0; k < d.rank; ++k) {
        e[std::size_t(k)] = d[k];
        s[std::size_t(k)] = index_t(st[std::size_t(k) + 1]);
    }
    return sample_layout::of(std::span<const index_t>(e.data(), std::size_t(d.rank)),
                             std::span<const index_t>(s.data(), std::size_t(d.rank)));
}

/// Whether writing through these strides gives every value its own address. A sufficient test:
/// ordered by stride, each dimension steps over the whole extent of the smaller ones (true of
/// every layout that row- and column-major storage, blocks, maps and views produce). No
/// samples, no values: Eigen and xtensor give the dims of an empty container stride 0.
inline bool distinct_addresses(index_t batch, index_t row_stride, const sample_layout& l) {
    if (batch == 0)
        return true;
    std::array<std::pair<index_t, index_t>, max_rank + 1> dim{}; // (|stride|, extent)
    std::size_t n = 0;
    if (batch > 1)
        dim[n++] = {std::abs(row_stride), batch};
    for (int k = 0; k < l.rank; ++k)
        if (l.extent[std::size_t(k)] > 1)
            dim[n++] = {std::abs(l.stride[std::size_t(k)]), l.extent[std::size_t(k)]};
    // Insertion sort of at most five (std::sort here draws a false -Warray-bounds from GCC 12).
    for (std::size_t i = 1; i < n; ++i)
        for (std::size_t k = i; k > 0 && dim[k] < dim[k - 1]; --k)
            std::swap(dim[k], dim[k - 1]);
    index_t reach = 1;
    for (std::size_t k = 0; k < n; ++k) {
        if (dim[k].first < reach)
            return false;
        reach = dim[k].first * dim[k].second;
    }
    return true;
}

template <Scalar S>
void check_distinct(const batch_sink<S>& s, index_t batch, std::string_view what,
                    std::string_view name) {
    if (!distinct_addresses(batch, s.row_stride, s.sample))
        fail(what, name,
             "has strides under which values share memory (e.g. a stride of 0); writing would "
             "lose values");
}

// Where a batch goes in an Eigen destination of the right shape: samples as rows, or one sample
// as a column (form 1).
template <Scalar S, class X> batch_sink<S> eigen_sink(X& x, int form, index_t n) {
    if (form == 1)
        return {x.derived().data(), 0, sample_layout::flat(n, eigen_row_stride(x))};
    return {x.derived().data(), eigen_row_stride(x), sample_layout::flat(n, eigen_col_stride(x))};
}

template <Scalar S, class X> batch_sink<S> xtensor_sink(X& x, int form, const dims& d) {
    return {x.data() + x.data_offset(), index_t(x.strides()[0]),
            xtensor_sample(x.strides(), form, d)};
}

template <class X>
void xtensor_resize(X& x, const std::array<index_t, max_rank + 1>& shape, int rank) {
    typename X::shape_type sh{};
    if constexpr (requires { sh.resize(std::size_t()); })
        sh.resize(std::size_t(rank));
    for (int k = 0; k < rank; ++k)
        sh[std::size_t(k)] = static_cast<typename X::shape_type::value_type>(shape[std::size_t(k)]);
    x.resize(sh);
}

/// The rank an xtensor container of type X may be resized to: any (-1) or its static rank.
template <class X> constexpr int xtensor_static_rank() {
    using shape = typename X::shape_type;
    if constexpr (requires(shape s) { s.resize(std::size_t()); })
        return -1;
    else
        return int(std::tuple_size_v<shape>);
}

} // namespace detail

/// A read-only batch from user data of per-sample shape `d`: an Eigen dense object with storage
/// (samples as rows; or one sample as a column vector), an xtensor container or view of shape
/// (batch, *d) or (batch, d.size()), or a contiguous range of whole samples. Any strides.
template <Scalar S, class X>
batch_source<S> source_of(const X& x, const dims& d, std::string_view what, std::string_view name) {
    const index_t n = d.size();
    if constexpr (detail::EigenDense<X>) {
        if constexpr (!std::is_same_v<typename X::Scalar, S> ||
                      !bool(X::Flags & Eigen::DirectAccessBit)) {
            static_assert(std::is_same_v<typename X::Scalar, S>,
                          "inn: the Eigen input's scalar type differs from the network's Scalar");
            static_assert(bool(X::Flags & Eigen::DirectAccessBit),
                          "inn: pass an Eigen matrix, map or block (an object with .data()), not "
                          "an unevaluated expression; call .eval() first");
            return {};
        } else {
            if (x.cols() == n)
                return {x.derived().data(), index_t(x.rows()), detail::eigen_row_stride(x),
                        sample_layout::flat(n, detail::eigen_col_stride(x))};
            if (x.cols() == 1 && x.rows() == n) // a single sample given as a column vector
                return {x.derived().data(), 1, 0,
                        sample_layout::flat(n, detail::eigen_row_stride(x))};
            detail::size_mismatch(what, name,
                                  std::to_string(x.rows()) + "x" + std::to_string(x.cols()) +
                                      " values (batch x features)",
                                  d);
        }
    } else if constexpr (detail::XtensorExpression<X>) {
        if constexpr (!detail::XtensorStrided<X>) {
            static_assert(detail::always_false<X>,
                          "inn: this xtensor expression has no storage (e.g. a + b); evaluate it "
                          "first (xt::eval(...) or assign it to an xt::xarray)");
            return {};
        } else {
            static_assert(std::is_same_v<std::remove_cv_t<typename X::value_type>, S>,
                          "inn: the xtensor input's value type differs from the network's Scalar");
            const auto& sh = x.shape();
            const std::size_t rank = x.dimension();
            const int form = rank >= 1 ? detail::xtensor_form(sh, rank, d) : 0;
            if (form == 0)
                detail::size_mismatch(
                    what, name, "shape " + detail::shape_text(sh, rank) + " including the batch",
                    d);
            return {x.data() + x.data_offset(), index_t(sh[0]), index_t(x.strides()[0]),
                    detail::xtensor_sample(x.strides(), form, d)};
        }
    } else if constexpr (std::is_constructible_v<std::span<const S>, const X&>) {
        std::span<const S> s(x);
        if (n == 0 || s.size() % std::size_t(n) != 0)
            detail::size_mismatch(what, name, std::to_string(s.size()) + " values", d);
        return {s.data(), index_t(s.size()) / n, n, sample_layout::flat(n, 1)};
    } else {
        static_assert(detail::always_false<X>,
                      "inn: pass data as an Eigen matrix/map/block, an xtensor container or view, "
                      "or a contiguous range (std::span, std::vector, std::array) of the "
                      "network's Scalar");
        return {};
    }
}

/// Checks that `x` can take `batch` samples of shape `d`, changing nothing: either it has exactly
/// the right shape (and strides that give every value its own address), or it owns its storage
/// and may be resized to it. Throws `data_error` naming `what` `name` otherwise.
///
/// Accepted shapes: Eigen batch x d.size() (samples as rows, any storage order and strides), or
/// d.size() x 1 for a single sample; xtensor (batch, *d) or (batch, d.size()), any strides and
/// offset; contiguous ranges of batch * d.size() values.
template <Scalar S, class X>
sink_plan<S> plan_sink(X& x, index_t batch, const dims& d, std::string_view what,
                       std::string_view name) {
    static_assert(!std::is_const_v<X>, "inn: an output must be writable, not const");
    const index_t n = d.size();
    sink_plan<S> p;
    auto needs = [&] {
        return "a batch of " + std::to_string(batch) + " samples of " + detail::sample_text(d);
    };
    if constexpr (detail::EigenDense<X>) {
        static_assert(std::is_same_v<typename X::Scalar, S>,
                      "inn: the Eigen output's scalar type differs from the network's Scalar");
        static_assert(bool(X::Flags & Eigen::DirectAccessBit) && bool(X::Flags & Eigen::LvalueBit),
                      "inn: an Eigen output must be writable memory: a matrix, map or block");
        // One sample may be a column vector, as for inputs; otherwise samples are rows.
        p.form =
            n > 1 && batch == 1 && (X::ColsAtCompileTime == 1 || (x.cols() == 1 && x.rows() == n))
                ? 1
                : 0;
        const index_t rows = p.form == 1 ? n : batch, cols = p.form == 1 ? 1 : n;
        if (x.rows() == rows && x.cols() == cols) {
            p.sink = detail::eigen_sink<S>(x, p.form, n);
            detail::check_distinct(p.sink, batch, what, name);
        } else if (detail::eigen_resizable_to<X>(rows, cols)) {
            p.resize = true;
            p.shape = {rows, cols};
            p.rank = 2;
        } else {
            detail::fail(what, name,
                         "is " + std::to_string(x.rows()) + "x" + std::to_string(x.cols()) +
                             " and cannot be resized (a map, a block or a fixed size), but " +
                             needs() + " takes " + std::to_string(rows) + "x" +
                             std::to_string(cols));
        }
    } else if constexpr (detail::XtensorExpression<X>) {
        static_assert(detail::XtensorStrided<X>,
                      "inn: an xtensor output must have storage: an xt::xarray, xt::xtensor, an "
                      "adaptor or a view of one");
        static_assert(std::is_same_v<std::remove_cv_t<typename X::value_type>, S>,
                      "inn: the xtensor output's value type differs from the network's Scalar");
        static_assert(std::is_convertible_v<decltype(x.data()), S*>,
                      "inn: an xtensor output must be writable, not a view of const data");
        const auto& sh = x.shape();
        const std::size_t rank = x.dimension();
        p.form = rank >= 1 ? detail::xtensor_form(sh, rank, d) : 0;
        if (p.form != 0 && index_t(sh[0]) == batch) {
            p.sink = detail::xtensor_sink<S>(x, p.form, d);
            detail::check_distinct(p.sink, batch, what, name);
            return p;
        }
        if constexpr (detail::XtensorResizable<X>) {
            constexpr int r = detail::xtensor_static_rank<X>();
            if (r == -1 || r == d.rank + 1) {
                p.form = 1;
                p.rank = d.rank + 1;
                p.shape[0] = batch;
                for (int k = 0; k < d.rank; ++k)
                    p.shape[std::size_t(k) + 1] = d[k];
            } else if (r == 2) {
                p.form = 2;
                p.rank = 2;
                p.shape = {batch, n};
            }
            p.resize = p.rank > 0;
        }
        if (!p.resize)
            detail::fail(what, name,
                         "has shape " + detail::shape_text(sh, rank) +
                             (detail::XtensorResizable<X> ? " (a rank that cannot hold it)"
                                                          : " and cannot be resized (an adaptor, "
                                                            "a view or a fixed shape)") +
                             ", but " + needs() + " takes " + detail::batch_shape_text(batch, d) +
                             (d.rank > 1 ? " or (" + std::to_string(batch) + ", " +
                                               std::to_string(n) + ")"
                                         : std::string()));
    } else if constexpr (detail::is_std_vector<X>) {
        static_assert(std::is_same_v<typename X::value_type, S>,
                      "inn: the output vector's value type differs from the network's Scalar");
        if (index_t(x.size()) == batch * n) {
            p.sink = {x.data(), n, sample_layout::flat(n, 1)};
        } else {
            p.resize = true;
            p.shape = {batch * n};
            p.rank = 1;
        }
    } else if constexpr (std::is_constructible_v<std::span<S>, X&>) {
        std::span<S> s(x);
        if (index_t(s.size()) != batch * n)
            detail::fail(what, name,
                         "has " + std::to_string(s.size()) + " values and cannot be resized, but " +
                             needs() + " takes " + std::to_string(batch * n));
        p.sink = {s.data(), n, sample_layout::flat(n, 1)};
    } else {
        static_assert(detail::always_false<X>,
                      "inn: an output must be an Eigen matrix/map/block, an xtensor container or "
                      "view, a std::vector or a contiguous range (std::span, std::array) of the "
                      "network's Scalar");
    }
    return p;
}

/// Where to write into `x`, checked by `plan_sink` (with the same `batch` and `d`): resizes it
/// first if the plan says so. Throws nothing but a failed allocation.
template <Scalar S, class X>
batch_sink<S> bind_sink(X& x, const sink_plan<S>& p, index_t batch, const dims& d) {
    if (!p.resize)
        return p.sink;
    const index_t n = d.size();
    if constexpr (detail::EigenDense<X>) {
        if constexpr (detail::eigen_owning<X>)
            x.resize(p.shape[0], p.shape[1]);
        return detail::eigen_sink<S>(x, p.form, n);
    } else if constexpr (detail::XtensorExpression<X>) {
        if constexpr (detail::XtensorResizable<X>)
            detail::xtensor_resize(x, p.shape, p.rank);
        return detail::xtensor_sink<S>(x, p.form, d);
    } else if constexpr (detail::is_std_vector<X>) {
        x.resize(std::size_t(batch * n));
        return {x.data(), n, sample_layout::flat(n, 1)};
    } else {
        return p.sink; // never resized
    }
}

/// Checks that `l` can take the `batch` values of log|det J|, changing nothing. The network adds
/// into it in place, so it must be contiguous: resizable owning vectors (std::vector, Eigen
/// vectors of dynamic size, xt::xarray / xt::xtensor<S, 1>) or exactly `batch` contiguous values
/// (a span, std::array, a contiguous Eigen map or segment, an xtensor view of stride 1).
template <Scalar S, class L> sink_plan<S> plan_log_jac_det(L& l, index_t batch) {
    static_assert(!std::is_const_v<L>, "inn: log_jac_det must be writable, not const");
    sink_plan<S> p;
    p.shape = {batch};
    p.rank = 1;
    auto wrong_size = [&](const std::string& got) {
        throw data_error("inn: log_jac_det has " + got + " for a batch of " +
                         std::to_string(batch) + " (and cannot be resized)");
    };
    auto strided = [&](index_t stride) {
        throw data_error("inn: log_jac_det is strided (its entries are " + std::to_string(stride) +
                         " scalars apart); pass contiguous memory, e.g. an inn::vector");
    };
    if constexpr (detail::EigenDense<L>) {
        static_assert(std::is_same_v<typename L::Scalar, S>,
                      "inn: log_jac_det's scalar type differs from the network's Scalar");
        static_assert(bool(L::Flags & Eigen::DirectAccessBit) && bool(L::Flags & Eigen::LvalueBit),
                      "inn: log_jac_det must be writable memory: a vector, map or segment");
        if ((l.rows() == 1 || l.cols() == 1) && l.size() == batch) {
            const index_t stride =
                l.cols() == 1 ? detail::eigen_row_stride(l) : detail::eigen_col_stride(l);
            if (batch > 1 && stride != 1)
                strided(stride);
            p.sink.data = l.derived().data();
        } else if (L::IsVectorAtCompileTime &&
                   detail::eigen_resizable_to<L>(L::RowsAtCompileTime == 1 ? 1 : batch,
                                                 L::RowsAtCompileTime == 1 ? batch : 1)) {
            p.resize = true;
        } else {
            wrong_size(l.rows() == 1 || l.cols() == 1
                           ? std::to_string(l.size()) + " entries"
                           : std::to_string(l.rows()) + "x" + std::to_string(l.cols()) +
                                 " entries (not a vector)");
        }
    } else if constexpr (detail::XtensorExpression<L>) {
        static_assert(detail::XtensorStrided<L> && std::is_convertible_v<decltype(l.data()), S*>,
                      "inn: an xtensor log_jac_det must be writable storage of the network's "
                      "Scalar: an xt::xarray, xt::xtensor, an adaptor or a view of one");
        const std::size_t rank = l.dimension();
        if (rank == 1 && index_t(l.shape()[0]) == batch) {
            const index_t stride = index_t(l.strides()[0]);
            if (batch > 1 && stride != 1)
                strided(stride);
            p.sink.data = l.data() + l.data_offset();
        } else if (detail::XtensorResizable<L> && (detail::xtensor_static_rank<L>() == -1 ||
                                                   detail::xtensor_static_rank<L>() == 1)) {
            p.resize = true;
        } else {
            wrong_size("shape " + detail::shape_text(l.shape(), rank));
        }
    } else if constexpr (detail::is_std_vector<L>) {
        static_assert(std::is_same_v<typename L::value_type, S>,
                      "inn: log_jac_det's value type differs from the network's Scalar");
        if (index_t(l.size()) == batch)
            p.sink.data = l.data();
        else
            p.resize = true;
    } else if constexpr (std::is_constructible_v<std::span<S>, L&>) {
        std::span<S> s(l);
        if (index_t(s.size()) != batch)
            wrong_size(std::to_string(s.size()) + " entries");
        p.sink.data = s.data();
    } else {
        static_assert(detail::always_false<L>,
                      "inn: log_jac_det must be an Eigen vector, a std::vector, an xtensor or a "
                      "contiguous range (std::span, std::array) of the network's Scalar");
    }
    return p;
}

/// The `batch` contiguous values of log|det J| in `l`, checked by `plan_log_jac_det`: resizes it
/// first if the plan says so.
template <Scalar S, class L> S* bind_log_jac_det(L& l, const sink_plan<S>& p, index_t batch) {
    if (!p.resize)
        return p.sink.data;
    if constexpr (detail::EigenDense<L>) {
        if constexpr (detail::eigen_owning<L> && L::IsVectorAtCompileTime)
            l.resize(batch);
        return l.derived().data();
    } else if constexpr (detail::XtensorExpression<L>) {
        if constexpr (detail::XtensorResizable<L>)
            detail::xtensor_resize(l, p.shape, 1);
        return l.data() + l.data_offset();
    } else if constexpr (detail::is_std_vector<L>) {
        l.resize(std::size_t(batch));
        return l.data();
    } else {
        return p.sink.data; // never resized
    }
}

/// Copies a batch from user memory into a network buffer (`cols` = the sample's size).
template <Scalar S> void copy_in(const batch_source<S>& src, index_t cols, view<S> dst) {
    if (src.sample.contiguous()) { // the common case: plain copies of whole rows
        // Rows back to back on both sides: one block (a call per row of a few scalars is slow).
        if (src.row_stride == cols && dst.stride == cols) {
            std::copy(src.data, src.data + src.batch * cols, dst.data);
            return;
        }
        for (index_t b = 0; b < src.batch; ++b) {
            const S* r = src.row(b);
            std::copy(r, r + cols, dst.row(b));
        }
        return;
    }
    for (index_t b = 0; b < src.batch; ++b) {
        S* o = dst.row(b);
        src.sample.for_each(src.row(b), [&](const S& v) { *o++ = v; });
    }
}

/// Copies a batch from a network buffer into user memory.
template <Scalar S>
void copy_out(cview<S> src, index_t batch, index_t cols, const batch_sink<S>& dst) {
    if (dst.sample.contiguous()) {
        if (src.stride == cols && dst.row_stride == cols) {
            std::copy(src.data, src.data + batch * cols, dst.data);
            return;
        }
        for (index_t b = 0; b < batch; ++b) {
            const S* r = src.row(b);
            std::copy(r, r + cols, dst.data + b * dst.row_stride);
        }
        return;
    }
    for (index_t b = 0; b < batch; ++b) {
        const S* r = src.row(b);
        dst.sample.for_each(dst.data + b * dst.row_stride, [&](S& v) { v = *r++; });
    }
}

} // namespace inn
