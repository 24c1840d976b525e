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
from .layouts import HwFormats, c_headers, parse_layout, parse_pack
from .store import VectorDir

#: categories of tensors that get a ``.mem`` twin of their ``.npy`` file
MEM_CATEGORIES = ("image", "act", "acc", "weights", "params", "dec", "entropy", "tables")

#: stored dtype of a layer's output codes, by IntLayer.out_kind (SPEC F2-F4, O1-O4)
OUT_DTYPE = {0: "uint8", 1: "int8", 2: "int8", 3: "uint8"}
#: the output-stage rule of each out_kind (an offset-latent model's z and
#: factorized y: O5, ``layer_rule``)
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
    tensors: tuple = None  # name / glob patterns of the case tensors to write; None = all
    layout: str = "chw"  # element order of .mem / .pP.mem / .bin / C headers: chw | hwc (layouts.py)
    mem_pack: tuple = ()  # P of each packed NAME.pP.mem (with every .mem)
    bin: bool = False  # NAME.bin (raw little-endian) of every tensor
    c_headers: bool = False  # the model directory's weights/*.h
    coverage: bool = False  # coverage.json: functional bins of the case (coverage.py)

    def as_dict(self) -> dict:
        d = {"layers": "all" if self.layers is None else list(self.layers),
             "mem": sorted(self.mem), "acc": self.acc, "inputs": self.inputs,
             "dec_tables": self.dec_tables}
        if self.tensors is not None:  # only when used: default manifests stay as they were
            d["tensors"] = list(self.tensors)
        if self.coverage:  # only when used
            d["coverage"] = True
        d.update(self.hw_dict())
        return d

    def hw_formats(self) -> HwFormats:
        """The hardware files of every tensor (ValueError for a bad layout or P)."""
        return HwFormats(parse_layout(self.layout), parse_pack(",".join(map(str, self.mem_pack))),
                         bool(self.bin))

    def hw_dict(self) -> dict:
        """The hardware-file options that differ from the defaults (manifest ``options``)."""
        f, d = self.hw_formats(), {}
        if f.layout != "chw":
            d["layout"] = f.layout
        if f.mem_pack:
            d["mem_pack"] = list(f.mem_pack)
        if f.bin:
            d["bin"] = True
        if self.c_headers:
            d["c_headers"] = True
        return d

    def wants(self, name: str) -> bool:
        """Whether the case tensor ``name`` is selected (``tensors``)."""
        return self.tensors is None or tensor_matches(name, self.tensors)


def tensor_matches(name: str, patterns) -> bool:
    """A pattern matches a tensor's full name (``layers/HS0/acc``, ``entropy/y_sym``,
    ``layers/HS*/out``) or its last component (``acc``, ``y_sym``)."""
    last = name.rsplit("/", 1)[-1]
    return any(fnmatch.fnmatchcase(name, p) or fnmatch.fnmatchcase(last, p) for p in patterns)


def parse_tensors(arg, names) -> tuple:
    """``all`` | comma list of tensor names / glob patterns -> the patterns
    (None for all).  Raises ValueError for a pattern that matches no tensor."""
    if arg is None or arg == "all":
        return None
    pats = tuple(p.strip() for p in arg.split(",") if p.strip())
    if not pats:
        raise ValueError("empty list (use all or a comma list of tensor names / patterns)")
    for p in pats:
        if not any(tensor_matches(n, (p,)) for n in names):
            short = sorted({n.rsplit("/", 1)[-1] for n in names})
            raise ValueError(f"no tensor matches {p!r} (names: {', '.join(short)}; or full names such as "
                             f"layers/AT0/out, entropy/y_sym)")
    return pats


class NoProgress:
    """What ``write_case`` reports progress to: ``phase(name, total, unit)``
    starts a phase, ``update(n)`` advances it, ``close()`` ends the last."""

    def phase(self, name: str, total: int, unit: str) -> None:
        pass

    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


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


