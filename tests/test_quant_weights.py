"""Weight quantization schemes (Eq 6-14, Table I) against exact oracles.

The oracle works in real units with Fractions: sf exponent from Eq 10
(alpha = 1/2), sw = w * sf, Q(sw) from Eq 8 / Eq 14 (segment by |sw|, round
half up on the segment QP, saturate at alpha - QP_top), Q(w) = Q(sw) / sf.
"""
from __future__ import annotations

import math
from fractions import Fraction as F

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from fxlic.quant.codebook import weight_lq, weight_nlq
from fxlic.quant.lloyd import lloyd_table, quantize_to_table
from fxlic.quant.weights import LLOYD_EXTRA_BITS, SCHEMES, quantize_weights
from oracles import oracle_floor_log2, p2

SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow])
HALF = F(1, 2)
UNIFORM = ("cw-nlq", "cw-lq", "lw-nlq", "lw-lq")




def sw_table(scheme: str, n: int):
    """((K_i, K_i+1, QP_i), ...), top level -- Eq 8 / Eq 14 with alpha = 1/2."""
    a = HALF
    if scheme.endswith("nlq"):
        segs = ((F(0), a / 8, p2(-(n + 2))), (a / 8, a / 4, p2(-n)), (a / 4, a, p2(-(n - 1))))
    else:
        segs = ((F(0), a, p2(-n)),)
    return segs, a - segs[-1][2]


def oracle_q_sw(scheme, n, sw: F):
    """(Q(sw), local QP) in real units of sw."""
    segs, top = sw_table(scheme, n)
    q = segs[-1][2]
    for lo, hi, qq in segs:
        if lo <= abs(sw) < hi:
            q = qq
            break
    lvl = q * math.floor(sw / q + HALF)
    return min(max(lvl, -top), top), q


def group_sfe(w: np.ndarray, grouping: str):
    """Eq 10 per output channel (None for a dead channel)."""
    per = [max(abs(F(float(v))) for v in w[o].reshape(-1)) for o in range(w.shape[0])]
    if grouping == "lw":
        per = [max(per)] * len(per)
    return [(-oracle_floor_log2(float(m)) - 1 - 1) if m > 0 else None for m in per], per


# ---- strategies ---------------------------------------------------------------

@st.composite
def weight_tensors(draw, max_cout=4):
    cout = draw(st.integers(1, max_cout))
    rest = draw(st.sampled_from([(1, 1, 1), (2, 1, 1), (2, 3, 3), (2, 2, 1), (4, 1, 3)]))
    base = draw(hnp.arrays(np.float64, (cout,) + rest,
                           elements=st.floats(-1.0, 1.0, allow_subnormal=False, width=64)))
    scales = draw(st.lists(st.integers(-30, 30), min_size=cout, max_size=cout))
    w = base * np.ldexp(1.0, np.asarray(scales))[:, None, None, None]
    if cout > 1 and draw(st.booleans()):
        w[draw(st.integers(0, cout - 1))] = 0.0  # a dead channel
    return w


# ---- uniform-grid schemes ------------------------------------------------------

