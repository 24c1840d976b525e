"""Property tests of fxlic.spec.rounding (SPEC R1-R4) against exact oracles.

Every integer result is compared for equality with an oracle written with
Python integers / fractions.Fraction, never with a tolerance.
"""
from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from fxlic.spec import rounding as R
from fxlic.spec import (
    INT32_MAX,
    INT32_MIN,
    requant_shift,
    round_half_up_float,
    round_half_up_fraction,
    rshift_rhu,
    sat_signed,
    saturate,
    saturate_array,
)

SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow])
HALF = Fraction(1, 2)
A_MAX = 1 << 62  # operands stay inside int64 (numba / numpy containers)


# ---- independent oracles ---------------------------------------------------

def oracle_rhu_fraction(a: int, s: int) -> int:
    """floor(a / 2^s + 1/2) with Fraction and math.floor."""
    return math.floor(Fraction(a, 1 << s) + HALF)


def oracle_rhu_intdiv(a: int, s: int) -> int:
    """floor((2a + 2^s) / 2^(s+1)) with Python's exact floor division."""
    return (2 * a + (1 << s)) // (1 << (s + 1))


def oracle_round_float(x: float) -> int:
    return math.floor(Fraction(x) + HALF)


# ---- edge values in the style of gemmlowp's RoundingDivideByPOT tests -------

def _edge_values():
    vals = {0, 1, -1, INT32_MIN, INT32_MAX, INT32_MIN + 1, INT32_MAX - 1,
            A_MAX, -A_MAX, A_MAX - 1, -A_MAX + 1}
    for i in range(0, 63):
        for d in (-2, -1, 0, 1, 2):
            for sgn in (1, -1):
                v = sgn * (1 << i) + d
                if -A_MAX <= v <= A_MAX:
                    vals.add(v)
    return sorted(vals)


EDGE_VALUES = _edge_values()
EDGE_SHIFTS = list(range(0, 41))

int32s = st.integers(INT32_MIN, INT32_MAX)
int62s = st.integers(-A_MAX, A_MAX)
operands = st.one_of(int32s, int62s, st.sampled_from(EDGE_VALUES))
shifts = st.integers(0, 40)


# ---- R1 rshift_rhu -----------------------------------------------------------

def test_oracles_agree_with_each_other_and_the_module_oracle():
    for a in EDGE_VALUES[::7]:
        for s in (0, 1, 5, 31, 32, 40):
            o = oracle_rhu_fraction(a, s)
            assert o == oracle_rhu_intdiv(a, s)
            assert o == round_half_up_fraction(Fraction(a, 1 << s))


@pytest.mark.parametrize("s", EDGE_SHIFTS)
def test_rshift_rhu_edge_table(s):
    """All edge operands x all shifts 0..40 (exhaustive grid, exact)."""
    for a in EDGE_VALUES:
        assert rshift_rhu(a, s) == oracle_rhu_fraction(a, s), (a, s)


@settings(max_examples=375, **SETTINGS)
@given(a=operands, s=shifts)
@example(a=-3, s=1)
@example(a=-1, s=1)
@example(a=1, s=1)
@example(a=3, s=1)
@example(a=INT32_MIN, s=31)
@example(a=INT32_MAX, s=31)
@example(a=INT32_MIN, s=32)
@example(a=INT32_MAX, s=32)
def test_rshift_rhu_matches_oracle(a, s):
    got = rshift_rhu(a, s)
    assert got == oracle_rhu_fraction(a, s)
    assert got == oracle_rhu_intdiv(a, s)
    assert got == round_half_up_fraction(Fraction(a, 1 << s))


@settings(max_examples=150, **SETTINGS)
@given(s=st.integers(1, 40), q=st.integers(-(1 << 21), 1 << 21))
def test_rshift_rhu_ties_go_to_plus_infinity(s, q):
    """a = (2q+1) 2^(s-1) is exactly (q + 1/2) 2^s: the result is q + 1."""
    a = (2 * q + 1) << (s - 1)
    assert rshift_rhu(a, s) == q + 1
    # just below / above the tie
    assert rshift_rhu(a - 1, s) == q
    assert rshift_rhu(a + 1, s) == q + 1


