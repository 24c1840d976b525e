#!/usr/bin/env python
"""Regenerate docs/RESULTS.md and docs/figures/*.png with one command, or
the headline table in minutes with --quick:

    pip install '.[eval]'
    export FXLIC_KODAK=/path/to/kodak                 # the 24 Kodak PNGs (or --kodak DIR)
    python tools/paper_tables.py --quick              # headline table on 6 Kodak images, < 10 min on 2 cores
    export FXLIC_CALIB=/path/to/CBSD68                # calibration images (or --calib DIR)
    python tools/paper_tables.py --jobs 2             # the full report: computes what the cache lacks
    python tools/paper_tables.py --report-only        # rewrite the report from the cache only

--quick evaluates the shipped models (fxlic/zoo/*.fxq, real .fxl bitstreams),
their float models (found by sha256 in --weights-dir or fxlic/zoo) and the
classical codecs JPEG, JPEG 2000, WebP, AVIF and HEVC intra (those installed)
on --images Kodak images spread over the set (default 6), in one process
pool with one progress bar, and writes the headline tables, the RD figures
and CompressAI-layout JSON files to --out-dir (default ./paper-tables-quick);
it quantizes nothing, so it needs no calibration images.

The full run evaluates on the Kodak images:
  * every float model of --weights-dir (ideal bpp, float32 forward) and its
    integer model (real .fxl bitstreams, numba backend) on --images images;
  * classical codecs (Pillow JPEG, imagecodecs JPEG 2000 / WebP / AVIF / JPEG XL,
    pillow-heif HEVC intra) at a sweep of qualities;
  * the ablations of the paper's tables on the first --ablation-images images:
    weights-only and activations-only quantization (Table VI), WCFT (Table VII),
    activation LQ vs NLQ+mux (Table VIII), the weight quantizers of Table I and
    Lin et al.'s scheme, the bit-depth of y (Table V);
and counts Table IX (memory) and Table X (energy) from the layer list.

Inputs (each a flag or an environment variable, checked before anything runs):
--kodak / FXLIC_KODAK, --calib / FXLIC_CALIB (full run, only when a model must
be quantized), --weights-dir / FXLIC_WEIGHTS (float models besides the shipped
fxlic/zoo/*.float.safetensors, and the *-nowcft exports; default tools/weights), --cache /
FXLIC_EVAL_CACHE (default ~/.cache/fxlic-eval).  Every per-image result is
cached (fxlic.eval.cache); integer models are quantized into <cache>/models
unless the shipped fxlic/zoo/<name>.fxq was made from the same weights.
"""
from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import sys
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from fxlic.errors import CliError  # noqa: E402
from fxlic.eval import bd, counts  # noqa: E402
from fxlic.eval import paper as P  # noqa: E402
from fxlic.eval.cache import Cache, default_dir  # noqa: E402
from fxlic.eval.codecs import CODECS, available  # noqa: E402
from fxlic.eval.runner import evaluate, summarize  # noqa: E402
from fxlic.parallel import SCHEDULER_ENV, DaskExecutor  # noqa: E402

#: (name, label): the preferred order; every other model with weights in
#: --weights-dir is evaluated too (after these)
MODELS = [("hp5-mse-q0", "hyperprior"), ("hp5-mse-q1", "hyperprior"), ("hp5-mse-q2", "hyperprior"),
          ("hp5-mse-q3", "hyperprior"), ("fact-mse-q1", "factorized")]
#: the hyperprior RD set when no hyperprior model is shipped (the paper's three
#: N=128 MSE lambdas); otherwise the shipped hyperprior models form the curve
HP5 = ["hp5-mse-q0", "hp5-mse-q1", "hp5-mse-q2"]
TABLE_I_VARIANTS = ["lw-lq", "lw-nlq", "lloyd", "cw-lq", "cw-nlq"]
LIN_VARIANTS = ["lin-lq", "lin-nlq"]
DEFAULT_CODECS = "jpeg,jpeg2000,webp,avif,jpegxl,hevc"
#: --quick: the headline anchors and the number of Kodak images
QUICK_CODECS = "jpeg,jpeg2000,webp,avif,hevc"
QUICK_IMAGES = 6

# ---------------------------------------------------------------- the paper's numbers (citations, fxlic/eval/paper.py)
PAPER_TABLE_I = P.TABLE_I
PAPER_LAMBDAS = P.LAMBDAS
PAPER_VI_HYPER, PAPER_VI_FACT = P.TABLE_VI_HYPER, P.TABLE_VI_FACT
PAPER_VII_HYPER_WO, PAPER_VII_FACT_WO = P.TABLE_VII_HYPER_WO, P.TABLE_VII_FACT_WO
PAPER_VIII_HYPER_LQ, PAPER_VIII_FACT_LQ = P.TABLE_VIII_HYPER_LQ, P.TABLE_VIII_FACT_LQ


def paper_at(lam, table):
    """The paper's (dB, bpp) entry of a per-lambda row at lambda ``lam`` (None if not a paper lambda)."""
    for i, l in enumerate(PAPER_LAMBDAS):
        if lam is not None and abs(l - lam) < 1e-9:
            return table[0][i], table[1][i]
    return None


# ---------------------------------------------------------------- formatting

def f(v, fmt="{:.3f}", none="–"):
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return none
    return fmt.format(v)


def sgn(v, nd=3, none="–"):
    return f(v, "{:+.%df}" % nd, none)


def with_unit(v, nd, unit, none="n/a"):
    """Signed value with its unit, or ``none`` alone (no dangling unit)."""
    return none if v is None or (isinstance(v, float) and not math.isfinite(v)) else f"{sgn(v, nd)} {unit}"


def md_table(header, rows):
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


# ---------------------------------------------------------------- records

MISSING = object()


def float_models(wdir: str) -> dict:
    """name -> float weights: the shipped float models (fxlic/zoo/NAME.float.safetensors)
    and ``wdir/NAME.safetensors`` (which wins for a name in both); MODELS' order
    first, then the rest by name.  ``wdir/NAME-nowcft.safetensors`` are the
    exports before WCFT (Table VII), not models of their own."""
    from fxlic.io.modelfile import ZOO_DIR
    found = {}
    for d, suffix in ((ZOO_DIR, ".float.safetensors"), (wdir, ".safetensors")):
        if not d or not os.path.isdir(d):
            continue
        for fn in sorted(os.listdir(d)):
            if fn.endswith(suffix) and not fn.endswith("-nowcft.safetensors"):
                name = fn[:-len(suffix)]
                if d == wdir and name.endswith(".float"):
                    name = name[:-len(".float")]
                found[name] = os.path.join(d, fn)
    known = [n for n, _ in MODELS if n in found]
    return {n: found[n] for n in known + sorted(set(found) - set(known))}


def shipped_models(wdir: str) -> list:
    """The shipped models: [(name, .fxq path, float weights path or None)], the
    float model found by the sha256 the .fxq records, among the .safetensors
    files of ``wdir`` and fxlic/zoo."""
    from fxlic.io.floatfile import file_sha256
    from fxlic.io.modelfile import ZOO_DIR, ModelFileError, list_zoo, read_model_file
    cands = {}
    for d in (wdir, ZOO_DIR):
        if d and os.path.isdir(d):
            for f in sorted(os.listdir(d)):
                if f.endswith(".safetensors"):
                    cands.setdefault(os.path.join(d, f), None)
    shas = {}
    out = []
    for fxq in list_zoo():
        try:
            im, _ = read_model_file(fxq)
        except ModelFileError as e:
            print(f"paper_tables: note: {e}; left out", file=sys.stderr)
            continue
        want = ((im.meta or {}).get("float_model") or {}).get("sha256")
        found = None
        for c in cands:
            if want and shas.setdefault(c, file_sha256(c)) == want:
                found = c
                break
        out.append((os.path.basename(fxq)[:-4], fxq, found))
    return out


