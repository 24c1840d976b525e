#!/usr/bin/env python3
"""Where an integer model's quantization loss comes from, layer by layer.

    python tools/quant_gap.py MODEL.fxq WEIGHTS.safetensors [--images DIR] [-n 8] [--out GAP.md]

Thin over fxlic.eval.attribution: the float model with one layer's weights
(the integer model's own 8-bit weights) or one layer's activations (its
exponents and mux) quantized at a time, then all of them; mean dPSNR / rate
change and the worst image per row, as a markdown table (stdout, or --out).
MODEL may be a shipped name (hp5-mse-q2), WEIGHTS defaults to that model's
fxlic/zoo float file.
"""
from __future__ import annotations

import argparse
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def table(rows, title: str) -> str:
    """The rows of fxlic.eval.attribution.attribute as markdown."""
    out = [title, "", "| part | layer | mean dPSNR | mean rate change | worst image |", "|---|---|---|---|---|"]
    for r in rows:
        out.append(f"| {r['part']} | {r['layer']} | {r['dpsnr']:+.4f} dB | {r['drate_pct']:+.2f} % | "
                   f"{r['worst_dpsnr']:+.3f} dB ({r['worst_image']}) |")
    return "\n".join(out) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model", help="integer model (.fxq path or shipped name)")
    ap.add_argument("weights", nargs="?", default=None, help="its float weights (default: the zoo's float file)")
    ap.add_argument("--images", default=os.environ.get("FXLIC_KODAK", os.path.join(ROOT, "..", "shared", "data",
                                                                                  "kodak")))
    ap.add_argument("-n", "--max-images", type=int, default=8, metavar="N", help="the first N images (default 8)")
    ap.add_argument("--layers", default=None, metavar="LIST", help="comma-separated layers (default: all)")
    ap.add_argument("--out", default=None, metavar="GAP.md")
    ap.add_argument("-q", "--quiet", action="store_true")
    a = ap.parse_args(argv)

    from tqdm import tqdm

    from fxlic.eval.attribution import attribute, n_runs
    from fxlic.io.floatfile import WeightsError, load_weights
    from fxlic.io.images import ImageError, list_images, read_image
    from fxlic.io.modelfile import ModelFileError, load_model, resolve_model

    try:
        path = resolve_model(a.model)
        im = load_model(path)
        w = a.weights or os.path.join(os.path.dirname(path), os.path.basename(path)[:-4] + ".float.safetensors")
        fm = load_weights(w)
        files = list_images(a.images, a.max_images)
        images = [(os.path.basename(p), read_image(p)) for p in files]
    except (ModelFileError, WeightsError, ImageError, OSError) as e:
        print(f"quant_gap: {e}", file=sys.stderr)
        return 1
    if fm.arch.name != im.arch.name:
        print(f"quant_gap: {w} is a {fm.arch.name}, {path} a {im.arch.name}", file=sys.stderr)
        return 1
    names = a.layers.split(",") if a.layers else None
    unknown = [n for n in names or [] if n not in im.layers]
    if unknown:
        print(f"quant_gap: no layer {', '.join(unknown)} in {im.arch.name}", file=sys.stderr)
        return 1
    bar = tqdm(total=n_runs(fm, im, names) * len(images), desc="float forwards", unit="run", file=sys.stderr,
               disable=a.quiet, dynamic_ncols=True)
    try:
        rows = attribute(fm, im, images, names, progress=bar.update)
    finally:
        bar.close()
    text = table(rows, f"Quantization loss of {os.path.basename(path)} against {os.path.basename(w)}, by part "
                       f"({len(images)} image(s) of {a.images}; `python tools/quant_gap.py`)")
    if a.out:
        with open(a.out, "w", encoding="utf-8") as f:
            f.write(text)
        print(f"wrote {a.out}")
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
