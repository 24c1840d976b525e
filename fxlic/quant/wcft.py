"""Weight clipping for fine tuning, WCFT (Eq 15-22, Algorithm 1).

Pure functions on NumPy arrays; tools/train.py mirrors them in torch.
"""
from __future__ import annotations

import numpy as np

from .scale import floor_log2


def wcft_epsilon(maxabs, bits: int = 8, alpha: float = 0.5) -> np.ndarray:
    """Eq 19: eps = 2^(floor(log2 max|w|) - (N-1)) / alpha."""
    f = floor_log2(maxabs)
    return np.ldexp(1.0, f - (bits - 1)) / alpha


def wcft_bound(maxabs, beta: float = 1.0, bits: int = 8, alpha: float = 0.5) -> np.ndarray:
    """Eq 21 threshold: 2^floor(log2 max|w|) * beta - eps."""
    f = floor_log2(maxabs)
    return np.ldexp(1.0, f) * beta - wcft_epsilon(maxabs, bits, alpha)


def wcft_clip(w: np.ndarray, beta: float = 1.0, bits: int = 8, alpha: float = 0.5):
    """Eq 20-21 per output channel (CW grouping, axis 0), applied to |w|.

    Returns (clipped weights, gradient mask of Eq 22: 1 where |w| <= bound).
    Channels that are all zero are left unchanged.
    """
    w = np.asarray(w, dtype=np.float64)
    flat = np.abs(w).reshape(w.shape[0], -1)
    m = flat.max(axis=1)
    bound = np.full(m.shape, np.inf)
    live = m > 0
    bound[live] = wcft_bound(m[live], beta, bits, alpha)
    b = bound.reshape((-1,) + (1,) * (w.ndim - 1))
    mask = np.abs(w) <= b
    return np.sign(w) * np.minimum(np.abs(w), b), mask
