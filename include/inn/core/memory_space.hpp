#pragma once
// Where the data of a view lives and how a batch is laid out there.
//
// A memory space is a tag type. `host` (CPU memory, Eigen kernels) is the default of every view,
// run_args and network; a backend adds its own (backends/cuda: `device`). A module runs in a
// space when it can be bound for it (core/module.hpp: `bind_in`), so a network for a space that
// one of its modules lacks is a compile error naming that module.

#include <concepts>
#include <string_view>

namespace inn {

/// CPU memory: the default space.
struct host {
    static constexpr std::string_view name = "host";
};

template <class T>
concept MemorySpace = requires {
    { T::name } -> std::convertible_to<std::string_view>;
};

/// How the rows of a batch are laid out. Sample-major (PyTorch's, and the host's): a sample's
/// scalars are contiguous, sample b starts at `data + b * stride`. Feature-major: scalar i of
/// every sample is contiguous, at `data + i * stride` — what coalesced GPU loads want.
enum class batch_layout { sample_major, feature_major };

/// What a call in a space needs besides its data: `Space::context` (a device's stream and library
/// handles), or nothing (the host). run_args carries a pointer to it.
struct no_context {};
template <class Space>
struct space_context {
    using type = no_context;
};
template <class Space>
    requires requires { typename Space::context; }
struct space_context<Space> {
    using type = typename Space::context;
};
template <class Space>
using space_context_t = typename space_context<Space>::type;

}  // namespace inn
