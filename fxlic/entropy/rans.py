"""Reference range-ANS coder, byte-compatible with CompressAI's ``ans`` coder.

Plain-Python-integer twin of ``rans_numba.py``.  Implements docs/ENTROPY.md
sections 3-5, which restate

* CompressAI ``compressai/cpp_exts/rans/rans_interface.cpp``:
  ``BufferedRansEncoder::encode_with_indexes`` + ``flush`` (= what
  ``RansEncoder.encode_with_indexes`` returns) and
  ``RansDecoder::decode_with_indexes``, with ``precision = 16``,
  ``bypass_precision = 4``;
* ryg_rans ``rans64.h`` (``Rans64EncInit``, ``Rans64EncPut``,
  ``Rans64EncFlush``, ``Rans64DecInit``, ``Rans64DecGet``,
  ``Rans64DecAdvance``) and the two bypass helpers of rans_interface.cpp
  (``Rans64EncPutBits``, ``Rans64DecGetBits``).

Differences from CompressAI, all outside what CompressAI can produce or decode
correctly (docs/ENTROPY.md 6):

* an empty symbol list encodes to the 8-byte flushed initial state (CompressAI
  dereferences an empty buffer);
* escaped raw values >= 2^31 are decoded as unsigned 32-bit numbers (CompressAI
  holds ``raw_val`` in an ``int32_t`` and its ``>> 1`` sign-extends, so it
  mis-decodes ``|value|`` >~ 2^30);
* the decoder validates the stream and raises ``ValueError("corrupt rANS
  stream: ...")`` instead of reading out of bounds: length not a multiple of 4
  or < 8 bytes, initial state outside [2^31, 2^63), a read past the last word,
  an escape announcing more than 8 raw nibbles, a symbol outside int32, and
  (``strict=True``, the default) a final state != 2^31 or unread words.
"""
from __future__ import annotations

from bisect import bisect_right

import numpy as np

from .common import (
    BYPASS_PRECISION,
    INT32_MAX,
    INT32_MIN,
    MAX_BYPASS_CHUNKS,
    MAX_BYPASS_VAL,
    PRECISION,
    RANS64_L,
    STATE_END,
    ST_BAD_BYPASS,
    ST_BAD_STATE,
    ST_RANGE,
    ST_TRAILING,
    ST_TRUNCATED,
    check_data,
    check_indexes,
    check_symbols,
    check_tables,
    corrupt,
)

_MASK32 = (1 << 32) - 1
_MASK_PREC = (1 << PRECISION) - 1
#: renormalisation threshold per unit of frequency, ((L >> 16) << 32) (rans64.h)
_XMAX_UNIT = (RANS64_L >> PRECISION) << 32
#: bypass threshold: Rans64EncPutBits uses freq = 2^(16 - nbits)
_XMAX_BYPASS = _XMAX_UNIT << (PRECISION - BYPASS_PRECISION)


def escape_raw(value: int, max_value: int):
    """rans_interface.cpp escape rule: returns (coded index, raw or None).

    ``value < 0`` -> raw = -2*value - 1; ``value >= max_value`` ->
    raw = 2*(value - max_value); both code the index ``max_value``.
    """
    if value < 0:
        return max_value, -2 * value - 1
    if value >= max_value:
        return max_value, 2 * (value - max_value)
    return value, None


def bypass_nibbles(raw: int) -> list:
    """The bypass puts of one escape, in stream (forward) order.

    n = number of 4-bit chunks of raw (0 for raw = 0); n is sent as chunks of
    15 while >= 15, then the remainder; then the chunks of raw, least
    significant first (rans_interface.cpp).
    """
    n = 0
    while (raw >> (n * BYPASS_PRECISION)) != 0:
        n += 1
    out = []
    v = n
    while v >= MAX_BYPASS_VAL:
        out.append(MAX_BYPASS_VAL)
        v -= MAX_BYPASS_VAL
    out.append(v)
    for j in range(n):
        out.append((raw >> (j * BYPASS_PRECISION)) & MAX_BYPASS_VAL)
    return out


