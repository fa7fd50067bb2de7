#pragma once
// Which machine the CUDA backend's "device" is.
//
// Compiled by nvcc (a .cu file), the device is the GPU: thrust launches CUDA kernels, dense
// products go to cuBLAS. Compiled by a host compiler (g++, clang++), the same headers build
// against thrust's sequential host system (THRUST_DEVICE_SYSTEM_CPP) with Eigen behind the
// dense products: every functor, every module's launch logic and the executor then run on
// the CPU, which is how the backend is tested on machines without a GPU.
//
// INN_HD marks functions that run on both sides (element-wise functors).

#if defined(__CUDACC__)
#define INN_CUDA_DEVICE 1
#define INN_HD __host__ __device__
#else
#define INN_CUDA_DEVICE 0
#define INN_HD
#ifndef THRUST_DEVICE_SYSTEM
#define THRUST_DEVICE_SYSTEM THRUST_DEVICE_SYSTEM_CPP
#endif
#endif

#include <thrust/version.h>
