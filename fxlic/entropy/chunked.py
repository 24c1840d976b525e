"""Entropy coding of large tensors in chunks: the same bytes, bounded memory.

A y or z substream is one rANS stream over the (C, H, W) tensor in C order
(docs/ENTROPY.md 8-9).  rANS is resumable: encoding chunk k = n-1 .. 0 from
the state the previous chunk left (``rans_numba.encode_chunk``) and flushing
at the end gives the stream of the whole tensor, and decoding chunk by chunk
with the carried state and word position (``rans_numba.decode_chunk``) gives
its symbols.  Here a chunk is one channel, so the per-symbol arrays (symbols,
table indexes, means, scales) exist for one channel at a time instead of as
int64 copies of the whole tensor.

Callers give the chunks as functions of k:

* ``encode_y_chunks(n, get, tables)``: ``get(k)`` -> (y_hat, mean_q, scale_q)
  of chunk k (any integer arrays of one shape), rules of gaussian.encode_y;
* ``decode_y_chunks(data, n, get, tables, put)``: ``get(k)`` -> (mean_q,
  scale_q); ``put(k, y_hat)`` receives chunk k (int32), rules of decode_y;
* ``encode_factorized_chunks(get, tables)`` / ``decode_factorized_chunks``:
  z (and the factorized model's y), ``get(c)`` = channel c, table = channel.

Bytes and symbols equal gaussian.encode_y / decode_y / encode_factorized /
decode_factorized on the whole tensor (tests/test_entropy_chunked.py).  The
``reference`` coder has no resumable form: its chunks are concatenated (int32)
and coded in one call, so it does not bound memory.  Integer only.
"""
from __future__ import annotations

import numpy as np

from . import gaussian as G
from . import rans, rans_numba as RN
from .common import INT32_MAX, INT32_MIN, ST_OK, ST_TRAILING, check_data, check_indexes, check_tables, corrupt


def _encode(n, streams, cdfs, sizes, offs, coder, estimate=False):
    """``streams(k)`` -> (symbols, indexes) of chunk k; one rANS stream of all.
    ``estimate``: (bytes, ideal bits) -- ``rans.estimate_bits`` of the same
    symbols, taken in the same pass (``rans_numba.estimate_chunk`` per chunk)."""
    cdfs, sizes, offs = check_tables(cdfs, sizes, offs)
    if coder == "reference":
        parts = [streams(k) for k in range(n)]
        sym = np.concatenate([np.asarray(s, np.int64).reshape(-1) for s, _ in parts]) if n else []
        idx = np.concatenate([np.asarray(i, np.int32).reshape(-1) for _, i in parts]) if n else []
        data = rans.encode_with_indexes(sym, idx, cdfs, sizes, offs)
        if estimate:
            return data, rans.estimate_bits(sym, idx, cdfs, sizes, offs, checked=(cdfs, sizes, offs))
        return data
    words, x, bits = [], np.int64(RN._L), 0.0
    for k in range(n - 1, -1, -1):
        sym, idx = streams(k)
        idx = check_indexes(idx, cdfs.shape[0])
        sym = np.ascontiguousarray(np.asarray(sym).reshape(-1), dtype=np.int64)
        if sym.size != idx.size:
            raise ValueError("symbols and indexes must have the same length")
        w, x, st = RN.encode_chunk(sym, idx, cdfs, sizes, offs, x)
        if st == 1:
            raise ValueError("symbols must fit in int32")
        if st == 2:
            raise ValueError("symbol - offset must fit in int32")
        words.append(w)
        if estimate:
            bits += RN.estimate_chunk(sym, idx, cdfs, sizes, offs)
    words.append(RN.flush_words(x))
    data = np.concatenate(words[::-1]).astype("<u4", copy=False).tobytes()
    return (data, float(bits)) if estimate else data


def _decode(data, n, indexes, cdfs, sizes, offs, coder, put) -> None:
    """``indexes(k)`` -> table indexes of chunk k; ``put(k, symbols int32)``."""
    cdfs, sizes, offs = check_tables(cdfs, sizes, offs)
    if coder == "reference":
        idx = [check_indexes(indexes(k), cdfs.shape[0]) for k in range(n)]
        sym = rans.decode_with_indexes(data, np.concatenate(idx) if n else [], cdfs, sizes, offs)
        pos = 0
        for k in range(n):
            put(k, sym[pos:pos + idx[k].size])
            pos += idx[k].size
        return
    words = check_data(data)
    st, x = RN.decode_init(words)
    if st != ST_OK:
        raise corrupt(st)
    lut, p = RN.build_lut(cdfs), 2
    for k in range(n):
        idx = check_indexes(indexes(k), cdfs.shape[0])
        out = np.empty(idx.size, np.int32)
        st, x, p = RN.decode_chunk(words, p, x, idx, cdfs, sizes, offs, lut, out)
        if st != ST_OK:
            raise corrupt(st)
        put(k, out)
    if x != RN._L or p != words.shape[0]:
        raise corrupt(ST_TRAILING)


