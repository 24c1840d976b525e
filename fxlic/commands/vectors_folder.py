"""``fxlic vectors --image DIR --out OUT``: a suite with one case per image of
DIR (fxlic/vectors/batch.py), written on a local process pool (``--jobs``) or
a Dask cluster (``--scheduler``; fxlic/parallel.py).  Every option of a single
case applies to each case; ``--max-bytes`` bounds the whole suite.  As for one
case, OUT appears complete or not at all."""
from __future__ import annotations

import os
import shutil
import sys
import tempfile

from ..errors import CliError


def _plan(args, model, images, crop):
    """(options, per-image estimated case bytes, model directory bytes)."""
    from ..vectors import batch
    from ..vectors.writer import plan_case
    from .vectors import check_crop, options

    sizes = []
    for p in images:
        try:
            W, H = batch.image_size(p)
        except (OSError, ValueError) as e:
            raise CliError(f"{p}: not a readable image ({e.__class__.__name__})") from None
        if crop:
            check_crop(crop, W, H, f"the {os.path.basename(p)}")
            W, H = crop[0], crop[1]
        sizes.append((W, H))
    opts, _ = options(args, model, sizes[0][1], sizes[0][0])
    plans = {wh: plan_case(model, wh[1], wh[0], opts, None) for wh in sorted(set(sizes))}
    case = {wh: sum(v for k, v in p.items() if not k.startswith("model/")) for wh, p in plans.items()}
    mbytes = sum(v for k, v in next(iter(plans.values())).items() if k.startswith("model/"))
    return opts, [case[wh] for wh in sizes], mbytes


def _coverage(args, tmp, cases) -> dict:
    """The suite's functional coverage summary (--coverage), its report printed."""
    import json

    from ..vectors.coverage import COVERAGE_FILE, format_suite_text, summarize
    recs = []
    for c in cases:
        with open(os.path.join(tmp, *c["dir"].split("/"), COVERAGE_FILE), "rb") as f:
            recs.append(json.loads(f.read()))
    if not args.quiet:
        print(format_suite_text(recs, [c["dir"][len("cases/"):] for c in cases]))
    return summarize(recs)


def run_folder(args, out: str, crop, max_bytes: int) -> int:
    from ..io.images import ImageError, list_images
    from ..parallel import check_jobs, make_executor
    from ..vectors import batch
    from .common import load_codec_arg
    from .vectors import model_name_of

    check_jobs(args.jobs)
    try:
        images = list_images(args.image)
        names = batch.case_names(images)
    except (ImageError, ValueError) as e:
        raise CliError(f"--image: {e}") from None
    codec = load_codec_arg(args.model)
    model = codec.int_model
    opts, case_bytes, mbytes = _plan(args, model, images, crop)
    mbytes += os.path.getsize(codec.path) if codec.path else 0
    total = sum(case_bytes) + mbytes
    if not args.quiet:
        print(f"{out}: estimated {total:,} bytes for {len(images)} case(s) of {args.image} "
              f"({total - mbytes:,} cases + {mbytes:,} model directory)", flush=True)
    if total > max_bytes and not args.force:
        raise CliError(f"the suite would be about {total:,} bytes, over --max-bytes {max_bytes:,}: write less "
                       f"(--crop WxH, --layers, --tensors, --mem none, --no-acc, --no-dec-tables, "
                       f"--no-inputs) or pass --force")
    model_name = model_name_of(args, model)
    ex = make_executor(args.jobs, args.scheduler, len(images))  # a bad scheduler fails before any write
    parent = os.path.dirname(os.path.abspath(out))
    try:
        try:
            os.makedirs(parent, exist_ok=True)
            tmp = tempfile.mkdtemp(prefix=".fxlic-vectors-", dir=parent)
        except OSError as e:
            raise CliError(f"{out}: cannot create the output directory ({e.strerror})") from None
        try:
            suite = _write(args, ex, tmp, codec, model, model_name, images, names, opts, crop)
            if os.path.isdir(out):
                os.rmdir(out)
            os.replace(tmp, out)
        except BaseException as e:
            shutil.rmtree(tmp, ignore_errors=True)
            if isinstance(e, ImageError):
                raise CliError(str(e)) from None
            if isinstance(e, OSError):
                raise CliError(f"{out}: cannot write the suite ({e.strerror or e})") from None
            raise
    finally:
        ex.close()
    if not args.quiet:
        print(f"{out}: suite of {len(images)} case(s) with model {model_name} "
              f"({suite['models'][model_name]['hash'][7:19]}): {suite['file_count']} files, "
              f"{suite['total_bytes']:,} bytes")
    if opts.coverage:
        from ..vectors.coverage import _check_min
        return _check_min(args, suite["coverage"])
    return 0


def _write(args, ex, tmp, codec, model, model_name, images, names, opts, crop) -> dict:
    """The model directory here, the cases on the executor, then the suite manifest."""
    from ..vectors import batch
    from ..vectors.writer import write_model_dir

    files = {}
    if codec.path:  # the model file itself: the suite is self-contained (--coverage-of, ports)
        with open(codec.path, "rb") as f:
            files["model.fxq"] = f.read()
    write_model_dir(model, os.path.join(tmp, "models", model_name), opts, model_name, files=files,
                    extra={"source": os.path.basename(codec.path) if codec.path else "fxlic vectors"})
    model_arg = os.path.abspath(codec.path) if codec.path else args.model
    tasks = batch.tasks_for(model_arg, model_name, [os.path.abspath(p) for p in images], names, tmp, opts, crop)
    show = args.progress if args.progress is not None else (not args.quiet and sys.stderr.isatty())
    from tqdm import tqdm
    where = "" if ex.describe() == "serial" else f" [{ex.describe()}]"
    cases = [None] * len(tasks)
    with tqdm(total=len(tasks), desc=f"vectors{where}", unit="case", file=sys.stderr, disable=not show,
              dynamic_ncols=True) as bar:
        for i, get in ex.results(batch.write_one, tasks):
            cases[i] = get()
            bar.update(1)
    for c in cases:
        if not os.path.isfile(os.path.join(tmp, *c["dir"].split("/"), "manifest.json")):
            raise CliError(f"{c['dir']}: a worker wrote it where this machine cannot see it (the Dask "
                           f"workers must share the output directory's filesystem)")
    coverage = _coverage(args, tmp, cases) if opts.coverage else None
    return batch.suite_manifest(tmp, model, model_name, cases, coverage)
