# inn_header_check: every public header compiles on its own.
#
# One generated translation unit per header under include/inn/ (`#include <inn/...>` and nothing
# else), compiled with the flags of the project's targets (warnings, -Werror with INN_WERROR) at
# -O0 without debug information: a header that relies on something its includer happened to
# include first fails here. Part of `all` when the tests are built (see CMakeLists.txt); about
# 130 headers, ~1.8 s each (~2 minutes with -j2, once: ccache and make keep the objects after).
#
# A new header is picked up at the next build (the glob re-runs CMake).

include_guard(GLOBAL)

file(GLOB_RECURSE _inn_public_headers CONFIGURE_DEPENDS
     RELATIVE "${PROJECT_SOURCE_DIR}/include" "${PROJECT_SOURCE_DIR}/include/inn/*.hpp")
list(SORT _inn_public_headers)

set(_inn_header_check_sources)
foreach(_header IN LISTS _inn_public_headers)
    string(MAKE_C_IDENTIFIER "${_header}" _id)
    set(_tu "${CMAKE_CURRENT_BINARY_DIR}/header_check/${_id}.cpp")
    file(CONFIGURE OUTPUT "${_tu}" CONTENT "#include <${_header}>\n")  # rewritten only if changed
    list(APPEND _inn_header_check_sources "${_tu}")
endforeach()

add_library(inn_header_check OBJECT ${_inn_header_check_sources})
inn_target_options(inn_header_check OPTIMIZE -O0 -g0)
target_link_libraries(inn_header_check PRIVATE inn::io)  # io headers need nlohmann/json
