#pragma once
// The CUDA backend: `inn::cuda::network<Net>` runs a network type of inn on the device.
// Compiled by nvcc it runs on the GPU; compiled by a host compiler it runs the same code on
// thrust's host system (for testing without a GPU). docs/gpu.md says what is ported.

#include "backends/cuda/config.hpp"
#include "backends/cuda/device.hpp"
#include "backends/cuda/modules/actnorm.hpp"
#include "backends/cuda/modules/all_in_one_block.hpp"
#include "backends/cuda/modules/coupling.hpp"
#include "backends/cuda/modules/elementwise.hpp"
#include "backends/cuda/modules/permute_random.hpp"
#include "backends/cuda/modules/reshape.hpp"
#include "backends/cuda/modules/space_to_depth.hpp"
#include "backends/cuda/network.hpp"
