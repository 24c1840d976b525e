"""The --quick report, OUT_DIR/RESULTS-quick.md: the headline tables (Summary,
main RD table, BD-rate, classical codecs) of the shipped models and their float
models, the RD figures, CompressAI-layout JSON and the per-image CSV."""
from __future__ import annotations

import datetime
import json
import os
import sys

from ..codecs import CODECS
from .files import export_results, figure_md, figures
from .notes import run_note
from .rd import main_rd, section_bd, section_classical, section_main
from .summary import section_summary


def write_quick_report(ctx, command):
    """--quick: the headline tables and figures, CompressAI-layout JSON and
    per-image CSV in --out-dir; the main table is printed too."""
    rd = main_rd(ctx)
    figs = figures(ctx, rd)
    main_tab, times = section_main(ctx, rd)
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    names = ", ".join(os.path.basename(i) for i in ctx.images)
    L = []
    a = L.append
    a("# fxlic headline results (quick run)\n")
    a(f"Generated {now} by `{command}`: the shipped models (fxlic/zoo) and their float models against "
      f"{', '.join(CODECS[c].label for c in ctx.args.codecs) or 'no classical codec'} on {len(ctx.images)} "
      f"Kodak image(s) spread over the set ({names}). A subset: averages move with the images chosen; the "
      "full report (`python tools/paper_tables.py`, docs/RESULTS.md) uses all 24 images and adds the "
      "ablations of the paper's tables.\n")
    if ctx.args.skipped_codecs:
        a(f"Not measured (library not installed): {', '.join(ctx.args.skipped_codecs)}.\n")
    a("Conventions: integer bpp is the size of the real `.fxl` file over the pixel count (*estimate*: the entropy "
      "model's -log2 p); float models: float32 forward, ideal bpp; classical codecs: the whole file. PSNR is RGB "
      "8-bit, MS-SSIM dB = -10 log10(1 - MS-SSIM), both averaged over the images.\n")
    a("## Summary (computed)\n")
    a(section_summary(ctx, rd))
    a("")
    a(f"## Rate-distortion ({len(ctx.images)} Kodak images)\n")
    a(main_tab)
    a("")
    if times:
        a("Integer codec time per image: " + "; ".join(times) + ".\n")
    a(figure_md(ctx, figs))
    a("## BD-rate / BD-quality (bjontegaard, pchip)\n")
    a(section_bd(ctx, rd))
    a("## Classical codecs\n")
    a(section_classical(ctx))
    a("")
    out_dir = os.path.dirname(os.path.abspath(ctx.args.out))
    exported = export_results(ctx, rd, out_dir, per_image=True)
    a("## Files\n")
    a("`per_image.csv` (every image of every rate point) and `compressai/*.json` (one file per curve in "
      "CompressAI's `eval_model` layout, to overlay with `python -m compressai.utils.plot` or published "
      "CompressAI results).\n")
    a(run_note(ctx))
    os.makedirs(out_dir, exist_ok=True)
    with open(ctx.args.out, "w") as fh:
        fh.write("\n".join(L) + "\n")
    with open(os.path.join(ctx.args.figures, "results.json"), "w") as fh:
        json.dump({"main": rd, "images": [os.path.basename(i) for i in ctx.images]}, fh, indent=1, default=str)
    print(main_tab)
    print()
    print(section_summary(ctx, rd))
    print(f"\nwrote {ctx.args.out}, {len(figs)} figure(s), per_image.csv and {len(exported)} CompressAI-layout "
          f"JSON file(s) in {out_dir}", file=sys.stderr)
