"""Compare a port's dumps with a golden case (``fxlic verify``, docs/VECTORS.md 5).

The dumps directory mirrors the golden case: a tensor ``layers/HS0/out`` is
looked up as ``DUMPS/layers/HS0/out.npy`` and ``DUMPS/layers/HS0/out.mem``
(either or both).  Which tensors are compared:

* only tensors whose ``stages`` meet the scope (``encoder``, ``decoder``;
  ``all`` takes every tensor, unit cases included);
* *required* tensors (every layer's ``out``, every output of a unit case) must
  be dumped: a missing one is an error;
* every other tensor (accumulators, inputs, decode tables, entropy side,
  image, reconstruction) is compared when dumped and skipped otherwise, unless
  ``strict`` makes every tensor of the scope required;
* ``layers`` restricts the comparison to those layers' tensors.

The byte files the encoder produces (``BYTE_FILES``: ``stream.fxl``,
``entropy/z.rans``, ``entropy/y.rans``) are compared byte for byte in the
``encoder`` and ``all`` scopes (optional unless ``strict``): the first
differing offset and the field or substream it lies in, and for a rANS
substream the first symbol that decodes differently, both streams decoded
with the golden model's tables and the golden table indexes.

Before anything is compared the golden directory is checked (check.py): the
manifest's structure, the size and sha256 of every file it lists, and the
tensor headers; every golden file read later is hashed again.  Comparisons
are integer equality, never a tolerance.
"""
from __future__ import annotations

import os
import struct
import time
import zlib
from dataclasses import dataclass, field

import numpy as np

from .check import IntegrityError, check_dir, load_manifest_checked
from .memfmt import MemFormatError, read_mem, read_npy
from .store import sha256_hex

PASS, FAIL, MISSING, MALFORMED, SKIPPED = "PASS", "FAIL", "MISSING", "MALFORMED", "SKIPPED"
STATUSES = (PASS, FAIL, MISSING, MALFORMED, SKIPPED)
SCOPES = ("all", "encoder", "decoder")
#: byte files compared byte for byte (scope encoder / all): name -> what
BYTE_FILES = {"stream.fxl": "the .fxl bitstream", "entropy/z.rans": "the z rANS substream",
              "entropy/y.rans": "the y rANS substream"}
BYTE_STAGES = ("encoder",)
#: how many mismatching elements are listed by default
DEFAULT_MAX_MISMATCHES = 10


class VerifyError(ValueError):
    """The golden directory itself is unusable (no manifest, corrupt file...)."""


@dataclass
class TensorResult:
    name: str
    group: str  # the layer name, or the top-level group ("entropy", "stream", ...)
    status: str
    message: str = ""
    mismatches: int = 0  # differing elements (bytes for a byte file)
    elements: int = 0  # elements (bytes) of the golden tensor (file)
    files: list = field(default_factory=list)
    kind: str = "tensor"  # "tensor" | "bytes"
    shape: list = None
    axes: list = None
    max_abs_diff: int = None
    per_channel: dict = None  # {channel: differing elements}, for tensors whose first axis is C / O
    listed: list = field(default_factory=list)  # first mismatching elements (dicts)
    first_offset: int = None  # bytes: first differing byte
    region: str = None  # bytes: where that byte is (header field, substream...)
    symbol: dict = None  # rANS: the first symbol that decodes differently
    details: list = field(default_factory=list)  # extra report lines
    mask: np.ndarray = None  # 1 where an element differs (keep_masks)
    seconds: float = 0.0

    def as_dict(self) -> dict:
        d = {"name": self.name, "group": self.group, "kind": self.kind, "status": self.status,
             "message": self.message, "files": list(self.files), "elements": self.elements,
             "mismatches": self.mismatches}
        if self.kind == "tensor":
            d.update(shape=self.shape, axes=self.axes, max_abs_diff=self.max_abs_diff,
                     per_channel=None if self.per_channel is None else
                     {str(k): v for k, v in sorted(self.per_channel.items())},
                     first_mismatches=self.listed)
        else:
            d.update(first_offset=self.first_offset, region=self.region, symbol=self.symbol)
        if self.details:
            d["details"] = list(self.details)
        return d


# ---------------------------------------------------------------------------
# the golden side
# ---------------------------------------------------------------------------

AXIS_NAMES = {"C": "channel", "H": "y", "W": "x", "O": "out_channel", "KY": "ky", "KX": "kx",
              "INDEX": "index", "CODE": "code", "N": "i"}


