"""One vectors directory: its files, tensor entries and manifest (docs/VECTORS.md)."""
from __future__ import annotations

import hashlib
import json
import os

import numpy as np

from ..spec import SPEC_VERSION
from .layouts import NONE, hw_files
from .memfmt import as_dtype, mem_layout, npy_bytes, npy_size, png_bytes, png_size

FORMAT = "fxlic-vectors"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"


def json_bytes(obj) -> bytes:
    """Canonical JSON of a manifest: sorted keys, one-space indent, final newline."""
    return (json.dumps(obj, indent=1, sort_keys=True, ensure_ascii=True) + "\n").encode("ascii")


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _entry(name, shape, dtype, axes, mem, hw, hmeta, meta) -> dict:
    """A tensor's manifest entry (docs/VECTORS.md 4)."""
    entry = {"dtype": dtype, "shape": [int(s) for s in shape], "order": "C",
             "axes": list(axes) if axes is not None else [f"d{i}" for i in range(len(shape))]}
    if mem:
        entry["mem"] = mem_layout(dtype)
    entry["files"] = [name + ".npy"] + [rel for rel, _ in hw]
    entry.update(hmeta)
    entry.update(meta)
    return entry


class VectorDir:
    """Writes the files of one case / unit / model directory and remembers, for
    the manifest, the sha256 of every file and the description of every tensor."""

    #: hardware files written with every tensor (layouts.HwFormats; default none)
    formats = NONE

    def __init__(self, root: str, on_write=None):
        self.root = root
        self.files = {}
        self.tensors = {}
        self.on_write = on_write  # called with the size of every file written (progress)
        os.makedirs(root, exist_ok=True)

    def write(self, rel: str, data: bytes, **meta) -> None:
        if rel in self.files:
            raise ValueError(f"{rel} written twice")
        path = os.path.join(self.root, *rel.split("/"))
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)
        self.files[rel] = {"bytes": len(data), "sha256": sha256_hex(data), **meta}
        if self.on_write is not None:
            self.on_write(len(data))

    def png(self, rel: str, pixels, **meta) -> None:
        """An 8-bit RGB preview (memfmt.png_bytes)."""
        self.write(rel, png_bytes(pixels), **meta)

    def tensor(self, name: str, a, dtype: str, mem: bool = True, axes=None, **meta) -> np.ndarray:
        """``name.npy`` (and ``name.mem`` if ``mem``) of an integer array stored
        as ``dtype`` (values must fit); returns the stored array.  The other
        hardware files of ``self.formats`` (layouts.py) go with them."""
        arr = as_dtype(a, dtype)
        if axes is not None and len(axes) != arr.ndim:
            raise ValueError(f"{name}: {len(axes)} axis names for a {arr.ndim}-d array")
        self.write(name + ".npy", npy_bytes(arr))
        hw, hmeta = hw_files(name, arr, dtype, axes, mem, self.formats, sizing=False)
        for rel, data in hw:
            self.write(rel, data)
        self.tensors[name] = _entry(name, arr.shape, dtype, axes, mem, hw, hmeta, meta)
        return arr

    def alias(self, name: str, target: str, **meta) -> None:
        """A tensor equal to another one of the same directory (not stored twice)."""
        t = self.tensors[target]
        self.tensors[name] = {"same_as": target, "dtype": t["dtype"], "shape": t["shape"],
                              "axes": t["axes"], **meta}

    def text(self, rel: str, text: str) -> None:
        self.write(rel, text.encode("ascii"))

    def manifest(self, head: dict) -> dict:
        m = {"format": FORMAT, "format_version": FORMAT_VERSION, "spec_version": SPEC_VERSION}
        m.update(head)
        m["files"] = {k: self.files[k] for k in sorted(self.files)}
        m["tensors"] = {k: self.tensors[k] for k in sorted(self.tensors)}
        with open(os.path.join(self.root, MANIFEST), "wb") as f:
            f.write(json_bytes(m))
        return m


def load_manifest(root: str) -> dict:
    path = os.path.join(root, MANIFEST)
    with open(path, "rb") as f:
        m = json.loads(f.read().decode("utf-8"))
    if not isinstance(m, dict) or m.get("format") != FORMAT:
        raise ValueError(f"{path}: not an fxlic vectors manifest")
    if m.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{path}: vectors format version {m.get('format_version')} "
                         f"(this fxlic reads {FORMAT_VERSION})")
    return m


class SizingDir(VectorDir):
    """A VectorDir that writes nothing and only records what the files would
    be: the exact size of every ``.npy``, ``.mem``, PNG, text and manifest file
    (``fxlic vectors`` size estimate).  Tensors may be shape-only stand-ins
    (``np.broadcast_to``): their values are not looked at."""

    def __init__(self, root: str, on_write=None):
        self.root = root
        self.files = {}
        self.tensors = {}
        self.on_write = None

    def _record(self, rel: str, size: int, **meta) -> None:
        if rel in self.files:
            raise ValueError(f"{rel} written twice")
        self.files[rel] = {"bytes": int(size), "sha256": "0" * 64, **meta}

    def write(self, rel: str, data: bytes, **meta) -> None:
        self._record(rel, len(data), **meta)

    def png(self, rel: str, pixels, **meta) -> None:
        _, h, w = np.shape(pixels)
        self._record(rel, png_size(h, w), **meta)

    def tensor(self, name: str, a, dtype: str, mem: bool = True, axes=None, **meta):
        shape = tuple(int(s) for s in np.shape(a))
        self._record(name + ".npy", npy_size(shape, dtype))
        hw, hmeta = hw_files(name, a, dtype, axes, mem, self.formats, sizing=True)
        for rel, size in hw:
            self._record(rel, size)
        self.tensors[name] = _entry(name, shape, dtype, axes, mem, hw, hmeta, meta)
        return a

    def manifest(self, head: dict) -> dict:
        m = {"format": FORMAT, "format_version": FORMAT_VERSION, "spec_version": SPEC_VERSION}
        m.update(head)
        m["files"] = {k: self.files[k] for k in sorted(self.files)}
        m["tensors"] = {k: self.tensors[k] for k in sorted(self.tensors)}
        self.manifest_bytes = len(json_bytes(m))
        return m
