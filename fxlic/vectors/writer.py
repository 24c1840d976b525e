"""Write conformance cases: a model directory (weights and per-layer parameters,
entropy tables) and an image case (every layer's integer input, accumulator and
output, the entropy-coder side, the bitstream and the reconstruction).

The tensors are observed through the ``hook`` of ``fxlic.model.int_forward``
while ``fxlic.codec.compress`` / ``decompress`` run: the forward is not
duplicated here.  Layout, element order and bit layout: docs/VECTORS.md.
"""
from __future__ import annotations

import fnmatch
import os
from dataclasses import dataclass, field

import numpy as np

from ..model.intmodel import IntModel
from .memfmt import png_bytes
from .store import VectorDir

#: categories of tensors that get a ``.mem`` twin of their ``.npy`` file
MEM_CATEGORIES = ("image", "act", "acc", "weights", "params", "dec", "entropy", "tables")

#: stored dtype of a layer's output codes, by IntLayer.out_kind (SPEC F2-F4, O1-O4)
OUT_DTYPE = {0: "uint8", 1: "int8", 2: "int8", 3: "uint8"}
#: the output-stage rule of each out_kind
OUT_RULE = {0: "O1", 1: "O2", 2: "O3", 3: "O4"}
#: where the tensor a layer reads lives in a case directory
SOURCE_TENSOR = {"x": "x", "y": "y", "y_hat": "y", "z_hat": "z"}
#: sources that are the (stored) latent y, decoded with + mu (SPEC M1)
Y_SOURCES = ("y", "y_hat")
CHW = ("C", "H", "W")


@dataclass
class Options:
    """What a case contains (the defaults: everything)."""
    layers: tuple = None  # layer names / glob patterns with per-layer tensors; None = all
    mem: frozenset = field(default_factory=lambda: frozenset(MEM_CATEGORIES))
    acc: bool = True  # layers/<L>/acc
    inputs: bool = True  # layers/<L>/in for every layer (False: an alias of the producer's out)
    dec_tables: bool = True  # layers/<L>/dec_table
    backend: str = "numba"

    def as_dict(self) -> dict:
        return {"layers": "all" if self.layers is None else list(self.layers),
                "mem": sorted(self.mem), "acc": self.acc, "inputs": self.inputs,
                "dec_tables": self.dec_tables}


def parse_layers(arg, names) -> tuple:
    """``all`` | ``none`` | comma list of names or glob patterns (``HS*``) -> names
    in model order.  Raises ValueError naming an unknown layer."""
    if arg is None or arg == "all":
        return tuple(names)
    if arg == "none":
        return ()
    pats = [p.strip() for p in arg.split(",") if p.strip()]
    chosen = set()
    for p in pats:
        hit = [n for n in names if fnmatch.fnmatchcase(n, p)]
        if not hit:
            raise ValueError(f"no layer matches {p!r} (layers: {', '.join(names)})")
        chosen.update(hit)
    return tuple(n for n in names if n in chosen)


def layer_stages(name: str) -> list:
    """Which side of the codec computes a layer: AT/HA encoder, ST decoder, HS both."""
    p = name[:2]
    if p == "HS":
        return ["decoder", "encoder"]
    if p == "ST":
        return ["decoder"]
    return ["encoder"]


# ---------------------------------------------------------------------------
# model directory
# ---------------------------------------------------------------------------

def arch_text(model: IntModel) -> str:
    """The layer list as plain text (for ports that do not parse JSON)."""
    a = model.arch
    lines = ["# fxlic architecture (docs/VECTORS.md): one 'layer' line per layer, in execution order",
             "# arch NAME KIND N M PAD_MULTIPLE",
             "# layer NAME OP K STRIDE CIN COUT ACT SRC OUT",
             f"arch {a.name} {a.kind} {a.N} {a.M} {a.pad_multiple}"]
    for s in a.layers:
        lines.append(f"layer {s.name} {s.op} {s.k} {s.stride} {s.cin} {s.cout} {s.act} {s.src} {s.out}")
    return "\n".join(lines) + "\n"


