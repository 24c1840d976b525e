"""``fxlic eval``: rate-distortion on a directory of images (Kodak) for
integer models (.fxq, real bitstreams), float models (ideal bpp) and classical
codecs, with BD-rate against each anchor.  Needs the ``eval`` extra
(matplotlib, imagecodecs, bjontegaard; pillow-heif for HEVC).  Results are
cached (``--cache``, default ~/.cache/fxlic-eval), so a rerun is quick.

The full paper-table report is ``python tools/paper_tables.py``.
"""
from __future__ import annotations

import json
import os
import sys

from ..errors import CliError


def _curves(args, images, cache):
    from ..eval import codecs as C
    from ..eval.runner import evaluate, summarize

    curves = []
    groups = {}
    from ..io.floatfile import WeightsError, load_weights
    from ..io.modelfile import ModelFileError, load_model, resolve_model

    runs = [("int", "model", p) for p in args.models or []]
    runs += [("float", "weights", p) for p in args.float or []]
    for kind, key, path in runs:
        try:
            if kind == "int":
                path = resolve_model(path)
                arch = load_model(path).arch.name
            else:
                arch = load_weights(path).arch.name
        except (ModelFileError, WeightsError) as e:
            raise CliError(str(e)) from None
        recs = evaluate([{"kind": kind, key: path, "image": i} for i in images], cache, args.jobs,
                        not args.quiet, f"{kind} {os.path.basename(path)}")
        groups.setdefault((kind, arch), []).append((os.path.basename(path), summarize(recs)))
    for (kind, arch), pts in groups.items():
        pts.sort(key=lambda p: p[1]["bpp"])
        curves.append({"label": f"fxlic {kind} {arch}", "kind": kind, "points": pts})
    names = [c for c in (args.codecs.split(",") if args.codecs else []) if c]
    for name in names:
        if name not in C.CODECS:
            raise CliError(f"unknown codec {name!r}; choose from {', '.join(C.CODECS)}")
        if not C.available(name):
            print(f"note: {name} is not available here (pip install 'fxlic[eval]' pillow-heif)",
                  file=sys.stderr)
            continue
        c = C.CODECS[name]
        tasks = [{"kind": "classical", "codec": name, "q": q, "image": i} for q in c.qualities for i in images]
        recs = evaluate(tasks, cache, args.jobs, not args.quiet, name)
        n = len(images)
        pts = [(f"q={q}", summarize(recs[k * n:(k + 1) * n])) for k, q in enumerate(c.qualities)]
        curves.append({"label": c.label, "kind": "classical", "points": pts, "codec": name})
    return curves


def run(args) -> int:
    from ..eval.bd import bd_quality, bd_rate
    from ..eval.cache import Cache, default_dir
    from ..io.images import ImageError, list_images

    if not (args.models or args.float or args.codecs):
        raise CliError("nothing to evaluate: give --models, --float and/or --codecs")
    try:
        images = list_images(args.images_dir, args.images)
    except ImageError as e:
        raise CliError(f"images: {e}") from None
    try:
        import bjontegaard  # noqa: F401
    except ImportError:
        raise CliError("fxlic eval needs the eval extra: pip install 'fxlic[eval]'") from None
    cache = Cache(None if args.no_cache else (args.cache or default_dir()))
    curves = _curves(args, images, cache)
    metric = "msssim_db" if args.metric == "msssim" else "psnr"
    print(f"{len(images)} image(s) of {args.images_dir}; cache {cache.directory or 'off'} "
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
            qt = [s[metric] for _, s in t["points"]]
            for a in anchors:
                if a is t:
                    continue
                ra = [s["bpp"] for _, s in a["points"]]
                qa = [s[metric] for _, s in a["points"]]
                r, q = bd_rate(ra, qa, rt, qt), bd_quality(ra, qa, rt, qt)
                fr = "n/a" if r is None else f"{r:+.2f} %"
                fq = "n/a" if q is None else f"{q:+.3f} dB"
                print(f"  {t['label']} vs {a['label']}: BD-rate {fr}, BD-{args.metric} {fq}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"images": [os.path.basename(i) for i in images], "curves": curves}, f, indent=1)
    if args.plot:
        from ..eval.plots import rd_plot
        rd_plot([{"label": c["label"], "kind": c["kind"], "bpp": [s["bpp"] for _, s in c["points"]],
                  "q": [s[metric] for _, s in c["points"]]} for c in curves], args.plot, metric)
        print(f"wrote {args.plot}")
    return 0


def register(sub):
    s = sub.add_parser("eval", help="rate-distortion vs classical codecs on a set of images (BD-rate)",
                       description=__doc__.split("\n\n")[0])
    s.add_argument("--models", nargs="*", metavar="M.fxq", help="integer models (paths or shipped names)")
    s.add_argument("--float", nargs="*", metavar="W", help="float weights (.safetensors/.npz)")
    s.add_argument("--codecs", default="jpeg", metavar="LIST",
                   help="comma-separated classical codecs: jpeg,jpeg444,jpeg2000,webp,avif,jpegxl,hevc "
                        "(default jpeg; '' for none)")
    s.add_argument("--images-dir", default=os.environ.get("FXLIC_KODAK", "../shared/data/kodak"),
                   metavar="DIR", help="test images (default $FXLIC_KODAK or ../shared/data/kodak)")
    s.add_argument("--images", type=int, default=None, metavar="N", help="only the first N images")
    s.add_argument("--metric", choices=("psnr", "msssim"), default="psnr")
    s.add_argument("--cache", default=None, metavar="DIR", help="cache directory (default ~/.cache/fxlic-eval)")
    s.add_argument("--no-cache", action="store_true")
    s.add_argument("--jobs", type=int, default=1, help="worker processes (default 1)")
    s.add_argument("--json", default=None, metavar="OUT", help="write the curves as JSON")
    s.add_argument("--plot", default=None, metavar="OUT.png", help="write an RD plot")
    s.add_argument("-q", "--quiet", action="store_true")
    s.set_defaults(func=run)
