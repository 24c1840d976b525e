"""Import float weights from an ONNX graph (docs/MODEL_FORMAT.md, part 2).

Supported nodes: Conv, ConvTranspose, Relu, LeakyRelu (alpha = 0.125),
Identity, Round (on y and z only), Split / Slice (only after the last
hyper-synthesis layer, to separate scales and means), Constant; shape
arithmetic (Shape, Gather, Add, Div, ... on constants and shapes only, as
PyTorch emits to compute ``chunk``'s split point) is allowed where it feeds
only the bounds of a Slice / Split.  Anything else is refused with a message
naming the op type and the node.

Each Conv / ConvTranspose node is mapped onto a layer of the architecture by
the data flow: a layer's node must read the graph input (``src`` x), the
output of the node of its source layer, or y / z (for ``y_hat`` / ``z_hat``),
through exactly the activation the source layer has (ReLU, LeakyReLU(1/8) or
none).  Weights come from initializers (or Constant nodes) in PyTorch layout.
Attributes are checked: square odd kernel, stride 1 or 2 (2 for
ConvTranspose), pads k//2 on every side, output_padding 1 (ConvTranspose),
group 1, dilations 1, no auto_pad.  HS5's output channels must already be in
fxlic's order (scales, then means -- CompressAI's ``chunk(2)``).

The architecture comes from the model's metadata_props ``fxlic.arch`` (plus
``fxlic.lambda``, ``fxlic.provenance``), a sidecar ``<file>.arch.json``, or is
inferred (17 convolutions: hyperprior5, 8: factorized; N and M from g_a).
Initializers that no node uses and that are named like the native entropy
parameters (``entropy_bottleneck.*``, ``gaussian_conditional.scale_table``)
become the entropy-model parameters.
"""
from __future__ import annotations

import math
import os

import numpy as np

from ..model.arch import ARCHITECTURES, Architecture
from ..model.float_model import LEAKY_SLOPE, FloatModel, from_torch_layout
from .files import check_input
from .floatfile import (EB, MAX_WEIGHTS_BYTES, WeightsError, _eb_rename, _float64, _meta_from,
                        _validate, check_entropy, check_weight_channels, find_architecture)

#: X1: largest tensor read (bytes), in the file or as external data
MAX_TENSOR_BYTES = 256 << 20
#: bytes per element of the float types fxlic reads (TensorProto data_type codes)
_ITEMSIZE = {1: 4, 10: 2, 11: 8, 16: 2}  # FLOAT, FLOAT16, DOUBLE, BFLOAT16


#: ops an exported GDN / IGDN consists of (x * x, Conv with gamma, + beta, Sqrt, Div)
GDN_OPS = ("Sqrt", "Div", "Mul", "Pow", "Reciprocal", "Rsqrt", "Abs")


def check_tensor_size(path: str, t, base: str, what: str) -> None:
    """X1: a tensor's byte count (dims, Python ints) is bounded, and external
    data must lie inside ``base``, in a regular file, with ``offset + length``
    within that file and ``length`` equal to the byte count -- all checked
    before a byte of it is read."""
    dims = list(t.dims)
    if any(d < 0 for d in dims):
        raise WeightsError(f"{path}: {what}: tensor {t.name!r} has negative dims {dims}")
    nbytes = math.prod(dims) * _ITEMSIZE.get(t.data_type, 8)
    if nbytes > MAX_TENSOR_BYTES:
        raise WeightsError(f"{path}: {what}: tensor {t.name!r} of shape {dims} needs {nbytes:,} "
                           f"bytes, more than {MAX_TENSOR_BYTES:,}")
    if t.data_location != 1:  # TensorProto.EXTERNAL
        return
    kv = {e.key: e.value for e in t.external_data}
    loc = kv.get("location", "")
    where = f"{path}: {what}: external data of tensor {t.name!r}"
    full = os.path.realpath(os.path.join(base, loc))
    if not loc or os.path.isabs(loc) or os.path.commonpath([full, os.path.realpath(base)]) != \
            os.path.realpath(base):
        raise WeightsError(f"{where}: location {loc!r} is not a file beside the model")
    try:
        size = check_input(os.path.join(base, loc), WeightsError, "an external-data file")
    except WeightsError as e:
        raise WeightsError(f"{where}: {e}") from None
    try:
        offset = int(kv.get("offset", 0))
        length = int(kv.get("length", size - offset))
    except ValueError:
        raise WeightsError(f"{where}: offset / length are not integers") from None
    if offset < 0 or length < 0 or offset + length > size:
        raise WeightsError(f"{where}: bytes [{offset}, {offset + length}) lie outside {loc} "
                           f"({size:,} bytes)")
    if length != nbytes:
        raise WeightsError(f"{where}: {length:,} bytes, the shape {dims} needs {nbytes:,}")

