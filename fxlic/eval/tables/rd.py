"""Rate-distortion of the report: per-model float and integer summaries over the
test images, the hyperprior RD set as curves, the classical codecs' curves,
and the tables built from them (the main RD table, BD-rate / BD-quality
through fxlic.eval.bd, the classical codecs' points)."""
from __future__ import annotations

import numpy as np

from .. import bd
from ..codecs import CODECS
from ..runner import summarize
from .context import HP5
from .fmt import f, md_table, sgn
from .records import summarize_present, complete, paired


def main_rd(ctx):
    """Per model: float and integer summaries over all images (paired over the
    images both have; either alone when the other is missing); the float model
    runs under its integer model's latent rule (``Ctx.own_float_recs``)."""
    res = {}
    for name, kind in ctx.models:
        fr = ctx.own_float_recs(name, ctx.images)
        ir = ctx.int_recs(name, ctx.images)
        fi, ii = paired(fr, ir)
        if fi:
            fl, it, n = summarize(fi), summarize(ii), len(fi)
        else:
            fl, it = summarize_present(fr), summarize_present(ir)
            n = (it or fl or {"n": 0})["n"]
        res[name] = {"float": fl, "int": it, "float_all": summarize([r for r in fr if r]),
                     "int_all": summarize([r for r in ir if r]), "n": n, "kind": kind}
    return res


#: the training objectives the hyperprior models form one RD curve per (paper Fig. 10-13)
OBJECTIVES = (("mse", "MSE"), ("msssim", "MS-SSIM"))


def objective(name: str) -> str:
    """A model's training objective, from its name (hp5-msssim-q1: MS-SSIM, else MSE)."""
    return "msssim" if "msssim" in name else "mse"


def rd_sets(ctx, rd):
    """[(objective, names)]: the hyperprior models that form the RD curves, one per
    training objective, each sorted by rate: the shipped ones (HP5 if none is shipped)."""
    hp = [n for n, k in ctx.models if k == "hyperprior" and n in rd and ctx.is_shipped(n)]
    if not hp:
        hp = [n for n in HP5 if n in rd]
    key = lambda n: (rd[n]["int"] or rd[n]["float"] or {}).get("bpp", 0.0)  # noqa: E731
    sets = [(obj, sorted((n for n in hp if objective(n) == obj), key=key)) for obj, _ in OBJECTIVES]
    return [(obj, names) for obj, names in sets if names]


def rd_set(ctx, rd):
    """Every model of ``rd_sets`` (the hyperprior curve models of any objective)."""
    return [n for _, names in rd_sets(ctx, rd) for n in names]


def curves(ctx, rd, metric, plot=False):
    """The hyperprior RD sets (``rd_sets``: one per training objective) as one curve
    per kind (float / int), every other model as single points; ``plot``: only
    shipped models unless --all-models.  ``set`` names a curve's models in text
    ("hyperprior-5 MSE")."""
    out = []
    hp = rd_set(ctx, rd)
    for obj, members in rd_sets(ctx, rd):
        label = f"hyperprior-5 {dict(OBJECTIVES)[obj]}"
        for kind in ("float", "int"):
            names = [n for n in members if rd[n][kind] and metric in rd[n][kind]]
            if names:
                out.append({"label": f"fxlic {'8-bit integer' if kind == 'int' else 'float32'} {label} "
                                     f"({', '.join(names)})", "kind": kind, "arch_kind": "hyperprior",
                            "bpp": [rd[n][kind]["bpp"] for n in names], "q": [rd[n][kind][metric] for n in names],
                            "names": names, "set": label})
    for n in rd:
        if n in hp or (plot and not ctx.args.all_models and not ctx.is_shipped(n)):
            continue
        for kind in ("float", "int"):
            if rd[n][kind] and metric in rd[n][kind]:
                out.append({"label": f"fxlic {'integer' if kind == 'int' else 'float32'} {n}", "kind": kind,
                            "arch_kind": rd[n].get("kind"), "bpp": [rd[n][kind]["bpp"]],
                            "q": [rd[n][kind][metric]], "names": [n]})
    return out


def classical_curves(ctx, metric):
    out = []
    for c in ctx.args.codecs:
        pts = []
        for q, recs in ctx.classical(c, ctx.images):
            if complete(recs):
                s = summarize(recs)
                if metric in s:
                    pts.append((s["bpp"], s[metric], q))
        if pts:
            out.append({"label": CODECS[c].label, "kind": "classical", "codec": c, "bpp": [p[0] for p in pts],
                        "q": [p[1] for p in pts], "quality": [p[2] for p in pts]})
    return out


