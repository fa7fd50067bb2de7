#pragma once
// Standard normal samples, e.g. latents to push through a trained flow's inverse:
//
//   auto z = inn::data::randn(1000, 2, g);          // 1000 x 2 floats, as torch.randn(1000, 2)
//   auto [x, ljd] = net.inverse(z);
//
// Drawn like torch.randn(rows, cols) from the generator (generator::fill_normal: the same
// number of raw draws as PyTorch, and the values of its portable kernel).

#include <cstddef>
#include <string>

#include "../core/errors.hpp"
#include "../core/random.hpp"
#include "../core/tensor_view.hpp"

namespace inn::data {

/// A rows x cols row-major matrix of N(0, 1) values. data_error for negative sizes.
template <Scalar S = float>
row_matrix<S> randn(index_t rows, index_t cols, generator& g) {
    if (rows < 0 || cols < 0)
        throw data_error("inn: randn: negative size " + std::to_string(rows) + " x " +
                         std::to_string(cols));
    row_matrix<S> z(rows, cols);
    g.fill_normal(z.data(), std::size_t(rows * cols), S(0), S(1));
    return z;
}

}  // namespace inn::data
