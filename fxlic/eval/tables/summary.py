"""The report's Summary (computed, never written by hand): integer vs float per
model, BD-rate of the integer hyperprior curve against its float curve and every
classical anchor, the standing against the anchors, single-point models."""
from __future__ import annotations

from .. import bd
from .fmt import f, sgn, with_unit
from .rd import point_deltas, classical_curves, curves


def section_summary(ctx, rd):
    """Key numbers in a few bullets (computed, not written by hand)."""
    out = []
    for name, r in rd.items():
        fl, it = r["float"], r["int"]
        if fl and it:
            out.append(f"* **{name}** ({r['n']} images): float {fl['bpp']:.4f} bpp / {fl['psnr']:.2f} dB, "
                       f"integer {it['bpp']:.4f} bpp (.fxl; estimate {it.get('est_bpp', float('nan')):.4f}) / "
                       f"{it['psnr']:.2f} dB: {it['psnr'] - fl['psnr']:+.3f} dB, "
                       f"{100 * (it.get('est_bpp', it['bpp']) / fl['bpp'] - 1):+.2f} % bits (estimate), "
                       f"{100 * (it['bpp'] / fl['bpp'] - 1):+.2f} % (file); MS-SSIM {f(fl.get('msssim'), '{:.4f}')} → "
                       f"{f(it.get('msssim'), '{:.4f}')}.")
    for metric, unit in (("psnr", "PSNR"), ("msssim_db", "MS-SSIM")):
        ours = curves(ctx, rd, metric)
        anchors = {c["codec"]: c for c in classical_curves(ctx, metric)}
        for t in ours:
            if t["kind"] != "int" or len(t["bpp"]) < 2:
                continue
            fl = [c for c in ours if c["kind"] == "float" and c["names"] == t["names"]]
            rising = bd.monotone_curve(t["bpp"], t["q"])[0]
            if len(rising) < len(t["bpp"]):
                pts = ", ".join(f"{n} {b:.3f} bpp / {q:.2f}" for n, b, q in zip(t["names"], t["bpp"], t["q"]))
                kept = set(rising.tolist())
                dropped = [n for n, b in zip(t["names"], t["bpp"]) if b not in kept]
                out.append(f"* The {len(t['bpp'])} {t['set']} models do not form a rising {unit} curve ({pts}): "
                           "more bits do not buy more quality between them (short, uneven training). BD values "
                           f"below use the rising part only (without {', '.join(dropped)}; the bjontegaard "
                           "interpolation needs a monotone curve); per-model differences are given as well.")
            if fl:
                r, q, _, _ = bd.compare(fl[0]["bpp"], fl[0]["q"], t["bpp"], t["q"])
                out.append(f"* {t['set']} integer vs float ({unit}): BD-rate "
                           f"{sgn(r, 2, 'n/a')} %, BD-{unit} {sgn(q, 3, 'n/a')} dB.")
            ahead, behind, na = [], [], []
            for c in ctx.args.codecs:  # every anchor, in the order of --codecs
                if c not in anchors:
                    continue
                a = anchors[c]
                r, _, ov, _ = bd.compare(a["bpp"], a["q"], t["bpp"], t["q"])
                pts = [f"{n} {with_unit(pr, 1, '% bits')} / {with_unit(pq, 2, 'dB')}"
                       for n, pr, pq in point_deltas(t, a)]
                word = "n/a" if r is None else ("fewer bits than the anchor" if r < 0 else
                                                "more bits than the anchor")
                (na if r is None else ahead if r < 0 else behind).append(f"{a['label']} ({sgn(r, 1, 'n/a')} %)"
                                                                        if r is not None else a["label"])
                out.append(f"* {t['set']} integer vs {a['label']} ({unit}): BD-rate {sgn(r, 1, 'n/a')} % "
                           f"({word})" + (f" over {unit} {ov[0]:.2f}–{ov[1]:.2f}" if ov else "")
                           + "; per model at equal quality / equal rate: " + ", ".join(pts) + ".")
            if ahead or behind:
                out.append(f"* **Standing ({unit}, BD-rate of the integer {t['set']} curve):** ahead of "
                           f"{', '.join(ahead) or 'no anchor'}; behind {', '.join(behind) or 'no anchor'}"
                           + (f"; no overlap with {', '.join(na)}" if na else "") + ".")
        for t in ours:  # single-point models against every anchor
            if t["kind"] != "int" or len(t["bpp"]) != 1:
                continue
            cells = []
            for c in ctx.args.codecs:
                if c in anchors:
                    r = bd.point_rate_delta(anchors[c]["bpp"], anchors[c]["q"], t["bpp"][0], t["q"][0])
                    cells.append(f"{anchors[c]['label']} {sgn(r, 1, 'n/a (outside)')}" + (" %" if r is not None
                                                                                           else ""))
            if cells:
                out.append(f"* {t['label']} ({unit}), bits at equal quality against each anchor: "
                           + "; ".join(cells) + ".")
    return "\n".join(out) if out else "Pending: no model has both float and integer results yet."
