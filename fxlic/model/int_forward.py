"""Integer forward of a model: the layer list run by one backend (SPEC L, I, P).

``encode`` runs g_a, h_a and h_s (the encoder needs h_s for the entropy
model of y); ``decode`` runs h_s and g_s.  Every layer's integer input codes,
accumulators and output codes can be observed through one ``hook`` (used by
the test-vector writer; a hook with ``wants_acc = False`` is not handed
accumulators, e.g. a progress bar); the forward itself is written once.

Without a hook (or with one whose ``wants_codes`` is False, e.g. a timer) an
intermediate activation read by the next layer alone may be handed over as that
layer's operands instead of codes (``Backend.layer``'s ``into``;
``kernels.Predecoded``): the same integers, one pass over memory less.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..kernels import Backend, get_backend
from ..kernels.reference import offset_level, out_ha_y, out_offset_latent, requant_channels
from ..quant.codebook import act_nlq_luts
from ..quant.meanreduce import mu_from_pixels
from .intmodel import ACT_BITS, IntModel


@dataclass
class Encoded:
    #: int64 (M, h, w): stored y (y_hat - mu for mean-reduced channels), int8 range;
    #: an offset-latent hyperprior: HA0's input (O3's codes, or O6's levels on 2^-H)
    y: np.ndarray
    mu: np.ndarray  # int64 (M,): mean-reduction offsets (0 where not mean-reduced)
    z: np.ndarray = None  # int64 (N, h/4, w/4) hyperprior only
    #: (2M, h, w) HS5 codes (O2, 8-bit): scales then means; int16 (a channels-last
    #: view) from the numba in-register path and the tiled codec, int64 otherwise
    ms: np.ndarray = None
    #: offset latents of a hyperprior (SPEC O5): AT3's int32 accumulators, from
    #: which the y symbols are formed once the means are known (``offset_y``)
    y_acc: np.ndarray = None


def pad_to_multiple(pixels: np.ndarray, multiple: int) -> np.ndarray:
    """P1: pad (C, H, W) on the bottom and right to multiples of ``multiple`` by
    replicating the last row / column."""
    C, H, W = pixels.shape
    Hp = -(-H // multiple) * multiple
    Wp = -(-W // multiple) * multiple
    if (Hp, Wp) == (H, W):
        return pixels
    return np.pad(pixels, ((0, 0), (0, Hp - H), (0, Wp - W)), mode="edge")


def input_tables(model: IntModel, name: str, mu: np.ndarray = None):
    """I1: per-channel decode tables (C, 256) of a layer's input, with the
    alignment shift folded in, and the code offset (0 unsigned, 128 signed).
    (None, None) for the y_hat of an offset-latent hyperprior, whose levels are
    per element (O5), and for HA0's y on the 2^-H grid (O6, more than 8 bits):
    the layer is fed ``aligned_levels`` instead.

    The tables are read-only and shared between calls with the same inputs
    (``_table_inputs``: everything they are built from, compared by value, so
    a model edited in place gets new tables)."""
    inputs = _table_inputs(model, name, mu)
    key = tuple(a.tobytes() if isinstance(a, np.ndarray) else a for a in inputs)
    hit = _TABLES.get(key)
    if hit is None:
        hit = _build_input_tables(*inputs)
        if hit[0] is not None:
            hit[0].flags.writeable = False
        if len(_TABLES) > 256:
            _TABLES.clear()
        _TABLES[key] = hit
    return hit


_TABLES: dict = {}


def _table_inputs(model: IntModel, name: str, mu):
    """Everything ``_build_input_tables`` reads, as plain values and int64 arrays."""
    L = model.layer(name)
    spec = L.spec
    d = np.asarray(L.in_shift, np.int64)
    skip = bool(spec.src == "y" and model.ha_grid_bits) or bool(
        model.offset_latents and spec.src == "y_hat" and model.arch.kind == "hyperprior")
    if skip:
        return ("none", spec.cin, d, None, None)
    if model.offset_latents and spec.src in ("y_hat", "z_hat"):
        return ("offset", spec.cin, d, np.asarray(model.offset_q, np.int64), int(model.grid_bits))
    if spec.src == "x":
        return ("x", spec.cin, d, None, None)
    if spec.src in ("y", "y_hat", "z_hat"):
        add = np.zeros(spec.cin, np.int64) if (spec.src == "z_hat" or mu is None) else np.asarray(mu, np.int64)
        return ("latent", spec.cin, d, add, None)
    P = model.layer(spec.src)
    if P.out_kind == 0:
        return ("nlq", spec.cin, d, np.asarray(P.mux, np.int64), None)
    return ("signed", spec.cin, d, None, None)


def _build_input_tables(kind, cin, d, arr, grid_bits):
    codes = np.arange(256, dtype=np.int64)
    if kind == "none":
        return None, None
    if kind == "offset":
        lv = offset_level((codes - 128)[None, :], arr[:, None], grid_bits)
        return np.ascontiguousarray(lv << d[:, None]), 128
    if kind == "x":
        lv, offset = np.broadcast_to(codes, (cin, 256)), 0
    elif kind == "latent":
        lv, offset = (codes - 128)[None, :] + arr[:, None], 128
    elif kind == "nlq":
        lv, offset = act_nlq_luts(ACT_BITS)[arr], 0
    else:
        lv, offset = np.broadcast_to(codes - 128, (cin, 256)), 128
    return np.ascontiguousarray(lv << d[:, None]), offset


def run_layers(model: IntModel, names, tensors: dict, backend: Backend, mu=None, hook=None) -> dict:
    """Run the named layers in order; ``tensors`` maps source names to codes."""
    M = model.arch.M
    mu = np.zeros(M, np.int64) if mu is None else np.asarray(mu, np.int64)
    readers = {}
    for l in model.arch.layers:
        readers.setdefault(l.src, []).append(l.name)
    for i, name in enumerate(names):
        L = model.layer(name)
        spec = L.spec
        src = tensors[spec.src]
        tables, offset = input_tables(model, name, mu if spec.src in ("y", "y_hat") else None)
        if tables is None:
            src = aligned_levels(L, src)
        lmu = mu if spec.out == "y" else np.zeros(spec.cout, np.int64)
        offset_out = model.offset_latents and spec.out in ("y", "z")
        want_acc = offset_out or (hook is not None and getattr(hook, "wants_acc", True))
        into = None
        nxt = names[i + 1] if i + 1 < len(names) else None
        quiet = hook is None or not getattr(hook, "wants_codes", True)
        if quiet and spec.out == "act" and readers.get(name) == [nxt]:
            # the one reader runs next: the backend may hand over its operands instead of codes
            into = (model.layer(nxt),) + input_tables(model, nxt, None)
        out, acc = backend.layer(L, src, tables, offset, lmu, want_acc=want_acc, into=into)
        sym = offset_symbols(model, L, acc) if offset_out else None
        if sym is not None:
            out = sym
        elif spec.out == "y" and model.ha_grid_bits:  # O6: HA0 reads y on the 2^-H grid
            out = out_ha_y(acc, L.acc_exp, model.ha_grid_bits)
        if hook is not None:
            hook(name, src, acc, out)
        tensors[name] = out
        if spec.out == "y":  # Eq 1: the integer y is y_hat (O5 hyperprior: HA0's input only)
            tensors["y"] = out
            if offset_out and model.arch.kind == "hyperprior":
                tensors["y_acc"] = acc.astype(np.int32)
            else:
                tensors["y_hat"] = out
        elif spec.out == "z":
            tensors["z_hat"] = out
    return tensors


def offset_symbols(model: IntModel, L, acc: np.ndarray):
    """SPEC O5 output of a latent layer of an offset-latent model: the symbols
    around the bottleneck medians (z; the y of a factorized model), or None for
    the y of a hyperprior, whose symbols wait for the means (``offset_y``)."""
    if L.spec.out == "y" and model.arch.kind == "hyperprior":
        return None
    return out_offset_latent(acc, L.acc_exp, np.asarray(model.offset_q)[:, None, None], model.grid_bits)


def aligned_levels(L, levels: np.ndarray) -> np.ndarray:
    """I1 for a tensor given as levels (offset y_hat, O5): ``level << d_c``."""
    return np.asarray(levels, np.int64) << L.in_shift[:, None, None]


def offset_mean(model: IntModel, ms: np.ndarray, c) -> np.ndarray:
    """SPEC O5 / E1: the predicted mean of y channel ``c`` on the 2^-G grid,
    ``RQ(q_mean, -(e_mean + G))`` of HS5's mean channel M + c; ``c`` an int
    (-> (h, w)) or a slice of channels (-> (n, h, w))."""
    M = model.arch.M
    e = np.asarray(model.layer(model.latent_layer("ms")).out_exp, np.int64)
    cs = c if isinstance(c, slice) else slice(c, c + 1)
    means = requant_channels(ms[M:][cs], -(e[M:][cs] + model.grid_bits))
    return means if isinstance(c, slice) else means[0]


def offset_means(model: IntModel, ms: np.ndarray) -> np.ndarray:
    """``offset_mean`` of every channel, int64 (M, h, w)."""
    return offset_mean(model, ms, slice(0, model.arch.M))


def offset_y(model: IntModel, y_acc: np.ndarray, means_q: np.ndarray, channels=None) -> np.ndarray:
    """SPEC O5: the y symbols round(y - mean) of an offset-latent hyperprior;
    ``channels`` (a slice) when ``y_acc`` / ``means_q`` hold only those channels."""
    L = model.layer(model.latent_layer("y"))
    e = L.acc_exp if channels is None else L.acc_exp[channels]
    return out_offset_latent(y_acc, e, means_q, model.grid_bits)


def image_mu(model: IntModel, pixels: np.ndarray, chunk: int = 256) -> np.ndarray:
    """M2: mean-reduction offsets of an image (0 for channels not mean-reduced).
    The pixel sum is taken in row chunks (no int64 copy of a large image)."""
    M = model.arch.M
    mu = np.zeros(M, np.int64)
    if np.any(model.mr_mask):
        s = 0
        for r in range(0, pixels.shape[1], chunk):
            s += int(np.asarray(pixels[:, r:r + chunk]).sum(dtype=np.int64))
        n = int(np.asarray(pixels).size)
        for c in np.flatnonzero(model.mr_mask):
            mu[c] = mu_from_pixels(s, n, int(model.mr_a_q[c]), int(model.mr_b_q[c]))
    return mu


def _names(model, prefixes):
    return [l.name for l in model.arch.layers if l.name[:2] in prefixes]


def check_padded(model: IntModel, pixels) -> np.ndarray:
    """The encoder's input: (3, H, W) with H, W multiples of the pad multiple (P1)."""
    pixels = np.asarray(pixels)
    m = model.arch.pad_multiple
    if pixels.ndim != 3 or pixels.shape[0] != 3 or pixels.shape[1] % m or pixels.shape[2] % m:
        raise ValueError(f"encode expects (3, H, W) with H, W multiples of {m}; "
                         f"got {pixels.shape} (pad with pad_to_multiple)")
    if pixels.dtype != np.uint8:
        if pixels.dtype.kind not in "iu":
            raise ValueError(f"encode expects integer pixels 0..255; got dtype {pixels.dtype}")
        if pixels.size and (pixels.min() < 0 or pixels.max() > 255):
            raise ValueError(f"encode expects pixels 0..255; got values in [{pixels.min()}, {pixels.max()}]")
    return pixels