def test_rshift_rhu_named_ties():
    assert rshift_rhu(-3, 1) == -1  # -3/2 -> -1
    assert rshift_rhu(-1, 1) == 0  # -1/2 -> 0
    assert rshift_rhu(1, 1) == 1  # 1/2 -> 1
    assert rshift_rhu(3, 1) == 2  # 3/2 -> 2
    assert rshift_rhu(-5, 2) == -1  # -5/4 -> -1
    assert rshift_rhu(-6, 2) == -1  # -3/2 -> -1
    assert rshift_rhu(-2, 2) == 0  # -1/2 -> 0
    assert rshift_rhu(INT32_MIN, 31) == -1
    assert rshift_rhu(INT32_MIN, 32) == 0  # -1/2 -> 0
    assert rshift_rhu(INT32_MAX, 31) == 1
    assert rshift_rhu(INT32_MAX, 32) == 0
    assert rshift_rhu(INT32_MIN - 1, 32) == -1  # just below -1/2


def test_rshift_rhu_s_zero_is_identity():
    for a in EDGE_VALUES:
        assert rshift_rhu(a, 0) == a


def test_rshift_rhu_negative_shift_rejected():
    with pytest.raises(ValueError):
        rshift_rhu(5, -1)


@settings(max_examples=200, **SETTINGS)
@given(a=st.integers(-(1 << 63), (1 << 63) - 1), s=st.integers(0, 300))
def test_rshift_rhu_exact_for_all_int64_and_any_shift(a, s):
    """R1 is exact for every 64-bit operand and every s >= 0 (s >= 64 gives 0)."""
    assert rshift_rhu(a, s) == oracle_rhu_fraction(a, s)
    assert int(rshift_rhu(np.int64(a), s)) == oracle_rhu_fraction(a, s)
    if s >= R.RSHIFT_ZERO_FROM:
        assert rshift_rhu(a, s) == 0


def test_rshift_rhu_wide_shift_boundary_values():
    for a in (-(1 << 63), (1 << 63) - 1, -(1 << 62), 1 << 62, (1 << 62) - 1, -(1 << 38) + 1,
              (1 << 38) - 1, -1, 1, 0):
        for s in (40, 41, 62, 63, 64, 100):
            assert rshift_rhu(a, s) == oracle_rhu_fraction(a, s), (a, s)
            assert int(rshift_rhu(np.array([a], dtype=np.int64), s)[0]) == oracle_rhu_fraction(a, s)


@settings(max_examples=75, **SETTINGS)
@given(vals=st.lists(operands, min_size=1, max_size=64), s=st.integers(0, 80))
def test_rshift_rhu_numpy_elementwise(vals, s):
    arr = np.asarray(vals, dtype=np.int64)
    got = rshift_rhu(arr, s)
    assert isinstance(got, np.ndarray) and got.dtype == np.int64
    assert got.tolist() == [rshift_rhu(v, s) for v in vals]
    se = min(s, R.RSHIFT_ZERO_FROM)
    assert got.tolist() == [oracle_rhu_fraction(v, se) for v in vals]
    # numpy integer shift operand gives the same
    assert rshift_rhu(arr, np.int64(s)).tolist() == got.tolist()


def test_rshift_rhu_numpy_edge_grid():
    arr = np.asarray(EDGE_VALUES, dtype=np.int64)
    for s in EDGE_SHIFTS:
        assert rshift_rhu(arr, s).tolist() == [oracle_rhu_fraction(v, s) for v in EDGE_VALUES]


# ---- numba ----------------------------------------------------------------

numba = pytest.importorskip("numba")
_jit_rhu = numba.njit(R.rshift_rhu)


