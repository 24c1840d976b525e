"""Bjontegaard deltas through the maintained ``bjontegaard`` package
(piecewise cubic Hermite interpolation, 'pchip'), with the bookkeeping a short
curve needs: points sorted by rate, non-monotone points dropped, the overlap
interval reported, None where the curves do not overlap.

``bd_rate`` is the average bitrate difference (%) of test vs anchor at equal
quality (negative = test needs fewer bits); ``bd_quality`` the average quality
difference (dB) at equal rate (positive = test better).  Quality may be PSNR
or MS-SSIM in dB.  ``point_rate_delta`` handles a one-point test curve: the
rate difference at that point's quality against the interpolated anchor.

Every BD figure of the project goes through this module: ``compare`` (BD-rate,
BD-quality and overlap of two curves: the BD tables and Summary of
docs/RESULTS.md, tools/paper_tables.py), ``point_deltas`` (each point of a test
curve against an interpolated anchor: the 'one point' rows), ``bd_rate``
(tools/check_bars.py bar 2, ``fxlic eval``) and ``beats_points`` /
``linear_at`` (tools/check_bars.py bar 1: one image's point against a
classical codec's points of the same image).
"""
from __future__ import annotations

import warnings
from typing import NamedTuple, Optional, Tuple

import numpy as np

METHOD = "pchip"


def monotone_curve(rates, quals):
    """Points sorted by rate keeping only those where quality strictly rises
    (an RD curve must be increasing for the interpolation in either direction)."""
    pts = sorted((float(r), float(q)) for r, q in zip(rates, quals)
                 if np.isfinite(r) and np.isfinite(q) and r > 0)
    out = []
    for r, q in pts:
        if out and (r <= out[-1][0] or q <= out[-1][1]):
            continue
        out.append((r, q))
    if not out:
        return np.zeros(0), np.zeros(0)
    a = np.array(out)
    return a[:, 0], a[:, 1]


def _bd(fn, ra, qa, rt, qt):
    import bjontegaard
    ra, qa = monotone_curve(ra, qa)
    rt, qt = monotone_curve(rt, qt)
    if len(ra) < 2 or len(rt) < 2:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        v = getattr(bjontegaard, fn)(ra, qa, rt, qt, method=METHOD, require_matching_points=False,
                                     min_overlap=0)
    return None if not np.isfinite(v) else float(v)


def overlap(ra, qa, rt, qt, axis: str = "quality"):
    """(lo, hi) of the shared interval on the quality (BD-rate) or log-rate axis, or None."""
    ra, qa = monotone_curve(ra, qa)
    rt, qt = monotone_curve(rt, qt)
    if len(ra) == 0 or len(rt) == 0:
        return None
    a, t = (qa, qt) if axis == "quality" else (ra, rt)
    lo, hi = max(a.min(), t.min()), min(a.max(), t.max())
    return (float(lo), float(hi)) if hi > lo else None


def bd_rate(ra, qa, rt, qt):
    """BD-rate (%) of test (rt, qt) against anchor (ra, qa); None if not computable."""
    if overlap(ra, qa, rt, qt, "quality") is None:
        return None
    return _bd("bd_rate", ra, qa, rt, qt)


def bd_quality(ra, qa, rt, qt):
    """BD-PSNR (dB; or BD of any dB quality) of test against anchor; None if not computable."""
    if overlap(ra, qa, rt, qt, "rate") is None:
        return None
    return _bd("bd_psnr", ra, qa, rt, qt)


def point_rate_delta(ra, qa, r, q):
    """Rate difference (%) of one point (r, q) against the anchor curve
    interpolated (pchip on log rate) at quality q; None outside the anchor's range."""
    from scipy.interpolate import PchipInterpolator
    ra, qa = monotone_curve(ra, qa)
    if len(ra) < 2 or not (qa.min() <= q <= qa.max()):
        return None
    lr = PchipInterpolator(qa, np.log10(ra))(q)
    return float((r / 10 ** lr - 1) * 100)


def point_quality_delta(ra, qa, r, q):
    """Quality difference (dB) of one point against the anchor at the same rate."""
    from scipy.interpolate import PchipInterpolator
    ra, qa = monotone_curve(ra, qa)
    if len(ra) < 2 or not (ra.min() <= r <= ra.max()):
        return None
    return float(q - PchipInterpolator(np.log10(ra), qa)(np.log10(r)))


class CurveBD(NamedTuple):
    """BD of a test curve against an anchor curve (``compare``)."""
    rate: Optional[float]  # BD-rate (%), None if not computable
    quality: Optional[float]  # BD-quality (dB), None if not computable
    overlap: Optional[Tuple[float, float]]  # shared quality interval, None if none
    rising: int  # points of the test curve that form a rising curve (monotone_curve)


def compare(ra, qa, rt, qt) -> CurveBD:
    """BD-rate, BD-quality, the quality overlap and the rising part's length of
    test (rt, qt) against anchor (ra, qa), in one call."""
    return CurveBD(bd_rate(ra, qa, rt, qt), bd_quality(ra, qa, rt, qt), overlap(ra, qa, rt, qt),
                   len(monotone_curve(rt, qt)[0]))


def point_deltas(ra, qa, names, rates, quals) -> list:
    """[(name, rate difference %, quality difference dB)] of each point of a
    test curve against the interpolated anchor (None outside its range)."""
    return [(n, point_rate_delta(ra, qa, r, q), point_quality_delta(ra, qa, r, q))
            for n, r, q in zip(names, rates, quals)]


def linear_at(xs, ys, x):
    """The curve (xs, ys), sorted by x, interpolated linearly at x; None outside its range."""
    pts = sorted(zip(xs, ys))
    for (x0, y0), (x1, y1) in zip(pts, pts[1:]):
        if x0 <= x <= x1:
            return y0 if x1 == x0 else y0 + (y1 - y0) * (x - x0) / (x1 - x0)
    return None


def beats_points(r, q, rates, quals):
    """(wins, anchor quality at r) of one point (r, q) against an anchor's points:
    it wins when no anchor point has rate <= r and quality >= q and the anchor's
    points, interpolated linearly (``linear_at``), are below q at rate r (or r is
    outside their range)."""
    dominated = any(ar <= r and aq >= q for ar, aq in zip(rates, quals))
    at = linear_at(rates, quals, r)
    return (not dominated and (at is None or q > at)), at
