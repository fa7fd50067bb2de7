#pragma once
// Batched data as modules see it: `batch` samples, each of a fixed number of scalars, in one
// memory space. Sample-major (the default, PyTorch's layout): a sample's scalars are contiguous
// (channels first), samples `stride` scalars apart. A view of a channel range of a batch
// (FrEIA's `x[:, a:b]`) is the same view shifted by `a * spatial` with the same stride:
// splitting along channels never copies. Feature-major views are the transpose (see
// core/memory_space.hpp).

#include <Eigen/Core>

#include "config.hpp"
#include "memory_space.hpp"

namespace inn {

template <Scalar S>
using row_matrix = Eigen::Matrix<S, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <Scalar S>
using vector = Eigen::Matrix<S, Eigen::Dynamic, 1>;

template <Scalar S>
using matrix_map = Eigen::Map<row_matrix<S>, Eigen::Unaligned, Eigen::OuterStride<>>;
template <Scalar S>
using const_matrix_map = Eigen::Map<const row_matrix<S>, Eigen::Unaligned, Eigen::OuterStride<>>;

/// A writable batch.
template <Scalar S, MemorySpace Space = host, batch_layout Layout = batch_layout::sample_major>
struct view {
    using space = Space;
    static constexpr batch_layout layout = Layout;

    S* data = nullptr;
    index_t stride = 0;  // between samples (sample-major) or between features (feature-major)

    /// Scalars [offset, offset + n) of every sample (n is the caller's business).
    constexpr view shifted(index_t offset) const {
        if constexpr (Layout == batch_layout::sample_major)
            return {data + offset, stride};
        else
            return {data + offset * stride, stride};
    }
    /// Sample b (host, sample-major).
    S* row(index_t b) const
        requires std::same_as<Space, host> && (Layout == batch_layout::sample_major)
    {
        return data + b * stride;
    }
    /// The batch as a (batch x cols) row-major Eigen map (host, sample-major).
    matrix_map<S> matrix(index_t batch, index_t cols) const
        requires std::same_as<Space, host> && (Layout == batch_layout::sample_major)
    {
        return matrix_map<S>(data, batch, cols, Eigen::OuterStride<>(stride));
    }
};

/// A read-only batch.
template <Scalar S, MemorySpace Space = host, batch_layout Layout = batch_layout::sample_major>
struct cview {
    using space = Space;
    static constexpr batch_layout layout = Layout;

    const S* data = nullptr;
    index_t stride = 0;

    constexpr cview() = default;
    constexpr cview(const S* d, index_t s) : data(d), stride(s) {}
    constexpr cview(view<S, Space, Layout> v) : data(v.data), stride(v.stride) {}

    constexpr cview shifted(index_t offset) const {
        if constexpr (Layout == batch_layout::sample_major)
            return {data + offset, stride};
        else
            return {data + offset * stride, stride};
    }
    const S* row(index_t b) const
        requires std::same_as<Space, host> && (Layout == batch_layout::sample_major)
    {
        return data + b * stride;
    }
    const_matrix_map<S> matrix(index_t batch, index_t cols) const
        requires std::same_as<Space, host> && (Layout == batch_layout::sample_major)
    {
        return const_matrix_map<S>(data, batch, cols, Eigen::OuterStride<>(stride));
    }
};

}  // namespace inn
