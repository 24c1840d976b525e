"""Chunked (per-channel) entropy coding == whole-tensor coding (fxlic.entropy.chunked, issue 18)."""
from __future__ import annotations

import numpy as np
import pytest

from fxlic.entropy import chunked as K
from fxlic.entropy import gaussian as G
from test_entropy_gaussian import _fact_tables, latent


@pytest.fixture(scope="module")
def tables():
    return G.GaussianTables.build(scale_frac_bits=8, mean_frac_bits=2)


@pytest.fixture(scope="module")
def fact():
    return _fact_tables(5, 4)[0]


@pytest.mark.parametrize("coder", ["numba", "reference"])
@pytest.mark.parametrize("shape", [(7, 5, 3), (1, 1, 1), (3, 0, 4)])
def test_y_chunks_same_bytes_and_symbols(tables, coder, shape):
    """Escapes (spread 4) included; an empty tensor too."""
    y, mq, sq = latent(shape, 3, spread=4.0)
    whole = G.encode_y(y, mq, sq, tables, coder="numba")
    data = K.encode_y_chunks(shape[0], lambda k: (y[k], mq[k], sq[k]), tables, coder=coder)
    assert data == whole
    out = np.full(y.shape, -7, np.int32)

    def put(k, v):
        out[k] = v
    K.decode_y_chunks(data, shape[0], lambda k: (mq[k], sq[k]), tables, put, coder=coder)
    assert np.array_equal(out, y)
    est = K.estimate_y_bits_chunks(shape[0], lambda k: (y[k], mq[k], sq[k]), tables)
    assert est == pytest.approx(G.estimate_y_bits(y, mq, sq, tables), rel=1e-12, abs=1e-9)


@pytest.mark.parametrize("coder", ["numba", "reference"])
def test_factorized_chunks_same_bytes_and_symbols(fact, coder):
    z = np.random.default_rng(5).integers(-40, 40, (fact.channels, 6, 9)).astype(np.int16)
    whole = G.encode_factorized(z, fact, coder="numba")
    assert K.encode_factorized_chunks(lambda c: z[c], fact, coder=coder) == whole
    out = np.zeros(z.shape, np.int16)

    def put(c, v):
        out[c] = v
    K.decode_factorized_chunks(whole, fact, z.shape, put, coder=coder)
    assert np.array_equal(out, z)
    assert K.estimate_factorized_bits_chunks(lambda c: z[c], fact) == pytest.approx(
        G.estimate_factorized_bits(z, fact), rel=1e-12)


@pytest.mark.parametrize("coder", ["numba", "reference"])
@pytest.mark.parametrize("group", [2, 3, 100])
def test_factorized_channel_groups_same_bytes_and_estimate(fact, coder, group):
    """Any number of channels per chunk: the bytes of the whole tensor, the same
    symbols back, and the estimate taken in the same pass equal to the separate one."""
    z = np.random.default_rng(6).integers(-60, 60, (fact.channels, 4, 7)).astype(np.int16)
    whole = G.encode_factorized(z, fact, coder="numba")
    data, est = K.encode_factorized_chunks(lambda c: z[c], fact, coder=coder, estimate=True, group=group)
    assert data == whole
    assert est == pytest.approx(G.estimate_factorized_bits(z, fact), rel=1e-12)
    out = np.zeros(z.shape, np.int16)

    def put(c, v):
        out[c] = v
    K.decode_factorized_chunks(whole, fact, z.shape, put, coder=coder, group=group)
    assert np.array_equal(out, z)


@pytest.mark.parametrize("coder", ["numba", "reference"])
def test_y_chunks_estimate_in_the_same_pass(tables, coder):
    y, mq, sq = latent((6, 5, 4), 9, spread=4.0)
    calls = []

    def get(k):
        calls.append(k)
        return y[2 * k:2 * k + 2], mq[2 * k:2 * k + 2], sq[2 * k:2 * k + 2]
    data, est = K.encode_y_chunks(3, get, tables, coder=coder, estimate=True)
    assert data == G.encode_y(y, mq, sq, tables)
    assert sorted(calls) == [0, 1, 2]  # each chunk got once
    assert est == pytest.approx(G.estimate_y_bits(y, mq, sq, tables), rel=1e-12)


def test_chunked_decoder_rejects_what_the_whole_decoder_rejects(tables):
    """Truncated, trailing and bit-flipped streams: ValueError, as decode_y."""
    y, mq, sq = latent((4, 6, 6), 8, spread=2.0)
    data = G.encode_y(y, mq, sq, tables)
    for bad in (data[:-4], data + b"\0\0\0\0", data[:4] + bytes([data[4] ^ 0xFF]) + data[5:], b"abc"):
        with pytest.raises(ValueError) as whole:
            G.decode_y(bad, mq, sq, tables)
        with pytest.raises(ValueError) as chunk:
            K.decode_y_chunks(bad, 4, lambda k: (mq[k], sq[k]), tables, lambda k, v: None)
        assert str(chunk.value) == str(whole.value)
