"""The report's Models table: each float model's architecture, lambda, training
lineage (from the weights file's provenance), WCFT rounds, wall time, weights
hash and the integer model evaluated."""
from __future__ import annotations

import os

from .fmt import f, md_table


def lineage_steps(pv: dict) -> list:
    """Training steps (without WCFT) of a float model and of the runs it was started
    from, newest first, as far as the provenance records them: an exported file's
    provenance carries its parent's (``init_from.init_args``) when the parent was a
    .safetensors file, and only the parent's step count when it was a checkpoint.  A
    ``--wcft-exponent keep`` run (docs/TRAINING.md step 13) trains every step under the
    clip its parent's WCFT round left, so all its steps count as training."""
    out = []
    while pv:
        if pv.get("wcft_exponent") == "keep":  # trained on under an earlier round's clip: all steps count
            out.append(pv.get("steps"))
        else:
            out.append(pv.get("train_steps", pv.get("steps")))
        init = pv.get("init_from") or {}
        parent = init.get("init_args") or {}
        if "train_steps" in parent:  # the parent is an exported file: walk on
            pv = parent
            continue
        if init.get("init_steps"):
            out.append(init["init_steps"])
        break
    return out


def section_models(ctx):
    """The Models table: every float model (and ``*-nowcft`` export) with its integer model's
    content hash, marked when it is the shipped fxlic/zoo file."""
    rows = []
    for name in list(ctx.meta):
        m = ctx.meta[name]
        pv = m["provenance"] or {}
        chain = lineage_steps(pv)
        steps = None if not chain or chain[0] is None else " + ".join(str(c) for c in chain)
        wc = pv.get("wcft_rounds")
        wall = pv.get("wall_seconds", pv.get("wall"))
        base, nw = (name[:-7], True) if name.endswith("-nowcft") else (name, False)
        ip = ctx.int_model(base, nowcft=nw)
        icell = "–"
        if ip:
            from fxlic.eval.runner import _content_hash
            from fxlic.io.modelfile import ZOO_DIR
            ch = _content_hash(ip)
            zp = os.path.join(ZOO_DIR, base + ".fxq")
            shipped = (not nw) and os.path.exists(zp) and _content_hash(zp) == ch
            icell = f"{ch[7:19]}" + (" (= shipped fxlic/zoo/" + base + ".fxq)" if shipped else " (quantized here)")
        rows.append([name, m["arch"], f(m["lambda"], "{:g}"), f(steps, "{}"), f(wc, "{}") if wc is not None else "–",
                     f(wall / 3600 if isinstance(wall, (int, float)) else None, "{:.2f} h"), (m["sha256"] or "")[:12],
                     icell])
    return md_table(["float model", "architecture", "lambda", "training steps (own + runs it started from)", "WCFT rounds",
                     "wall time (own)", "weights sha256", "integer model (content hash)"], rows)
