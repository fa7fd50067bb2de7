"""export(model, name, out_dir): a FrEIA SequenceINN or GraphINN as `<name>.hpp` (the inn type)
and `<name>.safetensors` (its state_dict), and load_state_dict(model, path) for the way back."""

import json
import keyword
import os
import re

import torch

from .modules import ExportError, describe, shape_cpp
from .safetensors import read_safetensors, write_safetensors
from .subnets import SubnetError, pattern_name, subnet_type

CPP_KEYWORDS = set("""alignas alignof and and_eq asm auto bitand bitor bool break case catch char
char8_t char16_t char32_t class compl concept const consteval constexpr constinit const_cast
continue co_await co_return co_yield decltype default delete do double dynamic_cast else enum
explicit export extern false float for friend goto if inline int long mutable namespace new
noexcept not not_eq nullptr operator or or_eq private protected public register
reinterpret_cast requires return short signed sizeof static static_assert static_cast struct
switch template this thread_local throw true try typedef typeid typename union unsigned using
virtual void volatile wchar_t while xor xor_eq""".split())
# Names the generated namespace defines besides the nodes and subnets.
RESERVED = {"net", "configure", "load", "weights_file", "inn", "std"}


class Exported:
    """What export() wrote."""

    def __init__(self, header, weights, cpp_type, notes):
        self.header = header      # path of <name>.hpp
        self.weights = weights    # path of <name>.safetensors
        self.cpp_type = cpp_type  # e.g. "moons::net"
        self.notes = notes        # translations and deviations worth knowing (also in the header)

    def __repr__(self):
        return f"Exported(header={self.header!r}, weights={self.weights!r})"


def _check_name(name):
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name or "") or name in CPP_KEYWORDS \
            or "__" in name or name.startswith("_") or name in RESERVED:
        raise ExportError(f"name '{name}' is not usable as a C++ namespace and file name (letters, "
                          f"digits and single underscores, not starting with a digit or '_', not "
                          f"a C++ keyword, not one of {sorted(RESERVED)})")


def identifier(text, taken):
    """A C++ identifier for a FrEIA node name, unique among `taken` (which it joins)."""
    s = re.sub(r"[^A-Za-z0-9]+", "_", str(text)).strip("_").lower() or "node"
    s = re.sub(r"_+", "_", s)
    if s[0].isdigit():
        s = "n_" + s
    if s in CPP_KEYWORDS or s in RESERVED or keyword.iskeyword(s):
        s += "_node"
    base, k = s, 2
    while s in taken:
        s = f"{base}_{k}"
        k += 1
    taken.add(s)
    return s


class Context:
    """Collects what the modules need: subnet structs (one per layer pattern), headers, notes."""

    def __init__(self):
        self.structs = {}   # key (patterns by (c_in, c_out)) -> (name, definition lines)
        self.names = set()
        self.headers = {"inn/inn.hpp"}
        self.notes = []
        self.input_shape_of = {}   # id(module) -> list of input shapes
        self.output_shape_of = {}  # id(module) -> list of output shapes

    def input_shapes(self, m):
        return self.input_shape_of[id(m)]

    def output_shapes(self, m):
        return self.output_shape_of[id(m)]

    def subnet_struct(self, found, where):
        by_io = {}
        for attr, net in found:
            try:
                pattern, c_in, c_out, kind = subnet_type(net)
            except SubnetError as e:
                raise ExportError(f"{where}: subnet '{attr}' {e}") from None
            if by_io.setdefault((c_in, c_out), (pattern, kind))[0] != pattern:
                raise ExportError(f"{where}: subnets of the same widths ({c_in} -> {c_out}) have "
                                  f"different layers; inn builds them from one constructor")
        key = tuple(sorted((io, p) for io, (p, _) in by_io.items()))
        patterns = {p for p, _ in by_io.values()}
        if len(patterns) == 1:
            key = next(iter(patterns))  # one pattern serves any widths: share it across modules
        if key in self.structs:
            return self.structs[key][0]
        pattern, kind = next(iter(by_io.values()))
        name = identifier(pattern_name(pattern, kind), self.names)

        def using(p):
            return "inn::nn::Sequential<" + ", ".join(p) + ">"

        if len(patterns) == 1:
            body = [f"    using net = {using(pattern)};"]
            doc = "FrEIA's subnet_constructor(c_in, c_out): " + torch_spelling(pattern)
        else:
            # The constructor's layers depend on its widths: one pattern per (c_in, c_out) pair
            # FrEIA called it with, selected at compile time.
            items = sorted(by_io.items())
            expr = using(items[-1][1][0])
            for (c_in, c_out), (p, _) in reversed(items[:-1]):
                expr = (f"std::conditional_t<In == {c_in} && Out == {c_out},\n"
                        f"                                   {using(p)},\n"
                        f"                                   {expr}>")
            body = [f"    using net = {expr};"]
            doc = "FrEIA's subnet_constructor(c_in, c_out), whose layers depend on the widths"
            self.headers.add("type_traits")
        lines = [f"// {doc}", f"struct {name} {{", "    template <int In, int Out>"] + body + ["};"]
        self.structs[key] = (name, lines)
        return name


