"""Scale factors (Eq 6-10, 23) and the activation mux (Eq 24-27), exact oracles.

floor(log2 m) of a float is computed from ``Fraction(m)`` with integer
bit lengths; interval membership is decided with Fractions.
"""
from __future__ import annotations

from fractions import Fraction as F

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fxlic.quant.activations import (
    mux_interval,
    quantize_activation_float,
    relu_channel_params,
    select_mux,
    signed_channel_params,
)
from fxlic.quant.codebook import MUX_INTERVALS, act_lq_signed, act_nlq
from fxlic.quant.scale import floor_log2, group_maxabs, sf_exponent

SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow])


def oracle_floor_log2(m: float) -> int:
    x = F(m)
    assert x > 0
    e = x.numerator.bit_length() - x.denominator.bit_length()
    while F(2) ** e > x:
        e -= 1
    while F(2) ** (e + 1) <= x:
        e += 1
    return e


def p2(e: int) -> F:
    return F(2) ** e


pos_floats = st.floats(min_value=5e-324, max_value=1.7976931348623157e308,
                       allow_nan=False, allow_infinity=False, allow_subnormal=True)
pow2_floats = st.builds(lambda e: float(np.ldexp(1.0, e)), st.integers(-1074, 1023))


def _with_neighbours(x):
    out = [x]
    for d in (np.inf, 0.0):
        with np.errstate(over="ignore"):
            y = float(np.nextafter(x, d))
        if 0 < y < np.inf:
            out.append(y)
    return out


# ---- floor_log2 -----------------------------------------------------------------

def test_floor_log2_powers_of_two_and_neighbours_exhaustive():
    for e in range(-1074, 1024):
        x = float(np.ldexp(1.0, e))
        vals = _with_neighbours(x)
        got = floor_log2(np.asarray(vals)).tolist()
        assert got == [oracle_floor_log2(v) for v in vals], e
        assert got[0] == e


@settings(max_examples=100, **SETTINGS)
@given(xs=st.lists(st.one_of(pos_floats, pow2_floats), min_size=1, max_size=32))
def test_floor_log2_matches_oracle(xs):
    vals = [v for x in xs for v in _with_neighbours(x)]
    got = floor_log2(np.asarray(vals))
    assert got.dtype == np.int64
    assert got.tolist() == [oracle_floor_log2(v) for v in vals]


@pytest.mark.parametrize("bad", [0.0, -0.0, -1.0, -5e-324, np.nan, np.inf])
def test_floor_log2_rejects_non_positive(bad):
    with pytest.raises(ValueError):
        floor_log2(np.array([1.0, bad]))


# ---- sf_exponent ---------------------------------------------------------------

@settings(max_examples=100, **SETTINGS)
@given(xs=st.lists(st.one_of(pos_floats, pow2_floats, st.just(0.0)), min_size=1, max_size=24),
       alpha_log2=st.integers(-3, 2))
def test_sf_exponent_puts_max_in_half_alpha_alpha(xs, alpha_log2):
    m = np.asarray(xs)
    e = sf_exponent(m, alpha_log2)
    assert e.dtype == np.int64 and e.shape == m.shape
    alpha = p2(alpha_log2)
    live = [x for x in xs if x > 0]
    for x, ei in zip(xs, e.tolist()):
        if x > 0:
            sw = F(x) * p2(ei)
            assert alpha / 2 <= sw < alpha
            # Eq 10: sf = 2^(-floor(log2 max) - 1) * alpha
            assert ei == -oracle_floor_log2(x) - 1 + alpha_log2
    dead = max((-oracle_floor_log2(x) - 1 + alpha_log2 for x in live), default=0)
    for x, ei in zip(xs, e.tolist()):
        if x == 0:
            assert ei == dead


def test_sf_exponent_dead_channels():
    assert sf_exponent(np.zeros(3), -1).tolist() == [0, 0, 0]
    e = sf_exponent(np.array([0.0, 1.0, 0.25, 0.0]), -1)
    assert e.tolist() == [0, -2, 0, 0]
    e = sf_exponent(np.array([0.0, 1.0, 0.25, 0.0]), -1, dead_exp=-7)
    assert e.tolist() == [-7, -2, 0, -7]
    # boundaries: max exactly 2^k lands on alpha/2
    assert sf_exponent(np.array([1.0, 2.0, 0.5]), 0).tolist() == [-1, -2, 0]
    assert sf_exponent(np.array([np.nextafter(1.0, 0.0)]), 0).tolist() == [0]


