"""PyTorch on the GPU, for benchmarks/gpu_check.sh: the README's models (compare_pytorch.py's
plain-PyTorch twins, same state_dict layout) in eager mode, float32, median time per call of
forward and inverse at the given batches, timed with CUDA events over back-to-back calls like
inn_gpu_bench. Prints one line per case: "torch <model> <pass> <batch> <microseconds>"."""

import argparse
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from compare_pytorch import MODELS, torch_models  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--batches", default="1,256,4096")
    p.add_argument("--models", default="moons,mnist-cinn,conv-cifar")
    p.add_argument("--rounds", type=int, default=15)
    a = p.parse_args()
    import torch
    if not torch.cuda.is_available():
        print("torch: no CUDA device visible to PyTorch")
        return 0
    torch.set_default_device("cuda")
    build = torch_models()
    print(f"torch {torch.__version__} on {torch.cuda.get_device_name()}")
    for name in a.models.split(","):
        model = build(name).eval()
        _, shape, cond, _ = MODELS[name]
        for batch in [int(b) for b in a.batches.split(",")]:
            if name == "conv-cifar" and batch > 256:
                continue
            x = torch.randn(batch, *shape)
            c = None
            if cond:
                c = torch.zeros(batch, cond)
                c[torch.arange(batch), torch.arange(batch) % cond] = 1
            with torch.inference_mode():
                z, _ = model(x, c) if cond else model(x)
                for direction in ("forward", "inverse"):
                    fn = model.forward if direction == "forward" else model.inverse
                    args = ((x if direction == "forward" else z),) + ((c,) if cond else ())
                    fn(*args)
                    torch.cuda.synchronize()
                    reps = 50 if batch <= 256 else 10
                    times = []
                    for _ in range(a.rounds):
                        t0 = torch.cuda.Event(enable_timing=True)
                        t1 = torch.cuda.Event(enable_timing=True)
                        t0.record()
                        for _ in range(reps):
                            fn(*args)
                        t1.record()
                        t1.synchronize()
                        times.append(1e3 * t0.elapsed_time(t1) / reps)
                    print(f"torch {name} {direction} {batch} {statistics.median(times):.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