def layer_rule(model: IntModel, spec) -> str:
    """The output-stage rule of a layer: OUT_RULE of its out_kind, except that
    the latent an offset-latent model codes with the factorized tables (z of a
    hyperprior, y of a factorized model) leaves its layer as O5 symbols.  (The
    y of an offset-latent hyperprior leaves AT3 as O3 codes, HA0's input; its O5
    symbols are formed after HS5, from AT3's accumulators: SPEC O5.)"""
    L = model.layer(spec.name)
    rule = OUT_RULE[L.out_kind]
    if rule == "O3" and model.offset_latents and not (spec.out == "y" and model.arch.kind == "hyperprior"):
        return "O5"
    if rule == "O3" and spec.out == "y" and model.ha_grid_bits:
        return "O6"  # AT3 of a spec-1.4 offset-latent hyperprior: HA0's y on the 2^-H grid
    return rule


def out_dtype(model: IntModel, spec) -> str:
    """Stored dtype of a layer's output: its kind's (OUT_DTYPE), int16 for O6's
    (8 + H)-bit levels."""
    return "int16" if layer_rule(model, spec) == "O6" else OUT_DTYPE[model.layer(spec.name).out_kind]


def reads_levels(model: IntModel, spec) -> bool:
    """The layer reads per-element levels, not codes: ST0 of an offset-latent
    hyperprior (``symbol * 2^G + mean_q``, SPEC O5) and HA0 on the 2^-H grid (O6);
    it has no decode table."""
    return bool(model.offset_latents and model.arch.kind == "hyperprior" and spec.src == "y_hat"
                or spec.src == "y" and model.ha_grid_bits)


def level_input_dtype(model: IntModel, spec) -> str:
    """Stored dtype of a level input (``reads_levels``): int16 when the model's
    level range (SPEC O5 / I2: 2^G * [-128, 127] + the mean range) fits, else int32."""
    lo, hi = model.input_range(spec)
    return "int16" if int(np.min(lo)) >= -(1 << 15) and int(np.max(hi)) < (1 << 15) else "int32"


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
    if model.offset_latents:  # SPEC O5 (only then: integer-latent files are unchanged)
        lines[3:3] = ["# latents offset: SPEC O5, medians in latents/offset_q"]
        lines.append("latents offset")
    for s in a.layers:
        lines.append(f"layer {s.name} {s.op} {s.k} {s.stride} {s.cin} {s.cout} {s.act} {s.src} {s.out}")
    return "\n".join(lines) + "\n"