CONV_OPS = {"Conv": "conv", "ConvTranspose": "tconv"}
ACT_OPS = {"Relu": "relu", "LeakyRelu": "leaky"}
PASS_OPS = ("Identity", "Round")
TAIL_OPS = ("Split", "Slice")
SUPPORTED = tuple(CONV_OPS) + tuple(ACT_OPS) + PASS_OPS + TAIL_OPS
#: ops allowed on static tensors only (shape arithmetic feeding Slice/Split bounds)
SHAPE_OPS = ("Gather", "Add", "Sub", "Mul", "Div", "Unsqueeze", "Squeeze", "Concat", "Cast",
             "Reshape", "Floor", "Ceil", "Slice", "Split", "Identity", "Range", "ConstantOfShape",
             "Min", "Max", "Neg")
INPUT = "<graph input>"


def _node_label(node) -> str:
    return f"{node.op_type} node {node.name or '(unnamed)'!r}"


def load_onnx(path: str, arch_kind: str = "auto", arch: Architecture = None) -> FloatModel:
    """Read an ONNX file and map it onto fxlic's layer list (module docstring)."""
    try:
        return _load_onnx(path, arch_kind, arch)
    except WeightsError:
        raise
    except Exception as e:  # malformed protobuf contents (wrong attribute types, ...)
        raise WeightsError(f"{path}: cannot interpret the ONNX graph ({e.__class__.__name__}: {e})") from None


