#!/usr/bin/env python3
"""Issue 15's quality bars, measured on Kodak through the integer codec (real .fxl sizes).

    python tools/check_bars.py [--kodak DIR] [--jobs 2] [--json OUT.json]

1. the default model against Pillow JPEG on every image: fxlic wins an image when no
   JPEG encoding of it (quality sweep of fxlic.eval.codecs) has bpp <= fxlic's and
   PSNR >= fxlic's, and JPEG's per-image curve, interpolated linearly at fxlic's bpp,
   is below fxlic's PSNR (fxlic.eval.bd.beats_points);
2. BD-rate (PSNR, fxlic.eval.bd: bjontegaard pchip) of the integer hyperprior-5 MSE set against
   JPEG 2000 and WebP (below 0: fxlic needs fewer bits);
3. integer minus float PSNR of every shipped model (within 0.1 dB), the float model run
   under the integer model's latent rule (SPEC O5: offset latents code round(y - mean)).

Thin over fxlic.eval: the same per-image records and cache as tools/paper_tables.py
(``--cache``), so neither recomputes what the other has.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)

HP5_MSE = ["hp5-mse-q0", "hp5-mse-q1", "hp5-mse-q2"]


def per_image_vs_jpeg(fx: dict, jpeg: list) -> dict:
    """One image: fxlic's (bpp, psnr) against the JPEG records of the same image
    (fxlic.eval.bd.beats_points)."""
    from fxlic.eval.bd import beats_points
    wins, at = beats_points(fx["bpp"], fx["psnr"], [j["bpp"] for j in jpeg], [j["psnr"] for j in jpeg])
    return {"image": fx["image"], "bpp": round(fx["bpp"], 4), "psnr": round(fx["psnr"], 3),
            "jpeg_psnr_at_bpp": None if at is None else round(at, 3), "wins": wins}


def main(argv=None) -> int:
    from fxlic.eval.cache import Cache, default_dir
    from fxlic.eval.codecs import CODECS, available
    from fxlic.eval.runner import evaluate, summarize
    from fxlic.eval.bd import bd_rate
    from fxlic.io.images import ImageError, list_images
    from fxlic.io.modelfile import list_zoo, read_model_file
    from fxlic.commands.common import DEFAULT_MODEL

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kodak", default=os.environ.get("FXLIC_KODAK", os.path.join(ROOT, "..", "shared", "data", "kodak")))
    ap.add_argument("--images", type=int, default=24)
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--cache", default=default_dir())
    ap.add_argument("--json", default=None, help="write the measurements here")
    ap.add_argument("--no-float", action="store_true", help="skip the float models (bar 3)")
    args = ap.parse_args(argv)
    try:
        images = list_images(args.kodak, args.images)
    except ImageError as e:
        print(f"check_bars: {e} (pass --kodak DIR or set FXLIC_KODAK)", file=sys.stderr)
        return 1
    cache = Cache(args.cache)
    zoo = {os.path.basename(p)[:-4]: p for p in list_zoo()}
    floats = {n: os.path.join(ROOT, "fxlic", "zoo", f"{n}.float.safetensors") for n in zoo}
    floats = {n: p for n, p in floats.items() if os.path.isfile(p) and not args.no_float}
    anchors = [c for c in ("jpeg", "jpeg2000", "webp") if available(c)]
    latents = {n: read_model_file(p)[0].latents for n, p in zoo.items()}

    tasks, index = [], []
    for n, p in zoo.items():
        for im in images:
            tasks.append({"kind": "int", "model": p, "image": im})
            index.append(("int", n, None))
            if n in floats:  # the float model under the integer model's latent rule (SPEC O5)
                tasks.append({"kind": "float", "weights": floats[n], "image": im, "latents": latents[n]})
                index.append(("float", n, None))
    for c in anchors:
        for q in CODECS[c].qualities:
            for im in images:
                tasks.append({"kind": "classical", "codec": c, "q": q, "image": im})
                index.append(("classical", c, q))
    recs = evaluate(tasks, cache, args.jobs, True, "check_bars")
    by = {}
    for (kind, name, q), r in zip(index, recs):
        by.setdefault((kind, name), []).append(r)

    out = {"images": len(images), "anchors": anchors}
    ok = True
    # bar 1
    if "jpeg" in anchors and DEFAULT_MODEL in zoo:
        jp = {}
        for r in by[("classical", "jpeg")]:
            jp.setdefault(r["image"], []).append(r)
        rows = [per_image_vs_jpeg(r, jp[r["image"]]) for r in by[("int", DEFAULT_MODEL)]]
        lost = [r["image"] for r in rows if not r["wins"]]
        out["bar1"] = {"model": DEFAULT_MODEL, "wins": len(rows) - len(lost), "of": len(rows),
                       "lost": lost, "per_image": rows}
        ok &= not lost
        print(f"bar 1: {DEFAULT_MODEL} beats Pillow JPEG on {len(rows) - len(lost)}/{len(rows)} images"
              + (f" (loses {', '.join(lost)})" if lost else ""))
    # bar 2
    pts = [summarize(by[("int", n)]) for n in HP5_MSE if ("int", n) in by]
    if len(pts) >= 2:
        out["bar2"] = {}
        for c in anchors:
            if c == "jpeg":
                continue
            curve = [summarize([r for r, (k, nm, q) in zip(recs, index) if k == "classical" and nm == c and q == qq])
                     for qq in CODECS[c].qualities]
            bd = bd_rate([s["bpp"] for s in curve], [s["psnr"] for s in curve],
                         [s["bpp"] for s in pts], [s["psnr"] for s in pts])
            out["bar2"][c] = None if bd is None else round(bd, 2)
            ok &= bd is not None and bd < 0
            print(f"bar 2: integer hp5 MSE set vs {CODECS[c].label}: BD-rate "
                  + ("n/a (no overlap)" if bd is None else f"{bd:+.1f} %"))
        out["hp5_set"] = [{"model": n, "bpp": round(s["bpp"], 4), "psnr": round(s["psnr"], 3)}
                          for n, s in zip(HP5_MSE, pts)]
    # bar 3
    out["bar3"] = {}
    for n in zoo:
        if ("float", n) not in by:
            continue
        si, sf = summarize(by[("int", n)]), summarize(by[("float", n)])
        d = si["psnr"] - sf["psnr"]
        out["bar3"][n] = {"int_bpp": round(si["bpp"], 4), "int_psnr": round(si["psnr"], 3),
                          "float_bpp": round(sf["bpp"], 4), "float_psnr": round(sf["psnr"], 3),
                          "delta_db": round(d, 3)}
        ok &= abs(d) <= 0.1
        print(f"bar 3: {n}: integer {si['bpp']:.4f} bpp / {si['psnr']:.2f} dB, float {sf['bpp']:.4f} / "
              f"{sf['psnr']:.2f}: {d:+.3f} dB")
    out["all_bars_hold"] = bool(ok)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
