#pragma once
// The one block of memory a network runs in: every buffer and all scratch, 64-byte aligned so
// vector kernels see the same alignment whatever the allocator returns.

#include <algorithm>
#include <cstdlib>
#include <memory>
#include <new>

#include "config.hpp"

namespace inn {

template <Scalar S>
class aligned_buffer {
public:
    static constexpr std::size_t alignment = 64;

    aligned_buffer() = default;
    aligned_buffer(aligned_buffer&&) noexcept = default;
    aligned_buffer& operator=(aligned_buffer&&) noexcept = default;
    // A copied network gets its own workspace of the same size.
    aligned_buffer(const aligned_buffer& other) { resize(other.size_); }
    aligned_buffer& operator=(const aligned_buffer& other) {
        if (this != &other) resize(other.size_);
        return *this;
    }

    S* data() { return data_.get(); }
    const S* data() const { return data_.get(); }
    index_t size() const { return size_; }

    /// Discards the contents; new memory is zero-initialised.
    void resize(index_t n) {
        std::size_t bytes = (std::size_t(n) * sizeof(S) + alignment - 1) / alignment * alignment;
        S* p = static_cast<S*>(std::aligned_alloc(alignment, bytes ? bytes : alignment));
        if (!p) throw std::bad_alloc();
        std::fill(p, p + n, S(0));
        data_.reset(p);
        size_ = n;
    }

private:
    struct free_deleter {
        void operator()(S* p) const { std::free(p); }
    };
    std::unique_ptr<S[], free_deleter> data_;
    index_t size_ = 0;
};

}  // namespace inn
