#!/usr/bin/env python3
"""Build the shipped models (fxlic/zoo/*.fxq) from trained float weights.

    python tools/make_zoo.py [NAMES] [--calib ../shared/data/train/CBSD68]
    python tools/make_zoo.py --from OUT [NAMES]      # install a training campaign's exports
    python tools/make_zoo.py --check [NAMES]         # rebuild in a temporary folder, compare bytes

Each shipped model's float weights live once in the repository, as the package's
fp16 copy ``fxlic/zoo/<name>.float.safetensors`` (read by ``fxlic demo`` and the
result tables); its pre-WCFT export ``tools/weights/<name>-nowcft.safetensors`` is
where training continues from and the WCFT ablation's input.  ``--from OUT`` first
copies ``OUT/<name>.safetensors`` and ``OUT/<name>-nowcft.safetensors`` (written by
tools/train_campaign.py) into those two places.  Each float model is then quantized
with CW-NLQ weights, NLQ+mux activations and offset latents (SPEC O5), calibrated on the first 9 images of the
calibration directory (training images, none from Kodak), and written to
``fxlic/zoo/<name>.fxq``.  Deterministic: the same weights give byte-identical .fxq files;
``--check`` verifies that (exit status 1 if a rebuilt model differs from the shipped one),
e.g. after a change to calibration (``--calib-forward reference`` rebuilds with the
reference float forward, docs/CALIBRATION.md).
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
ZOO = ["hp5-mse-q0", "hp5-mse-q1", "hp5-mse-q2", "fact-mse-q1", "hp5-msssim-q1", "hp5-msssim-q2"]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--weights-dir", default=os.path.join(HERE, "weights"),
                    help="where the pre-WCFT exports (<name>-nowcft.safetensors) live")
    ap.add_argument("--from", dest="src_dir", default=None, metavar="OUT",
                    help="install OUT/<name>.safetensors and OUT/<name>-nowcft.safetensors first")
    ap.add_argument("--calib", default=os.path.join(ROOT, "..", "shared", "data", "train", "CBSD68"))
    ap.add_argument("--out-dir", default=os.path.join(ROOT, "fxlic", "zoo"))
    ap.add_argument("--n-calib", type=int, default=9)
    ap.add_argument("--latents", default="auto", choices=("auto", "integer", "offset"),
                    help="latent semantics of the integer models (fxlic quantize --latents; SPEC O5)")
    ap.add_argument("--ha-input", default="grid", choices=("grid", "integer"),
                    help="what HA0 reads in an offset-latent hyperprior (fxlic quantize --ha-input; SPEC O6)")
    ap.add_argument("--jobs", type=int, default=1, help="calibration processes (fxlic quantize --jobs)")
    ap.add_argument("--calib-forward", default="fast", choices=("fast", "reference"),
                    help="calibration float forward (fxlic quantize --calib-forward)")
    ap.add_argument("--check", action="store_true",
                    help="rebuild into a temporary folder and compare with the shipped .fxq files")
    ap.add_argument("names", nargs="*", help=f"models to build (default: all of {', '.join(ZOO)})")
    args = ap.parse_args(argv)
    if args.check and args.src_dir:
        ap.error("--check rebuilds the shipped models from their own weights; it takes no --from")
    sys.path.insert(0, ROOT)
    from fxlic.cli import main as fxlic_main

    made, differ = 0, []
    os.makedirs(args.out_dir, exist_ok=True)
    tmp = tempfile.TemporaryDirectory(prefix="make_zoo-") if args.check else None
    for name in args.names or ZOO:
        pkg = os.path.join(args.out_dir, f"{name}.float.safetensors")
        if args.src_dir:
            src = os.path.join(args.src_dir, f"{name}.safetensors")
            if not os.path.exists(src):
                print(f"skip {name}: {src} not found")
                continue
            shutil.copyfile(src, pkg)
            nowcft = os.path.join(args.src_dir, f"{name}-nowcft.safetensors")
            if os.path.exists(nowcft):
                shutil.copyfile(nowcft, os.path.join(args.weights_dir, f"{name}-nowcft.safetensors"))
        if not os.path.exists(pkg):
            print(f"skip {name}: {pkg} not found")
            continue
        shipped = os.path.join(args.out_dir, f"{name}.fxq")
        out = os.path.join(tmp.name, f"{name}.fxq") if tmp else shipped
        rc = fxlic_main(["quantize", "--weights", pkg, "--calib", args.calib, "--out", out,
                         "--n-calib", str(args.n_calib), "--latents", args.latents,
                         "--ha-input", args.ha_input, "--jobs", str(args.jobs), "--calib-forward", args.calib_forward, "-q"])
        if rc:
            return rc
        made += 1
        if tmp:
            with open(out, "rb") as a, open(shipped, "rb") as b:
                same = a.read() == b.read()
            differ += [] if same else [name]
            print(f"{name}: {'identical to' if same else 'DIFFERS from'} {shipped}")
        else:
            print(f"{name}: {out} ({os.path.getsize(out):,} bytes)")
    if tmp:
        tmp.cleanup()
        want = proven_list(args.out_dir)
        with open(os.path.join(args.out_dir, "proven.json"), encoding="utf-8") as f:
            have = f.read()
        if have != want:
            differ.append("proven.json")
            print("proven.json DIFFERS from the shipped models' full checks")
        print(f"{made} model(s) rebuilt, {len(differ)} differ" + (f": {', '.join(differ)}" if differ else ""))
        return 1 if differ or not made else 0
    with open(os.path.join(args.out_dir, "proven.json"), "w", encoding="utf-8") as f:
        f.write(proven_list(args.out_dir))
    print(f"{made} model(s) written to {args.out_dir}; proven.json lists every .fxq there")
    return 0 if made else 1


def proven_list(zoo_dir: str) -> str:
    """fxlic/zoo/proven.json: the content hash of every .fxq in ``zoo_dir`` after the
    loader's full check (K2 included), so loading a shipped model skips K2
    (fxlic.io.modelcheck; tests/test_zoo_proven.py checks every entry again)."""
    import json

    from fxlic.io import modelcheck
    from fxlic.io.modelfile import model_hash, read_model_file
    from fxlic.spec import SPEC_VERSION

    models = {}
    for fn in sorted(os.listdir(zoo_dir)):
        if fn.endswith(".fxq"):
            im, _ = read_model_file(os.path.join(zoo_dir, fn))  # K2 in full unless already listed
            h = model_hash(im)
            if h in modelcheck.proven_hashes():
                modelcheck.check_model(im)  # listed: the loader skipped K2, so prove it again
            models[fn[:-4]] = h
    return json.dumps({"spec_version": SPEC_VERSION,
                       "about": "content hashes of the shipped models that passed the full loader "
                                "check (written by tools/make_zoo.py)",
                       "models": models}, indent=1) + "\n"


if __name__ == "__main__":
    sys.exit(main())