def _group_of(name: str, entry: dict) -> str:
    if entry.get("layer"):
        return entry["layer"]
    if name == "stream.fxl":
        return "stream"
    parts = name.split("/")
    return parts[0] if len(parts) > 1 else name


def _in_scope(entry: dict, scope: str) -> bool:
    if scope == "all":
        return True
    return scope in entry.get("stages", [])


def _unravel(shape, flat_index) -> list:
    return [int(i) for i in np.unravel_index(int(flat_index), tuple(shape))] if len(shape) else []


def _position(axes, shape, flat_index) -> str:
    idx = _unravel(shape, flat_index)
    axes = axes or [f"d{i}" for i in range(len(shape))]
    return " ".join(f"{AXIS_NAMES.get(a, a)}={int(i)}" for a, i in zip(axes, idx)) or "scalar"


class Golden:
    """Reads a golden directory, every file checked against its sha256."""

    def __init__(self, root: str, manifest: dict, model_file: str = None):
        self.root = root
        self.m = manifest
        self._tables = None
        self.model_file = model_file  # the checked .fxq of an external model (external.py)

    def file(self, rel: str, manifest: dict = None, root: str = None) -> bytes:
        m = manifest or self.m
        root = root or self.root
        info = m["files"].get(rel)
        if info is None:
            raise VerifyError(f"golden file {rel} is not listed in {os.path.join(root, 'manifest.json')}")
        try:
            with open(os.path.join(root, *rel.split("/")), "rb") as f:
                data = f.read()
        except OSError as e:
            raise VerifyError(f"golden file {os.path.join(root, rel)}: {e.strerror}") from None
        if sha256_hex(data) != info["sha256"]:
            raise VerifyError(f"golden file {os.path.join(root, rel)} does not match its sha256 in the "
                              f"manifest (corrupt vectors)")
        return data

    def tensor(self, name: str, manifest: dict = None, root: str = None) -> np.ndarray:
        m = manifest or self.m
        entry = m["tensors"][name]
        if "same_as" in entry:
            return self.tensor(entry["same_as"], manifest, root)
        try:
            a = read_npy(self.file(name + ".npy", manifest, root))
        except MemFormatError as e:
            raise VerifyError(f"golden file {name}.npy: {e}") from None
        if list(a.shape) != list(entry["shape"]):
            raise VerifyError(f"golden file {name}.npy has shape {a.shape}, the manifest says {entry['shape']}")
        return a

    def has(self, name: str) -> bool:
        return name in self.m.get("tensors", {})

    # -- entropy tables (for decoding rANS substreams)
    def tables(self):
        """(FactorizedTables, GaussianTables or None) of the case's model, or a
        string saying why they are not available."""
        if self._tables is None:
            self._tables = self._load_tables()
        return self._tables

    def _load_tables(self):
        from ..entropy.gaussian import FactorizedTables, GaussianTables

        model = self.m.get("model", {})
        kind = model.get("arch_kind", "hyperprior")
        arrays = None
        mdir = model.get("dir")
        p = os.path.normpath(os.path.join(self.root, *mdir.split("/"))) if mdir else None
        if p and os.path.isdir(p):
            try:
                mm = load_manifest_checked(p)
            except IntegrityError as e:
                raise VerifyError(f"model directory of the case: {e}") from None
            if mm.get("model_hash") != model.get("hash"):
                raise VerifyError(f"model directory {p} holds model {mm.get('model_hash')}, the case was "
                                  f"made with {model.get('hash')}")
            arrays = {n[len("entropy/"):]: self.tensor(n, mm, p)
                      for n in mm.get("tensors", {}) if n.startswith("entropy/")}
        elif self.model_file:
            from ..io.modelfile import ModelFileError, load_model, model_hash
            try:
                m = load_model(self.model_file)
            except (ModelFileError, OSError) as e:
                raise VerifyError(f"external model of the case: {e}") from None
            if model_hash(m) != model.get("hash"):
                raise VerifyError(f"{self.model_file} holds model {model_hash(m)}, the case was made with "
                                  f"{model.get('hash')}")
            arrays = {k: np.asarray(v) for k, v in m.entropy.items()}
        else:
            arrays = _zoo_entropy(model.get("name"), model.get("hash"))
            if arrays is None:
                where = f"model directory {p} not found" if p else "no model directory"
                return f"{where} and no shipped model with hash {model.get('hash')}: symbols not decoded"
        try:
            fact = FactorizedTables.from_arrays({k[5:]: v for k, v in arrays.items() if k.startswith("fact.")})
            gauss = None
            if kind == "hyperprior":
                gauss = GaussianTables.from_arrays({k[6:]: v for k, v in arrays.items()
                                                    if k.startswith("gauss.")})
        except (KeyError, ValueError, TypeError) as e:
            raise VerifyError(f"the model's entropy tables are unusable ({e})") from None
        return fact, gauss