def write_model_dir(model: IntModel, root: str, opts: Options = None, name: str = None,
                  extra: dict = None, files: dict = None, on_write=None, dir_class=VectorDir) -> dict:
    """Every integer parameter of ``model`` once: the stored fields of each layer
    (SPEC W1, A2, O), the derived shifts, mean-reduction and entropy tables.
    ``on_write``: called with the size of each file; ``dir_class`` SizingDir
    only sizes the files (``plan_model_dir``)."""
    from ..io.modelfile import model_hash
    from ..spec import SPEC_VERSION

    opts = opts or Options()
    mem = opts.mem
    D = dir_class(root, on_write=on_write)
    D.formats = opts.hw_formats()
    records = []
    if opts.c_headers:  # every stored array, for weights/*.h
        def tensor(name, a, dtype, *args, **kw):
            arr = D.tensor(name, a, dtype, *args, **kw)
            records.append((name, arr, dtype, D.tensors[name]["axes"], kw.get("what", "")))
            return arr
    else:
        tensor = D.tensor
    D.text("arch.txt", arch_text(model))
    for rel in sorted(files or {}):
        D.write(rel, files[rel])
    layers = []
    for spec in model.arch.layers:
        L = model.layer(spec.name)
        p = f"layers/{spec.name}/"
        n = spec.name
        tensor(p + "w_codes", L.w_codes, "int8", "weights" in mem, ("O", "C", "KY", "KX"),
               layer=n, rule="W1", what="weight codes; tconv kernels out-channel first (C2)")
        pm = "params" in mem
        tensor(p + "w_lut", L.w_lut, "int16", pm, ("CODE",), layer=n, rule="W1",
               what="weight level of code c at index c + 128")
        tensor(p + "w_exp", L.w_exp, "int8", pm, ("O",), layer=n, rule="W1", what="weight exponent")
        tensor(p + "bias", L.bias, "int32", pm, ("O",), layer=n, rule="A2",
               what="bias at the accumulator exponent")
        tensor(p + "in_exp", L.in_exp, "int8", pm, ("C",), layer=n, rule="A2", what="input exponents")
        tensor(p + "out_exp", L.out_exp, "int8", pm, ("O",), layer=n, rule="O", what="output exponents")
        tensor(p + "mux", L.mux, "uint8", pm, ("O",), layer=n, rule="X2",
               what="2-bit activation mux (0 unless O1)")
        tensor(p + "in_shift", L.in_shift, "uint8", pm, ("C",), layer=n, rule="A2",
               what="derived: d_c = in_exp[c] - min(in_exp)")
        tensor(p + "acc_exp", L.acc_exp, "int8", pm, ("O",), layer=n, rule="A2",
               what="derived: min(in_exp) + w_exp[o]")
        tensor(p + "out_shift", L.out_shift, "int8", pm, ("O",), layer=n, rule="O",
               what="derived: out_exp[o] - acc_exp[o]")
        layers.append(_layer_entry(model, spec))
    M = model.arch.M
    pm = "params" in mem
    tensor("mean_reduction/mask", np.asarray(model.mr_mask, np.uint8), "uint8", pm, ("C",), rule="M1")
    tensor("mean_reduction/a_q", model.mr_a_q, "int64", pm, ("C",), rule="M2")
    tensor("mean_reduction/b_q", model.mr_b_q, "int64", pm, ("C",), rule="M2")
    if model.offset_latents:
        tensor("latents/offset_q", model.offset_q, "int64", pm, ("C",), rule="O5",
               what="offset latents: bottleneck medians on the 2^-G grid, R4(median * 2^G), of z "
                    "(hyperprior) or y (factorized)")
        if model.grid_bits != 2:  # as in the .fxq: absent = G 2
            tensor("latents/grid_bits", np.array([model.grid_bits], np.int64), "int64", pm, ("n",), rule="O5",
                   what="G: offsets, means and levels of the latents lie on the 2^-G grid (exponent -G)")
    for ename in sorted(model.entropy):
        a = np.asarray(model.entropy[ename])
        from .memfmt import dtype_name
        tensor("entropy/" + ename, a, dtype_name(a.dtype), "tables" in mem,
               ("T", "I") if a.ndim == 2 else tuple(f"d{i}" for i in range(a.ndim)),
               what="docs/ENTROPY.md table")
    head = {"kind": "model", "name": name or model.arch.name, "model_hash": model_hash(model),
            "architecture": {"name": model.arch.name, "kind": model.arch.kind, "N": model.arch.N,
                           "M": M, "pad_multiple": model.arch.pad_multiple},
            "latents": model.latents,
            "layers": layers, "options": {"mem": sorted(mem), **opts.hw_dict()}}
    if records:
        heads, info = c_headers(records, head["model_hash"], SPEC_VERSION, head["name"], D.formats.layout,
                              len(model.arch.layers))
        for rel, data, what in heads:
            D.write(rel, data, what=what)
        for n, field_ in info.items():
            D.tensors[n]["c_header"] = field_
    if extra:
        head.update(extra)
    return D.manifest(head)


def _layer_entry(model: IntModel, spec) -> dict:
    return {"name": spec.name, "op": spec.op, "k": spec.k, "stride": spec.stride, "cin": spec.cin,
            "cout": spec.cout, "act": spec.act, "src": spec.src, "out": spec.out,
            "out_rule": layer_rule(model, spec), "out_dtype": out_dtype(model, spec),
            "stages": layer_stages(spec.name)}


# ---------------------------------------------------------------------------
# image case
# ---------------------------------------------------------------------------

class _Recorder:
    def __init__(self, progress=None):
        self.layers = {}
        self.progress = progress

    def __call__(self, name, inp, acc, out):
        self.layers[name] = (np.asarray(inp), np.asarray(acc), np.asarray(out))
        if self.progress is not None:
            self.progress.update(1)


