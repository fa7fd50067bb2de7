"""What each FrEIA module becomes in inn: its C++ type, header, options and state_dict.

Every handler reads the module object (never the code that built it) and either describes it
exactly or raises ExportError naming the module and what to do. Options that only decide a
module's initial values (FrEIA's global_affine_init, slope_init, init_scale, PermuteRandom's
seed, ...) are not exported: the state_dict holds the values they produced.

Both FrEIA's PyPI release 0.2 and its later git versions are read: they differ in a few state
layouts (ActNorm's scale/bias, AllInOneBlock's hard permutation as a matrix, FixedLinearTransform
without b), which are translated here into inn's (git FrEIA's) layout, exactly.
"""

import math

import torch
import torch.nn as nn

from .subnets import subnet_type


class ExportError(ValueError):
    """The model has something inn cannot express; the message names it and what to do."""


class Module:
    """What the exporter emits for one FrEIA module."""

    def __init__(self, cpp, header, state=None, configure=None, notes=None):
        self.cpp = cpp                    # the C++ module spec, e.g. inn::GLOWCouplingBlock<fc_64>
        self.header = header              # e.g. inn/modules/coupling/glow.hpp
        self.state = state                # dict key -> tensor relative to the prefix (None: as is)
        self.configure = configure or []  # statements for configure(net), "{K}" = module position
        self.notes = notes or []          # comment lines for the generated header


# ---- C++ spelling ------------------------------------------------------------------------------

def cpp_double(v, where, what):
    v = float(v)
    if not math.isfinite(v):
        raise ExportError(f"{where}: {what} = {v} has no C++ counterpart (not finite)")
    s = repr(v)
    return s if any(c in s for c in ".en") else s + ".0"


def cpp_float32(v, where, what):
    """A float32 buffer value as the shortest decimal that gives it (the option that made it)."""
    import numpy as np
    v = np.float32(v)
    if not np.isfinite(v):
        raise ExportError(f"{where}: {what} = {v} has no C++ counterpart (not finite)")
    s = np.format_float_positional(v, unique=True, trim="0")
    return s + "0" if s.endswith(".") else s


def options(struct, fields):
    """`inn::Struct{.a = 1, .b = 2}` for the fields (name, C++ value, C++ default) that differ from
    their defaults, in the struct's declaration order; "" when all are defaults."""
    set_ = [f".{name} = {value}" for name, value, default in fields if value != default]
    return f"{struct}{{{', '.join(set_)}}}" if set_ else ""


def cpp_bool(b):
    return "true" if b else "false"


def template(name, *args):
    args = [a for a in args if a]
    return f"{name}<{', '.join(args)}>"


# ---- helpers -----------------------------------------------------------------------------------

def subnet_of(module, attr, where, ctx):
    net = getattr(module, attr, None)
    if net is None:
        raise ExportError(f"{where}: has no subnet '{attr}'")
    return net


def subnets(module, attrs, where, ctx):
    """One C++ subnet constructor for the module's subnets (FrEIA builds them all with one
    subnet_constructor; inn's module takes one struct)."""
    found = [(a, subnet_of(module, a, where, ctx)) for a in attrs]
    return ctx.subnet_struct(found, where)


def clamp_activation(module, where):
    """The name of FrEIA's clamp_activation, found by evaluating module.f_clamp."""
    f = module.f_clamp
    if f is torch.tanh:
        return "tanh"
    u = torch.linspace(-6.0, 6.0, 97, dtype=torch.float64)
    try:
        got = f(u)
    except Exception as e:  # noqa: BLE001 - a user callable may fail in any way
        raise ExportError(f"{where}: clamp_activation is a Python callable that inn cannot "
                          f"run ({e}); use 'ATAN', 'TANH' or 'SIGMOID'") from e
    candidates = {
        "atan": 0.636 * torch.atan(u),
        "tanh": torch.tanh(u),
        "sigmoid": 2. * (torch.sigmoid(u) - 0.5),
    }
    for name, want in candidates.items():
        if torch.is_tensor(got) and got.shape == want.shape and torch.equal(got, want):
            return name
    raise ExportError(f"{where}: clamp_activation is a Python callable, which has no "
                      f"counterpart in inn; rebuild the model with clamp_activation='ATAN', "
                      f"'TANH' or 'SIGMOID'")


