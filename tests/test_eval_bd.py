"""BD-rate / BD-PSNR wrapper (fxlic.eval.bd over the bjontegaard package) on
synthetic curves with a known answer."""
import numpy as np
import pytest

pytest.importorskip("bjontegaard")

from fxlic.eval import bd  # noqa: E402

R = np.array([0.15, 0.3, 0.6, 1.2, 2.4])
Q = np.array([25.0, 28.0, 31.0, 34.0, 37.0])


def test_constant_rate_ratio_is_exact_bd_rate():
    # the test codec needs 80 % of the anchor's bits at every quality
    assert bd.bd_rate(R, Q, 0.8 * R, Q) == pytest.approx(-20.0, abs=1e-9)
    assert bd.bd_rate(0.8 * R, Q, R, Q) == pytest.approx(25.0, abs=1e-9)


def test_constant_quality_offset_is_exact_bd_psnr():
    assert bd.bd_quality(R, Q, R, Q + 0.75) == pytest.approx(0.75, abs=1e-9)
    assert bd.bd_quality(R, Q, R, Q - 0.2) == pytest.approx(-0.2, abs=1e-9)


def test_short_test_curve_uses_the_overlap_only():
    # three points of the test curve inside the anchor's range, 10 % fewer bits
    rt, qt = 0.9 * R[1:4], Q[1:4]
    assert bd.overlap(R, Q, rt, qt) == (28.0, 34.0)
    assert bd.bd_rate(R, Q, rt, qt) == pytest.approx(-10.0, abs=1e-9)


def test_order_and_non_monotone_points():
    perm = [3, 0, 4, 1, 2]
    assert bd.bd_rate(R[perm], Q[perm], 0.8 * R, Q) == pytest.approx(-20.0, abs=1e-9)
    r2 = np.append(R, 3.0)
    q2 = np.append(Q, 36.0)  # a worse point at a higher rate is dropped
    assert bd.bd_rate(r2, q2, 0.8 * R, Q) == pytest.approx(-20.0, abs=1e-9)


def test_no_overlap_or_too_few_points_is_none():
    assert bd.bd_rate(R, Q, R, Q + 100) is None
    assert bd.bd_rate(R, Q, R[:1], Q[:1]) is None
    assert bd.bd_quality(R, Q, R * 100, Q) is None


def test_single_point_against_anchor():
    assert bd.point_rate_delta(R, Q, 0.3 * 0.9, 28.0) == pytest.approx(-10.0, abs=1e-9)
    assert bd.point_quality_delta(R, Q, 0.6, 31.5) == pytest.approx(0.5, abs=1e-9)
    assert bd.point_rate_delta(R, Q, 0.1, 50.0) is None


def test_compare_is_the_three_deltas_in_one_call():
    rt, qt = 0.9 * R[1:4], Q[1:4]
    c = bd.compare(R, Q, rt, qt)
    assert c.rate == bd.bd_rate(R, Q, rt, qt) and c.quality == bd.bd_quality(R, Q, rt, qt)
    assert c.overlap == (28.0, 34.0) and c.rising == 3
    c = bd.compare(R, Q, R, Q + 100)  # no quality overlap: no BD-rate; same rates: BD-quality 100 dB
    assert (c.rate, c.overlap, c.rising) == (None, None, 5) and c.quality == pytest.approx(100.0)


def test_point_deltas_name_each_point():
    out = bd.point_deltas(R, Q, ["a", "b"], [0.27, 0.1], [28.0, 50.0])
    assert out[0][0] == "a" and out[0][1] == pytest.approx(-10.0, abs=1e-9)
    assert out[1] == ("b", None, None)


def test_linear_interpolation_and_beating_anchor_points():
    assert bd.linear_at([2, 0, 1], [20, 0, 10], 1.5) == pytest.approx(15.0)
    assert bd.linear_at([0, 1], [0, 10], 2) is None
    rates, quals = [0.2, 0.4, 0.8], [26.0, 28.0, 30.0]
    assert bd.beats_points(0.3, 27.5, rates, quals) == (True, pytest.approx(27.0))
    assert bd.beats_points(0.3, 26.5, rates, quals)[0] is False  # below the interpolated curve
    assert bd.beats_points(0.5, 27.0, rates, quals)[0] is False  # dominated by (0.4, 28)
    assert bd.beats_points(0.1, 20.0, rates, quals) == (True, None)  # outside, not dominated
