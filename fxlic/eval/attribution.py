"""Where a model's quantization loss comes from, layer by layer (analysis only).

Every part is the float model (``fxlic.eval.sim.forward_codec``, integer-rounded
latents) with one thing of the integer model put in:

* ``weights L``: layer L's weights replaced by the integer model's own 8-bit
  weights, dequantized (``int_weights``: the codes, LUT levels and exponents
  the integer codec multiplies with, the AT0 / ST3 prescales of SPEC F4 taken
  out); against the float model;
* ``activations L``: layer L's output fake-quantized with the integer model's
  exponents and mux (Eq 23-27); against the float model with only y_hat - mu
  and z_hat saturated to 8 bits (the ``latents`` row, which is itself against
  the float model);
* ``all weights``, ``all activations`` and ``all weights + activations``.

Each row: mean dPSNR (dB) and mean ideal-rate change (%) over the images and
the worst image.  The rows are not additive: the parts interact, and the
integer codec differs from the last row by its latent rule (SPEC O5), its
rounded biases and its integer entropy model.
"""
from __future__ import annotations

import numpy as np

from ..metrics import psnr
from ..model.build import weight_prescale
from ..model.float_model import FloatModel
from ..quant.weights import QuantizedWeights
from . import sim


def int_weights(fm: FloatModel, im) -> dict:
    """name -> the integer model's weights of every layer as float (level * 2^exp,
    SPEC F2), with the prescales of SPEC F4 undone so they replace ``fm``'s."""
    out = {}
    for spec in fm.arch.layers:
        L = im.layers[spec.name]
        out[spec.name] = QuantizedWeights(L.w_codes, L.w_lut, L.w_exp, "").dequantize() / weight_prescale(spec)
    return out


def _with_weights(fm: FloatModel, W: dict) -> FloatModel:
    return FloatModel(fm.arch, dict(fm.weights, **W), fm.biases, fm.entropy, fm.meta)


def plan(fm: FloatModel, im, names=None) -> list:
    """The rows ``attribute`` measures, in order: (part, layer, model, act, base) with
    ``base`` "float" or "latents" (the run the row is compared with)."""
    layers = [l.name for l in fm.arch.layers] if names is None else list(names)
    A = sim.activation_params(im)
    Wi = int_weights(fm, im)
    rows = [("latents", "y_hat, z_hat", fm, {}, "float")]
    rows += [("weights", n, _with_weights(fm, {n: Wi[n]}), None, "float") for n in layers]
    rows += [("activations", n, fm, {n: A[n]}, "latents") for n in layers if n in A]
    return rows + [("all weights", "", _with_weights(fm, Wi), None, "float"),
                   ("all activations", "", fm, A, "float"),
                   ("all weights + activations", "", _with_weights(fm, Wi), A, "float")]


def attribute(fm: FloatModel, im, images, names=None, engine: str = None, progress=None) -> list:
    """Rows {part, layer, dpsnr, drate_pct, worst_dpsnr, worst_image} for ``images``
    [(name, (3, H, W) uint8)]; ``names``: the layers (default every layer)."""
    engine = engine or sim.float_engine()

    def run(model, act=None):
        got = []
        for _, px in images:
            rec, bpp, _ = sim.forward_codec(model, px, act=act, im=im if act is not None else None, engine=engine)
            got.append((psnr(px, rec), bpp))
            if progress is not None:
                progress(1)
        return np.array(got)

    def row(part, layer, test, base):
        d = test[:, 0] - base[:, 0]
        k = int(np.argmin(d))
        return {"part": part, "layer": layer, "dpsnr": float(d.mean()),
                "drate_pct": 100.0 * float(test[:, 1].mean() / base[:, 1].mean() - 1.0),
                "worst_dpsnr": float(d[k]), "worst_image": images[k][0]}

    base = {"float": run(fm)}
    rows = []
    for part, layer, model, act, against in plan(fm, im, names):
        got = run(model, act)
        if part == "latents":
            base["latents"] = got
        rows.append(row(part, layer, got, base[against]))
    return rows


def n_runs(fm: FloatModel, im, names=None) -> int:
    """Float forwards per image that ``attribute`` runs (for a progress bar)."""
    return 1 + len(plan(fm, im, names))


__all__ = ["attribute", "int_weights", "n_runs", "plan"]
