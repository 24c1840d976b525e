"""Functional coverage of a conformance case (``fxlic vectors --coverage``).

A golden vector only proves a port right on the integers it contains.  This
module says *which corner cases of docs/SPEC.md a case contains*: every
functional "bin" of every layer, counted on the integer tensors the engine
produces for the case (the same ``hook`` of ``fxlic.model.int_forward`` the
vectors writer records through, ``fxlic.vectors.writer.run_case``).  Nothing
here computes a layer: the bins are read off the accumulators and output codes
the engine produced, together with the layer's stored parameters.

Bins of a layer, by its output stage (the SPEC rule each bin exercises):

============================  =====================================================
bin                           hit when an element of the layer ...
============================  =====================================================
**O1** (ReLU + NLQ with mux)
``mux<m>.seg<j>``             of a channel with mux ``m`` is quantized in segment
                              ``j`` of that mux's codebook (SPEC X1 table, Q1/Q2:
                              the segment test ``(|a| >> s) >= lo_j``); mux 0 has
                              1 segment, mux 1 three, muxes 2 and 3 two (8 bins)
``mux<m>.clip``               of a mux-``m`` channel rounds above the codebook's top
                              level and is clipped (SPEC X2, Q1 saturation; 4 bins)
``relu``                      has a negative accumulator (ReLU, the low end, O1)
``tie+``                      hits an exact R1 tie ``a mod 2^(s+k) = 2^(s+k-1)``,
                              ``a > 0`` (SPEC R1, Q2: ``RHU(a, s + k_j)``)
``tie-``                      unreachable for O1: the operand is ``max(acc, 0)``
**O2** (signed LQ; hyper path and HS5)
``sat-`` / ``sat+``           ``RQ(acc, s')`` below -128 / above 127 (SPEC O2, R3)
``tie+`` / ``tie-``           exact R1 tie of ``RQ(acc, s')`` with ``acc > 0`` /
                              ``acc < 0`` (SPEC R1, R2; ``s' = s + 3`` on the
                              negative LeakyReLU side)
``leaky``                     (LeakyReLU only) a negative accumulator: the 1/8 slope
``leaky.odd``                 (LeakyReLU only) a negative accumulator whose value on
                              the output grid ``RQ(acc, s)`` is not a multiple of 8:
                              the slope needs rounding (SPEC O2: acc = -13, s = 0)
``leaky.1round``              (LeakyReLU only) a negative accumulator where one
                              rounding ``RQ(acc, s + 3)`` differs from the double
                              rounding ``RQ(RQ(acc, s), 3)`` (SPEC O2 "no double
                              rounding")
**O3** (latents y, z)
``sat-`` / ``sat+``           ``RQ(acc, s) - mu`` below -128 / above 127 (SPEC O3, R3)
``tie+`` / ``tie-``           exact R1 tie of ``RQ(acc, s)`` by sign of acc (R1, R2)
``mean_reduced``              (y only) a mean-reduced channel with ``mu != 0`` (SPEC M1)
**O5** (offset latents: z and a factorized y; also the y symbols of an
offset-latent hyperprior, formed from AT3's accumulators and HS5's means)
``o5.sat-`` / ``o5.sat+``     ``RHU(diff, F)`` below -128 / above 127, ``diff = acc *
                              2^(F+E) - off * 2^(F-G)`` (SPEC O5, R3)
``o5.tie+`` / ``o5.tie-``     an exact R1 tie of ``RHU(diff, F)`` with ``diff > 0`` /
                              ``diff < 0`` (SPEC O5, R1)
``o5.off-`` / ``o5.off+``     an element whose offset (2^-G grid) is negative /
                              positive (the median, or the predicted mean)
``o5.frac``                   an offset that is not a multiple of 2^G (the grid
                              matters: ``y - off 2^-G`` is not an integer shift)
**O6** (AT3 of a spec-1.4 offset-latent hyperprior: HA0's y on the 2^-H grid;
its O5 bins as above, for the y symbols)
``o6.sat-`` / ``o6.sat+``     ``RQ(acc, -H - E)`` below -2^(7+H) / above 2^(7+H) - 1
                              (SPEC O6, R3)
``o6.tie+`` / ``o6.tie-``     an exact R1 tie of ``RQ(acc, -H - E)`` by sign of acc
**O4** (reconstruction)
``sat-`` / ``sat+``           ``RQ(acc, s)`` below 0 / above 255 (SPEC O4)
``tie+`` / ``tie-``           exact R1 tie of ``RQ(acc, s)`` by sign of acc (R1, R2)
**any layer**
``phase<py><px>``             (transposed convolutions) an output of phase
                              ``(oy mod 2, ox mod 2)`` receives a non-zero product
                              (``acc != bias``; SPEC C2: 4 bins)
``mr_input``                  (layers reading y + mu; not in offset-latent models,
                              which have no mean-reduced channels) reads a mean-reduced channel with ``mu != 0``:
                              ``stored + mu`` decode (SPEC M1, I1)
============================  =====================================================

Besides the bins every layer reports its **accumulator peak**: ``max |acc|``
of each output channel as a share of that channel's proven bound ``B[o]``
(SPEC A3, ``fxlic.model.intmodel.accumulator_bound``; the worst channel is
reported).  It is a measurement, not a bin (the unit cases ``a3_acc_worst_*``
reach 100 %).

Bins of the entropy side (group ``entropy``):

============================  =====================================================
``y.scale<i>``                (hyperprior) an element of y has Gaussian scale index
                              ``i = #{t < 63 : scale_q > T_t}``, i = 0..63 (SPEC E1;
                              64 bins)
``y.scale_neg``               (hyperprior) a negative ``scale_q`` (index ``|d| * 64``,
                              SPEC E1)
``y.d<d>``                    (hyperprior) an element has mean fraction
                              ``d = mean_q - 4 base`` = -2, -1, 0, +1 (SPEC E1): the
                              three mean families ``|d|`` and the mirrored sign
``y.esc-`` / ``y.esc+``       a y symbol below / above its table: escape with odd /
                              even raw value and bypass chunks (docs/ENTROPY.md 4)
``z.esc-`` / ``z.esc+``       (hyperprior) the same for z
============================  =====================================================

A bin counts for a suite (``suite_coverage``) only from cases that *check* it:
a layer's bins where the case holds the layer's golden output
(``layers/<L>/out``), the entropy bins where it holds the entropy side
(``entropy/y_sym``).
"""
from __future__ import annotations

