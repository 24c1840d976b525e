"""Per-operator unit cases (docs/VECTORS.md, "Unit cases"): small inputs that hit
the corners of one rule each, with the expected outputs computed by fxlic's
reference operators (``fxlic.kernels.reference``, ``fxlic.spec``).

Every unit is a directory with ``manifest.json`` and its tensors as .npy and
.mem; outputs are marked ``required`` so that ``fxlic verify --vectors
vectors/units/<unit> --dumps DIR`` checks a port's results.
"""
from __future__ import annotations

import os

import numpy as np

from ..kernels import get_backend
from ..kernels import reference as ref
from ..model.arch import LayerSpec
from ..model.intmodel import IntLayer
from ..quant.codebook import act_nlq, weight_nlq
from ..quant.meanreduce import mu_from_pixels
from ..quant.weights import codebook_lut
from ..spec import INT32_MAX, INT32_MIN, requant_shift, rshift_rhu
from .store import VectorDir
from .writer import CHW, OUT_DTYPE, OUT_RULE

UNIT_STAGES = ["unit"]


def _rng(seed):
    return np.random.default_rng(seed)


def _finish(D: VectorDir, name: str, rules, checks: str, extra=None) -> dict:
    head = {"kind": "unit", "unit": name, "rules": list(rules), "checks": checks}
    if extra:
        head.update(extra)
    return D.manifest(head)


def _inp(D, name, a, dtype, axes=("N",), what=""):
    return D.tensor(name, a, dtype, True, axes, role="input", what=what, stages=UNIT_STAGES)


def _outp(D, name, a, dtype, axes=("N",), what=""):
    return D.tensor(name, a, dtype, True, axes, role="output", required=True, what=what,
                    stages=UNIT_STAGES)


def _uniq(pairs):
    seen, out = set(), []
    for p in pairs:
        if p not in seen:
            seen.add(p)
            out.append(p)
    return out


# ---------------------------------------------------------------------------
# elementwise rules
# ---------------------------------------------------------------------------

def unit_r1(root):
    """R1 round-half-up shift on 64-bit operands: ties of both signs, s = 0,
    s >= 64, the int64 and int32 extremes."""
    pairs = []
    for s in list(range(0, 12)) + [15, 16, 17, 30, 31, 32, 33, 40, 62, 63, 64, 65, 100]:
        h = 1 << (s - 1) if s >= 1 else 0
        for base in (0, 1, 2, 3, 5, 7, 100, -1, -2, -3, -5, -7, -100):
            if s == 0:
                pairs.append((base, s))
                continue
            for a in (base * (1 << s), base * (1 << s) + h, base * (1 << s) - h,
                      base * (1 << s) + h - 1, base * (1 << s) + h + 1):
                if -(1 << 63) <= a < (1 << 63):
                    pairs.append((a, s))
        for a in (INT32_MAX, INT32_MIN, INT32_MIN + 1, -(1 << 63), (1 << 63) - 1, 0, 1, -1):
            pairs.append((a, s))
    pairs = _uniq(pairs)
    a = np.array([p[0] for p in pairs], dtype=np.int64)
    s = np.array([p[1] for p in pairs], dtype=np.int64)
    out = np.array([int(rshift_rhu(np.int64(x), int(k))) for x, k in zip(a, s)], dtype=np.int64)
    D = VectorDir(root)
    _inp(D, "a", a, "int64", what="operand (64-bit two's complement)")
    _inp(D, "s", s, "uint8", what="right shift")
    _outp(D, "out", out, "int64", what="RHU(a, s) = floor(a / 2^s + 1/2)")
    return _finish(D, "r1_rhu", ["R1"], "R1 round-half-up right shift: ties +-(2k+1) 2^(s-1) of both signs "
                   "(ties go toward +infinity), s = 0, s >= 64 (result 0), int32 and int64 extremes")


def _o1_cases():
    """(acc, shift, mux) triples around every boundary and tie of the four codebooks."""
    shifts = [-3, -1, 0, 1, 2, 3, 7, 13, 20, 22, 30, 31, 33, 40, 62]
    trip = []
    rng = _rng(11)
    for m in range(4):
        cb = act_nlq(m, 8)
        bounds = sorted({s.lo for s in cb.segments} | {s.hi for s in cb.segments} | {cb.max_level,
                                                                                   cb.max_level + 1,
                                                                                   cb.max_level + 2})
        targets = set()
        for b in bounds:
            for d4 in (-8, -6, -4, -3, -2, -1, 0, 1, 2, 3, 4, 6, 8):  # quarter fine units
                targets.add(4 * b + d4)
        for t in (0, 1, 2, 3, 4, 5, 6, 7, 9, 11, 4 * 600, 4 * 5000):
            targets.add(t)
        for s in shifts:
            for t4 in sorted(targets):
                # acc = t * 2^s with t = t4 / 4 (only when an integer)
                e = s - 2
                a = t4 << e if e >= 0 else (t4 >> -e if t4 % (1 << -e) == 0 else None)
                if a is None:
                    continue
                for da in (-1, 0, 1):
                    v = a + da
                    if INT32_MIN <= v <= INT32_MAX:
                        trip.append((v, s, m))
            for v in (INT32_MAX, INT32_MIN, -1, 0, 1, -(1 << 20)):
                trip.append((v, s, m))
            for v in rng.integers(INT32_MIN, INT32_MAX, 4, endpoint=True):
                trip.append((int(v), s, m))
    return _uniq(trip)


def _columns(rows):
    """The columns of a list of equal-length integer tuples, each an int64 array."""
    return [np.array(col, np.int64) for col in zip(*rows)]