def layer_runs(model: IntModel) -> int:
    """How many layer executions ``run_case`` records (h_s runs on both sides)."""
    n = len(model.arch.layers)
    if model.arch.kind == "hyperprior":
        n += sum(1 for l in model.arch.layers if l.name[:2] == "HS")
    return n


def run_case(model: IntModel, pixels: np.ndarray, backend: str = "numba", progress=None) -> dict:
    """Compress and decompress ``pixels`` recording every layer; returns the
    integers a case consists of.  ``progress``: advanced once per layer run."""
    from ..bitstream.container import unpack
    from ..codec import compress, decompress
    from ..model.int_forward import image_mu, pad_to_multiple

    pixels = np.asarray(pixels)
    pm = model.arch.pad_multiple
    padded = pad_to_multiple(pixels, pm)
    enc, dec = _Recorder(progress), _Recorder(progress)
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
        if model.offset_latents:  # SPEC O5: the encoder keeps AT3's accumulators
            out["y_acc"] = np.asarray(layers[y_layer][1]).astype(np.int32)
    return out


def _entropy_side(model: IntModel, r: dict) -> dict:
    """Symbols, table indexes, means and scales (SPEC E1, docs/ENTROPY.md 9)."""
    from ..codec import means_scales
    from ..io.modelcheck import checked_tables
    from ..entropy.gaussian import y_indexes, y_means

    mu = r["mu"]
    y_hat = r["y"].astype(np.int64) + mu[:, None, None]
    e = {"y_hat": y_hat}
    if model.offset_latents:
        return _offset_entropy_side(model, r)
    if model.arch.kind == "hyperprior":
        gauss = checked_tables(model).gauss
        z = r["z"].astype(np.int64)
        e["z_sym"] = z
        e["z_idx"] = np.broadcast_to(np.arange(z.shape[0])[:, None, None], z.shape)
        means, scales = means_scales(model, r["ms"], gauss)
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


def _offset_entropy_side(model: IntModel, r: dict) -> dict:
    """The entropy side of an offset-latent model (SPEC O5): symbols round(latent
    - offset), the levels symbol * 2^G + offset on the 2^-G grid, the means (hyperprior)."""
    from ..codec import means_scales
    from ..io.modelcheck import checked_tables
    from ..entropy.gaussian import y_indexes
    from ..kernels.reference import offset_level
    from ..model.int_forward import offset_means, offset_y

    mu = np.asarray(r["mu"], np.int64)
    off = np.asarray(model.offset_q, np.int64)[:, None, None]
    if model.arch.kind != "hyperprior":
        y = np.asarray(r["y"], np.int64)
        return {"y_sym": y + mu[:, None, None], "y_hat": offset_level(y, off, model.grid_bits),
                "y_idx": np.broadcast_to(np.arange(y.shape[0])[:, None, None], y.shape)}
    gauss = checked_tables(model).gauss
    z = np.asarray(r["z"], np.int64)
    means = offset_means(model, r["ms"])
    _, scales = means_scales(model, r["ms"], gauss)
    sym = offset_y(model, r["y_acc"], means)
    return {"z_sym": z, "z_idx": np.broadcast_to(np.arange(z.shape[0])[:, None, None], z.shape),
            "z_hat": offset_level(z, off, model.grid_bits), "means": means, "scale_q": scales,
            "y_idx": y_indexes(scales, np.zeros_like(scales), gauss).astype(np.int64),
            "y_sym": sym, "y_hat": offset_level(sym, means, model.grid_bits)}