import json
import os

import numpy as np

COVERAGE_FILE = "coverage.json"
FORMAT = "fxlic-coverage"
FORMAT_VERSION = 1

#: the segments of each mux codebook (SPEC X1)
N_SEGMENTS = {0: 1, 1: 3, 2: 2, 3: 2}

#: bins that no input can reach, with the reason (they are listed, never counted)
UNREACHABLE = {
    ("O1", "tie-"): "the NLQ operand is max(acc, 0) >= 0 (SPEC O1), so no negative tie exists",
}

#: SPEC rule of each bin (by the bin's first component)
BIN_RULE = {"mux": "X1 Q1 Q2", "relu": "O1", "tie+": "R1", "tie-": "R1", "sat-": "R3",
            "sat+": "R3", "leaky": "O2", "leaky.odd": "O2", "leaky.1round": "O2",
            "mean_reduced": "M1", "phase": "C2", "mr_input": "M1 I1", "o5": "O5", "o6": "O6", "y.scale": "E1",
            "y.scale_neg": "E1", "y.d": "E1", "y.esc-": "ENTROPY 4", "y.esc+": "ENTROPY 4",
            "z.esc-": "ENTROPY 4", "z.esc+": "ENTROPY 4"}


def bin_rule(name: str) -> str:
    if name in BIN_RULE:
        return BIN_RULE[name]
    for pre in ("mux", "phase", "y.scale", "y.d", "o5", "o6"):
        if name.startswith(pre):
            return BIN_RULE[pre]
    return ""


# ---------------------------------------------------------------------------
# the bins of one layer
# ---------------------------------------------------------------------------

#: the bins of an O5 stage (SPEC O5)
O5_BINS = ("o5.sat-", "o5.sat+", "o5.tie+", "o5.tie-", "o5.off-", "o5.off+", "o5.frac")
#: the bins of AT3's O6 stage (HA0's y on the 2^-H grid, SPEC O6)
O6_BINS = ("o6.sat-", "o6.sat+", "o6.tie+", "o6.tie-")


def layer_bins(spec, out_rule: str, model=None) -> list:
    """Every bin of a layer (by its op, activation, source and output stage),
    reachable or not, in report order.  ``model`` (an offset-latent model):
    the O5 bins of its latent layers, and no ``mr_input`` where the input is
    decoded without mu (SPEC O5)."""
    offset = bool(model is not None and model.offset_latents)  # no M1 (SPEC O5)
    b = []
    if out_rule == "O5":
        b += list(O5_BINS)
    elif out_rule == "O1":
        for m in range(4):
            b += [f"mux{m}.seg{j}" for j in range(N_SEGMENTS[m])]
        b += [f"mux{m}.clip" for m in range(4)]
        b += ["relu", "tie+", "tie-"]
    elif out_rule == "O6":  # HA0's y on the 2^-H grid, then the O5 symbols after HS5
        b += list(O6_BINS) + list(O5_BINS)
    else:
        b += ["sat-", "sat+", "tie+", "tie-"]
        if out_rule == "O2" and spec.act == "leaky":
            b += ["leaky", "leaky.odd", "leaky.1round"]
        if out_rule == "O3" and spec.out == "y":
            if not offset:  # an offset-latent model has no mean-reduced channels (SPEC O5)
                b += ["mean_reduced"]
            if offset_y_layer(model, spec):  # the y symbols of an offset-latent hyperprior
                b += list(O5_BINS)
    if spec.op == "tconv":
        b += [f"phase{py}{px}" for py in range(2) for px in range(2)]
    if spec.src in ("y", "y_hat") and not offset:
        b += ["mr_input"]
    return b


def offset_y_layer(model, spec) -> bool:
    """AT3 of an offset-latent hyperprior: O3 codes out, O5 symbols after HS5."""
    return bool(model is not None and model.offset_latents and model.arch.kind == "hyperprior"
                and spec.out == "y")


