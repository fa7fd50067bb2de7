"""Export test, the way back: python3 tests/export/check_back.py OUT_DIR

After export_test changed the parameters of some models in C++ and saved them
(OUT_DIR/<name>.cpp.safetensors, inn::save_safetensors), builds each model in FrEIA again,
loads that state_dict with strict=True (inn_export.load_state_dict) and compares FrEIA's z and
log|det J| on the same inputs with what inn computed (OUT_DIR/<name>.cpp.io.safetensors), in
double, to 1e-10. Also checks that the parameters did change, so the comparison is not the
export's own weights coming back.
"""

import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import generate  # noqa: E402  (puts python/ on the path)
import inn_export  # noqa: E402
import models  # noqa: E402

TOLERANCE = 1e-10


def main(out_dir):
    failures = 0
    worst = 0.0
    for name in models.TRAINED_IN_CPP:
        model, x, c, _ = generate.build(name)
        exported = os.path.join(out_dir, f"{name}.safetensors")
        result = inn_export.load_state_dict(model, os.path.join(out_dir, f"{name}.cpp.safetensors"),
                                            strict=True, exported=exported)
        assert not result.missing_keys and not result.unexpected_keys, result
        before, _ = inn_export.read_safetensors(exported)
        after, _ = inn_export.read_safetensors(os.path.join(out_dir, f"{name}.cpp.safetensors"))
        changed = sum(1 for k in before if k in after and before[k].shape == after[k].shape
                      and not torch.equal(before[k].double(), after[k].double()))
        if changed == 0:
            print(f"  {name}: the C++ side changed no parameter")
            failures += 1
        want, _ = inn_export.read_safetensors(os.path.join(out_dir, f"{name}.cpp.io.safetensors"))
        with torch.no_grad():
            z, ljd = model(x, c=c)
        zs = generate.as_list(z)
        got = {f"z{j}": generate.flat(t) for j, t in enumerate(zs)}
        got["log_jac_det"] = ljd.detach().reshape(-1, 1).expand(generate.as_list(x)[0].shape[0], 1)
        for key, value in got.items():
            d = float((value - want[key].reshape(value.shape)).abs().max())
            worst = max(worst, d)
            ok = d <= TOLERANCE
            failures += 0 if ok else 1
            print(f"  {name:<12} {key:<22} max |FrEIA - inn| = {d:.3g}"
                  f"{'' if ok else '   FAILED (> 1e-10)'}  (state_dict from C++, strict=True, "
                  f"{changed} tensors changed)")
    print(f"check_back: {'FAILED' if failures else 'passed'}, largest difference {worst:.3g}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
