#pragma once
// CUDA graphs: a network call recorded once per kind of call (direction, batch, log-det wanted,
// the caller's pointers and strides) and replayed as one launch: the copies in, every module,
// the copies out. Every buffer is fixed once reserved and every launch is known in advance, so
// a recording stays valid until the buffers move (reserve grows them) or parameters are
// uploaded again (some are kernel arguments); the network then forgets its recordings. A call
// with new pointers runs directly and is recorded for next time (at most `capacity`
// recordings are kept). On the host system there is nothing to record: calls run as they are.

#include <array>
#include <cstdint>
#include <vector>

#include "device.hpp"

namespace inn::cuda {

template <std::size_t N> class graph_cache {
  public:
    using key_type = std::array<std::intptr_t, N>;
    static constexpr std::size_t capacity = 16;

    graph_cache() = default;
    graph_cache(const graph_cache&) = delete;
    graph_cache& operator=(const graph_cache&) = delete;
    ~graph_cache() { clear(); }

    /// Replays the recording for `key` on `stream` and returns true, or returns false when there
    /// is none.
    bool replay(const context& ctx, const key_type& key) const {
#if INN_CUDA_DEVICE
        for (const entry& e : entries_)
            if (e.key == key) {
                check(cudaGraphLaunch(e.exec, ctx.stream()), "cudaGraphLaunch");
                return true;
            }
#else
        (void)ctx;
        (void)key;
#endif
        return false;
    }

    /// Records what `work()` queues on the context's stream as the recording for `key` (nothing
    /// runs while recording). Where recording is impossible (the legacy default stream), it
    /// records nothing and calls keep running directly.
    template <class Work> void record(const context& ctx, const key_type& key, Work&& work) {
#if INN_CUDA_DEVICE
        if (ctx.stream() == nullptr)
            return;
        if (entries_.size() >= capacity)
            clear();
        cudaGraph_t graph = nullptr;
        check(cudaStreamBeginCapture(ctx.stream(), cudaStreamCaptureModeThreadLocal),
              "cudaStreamBeginCapture");
        try {
            work();
        } catch (...) {
            cudaStreamEndCapture(ctx.stream(), &graph);
            if (graph)
                cudaGraphDestroy(graph);
            throw;
        }
        check(cudaStreamEndCapture(ctx.stream(), &graph), "cudaStreamEndCapture");
        cudaGraphExec_t exec = nullptr;
        const cudaError_t e = cudaGraphInstantiate(&exec, graph, 0);
        cudaGraphDestroy(graph);
        check(e, "cudaGraphInstantiate");
        entries_.push_back({key, exec});
#else
        (void)ctx;
        (void)key;
        (void)work;
#endif
    }

    void clear() {
#if INN_CUDA_DEVICE
        for (const entry& e : entries_)
            cudaGraphExecDestroy(e.exec);
#endif
        entries_.clear();
    }

  private:
    struct entry {
        key_type key;
#if INN_CUDA_DEVICE
        cudaGraphExec_t exec;
#endif
    };
    std::vector<entry> entries_;
};

} // namespace inn::cuda
