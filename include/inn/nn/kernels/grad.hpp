#pragma once
// The products of the layers' backward passes (nn::Linear, nn::Conv2d):
//
//   * product       C = A B or C += A B through Eigen's GEMM, cut into blocks whose packed
//                   panels Eigen keeps on the stack: a backward pass allocates nothing;
//   * add_row_sums  b += the sum of a batch's rows (a bias gradient).

#include <algorithm>

#include <Eigen/Core>

#include "../../core/config.hpp"

namespace inn::nn::kernels {

/// C (m x n) = A (m x k) B (k x n), or C += A B with `Accumulate`, for Eigen matrix expressions
/// (maps, their transposes). Eigen packs a depth x rows panel of A and a depth x columns panel
/// of B per product and allocates them on the heap beyond EIGEN_STACK_ALLOCATION_LIMIT bytes;
/// blocks of at most `kc` along the depth and `mc` along rows and columns keep both under it.
/// (Eigen blocks a large product for its caches anyway, so the cut costs little: a block is
/// still a product of 128 x 128 x 128 or more.)
template <Scalar S, bool Accumulate, class CM, class AM, class BM>
void product(CM C, const AM& A, const BM& B) {
    constexpr index_t limit = EIGEN_STACK_ALLOCATION_LIMIT / index_t(sizeof(S));
    constexpr index_t kc = 128;
    constexpr index_t mc = std::max<index_t>(limit / kc, 1);
    static_assert(kc * mc * index_t(sizeof(S)) <= EIGEN_STACK_ALLOCATION_LIMIT || mc == 1);
    const index_t m = C.rows(), n = C.cols(), k = A.cols();
    if (m == 0 || n == 0)
        return;
    if constexpr (!Accumulate)
        if (k == 0) {
            C.setZero();
            return;
        }
    for (index_t k0 = 0; k0 < k; k0 += kc) {
        const index_t kb = std::min(kc, k - k0);
        for (index_t i0 = 0; i0 < m; i0 += mc) {
            const index_t mb = std::min(mc, m - i0);
            for (index_t j0 = 0; j0 < n; j0 += mc) {
                const index_t nb = std::min(mc, n - j0);
                auto c = C.block(i0, j0, mb, nb);
                if (!Accumulate && k0 == 0)
                    c.noalias() = A.block(i0, k0, mb, kb) * B.block(k0, j0, kb, nb);
                else
                    c.noalias() += A.block(i0, k0, mb, kb) * B.block(k0, j0, kb, nb);
            }
        }
    }
}

/// b[0, n) += Σ_r X[r][0, n) for `rows` rows `ldx` apart.
template <Scalar S> void add_row_sums(S* b, const S* X, index_t ldx, index_t rows, index_t n) {
    for (index_t r = 0; r < rows; ++r) {
        const S* x = X + r * ldx;
        for (index_t i = 0; i < n; ++i)
            b[i] += x[i];
    }
}

} // namespace inn::nn::kernels