def _entropy_side_shapes(model: IntModel, r: dict) -> dict:
    """The entropy side as shape-only stand-ins (sizing)."""
    ys = np.shape(r["y"])
    e = {k: _stub(ys) for k in ("y_hat", "y_sym", "y_idx")}
    if model.arch.kind == "hyperprior":
        e.update({k: _stub(ys) for k in ("means", "scale_q")
                  + (() if model.offset_latents else ("y_base",))})
        e.update({k: _stub(np.shape(r["z"])) for k in ("z_sym", "z_idx")
                  + (("z_hat",) if model.offset_latents else ())})
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
#: the entropy side of an offset-latent model (SPEC O5)
OFFSET_ENTROPY_DOC = {
    "z_sym": "z symbols round(z - median) (SPEC O5), coded with table z_idx",
    "z_idx": "z table index (= channel)",
    "z_hat": "z_hat level z_sym * 2^G + offset_q[c] on the 2^-G grid (SPEC O5): what HS0 reads",
    "means": "mean_q: the mean of each y element on the 2^-G grid, RQ(q_mean, -(e_mean + G)) (SPEC O5, E1)",
    "scale_q": "scale at 16 fractional bits (SPEC E1)",
    "y_idx": "y table index: #{i: scale_q > T_i}, the zero-mean family (SPEC O5, E1 with mean_q = 0); "
             "factorized: channel",
    "y_sym": "y symbols round(y - mean_q / 4) from AT3's accumulators (SPEC O5), coded as is; factorized: "
             "round(y - median)",
    "y_hat": "y_hat level y_sym * 2^G + mean_q (factorized: + offset_q[c]) on the 2^-G grid (SPEC O5): "
             "what ST0 reads",
}


def _case_text(arch, model_dir, H, W, Hp, Wp, chosen, latents="integer", model_lines=()) -> str:
    return "\n".join([
        "# fxlic vectors case (docs/VECTORS.md): KEY VALUE lines",
        f"model_dir {model_dir or '-'}", *model_lines,
        f"kind {arch.kind}",
        f"latents {latents}",
        f"height {H}", f"width {W}", f"padded_height {Hp}", f"padded_width {Wp}",
        f"layers {' '.join(chosen) if chosen else '-'}",
    ]) + "\n"


