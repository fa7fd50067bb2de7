"""What inn_export must refuse, with a message that names the module and what to do, and the
command line on a small float32 model: python3 tests/export/refusals.py WORK_DIR

The command line writes WORK_DIR/tiny.hpp and tiny.safetensors (float, as trained) and this
script FrEIA's outputs, tiny.io.safetensors, which export_test compares in float."""

import os
import subprocess
import sys
import textwrap
from collections import OrderedDict

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
    expect_refusal("a subnet of named layers (its keys are not inn's)",
                   sequence(Fm.GLOWCouplingBlock, subnet_constructor=lambda i, o: nn.Sequential(
                       OrderedDict([("fc1", nn.Linear(i, 8)), ("act", nn.ReLU()),
                                    ("fc2", nn.Linear(8, o))]))),
                   "module_list.0", "subnet1", "fc1, act, fc2")
    x = Ff.InputNode(4, name="x")
    unread = Ff.ConditionNode(2, name="unread")
    block = Ff.Node(x, Fm.GLOWCouplingBlock, {"subnet_constructor": models.fc(8)}, name="block")
    expect_refusal("a ConditionNode that no node reads",
                   Ff.GraphINN([x, unread, block, Ff.OutputNode(block, name="z")]),
                   "condition node 'unread' conditions no node")

    # Written as exported, not refused: node names are unique among the subnet structs too (a
    # node named as its subnet's struct once gave two C++ structs of one name), and FrEIA
    # 0.2's FixedLinearTransform keeps a tensor b of one value as b.unsqueeze(0), inn's scalar b.
    x = Ff.InputNode(4, name="x")
    named = Ff.Node(x, Fm.GLOWCouplingBlock, {"subnet_constructor": models.fc(8)}, name="fc_8")
    flt = Ff.Node(named, Fm.FixedLinearTransform,
                  {"M": torch.eye(4) * 2.0, "b": torch.tensor(0.3)}, name="flt")
    graph = Ff.GraphINN([x, named, flt, Ff.OutputNode(flt, name="z")])
    done = inn_export.export(graph, "named", WORK)
    with open(done.header) as f:
        structs = [line.split()[1] for line in f if line.startswith("struct ")]
    if len(structs) != len(set(structs)) or "fc_8" not in structs:
        failures_add(f"export of node 'fc_8': structs {structs} (one of them twice?)")
    written, _ = inn_export.read_safetensors(done.weights)
    b = [t for k, t in written.items() if k.endswith(".b")]
    with open(done.header) as f:
        scalar_b = "set_scalar_b" in f.read()
    if len(b) != 1 or b[0].dim() != 0 or abs(float(b[0]) - 0.3) > 1e-7 or not scalar_b:
        failures_add(f"FixedLinearTransform with b = tensor(0.3): wrote {b}, "
                     f"set_scalar_b {scalar_b}")
    else:
        print(f"  exported: node 'fc_8' beside struct {[s for s in structs if s != 'fc_8']}, "
              f"b = tensor(0.3) as inn's scalar b")

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
        # A .safetensors file inn wrote, loaded by --weights: inn's layout (FrEIA 0.2's ActNorm
        # differs) translated back, so exporting again writes the same bytes.
        with open(src, "a") as f:
            f.write(textwrap.dedent("""\

                def build_normed():
                    m = Ff.SequenceINN(4)
                    m.append(Fm.ActNorm)
                    m.append(Fm.GLOWCouplingBlock, subnet_constructor=models.fc(8))
                    return m
                """))
        import importlib
        importlib.reload(tiny_model)
        normed = tiny_model.build_normed()
        with torch.no_grad():
            normed(torch.randn(16, 4, generator=torch.Generator().manual_seed(4)))  # ActNorm set
        first = inn_export.export(normed, "normed", WORK)
        again = os.path.join(WORK, "again")
        run = subprocess.run([sys.executable, "-m", "inn_export", f"{src}:build_normed",
                              "--weights", first.weights, "--name", "normed", "--out-dir", again],
                             env=env, capture_output=True, text=True)
        same = run.returncode == 0 and open(first.weights, "rb").read() == open(
            os.path.join(again, "normed.safetensors"), "rb").read()
        if not same:
            failures_add(f"python3 -m inn_export --weights {first.weights}: exit "
                         f"{run.returncode}, {run.stderr[-600:]}")
        else:
            print("  command line: --weights of a file inn's layout, exported again: same bytes")
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
