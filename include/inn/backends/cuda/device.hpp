#pragma once
// The CUDA backend's memory space and the context of its calls.
//
// `inn::cuda::device` is the memory space tag (core/memory_space.hpp) of data on the device.
// A call there needs a stream and cuBLAS handles: `inn::cuda::context`, which every
// run_args<S, device> carries. A network owns one context; calls are asynchronous with respect
// to the host on its stream, as cuBLAS and thrust calls are.

#include <stdexcept>
#include <string>
#include <string_view>

#include "../../core/tensor_view.hpp"
#include "config.hpp"

#if INN_CUDA_DEVICE
#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_runtime.h>
#endif

namespace inn::cuda {

/// A failed CUDA runtime or cuBLAS call (what the driver said).
struct cuda_error : std::runtime_error {
    using std::runtime_error::runtime_error;
};

#if INN_CUDA_DEVICE
using stream_t = cudaStream_t;

inline void check(cudaError_t e, const char* what) {
    if (e != cudaSuccess)
        throw cuda_error(std::string("inn::cuda: ") + what + ": " + cudaGetErrorString(e));
}
inline void check(cublasStatus_t e, const char* what) {
    if (e != CUBLAS_STATUS_SUCCESS)
        throw cuda_error(std::string("inn::cuda: ") + what + ": cuBLAS status " +
                         std::to_string(int(e)));
}
#else
/// On the host system there is no stream; calls complete before they return.
using stream_t = void*;
#endif

/// The stream of a network's calls and the library handles bound to it.
class context {
  public:
    /// Calls go to `stream`; without one, to a stream of the context's own (non-blocking, so
    /// that calls can be recorded as CUDA graphs, which the legacy default stream forbids).
    explicit context(stream_t stream = {}) : stream_(stream) {
#if INN_CUDA_DEVICE
        if (!stream_) {
            check(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "cudaStreamCreate");
            own_stream_ = true;
        }
        check(cublasCreate(&blas_), "cublasCreate");
        check(cublasSetStream(blas_, stream_), "cublasSetStream");
        check(cublasLtCreate(&blas_lt_), "cublasLtCreate");
#endif
    }
    context(const context&) = delete;
    context& operator=(const context&) = delete;
    ~context() {
#if INN_CUDA_DEVICE
        cublasLtDestroy(blas_lt_);
        cublasDestroy(blas_);
        if (own_stream_)
            cudaStreamDestroy(stream_);
#endif
    }

    stream_t stream() const { return stream_; }
    void set_stream(stream_t s) {
        stream_ = s;
#if INN_CUDA_DEVICE
        check(cublasSetStream(blas_, stream_), "cublasSetStream");
#endif
    }
    /// Whether dense layers apply their bias and a following ReLU in cuBLASLt's epilogue
    /// (blas::epilogue_gemm) rather than in a pass after the product. Off by default: not yet
    /// checked against the golden files on a GPU (docs/gpu.md); on the host system it changes
    /// nothing.
    void use_epilogues(bool on) { epilogues_ = on; }
    bool epilogues() const { return epilogues_; }

    /// Waits for everything queued on the stream.
    void synchronize() const {
#if INN_CUDA_DEVICE
        check(cudaStreamSynchronize(stream_), "cudaStreamSynchronize");
#endif
    }
#if INN_CUDA_DEVICE
    cublasHandle_t blas() const { return blas_; }
    /// cuBLASLt (products with an epilogue: blas.hpp); its calls take the stream explicitly.
    cublasLtHandle_t blas_lt() const { return blas_lt_; }
#endif

  private:
    stream_t stream_{};
    bool epilogues_ = false;
#if INN_CUDA_DEVICE
    cublasHandle_t blas_{};
    cublasLtHandle_t blas_lt_{};
    bool own_stream_ = false;
#endif
};

/// Data in device memory (GPU memory under nvcc, host memory on the host system).
struct device {
    static constexpr std::string_view name = "cuda";
    using context = cuda::context;
};

/// A batch in device memory: pointer and row stride (core/tensor_view.hpp).
template <Scalar S> using dview = inn::view<S, device>;
template <Scalar S> using dcview = inn::cview<S, device>;

} // namespace inn::cuda