def _zoo_entropy(name, digest):
    """model.entropy of the shipped model with this content hash, or None."""
    try:
        from ..io.modelfile import ModelFileError, list_zoo, load_model, model_hash
    except ImportError:  # pragma: no cover
        return None
    paths = list_zoo()
    paths.sort(key=lambda p: os.path.basename(p)[:-4] != name)  # the named one first
    for p in paths:
        try:
            m = load_model(p)
        except (ModelFileError, OSError, ValueError):
            continue
        if model_hash(m) == digest:
            return {k: np.asarray(v) for k, v in m.entropy.items()}
    return None


# ---------------------------------------------------------------------------
# tensors
# ---------------------------------------------------------------------------

def _read_dump(path: str, kind: str, entry: dict) -> np.ndarray:
    with open(path, "rb") as f:
        data = f.read()
    shape = tuple(entry["shape"])
    count = int(np.prod(shape)) if shape else 1
    if kind == "npy":
        a = read_npy(data)
        if a.dtype.kind not in "iub":
            raise MemFormatError(f"dtype {a.dtype} is not an integer type")
        if a.shape != shape:
            raise MemFormatError(f"shape {a.shape}, expected {shape}")
        return a.astype(np.int64)
    return read_mem(data, count, entry["dtype"]).reshape(shape).astype(np.int64)


def diff_tensor(golden: np.ndarray, got: np.ndarray, entry: dict, max_list: int = DEFAULT_MAX_MISMATCHES,
                keep_mask: bool = False):
    """None if equal, else a dict: mismatches, first (dict), listed (the first
    ``max_list``), max_abs_diff, per_channel ({c: count} or None), mask."""
    g = golden.astype(np.int64).reshape(-1)
    v = np.asarray(got).astype(np.int64).reshape(-1)
    neq = g != v
    bad = np.flatnonzero(neq)
    if bad.size == 0:
        return None
    shape = list(golden.shape)
    axes = entry.get("axes") or [f"d{i}" for i in range(len(shape))]
    gd, vd = g[bad], v[bad]
    if max(int(np.abs(gd.astype(np.float64)).max()), int(np.abs(vd.astype(np.float64)).max())) >= 2 ** 62:
        diff = vd.astype(object) - gd.astype(object)  # exact beyond int64
        max_abs = int(max(abs(d) for d in diff))
    else:
        diff = vd - gd
        max_abs = int(np.abs(diff).max())

    def item(k):
        i = int(bad[k])
        return {"index": _unravel(shape, i), "at": _position(axes, shape, i), "expected": int(gd[k]),
                "got": int(vd[k]), "diff": int(diff[k])}

    per_channel = None
    if shape and axes[0] in ("C", "O") and shape[0] > 0:
        per = bad // max(1, int(np.prod(shape[1:])))
        counts = np.bincount(per, minlength=shape[0])
        per_channel = {int(c): int(counts[c]) for c in np.flatnonzero(counts)}
    return {"mismatches": int(bad.size), "first": item(0),
            "listed": [item(k) for k in range(min(int(max_list), bad.size))],
            "max_abs_diff": max_abs, "per_channel": per_channel,
            "mask": neq.reshape(golden.shape).astype(np.uint8) if keep_mask else None}


def compare_tensor(golden: np.ndarray, got: np.ndarray, entry: dict):
    """(mismatch count, message of the first mismatch or '')."""
    d = diff_tensor(golden, got, entry, 0)
    if d is None:
        return 0, ""
    f = d["first"]
    return d["mismatches"], f"first mismatch at {f['at']}: expected {f['expected']}, got {f['got']}"


# ---------------------------------------------------------------------------
# byte files: bitstream and rANS substreams
# ---------------------------------------------------------------------------

