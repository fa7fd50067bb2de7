# Settings for the project's own targets (tests, examples, benchmarks, compile-fail cases).
# The library target inn::inn itself carries no warning flags: consumers choose their own.
#
#   inn_target_options(<target> [SANITIZE] [OPTIMIZE <flag>...])
#
# adds -Wall -Wextra -Wpedantic (and -Werror with INN_WERROR=ON), the sanitizer flags (ASan +
# UBSan) to a SANITIZE target with INN_SANITIZE=ON, ThreadSanitizer's to every target with
# INN_TSAN=ON, and the given optimisation flags last, so that they win over the flags of
# CMAKE_BUILD_TYPE (e.g. -O3 of Release; -DNDEBUG of Release stays).
#
# It also defines the option INN_SANITIZE (below).

include_guard(GLOBAL)

set(INN_WARNING_FLAGS -Wall -Wextra -Wpedantic)
# UBSan without its `alignment` and `pointer-overflow` checks unless INN_SANITIZE_ALL_UB=ON:
# instrumenting every typed load and every pointer addition made the sanitizer build about a
# third slower to compile with GCC 12 at -O0 (tests/test_parity_coupling.cpp: 170 s with all
# checks, 137 s without these two, 103 s with ASan alone, on the Intel Xeon of
# docs/compile-cost.md), while neither finds much here: no code reads a typed value through a
# cast byte pointer (the safetensors reader copies; the fuzzer, step (e) of .ci/run, runs it
# with every check), and ASan reports the out-of-bounds access that a wrapped pointer leads to.
# Nor `null` and `vptr`: `null` instruments every member access and reference binding through a
# pointer, and a null pointer that is dereferenced faults under ASan, which then reports it with
# its stack; `vptr` checks the dynamic type of polymorphic objects, which inn does not have (it
# instrumented Catch2's and the iostreams' classes). Without the two, test_elementwise compiled
# in 96 s instead of 122 s (docs/compile-cost.md).
option(INN_SANITIZE_ALL_UB "INN_SANITIZE: every UBSan check (alignment, pointer-overflow, null, vptr too)" OFF)
set(INN_SANITIZER_FLAGS -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer)
if(NOT INN_SANITIZE_ALL_UB)
    list(APPEND INN_SANITIZER_FLAGS -fno-sanitize=alignment,pointer-overflow,null,vptr)
endif()
# Compile-only: ASan's checks as calls into its run-time library rather than inlined code. The
# same checks, a smaller program that compiles faster (test_elementwise 92 -> 80 s at -O0); the
# test data is small, so the slower checks cost little run time.
set(INN_SANITIZER_COMPILE_FLAGS)
if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
    list(APPEND INN_SANITIZER_COMPILE_FLAGS --param=asan-instrumentation-with-call-threshold=0)
elseif(CMAKE_CXX_COMPILER_ID MATCHES "Clang")
    list(APPEND INN_SANITIZER_COMPILE_FLAGS "SHELL:-mllvm -asan-instrumentation-with-call-threshold=0")
endif()
set(INN_TSAN_FLAGS -fsanitize=thread -fno-omit-frame-pointer)

# INN_SANITIZE: the unit tests (inn_tests, inn_thread_tests: the targets that say SANITIZE) under
# ASan + UBSan. ON by default where the compiler builds a program with the flags above and it
# runs (GCC or Clang with their run-time libraries; not when cross-compiling, nor with
# INN_TSAN), so that the one build of the README's test command is also the sanitizer build (a
# second, instrumented build of the tests took 900-1000 s of the CI's 50 minutes:
# docs/compile-cost.md, "One build of the unit tests").
# Everything else stays as users build it: the examples, the benchmarks, the allocation,
# switch and native-random tests (optimised), the header, docs and compile-fail checks.
if(NOT DEFINED CACHE{INN_SANITIZE})
    set(_inn_sanitize_default OFF)
    if(INN_BUILD_TESTS AND NOT INN_TSAN AND NOT CMAKE_CROSSCOMPILING
       AND CMAKE_CXX_COMPILER_ID MATCHES "GNU|Clang")
        include(CheckCXXSourceRuns)
        include(CMakePushCheckState)
        cmake_push_check_state(RESET)
        list(JOIN INN_SANITIZER_FLAGS " " CMAKE_REQUIRED_FLAGS)
        set(CMAKE_REQUIRED_LINK_OPTIONS ${INN_SANITIZER_FLAGS})
        check_cxx_source_runs([[
            #include <vector>
            int main() { std::vector<int> v(3, 1); return v[2] - 1; }
        ]] INN_SANITIZERS_RUN)
        cmake_pop_check_state()
        set(_inn_sanitize_default ${INN_SANITIZERS_RUN})
        if(NOT INN_SANITIZERS_RUN)
            message(STATUS "inn: a program built with ${INN_SANITIZER_FLAGS} does not run here: "
                           "the unit tests are built without sanitizers (INN_SANITIZE=OFF)")
        endif()
    endif()
endif()
option(INN_SANITIZE "Build the unit tests with AddressSanitizer + UBSan" ${_inn_sanitize_default})
if(INN_SANITIZE AND INN_TSAN)
    message(FATAL_ERROR "INN_SANITIZE and INN_TSAN cannot be combined (use two build trees)")
endif()

function(inn_target_options target)
    cmake_parse_arguments(ARG "SANITIZE" "" "OPTIMIZE" ${ARGN})
    target_link_libraries(${target} PRIVATE inn::inn)
    if(CMAKE_CXX_COMPILER_ID MATCHES "GNU|Clang")
        target_compile_options(${target} PRIVATE ${INN_WARNING_FLAGS})
        if(INN_WERROR)
            target_compile_options(${target} PRIVATE -Werror)
            if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
                # GCC 12 reports bogus "'<unknown>' may be used uninitialized" inside Eigen's
                # inlined copies (DenseStorage.h): stays a warning, is not an error.
                target_compile_options(${target} PRIVATE -Wno-error=maybe-uninitialized)
            endif()
        endif()
        if(ARG_OPTIMIZE)
            target_compile_options(${target} PRIVATE ${ARG_OPTIMIZE})
        endif()
        if(INN_SANITIZE AND ARG_SANITIZE)
            # -g1: line tables only, so that sanitizer reports name file:line (cheap to compile)
            target_compile_options(${target} PRIVATE ${INN_SANITIZER_FLAGS}
                                                      ${INN_SANITIZER_COMPILE_FLAGS} -g1)
            if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
                # GCC 12's instrumented code gives false -Wmaybe-uninitialized (e.g. <regex>)
                target_compile_options(${target} PRIVATE -Wno-maybe-uninitialized)
            endif()
            target_link_options(${target} PRIVATE ${INN_SANITIZER_FLAGS})
        endif()
        if(INN_TSAN)
            target_compile_options(${target} PRIVATE ${INN_TSAN_FLAGS} -g1)
            target_link_options(${target} PRIVATE ${INN_TSAN_FLAGS})
        endif()
    endif()
endfunction()
