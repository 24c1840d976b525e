"""Table IX (memory) and Table X (energy) from the layer list, as the
report of tools/paper_tables.py uses them.

Memory (MB = 10^6 bytes) at 768 x 512, encoder = g_a + h_a + h_s, decoder =
h_s + g_s, counts from ``fxlic.io.modelfile.memory_counts`` (what ``fxlic
info`` prints).  MACs and Table X energy come from ``fxlic.eval.cost`` (what
``fxlic cost`` prints); this module only regroups them.
"""
from __future__ import annotations

import math

import numpy as np

from ..io.modelfile import memory_counts, output_sizes  # noqa: F401 (re-exported)
from ..model.arch import Architecture
from .cost import PJ, layer_costs, op_pj  # noqa: F401 (PJ re-exported)

MB = 1e6

#: the paper's Table IX (MB), as printed
PAPER_IX = {
    "proposal": {"encoder": {"w": 3.942, "sf_w": 0.0014, "w_total": 3.943, "o": 19.771, "sf_o": 0.0018,
                             "o_total": 19.773},
                 "decoder": {"w": 2.975, "sf_w": 0.0012, "w_total": 2.976, "o": 20.251, "sf_o": 0.0014,
                             "o_total": 20.252}},
    "baseline_fp32": {"encoder": {"w": 15.77, "o": 79.09}, "decoder": {"w": 11.90, "o": 81.99}},
}


def table_ix(arch: Architecture, w: int = 768, h: int = 512) -> dict:
    """Every count Table IX needs, under the rules discussed in RESULTS.md."""
    mc = memory_counts(arch, w, h)
    sizes = output_sizes(arch, h, w)
    out = {}
    for part, layers in (("encoder", arch.encoder), ("decoder", arch.decoder)):
        c = mc[part]
        last = [l for l in layers if l.out in ("y", "pixel")]
        sf_o_ch = sum(l.cout for l in layers if l not in last)  # Eq 38: no sf_o for AT3 / ST3
        mux_ch = sum(l.cout for l in layers if l.out == "act" and l.act == "relu")
        hs_t = sum(l.cout * sizes[l.name][0] * sizes[l.name][1] for l in layers
                   if l.name.startswith("HS") and l.op == "tconv")
        out[part] = {
            "weights": c["weights"], "weight_sf_channels": c["weight_sf"],
            "activations_all": c["activations"], "activations_without_hs_tconv": c["activations"] - hs_t,
            "act_sf_channels_all": c["act_sf"], "act_sf_channels_eq38": sf_o_ch, "mux_channels": mux_ch,
            # MB under the rules
            "w_mb": c["weights"] / MB,
            "sf_w_mb_4bit": c["weight_sf"] * 4 / 8 / MB,
            "o_all_mb": c["activations"] / MB,
            "o_wo_hs_tconv_mb": (c["activations"] - hs_t) / MB,
            "sf_o_mb_eq38": (sf_o_ch * 4 / 8 + mux_ch * 2 / 8) / MB,
            "sf_o_mb_5bit_all": c["act_sf"] * 5 / 8 / MB,
            "w_fp32_mb": 4 * c["weights"] / MB,
            "o_fp32_mb": 4 * c["activations"] / MB,
        }
    return out


def exponent_bits(im) -> dict:
    """Bits needed to store the per-channel exponents of an IntModel (offset
    binary over the range used): weight exponents, activation exponents."""
    def bits(vals):
        v = np.concatenate([np.ravel(x) for x in vals]) if vals else np.zeros(1)
        span = int(v.max() - v.min()) + 1
        return max(1, math.ceil(math.log2(span))) if span > 1 else 1, int(v.min()), int(v.max())
    we = [im.layers[l.name].w_exp for l in im.arch.layers]
    oe = [im.layers[l.name].out_exp for l in im.arch.layers if l.out in ("act", "ms")]
    return {"w_exp": bits(we), "out_exp": bits(oe)}


def macs(arch: Architecture, w: int = 768, h: int = 512) -> dict:
    """MACs and output counts per layer group (AT, HA, HS, ST) at w x h, and
    for the encoder and the decoder (from ``fxlic.eval.cost.layer_costs``)."""
    res = {}
    for r in layer_costs(arch, w, h):
        d = res.setdefault(r["name"][:2], {"macs": 0, "outputs": 0})
        d["macs"] += r["macs"]
        d["outputs"] += r["outputs"]
    tot = lambda gs: {k: sum(res.get(g, {}).get(k, 0) for g in gs) for k in ("macs", "outputs")}  # noqa: E731
    return {"groups": res, "encoder": tot(("AT", "HA", "HS")), "decoder": tot(("HS", "ST"))}


def energy(counts: dict, mode: str) -> float:
    """Energy (J) of one part: MACs x (mult + add) + outputs x add (bias).
    ``int``: 8-bit multiply, 32-bit accumulate (the paper's model of the
    fixed-point MAC; shifts and table look-ups are not priced); ``fp32``,
    ``fp16``: both operations in that format (``fxlic.eval.cost.op_pj``)."""
    mac, add = op_pj("int8" if mode == "int" else mode)
    return (counts["macs"] * mac + counts["outputs"] * add) * 1e-12
