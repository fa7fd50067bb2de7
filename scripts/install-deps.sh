#!/usr/bin/env bash
# Installs what inn needs to build its tests, examples and fuzzer on Debian 12 (bookworm).
# Idempotent and quiet: does nothing (no apt-get update either) when everything is there.
# Runs as root, or through sudo when that is available. Extra package names given as arguments
# are installed the same way (scripts/install-bench-deps.sh uses this).
set -euo pipefail

packages=(
    libeigen3-dev          # Eigen 3.4
    libthrust-dev          # thrust (CUDA backend, tested on its host system without a GPU)
    libboost-dev           # Boost.Hana (1.74)
    libxtensor-dev         # xtensor 0.24 (+ xtl-dev)
    xtl-dev
    nlohmann-json3-dev     # nlohmann/json 3.11
    catch2                 # Catch2 v2.13 (<catch2/catch.hpp>)
    libbenchmark-dev       # Google Benchmark (INN_BUILD_BENCHMARKS=ON)
    time                   # /usr/bin/time -v (scripts/measure-compile.sh)
    python3                # scripts/check-docs.py (ctest -L docs)
    clang-14               # the fuzzer (tests/fuzz) ...
    libclang-rt-14-dev     # ... and its libFuzzer/sanitizer runtimes
)
# Toolchain: usually there already; installed only when missing.
command -v g++ >/dev/null 2>&1 || packages+=(g++)
command -v make >/dev/null 2>&1 || packages+=(make)
command -v cmake >/dev/null 2>&1 || packages+=(cmake)
packages+=("$@")

missing=()
for p in "${packages[@]}"; do
    status=$(dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null || true)
    [[ "$status" == ii* ]] || missing+=("$p")
done

if [[ ${#missing[@]} -eq 0 ]]; then
    echo "install-deps: all ${#packages[@]} packages are installed"
    exit 0
fi

sudo=()
if [[ $(id -u) -ne 0 ]]; then
    command -v sudo >/dev/null 2>&1 || { echo "install-deps: run as root (or install sudo)" >&2; exit 1; }
    sudo=(sudo)
fi

echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "install-deps: done"