_FXL_FIELDS = [(0, 4, "magic"), (4, 5, "format version"), (5, 6, "architecture kind"), (6, 22, "model id"),
               (22, 24, "image height"), (24, 26, "image width"), (26, 27, "channels"),
               (27, 28, "pad multiple"), (28, 30, "number of mean-reduced channels")]


def fxl_layout(data: bytes):
    """The regions of a .fxl stream (docs/BITSTREAM.md), read leniently (no
    CRC check): (list of (start, end, name), {"z": (s, e), "y": (s, e)} or None
    when the lengths do not add up)."""
    regions = [r for r in _FXL_FIELDS if r[1] <= len(data)]
    if len(data) < 30:
        return regions, None
    K = struct.unpack_from("<H", data, 28)[0]
    pos = 30
    for i in range(K):
        if pos + 3 > len(data):
            return regions, None
        regions.append((pos, pos + 3, f"mean-reduced channel entry {i} (channel u16, mu int8)"))
        pos += 3
    if pos + 8 > len(data):
        return regions, None
    lz, ly = struct.unpack_from("<II", data, pos)
    regions += [(pos, pos + 4, "z substream length"), (pos + 4, pos + 8, "y substream length")]
    pos += 8
    if pos + lz + ly + 4 != len(data):
        return regions, None
    subs = {"z": (pos, pos + lz), "y": (pos + lz, pos + lz + ly)}
    regions += [(pos, pos + lz, "z substream"), (pos + lz, pos + lz + ly, "y substream"),
                (len(data) - 4, len(data), "CRC-32")]
    return regions, subs


def _fxl_region(data: bytes, off: int) -> str:
    if off >= len(data):
        return "past the end of the golden stream"
    regions, _ = fxl_layout(data)
    for s, e, name in regions:
        if s <= off < e:
            if name.endswith("substream"):
                return f"{name} byte {off - s}"
            return f"header: {name}" if name != "CRC-32" else "the CRC-32"
    return "after the header"


def _rans_region(off: int, n: int) -> str:
    if off >= n:
        return "past the end of the golden substream"
    w = off // 4
    return f"32-bit word {w}" + (" (initial state)" if w < 2 else "")


def _first_byte_diff(a: bytes, b: bytes):
    """(differing bytes incl. the length difference, first differing offset or None)."""
    n = min(len(a), len(b))
    x = np.frombuffer(a, np.uint8, n)
    y = np.frombuffer(b, np.uint8, n)
    bad = np.flatnonzero(x != y)
    count = int(bad.size) + abs(len(a) - len(b))
    if bad.size:
        return count, int(bad[0])
    return count, (n if len(a) != len(b) else None)


def _decode_prefix(data: bytes, idx, cdfs, sizes, offs):
    """(the longest prefix of symbols that decodes, error text or None).
    rANS decodes in order, so decoding the first n indexes gives the first n
    symbols of the whole stream."""
    from ..entropy import rans_numba as R

    try:
        return R.decode_with_indexes(data, idx, cdfs, sizes, offs, strict=False), None
    except ValueError as e:
        err = str(e)

    def ok(n):
        try:
            R.decode_with_indexes(data, idx[:n], cdfs, sizes, offs, strict=False)
            return True
        except ValueError:
            return False

    if not ok(0):
        return np.zeros(0, np.int32), err
    lo, hi = 0, len(idx)  # ok(lo), not ok(hi)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if ok(mid):
            lo = mid
        else:
            hi = mid
    return R.decode_with_indexes(data, idx[:lo], cdfs, sizes, offs, strict=False), err


def _substream_model(G: Golden, which: str):
    """(indexes, cdfs, sizes, offsets, shape) to decode substream ``which``
    ("z" | "y"), or a string saying why not."""
    tables = G.tables()
    if isinstance(tables, str):
        return tables
    fact, gauss = tables
    kind = G.m.get("model", {}).get("arch_kind", "hyperprior")
    if which == "z" or kind != "hyperprior":
        t = fact
        name = "z" if which == "z" else "y"
        if G.has(f"entropy/{name}_idx"):
            idx = G.tensor(f"entropy/{name}_idx")
            shape = idx.shape
        else:
            src = [n for n in (name, f"entropy/{name}_sym") if G.has(n)]
            if not src:
                return f"the case has no {name} or entropy/{name}_idx: symbols not decoded"
            shape = tuple(G.m["tensors"][src[0]]["shape"])
            idx = np.broadcast_to(np.arange(shape[0], dtype=np.int32)[:, None, None], shape)
    else:
        t = gauss
        if not G.has("entropy/y_idx"):
            return "the case has no entropy/y_idx (table indexes): symbols not decoded"
        idx = G.tensor("entropy/y_idx")
        shape = idx.shape
    idx = np.ascontiguousarray(np.asarray(idx).reshape(-1), dtype=np.int32)
    return idx, t.cdfs, t.cdf_sizes, t.offsets, tuple(shape)


