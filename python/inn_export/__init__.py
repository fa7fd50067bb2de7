"""inn_export: a trained FrEIA model as an inn C++ type and its weights.

    import inn_export
    inn_export.export(model, "moons", "out/")      # out/moons.hpp, out/moons.safetensors
    inn_export.load_state_dict(model, "trained_in_cpp.safetensors")   # the way back

Command line: python3 -m inn_export --help.
"""

from .export import Exported, export, load_state_dict
from .modules import ExportError
from .safetensors import read_safetensors, write_safetensors

__all__ = ["export", "load_state_dict", "Exported", "ExportError", "read_safetensors",
           "write_safetensors"]