def torch_spelling(pattern):
    out = []
    for layer in pattern:
        head = layer.split("<")[0].replace("inn::nn::", "nn.")
        args = layer[layer.index("<") + 1:-1].split(", ") if "<" in layer else []
        args = ["c_in" if a == "In" else "c_out" if a == "Out" else a for a in args]
        if head == "nn.Linear":
            out.append(f"nn.Linear({args[0]}, {args[1]}" + (", bias=False)" if len(args) > 2 else ")"))
        elif head == "nn.Conv2d":
            out.append(f"nn.Conv2d({args[0]}, {args[1]}, {args[2]}, padding={args[3]}"
                       + (", bias=False)" if len(args) > 4 else ")"))
        else:
            out.append(f"{head}({', '.join(args)})")
    return "nn.Sequential(" + ", ".join(out) + ")"


# ---- containers ---------------------------------------------------------------------------------

def _framework():
    try:
        import FrEIA.framework as Ff
    except ImportError as e:
        raise ExportError("FrEIA is not importable; install it as for training "
                          "(scripts/install-export-deps.sh on Debian 12)") from e
    return Ff


def _shape(dims):
    return tuple(int(d) for d in dims)


def _sequence(model, ctx, condition_shapes):
    shapes = [_shape(s) for s in model.shapes]
    conds = list(model.conditions)
    found = {}
    for i, (m, c) in enumerate(zip(model.module_list, conds)):
        if c is None:
            continue
        dims_c = [_shape(d) for d in getattr(m, "dims_c", [])]
        if len(dims_c) != 1:
            raise ExportError(f"module_list.{i}: conditioned on condition {c} but its dims_c is "
                              f"{dims_c}")
        if found.setdefault(c, dims_c[0]) != dims_c[0]:
            raise ExportError(f"condition {c} has shape {found[c]} for one block and {dims_c[0]} "
                              f"for module_list.{i}")
    n_cond = max([c + 1 for c in found] + [len(condition_shapes or [])])
    cond_shapes = []
    for j in range(n_cond):
        given = _shape(condition_shapes[j]) if condition_shapes and j < len(condition_shapes) \
            else None
        seen = found.get(j)
        if given is not None and seen is not None and given != seen:
            raise ExportError(f"condition {j}: condition_shapes says {given}, the blocks that "
                              f"read it were built for {seen}")
        if given is None and seen is None:
            raise ExportError(f"condition {j} is read by no block, so its shape is unknown: pass "
                              f"condition_shapes=[...] to export()")
        cond_shapes.append(given or seen)

    blocks = []
    modules = []
    for i, m in enumerate(model.module_list):
        where = f"module_list.{i}"
        ctx.input_shape_of[id(m)] = [shapes[i]]
        ctx.output_shape_of[id(m)] = [shapes[i + 1]]
        cls, spec = describe(m, f"{where} ({type(m).__name__})", ctx)
        spec.index = i
        spec.prefix = where
        spec.node = None
        spec.freia_name = None
        modules.append((m, spec))
        c = conds[i]
        blocks.append(spec.cpp if c is None else f"inn::Conditioned<{spec.cpp}, {c}>")

    # Runs of equal blocks as inn::Repeat.
    items = []
    k = 0
    while k < len(blocks):
        n = 1
        while k + n < len(blocks) and blocks[k + n] == blocks[k]:
            n += 1
        items.append(blocks[k] if n == 1 else f"inn::Repeat<{n}, {blocks[k]}>")
        k += n
    args = [shape_cpp(shapes[0])]
    if cond_shapes:
        args.append("inn::Conditions<" + ", ".join(shape_cpp(s) for s in cond_shapes) + ">")
    args += items
    body = ["using net = inn::SequenceINN<" + (",\n    ".join(args)) + ">::with_scalar<SCALAR>;"]
    info = {"container": "sequence", "input_shape": list(shapes[0]),
            "condition_shapes": [list(s) for s in cond_shapes], "output_shape": list(shapes[-1])}
    return body, modules, info


