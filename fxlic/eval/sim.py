"""Quantization simulations on the float model (analysis only).

* ``weights_only(fm, scheme)``: the float network with every weight replaced by
  its dequantized 8-bit value (``QuantizedWeights.dequantize``), biases and
  activations float: the "Quan. weight" rows of Table VI and Table I.  The
  plain float weights are quantized (the integer path's 256/255 and 255/256
  prescales of AT0 / ST3 are an integer-representation detail).
* ``lin_quantize(w, nonlinear)``: Lin et al. [58] (paper Eq 31-34), an
  alternative weight quantizer: per output channel sigma, xi = alpha * sigma
  (alpha 3; 1.5 for the NLQ variant), step s = xi * 0.0308 (optimal 8-bit
  uniform step of a unit Gaussian), n = -ceil(log2 s) fractional bits, then a
  uniform 8-bit grid 2^-n, or the piecewise grid of Eq 34
  (64 levels at 2^-n, 16 at 2^-(n-2), 48 at 2^-(n-3) per sign).
* ``forward_codec(fm, pixels, act=...)``: the float codec of
  ``fxlic.model.float_codec`` (reconstruction + ideal bpp), optionally with
  every activation fake-quantized channel-wise with the exponents and mux of
  an IntModel (``activation_params``), y stored as y_hat - mu in 8 bits and z in
  8 bits: the "Quan. acti" rows of Table VI.  Also returns statistics of y_hat
  for Table V.
"""
from __future__ import annotations

import math

import numpy as np
from scipy.special import ndtr

from ..model.float_codec import LIKELIHOOD_BOUND, gaussian_likelihood
from ..model.float_model import FloatModel, bottleneck_medians, float_layer
from ..model.int_forward import image_mu, pad_to_multiple
from ..quant.codebook import act_lq_signed, act_nlq
from ..quant.weights import quantize_weights

LIN_STEPSIZE_8BIT = 0.0308
LIN_ALPHA = 3.0
LIN_ALPHA_NLQ = 1.5

WEIGHT_VARIANTS = ("cw-nlq", "cw-lq", "lw-nlq", "lw-lq", "lloyd", "lin-lq", "lin-nlq")


def _round_half_away(v):
    return np.sign(v) * np.floor(np.abs(v) + 0.5)


def lin_fraction_bits(w_channel: np.ndarray, alpha: float, stepsize: float = LIN_STEPSIZE_8BIT):
    """Eq 31-33 for one group: n = -ceil(log2(alpha * sigma * Stepsize)), None if sigma = 0."""
    sigma = float(np.std(w_channel))
    if sigma == 0.0:
        return None
    return -math.ceil(math.log2(alpha * sigma * stepsize))


def lin_quantize(w: np.ndarray, nonlinear: bool = False, bits: int = 8) -> np.ndarray:
    """Lin et al.'s fixed-point weights (dequantized), one n per output channel."""
    if bits != 8:
        raise ValueError("only the 8-bit step size (0.0308) is tabulated here")
    w = np.asarray(w, np.float64)
    out = np.zeros_like(w)
    alpha = LIN_ALPHA_NLQ if nonlinear else LIN_ALPHA
    for o in range(w.shape[0]):
        n = lin_fraction_bits(w[o], alpha)
        if n is None:
            continue
        if not nonlinear:
            q = np.clip(_round_half_away(np.ldexp(w[o], n)), -128, 127)
            out[o] = np.ldexp(q, -n)
            continue
        m = np.abs(w[o])
        t1, t2 = 64.0, 128.0  # segment bounds in units of 2^-n (Eq 34)
        u = np.ldexp(m, n)
        q = np.where(u < t1, np.floor(u + 0.5),
                     np.where(u < t2, 4.0 * np.floor(u / 4.0 + 0.5), 8.0 * np.floor(u / 8.0 + 0.5)))
        q = np.minimum(q, 512.0 - 8.0)  # 48 levels of 8 above 128: largest 128 + 47 * 8 = 504
        out[o] = np.sign(w[o]) * np.ldexp(q, -n)
    return out


