#!/usr/bin/env python3
"""Writes the state_dict_*.safetensors seeds of tests/fuzz/corpus (standard library only).

Small FrEIA-like state_dicts for the parser and the element conversions: int64 permutation
buffers (PermuteRandom's perm/perm_inv, AllInOneBlock's w_perm/w_perm_inv), valid and broken
(duplicates, out of range, negative), ActNorm's boolean is_initialized (BOOL, and I64 as in
FrEIA's fixtures, and an invalid BOOL byte), and F16/BF16 parameters with special values
(subnormals, infinities, NaN, -0). Each file is a few hundred bytes.

    python3 tests/fuzz/make_state_dict_seeds.py [tests/fuzz/corpus]
"""

import json
import math
import struct
import sys
from pathlib import Path

SIZES = {"BOOL": 1, "U8": 1, "I64": 8, "F16": 2, "BF16": 2, "F32": 4, "F64": 8}


def f16(v):
    return struct.pack("<e", v)


def bf16(v):
    # the upper half of the float32 (truncation, exact for the values used here)
    return struct.pack("<f", v)[2:]


def pack(dtype, values):
    if dtype == "I64":
        return b"".join(struct.pack("<q", v) for v in values)
    if dtype == "BOOL" or dtype == "U8":
        return bytes(values)
    if dtype == "F16":
        return b"".join(f16(v) for v in values)
    if dtype == "BF16":
        return b"".join(bf16(v) for v in values)
    if dtype == "F32":
        return b"".join(struct.pack("<f", v) for v in values)
    if dtype == "F64":
        return b"".join(struct.pack("<d", v) for v in values)
    raise ValueError(dtype)


def safetensors(tensors, metadata=None):
    """tensors: [(name, dtype, shape, values)] in header order; data widest type first, no gaps,
    as inn's writer lays it out."""
    order = sorted(range(len(tensors)), key=lambda i: -SIZES[tensors[i][1]])
    offsets, data = {}, b""
    for i in order:
        name, dtype, shape, values = tensors[i]
        raw = pack(dtype, values)
        assert len(raw) == SIZES[dtype] * math.prod(shape), name
        offsets[i] = (len(data), len(data) + len(raw))
        data += raw
    header = {}
    if metadata:
        header["__metadata__"] = metadata
    for i, (name, dtype, shape, _) in enumerate(tensors):
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": list(offsets[i])}
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + data


def perm_pair(prefix, perm, names=("perm", "perm_inv")):
    inv = [0] * len(perm)
    for i, p in enumerate(perm):
        if 0 <= p < len(perm):
            inv[p] = i
    return [(prefix + names[0], "I64", [len(perm)], perm),
            (prefix + names[1], "I64", [len(perm)], inv)]


def actnorm(prefix, flag_dtype="BOOL", flag=1, dtype="F32"):
    return [(prefix + "log_scale", dtype, [1, 4], [0.5, -0.25, 0.0, 1.0]),
            (prefix + "loc", dtype, [1, 4], [0.1, -2.0, 3.5, 0.0]),
            (prefix + "is_initialized", flag_dtype, [], [flag])]


SPECIAL = [0.0, -0.0, 1.0, -2.5, 65504.0, 6.0e-8, float("inf"), float("-inf"), float("nan")]
BF16_SPECIAL = [0.0, -0.0, 1.0, -2.5, 3.0e38, 1.0e-40, float("inf"), float("-inf"), float("nan")]

SEEDS = {
    # PermuteRandom(6) then ActNorm, as SequenceINN keys
    "state_dict_permute_actnorm": perm_pair("module_list.0.", [3, 0, 5, 1, 4, 2])
    + actnorm("module_list.1."),
    "state_dict_perm_duplicates": perm_pair("module_list.0.", [0, 0, 1, 2, 3, 4]),
    "state_dict_perm_out_of_range": perm_pair("module_list.0.", [0, 1, 2, 3, 4, 9]),
    "state_dict_perm_negative": perm_pair("module_list.0.", [-1, 1, 2, 3, 4, 0]),
    "state_dict_perm_int64_extremes": perm_pair(
        "module_list.0.", [-(2**63), 2**63 - 1, 0, 1]),
    # ActNorm's flag as FrEIA's fixtures store it (I64 0/1), and a BOOL byte that is neither
    "state_dict_actnorm_flag_i64": actnorm("module_list.0.", "I64", 1),
    "state_dict_actnorm_flag_bool_2": actnorm("module_list.0.", "BOOL", 2),
    # half-precision parameters with special values
    "state_dict_actnorm_f16": actnorm("module_list.0.", dtype="F16")
    + [("module_list.0.special", "F16", [9], SPECIAL)],
    "state_dict_actnorm_bf16": actnorm("module_list.0.", dtype="BF16")
    + [("module_list.0.special", "BF16", [9], BF16_SPECIAL)],
    # AllInOneBlock(4) with a hard permutation and an F16 global affine map
    "state_dict_allinone_f16": [
        ("module_list.0.global_scale", "F16", [1, 4], [9.984375] * 4),
        ("module_list.0.global_offset", "BF16", [1, 4], [0.0, 0.5, -0.5, 1.0]),
    ]
    + perm_pair("module_list.0.", [2, 0, 3, 1], ("w_perm", "w_perm_inv"))
    + [("module_list.0.subnet.0.weight", "F32", [4, 2], [0.25] * 8),
       ("module_list.0.subnet.0.bias", "F32", [4], [0.0] * 4)],
}


def main():
    out = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).parent / "corpus")
    for name, tensors in SEEDS.items():
        path = out / (name + ".safetensors")
        path.write_bytes(safetensors(tensors, {"format": "pt"}))
        print(path, path.stat().st_size, "bytes")


if __name__ == "__main__":
    main()