def encode_with_indexes(symbols, indexes, cdfs, cdf_sizes, offsets) -> bytes:
    """Encode ``symbols[i]`` with table ``indexes[i]``; CompressAI
    ``RansEncoder.encode_with_indexes`` (same arguments, same bytes).

    symbols, indexes: int sequences of equal length; cdfs: int32
    ``(n_tables, max_len)``; cdf_sizes, offsets: int32 ``(n_tables,)``.
    """
    cdfs, sizes, offs = check_tables(cdfs, cdf_sizes, offsets)
    idx = check_indexes(indexes, cdfs.shape[0])
    sym = check_symbols(symbols, idx, offs)
    rows = cdfs.tolist()
    sizes = sizes.tolist()
    offs = offs.tolist()

    # Forward pass: the list of puts (start, freq) in symbol order; a bypass
    # put is (nibble, None).  (BufferedRansEncoder::encode_with_indexes)
    puts = []
    for s, t in zip(sym.tolist(), idx.tolist()):
        cdf = rows[t]
        max_value = sizes[t] - 2
        v, raw = escape_raw(s - offs[t], max_value)
        puts.append((cdf[v], cdf[v + 1] - cdf[v]))
        if raw is not None:
            puts.extend((b, None) for b in bypass_nibbles(raw))

    # Backward pass (BufferedRansEncoder::flush): words are emitted from the
    # end of the buffer towards its start.
    x = RANS64_L  # Rans64EncInit
    emitted = []
    for start, freq in reversed(puts):
        if freq is None:  # Rans64EncPutBits(start, 4)
            if x >= _XMAX_BYPASS:
                emitted.append(x & _MASK32)
                x >>= 32
            x = (x << BYPASS_PRECISION) | start
        else:  # Rans64EncPut(start, freq, 16)
            if x >= _XMAX_UNIT * freq:
                emitted.append(x & _MASK32)
                x >>= 32
            x = ((x // freq) << PRECISION) + (x % freq) + start
        assert RANS64_L <= x < STATE_END
    # Rans64EncFlush: low word then high word at the new start of the buffer.
    words = [x & _MASK32, x >> 32] + emitted[::-1]
    return np.asarray(words, dtype="<u4").tobytes()


class _Reader:
    """Rans64 decoder state over a word list; any read past the end raises."""

    __slots__ = ("w", "p", "x")

    def __init__(self, words):
        self.w = words
        x = words[0] | (words[1] << 32)  # Rans64DecInit
        if not (RANS64_L <= x < STATE_END):
            raise corrupt(ST_BAD_STATE)
        self.x = x
        self.p = 2

    def _renorm(self, x):
        if x < RANS64_L:
            if self.p >= len(self.w):
                raise corrupt(ST_TRUNCATED)
            x = (x << 32) | self.w[self.p]
            self.p += 1
        self.x = x

    def get_bits(self):  # Rans64DecGetBits(4)
        x = self.x
        val = x & MAX_BYPASS_VAL
        self._renorm(x >> BYPASS_PRECISION)
        return val


def decode_with_indexes(data, indexes, cdfs, cdf_sizes, offsets, *, strict=True):
    """Decode ``len(indexes)`` symbols; CompressAI
    ``RansDecoder.decode_with_indexes``.  Returns an int32 array.

    Raises ``ValueError("corrupt rANS stream: ...")`` on malformed data
    (module docstring); ``strict=False`` skips only the end-of-stream check.
    """
    cdfs, sizes, offs = check_tables(cdfs, cdf_sizes, offsets)
    idx = check_indexes(indexes, cdfs.shape[0])
    words = check_data(data).tolist()
    rows = [r[: s] for r, s in zip(cdfs.tolist(), sizes.tolist())]
    offs = offs.tolist()
    rd = _Reader(words)
    out = []
    for t in idx.tolist():
        cdf = rows[t]
        max_value = len(cdf) - 2
        cum = rd.x & _MASK_PREC  # Rans64DecGet
        s = bisect_right(cdf, cum) - 1  # first entry > cum, minus one
        start, freq = cdf[s], cdf[s + 1] - cdf[s]
        rd._renorm(freq * (rd.x >> PRECISION) + cum - start)  # Rans64DecAdvance
        value = s
        if value == max_value:
            val = rd.get_bits()
            n = val
            while val == MAX_BYPASS_VAL and n <= MAX_BYPASS_CHUNKS:
                val = rd.get_bits()
                n += val
            if n > MAX_BYPASS_CHUNKS:
                raise corrupt(ST_BAD_BYPASS)
            raw = 0
            for j in range(n):
                raw |= rd.get_bits() << (j * BYPASS_PRECISION)
            value = raw >> 1
            value = -value - 1 if raw & 1 else value + max_value
        sym = value + offs[t]
        if not (INT32_MIN <= sym <= INT32_MAX):
            raise corrupt(ST_RANGE)
        out.append(sym)
    if strict and (rd.x != RANS64_L or rd.p != len(words)):
        raise corrupt(ST_TRAILING)
    return np.asarray(out, dtype=np.int32)


def estimate_bits(symbols, indexes, cdfs, cdf_sizes, offsets, checked=None) -> float:
    """Ideal code length in bits, ``sum(-log2(freq / 2^16))`` over all puts
    (a bypass put costs exactly 4 bits).  Build/analysis tool, uses floats;
    the real stream adds at most 64 bits of flushed state plus rANS rounding
    (docs/ENTROPY.md 7).  Vectorised NumPy.  ``checked``: the result of
    ``check_tables(cdfs, cdf_sizes, offsets)`` where the caller already has it
    (the per-channel estimates of ``entropy.chunked``: one check, not one per
    channel).
    """
    cdfs, sizes, offs = checked if checked is not None else check_tables(cdfs, cdf_sizes, offsets)
    idx = check_indexes(indexes, cdfs.shape[0])
    sym = check_symbols(symbols, idx, offs)
    if sym.size == 0:
        return 0.0
    max_value = sizes[idx].astype(np.int64) - 2
    v = sym.astype(np.int64) - offs[idx]
    esc = (v < 0) | (v >= max_value)
    raw = np.where(v < 0, -2 * v - 1, 2 * (v - max_value))
    raw = np.where(esc, raw, 0)
    vi = np.where(esc, max_value, v)
    freq = cdfs[idx, vi + 1].astype(np.int64) - cdfs[idx, vi]
    bits = float(np.sum(PRECISION - np.log2(freq.astype(np.float64))))
    nchunks = np.zeros(raw.shape, dtype=np.int64)
    r = raw.copy()
    while np.any(r):
        nz = r != 0
        nchunks += nz
        r >>= BYPASS_PRECISION
    n_puts = np.where(esc, nchunks // MAX_BYPASS_VAL + 1 + nchunks, 0)
    return bits + BYPASS_PRECISION * float(n_puts.sum())


__all__ = ["encode_with_indexes", "decode_with_indexes", "estimate_bits",
           "escape_raw", "bypass_nibbles"]