def write_model_dir(model: IntModel, root: str, opts: Options = None, name: str = None,
                    extra: dict = None, files: dict = None) -> dict:
    """Every integer parameter of ``model`` once: the stored fields of each layer
    (SPEC W1, A2, O), the derived shifts, mean-reduction and entropy tables."""
    from ..io.modelfile import model_hash

    opts = opts or Options()
    mem = opts.mem
    D = VectorDir(root)
    D.text("arch.txt", arch_text(model))
    for rel in sorted(files or {}):
        D.write(rel, files[rel])
    layers = []
    for spec in model.arch.layers:
        L = model.layer(spec.name)
        p = f"layers/{spec.name}/"
        n = spec.name
        D.tensor(p + "w_codes", L.w_codes, "int8", "weights" in mem, ("O", "C", "KY", "KX"),
                 layer=n, rule="W1", what="weight codes; tconv kernels out-channel first (C2)")
        pm = "params" in mem
        D.tensor(p + "w_lut", L.w_lut, "int16", pm, ("CODE",), layer=n, rule="W1",
                 what="weight level of code c at index c + 128")
        D.tensor(p + "w_exp", L.w_exp, "int8", pm, ("O",), layer=n, rule="W1", what="weight exponent")
        D.tensor(p + "bias", L.bias, "int32", pm, ("O",), layer=n, rule="A2",
                 what="bias at the accumulator exponent")
        D.tensor(p + "in_exp", L.in_exp, "int8", pm, ("C",), layer=n, rule="A2", what="input exponents")
        D.tensor(p + "out_exp", L.out_exp, "int8", pm, ("O",), layer=n, rule="O", what="output exponents")
        D.tensor(p + "mux", L.mux, "uint8", pm, ("O",), layer=n, rule="X2",
                 what="2-bit activation mux (0 unless O1)")
        D.tensor(p + "in_shift", L.in_shift, "uint8", pm, ("C",), layer=n, rule="A2",
                 what="derived: d_c = in_exp[c] - min(in_exp)")
        D.tensor(p + "acc_exp", L.acc_exp, "int8", pm, ("O",), layer=n, rule="A2",
                 what="derived: min(in_exp) + w_exp[o]")
        D.tensor(p + "out_shift", L.out_shift, "int8", pm, ("O",), layer=n, rule="O",
                 what="derived: out_exp[o] - acc_exp[o]")
        layers.append(_layer_entry(model, spec))
    M = model.arch.M
    pm = "params" in mem
    D.tensor("mean_reduction/mask", np.asarray(model.mr_mask, np.uint8), "uint8", pm, ("C",), rule="M1")
    D.tensor("mean_reduction/a_q", model.mr_a_q, "int64", pm, ("C",), rule="M2")
    D.tensor("mean_reduction/b_q", model.mr_b_q, "int64", pm, ("C",), rule="M2")
    for ename in sorted(model.entropy):
        a = np.asarray(model.entropy[ename])
        from .memfmt import dtype_name
        D.tensor("entropy/" + ename, a, dtype_name(a.dtype), "tables" in mem,
                 ("T", "I") if a.ndim == 2 else tuple(f"d{i}" for i in range(a.ndim)),
                 what="docs/ENTROPY.md table")
    head = {"kind": "model", "name": name or model.arch.name, "model_hash": model_hash(model),
            "architecture": {"name": model.arch.name, "kind": model.arch.kind, "N": model.arch.N,
                             "M": M, "pad_multiple": model.arch.pad_multiple},
            "layers": layers, "options": {"mem": sorted(mem)}}
    if extra:
        head.update(extra)
    return D.manifest(head)


def _layer_entry(model: IntModel, spec) -> dict:
    L = model.layer(spec.name)
    return {"name": spec.name, "op": spec.op, "k": spec.k, "stride": spec.stride, "cin": spec.cin,
            "cout": spec.cout, "act": spec.act, "src": spec.src, "out": spec.out,
            "out_rule": OUT_RULE[L.out_kind], "out_dtype": OUT_DTYPE[L.out_kind],
            "stages": layer_stages(spec.name)}


# ---------------------------------------------------------------------------
# image case
# ---------------------------------------------------------------------------

class _Recorder:
    def __init__(self):
        self.layers = {}

    def __call__(self, name, inp, acc, out):
        self.layers[name] = (np.asarray(inp), np.asarray(acc), np.asarray(out))


