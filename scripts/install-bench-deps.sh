#!/usr/bin/env bash
# Installs what benchmarks/compare_pytorch.py needs on Debian 12 (bookworm), on top of
# scripts/install-deps.sh (which it runs first): PyTorch and NumPy for Debian's own
# /usr/bin/python3, threadpoolctl (to report which OpenBLAS kernel PyTorch runs), and OpenBLAS
# itself - without it Debian's PyTorch multiplies matrices with the reference BLAS, an opponent
# no one would choose. Idempotent: does nothing when everything is there. Runs as root, or
# through sudo when that is available. Used by the benchmarks only, never by tests or CI.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bash "$root/scripts/install-deps.sh"

packages=(
    python3                # Debian's interpreter, /usr/bin/python3 (python3-torch is built for it)
    python3-torch          # PyTorch 1.13
    python3-numpy
    python3-threadpoolctl
    libopenblas0-pthread   # OpenBLAS; becomes libblas.so.3 through update-alternatives
    cmake
    time
)

missing=()
for p in "${packages[@]}"; do
    status=$(dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null || true)
    [[ "$status" == ii* ]] || missing+=("$p")
done

if [[ ${#missing[@]} -eq 0 ]]; then
    echo "install-bench-deps: all ${#packages[@]} packages are installed"
    exit 0
fi

sudo=()
if [[ $(id -u) -ne 0 ]]; then
    command -v sudo >/dev/null 2>&1 || { echo "install-bench-deps: run as root (or install sudo)" >&2; exit 1; }
    sudo=(sudo)
fi

echo "install-bench-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "install-bench-deps: done"
