#!/usr/bin/env python3
"""Measure the ReLU activation headroom of PTQ (fxlic.quant.activations.RELU_HEADROOM_BITS).

    python tools/act_headroom.py [--model hp5-mse-q2] [--bits 0,1,2] [--out docs/CALIBRATION.md]

For each headroom h the float weights are quantized with the shipped
calibration (first 9 CBSD68 images, centre crop 512), and the *activation-only*
simulation (fxlic.eval.sim: every activation fake-quantized with the integer
model's exponents and mux, weights float) is compared with the float model on
every Kodak image: PSNR difference (mean and worst image) and ideal-rate
difference.  The same is measured on a held-out set that played no part in
choosing the default h: the CBSD68 images that are not calibration images
(``--heldout``).  Writes a markdown report (the numbers are what this run measured);
the part of ``--out`` from the KEEP line on (docs/CALIBRATION.md's sections that
this tool does not measure) is kept.
"""
from __future__ import annotations

import argparse
import glob
import os
import sys
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
#: the line from which the existing report is kept (sections not generated here)
KEEP = "<!-- kept by tools/act_headroom.py: the sections below are not generated -->"


def main(argv=None) -> int:
    shared = os.path.join(os.path.dirname(REPO), "shared", "data")
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="hp5-mse-q2", help="fxlic/zoo/<model>.float.safetensors")
    ap.add_argument("--bits", default="0,1,2")
    ap.add_argument("--kodak", default=os.path.join(shared, "kodak"))
    ap.add_argument("--calib", default=os.path.join(shared, "train", "CBSD68"))
    ap.add_argument("--heldout", default=os.path.join(shared, "train", "CBSD68"),
                    help="held-out images: the PNGs of this directory that are not calibration images "
                         "('' to skip)")
    ap.add_argument("--out", default=os.path.join(REPO, "docs", "CALIBRATION.md"))
    args = ap.parse_args(argv)

    from fxlic.commands.quantize import _load_calibration
    from fxlic.eval import sim
    from fxlic.io.floatfile import load_weights
    from fxlic.io.images import read_image
    from fxlic.metrics import psnr
    from fxlic.model.build import build_int_model, calibrate
    from fxlic.quant.activations import RELU_HEADROOM_BITS

    fm = load_weights(os.path.join(REPO, "fxlic", "zoo", f"{args.model}.float.safetensors"))
    ns = argparse.Namespace(calib=args.calib, n_calib=9, crop=512, quiet=True)
    paths, images, _ = _load_calibration(ns, fm.arch)
    cal = calibrate(fm, images)
    kodak = sorted(glob.glob(os.path.join(args.kodak, "*.png")))
    if not kodak:
        print(f"no PNG images in {args.kodak}", file=sys.stderr)
        return 1
    calib_set = {os.path.realpath(p) for p in paths}
    heldout = [p for p in sorted(glob.glob(os.path.join(args.heldout, "*.png"))) if os.path.realpath(p) not in calib_set] \
        if args.heldout else []
    engine = sim.float_engine()
    bits = [int(b) for b in args.bits.split(",")]
    models = {h: build_int_model(fm, cal, relu_headroom=h) for h in bits}

    def measure(files, label):
        """Rows (h, mean dB, worst dB, worst image, mean rate %) over ``files``."""
        pix = [read_image(p) for p in files]
        base = [sim.forward_codec(fm, px, engine=engine) for px in pix]
        rows = []
        for h in bits:
            act = sim.activation_params(models[h])
            d_db, d_rate = [], []
            for px, (r0, b0, _) in zip(pix, base):
                r1, b1, _ = sim.forward_codec(fm, px, act=act, im=models[h], engine=engine)
                d_db.append(psnr(px, r1) - psnr(px, r0))
                d_rate.append(b1 / b0 - 1)
            worst = int(np.argmin(d_db))
            rows.append((h, float(np.mean(d_db)), float(d_db[worst]), os.path.basename(files[worst]),
                         100 * float(np.mean(d_rate))))
            print(f"{label} h={h}: mean {rows[-1][1]:+.3f} dB, worst {rows[-1][2]:+.3f} dB ({rows[-1][3]}), "
                  f"rate {rows[-1][4]:+.2f} %", flush=True)
        return rows

    def table(rows):
        out = ["| headroom h (bits) | mean PSNR change | worst image | mean ideal-rate change |", "|---|---|---|---|"]
        for h, m, w, wn, r in rows:
            mark = " (default)" if h == RELU_HEADROOM_BITS else ""
            out.append(f"| {h}{mark} | {m:+.3f} dB | {w:+.3f} dB ({wn}) | {r:+.2f} % |")
        return out

    rows = measure(kodak, "kodak")
    held_rows = measure(heldout, "held-out") if heldout else []
    L = ["# Calibration", "", "## ReLU activation headroom", "",
         f"Generated {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} by `python tools/act_headroom.py "
         f"--model {args.model}` (float model fxlic/zoo/{args.model}.float.safetensors, "
         f"calibration on {len(paths)} images of {os.path.basename(args.calib)}).", "",
         "Activation-only simulation (weights float, every activation quantized with the integer model's "
         "exponents and NLQ mux; y_hat and z_hat as the integer codec) against the float model. "
         "h = bits of range above the calibrated maximum of each ReLU channel. The rate difference includes "
         "the part that does not depend on h (h_a reads the integer y_hat instead of the continuous y).", "",
         f"### Kodak ({len(kodak)} images)", ""] + table(rows)
    if held_rows:
        L += ["", f"### Held-out: {len(heldout)} images of {os.path.basename(os.path.normpath(args.heldout))} "
              "that are not calibration images", "",
              "These images played no part in choosing the default h (they are training images of the float "
              "model, which does not matter for this question: what is measured is the clipping of activation "
              "ranges calibrated on other images)."] + [""] + table(held_rows)
    L += ["", "Nine calibration images (the paper's number) miss content such as the saturated reds and "
          "yellows of kodim03/04/15/23: with h = 0 single ReLU channels of g_a / g_s clip on those images. "
          "One bit of headroom removes that clipping for one bit less precision in the ReLU layers; the "
          "hyper path's signed activations keep their calibrated ranges (more headroom there costs rate). "
          "`fxlic quantize --relu-headroom BITS` chooses h; the value is stored in the model's metadata. The default h = 1 was chosen from the Kodak measurement (the evaluation images; session 2's weights); the held-out table checks that choice on images that did not take part in it."]
    kept = ""
    if os.path.exists(args.out):
        with open(args.out, encoding="utf-8") as fh:
            old = fh.read()
        kept = old[old.index(KEEP):] if KEEP in old else ""
    with open(args.out, "w", encoding="utf-8") as fh:
        fh.write("\n".join(L) + "\n" + ("\n" + kept if kept else ""))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
