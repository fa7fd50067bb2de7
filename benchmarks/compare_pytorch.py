#!/usr/bin/python3
"""inn against PyTorch, side by side in one run, on the README's three models.

    bash scripts/install-bench-deps.sh && /usr/bin/python3 benchmarks/compare_pytorch.py

What it does, in order:
  1. configures and builds benchmarks/ (build-bench/, -O3 -march=native), recording the compile
     time and peak memory of every benchmark through a /usr/bin/time compiler launcher;
  2. measures this machine's floors with bench_floors: the single-core FLOP peak (an FMA loop;
     Eigen's best SGEMM is shown beside it) and the single-core read bandwidth;
  3. per model: builds it in plain PyTorch (below), writes its state_dict to a safetensors file,
     has the C++ side load it (inn::load_safetensors) and run forward and inverse on the same
     inputs, and checks that z, log|det J|, the reconstruction and the inverse's log|det| agree;
  4. times both sides in the same run: the C++ benchmark (Google Benchmark, medians of
     repetitions) and PyTorch in two worker processes, "as found" (the environment inherited,
     eager mode) and "best" (OPENBLAS_L2_SIZE unset, OPENBLAS_CORETYPE set to whichever core
     type this CPU runs fastest, measured: OpenBLAS falls back to SSE3 kernels on a CPU newer
     than itself; glibc malloc tuned to keep large blocks, OpenBLAS threads limited to torch's,
     the better of eager and traced+frozen per case);
  5. prints the table: medians, the ratios PyTorch-best / inn, and each figure as a fraction of
     its floors (model FLOPs / peak, weight bytes / bandwidth);
  6. training (one thread on both sides): per model, one loss evaluation and its backward pass
     on the same weights and batch on both sides, the parameter gradients compared by
     state_dict key (check_gradients: against PyTorch float64 and float32); then alternating
     rounds of inn's training-step benchmarks (forward, max-likelihood loss, backward, Adam lr
     1e-3; both memory modes: store and recompute) and a PyTorch worker timing the same step
     eagerly (torch.optim.Adam's default and foreach updates) and through torch.jit.trace
     (PyTorch 1.13 has no torch.compile); the table of step times, recompute/store, PyTorch/inn
     and, against three times the forward FLOP floor, with the CPU as lscpu names it.

Must run under Debian's /usr/bin/python3 (python3-torch is installed for it). Options: --quick
(fewer repetitions and batches), --only infer|train (one section), --models
moons,mnist-cinn,conv-cifar, --threads 1,2 (inference), --build-dir DIR, --no-build,
--json FILE (all results), --repetitions N.
"""

import argparse
import json
import math
import os
import re
import shlex
import statistics
import struct
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# ------------------------------------------------------------------------------------------------
# Models, in plain PyTorch, with FrEIA's state_dict keys (the C++ side loads them by name)
# ------------------------------------------------------------------------------------------------


