"""Subnets: an nn.Sequential of the layers inn has becomes an inn::nn::Sequential.

FrEIA calls `subnet_constructor(c_in, c_out)`; in inn a subnet constructor is a struct with
`template <int In, int Out> using net = ...`. A subnet's layer pattern is its layers with the
first layer's input width written `In`, the last layer's output width `Out`, and every other
width fixed, as read from the module.
"""

import torch.nn as nn


class SubnetError(ValueError):
    pass


def _layer(layer, index):
    """(C++ spelling with {In}/{Out} placeholders resolved later, in width, out width)."""
    if isinstance(layer, nn.Linear):
        bias = "" if layer.bias is not None else ", false"
        return ("Linear", layer.in_features, layer.out_features, bias, None)
    if isinstance(layer, nn.Conv2d):
        k = tuple(layer.kernel_size)
        problems = []
        if k[0] != k[1]:
            problems.append(f"kernel_size {k} is not square")
        if tuple(layer.stride) != (1, 1):
            problems.append(f"stride {tuple(layer.stride)}")
        if tuple(layer.dilation) != (1, 1):
            problems.append(f"dilation {tuple(layer.dilation)}")
        if layer.groups != 1:
            problems.append(f"groups {layer.groups}")
        if layer.padding_mode != "zeros":
            problems.append(f"padding_mode '{layer.padding_mode}'")
        pad = layer.padding
        if isinstance(pad, str):
            if pad == "same" and k[0] % 2 == 1:
                pad = (k[0] // 2, k[0] // 2)
            elif pad == "valid":
                pad = (0, 0)
            else:
                problems.append(f"padding '{pad}'")
                pad = (0, 0)
        if pad[0] != pad[1]:
            problems.append(f"padding {tuple(pad)} differs between height and width")
        if problems:
            raise SubnetError(f"layer {index} nn.Conv2d has {', '.join(problems)}; inn's "
                              f"nn::Conv2d has a square kernel, stride 1, no dilation, one group, "
                              f"equal zero padding")
        bias = "" if layer.bias is not None else ", false"
        return ("Conv2d", layer.in_channels, layer.out_channels, bias, (k[0], pad[0]))
    if isinstance(layer, nn.ReLU):
        return ("inn::nn::ReLU", None, None, None, None)
    if isinstance(layer, nn.Tanh):
        return ("inn::nn::Tanh", None, None, None, None)
    if isinstance(layer, nn.Sigmoid):
        return ("inn::nn::Sigmoid", None, None, None, None)
    if isinstance(layer, nn.LeakyReLU):
        return (f"inn::nn::LeakyReLU<{_double(layer.negative_slope)}>", None, None, None, None)
    if isinstance(layer, nn.ELU):
        return (f"inn::nn::ELU<{_double(layer.alpha)}>", None, None, None, None)
    if isinstance(layer, nn.Sequential):
        raise SubnetError(f"layer {index} is a nested nn.Sequential; write the subnet as one "
                          f"flat nn.Sequential")
    raise SubnetError(f"layer {index} is {type(layer).__name__}, which inn's subnets do not "
                      f"have (nn::Linear, Conv2d, ReLU, LeakyReLU, ELU, Tanh, Sigmoid); write it "
                      f"as an inn layer (include/inn/nn/layer.hpp) or use those")


def _double(v):
    s = repr(float(v))
    return s if any(c in s for c in ".en") else s + ".0"


def subnet_type(net):
    """The layer pattern of one subnet: (pattern, c_in, c_out, description). The pattern is a
    hashable tuple of C++ layer spellings in which the first width is `In`, the last `Out`."""
    if not isinstance(net, nn.Sequential):
        raise SubnetError(
            f"is a {type(net).__name__}, not an nn.Sequential, so its layers cannot be read "
            f"(a lambda or class whose forward is code); build the subnet as "
            f"nn.Sequential(nn.Linear(c_in, w), nn.ReLU(), nn.Linear(w, c_out)) or similar")
    names = [name for name, _ in net.named_children()]
    if names != [str(i) for i in range(len(names))]:
        raise SubnetError(f"names its layers ({', '.join(names)}; an nn.Sequential of an "
                          f"OrderedDict), so its state_dict keys are '<name>.weight' where inn's "
                          f"are '<index>.weight'; build it from the layers in order")
    layers = [_layer(l, i) for i, l in enumerate(net)]
    shaped = [i for i, l in enumerate(layers) if l[1] is not None]
    if not shaped:
        raise SubnetError("has no Linear or Conv2d layer; inn's subnets map c_in to c_out "
                          "channels")
    kinds = {layers[i][0] for i in shaped}
    if len(kinds) > 1:
        raise SubnetError("mixes Linear and Conv2d layers; inn's subnets take all vectors or "
                          "all images")
    for a, b in zip(shaped, shaped[1:]):
        if layers[a][2] != layers[b][1]:
            raise SubnetError(f"layer {a} gives {layers[a][2]} channels, layer {b} takes "
                              f"{layers[b][1]}")
    first, last = shaped[0], shaped[-1]
    c_in, c_out = layers[first][1], layers[last][2]
    spelled = []
    for i, (kind, w_in, w_out, bias, conv) in enumerate(layers):
        if w_in is None:
            spelled.append(kind)
            continue
        a = "In" if i == first else str(w_in)
        b = "Out" if i == last else str(w_out)
        if kind == "Linear":
            spelled.append(f"inn::nn::Linear<{a}, {b}{bias}>")
        else:
            spelled.append(f"inn::nn::Conv2d<{a}, {b}, {conv[0]}, {conv[1]}{bias}>")
    return tuple(spelled), c_in, c_out, kinds.pop()


def pattern_name(pattern, kind):
    """A readable struct name: fc_512, conv3_64, conv1_16_tanh, ..."""
    widths = []
    kernels = set()
    extra = []
    for layer in pattern:
        if layer.startswith("inn::nn::Linear<") or layer.startswith("inn::nn::Conv2d<"):
            args = layer[layer.index("<") + 1:-1].split(", ")
            if args[1] != "Out":
                widths.append(args[1])
            if kind == "Conv2d":
                kernels.add(args[2])
        else:
            name = layer.split("::")[-1].split("<")[0].lower()
            if name != "relu" and name not in extra:
                extra.append(name)
    base = "fc" if kind == "Linear" else "conv" + "_".join(sorted(kernels))
    return "_".join([base] + widths + extra)
