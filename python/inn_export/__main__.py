"""python3 -m inn_export MODEL --name NAME [--out-dir DIR] [--weights FILE] ...

MODEL is where the FrEIA model comes from:
  * a file written by torch.save(model, path) (the whole model, not only its state_dict);
  * FILE.py:ATTR or package.module:ATTR, where ATTR is a SequenceINN/GraphINN or a function
    returning one (called without arguments), e.g. train_moons.py:model or train:build_inn.
--weights loads a state_dict into it first (torch.save(model.state_dict()) or .safetensors),
strictly, as model.load_state_dict does.
"""

import argparse
import importlib
import importlib.util
import os
import sys

from .export import export
from .modules import ExportError


def _load_model(spec):
    import torch
    if ":" in spec and not os.path.exists(spec):
        where, attr = spec.rsplit(":", 1)
        if where.endswith(".py") or os.path.sep in where:
            path = os.path.abspath(where)
            sys.path.insert(0, os.path.dirname(path))
            s = importlib.util.spec_from_file_location(
                os.path.splitext(os.path.basename(path))[0], path)
            module = importlib.util.module_from_spec(s)
            s.loader.exec_module(module)
        else:
            sys.path.insert(0, os.getcwd())
            module = importlib.import_module(where)
        obj = module
        for part in attr.split("."):
            obj = getattr(obj, part)
        if callable(obj) and not isinstance(obj, torch.nn.Module):
            obj = obj()
        return obj
    return torch.load(spec, map_location="cpu")


def _load_weights(model, path):
    import torch
    if path.endswith(".safetensors"):
        # inn's layout (a file inn or this exporter wrote), translated to the installed FrEIA's
        from .export import load_state_dict
        load_state_dict(model, path, strict=True)
    else:
        model.load_state_dict(torch.load(path, map_location="cpu"), strict=True)


def _shape(text):
    return tuple(int(d) for d in text.replace("x", ",").split(",") if d.strip())


def main(argv=None):
    p = argparse.ArgumentParser(
        prog="python3 -m inn_export",
        description="Writes NAME.hpp (the inn C++ type of a FrEIA SequenceINN/GraphINN) and "
                    "NAME.safetensors (its state_dict).",
        epilog=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", help="torch.save'd model file, or FILE.py:ATTR / module:ATTR")
    p.add_argument("--name", required=True, help="C++ namespace and file name, e.g. moons")
    p.add_argument("--out-dir", default=".", help="where to write (default: here)")
    p.add_argument("--weights", help="a state_dict to load into the model first")
    p.add_argument("--condition-shape", action="append", type=_shape, default=None,
                   metavar="D[,D...]",
                   help="shape of condition j, in order (only needed for a SequenceINN "
                        "condition no block reads); repeat for each condition")
    p.add_argument("--scalar", choices=["float", "double"], default="float",
                   help="the C++ scalar of NAME::net (default float)")
    a = p.parse_args(argv)
    try:
        model = _load_model(a.model)
        if a.weights:
            _load_weights(model, a.weights)
        done = export(model, a.name, a.out_dir, condition_shapes=a.condition_shape,
                      scalar=a.scalar)
    except ExportError as e:
        print(f"inn_export: cannot export {a.model}: {e}", file=sys.stderr)
        return 2
    print(f"inn_export: wrote {done.header} and {done.weights}")
    for n in done.notes:
        print(f"  note: {n}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
