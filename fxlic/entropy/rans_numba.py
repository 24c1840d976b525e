"""Numba rANS coder: the fast twin of ``rans.py`` (same bytes, same errors).

Implements docs/ENTROPY.md sections 3-5 (CompressAI rans_interface.cpp
``RansEncoder.encode_with_indexes`` / ``RansDecoder.decode_with_indexes`` on
ryg_rans rans64.h, precision 16, 4-bit bypass chunks); see ``rans.py`` for the
normative plain-integer reference and the list of deliberate differences from
CompressAI.  ``tests/test_entropy_rans.py`` checks byte equality of the two
and runs once with NUMBA_DISABLE_JIT=1.

Implementation notes
* All state arithmetic is int64: a valid rANS64 state lies in [2^31, 2^63)
  (rans64.h), so it never needs the sign bit.  The decoder rejects an initial
  state outside that interval, and every later state stays inside it.
* ``x >= ((L >> 16) << 32) * freq`` is evaluated as ``(x >> 47) >= freq``
  (same truth value, no overflow for freq = 2^16).
* The encoder walks the symbols backwards, producing each symbol's puts in
  reverse (raw nibbles high to low, the chunk count, then the symbol), which
  equals CompressAI's forward buffer + reverse flush.
* The decoder's kernel bounds-checks every read of the stream and reports
  errors through a status code (common.ST_*); the wrapper raises ValueError.
  Table accesses are safe because the wrapper validates tables and indexes.
* The CDF search finds the last entry <= cum (equal to CompressAI's linear
  ``find_if`` on a strictly increasing cdf): it starts from a 256-bucket
  lookup ``lut[t, cum >> 8]`` built per call and steps forward; it stops at
  entry size-1 (= 2^16 > cum) at the latest.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from .common import (
    ST_BAD_BYPASS,
    ST_BAD_STATE,
    ST_OK,
    ST_RANGE,
    ST_TRAILING,
    ST_TRUNCATED,
    check_data,
    INT32_MAX,
    check_indexes,
    check_tables,
    corrupt,
)

# Constants as plain ints (Numba freezes module globals at compile time).
_L = 1 << 31
_PREC = 16
_MASK_PREC = (1 << 16) - 1
_MASK32 = (1 << 32) - 1
_XSHIFT = 47  # log2(((L >> 16) << 32))
_BYPASS_LIMIT = 1 << 12  # freq of a 4-bit bypass put at precision 16
_INT32_MIN = -(1 << 31)
_INT32_MAX = (1 << 31) - 1
_LUT_BITS = 8


@njit(cache=True)
def _n_chunks(raw):
    """Number of 4-bit chunks of raw (0 <= raw < 2^32)."""
    n = 0
    while (raw >> (4 * n)) != 0:
        n += 1
    return n


@njit(cache=True)
def _put_bits(x, val, buf, pos):
    """Rans64EncPutBits(val, 4) (rans_interface.cpp).  Returns (x, pos)."""
    if (x >> _XSHIFT) >= _BYPASS_LIMIT:
        pos -= 1
        buf[pos] = x & _MASK32
        x >>= 32
    return (x << 4) | val, pos


@njit(cache=True)
def _renorm(x, words, p):
    """Rans64DecRenorm (32-bit words).  Returns (x, p); p = -1 when a word is
    needed past the end of ``words``."""
    if x < _L:
        if p >= words.shape[0]:
            return x, -1
        x = (x << 32) | np.int64(words[p])
        p += 1
    return x, p


@njit(cache=True)
def _get_nibble(x, words, p):
    """Rans64DecGetBits(4): returns (value, x, p); p = -1 when truncated."""
    val = x & 15
    x, p = _renorm(x >> 4, words, p)
    return val, x, p


@njit(cache=True)
def encode_chunk(sym, idx, cdfs, sizes, offs, x):
    """Encode one chunk of symbols backwards from state ``x`` (resumable: a
    stream coded as chunks k = n-1 .. 0, each continuing the previous state,
    is the stream of the concatenated symbols, docs/ENTROPY.md 3).

    Returns (uint32 words of this chunk in stream order, new state, status);
    status 1: a symbol outside int32; 2: symbol - offset outside int32 (then
    the words are empty).  Tables and indexes must be validated
    (``encode_with_indexes``); ``sym`` is any integer array.
    """
    n = sym.shape[0]
    # Pass 1: check symbols (int32, value = symbol - offset in int32) and
    # bound the emitted words (each put emits at most one).
    n_puts = 0
    for i in range(n):
        t = idx[i]
        max_value = np.int64(sizes[t]) - 2
        if sym[i] < _INT32_MIN or sym[i] > _INT32_MAX:
            return np.empty(0, dtype=np.uint32), x, 1
        value = np.int64(sym[i]) - offs[t]
        if value < _INT32_MIN or value > _INT32_MAX:
            return np.empty(0, dtype=np.uint32), x, 2
        n_puts += 1
        if value < 0 or value >= max_value:
            if value < 0:
                raw = -2 * value - 1
            else:
                raw = 2 * (value - max_value)
            nb = _n_chunks(raw)
            n_puts += nb // 15 + 1 + nb
    cap = n_puts
    buf = np.empty(cap, dtype=np.uint32)
    pos = cap
    # Pass 2: backwards over the symbols (BufferedRansEncoder::flush order).
    for i in range(n - 1, -1, -1):
        t = idx[i]
        max_value = np.int64(sizes[t]) - 2
        value = np.int64(sym[i]) - offs[t]
        if value < 0 or value >= max_value:
            if value < 0:
                raw = -2 * value - 1
            else:
                raw = 2 * (value - max_value)
            value = max_value
            nb = _n_chunks(raw)
            for j in range(nb - 1, -1, -1):
                x, pos = _put_bits(x, (raw >> (4 * j)) & 15, buf, pos)
            x, pos = _put_bits(x, nb % 15, buf, pos)
            for _ in range(nb // 15):
                x, pos = _put_bits(x, 15, buf, pos)
        start = np.int64(cdfs[t, value])
        freq = np.int64(cdfs[t, value + 1]) - start
        # Rans64EncPut(start, freq, 16)
        if (x >> _XSHIFT) >= freq:
            pos -= 1
            buf[pos] = x & _MASK32
            x >>= 32
        x = ((x // freq) << _PREC) + (x % freq) + start
    return buf[pos:], x, 0


@njit(cache=True)
def estimate_chunk(sym, idx, cdfs, sizes, offs):
    """``rans.estimate_bits`` of one chunk in one pass (its twin; float64, an
    analysis figure beside the stream, not part of any integer result):
    16 - log2(freq) per symbol, 4 bits per bypass put.  Takes what
    ``encode_chunk`` accepted (validated tables, indexes and symbols)."""
    bits = 0.0
    puts = 0
    for i in range(sym.shape[0]):
        t = idx[i]
        max_value = np.int64(sizes[t]) - 2
        value = np.int64(sym[i]) - offs[t]
        if value < 0 or value >= max_value:
            raw = -2 * value - 1 if value < 0 else 2 * (value - max_value)
            nb = _n_chunks(raw)
            puts += nb // 15 + 1 + nb
            value = max_value
        freq = np.int64(cdfs[t, value + 1]) - np.int64(cdfs[t, value])
        bits += _PREC - np.log2(np.float64(freq))
    return bits + 4.0 * puts


@njit(cache=True)
def flush_words(x):
    """Rans64EncFlush: the two words (low, high) that start the stream."""
    out = np.empty(2, dtype=np.uint32)
    out[0] = x & _MASK32
    out[1] = x >> 32
    return out


@njit(cache=True)
def encode_kernel(sym, idx, cdfs, sizes, offs):
    """Encode; returns (uint32 words with the flushed state first, status)
    (``encode_chunk`` from the initial state 2^31, then the flush)."""
    words, x, st = encode_chunk(sym, idx, cdfs, sizes, offs, np.int64(_L))
    if st != 0:
        return words, st
    out = np.empty(words.shape[0] + 2, dtype=np.uint32)
    out[:2] = flush_words(x)
    out[2:] = words
    return out, 0


@njit(cache=True)
def decode_init(words):
    """Rans64DecInit: (status, state) from the first two words."""
    if words.shape[0] < 2:
        return ST_TRUNCATED, np.int64(0)
    hi = np.int64(words[1])
    if hi >= (1 << 31):
        return ST_BAD_STATE, np.int64(0)
    x = np.int64(words[0]) | (hi << 32)
    if x < _L:
        return ST_BAD_STATE, x
    return ST_OK, x


@njit(cache=True)
def build_lut(cdfs):
    """Search accelerator: lut[t, b] = last s with cdf[t, s] <= b * 2^8."""
    n_tables = cdfs.shape[0]
    lut = np.empty((n_tables, 1 << _LUT_BITS), dtype=np.int32)
    for t in range(n_tables):
        s = 0
        for b in range(1 << _LUT_BITS):
            while cdfs[t, s + 1] <= (b << (_PREC - _LUT_BITS)):
                s += 1
            lut[t, b] = s
    return lut


@njit(cache=True)
def decode_chunk(words, p, x, idx, cdfs, sizes, offs, lut, out):
    """Decode ``idx.shape[0]`` symbols into ``out`` from word position ``p``
    and state ``x`` (resumable, the inverse of ``encode_chunk``); returns
    (status, x, p) (common.ST_*; 0 = ok).  Never reads outside ``words``."""
    n = idx.shape[0]
    for i in range(n):
        t = idx[i]
        size = sizes[t]
        max_value = size - 2
        cum = x & _MASK_PREC
        # last s with cdf[s] <= cum (cdf[0] = 0 <= cum < 2^16 = cdf[size-1])
        s = lut[t, cum >> (_PREC - _LUT_BITS)]
        while cdfs[t, s + 1] <= cum:
            s += 1
        start = np.int64(cdfs[t, s])
        freq = np.int64(cdfs[t, s + 1]) - start
        x, p = _renorm(freq * (x >> _PREC) + cum - start, words, p)
        if p < 0:
            return ST_TRUNCATED, x, p
        value = np.int64(s)
        if s == max_value:
            # bypass: chunk count (4-bit pieces, 15 = "more"), then raw chunks
            nb = 0
            val = 15
            while val == 15:
                val, x, p = _get_nibble(x, words, p)
                if p < 0:
                    return ST_TRUNCATED, x, p
                nb += val
                if nb > 8:
                    return ST_BAD_BYPASS, x, p
            raw = np.int64(0)
            for j in range(nb):
                val, x, p = _get_nibble(x, words, p)
                if p < 0:
                    return ST_TRUNCATED, x, p
                raw |= val << (4 * j)
            value = raw >> 1
            if raw & 1:
                value = -value - 1
            else:
                value += max_value
        v = value + offs[t]
        if v < _INT32_MIN or v > _INT32_MAX:
            return ST_RANGE, x, p
        out[i] = v
    return ST_OK, x, p


@njit(cache=True)
def decode_kernel(words, idx, cdfs, sizes, offs, out, strict):
    """Decode ``idx.shape[0]`` symbols into ``out``; returns a status code
    (common.ST_*; 0 = ok).  Never reads outside ``words``."""
    st, x = decode_init(words)
    if st != ST_OK:
        return st
    st, x, p = decode_chunk(words, 2, x, idx, cdfs, sizes, offs, build_lut(cdfs), out)
    if st != ST_OK:
        return st
    if strict and (x != _L or p != words.shape[0]):
        return ST_TRAILING
    return ST_OK


def encode_with_indexes(symbols, indexes, cdfs, cdf_sizes, offsets) -> bytes:
    """Numba twin of ``rans.encode_with_indexes`` (identical bytes)."""
    cdfs, sizes, offs = check_tables(cdfs, cdf_sizes, offsets)
    idx = check_indexes(indexes, cdfs.shape[0])
    sym = np.asarray(symbols)
    if sym.size == 0:
        sym = np.zeros(0, dtype=np.int64)
    elif sym.dtype.kind not in "iu":
        raise TypeError("symbols must be an integer array")
    elif sym.dtype == np.uint64 and sym.max() > INT32_MAX:
        raise ValueError("symbols must fit in int32")
    # one compiled specialisation: int64 symbols (range-checked in the kernel)
    sym = np.ascontiguousarray(sym.reshape(-1), dtype=np.int64)
    if sym.size != idx.size:
        raise ValueError("symbols and indexes must have the same length")
    words, st = encode_kernel(sym, idx, cdfs, sizes, offs)
    if st == 1:
        raise ValueError("symbols must fit in int32")
    if st == 2:
        raise ValueError("symbol - offset must fit in int32")
    return words.astype("<u4", copy=False).tobytes()


def decode_with_indexes(data, indexes, cdfs, cdf_sizes, offsets, *, strict=True):
    """Numba twin of ``rans.decode_with_indexes`` (same output, same errors)."""
    cdfs, sizes, offs = check_tables(cdfs, cdf_sizes, offsets)
    idx = check_indexes(indexes, cdfs.shape[0])
    words = check_data(data)
    out = np.empty(idx.shape[0], dtype=np.int32)
    st = decode_kernel(words, idx, cdfs, sizes, offs, out, bool(strict))
    if st != ST_OK:
        raise corrupt(st)
    return out


__all__ = ["encode_with_indexes", "decode_with_indexes", "encode_kernel", "decode_kernel",
           "encode_chunk", "flush_words", "decode_init", "build_lut", "decode_chunk"]