def _connection(src, slot, names, what):
    if id(src) not in names:
        raise ExportError(f"{what} reads a node that is not in the GraphINN")
    name = names[id(src)]
    return name if slot == 0 else f"inn::out<{name}, {slot}>"


def _graph(model, ctx, condition_shapes):
    Ff = _framework()
    order = list(model.node_list)  # FrEIA's forward execution order (all nodes)
    module_index = {id(m): k for k, m in enumerate(model.module_list)}
    # One set for node names and subnet structs: a struct made after a node was named (or the
    # other way round) must not take its name.
    taken = ctx.names
    names = {}
    lines = []
    modules = []
    feedforward = getattr(Ff, "FeedForwardNode", None)

    def declare(node, text, comment):
        lines.append(f"struct {names[id(node)]} : {text} {{}};  // FrEIA '{comment}'")

    def name_of(node):
        names[id(node)] = identifier(node.name, taken)

    ins = list(model.in_nodes)
    conds = list(model.condition_nodes)
    outs = list(model.out_nodes)
    if condition_shapes is not None and [tuple(c) for c in condition_shapes] != \
            [_shape(n.dims) for n in conds]:
        raise ExportError(f"condition_shapes {condition_shapes} differ from the graph's condition "
                          f"nodes {[_shape(n.dims) for n in conds]}")
    # inn refuses a ConditionNode that conditions no node (FrEIA ignores it): say so here, in
    # FrEIA's terms, rather than in the compiler's static_assert.
    read = {id(c[0] if isinstance(c, (tuple, list)) else c)
            for node in order for c in (getattr(node, "conditions", None) or [])}
    for node in conds:
        if id(node) not in read:
            raise ExportError(f"condition node '{node.name}' conditions no node; inn's GraphINN "
                              f"has no unread conditions: leave it out of the graph (and of the "
                              f"call)")
    gmm_index_conditions = set()
    for node in order:
        m = getattr(node, "module", None)
        if m is not None and type(m).__name__ == "GaussianMixtureModel":
            c = node.conditions[3] if len(node.conditions) == 4 else None
            if c is not None:
                gmm_index_conditions.add(id(c[0] if isinstance(c, (tuple, list)) else c))
    for node in ins:
        name_of(node)
        declare(node, f"inn::InputNode<{shape_cpp(node.dims)}>", node.name)
    for node in conds:
        name_of(node)
        dims = _shape(node.dims)
        if id(node) in gmm_index_conditions:
            dims = (1,)  # inn: the component index as one value of the scalar type
        declare(node, f"inn::ConditionNode<{shape_cpp(dims)}>", node.name)
    for node in order:
        if node in ins or node in conds or node in outs:
            continue
        if feedforward is not None and isinstance(node, feedforward):
            raise ExportError(f"node '{node.name}': a FeedForwardNode; the exporter does not "
                              f"write them: compute the condition before calling the network")
        m = node.module
        k = module_index[id(m)]
        where = f"node '{node.name}' (module_list.{k}, {type(m).__name__})"
        ctx.input_shape_of[id(m)] = [_shape(d) for d in node.input_dims]
        ctx.output_shape_of[id(m)] = [_shape(d) for d in node.output_dims]
        cls, spec = describe(m, where, ctx)
        name_of(node)
        spec.index = k
        spec.prefix = f"module_list.{k}"
        spec.node = names[id(node)]
        spec.freia_name = node.name
        modules.append((m, spec))
        inputs = [_connection(src, slot, names, where) for src, slot in node.inputs]
        arg = inputs[0] if len(inputs) == 1 else "inn::inputs<" + ", ".join(inputs) + ">"
        cs = []
        for c in node.conditions:
            src, slot = (c[0], c[1]) if isinstance(c, (tuple, list)) else (c, 0)
            cs.append(_connection(src, slot, names, where))
        text = f"inn::Node<{spec.cpp}, {arg}" + (
            ", inn::conditions<" + ", ".join(cs) + ">" if cs else "") + ">"
        declare(node, text, node.name)
    for node in outs:
        name_of(node)
        src, slot = node.inputs[0]
        declare(node, f"inn::OutputNode<{_connection(src, slot, names, node.name)}>", node.name)
    # inputs, conditions, then the module nodes in FrEIA's execution order, then the outputs: inn
    # plans the earliest listed ready node first, so its module numbering is FrEIA's (configure
    # sets the prefixes anyway, and checks the numbering where it uses module<K>()).
    listed = [names[id(n)] for n in ins + conds] + [s.node for _, s in modules] + \
        [names[id(n)] for n in outs]
    body = lines + [""] + ["using net = inn::GraphINN<" + ", ".join(listed) +
                           ">::with_scalar<SCALAR>;"]
    info = {"container": "graph",
            "input_nodes": [{"name": n.name, "cpp": names[id(n)], "shape": list(_shape(n.dims))}
                            for n in ins],
            "condition_nodes": [{"name": n.name, "cpp": names[id(n)],
                                 "shape": list(_shape(n.dims))} for n in conds],
            "output_nodes": [{"name": n.name, "cpp": names[id(n)],
                              "shape": list(_shape(n.input_dims[0]))} for n in outs],
            "modules": [{"name": s.node, "freia": s.freia_name, "prefix": s.prefix}
                        for _, s in modules]}
    return body, modules, info


