"""Tensor comparison of ``fxlic verify``: a port's dump (.npy or $readmemh
.mem) read against the golden tensor's manifest entry, and exact integer
equality with the mismatches located, counted per channel and listed."""
from __future__ import annotations

import numpy as np

from .memfmt import MemFormatError, read_mem, read_npy
from .results import DEFAULT_MAX_MISMATCHES, position, unravel


def read_dump(path: str, kind: str, entry: dict) -> np.ndarray:
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
        return {"index": unravel(shape, i), "at": position(axes, shape, i), "expected": int(gd[k]),
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
