"""The models of the export test, built in FrEIA (the installed release) with random weights.

The README's three models (moons, mnist-cinn, conv-cifar: benchmarks/models.hpp) and a GraphINN
with parallel branches and a condition, which uses most of the remaining FrEIA modules.
"""

import torch
import torch.nn as nn

import FrEIA.framework as Ff
import FrEIA.modules as Fm

import spline_mirror


class MirroredAllInOneBlock(Fm.AllInOneBlock):
    """FrEIA's AllInOneBlock with the log-scale clamp of FrEIA after its PyPI release 0.2
    (affine_clamping * tanh(a / affine_clamping), which inn follows; 0.2 computes
    affine_clamping * tanh(a)). Everything else, state_dict names included, is the installed
    FrEIA's. Used only where the installed FrEIA is 0.2: the exporter refuses 0.2's block."""

    def _affine(self, x, a, rev=False):
        a = a * 0.1
        ch = x.shape[1]
        sub_jac = self.clamp * torch.tanh(a[:, :ch] / self.clamp)
        if self.GIN:
            sub_jac = sub_jac - torch.mean(sub_jac, dim=self.sum_dims, keepdim=True)
        if not rev:
            return x * torch.exp(sub_jac) + a[:, ch:], torch.sum(sub_jac, dim=self.sum_dims)
        return (x - a[:, ch:]) * torch.exp(-sub_jac), -torch.sum(sub_jac, dim=self.sum_dims)


def _all_in_one_class():
    from inn_export.modules import affine_clamping_form
    probe = Fm.AllInOneBlock([(4,)], subnet_constructor=lambda i, o: nn.Linear(i, o),
                             affine_clamping=2.0)
    if affine_clamping_form(probe) == "git":
        return Fm.AllInOneBlock, None
    return MirroredAllInOneBlock, (
        "the installed FrEIA's AllInOneBlock clamps as FrEIA 0.2 does (affine_clamping * tanh(a)), "
        "which inn_export refuses: the models use MirroredAllInOneBlock (tests/export/models.py), "
        "FrEIA's block with the later clamp")


AllInOneBlock, MIRROR_NOTE = _all_in_one_class()


def last_layer_zero(net):
    """The usual INN initialisation (the block starts as the identity); randomize() then moves
    it a little, which keeps the 28 couplings of conv_cifar from amplifying to 1e10."""
    with torch.no_grad():
        net[-1].weight.zero_()
        net[-1].bias.zero_()
    return net


def fc(width):
    def make(c_in, c_out):
        return last_layer_zero(
            nn.Sequential(nn.Linear(c_in, width), nn.ReLU(), nn.Linear(width, c_out)))
    return make


