"""Per-image records compared between two runs of the same images: pairing,
completeness, the loss of a test run against a base run (the ablation tables'
dPSNR / dbpp cells)."""
from __future__ import annotations

from ..runner import summarize


def complete(recs):
    """``recs`` when every image has a record, else None."""
    return recs if recs and all(r is not None for r in recs) else None


def paired(a, b):
    """Records of a and b restricted to the images both have."""
    if a is None or b is None:
        return [], []
    bi = {r["image"]: r for r in b if r is not None}
    pa = [r for r in a if r is not None and r["image"] in bi]
    return pa, [bi[r["image"]] for r in pa]


def loss(test, base, rate="bpp"):
    """(dPSNR, dbpp, dMS-SSIM dB, n) of test vs base, paired over images."""
    t, b = paired(test, base)
    if not t:
        return None
    st, sb = summarize(t), summarize(b)
    rt = st.get(rate, st["bpp"])
    return (st["psnr"] - sb["psnr"], rt - sb["bpp"], st.get("msssim_db", float("nan")) - sb.get("msssim_db", float("nan")),
            len(t))


def summarize_present(recs):
    """The summary of the records present, or None when there is none."""
    s = summarize([r for r in recs if r is not None])
    return s if s.get("n") else None