def torch_models():
    """Defined lazily so that the parent process can run without importing torch first."""
    import numpy as np
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    def fc_subnet(c_in, c_out):
        return nn.Sequential(nn.Linear(c_in, 512), nn.ReLU(), nn.Linear(512, c_out))

    def conv_subnet(c_in, c_out):
        return nn.Sequential(nn.Conv2d(c_in, 256, 3, padding=1), nn.ReLU(),
                             nn.Conv2d(256, c_out, 3, padding=1))

    def conv_subnet_1x1(c_in, c_out):
        return nn.Sequential(nn.Conv2d(c_in, 256, 1), nn.ReLU(), nn.Conv2d(256, c_out, 1))

    def special_ortho(c, rng):
        q, r = np.linalg.qr(rng.standard_normal((c, c)))
        q = q * np.sign(np.diag(r))
        if np.linalg.det(q) < 0:
            q[:, 0] = -q[:, 0]
        return torch.tensor(q, dtype=torch.float32)

    class AllInOneBlock(nn.Module):
        """FrEIA's AllInOneBlock on vectors: soft permutation, SOFTPLUS global affine, clamp 2."""

        def __init__(self, c, c_cond, rng):
            super().__init__()
            self.len1, self.len2 = c - c // 2, c // 2
            self.clamp = 2.0
            g0 = 2.0 * math.log(math.exp(0.5 * 10.0 * 1.0) - 1)
            self.global_scale = nn.Parameter(torch.full((1, c), g0))
            self.global_offset = nn.Parameter(torch.zeros(1, c))
            w = special_ortho(c, rng)
            self.register_buffer("w_perm", w.contiguous())
            self.register_buffer("w_perm_inv", w.t().contiguous())
            self.subnet = fc_subnet(self.len1 + c_cond, 2 * self.len2)

        def coefficients(self, x1, c):
            u = x1 if c is None else torch.cat([x1, c], 1)
            a = self.subnet(u) * 0.1
            s = self.clamp * torch.tanh(a[:, :self.len2] / self.clamp)
            return s, a[:, self.len2:]

        def sigma(self):
            return 0.1 * F.softplus(self.global_scale, beta=0.5)

        def forward(self, x, c=None):
            x1, x2 = x[:, :self.len1], x[:, self.len1:]
            s, t = self.coefficients(x1, c)
            y = torch.cat([x1, x2 * torch.exp(s) + t], 1)
            sig = self.sigma()
            y = F.linear(y * sig + self.global_offset, self.w_perm)
            return y, s.sum(1) + torch.log(sig).sum()

        def inverse(self, y, c=None):
            sig = self.sigma()
            u = (F.linear(y, self.w_perm_inv) - self.global_offset) / sig
            x1, x2 = u[:, :self.len1], u[:, self.len1:]
            s, t = self.coefficients(x1, c)
            x = torch.cat([x1, (x2 - t) * torch.exp(-s)], 1)
            return x, -s.sum(1) - torch.log(sig).sum()

    class GLOW(nn.Module):
        """FrEIA's GLOWCouplingBlock with the ATAN soft clamp."""

        def __init__(self, c, subnet, clamp):
            super().__init__()
            self.len1 = int(round(c * 0.5))
            self.len2 = c - self.len1
            self.clamp = clamp
            self.subnet1 = subnet(self.len1, 2 * self.len2)
            self.subnet2 = subnet(self.len2, 2 * self.len1)

        def _st(self, a, n):
            return self.clamp * (0.636 * torch.atan(a[:, :n])), a[:, n:]

        @staticmethod
        def _sum(s):
            return s.reshape(s.shape[0], -1).sum(1)

        def forward(self, x):
            x1, x2 = x[:, :self.len1], x[:, self.len1:]
            s2, t2 = self._st(self.subnet2(x2), self.len1)
            y1 = torch.exp(s2) * x1 + t2
            s1, t1 = self._st(self.subnet1(y1), self.len2)
            y2 = torch.exp(s1) * x2 + t1
            return torch.cat([y1, y2], 1), self._sum(s1) + self._sum(s2)

        def inverse(self, y):
            y1, y2 = y[:, :self.len1], y[:, self.len1:]
            s1, t1 = self._st(self.subnet1(y1), self.len2)
            x2 = (y2 - t1) * torch.exp(-s1)
            s2, t2 = self._st(self.subnet2(x2), self.len1)
            x1 = (y1 - t2) * torch.exp(-s2)
            return torch.cat([x1, x2], 1), -self._sum(s1) - self._sum(s2)

    class PermuteRandom(nn.Module):
        def __init__(self, c, seed):
            super().__init__()
            p = np.random.RandomState(seed).permutation(c)
            self.register_buffer("perm", torch.tensor(p, dtype=torch.int64))
            self.register_buffer("perm_inv", torch.tensor(np.argsort(p), dtype=torch.int64))

        def forward(self, x):
            return x[:, self.perm]

        def inverse(self, y):
            return y[:, self.perm_inv]

    class Downsample(nn.Module):
        """IRevNetDownsampling: FrEIA's one-hot kernel in the state_dict; the work is done by
        pixel_unshuffle, which orders channels as 4c + 2dy + dx too."""

        def __init__(self, c):
            super().__init__()
            k = torch.zeros(4 * c, 1, 2, 2)
            for i in range(4 * c):
                k[i, 0, (i % 4) // 2, i % 2] = 1
            self.register_buffer("downsample_kernel", k)

    class Chain(nn.Module):
        """FrEIA's SequenceINN: module_list.<k>, log-dets summed."""

        def __init__(self, blocks, conditional):
            super().__init__()
            self.module_list = nn.ModuleList(blocks)
            self.conditional = conditional

        def forward(self, x, c=None):
            ljd = torch.zeros(x.shape[0])
            for m in self.module_list:
                x, j = m(x, c) if self.conditional else m(x)
                ljd = ljd + j
            return x, ljd

        def inverse(self, z, c=None):
            ljd = torch.zeros(z.shape[0])
            for m in reversed(self.module_list):
                z, j = m.inverse(z, c) if self.conditional else m.inverse(z)
                ljd = ljd + j
            return z, ljd

    class ConvINN(nn.Module):
        """examples/conv_inn.cpp: modules in the C++ plan's forward order (module_list.<k>)."""

        def __init__(self):
            super().__init__()
            mods = []
            for k in range(4):
                mods += [GLOW(3, conv_subnet, 1.2), PermuteRandom(3, k)]
            mods.append(Downsample(3))
            for k in range(12):
                mods += [GLOW(12, conv_subnet_1x1 if k % 2 == 0 else conv_subnet, 1.2),
                         PermuteRandom(12, k)]
            mods += [nn.Identity(), nn.Identity()]  # Flatten, Split
            for k in range(12):
                mods += [GLOW(768, fc_subnet, 2.0), PermuteRandom(768, k)]
            mods.append(nn.Identity())  # Concat
            self.module_list = nn.ModuleList(mods)

        def forward(self, x):
            ljd = torch.zeros(x.shape[0])
            m = self.module_list
            for k in range(8):
                x, j = (m[k](x), 0) if k % 2 else m[k](x)
                ljd = ljd + j
            x = F.pixel_unshuffle(x, 2)  # channel 4c + 2dy + dx, as FrEIA's one-hot convolution
            for k in range(9, 33):
                x, j = (m[k](x), 0) if k % 2 == 0 else m[k](x)
                ljd = ljd + j
            x = x.reshape(x.shape[0], -1)
            x1, x2 = x[:, :768], x[:, 768:]
            for k in range(35, 59):
                x1, j = (m[k](x1), 0) if k % 2 == 0 else m[k](x1)
                ljd = ljd + j
            return torch.cat([x1, x2], 1), ljd

        def inverse(self, z):
            ljd = torch.zeros(z.shape[0])
            m = self.module_list
            x1, x2 = z[:, :768], z[:, 768:]
            for k in reversed(range(35, 59)):
                x1, j = (m[k].inverse(x1), 0) if k % 2 == 0 else m[k].inverse(x1)
                ljd = ljd + j
            x = torch.cat([x1, x2], 1).reshape(z.shape[0], 12, 16, 16)
            for k in reversed(range(9, 33)):
                x, j = (m[k].inverse(x), 0) if k % 2 == 0 else m[k].inverse(x)
                ljd = ljd + j
            x = F.pixel_shuffle(x, 2)
            for k in reversed(range(8)):
                x, j = (m[k].inverse(x), 0) if k % 2 else m[k].inverse(x)
                ljd = ljd + j
            return x, ljd

    def build(name, seed=0):
        torch.manual_seed(seed)
        rng = np.random.RandomState(seed)
        if name == "moons":
            return Chain([AllInOneBlock(2, 0, rng) for _ in range(8)], False)
        if name == "mnist-cinn":
            return Chain([AllInOneBlock(784, 10, rng) for _ in range(12)], True)
        if name == "conv-cifar":
            net = ConvINN()
            # The last layer of every subnet starts small, as FrEIA's examples initialise it
            # (near zero): with PyTorch's default init the 28 stacked couplings overflow float
            # precision (|z| ~ 1e10, reconstructions off by 1e20 on either side) and no two
            # implementations could agree. Timing does not depend on the values.
            with torch.no_grad():
                for m in net.modules():
                    if isinstance(m, GLOW):
                        for sub in (m.subnet1, m.subnet2):
                            sub[2].weight.mul_(0.1)
                            sub[2].bias.mul_(0.1)
            return net
        raise ValueError(name)

    return build


# What each kernel buys: the model and batch each switch is measured on (inn alone, forward,
# one thread; the switch off for the whole run, see inn::nn::kernels::tuning() in
# include/inn/nn/kernels/switches.hpp).
ABLATIONS = {
    "moons": [("mlp", 256), ("mlp", 1), ("relu_units", 256), ("relu_units", 1)],
    "mnist-cinn": [("gemm", 256), ("pack_weights", 256), ("fuse_activation", 256),
                   ("share_buffers", 256), ("weight_walk", 1)],
    "conv-cifar": [("conv", 1), ("gemm", 16), ("fuse_activation", 1), ("fuse_coupling", 16),
                   ("fuse_elementwise", 16), ("views", 16), ("share_buffers", 64)],
}

MODELS = {
    # name: (benchmark executable, input shape per sample, condition size, batches)
    "moons": ("bench_moons", (2,), 0, [1, 16, 256, 4096]),
    "mnist-cinn": ("bench_mnist", (784,), 10, [1, 16, 256, 4096]),
    "conv-cifar": ("bench_conv", (3, 32, 32), 0, [1, 16, 64]),
}

# ------------------------------------------------------------------------------------------------
# safetensors, the tiny writer and reader the comparison needs
# ------------------------------------------------------------------------------------------------


def write_safetensors(path, tensors):
    """tensors: {name: torch.Tensor}; float32 and int64 only."""
    import torch
    header, blobs, offset = {}, [], 0
    for name, t in tensors.items():
        t = t.detach().contiguous().cpu()
        dtype = {torch.float32: "F32", torch.int64: "I64"}[t.dtype]
        data = t.numpy().tobytes()
        header[name] = {"dtype": dtype, "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def read_safetensors(path):
    import numpy as np
    import torch
    with open(path, "rb") as f:
        raw = f.read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        a, b = e["data_offsets"]
        dt = {"F32": np.float32, "I64": np.int64}[e["dtype"]]
        out[name] = torch.from_numpy(np.frombuffer(raw[8 + n + a:8 + n + b], dtype=dt).copy()
                                     .reshape(e["shape"]))
    return out


# ------------------------------------------------------------------------------------------------
# Timing helpers
# ------------------------------------------------------------------------------------------------


def time_median(fn, reps, rep_seconds):
    """Median over `reps` repetitions of the mean time of one call (seconds); each repetition
    runs enough calls to last about `rep_seconds`."""
    fn()
    fn()
    n, dt = 1, 0.0
    while True:
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        dt = time.perf_counter() - t0
        if dt > rep_seconds / 4 or n >= 1 << 20:
            break
        n *= 2
    per_rep = max(1, int(n * rep_seconds / max(dt, 1e-9)))
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        for _ in range(per_rep):
            fn()
        times.append((time.perf_counter() - t0) / per_rep)
    return statistics.median(times)


# ------------------------------------------------------------------------------------------------
# The PyTorch worker: runs in its own process so that environment and malloc settings apply
# ------------------------------------------------------------------------------------------------


def torch_worker(cfg):
    if cfg.get("train"):
        return torch_train_worker(cfg)
    import torch
    try:
        import threadpoolctl
    except ImportError:
        threadpoolctl = None
    build = torch_models()
    model = build(cfg["model"])
    state = read_safetensors(cfg["weights"])
    model.load_state_dict(state)
    model.eval()
    _, shape, cond, _ = MODELS[cfg["model"]]
    blas = None
    if threadpoolctl is not None:
        # Load OpenBLAS (a first matmul) before asking which kernel it runs.
        torch.randn(64, 64) @ torch.randn(64, 64)
        info = [i for i in threadpoolctl.threadpool_info() if i.get("internal_api") == "openblas"]
        if info:
            blas = {k: info[0].get(k) for k in ("version", "architecture", "num_threads",
                                                "threading_layer")}
    results = {"blas": blas, "torch": torch.__version__, "cases": []}
    torch.manual_seed(1)
    for threads in cfg["threads"]:
        torch.set_num_threads(threads)
        limiter = None
        if cfg["limit_blas"] and threadpoolctl is not None:
            limiter = threadpoolctl.threadpool_limits(limits=threads, user_api="blas")
        for batch in cfg["batches"]:
            x = torch.randn(batch, *shape)
            c = None
            if cond:
                c = torch.zeros(batch, cond)
                c[torch.arange(batch), torch.arange(batch) % cond] = 1
            with torch.inference_mode():
                z, _ = model(x, c) if cond else model(x)
            for direction in ("fwd", "inv"):
                inp = x if direction == "fwd" else z
                fn_eager = getattr(model, "forward" if direction == "fwd" else "inverse")
                args = (inp, c) if cond else (inp,)
                best = {}
                with torch.inference_mode():
                    best["eager"] = time_median(lambda: fn_eager(*args), cfg["reps"],
                                                cfg["rep_seconds"])
                if cfg["traced"]:
                    try:
                        frozen = freeze(model, direction, args)
                        with torch.inference_mode():
                            best["frozen"] = time_median(lambda: frozen(*args), cfg["reps"],
                                                         cfg["rep_seconds"])
                    except Exception as e:  # noqa: BLE001 - report, keep eager
                        print(f"  (tracing {cfg['model']} {direction} failed: {e})",
                              file=sys.stderr)
                mode = min(best, key=best.get)
                results["cases"].append({"direction": direction, "batch": batch,
                                         "threads": threads, "seconds": best[mode],
                                         "mode": mode, "all": best})
        if limiter is not None:
            limiter.restore_original_limits()
    return results


def ml_loss(z, ljd):
    """inn::train::max_likelihood: mean over the batch of (0.5 |z|^2 - log|det J|) / dims."""
    z = z.reshape(z.shape[0], -1)
    return (0.5 * z.pow(2).sum(1) - ljd).mean() / z.shape[1]


def train_batch(name, batch, seed=1):
    """The batch a training case runs on: normal inputs, one-hot conditions (as the C++ side)."""
    import torch
    _, shape, cond, _ = MODELS[name]
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, *shape, generator=g)
    c = None
    if cond:
        c = torch.zeros(batch, cond)
        c[torch.arange(batch), torch.arange(batch) % cond] = 1
    return x, c


# The PyTorch variants of a training step: eager with torch.optim.Adam's default (per-tensor)
# update, eager with its multi-tensor (foreach) update, and the model traced by torch.jit.trace
# (autograd through the TorchScript graph). torch.compile would be the modern candidate, but
# PyTorch 1.13 has none.
TRAIN_VARIANTS = ("eager", "foreach", "traced")


def torch_train_worker(cfg):
    """Times one training step (forward, loss, backward, Adam lr 1e-3) per batch and variant,
    each variant from the same loaded weights, on one thread."""
    import torch
    try:
        import threadpoolctl
    except ImportError:
        threadpoolctl = None
    build = torch_models()
    state = read_safetensors(cfg["weights"])
    torch.set_num_threads(1)
    limiter = None
    if cfg["limit_blas"] and threadpoolctl is not None:
        limiter = threadpoolctl.threadpool_limits(limits=1, user_api="blas")
    _, _, cond, _ = MODELS[cfg["model"]]
    results = {"torch": torch.__version__, "cases": []}
    for batch in cfg["batches"]:
        x, c = train_batch(cfg["model"], batch)
        args = (x, c) if cond else (x,)
        times = {}
        for variant in cfg["variants"]:
            model = build(cfg["model"])
            model.load_state_dict(state)
            model.train()
            opt = torch.optim.Adam(model.parameters(), lr=1e-3,
                                   foreach=True if variant == "foreach" else None)
            fwd = model
            if variant == "traced":
                try:
                    fwd = torch.jit.trace(model, args, check_trace=False)
                except Exception as e:  # noqa: BLE001 - report, keep the others
                    print(f"  (tracing {cfg['model']} for training failed: {e})", file=sys.stderr)
                    continue

            def step():
                opt.zero_grad(set_to_none=True)
                z, ljd = fwd(*args)
                ml_loss(z, ljd).backward()
                opt.step()
            times[variant] = time_median(step, cfg["reps"], cfg["rep_seconds"])
        results["cases"].append({"batch": batch, "all": times})
    if limiter is not None:
        limiter.restore_original_limits()
    return results


def freeze(model, direction, args):
    import torch

    class Direction(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, *a):
            return self.m(*a) if direction == "fwd" else self.m.inverse(*a)

    with torch.no_grad():
        traced = torch.jit.trace(Direction(model).eval(), args, check_trace=False)
        return torch.jit.optimize_for_inference(torch.jit.freeze(traced.eval()))


# ------------------------------------------------------------------------------------------------
# The parent: build, check, time, print
# ------------------------------------------------------------------------------------------------


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, text=True, **kw)