def count_o5(acc, acc_exp, off, grid_bits: int) -> dict:
    """The O5 bins of accumulators ``acc`` (O, H, W) with exponents ``acc_exp``
    (O,) and offsets ``off`` on the 2^-G grid (broadcasting to acc), exactly."""
    from ..kernels.reference import offset_difference

    acc = np.asarray(acc, np.int64)
    off = np.broadcast_to(np.asarray(off, np.int64), acc.shape)
    c = {b: 0 for b in O5_BINS}
    for o in range(acc.shape[0]):
        diff, F = offset_difference(acc[o], int(acc_exp[o]), off[o], grid_bits)
        v = _rq(diff, np.full(diff.shape, F))
        t = _ties(diff, np.full(diff.shape, F))
        c["o5.sat-"] += _count(v < -128)
        c["o5.sat+"] += _count(v > 127)
        c["o5.tie+"] += _count(t & (diff > 0))
        c["o5.tie-"] += _count(t & (diff < 0))
    c["o5.off-"] = _count(off < 0)
    c["o5.off+"] = _count(off > 0)
    c["o5.frac"] = _count((off & ((1 << grid_bits) - 1)) != 0)
    return c


def _rq(a, s):
    """R2 elementwise with a per-element shift (analysis copy: counts only)."""
    from ..spec import requant_shift

    a = np.asarray(a, np.int64)
    s = np.broadcast_to(np.asarray(s, np.int64), a.shape)
    out = np.empty(a.shape, np.int64)
    for v in np.unique(s):
        sel = s == v
        out[sel] = requant_shift(a[sel], int(v))
    return out


def _ties(a, s):
    """Elements where ``RHU(a, s)`` is an exact tie: s >= 1 and a mod 2^s = 2^(s-1)."""
    a = np.asarray(a, np.int64)
    s = np.broadcast_to(np.asarray(s, np.int64), a.shape)
    ok = (s >= 1) & (s <= 62)
    sc = np.where(ok, s, 1)
    mask = (np.int64(1) << sc) - 1
    return ok & ((a & mask) == (np.int64(1) << (sc - 1)))


def _count(sel) -> int:
    return int(np.count_nonzero(sel))


def count_layer(model, name: str, acc: np.ndarray, out: np.ndarray, mu: np.ndarray, means=None) -> dict:
    """``{bin: number of elements}`` of one layer run (acc and out as the engine
    produced them) and the accumulator peak against the bound (SPEC A3).
    ``means``: the means of y on the 2^-G grid (AT3 of an offset-latent hyperprior)."""
    from ..model.intmodel import accumulator_bound
    from ..quant.codebook import act_nlq
    from .writer import layer_rule

    L = model.layer(name)
    spec = L.spec
    rule = layer_rule(model, spec)
    acc = np.asarray(acc, np.int64)
    s = np.asarray(L.out_shift, np.int64)[:, None, None]
    c = {}
    if rule == "O5":
        c.update(count_o5(acc, L.acc_exp, np.asarray(model.offset_q, np.int64)[:, None, None],
                              model.grid_bits))
    elif rule == "O6":
        sh = np.broadcast_to(model.ha_y_shift()[:, None, None], acc.shape)
        v = _rq(acc, sh)
        b = 7 + model.ha_grid_bits
        c["o6.sat-"] = _count(v < -(1 << b))
        c["o6.sat+"] = _count(v > (1 << b) - 1)
        t = _ties(acc, sh)
        c["o6.tie+"] = _count(t & (acc > 0))
        c["o6.tie-"] = _count(t & (acc < 0))
        if means is not None:
            c.update(count_o5(acc, L.acc_exp, means, model.grid_bits))
    elif rule == "O1":
        a = np.maximum(acc, 0)
        ss = np.broadcast_to(s, a.shape)
        a = np.where(ss < 0, a << np.maximum(-ss, 0), a)  # Q2: a := a << -s, s := 0
        ss = np.maximum(ss, 0)
        mux = np.broadcast_to(np.asarray(L.mux, np.int64)[:, None, None], a.shape)
        tie = np.zeros(a.shape, bool)
        for m in range(4):
            cb = act_nlq(m)
            chan = mux == m
            seg = np.zeros(a.shape, np.int64)
            hi = np.minimum(ss, 63)
            for j, g in enumerate(cb.segments):
                seg = np.where((a >> hi) >= g.lo, j, seg)
            ks = np.asarray([g.k for g in cb.segments], np.int64)[seg]
            for j in range(len(cb.segments)):
                c[f"mux{m}.seg{j}"] = _count(chan & (seg == j))
            lvl = _rq(a, ss + ks) << ks
            c[f"mux{m}.clip"] = _count(chan & (lvl > cb.max_level))
            tie |= chan & (a > 0) & _ties(a, ss + ks)
        c["relu"] = _count(acc < 0)
        c["tie+"] = _count(tie)
        c["tie-"] = 0
    else:
        sh = np.broadcast_to(s, acc.shape)
        leaky = rule == "O2" and spec.act == "leaky"
        if leaky:
            sh = np.where(acc < 0, sh + 3, sh)
        v = _rq(acc, sh)
        if rule == "O3":
            v = v - np.asarray(mu if spec.out == "y" else np.zeros(spec.cout), np.int64)[:, None, None]
        lo, hi = (0, 255) if rule == "O4" else (-128, 127)
        c["sat-"] = _count(v < lo)
        c["sat+"] = _count(v > hi)
        t = _ties(acc, sh)
        c["tie+"] = _count(t & (acc > 0))
        c["tie-"] = _count(t & (acc < 0))
        if leaky:
            neg = acc < 0
            s0 = np.broadcast_to(s, acc.shape)
            v0 = _rq(acc, s0)
            c["leaky"] = _count(neg)
            c["leaky.odd"] = _count(neg & ((v0 & 7) != 0))
            c["leaky.1round"] = _count(neg & (_rq(v0, np.full(acc.shape, 3)) != v))
        if rule == "O3" and spec.out == "y":
            red = np.asarray(model.mr_mask, bool) & (np.asarray(mu) != 0)
            c["mean_reduced"] = int(red.sum()) * int(np.prod(acc.shape[1:]))
            if offset_y_layer(model, spec) and means is not None:
                c.update(count_o5(acc, L.acc_exp, means, model.grid_bits))
    if spec.op == "tconv":
        bias = np.asarray(L.bias, np.int64)[:, None, None]
        for py in range(2):
            for px in range(2):
                c[f"phase{py}{px}"] = _count((acc - bias)[:, py::2, px::2] != 0)
    if spec.src in ("y", "y_hat"):
        red = np.asarray(model.mr_mask, bool) & (np.asarray(mu) != 0)
        c["mr_input"] = int(red.sum())
    bound = accumulator_bound(model, name)
    peak = np.abs(acc).reshape(acc.shape[0], -1).max(axis=1) if acc.size else np.zeros(acc.shape[0], np.int64)
    share = np.where(bound > 0, peak / np.maximum(bound, 1), 0.0)
    o = int(np.argmax(share))
    return {"counts": c, "rule": rule,
            "acc_peak": {"channel": o, "peak": int(peak[o]), "bound": int(bound[o]),
                         "percent": round(100.0 * float(share[o]), 3),
                         "max_abs_acc": int(peak.max()) if peak.size else 0}}


