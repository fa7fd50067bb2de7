#pragma once
// The dense kernels behind nn::Linear, nn::Conv2d and the fused subnets of nn::Sequential, one
// concept per header under kernels/:
//
//   * kernels/simd.hpp      the build's SIMD vectors and lane helpers, Eigen packet loops;
//   * kernels/targets.hpp   vector targets: the dense kernels (kernels/vector/*.ipp) compiled
//                           per instruction set (the build's, AVX2, AVX-512), picked at run
//                           time from the CPU's features;
//   * kernels/caches.hpp    the CPU's data cache sizes (how products walk their weights);
//   * kernels/gemm.hpp      the register-tiled products of Linear layers (bias + activation in
//                           the store), from packed panels of samples or packed weights;
//   * kernels/gemm_pick.hpp the measured pick of a product's plan;
//   * kernels/conv.hpp      direct 3x3 and tiled 1x1 convolutions;
//   * kernels/mlp.hpp       the fused small MLP (Linear -> activation -> Linear);
//   * kernels/relu_units.hpp the small MLP of one input and ReLU as its linear pieces;
//   * kernels/bf16.hpp      matrix-vector products from bfloat16 weights;
//   * kernels/atan.hpp      float atan on scalars and vectors (the couplings' soft clamp);
//   * kernels/switches.hpp  the benchmark switches (constants unless INN_BENCHMARK_SWITCHES).

#include "../core/tensor_view.hpp"
#include "kernels/atan.hpp"
#include "kernels/bf16.hpp"
#include "kernels/caches.hpp"
#include "kernels/conv.hpp"
#include "kernels/gemm.hpp"
#include "kernels/gemm_pick.hpp"
#include "kernels/mlp.hpp"
#include "kernels/relu_units.hpp"
#include "kernels/simd.hpp"
#include "kernels/switches.hpp"
#include "kernels/targets.hpp"