def spread(items: list, n: int) -> list:
    """``n`` items evenly spaced over ``items`` (all of them if n >= len)."""
    if n >= len(items):
        return list(items)
    return [items[(k * len(items)) // n] for k in range(n)]


class Ctx:
    def __init__(self, args, images):
        from fxlic.io.floatfile import load_weights
        from fxlic.io.modelfile import read_model_file
        self.args = args
        # --jobs N: a local pool per step; --scheduler: one Dask connection, checked here (fxlic/parallel.py)
        self.jobs = args.jobs
        if args.scheduler or os.environ.get(SCHEDULER_ENV):
            self.jobs = DaskExecutor(args.scheduler or os.environ[SCHEDULER_ENV])
        self.cache = Cache(args.cache)
        self.images = images
        self.abl_images = self.images[:args.ablation_images]
        self.model_dir = os.path.join(args.cache, "models")
        self.weights = {}  # name -> float weights path
        self.nowcft = {}
        self.shipped = {}  # name -> shipped .fxq (--quick: the models evaluated)
        self.models = []  # (name, architecture kind), in report order
        self.meta = {}
        if args.quick:
            for name, fxq, w in shipped_models(args.weights_dir):
                self.shipped[name] = fxq
                im, _ = read_model_file(fxq)
                fmeta = (im.meta or {}).get("float_model") or {}
                self.models.append((name, im.arch.kind))
                if w:
                    self.weights[name] = w
                self.meta[name] = {"lambda": fmeta.get("lambda"), "provenance": fmeta.get("provenance") or {},
                                   "arch": im.arch.name, "sha256": fmeta.get("sha256")}
            # hyperprior models first, each kind by rate (lambda)
            self.models.sort(key=lambda m: (m[1] != "hyperprior", self.lam(m[0]) or 0.0, m[0]))
        else:
            for name, w in float_models(args.weights_dir).items():
                self.weights[name] = w
                p2 = os.path.join(args.weights_dir, name + "-nowcft.safetensors")
                if os.path.exists(p2):
                    self.nowcft[name] = p2
            for name, p in list(self.weights.items()) + [(n + "-nowcft", p) for n, p in self.nowcft.items()]:
                fm = load_weights(p)
                self.meta[name] = {"lambda": fm.meta.get("lambda"), "provenance": fm.meta.get("provenance") or {},
                                   "arch": fm.arch.name, "sha256": fm.meta.get("sha256"), "kind": fm.arch.kind}
            self.models = [(n, self.meta[n]["kind"]) for n in self.weights]
        self.compute = not args.report_only
        self.int_paths = {}
        self.planning = False
        self.pending = []
        self.computed = 0  # per-image results computed in this run
        self.cached = 0  # and found in the cache
        self.seen = set()  # task keys already counted

    def lam(self, name):
        return self.meta.get(name, {}).get("lambda")

    def kind(self, name):
        return dict(self.models).get(name)

    def is_shipped(self, name):
        """True when the model's integer model is a shipped fxlic/zoo file."""
        from fxlic.io.modelfile import ZOO_DIR
        p = self.int_model(name)
        return p is not None and os.path.dirname(os.path.abspath(p)) == os.path.abspath(ZOO_DIR)

    def run(self, tasks, desc):
        if self.planning:  # collect now, compute in one pool with flush()
            self.pending += tasks
            return [None] * len(tasks)
        return evaluate(tasks, self.cache, self.jobs, not self.args.quiet, desc, compute=self.compute)

    def flush(self, desc):
        tasks, self.pending = self.pending, []
        if tasks and self.compute:
            from fxlic.eval.runner import task_key
            new = {task_key(t) for t in tasks} - self.seen
            self.seen |= new
            cached = sum(1 for k in new if self.cache.get(k) is not None)
            evaluate(tasks, self.cache, self.jobs, not self.args.quiet, desc, keep_going=True)
            self.computed += len(new) - cached
            self.cached += cached

    # integer model files
    def act_model(self, name, act="nlq-mux"):
        """The .fxq whose activation parameters the A-only simulation uses (MISSING if not built)."""
        p = self.int_model(name, act=act)
        return MISSING if p is None else p

    def int_model(self, name, scheme="cw-nlq", act="nlq-mux", mr=True, nowcft=False):
        from fxlic.eval.models import model_path, zoo_match
        default = (scheme, act, mr) == ("cw-nlq", "nlq-mux", True) and not nowcft
        if default and name in self.shipped:
            return self.shipped[name]
        w = (self.nowcft if nowcft else self.weights).get(name)
        if w is None:
            return None
        key = (name, scheme, act, mr, nowcft)
        if key in self.int_paths:
            return self.int_paths[key]
        p = None
        if default:
            p = zoo_match(w)
        if p is None:
            p = model_path(w, self.model_dir, scheme, act, mr)
            if not os.path.exists(p):
                p = None
        self.int_paths[key] = p
        return p

    def missing_models(self, specs):
        """The (weights, variant) pairs of ``specs`` (as for build) that are neither shipped nor built."""
        from fxlic.eval.models import model_path, zoo_match
        out = []
        for name, nowcft, variants in specs:
            w = (self.nowcft if nowcft else self.weights).get(name)
            if w is None:
                continue
            for v in variants:
                if v == ("cw-nlq", "nlq-mux", True) and not nowcft and zoo_match(w):
                    continue
                if not os.path.exists(model_path(w, self.model_dir, *v)):
                    out.append((w, v))
        return out

    def build(self, specs):
        """specs: list of (name, nowcft, [(scheme, act, mr), ...]); builds missing .fxq (in parallel)."""
        from fxlic.eval.models import build_job
        from fxlic.parallel import Executor, make_executor
        need = {}
        for w, v in self.missing_models(specs):
            need.setdefault(w, []).append(v)
        jobs = [(w, self.args.calib, self.model_dir, vs) for w, vs in need.items()]
        if not jobs or not self.compute:
            return
        from tqdm import tqdm
        n = sum(len(j[3]) for j in jobs)
        bar = tqdm(total=len(jobs), desc=f"quantizing {n} integer model(s) (calibration + build)", unit="model",
                   file=sys.stderr, disable=self.args.quiet, dynamic_ncols=True)
        own = not isinstance(self.jobs, Executor)
        ex = make_executor(self.jobs, None, len(jobs)) if own else self.jobs
        try:
            for _, get in ex.results(build_job, jobs):
                get()
                bar.update(1)
        finally:
            bar.close()
            if own:
                ex.close()
        self.int_paths.clear()

    def int_recs(self, name, images, desc=None, **kw):
        p = self.int_model(name, **kw)
        if p is None:
            return [None] * len(images)
        return self.run([{"kind": "int", "model": p, "image": i} for i in images], desc or f"int {name}")

    def float_recs(self, name, images, wq=None, act=None, nowcft=False, desc=None):
        w = (self.nowcft if nowcft else self.weights).get(name)
        if w is None or act is MISSING:
            return [None] * len(images)
        tasks = [{"kind": "float", "weights": w, "image": i, "wq": wq, "act": act} for i in images]
        return self.run(tasks, desc or f"float {name} {wq or ''} {'A' if act else ''}".strip())

    def classical(self, name, images):
        c = CODECS[name]
        tasks = [{"kind": "classical", "codec": name, "q": q, "image": i} for q in c.qualities for i in images]
        recs = self.run(tasks, name)
        n = len(images)
        return [(q, recs[k * n:(k + 1) * n]) for k, q in enumerate(c.qualities)]


def complete(recs):
    return recs if recs and all(r is not None for r in recs) else None


def paired(a, b):
    """Records of a and b restricted to the images both have."""
    if a is None or b is None:
        return [], []
    bi = {r["image"]: r for r in b if r is not None}
    pa = [r for r in a if r is not None and r["image"] in bi]
    return pa, [bi[r["image"]] for r in pa]


def loss(test, base, rate="bpp"):
    """(dPSNR, dbpp, dMS-SSIM dB, n) of test vs base, paired over images."""
    t, b = paired(test, base)
    if not t:
        return None
    st, sb = summarize(t), summarize(b)
    rt = st.get(rate, st["bpp"])
    return (st["psnr"] - sb["psnr"], rt - sb["bpp"], st.get("msssim_db", float("nan")) - sb.get("msssim_db", float("nan")),
            len(t))


# ---------------------------------------------------------------- compute plan

def compute_all(ctx):
    names = [n for n, _ in ctx.models if n in ctx.weights]
    imgs, abl = ctx.images, ctx.abl_images
    ctx.planning = True
    # P1 integer models of the shipped configuration
    ctx.build([(n, False, [("cw-nlq", "nlq-mux", True)]) for n in names])
    # P2 RD on the ablation images, P3 Table VI (weights only, activations only), P2b RD on all images
    for n in names:
        ctx.float_recs(n, abl)
        ctx.int_recs(n, abl)
    ctx.flush("RD (ablation images)")
    for n in names:
        ctx.float_recs(n, abl, wq="cw-nlq")
        ctx.float_recs(n, abl, act=ctx.act_model(n))
    ctx.flush("Table VI (W only, A only)")
    for n in names:
        ctx.float_recs(n, imgs)
        ctx.int_recs(n, imgs)
    ctx.flush("RD (all images)")
    # P4 Table VIII: activation LQ (integer model and activation-only simulation)
    ctx.build([(n, False, [("cw-nlq", "lq", True)]) for n in names])
    for n in names:
        ctx.float_recs(n, abl, act=ctx.act_model(n, "lq"))
        ctx.int_recs(n, abl, act="lq")
    ctx.flush("Table VIII (activation LQ)")
    # P5 Table VII: models without WCFT
    ctx.build([(n, True, [("cw-nlq", "nlq-mux", True)]) for n in names if n in ctx.nowcft])
    for n in names:
        if n in ctx.nowcft:
            ctx.float_recs(n, abl, nowcft=True)
            ctx.float_recs(n, abl, wq="cw-nlq", nowcft=True)
            ctx.int_recs(n, abl, nowcft=True)
    ctx.flush("Table VII (no WCFT)")
    # P6 Table I and Lin et al. on the middle model
    mid = "hp5-mse-q2" if "hp5-mse-q2" in ctx.weights else None
    if mid:
        for v in TABLE_I_VARIANTS + LIN_VARIANTS:
            ctx.float_recs(mid, abl, wq=v)
        if mid in ctx.nowcft:
            for v in TABLE_I_VARIANTS + LIN_VARIANTS:
                ctx.float_recs(mid, abl, wq=v, nowcft=True)
        ctx.flush("Table I, Lin et al.")
    # P7 classical anchors (fast; last so the models' results come first)
    for c in ctx.args.codecs:
        ctx.classical(c, imgs)
    ctx.flush("classical codecs")
    ctx.planning = False
    # Table V needs no extra run (the float records carry y statistics)


# ---------------------------------------------------------------- report sections

def lineage_steps(pv: dict) -> list:
    """Training steps (without WCFT) of a float model and of the runs it was started
    from, newest first, as far as the provenance records them: an exported file's
    provenance carries its parent's (``init_from.init_args``) when the parent was a
    .safetensors file, and only the parent's step count when it was a checkpoint."""
    out = []
    while pv:
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


def _summ(recs):
    s = summarize([r for r in recs if r is not None])
    return s if s.get("n") else None


def main_rd(ctx):
    """Per model: float and integer summaries over all images (paired over the
    images both have; either alone when the other is missing)."""
    res = {}
    for name, kind in ctx.models:
        fr = ctx.float_recs(name, ctx.images)
        ir = ctx.int_recs(name, ctx.images)
        fi, ii = paired(fr, ir)
        if fi:
            fl, it, n = summarize(fi), summarize(ii), len(fi)
        else:
            fl, it = _summ(fr), _summ(ir)
            n = (it or fl or {"n": 0})["n"]
        res[name] = {"float": fl, "int": it, "float_all": summarize([r for r in fr if r]),
                     "int_all": summarize([r for r in ir if r]), "n": n, "kind": kind}
    return res


def section_main(ctx, rd):
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


def rd_set(ctx, rd):
    """The hyperprior models that form the RD curve: the shipped ones (HP5 if none is shipped)."""
    hp = [n for n, k in ctx.models if k == "hyperprior" and n in rd and ctx.is_shipped(n)]
    if not hp:
        hp = [n for n in HP5 if n in rd]
    return sorted(hp, key=lambda n: (rd[n]["int"] or rd[n]["float"] or {}).get("bpp", 0.0))


def curves(ctx, rd, metric, plot=False):
    """The hyperprior RD set as one curve per kind (float / int), every other
    model as single points; ``plot``: only shipped models unless --all-models."""
    out = []
    hp = rd_set(ctx, rd)
    for kind in ("float", "int"):
        names = [n for n in hp if rd[n][kind] and metric in rd[n][kind]]
        if names:
            out.append({"label": f"fxlic {'8-bit integer' if kind == 'int' else 'float32'} hyperprior-5 "
                                 f"({', '.join(names)})", "kind": kind, "arch_kind": "hyperprior",
                        "bpp": [rd[n][kind]["bpp"] for n in names], "q": [rd[n][kind][metric] for n in names],
                        "names": names})
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


def _point_deltas(t, a):
    """(name, rate difference %, quality difference) of each point of curve t
    against the interpolated anchor a (None outside the anchor's range)."""
    return bd.point_deltas(a["bpp"], a["q"], t["names"], t["bpp"], t["q"])


def _point_rows(t, a, name):
    return [[f"integer {n} (one point)", name, sgn(r, 2, "n/a (outside)") + (" %" if r is not None else ""),
             sgn(q, 3, "n/a (outside)") + (" dB" if q is not None else ""), "at the point"]
            for n, r, q in _point_deltas(t, a)]


def section_bd(ctx, rd):
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
                    rows += _point_rows(t, a, name)
        lines.append(f"**{unit}** (test = fxlic integer models; negative BD-rate = fewer bits than the anchor; "
                     "'one point' rows: rate difference at that point's quality / quality difference at its "
                     "rate against the interpolated anchor)\n")
        lines.append(md_table(["test", "anchor", "BD-rate", f"BD-{unit}", f"overlap ({unit})"], rows))
        lines.append("")
    return "\n".join(lines)


def section_classical(ctx):
    rows = []
    for c in ctx.args.codecs:
        for q, recs in ctx.classical(c, ctx.images):
            if complete(recs):
                s = summarize(recs)
                rows.append([c, str(q), f(s["bpp"], "{:.4f}"), f(s["psnr"], "{:.2f}"), f(s.get("msssim"), "{:.4f}"),
                             f(s.get("msssim_db"), "{:.2f}")])
    return md_table(["codec", "quality", "bpp", "PSNR", "MS-SSIM", "MS-SSIM dB"], rows)


def figure_caption(ctx, metric):
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
        groups = [("hyperprior5", [m for m in hp if rd[m][kind]])] + \
            [(m, [m]) for m in rd if m not in hp and rd[m][kind]]
        for gname, names in groups:
            if not names:
                continue
            recs = {m: (ctx.int_recs if kind == "int" else ctx.float_recs)(m, ctx.images) for m in names}
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


def section_table_i(ctx):
    mid = "hp5-mse-q2"
    if mid not in ctx.weights:
        return "pending: no hp5-mse-q2 weights"
    base = ctx.float_recs(mid, ctx.abl_images)
    rows = []
    cols = [("origin", None)] + [(v, v) for v in TABLE_I_VARIANTS] + [(v, v) for v in LIN_VARIANTS]
    for label, v in cols:
        recs = base if v is None else ctx.float_recs(mid, ctx.abl_images, wq=v)
        b, r = paired(base, recs)
        if not r:
            rows.append([label, "pending", "", "", "", ""])
            continue
        s, sb = summarize(r), summarize(b)
        p = PAPER_TABLE_I.get(label)
        rows.append([label, f"{s['psnr']:.2f} / {s['bpp']:.4f}", f"{s['psnr'] - sb['psnr']:+.3f} dB, "
                     f"{s['bpp'] - sb['bpp']:+.4f} bpp", f"{s['msssim_db'] - sb['msssim_db']:+.3f}",
                     f"{p[0]:.2f} / {p[1]:.3f}" if p else "–",
                     f"{p[0] - PAPER_TABLE_I['origin'][0]:+.2f} dB, {p[1] - PAPER_TABLE_I['origin'][1]:+.3f} bpp"
                     if p else "(Fig. 9: below CW-NLQ+WCFT)"])
    return md_table(["weights", "fxlic PSNR / bpp", "fxlic vs origin", "fxlic ΔMS-SSIM dB", "paper PSNR / bpp",
                     "paper vs origin"], rows)


def section_lin_all(ctx):
    """Lin et al. vs CW-NLQ for every model (weights only)."""
    rows = []
    mid = "hp5-mse-q2"
    for nowcft in (False, True):
        src = ctx.nowcft if nowcft else ctx.weights
        if mid not in src:
            continue
        base = ctx.float_recs(mid, ctx.abl_images, nowcft=nowcft)
        cells = [mid + ("-nowcft" if nowcft else "")]
        for v in ("cw-nlq", "lin-lq", "lin-nlq"):
            l_ = loss(ctx.float_recs(mid, ctx.abl_images, wq=v, nowcft=nowcft), base)
            cells.append(f"{l_[0]:+.3f} dB / {l_[1]:+.4f} bpp" if l_ else "pending")
        rows.append(cells)
    return md_table(["float model", "CW-NLQ (Eq 14)", "Lin et al. LQ (alpha 3)", "Lin et al. NLQ Eq 34 (alpha 1.5)"],
                    rows)


def section_vi(ctx):
    rows = []
    for name, kind in ctx.models:
        if name not in ctx.weights:
            continue
        base = ctx.float_recs(name, ctx.abl_images)
        lw = loss(ctx.float_recs(name, ctx.abl_images, wq="cw-nlq"), base)
        la = loss(ctx.float_recs(name, ctx.abl_images, act=ctx.act_model(name)), base)
        ir = ctx.int_recs(name, ctx.abl_images)
        lwa = loss(ir, base, rate="est_bpp")
        lwaf = loss(ir, base)
        lam = ctx.lam(name)
        P = PAPER_VI_HYPER if kind == "hyperprior" else PAPER_VI_FACT

        def cell(l_):
            return f"{l_[0]:+.3f} / {l_[1]:+.4f}" if l_ else "pending"

        def pcell(key):
            p = paper_at(lam, P[key])
            return f"{p[0]:+.3f} / {p[1]:+.4f}" if p else "–"
        rows.append([name, f(lam, "{:g}"), str(lw[3] if lw else 0), cell(lw), pcell("w"), cell(la), pcell("a"),
                     cell(lwa), f"{lwaf[1]:+.4f}" if lwaf else "pending", pcell("wa"),
                     f"{lwa[2]:+.3f}" if lwa else "–"])
    return md_table(["model", "lambda", "images", "W only: dPSNR / dbpp", "paper W", "A only", "paper A",
                     "W+A (integer codec, estimated bpp)", "W+A dbpp (.fxl file)", "paper W+A",
                     "W+A dMS-SSIM dB"], rows)


def section_vii(ctx):
    rows = []
    for name, kind in ctx.models:
        if name not in ctx.weights or name not in ctx.nowcft:
            continue
        lam = ctx.lam(name)
        b0 = ctx.float_recs(name, ctx.abl_images, nowcft=True)
        b1 = ctx.float_recs(name, ctx.abl_images)
        w0 = loss(ctx.float_recs(name, ctx.abl_images, wq="cw-nlq", nowcft=True), b0)
        w1 = loss(ctx.float_recs(name, ctx.abl_images, wq="cw-nlq"), b1)
        i0 = loss(ctx.int_recs(name, ctx.abl_images, nowcft=True), b0, rate="est_bpp")
        i1 = loss(ctx.int_recs(name, ctx.abl_images), b1, rate="est_bpp")
        ff = loss(b1, b0)
        P = PAPER_VII_HYPER_WO if kind == "hyperprior" else PAPER_VII_FACT_WO
        PW = PAPER_VI_HYPER["w"] if kind == "hyperprior" else PAPER_VI_FACT["w"]
        p0, p1 = paper_at(lam, P), paper_at(lam, PW)

        def cell(l_):
            return f"{l_[0]:+.3f} / {l_[1]:+.4f}" if l_ else "pending"
        rows.append([name, f(lam, "{:g}"), cell(w0), cell(w1),
                     f"{p0[0]:+.3f} / {p0[1]:+.3f} → {p1[0]:+.3f} / {p1[1]:+.3f}" if p0 and p1 else "–",
                     cell(i0), cell(i1), cell(ff)])
    if not rows:
        return "pending: no *-nowcft exports in the weights directory"
    return md_table(["model", "lambda", "W-only loss w/o WCFT (dB / bpp)", "W-only loss with WCFT",
                     "paper w/o → with WCFT", "integer codec loss w/o WCFT", "integer codec loss with WCFT",
                     "float WCFT vs float w/o WCFT"], rows)


def section_viii(ctx):
    rows = []
    for name, kind in ctx.models:
        if name not in ctx.weights:
            continue
        lam = ctx.lam(name)
        base = ctx.float_recs(name, ctx.abl_images)
        a_lq = loss(ctx.float_recs(name, ctx.abl_images, act=ctx.act_model(name, "lq")), base)
        a_nlq = loss(ctx.float_recs(name, ctx.abl_images, act=ctx.act_model(name)), base)
        i_lq = loss(ctx.int_recs(name, ctx.abl_images, act="lq"), base, rate="est_bpp")
        i_nlq = loss(ctx.int_recs(name, ctx.abl_images), base, rate="est_bpp")
        P0 = PAPER_VIII_HYPER_LQ if kind == "hyperprior" else PAPER_VIII_FACT_LQ
        P1 = PAPER_VI_HYPER["a"] if kind == "hyperprior" else PAPER_VI_FACT["a"]
        p0, p1 = paper_at(lam, P0), paper_at(lam, P1)

        def cell(l_):
            return f"{l_[0]:+.3f} / {l_[1]:+.4f}" if l_ else "pending"
        rows.append([name, f(lam, "{:g}"), cell(a_lq), cell(a_nlq),
                     f"{p0[0]:+.3f} / {p0[1]:+.4f} → {p1[0]:+.3f} / {p1[1]:+.4f}" if p0 else "–",
                     cell(i_lq), cell(i_nlq)])
    return md_table(["model", "lambda", "A-only loss, LQ (dB / bpp)", "A-only loss, NLQ + mux",
                     "paper LQ → NLQ", "integer codec loss, LQ activations", "integer codec loss, NLQ + mux"], rows)


def viii_note(ctx):
    """The LQ vs NLQ+mux difference measured here against the paper's (computed)."""
    diffs = []
    for name, _ in ctx.models:
        base = ctx.float_recs(name, ctx.abl_images)
        i_lq = loss(ctx.int_recs(name, ctx.abl_images, act="lq"), base, rate="est_bpp")
        i_nlq = loss(ctx.int_recs(name, ctx.abl_images), base, rate="est_bpp")
        if i_lq and i_nlq:
            diffs.append((name, i_nlq[0] - i_lq[0]))
    paper = [b - a for t0, t1 in ((PAPER_VIII_HYPER_LQ, PAPER_VI_HYPER["a"]), (PAPER_VIII_FACT_LQ, PAPER_VI_FACT["a"]))
             for a, b in zip(t0[0], t1[0])]
    if not diffs:
        return "NLQ + mux vs LQ on the integer codec: pending.\n"
    cells = ", ".join(f"{n} {d:+.3f} dB" for n, d in diffs)
    return (f"PSNR gain of NLQ + mux over LQ on the integer codec (NLQ loss minus LQ loss): {cells}. The paper's "
            f"MSE models gain {min(paper):+.3f} to {max(paper):+.3f} dB (its Table VIII against Table VI, MSE "
            "columns), the most at its highest lambdas, whose activation ranges are widest. The ReLU ranges get "
            "headroom above the calibrated maximum (docs/CALIBRATION.md), so both variants clip rarely; NLQ's "
            "finer steps near zero are what it adds.\n")


def signed_bits(lo, hi):
    b = 1
    while lo < -(1 << (b - 1)) or hi > (1 << (b - 1)) - 1:
        b += 1
    return b


def section_v(ctx):
    from fxlic.io.modelfile import load_model
    from fxlic.quant.meanreduce import mu_from_pixels
    rows = []
    for name, _ in ctx.models:
        p = ctx.int_model(name)
        if name not in ctx.weights or p is None:
            continue
        recs = [r for r in ctx.float_recs(name, ctx.images) if r and "y_max" in r]
        if not recs:
            continue
        im = load_model(p)
        ymax = np.array([r["y_max"] for r in recs])
        ymin = np.array([r["y_min"] for r in recs])
        M = ymax.shape[1]
        bits0 = np.array([signed_bits(int(ymin[:, c].min()), int(ymax[:, c].max())) for c in range(M)])
        bits1 = bits0.copy()
        mr = np.flatnonzero(im.mr_mask)
        for c in mr:
            lo = hi = 0
            for k, r in enumerate(recs):
                mu = mu_from_pixels(r["padded_sum"], r["padded_n"], int(im.mr_a_q[c]), int(im.mr_b_q[c]))
                lo, hi = min(lo, ymin[k, c] - mu), max(hi, ymax[k, c] - mu)
            bits1[c] = signed_bits(int(lo), int(hi))
        energy = np.max(np.maximum(np.abs(ymax), np.abs(ymin)), axis=0)
        top = int(np.argmax(energy))
        rows.append([name, str(len(recs)), str(int(bits0.max())), str(int(np.sum(bits0 > 8))),
                     ", ".join(str(int(c)) for c in mr) or "none",
                     "; ".join(f"ch {c}: {bits0[c]} → {bits1[c]} bit" for c in mr) or "–",
                     str(int(np.max(np.where(np.isin(np.arange(M), mr), bits1, bits0)))),
                     f"ch {top}: max abs {int(energy[top])}, mean {np.mean([r['y_mean'][top] for r in recs]):+.1f}"])
    if not rows:
        return "pending"
    return md_table(["model", "Kodak images", "max bits of y_hat (any channel)", "channels > 8 bit",
                     "mean-reduced channels (calibration)", "bits before → after mean reduction (Kodak)",
                     "max bits after", "largest channel"], rows)


def section_ix(ctx):
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
                out.append(f"* The {len(t['bpp'])} hyperprior models do not form a rising {unit} curve ({pts}): "
                           "more bits do not buy more quality between them (short, uneven training). BD values "
                           f"below use the rising part only (without {', '.join(dropped)}; the bjontegaard "
                           "interpolation needs a monotone curve); per-model differences are given as well.")
            if fl:
                r, q, _, _ = bd.compare(fl[0]["bpp"], fl[0]["q"], t["bpp"], t["q"])
                out.append(f"* hyperprior-5 integer vs float ({unit}): BD-rate "
                           f"{sgn(r, 2, 'n/a')} %, BD-{unit} {sgn(q, 3, 'n/a')} dB.")
            ahead, behind, na = [], [], []
            for c in ctx.args.codecs:  # every anchor, in the order of --codecs
                if c not in anchors:
                    continue
                a = anchors[c]
                r, _, ov, _ = bd.compare(a["bpp"], a["q"], t["bpp"], t["q"])
                pts = [f"{n} {with_unit(pr, 1, '% bits')} / {with_unit(pq, 2, 'dB')}"
                       for n, pr, pq in _point_deltas(t, a)]
                word = "n/a" if r is None else ("fewer bits than the anchor" if r < 0 else
                                                "more bits than the anchor")
                (na if r is None else ahead if r < 0 else behind).append(f"{a['label']} ({sgn(r, 1, 'n/a')} %)"
                                                                        if r is not None else a["label"])
                out.append(f"* hyperprior-5 integer vs {a['label']} ({unit}): BD-rate {sgn(r, 1, 'n/a')} % "
                           f"({word})" + (f" over {unit} {ov[0]:.2f}–{ov[1]:.2f}" if ov else "")
                           + "; per model at equal quality / equal rate: " + ", ".join(pts) + ".")
            if ahead or behind:
                out.append(f"* **Standing ({unit}, BD-rate of the integer hyperprior-5 curve):** ahead of "
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


# ---------------------------------------------------------------- the report

def write_report(ctx, command):
    rd = main_rd(ctx)
    figs = figures(ctx, rd)
    main_tab, times = section_main(ctx, rd)
    n_main = min([r["n"] for r in rd.values()] or [0])
    K = len(ctx.abl_images)
    ix_tab, ex_bits = section_ix(ctx)
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    L = []
    a = L.append
    a("# fxlic results: the paper's tables regenerated on fxlic's own models\n")
    a(f"Generated {now} by `{command}` (tools/paper_tables.py; every per-image number is cached, "
      f"rerunning it recomputes nothing that is cached). Test set: the {len(ctx.images)} Kodak images; "
      f"ablations (Tables I, VI-VIII, Lin et al.) on the first {K} ({', '.join(os.path.basename(i) for i in ctx.abl_images)}), "
      "as the captions say.\n")
    a("**Read this first.** The paper's models were trained for about 10^6 iterations on ImageNet crops; "
      "fxlic's float models were trained on a CPU budget for far fewer steps on a small training set (each "
      "model's steps and wall time are in the Models table below; docs/TRAINING.md has the data and the stages). "
      "Their absolute rate-distortion performance is far below the paper's (the Summary states the standing "
      "against every classical codec measured); what the tables can compare is the *quantization loss* "
      "(integer vs float of the same weights), which does not require well-trained weights but does depend on "
      "them: badly converged weights and activations have different ranges than the paper's.\n")
    a("Conventions: bpp of the integer models is the size of the real `.fxl` file (header, CRC and both "
      "substreams) over the pixel count; *estimated* bpp is the entropy model's -log2 p of the same symbols "
      "(the counterpart of the float model's ideal bpp, used for the loss tables so the coder's overhead is "
      "not counted as quantization loss). Float models run in float32 with y and z rounded, the ideal rate "
      "-log2 p under their own float entropy model. PSNR is RGB 8-bit, averaged over images; MS-SSIM is "
      "Wang et al. 2003 on RGB (mean over channels), averaged over images, and MS-SSIM dB = "
      "-10 log10(1 - MS-SSIM). Classical codecs: bpp of the whole file.\n")
    a("## Summary (computed)\n")
    a(section_summary(ctx, rd))
    a("")
    a("## Models\n")
    a(section_models(ctx) if ctx.meta else "No float weights found in the weights directory yet.")
    a("")
    a("Training steps: the model's own run first, then the runs it was started from, as far as the weights "
      "files' provenance records them (a run started from a training checkpoint records that checkpoint's "
      "steps only, not the runs before it; docs/TRAINING.md lists every stage).\n")
    a(f"## Rate-distortion on Kodak ({n_main} images)\n")
    a(main_tab)
    a("")
    if times:
        a(f"Integer codec time per image (numba backend, the {os.cpu_count()}-core machine of this run, "
          "parallel workers): " + "; ".join(times) + ".\n")
    a(figure_md(ctx, figs))
    a("### BD-rate / BD-PSNR (bjontegaard package, piecewise cubic 'pchip' interpolation)\n")
    a("With three hyperprior rate points the test curve is short: BD values are computed over the overlap "
      "of the two curves only (the 'overlap' column); outside it nothing is claimed. The factorized model is a "
      "single point and gets the rate difference at its own quality against the interpolated anchor.\n")
    a(section_bd(ctx, rd))
    a("Reading the table: a negative BD-rate means the integer models need fewer bits than that anchor for the "
      "same quality, a positive one more; the Summary above lists the standing against every anchor.\n")
    a("### Classical codecs (all images)\n")
    if ctx.args.skipped_codecs:
        a(f"Not measured in this run (library not installed): {', '.join(ctx.args.skipped_codecs)}.\n")
    a(section_classical(ctx))
    a("")
    a(f"## Table I: weight quantization schemes (weights only, hp5-mse-q2, first {K} Kodak images)\n")
    a("Weights-only quantization: the float forward with every conv/tconv weight replaced by its dequantized "
      "8-bit value (`QuantizedWeights.dequantize`; plain float weights, without the integer path's AT0/ST3 "
      "prescales); biases and activations float. LW = one scale factor per layer, CW = per output channel; "
      "LQ = Eq 8, NLQ = Eq 14, Lloyd = Eq 11 (layer-wise table). The paper's model is its middle-rate MSE model; "
      "ours is the WCFT export of lambda 0.0075.\n")
    a(section_table_i(ctx))
    a("")
    a("### Lin et al. [58] (Eq 31-34) as an alternative weight quantizer (weights only)\n")
    a("Per output channel: sigma = std(w), xi = alpha sigma, step s = xi x 0.0308 (optimal 8-bit uniform step "
      "of a unit Gaussian), n = -ceil(log2 s); LQ: round(w 2^n) in [-128, 127]; NLQ (Eq 34, alpha 1.5): 64 "
      "levels at 2^-n, 16 at 2^-(n-2), 48 at 2^-(n-3) per sign. Loss vs the float model (dB / bpp):\n")
    a(section_lin_all(ctx))
    a("")
    a("The paper (Fig. 9) reports that Lin et al.'s LQ gives an uneven RD curve across lambda and that its NLQ "
      "variant stays below CW-NLQ with WCFT for every lambda.\n")
    a(f"## Table VI: coding loss of weight (W), activation (A) and W+A quantization (first {K} images)\n")
    a("dPSNR (dB) / dbpp against the float model of the same weights, paired per image. W only: dequantized "
      "CW-NLQ weights, float activations. A only: float weights, every activation fake-quantized channel-wise "
      "with the calibrated exponents and mux of the integer model (NLQ after ReLU, LQ on the hyper path and HS5, "
      "y_hat - mu and z_hat saturated to 8 bits; `fxlic.eval.sim.forward_codec`). W+A: the real integer codec "
      "(its estimated bpp; the .fxl-file bpp difference is in its own column). Paper values at the same lambda "
      "(hyperprior or factorized, MSE).\n")
    a(section_vi(ctx))
    a("")
    a(f"## Table VII: WCFT gain (first {K} images)\n")
    a("The same training run exported just before the first WCFT round (`*-nowcft`) and after WCFT "
      "fine-tuning. Each loss is against the float model of the same export; the last column is what WCFT "
      "fine-tuning itself did to the float model.\n")
    a(section_vii(ctx))
    a("")
    a(f"## Table VIII: activation LQ vs NLQ with mux (first {K} images)\n")
    a("`build_int_model(act_quant='lq')` puts every main-path activation on the uniform mux-0 codebook; "
      "'nlq-mux' selects one of four NLQ codebooks per channel (Eq 24-27). A-only = activation simulation, "
      "integer codec = real bitstream (estimated bpp), both against the float model.\n")
    a(section_viii(ctx))
    a("")
    a(viii_note(ctx))
    a(f"## Table V: bit-depth of y with and without mean reduction (Kodak, {len(ctx.images)} images)\n")
    a("Bits of the two's-complement range of y_hat per channel over the Kodak images (float forward), and for "
      "the channels the integer model mean-reduces (chosen on the 9 calibration images, Eq 28-30), the range of "
      "y_hat - mu with mu = a x_mean + b computed as the integer codec does (SPEC M2). The paper: the channel "
      "with the large non-zero mean needs 9 bits (10 for its high MS-SSIM lambdas) before and 8 (9) after.\n")
    a(section_v(ctx))
    a("")
    a("Where the table shows no channel above 8 bits, the latents of these briefly trained models are small "
      "(no DC-like channel with a large mean has formed, unlike the paper's channel 135), so the calibration "
      "selects no channel for mean reduction and Eq 28-30 has nothing to do; the mechanism itself is exercised "
      "by the unit tests (tests/test_quant_misc.py) rather than by these models.\n")
    a("## Table IX: memory at 768 x 512 (MB = 10^6 bytes)\n")
    a("Per layer, for any model and image size, with row-streaming line buffers and Table X energy: "
      "`fxlic cost MODEL --size WxH` (docs/COST.md); the counts below are the same functions'.\n")
    a(ix_tab)
    a("")
    a("Counting rules. Encoder = g_a + h_a + h_s (13 layers), decoder = h_s + g_s (10 layers). Weights, "
      "weight scale factors and encoder activations reproduce the paper exactly (every layer's output counted "
      "once, as a layer-by-layer accelerator stores it). **Decoder activations:** counting every decoder layer's "
      "output gives 20,496,384 (20.496 MB); the paper's 20.251 MB is reproduced to the printed digit by leaving "
      "out the outputs of the two h_s transposed convolutions HS0 and HS1 (49,152 + 196,608 = 245,760 values): "
      "20,250,624. The same exclusion does not reproduce the paper's encoder column (19.526 vs 19.771 MB), and "
      "the paper's own fp32 decoder figure 81.99 MB = 4 x 20,496,384 counts *all* outputs, so the 8-bit "
      "decoder entry appears to use a different rule from the rest of the table; fxlic's rule is every "
      "layer's output (20.496 MB), and the rule that matches the printed value is stated above. **Activation "
      "scale factors:** Eq 38 read literally (4-bit sf_o on every output channel except AT3 / ST3, plus a 2-bit "
      "mux on the ReLU channels) gives 0.0014 / 0.0012 MB; the printed 0.0018 / 0.0014 MB are reproduced by "
      "5 bits on every output channel (2,816 and 2,307 channels).\n")
    if ex_bits:
        a("Exponent ranges of fxlic's models (bits a hardware table would need): " + "; ".join(ex_bits) + ".\n")
    a("## Table X: energy per 768 x 512 image from counted operations\n")
    a("The paper's Table X gives energy per operation (45 nm, Horowitz 2014): int8 add 0.03 / mult 0.2 pJ, "
      "int32 add 0.1 / mult 3.1, fp16 add 0.4 / mult 1.1, fp32 add 0.9 / mult 3.7; it prints no per-image "
      "total. Here: every MAC of the layer list (a tconv counted as input positions x k^2 x Cin x Cout) is one "
      "multiply and one add, plus one add per output (bias). Integer: priced as the paper's 8-bit multiply with a "
      "32-bit accumulate. Caveat: fxlic's software engine multiplies the *levels* of the 8-bit codes as int16 "
      "operands (NLQ weight levels reach 504 on a 2^-10 grid); a hardware MAC can use an 8-bit mantissa multiply "
      "plus a shift (docs/SPEC.md, architecture notes), which is what the int8 price assumes. Shifts, table "
      "look-ups, requantization compares and the entropy coder are not priced. Float: both operations in fp32 "
      "(or fp16).\n")
    a(section_x())
    a("")
    a("## What differs from the paper, and why\n")
    fewer = [n for n, r in rd.items() if r["float"] and r["int"] and r["int"].get("est_bpp")
             and r["int"]["est_bpp"] < 0.99 * r["float"]["bpp"]]
    lams = ", ".join(f"{n} (lambda {f(ctx.lam(n), '{:g}')})" for n, _ in ctx.models)
    a("* **Training budget and data.** A CPU budget and a small training set (Models table, docs/TRAINING.md) "
      "instead of 10^6 iterations on ImageNet: fxlic's float models are far from converged, so absolute PSNR / "
      "bpp (and the comparisons with the classical codecs) are not the paper's; the models are "
      f"{lams or 'none yet'}, all MSE-optimized, none for MS-SSIM.\n"
      "* **Fewer images for the ablations** (first "
      f"{K} Kodak images) because every ablation is a full-resolution float forward in NumPy "
      f"({ablation_cost(ctx)}); the main RD rows use all images.\n"
      "* **Calibration**: 9 CBSD68 images (first in name order, centre crop 512), as the paper's 'nine training "
      "images'.\n"
      "* **Integer models that need fewer bits than their float model** "
      f"({', '.join(fewer) if fewer else 'none in this run'}; more than 1 % below the float rate): Table VI "
      "separates the causes. Where neither the weights-only nor the activation-only simulation shows the drop, "
      "it comes from the rest of the integer path (weights and activations together, and the integer entropy "
      "model's table choice of SPEC E1); this was not isolated further. On these under-trained models the float "
      "entropy model is a poor fit of its own latents, so a perturbation can lower the rate; the paper's "
      "converged models show small rate *increases*.\n"
      "* **Quantization losses** depend on how the trained weights and activations are distributed; an "
      "under-trained network has a different dynamic range per channel than the paper's, so the sign and "
      "size of individual entries can differ even where the method is the same.\n")
    a("## Regenerate\n")
    a(regenerate_md(ctx))
    exported = export_results(ctx, rd, ctx.args.figures, per_image=False)
    os.makedirs(os.path.dirname(os.path.abspath(ctx.args.out)), exist_ok=True)
    with open(ctx.args.out, "w") as fh:
        fh.write("\n".join(L) + "\n")
    with open(os.path.join(ctx.args.figures, "results.json"), "w") as fh:
        json.dump({"main": rd, "images": [os.path.basename(i) for i in ctx.images]}, fh, indent=1, default=str)
    print(f"wrote {ctx.args.out}, {len(figs)} figure(s) and {len(exported)} CompressAI-layout JSON file(s) in "
          f"{os.path.join(ctx.args.figures, 'compressai')}", file=sys.stderr)


def ablation_cost(ctx):
    """Measured time of a float forward and of an integer encode + decode (this run's records)."""
    fl, it = [], []
    for n, _ in ctx.models:
        fl += [r["seconds"] for r in ctx.float_recs(n, ctx.images) if r and r.get("seconds") is not None]
        it += [r["encode_s"] + r["decode_s"] for r in ctx.int_recs(n, ctx.images) if r and "encode_s" in r]
    if not fl or not it:
        return "timings pending"
    return (f"{np.mean(fl):.1f} s per image here on average, against {np.mean(it):.1f} s for an integer "
            "encode + decode")


def figure_md(ctx, figs):
    """Markdown of the figures with their captions, paths relative to the report."""
    base = os.path.dirname(os.path.abspath(ctx.args.out))
    return "\n".join(f"![{os.path.basename(p)}]({os.path.relpath(os.path.abspath(p), base)})\n\n*{cap}*\n"
                     for p, cap in figs)


def run_note(ctx):
    """What this run measured: wall time, computed vs cached per-image results."""
    wall = time.time() - ctx.args.t_start
    if ctx.args.report_only:
        return (f"This report was rewritten from the cache ({ctx.args.cache}) with --report-only in "
                f"{wall / 60:.1f} min: nothing computed; results missing from the cache show as pending.")
    import resource
    cpu = sum(getattr(resource.getrusage(w), k) for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
              for k in ("ru_utime", "ru_stime"))
    load = os.getloadavg()[1] if hasattr(os, "getloadavg") else float("nan")
    return (f"This report's run took {wall / 60:.1f} min wall ({cpu / 60:.1f} min CPU in this process and its "
            f"workers) on a {os.cpu_count()}-core machine with --jobs {ctx.args.jobs}, 5-minute load average "
            f"{load:.1f} at the end: {ctx.computed} per-image results computed, {ctx.cached} read from the "
            f"cache ({ctx.args.cache}).")


#: the regenerate section's paragraph on dataset-scale runs (fxlic/parallel.py)
DATASET_SCALE = ('Dataset scale: `fxlic eval --images DIR` (any folder, e.g. tens of thousands of images) and '
                 '`tools/paper_tables.py` run what the cache lacks on a local process pool (`--jobs N`) or on a Dask '
                 "distributed cluster (`--scheduler tcp://host:8786` or `FXLIC_SCHEDULER`; `pip install '.[dask]'`); "
                 '`fxlic quantize --jobs N` / `--scheduler` spreads calibration the same way. The results are '
                 'identical whatever the executor (tests/test_parallel.py). Dask workers need the same fxlic and the '
                 'same paths (a shared filesystem): `fxlic eval --images /shared/imgs --scheduler tcp://host:8786 '
                 '--out /shared/rd`.')


def regenerate_md(ctx):
    return ("```\npip install '.[eval]'\n"
            "export FXLIC_KODAK=/path/to/kodak     # the 24 Kodak PNGs (or --kodak DIR)\n"
            "export FXLIC_CALIB=/path/to/CBSD68    # calibration images, for models not shipped (or --calib DIR)\n"
            "python tools/paper_tables.py --jobs 2\n```\n\n"
            "Quick check (the headline tables, the shipped models and their float models against JPEG, "
            "JPEG 2000, WebP, AVIF and HEVC intra on 6 Kodak images; quantizes nothing, needs no calibration "
            "images; writes ./paper-tables-quick/): `python tools/paper_tables.py --quick`.\n\n"
            "Inputs, each a flag or an environment variable, checked before anything runs: `--kodak` / "
            "`FXLIC_KODAK`, `--calib` / `FXLIC_CALIB`, `--weights-dir` / `FXLIC_WEIGHTS` (default tools/weights), "
            "`--cache` / `FXLIC_EVAL_CACHE` (default ~/.cache/fxlic-eval). Options: `--images N` (main RD), "
            "`--ablation-images K`, `--codecs LIST`, `--all-models` (figures: every model, not only the shipped "
            "ones), `--report-only` (rewrite from the cache). The figures directory also receives one JSON per "
            "curve in CompressAI's `eval_model` layout (`compressai/`).\n\n" + DATASET_SCALE + "\n\n"
            + run_note(ctx))


def write_quick_report(ctx, command):
    """--quick: the headline tables and figures, CompressAI-layout JSON and
    per-image CSV in --out-dir; the main table is printed too."""
    rd = main_rd(ctx)
    figs = figures(ctx, rd)
    main_tab, times = section_main(ctx, rd)
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    names = ", ".join(os.path.basename(i) for i in ctx.images)
    L = []
    a = L.append
    a("# fxlic headline results (quick run)\n")
    a(f"Generated {now} by `{command}`: the shipped models (fxlic/zoo) and their float models against "
      f"{', '.join(CODECS[c].label for c in ctx.args.codecs) or 'no classical codec'} on {len(ctx.images)} "
      f"Kodak image(s) spread over the set ({names}). A subset: averages move with the images chosen; the "
      "full report (`python tools/paper_tables.py`, docs/RESULTS.md) uses all 24 images and adds the "
      "ablations of the paper's tables.\n")
    if ctx.args.skipped_codecs:
        a(f"Not measured (library not installed): {', '.join(ctx.args.skipped_codecs)}.\n")
    a("Conventions: integer bpp is the size of the real `.fxl` file over the pixel count (*estimate*: the entropy "
      "model's -log2 p); float models: float32 forward, ideal bpp; classical codecs: the whole file. PSNR is RGB "
      "8-bit, MS-SSIM dB = -10 log10(1 - MS-SSIM), both averaged over the images.\n")
    a("## Summary (computed)\n")
    a(section_summary(ctx, rd))
    a("")
    a(f"## Rate-distortion ({len(ctx.images)} Kodak images)\n")
    a(main_tab)
    a("")
    if times:
        a("Integer codec time per image: " + "; ".join(times) + ".\n")
    a(figure_md(ctx, figs))
    a("## BD-rate / BD-quality (bjontegaard, pchip)\n")
    a(section_bd(ctx, rd))
    a("## Classical codecs\n")
    a(section_classical(ctx))
    a("")
    out_dir = os.path.dirname(os.path.abspath(ctx.args.out))
    exported = export_results(ctx, rd, out_dir, per_image=True)
    a("## Files\n")
    a("`per_image.csv` (every image of every rate point) and `compressai/*.json` (one file per curve in "
      "CompressAI's `eval_model` layout, to overlay with `python -m compressai.utils.plot` or published "
      "CompressAI results).\n")
    a(run_note(ctx))
    os.makedirs(out_dir, exist_ok=True)
    with open(ctx.args.out, "w") as fh:
        fh.write("\n".join(L) + "\n")
    with open(os.path.join(ctx.args.figures, "results.json"), "w") as fh:
        json.dump({"main": rd, "images": [os.path.basename(i) for i in ctx.images]}, fh, indent=1, default=str)
    print(main_tab)
    print()
    print(section_summary(ctx, rd))
    print(f"\nwrote {ctx.args.out}, {len(figs)} figure(s), per_image.csv and {len(exported)} CompressAI-layout "
          f"JSON file(s) in {out_dir}", file=sys.stderr)


def compute_quick(ctx):
    """Every task of the headline tables in one pool and one progress bar."""
    ctx.planning = True
    for n, _ in ctx.models:
        ctx.float_recs(n, ctx.images)
        ctx.int_recs(n, ctx.images)
    for c in ctx.args.codecs:
        ctx.classical(c, ctx.images)
    ctx.flush(f"quick: {len(ctx.images)} Kodak image(s)")
    ctx.planning = False


def build_specs(ctx):
    """The integer models compute_all builds: [(name, nowcft, variants)]."""
    names = [n for n, _ in ctx.models if n in ctx.weights]
    return [(n, False, [("cw-nlq", "nlq-mux", True), ("cw-nlq", "lq", True)]) for n in names] + \
        [(n, True, [("cw-nlq", "nlq-mux", True)]) for n in names if n in ctx.nowcft]


def _makedirs(path, what):
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as e:
        raise CliError(f"{what} {path}: cannot create ({e.strerror})") from None


def check_inputs(args):
    """Every input path, before anything runs; returns the test images."""
    from fxlic.io.images import ImageError, list_images
    if not args.kodak:
        raise CliError("no Kodak images: pass --kodak DIR or set FXLIC_KODAK (the directory of the 24 Kodak PNGs)")
    try:
        every = list_images(args.kodak)
    except ImageError as e:
        raise CliError(f"--kodak: {e} (pass --kodak DIR or set FXLIC_KODAK)") from None
    n = args.images if args.images is not None else (QUICK_IMAGES if args.quick else 24)
    if n < 1 or args.ablation_images < 1:
        raise CliError("--images and --ablation-images must be at least 1")
    if args.jobs < 1:
        raise CliError("--jobs must be at least 1")
    if not os.path.isdir(args.weights_dir) and (args.weights_explicit or not args.quick):
        raise CliError(f"--weights-dir {args.weights_dir}: no such directory (or set FXLIC_WEIGHTS)")
    _makedirs(args.cache, "--cache")
    _makedirs(os.path.dirname(os.path.abspath(args.out)), "--out: directory")
    _makedirs(args.figures, "--figures")
    return spread(every, n) if args.quick else every[:n]


def check_calib(ctx):
    """Full run: calibration images are needed only for models still to quantize."""
    from fxlic.io.images import ImageError, list_images
    missing = ctx.missing_models(build_specs(ctx))
    if not missing:
        return
    why = f"{len(missing)} integer model(s) are neither shipped nor in the cache and must be quantized"
    if not ctx.args.calib:
        raise CliError(f"{why}: pass --calib DIR or set FXLIC_CALIB (calibration images, e.g. CBSD68)")
    try:
        list_images(ctx.args.calib)
    except ImageError as e:
        raise CliError(f"--calib: {e} ({why}; pass --calib DIR or set FXLIC_CALIB)") from None


def parse_args(argv=None):
    shared = os.path.join(os.path.dirname(REPO), "shared", "data")

    def fallback(env, path):
        return os.environ.get(env) or (path if os.path.isdir(path) else None)
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true",
                   help=f"the headline tables only: shipped models, their float models, "
                        f"{QUICK_CODECS.replace(',', ', ')} on {QUICK_IMAGES} Kodak images (minutes)")
    p.add_argument("--weights-dir", default=None,
                   help="float models (default $FXLIC_WEIGHTS or tools/weights)")
    p.add_argument("--kodak", default=fallback("FXLIC_KODAK", os.path.join(shared, "kodak")),
                   help="the Kodak images (default $FXLIC_KODAK)")
    p.add_argument("--calib", default=fallback("FXLIC_CALIB", os.path.join(shared, "train", "CBSD68")),
                   help="calibration images for models quantized here (default $FXLIC_CALIB)")
    p.add_argument("--images", type=int, default=None,
                   help=f"Kodak images for the main RD (default 24; --quick: {QUICK_IMAGES}, spread over the set)")
    p.add_argument("--ablation-images", type=int, default=6, help="images for the ablations (default 6)")
    p.add_argument("--codecs", default=None, help=f"classical codecs (default {DEFAULT_CODECS}; "
                                                  f"--quick: {QUICK_CODECS})")
    p.add_argument("--cache", default=default_dir(), help="result cache (default $FXLIC_EVAL_CACHE or "
                                                          "~/.cache/fxlic-eval)")
    p.add_argument("--jobs", type=int, default=None, help="worker processes (default 1; --quick: the CPU count, "
                                                          "at most 8)")
    p.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="run evaluations and calibrations on a Dask distributed cluster, e.g. tcp://host:8786 "
                        "(default $FXLIC_SCHEDULER; pip install '.[dask]'; the workers must see the same "
                        "paths); results are identical to a local run")
    p.add_argument("--out", default=None, help="the report (default docs/RESULTS.md; --quick: "
                                               "OUT_DIR/RESULTS-quick.md)")
    p.add_argument("--figures", default=None, help="figures directory (default docs/figures; --quick: "
                                                   "OUT_DIR/figures)")
    p.add_argument("--out-dir", default="paper-tables-quick", help="--quick: where everything goes "
                                                                   "(default ./paper-tables-quick)")
    p.add_argument("--all-models", action="store_true", help="figures: every model, not only the shipped ones")
    p.add_argument("--report-only", action="store_true", help="no computation: report what the cache has")
    p.add_argument("-q", "--quiet", action="store_true")
    args = p.parse_args(argv)
    args.weights_explicit = bool(args.weights_dir or os.environ.get("FXLIC_WEIGHTS"))
    args.weights_dir = args.weights_dir or os.environ.get("FXLIC_WEIGHTS") or os.path.join(REPO, "tools", "weights")
    if args.scheduler or os.environ.get(SCHEDULER_ENV):  # Dask workers open the paths on their own machines
        for k in ("kodak", "calib", "weights_dir", "cache"):
            if getattr(args, k):
                setattr(args, k, os.path.abspath(getattr(args, k)))
    if args.jobs is None:
        args.jobs = max(1, min(8, os.cpu_count() or 1)) if args.quick else 1
    if args.quick:
        args.out = args.out or os.path.join(args.out_dir, "RESULTS-quick.md")
        args.figures = args.figures or os.path.join(args.out_dir, "figures")
    else:
        args.out = args.out or os.path.join(REPO, "docs", "RESULTS.md")
        args.figures = args.figures or os.path.join(REPO, "docs", "figures")
    codecs = args.codecs if args.codecs is not None else (QUICK_CODECS if args.quick else DEFAULT_CODECS)
    args.codecs = [c.strip() for c in codecs.split(",") if c.strip()]
    bad = [c for c in args.codecs if c not in CODECS]
    if bad:
        raise CliError(f"unknown codec(s) {', '.join(bad)}; choose from {', '.join(CODECS)}")
    return args


def command_line(args):
    cmd = "python tools/paper_tables.py" + (" --quick" if args.quick else "")
    default_n = QUICK_IMAGES if args.quick else 24
    if args.images is not None and args.images != default_n:
        cmd += f" --images {args.images}"
    if not args.quick and args.ablation_images != 6:
        cmd += f" --ablation-images {args.ablation_images}"
    return cmd


def _main(argv=None):
    t_start = time.time()
    args = parse_args(argv)
    args.t_start = t_start
    images = check_inputs(args)
    args.skipped_codecs = []
    if not args.report_only:
        ok = {c: available(c) for c in args.codecs}
        args.skipped_codecs = [c for c in args.codecs if not ok[c]]
        args.codecs = [c for c in args.codecs if ok[c]]
        if args.skipped_codecs:
            print(f"paper_tables: codec(s) {', '.join(args.skipped_codecs)} not installed, left out of the "
                  "report (pip install '.[eval]' installs them)", file=sys.stderr)
    ctx = Ctx(args, images)
    try:
        return _run(ctx, args)
    finally:
        if not isinstance(ctx.jobs, int):
            ctx.jobs.close()


def _run(ctx, args):
    if args.quick:
        if not ctx.models:
            raise CliError("no shipped model in fxlic/zoo to evaluate")
        missing = [n for n, _ in ctx.models if n not in ctx.weights]
        if missing:
            print(f"paper_tables: note: no float weights found for {', '.join(missing)} (looked in "
                  f"{args.weights_dir} and fxlic/zoo); integer results only", file=sys.stderr)
        if not args.report_only:
            compute_quick(ctx)
        write_quick_report(ctx, command_line(args))
        return 0
    if not args.report_only:
        check_calib(ctx)
        compute_all(ctx)
    write_report(ctx, command_line(args))
    return 0


def main(argv=None):
    try:
        return _main(argv)
    except CliError as e:
        print(f"paper_tables: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
