"""Dynamic fixed-point scale factors: Eq 6-10 (weights), Eq 23 (activations).

``sf = 2^(-floor(log2 max|w|) - 1) * alpha`` with alpha a power of two, so a
scale factor is fully described by the integer ``sf_exp`` with sf = 2^sf_exp.
After scaling, max|sw| lies in [alpha/2, alpha).  A quantized value on a
codebook with fine grid 2^-G then has the real value ``level * 2^exp`` with
``exp = -G - sf_exp`` (SPEC F1).
"""
from __future__ import annotations

import numpy as np


def floor_log2(m) -> np.ndarray:
    """Exact floor(log2 m) for positive float64 m (via frexp: m = f 2^e, f in [0.5, 1))."""
    m = np.asarray(m, dtype=np.float64)
    if np.any(~(m > 0)) or not np.all(np.isfinite(m)):
        raise ValueError("floor_log2 needs positive finite values")
    _, e = np.frexp(m)
    return (e - 1).astype(np.int64)


def sf_exponent(maxabs, alpha_log2: int, dead_exp=None) -> np.ndarray:
    """Eq 7/10/23: integer exponent of sf = 2^(-floor(log2 max) - 1) * 2^alpha_log2.

    Groups whose max is 0 (dead channels) get ``dead_exp`` (default: the
    largest sf exponent of the live groups, i.e. the finest grid, so the dead
    channel never widens the exponent spread; 0 if all are dead).
    """
    maxabs = np.asarray(maxabs, dtype=np.float64)
    live = maxabs > 0
    out = np.zeros(maxabs.shape, dtype=np.int64)
    if np.any(live):
        out[live] = -floor_log2(maxabs[live]) - 1 + alpha_log2
    if np.any(~live):
        if dead_exp is None:
            dead_exp = int(out[live].max()) if np.any(live) else 0
        out[~live] = dead_exp
    return out


def group_maxabs(w: np.ndarray, grouping: str) -> np.ndarray:
    """max|w| per group: 'cw' = per output channel (axis 0), 'lw' = whole layer.

    Returns one value per output channel (LW repeats the layer maximum).
    """
    w = np.asarray(w, dtype=np.float64)
    per_out = np.abs(w).reshape(w.shape[0], -1).max(axis=1)
    if grouping == "cw":
        return per_out
    if grouping == "lw":
        return np.full_like(per_out, per_out.max())
    raise ValueError(f"unknown grouping {grouping!r} (use 'cw' or 'lw')")