def _grouped(fn, acc, *keys):
    """Apply a per-channel reference stage elementwise, one call per key tuple."""
    acc = np.asarray(acc, np.int64)
    out = np.empty(acc.shape, np.int64)
    karr = np.stack([np.asarray(k, np.int64) for k in keys], axis=1)
    for key in np.unique(karr, axis=0):
        sel = np.all(karr == key, axis=1)
        out[sel] = fn(acc[sel][None, :], *[int(v) for v in key])[0]
    return out


def o1_expected(acc, shift, mux):
    return _grouped(lambda a, s, m: ref.out_relu_nlq(a, [s], [m]), acc, shift, mux)


def _o2_cases():
    trip = []
    for s in [-3, -1, 0, 1, 2, 3, 5, 8, 13, 20, 27, 28, 29, 30, 31, 33, 40, 59, 62]:
        for leaky in (1, 0):
            vals = set(range(-17, 18))
            for k in (s, s + 3):
                if k >= 1:
                    h = 1 << (k - 1)
                    for base in (-129, -128, -127, -2, -1, 0, 1, 2, 126, 127, 128):
                        for dv in (-1, 0, 1):
                            vals.update({base * 2 * h + h + dv, base * 2 * h - h + dv})
            if s <= 0:
                for lv in (-129, -128, -127, 126, 127, 128):
                    vals.add(lv >> -s if lv % (1 << -s) == 0 else lv)
                    vals.add(-(1 << (31 + s)))
            vals.update({INT32_MAX, INT32_MIN, INT32_MIN + 1})
            for v in sorted(vals):
                if INT32_MIN <= v <= INT32_MAX:
                    trip.append((v, s, leaky))
    return _uniq(trip)


def o2_expected(acc, shift, leaky):
    return _grouped(lambda a, s, l: ref.out_signed_lq(a, [s], bool(l)), acc, shift, leaky)


def unit_o1(root):
    acc, sh, mx = _columns(_o1_cases())
    code = o1_expected(acc, sh, mx)
    luts = np.stack([act_nlq(m).lut() for m in range(4)])
    level = luts[mx, code]
    D = VectorDir(root)
    _inp(D, "acc", acc, "int32", what="accumulator")
    _inp(D, "shift", sh, "int8", what="requantization shift s (t = acc * 2^-s fine units of 2^-9)")
    _inp(D, "mux", mx, "uint8", what="2-bit mux selecting the codebook (X1)")
    _outp(D, "code", code, "uint8", what="unsigned activation code (Q3)")
    _outp(D, "level", level, "uint16", what="its level on the grid 2^-9 (Q2), 0..510")
    return _finish(D, "o1_relu_nlq", ["O1", "Q1", "Q2", "Q3", "X1", "X2"],
                   "O1 ReLU + non-linear quantizer of each mux: every segment boundary (value just "
                   "below, on, just above), the ties half a step either side (rounding onto the next "
                   "segment's first level), values above the top level (clipped), negative "
                   "accumulators (ReLU), left shifts (s <= 0), shifts >= 31, int32 extremes")


def unit_o2(root):
    acc, sh, lk = _columns(_o2_cases())
    code = o2_expected(acc, sh, lk)
    D = VectorDir(root)
    _inp(D, "acc", acc, "int32", what="accumulator")
    _inp(D, "shift", sh, "int8", what="requantization shift s")
    _inp(D, "leaky", lk, "uint8", what="1: LeakyReLU(1/8) (negative acc uses s + 3); 0: no activation")
    _outp(D, "code", code, "int8", what="signed LQ code SAT8(RQ(acc, s'))")
    return _finish(D, "o2_signed_lq", ["O2", "R1", "R2", "R3"],
                   "O2 signed LQ with and without LeakyReLU: negative odd accumulators (one rounding "
                   "of acc/8: -13 -> -2, -12 -> -1, -4 -> 0 at s = 0), ties of RQ at s and s + 3, "
                   "saturation at -128 / 127 and just inside, left shifts, s + 3 >= 33")


def unit_o3(root):
    trip = []
    for s in (-4, -1, 0, 1, 2, 5, 9, 17, 31):
        for mu in (0, 1, -1, 100, -100, 127, -128):
            vals = set(range(-3, 4))
            if s >= 1:
                h = 1 << (s - 1)
                for base in (-300, -129, -128, -28, -1, 0, 1, 27, 127, 128, 300):
                    vals.update({base * 2 * h + h, base * 2 * h - h, base * 2 * h + h - 1})
            else:
                vals.update({-300, -129, -128, 127, 128, 300})
            for v in sorted(vals):
                if INT32_MIN <= v <= INT32_MAX and (s >= 0 or abs(v) < (1 << (31 + s))):
                    trip.append((v, s, mu))
    acc, sh, mu = _columns(_uniq(trip))
    out = _grouped(lambda a, s, m: ref.out_latent(a, [s], [m]), acc, sh, mu)
    D = VectorDir(root)
    _inp(D, "acc", acc, "int32")
    _inp(D, "shift", sh, "int8", what="s = -acc_exp")
    _inp(D, "mu", mu, "int8", what="mean-reduction offset of the channel")
    _outp(D, "stored", out, "int8", what="SAT8(RQ(acc, s) - mu)")
    return _finish(D, "o3_latent", ["O3", "M1", "R2", "R3"],
                   "O3 latent rounding (ties toward +infinity) and the stored value y - mu with its "
                   "saturation to int8")


