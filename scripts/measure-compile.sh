#!/usr/bin/env bash
# Compiles one source file of the project with the project's flags under /usr/bin/time -v and
# prints its wall time and peak memory ("Maximum resident set size").
#
#   bash scripts/measure-compile.sh <file> [build-dir]
#
# The flags are the file's own entry in <build-dir>/compile_commands.json (default build dir:
# build/, configured like the README's test command if it is not there). A file that is in no
# target yet (a new test file, a header) is compiled with the flags of inn_tests.
set -euo pipefail

if [[ $# -lt 1 || $# -gt 2 ]]; then
    echo "usage: $0 <source-file> [build-dir]" >&2
    exit 2
fi
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
file=$(realpath "$1")
build=$(realpath -m "${2:-$root/build}")
[[ -f "$file" ]] || { echo "measure-compile: no such file: $1" >&2; exit 2; }
[[ -x /usr/bin/time ]] || { echo "measure-compile: /usr/bin/time missing (bash scripts/install-deps.sh)" >&2; exit 2; }

if [[ -f "$build/CMakeCache.txt" ]]; then
    cmake "$build" >/dev/null  # re-configure: picks up source files added since
else
    cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DINN_WERROR=ON >/dev/null
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
case "$file" in
    *.h | *.hh | *.hpp | *.hxx | *.ipp)  # a header: measure a .cpp file that includes it
        printf '#include "%s"\n' "$file" >"$tmp/header.cpp"
        file_to_compile="$tmp/header.cpp" ;;
    *) file_to_compile="$file" ;;
esac
cmake -DDB="$build/compile_commands.json" -DFILE="$file_to_compile" -DFALLBACK="$root/tests/test_graph.cpp" \
      -DOBJ="$tmp/out.o" -DOUT="$tmp/cmd" -P "$root/cmake/innCompileCommand.cmake"
dir=$(sed -n 1p "$tmp/cmd")
cmd=$(sed -n 2p "$tmp/cmd")

echo "measure-compile: $cmd"
status=0
(cd "$dir" && /usr/bin/time -v -o "$tmp/time" sh -c "$cmd") || status=$?

wall=$(sed -n 's/^[[:space:]]*Elapsed (wall clock) time (h:mm:ss or m:ss): //p' "$tmp/time")
rss_kb=$(sed -n 's/^[[:space:]]*Maximum resident set size (kbytes): //p' "$tmp/time")
echo "file:                             ${file#"$root"/}"
echo "Elapsed (wall clock) time:        $wall"
echo "Maximum resident set size:        $rss_kb kB ($((rss_kb / 1024)) MiB)"
if [[ $status -ne 0 ]]; then
    echo "measure-compile: the compiler failed (exit $status)" >&2
fi
exit $status
