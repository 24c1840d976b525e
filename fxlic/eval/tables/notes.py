"""The report's closing paragraphs: how to regenerate it, dataset-scale runs,
and what this run measured (wall and CPU time, computed vs cached results)."""
from __future__ import annotations

import os
import time


def run_note(ctx):
    """What this run measured: wall time, computed vs cached per-image results."""
    wall = time.time() - ctx.args.t_start
    if ctx.args.report_only:
        return (f"This report was rewritten from the cache ({ctx.args.cache}) with --report-only in "
                f"{wall / 60:.1f} min: nothing computed; results missing from the cache show as pending.")
    import resource
    cpu = sum(getattr(resource.getrusage(w), k) for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
              for k in ("ru_utime", "ru_stime"))
    load = os.getloadavg()[1] if hasattr(os, "getloadavg") else float("nan")
    return (f"This report's run took {wall / 60:.1f} min wall ({cpu / 60:.1f} min CPU in this process and its "
            f"workers) on a {os.cpu_count()}-core machine with --jobs {ctx.args.jobs}, 5-minute load average "
            f"{load:.1f} at the end: {ctx.computed} per-image results computed, {ctx.cached} read from the "
            f"cache ({ctx.args.cache}).")


#: the regenerate section's paragraph on dataset-scale runs (fxlic/parallel.py)
DATASET_SCALE = ('Dataset scale: `fxlic eval --images DIR` (any folder, e.g. tens of thousands of images) and '
                 '`tools/paper_tables.py` run what the cache lacks on a local process pool (`--jobs N`) or on a Dask '
                 "distributed cluster (`--scheduler tcp://host:8786` or `FXLIC_SCHEDULER`; `pip install '.[dask]'`); "
                 '`fxlic quantize --jobs N` / `--scheduler` spreads calibration the same way. The results are '
                 'identical whatever the executor (tests/test_parallel.py). Dask workers need the same fxlic and the '
                 'same paths (a shared filesystem): `fxlic eval --images /shared/imgs --scheduler tcp://host:8786 '
                 '--out /shared/rd`.')


def regenerate_md(ctx):
    return ("```\npip install '.[eval]'\n"
            "export FXLIC_KODAK=/path/to/kodak     # the 24 Kodak PNGs (or --kodak DIR)\n"
            "export FXLIC_CALIB=/path/to/CBSD68    # calibration images, for models not shipped (or --calib DIR)\n"
            "python tools/paper_tables.py --jobs 2\n```\n\n"
            "Quick check (the headline tables, the shipped models and their float models against JPEG, "
            "JPEG 2000, WebP, AVIF and HEVC intra on 6 Kodak images; quantizes nothing, needs no calibration "
            "images; writes ./paper-tables-quick/): `python tools/paper_tables.py --quick`.\n\n"
            "Inputs, each a flag or an environment variable, checked before anything runs: `--kodak` / "
            "`FXLIC_KODAK`, `--calib` / `FXLIC_CALIB`, `--weights-dir` / `FXLIC_WEIGHTS` (default tools/weights), "
            "`--cache` / `FXLIC_EVAL_CACHE` (default ~/.cache/fxlic-eval). Options: `--images N` (main RD), "
            "`--ablation-images K`, `--codecs LIST`, `--all-models` (figures: every model, not only the shipped "
            "ones), `--report-only` (rewrite from the cache). The figures directory also receives one JSON per "
            "curve in CompressAI's `eval_model` layout (`compressai/`).\n\n" + DATASET_SCALE + "\n\n"
            + run_note(ctx))