def encode(model: IntModel, pixels: np.ndarray, backend="numba", hook=None) -> Encoded:
    """g_a (+ h_a, h_s): (3, H, W) uint8 pixels, H and W multiples of the
    architecture's pad multiple, to integer latents."""
    be = get_backend(backend) if isinstance(backend, str) else backend
    pixels = check_padded(model, pixels)
    mu = image_mu(model, pixels)
    t = {"x": pixels if pixels.dtype == np.uint8 else pixels.astype(np.int64)}  # levels = codes (F4)
    run_layers(model, _names(model, ("AT",)), t, be, mu, hook)
    enc = Encoded(y=t["y"], mu=mu, y_acc=t.get("y_acc"))
    if model.arch.kind == "hyperprior":
        run_layers(model, _names(model, ("HA", "HS")), t, be, mu, hook)
        enc.z = t["z_hat"]
        enc.ms = t[_names(model, ("HS",))[-1]]
    return enc


def hyper_decode(model: IntModel, z: np.ndarray, backend="numba", hook=None) -> np.ndarray:
    """h_s: z_hat -> HS5 codes (scales, means; integer dtype as ``Encoded.ms``)."""
    be = get_backend(backend) if isinstance(backend, str) else backend
    t = run_layers(model, _names(model, ("HS",)), {"z_hat": np.asarray(z, np.int64)}, be, None, hook)
    return t[_names(model, ("HS",))[-1]]


def synthesize(model: IntModel, y: np.ndarray, mu: np.ndarray, backend="numba", hook=None) -> np.ndarray:
    """g_s: stored y (+ mu) -> (3, H, W) pixels (uint8).  For an offset-latent
    model ``y`` is what O5 reconstructs: the levels symbol * 2^G + mean on the 2^-G grid
    (hyperprior) or the symbols (factorized; the medians are in the input tables)."""
    be = get_backend(backend) if isinstance(backend, str) else backend
    t = run_layers(model, _names(model, ("ST",)), {"y_hat": np.asarray(y, np.int64)}, be, mu, hook)
    return t[_names(model, ("ST",))[-1]].astype(np.uint8)
