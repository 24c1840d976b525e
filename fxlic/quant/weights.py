"""Weight quantization schemes of Section III (Eq 6-14, Table I).

A quantized weight tensor is stored as int8 codes plus a 256-entry level
table (index ``code + 128``) and one exponent per output channel:
``w = LUT[code + 128] * 2^exp[o]`` (SPEC W1).  The engine multiplies levels.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .codebook import Codebook, weight_lq, weight_nlq
from .lloyd import lloyd_table, quantize_to_table
from .scale import group_maxabs, sf_exponent

#: alpha = 1/2 for weights (Eq 6): log2(alpha)
WEIGHT_ALPHA_LOG2 = -1
#: Lloyd centroids live on a grid 2^-(N+4) of sw (finer than NLQ's 2^-(N+2)).
LLOYD_EXTRA_BITS = 4

SCHEMES = ("cw-nlq", "cw-lq", "lw-nlq", "lw-lq", "lloyd")


@dataclass
class QuantizedWeights:
    codes: np.ndarray  # int8, same shape as w
    lut: np.ndarray  # int16 (256,), level of code c at index c + 128
    exp: np.ndarray  # int64 (cout,), real = level * 2^exp
    scheme: str

    def levels(self) -> np.ndarray:
        return self.lut[self.codes.astype(np.int64) + 128].astype(np.int64)

    def dequantize(self) -> np.ndarray:
        shape = (-1,) + (1,) * (self.codes.ndim - 1)
        return np.ldexp(self.levels().astype(np.float64), self.exp.reshape(shape))


def codebook_lut(cb: Codebook) -> np.ndarray:
    """256-entry int16 LUT for a symmetric weight codebook (code -128 unused -> 0)."""
    lut = np.zeros(256, dtype=np.int16)
    lo, hi = cb.code_range
    lut[lo + 128: hi + 129] = cb.lut()
    return lut


def quantize_weights(w: np.ndarray, scheme: str = "cw-nlq", bits: int = 8) -> QuantizedWeights:
    """Quantize a float weight tensor (out channel first) with one of SCHEMES.

    Scale factor exponent per group (Eq 10), scaling (Eq 6), codebook (Eq 8 or
    Eq 14 or Lloyd Eq 11), exponent of the result: ``exp = -G - sf_exp``.
    """
    if scheme not in SCHEMES:
        raise ValueError(f"unknown weight scheme {scheme!r}; choose from {', '.join(SCHEMES)}")
    w = np.asarray(w, dtype=np.float64)
    if not np.all(np.isfinite(w)):
        raise ValueError("weights contain NaN or infinity")
    grouping = "cw" if scheme.startswith("cw") else "lw"
    sfe = sf_exponent(group_maxabs(w, grouping), WEIGHT_ALPHA_LOG2)
    shape = (-1,) + (1,) * (w.ndim - 1)
    if scheme == "lloyd":
        g = bits + LLOYD_EXTRA_BITS
        t = np.ldexp(w, (sfe + g).reshape(shape))
        table = lloyd_table(t, 1 << bits)
        idx = quantize_to_table(t, table)
        lut = np.zeros(256, dtype=np.int16)
        lut[: len(table)] = table
        codes = (idx - 128).astype(np.int8)
        return QuantizedWeights(codes, lut, -g - sfe, scheme)
    cb = weight_nlq(bits) if scheme.endswith("nlq") else weight_lq(bits)
    t = np.ldexp(w, (sfe + cb.frac_bits).reshape(shape))
    levels = cb.quantize_float(t)
    codes = cb.code_of_level(levels).astype(np.int8)
    return QuantizedWeights(codes, codebook_lut(cb), -cb.frac_bits - sfe, scheme)
