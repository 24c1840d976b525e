"""Table IX (memory at 768 x 512) and Table X (energy per image) of the report,
from the layer list (fxlic.eval.counts), against the paper's printed values."""
from __future__ import annotations

from .. import counts
from .fmt import md_table


def section_ix(ctx):
    """Table IX: memory of hyperprior-5 (N=128) at 768 x 512 against the paper, and the
    exponent ranges of fxlic's N=128 models; returns (table, exponent lines)."""
    from fxlic.model.arch import hyperprior5
    t = counts.table_ix(hyperprior5(128))
    P = counts.PAPER_IX["proposal"]
    B = counts.PAPER_IX["baseline_fp32"]
    rows = []
    for part in ("encoder", "decoder"):
        c = t[part]
        rows += [
            [part, "weights w (8 bit)", f"{c['weights']:,}", f"{c['w_mb']:.3f}", f"{P[part]['w']}"],
            [part, "sf_w (4 bit per output channel)", f"{c['weight_sf_channels']:,} ch",
             f"{c['sf_w_mb_4bit']:.4f}", f"{P[part]['sf_w']}"],
            [part, "activations o (8 bit), every layer output", f"{c['activations_all']:,}", f"{c['o_all_mb']:.3f}",
             f"{P[part]['o']}"],
            [part, "activations o, without the h_s tconv outputs (HS0, HS1)",
             f"{c['activations_without_hs_tconv']:,}", f"{c['o_wo_hs_tconv_mb']:.3f}", f"{P[part]['o']}"],
            [part, "sf_o + mux, Eq 38 (4 bit sf_o except AT3/ST3, 2 bit mux on ReLU channels)",
             f"{c['act_sf_channels_eq38']:,} + {c['mux_channels']} ch", f"{c['sf_o_mb_eq38']:.4f}",
             f"{P[part]['sf_o']}"],
            [part, "sf_o, 5 bit on every output channel", f"{c['act_sf_channels_all']:,} ch",
             f"{c['sf_o_mb_5bit_all']:.4f}", f"{P[part]['sf_o']}"],
            [part, "fp32 baseline weights / activations (all outputs)", "",
             f"{c['w_fp32_mb']:.2f} / {c['o_fp32_mb']:.2f}", f"{B[part]['w']} / {B[part]['o']}"],
        ]
    tab = md_table(["part", "item", "count", "fxlic MB", "paper MB"], rows)
    ex = []
    for name, _ in ctx.models:
        p = ctx.int_model(name)
        if p is None:
            continue
        from fxlic.io.modelfile import load_model
        im = load_model(p)
        if im.arch.N != 128:
            continue
        eb = counts.exponent_bits(im)
        ex.append(f"{name}: weight exponents {eb['w_exp'][1]}..{eb['w_exp'][2]} ({eb['w_exp'][0]} bit), "
                  f"activation exponents {eb['out_exp'][1]}..{eb['out_exp'][2]} ({eb['out_exp'][0]} bit)")
    return tab, ex


def section_x():
    """Table X: energy per 768 x 512 image from counted MACs, 8-bit integer vs fp16 / fp32."""
    from fxlic.model.arch import factorized, hyperprior5
    rows = []
    for arch in (hyperprior5(128), factorized(128)):
        m = counts.macs(arch)
        for part in ("encoder", "decoder"):
            c = m[part]
            if arch.kind == "factorized":
                c = {"macs": m["groups"]["AT" if part == "encoder" else "ST"]["macs"],
                     "outputs": m["groups"]["AT" if part == "encoder" else "ST"]["outputs"]}
            e = {k: counts.energy(c, k) * 1e3 for k in ("int", "fp16", "fp32")}
            rows.append([arch.name, part, f"{c['macs'] / 1e9:.2f}", f"{c['outputs'] / 1e6:.2f}",
                         f"{e['int']:.2f}", f"{e['fp16']:.2f}", f"{e['fp32']:.2f}", f"{e['fp32'] / e['int']:.1f}x"])
    return md_table(["model", "part", "GMAC", "M outputs (bias adds)", "8-bit int mJ", "fp16 mJ", "fp32 mJ",
                     "fp32 / int"], rows)
