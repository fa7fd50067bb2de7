#pragma once
// The products of the layers' backward passes (nn::Linear, nn::Conv2d):
//
//   * product       C = A B or C += A B through Eigen's GEMM for any Eigen expressions, cut
//                   into blocks whose packed panels Eigen keeps on the stack (a backward pass
//                   allocates nothing); Eigen's vectors are the build's, so a baseline x86-64
//                   package runs these on SSE2;
//   * matmul        C = A B or C += A B, B row-major and A either way round: the products of
//                   Linear's backward pass and of the soft permutations', through the blocked
//                   register tile on the widest target with FMA (kernels/vector/gemm.ipp),
//                   else through `product`;
//   * add_row_sums  b += the sum of a batch's rows (a bias gradient).

#include <algorithm>

#include <Eigen/Core>

#include "../../core/config.hpp"
#include "switches.hpp"
#include "targets.hpp"

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

/// C (m x n, row-major, `ldc` apart) = A B, or C += A B with `Accumulate`, B (k x n) row-major
/// (`ldb` apart); A (m x k) row-major (`lda` apart) or, with `ATransposed`, given as its
/// transpose (k x m row-major, `lda` apart: e.g. Aᵀ B with A a batch of rows).
///
/// On a target with FMA (AVX2 or AVX-512, the build's own or one picked at run time), the
/// blocked register tile (kernels/vector/gemm.ipp): each output one chain of multiply-adds
/// over k in order from C's first value, the same bits on either width (the products of a
/// mnist-cinn block's backward pass at batch 128: 4.6-4.9 ms against Eigen's 5.6 on an AMD EPYC,
/// docs/performance.md). Where the widest target has 16-byte vectors (baseline x86-64 without
/// AVX2, other architectures), and with the benchmarks' `gemm` switch off, Eigen's GEMM
/// (`product`).
template <Scalar S, bool Accumulate, bool ATransposed = false>
void matmul(S* C, index_t ldc, const S* A, index_t lda, const S* B, index_t ldb, index_t m,
            index_t n, index_t k) {
    if (m == 0 || n == 0)
        return;
    bool eigen_gemm = vector_target_bytes() < 32;
    if constexpr (switchable)
        eigen_gemm = eigen_gemm || !tuning().gemm;
    if (eigen_gemm) {
        using rmat = Eigen::Matrix<S, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
        using stride = Eigen::OuterStride<>;
        Eigen::Map<rmat, 0, stride> c(C, m, n, stride(ldc));
        const Eigen::Map<const rmat, 0, stride> b(B, k, n, stride(ldb));
        if constexpr (ATransposed)
            product<S, Accumulate>(
                c, Eigen::Map<const rmat, 0, stride>(A, k, m, stride(lda)).transpose(), b);
        else
            product<S, Accumulate>(c, Eigen::Map<const rmat, 0, stride>(A, m, k, stride(lda)), b);
        return;
    }
    dispatch([&](auto target) {
        matmul_run<S, ATransposed, Accumulate>(target, C, ldc, A, lda, B, ldb, m, n, k);
        return true;
    });
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
