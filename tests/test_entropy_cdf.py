"""CDF tables: CompressAI pmf_to_quantized_cdf goldens and properties, Gaussian
tables, scale index rule, factorized tables (docs/ENTROPY.md 2, 8)."""
from __future__ import annotations

import math
import os
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fxlic.entropy import cdf as C
from fxlic.entropy.common import check_tables

GOLDEN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "rans_golden")


@pytest.fixture(scope="module")
def gauss():
    s = C.gaussian_scale_table()
    return s, C.build_gaussian_tables(s)


# --------------------------------------------------------------------------
# pmf_to_quantized_cdf
# --------------------------------------------------------------------------
def test_pmf_to_cdf_golden_compressai():
    with np.load(os.path.join(GOLDEN, "pmf_to_cdf.npz"), allow_pickle=False) as z:
        pm, lens, tails, cdfs, sizes = (z[k] for k in ("pmfs", "pmf_lengths", "tails", "cdfs", "cdf_sizes"))
    for i in range(pm.shape[0]):
        out = C.pmf_to_quantized_cdf(pm[i, : lens[i]], tails[i])
        assert out.dtype == np.int32
        assert np.array_equal(out, cdfs[i, : sizes[i]]), i


def test_pmf_to_cdf_known_values():
    # CompressAI 1.2.8 _CXX.pmf_to_quantized_cdf([0.1, 0.2, 0.3, 0.39, 0.01], 16)
    assert C.pmf_to_quantized_cdf([0.1, 0.2, 0.3, 0.39], 0.01).tolist() == \
        [0, 6554, 19661, 39322, 64881, 65536]
    # without tail: the raw C++ function
    assert C.pmf_to_quantized_cdf([0.5, 0.5]).tolist() == [0, 32768, 65536]
    # zero-probability symbols steal from the smallest frequency > 1
    out = C.pmf_to_quantized_cdf([0.0, 1.0, 0.0], 0.0)
    assert out.tolist() == [0, 1, 65534, 65535, 65536]


@settings(max_examples=300, deadline=None)
@given(pmf=st.lists(st.floats(0, 1e3, allow_nan=False, allow_infinity=False), min_size=1, max_size=80),
       tail=st.floats(0, 1))
def test_pmf_to_cdf_properties(pmf, tail):
    p32 = np.asarray(pmf + [tail], np.float32).astype(np.float64)
    if np.floor(p32 * 65536 + 0.5).sum() == 0:
        with pytest.raises(ValueError):
            C.pmf_to_quantized_cdf(pmf, tail)
        return
    cdf = C.pmf_to_quantized_cdf(pmf, tail)
    assert cdf.size == len(pmf) + 2
    assert cdf[0] == 0 and cdf[-1] == 1 << 16
    assert np.all(np.diff(cdf) >= 1)  # every symbol, zero pmf or not, gets freq >= 1
    check_tables(cdf[None, :], [cdf.size], [0])


@settings(max_examples=100, deadline=None)
@given(n=st.integers(2, 400), seed=st.integers(0, 2 ** 32 - 1))
def test_pmf_to_cdf_close_to_pmf(n, seed):
    """Quantization error per symbol is small for a normalised pmf."""
    rng = np.random.default_rng(seed)
    p = rng.random(n) ** 3
    p /= p.sum()
    cdf = C.pmf_to_quantized_cdf(p, None)
    f = np.diff(cdf) / 65536
    assert np.max(np.abs(f - p)) <= n / 65536 + 1e-3


def test_pmf_to_cdf_errors():
    for bad in ([-0.1, 1.0], [np.nan, 1.0], [np.inf], [0.0, 0.0]):
        with pytest.raises(ValueError):
            C.pmf_to_quantized_cdf(bad)
    with pytest.raises(ValueError):
        C.pmf_to_quantized_cdf(np.full(70000, 1.0))  # more symbols than 2^16


# --------------------------------------------------------------------------
# Gaussian tables
# --------------------------------------------------------------------------
def test_scale_table():
    s = C.gaussian_scale_table()
    assert s.shape == (64,)
    assert s[0] == pytest.approx(0.11, rel=1e-15) and s[-1] == pytest.approx(256, rel=1e-15)
    ref = np.exp(np.linspace(math.log(0.11), math.log(256), 64))
    assert np.allclose(s, ref, rtol=1e-15, atol=0)
    assert np.all(np.diff(s) > 0)