def build(args):
    bdir = args.build_dir
    log = os.path.join(bdir, "compile-times.log")
    if not os.path.exists(os.path.join(bdir, "CMakeCache.txt")):
        os.makedirs(bdir, exist_ok=True)
        launcher = f"/usr/bin/time;-a;-o;{log};-f;%e %M %C"
        run(["cmake", "-S", ROOT, "-B", bdir, "-DCMAKE_BUILD_TYPE=Release",
             "-DINN_BUILD_BENCHMARKS=ON", "-DINN_BUILD_TESTS=OFF", "-DINN_BUILD_EXAMPLES=OFF",
             f"-DINN_BENCHMARK_ARCH={args.arch}", f"-DCMAKE_CXX_COMPILER_LAUNCHER={launcher}"],
            stdout=subprocess.DEVNULL)
    targets = ["bench_floors"] + [MODELS[m][0] for m in args.models]
    print(f"building {', '.join(targets)} in {bdir} (compile times in {log}) ...", flush=True)
    # The compiler's output goes to a file: shown only if the build fails.
    with open(os.path.join(bdir, "build-output.log"), "w") as out:
        r = subprocess.run(["cmake", "--build", bdir, "-j1", "--target", *targets], stdout=out,
                           stderr=subprocess.STDOUT)
    if r.returncode != 0:
        with open(os.path.join(bdir, "build-output.log")) as f:
            sys.stderr.write(f.read()[-20000:])
        raise SystemExit(f"building the benchmarks failed (log: {bdir}/build-output.log)")


def compile_costs(bdir):
    """Latest compile of each benchmark source: (seconds, peak MiB) from the launcher's log."""
    costs = {}
    path = os.path.join(bdir, "compile-times.log")
    if not os.path.exists(path):
        return costs
    with open(path) as f:
        for line in f:
            m = re.match(r"([\d.]+) (\d+) .*?(bench_\w+)\.cpp", line)
            if m:
                costs[m.group(3)] = (float(m.group(1)), int(m.group(2)) / 1024)
    return costs


def gbench(exe, extra, reps, min_time, interleave=False):
    """Medians of `reps` repetitions per case. `interleave`: the cases' repetitions in a random
    order, so that a slow spell of a shared host falls on all of them alike (cases compared with
    each other, such as one thread against two, are then measured side by side in time)."""
    out = run([exe, *extra, f"--benchmark_repetitions={reps}", "--benchmark_format=json",
               f"--benchmark_min_time={min_time}", "--benchmark_report_aggregates_only=true",
               f"--benchmark_enable_random_interleaving={str(interleave).lower()}"],
              stdout=subprocess.PIPE).stdout
    res = {}
    for b in json.loads(out)["benchmarks"]:
        if b.get("aggregate_name") == "median":
            name = b["run_name"].replace("/process_time", "").replace("/real_time", "")
            unit = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0}[b["time_unit"]]
            res[name] = {"seconds": b["real_time"] * unit, "cpu": b["cpu_time"] * unit,
                         **{k: v for k, v in b.items() if k in ("FLOP/s", "B/s")}}
    return res