def run_case(model: IntModel, pixels: np.ndarray, backend: str = "numba") -> dict:
    """Compress and decompress ``pixels`` recording every layer; returns the
    integers a case consists of."""
    from ..bitstream.container import unpack
    from ..codec import compress, decompress
    from ..model.int_forward import image_mu, pad_to_multiple

    pixels = np.asarray(pixels)
    pm = model.arch.pad_multiple
    padded = pad_to_multiple(pixels, pm)
    enc, dec = _Recorder(), _Recorder()
    data, stats = compress(model, pixels, backend, hook=enc)
    recon = decompress(model, data, backend, hook=dec)
    for n in dec.layers:
        if n in enc.layers:  # h_s runs on both sides: must agree exactly
            for u, v in zip(enc.layers[n], dec.layers[n]):
                if not np.array_equal(u, v):
                    raise AssertionError(f"{n}: encoder-side and decoder-side h_s differ")
    layers = dict(enc.layers)
    layers.update(dec.layers)
    hdr, zs, ys = unpack(data)
    y_layer = [l.name for l in model.arch.layers if l.out == "y"][0]
    out = {"pixels": pixels, "padded": padded, "mu": image_mu(model, padded),
           "layers": layers, "stream": data, "z_stream": zs, "y_stream": ys, "recon": recon,
           "stats": stats, "y": layers[y_layer][2]}
    if model.arch.kind == "hyperprior":
        z_layer = [l.name for l in model.arch.layers if l.out == "z"][0]
        ms_layer = [l.name for l in model.arch.layers if l.out == "ms"][0]
        out["z"] = layers[z_layer][2]
        out["ms"] = layers[ms_layer][2]
    return out


def _entropy_side(model: IntModel, r: dict) -> dict:
    """Symbols, table indexes, means and scales (SPEC E1, docs/ENTROPY.md 9)."""
    from ..codec import _tables, means_scales
    from ..entropy.gaussian import y_indexes, y_means

    mu = r["mu"]
    y_hat = r["y"].astype(np.int64) + mu[:, None, None]
    e = {"y_hat": y_hat}
    if model.arch.kind == "hyperprior":
        _, gauss = _tables(model)
        z = r["z"].astype(np.int64)
        e["z_sym"] = z
        e["z_idx"] = np.broadcast_to(np.arange(z.shape[0])[:, None, None], z.shape)
        means, scales = means_scales(model, r["ms"])
        base, sign, fam = y_means(means, gauss)
        e["means"] = means
        e["scale_q"] = scales
        e["y_base"] = base
        e["y_idx"] = y_indexes(scales, fam, gauss).astype(np.int64)
        e["y_sym"] = sign * (y_hat - base)
    else:
        e["y_sym"] = y_hat
        e["y_idx"] = np.broadcast_to(np.arange(y_hat.shape[0])[:, None, None], y_hat.shape)
    return e


ENTROPY_DOC = {
    "y_hat": "y the entropy coder sees: stored y + mu (SPEC M1)",
    "z_sym": "z symbols (= z_hat), coded with table z_idx",
    "z_idx": "z table index (= channel)",
    "means": "mean_q: the mean of each y element at F = mean_frac_bits fractional bits (SPEC E1)",
    "scale_q": "scale at 16 fractional bits (SPEC E1)",
    "y_base": "base = RHU(mean_q, F): the mean rounded half up (SPEC E1)",
    "y_idx": "y table index: |d| * 64 + #{i: scale_q > T_i} (SPEC E1); factorized: channel",
    "y_sym": "y symbols: sign * (y_hat - base) (SPEC E1); factorized: y_hat",
}


