"""Integer y / z entropy models (fxlic.entropy.gaussian; docs/ENTROPY.md 8-9)."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fxlic.entropy import gaussian as G
from fxlic.entropy import rans, rans_numba
from fxlic.entropy.cdf import FactorizedParams, logits_cumulative


@pytest.fixture(scope="module")
def tables():
    return G.GaussianTables.build(scale_frac_bits=8, mean_frac_bits=2)


def latent(shape, seed, sfb=8, mfb=2, spread=1.0):
    rng = np.random.default_rng(seed)
    scale = np.exp(rng.uniform(np.log(0.05), np.log(80), shape))
    mean = rng.normal(0, 20, shape)
    y = np.round(rng.normal(mean, scale * spread)).astype(np.int32)
    mq = np.round(mean * (1 << mfb)).astype(np.int64)
    sq = np.round(scale * (1 << sfb)).astype(np.int64)
    return y, mq, sq


@pytest.mark.parametrize("coder", ["numba", "reference"])
def test_y_roundtrip(tables, coder):
    y, mq, sq = latent((16, 12, 10), 0, spread=1.5)
    data = G.encode_y(y, mq, sq, tables, coder=coder)
    out = G.decode_y(data, mq, sq, tables, coder=coder)
    assert out.dtype == np.int32 and out.shape == y.shape
    assert np.array_equal(out, y)
    assert data == G.encode_y(y, mq, sq, tables, coder="reference" if coder == "numba" else "numba")


def test_y_symbol_and_index_rule(tables):
    """base = rshift_rhu(mean_q, F), d = mean_q - 4 base, sign/family from d,
    symbol = sign (y - base), index = |d| * 64 + #{T_i < scale_q}, C order."""
    y, mq, sq = latent((4, 5, 6), 1)
    data = G.encode_y(y, mq, sq, tables)
    for m in mq.reshape(-1)[:50].tolist():  # independent scalar oracle of the rule
        base = (m + 2) // 4
        d = m - 4 * base
        assert -2 <= d <= 1
    base = (mq + 2) // 4
    d = mq - 4 * base
    sign = np.where(d < 0, -1, 1)
    sym = (sign * (y - base)).reshape(-1)
    idx = (np.abs(d).reshape(-1) * 64 + np.searchsorted(tables.thresholds, sq.reshape(-1), side="left"))
    assert data == rans.encode_with_indexes(sym, idx, tables.cdfs, tables.cdf_sizes, tables.offsets)
    # quarter means: 2/4 -> base 1, d -2 (mirror of +1/2); -2/4 -> base 0, d -2; 1/4 -> base 0, d 1
    base, sign, fam = G.y_means(np.array([2, -2, 1, -1, 0, 6, -6]), tables)
    assert base.tolist() == [1, 0, 0, 0, 0, 2, -1]
    assert sign.tolist() == [-1, -1, 1, -1, 1, -1, -1]
    assert fam.tolist() == [2, 2, 1, 1, 0, 2, 2]
    assert tables.cdfs.shape[0] == 3 * 64


def test_y_bits_close_to_estimate(tables):
    y, mq, sq = latent((64, 32, 32), 2)
    data = G.encode_y(y, mq, sq, tables)
    est = G.estimate_y_bits(y, mq, sq, tables)
    assert abs(8 * len(data) / est - 1) < 0.01
    # and the estimate is the model's entropy: compare with the float likelihood
    from scipy.special import ndtr
    from fxlic.entropy.cdf import gaussian_scale_table
    s = gaussian_scale_table()[np.searchsorted(tables.thresholds, sq, side="left")]
    d = np.abs(y - mq / 4.0)  # quarter-precision mean: what the tables model
    p = ndtr((0.5 - d) / s) - ndtr((-0.5 - d) / s)
    ideal_float = -np.log2(np.maximum(p, 1e-9)).sum()
    assert abs(est / ideal_float - 1) < 0.05


def test_y_extreme_values(tables):
    # any |symbol| <= 2^31 - 2^16 is codable (offsets are > -2^16)
    y = np.array([[[0, 1 << 30, -(1 << 30), (1 << 31) - (1 << 16), -(1 << 31)]]], np.int64)
    mq = np.zeros_like(y)
    sq = np.full_like(y, 30)
    data = G.encode_y(y, mq, sq, tables)
    assert np.array_equal(G.decode_y(data, mq, sq, tables), y)
    with pytest.raises(ValueError):
        G.encode_y(y - 1, mq, sq, tables)  # y outside int32
    with pytest.raises(ValueError):
        G.encode_y(y + (1 << 16) - 1, mq, sq, tables)  # y - offset outside int32
    with pytest.raises(ValueError):
        G.encode_y(y[..., :2], mq, sq, tables)  # shape mismatch