def quantize_tensor(w: np.ndarray, variant: str) -> np.ndarray:
    """Dequantized weights of one layer under a weight-quantization variant."""
    if variant == "lin-lq":
        return lin_quantize(w, nonlinear=False)
    if variant == "lin-nlq":
        return lin_quantize(w, nonlinear=True)
    return quantize_weights(w, variant).dequantize()


def weights_only(fm: FloatModel, variant: str) -> FloatModel:
    """Copy of ``fm`` with all conv/tconv weights quantized by ``variant`` (biases float)."""
    if variant not in WEIGHT_VARIANTS:
        raise ValueError(f"unknown weight variant {variant!r}")
    W = {n: quantize_tensor(w, variant) for n, w in fm.weights.items()}
    return FloatModel(fm.arch, W, dict(fm.biases), fm.entropy, dict(fm.meta, weight_variant=variant))


def activation_params(im) -> dict:
    """name -> (kind, exp, mux) for every layer of an IntModel whose output is an
    8-bit activation: kind 'nlq' (after ReLU; real = level * 2^exp, codebook
    act_nlq(mux)) or 'lq' (signed; real = code * 2^exp)."""
    out = {}
    for spec in im.arch.layers:
        L = im.layers[spec.name]
        if spec.out == "act" and spec.act == "relu":
            out[spec.name] = ("nlq", np.asarray(L.out_exp, np.int64), np.asarray(L.mux, np.int64))
        elif spec.out in ("act", "ms"):
            out[spec.name] = ("lq", np.asarray(L.out_exp, np.int64), None)
    return out


_CB = {}


def _codebook(kind, mux):
    key = (kind, mux)
    if key not in _CB:
        _CB[key] = act_nlq(mux) if kind == "nlq" else act_lq_signed()
    return _CB[key]


def fake_quantize(o: np.ndarray, kind: str, exp: np.ndarray, mux=None) -> np.ndarray:
    """Channel-wise quantize-dequantize of (C, H, W) activations (clipping at
    the codebook's ends), as fxlic.quant.activations.quantize_activation_float."""
    out = np.empty_like(o, dtype=np.float64)
    for c in range(o.shape[0]):
        cb = _codebook(kind, int(mux[c]) if kind == "nlq" else 0)
        e = int(exp[c])
        out[c] = np.ldexp(cb.quantize_float(np.ldexp(o[c], -e)).astype(np.float64), e)
    return out


def float_engine() -> str:
    """'torch' when PyTorch is importable (its float32 convolutions are 2-3x
    faster than the NumPy reference here), else 'numpy'.  Both compute the
    same float32 network; results agree to float32 rounding."""
    try:
        import torch  # noqa: F401
        return "torch"
    except ImportError:
        return "numpy"