def _check_scheme(w, scheme, bits):
    qw = quantize_weights(w, scheme, bits)
    cb = weight_nlq(bits) if scheme.endswith("nlq") else weight_lq(bits)
    g = cb.frac_bits
    assert qw.scheme == scheme
    assert qw.codes.dtype == np.int8 and qw.codes.shape == w.shape
    assert qw.lut.dtype == np.int16 and qw.lut.shape == (256,)
    assert qw.exp.shape == (w.shape[0],)
    lo, hi = cb.code_range
    codes = qw.codes.astype(np.int64)
    assert codes.min() >= lo and codes.max() <= hi
    lut = qw.lut.astype(np.int64)
    assert lut[lo + 128: hi + 129].tolist() == cb.lut().tolist()
    assert not np.any(lut[:lo + 128]) and not np.any(lut[hi + 129:])
    levels = qw.levels()
    assert levels.tolist() == lut[codes + 128].tolist()

    sfes, maxes = group_sfe(w, scheme[:2])
    for o in range(w.shape[0]):
        e = int(qw.exp[o])
        if sfes[o] is None:  # dead channel: every weight is 0 -> level 0
            assert not np.any(levels[o])
            continue
        assert e == -g - sfes[o]
        # max|w| * 2^-exp / 2^G in [alpha/2, alpha) = [1/4, 1/2)
        r = F(maxes[o]) / p2(e) / p2(g)
        assert F(1, 4) <= r < F(1, 2)
        steps = cb.local_step(np.ldexp(w[o], -e)).reshape(-1).tolist()
        for v, lvl, stp in zip(w[o].reshape(-1).tolist(), levels[o].reshape(-1).tolist(), steps):
            sw = F(v) * p2(sfes[o])
            qsw, q = oracle_q_sw(scheme, bits, sw)
            real = F(lvl) * p2(e)
            assert real == qsw / p2(sfes[o]), (scheme, v)
            # error: half a local step inside the range, clip distance outside
            _, top = sw_table(scheme, bits)
            err_sw = abs(qsw - sw)
            if abs(sw) <= top + q / 2:
                assert err_sw <= q / 2
            else:
                assert qsw == (top if sw > 0 else -top)
                assert err_sw == abs(sw) - top
                assert err_sw < q  # sw < alpha: saturation costs less than one step
            # the codebook's own local_step agrees (times 2^exp)
            assert stp * p2(e) == q / p2(sfes[o])
    # dequantize is level * 2^exp (exact: exponents stay in the normal range here)
    deq = qw.dequantize()
    for o in range(w.shape[0]):
        for d, lvl in zip(deq[o].reshape(-1).tolist(), levels[o].reshape(-1).tolist()):
            assert F(d) == F(lvl) * p2(int(qw.exp[o]))
    return qw


@settings(max_examples=100, **SETTINGS)
@given(w=weight_tensors(), scheme=st.sampled_from(UNIFORM), bits=st.sampled_from([4, 6, 8]))
def test_uniform_schemes_match_oracle(w, scheme, bits):
    _check_scheme(w, scheme, bits)


@pytest.mark.parametrize("scheme", SCHEMES)
def test_more_than_8_bits_rejected(scheme):
    # SPEC W1 stores int8 codes and a 256-entry LUT: N > 8 cannot be stored
    with pytest.raises(ValueError):
        quantize_weights(np.linspace(-1, 1, 2048).reshape(2, -1), scheme, bits=10)


@pytest.mark.parametrize("scheme", UNIFORM)
def test_uniform_schemes_named_values(scheme):
    # channel 0: max 1.0 -> sf = 2^-2 (sw max 1/4); channel 1: max 0.25 -> sf = 1
    w = np.array([[1.0, -0.75, 0.5, 1 / 16, -1 / 1024],
                  [0.25, 0.125, -0.0625, 0.003, 0.0]])
    qw = _check_scheme(w, scheme, 8)
    if scheme.startswith("cw"):
        assert qw.exp[1] == qw.exp[0] - 2
    else:
        assert qw.exp[1] == qw.exp[0]


def test_tie_rounding_is_half_up_in_weights():
    # cw-nlq, N = 8, sf = 2^-1 (max 0.75 -> floor log2 = -1 -> sf = 2^(1-1) * 1/2)
    # sw = 66/1024 is a tie on the 4/1024 grid -> 68/1024; -66/1024 -> -64/1024
    sf = F(1, 2)
    vals = [F(3, 4), F(66, 1024) / sf, -F(66, 1024) / sf, F(132, 1024) / sf, -F(132, 1024) / sf]
    w = np.array([[float(v) for v in vals]])
    qw = quantize_weights(w, "cw-nlq", 8)
    assert qw.exp[0] == -10 + 1
    assert qw.levels()[0].tolist() == [384, 68, -64, 136, -128]


@pytest.mark.parametrize("grouping", ["nlq", "lq"])
@pytest.mark.parametrize("seed", range(4))
def test_cw_beats_lw_on_spread_channel_ranges(grouping, seed):
    rng = np.random.default_rng(seed)
    scales = np.ldexp(1.0, rng.integers(-12, 1, size=16))
    scales[0] = 1.0  # one wide channel fixes the LW scale
    w = rng.laplace(0, 1, size=(16, 8, 3, 3)) * scales[:, None, None, None] * 0.1
    err = {}
    for grp in ("cw", "lw"):
        qw = quantize_weights(w, f"{grp}-{grouping}")
        err[grp] = np.sum((qw.dequantize() - w) ** 2)
    assert err["cw"] <= err["lw"]
    # and per channel, CW never loses to LW by more than its rounding granularity
    qcw, qlw = quantize_weights(w, f"cw-{grouping}"), quantize_weights(w, f"lw-{grouping}")
    per_cw = np.sum((qcw.dequantize() - w) ** 2, axis=(1, 2, 3))
    per_lw = np.sum((qlw.dequantize() - w) ** 2, axis=(1, 2, 3))
    small = scales < 2.0 ** -4
    assert np.all(per_cw[small] <= per_lw[small])