def _kind(model):
    Ff = _framework()
    if isinstance(model, Ff.SequenceINN):
        return "sequence"
    if isinstance(model, Ff.GraphINN):
        return "graph"
    raise ExportError(f"the model is a {type(model).__name__}; export() takes a FrEIA SequenceINN "
                      f"or GraphINN")


# ---- the header ---------------------------------------------------------------------------------

def _header_text(name, kind, ctx, body, modules, scalar, weights_name, freia_version):
    modules_sorted = sorted(modules, key=lambda ms: ms[1].index)
    if any(s.node is not None and s.configure for _, s in modules_sorted):
        ctx.headers.add("type_traits")  # the static_assert on inn's module numbering
    headers = sorted(ctx.headers | {s.header for _, s in modules_sorted} |
                     {"inn/io/state_dict.hpp", "filesystem"})
    std = [h for h in headers if "/" not in h]
    inn = [h for h in headers if "/" in h]
    out = [
        f"// {name}.hpp: generated by inn_export from a FrEIA {('SequenceINN' if kind == 'sequence' else 'GraphINN')}"
        f" (FrEIA {freia_version}). Do not edit: export again.",
        f"//",
        f"//   {name}::net net = {name}::load(\"{weights_name}\");  // the type, FrEIA's weights",
        f"//   auto [z, log_jac_det] = net.forward(x);",
        f"//",
        f"// {name}::net is a {scalar} network ({name}::net::with_scalar<float> etc. for others);",
        f"// {name}::configure(net) gives any network of this type FrEIA's state_dict layout before",
        f"// inn::load_safetensors (load() does it). Everything is in an unnamed namespace: include",
        f"// this header in one translation unit.",
    ]
    notes = [n for _, s in modules_sorted for n in s.notes]
    if notes:
        out.append("//")
        out.append("// Translations (exact):")
        out += [f"//   {n}" for n in notes]
    out.append("")
    out.append("#pragma once")
    out.append("")
    out += [f"#include <{h}>" for h in std]
    out.append("")
    out += [f"#include <{h}>" for h in inn]
    out.append("")
    out.append("namespace {")
    out.append(f"namespace {name} {{")
    out.append("")
    for _, (sname, lines) in ctx.structs.items():
        out += lines
        out.append("")
    out += [line.replace("SCALAR", scalar) for line in body]
    out.append("")
    out.append(f"/// The weights export() wrote beside this header.")
    out.append(f"inline constexpr const char* weights_file = \"{weights_name}\";")
    out.append("")
    out.append("/// FrEIA's state_dict layout on a network of this type (any scalar, or its inverse):")
    out.append("/// the state_dict prefix of every module node, and what the type cannot say.")
    out.append("template <class Net>")
    out.append("void configure(Net& net) {")
    used = False
    for _, s in modules_sorted:
        if s.node is not None:
            out.append(f"    net.template set_state_dict_prefix<{s.node}>(\"{s.prefix}\");")
            used = True
        for stmt in s.configure:
            if s.node is not None:
                out.append(f"    static_assert(std::is_same_v<typename decltype(net.template "
                           f"module<{s.index}>())::node, {s.node}>,")
                out.append(f"                  \"inn numbers the module nodes otherwise than "
                           f"FrEIA: export again\");")
            out.append("    " + stmt.replace("{K}", str(s.index)))
            used = True
    if not used:
        out.append("    (void)net;  // a SequenceINN's prefixes are inn's defaults")
    out.append("}")
    out.append("")
    out.append("/// A network of this type holding the exported weights (strict: every key must fit).")
    out.append("template <class Net = net>")
    out.append("Net load(const std::filesystem::path& path = weights_file) {")
    out.append("    Net n;")
    out.append("    configure(n);")
    out.append("    inn::load_safetensors(n, path);")
    out.append("    return n;")
    out.append("}")
    out.append("")
    out.append(f"}}  // namespace {name}")
    out.append("}  // namespace")
    return "\n".join(out) + "\n"


