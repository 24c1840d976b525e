"""Integer entropy models of fxlic: the Gaussian y model and the factorized model.

Implements docs/ENTROPY.md sections 8-9:

* y (mean-scale hyperprior, Sun/Yu/Katto Fig. 1, CompressAI
  ``GaussianConditional.compress`` with means): from integer ``y_hat``, integer
  means ``mean_q`` (real value mean_q * 2^-mean_frac_bits) and integer scales
  ``scale_q`` (real value scale_q * 2^-scale_frac_bits):
      base   = rshift_rhu(mean_q, F)          (F = mean_frac_bits, SPEC R1)
      d      = mean_q - base * 2^F             in [-2^(F-1), 2^(F-1))
      sign   = -1 if d < 0 else +1,  family = |d|
      symbol = sign * (y_hat - base)
      index  = family * L + #{i : scale_q > T_i}   (L scales, cdf.scale_index)
  family f codes N(f / 2^F, scale): the mean's fraction is kept to 2^-F and
  the sign flip maps a negative fraction onto its mirror (F = 0: CompressAI).
  and the symbol is coded with table ``index`` (any int32 symbol is codable:
  out-of-table values go through the escape).
* z (and y of the factorized model): symbol = the integer itself, table =
  channel (CompressAI ``EntropyBottleneck.compress`` on round(z), see
  cdf.build_factorized_tables for the offsets).

Symbols are taken in C order of the (C, H, W) array, one rANS stream per
tensor.  Everything a decoder runs here is integer-only; the float table
builders are in ``cdf.py`` and run at model-build time.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fxlic.spec import rshift_rhu

from . import rans, rans_numba
from .cdf import (
    build_factorized_tables,
    build_gaussian_offset_tables,
    gaussian_scale_table,
    scale_index,
    scale_thresholds,
)
from .common import INT32_MAX, INT32_MIN, check_tables

_CODERS = {"numba": rans_numba, "reference": rans}


def _coder(coder):
    if isinstance(coder, str):
        try:
            return _CODERS[coder]
        except KeyError:
            raise ValueError(f"unknown coder {coder!r} (numba | reference)") from None
    return coder


def _int_array(a, name):
    arr = np.asarray(a)
    if arr.size and arr.dtype.kind not in "iu":
        raise TypeError(f"{name} must be an integer array")
    return arr.astype(np.int64)


@dataclass(frozen=True, eq=False)
class GaussianTables:
    """Everything the y model needs, all integers (store these with the model).

    cdfs int32 (R, max_len), cdf_sizes int32 (R,), offsets int32 (R,),
    thresholds int64 (L - 1,) non-decreasing, scale_frac_bits, mean_frac_bits;
    R = families * L rows, families = 2^(F-1) + 1 for F = mean_frac_bits >= 1.
    """
    cdfs: np.ndarray
    cdf_sizes: np.ndarray
    offsets: np.ndarray
    thresholds: np.ndarray
    scale_frac_bits: int
    mean_frac_bits: int

    def __post_init__(self):
        cdfs, sizes, offs = check_tables(self.cdfs, self.cdf_sizes, self.offsets)
        thr = np.asarray(self.thresholds)
        if thr.size and thr.dtype.kind not in "iu":
            raise TypeError("thresholds must be integers")
        thr = thr.astype(np.int64).reshape(-1)
        for name in ("scale_frac_bits", "mean_frac_bits"):
            v = int(getattr(self, name))
            if not 0 <= v <= 40:
                raise ValueError(f"{name} must be in [0, 40]")
            object.__setattr__(self, name, v)
        fams = mean_families(self.mean_frac_bits)
        if cdfs.shape[0] != fams * (thr.size + 1) or np.any(np.diff(thr) < 0):
            raise ValueError(f"need {fams} x (len(thresholds) + 1) tables and non-decreasing thresholds")
        object.__setattr__(self, "cdfs", cdfs)
        object.__setattr__(self, "cdf_sizes", sizes)
        object.__setattr__(self, "offsets", offs)
        object.__setattr__(self, "thresholds", thr)

    @classmethod
    def build(cls, scale_table=None, *, scale_frac_bits: int, mean_frac_bits: int,
              tail_mass: float = 1e-9) -> "GaussianTables":
        """Build time (floats): CompressAI tables for ``scale_table``
        (default ``gaussian_scale_table()``) and integer thresholds."""
        if scale_table is None:
            scale_table = gaussian_scale_table()
        rows, sizes, offs = build_gaussian_offset_tables(scale_table, mean_frac_bits, tail_mass)
        cdfs = np.zeros((len(rows), int(sizes.max())), np.int32)
        for i, r in enumerate(rows):
            cdfs[i, : r.size] = r
        thr = scale_thresholds(scale_table, scale_frac_bits)
        return cls(cdfs, sizes, offs, thr, scale_frac_bits, mean_frac_bits)

    def to_arrays(self) -> dict:
        """Integer arrays for storage: rows concatenated (``cdf_data``), not padded."""
        data = np.concatenate([self.cdfs[i, : self.cdf_sizes[i]] for i in range(len(self.cdf_sizes))])
        return {"cdf_data": data.astype(np.int32), "cdf_sizes": self.cdf_sizes, "offsets": self.offsets,
                "thresholds": self.thresholds,
                "frac_bits": np.array([self.scale_frac_bits, self.mean_frac_bits], np.int32)}

    @classmethod
    def from_arrays(cls, d) -> "GaussianTables":
        fb = np.asarray(d["frac_bits"]).reshape(-1)
        if "cdfs" in d:
            cdfs = d["cdfs"]
        else:
            sizes = np.asarray(d["cdf_sizes"], np.int64)
            data = np.asarray(d["cdf_data"])
            if sizes.ndim != 1 or np.any(sizes < 2) or int(sizes.sum()) != data.size:
                raise ValueError("cdf_data does not match cdf_sizes")
            cdfs = np.zeros((sizes.size, int(sizes.max())), np.int32)
            pos = 0
            for i, n in enumerate(sizes):
                cdfs[i, :n] = data[pos:pos + n]
                pos += n
        return cls(cdfs, d["cdf_sizes"], d["offsets"], d["thresholds"], int(fb[0]), int(fb[1]))


@dataclass(frozen=True, eq=False)
class FactorizedTables:
    """Per-channel integer tables of a factorized (EntropyBottleneck) model."""
    cdfs: np.ndarray
    cdf_sizes: np.ndarray
    offsets: np.ndarray

    def __post_init__(self):
        cdfs, sizes, offs = check_tables(self.cdfs, self.cdf_sizes, self.offsets)
        object.__setattr__(self, "cdfs", cdfs)
        object.__setattr__(self, "cdf_sizes", sizes)
        object.__setattr__(self, "offsets", offs)

    @classmethod
    def build(cls, params, tail_mass: float = 1e-9, offset_q=None, grid_bits: int = None) -> "FactorizedTables":
        """Build time (floats): see cdf.build_factorized_tables (``offset_q``, ``grid_bits``: SPEC O5)."""
        return cls(*build_factorized_tables(params, tail_mass, offset_q=offset_q, grid_bits=grid_bits))

    @property
    def channels(self) -> int:
        return int(self.cdfs.shape[0])

    def to_arrays(self) -> dict:
        return {"cdfs": self.cdfs, "cdf_sizes": self.cdf_sizes, "offsets": self.offsets}

    @classmethod
    def from_arrays(cls, d) -> "FactorizedTables":
        return cls(d["cdfs"], d["cdf_sizes"], d["offsets"])


# ---------------------------------------------------------------------------
# y: Gaussian conditional
# ---------------------------------------------------------------------------
def mean_families(mean_frac_bits: int) -> int:
    """Number of mean-offset table families: 2^(F-1) + 1 (1 when F = 0)."""
    return (1 << (mean_frac_bits - 1)) + 1 if mean_frac_bits >= 1 else 1


def y_means(mean_q, tables: GaussianTables):
    """(base, sign, family): base = rshift_rhu(mean_q, F) = floor(mean + 1/2),
    d = mean_q - base 2^F, sign = -1 where d < 0, family = |d| (int64)."""
    m = _int_array(mean_q, "mean_q")
    F = tables.mean_frac_bits
    base = rshift_rhu(m, F)
    d = m - (base << F)
    return base, np.where(d < 0, -1, 1).astype(np.int64), np.abs(d)


def y_indexes(scale_q, family, tables: GaussianTables) -> np.ndarray:
    """Table index per element: family * L + #{i : scale_q > T_i} (int32)."""
    L = tables.thresholds.size + 1
    s = scale_index(_int_array(scale_q, "scale_q"), tables.thresholds).astype(np.int64)
    return (np.asarray(family, np.int64) * L + s).astype(np.int32)


