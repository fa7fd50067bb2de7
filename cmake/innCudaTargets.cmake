# The CUDA backend on a GPU (INN_BUILD_CUDA_TESTS): targets built by nvcc and linked with the
# CUDA runtime and cuBLAS. No GPU is needed to build them; benchmarks/gpu_check.sh runs them.
#
#   inn_cuda_tests   the whole parity suite (FrEIA's golden files, every module) through
#                    inn::cuda::network, and the backend's own tests (tests/cuda/*.cu include
#                    the test files that inn_cuda_host_tests builds with g++)
#   inn_gpu_bench    the README's models on the GPU beside the host backend (benchmarks/gpu_bench.cu)

if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
    set(CMAKE_CUDA_ARCHITECTURES 90)  # H100/H200; pass -DCMAKE_CUDA_ARCHITECTURES=native on a GPU
endif()
enable_language(CUDA)
find_package(CUDAToolkit REQUIRED)
find_package(Catch2 REQUIRED)

# The build type's -O goes (only in this directory's CUDA flags); each target says its own.
foreach(_config IN ITEMS DEBUG RELEASE RELWITHDEBINFO MINSIZEREL)
    string(REGEX REPLACE "(^| )-O[0-3s]( |$)" " " CMAKE_CUDA_FLAGS_${_config}
           "${CMAKE_CUDA_FLAGS_${_config}}")
endforeach()

set(_inn_cuda_flags -O2
    # -std=c++20 by hand: CMake < 3.27 does not know nvcc 13's dialect flags
    -std=c++20 --expt-relaxed-constexpr -diag-suppress=20012 -Werror all-warnings
    "SHELL:-Xcompiler -Wall,-Wextra,-Werror")

find_library(INN_CUDNN_LIBRARY cudnn HINTS "${CUDAToolkit_LIBRARY_DIR}" REQUIRED)

file(GLOB _inn_cuda_test_sources CONFIGURE_DEPENDS "${PROJECT_SOURCE_DIR}/tests/cuda/*.cu")
add_executable(inn_cuda_tests "${PROJECT_SOURCE_DIR}/tests/main.cpp" ${_inn_cuda_test_sources})
# On nvcc's rewritten host code of the parity files (the host backend's kernels, which the main
# build compiles with -Werror as they are), GCC 12 reports a false "pointer may be used after
# free" inside Eigen's aligned free; "iteration 1 invokes undefined behavior" and "may be used
# uninitialized", which nvcc's host code of gemm_rows' stores showed until 2026-12-05 (the CI's
# nvcc check now builds these files with both as errors), stay warnings here, where no CI build
# would see them first.
target_compile_options(inn_cuda_tests PRIVATE
    $<$<COMPILE_LANGUAGE:CUDA>:${_inn_cuda_flags} -Xcompiler=-Wno-use-after-free
    -Xcompiler=-Wno-error=aggressive-loop-optimizations -Xcompiler=-Wno-error=maybe-uninitialized>)
target_compile_features(inn_cuda_tests PRIVATE cxx_std_20)
target_include_directories(inn_cuda_tests PRIVATE "${PROJECT_SOURCE_DIR}/tests")
target_compile_definitions(inn_cuda_tests PRIVATE INN_TEST_CUDA=1 INN_CUDA_CUDNN=1
    INN_TEST_DATA_DIR="${PROJECT_SOURCE_DIR}/tests/data")
target_link_libraries(inn_cuda_tests PRIVATE inn::io Catch2::Catch2 CUDA::cudart_static
                                             CUDA::cublas CUDA::cublasLt "${INN_CUDNN_LIBRARY}")

add_executable(inn_gpu_bench "${PROJECT_SOURCE_DIR}/benchmarks/gpu_bench.cu")
# The host backend beside it with AVX2 and FMA (x86-64-v3: every GPU server's CPU has them), as
# the host benchmarks build for the machine's vectors.
target_compile_options(inn_gpu_bench PRIVATE ${_inn_cuda_flags} "SHELL:-Xcompiler -mavx2,-mfma")
target_include_directories(inn_gpu_bench PRIVATE "${PROJECT_SOURCE_DIR}/benchmarks")
target_compile_definitions(inn_gpu_bench PRIVATE INN_CUDA_CUDNN=1)
target_link_libraries(inn_gpu_bench PRIVATE inn::inn CUDA::cudart_static CUDA::cublas CUDA::cublasLt
                                            "${INN_CUDNN_LIBRARY}")