def global_affine_type(module, where):
    a = torch.linspace(-30.0, 30.0, 121, dtype=torch.float64)
    got = module.global_scale_activation(a)
    candidates = {
        "sigmoid": 10 * torch.sigmoid(a - 2.),
        "softplus": 0.1 * nn.functional.softplus(a, beta=0.5),
        "exp": torch.exp(a),
    }
    for name, want in candidates.items():
        if torch.allclose(got, want, rtol=1e-12, atol=0):
            return name
    raise ExportError(f"{where}: the global affine activation is none of FrEIA's 'SIGMOID', "
                      f"'SOFTPLUS', 'EXP'")


def coupling_split(module, where, cls):
    c = module.channels
    len1 = int(module.split_len1)
    if len1 <= 0 or len1 >= c:
        raise ExportError(f"{where}: split_len gives parts of {len1} and {c - len1} channels; "
                          f"inn needs two non-empty parts (FrEIA would build a zero-width subnet)")
    return len1, round(c * 0.5)


def flat_state(module):
    return {k: v for k, v in module.state_dict().items()}


# ---- the modules -------------------------------------------------------------------------------

COUPLING_SUBNETS = {
    "NICECouplingBlock": ("coupling/nice.hpp", ["F", "G"]),
    "RNVPCouplingBlock": ("coupling/rnvp.hpp", ["subnet_s1", "subnet_t1", "subnet_s2", "subnet_t2"]),
    "GLOWCouplingBlock": ("coupling/glow.hpp", ["subnet1", "subnet2"]),
    "GINCouplingBlock": ("coupling/gin.hpp", ["subnet1", "subnet2"]),
    "AffineCouplingOneSided": ("coupling/one_sided.hpp", ["subnet"]),
    "ConditionalAffineTransform": ("coupling/conditional_affine.hpp", ["subnet"]),
}


def coupling(m, cls, where, ctx):
    header, attrs = COUPLING_SUBNETS[cls]
    sub = subnets(m, attrs, where, ctx)
    fields = []
    if cls != "NICECouplingBlock":
        fields.append(("clamp", cpp_double(m.clamp, where, "clamp"), "2.0"))
        act = clamp_activation(m, where)
        fields.append(("activation", f"inn::clamp_activation::{act}",
                       "inn::clamp_activation::atan"))
    if cls != "ConditionalAffineTransform":
        len1, default = coupling_split(m, where, cls)
        fields.append(("split_channels", str(len1), str(default)))
    opts = options("inn::CouplingOptions", fields)
    return Module(template(f"inn::{cls}", sub, opts), "inn/modules/" + header)


def all_in_one(m, cls, where, ctx):
    sub = subnets(m, ["subnet"], where, ctx)
    householder = int(getattr(m, "householder", 0) or 0)
    notes = []
    if householder:
        soft = True  # w_0 is an SO(C) matrix in every FrEIA version; inn needs permute_soft
    else:
        w = m.w_perm
        soft = w.is_floating_point()
        if soft and not _is_soft_permutation_from_soft_flag(m):
            notes.append(f"{where}: FrEIA stores its hard permutation as a 0/1 matrix (w_perm "
                         f"{list(w.shape)}); inn's permute_soft form applies that matrix")
    if affine_clamping_form(m) == "freia_0.2" and float(m.clamp) != 1.0:
        raise ExportError(
            f"{where}: this FrEIA's AllInOneBlock clamps its log-scale as affine_clamping * "
            f"tanh(a) (the PyPI release 0.2); inn follows later FrEIA, affine_clamping * "
            f"tanh(a / affine_clamping). They agree only for affine_clamping = 1 (here "
            f"{float(m.clamp)}): install FrEIA from git (pip install "
            f"git+https://github.com/vislearn/FrEIA) and train with it, or use "
            f"affine_clamping=1.0")
    gat = global_affine_type(m, where)
    fields = [
        ("affine_clamping", cpp_double(m.clamp, where, "affine_clamping"), "2.0"),
        ("gin_block", cpp_bool(bool(m.GIN)), "false"),
        ("global_affine_type", f"inn::global_affine_type::{gat}",
         "inn::global_affine_type::softplus"),
        ("permute_soft", cpp_bool(soft), "false"),
        ("learned_householder_permutation", str(householder), "0"),
        ("reverse_permutation", cpp_bool(bool(m.reverse_pre_permute)), "false"),
    ]
    opts = options("inn::AllInOneOptions", fields)
    return Module(template("inn::AllInOneBlock", sub, opts), "inn/modules/all_in_one_block.hpp",
                  notes=notes)


