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

The pieces: results.py (statuses, ``TensorResult``, ``VerifyError``),
golden.py (the checked golden directory and its model's entropy tables),
tensordiff.py (tensor dumps), streams.py and rans_diff.py (byte files,
substreams, symbols), textreport.py (the text report); this module is
``verify`` itself and re-exports their public names.
"""
from __future__ import annotations

import os
import time

from .check import IntegrityError, check_dir, load_manifest_checked
from .golden import Golden
from .memfmt import MemFormatError
from .rans_diff import rans_symbol_diff
from .results import (AXIS_NAMES, DEFAULT_MAX_MISMATCHES, FAIL, MALFORMED, MISSING, PASS, SCOPES, SKIPPED,
                      STATUSES, TensorResult, VerifyError)
from .streams import compare_bytes, fxl_layout
from .tensordiff import compare_tensor, diff_tensor, read_dump
from .textreport import detail_lines, format_report, ok, summarize

__all__ = ["verify", "VerifyError", "TensorResult", "Golden", "diff_tensor", "compare_tensor", "compare_bytes",
           "fxl_layout", "rans_symbol_diff", "format_report", "detail_lines", "summarize", "ok", "SCOPES",
           "STATUSES", "PASS", "FAIL", "MISSING", "MALFORMED", "SKIPPED", "AXIS_NAMES", "DEFAULT_MAX_MISMATCHES",
           "BYTE_FILES", "BYTE_STAGES"]


#: byte files compared byte for byte (scope encoder / all): name -> what
BYTE_FILES = {"stream.fxl": "the .fxl bitstream", "entropy/z.rans": "the z rANS substream",
              "entropy/y.rans": "the y rANS substream"}
BYTE_STAGES = ("encoder",)


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
                got = read_dump(path, ext, entry)
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