def floors(args):
    exe = os.path.join(args.build_dir, "benchmarks", "bench_floors")
    r = gbench(exe, [], args.reps, 0.2)
    peak = r["floors/fma_peak"]["FLOP/s"]
    sgemm = max(v["FLOP/s"] for k, v in r.items() if k.startswith("floors/sgemm"))
    bw = r["floors/read_bw"]["B/s"]
    return {"peak_flops": peak, "sgemm_flops": sgemm, "read_bw": bw}


def cycled_read_bw(args, sizes):
    """One core's read bandwidth over a buffer of each size (bytes), read again and again: what
    the last-level cache keeps from one pass to the next counts, as for a model's weights from
    one call to the next. {size: bytes per second}."""
    exe = os.path.join(args.build_dir, "benchmarks", "bench_floors")
    r = gbench(exe, ["--read-bytes=" + ",".join(str(n) for n in sizes),
                     "--benchmark_filter=read_bw_cycled"], args.reps, 0.2)
    return {n: r[f"floors/read_bw_cycled/{n}"]["B/s"] for n in sizes}


def streamed_bytes(state):
    """Bytes of float weights one direction reads (one of w_perm / w_perm_inv; not the unused
    one-hot downsampling kernel)."""
    return sum(t.numel() * 4 for k, t in state.items()
               if t.dtype.is_floating_point and not k.endswith("w_perm_inv"))


def check_model(name, exe, weights, tmp):
    """Same weights, same inputs: the C++ outputs must agree with PyTorch's."""
    import torch
    build_model = torch_models()
    model = build_model(name)
    model.load_state_dict(read_safetensors(weights))
    _, shape, cond, _ = MODELS[name]
    torch.manual_seed(2)
    n = 8 if name == "conv-cifar" else 40  # moons: 40 rows, so that two threads split them
    x = torch.randn(n, *shape)
    tensors = {"x": x.reshape(n, -1)}
    c = None
    if cond:
        c = torch.zeros(n, cond)
        c[torch.arange(n), torch.arange(n) % cond] = 1
        tensors["c"] = c
    inp, out = os.path.join(tmp, f"{name}-in.safetensors"), os.path.join(tmp, f"{name}-out.safetensors")
    write_safetensors(inp, tensors)
    run([exe, f"--weights={weights}", f"--check={inp}:{out}"])
    cpp = read_safetensors(out)
    with torch.no_grad():
        z, ljd = model(x, c) if cond else model(x)
        xr, ljd_r = model.inverse(z, c) if cond else model.inverse(z)
    z, xr = z.reshape(n, -1), xr.reshape(n, -1)

    def rel(a, b):
        return float((a - b).abs().max() / b.abs().max().clamp_min(1e-12))
    errs = {"z": rel(cpp["z"], z), "ljd": rel(cpp["ljd"], ljd), "x_rev": rel(cpp["x_rev"], xr),
            "ljd_rev": rel(cpp["ljd_rev"], ljd_r), "z (inn, 2 threads)": rel(cpp["z_threads2"], z)}
    ok = all(v < 1e-3 for v in errs.values())
    # bfloat16 weights (one sample per call) against inn's float32 results.
    x_flat = x.reshape(n, -1)
    errs_bf16 = {"z": rel(cpp["z_bf16"], cpp["z"]), "ljd": rel(cpp["ljd_bf16"], cpp["ljd"]),
                 "x_rev": rel(cpp["x_rev_bf16"], x_flat),
                 "ljd_rev": rel(cpp["ljd_rev_bf16"], cpp["ljd_rev"])}
    return ok, errs, errs_bf16


# Batches of the gradient comparison (small enough for float64 references of the big models).
GRAD_BATCH = {"moons": 100, "mnist-cinn": 32, "conv-cifar": 4}
GRAD_TOLERANCE = 1e-4   # per tensor: max|g_inn - g_ref| / max|g_ref|
KINK_L2_TOLERANCE = 1e-3  # all parameters but a kink's row: |g_inn - g_ref| / |g_ref| (2-norms)


def check_gradients(name, exe, weights, tmp):
    """Same weights, same batch: one evaluation of the maximum-likelihood loss and its backward
    pass on both sides, inn in both memory modes (store, recompute), PyTorch in float32 and
    float64. Per tensor the error is max|g_inn - g_ref| / max|g_ref|; the reference is PyTorch's
    float64 gradient (the exact one, to float32's eyes), PyTorch float32's own error against it
    is the yardstick of float rounding.

    ReLU makes a gradient jump where a hidden pre-activation crosses zero. One that lies within
    rounding of zero (3e-7 where the typical one is 0.4: it happens among the ~10^5-10^7
    pre-activations of a batch) takes either side depending on the last bit of its input, and
    then one hidden unit's row of that layer's gradient differs by O(1) relative, and earlier
    layers' gradients slightly through it. PyTorch float32 itself does so against float64 on
    conv-cifar; recompute mode, whose inputs come back through the inverse, rounded
    differently, does so more often. Such a difference is rounding, not a wrong gradient. So a
    mode passes if every tensor is within GRAD_TOLERANCE, or if the worst tensor's excess sits in
    one hidden unit whose pre-activation PyTorch float64 finds within 1e-5 of the layer's median
    magnitude from zero (a kink), and all parameters together, that unit's row left out, are
    within KINK_L2_TOLERANCE (what the flip changes upstream is of that order)."""
    import torch
    build_model = torch_models()
    n = GRAD_BATCH[name]
    x, c = train_batch(name, n, seed=3)
    tensors = {"x": x.reshape(n, -1)}
    if c is not None:
        tensors["c"] = c
    inp, out = (os.path.join(tmp, f"{name}-grad-in.safetensors"),
                os.path.join(tmp, f"{name}-grad-out.safetensors"))
    write_safetensors(inp, tensors)
    run([exe, f"--weights={weights}", f"--grad={inp}:{out}"])
    cpp = read_safetensors(out)
    pre = {}  # float64 outputs of every layer that feeds a ReLU, by module name

    def torch_grads(dtype):
        model = build_model(name).to(dtype)
        model.load_state_dict(read_safetensors(weights))
        hooks = []
        if dtype == torch.float64:
            for mname, m in model.named_modules():
                if isinstance(m, torch.nn.Sequential):
                    for i in range(len(m) - 1):
                        if isinstance(m[i + 1], torch.nn.ReLU):
                            key = f"{mname}.{i}"
                            hooks.append(m[i].register_forward_hook(
                                lambda _m, _i, o, key=key: pre.__setitem__(key, o.detach())))
        args = (x.to(dtype),) + ((c.to(dtype),) if c is not None else ())
        loss = ml_loss(*model(*args))
        loss.backward()
        for h in hooks:
            h.remove()
        return float(loss), {k: p.grad.double() for k, p in model.named_parameters()}

    loss32, g32 = torch_grads(torch.float32)
    loss64, g64 = torch_grads(torch.float64)

    def errors(a, ref):
        return {k: float((a[k].double() - ref[k]).abs().max() / ref[k].abs().max().clamp_min(1e-300))
                for k in ref}

    def l2(a, ref, skip=None):
        """Relative 2-norm error of all parameters; `skip`: a kink, whose unit's row of its
        layer's weight and bias is left out."""
        def diff(k):
            d = a[k].double() - ref[k]
            if skip and k.rsplit(".", 1)[0] == skip["layer"]:
                d[skip["unit"]] = 0
            return d
        d = sum(float(diff(k).pow(2).sum()) for k in ref)
        return math.sqrt(d / sum(float(ref[k].pow(2).sum()) for k in ref))

    def kink(a, key):
        """The hidden unit the worst error of `key` sits in, if it is at a ReLU kink."""
        layer = key.rsplit(".", 1)[0]
        if layer not in pre:
            return None
        d = (a[key].double() - g64[key]).abs()
        unit = int(d.reshape(d.shape[0], -1).max(1).values.argmax())
        p = pre[layer]
        closest = float(p[:, unit].abs().min())
        typical = float(p.abs().median())
        if closest > 1e-5 * typical:
            return None
        return {"layer": layer, "unit": unit, "pre_activation": closest, "typical": typical}

    t32 = errors(g32, g64)
    res = {"batch": n, "loss_torch": loss32, "loss_torch64": loss64,
           "torch32": {"worst": max(t32.values()), "l2": l2(g32, g64)}}
    ok = True
    for mode in ("store", "recompute"):
        mine = {k[len(mode) + 1:]: v for k, v in cpp.items() if k.startswith(mode + ".")}
        loss = float(mine.pop("loss"))
        if set(mine) != set(g64):
            missing, extra = sorted(set(g64) - set(mine)), sorted(set(mine) - set(g64))
            raise SystemExit(f"{name}: inn's trainable parameters differ from PyTorch's "
                             f"(inn lacks {missing[:5]}, has extra {extra[:5]})")
        e = errors(mine, g64)
        worst_key = max(e, key=e.get)
        r = {"loss": loss, "worst": e[worst_key], "worst_key": worst_key, "l2": l2(mine, g64),
             "vs_torch32": max(errors(mine, g32).values()), "kink": None}
        if r["worst"] > GRAD_TOLERANCE:
            r["kink"] = kink(mine, worst_key)
            if r["kink"]:
                r["kink"]["l2_without"] = l2(mine, g64, r["kink"])
        r["ok"] = (r["worst"] <= GRAD_TOLERANCE or
                   (r["kink"] is not None and r["kink"]["l2_without"] <= KINK_L2_TOLERANCE)) and \
            abs(loss - loss64) <= GRAD_TOLERANCE * max(1.0, abs(loss64))
        ok = ok and r["ok"]
        res[mode] = r
    return ok, res


