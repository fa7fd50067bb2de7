#!/usr/bin/env bash
# Installs what benchmarks/compare_pytorch.py needs on Debian 12 (bookworm): everything of
# scripts/install-deps.sh plus PyTorch and NumPy for Debian's own /usr/bin/python3,
# threadpoolctl (to report which OpenBLAS kernel PyTorch runs), and OpenBLAS itself - without
# it Debian's PyTorch multiplies matrices with the reference BLAS, an opponent no one would
# choose. Idempotent, root or sudo, as install-deps.sh (which does the work). Used by the
# benchmarks only, never by tests or CI.
set -euo pipefail

packages=(
    python3                # Debian's interpreter, /usr/bin/python3 (python3-torch is built for it)
    python3-torch          # PyTorch 1.13
    python3-numpy
    python3-threadpoolctl
    libopenblas0-pthread   # OpenBLAS; becomes libblas.so.3 through update-alternatives
)
exec bash "$(dirname "${BASH_SOURCE[0]}")/install-deps.sh" "${packages[@]}"
