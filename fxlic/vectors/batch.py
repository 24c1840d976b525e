"""Vector suites of an image folder: ``fxlic vectors --image DIR --out OUT``.

One case per image, in the layout of the committed suite (docs/VECTORS.md 6),
so that ``fxlic vectors --check``, ``--coverage-of`` and ``fxlic verify`` read
it as they read ``vectors/``::

  OUT/manifest.json              kind "suite": models, cases, sha256 of every manifest
  OUT/models/<model>/            the model directory, written once
  OUT/cases/<model>/<image>/     one case per image (its model: ../../../models/<model>)

The cases are written by the tasks of an fxlic.parallel executor (serial, a
local process pool or a Dask cluster); every case is a pure function of the
model, the image and the options, and the suite manifest lists the cases in
image-name order, so the files are byte-identical whatever the executor.
"""
from __future__ import annotations

import os
from functools import lru_cache

from .store import FORMAT, FORMAT_VERSION, MANIFEST, json_bytes, sha256_hex


def case_names(paths) -> list:
    """Case name of each image (its file name without the extension);
    ValueError when two images would share one."""
    names, seen = [], {}
    for p in paths:
        n = os.path.splitext(os.path.basename(p))[0]
        if n in seen:
            raise ValueError(f"{seen[n]} and {p} would both be case {n!r} (rename one)")
        seen[n] = p
        names.append(n)
    return names


def image_size(path: str):
    """(width, height) from the image header (nothing is decoded)."""
    from PIL import Image
    with Image.open(path) as im:
        return im.size


@lru_cache(maxsize=4)
def _model(arg: str):
    from ..api import load
    return load(arg).int_model


def write_one(task: dict) -> dict:
    """Worker: write the case of one image into ``task["root"]/task["dir"]``;
    returns its entry of the suite manifest's ``cases``."""
    from ..io.images import read_image
    from .writer import write_case

    model = _model(task["model"])
    px = read_image(task["image"])
    meta = None
    if task["crop"]:
        px, meta = crop_pixels(px, task["crop"])
    _, H, W = px.shape
    man = write_case(model, px, os.path.join(task["root"], *task["dir"].split("/")), task["opts"],
                     model_dir=task["model_dir"], model_name=task["model_name"], image_name=task["name"],
                     image_meta=meta)
    return {"dir": task["dir"], "model": task["model_name"], "image": task["name"],
            "source": os.path.basename(task["image"]), "size": [W, H], "stream_bytes": man["stream"]["bytes"]}


def crop_pixels(pixels, crop):
    """The crop (w, h, x or None, y or None) of (3, H, W) pixels, centred when
    x is None, and its manifest entry (the caller checked that it fits)."""
    w, h, x, y = crop
    _, H, W = pixels.shape
    if x is None:
        x, y = (W - w) // 2, (H - h) // 2
    meta = {"crop": {"x": x, "y": y, "width": w, "height": h, "source_width": W, "source_height": H}}
    return pixels[:, y:y + h, x:x + w].copy(), meta


def tasks_for(model_arg: str, model_name: str, images, names, root: str, opts, crop) -> list:
    """The write_one tasks of a folder suite (model directory models/<model_name>)."""
    return [{"model": model_arg, "model_name": model_name, "image": p, "name": n, "root": root,
             "dir": f"cases/{model_name}/{n}", "model_dir": f"../../../models/{model_name}", "opts": opts,
             "crop": crop} for p, n in zip(images, names)]


def tree_digests(root: str):
    """(total bytes, file count, {relative path: sha256} of every manifest.json)
    of the files below ``root``, walked in sorted order (a suite manifest's totals)."""
    total, nfiles, digests = 0, 0, {}
    for dp, dn, fn in os.walk(root):
        dn.sort()
        for n in sorted(fn):
            p = os.path.join(dp, n)
            total += os.path.getsize(p)
            nfiles += 1
            if n == MANIFEST:
                with open(p, "rb") as f:
                    digests[os.path.relpath(p, root).replace(os.sep, "/")] = sha256_hex(f.read())
    return total, nfiles, digests


def suite_manifest(root: str, model, model_name: str, cases: list, coverage: dict = None) -> dict:
    """Write ``root/manifest.json`` of a finished folder suite and return it:
    the sha256 of every manifest below ``root``, the file count and total size
    (without the suite manifest), the model and the cases in the given order."""
    from ..io.modelfile import model_hash
    from ..spec import SPEC_VERSION

    total, nfiles, digests = tree_digests(root)
    suite = {"format": FORMAT, "format_version": FORMAT_VERSION, "spec_version": SPEC_VERSION, "kind": "suite",
             "generator": "fxlic vectors --image DIR",
             "models": {model_name: {"dir": f"models/{model_name}", "hash": model_hash(model),
                                     "architecture": model.arch.name}},
             "cases": cases, "manifests": digests, "total_bytes": total, "file_count": nfiles}
    if coverage is not None:
        suite["coverage"] = coverage
    with open(os.path.join(root, MANIFEST), "wb") as f:
        f.write(json_bytes(suite))
    return suite
