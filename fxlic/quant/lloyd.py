"""Lloyd-Max / k-means codebooks (Eq 11), used layer-wise as in Table I.

The centroids are rounded (R4) to a fine grid so the engine sees integer
levels like every other codebook; quantization maps a value to the nearest
level, ties toward the larger level (the R1 direction).
"""
from __future__ import annotations

import numpy as np

from ..spec import round_half_up_float


def lloyd_max(values: np.ndarray, n_levels: int, iters: int = 30) -> np.ndarray:
    """Eq 11: 1-D k-means (Lloyd's algorithm), deterministic quantile start.

    Returns ``n_levels`` sorted centroids (float64).  Empty cells keep their
    previous centroid.
    """
    x = np.sort(np.asarray(values, dtype=np.float64).reshape(-1))
    if x.size == 0:
        raise ValueError("lloyd_max: no values")
    # evenly spaced start over the data range: a quantile start leaves the tails
    # without levels and Lloyd then stalls in a poor local optimum
    c = np.linspace(x[0], x[-1], n_levels)
    for _ in range(iters):
        edges = (c[1:] + c[:-1]) / 2
        cell = np.searchsorted(edges, x, side="right")
        sums = np.bincount(cell, weights=x, minlength=n_levels)
        cnt = np.bincount(cell, minlength=n_levels)
        new = np.where(cnt > 0, sums / np.maximum(cnt, 1), c)
        new = np.sort(new)
        if np.array_equal(new, c):
            break
        c = new
    return c


def quantize_to_table(t: np.ndarray, table: np.ndarray) -> np.ndarray:
    """Index of the nearest entry of the sorted integer ``table`` for exact float
    ``t``; a value exactly between two entries goes to the larger one."""
    table = np.asarray(table, dtype=np.int64)
    t = np.asarray(t, dtype=np.float64)
    if len(table) == 1:
        return np.zeros(t.shape, dtype=np.int64)
    hi = np.clip(np.searchsorted(table, t, side="left"), 1, len(table) - 1)
    lo = hi - 1
    # compare t - table[lo] >= table[hi] - t  <=>  2t >= table[lo] + table[hi] (exact)
    go_hi = 2.0 * t >= (table[lo] + table[hi]).astype(np.float64)
    idx = np.where(go_hi, hi, lo)
    return idx


def lloyd_table(values_fine: np.ndarray, n_levels: int) -> np.ndarray:
    """Integer Lloyd table on the fine grid: centroids rounded by R4, made unique."""
    c = round_half_up_float(lloyd_max(values_fine, n_levels))
    table = np.unique(np.asarray(c, dtype=np.int64))
    return table
