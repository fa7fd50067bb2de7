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

} // namespace inn::nn::kernels