# ---------------------------------------------------------------------------
# the entropy side
# ---------------------------------------------------------------------------

def entropy_bins(kind: str, offset: bool = False) -> list:
    """The entropy bins; ``offset`` (SPEC O5): no mean families (y is coded with
    the zero-mean family)."""
    if kind == "hyperprior":
        return ([f"y.scale{i}" for i in range(64)] + ["y.scale_neg"]
                + ([] if offset else [f"y.d{d:+d}" if d else "y.d0" for d in (-2, -1, 0, 1)])
                + ["y.esc-", "y.esc+", "z.esc-", "z.esc+"])
    return ["y.esc-", "y.esc+"]


def _escapes(sym, idx, tables):
    """(below, above) counts of symbols outside their table (docs/ENTROPY.md 4)."""
    sym = np.asarray(sym, np.int64).reshape(-1)
    idx = np.asarray(idx, np.int64).reshape(-1)
    value = sym - np.asarray(tables.offsets, np.int64)[idx]
    mv = np.asarray(tables.cdf_sizes, np.int64)[idx] - 2
    return _count(value < 0), _count(value >= mv)


def count_entropy(model, run: dict) -> dict:
    """``{bin: count}`` of the entropy side of a ``run_case`` result."""
    from ..codec import means_scales
    from ..io.modelcheck import checked_tables
    from ..entropy.gaussian import y_indexes, y_means

    t = checked_tables(model)
    fact, gauss = t.fact, t.gauss
    mu = np.asarray(run["mu"], np.int64)
    y_hat = np.asarray(run["y"], np.int64) + mu[:, None, None]
    c = {}
    if model.offset_latents and model.arch.kind == "hyperprior":  # SPEC O5
        from ..model.int_forward import offset_means, offset_y
        _, scales = means_scales(model, run["ms"], gauss)
        idx = np.asarray(y_indexes(scales, np.zeros_like(scales), gauss), np.int64)
        for i in range(64):
            c[f"y.scale{i}"] = _count(idx == i)
        c["y.scale_neg"] = _count(scales < 0)
        sym = offset_y(model, run["y_acc"], offset_means(model, run["ms"]))
        c["y.esc-"], c["y.esc+"] = _escapes(sym, idx, gauss)
        z = np.asarray(run["z"], np.int64)
        zi = np.broadcast_to(np.arange(z.shape[0])[:, None, None], z.shape)
        c["z.esc-"], c["z.esc+"] = _escapes(z, zi, fact)
    elif model.arch.kind == "hyperprior":
        means, scales = means_scales(model, run["ms"], gauss)
        base, sign, fam = y_means(means, gauss)
        idx = np.asarray(y_indexes(scales, fam, gauss), np.int64)
        si = idx - fam * (gauss.thresholds.size + 1)
        for i in range(64):
            c[f"y.scale{i}"] = _count(si == i)
        c["y.scale_neg"] = _count(scales < 0)
        d = means - (base << gauss.mean_frac_bits)
        for dv in (-2, -1, 0, 1):
            c[f"y.d{dv:+d}" if dv else "y.d0"] = _count(d == dv)
        c["y.esc-"], c["y.esc+"] = _escapes(sign * (y_hat - base), idx, gauss)
        z = np.asarray(run["z"], np.int64)
        zi = np.broadcast_to(np.arange(z.shape[0])[:, None, None], z.shape)
        c["z.esc-"], c["z.esc+"] = _escapes(z, zi, fact)
    else:
        yi = np.broadcast_to(np.arange(y_hat.shape[0])[:, None, None], y_hat.shape)
        c["y.esc-"], c["y.esc+"] = _escapes(y_hat, yi, fact)
    return c