def test_gaussian_tables_shape(gauss):
    s, (cdfs, sizes, offs) = gauss
    check_tables(cdfs, sizes, offs)
    centers = -offs.astype(np.int64)
    mult = -(-6.109410204869398)  # -Phi^-1(0.5e-9)
    assert np.array_equal(centers, np.ceil(np.float32(s) * np.float32(mult)).astype(np.int64))
    assert np.array_equal(sizes, 2 * centers + 3)
    # CompressAI's default tables: (64, 3133), first row [0, ..] of length 5
    assert cdfs.shape == (64, 3133)
    assert sizes[0] == 5 and sizes[-1] == 3133
    assert np.all(cdfs[np.arange(cdfs.shape[1])[None, :] >= sizes[:, None]] == 0)  # zero padding


def test_gaussian_tables_match_erfc(gauss):
    """Frequencies are the quantized Gaussian bin masses (loose check)."""
    from scipy.special import ndtr
    s, (cdfs, sizes, offs) = gauss
    for i in (0, 20, 40, 63):
        n = sizes[i] - 2
        f = np.diff(cdfs[i, : sizes[i]])[:n] / 65536
        k = np.arange(n) + offs[i]
        p = ndtr((k + 0.5) / s[i]) - ndtr((k - 0.5) / s[i])
        assert np.max(np.abs(f - p)) < 5e-4
        # the mode is at 0 (up to ties of the quantized plateau for large scales)
        assert abs(int(np.argmax(f)) + int(offs[i])) <= max(0.0, s[i] / 4)


def test_gaussian_tables_rows_equal_pmf_to_cdf(gauss):
    """Rows are pmf_to_quantized_cdf(pmf, 2*lower[0]) of the update() pmf."""
    from scipy.special import erfc
    s, (cdfs, sizes, offs) = gauss
    for i in (3, 33):
        c = -int(offs[i])
        d = np.abs(np.arange(2 * c + 1) - c).astype(np.float64)
        phi = lambda x: 0.5 * erfc(-(2 ** -0.5) * x)  # noqa: E731
        pmf = phi((0.5 - d) / s[i]) - phi((-0.5 - d) / s[i])
        row = C.pmf_to_quantized_cdf(pmf, 2 * phi((-0.5 - c) / s[i]))
        assert np.array_equal(row, cdfs[i, : sizes[i]])
        assert np.all(cdfs[i, sizes[i]:] == 0)


# --------------------------------------------------------------------------
# scale index
# --------------------------------------------------------------------------
def _build_indexes_exact(scale_q, frac_bits, table):
    """CompressAI build_indexes on the exact real value scale_q * 2^-frac."""
    v = Fraction(int(scale_q), 1 << frac_bits)
    idx = len(table) - 1
    for s_ in table[:-1]:
        if v <= Fraction(float(s_)):
            idx -= 1
    return idx


@pytest.mark.parametrize("frac_bits", [0, 4, 8, 12, 16])
def test_scale_index_matches_build_indexes(frac_bits):
    s = C.gaussian_scale_table()
    thr = C.scale_thresholds(s, frac_bits)
    assert thr.dtype == np.int64 and thr.shape == (63,)
    rng = np.random.default_rng(frac_bits)
    q = np.concatenate([thr, thr + 1, thr - 1, [0, -5, 1, 1 << 40],
                        rng.integers(0, 300 << frac_bits, 500)])
    got = C.scale_index(q, thr)
    want = [_build_indexes_exact(v, frac_bits, s) for v in q.tolist()]
    assert got.tolist() == want


def test_scale_index_integer_only():
    thr = C.scale_thresholds(C.gaussian_scale_table(), 8)
    with pytest.raises(TypeError):
        C.scale_index(np.array([1.5]), thr)
    assert C.scale_index(np.array([], np.int64), thr).shape == (0,)


