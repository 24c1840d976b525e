"""Bjontegaard deltas through the maintained ``bjontegaard`` package
(piecewise cubic Hermite interpolation, 'pchip'), with the bookkeeping a short
curve needs: points sorted by rate, non-monotone points dropped, the overlap
interval reported, None where the curves do not overlap.

``bd_rate`` is the average bitrate difference (%) of test vs anchor at equal
quality (negative = test needs fewer bits); ``bd_quality`` the average quality
difference (dB) at equal rate (positive = test better).  Quality may be PSNR
or MS-SSIM in dB.  ``point_rate_delta`` handles a one-point test curve: the
rate difference at that point's quality against the interpolated anchor.
"""
from __future__ import annotations

import warnings

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
