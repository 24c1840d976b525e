#!/usr/bin/env python3
"""Generate the committed conformance suite ``vectors/`` (docs/VECTORS.md).

    python tools/gen_vectors.py                 # rewrite vectors/ in place
    python tools/gen_vectors.py --out /tmp/v    # somewhere else (inputs still read from vectors/)
    python tools/gen_vectors.py --rebuild-model # rebuild the small random model (changes every file)
    python tools/gen_vectors.py --out /tmp/v --cases 'rand8*'   # only some cases (no units): quick checks

The suite is a pure function of its inputs, so regenerating gives byte-identical
files (tests/test_vectors_suite.py checks it):

* ``vectors/models/rand16/model.fxq`` -- a small random hyperprior (N = M = 16)
  built once by this script (``--rebuild-model``) and kept: its float build
  (random weights, float calibration, entropy tables) is not guaranteed
  bit-identical across BLAS/SciPy builds, the integer model is;
* ``vectors/models/rand8-offset/model.fxq`` and ``rand8f-offset/model.fxq`` --
  small random offset-latent models (SPEC O5; hyperprior5(8), factorized(8)),
  built once like rand16 (``build_offset_model``) and kept;
* ``vectors/images/kodim23_crop256.png`` -- a 256 x 256 centre crop of Kodak
  kodim23, made from ``../shared/data/kodak`` the first time and kept;
* the shipped models ``fxlic/zoo/*.fxq`` (picked up automatically: adding or
  changing a shipped model requires re-running this script);
* the synthetic test images, computed here with integer arithmetic.

Everything else (per-layer tensors, entropy side, streams, unit cases) is
recomputed.  The output is built in a temporary directory and swapped in.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

from fxlic.vectors.memfmt import png_bytes  # noqa: E402
from fxlic.vectors.store import VectorDir, json_bytes, sha256_hex  # noqa: E402
from fxlic.vectors.external import external_entry, write_model_dir_of  # noqa: E402
from fxlic.vectors.writer import MEM_CATEGORIES, Options, write_case, write_model_dir  # noqa: E402

DEFAULT_OUT = os.path.join(REPO, "vectors")
DEFAULT_KODAK = os.path.join(os.path.dirname(REPO), "shared", "data", "kodak")
SMALL = "rand16"
SMALL_SEED = 16
KODAK_CROP = "images/kodim23_crop256.png"
#: the directed model: SMALL with integer edits aimed at the bins SMALL's own cases miss
DIRECTED = "rand16-directed"
DIRECTED_IMAGE = "img64"
#: the generated suite coverage page (written when the suite is written to vectors/)
COVERAGE_DOC = os.path.join(REPO, "docs", "VECTORS-coverage.md")
#: the whole suite should stay below this (sum of file sizes)
BUDGET_BYTES = 30_000_000
#: small offset-latent models (SPEC O5): name -> (kind, seed)
OFFSET_MODELS = {"rand8-offset": ("hyperprior", 8), "rand8f-offset": ("factorized", 8)}
OFFSET_IMAGE = "img64"


# ---------------------------------------------------------------------------
# inputs
# ---------------------------------------------------------------------------

def synthetic_image(H: int, W: int, seed: int, offset: int = 0) -> np.ndarray:
    """A deterministic test picture (gradients, a disc, a bar, hashed noise),
    (3, H, W) uint8, computed with wrapping uint64 integer arithmetic only."""
    y, x = np.mgrid[0:H, 0:W]
    y = y.astype(np.uint64)[None]
    x = x.astype(np.uint64)[None]
    c = np.arange(3, dtype=np.uint64)[:, None, None]
    h = (x * np.uint64(73856093)) ^ (y * np.uint64(19349663)) ^ (c * np.uint64(83492791)) ^ np.uint64(
        seed * 2654435761 % (1 << 32))
    h = (h * np.uint64(2246822519)) & np.uint64(0xFFFFFFFF)
    h ^= h >> np.uint64(13)
    h = (h * np.uint64(3266489917)) & np.uint64(0xFFFFFFFF)
    h ^= h >> np.uint64(16)
    noise = (h & np.uint64(31)).astype(np.int64) - 16
    xi, yi, ci = x.astype(np.int64), y.astype(np.int64), c.astype(np.int64)
    grad = np.where(ci == 0, xi * 255 // max(W - 1, 1),
                    np.where(ci == 1, yi * 255 // max(H - 1, 1), (xi + yi) * 255 // max(H + W - 2, 1)))
    r = max(min(H, W) // 4, 1)
    disc = ((xi - W // 2) ** 2 + (yi - H // 3) ** 2 < r * r) * (60 + 40 * ci)
    bar = ((yi * 7 // max(H, 1)) % 2 == 1) * (xi < W // 3) * 50
    p = grad * 3 // 4 + disc - bar + noise + offset
    return np.clip(p, 0, 255).astype(np.uint8)


def build_small_model(path: str):
    """The suite's small random hyperprior: random float weights, livened up so
    that y and z carry information (y spread ~6, z ~2.5) and two channels of y
    have a large mean (mean reduction, SPEC M1), quantized with calibration
    images of different brightness.  Saved to ``path``."""
    from fxlic.io.modelfile import save_model
    from fxlic.model.arch import hyperprior5
    from fxlic.model.build import build_int_model, calibrate
    from fxlic.model.float_model import random_float_model

    fm = random_float_model(hyperprior5(16), SMALL_SEED)
    cal = [synthetic_image(64, 64, 100 + k, offset=40 * k - 100) for k in range(6)]
    f = scale_to_std(fm, "AT3", cal, 6.0)
    fm.biases["AT3"][[1, 6]] += [160.0, -150.0]
    g = scale_to_std(fm, "HA2", cal, 2.5)
    im = build_int_model(fm, calibrate(fm, cal))
    im.meta["source"] = (f"tools/gen_vectors.py: random_float_model(hyperprior5(16), {SMALL_SEED}), "
                         f"AT3 x{f:.4g} (+160/-150 on channels 1, 6), HA2 x{g:.4g}")
    save_model(im, path)
    return im


def scale_to_std(fm, layer: str, images, std: float) -> float:
    """Scale ``layer``'s float weights and bias so that its output over ``images``
    has standard deviation ``std`` (livens up a random model's latents); returns
    the factor.  Only the layers up to ``layer`` are run."""
    from fxlic.model.float_model import float_forward

    names = [l.name for l in fm.arch.layers]
    names = names[:names.index(layer) + 1]
    v = np.concatenate([float_forward(fm, im / 255.0, names=names)[layer].reshape(-1) for im in images])
    f = std / max(float(np.std(v)), 1e-9)
    fm.weights[layer] = fm.weights[layer] * f
    fm.biases[layer] = fm.biases[layer] * f
    return f


# ---------------------------------------------------------------------------
# the offset-latent models (SPEC O5)
# ---------------------------------------------------------------------------

def build_offset_model(kind: str, seed: int, path: str, log=print):
    """A small random offset-latent model (SPEC O5): random float weights
    (hyperprior5(8) or factorized(8)) with bottleneck medians spread over
    -2.3 .. 2.3 (offsets on the model's 2^-G grid of both signs, most not multiples of 2^G), y
    (and z) livened up like rand16's and pushed far out on two channels each
    (O5 symbols saturate at both ends, escapes), quantized with latents="offset"
    (no mean reduction: SPEC O5); then integer bias edits put one
    element of each latent layer on an exact O5 tie of either sign
    (``o5_tie_edits``).  Saved to ``path``."""
    from fxlic.io.modelfile import save_model
    from fxlic.model.arch import factorized, hyperprior5
    from fxlic.model.build import build_int_model, calibrate
    from fxlic.model.float_model import random_float_model

    fm = random_float_model(hyperprior5(8) if kind == "hyperprior" else factorized(8), seed)
    q = fm.entropy["entropy_bottleneck.quantiles"].copy()
    q += np.linspace(-2.3, 2.3, q.shape[0])[:, None, None]
    fm.entropy["entropy_bottleneck.quantiles"] = q
    cal = [synthetic_image(64, 64, 100 + k, offset=40 * k - 100) for k in range(4)]
    f = scale_to_std(fm, "AT3", cal, 6.0)
    fm.biases["AT3"][[1, 6]] += [200.0, -200.0]
    note = f"AT3 x{f:.4g} (+200/-200 on channels 1, 6)"
    if kind == "hyperprior":
        g = scale_to_std(fm, "HA2", cal, 2.5)
        fm.biases["HA2"][[2, 5]] += [200.0, -200.0]
        note += f", HA2 x{g:.4g} (+200/-200 on channels 2, 5)"
    im = build_int_model(fm, calibrate(fm, cal), latents="offset")
    im, edits = o5_tie_edits(im, synthetic_image(64, 64, 1), log)
    im.meta["source"] = (f"tools/gen_vectors.py build_offset_model: random_float_model({im.arch.name}, {seed}), "
                         f"medians -2.3..2.3, {note}, latents offset; " + "; ".join(edits))
    save_model(im, path)
    return im


def _offset_model_current(m) -> bool:
    """A kept offset-latent model is what build_offset_model makes today: on the
    builder's grid (GRID_BITS) and, for a hyperprior, HA0 on that grid (SPEC O6)."""
    from fxlic.model.intmodel import GRID_BITS

    return m.grid_bits == GRID_BITS and m.ha_grid_bits == (GRID_BITS if m.arch.kind == "hyperprior" else 0)


def o5_tie_edits(model, pixels, log=print):
    """Integer bias edits (one channel each) that put an element of every O5
    stage (z, a factorized y, the y symbols of a hyperprior) on an exact R1 tie
    of ``RHU(diff, F)`` with diff > 0 and with diff < 0 (SPEC O5), and of AT3's
    O6 stage (HA0's y on the 2^-H grid: ``RQ(acc, -H - E)``, SPEC O6) first.  Each
    edit is checked on a fresh run (the y of a hyperprior feeds its own means),
    keeps the layer's other bins and the loader checks.  Returns (model, edits)."""
    import copy

    from fxlic.model.int_forward import offset_means
    from fxlic.model.intmodel import ModelError, offset_frac_bits
    from fxlic.vectors.coverage import case_coverage, offset_y_layer
    from fxlic.vectors.writer import layer_rule, run_case

    m = copy.deepcopy(model)
    edits = []

    def bins(name):
        rec = case_coverage(m, run_case(m, pixels))
        return {b for g in rec["layers"] if g["name"] == name for b, v in g["bins"].items() if v}

    def target(spec, L, o, b):
        """(diff, F) whose RHU(diff, F) the bin ``b`` is about, or None."""
        e = int(L.acc_exp[o])
        if b.startswith("o6."):
            F = -m.ha_grid_bits - e
            if F < 1:
                return None
            return np.asarray(run_case(m, pixels)["layers"][spec.name][1], np.int64)[o], F
        F = offset_frac_bits(e, m.grid_bits)
        if F + e != 0:
            return None
        r = run_case(m, pixels)
        acc = np.asarray(r["layers"][spec.name][1], np.int64)[o]
        off = (offset_means(m, r["ms"])[o] if offset_y_layer(m, spec)
               else np.full(acc.shape, int(m.offset_q[o]), np.int64))
        return acc - (off << (F - m.grid_bits)), F

    for spec in m.arch.layers:
        rule = layer_rule(m, spec)
        if rule != "O5" and not offset_y_layer(m, spec):
            continue
        n = spec.name
        L = m.layer(n)
        used = set()
        for b in (("o6.tie+", "o6.tie-") if rule == "O6" else ()) + ("o5.tie+", "o5.tie-"):
            have = bins(n)
            for o in range(spec.cout):
                if b in have:
                    break
                got_t = None if o in used else target(spec, L, o, b)
                if got_t is None:
                    continue
                diff, F = got_t
                pos = b.endswith("+")
                a = int(diff.max()) if pos else int(diff.min())
                half, full = 1 << (F - 1), 1 << F
                delta = (half - (a % full)) % full
                if not pos:
                    delta -= full
                if (pos and a + delta <= 0) or (not pos and a + delta >= 0) or delta == 0:
                    continue
                old = int(L.bias[o])
                L.bias[o] = old + delta
                try:
                    m.validate()
                    got = bins(n)
                except ModelError:
                    got = set()
                if b in got and have <= got:
                    used.add(o)
                    have = got
                    edits.append(f"{n}: channel {o} bias {old:+d} -> {old + delta:+d} ({b})")
                else:
                    L.bias[o] = old
            if b not in have:
                log(f"offset model: no edit reaches {n}/{b}")
    m.validate()
    return m, edits


# ---------------------------------------------------------------------------
# the directed model (functional coverage, fxlic/vectors/coverage.py)
# ---------------------------------------------------------------------------

def _to_acc(t: int, s: int) -> int:
    """The smallest accumulator ``a`` with ``a * 2^-s >= t`` (t on the output grid)."""
    return t << s if s >= 0 else -((-t) >> (-s))


def _tie_delta(a: int, S: int, below: bool = False) -> int:
    """A bias change that puts accumulator ``a`` on an exact R1 tie of a shift by
    ``S``: in [0, 2^S) (or in [-2^S, 0) with ``below``, keeping a negative ``a`` negative)."""
    m = (1 << S) - 1
    d = ((1 << (S - 1)) - (a & m)) & m
    return d - (1 << S) if below and d else d


def _bin_candidates(model, name, b, acc, mu):
    """(channel, bias delta) edits, best first, that should make layer ``name``
    hit bin ``b`` on this run (each moves one channel's extreme accumulator)."""
    from fxlic.quant.codebook import act_nlq
    from fxlic.vectors.writer import OUT_RULE

    L = model.layer(name)
    spec = L.spec
    rule = OUT_RULE[L.out_kind]
    O = acc.shape[0]
    s = [int(v) for v in L.out_shift]
    hi_a = [int(acc[o].max()) for o in range(O)]
    lo_a = [int(acc[o].min()) for o in range(O)]
    by_max = sorted(range(O), key=lambda o: (-hi_a[o], o))
    by_min = sorted(range(O), key=lambda o: (lo_a[o], o))
    out = []
    if rule == "O1":
        mux = [int(v) for v in L.mux]
        if b.startswith("mux"):
            m, what = int(b[3]), b.split(".")[1]
            cb = act_nlq(m)
            for o in (o for o in by_max if mux[o] == m):
                if what == "clip":
                    t = cb.max_level + (1 << cb.segments[-1].k)
                else:
                    g = cb.segments[int(what[3:])]
                    t = g.lo + (1 << g.k)
                out.append((o, _to_acc(t, s[o]) - hi_a[o]))
        elif b == "relu":
            out = [(o, -1 - lo_a[o]) for o in by_min]
        elif b == "tie+":
            for o in by_max:
                a = hi_a[o]
                if a <= 0 or s[o] < 0:
                    continue
                cb = act_nlq(mux[o])
                k = [g.k for g in cb.segments if (a >> s[o]) >= g.lo][-1]
                if s[o] + k >= 1:
                    out.append((o, _tie_delta(a, s[o] + k)))
        return out
    leaky = rule == "O2" and spec.act == "leaky"
    lo, hi = (0, 255) if rule == "O4" else (-128, 127)
    m_ = [int(mu[o]) if (rule == "O3" and spec.out == "y") else 0 for o in range(O)]
    sneg = [v + 3 if leaky else v for v in s]
    if b == "sat+":
        out = [(o, _to_acc(hi + 1 + m_[o], s[o]) - hi_a[o]) for o in by_max]
    elif b == "sat-":
        for o in by_min:
            t = lo - 1 + m_[o]
            a = t << sneg[o] if sneg[o] >= 0 else t >> (-sneg[o])
            out.append((o, a - lo_a[o]))
    elif b == "tie+":
        for o in by_max:
            if s[o] >= 1:
                a = hi_a[o]
                out.append((o, _tie_delta(a, s[o]) if a > 0 else (3 << (s[o] - 1)) - a))
    elif b == "tie-":
        for o in by_min:
            S = sneg[o]
            if S >= 1:
                a = lo_a[o]
                out.append((o, _tie_delta(a, S, below=True) if a < 0 else -(3 << (S - 1)) - a))
    return out


def build_directed_model(base, pixels, want, log=print):
    """The suite's directed model: ``base`` (the small random model) with integer
    edits only, so that the case of ``pixels`` hits the bins in ``want``
    (``"LAYER/bin"`` keys, the ones ``base``'s own cases miss):

    * an O1 layer without a channel of mux m gets one (the last channel of its
      most common mux is switched);
    * a layer's missing bin (saturation, clipping above a mux's top level, an
      NLQ segment, ReLU, an R1 tie of either sign) is reached by changing one
      bias (one channel per edit): the channel's largest (or smallest)
      accumulator is moved just onto the bin, so the channel keeps its spread;
    * Gaussian scale indexes: the scale channels' HS5 weight and output exponents
      are raised together by k (same codes, scale x 2^k, SPEC E1) to spread the
      scales over the 64 indexes.

    Every edit keeps the model valid (loader checks, SPEC A3/A4); layers are
    edited in execution order, each on a fresh run.  Returns (model, edits)."""
    import copy

    from fxlic.io.modelcheck import checked_tables
    from fxlic.model.intmodel import accumulator_bound
    from fxlic.spec import INT32_MAX
    from fxlic.vectors.coverage import count_layer, layer_bins
    from fxlic.vectors.writer import OUT_RULE, run_case

    m = copy.deepcopy(base)
    edits = []
    for spec in m.arch.layers:
        n = spec.name
        L = m.layer(n)
        rule = OUT_RULE[L.out_kind]
        wanted = [b for b in layer_bins(spec, rule) if f"{n}/{b}" in want]
        if not wanted:
            continue
        if rule == "O1":
            for mx in range(4):
                if any(b.startswith(f"mux{mx}.") for b in wanted) and not np.any(L.mux == mx):
                    counts = np.bincount(L.mux, minlength=4)
                    src = int(np.argmax(counts))
                    o = int(np.flatnonzero(L.mux == src)[-1])
                    L.mux[o] = mx
                    m.validate()
                    edits.append(f"{n}: channel {o} mux {src} -> {mx}")
        r = run_case(m, pixels)
        acc = np.asarray(r["layers"][n][1], np.int64)
        mu = r["mu"]
        used = set()
        have = {b for b, v in count_layer(m, n, acc, None, mu)["counts"].items() if v}
        for b in wanted:
            if b in have:
                continue
            done = False
            for o, delta in _bin_candidates(m, n, b, acc, mu):
                if o in used or delta == 0:
                    continue
                old = int(L.bias[o])
                L.bias[o] = old + delta
                acc2 = acc.copy()
                acc2[o] += delta
                ok = abs(int(L.bias[o])) <= INT32_MAX and accumulator_bound(m, n).max() <= INT32_MAX
                got = {k for k, v in count_layer(m, n, acc2, None, mu)["counts"].items() if v} if ok else set()
                if ok and b in got and have <= got:
                    acc, have, done = acc2, got, True
                    used.add(o)
                    edits.append(f"{n}: channel {o} bias {old:+d} -> {old + delta:+d} ({b})")
                    break
                L.bias[o] = old
            if not done:
                log(f"directed model: no edit reaches {n}/{b}")
    # Gaussian scale indexes: raise scale channel c's HS5 exponents by k_c
    if m.arch.kind == "hyperprior" and any(k.startswith("entropy/y.scale") for k in want):
        gauss = checked_tables(m).gauss
        r = run_case(m, pixels)
        hs5 = [l for l in m.arch.layers if l.out == "ms"][0].name
        H = m.layer(hs5)
        M = m.arch.M
        T = np.asarray(gauss.thresholds, np.int64)
        goal = {int(k[len("entropy/y.scale"):]) for k in want
                if k.startswith("entropy/y.scale") and k[len("entropy/y.scale"):].isdigit()}

        def hit(c, k):
            e = int(H.out_exp[c]) + k + gauss.scale_frac_bits
            if e < 0 or abs(int(H.out_exp[c]) + k) > 64 or abs(int(H.w_exp[c]) + k) > 64:
                return None
            q = np.asarray(r["ms"][c], np.int64) << e
            return set(np.searchsorted(T, q.reshape(-1), side="left").tolist())

        ks = {c: 0 for c in range(M)}
        fixed = set()
        while True:
            best = None
            for c in range(M):
                if c in fixed:
                    continue
                rest = set().union(*(hit(c2, ks[c2]) for c2 in range(M) if c2 != c))
                for k in range(-4, 11):
                    h = hit(c, k)
                    if h is None:
                        continue
                    g = len((rest | h) & goal)
                    if best is None or g > best[0]:
                        best = (g, c, k)
            cur = len(set().union(*(hit(c, ks[c]) for c in range(M))) & goal)
            if best is None or best[0] <= cur:
                break
            _, c, k = best
            ks[c] = k
            fixed.add(c)
        left = goal - set().union(*(hit(c, ks[c]) for c in range(M)))
        if left:
            log(f"directed model: scale indexes not reached: {sorted(left)}")
        for c in range(M):
            if ks[c]:
                H.w_exp[c] += ks[c]
                H.out_exp[c] += ks[c]
                edits.append(f"{hs5}: scale channel {c} w_exp and out_exp {ks[c]:+d} (scale x 2^{ks[c]})")
    m.validate()
    m.meta = dict(base.meta)
    m.meta["source"] = (f"tools/gen_vectors.py: {SMALL} with {len(edits)} integer edits for functional "
                        f"coverage (build_directed_model)")
    return m, edits


def kodak_crop(kodak_dir: str):
    from fxlic.io.images import center_crop, read_image

    p = os.path.join(kodak_dir, "kodim23.png")
    if not os.path.exists(p):
        return None
    return np.ascontiguousarray(center_crop(read_image(p), 256))


# ---------------------------------------------------------------------------
# the suite
# ---------------------------------------------------------------------------

def _rel(path, start):
    return os.path.relpath(path, start).replace(os.sep, "/")


def zoo_models(zoo_dir):
    """(name, path) of the shipped models, the default one first."""
    from fxlic.commands.common import DEFAULT_MODEL

    if zoo_dir is None:
        from fxlic.io.modelfile import list_zoo
        paths = list_zoo()
    elif zoo_dir == "none" or not os.path.isdir(zoo_dir):
        paths = []
    else:
        paths = [os.path.join(zoo_dir, n) for n in sorted(os.listdir(zoo_dir)) if n.endswith(".fxq")]
    named = [(os.path.basename(p)[:-4], p) for p in paths]
    named.sort(key=lambda t: (t[0] != DEFAULT_MODEL, t[0]))
    return named


def plan(zoo):
    """The cases: (model name, image name, Options, note).  Sized to keep the
    suite under BUDGET_BYTES with one shipped N = 128 model (docs/VECTORS.md)."""
    everything = Options()
    lean = Options(mem=frozenset(MEM_CATEGORIES) - {"dec"}, inputs=False, dec_tables=False)
    npy_acc = Options(mem=frozenset({"act", "entropy"}), inputs=False, dec_tables=False)
    io_only = Options(layers=(), mem=frozenset({"act"}), inputs=False, dec_tables=False)
    outs_only = Options(mem=frozenset(), acc=False, inputs=False, dec_tables=False)
    cases = [(SMALL, "img64", everything, "everything: every tensor in .npy and .mem"),
             (SMALL, "img65x47", lean, "odd size: every layer, no decode tables, inputs as aliases"),
             (SMALL, "kodim23_crop256", Options(mem=frozenset({"entropy"}), acc=False, inputs=False,
                                                dec_tables=False),
              "real image: every layer's output codes (.npy), no accumulators"),
             (DIRECTED, DIRECTED_IMAGE, npy_acc, "directed model (functional coverage): every layer, "
                                                 "accumulators in .npy only")]
    o5 = Options(mem=frozenset({"act", "entropy", "params"}), inputs=False)
    cases += [(name, OFFSET_IMAGE, o5, f"offset latents (SPEC O5), {kind}: every layer, accumulators and decode "
                                       f"tables in .npy") for name, (kind, _) in OFFSET_MODELS.items()]
    for i, (name, _) in enumerate(zoo):
        if i == 0:
            cases += [(name, "img64", npy_acc, "default shipped model: every layer (accumulators in .npy only)"),
                      (name, "img65x47", io_only, "default shipped model, odd size: no per-layer tensors"),
                      (name, "kodim23_crop256", io_only, "default shipped model: no per-layer tensors")]
        elif name.startswith("fact-"):  # the only trained factorized prior: its layers too
            cases.append((name, "img64", outs_only, f"shipped factorized model: every layer's output codes "
                                                    f"(.npy), no accumulators; external model "
                                                    f"fxlic/zoo/{name}.fxq (model.external; its model directory: "
                                                    f"fxlic vectors --model {name} --model-only --out DIR)"))
        else:
            cases.append((name, "img64", io_only, f"shipped model: no per-layer tensors; external model "
                                                  f"fxlic/zoo/{name}.fxq (model.external; its model directory: "
                                                  f"fxlic vectors --model {name} --model-only --out DIR)"))
    return cases


def directed_want(small, images, log=print):
    """The bins (``LAYER/bin``) the small model's own cases miss, with the runs."""
    from fxlic.io.modelfile import model_hash
    from fxlic.vectors.coverage import case_coverage, summarize
    from fxlic.vectors.writer import run_case

    runs, recs = {}, []
    for mname, iname, opts, _ in plan([]):
        if mname != SMALL or iname not in images:
            continue
        runs[iname] = run_case(small, images[iname])
        names = [l.name for l in small.arch.layers] if opts.layers is None else list(opts.layers)
        recs.append(case_coverage(small, runs[iname], names, True, SMALL, model_hash(small)))
    return set(summarize(recs)["missing"]), runs


def generate(out: str, source: str, kodak_dir: str, zoo_dir=None, rebuild_model=False,
             quick=False, log=print, coverage_doc=None, cases=None) -> dict:
    """Write the suite to ``out`` (replacing it).  ``quick``: only the small
    model's cases and the units (for fast checks).  ``cases``: glob patterns
    of ``MODEL/IMAGE``: only those cases, their models and no units (a partial
    suite, for checks; its manifest says ``selection``).  ``coverage_doc``: where the
    suite coverage page is written (default: docs/VECTORS-coverage.md when
    ``out`` is the repository's vectors/ and not ``quick``; "" for none).
    Returns the suite manifest."""
    import dataclasses

    from fxlic.io.modelfile import load_model, model_hash, save_model
    from fxlic.io.images import read_image
    from fxlic.vectors.coverage import summarize
    from fxlic.vectors.units import write_units

    import fnmatch

    selection = None if cases is None else list(cases)

    def selected(mname, iname):
        return selection is None or any(fnmatch.fnmatchcase(f"{mname}/{iname}", p) for p in selection)

    out = os.path.abspath(out)
    parent = os.path.dirname(out)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".vectors-", dir=parent)
    try:
        # ---- inputs
        src_fxq = os.path.join(source, "models", SMALL, "model.fxq")
        if rebuild_model or not os.path.exists(src_fxq):
            built = os.path.join(tmp, "rand16.fxq")
            log(f"building the small random model ({SMALL})")
            build_small_model(built)
            with open(built, "rb") as f:
                small_fxq = f.read()
            os.unlink(built)
        else:
            with open(src_fxq, "rb") as f:
                small_fxq = f.read()
        images = {"img64": synthetic_image(64, 64, 1), "img65x47": synthetic_image(47, 65, 2)}
        image_files = {"images/img64.png": png_bytes(images["img64"]),
                       "images/img65x47.png": png_bytes(images["img65x47"])}
        src_crop = os.path.join(source, *KODAK_CROP.split("/"))
        if os.path.exists(src_crop):
            with open(src_crop, "rb") as f:
                image_files[KODAK_CROP] = f.read()
            images["kodim23_crop256"] = read_image(src_crop)
        else:
            crop = kodak_crop(kodak_dir)
            if crop is None:
                log(f"warning: no {KODAK_CROP} and no kodim23.png in {kodak_dir}: Kodak case skipped")
            else:
                image_files[KODAK_CROP] = png_bytes(crop)
                images["kodim23_crop256"] = crop
        ID = VectorDir(os.path.join(tmp, "images"))
        for rel in sorted(image_files):
            ID.write(rel.split("/", 1)[1], image_files[rel])
        ID.manifest({"kind": "images", "what": "input images of the cases (img64 and img65x47 are "
                     "synthetic, computed by tools/gen_vectors.py; the Kodak crop is kept as is)"})

        # ---- models
        fxq_path = os.path.join(tmp, "models", SMALL, "model.fxq")
        os.makedirs(os.path.dirname(fxq_path))
        with open(fxq_path, "wb") as f:
            f.write(small_fxq)
        models = {SMALL: load_model(fxq_path)}
        os.unlink(fxq_path)
        # the directed model: the small model edited for the bins its own cases miss
        small_runs = {}
        if selected(DIRECTED, DIRECTED_IMAGE):
            want, small_runs = directed_want(models[SMALL], images, log)
            dm, directed_edits = build_directed_model(models[SMALL], images[DIRECTED_IMAGE], want, log)
            dpath = os.path.join(tmp, "directed.fxq")
            save_model(dm, dpath)
            with open(dpath, "rb") as f:
                directed_fxq = f.read()
            models[DIRECTED] = load_model(dpath)
            os.unlink(dpath)
            log(f"model {DIRECTED}: {len(directed_edits)} edits for {len(want)} bins")
        # the offset-latent models (SPEC O5): kept like the small model, built if absent
        # or on another offset grid than the builder's (GRID_BITS: spec 1.3 moved it), or
        # a hyperprior whose HA0 does not read y on that grid (SPEC O6: spec 1.4)
        offset_fxq = {}
        for name, (kind, seed) in OFFSET_MODELS.items():
            if not selected(name, OFFSET_IMAGE):
                continue
            src = os.path.join(source, "models", name, "model.fxq")
            if rebuild_model or not os.path.exists(src) or not _offset_model_current(load_model(src)):
                src = os.path.join(tmp, name + ".fxq")
                log(f"building the offset-latent model {name} ({kind})")
                build_offset_model(kind, seed, src, log)
            with open(src, "rb") as f:
                offset_fxq[name] = f.read()
            models[name] = load_model(src)
            if src.startswith(tmp):
                os.unlink(src)
        zoo = [] if quick else zoo_models(zoo_dir)
        zoo_paths = dict(zoo)
        for name, path in zoo:
            if any(selected(mn, im) for mn, im, _, _ in plan(zoo) if mn == name):
                models[name] = load_model(path)
        model_info = {}
        default_zoo = zoo[0][0] if zoo else None
        for name, m in models.items():
            mdir = os.path.join(tmp, "models", name)
            if name in offset_fxq:
                man = write_model_dir(m, mdir, Options(mem=frozenset({"params"})), name,
                                      files={"model.fxq": offset_fxq[name]},
                                      extra={"source": "generated by tools/gen_vectors.py build_offset_model "
                                                       "(model.fxq kept)"})
                model_info[name] = {"dir": f"models/{name}", "hash": model_hash(m), "source": man["source"],
                                    "architecture": m.arch.name, "latents": m.latents}
                log(f"model {name}: {m.arch.name}, offset latents")
                continue
            if name == SMALL and selection is not None and not any(
                    selected(mn, im) for mn, im, _, _ in plan(zoo) if mn in (SMALL, DIRECTED)):
                continue  # a partial suite without the small model's cases (it is loaded for the units)
            if name not in (SMALL, DIRECTED, default_zoo):  # external: fxlic/vectors/external.py
                model_info[name] = {"dir": None, "hash": model_hash(m), "source": f"fxlic/zoo/{name}.fxq",
                                    "architecture": m.arch.name,
                                    "external": external_entry(m, zoo_paths[name], name)}
                continue
            if name == SMALL:
                man = write_model_dir(m, mdir, Options(), name, files={"model.fxq": small_fxq},
                                      extra={"source": "generated by tools/gen_vectors.py (model.fxq kept)"})
            elif name == DIRECTED:
                man = write_model_dir(m, mdir, Options(mem=frozenset({"params"})), name,
                                      files={"model.fxq": directed_fxq},
                                      extra={"source": f"tools/gen_vectors.py build_directed_model: {SMALL} "
                                                       f"with integer edits for functional coverage "
                                                       f"(fxlic/vectors/coverage.py)",
                                             "edits": directed_edits})
            else:  # the default shipped model: what `fxlic vectors --model NAME --model-only` writes
                man = write_model_dir_of(m, zoo_paths[name], mdir, name)
            model_info[name] = {"dir": f"models/{name}", "hash": model_hash(m), "source": man["source"],
                                "architecture": m.arch.name}
            log(f"model {name}: {m.arch.name}")

        # ---- cases
        cases, cov_recs, cov_names = [], [], []
        for mname, iname, opts, note in plan(zoo):
            if iname not in images or not selected(mname, iname) or mname not in models:
                continue
            cdir = os.path.join(tmp, "cases", mname, iname)
            mrel = _rel(os.path.join(tmp, "models", mname), cdir) if model_info[mname]["dir"] else ""
            opts = dataclasses.replace(opts, coverage=True)
            man = write_case(models[mname], images[iname], cdir, opts, model_dir=mrel, model_name=mname,
                             image_name=iname, extra={"note": note},
                             external=model_info[mname].get("external"),
                             _run=small_runs.get(iname) if mname == SMALL else None)
            with open(os.path.join(cdir, "coverage.json"), "rb") as f:
                cov_recs.append(json.loads(f.read()))
            cov_names.append(f"{mname}/{iname}")
            cases.append({"dir": f"cases/{mname}/{iname}", "model": mname, "image": iname, "note": note,
                          "size": [man["image"]["width"], man["image"]["height"]],
                          "stream_bytes": man["stream"]["bytes"]})
            log(f"case {mname}/{iname}: {len(man['files'])} files")

        # ---- units
        units = write_units(os.path.join(tmp, "units"), models[SMALL]) if selection is None else {}
        log(f"units: {len(units)}")

        # ---- suite manifest
        from fxlic.vectors.batch import tree_digests
        total, nfiles, digests = tree_digests(tmp)
        suite = {"format": "fxlic-vectors", "format_version": 1, "kind": "suite",
                 "generator": "tools/gen_vectors.py", "quick": bool(quick),
                 "models": model_info, "cases": cases,
                 "units": [{"dir": f"units/{n}", "rules": units[n]["rules"], "checks": units[n]["checks"]}
                           for n in sorted(units)],
                 "manifests": digests, "total_bytes": total, "file_count": nfiles, "budget_bytes": BUDGET_BYTES,
                 "coverage": summarize(cov_recs)}
        if selection is not None:
            suite["selection"] = selection
        from fxlic.spec import SPEC_VERSION
        suite["spec_version"] = SPEC_VERSION
        with open(os.path.join(tmp, "manifest.json"), "wb") as f:
            f.write(json_bytes(suite))
        if total > BUDGET_BYTES:
            log(f"warning: the suite is {total:,} bytes, over the {BUDGET_BYTES:,} byte budget")
        cov = suite["coverage"]
        log(f"coverage: {cov['hit']} of {cov['bins']} bins ({cov['percent']:.1f} %)"
            + (f"; missing {' '.join(cov['missing'])}" if cov["missing"] else ""))
        if coverage_doc is None:
            coverage_doc = COVERAGE_DOC if (os.path.abspath(out) == os.path.abspath(DEFAULT_OUT)
                                            and not quick and selection is None) else ""
        if coverage_doc:
            with open(coverage_doc, "w", encoding="utf-8", newline="\n") as f:
                f.write(coverage_markdown(cov_recs, cov_names))
            log(f"{coverage_doc}: suite coverage page")
        # ---- swap in
        if os.path.exists(out):
            old = tempfile.mkdtemp(prefix=".vectors-old-", dir=parent)
            os.rmdir(old)
            os.replace(out, old)
            os.replace(tmp, out)
            shutil.rmtree(old)
        else:
            os.replace(tmp, out)
        log(f"{out}: {nfiles} files, {total:,} bytes")
        return suite
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def coverage_markdown(records, names) -> str:
    """docs/VECTORS-coverage.md from the cases' coverage records."""
    from fxlic.vectors.coverage import format_suite_markdown

    return format_suite_markdown(records, names, f"The directed model `{DIRECTED}` (models/{DIRECTED}, "
                                 f"its `edits` in its manifest) reaches what the small random model's "
                                 f"own cases miss.")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=DEFAULT_OUT, help="output directory (default: vectors/ of the repo)")
    ap.add_argument("--source", default=DEFAULT_OUT,
                    help="where the kept inputs are read (models/rand16/model.fxq, images/kodim23_crop256.png)")
    ap.add_argument("--kodak", default=DEFAULT_KODAK, help="Kodak directory (only if the crop is not kept yet)")
    ap.add_argument("--zoo-dir", default=None, help="shipped models directory (default fxlic/zoo; 'none': skip)")
    ap.add_argument("--rebuild-model", action="store_true", help="rebuild the small random model")
    ap.add_argument("--quick", action="store_true", help="only the small model's cases and the units")
    ap.add_argument("--coverage-doc", default=None,
                    help="where to write the suite coverage page (default docs/VECTORS-coverage.md when "
                         "writing vectors/; '' for none)")
    ap.add_argument("--cases", default=None, metavar="GLOB[,GLOB]",
                    help="only the cases MODEL/IMAGE matching these patterns (e.g. 'rand8*'), their models "
                         "and no units: a partial suite for checks (never the committed vectors/)")
    ap.add_argument("-q", "--quiet", action="store_true")
    a = ap.parse_args(argv)
    sel = None if a.cases is None else [p.strip() for p in a.cases.split(",") if p.strip()]
    if sel is not None and os.path.abspath(a.out) == os.path.abspath(DEFAULT_OUT):
        ap.error("--cases writes a partial suite: give --out (not the committed vectors/)")
    generate(a.out, a.source, a.kodak, a.zoo_dir, a.rebuild_model, a.quick,
             log=(lambda *x: None) if a.quiet else print, coverage_doc=a.coverage_doc, cases=sel)
    return 0


if __name__ == "__main__":
    sys.exit(main())