def rans_symbol_diff(G: Golden, which: str, golden: bytes, got: bytes):
    """The first symbol of substream ``which`` that decodes differently, as a
    dict (``symbol`` = its number in coding order, ``index`` = (c, y, x)), or
    a string when the symbols cannot be decoded."""
    from ..entropy import rans_numba as R

    mod = _substream_model(G, which)
    if isinstance(mod, str):
        return mod
    idx, cdfs, sizes, offs, shape = mod
    try:
        exp = R.decode_with_indexes(golden, idx, cdfs, sizes, offs, strict=True)
    except ValueError as e:
        raise VerifyError(f"the golden {which} substream does not decode with the model's tables ({e})") from None
    dec, err = _decode_prefix(got, idx, cdfs, sizes, offs)
    n = min(dec.size, exp.size)
    bad = np.flatnonzero(dec[:n] != exp[:n])
    axes = ["C", "H", "W"][:len(shape)]
    N = int(exp.size)
    if bad.size:
        i = int(bad[0])
        return {"substream": which, "symbol": i, "of": N, "index": _unravel(shape, i),
                "at": _position(axes, shape, i), "expected": int(exp[i]), "got": int(dec[i]),
                "decodes_to_the_end": err is None,
                "text": f"{which} substream: first symbol that decodes differently: #{i} of {N} at "
                        f"{_position(axes, shape, i)}: expected {int(exp[i])}, got {int(dec[i])}"}
    if dec.size < N:
        i = int(dec.size)
        return {"substream": which, "symbol": i, "of": N, "index": _unravel(shape, i),
                "at": _position(axes, shape, i), "expected": int(exp[i]), "got": None, "error": err,
                "decodes_to_the_end": False,
                "text": f"{which} substream: decoding stops at symbol #{i} of {N} at "
                        f"{_position(axes, shape, i)} (expected {int(exp[i])}): {err}"}
    try:
        R.decode_with_indexes(got, idx, cdfs, sizes, offs, strict=True)
        tail = "the streams differ only in bytes the decoder does not read"
    except ValueError as e:
        tail = f"the end-of-stream check fails ({e})"
    return {"substream": which, "symbol": None, "of": N, "decodes_to_the_end": True,
            "text": f"{which} substream: all {N} symbols decode to the golden ones; {tail}"}


def compare_bytes(G: Golden, rel: str, golden: bytes, got: bytes, res: TensorResult) -> None:
    count, off = _first_byte_diff(golden, got)
    if off is None:
        return
    res.status = FAIL
    res.mismatches = count
    res.first_offset = off
    if rel == "stream.fxl":
        res.region = _fxl_region(golden, off)
    else:
        res.region = _rans_region(off, len(golden))
    if len(golden) != len(got):
        head = f"{rel}: {len(got)} bytes, expected {len(golden)}; first difference at byte offset {off}"
    else:
        head = f"{rel}: {count} of {len(golden)} bytes differ; first at byte offset {off}"
    res.message = f"{head} ({res.region})"
    sym = None
    if rel == "stream.fxl":
        _, gsub = fxl_layout(golden)
        _, dsub = fxl_layout(got)
        if len(got) >= 4 and zlib.crc32(got[:-4]) & 0xFFFFFFFF != struct.unpack_from("<I", got, len(got) - 4)[0]:
            res.details.append("the dump's CRC-32 does not match its bytes")
        if gsub is not None and dsub is not None:
            for which in ("z", "y"):
                a = golden[gsub[which][0]:gsub[which][1]]
                b = got[dsub[which][0]:dsub[which][1]]
                if a != b and (a or b):
                    sym = rans_symbol_diff(G, which, a, b)
                    break
        elif gsub is not None:
            res.details.append("the dump's header and substream lengths do not add up to its size: "
                               "substreams not compared")
    elif rel in ("entropy/z.rans", "entropy/y.rans"):
        sym = rans_symbol_diff(G, rel[len("entropy/")], golden, got)
    if isinstance(sym, dict):
        res.symbol = {k: v for k, v in sym.items() if k != "text"}
        res.message += "; " + sym["text"]
    elif isinstance(sym, str):
        res.details.append(sym)