# ---- group_maxabs ----------------------------------------------------------------

@settings(max_examples=100, **SETTINGS)
@given(shape=st.tuples(st.integers(1, 5), st.integers(1, 4), st.integers(1, 3), st.integers(1, 3)),
       seed=st.integers(0, 2 ** 32 - 1), scale_log2=st.integers(-40, 40))
def test_group_maxabs(shape, seed, scale_log2):
    rng = np.random.default_rng(seed)
    w = np.ldexp(rng.standard_normal(shape), scale_log2)
    cw = group_maxabs(w, "cw")
    lw = group_maxabs(w, "lw")
    want = [max(abs(float(v)) for v in w[o].reshape(-1)) for o in range(shape[0])]
    assert cw.tolist() == want
    assert lw.tolist() == [max(want)] * shape[0]
    assert group_maxabs(w.reshape(shape[0], -1), "cw").tolist() == want


def test_group_maxabs_rejects_unknown():
    with pytest.raises(ValueError):
        group_maxabs(np.ones((2, 2)), "xw")


# ---- select_mux -------------------------------------------------------------------

def oracle_mux(m: float) -> int:
    f = oracle_floor_log2(m)
    r = F(m) / p2(f + 1)  # max|so| / alpha in [1/2, 1)
    assert F(1, 2) <= r < 1
    hits = [mux for mux, (lo, hi) in MUX_INTERVALS.items() if F(lo, 8) <= r < F(hi, 8)]
    assert len(hits) == 1  # the four intervals tile [1/2, 1) exactly once
    return hits[0]


def test_mux_intervals_tile_half_to_one():
    ivs = sorted(MUX_INTERVALS.values())
    assert ivs == [(4, 5), (5, 6), (6, 7), (7, 8)]
    for mux in range(4):
        assert mux_interval(mux) == (7 - mux, 8 - mux)


@pytest.mark.parametrize("e", [-1074, -1060, -1022, -100, -3, -1, 0, 1, 7, 100, 1020])
def test_select_mux_boundaries_exact(e):
    """r = 1/2, 5/8, 3/4, 7/8 scaled by 2^e go to the upper interval; their
    float predecessors go to the lower one."""
    for k, mux_at, mux_below in ((4, 3, 0), (5, 2, 3), (6, 1, 2), (7, 0, 1)):
        x = float(np.ldexp(k / 8.0, e))
        if x == 0 or not np.isfinite(x) or F(x) != F(k, 8) * p2(e):
            continue  # not representable at this exponent (deep subnormal)
        below = float(np.nextafter(x, 0.0))
        got = select_mux(np.array([x, below])).tolist()
        assert got == [mux_at, mux_below] == [oracle_mux(x), oracle_mux(below)]
    top = float(np.nextafter(np.ldexp(1.0, e + 1), 0.0))  # r just below 1
    if top > 0 and np.isfinite(top):
        assert select_mux(np.array([top])).tolist() == [oracle_mux(top)]
        if e > -1000:
            assert oracle_mux(top) == 0


@settings(max_examples=80, **SETTINGS)
@given(xs=st.lists(st.one_of(pos_floats, pow2_floats,
                             st.builds(lambda k, e: float(np.ldexp(k / 64.0, e)),
                                       st.integers(32, 63), st.integers(-1000, 1000))),
                   min_size=1, max_size=32))
def test_select_mux_matches_oracle(xs):
    vals = [v for x in xs for v in _with_neighbours(x)]
    got = select_mux(np.asarray(vals))
    assert got.dtype == np.int64
    assert got.tolist() == [oracle_mux(v) for v in vals]


def test_select_mux_dead_channel():
    assert select_mux(np.array([0.0, 1.0, 0.0])).tolist() == [0, 3, 0]


# ---- channel params -----------------------------------------------------------------

@settings(max_examples=60, **SETTINGS)
@given(xs=st.lists(st.one_of(st.floats(min_value=1e-30, max_value=1e30), pow2_floats.filter(
    lambda v: 1e-30 <= v <= 1e30)), min_size=1, max_size=8), bits=st.sampled_from([4, 6, 8, 10]))
