"""Per-image evaluation with a cache and an optional process pool.

A *task* is a small dict naming what to run on one image:

  {"kind": "classical", "codec": "jpeg", "q": 50, "image": PATH}
  {"kind": "int", "model": MODEL.fxq, "image": PATH}
        real .fxl bitstream through fxlic.codec (numba backend): bpp from the
        stream size, est_bpp from the entropy model's estimate, encode/decode s
  {"kind": "float", "weights": W.safetensors, "image": PATH,
   "wq": None | one of sim.WEIGHT_VARIANTS, "act": None | MODEL.fxq}
        the float model as a codec (ideal bpp), optionally with weights-only
        quantization (wq) and/or activations fake-quantized with the exponents
        and mux of the integer model ``act``

Each task gives a record {"image", "bpp", "psnr", "msssim", ...}; records are
cached under a key made of the content hash of every file the task reads
(image, weights, model), the codec settings and the library version.
"""
from __future__ import annotations

import math
import os
import sys
import time
from functools import lru_cache

import numpy as np

from .cache import Cache, file_digest, make_key


@lru_cache(maxsize=None)
def _digest(path: str) -> str:
    return file_digest(path)


def task_key(task: dict) -> str:
    t = dict(task)
    img = t.pop("image")
    parts = {"image": os.path.basename(img), "image_sha": _digest(img)}
    kind = t["kind"]
    if kind == "classical":
        from .codecs import CODECS, library_version
        parts.update(kind=kind, codec=t["codec"], q=t["q"], lib=library_version(CODECS[t["codec"]].library))
    elif kind == "int":
        # the model's content hash (not the file's): a shipped .fxq and a local
        # re-quantization with the same integers share their results
        parts.update(kind=kind, model_content=_content_hash(t["model"]), backend="numba")
    elif kind == "float":
        parts.update(kind=kind, weights_sha=_digest(t["weights"]), wq=t.get("wq"),
                     act_model=_content_hash(t["act"]) if t.get("act") else None, precision="float32",
                     engine=_engine())
    else:
        raise ValueError(f"unknown task kind {kind!r}")
    return make_key(**parts)


# ---------------------------------------------------------------- workers

@lru_cache(maxsize=None)
def _content_hash(path: str) -> str:
    from ..io.modelfile import read_model_file
    return read_model_file(path)[1]["content_hash"]


@lru_cache(maxsize=1)
def _engine() -> str:
    from .sim import float_engine
    return float_engine()


@lru_cache(maxsize=8)
def _image(path: str) -> np.ndarray:
    from ..io.images import read_image
    return read_image(path)


@lru_cache(maxsize=4)
def _int_model(path: str):
    from ..io.modelfile import load_model
    return load_model(path)


@lru_cache(maxsize=8)
def _float_model(path: str, wq):
    from ..io.floatfile import load_weights
    from .sim import weights_only
    fm = load_weights(path)
    return weights_only(fm, wq) if wq else fm


def _quality(px: np.ndarray, rec: np.ndarray) -> dict:
    from ..metrics import ms_ssim, psnr
    return {"psnr": psnr(px, rec), "msssim": ms_ssim(px, rec)}


def run_task(task: dict) -> dict:
    """Compute one task's record (no cache)."""
    px = _image(task["image"])
    npix = px.shape[1] * px.shape[2]
    rec = {"image": os.path.basename(task["image"]), "kind": task["kind"]}
    kind = task["kind"]
    if kind == "classical":
        from .codecs import CODECS
        c = CODECS[task["codec"]]
        hwc = np.ascontiguousarray(px.transpose(1, 2, 0))
        t0 = time.perf_counter()
        data = c.encode(hwc, task["q"])
        t1 = time.perf_counter()
        out = c.decode(data).transpose(2, 0, 1)
        t2 = time.perf_counter()
        rec.update(bytes=len(data), bpp=8.0 * len(data) / npix, seconds=t2 - t0, encode_s=t1 - t0,
                   decode_s=t2 - t1)
        rec.update(_quality(px, out))
    elif kind == "int":
        from ..codec import compress, decompress
        model = _int_model(task["model"])
        t0 = time.perf_counter()
        data, st = compress(model, px, "numba")
        t1 = time.perf_counter()
        out = decompress(model, data, "numba")
        t2 = time.perf_counter()
        rec.update(bytes=len(data), bpp=8.0 * len(data) / npix, est_bpp=st.estimated_bits / npix,
                   bytes_z=st.bytes_z, bytes_y=st.bytes_y, encode_s=t1 - t0, decode_s=t2 - t1)
        rec.update(_quality(px, out))
    elif kind == "float":
        from .sim import activation_params, forward_codec
        fm = _float_model(task["weights"], task.get("wq"))
        act = im = None
        if task.get("act"):
            im = _int_model(task["act"])
            act = activation_params(im)
        t0 = time.perf_counter()
        out, bpp, ystats = forward_codec(fm, px, act, im, engine=_engine())
        from ..model.int_forward import pad_to_multiple
        padded = pad_to_multiple(px, fm.arch.pad_multiple)
        rec.update(bpp=bpp, seconds=time.perf_counter() - t0, padded_sum=int(padded.astype(np.int64).sum()),
                   padded_n=int(padded.size), **(ystats or {}))
        rec.update(_quality(px, out))
    else:
        raise ValueError(kind)
    return rec


