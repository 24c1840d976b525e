"""Integrity of a vectors directory: ``fxlic vectors --check DIR`` and the golden
side of ``fxlic verify`` (docs/VECTORS.md 4, 5).

A directory is intact when

* its ``manifest.json`` parses and has the structure of docs/VECTORS.md 4
  (``validate_manifest``);
* every file the manifest lists exists, is a regular file, and has the listed
  size and sha256 (``check_files``);
* every tensor entry is consistent: its files are listed, the ``.npy`` header
  has the entry's dtype and shape, the ``.mem`` file has elements x (hex
  digits + 1) bytes, a packed ``.pP.mem`` words x (word digits + 1), a ``.bin``
  elements x itemsize, a ``c_header`` names a listed file, an alias names an existing tensor of the same dtype and
  shape (``check_tensors``);
* (``check_tree`` only) no file is left that no manifest lists, every nested
  directory with a manifest is intact, a case's model directory is intact and
  has the case's model hash, the .fxq of an external model (a case's
  ``model.external``, a suite's ``models[NAME].external``) has the recorded size
  and sha256 (fxlic/vectors/external.py), and a suite's manifest lists the
  sha256 of every manifest below it and the right file count and total size.

Everything raises ``IntegrityError`` naming the first bad file.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass, field

from .layouts import PACKED_RE, expected_size
from .memfmt import DTYPES
from .store import FORMAT, FORMAT_VERSION, MANIFEST

_SHA = re.compile(r"^[0-9a-f]{64}$")
KINDS = ("case", "model", "unit", "images", "suite")


class IntegrityError(ValueError):
    """A vectors directory that is not what its manifest says (one line)."""


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def load_manifest_checked(root: str) -> dict:
    """``root/manifest.json`` parsed and validated; IntegrityError otherwise."""
    path = os.path.join(root, MANIFEST)
    if not os.path.isdir(root):
        raise IntegrityError(f"{root}: " + ("not a directory" if os.path.exists(root) else "no such directory"))
    if not os.path.isfile(path):
        raise IntegrityError(f"{root}: no manifest.json (not a vectors directory)")
    try:
        with open(path, "rb") as f:
            m = json.loads(f.read().decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise IntegrityError(f"{path}: malformed manifest ({e.__class__.__name__}: {e})") from None
    except OSError as e:
        raise IntegrityError(f"{path}: {e.strerror}") from None
    validate_manifest(m, path)
    return m


def validate_manifest(m, path: str = MANIFEST) -> None:
    """The structure docs/VECTORS.md 4 describes (not the files themselves)."""
    def bad(what):
        raise IntegrityError(f"{path}: malformed manifest ({what})")

    if not isinstance(m, dict) or m.get("format") != FORMAT:
        bad(f"not an {FORMAT} manifest")
    if m.get("format_version") != FORMAT_VERSION:
        raise IntegrityError(f"{path}: vectors format version {m.get('format_version')} "
                             f"(this fxlic reads {FORMAT_VERSION})")
    if m.get("kind") not in KINDS:
        bad(f"kind {m.get('kind')!r} is none of {', '.join(KINDS)}")
    if m["kind"] == "suite":
        man = m.get("manifests")
        if not isinstance(man, dict) or not all(isinstance(v, str) and _SHA.match(v) for v in man.values()):
            bad("'manifests' must map paths to sha256 digests")
        models = m.get("models", {})
        if not isinstance(models, dict) or not all(isinstance(v, dict) for v in models.values()):
            bad("'models' must map names to objects")
        from .external import validate
        for v in models.values():
            if "external" in v:
                validate(v["external"], path)
        return
    files = m.get("files")
    if not isinstance(files, dict):
        bad("no 'files' object")
    for rel, info in files.items():
        if not isinstance(info, dict) or not isinstance(info.get("sha256"), str) or \
                not _SHA.match(info["sha256"]) or not _is_int(info.get("bytes")) or info["bytes"] < 0:
            bad(f"files[{rel!r}] needs sha256 (64 hex digits) and bytes")
        if rel.startswith("/") or "\\" in rel or ".." in rel.split("/") or rel == MANIFEST:
            bad(f"file name {rel!r} is not a relative path inside the directory")
    tensors = m.get("tensors", {})
    if not isinstance(tensors, dict):
        bad("'tensors' must be an object")
    for name, e in tensors.items():
        if not isinstance(e, dict):
            bad(f"tensors[{name!r}] is not an object")
        if e.get("dtype") not in DTYPES:
            bad(f"tensors[{name!r}]: dtype {e.get('dtype')!r}")
        shape = e.get("shape")
        if not isinstance(shape, list) or not all(_is_int(s) and s >= 0 for s in shape):
            bad(f"tensors[{name!r}]: shape must be a list of sizes")
        axes = e.get("axes")
        if axes is not None and (not isinstance(axes, list) or len(axes) != len(shape)):
            bad(f"tensors[{name!r}]: {len(axes) if isinstance(axes, list) else 'no'} axis names "
                f"for {len(shape)} dimensions")
        if "same_as" in e:
            if e["same_as"] not in tensors or "same_as" in tensors[e["same_as"]]:
                bad(f"tensors[{name!r}]: alias of {e['same_as']!r}, which is not a stored tensor")
        else:
            fl = e.get("files")
            if not isinstance(fl, list) or not fl or not all(isinstance(f, str) for f in fl):
                bad(f"tensors[{name!r}]: no files")
    if m["kind"] == "case":
        if not isinstance(m.get("model"), dict) or not isinstance(m.get("image"), dict):
            bad("a case needs 'model' and 'image'")
        if "external" in m["model"]:  # a shipped model named by its .fxq file (external.py)
            from .external import validate
            if m["model"].get("dir"):
                bad("a case with model.external has no model.dir")
            validate(m["model"]["external"], path)
        if not isinstance(m.get("layers", []), list) or \
                not all(isinstance(l, dict) and isinstance(l.get("name"), str) for l in m.get("layers", [])):
            bad("'layers' must be a list of layer entries with names")


def file_sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(1 << 20)
            if not b:
                break
            h.update(b)
    return h.hexdigest()


def _path(root: str, rel: str) -> str:
    return os.path.join(root, *rel.split("/"))


def check_file(root: str, rel: str, info: dict) -> None:
    p = _path(root, rel)
    if not os.path.lexists(p):
        raise IntegrityError(f"{p}: missing (listed in the manifest)")
    if os.path.islink(p) or not os.path.isfile(p):
        raise IntegrityError(f"{p}: not a regular file")
    size = os.path.getsize(p)
    if size != info["bytes"]:
        raise IntegrityError(f"{p}: {size} bytes, the manifest says {info['bytes']}")
    try:
        digest = file_sha256(p)
    except OSError as e:
        raise IntegrityError(f"{p}: {e.strerror}") from None
    if digest != info["sha256"]:
        raise IntegrityError(f"{p}: does not match its sha256 in the manifest (corrupt or edited)")


def check_files(root: str, manifest: dict, progress=None):
    """Size and sha256 of every listed file; returns (files, bytes)."""
    n = total = 0
    for rel in sorted(manifest.get("files", {})):
        info = manifest["files"][rel]
        check_file(root, rel, info)
        n += 1
        total += info["bytes"]
        if progress is not None:
            progress(info["bytes"])
    return n, total


def _npy_header(path: str):
    import numpy as np

    with open(path, "rb") as f:
        try:
            major, _ = np.lib.format.read_magic(f)
            if major == 1:
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
            else:
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
        except ValueError as e:
            raise IntegrityError(f"{path}: not a valid .npy file ({e})") from None
    return tuple(shape), fortran, dtype


def check_tensors(root: str, manifest: dict) -> None:
    """Each tensor entry against its files (the headers, not the data)."""
    import numpy as np

    files = manifest.get("files", {})
    for name in sorted(manifest.get("tensors", {})):
        e = manifest["tensors"][name]
        if "same_as" in e:
            t = manifest["tensors"][e["same_as"]]
            if t["dtype"] != e["dtype"] or t["shape"] != e["shape"]:
                raise IntegrityError(f"{_path(root, MANIFEST)}: alias {name} differs in dtype or shape "
                                     f"from {e['same_as']}")
            continue
        shape = tuple(e["shape"])
        for rel in e["files"]:
            if rel not in files:
                raise IntegrityError(f"{_path(root, rel)}: file of tensor {name} is not listed in the manifest")
            p = _path(root, rel)
            if rel.endswith(".npy"):
                sh, fortran, dt = _npy_header(p)
                if sh != shape or fortran or dt != np.dtype(DTYPES[e["dtype"]]):
                    raise IntegrityError(f"{p}: holds {dt} {sh}, the manifest says {e['dtype']} {shape}")
            else:  # .mem, packed .pP.mem, .bin: sized by the shape (layouts.py)
                want = expected_size(rel, shape, e["dtype"])
                if want is not None and files[rel]["bytes"] != want:
                    kind = "packed .mem" if PACKED_RE.search(rel) else "." + rel.rsplit(".", 1)[-1]
                    raise IntegrityError(f"{p}: {files[rel]['bytes']} bytes, a canonical {kind} of "
                                         f"{e['dtype']} {shape} has {want}")
        hdr = e.get("c_header")
        if hdr is not None and (not isinstance(hdr, dict) or hdr.get("file") not in files):
            raise IntegrityError(f"{_path(root, MANIFEST)}: the C header of tensor {name} is not a listed file")


def check_dir(root: str, manifest: dict = None, progress=None):
    """One directory against its own manifest: (manifest, files, bytes)."""
    m = manifest if manifest is not None else load_manifest_checked(root)
    n, total = check_files(root, m, progress)
    check_tensors(root, m)
    return m, n, total


@dataclass
class CheckSummary:
    manifests: int = 0
    files: int = 0
    bytes: int = 0
    dirs: list = field(default_factory=list)


def _walk_files(root: str):
    """Relative paths of every file below root (sorted)."""
    out = []
    for dp, dn, fn in os.walk(root):
        dn.sort()
        for n in sorted(fn):
            out.append(os.path.relpath(os.path.join(dp, n), root).replace(os.sep, "/"))
    return out


def check_tree(root: str, progress=None, zoo: str = None) -> CheckSummary:
    """``fxlic vectors --check``: the directory, every directory below it that
    has a manifest, a case's model directory, and the file of an external model
    (size and sha256; looked up in ``zoo``, default the installed fxlic/zoo:
    fxlic/vectors/external.py) (docs/VECTORS.md 4)."""
    summary = CheckSummary()
    done = set()
    _check_tree(root, summary, done, progress, zoo)
    return summary


def _check_tree(root, summary, done, progress, zoo=None):
    real = os.path.realpath(root)
    if real in done:
        return
    done.add(real)
    m = load_manifest_checked(root)
    summary.manifests += 1
    summary.dirs.append(root)
    all_files = _walk_files(root)
    nested = sorted({os.path.dirname(f) for f in all_files
                     if f.endswith("/" + MANIFEST)}, key=len)
    nested = [d for d in nested if d]  # sub-directories with their own manifest

    def under_nested(rel):
        return any(rel == d or rel.startswith(d + "/") for d in nested)

    if m["kind"] == "suite":
        listed = m["manifests"]
        found = {f: None for f in all_files if f.endswith("/" + MANIFEST)}
        for rel in sorted(listed):
            p = _path(root, rel)
            if not os.path.isfile(p):
                raise IntegrityError(f"{p}: missing (listed in the suite manifest)")
            if file_sha256(p) != listed[rel]:
                raise IntegrityError(f"{p}: does not match its sha256 in the suite manifest")
        for rel in sorted(found):
            if rel not in listed:
                raise IntegrityError(f"{_path(root, rel)}: a manifest the suite manifest does not list")
        for f in all_files:
            if f != MANIFEST and not under_nested(f):
                raise IntegrityError(f"{_path(root, f)}: not listed in any manifest")
        below = [f for f in all_files if f != MANIFEST]  # the counts exclude the suite manifest
        for key, val in (("file_count", len(below)),
                         ("total_bytes", sum(os.path.getsize(_path(root, f)) for f in below))):
            if key in m and m[key] != val:
                raise IntegrityError(f"{_path(root, MANIFEST)}: {key} {m[key]}, the directory has {val}")
        from .external import resolve
        for name in sorted(m.get("models", {})):
            if "external" in m["models"][name]:
                resolve(m["models"][name]["external"], f"{_path(root, MANIFEST)}: models[{name!r}]", zoo)
    else:
        listed = set(m["files"])
        for f in all_files:
            if f == MANIFEST or under_nested(f):
                continue
            if f not in listed:
                raise IntegrityError(f"{_path(root, f)}: not listed in the manifest")
        _, n, total = check_dir(root, m, progress)
        summary.files += n
        summary.bytes += total
    # nested directories (only the outermost ones: they recurse themselves)
    outer = [d for d in nested if not any(d != o and d.startswith(o + "/") for o in nested)]
    for d in outer:
        _check_tree(_path(root, d), summary, done, progress, zoo)
    if m["kind"] == "case" and "external" in m["model"]:
        from .external import resolve
        resolve(m["model"]["external"], root, zoo)
    if m["kind"] == "case":
        mdir = m["model"].get("dir")
        if mdir:
            p = os.path.normpath(os.path.join(root, *mdir.split("/")))
            if not os.path.isdir(p):
                raise IntegrityError(f"{p}: model directory of the case (model.dir {mdir!r}) does not exist")
            _check_tree(p, summary, done, progress, zoo)
            mm = load_manifest_checked(p)
            if mm.get("kind") != "model" or mm.get("model_hash") != m["model"].get("hash"):
                raise IntegrityError(f"{_path(p, MANIFEST)}: model hash {mm.get('model_hash')} is not the "
                                     f"case's {m['model'].get('hash')}")