def test_relu_channel_params(xs, bits):
    vals = [v for x in xs for v in _with_neighbours(x)]
    m = np.asarray(vals)
    exp, mux = relu_channel_params(m, bits)
    exp_lq, mux_lq = relu_channel_params(m, bits, use_mux=False)
    assert exp_lq.tolist() == exp.tolist()
    assert mux_lq.tolist() == [0] * len(vals)
    for v, e, mx in zip(vals, exp.tolist(), mux.tolist()):
        f = oracle_floor_log2(v)
        assert e == f - bits  # SPEC F2: real = level * 2^(f - N)
        assert mx == oracle_mux(v)
        cb = act_nlq(mx, bits)
        end = cb.segments[-1].hi  # range end on the fine grid
        t = F(v) / p2(e)  # calibration max in fine units
        assert t < end
        # the selected range is the smallest of the four that holds t
        lo8, _ = MUX_INTERVALS[mx]
        assert t >= F(lo8, 8) * 2 ** cb.frac_bits
        # and quantizing the calibration max clips by less than one step
        q = int(cb.quantize_float(np.array([float(np.ldexp(v, -e))]))[0])
        assert abs(F(q) - t) <= (1 << cb.segments[-1].k)
        # use_mux=False (uniform mux-0 codebook) also holds the max
        assert t < act_nlq(0, bits).segments[-1].hi


@settings(max_examples=80, **SETTINGS)
@given(xs=st.lists(st.floats(min_value=1e-30, max_value=1e30), min_size=1, max_size=16),
       bits=st.sampled_from([4, 6, 8, 10]))
def test_signed_channel_params(xs, bits):
    vals = [v for x in xs for v in _with_neighbours(x)]
    exp = signed_channel_params(np.asarray(vals), bits)
    cb = act_lq_signed(bits)
    for v, e in zip(vals, exp.tolist()):
        f = oracle_floor_log2(v)
        assert e == f + 2 - bits  # real = code * 2^(f + 2 - N)
        t = F(v) / p2(e)
        assert 2 ** (bits - 2) <= t < 2 ** (bits - 1)  # so in [alpha/2, alpha), alpha = 1/2
        assert -t >= cb.min_level


def test_channel_params_dead_channels():
    exp, mux = relu_channel_params(np.array([0.0, 1.0]), 8)
    assert mux.tolist() == [0, 3]
    assert exp.tolist()[1] == 0 - 8


def _oracle_level(cb, t: F) -> int:
    """Q1 on fine units, written independently (segment by |t|, RHU, clip)."""
    mag = abs(t)
    k = cb.segments[-1].k
    for s in cb.segments:
        if s.lo <= mag < s.hi:
            k = s.k
            break
    step = 1 << k
    lvl = step * ((2 * t + step) // (2 * step))  # floor(t/step + 1/2)
    return int(min(max(lvl, cb.min_level), cb.max_level))


@settings(max_examples=40, **SETTINGS)
@given(seed=st.integers(0, 2 ** 32 - 1), bits=st.sampled_from([4, 8]), relu=st.booleans(),
       scale_log2=st.integers(-20, 20))
def test_quantize_activation_float_matches_oracle(seed, bits, relu, scale_log2):
    """Per-channel exponent (+ mux) from calibration maxima, then Q1 on the
    activations (some beyond the calibration max), vs the Fraction oracle."""
    rng = np.random.default_rng(seed)
    c = 4
    chan_scale = np.ldexp(1.0, rng.integers(-6, 7, size=c) + scale_log2)
    calib = rng.standard_normal((c, 5, 5)) * chan_scale[:, None, None]
    o = rng.standard_normal((c, 3, 3)) * chan_scale[:, None, None] * 1.3
    if relu:
        calib, o = np.maximum(calib, 0), np.maximum(o, 0)
    m = np.abs(calib).reshape(c, -1).max(axis=1)
    if relu:
        exp, mux = relu_channel_params(m, bits)
        got = quantize_activation_float(o, exp, mux, bits)
    else:
        exp = signed_channel_params(m, bits)
        mux = None
        got = quantize_activation_float(o, exp, None, bits)
    assert got.dtype == np.int64 and got.shape == o.shape
    for ch in range(c):
        cb = act_lq_signed(bits) if mux is None else act_nlq(int(mux[ch]), bits)
        for v, q in zip(o[ch].reshape(-1).tolist(), got[ch].reshape(-1).tolist()):
            if m[ch] == 0:
                continue
            assert q == _oracle_level(cb, F(v) / p2(int(exp[ch])))
