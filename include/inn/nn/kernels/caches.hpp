#pragma once
// The data caches of the CPU, which decide how the products walk their weights (gemm.hpp's
// one- and two-sample products, gemm_pick.hpp's candidate plans).

#if defined(__unix__) || defined(__APPLE__)
#include <unistd.h>
#endif

namespace inn::nn::kernels {

/// The data caches of the core the process started on (bytes), read once: glibc's sysconf,
/// with the common sizes where the system does not say.
struct cache_sizes {
    long l1d = 32 * 1024;
    long l2 = 1024 * 1024;
};
inline const cache_sizes& caches() {
    static const cache_sizes c = [] {
        cache_sizes r;
#if defined(_SC_LEVEL1_DCACHE_SIZE) && defined(_SC_LEVEL2_CACHE_SIZE)
        if (const long v = sysconf(_SC_LEVEL1_DCACHE_SIZE); v > 0)
            r.l1d = v;
        if (const long v = sysconf(_SC_LEVEL2_CACHE_SIZE); v > 0)
            r.l2 = v;
#endif
        return r;
    }();
    return c;
}

/// How the products of one or two samples walk a Linear layer's weights: `cached` (W fits in
/// half of L2) - tile_rows rows side by side, one sample after the other; `one_stream` - one
/// row after the other, both samples at once; `side_by_side` - tile_rows rows side by side (half
/// as many for both samples at once). The outputs are the same bits whatever the walk.
enum class weight_walk { cached, one_stream, side_by_side };

/// The walk this CPU reads weights from L3 or memory fastest with, read once. Intel's L2
/// streamer follows each 4 KiB page on its own and stops at its end, so rows read side by side
/// keep memory busy where one stream idles at every page (mnist-cinn at batch 1 on an Ice Lake
/// Xeon: 1.2-1.35x faster); AMD's prefetchers follow one long stream and lose track of eight
/// (EPYC Zen 4: one stream 1.3-1.4x faster, Zen 3 1.16x). Other CPUs get one stream.
inline weight_walk wide_weight_walk() {
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__CUDACC__)
    static const weight_walk w = [] {
        __builtin_cpu_init();
        return __builtin_cpu_is("intel") ? weight_walk::side_by_side : weight_walk::one_stream;
    }();
    return w;
#else
    return weight_walk::one_stream;
#endif
}

} // namespace inn::nn::kernels
