"""The float model as a codec (analysis only): reconstruction and the ideal
rate -sum log2 p of its rounded latents under its own float entropy model.
This is the baseline the integer model is compared against (Table VI)."""
from __future__ import annotations

import numpy as np
from scipy.special import ndtr

from .float_model import FloatModel, float_forward
from .int_forward import pad_to_multiple

SCALE_BOUND = 0.11
LIKELIHOOD_BOUND = 1e-9


def gaussian_likelihood(y_hat, mean, scale):
    s = np.maximum(scale, SCALE_BOUND)
    v = np.abs(y_hat - mean)
    p = ndtr((0.5 - v) / s) - ndtr((-0.5 - v) / s)
    return np.maximum(p, LIKELIHOOD_BOUND)


def float_codec(fm: FloatModel, pixels: np.ndarray, latents: str = "integer"):
    """(3, H, W) uint8 -> (reconstruction uint8, estimated bpp); ``latents`` as
    in float_forward (integer rounding, or CompressAI's mean/median offsets)."""
    from ..entropy.cdf import factorized_likelihood, factorized_params_from_state_dict

    _, H, W = pixels.shape
    x = pad_to_multiple(pixels, fm.arch.pad_multiple).astype(np.float64) / 255.0
    t = float_forward(fm, x, latents=latents)
    params = factorized_params_from_state_dict(fm.entropy)

    def fact_bits(v):
        p = factorized_likelihood(params, v.reshape(v.shape[0], 1, -1))[0]
        return -np.sum(np.log2(np.maximum(p, LIKELIHOOD_BOUND)))

    bits = 0.0
    if fm.arch.kind == "hyperprior":
        z = t["z_hat"]
        bits += fact_bits(z)
        ms = t[[l.name for l in fm.arch.layers if l.out == "ms"][0]]
        M = fm.arch.M
        bits += -np.sum(np.log2(gaussian_likelihood(t["y_hat"], ms[M:], ms[:M])))
    else:
        bits += fact_bits(t["y_hat"])
    last = [l for l in fm.arch.layers if l.out == "pixel"][0].name
    rec = np.clip(np.floor(t[last] * 255.0 + 0.5), 0, 255).astype(np.uint8)[:, :H, :W]
    return rec, float(bits) / (H * W)