@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_weights_rejected(scheme, bad):
    w = np.ones((2, 3))
    w[1, 2] = bad
    with pytest.raises(ValueError):
        quantize_weights(w, scheme)


def test_unknown_scheme_rejected():
    with pytest.raises(ValueError):
        quantize_weights(np.ones((2, 2)), "cw-foo")


def test_all_zero_tensor():
    for scheme in UNIFORM:
        qw = quantize_weights(np.zeros((3, 2, 1, 1)), scheme)
        assert not np.any(qw.codes) and not np.any(qw.dequantize())


# ---- Lloyd (Eq 11) --------------------------------------------------------------

def oracle_nearest(table, t: F) -> int:
    """Index of the nearest table entry, ties toward the larger entry."""
    best = None
    for i, v in enumerate(table):
        d = abs(F(v) - t)
        if best is None or d < best[0] or (d == best[0] and v > table[best[1]]):
            best = (d, i)
    return best[1]


@settings(max_examples=80, **SETTINGS)
@given(table=st.lists(st.integers(-5000, 5000), min_size=2, max_size=40, unique=True),
       ts=st.lists(st.one_of(st.floats(-6000, 6000), st.builds(lambda j: j / 2.0, st.integers(-12000, 12000))),
                   min_size=1, max_size=40))
def test_quantize_to_table_nearest_ties_up(table, ts):
    table = sorted(table)
    idx = quantize_to_table(np.asarray(ts), np.asarray(table))
    assert idx.tolist() == [oracle_nearest(table, F(t)) for t in ts]


def test_quantize_to_table_single_entry():
    assert quantize_to_table(np.array([4.0, 5.0, 6.0]), np.array([5])).tolist() == [0, 0, 0]


def _laplace(seed, shape=(16, 16, 3, 3), b=0.05):
    return np.random.default_rng(seed).laplace(0, b, size=shape)


@pytest.mark.parametrize("seed", range(3))
def test_lloyd_structure(seed):
    w = _laplace(seed)
    qw = quantize_weights(w, "lloyd")
    idx = qw.codes.astype(np.int64) + 128
    n_used = int(np.count_nonzero(np.diff(qw.lut.astype(np.int64)) > 0)) + 1
    assert n_used <= 256
    assert idx.min() >= 0 and idx.max() < n_used
    # table entries are increasing (unique) over the used part
    table = qw.lut[:n_used].astype(np.int64)
    assert np.all(np.diff(table) > 0)
    # LW exponent on the 2^-(N+4) grid: max|w| * 2^-exp / 2^G in [1/4, 1/2)
    g = 8 + LLOYD_EXTRA_BITS
    assert np.all(qw.exp == qw.exp[0])
    r = F(float(np.abs(w).max())) / p2(int(qw.exp[0])) / p2(g)
    assert F(1, 4) <= r < F(1, 2)
    # every weight maps to its nearest table entry (ties up)
    t = np.ldexp(w, -int(qw.exp[0]))
    flat_t, flat_i = t.reshape(-1), idx.reshape(-1)
    for k in range(0, flat_t.size, 37):
        assert flat_i[k] == oracle_nearest(table.tolist(), F(float(flat_t[k])))
    # table = R4-rounded centroids on the fine grid
    assert table.tolist() == lloyd_table(t, 256).tolist()


def test_lloyd_not_worse_than_lw_lq_on_laplacian():
    for seed in range(3):
        w = _laplace(seed)
        mse_lloyd = np.mean((quantize_weights(w, "lloyd").dequantize() - w) ** 2)
        mse_lq = np.mean((quantize_weights(w, "lw-lq").dequantize() - w) ** 2)
        assert mse_lloyd <= mse_lq, (seed, mse_lloyd, mse_lq)


def test_lloyd_constant_tensor():
    w = np.full((2, 3), 0.3)
    qw = quantize_weights(w, "lloyd")
    assert np.all(np.abs(qw.dequantize() - w) <= 2.0 ** (int(qw.exp[0]) - 1))