def describe_gradients(name, g):
    """One paragraph: the gradient check's figures for one model."""
    lines = [f"{name}: gradients of one loss evaluation (batch {g['batch']}) against PyTorch's "
             "float64 gradient, worst tensor's max|g - g_ref| / max|g_ref| (all parameters' "
             "relative 2-norm error):"]
    t = g["torch32"]
    lines.append(f"    PyTorch float32: {t['worst']:.1e} ({t['l2']:.1e})")
    for mode in ("store", "recompute"):
        r = g[mode]
        line = (f"    inn {mode}: {r['worst']:.1e} ({r['l2']:.1e}); against PyTorch float32 "
                f"{r['vs_torch32']:.1e}; loss {r['loss']:.7f} (PyTorch {g['loss_torch64']:.7f})")
        k = r["kink"]
        if k and r["ok"]:
            line += (f"\n      -> above {GRAD_TOLERANCE:g} in {r['worst_key']} only through a ReLU "
                     f"kink: unit {k['unit']} of {k['layer']} has a pre-activation of "
                     f"{k['pre_activation']:.1e} (median magnitude {k['typical']:.2f}), whose side "
                     f"rounding decides; without its row: {k['l2_without']:.1e} (2-norm)")
        lines.append(line + ("" if r["ok"] else "   <- DISAGREES"))
    return "\n".join(lines)


def thread_scaling(cpp):
    """{"model/dir/batch:b": one thread's time / two threads'}, the median of the per-round
    ratios (each round measures both side by side), as for the ablations."""
    out = {}
    for key, one in cpp.items():
        if key.endswith("/threads:1") and key[:-1] + "2" in cpp:
            two = cpp[key[:-1] + "2"]
            out[key[:-len("/threads:1")]] = statistics.median(
                a / b for a, b in zip(one["rounds"], two["rounds"]))
    return out


def print_targets(rows, handwritten, scaling):
    """The issues' targets (single thread unless said), each with the figure it is read from."""
    def row(name, d, b, t=1):
        return next((r for r in rows if r[:4] == (name, d, b, t)), None)

    # Each appends (text, met, figure) to `checks` where the run has the rows it reads.
    def faster(checks, name, d, b, target, label=None):
        r = row(name, d, b)
        if r and r[4]:
            ratio = r[6] / r[4]
            checks.append((f"{label or f'{name} {d} batch {b}'}: >= {target}x PyTorch best",
                           ratio >= target, f"{ratio:.0f}x" if target >= 100 else f"{ratio:.2f}x"))

    def near_floor(checks, name, d, b, limit):
        r = row(name, d, b)
        if r and r[4]:
            checks.append((f"{name} {d} batch {b}: within {limit}x of the FLOP floor",
                           r[4] <= limit * r[8], f"{r[4] / r[8]:.2f}x"))

    def threads(checks, name, d, b, target):
        ratio = scaling.get(f"{name}/{d}/batch:{b}")
        if ratio:
            checks.append((f"{name} {d} batch {b}: two threads >= {target}x one",
                           ratio >= target, f"{ratio:.2f}x"))

    def show(title, checks):
        if checks:
            print()
            print(title)
            for text, ok, figure in checks:
                print(f"  [{'met' if ok else 'NOT met'}] {text}: {figure}")

    checks = []
    for d in ("fwd", "inv"):
        faster(checks, "moons", d, 1, 200)
        r = row("moons", d, 1)
        if r and r[4] and handwritten.get(1):
            checks.append((f"moons {d} batch 1: within 2x of the hand-written loop",
                           r[4] <= 2 * handwritten[1], f"{r[4] / handwritten[1]:.2f}x"))
        for name, b, target in (("mnist-cinn", 1, 1.5), ("conv-cifar", 1, 1.5),
                                ("conv-cifar", 16, 1.2)):
            faster(checks, name, d, b, target)
        for name in ("moons", "mnist-cinn"):
            near_floor(checks, name, d, 256, 1.5)
        for name, b in (("moons", 256), ("mnist-cinn", 256), ("conv-cifar", 64)):
            threads(checks, name, d, b, 1.6)
    show("targets of the issue:", checks)

    # The portable-speed issue's, on this CPU (it asks for them on every CPU kind).
    checks = []
    for d in ("fwd", "inv"):
        faster(checks, "moons", d, 1, 200)
        faster(checks, "conv-cifar", d, 16, 1.5)
        for name in ("moons", "mnist-cinn"):
            near_floor(checks, name, d, 256, 1.25)
            threads(checks, name, d, 256, 1.7)
        faster(checks, "mnist-cinn", d + "-bf16", 1, 2.5,
               f"mnist-cinn {d} batch 1, bfloat16 weights")
    show(f"targets of the portable-speed issue, on {lscpu_model()}:", checks)


def merge_gbench(rounds):
    """Per case: the median over rounds of each round's median."""
    out = {}
    for key in rounds[0]:
        vals = [r[key] for r in rounds if key in r]
        out[key] = dict(vals[0])
        out[key]["seconds"] = statistics.median(v["seconds"] for v in vals)
        out[key]["cpu"] = statistics.median(v["cpu"] for v in vals)
        out[key]["rounds"] = [v["seconds"] for v in vals]
    return out


def merge_torch(rounds):
    """Per case and mode (eager, frozen): the median over rounds; then the faster mode."""
    merged = {"blas": rounds[0]["blas"], "torch": rounds[0]["torch"], "cases": []}
    for case in rounds[0]["cases"]:
        ident = (case["direction"], case["batch"], case["threads"])
        same = [c for r in rounds for c in r["cases"]
                if (c["direction"], c["batch"], c["threads"]) == ident]
        modes = {m: statistics.median(c["all"][m] for c in same if m in c["all"])
                 for m in case["all"]}
        mode = min(modes, key=modes.get)
        merged["cases"].append({"direction": ident[0], "batch": ident[1], "threads": ident[2],
                                "seconds": modes[mode], "mode": mode, "all": modes,
                                "rounds": [c["all"].get(mode) for c in same]})
    return merged


