# inn_nvcc_check: every public header and every example compiles with nvcc (-Werror).
#
# The first slice of the GPU backend (docs/gpu.md): the host code must stay nvcc-clean before any
# device code is written. Generated CUDA translation units, compiled to objects only (no GPU
# needed): one per examples/*.cpp (which it #includes) and one that includes every header under
# include/inn/. nvcc runs its front ends (EDG, host and device pass) and then the host compiler on
# every TU; all must be silent.
#
# One TU for all headers, not one per header: nvcc takes ~10-15 s per TU (two front-end passes
# plus g++), so ~130 header TUs would cost ~15 minutes on CI's 2 cores; that each header includes
# what it uses is inn_header_check's job (g++). -DINN_NVCC_CHECK_EACH_HEADER=ON compiles one TU
# per header all the same (e.g. after a change to a header's includes).
#
# Flags:
#  -O2                       whatever the build type, as the examples: g++ 12 at -O3 (Release) has
#                            false positives in our kernels and in libstdc++
#                            (-Waggressive-loop-optimizations, -Wrestrict), with or without nvcc.
#  --expt-relaxed-constexpr  Eigen's documented flag for CUDA (it calls constexpr host functions
#                            from host-device ones; without it nvcc warns #20015 in Eigen).
#  -diag-suppress=20012      Eigen 3.4's known issue: __host__ __device__ on explicitly defaulted
#                            members ("annotation is ignored"), in Eigen's own headers. This is
#                            the only diagnostic suppressed; inn's headers have none of their own.

include_guard(GLOBAL)

if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
    set(CMAKE_CUDA_ARCHITECTURES 90)  # compile only; no GPU is queried
endif()
enable_language(CUDA)

file(GLOB_RECURSE _inn_nvcc_headers CONFIGURE_DEPENDS
     RELATIVE "${PROJECT_SOURCE_DIR}/include" "${PROJECT_SOURCE_DIR}/include/inn/*.hpp")
file(GLOB _inn_nvcc_examples CONFIGURE_DEPENDS "${PROJECT_SOURCE_DIR}/examples/*.cpp")
list(SORT _inn_nvcc_headers)
list(SORT _inn_nvcc_examples)

set(_inn_nvcc_sources)
if(INN_NVCC_CHECK_EACH_HEADER)
    foreach(_header IN LISTS _inn_nvcc_headers)
        string(MAKE_C_IDENTIFIER "${_header}" _id)
        set(_tu "${CMAKE_CURRENT_BINARY_DIR}/nvcc_check/${_id}.cu")
        file(CONFIGURE OUTPUT "${_tu}" CONTENT "#include <${_header}>\n")  # written if changed
        list(APPEND _inn_nvcc_sources "${_tu}")
    endforeach()
else()
    set(_all)
    foreach(_header IN LISTS _inn_nvcc_headers)
        string(APPEND _all "#include <${_header}>\n")
    endforeach()
    set(_tu "${CMAKE_CURRENT_BINARY_DIR}/nvcc_check/all_headers.cu")
    file(CONFIGURE OUTPUT "${_tu}" CONTENT "${_all}")
    list(APPEND _inn_nvcc_sources "${_tu}")
endif()
foreach(_example IN LISTS _inn_nvcc_examples)
    get_filename_component(_name "${_example}" NAME_WE)
    set(_tu "${CMAKE_CURRENT_BINARY_DIR}/nvcc_check/example_${_name}.cu")
    file(CONFIGURE OUTPUT "${_tu}" CONTENT "#include \"${_example}\"\n")
    list(APPEND _inn_nvcc_sources "${_tu}")
endforeach()

# The build type's -O goes (only in this directory's CUDA flags, used by this target alone);
# nvcc would warn about two -O options and hand the last to g++.
foreach(_config IN ITEMS DEBUG RELEASE RELWITHDEBINFO MINSIZEREL)
    string(REGEX REPLACE "(^| )-O[0-3s]( |$)" " " CMAKE_CUDA_FLAGS_${_config}
           "${CMAKE_CUDA_FLAGS_${_config}}")
endforeach()

add_library(inn_nvcc_check OBJECT ${_inn_nvcc_sources})
target_include_directories(inn_nvcc_check PRIVATE "${PROJECT_SOURCE_DIR}/examples")
target_compile_options(inn_nvcc_check PRIVATE
    # -std=c++20 by hand: CMake < 3.27 does not know nvcc 13's dialect flags (CUDA_STANDARD 20
    # fails to configure with CMake 3.25)
    -std=c++20 -O2 --expt-relaxed-constexpr -diag-suppress=20012
    -Werror all-warnings
    "SHELL:-Xcompiler -Wall,-Wextra,-Werror")
target_link_libraries(inn_nvcc_check PRIVATE inn::io)  # io headers need nlohmann/json

# The CUDA backend's tests compiled as CUDA (kernels instantiated for the device, not only the
# headers parsed): every file inn_cuda_tests links for a GPU - the backend's own tests and the
# golden files through the device - compiled here to objects (no GPU, no CUDA libraries needed).
# The parity files take ~2 minutes each on 2 cores.
find_package(Catch2 2.13 REQUIRED)
file(GLOB _inn_nvcc_test_sources CONFIGURE_DEPENDS "${PROJECT_SOURCE_DIR}/tests/cuda/*.cu")
list(SORT _inn_nvcc_test_sources)
add_library(inn_nvcc_check_tests OBJECT ${_inn_nvcc_test_sources})
target_include_directories(inn_nvcc_check_tests PRIVATE "${PROJECT_SOURCE_DIR}/tests")
target_compile_definitions(inn_nvcc_check_tests PRIVATE INN_TEST_CUDA=1)
# (GCC 12's false "pointer may be used after free" inside Eigen's aligned free on nvcc's host
# code is off, as in cmake/innCudaTargets.cmake; every other warning of nvcc and of the host
# compiler is an error.)
# The tests' host code is only parsed (g++ -fsyntax-only, which still instantiates every template
# and gives the front end's warnings, all that -O0 gave; device code is optimised whatever -O
# says): what is checked here is nvcc's front end, the device code and g++'s front end on nvcc's
# host code; the same host code is compiled by g++ in the test build. Host code as objects took
# 35 of test_parity_reshape.cu's 64 s (-O0; -O2: 75 s), parsed only 15 s. No object comes out,
# so a launcher leaves an empty file in its place (cmake/syntax-only-launcher.sh).
target_compile_options(inn_nvcc_check_tests PRIVATE
    -std=c++20 -O0 --expt-relaxed-constexpr -diag-suppress=20012
    -Werror all-warnings
    "SHELL:-Xcompiler -Wall,-Wextra,-Werror" -Xcompiler=-Wno-use-after-free
    -Xcompiler=-fsyntax-only)
set_target_properties(inn_nvcc_check_tests PROPERTIES
    CUDA_COMPILER_LAUNCHER "sh;${PROJECT_SOURCE_DIR}/cmake/syntax-only-launcher.sh")
target_link_libraries(inn_nvcc_check_tests PRIVATE inn::io Catch2::Catch2)
