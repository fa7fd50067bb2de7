#pragma once
// The network's boundary: user data (Eigen matrices, xtensor arrays, raw spans) in and out.
//
// Every form is reduced to a strided batch (`batch_source` / `batch_sink`) and copied into or out
// of the network's own buffers, so inputs may be row- or column-major and outputs may be any
// writable layout. Sizes are checked here, once per call, and a mismatch is an exception that
// names the input.

#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>

#include <Eigen/Core>

#include "errors.hpp"
#include "shape.hpp"
#include "tensor_view.hpp"

namespace inn {

template <Scalar S> struct batch_source {
    const S* data = nullptr;
    index_t batch = 0;
    index_t row_stride = 0; // between samples
    index_t col_stride = 1; // between the scalars of one sample
};

template <Scalar S> struct batch_sink {
    S* data = nullptr;
    index_t row_stride = 0;
    index_t col_stride = 1;
};

namespace detail {

[[noreturn]] inline void size_mismatch(std::string_view what, std::string_view name,
                                       const std::string& got, const dims& expected) {
    throw data_error("inn: " + std::string(what) + " '" + std::string(name) + "' has " + got +
                     ", expected per-sample shape " + to_string(expected) + " (" +
                     std::to_string(expected.size()) + " values per sample)");
}

template <class T>
concept EigenDense = std::is_base_of_v<Eigen::DenseBase<T>, T>;

template <class T>
concept XtensorLike = requires(const T& t) {
    t.data();
    t.shape();
    t.strides();
    t.dimension();
};

} // namespace detail

/// A read-only batch from user data of per-sample shape `d`.
template <Scalar S, class X>
batch_source<S> source_of(const X& x, const dims& d, std::string_view what, std::string_view name) {
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
            if (x.cols() != d.size() && !(x.rows() == d.size() && x.cols() == 1 && d.size() > 1))
                detail::size_mismatch(what, name,
                                      std::to_string(x.rows()) + "x" + std::to_string(x.cols()) +
                                          " values (batch x features)",
                                      d);
            if (x.cols() != d.size()) // a single sample given as a column vector
                return {x.derived().data(), 1, x.size(), x.innerStride()};
            index_t rs = X::IsRowMajor ? x.outerStride() : x.innerStride();
            index_t cs = X::IsRowMajor ? x.innerStride() : x.outerStride();
            return {x.derived().data(), x.rows(), rs, cs};
        }
    } else if constexpr (detail::XtensorLike<X>) {
        static_assert(std::is_same_v<std::remove_cv_t<typename X::value_type>, S>,
                      "inn: the xtensor input's value type differs from the network's Scalar");
        const auto& sh = x.shape();
        const auto& st = x.strides();
        std::size_t rank = x.dimension();
        bool ok = rank >= 1;
        if (ok && rank == 2 && static_cast<index_t>(sh[1]) == d.size()) {
            // (batch, features)
        } else {
            ok = ok && rank == static_cast<std::size_t>(d.rank) + 1;
            for (int k = 0; ok && k < d.rank; ++k)
                ok = static_cast<int>(sh[k + 1]) == d[k];
        }
        std::string got = "shape (";
        for (std::size_t k = 0; k < rank; ++k)
            got += (k ? ", " : "") + std::to_string(sh[k]);
        if (!ok)
            detail::size_mismatch(what, name, got + ") including the batch", d);
        // Per-sample values must be contiguous and row-major; the batch stride is free.
        index_t expect = 1;
        for (std::size_t k = rank; k-- > 1;) {
            if (sh[k] != 1 && static_cast<index_t>(st[k]) != expect)
                throw data_error("inn: " + std::string(what) + " '" + std::string(name) +
                                 "' is not row-major contiguous within a sample");
            expect *= static_cast<index_t>(sh[k]);
        }
        index_t batch = static_cast<index_t>(sh[0]);
        index_t rs = batch > 1 ? static_cast<index_t>(st[0]) : d.size();
        return {x.data(), batch, rs, 1};
    } else {
        std::span<const S> s(x);
        if (d.size() == 0 || s.size() % static_cast<std::size_t>(d.size()) != 0)
            detail::size_mismatch(what, name, std::to_string(s.size()) + " values", d);
        return {s.data(), static_cast<index_t>(s.size()) / d.size(), d.size(), 1};
    }
}

/// A writable batch in user memory for `batch` samples of shape `d`. Resizable Eigen objects are
/// resized (no allocation when the size already matches).
template <Scalar S, class X>
batch_sink<S> sink_of(X& x, index_t batch, const dims& d, std::string_view what,
                      std::string_view name) {
    if constexpr (detail::EigenDense<X>) {
        static_assert(std::is_same_v<typename X::Scalar, S>,
                      "inn: the Eigen output's scalar type differs from the network's Scalar");
        if constexpr (requires { x.resize(batch, d.size()); })
            if (x.rows() != batch || x.cols() != d.size())
                x.resize(batch, d.size());
        if (x.rows() != batch || x.cols() != d.size())
            detail::size_mismatch(what, name,
                                  std::to_string(x.rows()) + "x" + std::to_string(x.cols()) +
                                      " values, batch " + std::to_string(batch),
                                  d);
        index_t rs = X::IsRowMajor ? x.outerStride() : x.innerStride();
        index_t cs = X::IsRowMajor ? x.innerStride() : x.outerStride();
        return {x.derived().data(), rs, cs};
    } else if constexpr (detail::XtensorLike<X>) {
        if (static_cast<index_t>(x.size()) != batch * d.size() ||
            static_cast<index_t>(x.shape()[0]) != batch)
            detail::size_mismatch(what, name, std::to_string(x.size()) + " values", d);
        return {x.data(), d.size(), 1};
    } else {
        std::span<S> s(x);
        if (static_cast<index_t>(s.size()) != batch * d.size())
            detail::size_mismatch(what, name, std::to_string(s.size()) + " values", d);
        return {s.data(), d.size(), 1};
    }
}

template <Scalar S> void copy_in(const batch_source<S>& src, index_t cols, view<S> dst) {
    for (index_t b = 0; b < src.batch; ++b) {
        const S* r = src.data + b * src.row_stride;
        S* o = dst.row(b);
        if (src.col_stride == 1)
            std::copy(r, r + cols, o);
        else
            for (index_t k = 0; k < cols; ++k)
                o[k] = r[k * src.col_stride];
    }
}

template <Scalar S>
void copy_out(cview<S> src, index_t batch, index_t cols, const batch_sink<S>& dst) {
    for (index_t b = 0; b < batch; ++b) {
        const S* r = src.row(b);
        S* o = dst.data + b * dst.row_stride;
        if (dst.col_stride == 1)
            std::copy(r, r + cols, o);
        else
            for (index_t k = 0; k < cols; ++k)
                o[k * dst.col_stride] = r[k];
    }
}

} // namespace inn
