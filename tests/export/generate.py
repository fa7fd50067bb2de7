"""Export test, Python side: python3 tests/export/generate.py OUT_DIR

For every model of models.py: builds it in FrEIA with random weights (float64), exports it with
inn_export (OUT_DIR/<name>.hpp, OUT_DIR/<name>.safetensors), and writes FrEIA's own outputs on
random inputs to OUT_DIR/<name>.io.safetensors: x, c, z, log_jac_det (forward), and z_inv,
x_inv, log_jac_det_inv (inverse of random latents). The C++ test (export_test.cpp) compares.
"""

import os
import sys
import zlib

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "python"))
sys.path.insert(0, HERE)

import inn_export  # noqa: E402
import models  # noqa: E402


def seed_of(name):
    return zlib.crc32(name.encode())


def build(name):
    """The model, random weights, float64, ActNorm initialised: the same for the same name."""
    torch.manual_seed(seed_of(name))
    import numpy as np
    np.random.seed(seed_of(name) % 2**32)  # FrEIA 0.2's PermuteRandom without a seed
    model, shapes = models.MODELS[name]()
    model = model.double()
    g = torch.Generator().manual_seed(seed_of(name) + 1)
    batch = models.BATCH[name]
    if isinstance(shapes["x"], list):  # several inputs
        x = [torch.randn((batch,) + s, generator=g, dtype=torch.float64) for s in shapes["x"]]
    else:
        x = torch.randn((batch,) + shapes["x"], generator=g, dtype=torch.float64)
    c = [one_hot_ish(batch, s, g) for s in shapes["c"]]
    with grad_mode(name):
        model(x, c=c)  # initialises ActNorm from data, as a first training batch would
    models.randomize(model, g)
    models.after_randomize(model)
    return model, x, c, g


def grad_mode(name):
    """No autograd, except where FrEIA's log-det estimate needs it (IResNetLayer)."""
    return torch.enable_grad() if name in models.STOCHASTIC_LOGDET else torch.no_grad()


def one_hot_ish(batch, shape, g):
    return torch.rand((batch,) + tuple(shape), generator=g, dtype=torch.float64)


def as_list(t):
    return list(t) if isinstance(t, (list, tuple)) else [t]


def flat(t):
    return t.detach().reshape(t.shape[0], -1).contiguous()


def main(out_dir):
    os.makedirs(out_dir, exist_ok=True)
    for note in (models.MIRROR_NOTE, models.SPLINE_NOTE):
        if note:
            print(f"generate: note: {note}")
    for name in models.MODELS:
        model, x, c, g = build(name)
        done = inn_export.export(model, name, out_dir, scalar="double")
        with grad_mode(name):
            z, ljd = model(x, c=c)
            zs = as_list(z)
            draw = models.LATENTS.get(name, lambda shape, g: torch.randn(
                shape, generator=g, dtype=torch.float64))
            z_inv = [draw(t.shape, g) for t in zs]
            x_inv, ljd_inv = model(z_inv if len(z_inv) > 1 else z_inv[0], c=c, rev=True)
        xs = as_list(x)
        io = {"x": flat(xs[0])}
        io.update({f"x{j}": flat(t) for j, t in enumerate(xs)})
        io.update({f"c{j}": flat(t) for j, t in enumerate(c)})
        io.update({f"z{j}": flat(t) for j, t in enumerate(zs)})
        io["log_jac_det"] = ljd.detach().reshape(-1).expand(xs[0].shape[0]).contiguous()
        io.update({f"z_inv{j}": flat(t) for j, t in enumerate(z_inv)})
        io["x_inv"] = flat(as_list(x_inv)[0])
        io.update({f"x_inv{j}": flat(t) for j, t in enumerate(as_list(x_inv))})
        batch = xs[0].shape[0]
        io["log_jac_det_inv"] = ljd_inv.detach().reshape(-1).expand(batch).contiguous()
        inn_export.write_safetensors(os.path.join(out_dir, f"{name}.io.safetensors"), io)
        print(f"generate: {name}: {done.header}, {done.weights}, {name}.io.safetensors")
        for n in done.notes:
            print(f"  note: {n}")


if __name__ == "__main__":
    main(sys.argv[1])