# ---------------------------------------------------------------------------
# verify
# ---------------------------------------------------------------------------

def verify(vectors: str, dumps: str, scope: str = "all", layers=None, strict: bool = False,
           max_mismatches: int = DEFAULT_MAX_MISMATCHES, keep_masks: bool = False, zoo: str = None):
    """Compare ``dumps`` with the golden directory ``vectors``; returns
    (list of TensorResult, manifest).  Raises VerifyError if the golden side is
    unusable (including any file that does not match its sha256, and the .fxq of
    an external model, looked up in ``zoo``: fxlic/vectors/external.py)."""
    if scope not in SCOPES:
        raise VerifyError(f"scope must be one of {', '.join(SCOPES)}")
    if max_mismatches < 0:
        raise VerifyError("--max-mismatches must be >= 0")
    try:
        manifest = load_manifest_checked(vectors)
    except IntegrityError as e:
        raise VerifyError(str(e)) from None
    if manifest.get("kind") not in ("case", "unit"):
        raise VerifyError(f"{vectors}: a {manifest.get('kind')} directory; verify takes one case or "
                          f"unit directory (e.g. vectors/cases/<model>/<image> or vectors/units/<unit>)")
    if not os.path.isdir(dumps):
        raise VerifyError(f"{dumps}: no such dumps directory")
    try:
        check_dir(vectors, manifest)  # sizes, sha256, tensor headers of every golden file
    except IntegrityError as e:
        raise VerifyError(f"golden directory is not intact: {e}") from None
    model_file = None
    if manifest["kind"] == "case" and "external" in manifest["model"]:
        from .external import resolve
        try:
            model_file = resolve(manifest["model"]["external"], vectors, zoo)
        except IntegrityError as e:
            raise VerifyError(str(e)) from None
    G = Golden(vectors, manifest, model_file)
    tensors = manifest["tensors"]
    layer_names = [l["name"] for l in manifest.get("layers", [])]
    if layers is not None:
        unknown = [l for l in layers if l not in layer_names]
        if unknown:
            raise VerifyError(f"unknown layers {', '.join(unknown)} (case layers: {', '.join(layer_names)})")
    items = [(n, tensors[n], "tensor") for n in tensors]
    if layers is None and scope in ("all", "encoder"):
        items += [(rel, {"stages": list(BYTE_STAGES)}, "bytes") for rel in sorted(BYTE_FILES)
                  if rel in manifest["files"]]
    results = []
    for name, entry, kind in sorted(items, key=lambda t: _sort_key(t[0], t[1], layer_names)):
        if not _in_scope(entry, scope):
            continue
        if layers is not None and entry.get("layer") not in layers:
            continue
        t0 = time.perf_counter()
        required = strict or bool(entry.get("required"))
        group = _group_of(name, entry)
        exts = ("npy", "mem") if kind == "tensor" else ("",)
        found = [(k, os.path.join(dumps, *((name + "." + k) if k else name).split("/"))) for k in exts]
        found = [(k, p) for k, p in found if os.path.isfile(p)]
        res = TensorResult(name, group, PASS, files=[os.path.relpath(p, dumps) for _, p in found], kind=kind)
        if kind == "tensor":
            res.shape, res.axes = list(entry["shape"]), list(entry.get("axes") or [])
        if not found:
            if required:
                res.status = MISSING
                res.message = (f"no {name}.npy or {name}.mem in the dumps" if kind == "tensor"
                               else f"no {name} in the dumps")
            else:
                res.status = SKIPPED
                res.message = "not dumped (optional)"
            results.append(res)
            continue
        if kind == "bytes":
            golden = G.file(name)
            res.elements = len(golden)
            try:
                with open(found[0][1], "rb") as f:
                    got = f.read()
            except OSError as e:
                res.status, res.message = MALFORMED, f"{name}: {e.strerror}"
                results.append(res)
                continue
            compare_bytes(G, name, golden, got, res)
            res.seconds = time.perf_counter() - t0
            results.append(res)
            continue
        golden = G.tensor(name)
        res.elements = int(golden.size)
        for ext, path in found:
            try:
                got = _read_dump(path, ext, entry)
            except (MemFormatError, OSError) as e:
                res.status = MALFORMED
                res.message = f"{name}.{ext}: {e}"
                break
            d = diff_tensor(golden, got, entry, max_mismatches, keep_masks)
            if d is not None:
                f = d["first"]
                res.status = FAIL
                res.mismatches = d["mismatches"]
                res.max_abs_diff = d["max_abs_diff"]
                res.per_channel = d["per_channel"]
                res.listed = d["listed"]
                res.mask = d["mask"]
                res.files = [os.path.relpath(path, dumps)]
                res.message = (f"{name}.{ext}: {d['mismatches']} of {golden.size} elements differ; first "
                               f"mismatch at {f['at']}: expected {f['expected']}, got {f['got']}; "
                               f"max |diff| {d['max_abs_diff']}")
                break
        res.seconds = time.perf_counter() - t0
        results.append(res)
    return results, manifest


