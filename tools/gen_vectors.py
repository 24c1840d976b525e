#!/usr/bin/env python3
"""Generate the committed conformance suite ``vectors/`` (docs/VECTORS.md).

    python tools/gen_vectors.py                 # rewrite vectors/ in place
    python tools/gen_vectors.py --out /tmp/v    # somewhere else (inputs still read from vectors/)
    python tools/gen_vectors.py --rebuild-model # rebuild the small random model (changes every file)

The suite is a pure function of its inputs, so regenerating gives byte-identical
files (tests/test_vectors_suite.py checks it):

* ``vectors/models/rand16/model.fxq`` -- a small random hyperprior (N = M = 16)
  built once by this script (``--rebuild-model``) and kept: its float build
  (random weights, float calibration, entropy tables) is not guaranteed
  bit-identical across BLAS/SciPy builds, the integer model is;
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
from fxlic.vectors.writer import MEM_CATEGORIES, Options, write_case, write_model_dir  # noqa: E402

DEFAULT_OUT = os.path.join(REPO, "vectors")
DEFAULT_KODAK = os.path.join(os.path.dirname(REPO), "shared", "data", "kodak")
SMALL = "rand16"
SMALL_SEED = 16
KODAK_CROP = "images/kodim23_crop256.png"
#: the whole suite should stay below this (sum of file sizes)
BUDGET_BYTES = 30_000_000


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
    from fxlic.model.float_model import float_forward, random_float_model

    fm = random_float_model(hyperprior5(16), SMALL_SEED)
    cal = [synthetic_image(64, 64, 100 + k, offset=40 * k - 100) for k in range(6)]
    ys = np.concatenate([float_forward(fm, im / 255.0, names=["AT0", "AT1", "AT2", "AT3"])["AT3"].reshape(-1)
                         for im in cal])
    f = 6.0 / max(float(np.std(ys)), 1e-9)
    fm.weights["AT3"] = fm.weights["AT3"] * f
    fm.biases["AT3"] = fm.biases["AT3"] * f
    fm.biases["AT3"][[1, 6]] += [160.0, -150.0]
    zs = np.concatenate([float_forward(fm, im / 255.0)["HA2"].reshape(-1) for im in cal])
    g = 2.5 / max(float(np.std(zs)), 1e-9)
    fm.weights["HA2"] = fm.weights["HA2"] * g
    fm.biases["HA2"] = fm.biases["HA2"] * g
    im = build_int_model(fm, calibrate(fm, cal))
    im.meta["source"] = (f"tools/gen_vectors.py: random_float_model(hyperprior5(16), {SMALL_SEED}), "
                         f"AT3 x{f:.4g} (+160/-150 on channels 1, 6), HA2 x{g:.4g}")
    save_model(im, path)
    return im


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
    cases = [(SMALL, "img64", everything, "everything: every tensor in .npy and .mem"),
             (SMALL, "img65x47", lean, "odd size: every layer, no decode tables, inputs as aliases"),
             (SMALL, "kodim23_crop256", Options(mem=frozenset({"entropy"}), acc=False, inputs=False,
                                                dec_tables=False),
              "real image: every layer's output codes (.npy), no accumulators")]
    for i, (name, _) in enumerate(zoo):
        if i == 0:
            cases += [(name, "img64", npy_acc, "default shipped model: every layer (accumulators in .npy only)"),
                      (name, "img65x47", io_only, "default shipped model, odd size: no per-layer tensors"),
                      (name, "kodim23_crop256", io_only, "default shipped model: no per-layer tensors")]
        else:
            cases.append((name, "img64", io_only, "shipped model: no per-layer tensors, no model "
                                                  "directory (weights: fxlic/zoo/NAME.fxq)"))
    return cases


def generate(out: str, source: str, kodak_dir: str, zoo_dir=None, rebuild_model=False,
             quick=False, log=print) -> dict:
    """Write the suite to ``out`` (replacing it).  ``quick``: only the small
    model's cases and the units (for fast checks).  Returns the suite manifest."""
    from fxlic.io.modelfile import load_model, model_hash
    from fxlic.io.images import read_image
    from fxlic.vectors.units import write_units

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
        zoo = [] if quick else zoo_models(zoo_dir)
        for name, path in zoo:
            models[name] = load_model(path)
        model_info = {}
        default_zoo = zoo[0][0] if zoo else None
        for name, m in models.items():
            mdir = os.path.join(tmp, "models", name)
            if name not in (SMALL, default_zoo):
                model_info[name] = {"dir": None, "hash": model_hash(m), "source": f"fxlic/zoo/{name}.fxq",
                                    "architecture": m.arch.name}
                continue
            if name == SMALL:
                man = write_model_dir(m, mdir, Options(), name, files={"model.fxq": small_fxq},
                                      extra={"source": "generated by tools/gen_vectors.py (model.fxq kept)"})
            else:
                man = write_model_dir(m, mdir, Options(mem=frozenset({"params"})), name,
                                      extra={"source": f"fxlic/zoo/{name}.fxq"})
            model_info[name] = {"dir": f"models/{name}", "hash": model_hash(m), "source": man["source"],
                                "architecture": m.arch.name}
            log(f"model {name}: {m.arch.name}")

        # ---- cases
        cases = []
        for mname, iname, opts, note in plan(zoo):
            if iname not in images:
                continue
            cdir = os.path.join(tmp, "cases", mname, iname)
            mrel = _rel(os.path.join(tmp, "models", mname), cdir) if model_info[mname]["dir"] else ""
            man = write_case(models[mname], images[iname], cdir, opts, model_dir=mrel, model_name=mname,
                             image_name=iname, extra={"note": note})
            cases.append({"dir": f"cases/{mname}/{iname}", "model": mname, "image": iname, "note": note,
                          "size": [man["image"]["width"], man["image"]["height"]],
                          "stream_bytes": man["stream"]["bytes"]})
            log(f"case {mname}/{iname}: {len(man['files'])} files")

        # ---- units
        units = write_units(os.path.join(tmp, "units"), models[SMALL])
        log(f"units: {len(units)}")

        # ---- suite manifest
        total, nfiles, digests = 0, 0, {}
        for dp, dn, fn in os.walk(tmp):
            dn.sort()
            for n in sorted(fn):
                p = os.path.join(dp, n)
                total += os.path.getsize(p)
                nfiles += 1
                if n == "manifest.json":
                    with open(p, "rb") as f:
                        digests[_rel(p, tmp)] = sha256_hex(f.read())
        suite = {"format": "fxlic-vectors", "format_version": 1, "kind": "suite",
                 "generator": "tools/gen_vectors.py", "quick": bool(quick),
                 "models": model_info, "cases": cases,
                 "units": [{"dir": f"units/{n}", "rules": units[n]["rules"], "checks": units[n]["checks"]}
                           for n in sorted(units)],
                 "manifests": digests, "total_bytes": total, "file_count": nfiles, "budget_bytes": BUDGET_BYTES}
        from fxlic.spec import SPEC_VERSION
        suite["spec_version"] = SPEC_VERSION
        with open(os.path.join(tmp, "manifest.json"), "wb") as f:
            f.write(json_bytes(suite))
        if total > BUDGET_BYTES:
            log(f"warning: the suite is {total:,} bytes, over the {BUDGET_BYTES:,} byte budget")
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


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=DEFAULT_OUT, help="output directory (default: vectors/ of the repo)")
    ap.add_argument("--source", default=DEFAULT_OUT,
                    help="where the kept inputs are read (models/rand16/model.fxq, images/kodim23_crop256.png)")
    ap.add_argument("--kodak", default=DEFAULT_KODAK, help="Kodak directory (only if the crop is not kept yet)")
    ap.add_argument("--zoo-dir", default=None, help="shipped models directory (default fxlic/zoo; 'none': skip)")
    ap.add_argument("--rebuild-model", action="store_true", help="rebuild the small random model")
    ap.add_argument("--quick", action="store_true", help="only the small model's cases and the units")
    ap.add_argument("-q", "--quiet", action="store_true")
    a = ap.parse_args(argv)
    generate(a.out, a.source, a.kodak, a.zoo_dir, a.rebuild_model, a.quick,
             log=(lambda *x: None) if a.quiet else print)
    return 0


if __name__ == "__main__":
    sys.exit(main())
