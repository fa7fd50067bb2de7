#pragma once
// Dense products of the CUDA backend, behind one interface: cuBLAS under nvcc, Eigen on the
// host system (so the backend's logic is tested with the host's arithmetic).
//
// Batches are sample-major and row-major, as everywhere in inn; cuBLAS is column-major, so a
// (batch x k) row-major batch is its (k x batch) column-major matrix and Y = X Wᵀ becomes
// Yᶜ = Wᶜᵀ Xᶜ, with the leading dimensions being the batches' strides.

#include <type_traits>

#include <Eigen/Core>

#include "../../core/config.hpp"
#include "../../core/tensor_view.hpp"
#include "device.hpp"

namespace inn::cuda::blas {

/// y[b, o] = sum_k x[b, k] * w[o, k] (+ y[b, o] when `accumulate`), for b < batch, o < m,
/// k < n: a Linear layer's product (w is PyTorch's (out, in) weight, rows of n scalars).
template <Scalar S>
void gemm_nt(const context& ctx, index_t batch, index_t m, index_t n, const S* x, index_t ldx,
             const S* w, S* y, index_t ldy, bool accumulate = false) {
    if (batch <= 0 || m <= 0)
        return;
#if INN_CUDA_DEVICE
    const S one = 1, beta = accumulate ? S(1) : S(0);
    if constexpr (std::is_same_v<S, float>)
        check(cublasSgemm(ctx.blas(), CUBLAS_OP_T, CUBLAS_OP_N, int(m), int(batch), int(n), &one, w,
                          int(n), x, int(ldx), &beta, y, int(ldy)),
              "cublasSgemm");
    else
        check(cublasDgemm(ctx.blas(), CUBLAS_OP_T, CUBLAS_OP_N, int(m), int(batch), int(n), &one, w,
                          int(n), x, int(ldx), &beta, y, int(ldy)),
              "cublasDgemm");
#else
    (void)ctx;
    const auto X = cview<S>(x, ldx).matrix(batch, n);
    const Eigen::Map<const row_matrix<S>> W(w, m, n);
    auto Y = view<S>{y, ldy}.matrix(batch, m);
    if (n == 0) {
        if (!accumulate)
            Y.setZero();
    } else if (accumulate) {
        Y.noalias() += X * W.transpose();
    } else {
        Y.noalias() = X * W.transpose();
    }
#endif
}

} // namespace inn::cuda::blas