def test_rshift_rhu_numba_edge_grid():
    arr = np.asarray(EDGE_VALUES, dtype=np.int64)
    for s in EDGE_SHIFTS + [41, 63, 64, 100]:
        expect = rshift_rhu(arr, s)
        assert _jit_rhu(arr, s).tolist() == expect.tolist()
        for a in EDGE_VALUES[::5]:
            assert _jit_rhu(a, s) == rshift_rhu(a, s)


@settings(max_examples=125, **SETTINGS)
@given(a=operands, s=st.integers(0, 100))
def test_rshift_rhu_numba_scalar(a, s):
    assert _jit_rhu(a, s) == rshift_rhu(a, s)
    assert _jit_rhu(np.int64(a), np.int64(s)) == rshift_rhu(a, s)


@settings(max_examples=50, **SETTINGS)
@given(vals=st.lists(operands, min_size=1, max_size=32), s=st.integers(0, 70))
def test_rshift_rhu_numba_array(vals, s):
    arr = np.asarray(vals, dtype=np.int64)
    assert _jit_rhu(arr, s).tolist() == rshift_rhu(arr, s).tolist()


_jit_requant = numba.njit(R.requant_shift)


@settings(max_examples=150, **SETTINGS)
@given(a=st.integers(-(1 << 40), 1 << 40), s=st.integers(-20, 60))
def test_requant_shift_numba(a, s):
    """The jitted requant_shift (kernels call it through register_jitable)."""
    assert _jit_requant(a, s) == requant_shift(a, s)
    arr = np.asarray([a, -a, 0], dtype=np.int64)
    assert _jit_requant(arr, s).tolist() == requant_shift(arr, s).tolist()


# ---- R2 requant_shift ------------------------------------------------------

@settings(max_examples=200, **SETTINGS)
@given(a=operands, s=st.integers(-20, 40))
def test_requant_shift(a, s):
    got = requant_shift(a, s)
    if s > 0:
        assert got == oracle_rhu_fraction(a, s)
    else:
        exact = Fraction(a) * 2 ** (-s)
        assert got == exact  # exact left shift (Python int: no overflow)


@settings(max_examples=75, **SETTINGS)
@given(vals=st.lists(st.integers(-(1 << 40), 1 << 40), min_size=1, max_size=32),
       s=st.integers(-20, 40))
def test_requant_shift_numpy(vals, s):
    arr = np.asarray(vals, dtype=np.int64)
    got = requant_shift(arr, s)
    assert got.dtype == np.int64
    assert got.tolist() == [requant_shift(v, s) for v in vals]
    if s <= 0:
        assert got.tolist() == [v * (1 << -s) for v in vals]


# ---- R3 saturation ----------------------------------------------------------

@settings(max_examples=125, **SETTINGS)
@given(a=int62s, lo=int62s, width=st.integers(0, 1 << 40))
def test_saturate_scalar(a, lo, width):
    hi = lo + width
    got = saturate(a, lo, hi)
    assert got == (lo if a < lo else hi if a > hi else a)


@settings(max_examples=75, **SETTINGS)
@given(vals=st.lists(int62s, min_size=1, max_size=32), lo=st.integers(-(1 << 40), 0),
       hi=st.integers(0, 1 << 40))
def test_saturate_array(vals, lo, hi):
    arr = np.asarray(vals, dtype=np.int64)
    got = saturate_array(arr, lo, hi)
    assert got.dtype == np.int64
    assert got.tolist() == [saturate(v, lo, hi) for v in vals]


@settings(max_examples=125, **SETTINGS)
@given(a=int62s, bits=st.integers(1, 63))
def test_sat_signed(a, bits):
    lo, hi = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    expect = max(lo, min(hi, a))
    assert sat_signed(a, bits) == expect
    arr = np.asarray([a, lo, hi, 0], dtype=np.int64)
    got = sat_signed(arr, bits)
    assert isinstance(got, np.ndarray)
    assert got.tolist() == [expect, lo, hi, 0]


