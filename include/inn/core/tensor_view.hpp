#pragma once
// Batched data as modules see it: `batch` rows of one sample each, a sample's scalars contiguous
// (row-major, channels first, as PyTorch lays them out), rows `stride` scalars apart. A view of a
// channel range of a batch (FrEIA's `x[:, a:b]`) is the same view shifted by `a * spatial` with
// the same stride: splitting along channels never copies.

#include <Eigen/Core>

#include "config.hpp"

namespace inn {

template <Scalar S>
using row_matrix = Eigen::Matrix<S, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <Scalar S>
using vector = Eigen::Matrix<S, Eigen::Dynamic, 1>;

template <Scalar S>
using matrix_map = Eigen::Map<row_matrix<S>, Eigen::Unaligned, Eigen::OuterStride<>>;
template <Scalar S>
using const_matrix_map = Eigen::Map<const row_matrix<S>, Eigen::Unaligned, Eigen::OuterStride<>>;

/// A writable batch: row b starts at data + b * stride.
template <Scalar S>
struct view {
    S* data = nullptr;
    index_t stride = 0;

    /// The columns [offset, offset + n) of every row (n is the caller's business).
    constexpr view shifted(index_t offset) const { return {data + offset, stride}; }
    S* row(index_t b) const { return data + b * stride; }
    /// The batch as a (batch x cols) row-major Eigen map.
    matrix_map<S> matrix(index_t batch, index_t cols) const {
        return matrix_map<S>(data, batch, cols, Eigen::OuterStride<>(stride));
    }
};

/// A read-only batch.
template <Scalar S>
struct cview {
    const S* data = nullptr;
    index_t stride = 0;

    constexpr cview() = default;
    constexpr cview(const S* d, index_t s) : data(d), stride(s) {}
    constexpr cview(view<S> v) : data(v.data), stride(v.stride) {}

    constexpr cview shifted(index_t offset) const { return {data + offset, stride}; }
    const S* row(index_t b) const { return data + b * stride; }
    const_matrix_map<S> matrix(index_t batch, index_t cols) const {
        return const_matrix_map<S>(data, batch, cols, Eigen::OuterStride<>(stride));
    }
};

}  // namespace inn
