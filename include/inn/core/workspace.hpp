#pragma once
// The one block of memory a network runs in: every buffer and all scratch, 64-byte aligned so
// vector kernels see the same alignment whatever the allocator returns.

#include <algorithm>

#include "aligned_vector.hpp"
#include "config.hpp"

namespace inn {

/// An aligned_vector whose copies get memory of the same size, not its contents: a copied
/// network gets its own workspace.
template <Scalar S>
class aligned_buffer {
public:
    static constexpr std::size_t alignment = aligned_vector<S>::alignment;

    aligned_buffer() = default;
    aligned_buffer(aligned_buffer&&) noexcept = default;
    aligned_buffer& operator=(aligned_buffer&&) noexcept = default;
    aligned_buffer(const aligned_buffer& other) { resize(other.size_); }
    aligned_buffer& operator=(const aligned_buffer& other) {
        if (this != &other) resize(other.size_);
        return *this;
    }

    S* data() { return memory_.data(); }
    const S* data() const { return memory_.data(); }
    index_t size() const { return size_; }

    /// Discards the contents; new memory is zero-initialised (and never null, even for n = 0).
    void resize(index_t n) {
        memory_.clear();
        memory_.resize(std::max<index_t>(n, 1));
        size_ = n;
    }

private:
    aligned_vector<S> memory_;
    index_t size_ = 0;
};

}  // namespace inn
