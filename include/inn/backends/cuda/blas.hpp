#pragma once
// Dense products of the CUDA backend, behind one interface: cuBLAS under nvcc, Eigen on the
// host system (so the backend's logic is tested with the host's arithmetic).
//
// Batches are sample-major and row-major, as everywhere in inn; cuBLAS is column-major, so a
// (batch x k) row-major batch is its (k x batch) column-major matrix and Y = X Wᵀ becomes
// Yᶜ = Wᶜᵀ Xᶜ, with the leading dimensions being the batches' strides.
//
// A Linear layer's bias and a following ReLU are applied by the product itself where cuBLASLt
// offers the epilogue (epilogue_gemm); elsewhere (the host system, other activations, a shape
// or type cuBLASLt declines) the caller applies them in one element-wise pass.

#include <cstdint>
#include <type_traits>
#include <vector>

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

/// y = x wᵀ (+ bias) (then ReLU) as one cuBLASLt call with its epilogue: a plan (descriptor,
/// layouts, the algorithm cuBLASLt's heuristic picks) per batch, strides and alignments, made
/// on the first call of each and kept (no workspace: nothing is allocated on the device).
/// `run` returns false where there is no such plan (always on the host system); the caller then
/// multiplies with gemm_nt and applies the epilogue itself.
template <Scalar S> class epilogue_gemm {
  public:
    epilogue_gemm() = default;
    epilogue_gemm(epilogue_gemm&&) = default;
    epilogue_gemm& operator=(epilogue_gemm&&) = delete;
    epilogue_gemm(const epilogue_gemm&) = delete;
    ~epilogue_gemm() { clear(); }

    bool run(const context& ctx, index_t batch, index_t m, index_t n, const S* x, index_t ldx,
             const S* w, S* y, index_t ldy, const S* bias, bool relu) const {
#if INN_CUDA_DEVICE
        if (batch <= 0 || m <= 0 || n <= 0 || (!bias && !relu))
            return false;
        const key k{batch,           m,   n, ldx, ldy, alignment(x), alignment(w), alignment(y),
                    bias != nullptr, relu};
        const plan* p = find(k);
        if (!p)
            p = &make(ctx, k);
        if (!p->ok)
            return false;
        if (bias)
            check(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias,
                                                 sizeof(bias)),
                  "cublasLtMatmulDescSetAttribute");
        const S one = 1, zero = 0;
        check(cublasLtMatmul(ctx.blas_lt(), p->desc, &one, w, p->a, x, p->b, &zero, y, p->c, y,
                             p->c, &p->algo, nullptr, 0, ctx.stream()),
              "cublasLtMatmul");
        return true;
#else
        (void)ctx, (void)batch, (void)m, (void)n, (void)x, (void)ldx, (void)w, (void)y, (void)ldy;
        (void)bias, (void)relu;
        return false;
#endif
    }

  private:
#if INN_CUDA_DEVICE
    struct key {
        index_t batch, m, n, ldx, ldy;
        int align_x, align_w, align_y;
        bool bias, relu;
        bool operator==(const key&) const = default;
    };
    struct plan {
        key k;
        bool ok = false;
        cublasLtMatmulDesc_t desc{};
        cublasLtMatrixLayout_t a{}, b{}, c{};
        cublasLtMatmulAlgo_t algo{};
    };
    static constexpr std::size_t capacity = 32;

    // The largest power of two (up to 256) dividing the address, as cuBLASLt's preferences take.
    static int alignment(const void* p) {
        const auto v = reinterpret_cast<std::uintptr_t>(p);
        int a = 1;
        while (a < 256 && v % std::uintptr_t(2 * a) == 0)
            a *= 2;
        return a;
    }
    const plan* find(const key& k) const {
        for (const plan& p : plans_)
            if (p.k == k)
                return &p;
        return nullptr;
    }
    const plan& make(const context& ctx, const key& k) const {
        if (plans_.size() >= capacity)
            clear();
        constexpr bool single = std::is_same_v<S, float>;
        const cudaDataType_t type = single ? CUDA_R_32F : CUDA_R_64F;
        plan p{k};
        check(cublasLtMatmulDescCreate(&p.desc, single ? CUBLAS_COMPUTE_32F : CUBLAS_COMPUTE_64F,
                                       type),
              "cublasLtMatmulDescCreate");
        const cublasOperation_t t = CUBLAS_OP_T, nt = CUBLAS_OP_N;
        const cublasLtEpilogue_t epi =
            k.bias ? (k.relu ? CUBLASLT_EPILOGUE_RELU_BIAS : CUBLASLT_EPILOGUE_BIAS)
                   : CUBLASLT_EPILOGUE_RELU;
        check(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_TRANSA, &t, sizeof(t)),
              "cublasLtMatmulDescSetAttribute");
        check(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_TRANSB, &nt, sizeof(nt)),
              "cublasLtMatmulDescSetAttribute");
        check(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi,
                                             sizeof(epi)),
              "cublasLtMatmulDescSetAttribute");
        // Column-major: w is (n x m) with leading dimension n, transposed; x (n x batch); y
        // (m x batch).
        check(cublasLtMatrixLayoutCreate(&p.a, type, std::uint64_t(k.n), std::uint64_t(k.m),
                                         std::int64_t(k.n)),
              "cublasLtMatrixLayoutCreate");
        check(cublasLtMatrixLayoutCreate(&p.b, type, std::uint64_t(k.n), std::uint64_t(k.batch),
                                         std::int64_t(k.ldx)),
              "cublasLtMatrixLayoutCreate");
        check(cublasLtMatrixLayoutCreate(&p.c, type, std::uint64_t(k.m), std::uint64_t(k.batch),
                                         std::int64_t(k.ldy)),
              "cublasLtMatrixLayoutCreate");
        cublasLtMatmulPreference_t pref{};
        check(cublasLtMatmulPreferenceCreate(&pref), "cublasLtMatmulPreferenceCreate");
        const std::uint64_t workspace = 0;
        const std::uint32_t ax = std::uint32_t(k.align_x), aw = std::uint32_t(k.align_w),
                            ay = std::uint32_t(k.align_y);
        cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                             &workspace, sizeof(workspace));
        cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &aw,
                                             sizeof(aw));
        cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &ax,
                                             sizeof(ax));
        cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &ay,
                                             sizeof(ay));
        cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &ay,
                                             sizeof(ay));
        cublasLtMatmulHeuristicResult_t result{};
        int found = 0;
        // A declined combination (type, epilogue, alignment) is not an error: no plan.
        p.ok = cublasLtMatmulAlgoGetHeuristic(ctx.blas_lt(), p.desc, p.a, p.b, p.c, p.c, pref, 1,
                                              &result, &found) == CUBLAS_STATUS_SUCCESS &&
               found > 0 && result.state == CUBLAS_STATUS_SUCCESS;
        if (p.ok)
            p.algo = result.algo;
        cublasLtMatmulPreferenceDestroy(pref);
        plans_.push_back(p);
        return plans_.back();
    }
    void clear() const {
        for (const plan& p : plans_) {
            cublasLtMatrixLayoutDestroy(p.a);
            cublasLtMatrixLayoutDestroy(p.b);
            cublasLtMatrixLayoutDestroy(p.c);
            cublasLtMatmulDescDestroy(p.desc);
        }
        plans_.clear();
    }
    mutable std::vector<plan> plans_;
#else
    void clear() const {}
#endif
};

} // namespace inn::cuda::blas