def _y_streams(y_hat, mean_q, scale_q, tables):
    y = _int_array(y_hat, "y_hat")
    base, sign, fam = y_means(mean_q, tables)
    if y.shape != base.shape or np.shape(scale_q) != y.shape:
        raise ValueError("y_hat, mean_q and scale_q must have the same shape")
    if y.size and (y.min() < INT32_MIN or y.max() > INT32_MAX):
        raise ValueError("y_hat must fit in int32")
    sym = (sign * (y - base)).reshape(-1)
    if sym.size and (sym.min() < INT32_MIN or sym.max() > INT32_MAX):
        raise ValueError("y_hat - mean must fit in int32")
    idx = y_indexes(scale_q, fam, tables).reshape(-1)
    return sym, idx


def encode_y(y_hat, mean_q, scale_q, tables: GaussianTables, *, coder="numba") -> bytes:
    """rANS stream of y_hat given integer means and scales (C order)."""
    sym, idx = _y_streams(y_hat, mean_q, scale_q, tables)
    return _coder(coder).encode_with_indexes(sym, idx, tables.cdfs, tables.cdf_sizes,
                                             tables.offsets)


def decode_y(data, mean_q, scale_q, tables: GaussianTables, *, coder="numba") -> np.ndarray:
    """Inverse of ``encode_y``: y_hat (int32, shape of mean_q).  Integer only.

    Raises ValueError on a corrupt stream (rans.decode_with_indexes).
    """
    base, sign, fam = y_means(mean_q, tables)
    if np.shape(scale_q) != base.shape:
        raise ValueError("mean_q and scale_q must have the same shape")
    idx = y_indexes(scale_q, fam, tables).reshape(-1)
    sym = _coder(coder).decode_with_indexes(data, idx, tables.cdfs, tables.cdf_sizes,
                                            tables.offsets)
    y = base + sign * sym.astype(np.int64).reshape(base.shape)
    if y.size and (y.min() < INT32_MIN or y.max() > INT32_MAX):
        raise ValueError("corrupt rANS stream: decoded y_hat outside int32")
    return y.astype(np.int32)


