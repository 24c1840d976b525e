"""What one run of tools/paper_tables.py evaluates and where its results come
from: the models (shipped .fxq and float weights), their integer variants
(quantized into the cache when not shipped), and ``Ctx``, through which every
table asks for per-image records (cached; ``planning`` collects the tasks of a
step so that they run in one pool, fxlic.parallel)."""
from __future__ import annotations

import os
import sys

from ..cache import Cache
from ..codecs import CODECS
from ..runner import evaluate
from ...parallel import SCHEDULER_ENV, DaskExecutor


#: (name, label): the preferred order; every other model with weights in
#: --weights-dir is evaluated too (after these)
MODELS = [("hp5-mse-q0", "hyperprior"), ("hp5-mse-q1", "hyperprior"), ("hp5-mse-q2", "hyperprior"),
          ("hp5-mse-q3", "hyperprior"), ("fact-mse-q1", "factorized")]


#: the hyperprior RD set when no hyperprior model is shipped (the paper's three
#: N=128 MSE lambdas); otherwise the shipped hyperprior models form the curve
HP5 = ["hp5-mse-q0", "hp5-mse-q1", "hp5-mse-q2"]


TABLE_I_VARIANTS = ["lw-lq", "lw-nlq", "lloyd", "cw-lq", "cw-nlq"]


LIN_VARIANTS = ["lin-lq", "lin-nlq"]


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
    """One run of the report: its options (``args``), test and ablation images, the models
    evaluated with their metadata, the result cache and the executor.  The tables ask it
    for per-image records (``int_recs``, ``float_recs``, ``classical``): computed and
    cached unless --report-only, or collected while ``planning`` and run by ``flush``."""

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
        self._latents = {}  # .fxq path -> its latent rule
        self.planning = False
        self.pending = []
        self.computed = 0  # per-image results computed in this run
        self.cached = 0  # and found in the cache
        self.seen = set()  # task keys already counted

    def lam(self, name):
        """The model's training lambda (None if unknown)."""
        return self.meta.get(name, {}).get("lambda")

    def kind(self, name):
        """The model's architecture kind (hyperprior / factorized)."""
        return dict(self.models).get(name)

    def is_shipped(self, name):
        """True when the model's integer model is a shipped fxlic/zoo file."""
        from fxlic.io.modelfile import ZOO_DIR
        p = self.int_model(name)
        return p is not None and os.path.dirname(os.path.abspath(p)) == os.path.abspath(ZOO_DIR)

    def run(self, tasks, desc):
        """The records of ``tasks`` (None where missing); while planning, the tasks are kept for flush."""
        if self.planning:  # collect now, compute in one pool with flush()
            self.pending += tasks
            return [None] * len(tasks)
        return evaluate(tasks, self.cache, self.jobs, not self.args.quiet, desc, compute=self.compute)

    def flush(self, desc):
        """Run the collected tasks in one pool (one progress bar), counting computed vs cached."""
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
        """The .fxq of a model's integer variant: the shipped file for the default variant,
        else the one quantized into the cache; None when not built."""
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
        """Integer codec records (real .fxl bitstreams) of a model variant (``int_model``'s options)."""
        p = self.int_model(name, **kw)
        if p is None:
            return [None] * len(images)
        return self.run([{"kind": "int", "model": p, "image": i} for i in images], desc or f"int {name}")

    def float_recs(self, name, images, wq=None, act=None, nowcft=False, desc=None, latents="integer"):
        """Float model records, optionally with quantized weights (``wq``) or activations
        (``act``: the .fxq whose activation parameters are simulated; MISSING if not built);
        ``latents``: the rounding rule of y and z ("offset": SPEC O5, float only)."""
        w = (self.nowcft if nowcft else self.weights).get(name)
        if w is None or act is MISSING:
            return [None] * len(images)
        tasks = [{"kind": "float", "weights": w, "image": i, "wq": wq, "act": act} for i in images]
        if latents != "integer":
            for t in tasks:
                t["latents"] = latents
        return self.run(tasks, desc or f"float {name} {wq or ''} {'A' if act else ''}".strip())

    def own_float_recs(self, name, images, nowcft=False, **int_kw):
        """The float records an integer variant (``int_model``'s options) is compared with:
        the float model under that integer model's latent rule (SPEC O5: an offset-latent
        model codes round(y - mean), so its float reference does too)."""
        return self.float_recs(name, images, nowcft=nowcft,
                               latents=self.latents(self.int_model(name, nowcft=nowcft, **int_kw)))

    def latents(self, path):
        """"offset" or "integer": the latent rule of the .fxq at ``path`` (integer if None)."""
        if path is None:
            return "integer"
        if path not in self._latents:
            from fxlic.io.modelfile import read_model_file
            self._latents[path] = read_model_file(path)[0].latents
        return self._latents[path]

    def classical(self, name, images):
        """[(quality, records)] of a classical codec over its quality sweep."""
        c = CODECS[name]
        tasks = [{"kind": "classical", "codec": name, "q": q, "image": i} for q in c.qualities for i in images]
        recs = self.run(tasks, name)
        n = len(images)
        return [(q, recs[k * n:(k + 1) * n]) for k, q in enumerate(c.qualities)]