def unit_o5(root):
    """O5 symbols on both offset grids (G = 2, spec-1.2 files, and G = 4): both
    difference grids (E <= -G: F = -E; E > -G: F = G), ties of both signs,
    saturation at both ends, offsets of both signs and off the integer grid."""
    from ..model.intmodel import offset_frac_bits, offset_q_max

    acc, ex, off, grid, sym, lev = [], [], [], [], [], []
    for G in (2, 4):
        trip = []
        omax = offset_q_max(G)
        for e in (-31, -17, -9, -5, -4, -3, -2, -1, 0, 1, 3):
            F = offset_frac_bits(e, G)
            for o in (0, 1, -1, 2, -2, 3, -3, 4, -4, 9, -9, 15, -17, 127, -128, omax, -omax):
                # y = acc 2^e; round(y - o 2^-G): ties where acc 2^(F+e) - o 2^(F-G) = (2k+1) 2^(F-1)
                for k in (-200, -129, -128, -3, -1, 0, 1, 2, 127, 128, 200):
                    for t in (0, 1, -1):
                        num = (2 * k + 1) * (1 << (F - 1)) + (o << (F - G)) + t
                        if num % (1 << (F + e)) == 0:
                            a = num >> (F + e)
                            if INT32_MIN <= a <= INT32_MAX:
                                trip.append((a, e, o))
                trip += [(a, e, o) for a in (INT32_MIN, -1, 0, 1, INT32_MAX)]
        a, e, o = _columns(_uniq(trip))
        s = ref.out_offset_latent(a[:, None], e, o[:, None], G)[:, 0]
        acc.append(a), ex.append(e), off.append(o), grid.append(np.full(a.shape, G, np.int64))
        sym.append(s), lev.append(ref.offset_level(s, o, G))
    acc, ex, off, grid, sym, lev = (np.concatenate(v) for v in (acc, ex, off, grid, sym, lev))
    D = VectorDir(root)
    _inp(D, "acc", acc, "int32")
    _inp(D, "acc_exp", ex, "int8", what="E = the channel's accumulator exponent")
    _inp(D, "grid_bits", grid, "int8", what="G = the model's offset grid (latents/grid_bits; 2 in spec-1.2 files)")
    _inp(D, "offset_q", off, "int16", what="offset on the 2^-G grid (median, or mean_q)")
    _outp(D, "symbol", sym, "int8", what="SAT8(RHU(acc 2^(F+E) - off 2^(F-G), F)), F = max(G, -E)")
    _outp(D, "level", lev, "int16", what="symbol * 2^G + off (exponent -G)")
    return _finish(D, "o5_offset_latent", ["O5", "R1", "R3"],
                   "O5 offset-latent symbols (round(y - off 2^-G), ties toward +infinity, saturation) "
                   "and their levels on the 2^-G grid, G = 2 and 4")


def unit_o6(root):
    """O6: HA0's y on the 2^-H grid, SAT_{8+H}(RQ(acc, -H - E)), for H = 0 (O3's
    integer y), 2, 4 (what fxlic builds) and 6: right shifts with ties of both
    signs and left shifts (E > -H), saturation at both ends and just inside."""
    trip = []
    for H in (0, 2, 4, 6):
        b = 7 + H
        for e in (-31, -17, -9, -6, -5, -4, -3, -1, 0, 1, 3):
            s = -H - e
            if not -31 <= s <= 62:
                continue
            vals = {INT32_MIN, -1, 0, 1, INT32_MAX}
            for t in (-(1 << b) - 1, -(1 << b), -(1 << b) + 1, -1, 0, 1, 2, (1 << b) - 2, (1 << b) - 1, 1 << b):
                if s >= 1:  # levels t and the ties between t and t + 1 (and one either side)
                    h = 1 << (s - 1)
                    vals.update({(t << s), (t << s) + h, (t << s) + h - 1, (t << s) - h})
                else:
                    vals.add(t >> -s if t % (1 << -s) == 0 else t)
            trip += [(a, e, H) for a in vals if INT32_MIN <= a <= INT32_MAX]
    acc, ex, hb = _columns(_uniq(trip))
    out = _grouped(lambda a, e, h: ref.out_ha_y(a, [e], h), acc, ex, hb)
    D = VectorDir(root)
    _inp(D, "acc", acc, "int32", what="AT3's accumulator")
    _inp(D, "acc_exp", ex, "int8", what="E = the channel's accumulator exponent")
    _inp(D, "ha_grid_bits", hb, "int8", what="H = -(HA0's input exponent)")
    _outp(D, "level", out, "int16", what="SAT_{8+H}(RQ(acc, -H - E)): HA0's input level, exponent -H")
    return _finish(D, "o6_ha_input", ["O6", "R1", "R2", "R3"],
                   "O6 HA0 input levels on the 2^-H grid (round half up, left shifts, saturation to "
                   "8 + H bits), H = 0, 2, 4, 6")


def unit_o4(root):
    pairs = []
    for s in (-2, 0, 1, 3, 8, 12, 20, 31, 33):
        vals = set(range(-2, 3))
        if s >= 1:
            h = 1 << (s - 1)
            for base in (-1, 0, 1, 127, 254, 255, 256):
                vals.update({base * 2 * h + h, base * 2 * h - h, base * 2 * h + h - 1})
        vals.update({INT32_MAX, INT32_MIN, 255, 256, -1})
        for v in sorted(vals):
            if INT32_MIN <= v <= INT32_MAX and (s >= 0 or abs(v) < (1 << (31 + s))):
                pairs.append((v, s))
    pairs = _uniq(pairs)
    acc = np.array([p[0] for p in pairs], np.int64)
    sh = np.array([p[1] for p in pairs], np.int64)
    out = _grouped(lambda a, s: ref.out_pixel(a, [s]), acc, sh)
    D = VectorDir(root)
    _inp(D, "acc", acc, "int32")
    _inp(D, "shift", sh, "int8", what="s = -8 - acc_exp")
    _outp(D, "pixel", out, "uint8", what="SAT(RQ(acc, s), 0, 255)")
    return _finish(D, "o4_pixel", ["O4", "R2", "R3"], "O4 reconstruction: rounding ties and clipping to 0..255")