# ---------------------------------------------------------------------------
# a case
# ---------------------------------------------------------------------------

def case_coverage(model, run: dict, checked=None, entropy_checked: bool = True,
                  model_name: str = None, model_hash: str = None, image: dict = None) -> dict:
    """The coverage record of one case from a ``run_case`` result.  ``checked``:
    the layers whose golden output the case holds (None: every layer)."""
    from ..spec import SPEC_VERSION
    from .writer import layer_rule

    names = [s.name for s in model.arch.layers]
    checked = set(names if checked is None else checked)
    layers = []
    means = None
    if model.offset_latents and model.arch.kind == "hyperprior":
        from ..model.int_forward import offset_means
        means = offset_means(model, run["ms"])
    for spec in model.arch.layers:
        n = spec.name
        _, acc, out = run["layers"][n]
        r = count_layer(model, n, acc, out, run["mu"], means)
        rule = layer_rule(model, spec)
        bins = layer_bins(spec, rule, model)
        unreach = {b: UNREACHABLE[(rule, b)] for b in bins if (rule, b) in UNREACHABLE}
        layers.append({"name": n, "op": spec.op, "act": spec.act, "rule": rule, "checked": n in checked,
                       "bins": {b: int(r["counts"].get(b, 0)) for b in bins},
                       "unreachable": unreach, "acc_peak": r["acc_peak"]})
    kind = model.arch.kind
    ec = count_entropy(model, run)
    ent = {"name": "entropy", "rule": "E1", "checked": bool(entropy_checked),
           "bins": {b: int(ec.get(b, 0)) for b in entropy_bins(kind, model.offset_latents)}, "unreachable": {}}
    rec = {"format": FORMAT, "format_version": FORMAT_VERSION, "spec_version": SPEC_VERSION,
           "model": {"name": model_name or model.arch.name, "hash": model_hash,
                     "architecture": model.arch.name, "kind": kind},
           "image": image or {}, "layers": layers, "entropy": ent}
    rec["summary"] = summarize([rec])
    return rec


def _groups(rec):
    return list(rec["layers"]) + [rec["entropy"]]


def summarize(records) -> dict:
    """Union over case records: bins (layer, bin) total, hit (by a checking
    case), unreachable, and the missing ones."""
    total, hit, unreach = {}, set(), {}
    for rec in records:
        for g in _groups(rec):
            for b, n in g["bins"].items():
                key = f"{g['name']}/{b}"
                if b in g.get("unreachable", {}):
                    unreach[key] = g["unreachable"][b]
                    continue
                total[key] = True
                if n and g["checked"]:
                    hit.add(key)
    keys = sorted(total)
    missing = [k for k in keys if k not in hit]
    pct = round(100.0 * len(hit) / len(keys), 2) if keys else 100.0
    return {"bins": len(keys), "hit": len(hit), "percent": pct, "missing": missing,
            "unreachable": {k: unreach[k] for k in sorted(unreach)}}


def coverage_bytes(rec: dict) -> bytes:
    from .store import json_bytes
    return json_bytes(rec)


# ---------------------------------------------------------------------------
# text reports
# ---------------------------------------------------------------------------

def _fmt_missing(names, limit=8):
    if not names:
        return "-"
    s = " ".join(names[:limit])
    return s + (f" (+{len(names) - limit})" if len(names) > limit else "")


def _unreachable_lines(summary) -> list:
    by = {}
    for k, why in summary["unreachable"].items():
        by.setdefault(why, []).append(k)
    return [f"unreachable (not counted): {' '.join(ks)}: {why}" for why, ks in by.items()]


def format_case(rec: dict, where: str = None) -> str:
    """Per-layer text report of one case record."""
    s = rec["summary"]
    im = rec.get("image") or {}
    size = f", {im.get('width')}x{im.get('height')}" if im.get("width") else ""
    head = (f"coverage of {where or 'the case'} (model {rec['model']['name']}{size}): {s['hit']} of "
            f"{s['bins']} bins ({s['percent']:.1f} %)"
            + (f"; {len(s['unreachable'])} unreachable bins not counted" if s["unreachable"] else ""))
    lines = [head, f"{'layer':<8} {'rule':<4} {'checked':<7} {'bins':>7}  {'acc peak':>9}  missing"]
    for g in _groups(rec):
        bins = {b: n for b, n in g["bins"].items() if b not in g.get("unreachable", {})}
        got = [b for b, n in bins.items() if n]
        miss = [b for b, n in bins.items() if not n]
        pk = g.get("acc_peak")
        pk = f"{pk['percent']:8.2f}%" if pk else f"{'':>9}"
        lines.append(f"{g['name']:<8} {g['rule']:<4} {'yes' if g['checked'] else 'no':<7} "
                     f"{len(got):>3}/{len(bins):<3}  {pk}  {_fmt_missing(miss)}")
    lines += _unreachable_lines(s)
    lines.append("(a layer's bins count where the case holds its golden output: checked = yes)")
    return "\n".join(lines)


