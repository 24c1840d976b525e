"""Post-training quantization: float model + calibration images -> IntModel
(paper Sections III-IV; docs/SPEC.md F1-F4, A3, M1).

1. calibrate: float forward of the calibration images, channel-wise max of
   every layer output (Eq 23) and the statistics of y for Eq 30;
2. per layer, in order: weight codes and exponents (Eq 6-14 or Lloyd),
   bias at the accumulator exponent, output exponents and mux (Eq 23-27);
3. if a layer's worst-case accumulator exceeds int32, the spread of its input
   exponents is narrowed (small channels of the producer get a coarser grid)
   until the bound holds (SPEC A3) -- recorded in ``meta['spread_limits']``;
4. mean-reduced channels of y (Eq 28-30, Table V).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..quant.activations import (RELU_HEADROOM_BITS, RELU_HEADROOM_MAX, relu_channel_params,
                                 signed_channel_params)
from ..quant.meanreduce import MR_FRAC_BITS, fit_mean_regression
from ..quant.weights import quantize_weights
from ..spec import INT32_MAX, round_half_up_float
from .float_model import FloatModel, float_forward
from .intmodel import GRID_BITS, PIXEL_EXP, IntLayer, IntModel, ModelError, accumulator_bound

#: input x = p / 255 is represented as p * 2^-8, so AT0's weights absorb 256/255;
#: ST3's output is read as pixel * 2^-8, so ST3 absorbs 255/256 (SPEC F4).
IN_PRESCALE = 256.0 / 255.0
OUT_PRESCALE = 255.0 / 256.0


#: calibration forwards: "fast" (fxlic.model.calib_fast: GEMM convolutions, every
#: decision checked against an error margin, the reference forward for an image
#: where one is not certain) and "reference" (float_model.float_forward); both
#: give the same build decisions (docs/CALIBRATION.md)
CALIB_FORWARDS = ("fast", "reference")


@dataclass
class Calibration:
    maxabs: dict = field(default_factory=dict)  # layer -> (C,) max |output| over images
    y_means: list = field(default_factory=list)  # per image (M,) channel means of round(y)
    y_maxabs: list = field(default_factory=list)  # per image (M,) max |round(y)|
    y_maxdev: list = field(default_factory=list)  # per image (M,) max |round(y) - mean|
    x_means: list = field(default_factory=list)  # per image mean pixel / 255
    clipped: dict = field(default_factory=dict)
    #: per image the forward used: "fast", "reference" or "reference (why the fast one was not certain)"
    forwards: list = field(default_factory=list)

    @property
    def n_images(self) -> int:
        return len(self.x_means)


def _reference_pass(fm: FloatModel, img):
    """(maxabs per layer, y_hat) of one image by the reference float forward."""
    maxabs = {}

    def rec(name, out):
        maxabs[name] = np.abs(out).reshape(out.shape[0], -1).max(axis=1)
    t = float_forward(fm, np.asarray(img, np.float64) / 255.0, record=rec)
    return maxabs, t["y_hat"]


def calibrate(fm: FloatModel, images, progress=None, forward: str = "fast") -> Calibration:
    """Float forward of each (3, H, W) uint8 image (padded), collecting maxima
    (``forward``: one of CALIB_FORWARDS)."""
    from .calib_fast import Uncertain, fast_pass

    if forward not in CALIB_FORWARDS:
        raise ValueError(f"forward must be one of {', '.join(CALIB_FORWARDS)}")
    cal = Calibration()
    for img in images:
        got = fast_pass(fm, img) if forward == "fast" else Uncertain()
        if isinstance(got, Uncertain):
            cal.forwards.append(f"reference ({got})" if got else "reference")
            got = _reference_pass(fm, img)
        else:
            cal.forwards.append("fast")
        maxabs, y_hat = got
        for name, m in maxabs.items():
            cal.maxabs[name] = np.maximum(cal.maxabs.get(name, 0), m)
        yh = y_hat.reshape(fm.arch.M, -1)
        cal.y_means.append(yh.mean(axis=1))
        cal.y_maxabs.append(np.abs(yh).max(axis=1))
        cal.y_maxdev.append(np.abs(yh - yh.mean(axis=1, keepdims=True)).max(axis=1))
        cal.x_means.append(float(np.mean(img)) / 255.0)
        if progress is not None:
            progress(1)
    return cal


def weight_prescale(spec) -> float:
    """SPEC F4: the factor a layer's float weights absorb before quantization
    (AT0 256/255, ST3 255/256, 1 elsewhere)."""
    f = 1.0
    if spec.src == "x":
        f *= IN_PRESCALE
    if spec.out == "pixel":
        f *= OUT_PRESCALE
    return f


def _prescaled(fm: FloatModel, name: str):
    w, b = fm.weights[name], fm.biases[name]
    spec = fm.arch.layer(name)
    f = weight_prescale(spec)
    if f != 1.0:
        w = w * f
    if spec.out == "pixel":
        b = b * OUT_PRESCALE
    return w, b


def _make_layer(im: IntModel, fm: FloatModel, cal: Calibration, name: str, scheme: str,
                use_mux: bool, qw_cache: dict, relu_headroom: int) -> IntLayer:
    spec = fm.arch.layer(name)
    w, b = _prescaled(fm, name)
    if name not in qw_cache:
        qw_cache[name] = quantize_weights(w, scheme)
    qw = qw_cache[name]
    in_exp = im.input_exp_of(spec).copy()
    acc_exp = in_exp.min() + qw.exp
    bias = round_half_up_float(np.ldexp(b, -acc_exp)).astype(np.int64)
    mux = np.zeros(spec.cout, np.int64)
    if spec.out in ("y", "z"):
        out_exp = np.zeros(spec.cout, np.int64)
    elif spec.out == "pixel":
        out_exp = np.full(spec.cout, PIXEL_EXP, np.int64)
    elif spec.act == "relu":
        out_exp, mux = relu_channel_params(np.ldexp(cal.maxabs[name], relu_headroom), use_mux=use_mux)
    else:
        out_exp = signed_channel_params(cal.maxabs[name])
    return IntLayer(spec, qw.codes.astype(np.int8), qw.lut.astype(np.int16), qw.exp.astype(np.int64),
                    bias, in_exp.astype(np.int64), out_exp.astype(np.int64), mux.astype(np.int64))


def build_int_model(fm: FloatModel, cal: Calibration, weight_scheme: str = "cw-nlq",
                    act_quant: str = "nlq-mux", mean_reduction: bool = True,
                    relu_headroom: int = RELU_HEADROOM_BITS, latents: str = "integer",
                    grid_bits: int = GRID_BITS, ha_grid: bool = True) -> IntModel:
    """Quantize ``fm`` with calibration statistics ``cal`` into a validated IntModel.

    ``latents``: "integer" (SPEC O3: y_hat = round(y), z_hat = round(z)) or
    "offset" (SPEC O5, CompressAI's semantics: y_hat = mean + round(y - mean),
    z_hat = median + round(z - median), means and medians on the 2^-G grid, G = ``grid_bits``).
    ``ha_grid`` (offset-latent hyperpriors): HA0 reads y on the 2^-G grid (SPEC O6,
    CompressAI's h_a on the unrounded y) instead of O3's integer y.

    ReLU activations get ``relu_headroom`` bits above their calibrated maximum
    before the exponent and mux of Eq 23-27 are chosen; the hyper path's
    signed activations and y, z are not changed."""
    relu_headroom = int(relu_headroom)
    if not 0 <= relu_headroom <= RELU_HEADROOM_MAX:
        raise ValueError(f"relu_headroom must be 0..{RELU_HEADROOM_MAX} bits")
    if act_quant not in ("nlq-mux", "lq"):
        raise ValueError("act_quant must be 'nlq-mux' or 'lq'")
    if latents not in ("integer", "offset"):
        raise ValueError("latents must be 'integer' or 'offset'")
    fm.validate()
    im = IntModel(fm.arch, {})
    if latents == "offset":
        im.grid_bits = int(grid_bits)
        im.offset_q = bottleneck_offsets(fm, im.grid_bits)
        if ha_grid and fm.arch.kind == "hyperprior":
            im.ha_grid_bits = im.grid_bits  # SPEC O6
    qw_cache: dict = {}
    spread_limits = {}
    _mean_reduction(im, cal, enabled=mean_reduction and latents == "integer")  # O5: no M1
    for spec in fm.arch.layers:
        L = _make_layer(im, fm, cal, spec.name, weight_scheme, act_quant == "nlq-mux", qw_cache,
                        relu_headroom)
        im.layers[spec.name] = L
        bound = accumulator_bound(im, spec.name).max()
        if bound > INT32_MAX:
            if spec.src in ("x", "y", "y_hat", "z_hat"):
                raise ModelError(f"{spec.name}: accumulator bound {bound} exceeds int32 and its "
                                 f"input exponents are fixed")
            P = im.layers[spec.src]
            base = P.out_exp.copy()
            spread = int(base.max() - base.min())
            while bound > INT32_MAX and spread > 0:
                spread -= 1
                P.out_exp = np.maximum(base, base.max() - spread)
                L = _make_layer(im, fm, cal, spec.name, weight_scheme, act_quant == "nlq-mux",
                                qw_cache, relu_headroom)
                im.layers[spec.name] = L
                bound = accumulator_bound(im, spec.name).max()
            spread_limits[spec.src] = spread
            if bound > INT32_MAX:
                raise ModelError(f"{spec.name}: accumulator bound {bound} exceeds int32 even with "
                                 f"equal input exponents")
    im.entropy = entropy_tables(fm, im.offset_q, im.grid_bits)
    im.meta = {"weight_scheme": weight_scheme, "act_quant": act_quant, "latents": latents,
               "calibration_images": cal.n_images, "spread_limits": spread_limits,
               "relu_headroom_bits": relu_headroom}
    im.validate()
    return im


def _mean_reduction(im: IntModel, cal: Calibration, enabled: bool):
    """Eq 28-30 / Table V: a channel of y is mean-reduced when its calibration
    values need more than 8 bits (max|y| > 127) and removing the predicted mean
    lowers the bit-depth; a, b are fitted by least squares and kept in Q16."""
    M = im.arch.M
    im.mr_mask = np.zeros(M, dtype=bool)
    im.mr_a_q = np.zeros(M, dtype=np.int64)
    im.mr_b_q = np.zeros(M, dtype=np.int64)
    if not enabled or cal.n_images == 0:
        return
    ymax = np.max(cal.y_maxabs, axis=0)
    means = np.asarray(cal.y_means)
    devs = np.max(cal.y_maxdev, axis=0)
    for c in range(M):
        if ymax[c] <= 127:
            continue
        a, b, _ = fit_mean_regression(cal.x_means, means[:, c])
        # bit-depth of |y| vs |y - mu| (mu = predicted mean; dev bounds the residual)
        if np.ceil(np.log2(devs[c] + 1)) < np.ceil(np.log2(ymax[c] + 1)):
            im.mr_mask[c] = True
            im.mr_a_q[c] = round_half_up_float(a * (1 << MR_FRAC_BITS))
            im.mr_b_q[c] = round_half_up_float(b * (1 << MR_FRAC_BITS))


#: HS5 scales are compared at 16 fractional bits; means keep 2 fractional bits,
#: which select one of 3 mean-offset table families (SPEC E1)
SCALE_FRAC_BITS = 16
MEAN_FRAC_BITS = 2


def bottleneck_offsets(fm: FloatModel, grid_bits: int) -> np.ndarray:
    """SPEC O5: the bottleneck medians on the 2^-G grid, R4(median * 2^G)."""
    from ..entropy.cdf import factorized_params_from_state_dict
    from .intmodel import OFFSET_REAL_MAX, offset_q_max

    if not fm.entropy:
        raise ModelError("the float model has no entropy-bottleneck parameters")
    med = factorized_params_from_state_dict(fm.entropy).quantiles[:, 0, 1]
    q = np.asarray(round_half_up_float(np.ldexp(med, grid_bits)), np.int64).reshape(-1)
    if np.any(np.abs(q) > offset_q_max(grid_bits)):
        raise ModelError(f"bottleneck medians beyond +-{OFFSET_REAL_MAX} (offset latents, SPEC O5)")
    return q


def entropy_tables(fm: FloatModel, offset_q=None, grid_bits: int = None) -> dict:
    """Integer entropy tables (docs/ENTROPY.md) built once from the float
    entropy parameters: ``fact.*`` for the factorized bottleneck (z of a
    hyperprior, y of a factorized model), ``gauss.*`` for the Gaussian y model."""
    from ..entropy.cdf import factorized_params_from_state_dict
    from ..entropy.gaussian import FactorizedTables, GaussianTables

    if not fm.entropy:
        raise ModelError("the float model has no entropy-bottleneck parameters")
    out = {}
    fact = FactorizedTables.build(factorized_params_from_state_dict(fm.entropy), offset_q=offset_q,
                                  grid_bits=grid_bits)
    out.update({f"fact.{k}": v for k, v in fact.to_arrays().items()})
    if fm.arch.kind == "hyperprior":
        g = GaussianTables.build(scale_frac_bits=SCALE_FRAC_BITS, mean_frac_bits=MEAN_FRAC_BITS)
        out.update({f"gauss.{k}": v for k, v in g.to_arrays().items()})
    return out
