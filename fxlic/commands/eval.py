"""``fxlic eval``: rate-distortion on a directory of images (Kodak) for
integer models (.fxq, real bitstreams), float models (ideal bpp) and classical
codecs, with BD-rate against each anchor.  Needs the ``eval`` extra
(matplotlib, imagecodecs, bjontegaard, pillow-heif).  Results are cached
(``--cache``, default ~/.cache/fxlic-eval), so a rerun is quick.

Without ``--models`` every shipped model is evaluated, without ``--codecs``
every classical codec that is installed.  The images are ``--images DIR``,
else $FXLIC_KODAK.  ``--out DIR`` writes per-image results (CSV) and one JSON
per curve in CompressAI's ``eval_model`` layout (fxlic/eval/export.py).

What the cache lacks runs on a local process pool (``--jobs N``, default one
process per CPU unless the work is only seconds) or on a Dask cluster (``--scheduler ADDRESS`` or
$FXLIC_SCHEDULER; fxlic/parallel.py); the results are the same either way.

The full paper-table report is ``python tools/paper_tables.py``.
"""
from __future__ import annotations

import argparse
import os
import re
import sys

from ..errors import CliError

#: classical codecs evaluated when --codecs is not given (those installed)
DEFAULT_CODECS = ("jpeg", "jpeg2000", "webp", "avif", "jpegxl", "hevc")


def _image_dir_and_count(args):
    """(directory, count) from --images / --images-dir / -n / $FXLIC_KODAK."""
    count = args.max_images
    images = args.images
    if images is not None and re.fullmatch(r"\d+", images) and not os.path.isdir(images):
        # the pre-0.x meaning of --images N (a count); kept working
        print(f"note: --images takes the image directory now; reading {images} as -n {images}",
              file=sys.stderr)
        count = count or int(images)
        images = None
    directory = args.images_dir or images or os.environ.get("FXLIC_KODAK")
    if not directory:
        raise CliError("no test images: pass --images DIR (e.g. the 24 Kodak PNGs) or set FXLIC_KODAK")
    return directory, count


def _model_runs(args):
    """[(kind, path, arch name)] of the integer and float models to evaluate."""
    from ..io.floatfile import WeightsError, load_weights
    from ..io.modelfile import ModelFileError, list_zoo, read_model_file, resolve_model

    models = [p for p in list_zoo()] if args.models is None else args.models
    runs = []
    for kind, paths in (("int", models), ("float", args.float or [])):
        for path in paths:
            try:
                if kind == "int":
                    path = resolve_model(path)
                    arch = read_model_file(path)[0].arch.name
                else:
                    arch = load_weights(path).arch.name
            except (ModelFileError, WeightsError) as e:
                raise CliError(str(e)) from None
            runs.append((kind, os.path.abspath(path), arch))  # absolute: Dask workers open it too
    return runs


def _codec_names(args):
    from ..eval import codecs as C
    if args.codecs is None:
        names, explicit = list(DEFAULT_CODECS), False
    else:
        names, explicit = [c.strip() for c in args.codecs.split(",") if c.strip()], True
    for name in names:
        if name not in C.CODECS:
            raise CliError(f"unknown codec {name!r}; choose from {', '.join(C.CODECS)}")
    ok = [n for n in names if C.available(n)]
    missing = [n for n in names if n not in ok]
    if missing:
        print(f"note: {', '.join(missing)} not available here (pip install 'fxlic[eval]')"
              + ("" if explicit else "; left out"), file=sys.stderr)
    return ok


def _curves(args, images, cache):
    """Evaluate everything in one pass (one progress bar, one pool); returns the
    curves: {label, kind, points: [(name, summary)], records: {name: [rec]}}."""
    from .. import __version__
    from ..eval import codecs as C
    from ..eval.runner import evaluate, summarize

    plan = []  # (curve key, point name, tasks)
    meta = {}
    for kind, path, arch in _model_runs(args):
        key = (kind, arch)
        meta.setdefault(key, {"label": f"fxlic {kind} {arch}", "kind": kind, "models": []})
        meta[key]["models"].append(os.path.basename(path))
        k = "model" if kind == "int" else "weights"
        extra = {}
        if kind == "float":
            meta[key]["latents"] = args.float_latents
            if args.float_latents != "integer":
                extra = {"latents": args.float_latents}
        plan.append((key, os.path.basename(path), [dict({"kind": kind, k: path, "image": i}, **extra)
                                                    for i in images]))
    for name in _codec_names(args):
        c = C.CODECS[name]
        key = ("classical", name)
        meta[key] = {"label": c.label, "kind": "classical", "codec": name}
        for q in c.qualities:
            plan.append((key, f"q={q}", [{"kind": "classical", "codec": name, "q": q, "image": i} for i in images]))
    if not plan:
        raise CliError("nothing to evaluate: no shipped model, no --models / --float and no codec available")
    tasks = [t for _, _, ts in plan for t in ts]
    recs = evaluate(tasks, cache, args.executor or args.jobs, not args.quiet, f"eval {len(images)} image(s)")
    curves, k = {}, 0
    for key, point, ts in plan:
        r = recs[k:k + len(ts)]
        k += len(ts)
        c = curves.setdefault(key, dict(meta[key], points=[], records={}))
        c["points"].append((point, summarize(r)))
        c["records"][point] = r
    out = list(curves.values())
    for c in out:
        if c["kind"] != "classical":
            c["points"].sort(key=lambda p: p[1]["bpp"])
        c["description"] = _description(c, len(images), __version__)
    return out


