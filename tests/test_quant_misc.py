"""WCFT (Eq 15-22) and mean-reduced quantization (Eq 28-30, SPEC M2), exact oracles."""
from __future__ import annotations

import math
from fractions import Fraction as F

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from fxlic.quant.codebook import weight_nlq
from fxlic.quant.meanreduce import MR_FRAC_BITS, fit_mean_regression, mu_from_pixels
from fxlic.quant.scale import sf_exponent
from fxlic.quant.wcft import wcft_bound, wcft_clip, wcft_epsilon
from fxlic.quant.weights import quantize_weights
from oracles import oracle_floor_log2, p2

SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow])




def oracle_eps(m, bits, alpha: F) -> F:
    """Eq 19: eps = 2^(floor(log2 max|w|) - (N-1)) / alpha."""
    return p2(oracle_floor_log2(m) - (bits - 1)) / alpha


def oracle_bound(m, beta: F, bits, alpha: F) -> F:
    """Eq 21 threshold: 2^floor(log2 max|w|) * beta - eps."""
    return p2(oracle_floor_log2(m)) * beta - oracle_eps(m, bits, alpha)


maxes = st.floats(min_value=1e-200, max_value=1e200, allow_nan=False, allow_infinity=False)
betas = st.sampled_from([F(1), F(5, 4), F(3, 2), F(2), F(3), F(9, 8)])
alphas = st.sampled_from([F(1, 2), F(1), F(1, 4)])
bitss = st.sampled_from([4, 6, 8, 10])


# ---- Eq 19 / 21 exact values ----------------------------------------------------

@settings(max_examples=100, **SETTINGS)
@given(ms=st.lists(maxes, min_size=1, max_size=16), beta=betas, alpha=alphas, bits=bitss)
def test_wcft_epsilon_and_bound_exact(ms, beta, alpha, bits):
    m = np.asarray(ms)
    eps = wcft_epsilon(m, bits, float(alpha))
    bnd = wcft_bound(m, float(beta), bits, float(alpha))
    for mi, e, b in zip(ms, eps.tolist(), bnd.tolist()):
        assert F(e) == oracle_eps(mi, bits, alpha)
        assert F(b) == oracle_bound(mi, beta, bits, alpha)


def test_wcft_named_values():
    # max|w| = 0.3: floor(log2) = -2; N = 8, alpha = 1/2: eps = 2^-9 / (1/2) = 2^-8
    assert wcft_epsilon(np.array([0.3]), 8, 0.5).tolist() == [2.0 ** -8]
    assert wcft_bound(np.array([0.3]), 1.0, 8, 0.5).tolist() == [0.25 - 2.0 ** -8]
    assert wcft_bound(np.array([0.3]), 1.5, 8, 0.5).tolist() == [0.375 - 2.0 ** -8]
    # exactly a power of two
    assert wcft_bound(np.array([1.0]), 1.0, 8, 0.5).tolist() == [1.0 - 2.0 ** -6]


# ---- clipping: Eq 16-18 ---------------------------------------------------------

@st.composite
def channel_tensors(draw):
    cout = draw(st.integers(1, 4))
    rest = draw(st.sampled_from([(3,), (2, 3), (2, 2, 2)]))
    base = draw(hnp.arrays(np.float64, (cout,) + rest,
                           elements=st.floats(-1.0, 1.0, allow_subnormal=False)))
    sc = np.ldexp(1.0, np.asarray(draw(st.lists(st.integers(-20, 20), min_size=cout, max_size=cout))))
    w = base * sc.reshape((-1,) + (1,) * len(rest))
    if cout > 1 and draw(st.booleans()):
        w[0] = 0.0
    return w


@settings(max_examples=100, **SETTINGS)
@given(w=channel_tensors(), bits=st.sampled_from([4, 6, 8]))
def test_wcft_clip_beta1_doubles_sf_and_fills_codebook(w, bits):
    alpha = F(1, 2)
    wc, mask = wcft_clip(w, 1.0, bits, 0.5)
    assert wc.shape == w.shape and mask.shape == w.shape and mask.dtype == bool
    cout = w.shape[0]
    m = np.abs(w).reshape(cout, -1).max(axis=1)
    mc = np.abs(wc).reshape(cout, -1).max(axis=1)
    sfe = sf_exponent(m, -1)
    sfe_c = sf_exponent(mc, -1)
    qw = quantize_weights(wc, "cw-nlq", bits)
    cb = weight_nlq(bits)
    for o in range(cout):
        if m[o] == 0:
            assert not np.any(wc[o]) and np.all(mask[o])
            continue
        bound = oracle_bound(float(m[o]), F(1), bits, alpha)
        # Eq 20 / 22 element-wise on |w|
        for v, vc, k in zip(w[o].reshape(-1).tolist(), wc[o].reshape(-1).tolist(),
                            mask[o].reshape(-1).tolist()):
            assert k == (abs(F(v)) <= bound)
            if k:
                assert vc == v
            else:
                assert F(vc) == (bound if v > 0 else -bound)
        # with beta = 1 the bound is below 2^floor(log2 max): max is always clipped
        assert F(float(m[o])) > bound
        assert F(float(mc[o])) == bound
        # Eq 16: floor(log2 max|w'|) drops by one, so sf' = 2 sf
        assert oracle_floor_log2(float(mc[o])) == oracle_floor_log2(float(m[o])) - 1
        assert sfe_c[o] == sfe[o] + 1
        # Eq 18: max|sw'| = alpha - 2^-(N-1)
        assert F(float(mc[o])) * p2(int(sfe_c[o])) == alpha - p2(-(bits - 1))
        # ... which is the top level of Eq 14: quantized without clipping
        lv = qw.levels()[o]
        assert np.abs(lv).max() == cb.max_level
        t = np.ldexp(wc[o], -int(qw.exp[o]))
        assert np.all(np.abs(t) <= cb.max_level)  # nothing saturates
        err = np.abs(lv - t)
        assert np.all(err <= cb.local_step(t) / 2)