def unit_hdl_requant(root):
    """O1 and O2 in one table, the stimulus of tools/hdl (kind 0: O1, 1: O2 leaky,
    2: O2 none); the code is the 8-bit pattern (two's complement for O2)."""
    c1 = _o1_cases()
    c2 = _o2_cases()
    acc = [t[0] for t in c1] + [t[0] for t in c2]
    sh = [t[1] for t in c1] + [t[1] for t in c2]
    mux = [t[2] for t in c1] + [0] * len(c2)
    kind = [0] * len(c1) + [1 if t[2] else 2 for t in c2]
    acc, sh, mux, kind = (np.array(v, np.int64) for v in (acc, sh, mux, kind))
    code = np.where(kind == 0, o1_expected(acc, sh, mux), 0)
    sel = kind > 0
    code[sel] = o2_expected(acc[sel], sh[sel], (kind[sel] == 1).astype(np.int64))
    D = VectorDir(root)
    _inp(D, "acc", acc, "int32")
    _inp(D, "shift", sh, "int8")
    _inp(D, "mux", mux, "uint8")
    _inp(D, "kind", kind, "uint8", what="0: O1 ReLU+NLQ(mux); 1: O2 LeakyReLU LQ; 2: O2 LQ, no activation")
    _outp(D, "code", code & 0xFF, "uint8", what="8-bit output pattern (O2 codes in two's complement)")
    return _finish(D, "hdl_requant", ["O1", "O2", "Q2", "Q3", "X2"],
                   "the requantize + NLQ + mux element of tools/hdl: the O1 and O2 cases in one table")


def unit_i1(root):
    rows = []
    for kind in range(5):
        for d in (0, 1, 5, 30) if kind != 0 else (0, 3):
            muxes = range(4) if kind == 1 else (0,)
            mus = (0, 57, -128, 127) if kind == 3 else (0,)
            for m in muxes:
                for mu in mus:
                    codes = range(256) if kind in (0, 1) else range(-128, 128)
                    for q in codes:
                        rows.append((kind, m, d, mu, q))
    kind, mux, d, mu, q = (np.array(c, np.int64) for c in zip(*rows))
    luts = [act_nlq(m).lut() for m in range(4)]
    level = np.where(kind == 1, np.array([luts[m][c] if k == 1 else 0 for k, m, c in zip(kind, mux, q)]),
                     q + np.where(kind == 3, mu, 0))
    V = level << d
    D = VectorDir(root)
    _inp(D, "kind", kind, "uint8", what="0 pixel, 1 ReLU code (mux), 2 signed LQ code, 3 y (code + mu), 4 z")
    _inp(D, "mux", mux, "uint8")
    _inp(D, "shift", d, "uint8", what="alignment shift d_c")
    _inp(D, "mu", mu, "int8")
    _inp(D, "code", q, "int16", what="stored code (unsigned 0..255 or signed -128..127)")
    _outp(D, "level", V, "int64", what="aligned input level V = level(code) << d")
    return _finish(D, "i1_decode", ["I1", "X1", "A2", "M1"],
                   "I1 decode of every code of every input kind (all four mux codebooks, y with mu, "
                   "alignment shifts up to 30)")


def unit_e1(root, model):
    """E1 on synthetic HS5 codes with the model's stored thresholds and frac bits."""
    from ..entropy.gaussian import GaussianTables, y_indexes, y_means

    gauss = GaussianTables.from_arrays({k[6:]: v for k, v in model.entropy.items() if k.startswith("gauss.")})
    S, F = gauss.scale_frac_bits, gauss.mean_frac_bits
    M, h, w = 4, 3, 6
    rng = _rng(5)
    codes = rng.integers(-128, 128, (2 * M, h, w))
    codes[0, 0, :] = [-128, -1, 0, 1, 2, 127]
    codes[M, 0, :] = [-128, -3, -1, 1, 2, 127]
    codes[M + 1, 0, :] = [-7, -6, -5, -4, -3, -2]  # every mean fraction (d = -2..1) at e = -2
    exps = np.array([-9, -7, -4, 0, -9, -2, -2, 1], np.int64)
    means = np.empty((M, h, w), np.int64)
    scales = np.empty((M, h, w), np.int64)
    for c in range(M):
        scales[c] = requant_shift(codes[c].astype(np.int64), -(int(exps[c]) + S))
        means[c] = requant_shift(codes[M + c].astype(np.int64), -(int(exps[M + c]) + F))
    base, sign, fam = y_means(means, gauss)
    idx = y_indexes(scales, fam, gauss)
    D = VectorDir(root)
    _inp(D, "ms", codes, "int8", CHW, what="HS5 output codes: channels [0, M) scales, [M, 2M) means")
    _inp(D, "out_exp", exps, "int8", ("C",), what="HS5 output exponents")
    _inp(D, "thresholds", gauss.thresholds, "int64", ("I",), what="stored gauss.thresholds T_i")
    _inp(D, "frac_bits", np.array([S, F]), "int32", ("I",), what="stored gauss.frac_bits [S, F]")
    _outp(D, "means", means, "int32", CHW, what="mean_q = RQ(q_mean, -(e_mean + F))")
    _outp(D, "scale_q", scales, "int32", CHW, what="RQ(q_scale, -(e_scale + S))")
    _outp(D, "y_base", base, "int32", CHW, what="base = RHU(mean_q, F)")
    _outp(D, "y_sign", sign, "int8", CHW, what="-1 if mean_q - base 2^F < 0 else +1")
    _outp(D, "y_idx", idx, "int32", CHW, what="|mean_q - base 2^F| * 64 + #{i : scale_q > T_i}")
    return _finish(D, "e1_means_scales", ["E1", "R1", "R2"],
                   "E1 means at F fractional bits, their rounded base, sign and family, scales at S "
                   "fractional bits and the Gaussian table index from the stored thresholds")


