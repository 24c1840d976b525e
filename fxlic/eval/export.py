"""Result files of an evaluation: per-image rows (CSV / JSON) and curves in
CompressAI's ``eval_model`` layout, so fxlic's curves overlay with published
CompressAI results (``compressai/results/image/kodak/*.json``, plotted by
``python -m compressai.utils.plot``):

    {"name": ..., "description": ...,
     "results": {"psnr-rgb": [...], "ms-ssim-rgb": [...], "bpp": [...],
                 "encoding_time": [...], "decoding_time": [...]}}

one list entry per rate point (mean over the images), in increasing bpp.
MS-SSIM is linear (0..1) as CompressAI writes it; a value that cannot be
computed (images too small for 5 scales) is null.  Times are seconds per
image: the integer codec's measured encode and decode; a classical codec's
encode and decode (records cached before both were kept carry their sum,
split in half); a float model has no entropy coder, so, as CompressAI does for
its entropy-estimation mode, half of the forward pass is given to each.
"""
from __future__ import annotations

import csv
import json
import math
import os
import re

import numpy as np

PER_IMAGE_FIELDS = ("curve", "point", "image", "bpp", "est_bpp", "psnr", "msssim", "msssim_db", "encode_s",
                    "decode_s", "bytes")


def record_times(rec: dict) -> tuple:
    """(encoding seconds, decoding seconds) of one per-image record (None if unknown)."""
    if rec.get("encode_s") is not None and rec.get("decode_s") is not None:
        return float(rec["encode_s"]), float(rec["decode_s"])
    if rec.get("seconds") is not None:
        return float(rec["seconds"]) / 2, float(rec["seconds"]) / 2
    return None, None


def _clean(v):
    if v is None:
        return None
    v = float(v)
    return v if math.isfinite(v) else None


def _mean(vals):
    if not vals or any(v is None for v in vals):
        return None
    return float(np.mean(vals))


def compressai_results(points: list) -> dict:
    """``points``: one list of per-image records per rate point -> the
    ``results`` dict (points sorted by mean bpp)."""
    rows = []
    for recs in points:
        recs = [r for r in recs if r is not None]
        if not recs:
            continue
        t = [record_times(r) for r in recs]
        rows.append({"psnr-rgb": _mean([r.get("psnr") for r in recs]),
                     "ms-ssim-rgb": _mean([r.get("msssim") for r in recs]),
                     "bpp": _mean([r.get("bpp") for r in recs]),
                     "encoding_time": _mean([e for e, _ in t]), "decoding_time": _mean([d for _, d in t])})
    rows.sort(key=lambda r: r["bpp"])
    keys = ("psnr-rgb", "ms-ssim-rgb", "bpp", "encoding_time", "decoding_time")
    return {k: [_clean(r[k]) for r in rows] for k in keys}


def compressai_doc(name: str, description: str, points: list) -> dict:
    return {"name": name, "description": description, "results": compressai_results(points)}


def slug(text: str) -> str:
    s = re.sub(r"[^A-Za-z0-9.+-]+", "-", text).strip("-")
    return s or "curve"


def finite(obj):
    """``obj`` with every non-finite float (NaN, inf) replaced by None, so the
    file is strict JSON."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite(v) for v in obj]
    return obj


def write_json(path: str, obj) -> None:
    tmp = path + ".part"
    with open(tmp, "w") as f:
        json.dump(finite(obj), f, indent=2, default=str, allow_nan=False)
        f.write("\n")
    os.replace(tmp, path)


def write_compressai(directory: str, docs: list) -> list:
    """One ``<slug(name)>.json`` per document in ``directory``; returns the paths."""
    os.makedirs(directory, exist_ok=True)
    paths, seen = [], set()
    for d in docs:
        base = slug(d["name"])
        name, k = base, 2
        while name in seen:
            name, k = f"{base}-{k}", k + 1
        seen.add(name)
        p = os.path.join(directory, name + ".json")
        write_json(p, d)
        paths.append(p)
    return paths


def per_image_rows(curve: str, point: str, records: list) -> list:
    from .runner import msssim_db
    rows = []
    for r in records:
        if r is None:
            continue
        row = {k: r.get(k) for k in PER_IMAGE_FIELDS if k in r}
        enc, dec = record_times(r)
        row.update(curve=curve, point=point, encode_s=enc, decode_s=dec,
                   msssim_db=msssim_db(r["msssim"]) if r.get("msssim") is not None else None)
        rows.append(row)
    return rows


def write_per_image_csv(path: str, rows: list) -> None:
    tmp = path + ".part"
    with open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=PER_IMAGE_FIELDS, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({k: ("" if r.get(k) is None else r[k]) for k in PER_IMAGE_FIELDS})
    os.replace(tmp, path)
