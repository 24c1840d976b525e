"""Integer models for the evaluation: the shipped .fxq when it was made from
the same float weights, otherwise quantized here (same calibration as
``fxlic quantize``: the first 9 images of the calibration directory,
centre-cropped to 512 and padded) into the cache directory."""
from __future__ import annotations

import os

from .cache import file_digest

N_CALIB = 9
CROP = 512


def variant_name(scheme: str = "cw-nlq", act: str = "nlq-mux", mr: bool = True) -> str:
    return f"{scheme}_{act}" + ("" if mr else "_nomr")


def zoo_match(weights: str):
    """The shipped .fxq whose float-model sha256 is that of ``weights`` (or None)."""
    from ..io.floatfile import file_sha256
    from ..io.modelfile import ModelFileError, list_zoo, read_model_file
    sha = file_sha256(weights)
    for p in list_zoo():
        try:
            im, _ = read_model_file(p)
        except ModelFileError:
            continue
        fmeta = (im.meta or {}).get("float_model") or {}
        if fmeta.get("sha256") == sha and im.meta.get("weight_scheme") == "cw-nlq" \
                and im.meta.get("act_quant") == "nlq-mux" and im.meta.get("mean_reduction", True):
            return p
    return None


def model_path(weights: str, model_dir: str, scheme="cw-nlq", act="nlq-mux", mr=True) -> str:
    """Where the quantized model lives: float-weights digest, variant and the
    spec version (a new spec needs a re-quantized model) in the name."""
    from ..spec import SPEC_VERSION
    stem = os.path.splitext(os.path.basename(weights))[0]
    return os.path.join(model_dir, f"{stem}-{file_digest(weights)[:12]}-{variant_name(scheme, act, mr)}"
                                   f"-{SPEC_VERSION}.fxq")


def build_models(weights: str, calib: str, model_dir: str, variants: list) -> dict:
    """Build the missing ``variants`` [(scheme, act, mr)] of one float model
    (one calibration pass for all); returns {variant: path}."""
    from .. import __version__
    from ..io.floatfile import load_weights
    from ..io.images import center_crop, list_images, read_image
    from ..io.modelfile import save_model
    from ..model.build import build_int_model, calibrate
    from ..model.int_forward import pad_to_multiple

    os.makedirs(model_dir, exist_ok=True)
    out, todo = {}, []
    for v in variants:
        p = model_path(weights, model_dir, *v)
        out[v] = p
        if not os.path.exists(p):
            todo.append(v)
    if not todo:
        return out
    fm = load_weights(weights)
    paths = list_images(calib, N_CALIB)
    images = [pad_to_multiple(center_crop(read_image(p), CROP), fm.arch.pad_multiple) for p in paths]
    cal = calibrate(fm, images)
    for v in todo:
        scheme, act, mr = v
        im = build_int_model(fm, cal, weight_scheme=scheme, act_quant=act, mean_reduction=mr)
        im.meta.update({"mean_reduction": mr,
                        "float_model": {k: fm.meta.get(k) for k in ("source", "format", "sha256", "lambda",
                                                                     "provenance")},
                        "calibration": {"images": [os.path.basename(p) for p in paths], "crop": CROP},
                        "created_by": f"fxlic {__version__} (eval)"})
        save_model(im, out[v])  # atomic
    return out


def build_job(job: tuple) -> dict:
    """``build_models(*job)``: one executor task (fxlic.parallel) of tools/paper_tables.py."""
    return build_models(*job)
