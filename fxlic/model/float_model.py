"""Float model: the trained network's weights and a float64 NumPy forward.

Weights are held in fxlic's internal layout (out channel first; a transposed
convolution's kernel in scatter form ``W[o, c, ky, kx]``), converted from the
PyTorch layouts by ``from_torch_layout``.  The float forward is what the
trained network computes (rounding y and z as Eq 1-2); it serves calibration
and the float-vs-integer comparisons.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..kernels.reference import conv2d, tconv2d
from .arch import Architecture

LEAKY_SLOPE = 0.125


@dataclass
class FloatModel:
    arch: Architecture
    weights: dict  # name -> (O, C, k, k) float64, internal layout
    biases: dict  # name -> (O,) float64
    entropy: dict = field(default_factory=dict)  # raw entropy-model parameters (float)
    meta: dict = field(default_factory=dict)
    #: the trainer's I/O probe carried by the weights file (``fxlic.probe.*``
    #: tensors, docs/MODEL_FORMAT.md 7.4), checked by fxlic.io.iocheck
    probe: dict = field(default_factory=dict, repr=False, compare=False)

    def validate(self):
        for l in self.arch.layers:
            w = self.weights.get(l.name)
            b = self.biases.get(l.name)
            if w is None or b is None:
                raise ValueError(f"float model: layer {l.name} has no weight or bias")
            if w.shape != (l.cout, l.cin, l.k, l.k):
                raise ValueError(f"float model: {l.name}.weight has shape {w.shape}, "
                                 f"expected {(l.cout, l.cin, l.k, l.k)} (internal layout)")
            if b.shape != (l.cout,):
                raise ValueError(f"float model: {l.name}.bias has shape {b.shape}")
            if not (np.all(np.isfinite(w)) and np.all(np.isfinite(b))):
                raise ValueError(f"float model: {l.name} has NaN/inf")


def from_torch_layout(op: str, w: np.ndarray) -> np.ndarray:
    """PyTorch Conv2d (out, in, k, k) is kept; ConvTranspose2d (in, out, k, k)
    is transposed to (out, in, k, k) (same scatter semantics)."""
    w = np.asarray(w, dtype=np.float64)
    return w.transpose(1, 0, 2, 3).copy() if op == "tconv" else w


def to_torch_layout(op: str, w: np.ndarray) -> np.ndarray:
    return np.asarray(w).transpose(1, 0, 2, 3).copy() if op == "tconv" else np.asarray(w)


def _act(v: np.ndarray, act: str) -> np.ndarray:
    if act == "relu":
        return np.maximum(v, 0.0)
    if act == "leaky":
        return np.where(v >= 0, v, LEAKY_SLOPE * v)
    return v


def float_layer(fm: FloatModel, name: str, x: np.ndarray) -> np.ndarray:
    l = fm.arch.layer(name)
    op = conv2d if l.op == "conv" else tconv2d
    v = op(x, fm.weights[name], l.stride) + fm.biases[name][:, None, None]
    return _act(v, l.act)


def bottleneck_medians(fm: FloatModel) -> np.ndarray:
    """(C, 1, 1) float64 medians of the factorized bottleneck (z of a hyperprior,
    y of a factorized model): the offsets of SPEC O5's offset latents."""
    return np.asarray(fm.entropy["entropy_bottleneck.quantiles"], np.float64)[:, 0, 1][:, None, None]


def float_forward(fm: FloatModel, x: np.ndarray, names=None, record=None, latents: str = "integer") -> dict:
    """Run layers on x (3, H, W) float in [0, 1].  ``latents="integer"``: y and z
    are rounded (Eq 1-2, half up like the integer path); ``"offset"`` (SPEC O5,
    CompressAI's inference semantics): z_hat = m + round(z - m) with the bottleneck
    median m, y_hat = mean + round(y - mean) with HS's predicted mean (a factorized
    model: its median).  ``record(name, output)`` sees every output."""
    if latents not in ("integer", "offset"):
        raise ValueError("latents must be 'integer' or 'offset'")
    t = {"x": np.asarray(x, dtype=np.float64)}
    med = None
    if latents == "offset":
        med = bottleneck_medians(fm)
    for l in fm.arch.layers if names is None else [fm.arch.layer(n) for n in names]:
        if l.src not in t:
            continue
        out = float_layer(fm, l.name, t[l.src])
        t[l.name] = out
        if record is not None:
            record(l.name, out)
        if l.out == "y":
            t["y"] = out
            if med is None:
                t["y_hat"] = np.floor(out + 0.5)
            elif fm.arch.kind == "factorized":
                t["y_hat"] = med + np.floor(out - med + 0.5)
        elif l.out == "z":
            t["z"] = out
            t["z_hat"] = np.floor(out + 0.5) if med is None else med + np.floor(out - med + 0.5)
        elif l.out == "ms" and med is not None and "y" in t:
            mean = out[fm.arch.M:]
            t["y_hat"] = mean + np.floor(t["y"] - mean + 0.5)
    return t


def float_reconstruct(fm: FloatModel, pixels: np.ndarray) -> np.ndarray:
    """Float codec (no entropy coding): pixels -> reconstructed pixels (uint8)."""
    t = float_forward(fm, pixels.astype(np.float64) / 255.0)
    last = [l for l in fm.arch.layers if l.out == "pixel"][0].name
    return np.clip(np.floor(t[last] * 255.0 + 0.5), 0, 255).astype(np.uint8)


def random_float_model(arch: Architecture, seed: int = 0) -> FloatModel:
    """He-initialised weights and small biases: a stand-in until trained models
    exist, and the input of randomized engine tests."""
    rng = np.random.default_rng(seed)
    W, B = {}, {}
    for l in arch.layers:
        fan_in = l.cin * l.k * l.k if l.op == "conv" else l.cin * l.k * l.k / 4
        W[l.name] = rng.laplace(scale=np.sqrt(1.0 / fan_in), size=(l.cout, l.cin, l.k, l.k))
        B[l.name] = rng.normal(scale=0.01, size=l.cout)
    return FloatModel(arch, W, B, entropy=default_bottleneck(arch), meta={"source": f"random seed {seed}"})


def default_bottleneck(arch: Architecture, init_scale: float = 10.0, filters=(3, 3, 3, 3)) -> dict:
    """CompressAI's EntropyBottleneck initialisation (untrained density) for the
    tensor the bottleneck codes (z of a hyperprior, y of a factorized model)."""
    C = [l for l in arch.layers if l.out == ("z" if arch.kind == "hyperprior" else "y")][0].cout
    f = (1,) + tuple(filters) + (1,)
    scale = init_scale ** (1.0 / (len(filters) + 1))
    ent = {}
    for i in range(len(filters) + 1):
        init = np.log(np.expm1(1.0 / scale / f[i + 1]))
        ent[f"entropy_bottleneck._matrices.{i}"] = np.full((C, f[i + 1], f[i]), init)
        ent[f"entropy_bottleneck._biases.{i}"] = np.linspace(-0.5, 0.5, C * f[i + 1]).reshape(C, f[i + 1], 1)
        if i < len(filters):
            ent[f"entropy_bottleneck._factors.{i}"] = np.zeros((C, f[i + 1], 1))
    ent["entropy_bottleneck.quantiles"] = np.tile(np.array([[-init_scale, 0.0, init_scale]]), (C, 1, 1))
    return ent
