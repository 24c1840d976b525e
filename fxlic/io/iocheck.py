"""The I/O check of an import (docs/MODEL_FORMAT.md 7.4): the trainer's own
input and outputs, compared with fxlic's float forward.

A state dict holds weights, not activations, padding or rounding: a network
trained with LeakyReLU(0.01) in h_a imports with every shape right and makes
a wrong model.  The probe closes that gap.  Its tensors, float, (N, C, H, W)
(or (C, H, W) for N = 1):

* ``x``: the input, 3 channels in [0, 1] (required);
* ``y``: ``g_a(x)``, not rounded (required);
* ``x_hat``: ``g_s(round(y))`` (required);
* ``z``: ``h_a(y)``, not rounded (hyperprior, optional);
* ``gaussian_params``: ``h_s(round(z))``, scales then means (hyperprior, optional).

H and W are multiples of the architecture's pad multiple (64 hyperprior, 16
factorized) and N*H*W <= MAX_PROBE_PIXELS.  They come from an ``.npz`` /
``.safetensors`` (``fxlic quantize --check-io FILE``, bare names or
``fxlic.probe.NAME``) or from the weights file itself as ``fxlic.probe.NAME``
tensors (``FloatModel.probe``), checked by every ``fxlic quantize``.

Each stage runs from the probe's own input to it (g_s from round(probe y),
not from fxlic's y), so a difference names the sub-network and a value near
.5 cannot cascade.  A tensor differs when max|fxlic - probe| >
IO_RTOL * max|probe| (float: the trainer's float32 against fxlic's float64).
"""
from __future__ import annotations

import numpy as np

from .floatfile import PROBE_PREFIX, WeightsError, read_tensors, split_probe  # noqa: F401
#: relative tolerance of the comparison (float32 training vs float64 here)
IO_RTOL = 1e-3
#: largest probe, N * H * W (the float64 forward of 1 MP takes seconds)
MAX_PROBE_PIXELS = 1 << 20
REQUIRED = ("x", "y", "x_hat")
#: (tensor, layer group, input tensor, round the input, CompressAI name)
STAGES = (("y", "AT", "x", False, "g_a"), ("z", "HA", "y", False, "h_a"),
          ("gaussian_params", "HS", "z", True, "h_s"), ("x_hat", "ST", "y", True, "g_s"))
HYPER_ONLY = ("z", "gaussian_params")


def read_probe(path: str) -> dict:
    """The probe tensors of an .npz / .safetensors (never unpickled)."""
    tensors, _ = read_tensors(path)
    rest, probe = split_probe(tensors)
    return {**rest, **probe}


def _expected_shapes(arch, n: int, h: int, w: int) -> dict:
    z_ch = [l for l in arch.layers if l.out == "z"]
    out = {"x": (n, 3, h, w), "y": (n, arch.M, h // 16, w // 16), "x_hat": (n, 3, h, w)}
    if z_ch:
        out["z"] = (n, z_ch[0].cout, h // 64, w // 64)
        out["gaussian_params"] = (n, 2 * arch.M, h // 16, w // 16)
    return out


def normalize_probe(arch, probe: dict, where: str) -> dict:
    """Names, dtypes, shapes and ranges checked; float64 (N, C, H, W) arrays."""
    known = [s[0] for s in STAGES] + ["x"]
    unknown = sorted(set(probe) - set(known))
    if unknown:
        raise WeightsError(f"{where}: unknown probe tensor(s) {', '.join(unknown[:5])}; a probe holds "
                           f"x, y, x_hat and optionally z, gaussian_params")
    missing = [k for k in REQUIRED if k not in probe]
    if missing:
        raise WeightsError(f"{where}: probe tensor(s) {', '.join(missing)} missing (a probe holds "
                           f"x, y and x_hat)")
    if arch.kind != "hyperprior" and any(k in probe for k in HYPER_ONLY):
        raise WeightsError(f"{where}: probe tensors z / gaussian_params, but {arch.name} has no hyperprior")
    out = {}
    for k, v in probe.items():
        a = np.asarray(v)
        if a.dtype.kind != "f":
            raise WeightsError(f"{where}: probe tensor {k} has dtype {a.dtype}, expected float")
        a = a.astype(np.float64)
        if a.ndim == 3:
            a = a[None]
        if a.ndim != 4:
            raise WeightsError(f"{where}: probe tensor {k} has shape {a.shape}, expected (N, C, H, W)")
        if not np.all(np.isfinite(a)):
            raise WeightsError(f"{where}: probe tensor {k} contains NaN or infinity")
        out[k] = a
    n, c, h, w = out["x"].shape
    pm = arch.pad_multiple
    if c != 3 or h % pm or w % pm or h == 0 or w == 0:
        raise WeightsError(f"{where}: probe x has shape {out['x'].shape}, expected (N, 3, H, W) with H "
                           f"and W multiples of {pm}")
    if n * h * w > MAX_PROBE_PIXELS:
        raise WeightsError(f"{where}: probe x has {n * h * w:,} pixels, more than {MAX_PROBE_PIXELS:,}; "
                           f"use one 128x128 crop")
    if out["x"].min() < 0 or out["x"].max() > 1:
        raise WeightsError(f"{where}: probe x must lie in [0, 1] (an 8-bit image divided by 255), "
                           f"found [{out['x'].min():.3g}, {out['x'].max():.3g}]")
    for k, want in _expected_shapes(arch, n, h, w).items():
        if k in out and out[k].shape != want:
            raise WeightsError(f"{where}: probe {k} has shape {out[k].shape}, expected {want} for "
                               f"x of shape {out['x'].shape} and {arch.name}")
    return out


def _run(fm, group: str, x: np.ndarray) -> np.ndarray:
    from ..model.float_model import float_layer

    layers = fm.arch.group(group)
    for l in layers:
        x = float_layer(fm, l.name, x)
    return x


def check_io(fm, probe: dict, where: str) -> dict:
    """Compare ``probe`` with fxlic's float forward of ``fm``; returns
    {tensor: max|diff| / max|probe|} or raises WeightsError naming the first
    tensor (in data-flow order) that differs."""
    p = normalize_probe(fm.arch, probe, where)
    report = {}
    for name, group, src, rnd, cai in STAGES:
        if name not in p:
            continue
        inp = np.floor(p[src] + 0.5) if rnd else p[src]
        got = np.stack([_run(fm, group, inp[i]) for i in range(inp.shape[0])])
        want = p[name]
        diff = np.abs(got - want)
        scale = float(np.abs(want).max())
        err = float(diff.max()) / scale if scale > 0 else float(diff.max())
        report[name] = err
        if not err <= IO_RTOL:
            at = np.unravel_index(int(np.argmax(diff)), diff.shape)
            layers = fm.arch.group(group)
            hint = ("; x_hat must be g_s(round(y)), not model(x)['x_hat']" if name == "x_hat" else "")
            raise WeightsError(
                f"{where}: I/O check: {name} ({cai} = {layers[0].name}-{layers[-1].name}) differs from "
                f"fxlic's float forward by {err:.3g} of max|{name}| (tolerance {IO_RTOL:g}; sample {at[0]}, "
                f"channel {at[1]}, row {at[2]}, column {at[3]}): the trained network is not fxlic's "
                f"{fm.arch.name} (activations such as LeakyReLU(1/8) in h_a / h_s, padding, layout){hint}")
    return report