def suite_table(records, names=None) -> dict:
    """Per group (layer or entropy): bins, the cases hitting each, and the
    largest accumulator peak; from checking cases only."""
    rows = {}
    order = []
    for i, rec in enumerate(records):
        case = names[i] if names else str(i)
        for g in _groups(rec):
            r = rows.get(g["name"])
            if r is None:
                r = rows[g["name"]] = {"name": g["name"], "rule": g["rule"], "bins": {}, "unreachable": {},
                                       "peak": None}
                order.append(g["name"])
            for b, n in g["bins"].items():
                if b in g.get("unreachable", {}):
                    r["unreachable"][b] = g["unreachable"][b]
                    continue
                hits = r["bins"].setdefault(b, [])
                if n and g["checked"]:
                    hits.append(case)
            pk = g.get("acc_peak")
            if pk and g["checked"] and (r["peak"] is None or pk["percent"] > r["peak"][0]):
                r["peak"] = (pk["percent"], case)
    return {n: rows[n] for n in order}


def format_suite_markdown(records, names, title_note: str = "") -> str:
    """The generated suite coverage page (docs/VECTORS-coverage.md)."""
    s = summarize(records)
    rows = suite_table(records, names)
    out = ["# Functional coverage of the committed vector suite", "",
           "<!-- generated by tools/gen_vectors.py from the cases' coverage.json: do not edit -->", "",
           "Bins are defined in `fxlic/vectors/coverage.py` (each with its SPEC rule; docs/VECTORS.md 9).",
           "A bin is covered when a case that holds the layer's golden output (or the entropy side)",
           "exercises it. " + title_note, "",
           f"**Suite: {s['hit']} of {s['bins']} bins covered ({s['percent']:.1f} %)**"
           + (f"; {len(s['unreachable'])} bins provably unreachable (not counted, listed below)."
              if s["unreachable"] else "."), "",
           "| layer | rule | bins covered | largest acc peak (% of A3 bound) | missing |",
           "|---|---|---|---|---|"]
    for n, r in rows.items():
        tot = len(r["bins"])
        hit = sum(1 for v in r["bins"].values() if v)
        miss = [b for b, v in r["bins"].items() if not v]
        pk = f"{r['peak'][0]:.2f} % ({r['peak'][1]})" if r["peak"] else "-"
        out.append(f"| {n} | {r['rule']} | {hit}/{tot} | {pk} | {' '.join(miss) if miss else '-'} |")
    out += ["", "Per case (bins it covers alone, from the layers it holds):", "",
            "| case | bins covered |", "|---|---|"]
    for rec, name in zip(records, names):
        cs = rec["summary"]
        out.append(f"| {name} | {cs['hit']}/{cs['bins']} ({cs['percent']:.1f} %) |")
    out += ["", "Cases covering each bin (first case listed; `n` = number of checking cases):", ""]
    for n, r in rows.items():
        parts = []
        for b, v in r["bins"].items():
            parts.append(f"`{b}` {v[0]} ({len(v)})" if v else f"`{b}` **none**")
        out.append(f"* **{n}**: " + ", ".join(parts))
    if s["unreachable"]:
        out += ["", "Provably unreachable bins:", ""]
        seen = {}
        for k, why in s["unreachable"].items():
            seen.setdefault(why, []).append(k)
        for why, ks in seen.items():
            out.append(f"* {', '.join(ks)}: {why}")
    return "\n".join(out) + "\n"


def format_suite_text(records, names) -> str:
    s = summarize(records)
    rows = suite_table(records, names)
    lines = [f"suite coverage: {s['hit']} of {s['bins']} bins ({s['percent']:.1f} %) over {len(records)} cases",
             f"{'layer':<8} {'rule':<4} {'bins':>7}  {'acc peak':>9}  missing"]
    for n, r in rows.items():
        tot = len(r["bins"])
        hit = sum(1 for v in r["bins"].values() if v)
        pk = f"{r['peak'][0]:8.2f}%" if r["peak"] else f"{'':>9}"
        lines.append(f"{n:<8} {r['rule']:<4} {hit:>3}/{tot:<3}  {pk}  "
                     f"{_fmt_missing([b for b, v in r['bins'].items() if not v])}")
    lines += _unreachable_lines(s)
    return "\n".join(lines)


# ---------------------------------------------------------------------------
# an existing directory (fxlic vectors --coverage-of DIR)
# ---------------------------------------------------------------------------

class CoverageError(ValueError):
    """A directory whose coverage cannot be computed (one line)."""


def _load_json(p):
    try:
        with open(p, "rb") as f:
            return json.loads(f.read())
    except OSError as e:
        raise CoverageError(f"{p}: cannot read ({e.strerror})") from None
    except ValueError:
        raise CoverageError(f"{p}: not valid JSON") from None