def _state_dict(model, modules, dtype):
    """The file's tensors: every module's state under its prefix, in FrEIA's key order."""
    tensors = {}
    for m, spec in sorted(modules, key=lambda ms: ms[1].index):
        state = spec.state if spec.state is not None else m.state_dict()
        for key, t in state.items():
            t = t.detach().cpu()
            if dtype is not None and t.is_floating_point():
                t = t.to(dtype)
            tensors[f"{spec.prefix}.{key}"] = t.contiguous().clone()
    # Keys FrEIA's model has that no module claims would be lost: refuse rather than drop them.
    claimed = {f"module_list.{spec.index}." for _, spec in modules}
    for key in model.state_dict():
        if not any(key.startswith(p) for p in claimed):
            raise ExportError(f"state_dict key '{key}' belongs to no module the exporter wrote")
    return tensors


def export(model, name, out_dir=".", condition_shapes=None, scalar="float", dtype=None):
    """Writes `<out_dir>/<name>.hpp` (the inn type of `model`, namespace `name`) and
    `<out_dir>/<name>.safetensors` (its state_dict, in inn's = git FrEIA's layout).

    model: a FrEIA SequenceINN or GraphINN (trained or not). condition_shapes: the shapes of the
    conditions, needed only for a SequenceINN condition that no block reads (otherwise read from
    the blocks and checked against). scalar: the C++ scalar of `name::net` ("float" or
    "double"). dtype: convert the floating-point tensors of the file (default: as in the model).

    Raises ExportError, naming the module, for anything inn cannot express.
    """
    _check_name(name)
    if scalar not in ("float", "double"):
        raise ExportError(f"scalar must be 'float' or 'double', not '{scalar}'")
    kind = _kind(model)
    ctx = Context()
    ctx.names |= RESERVED
    if kind == "sequence":
        body, modules, info = _sequence(model, ctx, condition_shapes)
    else:
        body, modules, info = _graph(model, ctx, condition_shapes)
    try:
        import FrEIA
        freia_version = getattr(FrEIA, "__version__", None)
    except ImportError:
        FrEIA = None
        freia_version = None
    if not freia_version:
        try:
            from importlib.metadata import version
            freia_version = version("FrEIA")
        except Exception:  # noqa: BLE001
            freia_version = "unknown version"
    os.makedirs(out_dir, exist_ok=True)
    header = os.path.join(out_dir, f"{name}.hpp")
    weights = os.path.join(out_dir, f"{name}.safetensors")
    tensors = _state_dict(model, modules, dtype)
    text = _header_text(name, kind, ctx, body, modules, scalar, os.path.basename(weights),
                        freia_version)
    metadata = {"format": "pt", "inn_export": json.dumps({"name": name, "freia": freia_version,
                                                          **info})}
    write_safetensors(weights, tensors, metadata)
    with open(header, "w") as f:
        f.write(text)
    notes = [n for _, s in modules for n in s.notes]
    return Exported(header, weights, f"{name}::net", notes)


