"""Per-image evaluation with a cache, on any executor of fxlic.parallel
(serial, a local process pool, a Dask cluster).

A *task* is a small dict naming what to run on one image:

  {"kind": "classical", "codec": "jpeg", "q": 50, "image": PATH}
  {"kind": "int", "model": MODEL.fxq, "image": PATH}
        real .fxl bitstream through fxlic.codec (numba backend): bpp from the
        stream size, est_bpp from the entropy model's estimate, encode/decode s
  {"kind": "float", "weights": W.safetensors, "image": PATH,
   "wq": None | one of sim.WEIGHT_VARIANTS, "act": None | MODEL.fxq,
   "latents": "integer" (default) | "offset"}
        the float model as a codec (ideal bpp), optionally with weights-only
        quantization (wq) and/or activations fake-quantized with the exponents
        and mux of the integer model ``act``; ``latents="offset"`` runs it with
        CompressAI's y_hat = mean + round(y - mean) (SPEC O5; float only), the
        reference of an offset-latent integer model

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
        if t.get("latents", "integer") != "integer":  # integer-latent keys stay as they were
            parts.update(latents=t["latents"])
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
        out, bpp, ystats = forward_codec(fm, px, act, im, engine=_engine(),
                                         latents=task.get("latents", "integer"))
        from ..model.int_forward import pad_to_multiple
        padded = pad_to_multiple(px, fm.arch.pad_multiple)
        rec.update(bpp=bpp, seconds=time.perf_counter() - t0, padded_sum=int(padded.astype(np.int64).sum()),
                   padded_n=int(padded.size), **(ystats or {}))
        rec.update(_quality(px, out))
    else:
        raise ValueError(kind)
    return rec


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


#: with ``jobs=None`` a pool is started only for work estimated to take
#: longer than this in one process (spawning workers costs seconds)
POOL_MIN_SECONDS = 5.0
_REF_PIXELS = 768 * 512


@lru_cache(maxsize=None)
def _pixels(path: str) -> int:
    from PIL import Image
    try:
        with Image.open(path) as im:
            return im.size[0] * im.size[1]
    except (OSError, ValueError):
        return _REF_PIXELS  # run_task reports it


def worth_a_pool(tasks) -> bool:
    """Whether ``tasks`` would take more than POOL_MIN_SECONDS in one process
    (task_cost scaled by each image's pixel count)."""
    total = 0.0
    for t in tasks:
        total += task_cost(t) * _pixels(t["image"]) / _REF_PIXELS
        if total >= POOL_MIN_SECONDS:
            return True
    return False


def evaluate(tasks: list, cache: Cache, jobs=1, progress: bool = True, desc: str = "eval",
             compute: bool = True, keep_going: bool = False, scheduler: str = None) -> list:
    """Records of ``tasks`` (same order), computing only the cache misses.
    ``jobs``: an fxlic.parallel.Executor (kept open), or the worker count of
    a local pool (None: one per CPU for work worth it, ``worth_a_pool``;
    1: in this process) unless
    ``scheduler`` (or $FXLIC_SCHEDULER) names a Dask scheduler; the records
    do not depend on which.  ``compute=False`` returns None for every miss
    (report from the cache only); with ``keep_going`` a failing task is
    reported and left None.  The progress bar (stderr) is weighted by
    ``task_cost`` so that its ETA holds when float forwards and JPEG encodes
    are mixed."""
    from ..parallel import SCHEDULER_ENV, Executor, make_executor
    keys = [task_key(t) for t in tasks]
    out = [cache.get(k) for k in keys]
    todo = [i for i, r in enumerate(out) if r is None]
    if not todo or not compute:
        return out
    todo.sort(key=lambda i: -task_cost(tasks[i]))  # longest first: a shorter tail with a pool
    own = not isinstance(jobs, Executor)
    if own and jobs is None and not (scheduler or os.environ.get(SCHEDULER_ENV)) \
            and not worth_a_pool([tasks[i] for i in todo]):
        jobs = 1
    ex = make_executor(jobs, scheduler, len(todo)) if own else jobs
    from tqdm import tqdm
    weight = {i: task_cost(tasks[i]) for i in todo}
    where = "" if ex.describe() == "serial" else f" [{ex.describe()}]"
    bar = tqdm(total=sum(weight.values()), desc=f"{desc} 0/{len(todo)}{where}", file=sys.stderr,
               disable=not progress, dynamic_ncols=True,
               bar_format="{desc}: {percentage:3.0f}%|{bar}| [{elapsed} elapsed, ETA {remaining}]")
    done = 0
    try:
        for j, result in ex.results(run_task, [tasks[i] for i in todo]):
            i = todo[j]
            try:  # with keep_going, one failed task is reported and does not lose the rest
                out[i] = result()
                cache.put(keys[i], out[i])
            except Exception as e:  # noqa: BLE001
                if not keep_going:
                    raise
                print(f"eval: {tasks[i]} failed: {type(e).__name__}: {e}", file=sys.stderr)
            done += 1
            bar.set_description_str(f"{desc} {done}/{len(todo)}{where}", refresh=False)
            bar.update(weight[i])
    finally:
        bar.close()
        if own:
            ex.close()
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