def unit_m2(root):
    rows = []
    for n in (3 * 64 * 64, 3 * 64 * 128, 3 * 256 * 256):
        D = 255 * n
        for a_q, b_q in ((0, 0), (65536 * 100, 0), (-65536 * 3, 65536 * 150), (123457, -98765),
                         (65536 * 300, 65536 * 200), (-65536 * 300, -65536 * 200), (1, 32768)):
            for S in (0, 1, D // 3, D // 2, D // 2 + 1, D - 1, D):
                rows.append((S, n, a_q, b_q))
        # a tie: (a_q S + b_q D) / (D 2^16) = k + 1/2 exactly
        rows.append((D // 2, n, 0, 65536 * 5 + 32768))
        rows.append((D // 2, n, 0, -(65536 * 5 + 32768)))
    S, n, a_q, b_q = (np.array(c, np.int64) for c in zip(*rows))
    mu = np.array([mu_from_pixels(int(s), int(k), int(a), int(b)) for s, k, a, b in rows], np.int64)
    Dv = VectorDir(root)
    _inp(Dv, "pixel_sum", S, "int64", what="S: sum of the padded image's pixel values")
    _inp(Dv, "n_values", n, "int64", what="n: number of values (3 Hp Wp)")
    _inp(Dv, "a_q", a_q, "int64")
    _inp(Dv, "b_q", b_q, "int64")
    _outp(Dv, "mu", mu, "int8", what="SAT8(floor((a_q S + b_q D) / (D 2^16) + 1/2)), D = 255 n")
    return _finish(Dv, "m2_mu", ["M2", "R3"], "M2 mean offset from the pixel sum: exact rational rounding "
                   "(ties toward +infinity) and int8 saturation")


# ---------------------------------------------------------------------------
# one-layer cases (C1, C2, A1-A3, O1-O4 on whole tensors)
# ---------------------------------------------------------------------------

INPUT_KINDS = ("pixel", "relu", "signed")


def _dec_table(kind, in_mux, d):
    codes = np.arange(256, dtype=np.int64)
    if kind == "pixel":
        lv = np.broadcast_to(codes, (len(d), 256)), 0
    elif kind == "relu":
        luts = [act_nlq(m).lut() for m in range(4)]
        lv = np.stack([luts[int(m)] for m in in_mux]), 0
    else:
        lv = np.broadcast_to(codes - 128, (len(d), 256)), 128
    return np.ascontiguousarray(lv[0] << np.asarray(d, np.int64)[:, None]), lv[1]


def _ceil_log2_ratio(num: int, den: int) -> int:
    """ceil(log2(num / den)) of positive integers, exactly: the smallest s with
    num / den <= 2^s."""
    from fractions import Fraction

    s = num.bit_length() - den.bit_length() - 1  # num / den >= 2^s
    while Fraction(num, den) > Fraction(2) ** s:
        s += 1
    return s


def _layer_bound(L, tables):
    """A3 for a unit layer: input range = min/max of each channel's table."""
    lo = tables.min(axis=1)[None, :, None, None]
    hi = tables.max(axis=1)[None, :, None, None]
    w = L.w_levels()
    tmax, tmin = np.maximum(w * lo, w * hi), np.minimum(w * lo, w * hi)
    spec = L.spec
    if spec.op == "conv":
        return np.maximum(L.bias + tmax.sum(axis=(1, 2, 3)), -(L.bias + tmin.sum(axis=(1, 2, 3))))
    best = np.zeros(spec.cout, np.int64)
    for py in range(2):
        ky = [t for t in range(spec.k) if (t - spec.pad - py) % 2 == 0]
        for px in range(2):
            kx = [t for t in range(spec.k) if (t - spec.pad - px) % 2 == 0]
            sel = np.ix_(range(spec.cout), range(spec.cin), ky, kx)
            best = np.maximum(best, np.maximum(L.bias + tmax[sel].sum(axis=(1, 2, 3)),
                                               -(L.bias + tmin[sel].sum(axis=(1, 2, 3)))))
    return best


def _layer_unit(root, name, checks, rules, *, op, k, stride, cin, cout, act, out, in_kind, H, W,
                seed, w_codes=None, bias=None, in_exp=None, w_exp=None, out_exp=None, mux=None,
                in_mux=None, codes=None, mu=None):
    rng = _rng(seed)
    spec = LayerSpec("T", op, k, stride, cin, cout, act, "T_in", out=out)
    if w_codes is None:
        w_codes = rng.integers(-127, 128, (cout, cin, k, k))
    if in_exp is None:
        in_exp = np.full(cin, -8, np.int64) if in_kind == "pixel" else rng.integers(-12, -7, cin)
    if w_exp is None:
        w_exp = rng.integers(-19, -15, cout)
    relu_out = out == "act" and act == "relu"
    if mux is None:
        mux = rng.integers(0, 4, cout) if relu_out else np.zeros(cout, np.int64)
    if in_mux is None:
        in_mux = rng.integers(0, 4, cin)
    in_exp = np.asarray(in_exp, np.int64)
    d = in_exp - in_exp.min()
    acc_exp = in_exp.min() + np.asarray(w_exp, np.int64)
    tables, offset = _dec_table(in_kind, in_mux, d)
    if bias is None:
        bias = rng.integers(-3000, 3000, cout)
    if codes is None:
        if in_kind == "signed":
            codes = rng.integers(-128, 128, (cin, H, W))
        else:
            codes = rng.integers(0, 256, (cin, H, W))
    lmu = np.zeros(cout, np.int64) if mu is None else np.asarray(mu, np.int64)
    be = get_backend("reference")

    def make(w_exp, out_exp):
        return IntLayer(spec, np.asarray(w_codes, np.int8), codebook_lut(weight_nlq(8)),
                        np.asarray(w_exp, np.int64), np.asarray(bias, np.int64), in_exp,
                        np.asarray(out_exp, np.int64), np.asarray(mux, np.int64))

    if out_exp is None:
        # the accumulator does not depend on the exponents: run once, then pick per channel
        # the shift that maps the channel's largest |acc| to 0.625..1.25 x the code range
        L = make(w_exp, acc_exp)
        acc0 = be.layer(L, np.asarray(codes, np.int64), tables, offset, lmu, want_acc=True)[1]
        limit = {"y": 100, "z": 100, "pixel": 255}.get(out, 510 if relu_out else 127)
        mx = np.abs(np.maximum(acc0, 0) if relu_out or out == "pixel" else acc0).reshape(cout, -1).max(axis=1)
        sh = np.array([_ceil_log2_ratio(4 * max(int(v), 1), 5 * limit) for v in mx], np.int64)
        if out in ("y", "z"):
            w_exp = -in_exp.min() - sh
            out_exp = np.zeros(cout, np.int64)
        elif out == "pixel":
            w_exp = -8 - in_exp.min() - sh
            out_exp = np.full(cout, -8, np.int64)
        else:
            out_exp = acc_exp + sh
    L = make(w_exp, out_exp)
    bound = _layer_bound(L, tables)
    if bound.max() > INT32_MAX:
        raise AssertionError(f"unit {name}: accumulator bound {bound.max()} exceeds int32")
    outc, acc = be.layer(L, np.asarray(codes, np.int64), tables, offset, lmu, want_acc=True)
    D = VectorDir(root)
    in_dt = "int8" if in_kind == "signed" else "uint8"
    p = "params/"
    _inp(D, "in", codes, in_dt, CHW, what=f"input codes ({in_kind})")
    D.tensor(p + "w_codes", L.w_codes, "int8", True, ("O", "C", "KY", "KX"), role="param", stages=UNIT_STAGES)
    D.tensor(p + "w_lut", L.w_lut, "int16", True, ("CODE",), role="param", stages=UNIT_STAGES)
    D.tensor(p + "w_exp", L.w_exp, "int8", True, ("O",), role="param", stages=UNIT_STAGES)
    D.tensor(p + "bias", L.bias, "int32", True, ("O",), role="param", stages=UNIT_STAGES)
    D.tensor(p + "in_exp", L.in_exp, "int8", True, ("C",), role="param", stages=UNIT_STAGES)
    D.tensor(p + "out_exp", L.out_exp, "int8", True, ("O",), role="param", stages=UNIT_STAGES)
    D.tensor(p + "mux", L.mux, "uint8", True, ("O",), role="param", stages=UNIT_STAGES)
    D.tensor(p + "in_shift", L.in_shift, "uint8", True, ("C",), role="param", stages=UNIT_STAGES)
    D.tensor(p + "acc_exp", L.acc_exp, "int8", True, ("O",), role="param", stages=UNIT_STAGES)
    D.tensor(p + "out_shift", L.out_shift, "int8", True, ("O",), role="param", stages=UNIT_STAGES)
    D.tensor(p + "in_mux", np.asarray(in_mux, np.int64) if in_kind == "relu" else np.zeros(cin, np.int64),
             "uint8", True, ("C",), role="param", stages=UNIT_STAGES,
             what="mux of each input channel (the producer's X2 bits; relu-coded inputs only)")
    D.tensor(p + "mu", lmu, "int8", True, ("O",), role="param", stages=UNIT_STAGES,
             what="O3 mean offsets (latent outputs only)")
    D.tensor("dec_table", tables, "int64", True, ("C", "INDEX"), role="param", stages=UNIT_STAGES,
             what=f"I1: aligned level of input code q of channel c at INDEX = q + {offset}")
    _outp(D, "acc", acc, "int32", CHW, what="int32 accumulator incl. bias")
    _outp(D, "out", outc, OUT_DTYPE[L.out_kind], CHW, what=f"output codes ({OUT_RULE[L.out_kind]})")
    layer = {"name": "T", "op": op, "k": k, "stride": stride, "cin": cin, "cout": cout, "act": act,
             "out": out, "in_kind": in_kind, "dec_offset": int(offset), "out_rule": OUT_RULE[L.out_kind],
             "in_shape": [cin, H, W], "out_shape": [int(s) for s in outc.shape],
             "acc_bound": [int(b) for b in bound]}
    return _finish(D, name, rules, checks, {"layer": layer}), (L, tables, offset, acc, outc)


def _receptive_field(spec, oy, ox, H, W):
    """Input positions (ky, kx, iy, ix) that contribute to output (oy, ox) (C1 / C2)."""
    k, p, S = spec.k, spec.pad, spec.stride
    for ky in range(k):
        for kx in range(k):
            if spec.op == "conv":
                iy, ix = S * oy + ky - p, S * ox + kx - p
            else:
                ny, nx = oy + p - ky, ox + p - kx
                if ny % 2 or nx % 2:
                    continue
                iy, ix = ny // 2, nx // 2
            if 0 <= iy < H and 0 <= ix < W:
                yield ky, kx, iy, ix


def _worst_case_codes(L, tables, offset, targets, H, W):
    """Input codes driving each target (o, oy, ox, sign) to its extreme: every
    input element of its receptive field at the channel's highest or lowest
    level, by the sign of its weight.  Receptive fields must not overlap."""
    w = L.w_levels()
    hi_code = tables.argmax(axis=1) - offset
    lo_code = tables.argmin(axis=1) - offset
    codes = np.zeros((L.spec.cin, H, W), np.int64)
    used = np.zeros((H, W), bool)
    for o, oy, ox, sg in targets:
        field = list(_receptive_field(L.spec, oy, ox, H, W))
        if any(used[iy, ix] for _, _, iy, ix in field):
            raise AssertionError("receptive fields overlap")
        for ky, kx, iy, ix in field:
            for c in range(L.spec.cin):
                codes[c, iy, ix] = hi_code[c] if w[o, c, ky, kx] * sg > 0 else lo_code[c]
        for _, _, iy, ix in field:
            used[iy, ix] = True
    return codes


def unit_acc_worst(root, op):
    """A3: the accumulator reaches exactly 2^31 - 1 (channel 0) and -(2^31 - 1)
    (channel 1) at interior pixels; the loader bound is exactly 2^31 - 1."""
    cin, cout, k = 6, 2, 5
    H, W = (5, 13) if op == "conv" else (3, 8)
    rng = _rng(77 if op == "conv" else 78)
    w_codes = rng.integers(-127, 128, (cout, cin, k, k))
    w_codes[:, :, 2, 2] = 127  # the largest level 504 in every channel
    in_exp = np.array([-12, -10, -9, -7, -6, -5], np.int64)
    d = in_exp - in_exp.min()
    tables, offset = _dec_table("signed", None, d)
    w_exp = np.full(cout, -18, np.int64)
    spec = LayerSpec("T", op, k, 1 if op == "conv" else 2, cin, cout, "leaky", "T_in")
    L0 = IntLayer(spec, np.asarray(w_codes, np.int8), codebook_lut(weight_nlq(8)), w_exp,
                  np.zeros(cout, np.int64), in_exp, np.zeros(cout, np.int64), np.zeros(cout, np.int64))
    # bound with zero bias, then choose the biases so that pos[0] = 2^31-1 and neg[1] = -(2^31-1)
    lo = tables.min(axis=1)[None, :, None, None]
    hi = tables.max(axis=1)[None, :, None, None]
    wl = L0.w_levels()
    tmax, tmin = np.maximum(wl * lo, wl * hi), np.minimum(wl * lo, wl * hi)

    def sums(o):
        if op == "conv":
            return [(int(tmax[o].sum()), int(tmin[o].sum()), None)]
        out = []
        for py in range(2):
            ky = [t for t in range(k) if (t - 2 - py) % 2 == 0]
            for px in range(2):
                kx = [t for t in range(k) if (t - 2 - px) % 2 == 0]
                sel = np.ix_(range(cin), ky, kx)
                out.append((int(tmax[o][sel].sum()), int(tmin[o][sel].sum()), (py, px)))
        return out

    s0 = max(sums(0), key=lambda t: t[0])
    s1 = max(sums(1), key=lambda t: -t[1])
    b0 = INT32_MAX - s0[0]
    b1 = -INT32_MAX - s1[1]
    bias = np.array([b0, b1], np.int64)
    if op == "conv":
        t0, t1 = (0, 2, 2, +1), (1, 2, 10, -1)
    else:
        # interior output pixels of the chosen phases, receptive fields apart
        py, px = s0[2]
        t0 = (0, 2 + py, 2 + px, +1)
        py, px = s1[2]
        t1 = (1, 2 + py, 10 + px, -1)
    codes = _worst_case_codes(L0, tables, offset, [t0, t1], H, W)
    name = f"a3_acc_worst_{op}"
    man, (L, tb, off, acc, outc) = _layer_unit(
        root, name,
        f"A1/A3: {('convolution' if op == 'conv' else 'transposed convolution (phase-wise bound, C2)')} whose "
        "loader bound is exactly 2^31 - 1 and whose accumulator reaches +(2^31 - 1) (channel 0) and "
        "-(2^31 - 1) (channel 1) at interior pixels; O2 LeakyReLU saturates both",
        ["A1", "A2", "A3", "C1" if op == "conv" else "C2", "O2"],
        op=op, k=k, stride=1 if op == "conv" else 2, cin=cin, cout=cout, act="leaky", out="act",
        in_kind="signed", H=H, W=W, seed=1, w_codes=w_codes, bias=bias, in_exp=in_exp, w_exp=w_exp,
        out_exp=in_exp.min() + w_exp + 20, codes=codes)
    bound = _layer_bound(L, tb)
    if not (int(bound.max()) == INT32_MAX and int(acc.max()) == INT32_MAX and int(acc.min()) == -INT32_MAX):
        raise AssertionError(f"{name}: bound {bound}, acc range [{acc.min()}, {acc.max()}]")
    return man


def layer_units(root_of):
    """The one-layer unit cases: name -> manifest."""
    out = {}

    def add(name, checks, rules, **kw):
        out[name] = _layer_unit(root_of(name), name, checks, rules, **kw)[0]

    add("c1_conv5s2_pixels", "C1 conv 5x5 stride 2 on pixels (AT0-like), odd input 9 x 7, O1 with all muxes",
        ["C1", "I1", "O1"], op="conv", k=5, stride=2, cin=3, cout=6, act="relu", out="act", in_kind="pixel",
        H=9, W=7, seed=21, mux=np.array([0, 1, 2, 3, 1, 2]))
    add("c1_conv3s1_leaky", "C1 conv 3x3 stride 1 on signed inputs with different exponents (alignment "
        "shifts), O2 LeakyReLU", ["C1", "A2", "I1", "O2"], op="conv", k=3, stride=1, cin=5, cout=6,
        act="leaky", out="act", in_kind="signed", H=5, W=4, seed=22)
    add("c1_conv1_none", "C1 1x1 conv (HS3-HS5-like), O2 without activation", ["C1", "O2"], op="conv", k=1,
        stride=1, cin=8, cout=6, act="none", out="act", in_kind="signed", H=3, W=5, seed=23)
    add("c1_conv5s2_1x1", "C1 conv 5x5 stride 2 on a 1 x 1 input (only the centre tap is inside), ReLU-coded "
        "input of all four muxes", ["C1", "I1", "O1"], op="conv", k=5, stride=2, cin=4, cout=3, act="relu",
        out="act", in_kind="relu", H=1, W=1, seed=24, in_mux=np.array([0, 1, 2, 3]))
    add("c1_conv5s2_latent", "C1 conv with O3 latent output (AT3/HA2-like), mean-reduced channels",
        ["C1", "O3", "M1"], op="conv", k=5, stride=2, cin=4, cout=4, act="none", out="y", in_kind="relu",
        H=6, W=7, seed=25, mu=np.array([0, 50, -20, 0]))
    imp = np.zeros((2, 3, 3), np.int64)
    imp[0, 0, 0] = 100
    imp[1, 1, 2] = -77
    add("c2_tconv5_impulse", "C2 transposed conv 5x5: one non-zero input per channel, so the output shows "
        "the scattered kernel (tap (ky, kx) lands on output (2 iy - 2 + ky, 2 ix - 2 + kx))",
        ["C2", "O2"], op="tconv", k=5, stride=2, cin=2, cout=3, act="leaky", out="act", in_kind="signed",
        H=3, W=3, seed=31, codes=imp, bias=np.zeros(3, np.int64), in_exp=np.array([-9, -9]))
    add("c2_tconv5_relu", "C2 transposed conv 5x5 on ReLU-coded input (all muxes), all four output phases, "
        "O1", ["C2", "I1", "O1"], op="tconv", k=5, stride=2, cin=4, cout=4, act="relu", out="act",
        in_kind="relu", H=4, W=5, seed=32, in_mux=np.array([3, 2, 1, 0]), mux=np.array([0, 1, 2, 3]))
    add("c2_tconv5_1x1", "C2 transposed conv on a 1 x 1 input (1 x 1 latent) -> 2 x 2 output",
        ["C2", "O2"], op="tconv", k=5, stride=2, cin=3, cout=2, act="leaky", out="act", in_kind="signed",
        H=1, W=1, seed=33)
    add("c2_tconv3_phases", "C2 with k = 3 (p = 1): the phase of output (oy, ox) takes taps ky = oy + 1 "
        "(mod 2)", ["C2", "O2"], op="tconv", k=3, stride=2, cin=3, cout=2, act="none", out="act",
        in_kind="signed", H=3, W=4, seed=34)
    add("c2_tconv5_pixels", "C2 with O4 reconstruction output (ST3-like): rounding and clipping to 0..255",
        ["C2", "O4"], op="tconv", k=5, stride=2, cin=4, cout=3, act="none", out="pixel", in_kind="relu",
        H=3, W=4, seed=35)
    return out


UNITS = ("r1_rhu", "o1_relu_nlq", "o2_signed_lq", "o3_latent", "o5_offset_latent", "o6_ha_input", "o4_pixel", "hdl_requant", "i1_decode",
         "e1_means_scales", "m2_mu", "a3_acc_worst_conv", "a3_acc_worst_tconv")


def write_units(root: str, model) -> dict:
    """Every unit case under ``root``; returns {name: manifest}."""
    def r(name):
        return os.path.join(root, name)

    out = {
        "r1_rhu": unit_r1(r("r1_rhu")),
        "o1_relu_nlq": unit_o1(r("o1_relu_nlq")),
        "o2_signed_lq": unit_o2(r("o2_signed_lq")),
        "o3_latent": unit_o3(r("o3_latent")),
        "o5_offset_latent": unit_o5(r("o5_offset_latent")),
        "o6_ha_input": unit_o6(r("o6_ha_input")),
        "o4_pixel": unit_o4(r("o4_pixel")),
        "hdl_requant": unit_hdl_requant(r("hdl_requant")),
        "i1_decode": unit_i1(r("i1_decode")),
        "e1_means_scales": unit_e1(r("e1_means_scales"), model),
        "m2_mu": unit_m2(r("m2_mu")),
        "a3_acc_worst_conv": unit_acc_worst(r("a3_acc_worst_conv"), "conv"),
        "a3_acc_worst_tconv": unit_acc_worst(r("a3_acc_worst_tconv"), "tconv"),
    }
    out.update(layer_units(r))
    return out