def test_y_corrupt_is_clean(tables):
    y, mq, sq = latent((8, 8, 8), 3)
    data = bytearray(G.encode_y(y, mq, sq, tables))
    rng = np.random.default_rng(0)
    for k in range(300):
        b = bytearray(data)
        b[rng.integers(0, len(b))] ^= 1 << int(rng.integers(0, 8))
        if k % 2:
            b = b[: rng.integers(0, len(b))]
        try:
            out = G.decode_y(bytes(b), mq, sq, tables)
            assert out.shape == y.shape
        except ValueError as e:
            assert "corrupt" in str(e)


def test_tables_arrays_roundtrip(tables):
    d = tables.to_arrays()
    assert all(v.dtype.kind == "i" for v in d.values())
    t2 = G.GaussianTables.from_arrays(d)
    for k in ("cdfs", "cdf_sizes", "offsets", "thresholds"):
        assert np.array_equal(getattr(t2, k), getattr(tables, k))
    assert (t2.scale_frac_bits, t2.mean_frac_bits) == (8, 2)
    with pytest.raises(ValueError):
        G.GaussianTables(tables.cdfs, tables.cdf_sizes, tables.offsets, tables.thresholds[:-1], 8, 2)
    with pytest.raises(TypeError):
        G.GaussianTables(tables.cdfs, tables.cdf_sizes, tables.offsets,
                         tables.thresholds.astype(float), 8, 6)


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2 ** 31), sfb=st.integers(0, 12), mfb=st.integers(0, 3),
       shape=st.tuples(st.integers(1, 4), st.integers(1, 5), st.integers(1, 5)))
def test_y_roundtrip_property(seed, sfb, mfb, shape):
    t = _tables_for(sfb, mfb)
    y, mq, sq = latent(shape, seed, sfb, mfb, spread=3.0)
    data = G.encode_y(y, mq, sq, t)
    assert np.array_equal(G.decode_y(data, mq, sq, t), y)


_CACHE = {}


def _tables_for(sfb, mfb):
    base = _CACHE.get(mfb)
    if base is None:
        base = _CACHE[mfb] = G.GaussianTables.build(scale_frac_bits=0, mean_frac_bits=mfb)
    from fxlic.entropy.cdf import gaussian_scale_table, scale_thresholds
    return G.GaussianTables(base.cdfs, base.cdf_sizes, base.offsets,
                            scale_thresholds(gaussian_scale_table(), sfb), sfb, mfb)


# --------------------------------------------------------------------------
# factorized
# --------------------------------------------------------------------------
def _fact_tables(C_=6, seed=0):
    rng = np.random.default_rng(seed)
    fl = (1, 3, 3, 3, 3, 1)
    mats = [rng.normal(0.5, 0.3, (C_, fl[i + 1], fl[i])) for i in range(5)]
    biases = [rng.uniform(-0.5, 0.5, (C_, fl[i + 1], 1)) for i in range(5)]
    factors = [rng.normal(0, 0.5, (C_, fl[i + 1], 1)) for i in range(4)]
    q = np.zeros((C_, 1, 3))
    p = FactorizedParams(mats, biases, factors, q)
    tgt = np.log(2 / 1e-9 - 1)
    for j, tg in enumerate((-tgt, 0.0, tgt)):
        lo, hi = np.full(C_, -1e4), np.full(C_, 1e4)
        for _ in range(80):
            mid = (lo + hi) / 2
            f = logits_cumulative(p, mid[:, None, None])[:, 0, 0]
            lo, hi = np.where(f <= tg, mid, lo), np.where(f > tg, mid, hi)
        q[:, 0, j] = (lo + hi) / 2
    return G.FactorizedTables.build(p), p


@pytest.mark.parametrize("coder", ["numba", "reference"])
def test_factorized_roundtrip(coder):
    t, p = _fact_tables()
    rng = np.random.default_rng(1)
    med = p.quantiles[:, 0, 1]
    z = np.round(med[:, None, None] + rng.normal(0, 3, (6, 7, 9))).astype(np.int32)
    z[0, 0, 0] = 10 ** 6  # escaped
    data = G.encode_factorized(z, t, coder=coder)
    out = G.decode_factorized(data, t, z.shape, coder=coder)
    assert np.array_equal(out, z)
    # table = channel, symbol = z itself
    idx = np.repeat(np.arange(6), 63)
    assert data == rans_numba.encode_with_indexes(z.reshape(-1), idx, t.cdfs, t.cdf_sizes, t.offsets)
    est = G.estimate_factorized_bits(z, t)
    assert 8 * len(data) >= est - 64
    with pytest.raises(ValueError):
        G.decode_factorized(data, t, (5, 7, 9))