def affine_clamping_form(m):
    """Which log-scale clamp the module's _affine computes: "git" (alpha * tanh(a / alpha), the
    FrEIA inn follows) or "freia_0.2" (alpha * tanh(a)), found by running it on probe values."""
    dtype = m.global_scale.dtype
    len2 = m.splits[1]
    spatial = [1] * int(m.input_rank)
    a = torch.linspace(-3.0, 3.0, 2 * len2, dtype=dtype).reshape(1, 2 * len2, *spatial)
    x = torch.ones(1, len2, *spatial, dtype=dtype)
    with torch.no_grad():
        y, _ = m._affine(x, a.clone())
    alpha = float(m.clamp)
    forms = {"git": lambda u: alpha * torch.tanh(u / alpha),
             "freia_0.2": lambda u: alpha * torch.tanh(u)}
    for name, f in forms.items():
        s_ = f(0.1 * a[:, :len2])
        if m.GIN:
            s_ = s_ - s_.mean(dim=tuple(range(1, s_.dim())), keepdim=True)
        if torch.allclose(y, torch.exp(s_) + 0.1 * a[:, len2:], rtol=1e-5, atol=0):
            return name
    raise ExportError(f"AllInOneBlock: its _affine computes neither FrEIA form of the clamp")


def _is_soft_permutation_from_soft_flag(m):
    """Whether a float w_perm could be a rotation rather than a 0/1 matrix (only for the note)."""
    w = m.w_perm.detach().reshape(m.w_perm.shape[0], -1)
    return not bool(((w == 0) | (w == 1)).all())


def actnorm(m, cls, where, ctx):
    sd = flat_state(m)
    if "log_scale" in sd:  # git FrEIA: inn's layout
        return Module("inn::ActNorm", "inn/modules/actnorm.hpp")
    # FrEIA 0.2: y = x * exp(scale) + bias, initialised when init_on_next_batch is False.
    # inn (git FrEIA): y = (x - loc) / exp(log_scale): log_scale = -scale,
    # loc = -exp(-scale) * bias, computed in float64 (the file may hold float64 tensors; inn
    # converts them on loading).
    scale = sd["scale"].detach().double()
    bias = sd["bias"].detach().double()
    state = {
        "log_scale": -scale,
        "loc": -torch.exp(-scale) * bias,
        "is_initialized": torch.tensor(not bool(m.init_on_next_batch)),
    }
    return Module("inn::ActNorm", "inn/modules/actnorm.hpp", state=state,
                  notes=[f"{where}: FrEIA 0.2's ActNorm scale/bias written as inn's "
                         f"log_scale = -scale, loc = -exp(-scale) * bias"])


def permute_random(m, cls, where, ctx):
    return Module("inn::PermuteRandom<>", "inn/modules/permute_random.hpp")


def fixed_linear(m, cls, where, ctx):
    sd = flat_state(m)
    configure = []
    state = None
    # One b for every channel: absent (FrEIA 0.2 keeps b = 0. as a Python float, outside the
    # state_dict), 0-dim, or FrEIA 0.2's b.unsqueeze(0) of a 0-dim tensor (shape [1]; a b per
    # channel has shape [1, C]).
    if "b" not in sd or sd["b"].dim() == 0 or tuple(sd["b"].shape) == (1,):
        configure.append("net.template module<{K}>()->set_scalar_b();")
        if "b" not in sd or sd["b"].dim() == 1:
            b = float(getattr(m, "b", 0.0)) if "b" not in sd else float(sd["b"][0])
            state = {k: sd[k] for k in ("M", "M_inv")}
            state["b"] = torch.tensor(b, dtype=sd["M"].dtype)
            state["logDetM"] = sd["logDetM"]
    return Module("inn::FixedLinearTransform", "inn/modules/fixed_linear.hpp", state=state,
                  configure=configure)