# --------------------------------------------------------------------------
# factorized (EntropyBottleneck) tables
# --------------------------------------------------------------------------
def _init_params(C_, seed, init_scale=10.0, filters=(3, 3, 3, 3)):
    """CompressAI EntropyBottleneck.__init__ values, perturbed."""
    rng = np.random.default_rng(seed)
    fl = (1,) + filters + (1,)
    scale = init_scale ** (1 / (len(filters) + 1))
    mats, biases, factors = [], [], []
    for i in range(len(filters) + 1):
        init = np.log(np.expm1(1 / scale / fl[i + 1]))
        mats.append(np.full((C_, fl[i + 1], fl[i]), init) + rng.normal(0, 0.3, (C_, fl[i + 1], fl[i])))
        biases.append(rng.uniform(-0.5, 0.5, (C_, fl[i + 1], 1)))
        if i < len(filters):
            factors.append(rng.normal(0, 0.5, (C_, fl[i + 1], 1)))
    q = np.zeros((C_, 1, 3))
    p = C.FactorizedParams(mats, biases, factors, q)
    # quantiles by bisection on the logits (CompressAI _update_quantiles)
    target = np.log(2 / 1e-9 - 1)
    for j, tg in enumerate((-target, 0.0, target)):
        lo, hi = np.full(C_, -1e4), np.full(C_, 1e4)
        for _ in range(80):
            mid = (lo + hi) / 2
            f = C.logits_cumulative(p, mid[:, None, None])[:, 0, 0]
            lo = np.where(f <= tg, mid, lo)
            hi = np.where(f > tg, mid, hi)
        q[:, 0, j] = (lo + hi) / 2
    return p


def test_logits_cumulative_monotone():
    p = _init_params(4, 0)
    x = np.linspace(-50, 50, 201)[None, None, :].repeat(4, 0)
    lg = C.logits_cumulative(p, x)
    assert lg.shape == (4, 1, 201)
    assert np.all(np.diff(lg, axis=2) > 0)


@pytest.mark.parametrize("seed", [0, 1])
def test_factorized_tables(seed):
    p = _init_params(8, seed)
    cdfs, sizes, offs = C.build_factorized_tables(p)
    check_tables(cdfs, sizes, offs)
    q = p.quantiles[:, 0, :]
    for c in range(8):
        # the coded integer range covers [q0, q2] (up to the rounding of the centre)
        lo, hi = offs[c], offs[c] + sizes[c] - 3
        assert lo <= q[c, 0] + 0.5 and hi >= q[c, 2] - 0.5
        # frequencies track the model's bin probabilities
        k = (lo + np.arange(sizes[c] - 2)).astype(np.float64)
        lik, _, _ = C.factorized_likelihood(p, np.full((8, 1, k.size), k))
        f = np.diff(cdfs[c, : sizes[c]])[:-1] / 65536
        assert np.max(np.abs(f - lik[c, 0])) < 2e-3
        assert abs(lik[c, 0].sum() - 1) < 1e-6


def test_factorized_sign_trick_equals_plain():
    p = _init_params(3, 5)
    v = np.linspace(-20, 20, 81)[None, None, :].repeat(3, 0)
    lik, lower, upper = C.factorized_likelihood(p, v)
    plain = 1 / (1 + np.exp(-upper)) - 1 / (1 + np.exp(-lower))
    assert np.allclose(lik, plain, atol=1e-12)


def test_factorized_params_from_state_dict_names():
    p = _init_params(2, 3)
    forms = [("_matrices.{i}", "_biases.{i}", "_factors.{i}"),
             ("matrices.{i}", "biases.{i}", "factors.{i}"),
             ("_matrix{i}", "_bias{i}", "_factor{i}")]
    for fm, fb, ff in forms:
        sd = {"entropy_bottleneck.quantiles": p.quantiles}
        for i, m in enumerate(p.matrices):
            sd["entropy_bottleneck." + fm.format(i=i)] = m.astype(np.float32)
            sd["entropy_bottleneck." + fb.format(i=i)] = p.biases[i].astype(np.float32)
        for i, f in enumerate(p.factors):
            sd["entropy_bottleneck." + ff.format(i=i)] = f.astype(np.float32)
        q = C.factorized_params_from_state_dict(sd)
        assert len(q.matrices) == 5 and len(q.biases) == 5 and len(q.factors) == 4
        C.build_factorized_tables(q)
    with pytest.raises(KeyError):
        C.factorized_params_from_state_dict({})