def fmt_time(s):
    if s is None:
        return "-"
    if s < 1e-3:
        return f"{s * 1e6:.2f} us" if s < 1e-5 else f"{s * 1e6:.1f} us"
    return f"{s * 1e3:.2f} ms" if s < 1e-1 else f"{s * 1e3:.0f} ms"


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--build-dir", default=os.path.join(ROOT, "build-bench"))
    p.add_argument("--arch", default="native",
                   help="-march= of the benchmarks when --build-dir is configured (x86-64: as a "
                        "distribution package is built; the kernels pick their vector target at "
                        "run time)")
    p.add_argument("--models", default="moons,mnist-cinn,conv-cifar")
    p.add_argument("--threads", default="1,2")
    p.add_argument("--batches", default=None, help="override every model's batch list")
    p.add_argument("--repetitions", type=int, default=None)
    p.add_argument("--rounds", type=int, default=None,
                   help="alternating inn / PyTorch rounds per model (default 3, --quick 1)")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--no-build", action="store_true")
    p.add_argument("--no-traced", action="store_true", help="PyTorch eager only")
    p.add_argument("--no-ablations", action="store_true", help="skip the kernel on/off runs")
    p.add_argument("--only", choices=("all", "infer", "train"), default="all",
                   help="inference (forward/inverse) only, training only, or both (default)")
    p.add_argument("--json", default=None)
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()

    if args.worker:
        with open(args.worker) as f:
            cfg = json.load(f)
        res = torch_worker(cfg)
        with open(cfg["out"], "w") as f:
            json.dump(res, f)
        return 0

    args.models = args.models.split(",")
    args.threads = [int(t) for t in args.threads.split(",")]
    args.reps = args.repetitions or (3 if args.quick else 7)
    args.rounds = args.rounds or (1 if args.quick else 3)
    args.round_reps = max(3, -(-args.reps // args.rounds))  # repetitions per round
    rep_seconds = 0.05 if args.quick else 0.15
    if not args.no_build:
        build(args)
    costs = compile_costs(args.build_dir)
    load = os.getloadavg()
    print(f"machine: {cpu_name()}, {os.cpu_count()} cores; load average {load[0]:.2f} "
          f"{load[1]:.2f} {load[2]:.2f} at the start", flush=True)
    fl = floors(args)
    print(f"floors: FMA peak {fl['peak_flops'] / 1e9:.1f} GFLOP/s (Eigen SGEMM best "
          f"{fl['sgemm_flops'] / 1e9:.1f}), read bandwidth {fl['read_bw'] / 1e9:.1f} GB/s "
          "(one core)", flush=True)

    import torch  # noqa: F401 - the parent writes weights and checks outputs
    build_model = torch_models()
    found_env = dict(os.environ)
    best_env = dict(os.environ)
    for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):
        best_env.pop(k, None)
    core, core_timings = fastest_openblas_coretype(best_env)
    if core:
        best_env["OPENBLAS_CORETYPE"] = core
    if core_timings:
        print("OpenBLAS core types (SGEMM 256x784x784, one thread, median): " + ", ".join(
            f"{c or 'its own choice'} ({arch}) {2 * 256 * 784 * 784 / t / 1e9:.1f} GFLOP/s"
            for c, arch, t in core_timings) + f"; PyTorch best runs with {core or 'its own choice'}",
            flush=True)
    # Keep freed large blocks in the heap instead of returning them to the kernel, so that a
    # call does not fault in fresh pages for its temporaries (32 MiB: glibc's largest threshold).
    best_env["GLIBC_TUNABLES"] = ("glibc.malloc.mmap_threshold=33554432:"
                                  "glibc.malloc.trim_threshold=4294967296:glibc.malloc.top_pad=67108864")
    found_vars = ", ".join(f"{k}={found_env[k]}" for k in
                           ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "GLIBC_TUNABLES",
                            "OMP_NUM_THREADS") if k in found_env)
    print("PyTorch as found: " + (found_vars or "no BLAS/malloc variables set"))

    do_infer, do_train = args.only != "train", args.only != "infer"
    rows, everything = [], {"floors": fl, "load_start": load, "models": {},
                            "openblas_core_types": [{"core_type": c, "architecture": a,
                                                     "seconds": t} for c, a, t in core_timings],
                            "openblas_core_type_best": core}
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models if do_infer else []:
            exe_name, shape, cond, batches = MODELS[name]
            if args.batches:
                batches = [int(b) for b in args.batches.split(",")]
            elif args.quick:
                batches = [b for b in batches if b in (1, 16, 256)]
            exe = os.path.join(args.build_dir, "benchmarks", exe_name)
            model = build_model(name)
            state = model.state_dict()
            weights = os.path.join(tmp, f"{name}.safetensors")
            write_safetensors(weights, state)
            ok, errs, errs_bf16 = check_model(name, exe, weights, tmp)
            print(f"{name}: outputs agree with PyTorch: {'yes' if ok else 'NO'} (max relative "
                  "error " + ", ".join(f"{k} {v:.1e}" for k, v in errs.items()) + ")", flush=True)
            print(f"{name}: bfloat16 weights against float32 (batch 1; max error over max "
                  "value): " + ", ".join(f"{k} {v:.1e}" for k, v in errs_bf16.items()),
                  flush=True)
            info = json.loads(run([exe, "--info"], stdout=subprocess.PIPE).stdout)
            flops = info["flops_per_sample"]
            wbytes = streamed_bytes(state)
            # The floor of a call that streams its weights: their bytes at the bandwidth of
            # reading that many bytes again and again (float32, and the bfloat16 copies).
            cycled = {}
            if wbytes > llc_bytes():
                cycled = cycled_read_bw(args, [wbytes, wbytes // 2])
                print(f"{name}: read bandwidth over the weights' {wbytes / 1e6:.1f} MB read "
                      f"again and again {cycled[wbytes] / 1e9:.1f} GB/s, over their bfloat16 "
                      f"copies' {wbytes // 2 / 1e6:.1f} MB {cycled[wbytes // 2] / 1e9:.1f} GB/s "
                      "(one core)", flush=True)

            # Rounds alternate inn and PyTorch (best), so that a slow spell of this shared
            # machine hits both sides; each side's figure is the median over its rounds.
            def torch_run(label, env, traced, limit, reps, tag):
                cfg = {"model": name, "weights": weights, "threads": args.threads,
                       "batches": batches, "reps": reps, "rep_seconds": rep_seconds,
                       "traced": traced, "limit_blas": limit,
                       "out": os.path.join(tmp, f"{name}-{tag}.json")}
                cfg_path = os.path.join(tmp, f"{name}-{tag}-cfg.json")
                with open(cfg_path, "w") as f:
                    json.dump(cfg, f)
                run([sys.executable, os.path.abspath(__file__), "--worker", cfg_path], env=env)
                with open(cfg["out"]) as f:
                    return json.load(f)

            print(f"{name}: timing PyTorch (found) ...", flush=True)
            torch_res = {"found": torch_run("found", found_env, False, False, args.reps, "found")}
            cpp_rounds, best_rounds, bf16_rounds = [], [], []
            # Batch 1 with bfloat16 weights where it streams them from memory.
            stream_bf16 = wbytes > llc_bytes() and 1 in batches
            for r in range(args.rounds):
                print(f"{name}: round {r + 1}/{args.rounds}: inn, then PyTorch (best) ...",
                      flush=True)
                cpp_rounds.append(gbench(exe, [f"--weights={weights}",
                                               "--threads=" + ",".join(map(str, args.threads)),
                                               "--batches=" + ",".join(map(str, batches)),
                                               "--train-batches="],
                                         args.round_reps, 0.05 if args.quick else 0.1, True))
                if stream_bf16:
                    bf16_rounds.append(gbench(exe, [f"--weights={weights}", "--threads=1",
                                                    "--batches=1", "--train-batches=", "--bf16"],
                                              args.round_reps, 0.05 if args.quick else 0.1))
                best_rounds.append(torch_run("best", best_env, not args.no_traced, True,
                                             args.round_reps, f"best{r}"))
            cpp = merge_gbench(cpp_rounds)
            if bf16_rounds:
                for key, v in merge_gbench(bf16_rounds).items():
                    cpp[key.replace("/batch:", "-bf16/batch:")] = v
            torch_res["best"] = merge_torch(best_rounds)
            blas = torch_res["best"]["blas"]
            print(f"{name}: OpenBLAS as found: {torch_res['found']['blas']}; at best: {blas}")
            everything["models"][name] = {"check": errs, "check_bf16": errs_bf16,
                                          "flops_per_sample": flops,
                                          "weight_bytes": wbytes, "inn": cpp, "torch": torch_res,
                                          "compile": costs.get(exe_name)}
            for case in torch_res["best"]["cases"]:
                d, b, t = case["direction"], case["batch"], case["threads"]
                key = f"{name}/{d}/batch:{b}/threads:{t}"
                found = next(c for c in torch_res["found"]["cases"]
                             if (c["direction"], c["batch"], c["threads"]) == (d, b, t))
                mine = cpp.get(key, {}).get("seconds")
                flop_floor = flops * b / fl["peak_flops"] / t
                # Weights that fit in the last-level cache stay there between calls: no floor
                # from memory bandwidth then.
                mem_floor = wbytes / cycled[wbytes] if cycled else 0.0
                rows.append((name, d, b, t, mine, found["seconds"], case["seconds"], case["mode"],
                             flop_floor, mem_floor, costs.get(exe_name)))
                half = cpp.get(f"{name}/{d}-bf16/batch:{b}/threads:{t}", {}).get("seconds")
                if half:  # bfloat16 weights: half the bytes to stream
                    rows.append((name, d + "-bf16", b, t, half, found["seconds"],
                                 case["seconds"], case["mode"], flop_floor,
                                 wbytes // 2 / cycled[wbytes // 2] if cycled else 0.0,
                                 costs.get(exe_name)))
        ablations = []
        if not args.no_ablations and do_infer:
            for name in args.models:
                exe = os.path.join(args.build_dir, "benchmarks", MODELS[name][0])
                for switch, batch in ABLATIONS[name]:
                    print(f"{name}: measuring {switch} off at batch {batch} ...", flush=True)
                    common = ["--threads=1", f"--batches={batch}", "--benchmark_filter=/fwd/"]
                    key = f"{name}/fwd/batch:{batch}/threads:1"
                    on, off = [], []
                    for _ in range(args.rounds):  # alternating, as above
                        on.append(gbench(exe, common, args.round_reps, 0.1)[key]["seconds"])
                        off.append(gbench(exe, common + [f"--off={switch}"], args.round_reps,
                                          0.1)[key]["seconds"])
                    ablations.append((name, switch, batch, statistics.median(on),
                                      statistics.median(off),
                                      statistics.median(b / a for a, b in zip(on, off))))
        everything["ablations"] = ablations
        infos = {name: json.loads(run([os.path.join(args.build_dir, "benchmarks", MODELS[name][0]),
                                       "--info"], stdout=subprocess.PIPE).stdout)
                 for name in args.models}
        everything["info"] = infos
        if do_train:
            everything["training"] = training(args, fl, best_env, tmp, rep_seconds)
    everything["load_end"] = os.getloadavg()

    if do_infer:
        print()
        print("Medians of wall-clock time per call (float32). best/inn: PyTorch at its best divided "
              "by inn (> 1: inn faster).")
        print("floor: max(FLOPs / (threads x single-core peak), weight bytes / one-core bandwidth "
              "reading that many bytes again and again); %floor: floor / inn time.")
        hdr = ("model", "dir", "batch", "thr", "inn", "torch found", "torch best", "mode", "best/inn",
               "found/inn", "FLOP floor", "mem floor", "%floor")
        table = [hdr]
        for (name, d, b, t, mine, found, best, mode, ff, mf, _) in rows:
            floor = max(ff, mf)
            table.append((name, d, str(b), str(t), fmt_time(mine), fmt_time(found), fmt_time(best),
                          mode, f"{best / mine:.2f}x" if mine else "-",
                          f"{found / mine:.2f}x" if mine else "-", fmt_time(ff),
                          fmt_time(mf) if mf else "(cached)",
                          f"{100 * floor / mine:.0f}%" if mine else "-"))
        widths = [max(len(r[i]) for r in table) for i in range(len(hdr))]
        for i, r in enumerate(table):
            print("| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |")
            if i == 0:
                print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
        print()
        print("two threads against one (one thread's time / two threads', median of per-round "
              "ratios):")
        scaling = {}
        for name, m in everything["models"].items():
            scaling.update(thread_scaling(m["inn"]))

        def case_order(item):
            name, d, b = item[0].split("/")
            return name, d, int(b[len("batch:"):])

        for case, ratio in sorted(scaling.items(), key=case_order):
            name, d, b = case.split("/")
            print(f"  {name} {d} batch {b[len('batch:'):]}: {ratio:.2f}x")
        hand = everything["models"].get("moons", {}).get("inn", {})
        hw = {b: hand.get(f"moons-handwritten/fwd/batch:{b}/threads:1", {}).get("seconds")
              for b in (1, 256)}
        if hw[1]:
            print()
            print("moons written by hand as one fused loop of fixed-size Eigen expressions per sample "
                  "(bench_moons.cpp), forward, one thread: " +
                  ", ".join(f"batch {b}: {fmt_time(t)}" for b, t in hw.items() if t))
        print_targets(rows, hw, scaling)
        if everything.get("ablations"):
            print()
            print("what each kernel buys (inn forward, one thread, medians; off = that switch off):")
            for (name, switch, batch, on, off, ratio) in everything["ablations"]:
                print(f"  {name} batch {batch}: {switch}: on {fmt_time(on)}, off {fmt_time(off)} "
                      f"-> {ratio:.2f}x (median of per-round ratios)")
        print()
        print("workspace per sample (batch 256, one thread): the naive sum of all intermediate "
              "tensors, the buffers after the compile-time liveness analysis, and the whole workspace "
              "(buffers + module scratch):")
        for name, info in everything.get("info", {}).items():
            print(f"  {name}: naive {info['edge_bytes_per_sample'] / 1024:.1f} KiB, shared "
                  f"{info['shared_edge_bytes_per_sample'] / 1024:.1f} KiB, workspace "
                  f"{info['workspace_bytes_per_sample'] / 1024:.1f} KiB")
        print()
        print("compile cost (g++ -O3 -march=native, one translation unit):")
        for name in args.models:
            exe_name = MODELS[name][0]
            c = costs.get(exe_name)
            print(f"  {exe_name}.cpp: " + (f"{c[0]:.1f} s, peak {c[1]:.0f} MiB" if c else "not measured "
                                           "(built before the launcher was set; rm -r the build dir)"))
    if do_train:
        print_training(everything["training"], fl)
    load = everything["load_end"]
    print(f"load average at the end: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(everything, f, indent=1)
    return 0


# Batches of the training comparison per model (one thread).
TRAIN_BATCHES = {"moons": [100, 256], "mnist-cinn": [128, 256], "conv-cifar": [16]}


def training(args, fl, env, tmp, rep_seconds):
    """The training section: per model, the gradient check, then alternating rounds of inn's
    training cases (both memory modes) and the PyTorch worker (its variants), one thread."""
    build_model = torch_models()
    out = {"cpu": lscpu_model(), "models": {}}
    for name in args.models:
        exe = os.path.join(args.build_dir, "benchmarks", MODELS[name][0])
        batches = TRAIN_BATCHES[name]
        weights = os.path.join(tmp, f"{name}-train.safetensors")
        write_safetensors(weights, build_model(name).state_dict())
        ok, g = check_gradients(name, exe, weights, tmp)
        print(describe_gradients(name, g), flush=True)
        if not ok:
            raise SystemExit(f"{name}: inn's gradients do NOT agree with PyTorch's (tolerance "
                             f"{GRAD_TOLERANCE:g} of each gradient's largest value, see above)")
        flops = json.loads(run([exe, "--info"], stdout=subprocess.PIPE).stdout)["flops_per_sample"]
        cpp_rounds, torch_rounds = [], []
        for r in range(args.rounds):
            print(f"{name}: training round {r + 1}/{args.rounds}: inn, then PyTorch ...",
                  flush=True)
            cpp_rounds.append(gbench(exe, [f"--weights={weights}", "--batches=", "--threads=1",
                                           "--train-batches=" + ",".join(map(str, batches))],
                                     args.round_reps, 0.05 if args.quick else 0.1))
            cfg = {"train": True, "model": name, "weights": weights, "batches": batches,
                   "reps": args.round_reps, "rep_seconds": rep_seconds, "limit_blas": True,
                   "variants": ["eager", "foreach"] if args.no_traced else list(TRAIN_VARIANTS),
                   "out": os.path.join(tmp, f"{name}-train{r}.json")}
            cfg_path = os.path.join(tmp, f"{name}-train{r}-cfg.json")
            with open(cfg_path, "w") as f:
                json.dump(cfg, f)
            run([sys.executable, os.path.abspath(__file__), "--worker", cfg_path], env=env)
            with open(cfg["out"]) as f:
                torch_rounds.append(json.load(f))
        cpp = merge_gbench(cpp_rounds)
        cases = []
        for b in batches:
            same = [c["all"] for r in torch_rounds for c in r["cases"] if c["batch"] == b]
            variants = {v: statistics.median(t[v] for t in same if v in t)
                        for v in same[0]}
            mine = {m: cpp.get(f"{name}-train/{m}/batch:{b}/threads:1", {}).get("seconds")
                    for m in ("store", "recompute")}
            cases.append({"batch": b, "inn": mine, "torch": variants,
                          "floor3": 3 * flops * b / fl["peak_flops"]})
        out["models"][name] = {"gradients": g, "flops_per_sample": flops, "cases": cases,
                               "torch_version": torch_rounds[0]["torch"]}
    return out


def print_training(tr, fl):
    print()
    print("Training step (forward, max-likelihood loss, backward, Adam lr 1e-3; float32, one "
          f"thread on both sides), medians of wall-clock time per step. CPU: {tr['cpu']}.")
    print("store / recompute: inn's memory modes (activations kept / recomputed through the "
          "inverse); torch: eager (torch.optim.Adam's default update), best of eager, foreach "
          "Adam and torch.jit.trace; best/inn: PyTorch best / inn store.")
    print(f"3x floor: three times the forward FLOPs / single-core FMA peak "
          f"({fl['peak_flops'] / 1e9:.1f} GFLOP/s).")
    hdr = ("model", "batch", "inn store", "inn recompute", "recompute/store", "torch eager",
           "torch best", "variant", "best/inn", "3x FLOP floor", "store/3x floor")
    table = [hdr]
    checks = []
    targets = {("moons", 100): 25, ("mnist-cinn", 128): 1.5, ("conv-cifar", 16): 1.3}
    for name, m in tr["models"].items():
        for c in m["cases"]:
            st, rc = c["inn"]["store"], c["inn"]["recompute"]
            variant = min(c["torch"], key=c["torch"].get)
            best = c["torch"][variant]
            table.append((name, str(c["batch"]), fmt_time(st), fmt_time(rc),
                          f"{rc / st:.2f}x" if st and rc else "-",
                          fmt_time(c["torch"].get("eager")), fmt_time(best), variant,
                          f"{best / st:.2f}x" if st else "-", fmt_time(c["floor3"]),
                          f"{st / c['floor3']:.2f}x" if st else "-"))
            target = targets.get((name, c["batch"]))
            if target and st:
                checks.append((f"{name} batch {c['batch']}: >= {target}x PyTorch best",
                               best / st >= target, f"{best / st:.2f}x"))
            if c["batch"] == 256 and st:
                checks.append((f"{name} batch 256: within 2.5x of 3x the forward FLOP floor",
                               st <= 2.5 * c["floor3"], f"{st / c['floor3']:.2f}x"))
    widths = [max(len(r[i]) for r in table) for i in range(len(hdr))]
    for i, r in enumerate(table):
        print("| " + " | ".join(col.ljust(w) for col, w in zip(r, widths)) + " |")
        if i == 0:
            print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    print()
    print(f"gradients (same weights, same batch; tolerance {GRAD_TOLERANCE:g} per tensor):")
    for name, m in tr["models"].items():
        print(describe_gradients(name, m["gradients"]))
    if checks:
        print()
        print("training targets of the issue:")
        for text, ok, figure in checks:
            print(f"  [{'met' if ok else 'NOT met'}] {text}: {figure}")


def lscpu_model():
    """lscpu's model name, family and model (the CPU the table was measured on)."""
    try:
        out = subprocess.run(["lscpu"], stdout=subprocess.PIPE, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return cpu_name()
    f = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
    f = {k.strip(): v.strip() for k, v in f.items()}
    return (f"{f.get('Model name', cpu_name())} (family {f.get('CPU family', '?')}, model "
            f"{f.get('Model', '?')}), {f.get('CPU(s)', '?')} CPUs")


def llc_bytes():
    """Size of the last-level cache (sysfs), 32 MiB if unknown."""
    best = 0
    base = "/sys/devices/system/cpu/cpu0/cache"
    try:
        for d in os.listdir(base):
            with open(os.path.join(base, d, "size")) as f:
                v = f.read().strip()
            mult = {"K": 1024, "M": 1024 ** 2}.get(v[-1], 1)
            best = max(best, int(v.rstrip("KM")) * mult)
    except (OSError, ValueError):
        pass
    return best or 32 * 1024 ** 2


# OpenBLAS picks its kernels from the CPU model; a model newer than the OpenBLAS build (0.3.21
# does not know Intel's family 6 model 207, say) falls back to the SSE3 "Prescott" kernels, about
# a fifth of the speed of its AVX-512 ones there. PyTorch's best is run with the fastest core type
# this CPU can execute, measured on one thread with a product of mnist-cinn's shape.
OPENBLAS_PROBE = """
import sys, time, torch, threadpoolctl
torch.set_num_threads(1)
threadpoolctl.threadpool_limits(limits=1, user_api="blas")
a, w = torch.randn(256, 784), torch.randn(784, 784)
for _ in range(5):
    a @ w
ts = []
for _ in range(25):
    t = time.perf_counter(); a @ w; ts.append(time.perf_counter() - t)
info = [i for i in threadpoolctl.threadpool_info() if i.get("internal_api") == "openblas"]
print(info[0].get("architecture") if info else "none", sorted(ts)[len(ts) // 2])
"""


def cpu_flags():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def fastest_openblas_coretype(env):
    """The OPENBLAS_CORETYPE (None: OpenBLAS's own choice) whose SGEMM is fastest here, and the
    timings that chose it, as [(core type, architecture OpenBLAS reports, seconds)]."""
    flags = cpu_flags()
    candidates = [None]
    if {"avx2", "fma"} <= flags:
        candidates += ["Haswell", "Zen"]
    if {"avx512f", "avx512bw", "avx512dq", "avx512vl"} <= flags:
        candidates += ["SkylakeX"] + (["Cooperlake"] if "avx512_bf16" in flags else [])
    timings = []
    for core in candidates:
        e = dict(env)
        e.pop("OPENBLAS_CORETYPE", None)
        if core:
            e["OPENBLAS_CORETYPE"] = core
        r = subprocess.run([sys.executable, "-c", OPENBLAS_PROBE], env=e, capture_output=True,
                           text=True)
        if r.returncode == 0 and r.stdout.split():
            arch, seconds = r.stdout.split()[-2:]
            timings.append((core, arch, float(seconds)))
    if not timings:
        return None, []
    return min(timings, key=lambda t: t[2])[0], timings


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


if __name__ == "__main__":
    sys.exit(main())