def _description(c, n, version):
    from ..eval.codecs import CODECS, library_version
    if c["kind"] == "int":
        return (f"fxlic {version} 8-bit integer codec (numba backend), bpp of the real .fxl bitstream; "
                f"{n} image(s); models {', '.join(c['models'])}")
    if c["kind"] == "float":
        rule = "y_hat = mean + round(y - mean)" if c.get("latents") == "offset" else "y_hat = round(y)"
        return (f"Inference (estimation): fxlic {version} float32 forward ({rule}), ideal bpp (-log2 p); "
                f"{n} image(s); weights {', '.join(c['models'])}")
    lib = library_version(CODECS[c["codec"]].library)
    return f"{c['label']}, {lib}, bpp of the whole file; {n} image(s)"


def _write_outputs(args, images, curves):
    from ..eval.export import compressai_doc, per_image_rows, write_compressai, write_json, write_per_image_csv
    os.makedirs(args.out, exist_ok=True)
    rows = []
    for c in curves:
        for point, _ in c["points"]:
            rows += per_image_rows(c["label"], point, c["records"][point])
    write_per_image_csv(os.path.join(args.out, "per_image.csv"), rows)
    write_json(os.path.join(args.out, "results.json"), _summary_json(images, curves))
    docs = []
    for c in curves:
        name = c["label"] if c["kind"] == "classical" else f"fxlic-{c['kind']}-{c['label'].split()[-1]}"
        docs.append(compressai_doc(name, c["description"], [c["records"][p] for p, _ in c["points"]]))
    paths = write_compressai(os.path.join(args.out, "compressai"), docs)
    print(f"wrote {os.path.join(args.out, 'per_image.csv')}, results.json and {len(paths)} CompressAI-layout "
          f"JSON file(s) in {os.path.join(args.out, 'compressai')}")


def _summary_json(images, curves):
    return {"images": [os.path.basename(i) for i in images],
            "curves": [{k: v for k, v in c.items() if k != "records"} for c in curves],
            "per_image": {c["label"]: c["records"] for c in curves}}


def _scheduler(args):
    """The Dask executor of --scheduler / $FXLIC_SCHEDULER, connected (and its
    workers checked) before any work starts; None for a local run."""
    from ..parallel import SCHEDULER_ENV, DaskExecutor
    address = args.scheduler or os.environ.get(SCHEDULER_ENV)
    return DaskExecutor(address) if address else None


def _check_output_paths(args):
    for p in (args.json, args.plot):
        if p:
            d = os.path.dirname(os.path.abspath(p))
            if not os.path.isdir(d):
                raise CliError(f"{p}: directory {d} does not exist")
    if args.out and os.path.exists(args.out) and not os.path.isdir(args.out):
        raise CliError(f"{args.out}: exists and is not a directory")
    if args.out and not os.path.isdir(os.path.dirname(os.path.abspath(args.out))):
        raise CliError(f"{args.out}: parent directory does not exist")


