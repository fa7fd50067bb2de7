# The CUDA backend on a GPU (INN_BUILD_CUDA_TESTS): targets built by nvcc and linked with the
# CUDA runtime and cuBLAS. No GPU is needed to build them; benchmarks/gpu_check.sh runs them.
#
#   inn_cuda_tests   FrEIA's golden files through inn::cuda::network (tests/cuda/*.cu)
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

add_executable(inn_cuda_tests "${PROJECT_SOURCE_DIR}/tests/main.cpp"
                              "${PROJECT_SOURCE_DIR}/tests/cuda/test_cuda_parity.cu")
target_compile_options(inn_cuda_tests PRIVATE $<$<COMPILE_LANGUAGE:CUDA>:${_inn_cuda_flags}>)
target_compile_features(inn_cuda_tests PRIVATE cxx_std_20)
target_include_directories(inn_cuda_tests PRIVATE "${PROJECT_SOURCE_DIR}/tests")
target_compile_definitions(inn_cuda_tests PRIVATE INN_TEST_CUDA=1
    INN_TEST_DATA_DIR="${PROJECT_SOURCE_DIR}/tests/data")
target_link_libraries(inn_cuda_tests PRIVATE inn::io Catch2::Catch2 CUDA::cudart_static CUDA::cublas)

add_executable(inn_gpu_bench "${PROJECT_SOURCE_DIR}/benchmarks/gpu_bench.cu")
target_compile_options(inn_gpu_bench PRIVATE ${_inn_cuda_flags})
target_include_directories(inn_gpu_bench PRIVATE "${PROJECT_SOURCE_DIR}/benchmarks")
target_link_libraries(inn_gpu_bench PRIVATE inn::inn CUDA::cudart_static CUDA::cublas)
