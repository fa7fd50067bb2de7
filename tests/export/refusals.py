"""What inn_export must refuse, with a message that names the module and what to do, and the
command line on a small float32 model: python3 tests/export/refusals.py WORK_DIR

The command line writes WORK_DIR/tiny.hpp and tiny.safetensors (float, as trained) and this
script FrEIA's outputs, tiny.io.safetensors, which export_test compares in float."""

import os
import subprocess
import sys
import textwrap

import torch
import torch.nn as nn

HERE = os.path.dirname(os.path.abspath(__file__))
PYTHON_DIR = os.path.join(HERE, "..", "..", "python")
sys.path.insert(0, PYTHON_DIR)
sys.path.insert(0, HERE)

import FrEIA.framework as Ff  # noqa: E402
import FrEIA.modules as Fm  # noqa: E402

import inn_export  # noqa: E402
import models  # noqa: E402

failures = 0


def expect_refusal(title, model, *needles):
    global failures
    try:
        inn_export.export(model, "refused", WORK)
    except inn_export.ExportError as e:
        text = str(e)
        missing = [n for n in needles if n not in text]
        if missing:
            failures += 1
            print(f"  FAILED {title}: the message lacks {missing}: {text}")
        else:
            print(f"  refused {title}: {text}")
        return
    failures += 1
    print(f"  FAILED {title}: exported, should have been refused")


class Doubling(Fm.InvertibleModule):
    def forward(self, x, c=[], rev=False, jac=True):
        return (x[0] * (0.5 if rev else 2.0),), 0.0

    def output_dims(self, dims):
        return dims


class Residual(nn.Module):
    def __init__(self, c_in, c_out):
        super().__init__()
        self.linear = nn.Linear(c_in, c_out)

    def forward(self, x):
        return self.linear(x)


def sequence(module, **kwargs):
    m = Ff.SequenceINN(6)
    m.append(module, **kwargs)
    return m


def main():
    expect_refusal("a module inn does not have", sequence(Doubling), "module_list.0",
                   "Doubling", "inn module")
    expect_refusal("a subnet that is not an nn.Sequential",
                   sequence(Fm.GLOWCouplingBlock, subnet_constructor=Residual),
                   "module_list.0", "subnet1", "nn.Sequential")
    expect_refusal("a subnet layer inn lacks",
                   sequence(Fm.GLOWCouplingBlock, subnet_constructor=lambda i, o: nn.Sequential(
                       nn.Linear(i, 8), nn.BatchNorm1d(8), nn.Linear(8, o))),
                   "module_list.0", "BatchNorm1d")
    expect_refusal("a Python callable as clamp_activation",
                   sequence(Fm.GLOWCouplingBlock, subnet_constructor=models.fc(8),
                            clamp_activation=lambda u: torch.tanh(0.5 * u)),
                   "module_list.0", "clamp_activation", "'ATAN'")
    if models.MIRROR_NOTE:
        expect_refusal("FrEIA 0.2's AllInOneBlock clamp",
                       sequence(Fm.AllInOneBlock, subnet_constructor=models.fc(8)),
                       "module_list.0", "affine_clamping", "git")
    expect_refusal("not a FrEIA container", nn.Sequential(nn.Linear(2, 2)),
                   "SequenceINN or GraphINN")

    # The command line as the README shows it: FILE.py:FUNCTION builds the model, --weights
    # loads a state_dict saved after training; the exported weights are those.
    src = os.path.join(WORK, "tiny_model.py")
    with open(src, "w") as f:
        f.write(textwrap.dedent(f"""\
            import sys
            sys.path.insert(0, {HERE!r})
            import models
            import FrEIA.framework as Ff, FrEIA.modules as Fm

            def build():
                m = Ff.SequenceINN(4)
                m.append(Fm.GLOWCouplingBlock, subnet_constructor=models.fc(8))
                m.append(Fm.PermuteRandom, seed=1)
                return m
            """))
    sys.path.insert(0, WORK)
    import tiny_model
    trained = tiny_model.build()
    with torch.no_grad():
        for p in trained.parameters():
            if p.is_floating_point():
                p.add_(0.1 * torch.rand(p.shape, dtype=p.dtype))
    torch.save(trained.state_dict(), os.path.join(WORK, "tiny.pt"))
    env = dict(os.environ, PYTHONPATH=os.path.abspath(PYTHON_DIR))
    run = subprocess.run([sys.executable, "-m", "inn_export", f"{src}:build", "--weights",
                          os.path.join(WORK, "tiny.pt"), "--name", "tiny", "--out-dir", WORK],
                         env=env, capture_output=True, text=True)
    weights = os.path.join(WORK, "tiny.safetensors")
    if run.returncode != 0 or not os.path.exists(os.path.join(WORK, "tiny.hpp")):
        failures_add(f"python3 -m inn_export: exit {run.returncode}, {run.stdout}{run.stderr}")
    else:
        saved, _ = inn_export.read_safetensors(weights)
        same = saved.keys() == trained.state_dict().keys() and all(
            torch.equal(saved[k], v) for k, v in trained.state_dict().items())
        if not same:
            failures_add("python3 -m inn_export --weights: the file does not hold those weights")
        print(f"  command line: {run.stdout.strip()}")
        # FrEIA's outputs of the float32 model, for export_test to compare with tiny::net (float)
        g = torch.Generator().manual_seed(3)
        x = torch.randn(5, 4, generator=g)
        with torch.no_grad():
            z, ljd = trained(x)
        inn_export.write_safetensors(os.path.join(WORK, "tiny.io.safetensors"),
                                     {"x": x, "z0": z, "log_jac_det": ljd.reshape(-1).expand(5)
                                      .contiguous()})
    print(f"refusals: {'FAILED' if failures else 'passed'}")
    return 1 if failures else 0


def failures_add(text):
    global failures
    failures += 1
    print(f"  FAILED {text}")


if __name__ == "__main__":
    WORK = sys.argv[1]
    os.makedirs(WORK, exist_ok=True)
    sys.exit(main())
