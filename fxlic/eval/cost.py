"""Hardware cost of a model from its layer list: the paper's Table IX (memory)
and Table X (energy) generalised to any architecture and image size
(``fxlic cost``, docs/COST.md).

Everything here is a pure function of an ``Architecture`` (fxlic/model/arch.py)
and an input size: no weights are read, nothing is measured.  Per layer and
for the encoder (g_a + h_a + h_s) and the decoder (h_s + g_s), as the paper
splits them:

  MACs          conv: output positions x k^2 x Cin x Cout; tconv: input
                positions x k^2 x Cin x Cout (``LayerSpec.macs``)
  weights       8-bit codes + a 4-bit scale factor per output channel (int8),
                or 4 bytes each (fp32); biases (int32) are listed apart, as
                Table IX leaves them out
  activations   every layer's whole output map, as a layer-by-layer
                accelerator stores it (Eq 37 / 38): 1 byte per value + a 5-bit
                scale factor per output channel (int8), 4 bytes (fp32)
  line buffer   row-streaming hardware: the rows of the layer's *input* it must
                hold to produce one output row while the next input row
                streams in: (r - 1) x input width x Cin x bytes, with r the
                input rows one output row reads: k for a conv (stride 1 or 2),
                ceil(k / 2) for a stride-2 tconv (its four sub-pixel phases
                read at most ceil(k/2) rows), so 0 for a 1x1 conv
  energy        Table X's 45 nm prices: every MAC one multiply + one add,
                plus one add per output value (the bias); int8 = 8-bit
                multiply with a 32-bit accumulate, fp32 = both in fp32.
                Shifts, codebook look-ups, requantisation and the entropy
                coder are not priced (the paper prices none of them)

The Table IX totals come from ``fxlic.io.modelfile.memory_counts`` (what
``fxlic info`` prints) with its bit widths; the per-layer sums here are
checked against them.  The image is padded to the architecture's multiple
first (SPEC P1), as the codec does, unless ``pad=False``.
"""
from __future__ import annotations

import math
import re

from ..io.modelfile import A_BITS, ASF_BITS, TABLE_IX_SIZE, W_BITS, WSF_BITS, memory_counts, output_sizes
from ..model.arch import ARCHITECTURES, Architecture, LayerSpec

#: the paper's Table X (Horowitz, ISSCC 2014, 45 nm): energy per operation in pJ
PJ = {"int8": {"add": 0.03, "mult": 0.2}, "int32": {"add": 0.1, "mult": 3.1},
      "fp16": {"add": 0.4, "mult": 1.1}, "fp32": {"add": 0.9, "mult": 3.7}}
#: how each arithmetic is priced: (multiply, accumulate / bias add)
ARITHMETIC = {"int8": ("int8", "int32"), "fp16": ("fp16", "fp16"), "fp32": ("fp32", "fp32")}
MB = 1e6
#: bytes per stored value in the float baseline
FP32_BYTES = 4


def op_pj(mode: str) -> tuple:
    """(pJ per MAC, pJ per bias add) of an arithmetic mode (int8, fp16, fp32)."""
    mul, add = ARITHMETIC[mode]
    return PJ[mul]["mult"] + PJ[add]["add"], PJ[add]["add"]


def rows_read(l: LayerSpec) -> int:
    """Input rows one output row of ``l`` depends on (the line-buffer depth + 1)."""
    return math.ceil(l.k / 2) if l.op == "tconv" else l.k


def parse_arch_name(text: str):
    """``hyperprior5-N128``, ``factorized-N192`` or ``hyperprior5-N192-M320`` ->
    Architecture, else None."""
    m = re.fullmatch(r"(\w+?)-N(\d+)(?:-M(\d+))?", text)
    if not m or m.group(1) not in ARCHITECTURES:
        return None
    N = int(m.group(2))
    M = int(m.group(3)) if m.group(3) else None
    if not (1 <= N <= 4096 and (M is None or 1 <= M <= 4096)):
        return None
    return ARCHITECTURES[m.group(1)](N, M)


def parse_size(text: str) -> tuple:
    """'768x512' -> (768, 512) (width, height); ValueError otherwise."""
    m = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text or "")
    if not m or int(m.group(1)) < 1 or int(m.group(2)) < 1:
        raise ValueError(f"expected WIDTHxHEIGHT in pixels (e.g. 768x512), got {text!r}")
    w, h = int(m.group(1)), int(m.group(2))
    if w > 1 << 16 or h > 1 << 16:
        raise ValueError(f"{text}: at most 65536 pixels a side")
    return w, h