def write_case(model: IntModel, pixels: np.ndarray, root: str, opts: Options = None,
               model_dir: str = None, model_name: str = None, image_name: str = None,
               extra: dict = None, image_meta: dict = None, progress=None, external: dict = None,
               _run: dict = None, _dir=VectorDir) -> dict:
    """Write one conformance case into ``root``.  ``model_dir``: path (relative to
    ``root``) of an existing model directory of the same model; None writes it
    to ``root/model``; "" writes none (the model is known by its hash only, or
    by ``external``: the shipped .fxq file, fxlic/vectors/external.py).
    ``image_meta``: extra fields of the manifest's ``image`` (e.g. ``crop``).
    ``progress`` (NoProgress): phase "running" (one step per layer run), then
    phase "writing" (bytes; its total is only an estimate).  Returns the manifest."""
    from ..io.modelfile import model_hash

    opts = opts or Options()
    progress = progress or NoProgress()
    mem = opts.mem
    arch = model.arch
    names = [s.name for s in arch.layers]
    chosen = parse_layers(None, names) if opts.layers is None else tuple(opts.layers)
    unknown = [n for n in chosen if n not in names]
    if unknown:
        raise ValueError(f"unknown layers {unknown}")
    sizing = _dir is not VectorDir
    if _run is not None:
        r = _run
    else:
        progress.phase("running", layer_runs(model), "layer")
        r = run_case(model, pixels, opts.backend, progress)
        if not sizing and not isinstance(progress, NoProgress):
            est = plan_case(model, np.shape(pixels)[1], np.shape(pixels)[2], opts, model_dir, r)
            progress.phase("writing", sum(est.values()), "B")
    D = _dir(root, on_write=progress.update)
    D.formats = opts.hw_formats()
    if external is not None and model_dir != "":
        raise ValueError("a case with an external model has no model directory (model_dir '')")
    if model_dir is None:
        write_model_dir(model, os.path.join(root, "model"), opts, model_name, on_write=progress.update,
                        dir_class=_dir)
        model_dir = "model"
    want = opts.wants
    px = np.asarray(pixels) if sizing else np.asarray(pixels, dtype=np.uint8)
    _, H, W = px.shape
    _, Hp, Wp = r["padded"].shape
    im = "image" in mem
    D.png("image.png", px)
    if want("image"):
        D.tensor("image", px, "uint8", im, CHW, what="input image, 8-bit RGB", stages=["encoder"])
    if want("x"):
        D.tensor("x", r["padded"], "uint8", im, CHW, what="integer input tensor: the image padded (P1)",
                 stages=["encoder"])
    act = "act" in mem
    if want("mu"):
        D.tensor("mu", r["mu"], "int8", act, ("C",), what="mean-reduction offsets (M2; 0 if not reduced)",
                 stages=["encoder"])
    offset = model.offset_latents
    offset_hp = offset and arch.kind == "hyperprior"
    if want("y"):
        if model.ha_grid_bits:  # SPEC O6: HA0's input levels; the decoder never sees them
            hb = model.ha_grid_bits
            D.tensor("y", r["y"], "int16", act, CHW, rule="O6", stages=["encoder"],
                     what=f"HA0's input: y on the 2^-{hb} grid, SAT{8 + hb}(RQ(acc, -{hb} - Eacc)) (O6); "
                     "the coded symbols are entropy/y_sym (O5)")
        elif offset_hp:  # SPEC O5: the decoder never sees the O3 codes
            D.tensor("y", r["y"], "int8", act, CHW, what="stored y (O3): SAT8(round(y) - mu), HA0's input; "
                     "the coded symbols are entropy/y_sym (O5)", stages=["encoder"])
        else:
            D.tensor("y", r["y"], "int8", act, CHW, what="y symbols (O5): round(y - median)" if offset
                     else "stored y (O3): y_hat - mu", stages=["decoder", "encoder"])
    if offset_hp and want("y_acc"):
        D.tensor("y_acc", r["y_acc"], "int32", "acc" in mem, CHW, rule="O5", stages=["encoder"],
                 what="AT3's int32 accumulators, kept by the encoder until HS5's means are known (SPEC O5)")
    if "z" in r and want("z"):
        D.tensor("z", r["z"], "int8", act, CHW, what="z symbols (O5): round(z - median)" if offset
                 else "z_hat (O3)", stages=["decoder", "encoder"])
    layer_entries = []
    for spec in arch.layers:
        n = spec.name
        L = model.layer(n)
        ent = _layer_entry(model, spec)
        inp, acc, out = r["layers"][n]
        ent["in_shape"] = [int(s) for s in inp.shape]
        ent["out_shape"] = [int(s) for s in out.shape]
        src_t = SOURCE_TENSOR.get(spec.src, f"layers/{spec.src}/out")
        if reads_levels(model, spec) and spec.src == "y_hat":
            src_t = "entropy/y_hat"  # SPEC O5: the levels (times 2^d_c); HA0's O6 levels are `y`
        ent["in_tensor"] = src_t
        from ..model.int_forward import input_tables
        tables, dec_off = input_tables(model, n, r["mu"] if spec.src in Y_SOURCES else None)
        ent["dec_offset"] = None if dec_off is None else int(dec_off)
        if reads_levels(model, spec):
            ent["in_kind"] = "levels"
        ent["dumped"] = n in chosen
        layer_entries.append(ent)
        if n not in chosen:
            continue
        st = layer_stages(n)
        p = f"layers/{n}/"
        if not want(p + "in"):
            pass
        elif reads_levels(model, spec) and spec.src == "y" and not opts.inputs:
            D.alias(p + "in", src_t, layer=n, what="input levels on the 2^-H grid (SPEC O6)", stages=st)
        elif reads_levels(model, spec) and spec.src == "y":
            D.tensor(p + "in", inp, "int16", act, CHW, layer=n, rule="O6", stages=st,
                     what="input levels on the 2^-H grid (SPEC O6; the tensor y)")
        elif reads_levels(model, spec):  # SPEC O5: per-element levels, no table
            D.tensor(p + "in", inp, level_input_dtype(model, spec), act, CHW, layer=n, rule="O5",
                     stages=st, what="input levels V = (y_sym * 2^G + mean_q) << d_c on the 2^-G grid "
                                     "(SPEC O5, I1; entropy/y_hat shifted by the alignment)")
        elif not opts.inputs and src_t in D.tensors:
            D.alias(p + "in", src_t, layer=n, what="input codes", stages=st)
        else:
            src_dt = D.tensors[src_t]["dtype"] if src_t in D.tensors else _src_dtype(model, spec)
            D.tensor(p + "in", inp, src_dt, act, CHW, layer=n, what="input codes", stages=st)
        if opts.acc and want(p + "acc"):
            D.tensor(p + "acc", acc, "int32", "acc" in mem, CHW, layer=n, rule="A1",
                     what="int32 accumulator incl. bias (C1/C2)", stages=st)
        if want(p + "out"):
            D.tensor(p + "out", out, out_dtype(model, spec), act, CHW, layer=n, rule=layer_rule(model, spec),
                     what={"O5": "output symbols (O5)", "O6": "HA0's y levels on the 2^-H grid (O6)"}.get(
                         layer_rule(model, spec), "output codes"),
                     stages=st, required=True)
        if opts.dec_tables and tables is not None and want(p + "dec_table"):
            D.tensor(p + "dec_table", tables, "int64", "dec" in mem, ("C", "INDEX"),
                     layer=n, rule="I1", stages=st,
                     what=f"aligned input level of code q of channel c at INDEX = q + {dec_off}")
    # entropy side
    ent_mem = "entropy" in mem
    e = _entropy_side_shapes(model, r) if sizing else _entropy_side(model, r)
    doc = OFFSET_ENTROPY_DOC if offset else ENTROPY_DOC
    for k in ("z_sym", "z_idx", "z_hat", "y_hat", "means", "scale_q", "y_base", "y_idx", "y_sym"):
        if k in e and want("entropy/" + k):
            a = e[k]
            D.tensor("entropy/" + k, a, "int32", ent_mem, CHW, what=doc[k], stages=["decoder", "encoder"])
    D.write("stream.fxl", r["stream"], what="the .fxl bitstream (docs/BITSTREAM.md)", stages=["encoder"])
    if r["z_stream"]:
        D.write("entropy/z.rans", r["z_stream"], what="z substream (docs/ENTROPY.md 5)")
    D.write("entropy/y.rans", r["y_stream"], what="y substream (docs/ENTROPY.md 5)")
    D.png("recon.png", r["recon"])
    if want("recon"):
        D.tensor("recon", r["recon"], "uint8", im, CHW, what="reconstruction, cropped to H x W",
                 stages=["decoder"])
    st = r["stats"]
    mrel = model_dir.replace(os.sep, "/") or None
    if external is not None:
        from .external import case_text_lines
        model_lines = case_text_lines(external, model_hash(model))
    else:
        model_lines = ()
    D.text("case.txt", _case_text(arch, mrel, H, W, Hp, Wp, chosen, model.latents, model_lines))
    image = {"name": image_name or "image", "height": H, "width": W, "padded_height": Hp,
             "padded_width": Wp, "pad_multiple": arch.pad_multiple}
    if image_meta:
        image.update(image_meta)
    if opts.coverage:  # functional coverage of the case (fxlic/vectors/coverage.py)
        from .coverage import write_case_coverage
        write_case_coverage(D, model, r, chosen, opts, sizing, model_name,
                            {"name": image["name"], "width": W, "height": H})
    head = {"kind": "case",
            "model": {"name": model_name or arch.name, "hash": model_hash(model), "dir": mrel,
                      "architecture": arch.name, "arch_kind": arch.kind, "N": arch.N, "M": arch.M,
                      "latents": model.latents, **({"external": dict(external)} if external else {})},
            "image": image,
            "layers": layer_entries,
            "stream": {"bytes": st.bytes_total, "z_bytes": st.bytes_z, "y_bytes": st.bytes_y},
            "options": opts.as_dict()}
    if extra:
        head.update(extra)
    return D.manifest(head)