def _load_onnx(path: str, arch_kind: str, arch: Architecture) -> FloatModel:
    try:
        import onnx
        from onnx import numpy_helper
    except ImportError:
        raise WeightsError("reading ONNX needs the 'onnx' package (pip install onnx)") from None
    size = check_input(path, WeightsError, "an .onnx file")
    if size > MAX_WEIGHTS_BYTES:
        raise WeightsError(f"{path}: {size:,} bytes, larger than any weights file fxlic reads")
    try:
        model = onnx.load(path, load_external_data=False)  # X1: external data is checked first
    except Exception as e:  # protobuf decode errors have no common base class
        raise WeightsError(f"{path}: not a readable ONNX model ({e.__class__.__name__}: {e})") from None
    g = model.graph
    meta = {p.key: p.value for p in model.metadata_props}

    def to_f64(t, what):
        allowed = (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.DOUBLE,
                   onnx.TensorProto.BFLOAT16)
        if t.data_type not in allowed:
            raise WeightsError(f"{path}: {what}: tensor {t.name!r} is not floating point")
        base = os.path.dirname(os.path.abspath(path))
        check_tensor_size(path, t, base, what)
        try:
            a = numpy_helper.to_array(t, base_dir=base)
        except Exception as e:
            raise WeightsError(f"{path}: {what}: cannot read tensor {t.name!r} ({e})") from None
        return _float64(path, f"{t.name!r} ({what})", np.asarray(a).astype(np.float64))

    inits = {t.name: t for t in g.initializer}
    for node in g.node:
        if node.domain not in ("", "ai.onnx"):
            raise WeightsError(f"{path}: unsupported op {node.op_type!r} of domain {node.domain!r} "
                               f"(node {node.name!r})")
        if node.op_type == "Constant" and len(node.output) == 1:
            attrs = {a.name: a for a in node.attribute}
            if "value" in attrs:
                t = attrs["value"].t
                t.name = node.output[0]
                inits[node.output[0]] = t

    nodes = _topological(path, g, inits)
    # static tensors: initializers, constants and shape arithmetic (e.g. the split
    # point PyTorch computes for chunk()); they may only feed non-data inputs
    static = set(inits)
    for n in nodes:
        if n.op_type in ("Shape", "Constant") or (
                n.op_type in SHAPE_OPS and all(i in static for i in n.input if i)):
            static.update(n.output)
    for n in nodes:
        if all(o in static for o in n.output):
            if n.op_type not in SHAPE_OPS + ("Shape", "Constant"):
                raise WeightsError(f"{path}: unsupported ONNX op {n.op_type!r} (node {n.name!r}) "
                                   f"on constant data")
            continue
        if n.op_type not in SUPPORTED:
            gdn = " (a GDN / IGDN layer? fxlic's models use ReLU in place of GDN)" \
                if n.op_type in GDN_OPS else ""
            raise WeightsError(f"{path}: unsupported ONNX op {n.op_type!r} (node {n.name!r}){gdn}; "
                               f"fxlic reads {', '.join(SUPPORTED)}")
        if n.input and n.input[0] in static:
            raise WeightsError(f"{path}: {_node_label(n)} reads constant data {n.input[0]!r}")
    nodes = [n for n in nodes if not all(o in static for o in n.output)]
    producer = {}
    for n in nodes:
        for o in n.output:
            producer[o] = n
    data_inputs = [i.name for i in g.input if i.name not in inits]
    if len(data_inputs) != 1:
        raise WeightsError(f"{path}: the graph must have exactly one data input (the image), "
                           f"found {len(data_inputs)}: {', '.join(data_inputs)}")
    x_name = data_inputs[0]

    def trace(t):
        """(origin conv node or INPUT, [op types from its output to t])."""
        chain = []
        seen = 0
        while True:
            if t == x_name:
                return INPUT, chain[::-1]
            n = producer.get(t)
            if n is None:
                raise WeightsError(f"{path}: tensor {t!r} is neither produced by a node nor the input")
            if n.op_type in CONV_OPS:
                return n, chain[::-1]
            chain.append(n)
            t = n.input[0]
            seen += 1
            if seen > 10000:
                raise WeightsError(f"{path}: graph too deep")

    convs = [n for n in nodes if n.op_type in CONV_OPS]
    info = {}
    for n in convs:
        info[id(n)] = _conv_info(path, n, inits, to_f64)
        info[id(n)]["src"], info[id(n)]["chain"] = trace(n.input[0])
    if arch is None:
        arch = find_architecture(path, meta, None) or _infer_arch(path, convs, info, arch_kind)

    # ---- map nodes to layers in the order of the layer list ----
    assigned = {}
    used = set()
    out_of = {l.out: l.name for l in arch.layers}
    for l in arch.layers:
        if l.src == "x":
            want = INPUT
        else:
            src_layer = out_of["y"] if l.src in ("y", "y_hat") else out_of["z"] if l.src == "z_hat" else l.src
            want = assigned[src_layer]
        cands = [n for n in convs if id(n) not in used and info[id(n)]["src"] is want
                 and CONV_OPS[n.op_type] == l.op]
        fit = [n for n in cands if (info[id(n)]["k"], info[id(n)]["stride"], info[id(n)]["cin"],
                                    info[id(n)]["cout"]) == (l.k, l.stride, l.cin, l.cout)]
        if not fit:
            seen = "; ".join(f"{n.name!r}: {info[id(n)]['k']}x{info[id(n)]['k']} stride "
                             f"{info[id(n)]['stride']}, {info[id(n)]['cin']}->{info[id(n)]['cout']}"
                             for n in cands) or "none"
            raise WeightsError(f"{path}: no {('Conv' if l.op == 'conv' else 'ConvTranspose')} node "
                               f"matches layer {l.name} ({l.k}x{l.k} stride {l.stride}, "
                               f"{l.cin}->{l.cout}, reading {l.src}); candidates: {seen}")
        assigned[l.name] = fit[0]
        used.add(id(fit[0]))
    extra = [n for n in convs if id(n) not in used]
    if extra:
        raise WeightsError(f"{path}: {_node_label(extra[0])} maps to no layer of {arch.name}")
    layer_of = {id(n): name for name, n in assigned.items()}

    # ---- activations between layers, and at the graph outputs ----
    def check_chain(src_node, chain, where, terminal):
        if src_node is INPUT:
            if chain:
                raise WeightsError(f"{path}: {_node_label(chain[0])} on the input image is not "
                                   f"supported")
            return
        l = arch.layer(layer_of[id(src_node)])
        acts = []
        for i, n in enumerate(chain):
            if n.op_type in ACT_OPS:
                if n.op_type == "LeakyRelu":
                    alpha = _attrs(n).get("alpha", 0.01)
                    if float(alpha) != LEAKY_SLOPE:
                        raise WeightsError(f"{path}: {_node_label(n)} has alpha {alpha}; fxlic's "
                                           f"LeakyReLU slope is {LEAKY_SLOPE}")
                acts.append(ACT_OPS[n.op_type])
            elif n.op_type == "Round" and l.out not in ("y", "z"):
                raise WeightsError(f"{path}: {_node_label(n)} after layer {l.name}: Round is only "
                                   f"supported on y and z")
            elif n.op_type in TAIL_OPS:
                if not terminal or l.out != "ms" or any(m.op_type not in TAIL_OPS + PASS_OPS
                                                        for m in chain[i + 1:]):
                    raise WeightsError(f"{path}: {_node_label(n)}: Split/Slice is only supported on "
                                       f"the means/scales output at the end of the graph")
                if n.op_type == "Split" and int(_attrs(n).get("axis", 0)) not in (1, -3):
                    raise WeightsError(f"{path}: {_node_label(n)} must split the channel axis (1)")
        want = [] if l.act == "none" else [l.act]
        if acts != want:
            got = " + ".join(acts) or "no activation"
            raise WeightsError(f"{path}: layer {l.name} (node {src_node.name!r}) is followed by {got} "
                               f"on the way to {where}; the architecture has "
                               f"{'no activation' if l.act == 'none' else l.act}")

    for n in convs:
        check_chain(info[id(n)]["src"], info[id(n)]["chain"], f"node {n.name!r}", False)
    for o in g.output:
        src, chain = trace(o.name)
        check_chain(src, chain, f"graph output {o.name!r}", True)

    W, B = {}, {}
    for name, n in assigned.items():
        l = arch.layer(name)
        W[name] = from_torch_layout(l.op, info[id(n)]["w"])
        check_weight_channels(path, f"{n.input[1]!r} (layer {name})", W[name])
        B[name] = info[id(n)]["b"]
    referenced = {i for n in nodes for i in n.input}
    ent = {}
    for name, t in inits.items():
        if name in referenced:
            continue
        nk = _eb_rename(name)
        if nk is not None:
            ent[nk] = to_f64(t, "entropy parameter")
    ent = check_entropy(path, arch, ent)
    fm = FloatModel(arch, W, B, ent, _meta_from(path, meta, "onnx"))
    _validate(path, fm)
    return fm