def estimate_y_bits(y_hat, mean_q, scale_q, tables: GaussianTables, checked=None) -> float:
    """Ideal code length of ``encode_y`` in bits (rans.estimate_bits; ``checked``
    as there)."""
    sym, idx = _y_streams(y_hat, mean_q, scale_q, tables)
    return rans.estimate_bits(sym, idx, tables.cdfs, tables.cdf_sizes, tables.offsets, checked=checked)


# ---------------------------------------------------------------------------
# z (hyperprior) / y (factorized model): per-channel tables
# ---------------------------------------------------------------------------
def _fact_streams(z_hat, tables: FactorizedTables):
    z = _int_array(z_hat, "z_hat")
    if z.ndim < 1 or z.shape[0] != tables.channels:
        raise ValueError(f"z_hat must have shape (C={tables.channels}, ...)")
    if z.size and (z.min() < INT32_MIN or z.max() > INT32_MAX):
        raise ValueError("z_hat must fit in int32")
    idx = np.broadcast_to(np.arange(z.shape[0], dtype=np.int32).reshape((-1,) + (1,) * (z.ndim - 1)),
                          z.shape).reshape(-1)
    return z.reshape(-1), idx


def encode_factorized(z_hat, tables: FactorizedTables, *, coder="numba") -> bytes:
    """rANS stream of an integer (C, H, W) tensor, table = channel."""
    sym, idx = _fact_streams(z_hat, tables)
    return _coder(coder).encode_with_indexes(sym, idx, tables.cdfs, tables.cdf_sizes,
                                             tables.offsets)


def decode_factorized(data, tables: FactorizedTables, shape, *, coder="numba") -> np.ndarray:
    """Inverse of ``encode_factorized``; ``shape`` = (C, H, W).  Integer only."""
    shape = tuple(int(s) for s in shape)
    if len(shape) < 1 or shape[0] != tables.channels or any(s < 0 for s in shape):
        raise ValueError(f"shape must be (C={tables.channels}, ...)")
    idx = np.broadcast_to(np.arange(shape[0], dtype=np.int32).reshape((-1,) + (1,) * (len(shape) - 1)),
                          shape).reshape(-1)
    sym = _coder(coder).decode_with_indexes(data, idx, tables.cdfs, tables.cdf_sizes,
                                            tables.offsets)
    return sym.reshape(shape)


def estimate_factorized_bits(z_hat, tables: FactorizedTables) -> float:
    """Ideal code length of ``encode_factorized`` in bits."""
    sym, idx = _fact_streams(z_hat, tables)
    return rans.estimate_bits(sym, idx, tables.cdfs, tables.cdf_sizes, tables.offsets)


estimate_bits = rans.estimate_bits

__all__ = ["GaussianTables", "FactorizedTables", "encode_y", "decode_y", "estimate_y_bits",
           "encode_factorized", "decode_factorized", "estimate_factorized_bits",
           "estimate_bits", "y_means", "y_indexes"]