def write_case(model: IntModel, pixels: np.ndarray, root: str, opts: Options = None,
               model_dir: str = None, model_name: str = None, image_name: str = None,
               extra: dict = None) -> dict:
    """Write one conformance case into ``root``.  ``model_dir``: path (relative to
    ``root``) of an existing model directory of the same model; None writes it
    to ``root/model``; "" writes none (the model is known by its hash only).
    Returns the manifest."""
    from ..io.modelfile import model_hash

    opts = opts or Options()
    mem = opts.mem
    arch = model.arch
    names = [s.name for s in arch.layers]
    chosen = parse_layers(None, names) if opts.layers is None else tuple(opts.layers)
    unknown = [n for n in chosen if n not in names]
    if unknown:
        raise ValueError(f"unknown layers {unknown}")
    D = VectorDir(root)
    if model_dir is None:
        write_model_dir(model, os.path.join(root, "model"), opts, model_name)
        model_dir = "model"
    r = run_case(model, pixels, opts.backend)
    px = np.asarray(pixels, dtype=np.uint8)
    _, H, W = px.shape
    _, Hp, Wp = r["padded"].shape
    im = "image" in mem
    D.write("image.png", png_bytes(px))
    D.tensor("image", px, "uint8", im, CHW, what="input image, 8-bit RGB", stages=["encoder"])
    D.tensor("x", r["padded"], "uint8", im, CHW, what="integer input tensor: the image padded (P1)",
             stages=["encoder"])
    act = "act" in mem
    D.tensor("mu", r["mu"], "int8", act, ("C",), what="mean-reduction offsets (M2; 0 if not reduced)",
             stages=["encoder"])
    D.tensor("y", r["y"], "int8", act, CHW, what="stored y (O3): y_hat - mu", stages=["decoder", "encoder"])
    if "z" in r:
        D.tensor("z", r["z"], "int8", act, CHW, what="z_hat (O3)", stages=["decoder", "encoder"])
    layer_entries = []
    for spec in arch.layers:
        n = spec.name
        L = model.layer(n)
        ent = _layer_entry(model, spec)
        inp, acc, out = r["layers"][n]
        ent["in_shape"] = [int(s) for s in inp.shape]
        ent["out_shape"] = [int(s) for s in out.shape]
        src_t = SOURCE_TENSOR.get(spec.src, f"layers/{spec.src}/out")
        ent["in_tensor"] = src_t
        from ..model.int_forward import input_tables
        tables, offset = input_tables(model, n, r["mu"] if spec.src in Y_SOURCES else None)
        ent["dec_offset"] = int(offset)
        ent["dumped"] = n in chosen
        layer_entries.append(ent)
        if n not in chosen:
            continue
        st = layer_stages(n)
        p = f"layers/{n}/"
        if not opts.inputs and src_t in D.tensors:
            D.alias(p + "in", src_t, layer=n, what="input codes", stages=st)
        else:
            src_dt = D.tensors[src_t]["dtype"] if src_t in D.tensors else _src_dtype(model, spec)
            D.tensor(p + "in", inp, src_dt, act, CHW, layer=n, what="input codes", stages=st)
        if opts.acc:
            D.tensor(p + "acc", acc, "int32", "acc" in mem, CHW, layer=n, rule="A1",
                     what="int32 accumulator incl. bias (C1/C2)", stages=st)
        D.tensor(p + "out", out, OUT_DTYPE[L.out_kind], act, CHW, layer=n, rule=OUT_RULE[L.out_kind],
                 what="output codes", stages=st, required=True)
        if opts.dec_tables:
            D.tensor(p + "dec_table", tables, "int64", "dec" in mem, ("C", "INDEX"),
                     layer=n, rule="I1", stages=st,
                     what=f"aligned input level of code q of channel c at INDEX = q + {offset}")
    # entropy side
    ent_mem = "entropy" in mem
    e = _entropy_side(model, r)
    for k in ("z_sym", "z_idx", "y_hat", "means", "scale_q", "y_base", "y_idx", "y_sym"):
        if k in e:
            a = e[k]
            D.tensor("entropy/" + k, a, "int32", ent_mem, CHW, what=ENTROPY_DOC[k], stages=["decoder", "encoder"])
    D.write("stream.fxl", r["stream"], what="the .fxl bitstream (docs/BITSTREAM.md)", stages=["encoder"])
    if r["z_stream"]:
        D.write("entropy/z.rans", r["z_stream"], what="z substream (docs/ENTROPY.md 5)")
    D.write("entropy/y.rans", r["y_stream"], what="y substream (docs/ENTROPY.md 5)")
    D.write("recon.png", png_bytes(r["recon"]))
    D.tensor("recon", r["recon"], "uint8", im, CHW, what="reconstruction, cropped to H x W",
             stages=["decoder"])
    st = r["stats"]
    mrel = model_dir.replace(os.sep, "/") or None
    D.text("case.txt", "\n".join([
        "# fxlic vectors case (docs/VECTORS.md): KEY VALUE lines",
        f"model_dir {mrel or '-'}",
        f"kind {arch.kind}",
        f"height {H}", f"width {W}", f"padded_height {Hp}", f"padded_width {Wp}",
        f"layers {' '.join(chosen) if chosen else '-'}",
    ]) + "\n")
    head = {"kind": "case",
            "model": {"name": model_name or arch.name, "hash": model_hash(model), "dir": mrel,
                      "architecture": arch.name, "arch_kind": arch.kind, "N": arch.N, "M": arch.M},
            "image": {"name": image_name or "image", "height": H, "width": W, "padded_height": Hp,
                      "padded_width": Wp, "pad_multiple": arch.pad_multiple},
            "layers": layer_entries,
            "stream": {"bytes": st.bytes_total, "z_bytes": st.bytes_z, "y_bytes": st.bytes_y},
            "options": opts.as_dict()}
    if extra:
        head.update(extra)
    return D.manifest(head)


def _src_dtype(model: IntModel, spec) -> str:
    if spec.src == "x":
        return "uint8"
    if spec.src in Y_SOURCES + ("z_hat",):
        return "int8"
    return OUT_DTYPE[model.layer(spec.src).out_kind]
