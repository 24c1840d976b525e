"""The golden side of ``fxlic verify``: a case or unit directory whose every
file is checked against its sha256 when read, and the entropy tables of the
case's model (model directory, external .fxq or shipped model) for decoding
rANS substreams."""
from __future__ import annotations

import os

import numpy as np

from .check import IntegrityError, load_manifest_checked
from .memfmt import MemFormatError, read_npy
from .results import VerifyError
from .store import sha256_hex


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
            arrays = zoo_entropy(model.get("name"), model.get("hash"))
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


def zoo_entropy(name, digest):
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