def conv(kernel, width):
    def make(c_in, c_out):
        return last_layer_zero(
            nn.Sequential(nn.Conv2d(c_in, width, kernel, padding=kernel // 2), nn.ReLU(),
                          nn.Conv2d(width, c_out, kernel, padding=kernel // 2)))
    return make


def moons():
    m = Ff.SequenceINN(2)
    for _ in range(8):
        m.append(AllInOneBlock, subnet_constructor=fc(512), permute_soft=True)
    return m, {"x": (2,), "c": []}


def mnist_cinn():
    m = Ff.SequenceINN(784)
    for _ in range(12):
        m.append(AllInOneBlock, cond=0, cond_shape=(10,), subnet_constructor=fc(512),
                 permute_soft=True)
    return m, {"x": (784,), "c": [(10,)]}


def conv_cifar():
    nodes = [Ff.InputNode(3, 32, 32, name="input")]
    for k in range(4):
        nodes.append(Ff.Node(nodes[-1], Fm.GLOWCouplingBlock,
                             {"subnet_constructor": conv(3, 256), "clamp": 1.2},
                             name=f"conv_high_res_{k}"))
        nodes.append(Ff.Node(nodes[-1], Fm.PermuteRandom, {"seed": k},
                             name=f"permute_high_res_{k}"))
    nodes.append(Ff.Node(nodes[-1], Fm.IRevNetDownsampling, {}, name="downsample"))
    for k in range(12):
        sub = conv(1, 256) if k % 2 == 0 else conv(3, 256)
        nodes.append(Ff.Node(nodes[-1], Fm.GLOWCouplingBlock,
                             {"subnet_constructor": sub, "clamp": 1.2}, name=f"conv_low_res_{k}"))
        nodes.append(Ff.Node(nodes[-1], Fm.PermuteRandom, {"seed": k},
                             name=f"permute_low_res_{k}"))
    nodes.append(Ff.Node(nodes[-1], Fm.Flatten, {}, name="flatten"))
    ndim = 3 * 32 * 32
    split = Ff.Node(nodes[-1], Fm.Split, {"section_sizes": [ndim // 4, 3 * ndim // 4], "dim": 0},
                    name="split")
    nodes.append(split)
    last = (split, 0)
    for k in range(12):
        nodes.append(Ff.Node(last, Fm.GLOWCouplingBlock,
                             {"subnet_constructor": fc(512), "clamp": 2.0},
                             name=f"fully_connected_{k}"))
        nodes.append(Ff.Node(nodes[-1], Fm.PermuteRandom, {"seed": k}, name=f"permute_fc_{k}"))
        last = nodes[-1]
    nodes.append(Ff.Node([(nodes[-1], 0), (split, 1)], Fm.Concat, {"dim": 0}, name="concat"))
    nodes.append(Ff.OutputNode(nodes[-1], name="output"))
    return Ff.GraphINN(nodes), {"x": (3, 32, 32), "c": []}


def branches():
    """Two parallel branches between a Split and a Concat, a condition, two outputs."""
    x = Ff.InputNode(12, name="x")
    c = Ff.ConditionNode(4, name="label")
    norm = Ff.Node(x, Fm.ActNorm, {}, name="norm")
    split = Ff.Node(norm, Fm.Split, {"section_sizes": [5, 7], "dim": 0}, name="split")
    a1 = Ff.Node((split, 0), Fm.RNVPCouplingBlock, {"subnet_constructor": fc(32), "clamp": 1.5},
                 conditions=c, name="branch a rnvp")
    a2 = Ff.Node(a1, Fm.PermuteRandom, {"seed": 3}, name="branch a perm")
    a3 = Ff.Node(a2, Fm.NICECouplingBlock, {"subnet_constructor": fc(16)}, name="branch a nice")
    b1 = Ff.Node((split, 1), Fm.GINCouplingBlock,
                 {"subnet_constructor": fc(24), "clamp": 1.0, "clamp_activation": "TANH"},
                 name="branch b gin")
    b2 = Ff.Node(b1, AllInOneBlock,
                 {"subnet_constructor": fc(20), "affine_clamping": 1.5,
                  "global_affine_type": "SIGMOID", "reverse_permutation": True},
                 conditions=c, name="branch b all in one")
    b3 = Ff.Node(b2, Fm.InvAutoAct, {}, name="branch b invauto")
    b4 = Ff.Node(b3, Fm.AffineCouplingOneSided, {"subnet_constructor": fc(16)},
                 name="branch b one sided")
    cat = Ff.Node([(a3, 0), (b4, 0)], Fm.Concat, {"dim": 0}, name="concat")
    glow = Ff.Node(cat, Fm.GLOWCouplingBlock,
                   {"subnet_constructor": fc(32), "clamp_activation": "SIGMOID"},
                   conditions=c, name="glow")
    out_split = Ff.Node(glow, Fm.Split, {"section_sizes": [4, 8], "dim": 0}, name="split out")
    o1 = Ff.OutputNode((out_split, 0), name="z1")
    o2 = Ff.OutputNode((out_split, 1), name="z2")
    nodes = [x, c, norm, split, a1, a2, a3, b1, b2, b3, b4, cat, glow, out_split, o1, o2]
    return Ff.GraphINN(nodes), {"x": (12,), "c": [(4,)]}


def well_conditioned(n, g):
    q, _ = torch.linalg.qr(torch.randn(n, n, generator=g))
    return q + 0.1 * torch.randn(n, n, generator=g)


def zoo():
    """One of nearly every other module of FrEIA's release and subnet layer inn has."""
    g = torch.Generator().manual_seed(7)

    def conv_leaky(c_in, c_out):
        return last_layer_zero(nn.Sequential(
            nn.Conv2d(c_in, 16, 3, padding=1, bias=False), nn.LeakyReLU(0.2),
            nn.Conv2d(16, c_out, 3, padding=1)))

    def conv_1x1(c_in, c_out):
        return last_layer_zero(nn.Sequential(nn.Conv2d(c_in, 8, 1), nn.ELU(0.5),
                                             nn.Conv2d(8, c_out, 1)))

    def fc_mixed(c_in, c_out):
        return last_layer_zero(nn.Sequential(
            nn.Linear(c_in, 32), nn.Tanh(), nn.Linear(32, 24, bias=False), nn.ELU(),
            nn.Linear(24, 16), nn.Sigmoid(), nn.Linear(16, c_out)))

    m = Ff.SequenceINN(2, 8, 8)
    m.append(Fm.ActNorm)
    m.append(Fm.HaarDownsampling, order_by_wavelet=True, rebalance=0.5)            # 8x4x4
    m.append(Fm.Fixed1x1Conv, M=well_conditioned(8, g))
    m.append(Fm.GLOWCouplingBlock, subnet_constructor=conv_leaky, clamp_activation="TANH",
             split_len=0.25)
    m.append(Fm.IRevNetUpsampling)                                                 # 2x8x8
    m.append(Fm.InvAutoConv2D, dims_out=(2, 8, 8), kernel_size=3, padding=1)
    m.append(AllInOneBlock, subnet_constructor=conv_1x1, gin_block=True,
             global_affine_type="EXP")
    m.append(Fm.IRevNetDownsampling)                                               # 8x4x4
    m.append(Fm.HaarUpsampling)                                                    # 2x8x8
    m.append(Fm.Reshape, output_dims=(8, 16))
    m.append(Fm.Flatten)                                                           # 128
    m.append(Fm.FixedLinearTransform, M=well_conditioned(128, g),
             b=0.1 * torch.randn(128, generator=g))
    m.append(Fm.OrthogonalTransform, correction_interval=100, clamp=4.0)
    m.append(Fm.HouseholderPerm, n_reflections=3)
    m.append(Fm.InvAutoActTwoSided)
    m.append(Fm.InvAutoFC)
    m.append(AllInOneBlock, subnet_constructor=fc(16), permute_soft=True,
             learned_householder_permutation=2, affine_clamping=1.0)
    m.append(Fm.LearnedElementwiseScaling)
    m.append(Fm.GINCouplingBlock, subnet_constructor=fc_mixed, clamp=1.5)
    m.append(Fm.ConditionalAffineTransform, cond=0, cond_shape=(4,),
             subnet_constructor=fc(16), clamp_activation="SIGMOID")
    m.append(Fm.RNVPCouplingBlock, subnet_constructor=fc(16), split_len=50)
    m.append(Fm.NICECouplingBlock, subnet_constructor=fc(16))
    m.append(Fm.AffineCouplingOneSided, subnet_constructor=fc(16), clamp=1.0)
    m.append(Fm.InvAutoAct, learnable=False)
    m.append(Fm.PermuteRandom, seed=5)
    return m, {"x": (2, 8, 8), "c": [(4,)]}


def topology():
    """Two inputs, two outputs; Split and Concat by section count, by sizes and along dim 1;
    InvertibleSigmoid (its inverse needs latents in (0, 1): LATENTS)."""
    a = Ff.InputNode(9, name="a")
    b = Ff.InputNode(4, 3, 3, name="b")
    thirds = Ff.Node(a, Fm.Split, {"n_sections": 3}, name="thirds")
    squash = Ff.Node((thirds, 1), Fm.InvertibleSigmoid, {}, name="squash")
    scale = Ff.Node((thirds, 2), Fm.LearnedElementwiseScaling, {}, name="scale")
    joined = Ff.Node([(thirds, 0), (squash, 0), (scale, 0)], Fm.Concat, {}, name="joined")
    channels = Ff.Node(b, Fm.Split, {"section_sizes": [1, 3], "dim": 0}, name="channels")
    rows = Ff.Node((channels, 1), Fm.Split, {"section_sizes": [2, 1], "dim": 1}, name="rows")
    back = Ff.Node([(rows, 1), (rows, 0)], Fm.Concat, {"dim": 1}, name="back")
    swapped = Ff.Node([(back, 0), (channels, 0)], Fm.Concat, {"dim": 0}, name="swapped")
    out_a = Ff.OutputNode(joined, name="out_a")
    out_b = Ff.OutputNode(swapped, name="out_b")
    nodes = [a, b, thirds, squash, scale, joined, channels, rows, back, swapped, out_a, out_b]
    return Ff.GraphINN(nodes), {"x": [(9,), (4, 3, 3)], "c": []}


def splines():
    """FrEIA's spline couplings (from spline_mirror.py where the installed FrEIA lacks them)."""
    rq = getattr(Fm, "RationalQuadraticSpline", None) or spline_mirror.RationalQuadraticSpline
    linear = getattr(Fm, "LinearSpline", None) or spline_mirror.LinearSpline
    m = Ff.SequenceINN(6)
    m.append(rq, subnet_constructor=fc(16), bins=6, default_domain=(-2.5, 3.0, -3.0, 2.0))
    m.append(Fm.PermuteRandom, seed=2)
    m.append(rq, subnet_constructor=fc(16), bins=5, identity_tails=True, split_len=2)
    m.append(linear, subnet_constructor=fc(16), bins=4, min_bin_sizes=(0.2, 0.05))
    m.append(linear, subnet_constructor=fc(16), bins=3, identity_tails=True)
    elementwise = getattr(Fm, "ElementwiseRationalQuadraticSpline", None) or \
        spline_mirror.ElementwiseRationalQuadraticSpline
    m.append(elementwise, bins=4)
    m.append(elementwise, cond=0, cond_shape=(3,), subnet_constructor=fc(8), bins=5,
             identity_tails=True)
    return m, {"x": (6,), "c": [(3,)]}


SPLINE_NOTE = None if hasattr(Fm, "RationalQuadraticSpline") else (
    "the installed FrEIA has no splines (the PyPI release 0.2): the splines model uses "
    "spline_mirror.py's RationalQuadraticSpline, LinearSpline and "
    "ElementwiseRationalQuadraticSpline (plain PyTorch, FrEIA's names and state_dict)")


def iresnet():
    """IResNetLayer: z and the fixed-point inverse are compared; FrEIA's log-det is a random
    (Hutchinson) estimate, inn's is exact, so it is not (STOCHASTIC_LOGDET)."""
    m = Ff.SequenceINN(6)
    m.append(Fm.IResNetLayer, internal_size=12, n_internal_layers=2, fixed_point_iterations=60)
    m.append(Fm.PermuteRandom, seed=4)
    m.append(Fm.IResNetLayer)
    return m, {"x": (6,), "c": []}


STOCHASTIC_LOGDET = {"iresnet"}


def after_randomize(model):
    """IResNetLayer's contraction (Lipschitz < 1, spectral_norm_max) after the random moves."""
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)  # FrEIA 0.2 draws its power-iteration vectors in it
    try:
        for m in model.module_list:
            if hasattr(m, "lipschitz_correction"):
                m.lipschitz_correction()
    finally:
        torch.set_default_dtype(default)


MODELS = {"moons": moons, "mnist_cinn": mnist_cinn, "conv_cifar": conv_cifar,
          "branches": branches, "zoo": zoo, "topology": topology, "splines": splines,
          "iresnet": iresnet}
# Latents for the inverse check where standard normal ones leave the inverse's domain.
LATENTS = {"topology": lambda shape, g: 0.1 + 0.8 * torch.rand(shape, generator=g,
                                                                 dtype=torch.float64)}
# Models the C++ test also trains and saves, for FrEIA to load back.
TRAINED_IN_CPP = ["moons", "branches", "zoo", "splines"]
BATCH = {"moons": 16, "mnist_cinn": 8, "conv_cifar": 2, "branches": 16, "zoo": 8,
         "topology": 8, "splines": 16, "iresnet": 8}


def randomize(model, generator):
    """Random weights: every trainable parameter moves by a random amount (FrEIA zeroes some
    subnets' last layers, which would hide their weights' order and layout), scaled by
    1/sqrt(fan-in) so that deep models keep their outputs of order one."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.requires_grad and p.is_floating_point():
                fan_in = p[0].numel() if p.dim() >= 2 else 1
                p.add_(0.1 / fan_in ** 0.5 *
                       torch.randn(p.shape, generator=generator, dtype=p.dtype))
