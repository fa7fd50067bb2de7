# ctest -L docs: the C++ code blocks of README.md and docs/*.md compile, and those marked `run`
# run. One ctest test per checked block, named after its page and line (`docs/tutorial.md:35`);
# scripts/check-docs.py describes the markers that say how a block is checked. Plus docs.links:
# every link to an anchor of a page resolves.
#
# The blocks are compiled with the flags of the never-built target inn_docs_check_flags (the
# project's warnings, -Werror with INN_WERROR, -O0, inn::io and xtensor), which the script reads
# from compile_commands.json. A page's blocks are listed at configure time; editing a page re-runs
# CMake at the next build.

include_guard(GLOBAL)

find_package(Python3 3.8 REQUIRED COMPONENTS Interpreter)
find_package(xtensor REQUIRED)  # the tutorial feeds xtensor arrays to a network

set(_inn_docs_work "${CMAKE_CURRENT_BINARY_DIR}/docs_check")
set(_inn_docs_probe "${_inn_docs_work}/flags_probe.cpp")
file(CONFIGURE OUTPUT "${_inn_docs_probe}"
     CONTENT "// Stands for a code block of the docs: scripts/check-docs.py compiles with its flags.\n")
add_library(inn_docs_check_flags OBJECT EXCLUDE_FROM_ALL "${_inn_docs_probe}")
inn_target_options(inn_docs_check_flags OPTIMIZE -O0 -g0)
target_link_libraries(inn_docs_check_flags PRIVATE inn::io xtensor)
set_target_properties(inn_docs_check_flags PROPERTIES EXPORT_COMPILE_COMMANDS ON)

set(_inn_docs_script "${PROJECT_SOURCE_DIR}/scripts/check-docs.py")
file(GLOB _inn_docs_pages CONFIGURE_DEPENDS "${PROJECT_SOURCE_DIR}/docs/*.md")
list(SORT _inn_docs_pages)
list(PREPEND _inn_docs_pages "${PROJECT_SOURCE_DIR}/README.md")
set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS ${_inn_docs_pages} "${_inn_docs_script}")

execute_process(
    COMMAND "${Python3_EXECUTABLE}" "${_inn_docs_script}" --list ${_inn_docs_pages}
    WORKING_DIRECTORY "${PROJECT_SOURCE_DIR}"
    OUTPUT_VARIABLE _inn_docs_blocks
    ERROR_VARIABLE _inn_docs_error
    RESULT_VARIABLE _inn_docs_result)
if(NOT _inn_docs_result EQUAL 0)
    message(FATAL_ERROR "scripts/check-docs.py --list: ${_inn_docs_error}")
endif()
string(REPLACE "\n" ";" _inn_docs_blocks "${_inn_docs_blocks}")

set(_inn_docs_count 0)
foreach(_block IN LISTS _inn_docs_blocks)
    if(_block STREQUAL "")
        continue()
    endif()
    add_test(NAME "${_block}"
             COMMAND "${Python3_EXECUTABLE}" "${_inn_docs_script}"
                     --compile-commands "${CMAKE_BINARY_DIR}/compile_commands.json"
                     --probe "${_inn_docs_probe}" --work "${_inn_docs_work}" "${_block}"
             WORKING_DIRECTORY "${PROJECT_SOURCE_DIR}")
    set_tests_properties("${_block}" PROPERTIES LABELS docs)
    math(EXPR _inn_docs_count "${_inn_docs_count} + 1")
endforeach()
# Links to anchors (docs/freia-semantics.md#actnorm-nan-init in a comment, (#entry) in a page).
add_test(NAME docs.links COMMAND "${Python3_EXECUTABLE}" "${_inn_docs_script}" --links
         WORKING_DIRECTORY "${PROJECT_SOURCE_DIR}")
set_tests_properties(docs.links PROPERTIES LABELS docs)
message(STATUS "docs check: ${_inn_docs_count} code blocks of README.md and docs/*.md (ctest -L docs)")
