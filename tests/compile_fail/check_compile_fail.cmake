# Runs one compile-fail case (see CMakeLists.txt beside this file):
#   cmake -DINN_CF_BINARY_DIR=... -DINN_CF_TARGET=... -DINN_CF_CONFIG=... -DINN_CF_ARGS=... -P this
# Succeeds only if building INN_CF_TARGET fails and the output matches INN_CF_REGEX.

include("${INN_CF_ARGS}")  # sets INN_CF_REGEX

set(config_args)
if(INN_CF_CONFIG)
    set(config_args --config "${INN_CF_CONFIG}")
endif()

execute_process(
    COMMAND "${CMAKE_COMMAND}" --build "${INN_CF_BINARY_DIR}" --target "${INN_CF_TARGET}" ${config_args}
    OUTPUT_VARIABLE output
    ERROR_VARIABLE output
    RESULT_VARIABLE result)

string(ASCII 27 esc)
string(REGEX REPLACE "${esc}\\[[0-9;]*[mK]" "" output "${output}")

# Verdicts are printed with plain message() (FATAL_ERROR would re-wrap the text).
if(result EQUAL 0)
    message("${output}")
    message("inn-compile-fail: ${INN_CF_TARGET} compiled, but it must not")
    message(FATAL_ERROR "compile-fail check failed")
endif()

if(NOT output MATCHES "${INN_CF_REGEX}")
    message("${output}")
    message("inn-compile-fail: ${INN_CF_TARGET} failed to compile as it should, but its output "
            "does not match the expected regex: ${INN_CF_REGEX}")
    message(FATAL_ERROR "compile-fail check failed")
endif()

message("inn-compile-fail: ${INN_CF_TARGET} fails to compile, as expected; matched: "
        "\"${CMAKE_MATCH_0}\"")