def encode_y_chunks(n: int, get, tables, *, coder="numba", estimate=False):
    """gaussian.encode_y of the tensor whose chunk k is ``get(k)`` = (y_hat,
    mean_q, scale_q) (ENTROPY.md 8: symbol and table index per element).
    ``estimate``: (bytes, ``estimate_y_bits_chunks`` of the same chunks), each
    chunk got once."""
    t = tables
    return _encode(n, lambda k: G._y_streams(*get(k), t), t.cdfs, t.cdf_sizes, t.offsets, coder, estimate)


def decode_y_chunks(data, n: int, get, tables, put, *, coder="numba") -> None:
    """gaussian.decode_y chunk by chunk: ``get(k)`` = (mean_q, scale_q),
    ``put(k, y_hat int32 of mean_q's shape)``.  ValueError on a corrupt stream."""
    t = tables
    pending = {}

    def indexes(k):
        mean_q, scale_q = get(k)
        base, sign, fam = G.y_means(mean_q, t)
        if np.shape(scale_q) != base.shape:
            raise ValueError("mean_q and scale_q must have the same shape")
        pending[k] = (base, sign)
        return G.y_indexes(scale_q, fam, t).reshape(-1)

    def symbols(k, sym):
        base, sign = pending.pop(k)
        y = base + sign * sym.astype(np.int64).reshape(base.shape)  # decode_y
        if y.size and (y.min() < INT32_MIN or y.max() > INT32_MAX):
            raise ValueError("corrupt rANS stream: decoded y_hat outside int32")
        put(k, y.astype(np.int32))

    _decode(data, n, indexes, t.cdfs, t.cdf_sizes, t.offsets, coder, symbols)


def encode_factorized_chunks(get, tables, *, coder="numba", estimate=False, group=1):
    """gaussian.encode_factorized of the (C, ...) integer tensor whose channel
    c is ``get(c)`` (ENTROPY.md 9: symbol = the integer, table = channel);
    ``group`` channels per rANS chunk (the same bytes for every group size).
    ``estimate``: (bytes, ``estimate_factorized_bits_chunks``)."""
    def channel(c):
        zc = np.asarray(get(c))
        if zc.size and zc.dtype.kind not in "iu":
            raise TypeError("z_hat must be an integer array")
        zc = zc.astype(np.int64).reshape(-1)
        if zc.size and (zc.min() < INT32_MIN or zc.max() > INT32_MAX):
            raise ValueError("z_hat must fit in int32")
        return zc

    C, g = tables.channels, max(1, int(group))

    def streams(k):
        cs = range(k * g, min(C, (k + 1) * g))
        parts = [channel(c) for c in cs]
        idx = np.repeat(np.arange(cs.start, cs.stop, dtype=np.int32), [p.size for p in parts])
        return np.concatenate(parts), idx  # k < the chunk count: at least one channel
    return _encode(-(-C // g), streams, tables.cdfs, tables.cdf_sizes, tables.offsets, coder, estimate)


def decode_factorized_chunks(data, tables, shape, put, *, coder="numba", group=1) -> None:
    """gaussian.decode_factorized, ``put(c, channel c int32 of shape[1:])``;
    ``group`` channels per rANS chunk (any group: the same symbols)."""
    shape = tuple(int(s) for s in shape)
    if len(shape) < 1 or shape[0] != tables.channels or any(s < 0 for s in shape):
        raise ValueError(f"shape must be (C={tables.channels}, ...)")
    per = int(np.prod(shape[1:], dtype=np.int64))
    C, g = shape[0], max(1, int(group))

    def indexes(k):
        return np.repeat(np.arange(k * g, min(C, (k + 1) * g), dtype=np.int32), per)

    def channels(k, s):
        for j, c in enumerate(range(k * g, min(C, (k + 1) * g))):
            put(c, s[j * per:(j + 1) * per].reshape(shape[1:]))
    _decode(data, -(-C // g), indexes, tables.cdfs, tables.cdf_sizes, tables.offsets, coder, channels)


def estimate_y_bits_chunks(n: int, get, tables) -> float:
    """Sum of gaussian.estimate_y_bits over the chunks (float, analysis only; the
    tables checked once, not once per chunk)."""
    checked = check_tables(tables.cdfs, tables.cdf_sizes, tables.offsets)
    return float(sum(G.estimate_y_bits(*get(k), tables, checked=checked) for k in range(n)))


def estimate_factorized_bits_chunks(get, tables) -> float:
    """Sum of rans.estimate_bits per channel ``get(c)`` of a factorized tensor (float)."""
    t = tables
    checked = check_tables(t.cdfs, t.cdf_sizes, t.offsets)
    total = 0.0
    for c in range(t.channels):
        zc = np.asarray(get(c)).reshape(-1)
        total += rans.estimate_bits(zc, np.full(zc.size, c, np.int32), t.cdfs, t.cdf_sizes, t.offsets,
                                    checked=checked)
    return float(total)
