#!/usr/bin/env bash
# The export test (CI step (d')): FrEIA models -> inn_export -> a C++ program that compares inn
# with FrEIA, and back (a state_dict saved in C++, loaded by FrEIA with strict=True).
#
#   bash scripts/install-export-deps.sh   # once: python3-torch, FrEIA (installs nothing here)
#   bash tests/export/run.sh [BUILD_DIR]  # default build-export/
#
# Steps: tests/export/refusals.py (what the exporter must refuse; the command line writes tiny.*);
# generate.py writes BUILD_DIR/generated/<model>.{hpp,safetensors,io.safetensors}; CMake builds
# tests/export/export_test.cpp and export_models_*.cpp against them and runs the program;
# check_back.py loads what it saved.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
build=$(realpath -m "${1:-$root/build-export}")
python=/usr/bin/python3  # Debian's, for which python3-torch is installed
export PYTHONDONTWRITEBYTECODE=1  # no __pycache__ in the source tree

if ! "$python" -c "import torch, FrEIA" >/dev/null 2>&1; then
    echo "tests/export/run.sh: torch or FrEIA is missing; run: bash scripts/install-export-deps.sh" >&2
    exit 1
fi
cd "$root"
generated="$build/generated"
rm -rf "$generated"
"$python" tests/export/refusals.py "$generated"
"$python" tests/export/generate.py "$generated"
launcher=()
if command -v ccache >/dev/null 2>&1; then launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache); fi
cmake -S tests/export -B "$build" -DCMAKE_BUILD_TYPE=Release -DINN_WERROR=ON \
      -DINN_EXPORT_GENERATED_DIR="$generated" "${launcher[@]}" >/dev/null
cmake --build "$build" -j2
"$build/export_test" "$generated"
"$python" tests/export/check_back.py "$generated"