def _torch_layers(fm: FloatModel):
    import torch
    import torch.nn.functional as F
    from ..model.float_model import _act

    W = {}
    for l in fm.arch.layers:
        w = fm.weights[l.name]
        if l.op == "tconv":
            w = w.transpose(1, 0, 2, 3)  # internal (out, in) -> ConvTranspose2d (in, out)
        W[l.name] = (torch.from_numpy(np.ascontiguousarray(w)), torch.from_numpy(np.ascontiguousarray(
            fm.biases[l.name])))

    def layer(name, x):
        l = fm.arch.layer(name)
        w, b = W[name]
        xt = torch.from_numpy(np.ascontiguousarray(x))[None]
        with torch.no_grad():
            if l.op == "conv":
                v = F.conv2d(xt, w, b, stride=l.stride, padding=l.k // 2)
            else:
                v = F.conv_transpose2d(xt, w, b, stride=l.stride, padding=l.k // 2, output_padding=l.stride - 1)
        return _act(v[0].numpy(), l.act)
    return layer


def forward_codec(fm: FloatModel, pixels: np.ndarray, act: dict = None, im=None, dtype=np.float32,
                  engine: str = "numpy", latents: str = "integer"):
    """(3, H, W) uint8 -> (reconstruction uint8, ideal bpp, y statistics).

    Without ``act`` and with ``dtype=np.float64`` this is
    ``fxlic.model.float_codec.float_codec`` (same formulas); the default
    float32 is what the networks were trained in and 2-3x faster here.  With ``act = activation_params(im)`` every activation is
    fake-quantized, y_hat - mu (mu from ``im``'s mean reduction) and z_hat
    are saturated to int8.  ``latents="offset"`` (float only, no ``act``) runs
    the float model with CompressAI's inference semantics, as
    ``float_forward(latents="offset")``: z_hat = m + round(z - m) with the
    bottleneck median m, y_hat = mean + round(y - mean) (SPEC O5: the rule an
    offset-latent integer model implements, so its float reference).
    """
    if latents not in ("integer", "offset"):
        raise ValueError("latents must be 'integer' or 'offset'")
    if latents == "offset" and act is not None:
        raise ValueError("offset latents are simulated for the float model only (act=None)")
    from ..entropy.cdf import factorized_likelihood, factorized_params_from_state_dict

    _, H, W = pixels.shape
    padded = pad_to_multiple(pixels, fm.arch.pad_multiple)
    mu = image_mu(im, padded).astype(np.float64) if (act is not None and im is not None) else None
    if dtype != np.float64:
        fm = FloatModel(fm.arch, {k: v.astype(dtype) for k, v in fm.weights.items()},
                        {k: v.astype(dtype) for k, v in fm.biases.items()}, fm.entropy, fm.meta)
    t = {"x": padded.astype(dtype) / dtype(255.0)}
    ystats = None
    med = None
    if latents == "offset":
        med = bottleneck_medians(fm)
    if engine == "torch":
        if dtype != np.float32:
            raise ValueError("the torch engine runs float32 only")
        run = _torch_layers(fm)
    else:
        def run(name, x):
            return float_layer(fm, name, x)
    for l in fm.arch.layers:
        if l.src not in t:
            continue
        out = run(l.name, t[l.src])
        if act is not None and l.name in act:
            kind, exp, mux = act[l.name]
            out = fake_quantize(out, kind, exp, mux).astype(dtype)
        t[l.name] = out
        if l.out == "y":
            yh = np.floor(out + 0.5)
            flat = yh.reshape(yh.shape[0], -1)
            ystats = {"y_max": flat.max(axis=1).astype(int).tolist(),
                      "y_min": flat.min(axis=1).astype(int).tolist(),
                      "y_mean": flat.mean(axis=1).tolist()}
            if act is not None:
                m = mu[:, None, None] if mu is not None else 0.0
                yh = (np.clip(yh - m, -128, 127) + m).astype(dtype)
            if med is not None:  # offset: the hyperprior's y_hat waits for the means
                yh = (med + np.floor(out - med + 0.5)).astype(dtype) if fm.arch.kind == "factorized" else None
            if yh is not None:
                t["y_hat"] = yh
            # h_a reads continuous y in the float model, y_hat in the integer one
            t["y"] = yh if act is not None else out
        elif l.out == "z":
            zh = np.floor(out + 0.5) if med is None else (med + np.floor(out - med + 0.5)).astype(dtype)
            if act is not None:
                zh = np.clip(zh, -128, 127)
            t["z_hat"] = zh
        elif l.out == "ms" and med is not None:
            mean = out[fm.arch.M:]
            t["y_hat"] = (mean + np.floor(t["y"] - mean + 0.5)).astype(dtype)
    params = factorized_params_from_state_dict(fm.entropy)

    def fact_bits(v):
        p = factorized_likelihood(params, v.reshape(v.shape[0], 1, -1))[0]
        return -np.sum(np.log2(np.maximum(p, LIKELIHOOD_BOUND)))

    if fm.arch.kind == "hyperprior":
        bits = fact_bits(t["z_hat"].astype(np.float64))
        ms = t[[l.name for l in fm.arch.layers if l.out == "ms"][0]].astype(np.float64)
        M = fm.arch.M
        bits += -np.sum(np.log2(gaussian_likelihood(t["y_hat"].astype(np.float64), ms[M:], ms[:M])))
    else:
        bits = fact_bits(t["y_hat"].astype(np.float64))
    last = [l for l in fm.arch.layers if l.out == "pixel"][0].name
    rec = np.clip(np.floor(t[last].astype(np.float64) * 255.0 + 0.5), 0, 255).astype(np.uint8)[:, :H, :W]
    return rec, float(bits) / (H * W), ystats


__all__ = ["lin_quantize", "weights_only", "activation_params", "fake_quantize", "forward_codec",
           "WEIGHT_VARIANTS", "ndtr"]
