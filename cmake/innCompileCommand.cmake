# Helper of scripts/measure-compile.sh: looks up the compile command of one source file in a
# build's compile_commands.json.
#   cmake -DDB=<compile_commands.json> -DFILE=<abs source> -DFALLBACK=<abs source> -DOBJ=<abs .o>
#         -DOUT=<result file> -P innCompileCommand.cmake
# Writes two lines to OUT: the directory to run in, and the command (a shell command line) with
# its output redirected to OBJ. A file that is not in the database (a new test file, a wrapper of a header)
# is compiled with the flags of FALLBACK (tests/test_graph.cpp: the flags of inn_tests).

file(READ "${DB}" json)
string(JSON n LENGTH "${json}")
math(EXPR last "${n} - 1")

function(find_entry path result_var)
    set(${result_var} -1 PARENT_SCOPE)
    foreach(i RANGE ${last})
        string(JSON f GET "${json}" ${i} file)
        if(f STREQUAL path)
            set(${result_var} ${i} PARENT_SCOPE)
            return()
        endif()
    endforeach()
endfunction()

find_entry("${FILE}" index)
set(source "${FILE}")
if(index EQUAL -1)
    find_entry("${FALLBACK}" index)
    if(index EQUAL -1)
        message(FATAL_ERROR "neither ${FILE} nor ${FALLBACK} is in ${DB}")
    endif()
    set(source "${FALLBACK}")
    message(STATUS "${FILE} is not in ${DB}: using the flags of ${FALLBACK}")
endif()

string(JSON dir GET "${json}" ${index} directory)
string(JSON command GET "${json}" ${index} command)
string(REGEX REPLACE " -o [^ ]+ " " -o ${OBJ} " command "${command}")
if(NOT source STREQUAL FILE)
    string(REPLACE " -c ${source}" " -c ${FILE}" command "${command}")
endif()
file(WRITE "${OUT}" "${dir}\n${command}\n")
