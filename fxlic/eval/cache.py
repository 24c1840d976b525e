"""A result cache: one small JSON file per (codec, model content hash, image,
settings) so an interrupted or repeated evaluation only computes what is
missing.  Writes are atomic (temp file + os.replace), so several worker
processes may share one cache directory."""
from __future__ import annotations

import hashlib
import json
import os
import tempfile

DEFAULT_DIR = os.path.join(os.path.expanduser("~"), ".cache", "fxlic-eval")
#: bump when the meaning of a cached record changes
CACHE_VERSION = 1


def default_dir() -> str:
    return os.environ.get("FXLIC_EVAL_CACHE", DEFAULT_DIR)


def make_key(**parts) -> str:
    """Stable key of the keyword parts (json with sorted keys, sha256)."""
    blob = json.dumps({"v": CACHE_VERSION, **parts}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


class Cache:
    """``get(key)`` -> dict or None; ``put(key, record)``.  ``directory=None``
    disables caching (every get misses, put does nothing)."""

    def __init__(self, directory: str | None = None):
        self.directory = directory
        self.hits = 0
        self.misses = 0
        if directory:
            os.makedirs(directory, exist_ok=True)

    def _path(self, key: str) -> str:
        return os.path.join(self.directory, key[:2], key + ".json")

    def get(self, key: str):
        if not self.directory:
            self.misses += 1
            return None
        try:
            with open(self._path(key)) as f:
                rec = json.load(f)
        except (OSError, ValueError):
            self.misses += 1
            return None
        self.hits += 1
        return rec

    def put(self, key: str, record: dict) -> None:
        if not self.directory:
            return
        path = self._path(key)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as f:
                json.dump(record, f)
            os.replace(tmp, path)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise

    def cached(self, key: str, compute):
        """Return the cached record of ``key`` or compute, store and return it."""
        rec = self.get(key)
        if rec is None:
            rec = compute()
            self.put(key, rec)
        return rec


def file_digest(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]