def checked_of_manifest(man: dict):
    """(layers whose golden output the case holds, whether it holds the entropy side)."""
    t = man.get("tensors", {})
    layers = [e["name"] for e in man.get("layers", []) if f"layers/{e['name']}/out" in t]
    return layers, "entropy/y_sym" in t


def _case_model(root: str, man: dict, model=None):
    from ..io.modelfile import list_zoo, load_model, model_hash

    want = man["model"]["hash"]
    if model is not None:
        if model_hash(model) != want:
            raise CoverageError(f"{root}: --model is not the case's model ({want})")
        return model
    cands = []
    if man["model"].get("dir"):
        cands.append(os.path.join(root, man["model"]["dir"], "model.fxq"))
    cands += list_zoo()
    for p in cands:
        if not os.path.exists(p):
            continue
        try:
            m = load_model(p)
        except Exception:  # noqa: BLE001 - an unreadable candidate is just not the model
            continue
        if model_hash(m) == want:
            return m
    raise CoverageError(f"{root}: the case's model {want} is not found (no model.fxq in its model "
                        f"directory, no shipped model with that hash): pass --model")


def case_coverage_of_dir(root: str, model=None, recompute: bool = False) -> dict:
    """The coverage record of an existing case directory: its ``coverage.json``
    when it has one listed in its manifest (and ``recompute`` is false), else
    recomputed by running the case's model on its image; the recomputed stream
    must equal the case's ``stream.fxl``."""
    from .store import sha256_hex
    from .writer import run_case

    mp = os.path.join(root, "manifest.json")
    if not os.path.isfile(mp):
        raise CoverageError(f"{root}: no manifest.json (not a vectors directory)")
    man = _load_json(mp)
    if man.get("kind") != "case":
        raise CoverageError(f"{root}: a {man.get('kind')!r} directory, not a case or suite")
    cp = os.path.join(root, COVERAGE_FILE)
    if not recompute and COVERAGE_FILE in man.get("files", {}) and os.path.isfile(cp):
        with open(cp, "rb") as f:
            data = f.read()
        if sha256_hex(data) != man["files"][COVERAGE_FILE]["sha256"]:
            raise CoverageError(f"{cp}: does not match its sha256 in the manifest")
        return json.loads(data)
    m = _case_model(root, man, model)
    pixels = _case_pixels(root, man)
    r = run_case(m, pixels)
    with open(os.path.join(root, "stream.fxl"), "rb") as f:
        if f.read() != r["stream"]:
            raise CoverageError(f"{root}: the model and image do not reproduce the case's stream.fxl")
    layers, ent = checked_of_manifest(man)
    im = man.get("image", {})
    return case_coverage(m, r, layers, ent, man["model"].get("name"), man["model"]["hash"],
                         {"name": im.get("name"), "width": im.get("width"), "height": im.get("height")})


def _case_pixels(root, man):
    if "image" in man.get("tensors", {}) and os.path.exists(os.path.join(root, "image.npy")):
        return np.load(os.path.join(root, "image.npy"))
    from ..io.images import read_image
    return read_image(os.path.join(root, "image.png"))


def coverage_of(path: str, model=None, recompute: bool = False):
    """(kind, records, names): a case directory gives one record, a suite
    directory (or any directory of case directories) one per case."""
    mp = os.path.join(path, "manifest.json")
    if os.path.isfile(mp):
        man = _load_json(mp)
        if man.get("kind") == "case":
            return "case", [case_coverage_of_dir(path, model, recompute)], [path]
        if man.get("kind") == "suite":
            names = [c["dir"] for c in man.get("cases", [])]
            recs = [case_coverage_of_dir(os.path.join(path, n), None, recompute) for n in names]
            return "suite", recs, [n[len("cases/"):] if n.startswith("cases/") else n for n in names]
        raise CoverageError(f"{path}: a {man.get('kind')!r} directory has no coverage (a case or a suite)")
    if not os.path.isdir(path):
        raise CoverageError(f"{path}: no such directory")
    names = []
    for dp, dn, fn in os.walk(path):
        dn.sort()
        if "manifest.json" in fn and _load_json(os.path.join(dp, "manifest.json")).get("kind") == "case":
            names.append(os.path.relpath(dp, path).replace(os.sep, "/"))
            dn[:] = []
    if not names:
        raise CoverageError(f"{path}: no manifest.json and no case directory below it")
    return "suite", [case_coverage_of_dir(os.path.join(path, n), None, recompute) for n in names], names


# ---------------------------------------------------------------------------
# the writer's coverage.json (Options.coverage)
# ---------------------------------------------------------------------------

def write_case_coverage(D, model, run: dict, chosen, opts, sizing: bool, model_name=None, image=None):
    """Write ``coverage.json`` into the case being written (``D``, a VectorDir):
    the layers checked are those with ``layers/<L>/out`` selected.  When only
    sizing, a record of the same structure with zero counts stands in."""
    from ..io.modelfile import model_hash

    checked = [n for n in chosen if opts.wants(f"layers/{n}/out")]
    ent = opts.wants("entropy/y_sym")
    if sizing:
        rec = stub_record(model, checked, ent, model_name, image)
    else:
        rec = case_coverage(model, run, checked, ent, model_name, model_hash(model), image)
    D.write(COVERAGE_FILE, coverage_bytes(rec),
            what="functional coverage of the case: bins per layer (fxlic/vectors/coverage.py)")
    return rec