def run(args) -> int:
    from ..eval.bd import bd_quality, bd_rate
    from ..eval.cache import Cache, default_dir
    from ..io.images import ImageError, list_images

    from ..parallel import check_jobs
    check_jobs(args.jobs)
    directory, count = _image_dir_and_count(args)
    try:
        images = [os.path.abspath(p) for p in list_images(directory, count)]
    except ImageError as e:
        raise CliError(f"images: {e}") from None
    try:
        import bjontegaard  # noqa: F401
    except ImportError:
        raise CliError("fxlic eval needs the eval extra: pip install 'fxlic[eval]'") from None
    _check_output_paths(args)
    cache = Cache(None if args.no_cache else (args.cache or default_dir()))
    args.executor = _scheduler(args)
    try:
        curves = _curves(args, images, cache)
    finally:
        if args.executor is not None:
            args.executor.close()
    metric = "msssim_db" if args.metric == "msssim" else "psnr"
    print(f"{len(images)} image(s) of {directory}; cache {cache.directory or 'off'} "
          f"({cache.hits} hits, {cache.misses} computed)")
    for c in curves:
        print(f"\n{c['label']}")
        print(f"  {'point':28s} {'bpp':>8s} {'PSNR':>8s} {'MS-SSIM':>8s} {'MS-SSIM dB':>10s}")
        for name, s in c["points"]:
            print(f"  {name:28s} {s['bpp']:8.4f} {s['psnr']:8.3f} {s.get('msssim', float('nan')):8.5f} "
                  f"{s.get('msssim_db', float('nan')):10.3f}")
    ours = [c for c in curves if c["kind"] == "int"] + [c for c in curves if c["kind"] == "float"]
    anchors = [c for c in curves if c["kind"] != "int"]
    if ours and anchors:
        print(f"\nBD ({args.metric}, pchip): test vs anchor")
        for t in ours:
            rt = [s["bpp"] for _, s in t["points"]]
            qt = [s.get(metric, float("nan")) for _, s in t["points"]]
            for a in anchors:
                if a is t:
                    continue
                ra = [s["bpp"] for _, s in a["points"]]
                qa = [s.get(metric, float("nan")) for _, s in a["points"]]
                r, q = bd_rate(ra, qa, rt, qt), bd_quality(ra, qa, rt, qt)
                fr = "n/a" if r is None else f"{r:+.2f} %"
                fq = "n/a" if q is None else f"{q:+.3f} dB"
                print(f"  {t['label']} vs {a['label']}: BD-rate {fr}, BD-{args.metric} {fq}")
    if args.json:
        from ..eval.export import write_json
        write_json(args.json, _summary_json(images, curves))
    if args.out:
        _write_outputs(args, images, curves)
    if args.plot:
        from ..eval.plots import rd_plot
        rd_plot([{"label": c["label"], "kind": c["kind"], "codec": c.get("codec"),
                  "bpp": [s["bpp"] for _, s in c["points"]],
                  "q": [s.get(metric, float("nan")) for _, s in c["points"]]} for c in curves], args.plot, metric,
                f"{len(images)} image(s) of {os.path.basename(os.path.normpath(directory))}")
        print(f"wrote {args.plot}")
    return 0


def register(sub):
    s = sub.add_parser("eval", help="rate-distortion of models vs classical codecs on a set of images (BD-rate)",
                       description=__doc__.split("\n\n")[0])
    s.add_argument("--models", nargs="*", metavar="M", default=None,
                   help="integer models, paths or shipped names (default: every shipped model; "
                        "--models with no name: none)")
    s.add_argument("--float", nargs="*", metavar="W", help="float weights (.safetensors/.npz)")
    s.add_argument("--float-latents", choices=("offset", "integer"), default="offset",
                   help="how the float models round y and z: offset (default; CompressAI's inference, "
                        "y_hat = mean + round(y - mean), the rule of fxlic's offset-latent integer models, "
                        "SPEC O5) or integer (round(y))")
    s.add_argument("--codecs", default=None, metavar="LIST",
                   help="comma-separated classical codecs: jpeg,jpeg444,jpeg2000,webp,avif,jpegxl,hevc "
                        f"(default: those of {','.join(DEFAULT_CODECS)} installed; '' for none)")
    s.add_argument("--images", default=None, metavar="DIR", help="directory of test images (default $FXLIC_KODAK)")
    s.add_argument("--images-dir", default=None, metavar="DIR", help=argparse.SUPPRESS)
    s.add_argument("-n", "--max-images", type=int, default=None, metavar="N", help="only the first N images")
    s.add_argument("--metric", choices=("psnr", "msssim"), default="psnr")
    s.add_argument("--cache", default=None, metavar="DIR",
                   help="cache directory (default $FXLIC_EVAL_CACHE or ~/.cache/fxlic-eval)")
    s.add_argument("--no-cache", action="store_true")
    from ..parallel import add_arguments as _parallel_arguments
    _parallel_arguments(s, "evaluations", auto="one per CPU when the work would take more than a few seconds")
    s.add_argument("--out", default=None, metavar="DIR",
                   help="write per_image.csv, results.json and compressai/<curve>.json (CompressAI layout)")
    s.add_argument("--json", default=None, metavar="OUT", help="write the curves (and per-image records) as JSON")
    s.add_argument("--plot", default=None, metavar="OUT.png", help="write an RD plot")
    s.add_argument("-q", "--quiet", action="store_true")
    s.set_defaults(func=run, runs_kernels=True)  # fxlic.cli: Numba set-up without the BLAS probe

