"""Constants and argument checks shared by the rANS reference and Numba twins.

Implements the table/argument rules of docs/ENTROPY.md, section 2 ("Tables")
and section 4 ("Escape coding"); the coding loops themselves live in
``rans.py`` (reference) and ``rans_numba.py`` (Numba).  Everything here is
integer-only and is run by the decoder.

The table layout is CompressAI's (compressai/entropy_models/entropy_models.py,
``EntropyModel._pmf_to_cdf`` and ``compress``): ``cdfs`` is an int32 matrix
``(n_tables, max_len)``; row ``t`` holds ``cdf_sizes[t]`` valid entries, the
rest is padding; ``offsets[t]`` is subtracted from a symbol before coding.
"""
from __future__ import annotations

import numpy as np

#: CDF precision in bits (CompressAI rans_interface.cpp ``precision``).
PRECISION = 16
#: bits per bypass chunk (rans_interface.cpp ``bypass_precision``).
BYPASS_PRECISION = 4
#: largest bypass chunk, also the "more chunks follow" marker of the count.
MAX_BYPASS_VAL = (1 << BYPASS_PRECISION) - 1
#: lower bound of the rANS state interval (ryg_rans rans64.h ``RANS64_L``).
RANS64_L = 1 << 31
#: a valid state is in [RANS64_L, STATE_END) (63-bit states, rans64.h).
STATE_END = 1 << 63
#: a valid stream never needs more raw nibbles than this (raw < 2^32).
MAX_BYPASS_CHUNKS = 8

INT32_MIN = -(1 << 31)
INT32_MAX = (1 << 31) - 1

# Status codes of the Numba decoder kernel (0 = ok).
ST_OK = 0
ST_TRUNCATED = 1
ST_BAD_STATE = 2
ST_BAD_BYPASS = 3
ST_RANGE = 4
ST_TRAILING = 5

STATUS_TEXT = {
    ST_TRUNCATED: "corrupt rANS stream: read past the end of the data",
    ST_BAD_STATE: "corrupt rANS stream: initial state out of [2^31, 2^63)",
    ST_BAD_BYPASS: "corrupt rANS stream: escape needs more than 8 raw nibbles",
    ST_RANGE: "corrupt rANS stream: decoded symbol outside int32",
    ST_TRAILING: "corrupt rANS stream: final state is not 2^31 or words are left over",
}


def corrupt(status: int) -> ValueError:
    return ValueError(STATUS_TEXT.get(status, f"corrupt rANS stream (status {status})"))


def _as_int_array(a, name: str) -> np.ndarray:
    arr = np.asarray(a)
    if arr.size == 0:
        return np.zeros(arr.shape, dtype=np.int64)
    if arr.dtype.kind not in "iu":
        if arr.dtype.kind == "b" or arr.dtype == object:
            raise TypeError(f"{name} must be an integer array")
        raise TypeError(f"{name} must be an integer array, got {arr.dtype}")
    return arr


def _to_int32(arr: np.ndarray, name: str) -> np.ndarray:
    if arr.size and (arr.min() < INT32_MIN or arr.max() > INT32_MAX):
        raise ValueError(f"{name} must fit in int32")
    return np.ascontiguousarray(arr, dtype=np.int32)


def check_tables(cdfs, cdf_sizes, offsets):
    """Validate and normalise a table set; return int32 C-contiguous arrays.

    ``cdfs`` may be a 2-D integer array or a list of (possibly ragged) integer
    lists, which is zero-padded.  Rules (docs/ENTROPY.md 2): for every table t,
    ``2 <= cdf_sizes[t] <= max_len``, ``cdfs[t, 0] == 0``,
    ``cdfs[t, cdf_sizes[t] - 1] == 2^16`` and the first ``cdf_sizes[t]``
    entries strictly increase (every coded symbol has frequency >= 1).
    CompressAI checks the same in debug builds (``assert_cdfs``).
    """
    if isinstance(cdfs, (list, tuple)) and len(cdfs) and not isinstance(cdfs[0], (int, np.integer)):
        rows = [np.asarray(r).reshape(-1) for r in cdfs]
        width = max((r.size for r in rows), default=0)
        m = np.zeros((len(rows), width), dtype=np.int64)
        for i, r in enumerate(rows):
            m[i, : r.size] = _as_int_array(r, "cdfs")
        cdfs = m
    c = _as_int_array(cdfs, "cdfs")
    if c.ndim != 2 or c.shape[0] == 0:
        raise ValueError("cdfs must be a non-empty 2-D array (n_tables, max_len)")
    n_tables, max_len = c.shape
    sizes = _as_int_array(cdf_sizes, "cdf_sizes").reshape(-1)
    offs = _as_int_array(offsets, "offsets").reshape(-1)
    if sizes.size != n_tables or offs.size != n_tables:
        raise ValueError("cdf_sizes and offsets need one entry per cdf row")
    c = c.astype(np.int64)
    sizes = sizes.astype(np.int64)
    if sizes.min() < 2 or sizes.max() > max_len:
        raise ValueError("cdf_sizes must be in [2, max_len]")
    if np.any(c[:, 0] != 0):
        raise ValueError("every cdf must start at 0")
    rows = np.arange(n_tables)
    if np.any(c[rows, sizes - 1] != (1 << PRECISION)):
        raise ValueError("every cdf must end at 2^16 (entry cdf_sizes[t]-1)")
    cols = np.arange(1, max_len)[None, :]
    valid = cols < sizes[:, None]
    if np.any((np.diff(c, axis=1) <= 0) & valid):
        raise ValueError("cdfs must be strictly increasing")
    return (np.ascontiguousarray(c, dtype=np.int32), _to_int32(sizes, "cdf_sizes"),
            _to_int32(offs, "offsets"))


def check_indexes(indexes, n_tables: int) -> np.ndarray:
    idx = _as_int_array(indexes, "indexes").reshape(-1)
    if idx.size and (idx.min() < 0 or idx.max() >= n_tables):
        raise ValueError("indexes must be in [0, n_tables)")
    return np.ascontiguousarray(idx, dtype=np.int32)


def check_symbols(symbols, idx: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Symbols must be int32 and ``symbol - offset`` must fit in int32 (the
    coder's ``value``; CompressAI computes it in int32)."""
    sym = _as_int_array(symbols, "symbols").reshape(-1)
    if sym.size != idx.size:
        raise ValueError("symbols and indexes must have the same length")
    sym = _to_int32(sym, "symbols")
    if sym.size:
        v = sym.astype(np.int64) - offsets[idx].astype(np.int64)
        if v.min() < INT32_MIN or v.max() > INT32_MAX:
            raise ValueError("symbol - offset must fit in int32")
    return sym


def check_data(data) -> np.ndarray:
    """The stream as little-endian uint32 words (no copy for bytes input)."""
    if isinstance(data, np.ndarray):
        data = data.tobytes()
    b = bytes(data) if not isinstance(data, (bytes, bytearray, memoryview)) else data
    n = len(b)
    if n < 8 or n % 4:
        raise ValueError("corrupt rANS stream: length must be a multiple of 4 and >= 8")
    return np.frombuffer(b, dtype="<u4").astype(np.uint32, copy=False)
