#!/usr/bin/env bash
# The CUDA backend on a GPU, in one command (docs/gpu.md, "Running it on a GPU"):
#   1. builds inn_cuda_tests and inn_gpu_bench with nvcc (nothing is downloaded),
#   2. runs FrEIA's golden files through inn::cuda::network (double and float),
#   3. times the README's models on the GPU beside the host backend (batch 1, 256, 4096),
#   4. and PyTorch on the same GPU where a CUDA build of torch is importable.
#
#   bash benchmarks/gpu_check.sh [BUILD_DIR]        (default build-gpu)
#
# INN_GPU_PREBUILT=DIR uses the two binaries in DIR as they are (built on a machine without a
# GPU: nvcc needs none), so the GPU's time goes to running them. Under 8 minutes on one GPU.
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
build="${1:-build-gpu}"
status=0

echo "== machine"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null ||
    echo "(no nvidia-smi)"
lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -1
command -v nvcc >/dev/null && nvcc --version | tail -1

if [[ -n "${INN_GPU_PREBUILT:-}" ]]; then
    bin="$INN_GPU_PREBUILT"
    echo "== prebuilt binaries in $bin"
else
    echo "== build ($build)"
    nvcc_bin="$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)"
    start=$SECONDS
    cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_COMPILER="$nvcc_bin" \
        -DCMAKE_CUDA_ARCHITECTURES=native -DINN_BUILD_CUDA_TESTS=ON -DINN_BUILD_TESTS=OFF \
        -DINN_BUILD_EXAMPLES=OFF -DINN_CHECK_HEADERS=OFF -DINN_CHECK_DOCS=OFF >/dev/null &&
        cmake --build "$build" -j"$(nproc)" --target inn_cuda_tests inn_gpu_bench ||
        { echo "gpu_check: build failed"; exit 1; }
    echo "build: $((SECONDS - start)) s"
    bin="$build"
fi

echo "== FrEIA's golden files on the device"
log="$(mktemp)"
INN_TEST_DATA_DIR="$root/tests/data" timeout 300 "$bin/inn_cuda_tests" >"$log" 2>&1
rc=$?
grep "inn-parity-cuda" "$log" | sort
grep -E "test cases|assertions" "$log" | tail -2
if [[ $rc -ne 0 ]]; then
    echo "gpu_check: inn_cuda_tests failed (exit $rc)"
    grep -B2 -A12 "FAILED" "$log" | head -80
    status=1
fi

echo "== the README's models on the GPU"
timeout 300 "$bin/inn_gpu_bench" || { echo "gpu_check: inn_gpu_bench failed"; status=1; }

echo "== PyTorch on the same GPU"
py=""
for p in python3 /usr/bin/python3; do
    if command -v "$p" >/dev/null && "$p" -c "import torch; assert torch.cuda.is_available()" \
        2>/dev/null; then py="$p"; break; fi
done
if [[ -n "$py" ]]; then
    timeout 240 "$py" benchmarks/gpu_torch.py || echo "gpu_check: the PyTorch run failed"
else
    echo "(no CUDA build of PyTorch importable here: skipped)"
fi
exit $status
