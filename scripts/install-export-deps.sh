#!/usr/bin/env bash
# Installs what the FrEIA exporter (python/inn_export) and its test (tests/export) need on
# Debian 12 (bookworm): everything of scripts/install-deps.sh, PyTorch, NumPy and SciPy for
# Debian's own /usr/bin/python3 (FrEIA's AllInOneBlock draws its soft permutations with SciPy),
# and FrEIA itself from PyPI, installed with `pip install --no-deps` over Debian's PyTorch (its
# declared dependencies would pull a second PyTorch from PyPI). Idempotent, root or sudo, as
# install-deps.sh: does nothing when everything is there.
set -euo pipefail

FREIA_VERSION=0.2  # the PyPI release (2022); the golden fixtures came from a later git snapshot

packages=(
    python3                # Debian's interpreter, /usr/bin/python3 (python3-torch is built for it)
    python3-torch          # PyTorch 1.13
    python3-numpy
    python3-scipy
    python3-pip
)
bash "$(dirname "${BASH_SOURCE[0]}")/install-deps.sh" "${packages[@]}"

python=/usr/bin/python3
if "$python" -c "import FrEIA" >/dev/null 2>&1; then
    echo "install-export-deps: FrEIA is installed ($("$python" -c 'import FrEIA, os; print(os.path.dirname(FrEIA.__file__))'))"
    exit 0
fi

sudo=()
if [[ $(id -u) -ne 0 ]]; then
    command -v sudo >/dev/null 2>&1 || { echo "install-export-deps: run as root (or install sudo)" >&2; exit 1; }
    sudo=(sudo)
fi
echo "install-export-deps: installing FrEIA ${FREIA_VERSION} from PyPI (--no-deps)"
# Debian marks its Python as externally managed (PEP 668); FrEIA goes to /usr/local, beside
# Debian's packages, and uses their PyTorch.
"${sudo[@]}" "$python" -m pip install --quiet --no-deps --break-system-packages \
    --root-user-action=ignore "FrEIA==${FREIA_VERSION}"
"$python" -c "import FrEIA" || { echo "install-export-deps: FrEIA does not import" >&2; exit 1; }
echo "install-export-deps: done"