def _input_sizes(arch: Architecture, h: int, w: int, out: dict) -> dict:
    """Input (H, W) of every layer, from the output sizes of modelfile.output_sizes."""
    src = {"x": (h, w)}
    for l in arch.layers:
        if l.out == "y":
            src["y"] = src["y_hat"] = out[l.name]
        elif l.out == "z":
            src["z"] = src["z_hat"] = out[l.name]
    return {l.name: src.get(l.src, out.get(l.src)) for l in arch.layers}


def layer_costs(arch: Architecture, w: int, h: int) -> list:
    """One dict per layer of ``arch`` for an h x w input (no padding applied)."""
    out = output_sizes(arch, h, w)
    inp = _input_sizes(arch, h, w, out)
    e_int, b_int = op_pj("int8")
    e_fp, b_fp = op_pj("fp32")
    rows = []
    for l in arch.layers:
        (hi, wi), (ho, wo) = inp[l.name], out[l.name]
        macs = l.macs(hi, wi)
        outs = l.cout * ho * wo
        r = rows_read(l)
        line = (r - 1) * wi * l.cin
        rows.append({
            "name": l.name, "op": f"{l.op}{l.k}s{l.stride}", "path": l.path, "cin": l.cin, "cout": l.cout,
            "in_hw": [hi, wi], "out_hw": [ho, wo], "macs": macs,
            "weights": l.n_weights, "biases": l.cout, "outputs": outs,
            "int8": {"weight_bytes": l.n_weights * W_BITS / 8, "weight_sf_bytes": l.cout * WSF_BITS / 8,
                     "act_bytes": outs * A_BITS / 8, "act_sf_bytes": l.cout * ASF_BITS / 8,
                     "bias_bytes": 4 * l.cout, "line_rows": r - 1, "line_buffer_bytes": line * A_BITS / 8,
                     "energy_pj": macs * e_int + outs * b_int},
            "fp32": {"weight_bytes": FP32_BYTES * l.n_weights, "act_bytes": FP32_BYTES * outs,
                     "bias_bytes": FP32_BYTES * l.cout, "line_rows": r - 1,
                     "line_buffer_bytes": FP32_BYTES * line, "energy_pj": macs * e_fp + outs * b_fp},
        })
    return rows


def _sum(rows, mode, key):
    return sum(r[mode][key] for r in rows)


def _part_totals(rows: list) -> dict:
    t = {"layers": len(rows), "macs": sum(r["macs"] for r in rows), "weights": sum(r["weights"] for r in rows),
         "outputs": sum(r["outputs"] for r in rows), "biases": sum(r["biases"] for r in rows)}
    for mode in ("int8", "fp32"):
        keys = ("weight_bytes", "weight_sf_bytes", "act_bytes", "act_sf_bytes", "bias_bytes", "energy_pj") \
            if mode == "int8" else ("weight_bytes", "act_bytes", "bias_bytes", "energy_pj")
        d = {k: _sum(rows, mode, k) for k in keys}
        # line buffers: every layer streaming at once (a pipelined design) or the
        # largest one (one layer at a time, its buffer reused)
        d["line_buffer_bytes_sum"] = _sum(rows, mode, "line_buffer_bytes")
        d["line_buffer_bytes_max"] = max(r[mode]["line_buffer_bytes"] for r in rows)
        t[mode] = d
    t["energy_ratio_fp32_int8"] = t["fp32"]["energy_pj"] / t["int8"]["energy_pj"] if t["int8"]["energy_pj"] else None
    return t


def _table_ix(arch: Architecture, w: int, h: int) -> dict:
    """The Table IX block (MB = 10^6 bytes) from fxlic.io.modelfile.memory_counts."""
    mc = memory_counts(arch, w, h)
    res = {}
    for part in ("encoder", "decoder"):
        c = mc[part]
        wq, sfw = c["weights"] * W_BITS / 8 / MB, c["weight_sf"] * WSF_BITS / 8 / MB
        oq, sfo = c["activations"] * A_BITS / 8 / MB, c["act_sf"] * ASF_BITS / 8 / MB
        wf, of = FP32_BYTES * c["weights"] / MB, FP32_BYTES * c["activations"] / MB
        res[part] = {"w": wq, "sf_w": sfw, "w_total": wq + sfw, "o": oq, "sf_o": sfo, "o_total": oq + sfo,
                     "fp32_w": wf, "fp32_o": of,
                     "w_reduction_pct": 100 * ((wq + sfw) / wf - 1), "o_reduction_pct": 100 * ((oq + sfo) / of - 1)}
        if "activations_without_hs_tconv" in c:
            res[part]["o_without_hs_tconv"] = c["activations_without_hs_tconv"] * A_BITS / 8 / MB
    return res