def _init_worker():
    for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
        os.environ[v] = "1"


#: rough cost of one task on a 768 x 512 image in seconds (measured on the
#: development machine, metrics included), used only to weight the progress
#: bar and its ETA and to start the long tasks first; no result depends on it
CLASSICAL_COST = {"jpeg": 0.4, "jpeg444": 0.4, "jpeg2000": 0.6, "webp": 0.5, "avif": 1.0, "jpegxl": 1.0,
                  "hevc": 2.0}


def task_cost(task: dict) -> float:
    kind = task["kind"]
    if kind == "float":
        return 9.0 + (2.0 if task.get("act") else 0.0) + (1.0 if task.get("wq") else 0.0)
    if kind == "int":
        return 3.0
    return CLASSICAL_COST.get(task.get("codec"), 1.0)


def evaluate(tasks: list, cache: Cache, jobs: int = 1, progress: bool = True, desc: str = "eval",
             compute: bool = True, keep_going: bool = False) -> list:
    """Records of ``tasks`` (same order), computing only the cache misses,
    with ``jobs`` worker processes (1: in this process).  ``compute=False``
    returns None for every miss (report from the cache only); with
    ``keep_going`` a failing task is reported and left None.  The progress
    bar (stderr) is weighted by ``task_cost`` so that its ETA holds when
    float forwards and JPEG encodes are mixed."""
    keys = [task_key(t) for t in tasks]
    out = [cache.get(k) for k in keys]
    todo = [i for i, r in enumerate(out) if r is None]
    if not todo or not compute:
        return out
    todo.sort(key=lambda i: -task_cost(tasks[i]))  # longest first: a shorter tail with a pool
    from tqdm import tqdm
    weight = {i: task_cost(tasks[i]) for i in todo}
    bar = tqdm(total=sum(weight.values()), desc=f"{desc} 0/{len(todo)}", file=sys.stderr, disable=not progress,
               dynamic_ncols=True, bar_format="{desc}: {percentage:3.0f}%|{bar}| [{elapsed} elapsed, ETA {remaining}]")
    done = [0]

    def finish(i, result):
        """Store task i's result (``result()`` runs or collects it); with
        keep_going, one failed task is reported and does not lose the rest."""
        try:
            out[i] = result()
            cache.put(keys[i], out[i])
        except Exception as e:  # noqa: BLE001
            if not keep_going:
                raise
            print(f"eval: {tasks[i]} failed: {type(e).__name__}: {e}", file=sys.stderr)
        done[0] += 1
        bar.set_description_str(f"{desc} {done[0]}/{len(todo)}", refresh=False)
        bar.update(weight[i])

    try:
        if jobs <= 1:
            for i in todo:
                finish(i, lambda: run_task(tasks[i]))
        else:
            import multiprocessing as mp
            from concurrent.futures import ProcessPoolExecutor, as_completed
            saved = {v: os.environ.get(v) for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                                                    "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")}
            _init_worker()  # spawn children inherit the environment
            try:
                with ProcessPoolExecutor(jobs, mp_context=mp.get_context("spawn")) as ex:
                    futs = {ex.submit(run_task, tasks[i]): i for i in todo}
                    for f in as_completed(futs):
                        finish(futs[f], f.result)
            finally:
                for v, val in saved.items():
                    if val is None:
                        os.environ.pop(v, None)
                    else:
                        os.environ[v] = val
    finally:
        bar.close()
    return out


def msssim_db(v) -> float:
    """MS-SSIM in dB, -10 log10(1 - MS-SSIM) (the paper's Fig. 8 / Table VI unit)."""
    if v is None:
        return float("nan")
    return float("inf") if v >= 1 else -10.0 * math.log10(1.0 - v)


def summarize(records: list) -> dict:
    """Mean over images of bpp, PSNR, MS-SSIM (and est_bpp when present).
    PSNR is the mean of the per-image PSNRs (the usual Kodak convention)."""
    recs = [r for r in records if r is not None]
    if not recs:
        return {"n": 0}
    s = {"n": len(recs)}
    for k in ("bpp", "est_bpp", "psnr", "msssim", "encode_s", "decode_s", "seconds"):
        vals = [r[k] for r in recs if r.get(k) is not None]
        if len(vals) == len(recs):
            s[k] = float(np.mean(vals))
    if "msssim" in s:
        s["msssim_db"] = msssim_db(s["msssim"])
    return s
