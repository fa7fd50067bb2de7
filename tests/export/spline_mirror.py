"""FrEIA's RationalQuadraticSpline and LinearSpline (coupling, vectors, normal or identity tails,
no domain clamping) in plain PyTorch, with FrEIA's names, arguments and state_dict layout.

FrEIA's PyPI release 0.2 has no splines; later FrEIA has. The export test builds its spline model
with these mirrors (written from FrEIA's documented behaviour) where the installed FrEIA lacks
the classes. Each mirror says which FrEIA class it stands for (`freia_mirror_of`), which is what
inn_export reads.
"""

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

import FrEIA.modules as Fm


class BinnedSplineBase(nn.Module):
    """FrEIA's buffers, in its order: bins, min_bin_sizes, default_domain, identity_tails,
    default_width."""

    def __init__(self, bins, min_bin_sizes, default_domain, identity_tails):
        super().__init__()
        self.register_buffer("bins", torch.tensor(bins, dtype=torch.int32))
        self.register_buffer("min_bin_sizes", torch.tensor(min_bin_sizes, dtype=torch.float32))
        self.register_buffer("default_domain", torch.tensor(default_domain, dtype=torch.float32))
        self.register_buffer("identity_tails", torch.tensor(identity_tails))
        self.register_buffer("default_width", torch.tensor(default_domain[1] - default_domain[0],
                                                           dtype=torch.float32))
        self.domain_clamping = None


class _BinnedSpline(Fm.InvertibleModule):
    extra_slots = 0

    def __init__(self, dims_in, dims_c=None, subnet_constructor=None, split_len=0.5, bins=10,
                 min_bin_sizes=(0.1, 0.1), default_domain=(-3.0, 3.0, -3.0, 3.0),
                 identity_tails=False):
        super().__init__(dims_in, dims_c or [])
        self.channels = dims_in[0][0]
        self.split_len1 = round(self.channels * split_len) if isinstance(split_len, float) \
            else split_len
        self.split_len2 = self.channels - self.split_len1
        self.spline_base = BinnedSplineBase(bins, min_bin_sizes, default_domain, identity_tails)
        self.n_bins = bins
        self.tails = identity_tails
        self.P = 2 * bins + (1 if identity_tails else 2) + self.extra_slots
        cl = sum(d[0] for d in (dims_c or []))
        self.subnet1 = subnet_constructor(self.split_len2 + cl, self.split_len1 * self.P)
        self.subnet2 = subnet_constructor(self.split_len1 + cl, self.split_len2 * self.P)

    def output_dims(self, input_dims):
        return input_dims

    def _base(self):
        return self.spline_base

    def _constrain(self, raw, n):
        b = self.n_bins
        p = raw.reshape(raw.shape[0], n, self.P)
        sb = self._base()
        dd, mb = sb.default_domain, sb.min_bin_sizes
        rw, rh = p[..., :b], p[..., b:2 * b]
        if self.tails:
            t = sb.default_width * F.softplus(p[..., 2 * b:2 * b + 1] + math.log(math.e - 1))
            left = bottom = -t / 2
            widths = t * torch.softmax(rw, dim=-1)
            heights = t * torch.softmax(rh, dim=-1)
            rest = p[..., 2 * b + 1:]
        else:
            bottom = p[..., 2 * b:2 * b + 1] + dd[2]
            left = p[..., 2 * b + 1:2 * b + 2] + dd[0]
            bw = (dd[1] - dd[0]) / sb.bins
            bh = (dd[3] - dd[2]) / sb.bins
            xs = torch.log(torch.exp(bw - mb[0]) - 1)
            ys = torch.log(torch.exp(bh - mb[1]) - 1)
            widths = mb[0] + F.softplus(rw + xs)
            heights = mb[1] + F.softplus(rh + ys)
            rest = p[..., 2 * b + 2:]
        return left, bottom, widths, heights, rest

    def _spline(self, x, raw, rev):
        left, bottom, widths, heights, rest = self._constrain(raw, x.shape[1])
        kx = torch.cat([left, left + torch.cumsum(widths, -1)], -1)
        ky = torch.cat([bottom, bottom + torch.cumsum(heights, -1)], -1)
        sigma = heights.sum(-1) / widths.sum(-1)
        shift = bottom[..., 0] - sigma * left[..., 0]
        knots = ky if rev else kx
        inside = (knots[..., 0] < x) & (x <= knots[..., -1])
        upper = torch.searchsorted(knots.contiguous(), x.unsqueeze(-1).contiguous()).squeeze(-1)
        upper = upper.clamp(1, self.n_bins)
        lower = upper - 1

        def at(t, i):
            return torch.gather(t, -1, i.unsqueeze(-1)).squeeze(-1)

        xk, xk1, yk, yk1 = at(kx, lower), at(kx, upper), at(ky, lower), at(ky, upper)
        y_in, logd_in = self._inside(x, xk, xk1, yk, yk1, rest, sigma, lower, upper, rev)
        y_out = (x - shift) / sigma if rev else sigma * x + shift
        y = torch.where(inside, y_in, y_out)
        logd = torch.where(inside, logd_in, torch.log(sigma))
        ljd = logd.sum(-1)
        return y, -ljd if rev else ljd

    def forward(self, x, c=[], rev=False, jac=True):
        x = x[0]
        x1, x2 = x[:, :self.split_len1], x[:, self.split_len1:]
        if not rev:
            y1, j1 = self._spline(x1, self.subnet1(torch.cat([x2, *c], 1)), False)
            y2, j2 = self._spline(x2, self.subnet2(torch.cat([y1, *c], 1)), False)
        else:
            y2, j2 = self._spline(x2, self.subnet2(torch.cat([x1, *c], 1)), True)
            y1, j1 = self._spline(x1, self.subnet1(torch.cat([y2, *c], 1)), True)
        return (torch.cat([y1, y2], 1),), j1 + j2


