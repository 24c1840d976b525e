"""Activation quantization of Section IV-A: channel-wise scale (Eq 23),
mux selection among the four NLQ codebooks (Eq 24-27), LQ on the hyper path.

Channel parameters come from calibration maxima.  For a channel with
calibration max ``m`` and ``f = floor(log2 m)``:
  * ReLU (alpha = 1): so = o * 2^(-f-1); codebook ``act_nlq(mux)`` on the grid
    2^-(N+1): real value = level * 2^(f - N) (SPEC F2);
  * LeakyReLU / none (alpha = 1/2): so = o * 2^(-f-2); signed LQ on the grid
    2^-N: real value = code * 2^(f + 2 - N).
"""
from __future__ import annotations

import numpy as np

from .codebook import MUX_INTERVALS, act_lq_signed, act_nlq
from .scale import floor_log2, sf_exponent

RELU_ALPHA_LOG2 = 0  # alpha = 1 after ReLU
SIGNED_ALPHA_LOG2 = -1  # alpha = 1/2 after LeakyReLU or no activation

#: bits of headroom above the calibrated maximum for the ReLU (main-path)
#: activations: the codebook range covers 2^h x the largest value seen on the
#: calibration images.  Nine calibration images under-represent content such
#: as strongly saturated colours, whose activations then clip (up to -0.5 dB on
#: single Kodak images with h = 0); h = 1 costs one bit of precision in those
#: layers (docs/CALIBRATION.md, tools/act_headroom.py).
RELU_HEADROOM_BITS = 1
#: the largest headroom accepted (``build_int_model``, ``fxlic quantize --relu-headroom``)
RELU_HEADROOM_MAX = 4


def select_mux(maxabs) -> np.ndarray:
    """Eq 24-27: mux per channel from the calibration max |o| (alpha cancels).

    so_max / alpha = m * 2^(-f-1) lies in [1/2, 1); its eighth
    floor(8 * so_max / alpha) = floor(m * 2^(2-f)) in {4, 5, 6, 7} selects
    mux 3, 2, 1, 0 (computed exactly: power-of-two scaling of a float).
    Dead channels (m = 0) get mux 0.
    """
    m = np.asarray(maxabs, dtype=np.float64)
    out = np.zeros(m.shape, dtype=np.int64)
    live = m > 0
    if np.any(live):
        f = floor_log2(m[live])
        eighth = np.floor(np.ldexp(m[live], 2 - f)).astype(np.int64)
        out[live] = 7 - eighth
    assert np.all((out >= 0) & (out <= 3))
    return out


def mux_interval(mux: int) -> tuple:
    """Interval [lo, hi) of max|so|/alpha, in eighths, that selects ``mux``."""
    return MUX_INTERVALS[mux]


def relu_channel_params(maxabs, bits: int = 8, use_mux: bool = True):
    """(exp, mux) per channel for a ReLU layer: real = level * 2^exp.

    ``use_mux=False`` gives LQ (every channel on the uniform mux-0 codebook).
    """
    sfe = sf_exponent(maxabs, RELU_ALPHA_LOG2)
    g = act_nlq(0, bits).frac_bits
    mux = select_mux(maxabs) if use_mux else np.zeros(np.shape(maxabs), dtype=np.int64)
    return -g - sfe, mux


def signed_channel_params(maxabs, bits: int = 8):
    """exp per channel for a signed LQ layer (LeakyReLU / none): real = code * 2^exp."""
    sfe = sf_exponent(maxabs, SIGNED_ALPHA_LOG2)
    return -act_lq_signed(bits).frac_bits - sfe


def quantize_activation_float(o, exp, mux=None, bits: int = 8) -> np.ndarray:
    """Float simulation of the activation quantizer (analysis / training).

    ``o``: (C, H, W) real activations, ``exp``: per-channel exponent, ``mux``:
    per-channel mux for unsigned NLQ (None = signed LQ).  Returns the levels.
    """
    o = np.asarray(o, dtype=np.float64)
    out = np.empty(o.shape, dtype=np.int64)
    for c in range(o.shape[0]):
        cb = act_lq_signed(bits) if mux is None else act_nlq(int(mux[c]), bits)
        out[c] = cb.quantize_float(np.ldexp(o[c], -int(exp[c])))
    return out