def fixed_1x1(m, cls, where, ctx):
    return Module("inn::Fixed1x1Conv", "inn/modules/fixed_1x1_conv.hpp")


def invertible_sigmoid(m, cls, where, ctx):
    return Module("inn::InvertibleSigmoid", "inn/modules/invertible_sigmoid.hpp")


def flatten(m, cls, where, ctx):
    return Module("inn::Flatten", "inn/modules/reshape.hpp")


def reshape(m, cls, where, ctx):
    out = ctx.output_shapes(m)[0]
    return Module(f"inn::Reshape<{shape_cpp(out)}>", "inn/modules/reshape.hpp")


def split(m, cls, where, ctx):
    dim = int(m.dim)
    outs = ctx.output_shapes(m)
    sizes = [int(s[dim]) for s in outs]
    if len(sizes) > 8:
        raise ExportError(f"{where}: {len(sizes)} sections; an inn node has at most 8 outputs")
    length = sum(sizes)

    def equal_parts(n):
        return [length // n + 1] * (length % n) + [length // n] * (n - length % n)

    fields = [("dim", str(dim), "0")]
    if sizes == equal_parts(2):
        sections = []
    elif sizes == equal_parts(len(sizes)):
        sections = [("n_sections", str(len(sizes)), "2")]
    else:
        sections = [("section_sizes", "{" + ", ".join(map(str, sizes)) + "}", "")]
    opts = options("inn::SplitOptions", sections + fields)
    return Module(template("inn::Split", opts) if opts else "inn::Split<>",
                  "inn/modules/split.hpp")


def concat(m, cls, where, ctx):
    opts = options("inn::ConcatOptions", [("dim", str(int(m.dim)), "0")])
    return Module(template("inn::Concat", opts) if opts else "inn::Concat<>",
                  "inn/modules/concat.hpp")


def irevnet(m, cls, where, ctx):
    opts = options("inn::IRevNetOptions",
                   [("legacy_backend", cpp_bool(bool(m.legacy_backend)), "false")])
    return Module(template(f"inn::{cls}", opts) if opts else f"inn::{cls}<>",
                  "inn/modules/irevnet.hpp")


def haar(m, cls, where, ctx):
    by_wavelet = bool(getattr(m, "permute", getattr(m, "order_by_wavelet", False)))
    rebalance = 2.0 * float(m.fac_fwd)  # fac_fwd = 0.5 * rebalance, exactly
    opts = options("inn::HaarOptions", [
        ("order_by_wavelet", cpp_bool(by_wavelet), "false"),
        ("rebalance", cpp_double(rebalance, where, "rebalance"), "1.0"),
    ])
    return Module(template(f"inn::{cls}", opts) if opts else f"inn::{cls}<>",
                  "inn/modules/haar.hpp")


def iresnet(m, cls, where, ctx):
    c = int(m.dims_in[0]) if isinstance(m.dims_in[0], int) else int(m.dims_in[0][0])
    internal = int(m.internal_size)
    opts = options("inn::IResNetLayerOptions", [
        ("internal_size", str(internal), str(2 * c)),
        ("n_internal_layers", str(int(m.n_internal_layers)), "1"),
        ("jacobian_iterations", str(int(m.jacobian_iterations)), "20"),
        ("hutchinson_samples", str(int(m.hutchinson_samples)), "1"),
        ("fixed_point_iterations", str(int(m.fixed_point_iterations)), "50"),
        ("lipschitz_iterations", str(int(m.lipschitz_iterations)), "10"),
        ("lipschitz_batchsize", str(int(m.lipschitz_batchsize)), "10"),
        ("spectral_norm_max", cpp_double(m.spectral_norm_max, where, "spectral_norm_max"), "0.8"),
    ])
    return Module(template("inn::IResNetLayer", opts) if opts else "inn::IResNetLayer<>",
                  "inn/modules/iresnet.hpp",
                  notes=[f"{where}: inn computes IResNetLayer's log-det exactly for up to 128 "
                         f"values per sample (FrEIA: a stochastic estimate)"])


def invauto_act(m, cls, where, ctx):
    opts = options("inn::InvAutoActOptions",
                   [("learnable", cpp_bool(bool(m.alpha.requires_grad)), "true")])
    notes = []
    if cls == "InvAutoActFixed":
        notes.append(f"{where}: FrEIA's deprecated InvAutoActFixed is InvAutoAct")
    return Module(template("inn::InvAutoAct", opts) if opts else "inn::InvAutoAct<>",
                  "inn/modules/invauto.hpp", notes=notes)


def invauto_two_sided(m, cls, where, ctx):
    opts = options("inn::InvAutoActTwoSidedOptions",
                   [("learnable", cpp_bool(bool(m.alpha_pos.requires_grad)), "true")])
    return Module(template("inn::InvAutoActTwoSided", opts) if opts else "inn::InvAutoActTwoSided<>",
                  "inn/modules/invauto.hpp")


def invauto_fc(m, cls, where, ctx):
    d = ctx.input_shapes(m)[0][0]
    if int(m.dims_out) != d:
        raise ExportError(f"{where}: dims_out = {m.dims_out} differs from the input's {d}: the "
                          f"layer is not bijective and inn does not offer it")
    return Module("inn::InvAutoFC<>", "inn/modules/invauto.hpp")


def invauto_conv(m, cls, where, ctx):
    shape = tuple(ctx.input_shapes(m)[0])
    if tuple(m.dims_out) != shape:
        raise ExportError(f"{where}: dims_out = {tuple(m.dims_out)} differs from the input shape "
                          f"{shape}: not bijective, inn does not offer it")
    opts = options("inn::InvAutoConv2DOptions", [
        ("kernel_size", str(int(m.kernel_size)), "3"),
        ("padding", str(int(m.padding)), "1"),
    ])
    return Module(template("inn::InvAutoConv2D", opts) if opts else "inn::InvAutoConv2D<>",
                  "inn/modules/invauto.hpp")


def elementwise_scaling(m, cls, where, ctx):
    # FrEIA's inverse log-det is +sum(s), not the inverse map's -sum(s); the export reproduces
    # FrEIA's numbers, so it asks for FrEIA's.
    return Module("inn::LearnedElementwiseScaling<inn::LearnedElementwiseScalingOptions{"
                  ".freia_reverse_logdet = true}>", "inn/modules/elementwise_scaling.hpp",
                  notes=[f"{where}: inverse log-det +sum(s) as FrEIA's "
                         f"(.freia_reverse_logdet = true; the inverse map's own is -sum(s))"])


def orthogonal(m, cls, where, ctx):
    opts = options("inn::OrthogonalTransformOptions", [
        ("correction_interval", str(int(m.correction_interval)), "256"),
        ("clamp", cpp_double(m.clamp, where, "clamp"), "5.0"),
    ])
    return Module(template("inn::OrthogonalTransform", opts) if opts
                  else "inn::OrthogonalTransform<>", "inn/modules/orthogonal.hpp")


def householder(m, cls, where, ctx):
    if getattr(m, "conditional", False):
        raise ExportError(f"{where}: a conditional HouseholderPerm (FrEIA's is broken) has no "
                          f"counterpart in inn")
    opts = options("inn::HouseholderPermOptions", [
        ("n_reflections", str(int(m.n_reflections)), ""),
        ("fixed", cpp_bool(bool(m.fixed)), "false"),
    ])
    return Module(template("inn::HouseholderPerm", opts), "inn/modules/orthogonal.hpp")


def gaussian_mixture(m, cls, where, ctx):
    return Module("inn::GaussianMixtureModel", "inn/modules/gaussian_mixture.hpp",
                  notes=[f"{where}: the component index condition is a Shape<1> of the "
                         f"network's scalar type holding an integer (FrEIA: int64)"])


def spline_fields(m, where):
    import numpy as np
    mins = [cpp_float32(v, where, "min_bin_sizes") for v in m.min_bin_sizes.tolist()]
    dom = [cpp_float32(v, where, "default_domain") for v in m.default_domain.tolist()]
    clamping = m.domain_clamping
    return [
        ("bins", str(int(m.bins)), "10"),
        ("min_bin_sizes", "{" + ", ".join(mins) + "}", "{0.1, 0.1}"),
        ("default_domain", "{" + ", ".join(dom) + "}", "{-3.0, 3.0, -3.0, 3.0}"),
        ("identity_tails", cpp_bool(bool(m.identity_tails)), "false"),
        ("domain_clamping",
         "0.0" if clamping is None else cpp_double(clamping, where, "domain_clamping"), "0.0"),
    ], np


def binned_spline(m, cls, where, ctx):
    header = {"RationalQuadraticSpline": "spline/rational_quadratic.hpp",
              "LinearSpline": "spline/linear.hpp"}[cls]
    sub = subnets(m, ["subnet1", "subnet2"], where, ctx)
    len1, default = coupling_split(m, where, cls)
    fields, _ = spline_fields(m.spline_base, where)
    opts = options("inn::SplineCouplingOptions",
                   [("split_channels", str(len1), str(default))] + fields)
    return Module(template(f"inn::{cls}", sub, opts), "inn/modules/" + header)


def elementwise_rq(m, cls, where, ctx):
    fields, _ = spline_fields(m, where)
    opts = options("inn::SplineOptions", fields) or "inn::SplineOptions{}"
    if getattr(m, "conditional", False):
        sub = subnets(m, ["subnet"], where, ctx)
        return Module(template("inn::ElementwiseRationalQuadraticSpline", opts, sub),
                      "inn/modules/spline/elementwise_rq.hpp")
    spec = template("inn::ElementwiseRationalQuadraticSpline", opts) if opts != \
        "inn::SplineOptions{}" else "inn::ElementwiseRationalQuadraticSpline<>"
    return Module(spec, "inn/modules/spline/elementwise_rq.hpp")


HANDLERS = {
    **{name: coupling for name in COUPLING_SUBNETS},
    "AllInOneBlock": all_in_one,
    "ActNorm": actnorm,
    "PermuteRandom": permute_random,
    "FixedLinearTransform": fixed_linear,
    "Fixed1x1Conv": fixed_1x1,
    "InvertibleSigmoid": invertible_sigmoid,
    "Flatten": flatten,
    "Reshape": reshape,
    "Split": split,
    "SplitChannel": split,
    "Split1D": split,
    "Concat": concat,
    "ConcatChannel": concat,
    "Concat1d": concat,
    "IRevNetDownsampling": irevnet,
    "IRevNetUpsampling": irevnet,
    "HaarDownsampling": haar,
    "HaarUpsampling": haar,
    "IResNetLayer": iresnet,
    "InvAutoAct": invauto_act,
    "InvAutoActFixed": invauto_act,
    "InvAutoActTwoSided": invauto_two_sided,
    "InvAutoFC": invauto_fc,
    "InvAutoConv2D": invauto_conv,
    "LearnedElementwiseScaling": elementwise_scaling,
    "OrthogonalTransform": orthogonal,
    "HouseholderPerm": householder,
    "GaussianMixtureModel": gaussian_mixture,
    "RationalQuadraticSpline": binned_spline,
    "LinearSpline": binned_spline,
    "ElementwiseRationalQuadraticSpline": elementwise_rq,
}


def freia_class(module):
    """The FrEIA class a module is (deprecated aliases are subclasses with their own names).
    A class with `freia_mirror_of = "Name"` stands for FrEIA's Name: a plain-PyTorch mirror
    with FrEIA's attributes and state_dict, for a FrEIA release that lacks the class."""
    mirror = getattr(type(module), "freia_mirror_of", None)
    if mirror in HANDLERS:
        return mirror
    for klass in type(module).__mro__:
        if klass.__module__.startswith("FrEIA.") and klass.__name__ in HANDLERS:
            if klass.__name__ in ("SplitChannel", "Split1D"):
                return "Split"
            if klass.__name__ in ("ConcatChannel", "Concat1d"):
                return "Concat"
            return klass.__name__
    return None


def describe(module, where, ctx):
    cls = freia_class(module)
    if cls is None:
        name = type(module).__name__
        raise ExportError(
            f"{where}: {name} ({type(module).__module__}) is not a FrEIA module that inn has "
            f"(docs/modules.md lists them); write it as an inn module (docs/tutorial.md, custom "
            f"modules) and the export of this model by hand")
    return cls, HANDLERS[cls](module, cls, where, ctx)


def shape_cpp(shape):
    return "inn::Shape<" + ", ".join(str(int(d)) for d in shape) + ">"