class RationalQuadraticSpline(_BinnedSpline):
    freia_mirror_of = "RationalQuadraticSpline"

    def __init__(self, dims_in, dims_c=None, subnet_constructor=None, split_len=0.5, bins=10,
                 **kwargs):
        self.extra_slots = bins - 1
        super().__init__(dims_in, dims_c, subnet_constructor, split_len, bins, **kwargs)

    def _inside(self, v, xk, xk1, yk, yk1, rest, sigma, lower, upper, rev):
        inner = F.softplus(rest + math.log(math.e - 1))
        s_ = sigma.unsqueeze(-1)
        d = torch.cat([s_, inner, s_], -1)
        dk = torch.gather(d, -1, lower.unsqueeze(-1)).squeeze(-1)
        dk1 = torch.gather(d, -1, upper.unsqueeze(-1)).squeeze(-1)
        dx, dy = xk1 - xk, yk1 - yk
        s = dy / dx
        q = (dk1 + dk) - 2 * s
        if not rev:
            xi = (v - xk) / dx
            out = yk + (dy * ((s * xi * xi) + ((dk * xi) * (1 - xi)))) / (s + (q * xi) * (1 - xi))
        else:
            r = v - yk
            a = dy * (s - dk) + r * q
            b = dy * dk - r * q
            c = (-s) * r
            disc = b * b - (4 * a) * c
            xi = (2 * c) / ((-b) - torch.sqrt(disc.clamp(min=0)))
            out = xi * dx + xk
        logd = torch.log(s * s * ((dk1 * xi * xi) + (((2 * s) * xi) * (1 - xi))
                                  + dk * (1 - xi) * (1 - xi))) \
            - torch.log((s + (q * xi) * (1 - xi)) ** 2)
        return out, logd


class LinearSpline(_BinnedSpline):
    freia_mirror_of = "LinearSpline"

    def _inside(self, v, xk, xk1, yk, yk1, rest, sigma, lower, upper, rev):
        s = (yk1 - yk) / (xk1 - xk)
        shift = yk - s * xk
        out = (v - shift) / s if rev else s * v + shift
        return out, torch.log(yk1 - yk) - torch.log(xk1 - xk)


class ElementwiseRationalQuadraticSpline(RationalQuadraticSpline):
    """Every scalar its own rational-quadratic spline: parameters `spline_parameters` (C·P), or
    from `subnet(cat(c...))` when conditioned; FrEIA's buffers on the module itself."""
    freia_mirror_of = "ElementwiseRationalQuadraticSpline"

    def __init__(self, dims_in, dims_c=None, subnet_constructor=None, bins=10,
                 min_bin_sizes=(0.1, 0.1), default_domain=(-3.0, 3.0, -3.0, 3.0),
                 identity_tails=False):
        Fm.InvertibleModule.__init__(self, dims_in, dims_c or [])
        channels = dims_in[0][0]
        self.n_bins = bins
        self.tails = identity_tails
        self.P = 2 * bins + (1 if identity_tails else 2) + bins - 1
        self.conditional = bool(dims_c)
        if self.conditional:
            self.subnet = subnet_constructor(sum(d[0] for d in dims_c), channels * self.P)
        else:
            self.spline_parameters = nn.Parameter(torch.zeros(channels * self.P))
        base = BinnedSplineBase(bins, min_bin_sizes, default_domain, identity_tails)
        for name, buffer in base.named_buffers():
            self.register_buffer(name, buffer)
        self.domain_clamping = None

    def _base(self):
        return self

    def forward(self, x, c=[], rev=False, jac=True):
        x = x[0]
        if self.conditional:
            raw = self.subnet(torch.cat(list(c), 1))
        else:
            raw = self.spline_parameters.unsqueeze(0).expand(x.shape[0], -1)
        y, j = self._spline(x, raw, rev)
        return (y,), j
