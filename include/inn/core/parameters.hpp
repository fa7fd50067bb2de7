#pragma once
// Parameters and buffers of modules, and the one way to reach them: `visit(visitor, prefix)`.
//
// Every module exposes its tensors to a visitor under its FrEIA state_dict name. Loading and
// saving (io/), counting (summary), initialising, gradients for optimisers and copies to a device
// are all visitors, so a module is written once and gains each of them for free.

#include <array>
#include <concepts>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "aligned_vector.hpp"
#include "tensor_view.hpp"

namespace inn {

/// The state_dict shape of a tensor (rank 0 = a scalar).
struct tensor_shape {
    int rank = 0;
    std::array<std::int64_t, 6> extent{};

    tensor_shape() = default;
    // Variadic rather than initializer_list: GCC 12 at -O2 misreports the latter's backing array
    // as uninitialised when a shape is built in a default member initialiser.
    template <std::integral... E>
        requires(sizeof...(E) >= 1 && sizeof...(E) <= 6)
    tensor_shape(E... e) : rank(int(sizeof...(E))), extent{std::int64_t(e)...} {}
    std::int64_t numel() const {
        std::int64_t n = 1;
        for (int i = 0; i < rank; ++i) n *= extent[static_cast<std::size_t>(i)];
        return n;
    }
    std::vector<std::int64_t> as_vector() const {
        return {extent.begin(), extent.begin() + rank};
    }
    friend bool operator==(const tensor_shape& a, const tensor_shape& b) {
        return a.as_vector() == b.as_vector();
    }
};

inline std::string to_string(const tensor_shape& s) {
    std::string r = "[";
    for (int i = 0; i < s.rank; ++i)
        r += (i ? ", " : "") + std::to_string(s.extent[static_cast<std::size_t>(i)]);
    return r + "]";
}

/// What a visitor sees of one state_dict entry. Exactly one of `real`, `integer`, `flag` is set.
template <Scalar S>
struct tensor_ref {
    S* real = nullptr;             // float parameters and buffers, in the network's Scalar
    std::int64_t* integer = nullptr;  // index buffers (permutations), int64 as in PyTorch
    bool* flag = nullptr;          // boolean state (ActNorm's is_initialized)
    tensor_shape shape;
    bool trainable = false;        // a learned parameter (requires_grad in PyTorch)
    S** grad_slot = nullptr;       // where the owner keeps its gradient pointer (trainable reals)
    void* device = nullptr;        // its storage in a backend's memory (then `real` is null)
    /// A weight [out, in] that products stream (Linear's, a soft permutation's) offers copies
    /// for them to read instead, which the network makes when its parameters change: bfloat16
    /// (network::use_bf16_weights; empty while that is off) and packed for the register tiles
    /// (nn::kernels::pack_weights; empty while a gradient is attached). Null for other tensors.
    std::vector<std::uint16_t>* bf16 = nullptr;
    aligned_vector<S>* packed = nullptr;
    /// A layer that reads a form made from several of its tensors (nn::Sequential's ReLU units,
    /// nn/kernels/relu_units.hpp) names, on one of them, the function that remakes that form
    /// from their values; the network calls it where it makes the copies above. Null otherwise.
    void (*remake)(void* owner) = nullptr;
    void* owner = nullptr;

    /// The gradient (numel values) while a trainer has attached one, else null.
    S* grad() const { return grad_slot ? *grad_slot : nullptr; }
};

/// Owned storage of one real tensor, aligned for Eigen, with its state_dict shape.
template <Scalar S>
struct parameter {
    vector<S> values;
    tensor_shape shape;
    bool trainable = true;
    /// The gradient (same size as `values`) while a trainer is attached: the trainer sets it
    /// through `ref().grad_slot`; a module's `backward` reads it as `args.grad_of(p)`. Not
    /// copied: a copied network has no gradient storage until a trainer gives it some.
    S* grad = nullptr;
    /// Whether products stream this weight (set by the layer that owns it), so that the
    /// network keeps copies of it for them (tensor_ref::bf16, tensor_ref::packed).
    bool streamed = false;
    std::vector<std::uint16_t> bf16;
    aligned_vector<S> packed;

    parameter() = default;
    explicit parameter(tensor_shape s, bool learned = true)
        : values(vector<S>::Zero(static_cast<index_t>(s.numel()))), shape(s), trainable(learned) {}
    parameter(const parameter& o)
        : values(o.values), shape(o.shape), trainable(o.trainable), streamed(o.streamed),
          bf16(o.bf16), packed(o.packed) {}
    parameter(parameter&& o) noexcept
        : values(std::move(o.values)), shape(o.shape), trainable(o.trainable),
          streamed(o.streamed), bf16(std::move(o.bf16)), packed(std::move(o.packed)) {}
    parameter& operator=(const parameter& o) {
        values = o.values;
        shape = o.shape;
        trainable = o.trainable;
        streamed = o.streamed;
        bf16 = o.bf16;
        packed = o.packed;
        return *this;
    }
    parameter& operator=(parameter&& o) noexcept {
        values = std::move(o.values);
        shape = o.shape;
        trainable = o.trainable;
        streamed = o.streamed;
        bf16 = std::move(o.bf16);
        packed = std::move(o.packed);
        return *this;
    }

    S* data() { return values.data(); }
    const S* data() const { return values.data(); }
    index_t size() const { return values.size(); }
    /// The tensor as a (rows x cols) row-major matrix, e.g. a Linear weight [out, in].
    Eigen::Map<const row_matrix<S>> matrix(index_t rows, index_t cols) const {
        return Eigen::Map<const row_matrix<S>>(values.data(), rows, cols);
    }
    Eigen::Map<row_matrix<S>> matrix(index_t rows, index_t cols) {
        return Eigen::Map<row_matrix<S>>(values.data(), rows, cols);
    }
    tensor_ref<S> ref() {
        return {values.data(), nullptr, nullptr, shape, trainable, &grad, nullptr,
                streamed ? &bf16 : nullptr, streamed ? &packed : nullptr};
    }
};

/// Owned int64 index buffer (PyTorch stores permutations as int64 parameters).
struct index_buffer {
    std::vector<std::int64_t> values;
    tensor_shape shape;

    index_buffer() = default;
    explicit index_buffer(std::int64_t n) : values(static_cast<std::size_t>(n)), shape{n} {}
    template <Scalar S>
    tensor_ref<S> ref() {
        return {nullptr, values.data(), nullptr, shape, false};
    }
};

}  // namespace inn
