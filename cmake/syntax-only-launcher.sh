#!/bin/sh
# Compiler launcher of inn_nvcc_check_tests (cmake/innNvccCheck.cmake): runs the compile command,
# whose host pass is g++ -fsyntax-only and so writes no object, then leaves an empty file at the
# -o path so that make and ninja see the translation unit as done (nothing links these objects).
out=
prev=
for arg in "$@"; do
    if [ "$prev" = "-o" ]; then out=$arg; fi
    prev=$arg
done
"$@" || exit $?
if [ -n "$out" ] && [ ! -e "$out" ]; then : >"$out"; fi