@settings(max_examples=100, **SETTINGS)
@given(w=channel_tensors(), beta=st.sampled_from([F(5, 4), F(3, 2), F(2), F(4)]), bits=st.sampled_from([4, 8]))
def test_wcft_clip_beta_mask(w, beta, bits):
    wc, mask = wcft_clip(w, float(beta), bits, 0.5)
    cout = w.shape[0]
    m = np.abs(w).reshape(cout, -1).max(axis=1)
    for o in range(cout):
        if m[o] == 0:
            assert np.all(mask[o]) and not np.any(wc[o])
            continue
        bound = oracle_bound(float(m[o]), beta, bits, F(1, 2))
        for v, vc, k in zip(w[o].reshape(-1).tolist(), wc[o].reshape(-1).tolist(),
                            mask[o].reshape(-1).tolist()):
            assert k == (abs(F(v)) <= bound)
            assert F(vc) == (F(v) if k else (bound if v > 0 else -bound))
        # a clipped channel keeps its sign pattern and never grows
        assert np.all(np.abs(wc[o]) <= np.abs(w[o]))
        assert np.all(np.sign(wc[o]) == np.sign(w[o]))


def test_wcft_clip_dead_channel_is_warning_free():
    import warnings

    w = np.array([[0.0, 0.0], [0.5, -0.25]])
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        wc, mask = wcft_clip(w, 1.0, 8, 0.5)
    assert wc[0].tolist() == [0.0, 0.0] and mask[0].tolist() == [True, True]


def test_wcft_mask_boundary_value_keeps_gradient():
    # element exactly at the bound: Eq 22 uses "<=", so it keeps its gradient
    b = 0.25 - 2.0 ** -8
    w = np.array([[0.3, b, -b, -0.3, 0.01]])
    wc, mask = wcft_clip(w, 1.0, 8, 0.5)
    assert mask.tolist() == [[False, True, True, False, True]]
    assert wc.tolist() == [[b, b, -b, -b, 0.01]]


# ---- mean regression (Eq 30) -----------------------------------------------------

@settings(max_examples=100, **SETTINGS)
@given(a=st.integers(-64, 64), b=st.integers(-64, 64), n=st.integers(2, 40), seed=st.integers(0, 2 ** 31))
def test_fit_mean_regression_noiseless(a, b, n, seed):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, size=n) / 256.0
    if np.ptp(x) == 0:
        x[0] = 1.0 - x[0] if x[0] != 0.5 else 0.25
    a_, b_ = a / 8.0, b / 8.0
    y = a_ * x + b_  # exact in float (dyadic)
    fa, fb, r2 = fit_mean_regression(x, y)
    # least squares on noiseless data: exact up to float round-off of the solver
    assert fa == pytest.approx(a_, abs=1e-9)
    assert fb == pytest.approx(b_, abs=1e-9)
    if a != 0:
        assert r2 == pytest.approx(1.0, abs=1e-9)


def test_fit_mean_regression_degenerate():
    a, b, r2 = fit_mean_regression([0.5, 0.5, 0.5], [1.0, 2.0, 3.0])
    assert (a, b, r2) == (0.0, 2.0, 0.0)
    a, b, r2 = fit_mean_regression([0.5], [1.0])
    assert (a, b, r2) == (0.0, 1.0, 0.0)


def oracle_mu(S, n, a_q, b_q, bits):
    d = 255 * n
    num = a_q * S + b_q * d
    den = d * 2 ** 16
    mu = (2 * num + den) // (2 * den)  # floor(num/den + 1/2), exact integers
    lo, hi = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    return min(max(mu, lo), hi)


@settings(max_examples=150, **SETTINGS)
@given(n=st.integers(1, 1 << 22), frac=st.fractions(0, 1, max_denominator=1 << 20),
       a_q=st.integers(-(1 << 31), 1 << 31), b_q=st.integers(-(1 << 31), 1 << 31),
       bits=st.sampled_from([8, 16, 32]))
def test_mu_from_pixels_matches_oracle(n, frac, a_q, b_q, bits):
    S = math.floor(frac * 255 * n)
    got = mu_from_pixels(S, n, a_q, b_q, bits)
    assert type(got) is int
    assert got == oracle_mu(S, n, a_q, b_q, bits)
    # the same through Fraction
    x = F(a_q) / 2 ** MR_FRAC_BITS * F(S, 255 * n) + F(b_q) / 2 ** MR_FRAC_BITS
    assert got == min(max(math.floor(x + F(1, 2)), -(2 ** (bits - 1))), 2 ** (bits - 1) - 1)


def test_mu_from_pixels_ties_and_saturation():
    # a = 0, b = 2.5 (Q16) -> 3 ; b = -2.5 -> -2 (ties toward +inf)
    assert mu_from_pixels(0, 1, 0, 5 << 15) == 3
    assert mu_from_pixels(0, 1, 0, -(5 << 15)) == -2
    # xbar = 1 (all pixels 255), a = 127.5 -> 128 -> saturates to 127 in 8 bits
    assert mu_from_pixels(255 * 4, 4, 255 << 15, 0) == 127
    assert mu_from_pixels(255 * 4, 4, 255 << 15, 0, bits=16) == 128
    assert mu_from_pixels(255 * 4, 4, -(300 << 16), 0) == -128
    assert mu_from_pixels(0, 4, 0, -(129 << 16)) == -128