def stub_record(model, checked, ent, model_name=None, image=None) -> dict:
    """A record with every count 0 (sizing: about the size of the real one)."""
    from ..spec import SPEC_VERSION
    from .writer import layer_rule

    layers = []
    for spec in model.arch.layers:
        rule = layer_rule(model, spec)
        bins = layer_bins(spec, rule, model)
        layers.append({"name": spec.name, "op": spec.op, "act": spec.act, "rule": rule,
                       "checked": spec.name in set(checked), "bins": {b: 0 for b in bins},
                       "unreachable": {b: UNREACHABLE[(rule, b)] for b in bins if (rule, b) in UNREACHABLE},
                       "acc_peak": {"channel": 0, "peak": 0, "bound": 0, "percent": 0.0, "max_abs_acc": 0}})
    rec = {"format": FORMAT, "format_version": FORMAT_VERSION, "spec_version": SPEC_VERSION,
           "model": {"name": model_name or model.arch.name, "hash": "sha256:" + "0" * 64,
                     "architecture": model.arch.name, "kind": model.arch.kind},
           "image": image or {}, "layers": layers,
           "entropy": {"name": "entropy", "rule": "E1", "checked": bool(ent),
                       "bins": {b: 0 for b in entropy_bins(model.arch.kind, model.offset_latents)},
                       "unreachable": {}}}
    rec["summary"] = summarize([rec])
    return rec


# ---------------------------------------------------------------------------
# fxlic vectors --coverage / --coverage-of DIR
# ---------------------------------------------------------------------------

def add_arguments(s) -> None:
    """The coverage options of ``fxlic vectors``."""
    s.add_argument("--coverage", action="store_true",
                   help="also write coverage.json into the case (the functional bins each layer exercises: "
                        "NLQ segments per mux, saturation, R1 ties, LeakyReLU rounding, tconv phases, "
                        "mean-reduced channels, escapes, scale indexes and mean families; "
                        "fxlic/vectors/coverage.py) and print the per-layer report")
    s.add_argument("--coverage-of", metavar="DIR",
                   help="only report the functional coverage of an existing case or suite directory "
                        "(its coverage.json, or recomputed from its model and image; a suite: the union "
                        "over its cases)")
    s.add_argument("--coverage-json", metavar="FILE",
                   help="with --coverage-of: also write the records and the summary as JSON")
    s.add_argument("--coverage-recompute", action="store_true",
                   help="with --coverage-of: recompute from the model and the image even where the case "
                        "has a coverage.json")
    s.add_argument("--coverage-min", metavar="PCT", type=float, default=None,
                   help="exit status 1 when the coverage is below PCT percent")


def _check_min(args, summary) -> int:
    from ..errors import CliError

    lim = getattr(args, "coverage_min", None)
    if lim is not None and summary["percent"] < lim:
        raise CliError(f"coverage {summary['percent']:.1f} % is below --coverage-min {lim:g} "
                       f"({len(summary['missing'])} bins missing)")
    return 0


def report_written_case(args, out: str) -> int:
    """After ``fxlic vectors --coverage``: print the case's report."""
    with open(os.path.join(out, COVERAGE_FILE), "rb") as f:
        rec = json.loads(f.read())
    if not args.quiet:
        print(format_case(rec, out))
    return _check_min(args, rec["summary"])


def run_coverage_of(args) -> int:
    """``fxlic vectors --coverage-of DIR``."""
    from ..errors import CliError
    from .store import json_bytes

    if args.image or args.out or args.check is not None:
        raise CliError("--coverage-of DIR takes no --image / --out / --check")
    if getattr(args, "coverage_min", None) is not None and not 0 <= args.coverage_min <= 100:
        raise CliError("--coverage-min must be a percentage between 0 and 100")
    model = None
    if args.model:
        from ..commands.common import load_model_arg
        model = load_model_arg(args.model)
    try:
        kind, recs, names = coverage_of(args.coverage_of, model, args.coverage_recompute)
    except CoverageError as e:
        raise CliError(str(e)) from None
    summary = recs[0]["summary"] if kind == "case" else summarize(recs)
    if not args.quiet:
        print(format_case(recs[0], args.coverage_of) if kind == "case" else format_suite_text(recs, names))
    if args.coverage_json:
        doc = {"format": FORMAT + "-report", "format_version": FORMAT_VERSION, "kind": kind,
               "path": args.coverage_of, "summary": summary, "cases": dict(zip(names, recs))}
        try:
            d = os.path.dirname(os.path.abspath(args.coverage_json))
            os.makedirs(d, exist_ok=True)
            with open(args.coverage_json, "wb") as f:
                f.write(json_bytes(doc))
        except OSError as e:
            raise CliError(f"{args.coverage_json}: cannot write ({e.strerror})") from None
    return _check_min(args, summary)
