#pragma once
// Element-wise work: a functor `f(i)` called for every i in [0, n), through thrust, on the
// context's stream. The functor is written once (INN_HD) and runs as a CUDA kernel under nvcc
// and as a loop on the host system. No launch allocates (for_each needs no temporary storage).

#include <thrust/execution_policy.h>
#include <thrust/for_each.h>
#include <thrust/iterator/counting_iterator.h>

#include "../../core/config.hpp"
#include "device.hpp"

#if INN_CUDA_DEVICE
#include <thrust/system/cuda/execution_policy.h>
#else
#include <thrust/system/cpp/execution_policy.h>
#endif

namespace inn::cuda {

template <class F>
void for_each_index(const context& ctx, index_t n, F f) {
    if (n <= 0) return;
#if INN_CUDA_DEVICE
    thrust::for_each_n(thrust::cuda::par_nosync.on(ctx.stream()),
                       thrust::counting_iterator<index_t>(0), n, f);
#else
    (void)ctx;
    thrust::for_each_n(thrust::cpp::par, thrust::counting_iterator<index_t>(0), n, f);
#endif
}

}  // namespace inn::cuda