# ---------------------------------------------------------------------------
# size of a case before it is written (fxlic vectors: estimate and budget)
# ---------------------------------------------------------------------------

def _stub(shape, dtype=np.int64):
    """A shape-only stand-in array: no memory, every value 0."""
    return np.broadcast_to(np.zeros((), dtype), tuple(int(s) for s in shape))


def shapes(model: IntModel, height: int, width: int) -> dict:
    """Shapes of x and of every layer's input and output for an H x W image
    (SPEC P1, layer geometry: LayerSpec.out_hw)."""
    from ..model.int_forward import pad_to_multiple  # noqa: F401  (same rule, documented there)

    arch = model.arch
    pm = arch.pad_multiple
    Hp, Wp = -(-height // pm) * pm, -(-width // pm) * pm
    t = {"x": (3, Hp, Wp)}
    layers = {}
    for spec in arch.layers:
        src = t[spec.src]
        ho, wo = spec.out_hw(src[1], src[2])
        out = (spec.cout, ho, wo)
        layers[spec.name] = (src, out)
        t[spec.name] = out
        if spec.out == "y":
            t["y"] = t["y_hat"] = out
        elif spec.out == "z":
            t["z_hat"] = out
    return {"x": (3, Hp, Wp), "layers": layers, "y": t.get("y"), "z": t.get("z_hat")}


class _Stats:
    def __init__(self, z, y):
        self.bytes_z, self.bytes_y = z, y
        self.bytes_total = z + y + 200


def estimate_stream_bytes(model: IntModel, height: int, width: int):
    """A generous guess of the (z, y) substream sizes before coding (they are
    at most a few % of a case): 1 byte per 8 y and per 4 z elements, 8-byte minimum."""
    sh = shapes(model, height, width)
    ny = int(np.prod(sh["y"]))
    nz = int(np.prod(sh["z"])) if sh["z"] is not None else 0
    z = max(8, nz // 4) if model.arch.kind == "hyperprior" else 0
    return z, max(8, ny // 8)


def plan_case(model: IntModel, height: int, width: int, opts: Options = None, model_dir: str = None,
              run: dict = None, tensors: list = None) -> dict:
    """``{relative path: bytes}`` of every file ``write_case`` writes for an
    H x W image with these options (``model/...`` for the model directory),
    without running the model: exact for every ``.npy``, ``.mem``, PNG and
    text file, estimated for the bitstream and its substreams (``run``, a
    ``run_case`` result, makes those exact too) and, to a few bytes, for the
    manifests.  ``tensors``: a list that receives the names of the case's tensors."""
    from .store import SizingDir

    opts = opts or Options()
    if run is None:
        sh = shapes(model, height, width)
        M = model.arch.M
        r = {"pixels": _stub((3, height, width), np.uint8), "padded": _stub(sh["x"], np.uint8),
             "mu": np.zeros(M, np.int64), "y": _stub(sh["y"]),
             "layers": {n: (_stub(i), _stub(o), _stub(o)) for n, (i, o) in sh["layers"].items()},
             "recon": _stub((3, height, width), np.uint8)}
        if model.arch.kind == "hyperprior":
            r["z"] = _stub(sh["z"])
            ms = [l.name for l in model.arch.layers if l.out == "ms"][0]
            r["ms"] = _stub(sh["layers"][ms][1])
            if model.offset_latents:
                r["y_acc"] = _stub(sh["y"], np.int32)
        zb, yb = estimate_stream_bytes(model, height, width)
        r["z_stream"], r["y_stream"] = b"\0" * zb, b"\0" * yb
        r["stats"] = _Stats(zb, yb)
        r["stream"] = b"\0" * r["stats"].bytes_total
    else:
        r = run
    dirs = []

    class Dir(SizingDir):
        def __init__(self, root, on_write=None):
            super().__init__(root, on_write)
            dirs.append(self)

    write_case(model, r["pixels"], "", opts, model_dir, _run=r, _dir=Dir)
    if tensors is not None:
        tensors.extend(sorted(dirs[0].tensors))
    out = {}
    for d in dirs:
        pre = (d.root.strip("/") + "/") if d.root.strip("/") else ""
        for rel, info in d.files.items():
            out[pre + rel] = info["bytes"]
        out[pre + "manifest.json"] = d.manifest_bytes
    return out


def _src_dtype(model: IntModel, spec) -> str:
    if reads_levels(model, spec):
        return level_input_dtype(model, spec)
    if spec.src == "x":
        return "uint8"
    if spec.src in Y_SOURCES + ("z_hat",):
        return "int8"
    return OUT_DTYPE[model.layer(spec.src).out_kind]
