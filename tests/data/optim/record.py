"""Records torch.optim's behaviour for tests/test_optim.cpp.

Run with Debian's Python and PyTorch 1.13 (scripts/install-bench-deps.sh):

    /usr/bin/python3 tests/data/optim/record.py

writes reference.safetensors beside this script (deterministic: a second run gives the same
bytes). The tests need only that file, not torch.

Three parameter tensors a [2, 3], b [4], c [1] start from `init.*`; for each of STEPS steps the
gradients `grad.<p>[k]` are set, optionally clipped, then optimizer.step() and, for schedules,
scheduler.step(). After every step the parameters are recorded as `<case>.<f64|f32>.<p>`
(shape [STEPS, *shape]), the learning rate after scheduler.step() as `<case>.lr` ([STEPS],
float64), and for clipping the total norm clip_grad_norm_ returned as `<case>.<dtype>.norm`.
Each case runs once in float64 and once in float32 (init and gradients rounded to float32).

Also make_moons as scikit-learn 1.2 writes it (its source, below, with numpy's legacy
RandomState; scikit-learn itself is not needed): `moons.<n>.<noise>.<shuffle>` (float64).

The case table below is mirrored in tests/test_optim.cpp (`cases`): keep the two in step.
"""
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "freia"))
from safetensors_io import save_safetensors  # noqa: E402 (the project's own writer)

STEPS = 10
SHAPES = {"a": (2, 3), "b": (4,), "c": (1,)}
# Gradient scale per step: clipping by norm acts on some steps and not on others.
SCALE = [0.1, 2.0, 0.5, 3.0, 0.05, 1.0, 4.0, 0.2, 1.5, 0.3]

# name: (optimizer class, keyword arguments, schedule or None, clipping or None)
CASES = {
    "adam_default": (torch.optim.Adam, {}, None, None),
    "adam_l2_amsgrad": (torch.optim.Adam, dict(lr=0.01, betas=(0.8, 0.99), eps=1e-6,
                                               weight_decay=0.1, amsgrad=True), None, None),
    "adam_maximize": (torch.optim.Adam, dict(lr=0.01, maximize=True), None, None),
    "adamw_default": (torch.optim.AdamW, {}, None, None),
    "adamw_amsgrad": (torch.optim.AdamW, dict(lr=0.02, weight_decay=0.1, amsgrad=True), None,
                      None),
    "sgd_plain": (torch.optim.SGD, dict(lr=0.1), None, None),
    "sgd_momentum": (torch.optim.SGD, dict(lr=0.05, momentum=0.9, dampening=0.25,
                                           weight_decay=0.01), None, None),
    "sgd_nesterov": (torch.optim.SGD, dict(lr=0.05, momentum=0.9, nesterov=True,
                                           weight_decay=0.001), None, None),
    "sgd_maximize": (torch.optim.SGD, dict(lr=0.1, momentum=0.5, maximize=True), None, None),
    "adam_steplr": (torch.optim.Adam, dict(lr=0.01), ("step", dict(step_size=3, gamma=0.5)),
                    None),
    "sgd_explr": (torch.optim.SGD, dict(lr=0.1, momentum=0.9), ("exp", dict(gamma=0.8)), None),
    "adam_clip_norm": (torch.optim.Adam, dict(lr=0.01), None, ("norm", 1.0, 2.0)),
    "sgd_clip_inf": (torch.optim.SGD, dict(lr=0.1), None, ("norm", 0.5, float("inf"))),
    "sgd_clip_p3": (torch.optim.SGD, dict(lr=0.1), None, ("norm", 0.8, 3.0)),
    "sgd_clip_value": (torch.optim.SGD, dict(lr=0.1), None, ("value", 0.3)),
}


