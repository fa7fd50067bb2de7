#pragma once
// The vector targets of the dense kernels that this build and CPU can run
// (nn/kernels/targets.hpp), for tests that run a kernel on each: limit_vector_bytes makes the
// process run as a machine with narrower vectors would.

#include <inn/nn/kernels/targets.hpp>

#include <vector>

namespace inn::test {

/// The distinct targets, widest first; the cap is lifted again when this goes.
struct vector_targets {
    std::vector<int> bytes;
    vector_targets() {
        for (int b : {64, 32, 16}) {
            nn::kernels::limit_vector_bytes(b);
            const int got = nn::kernels::vector_target_bytes();
            if (bytes.empty() || bytes.back() != got)
                bytes.push_back(got);
        }
        nn::kernels::limit_vector_bytes(64);
    }
    vector_targets(const vector_targets&) = delete;
    ~vector_targets() { nn::kernels::limit_vector_bytes(64); }
    /// Whether the target of `b` bytes contracts multiply-adds: every dispatched one does, the
    /// build's own where it has FMA.
    static bool fma([[maybe_unused]] int b) {
#if defined(__FMA__)
        return true;
#else
        return b != nn::kernels::build_vector_bytes;
#endif
    }
};

} // namespace inn::test