def section_main(ctx, rd):
    """The main RD table (float and integer bpp, PSNR, MS-SSIM per model) and the integer
    codec's time per image; returns (table, time cells)."""
    rows = []
    for name, r in rd.items():
        fl, it = r["float"], r["int"]
        if not fl and not it:
            rows.append([name, f"{r['n']}", "–"] + ["pending"] * 8)
            continue
        d = "–"
        if fl and it:
            d = (f"{it['psnr'] - fl['psnr']:+.3f} dB / {it['bpp'] - fl['bpp']:+.4f} bpp "
                 f"({100 * (it['bpp'] / fl['bpp'] - 1):+.1f} %)")
        fl, it = fl or {}, it or {}
        rows.append([name, str(r["n"]), f(ctx.lam(name), "{:g}"),
                     f(fl.get("bpp"), "{:.4f}"), f(fl.get("psnr"), "{:.2f}"), f(fl.get("msssim"), "{:.4f}"),
                     f(it.get("bpp"), "{:.4f}"), f(it.get("est_bpp"), "{:.4f}"), f(it.get("psnr"), "{:.2f}"),
                     f(it.get("msssim"), "{:.4f}"), d])
    t = md_table(["model", "images", "lambda", "float bpp (ideal)", "float PSNR", "float MS-SSIM",
                  "int bpp (.fxl file)", "int bpp (estimate)", "int PSNR", "int MS-SSIM", "int - float"], rows)
    times = []
    for name in rd:
        recs = [r for r in ctx.int_recs(name, ctx.images) if r]
        if recs:
            times.append(f"{name}: encode {np.mean([r['encode_s'] for r in recs]):.1f} s, "
                         f"decode {np.mean([r['decode_s'] for r in recs]):.1f} s")
    return t, times


def point_deltas(t, a):
    """(name, rate difference %, quality difference) of each point of curve t
    against the interpolated anchor a (None outside the anchor's range)."""
    return bd.point_deltas(a["bpp"], a["q"], t["names"], t["bpp"], t["q"])


def point_rows(t, a, name):
    """The 'one point' rows of the BD table: each point of curve t against anchor a."""
    return [[f"integer {n} (one point)", name, sgn(r, 2, "n/a (outside)") + (" %" if r is not None else ""),
             sgn(q, 3, "n/a (outside)") + (" dB" if q is not None else ""), "at the point"]
            for n, r, q in point_deltas(t, a)]


def section_bd(ctx, rd):
    """BD-rate / BD-quality (fxlic.eval.bd.compare) of the integer curves against their float
    curve and every classical anchor, PSNR and MS-SSIM dB, with the overlap interval."""
    lines = []
    for metric, unit in (("psnr", "PSNR"), ("msssim_db", "MS-SSIM dB")):
        ours = curves(ctx, rd, metric)
        anchors = classical_curves(ctx, metric)
        rows = []
        for t in ours:
            if t["kind"] != "int":
                continue
            fl = [c for c in ours if c["kind"] == "float" and c["names"] == t["names"]]
            for a in fl + anchors:
                name = "float32 (same models)" if a["kind"] == "float" else a["label"]
                if len(t["bpp"]) >= 2:
                    r, q, ov, mono = bd.compare(a["bpp"], a["q"], t["bpp"], t["q"])
                    ovs = f"{ov[0]:.2f}–{ov[1]:.2f}" if ov else "none"
                    why = "n/a (no overlap)" if mono >= 2 else \
                        f"n/a (only {mono} of {len(t['bpp'])} points form a rising curve)"
                    rows.append([t["label"], name, sgn(r, 2, why) + (" %" if r is not None else ""),
                                 sgn(q, 3, "n/a") + (" dB" if q is not None else ""), ovs])
                if a["kind"] != "float":
                    rows += point_rows(t, a, name)
        lines.append(f"**{unit}** (test = fxlic integer models; negative BD-rate = fewer bits than the anchor; "
                     "'one point' rows: rate difference at that point's quality / quality difference at its "
                     "rate against the interpolated anchor)\n")
        lines.append(md_table(["test", "anchor", "BD-rate", f"BD-{unit}", f"overlap ({unit})"], rows))
        lines.append("")
    return "\n".join(lines)


def section_classical(ctx):
    """Every complete point of the classical codecs' quality sweeps."""
    rows = []
    for c in ctx.args.codecs:
        for q, recs in ctx.classical(c, ctx.images):
            if complete(recs):
                s = summarize(recs)
                rows.append([c, str(q), f(s["bpp"], "{:.4f}"), f(s["psnr"], "{:.2f}"), f(s.get("msssim"), "{:.4f}"),
                             f(s.get("msssim_db"), "{:.2f}")])
    return md_table(["codec", "quality", "bpp", "PSNR", "MS-SSIM", "MS-SSIM dB"], rows)
