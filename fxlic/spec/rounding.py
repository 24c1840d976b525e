"""Rounding, shifting and saturation: docs/SPEC.md rules R1-R4.

R1  rshift_rhu(a, s)      round-half-up right shift: floor(a / 2^s + 1/2)
R2  requant_shift(a, s)   R1 for s > 0, exact left shift a * 2^-s for s <= 0
R3  saturate(a, lo, hi)   clamp to [lo, hi]
R4  round_half_up_float   R1 applied to an exact real number (offline conversion
                          of float weights, biases and thresholds to integers)

All functions accept Python ints or NumPy integer arrays (int64 is used inside)
and are marked ``register_jitable``: the jitted kernels call the very same
code.  No function here uses floating point on integer operands.
"""
from __future__ import annotations

from fractions import Fraction
import math

import numpy as np
from numba.extending import register_jitable

SPEC_VERSION = "fxlic-spec-1.4"

INT32_MIN = -(1 << 31)
INT32_MAX = (1 << 31) - 1

#: Operands of R1 are 64-bit signed integers; for s >= 64 every such operand
#: gives 0 (|a| <= 2^63 <= 2^(s-1)), so R1 returns 0 without shifting (a shift
#: by >= the width is undefined in C and NumPy).
RSHIFT_ZERO_FROM = 64


@register_jitable
def rshift_rhu(a, s):
    """R1: round-half-up arithmetic right shift, ``floor(a / 2**s + 1/2)``.

    Computed as ``(a >> s) + ((a >> (s - 1)) & 1)`` which never overflows (no
    ``a + 2**(s-1)`` intermediate).  ``s = 0`` returns ``a``; ``s`` must be >= 0.
    Ties go toward +infinity: -3/2 -> -1, -1/2 -> 0, 1/2 -> 1, 3/2 -> 2.
    Exact for every 64-bit ``a`` and every s >= 0 (s >= 64 gives 0).
    """
    if s <= 0:
        if s < 0:
            raise ValueError("rshift_rhu: negative shift")
        return a
    if s >= RSHIFT_ZERO_FROM:
        return a - a
    return (a >> s) + ((a >> (s - 1)) & 1)


@register_jitable
def requant_shift(a, s):
    """R2: scale an integer by 2^-s: R1 when s > 0, exact ``a << -s`` otherwise.

    The caller guarantees (by the loader's bound check, SPEC A4) that the left
    shift does not overflow its 64-bit container.
    """
    if s > 0:
        return rshift_rhu(a, s)
    return a << (-s)


@register_jitable
def saturate(a, lo, hi):
    """R3: clamp a scalar ``a`` to ``[lo, hi]`` (Numba-compilable)."""
    return min(max(a, lo), hi)


def saturate_array(a, lo, hi):
    """R3 on a NumPy array (element-wise ``saturate``)."""
    return np.minimum(np.maximum(a, lo), hi)


def sat_signed(a, bits):
    """R3 for a two's-complement width: clamp to [-2^(bits-1), 2^(bits-1)-1]."""
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    if isinstance(a, np.ndarray):
        return saturate_array(a, lo, hi)
    return saturate(a, lo, hi)


def round_half_up_float(x):
    """R4: ``floor(x + 1/2)`` of float64 values, computed exactly.

    ``np.floor(x + 0.5)`` is wrong for e.g. x = 0.49999999999999994 (the sum
    rounds to 1.0); here ``x - floor(x)`` is exact (Sterbenz), so the result is
    the true floor(x + 1/2).  Returns int64 (arrays) or int (scalars).
    """
    xa = np.asarray(x, dtype=np.float64)
    if not np.all(np.isfinite(xa)):
        raise ValueError("round_half_up_float: non-finite value")
    if xa.size and np.max(np.abs(xa)) >= 2.0 ** 63:
        raise OverflowError("round_half_up_float: value outside the 64-bit integer range")
    f = np.floor(xa)
    frac = xa - f
    out = f.astype(np.int64) + (frac >= 0.5).astype(np.int64)
    if np.ndim(x) == 0:
        return int(out)
    return out


def round_half_up_fraction(x: Fraction) -> int:
    """Exact oracle of R1/R4 on a rational: floor(x + 1/2)."""
    return math.floor(Fraction(x) + Fraction(1, 2))
