#pragma once
// The benchmark switches: what each kernel buys is measured by turning it off in the same binary
// (benchmarks/bench_common.hpp, --off=<switch>; benchmarks/compare_pytorch.py's ablations).
//
// They exist only where the benchmarks ask for them: a target compiled with
// INN_BENCHMARK_SWITCHES (benchmarks/CMakeLists.txt sets it on every benchmark) gets a
// process-wide mutable `tuning()`. Everywhere else every switch is the constant `true`, and the
// code behind `if constexpr (kernels::switchable)` - the slower paths kept only for measuring -
// is not even instantiated.
//
// One program must be compiled either with the macro in every translation unit or in none: the
// inline functions that read the switches differ between the two (an ODR violation otherwise).
// CMake sets it per target, so keep it that way (target_compile_definitions, never per file).

namespace inn::nn::kernels {

/// Whether the switches can be turned off at run time (INN_BENCHMARK_SWITCHES).
#if defined(INN_BENCHMARK_SWITCHES)
inline constexpr bool switchable = true;
#else
inline constexpr bool switchable = false;
#endif

/// All on by default. Each is read once per layer call. Off means: `gemm` - Eigen's GEMM for
/// the products of Linear layers and permutation matrices, forward and backward
/// (kernels::matmul); `conv` - im2col + Eigen's GEMM for
/// convolutions and their weight gradients; `mlp` - small subnets layer by layer instead of the
/// fused small_mlp; `fuse_activation` - bias and activation in separate passes over the output,
/// and Conv2d -> activation -> Conv2d layer by layer instead of as one conv_direct_chain;
/// `share_buffers` - one buffer per group of connections between modules, none shared by
/// lifetime; `views` - Flatten, Reshape, Split and Concat copy instead of being views (both read
/// by network::reserve, see graph/memory_plan.hpp); `fuse_coupling` - the element-wise tail of
/// an affine coupling (clamp, exp, multiply-add, log-det sum) pass by pass instead of in one;
/// `fuse_elementwise` - chains of element-wise modules (PermuteRandom, ActNorm, ...) module by
/// module instead of as one pass (read by network::reserve, see graph/fusion.hpp);
/// `pack_weights` - products of more than two samples read W as stored, never its packed copy
/// (gemm_nt_packed; the copies are still made); `weight_walk` - one or two samples read a W
/// larger than half of L2 (float weights) the other way than this CPU's pick (caches.hpp's
/// wide_weight_walk: one stream or rows side by side; same bits); `relu_units` - a small MLP of one
/// input and ReLU runs small_mlp instead of the linear pieces of kernels/relu_units.hpp.
#if defined(INN_BENCHMARK_SWITCHES)
struct switches {
    bool gemm = true;
    bool conv = true;
    bool mlp = true;
    bool fuse_activation = true;
    bool share_buffers = true;
    bool views = true;
    bool fuse_coupling = true;
    bool fuse_elementwise = true;
    bool pack_weights = true;
    bool weight_walk = true;
    bool relu_units = true;
};
inline switches& tuning() {
    static switches s;
    return s;
}
#else
// Constants, read through the same expression (`tuning().views`) as the mutable ones.
struct switches {
    static constexpr bool gemm = true;
    static constexpr bool conv = true;
    static constexpr bool mlp = true;
    static constexpr bool fuse_activation = true;
    static constexpr bool share_buffers = true;
    static constexpr bool views = true;
    static constexpr bool fuse_coupling = true;
    static constexpr bool fuse_elementwise = true;
    static constexpr bool pack_weights = true;
    static constexpr bool weight_walk = true;
    static constexpr bool relu_units = true;
};
constexpr switches tuning() { return {}; }
#endif

} // namespace inn::nn::kernels