def model_cost(arch: Architecture, w: int = TABLE_IX_SIZE[0], h: int = TABLE_IX_SIZE[1], pad: bool = True,
               name: str = None) -> dict:
    """The whole cost report (JSON-serialisable) of ``arch`` for a w x h image."""
    pw, ph = w, h
    if pad:
        m = arch.pad_multiple
        pw, ph = -(-w // m) * m, -(-h // m) * m
    rows = layer_costs(arch, pw, ph)
    by = {r["name"]: r for r in rows}
    parts = {}
    for part, layers in (("encoder", arch.encoder), ("decoder", arch.decoder)):
        pr = [by[l.name] for l in layers]
        parts[part] = {"layers": [r["name"] for r in pr], "totals": _part_totals(pr)}
    ix = _table_ix(arch, pw, ph)
    for part in parts:  # the per-layer sums are the counts fxlic info prints
        t = parts[part]["totals"]
        assert abs(t["int8"]["weight_bytes"] / MB - ix[part]["w"]) < 1e-9
        assert abs(t["int8"]["act_bytes"] / MB - ix[part]["o"]) < 1e-9
    return {
        "model": name or arch.name, "architecture": arch.name, "kind": arch.kind, "N": arch.N, "M": arch.M,
        "input_size": [w, h], "computed_size": [pw, ph], "padded": bool(pad and (pw, ph) != (w, h)),
        "pj_per_op": PJ, "arithmetic": {k: {"mult": v[0], "add": v[1]} for k, v in ARITHMETIC.items()},
        "bits": {"weight": W_BITS, "weight_sf": WSF_BITS, "activation": A_BITS, "activation_sf": ASF_BITS},
        "layers": rows, "parts": parts, "table_ix_mb": ix,
    }


# ---------------------------------------------------------------- text

def _fmt_bytes(b: float) -> str:
    if b >= 1e6:
        return f"{b / 1e6:.3f} MB"
    if b >= 1e3:
        return f"{b / 1e3:.1f} kB"
    return f"{b:.0f} B"


def _table(rows: list, right_from: int = 1) -> list:
    wd = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    out = []
    for j, r in enumerate(rows):
        out.append("  ".join(c.ljust(x) if i < right_from else c.rjust(x) for i, (c, x) in enumerate(zip(r, wd))))
        if j == 0:
            out.append("  ".join("-" * x for x in wd))
    return out


def format_cost(rep: dict) -> str:
    """The report as text tables (per layer for each part, then Table IX)."""
    w, h = rep["input_size"]
    pw, ph = rep["computed_size"]
    L = [f"{rep['model']}: {rep['architecture']} ({rep['kind']}, N={rep['N']}, M={rep['M']}), "
         f"input {w}x{h}" + (f", padded to {pw}x{ph} as the codec does" if rep["padded"] else "")]
    L.append("energy: Table X (45 nm) pJ per op; int8 = 8-bit multiply + 32-bit add, fp32 = fp32 multiply + add; "
             "one add per output for the bias")
    by = {r["name"]: r for r in rep["layers"]}
    for part in ("encoder", "decoder"):
        P = rep["parts"][part]
        t = P["totals"]
        L.append("")
        L.append(f"{part} ({'g_a + h_a + h_s' if part == 'encoder' else 'h_s + g_s'}, {t['layers']} layers)"
                 if rep["kind"] == "hyperprior" else f"{part} ({t['layers']} layers)")
        tab = [("layer", "op", "in HxWxC", "out HxWxC", "MMAC", "weights", "activations", "line buffer",
                "int8 uJ", "fp32 uJ")]
        for n in P["layers"]:
            r = by[n]
            q = r["int8"]
            tab.append((n, r["op"], f"{r['in_hw'][0]}x{r['in_hw'][1]}x{r['cin']}",
                        f"{r['out_hw'][0]}x{r['out_hw'][1]}x{r['cout']}", f"{r['macs'] / 1e6:,.1f}",
                        _fmt_bytes(q["weight_bytes"] + q["weight_sf_bytes"]), _fmt_bytes(q["act_bytes"]),
                        f"{q['line_rows']} x {_fmt_bytes(q['line_buffer_bytes'] / q['line_rows'])}"
                        if q["line_rows"] else "0",
                        f"{q['energy_pj'] / 1e6:,.1f}", f"{r['fp32']['energy_pj'] / 1e6:,.1f}"))
        q, f = t["int8"], t["fp32"]
        tab.append(("total", "", "", "", f"{t['macs'] / 1e6:,.1f}",
                    _fmt_bytes(q["weight_bytes"] + q["weight_sf_bytes"]), _fmt_bytes(q["act_bytes"]),
                    f"sum {_fmt_bytes(q['line_buffer_bytes_sum'])}", f"{q['energy_pj'] / 1e6:,.1f}",
                    f"{f['energy_pj'] / 1e6:,.1f}"))
        L += ["  " + s for s in _table(tab, right_from=4)]
        L.append(f"  {t['macs'] / 1e9:.2f} GMAC; energy {q['energy_pj'] / 1e9:.2f} mJ int8 vs "
                 f"{f['energy_pj'] / 1e9:.2f} mJ fp32 ({t['energy_ratio_fp32_int8']:.1f}x); line buffers "
                 f"{_fmt_bytes(q['line_buffer_bytes_sum'])} all layers streaming at once, "
                 f"{_fmt_bytes(q['line_buffer_bytes_max'])} the largest layer (fp32: "
                 f"{_fmt_bytes(f['line_buffer_bytes_sum'])} / {_fmt_bytes(f['line_buffer_bytes_max'])}); "
                 f"biases {t['biases']:,} x int32 not counted above")
    L.append("")
    L.append(f"memory as Table IX counts it at {pw}x{ph} (MB = 10^6 bytes; weights {rep['bits']['weight']}-bit "
             f"+ {rep['bits']['weight_sf']}-bit sf per output channel, activations {rep['bits']['activation']}-bit "
             f"+ {rep['bits']['activation_sf']}-bit sf per output channel, every layer output)")
    tab = [("", "w", "sf_w", "w total", "fp32 w", "change", "o", "sf_o", "o total", "fp32 o", "change")]
    for part in ("encoder", "decoder"):
        x = rep["table_ix_mb"][part]
        tab.append((part, f"{x['w']:.3f}", f"{x['sf_w']:.4f}", f"{x['w_total']:.3f}", f"{x['fp32_w']:.2f}",
                    f"{x['w_reduction_pct']:+.2f} %", f"{x['o']:.3f}", f"{x['sf_o']:.4f}", f"{x['o_total']:.3f}",
                    f"{x['fp32_o']:.2f}", f"{x['o_reduction_pct']:+.2f} %"))
    L += ["  " + s for s in _table(tab)]
    d = rep["table_ix_mb"]["decoder"]
    if rep["kind"] == "hyperprior" and "o_without_hs_tconv" in d:
        L.append(f"  decoder o counts every layer output; without the HS0/HS1 outputs it is "
                 f"{d['o_without_hs_tconv']:.3f} MB, the rule behind Table IX's printed decoder value "
                 f"(docs/COST.md)")
    return "\n".join(L)


# ---------------------------------------------------------------- plot

def plot_cost(rep: dict, path: str) -> str:
    """Per-layer energy (int8 vs fp32) and int8 memory (weights, activations,
    line buffer) for the encoder and the decoder, log scale."""
    import os

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    by = {r["name"]: r for r in rep["layers"]}
    fig, axes = plt.subplots(2, 2, figsize=(12, 7.5), dpi=110)
    for i, part in enumerate(("encoder", "decoder")):
        names = rep["parts"][part]["layers"]
        x = np.arange(len(names))
        ax = axes[i, 0]
        ei = [by[n]["int8"]["energy_pj"] / 1e6 for n in names]
        ef = [by[n]["fp32"]["energy_pj"] / 1e6 for n in names]
        ax.bar(x - 0.2, ef, 0.4, label="fp32", color="#d62728")
        ax.bar(x + 0.2, ei, 0.4, label="int8 (8-bit mult, 32-bit add)", color="#1f77b4")
        ax.set_yscale("log")
        ax.set_ylabel("energy per image (uJ)")
        ax.set_title(f"{part}: energy per layer (Table X, 45 nm)", fontsize=9)
        ax.set_xticks(x, names, fontsize=7, rotation=45)
        ax.legend(fontsize=7)
        ax = axes[i, 1]
        series = (("weights + sf_w", "#2ca02c", lambda q: q["weight_bytes"] + q["weight_sf_bytes"]),
                  ("activations (whole map)", "#ff7f0e", lambda q: q["act_bytes"]),
                  ("line buffer (k-1 rows)", "#9467bd", lambda q: q["line_buffer_bytes"]))
        lo = []
        for k, (lab, col, fn) in enumerate(series):
            vals = [fn(by[n]["int8"]) for n in names]
            lo += [v for v in vals if v > 0]
            ax.bar(x + (k - 1) * 0.27, vals, 0.27, label=lab, color=col)
        ax.set_yscale("log")
        ax.set_ylim(bottom=0.5 * min(lo))
        ax.set_ylabel("bytes (int8)")
        ax.set_title(f"{part}: memory per layer", fontsize=9)
        ax.set_xticks(x, names, fontsize=7, rotation=45)
        ax.legend(fontsize=7)
    w, h = rep["computed_size"]
    fig.suptitle(f"{rep['model']} ({rep['architecture']}) at {w}x{h}", fontsize=10)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
