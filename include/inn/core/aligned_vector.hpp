#pragma once
// A 64-byte aligned array that copies its contents (aligned_buffer, the workspace, does not):
// for data derived from parameters that vector kernels read whole rows of, such as packed
// weights.

#include <algorithm>
#include <cstdlib>
#include <memory>
#include <new>
#include <utility>

#include "config.hpp"

namespace inn {

template <Scalar S>
class aligned_vector {
public:
    static constexpr std::size_t alignment = 64;

    aligned_vector() = default;
    // A moved-from vector is empty: its size goes with the memory (a defaulted move would leave
    // size_ behind, and a later copy into it would skip the allocation).
    aligned_vector(aligned_vector&& other) noexcept
        : data_(std::move(other.data_)), size_(std::exchange(other.size_, 0)) {}
    aligned_vector& operator=(aligned_vector&& other) noexcept {
        data_ = std::move(other.data_);
        size_ = std::exchange(other.size_, 0);
        return *this;
    }
    aligned_vector(const aligned_vector& other) { *this = other; }
    aligned_vector& operator=(const aligned_vector& other) {
        if (this != &other) {
            resize(other.size_);
            std::copy_n(other.data(), other.size_, data());
        }
        return *this;
    }

    S* data() { return data_.get(); }
    const S* data() const { return data_.get(); }
    index_t size() const { return size_; }
    bool empty() const { return size_ == 0; }

    /// n elements, zero where new memory was needed; the contents kept where n is the size.
    void resize(index_t n) {
        if (n == size_) return;
        if (n == 0) return clear();
        const std::size_t bytes =
            (std::size_t(n) * sizeof(S) + alignment - 1) / alignment * alignment;
        S* p = static_cast<S*>(std::aligned_alloc(alignment, bytes));
        if (!p) throw std::bad_alloc();
        std::fill(p, p + n, S(0));
        data_.reset(p);
        size_ = n;
    }
    void clear() {
        data_.reset();
        size_ = 0;
    }

private:
    struct free_deleter {
        void operator()(S* p) const { std::free(p); }
    };
    std::unique_ptr<S[], free_deleter> data_;
    index_t size_ = 0;
};

}  // namespace inn
