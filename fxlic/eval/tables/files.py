"""The report's files besides the markdown: the RD figures (PSNR, MS-SSIM, with
the paper's published points) and CompressAI ``eval_model`` JSON per curve
plus the per-image CSV (fxlic/eval/export.py)."""
from __future__ import annotations

import math
import os

from .. import paper as P
from ..codecs import CODECS
from .records import complete
from .rd import classical_curves, curves, rd_set, rd_sets


def figure_caption(ctx, metric):
    """The caption of an RD figure: what is drawn, and the paper's points (fxlic/eval/paper.py)."""
    shown = "every model" if ctx.args.all_models else \
        "only the shipped models (fxlic/zoo; --all-models draws the others too, as the tables list them)"
    return (f"fxlic's integer and float models and the classical codecs on {len(ctx.images)} Kodak image(s); "
            f"{shown}. " + P.RD_POINTS_CAPTION[metric])


def figures(ctx, rd):
    """The RD figures; returns [(path, caption)]."""
    from fxlic.eval.plots import rd_plot
    os.makedirs(ctx.args.figures, exist_ok=True)
    out = []
    for metric, fn, title in (("psnr", "rd_psnr.png", "Kodak, PSNR"), ("msssim_db", "rd_msssim.png",
                                                                          "Kodak, MS-SSIM")):
        cs = curves(ctx, rd, metric, plot=True) + classical_curves(ctx, metric)
        if not cs:
            continue
        cs += P.rd_points(metric)
        ours = [(b, q) for c in cs if c["kind"] in ("int", "float") for b, q in zip(c["bpp"], c["q"])]
        xmax = max(1.0, 1.5 * max(b for b, _ in ours)) if ours else 2.0
        inside = [q for c in cs for b, q in zip(c["bpp"], c["q"]) if b <= xmax and math.isfinite(q)]
        ylim = (min(inside) - 1.0, max(inside) + 1.0) if inside else None
        p = os.path.join(ctx.args.figures, fn)
        cap = figure_caption(ctx, metric)
        rd_plot(cs, p, metric, f"{title} ({len(ctx.images)} images)", xlim=(0, xmax), ylim=ylim, caption=cap)
        out.append((p, cap))
    return out


def figure_md(ctx, figs):
    """Markdown of the figures with their captions, paths relative to the report."""
    base = os.path.dirname(os.path.abspath(ctx.args.out))
    return "\n".join(f"![{os.path.basename(p)}]({os.path.relpath(os.path.abspath(p), base)})\n\n*{cap}*\n"
                     for p, cap in figs)


def export_results(ctx, rd, directory, per_image=True):
    """CompressAI-layout JSON per curve (fxlic/eval/export.py) in directory/compressai,
    and the per-image rows of the RD runs in directory/per_image.csv."""
    from fxlic import __version__
    from fxlic.eval import export
    from fxlic.eval.codecs import library_version
    n = len(ctx.images)
    docs, rows = [], []
    hp = rd_set(ctx, rd)
    for kind in ("int", "float"):
        groups = [("hyperprior5" if obj == "mse" else f"hyperprior5-{obj}", [m for m in names if rd[m][kind]])
                  for obj, names in rd_sets(ctx, rd)] + [(m, [m]) for m in rd if m not in hp and rd[m][kind]]
        for gname, names in groups:
            if not names:
                continue
            recs = {m: (ctx.int_recs if kind == "int" else ctx.own_float_recs)(m, ctx.images) for m in names}
            what = ("8-bit integer codec (numba backend), bpp of the real .fxl bitstream" if kind == "int" else
                    "Inference (estimation): float32 forward, ideal bpp (-log2 p)")
            label = f"fxlic-{kind}-{gname}"
            docs.append(export.compressai_doc(label, f"fxlic {__version__} {what}; Kodak, {n} image(s); "
                                              f"models {', '.join(names)}", [recs[m] for m in names]))
            for m in names:
                rows += export.per_image_rows(label, m, recs[m])
    for c in ctx.args.codecs:
        pts = [(q, r) for q, r in ctx.classical(c, ctx.images) if complete(r)]
        if not pts:
            continue
        lib = library_version(CODECS[c].library)
        docs.append(export.compressai_doc(CODECS[c].label, f"{CODECS[c].label}, {lib}, bpp of the whole file; "
                                          f"Kodak, {n} image(s)", [r for _, r in pts]))
        for q, r in pts:
            rows += export.per_image_rows(CODECS[c].label, f"q={q}", r)
    paths = export.write_compressai(os.path.join(directory, "compressai"), docs)
    if per_image:
        export.write_per_image_csv(os.path.join(directory, "per_image.csv"), rows)
    return paths
