#!/usr/bin/env python
"""Regenerate docs/RESULTS.md and docs/figures/*.png with one command, or
the headline table in minutes with --quick:

    pip install '.[eval]'
    export FXLIC_KODAK=/path/to/kodak                 # the 24 Kodak PNGs (or --kodak DIR)
    python tools/paper_tables.py --quick              # headline table on 6 Kodak images, < 10 min on 2 cores
    export FXLIC_CALIB=/path/to/CBSD68                # calibration images (or --calib DIR)
    python tools/paper_tables.py --jobs 2             # the full report: computes what the cache lacks
    python tools/paper_tables.py --report-only        # rewrite the report from the cache only

--quick evaluates the shipped models (fxlic/zoo/*.fxq, real .fxl bitstreams),
their float models (found by sha256 in --weights-dir or fxlic/zoo) and the
classical codecs JPEG, JPEG 2000, WebP, AVIF and HEVC intra (those installed)
on --images Kodak images spread over the set (default 6), in one process
pool with one progress bar, and writes the headline tables, the RD figures
and CompressAI-layout JSON files to --out-dir (default ./paper-tables-quick);
it quantizes nothing, so it needs no calibration images.

The full run evaluates on the Kodak images:
  * every float model of --weights-dir (ideal bpp, float32 forward) and its
    integer model (real .fxl bitstreams, numba backend) on --images images;
  * classical codecs (Pillow JPEG, imagecodecs JPEG 2000 / WebP / AVIF / JPEG XL,
    pillow-heif HEVC intra) at a sweep of qualities;
  * the ablations of the paper's tables on the first --ablation-images images:
    weights-only and activations-only quantization (Table VI), WCFT (Table VII),
    activation LQ vs NLQ+mux (Table VIII), the weight quantizers of Table I and
    Lin et al.'s scheme, the bit-depth of y (Table V);
and counts Table IX (memory) and Table X (energy) from the layer list.

Inputs (each a flag or an environment variable, checked before anything runs):
--kodak / FXLIC_KODAK, --calib / FXLIC_CALIB (full run, only when a model must
be quantized), --weights-dir / FXLIC_WEIGHTS (float models besides the shipped
fxlic/zoo/*.float.safetensors, and the *-nowcft exports; default tools/weights), --cache /
FXLIC_EVAL_CACHE (default ~/.cache/fxlic-eval).  Every per-image result is
cached (fxlic.eval.cache); integer models are quantized into <cache>/models
unless the shipped fxlic/zoo/<name>.fxq was made from the same weights.

This script is the command line (options, input checks, the run); the tables,
the ablation runners and the report are fxlic.eval.tables.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from fxlic.errors import CliError  # noqa: E402
from fxlic.eval.cache import default_dir  # noqa: E402
from fxlic.eval.codecs import CODECS, available  # noqa: E402
# float_models, shipped_models, lineage_steps, curves: re-exported for callers and tests of this script
from fxlic.eval.tables.context import Ctx, float_models, shipped_models, spread  # noqa: E402,F401
from fxlic.eval.tables.models import lineage_steps  # noqa: E402,F401
from fxlic.eval.tables.plan import build_specs, compute_all, compute_quick  # noqa: E402
from fxlic.eval.tables.quick import write_quick_report  # noqa: E402
from fxlic.eval.tables.rd import curves  # noqa: E402,F401
from fxlic.eval.tables.report import write_report  # noqa: E402
from fxlic.parallel import SCHEDULER_ENV  # noqa: E402

DEFAULT_CODECS = "jpeg,jpeg2000,webp,avif,jpegxl,hevc"
#: --quick: the headline anchors and the number of Kodak images
QUICK_CODECS = "jpeg,jpeg2000,webp,avif,hevc"
QUICK_IMAGES = 6


def _makedirs(path, what):
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as e:
        raise CliError(f"{what} {path}: cannot create ({e.strerror})") from None


def check_inputs(args):
    """Every input path, before anything runs; returns the test images."""
    from fxlic.io.images import ImageError, list_images
    if not args.kodak:
        raise CliError("no Kodak images: pass --kodak DIR or set FXLIC_KODAK (the directory of the 24 Kodak PNGs)")
    try:
        every = list_images(args.kodak)
    except ImageError as e:
        raise CliError(f"--kodak: {e} (pass --kodak DIR or set FXLIC_KODAK)") from None
    n = args.images if args.images is not None else (QUICK_IMAGES if args.quick else 24)
    if n < 1 or args.ablation_images < 1:
        raise CliError("--images and --ablation-images must be at least 1")
    if args.jobs < 1:
        raise CliError("--jobs must be at least 1")
    if not os.path.isdir(args.weights_dir) and (args.weights_explicit or not args.quick):
        raise CliError(f"--weights-dir {args.weights_dir}: no such directory (or set FXLIC_WEIGHTS)")
    _makedirs(args.cache, "--cache")
    _makedirs(os.path.dirname(os.path.abspath(args.out)), "--out: directory")
    _makedirs(args.figures, "--figures")
    return spread(every, n) if args.quick else every[:n]


def check_calib(ctx):
    """Full run: calibration images are needed only for models still to quantize."""
    from fxlic.io.images import ImageError, list_images
    missing = ctx.missing_models(build_specs(ctx))
    if not missing:
        return
    why = f"{len(missing)} integer model(s) are neither shipped nor in the cache and must be quantized"
    if not ctx.args.calib:
        raise CliError(f"{why}: pass --calib DIR or set FXLIC_CALIB (calibration images, e.g. CBSD68)")
    try:
        list_images(ctx.args.calib)
    except ImageError as e:
        raise CliError(f"--calib: {e} ({why}; pass --calib DIR or set FXLIC_CALIB)") from None


def parse_args(argv=None):
    shared = os.path.join(os.path.dirname(REPO), "shared", "data")

    def fallback(env, path):
        return os.environ.get(env) or (path if os.path.isdir(path) else None)
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true",
                   help=f"the headline tables only: shipped models, their float models, "
                        f"{QUICK_CODECS.replace(',', ', ')} on {QUICK_IMAGES} Kodak images (minutes)")
    p.add_argument("--weights-dir", default=None,
                   help="float models (default $FXLIC_WEIGHTS or tools/weights)")
    p.add_argument("--kodak", default=fallback("FXLIC_KODAK", os.path.join(shared, "kodak")),
                   help="the Kodak images (default $FXLIC_KODAK)")
    p.add_argument("--calib", default=fallback("FXLIC_CALIB", os.path.join(shared, "train", "CBSD68")),
                   help="calibration images for models quantized here (default $FXLIC_CALIB)")
    p.add_argument("--images", type=int, default=None,
                   help=f"Kodak images for the main RD (default 24; --quick: {QUICK_IMAGES}, spread over the set)")
    p.add_argument("--ablation-images", type=int, default=6, help="images for the ablations (default 6)")
    p.add_argument("--codecs", default=None, help=f"classical codecs (default {DEFAULT_CODECS}; "
                                                  f"--quick: {QUICK_CODECS})")
    p.add_argument("--cache", default=default_dir(), help="result cache (default $FXLIC_EVAL_CACHE or "
                                                          "~/.cache/fxlic-eval)")
    p.add_argument("--jobs", type=int, default=None, help="worker processes (default 1; --quick: the CPU count, "
                                                          "at most 8)")
    p.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="run evaluations and calibrations on a Dask distributed cluster, e.g. tcp://host:8786 "
                        "(default $FXLIC_SCHEDULER; pip install '.[dask]'; the workers must see the same "
                        "paths); results are identical to a local run")
    p.add_argument("--out", default=None, help="the report (default docs/RESULTS.md; --quick: "
                                               "OUT_DIR/RESULTS-quick.md)")
    p.add_argument("--figures", default=None, help="figures directory (default docs/figures; --quick: "
                                                   "OUT_DIR/figures)")
    p.add_argument("--out-dir", default="paper-tables-quick", help="--quick: where everything goes "
                                                                   "(default ./paper-tables-quick)")
    p.add_argument("--all-models", action="store_true", help="figures: every model, not only the shipped ones")
    p.add_argument("--report-only", action="store_true", help="no computation: report what the cache has")
    p.add_argument("-q", "--quiet", action="store_true")
    args = p.parse_args(argv)
    args.weights_explicit = bool(args.weights_dir or os.environ.get("FXLIC_WEIGHTS"))
    args.weights_dir = args.weights_dir or os.environ.get("FXLIC_WEIGHTS") or os.path.join(REPO, "tools", "weights")
    if args.scheduler or os.environ.get(SCHEDULER_ENV):  # Dask workers open the paths on their own machines
        for k in ("kodak", "calib", "weights_dir", "cache"):
            if getattr(args, k):
                setattr(args, k, os.path.abspath(getattr(args, k)))
    if args.jobs is None:
        args.jobs = max(1, min(8, os.cpu_count() or 1)) if args.quick else 1
    if args.quick:
        args.out = args.out or os.path.join(args.out_dir, "RESULTS-quick.md")
        args.figures = args.figures or os.path.join(args.out_dir, "figures")
    else:
        args.out = args.out or os.path.join(REPO, "docs", "RESULTS.md")
        args.figures = args.figures or os.path.join(REPO, "docs", "figures")
    codecs = args.codecs if args.codecs is not None else (QUICK_CODECS if args.quick else DEFAULT_CODECS)
    args.codecs = [c.strip() for c in codecs.split(",") if c.strip()]
    bad = [c for c in args.codecs if c not in CODECS]
    if bad:
        raise CliError(f"unknown codec(s) {', '.join(bad)}; choose from {', '.join(CODECS)}")
    return args


def command_line(args):
    cmd = "python tools/paper_tables.py" + (" --quick" if args.quick else "")
    default_n = QUICK_IMAGES if args.quick else 24
    if args.images is not None and args.images != default_n:
        cmd += f" --images {args.images}"
    if not args.quick and args.ablation_images != 6:
        cmd += f" --ablation-images {args.ablation_images}"
    return cmd


def _main(argv=None):
    t_start = time.time()
    args = parse_args(argv)
    args.t_start = t_start
    images = check_inputs(args)
    args.skipped_codecs = []
    if not args.report_only:
        ok = {c: available(c) for c in args.codecs}
        args.skipped_codecs = [c for c in args.codecs if not ok[c]]
        args.codecs = [c for c in args.codecs if ok[c]]
        if args.skipped_codecs:
            print(f"paper_tables: codec(s) {', '.join(args.skipped_codecs)} not installed, left out of the "
                  "report (pip install '.[eval]' installs them)", file=sys.stderr)
    ctx = Ctx(args, images)
    try:
        return _run(ctx, args)
    finally:
        if not isinstance(ctx.jobs, int):
            ctx.jobs.close()


def _run(ctx, args):
    if args.quick:
        if not ctx.models:
            raise CliError("no shipped model in fxlic/zoo to evaluate")
        missing = [n for n, _ in ctx.models if n not in ctx.weights]
        if missing:
            print(f"paper_tables: note: no float weights found for {', '.join(missing)} (looked in "
                  f"{args.weights_dir} and fxlic/zoo); integer results only", file=sys.stderr)
        if not args.report_only:
            compute_quick(ctx)
        write_quick_report(ctx, command_line(args))
        return 0
    if not args.report_only:
        check_calib(ctx)
        compute_all(ctx)
    write_report(ctx, command_line(args))
    return 0


def main(argv=None):
    try:
        return _main(argv)
    except CliError as e:
        print(f"paper_tables: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