def test_sat_signed_int8_int32_edges():
    assert sat_signed(128, 8) == 127 and sat_signed(-129, 8) == -128
    assert sat_signed(127, 8) == 127 and sat_signed(-128, 8) == -128
    assert sat_signed(INT32_MAX + 1, 32) == INT32_MAX
    assert sat_signed(INT32_MIN - 1, 32) == INT32_MIN


# ---- R4 round_half_up_float -------------------------------------------------

NAMED_FLOATS = [
    0.0, -0.0, 0.5, -0.5, 1.5, -1.5, 2.5, -2.5, 0.49999999999999994,
    -0.49999999999999994, 0.5000000000000001, -0.5000000000000001,
    1.4999999999999998, -1.4999999999999998, 2.0 ** 52, -(2.0 ** 52),
    2.0 ** 52 - 0.5, -(2.0 ** 52) + 0.5, 2.0 ** 51 + 0.5, -(2.0 ** 51) - 0.5,
    2.0 ** 53, -(2.0 ** 53), 2.0 ** 62, -(2.0 ** 62),
    5e-324, -5e-324, 2.2250738585072014e-308, -2.2250738585072014e-308,
    2.225073858507201e-308, -2.225073858507201e-308, 1e-300, -1e-300,
    4503599627370495.5, -4503599627370495.5,
]


@pytest.mark.parametrize("x", NAMED_FLOATS)
def test_round_half_up_float_named(x):
    got = round_half_up_float(x)
    assert type(got) is int
    assert got == oracle_round_float(x)


def test_round_half_up_float_named_values():
    assert round_half_up_float(0.49999999999999994) == 0
    assert round_half_up_float(0.5) == 1
    assert round_half_up_float(-0.5) == 0
    assert round_half_up_float(2.5) == 3
    assert round_half_up_float(-2.5) == -2
    assert round_half_up_float(-1.5) == -1
    assert round_half_up_float(5e-324) == 0
    assert round_half_up_float(-5e-324) == 0
    assert round_half_up_float(2.0 ** 52 - 0.5) == 2 ** 52
    assert round_half_up_float(-(2.0 ** 51) - 0.5) == -(2 ** 51)


finite_floats = st.floats(min_value=-(2.0 ** 62), max_value=2.0 ** 62,
                          allow_nan=False, allow_infinity=False, allow_subnormal=True)
halfish = st.builds(lambda k: k / 2.0, st.integers(-(1 << 53), 1 << 53))


@settings(max_examples=375, **SETTINGS)
@given(x=st.one_of(finite_floats, halfish, st.sampled_from(NAMED_FLOATS)))
def test_round_half_up_float_matches_fraction(x):
    assert round_half_up_float(x) == oracle_round_float(x)


@settings(max_examples=150, **SETTINGS)
@given(x=st.one_of(finite_floats, halfish))
def test_round_half_up_float_neighbours(x):
    for y in (np.nextafter(x, np.inf), np.nextafter(x, -np.inf)):
        y = float(y)
        if abs(y) <= 2.0 ** 62:
            assert round_half_up_float(y) == oracle_round_float(y)


@settings(max_examples=50, **SETTINGS)
@given(vals=st.lists(st.one_of(finite_floats, halfish), min_size=1, max_size=40))
def test_round_half_up_float_array(vals):
    arr = np.asarray(vals, dtype=np.float64)
    got = round_half_up_float(arr)
    assert isinstance(got, np.ndarray) and got.dtype == np.int64
    assert got.tolist() == [oracle_round_float(v) for v in vals]
    got2 = round_half_up_float(arr.reshape(1, -1))
    assert got2.shape == (1, len(vals))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_round_half_up_float_rejects_non_finite(bad):
    with pytest.raises(ValueError):
        round_half_up_float(bad)
    with pytest.raises(ValueError):
        round_half_up_float(np.array([0.0, bad]))


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_round_half_up_float_out_of_int64_range_is_rejected():
    for x in (1e19, -1e19, 2.0 ** 63, 1e300):
        with pytest.raises((ValueError, OverflowError)):
            round_half_up_float(x)