# ---- the way back -------------------------------------------------------------------------------

def _renumber(model, tensors, exported):
    """FrEIA numbers a GraphINN's modules (module_list.K) in an order that depends on the
    process (its topological sort iterates over sets of nodes), so the same graph built again
    may number them otherwise than the model export() saw. The export's file records each
    node's name and prefix; the keys move to the prefixes of the same-named nodes here."""
    _, metadata = read_safetensors(exported)
    info = json.loads(metadata.get("inn_export", "{}"))
    if info.get("container") != "graph":
        return tensors
    index = {id(m): k for k, m in enumerate(model.module_list)}
    here = {}
    for node in model.node_list:
        m = getattr(node, "module", None)
        if m is not None and id(m) in index:
            here[node.name] = f"module_list.{index[id(m)]}"
    moved = {}
    for entry in info["modules"]:
        if entry["freia"] not in here:
            raise ExportError(f"{exported} names node '{entry['freia']}', which this GraphINN "
                              f"does not have")
        moved[entry["prefix"] + "."] = here[entry["freia"]] + "."
    out = {}
    for key, t in tensors.items():
        head = key.split(".", 2)
        old = ".".join(head[:2]) + "."
        out[moved[old] + key[len(old):] if old in moved else key] = t
    return out


def load_state_dict(model, path, strict=True, exported=None):
    """Loads a state_dict that inn saved (`inn::save_safetensors(net, path)`) into the FrEIA
    model, with torch's load_state_dict(strict=strict), after translating inn's (git FrEIA's)
    layout to the installed FrEIA's where they differ (FrEIA 0.2: ActNorm's scale/bias,
    FixedLinearTransform without b). `exported`: the .safetensors export() wrote for the C++
    type; for a GraphINN built anew in another process, it gives each node's prefix by name
    (FrEIA's module numbering is not the same in every process). Returns torch's result."""
    tensors, _ = read_safetensors(path)
    if exported is not None:
        tensors = _renumber(model, tensors, exported)
    target = model.state_dict()
    prefixes = {}
    flags = {}
    for k, m in enumerate(getattr(model, "module_list", [])):
        prefixes[f"module_list.{k}."] = m
    for prefix, m in prefixes.items():
        sd = m.state_dict()
        if type(m).__name__ == "ActNorm" and "scale" in sd and f"{prefix}log_scale" in tensors:
            log_scale = tensors.pop(f"{prefix}log_scale").double()
            loc = tensors.pop(f"{prefix}loc").double()
            init = tensors.pop(f"{prefix}is_initialized", torch.tensor(True))
            tensors[f"{prefix}scale"] = -log_scale
            tensors[f"{prefix}bias"] = -loc * torch.exp(-log_scale)
            flags[prefix] = not bool(init)
        if type(m).__name__ == "FixedLinearTransform" and "b" not in sd \
                and f"{prefix}b" in tensors:
            b = tensors.pop(f"{prefix}b")
            if b.dim() != 0 or float(b) != float(getattr(m, "b", 0.0)):
                raise ExportError(f"{prefix}b holds {b.tolist()}; this FrEIA keeps b = "
                                  f"{getattr(m, 'b', 0.0)} outside its state_dict")
        if type(m).__name__ == "FixedLinearTransform" and "b" in sd \
                and tuple(sd["b"].shape) == (1,) and f"{prefix}b" in tensors:
            tensors[f"{prefix}b"] = tensors[f"{prefix}b"].reshape(1)  # FrEIA 0.2's scalar b
    state = {}
    for key, t in tensors.items():
        want = target.get(key)
        state[key] = t.to(want.dtype) if want is not None and want.dtype != t.dtype else t
    result = model.load_state_dict(state, strict=strict)
    for prefix, uninitialised in flags.items():  # FrEIA 0.2's ActNorm clears it on any load
        prefixes[prefix].init_on_next_batch = uninitialised
    return result
