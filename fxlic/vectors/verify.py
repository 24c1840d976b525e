"""Compare a port's dumps with a golden case (``fxlic verify``, docs/VECTORS.md).

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
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from .memfmt import MemFormatError, read_mem, read_npy
from .store import load_manifest, sha256_hex

PASS, FAIL, MISSING, MALFORMED, SKIPPED = "PASS", "FAIL", "MISSING", "MALFORMED", "SKIPPED"
SCOPES = ("all", "encoder", "decoder")


class VerifyError(ValueError):
    """The golden directory itself is unusable (no manifest, corrupt file...)."""


@dataclass
class TensorResult:
    name: str
    group: str  # the layer name, or the top-level group ("entropy", "image", ...)
    status: str
    message: str = ""
    mismatches: int = 0
    elements: int = 0
    files: list = field(default_factory=list)


def _group_of(name: str, entry: dict) -> str:
    if entry.get("layer"):
        return entry["layer"]
    parts = name.split("/")
    return parts[0] if len(parts) > 1 else name


def _in_scope(entry: dict, scope: str) -> bool:
    if scope == "all":
        return True
    return scope in entry.get("stages", [])


def _position(axes, shape, flat_index) -> str:
    idx = np.unravel_index(int(flat_index), shape) if shape else ()
    names = {"C": "channel", "H": "y", "W": "x", "O": "out_channel", "KY": "ky", "KX": "kx",
             "INDEX": "index", "CODE": "code", "N": "i"}
    return " ".join(f"{names.get(a, a)}={int(i)}" for a, i in zip(axes, idx)) or "scalar"


def _golden(root: str, manifest: dict, name: str) -> np.ndarray:
    entry = manifest["tensors"][name]
    if "same_as" in entry:
        return _golden(root, manifest, entry["same_as"])
    rel = name + ".npy"
    path = os.path.join(root, *rel.split("/"))
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise VerifyError(f"golden file {rel}: {e.strerror}") from None
    want = manifest["files"].get(rel, {}).get("sha256")
    if want and sha256_hex(data) != want:
        raise VerifyError(f"golden file {rel} does not match its sha256 in the manifest (corrupt vectors)")
    a = read_npy(data)
    return a


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


def compare_tensor(golden: np.ndarray, got: np.ndarray, entry: dict):
    """(mismatch count, message of the first mismatch or '')."""
    g = golden.astype(np.int64)
    bad = np.flatnonzero(g.reshape(-1) != got.reshape(-1))
    if bad.size == 0:
        return 0, ""
    i = int(bad[0])
    pos = _position(entry.get("axes", []), g.shape, i)
    return int(bad.size), (f"first mismatch at {pos}: expected {int(g.reshape(-1)[i])}, "
                           f"got {int(got.reshape(-1)[i])}")


def verify(vectors: str, dumps: str, scope: str = "all", layers=None, strict: bool = False):
    """Compare ``dumps`` with the golden directory ``vectors``; returns
    (list of TensorResult, manifest).  Raises VerifyError if the golden side is
    unusable."""
    if scope not in SCOPES:
        raise VerifyError(f"scope must be one of {', '.join(SCOPES)}")
    try:
        manifest = load_manifest(vectors)
    except FileNotFoundError:
        raise VerifyError(f"{vectors}: no manifest.json (not a vectors case directory)") from None
    except (ValueError, OSError) as e:
        raise VerifyError(str(e)) from None
    if manifest.get("kind") not in ("case", "unit"):
        raise VerifyError(f"{vectors}: a {manifest.get('kind')} directory; verify takes one case or "
                          f"unit directory (e.g. vectors/cases/<model>/<image> or vectors/units/<unit>)")
    if not os.path.isdir(dumps):
        raise VerifyError(f"{dumps}: no such dumps directory")
    tensors = manifest["tensors"]
    layer_names = [l["name"] for l in manifest.get("layers", [])]
    if layers is not None:
        unknown = [l for l in layers if l not in layer_names]
        if unknown:
            raise VerifyError(f"unknown layers {', '.join(unknown)} (case layers: {', '.join(layer_names)})")
    results = []
    for name in sorted(tensors, key=lambda n: _sort_key(n, tensors[n], layer_names)):
        entry = tensors[name]
        if not _in_scope(entry, scope):
            continue
        if layers is not None and entry.get("layer") not in layers:
            continue
        required = strict or bool(entry.get("required"))
        group = _group_of(name, entry)
        found = [(k, os.path.join(dumps, *(name + "." + k).split("/"))) for k in ("npy", "mem")]
        found = [(k, p) for k, p in found if os.path.isfile(p)]
        res = TensorResult(name, group, PASS, files=[os.path.relpath(p, dumps) for _, p in found])
        if not found:
            if required:
                res.status = MISSING
                res.message = f"no {name}.npy or {name}.mem in the dumps"
            else:
                res.status = SKIPPED
                res.message = "not dumped (optional)"
            results.append(res)
            continue
        golden = _golden(vectors, manifest, name)
        res.elements = int(golden.size)
        for kind, path in found:
            try:
                got = _read_dump(path, kind, entry)
            except (MemFormatError, OSError) as e:
                res.status = MALFORMED
                res.message = f"{name}.{kind}: {e}"
                break
            n, msg = compare_tensor(golden, got, entry)
            if n:
                res.status = FAIL
                res.mismatches = n
                res.message = f"{name}.{kind}: {n} of {golden.size} elements differ; {msg}"
                break
        results.append(res)
    return results, manifest


def _sort_key(name, entry, layer_names):
    lay = entry.get("layer")
    li = layer_names.index(lay) if lay in layer_names else -1
    return (li, name)


def summarize(results) -> dict:
    out = {s: 0 for s in (PASS, FAIL, MISSING, MALFORMED, SKIPPED)}
    for r in results:
        out[r.status] += 1
    return out


def format_report(results, scope: str, verbose: bool = False) -> str:
    """One line per group (layer): PASS, or the first problem and its count."""
    lines = []
    groups = []
    by = {}
    for r in results:
        if r.group not in by:
            by[r.group] = []
            groups.append(r.group)
        by[r.group].append(r)
    for g in groups:
        rs = by[g]
        bad = [r for r in rs if r.status in (FAIL, MISSING, MALFORMED)]
        checked = [r for r in rs if r.status == PASS]
        if bad:
            for r in bad:
                lines.append(f"{r.status:<9} {g:<8} {r.message}")
        elif checked:
            names = " ".join(r.name.split("/")[-1] for r in checked)
            n = sum(r.elements for r in checked)
            lines.append(f"{PASS:<9} {g:<8} {names} ({n} elements)")
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