def _sort_key(name, entry, layer_names):
    lay = entry.get("layer")
    li = layer_names.index(lay) if lay in layer_names else -1
    return (li, name)


def summarize(results) -> dict:
    out = {s: 0 for s in STATUSES}
    for r in results:
        out[r.status] += 1
    return out


def _channels_line(r: TensorResult, limit: int = 32) -> str:
    items = sorted(r.per_channel.items())
    ax = AXIS_NAMES.get((r.axes or ["C"])[0], "channel")
    text = " ".join(f"{c}:{n}" for c, n in items[:limit])
    if len(items) > limit:
        text += f" ... ({len(items) - limit} more)"
    return f"mismatches per {ax} ({len(items)} of {r.shape[0]} {ax}s): {text}"


def detail_lines(r: TensorResult, max_mismatches: int = DEFAULT_MAX_MISMATCHES) -> list:
    """The indented lines under a FAIL line: per-channel counts, the listed
    mismatches, notes."""
    out = []
    if r.status == FAIL and r.kind == "tensor":
        if r.per_channel:
            out.append(_channels_line(r))
        for it in r.listed[:max_mismatches]:
            out.append(f"{it['at']}: expected {it['expected']}, got {it['got']} (diff {it['diff']:+d})")
        if r.mismatches > min(len(r.listed), max_mismatches) and max_mismatches:
            out.append(f"... {r.mismatches - min(len(r.listed), max_mismatches)} more "
                       f"(--max-mismatches N lists more)")
    out += r.details
    return out


def format_report(results, scope: str, verbose: bool = False,
                  max_mismatches: int = DEFAULT_MAX_MISMATCHES) -> str:
    """One line per group (layer): PASS, or each problem (FAIL lines followed
    by indented details); a summary line."""
    lines = []
    groups = []
    by = {}
    for r in results:
        if r.group not in by:
            by[r.group] = []
            groups.append(r.group)
        by[r.group].append(r)
    pad = " " * 19
    for g in groups:
        rs = by[g]
        bad = [r for r in rs if r.status in (FAIL, MISSING, MALFORMED)]
        checked = [r for r in rs if r.status == PASS]
        if bad:
            for r in bad:
                lines.append(f"{r.status:<9} {g:<8} {r.message}")
                lines += [pad + d for d in detail_lines(r, max_mismatches)]
        elif checked:
            names = " ".join(r.name.split("/")[-1] for r in checked)
            n = sum(r.elements for r in checked if r.kind == "tensor")
            b = sum(r.elements for r in checked if r.kind == "bytes")
            what = ", ".join(([f"{n} elements"] if n or not b else []) + ([f"{b} bytes"] if b else []))
            lines.append(f"{PASS:<9} {g:<8} {names} ({what})")
        if verbose:
            for r in rs:
                if r.status == SKIPPED:
                    lines.append(f"{'skipped':<9} {g:<8} {r.name}: {r.message}")
    s = summarize(results)
    lines.append(f"verify (scope {scope}): {s[PASS]} tensors pass, {s[FAIL]} fail, {s[MISSING]} missing, "
                 f"{s[MALFORMED]} malformed, {s[SKIPPED]} optional not dumped")
    return "\n".join(lines)


def ok(results) -> bool:
    s = summarize(results)
    return s[FAIL] == 0 and s[MISSING] == 0 and s[MALFORMED] == 0 and s[PASS] > 0