def _attrs(node) -> dict:
    from onnx import helper
    out = {}
    for a in node.attribute:
        v = helper.get_attribute_value(a)
        out[a.name] = v.decode() if isinstance(v, bytes) else v
    return out


def _topological(path, g, inits) -> list:
    """Nodes in an order where every input is available first (Kahn)."""
    avail = set(inits) | {i.name for i in g.input} | {""}
    pending = list(g.node)
    order = []
    while pending:
        rest = [n for n in pending if not all(i in avail for i in n.input)]
        ready = [n for n in pending if all(i in avail for i in n.input)]
        if not ready:
            n = rest[0]
            miss = [i for i in n.input if i not in avail]
            raise WeightsError(f"{path}: {_node_label(n)} reads {miss[0]!r}, which nothing produces "
                               f"(or the graph has a cycle)")
        for n in ready:
            order.append(n)
            avail.update(n.output)
        pending = rest
    return order


def _conv_info(path, n, inits, to_f64) -> dict:
    lab = _node_label(n)
    if len(n.input) < 2 or n.input[1] not in inits:
        raise WeightsError(f"{path}: {lab}: the weight must be an initializer")
    w = to_f64(inits[n.input[1]], lab)
    if w.ndim != 4 or w.shape[2] != w.shape[3] or w.shape[2] % 2 == 0:
        raise WeightsError(f"{path}: {lab}: weight shape {w.shape}; fxlic needs a square odd 2-D kernel")
    k = w.shape[2]
    tconv = n.op_type == "ConvTranspose"
    cin, cout = (w.shape[0], w.shape[1]) if tconv else (w.shape[1], w.shape[0])
    if len(n.input) > 2 and n.input[2]:
        if n.input[2] not in inits:
            raise WeightsError(f"{path}: {lab}: the bias must be an initializer")
        b = to_f64(inits[n.input[2]], lab)
        if b.shape != (cout,):
            raise WeightsError(f"{path}: {lab}: bias shape {b.shape}, expected ({cout},)")
    else:
        b = np.zeros(cout)
    a = _attrs(n)
    known = {"auto_pad", "kernel_shape", "strides", "pads", "dilations", "group"} | \
        ({"output_padding", "output_shape"} if tconv else set())
    for key in a:
        if key not in known:
            raise WeightsError(f"{path}: {lab}: unsupported attribute {key!r}")
    if a.get("auto_pad", "NOTSET") != "NOTSET":
        raise WeightsError(f"{path}: {lab}: auto_pad {a['auto_pad']} is not supported "
                           f"(explicit pads k//2 expected)")
    if list(a.get("kernel_shape", [k, k])) != [k, k]:
        raise WeightsError(f"{path}: {lab}: kernel_shape {a['kernel_shape']} disagrees with the weight")
    strides = list(a.get("strides", [1, 1]))
    if len(strides) != 2 or strides[0] != strides[1] or strides[0] not in ((2,) if tconv else (1, 2)):
        raise WeightsError(f"{path}: {lab}: strides {strides} not supported "
                           f"({'[2, 2]' if tconv else '[1, 1] or [2, 2]'} expected)")
    p = k // 2
    if list(a.get("pads", [0, 0, 0, 0])) != [p] * 4:
        raise WeightsError(f"{path}: {lab}: pads {list(a.get('pads', [0, 0, 0, 0]))}, expected "
                           f"{[p] * 4} (k//2 on every side)")
    if list(a.get("dilations", [1, 1])) != [1, 1]:
        raise WeightsError(f"{path}: {lab}: dilations {a['dilations']} not supported")
    if int(a.get("group", 1)) != 1:
        raise WeightsError(f"{path}: {lab}: group {a['group']} not supported (group 1 only)")
    if tconv:
        if list(a.get("output_padding", [0, 0])) != [1, 1]:
            raise WeightsError(f"{path}: {lab}: output_padding {list(a.get('output_padding', [0, 0]))}, "
                               f"expected [1, 1] (output = 2 x input)")
        if "output_shape" in a:
            raise WeightsError(f"{path}: {lab}: output_shape is not supported")
    return {"w": w, "b": b, "k": k, "stride": strides[0], "cin": cin, "cout": cout}


def _infer_arch(path, convs, info, arch_kind) -> Architecture:
    if arch_kind in ("auto", None):
        arch_kind = {17: "hyperprior5", 8: "factorized"}.get(len(convs))
        if arch_kind is None:
            raise WeightsError(f"{path}: {len(convs)} convolutions match no known architecture "
                               f"(hyperprior5: 17, factorized: 8); give the architecture JSON")
    if arch_kind not in ARCHITECTURES:
        raise WeightsError(f"unknown architecture kind {arch_kind!r}")
    chain = []
    cur = INPUT
    for _ in range(4):
        nxt = [n for n in convs if info[id(n)]["src"] is cur]
        if len(nxt) != 1:
            raise WeightsError(f"{path}: cannot infer the architecture: the analysis transform is "
                               f"not a chain of 4 convolutions from the input")
        cur = nxt[0]
        chain.append(cur)
    N, M = info[id(chain[0])]["cout"], info[id(chain[3])]["cout"]
    try:
        return ARCHITECTURES[arch_kind](N, M)
    except ValueError as e:
        raise WeightsError(f"{path}: {e}") from None


__all__ = ["load_onnx", "SUPPORTED", "EB"]
