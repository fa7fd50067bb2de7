#pragma once
// Device memory: an owning buffer and copies between host and device.
//
// The only allocations of the backend are these buffers, made when a network is built from its
// host twin, when parameters are uploaded and in reserve(); calls never allocate.

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <utility>
#include <vector>

#include "../../core/config.hpp"
#include "device.hpp"

namespace inn::cuda {

namespace detail {
inline std::atomic<long>& allocation_count() {
    static std::atomic<long> n{0};
    return n;
}
} // namespace detail

/// How many device buffers have been allocated so far in this process (the tests check that
/// calls after reserve() make none).
inline long device_allocations() { return detail::allocation_count().load(); }

/// `n` scalars of device memory (uninitialised); movable, not copyable.
template <class T> class device_buffer {
  public:
    device_buffer() = default;
    explicit device_buffer(index_t n) { resize(n); }
    device_buffer(const device_buffer&) = delete;
    device_buffer& operator=(const device_buffer&) = delete;
    device_buffer(device_buffer&& o) noexcept
        : data_(std::exchange(o.data_, nullptr)), size_(std::exchange(o.size_, 0)) {}
    device_buffer& operator=(device_buffer&& o) noexcept {
        if (this != &o) {
            release();
            data_ = std::exchange(o.data_, nullptr);
            size_ = std::exchange(o.size_, 0);
        }
        return *this;
    }
    ~device_buffer() { release(); }

    /// Replaces the memory by `n` new scalars (the old contents are lost).
    void resize(index_t n) {
        if (n == size_)
            return;
        release();
        if (n == 0)
            return;
        ++detail::allocation_count();
#if INN_CUDA_DEVICE
        void* p = nullptr;
        check(cudaMalloc(&p, std::size_t(n) * sizeof(T)), "cudaMalloc");
        data_ = static_cast<T*>(p);
#else
        data_ = new T[std::size_t(n)]();
#endif
        size_ = n;
    }

    T* data() { return data_; }
    const T* data() const { return data_; }
    index_t size() const { return size_; }

  private:
    void release() {
#if INN_CUDA_DEVICE
        if (data_)
            cudaFree(data_);
#else
        delete[] data_;
#endif
        data_ = nullptr;
        size_ = 0;
    }

    T* data_ = nullptr;
    index_t size_ = 0;
};

/// Copies `n` scalars host -> device on the context's stream (the host memory must stay valid
/// until the stream reaches the copy; pageable memory makes CUDA wait for it anyway).
template <class T> void copy_to_device(const context& ctx, const T* host, T* dev, index_t n) {
    if (n <= 0)
        return;
#if INN_CUDA_DEVICE
    check(cudaMemcpyAsync(dev, host, std::size_t(n) * sizeof(T), cudaMemcpyHostToDevice,
                          ctx.stream()),
          "cudaMemcpyAsync (to the device)");
#else
    (void)ctx;
    std::copy_n(host, n, dev);
#endif
}

/// Copies `n` scalars device -> host on the context's stream; synchronise before reading them.
template <class T> void copy_to_host(const context& ctx, const T* dev, T* host, index_t n) {
    if (n <= 0)
        return;
#if INN_CUDA_DEVICE
    check(cudaMemcpyAsync(host, dev, std::size_t(n) * sizeof(T), cudaMemcpyDeviceToHost,
                          ctx.stream()),
          "cudaMemcpyAsync (to the host)");
#else
    (void)ctx;
    std::copy_n(dev, n, host);
#endif
}

/// A 2-D copy of `rows` rows of `cols` scalars between two strided batches, both on the
/// device or (Kind) between host and device.
enum class copy_kind { host_to_device, device_to_host, device_to_device };
template <class T>
void copy_rows(const context& ctx, copy_kind kind, const T* src, index_t src_stride, T* dst,
               index_t dst_stride, index_t rows, index_t cols) {
    if (rows <= 0 || cols <= 0)
        return;
#if INN_CUDA_DEVICE
    const cudaMemcpyKind k = kind == copy_kind::host_to_device   ? cudaMemcpyHostToDevice
                             : kind == copy_kind::device_to_host ? cudaMemcpyDeviceToHost
                                                                 : cudaMemcpyDeviceToDevice;
    check(cudaMemcpy2DAsync(dst, std::size_t(dst_stride) * sizeof(T), src,
                            std::size_t(src_stride) * sizeof(T), std::size_t(cols) * sizeof(T),
                            std::size_t(rows), k, ctx.stream()),
          "cudaMemcpy2DAsync");
#else
    (void)ctx;
    (void)kind;
    for (index_t r = 0; r < rows; ++r)
        std::copy_n(src + r * src_stride, cols, dst + r * dst_stride);
#endif
}

/// A device copy of a host array.
template <class T> device_buffer<T> upload(const context& ctx, const T* host, index_t n) {
    device_buffer<T> d(n);
    copy_to_device(ctx, host, d.data(), n);
    return d;
}

} // namespace inn::cuda