def make_moons(n_samples, noise, shuffle, random_state):
    """sklearn.datasets.make_moons (scikit-learn 1.2), with sklearn.utils.shuffle inlined."""
    n_samples_out = n_samples // 2
    n_samples_in = n_samples - n_samples_out
    outer_circ_x = np.cos(np.linspace(0, np.pi, n_samples_out))
    outer_circ_y = np.sin(np.linspace(0, np.pi, n_samples_out))
    inner_circ_x = 1 - np.cos(np.linspace(0, np.pi, n_samples_in))
    inner_circ_y = 1 - np.sin(np.linspace(0, np.pi, n_samples_in)) - 0.5
    X = np.vstack([np.append(outer_circ_x, inner_circ_x),
                   np.append(outer_circ_y, inner_circ_y)]).T
    y = np.hstack([np.zeros(n_samples_out, dtype=np.intp), np.ones(n_samples_in, dtype=np.intp)])
    if shuffle:
        # sklearn.utils.shuffle -> resample(replace=False): arange, then RandomState.shuffle
        indices = np.arange(n_samples)
        random_state.shuffle(indices)
        X, y = X[indices], y[indices]
    if noise is not None:
        X += random_state.normal(scale=noise, size=X.shape)
    return X, y


def main():
    torch.set_num_threads(1)
    torch.manual_seed(0)
    init = {p: torch.randn(*s, dtype=torch.float64) for p, s in SHAPES.items()}
    grads = {p: torch.randn(STEPS, *s, dtype=torch.float64) for p, s in SHAPES.items()}
    for k in range(STEPS):
        for p in SHAPES:
            grads[p][k] *= SCALE[k]
    grads["b"][:, 1] = 0.0  # a scalar whose gradient is always zero (Adam: 0 / eps)
    grads["c"][0] = 0.0

    out = {}
    for p in SHAPES:
        out["init." + p] = init[p].numpy()
        out["grad." + p] = grads[p].numpy()

    for name, (cls, kwargs, schedule, clip) in CASES.items():
        for dtype, tag in ((torch.float64, "f64"), (torch.float32, "f32")):
            params = [init[p].to(dtype).clone().requires_grad_(True) for p in SHAPES]
            opt = cls(params, **kwargs)
            sched = None
            if schedule is not None:
                kind, skw = schedule
                cls_s = (torch.optim.lr_scheduler.StepLR if kind == "step"
                         else torch.optim.lr_scheduler.ExponentialLR)
                sched = cls_s(opt, **skw)
            trace = {p: [] for p in SHAPES}
            lrs, norms = [], []
            for k in range(STEPS):
                for t, p in zip(params, SHAPES):
                    t.grad = grads[p][k].to(dtype).clone()
                if clip is not None and clip[0] == "norm":
                    norms.append(float(torch.nn.utils.clip_grad_norm_(params, clip[1],
                                                                      norm_type=clip[2])))
                elif clip is not None:
                    torch.nn.utils.clip_grad_value_(params, clip[1])
                opt.step()
                if sched is not None:
                    sched.step()
                    lrs.append(opt.param_groups[0]["lr"])
                for t, p in zip(params, SHAPES):
                    trace[p].append(t.detach().clone())
            for p in SHAPES:
                out[f"{name}.{tag}.{p}"] = torch.stack(trace[p]).numpy()
            if sched is not None and tag == "f64":
                out[f"{name}.lr"] = np.array(lrs, dtype=np.float64)
            if norms:
                out[f"{name}.{tag}.norm"] = np.array(norms, dtype=np.float64 if tag == "f64"
                                                     else np.float32)

    for n, noise, shuffle, seed in ((7, 0.0, False, 0), (10, 0.1, True, 3), (9, 0.05, False, 5)):
        X, _ = make_moons(n, noise if noise > 0 else None, shuffle, np.random.RandomState(seed))
        out[f"moons.{n}.{seed}"] = X

    meta = {"torch_version": torch.__version__, "numpy_version": np.__version__,
            "steps": str(STEPS), "generator": "tests/data/optim/record.py"}
    save_safetensors(os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                  "reference.safetensors"), out, meta)


if __name__ == "__main__":
    main()
