"""Fast calibration pass (docs/CALIBRATION.md "Fast calibration forward").

The float forward of one calibration image with the GEMM convolutions of
fxlic.model.gemm_conv, in float64 like the reference forward
(float_model.float_forward) but summing in another order.  Per layer and
output channel two numbers bound how far a value of *either* forward may lie
from the exact result (their inputs are the same floats: x = p/255, and
y_hat, z_hat once certain):

* ``e``, proven (Higham, *Accuracy and Stability of Numerical Algorithms*,
  3.1: an inner product of n terms in any order, with or without FMA, errs by
  at most ``gamma_n sum|terms|``, ``gamma_n = n u / (1 - n u)``, ``u = 2^-53``):

      e_o = sum_c S_oc e_c + gamma_n (sum_c S_oc (X_c + 2 e_c) + |b_o|)

  with ``S_oc = sum_taps |w_oc|``, ``X_c`` the fast input's channel maximum
  (the other forward's is within 2 e_c), n = C k^2 + 2; ReLU and
  LeakyReLU(1/8) are 1-Lipschitz and exact.  Inflated by 2^-20 (its own
  rounding) plus 2^-960 (underflow).  It grows with the product of the
  layers' weight norms and past the first layers exceeds what any analysis
  of the reference itself could pin down;
* ``s``, the rounding-noise scale: ``s_o = sqrt(sum_c Q_oc s_c^2) + sqrt(n) u
  (sum_c S_oc X_c + |b_o|)``, ``Q_oc = sum_taps w_oc^2`` (the probabilistic
  bound of Higham and Mary, SIAM J. Sci. Comput. 41(5), 2019, for independent
  rounding errors, carried through the layers as a root sum of squares).

Every build decision taken from the image must be the same for any value
within the margin ``r = min(3 e, LAMBDA s)`` of the fast one (3e: 2e between
the two forwards and e for the rounding of the interval ends; LAMBDA s: a
conservative margin, measured at least 80,000 times the largest difference
seen past AT0):

* SPEC X1 / F1: per channel, the exponent ``f = floor(log2 m)``, for ReLU
  channels also the mux ``7 - floor(m 2^(2-f))``, and whether the channel is
  dead (a ReLU channel's maximum is ``max(0, M)``, M the largest
  pre-activation value, so a channel far below zero is certainly dead).
  Q1's range check (an error, docs/MODEL_FORMAT.md 5) follows from the same
  exponents, except for a maximum of exactly 2^48;
* Eq 1-2 (SPEC O3): ``y_hat = floor(y + 0.5)``, ``z_hat = floor(z + 0.5)``
  element by element.  y_hat and z_hat are then exact, so g_s and h_s start
  from exact inputs (e = s = 0), and the M1 statistics of y_hat are the
  reference's.

Each decision is a non-decreasing function of its statistic, so it is certain
when it is the same at both ends of the interval.  ``fast_pass`` returns an
Uncertain when one is not (or a value is not finite); the caller then runs the
reference forward on that image.  Decisions of the combined images are those
of the reference: the key of the maximum over images is the maximum of the
per-image keys.
"""
from __future__ import annotations

import numpy as np

from ..quant.activations import select_mux
from ..quant.scale import floor_log2
from .float_model import FloatModel, _act
from .gemm_conv import conv2d_gemm, one_blas_thread, tconv2d_gemm

U = 2.0 ** -53
TINY = 2.0 ** -960
DEAD = np.iinfo(np.int64).min
#: safety factor of the conservative margin over the rounding-noise scale s
LAMBDA = 2.0 ** 10


def decision_key(m, relu: bool) -> np.ndarray:
    """Non-decreasing integer key of the decisions a channel maximum ``m`` takes:
    DEAD for m <= 0 (SPEC X1 dead channel), else ``f = floor(log2 m)`` (F1; Q1's
    range limits are powers of two) and, for a ReLU channel, ``8 f + 7 - mux``
    (X1: the eighth of ``m 2^-f`` that selects the mux)."""
    m = np.asarray(m, np.float64)
    key = np.full(m.shape, DEAD, np.int64)
    live = m > 0
    if np.any(live):
        f = floor_log2(m[live])
        key[live] = 8 * f + 7 - select_mux(m[live]) if relu else f
    return key


def certain(stat, r, relu: bool) -> bool:
    """True when every value within ``r`` of ``stat`` (per channel) has the same key."""
    lo, hi = stat - r, stat + r
    return bool(np.all(np.isfinite(hi)) and np.array_equal(decision_key(lo, relu), decision_key(hi, relu)))


def rounded_if_certain(v: np.ndarray, r: np.ndarray):
    """Eq 1-2 as the reference forward computes it, ``floor(v + 0.5)``, or None
    when a value within ``r[c]`` of ``v`` would round differently."""
    r = r[:, None, None]
    lo = np.floor((v - r) + 0.5)
    return lo if np.array_equal(lo, np.floor((v + r) + 0.5)) else None


def layer_bound(w: np.ndarray, b: np.ndarray, e_in: np.ndarray, s_in: np.ndarray, x_in: np.ndarray):
    """Per output channel: the proven bound ``e`` and the rounding-noise scale
    ``s`` of the module docstring, from the inputs' ``e_in``, ``s_in`` and maxima ``x_in``."""
    O, C, k, _ = w.shape
    n = C * k * k + 2
    gamma = n * U / (1 - n * U)
    S, Q = np.abs(w).sum(axis=(2, 3)), (w * w).sum(axis=(2, 3))
    mag = S @ (x_in + 2 * e_in) + np.abs(b)
    e = S @ e_in + gamma * mag
    s = np.sqrt(Q @ (s_in * s_in)) + np.sqrt(n) * U * mag
    return e * (1 + 2.0 ** -20) + TINY, s


def margin(e: np.ndarray, s: np.ndarray) -> np.ndarray:
    """Half-width of the interval a decision must be constant on: 3e where that
    is the smaller (proven), else LAMBDA s (conservative)."""
    return np.minimum(3 * e, LAMBDA * s + TINY)


class Uncertain(str):
    """What ``fast_pass`` could not decide for certain (the layer and the decision)."""


def fast_pass(fm: FloatModel, img, bounds: dict = None):
    """(maxabs per layer, y_hat) of one (3, H, W) uint8 image with every build
    decision certain, or an Uncertain naming the first that is not (then the
    caller uses the reference forward).  ``bounds``, if given, receives each
    layer's per-channel (e, s)."""
    with one_blas_thread():
        return _pass(fm, img, bounds)


def _pass(fm, img, bounds):
    x = np.asarray(img, np.float64) / 255.0
    zero = np.zeros(x.shape[0])
    t, err, top = {"x": x}, {"x": (zero, zero)}, {"x": np.abs(x).reshape(x.shape[0], -1).max(axis=1)}
    maxabs = {}
    for l in fm.arch.layers:
        if l.src not in t:
            continue
        w, b = fm.weights[l.name], fm.biases[l.name]
        op = conv2d_gemm if l.op == "conv" else tconv2d_gemm
        v = op(t[l.src], w, l.stride) + b[:, None, None]
        e, s = layer_bound(w, b, *err[l.src], top[l.src])
        r = margin(e, s)
        out = _act(v, l.act)
        m = np.abs(out).reshape(l.cout, -1).max(axis=1)
        stat = v.reshape(l.cout, -1).max(axis=1) if l.act == "relu" else m
        if bounds is not None:
            bounds[l.name] = (e, s)
        if not (np.all(np.isfinite(m)) and np.all(np.isfinite(r))):
            return Uncertain(f"{l.name}: value not finite")
        if not certain(stat, r, l.act == "relu"):
            return Uncertain(f"{l.name}: channel maximum within the margin of a threshold")
        maxabs[l.name] = m
        t[l.name], err[l.name], top[l.name] = out, (e, s), m
        if l.out in ("y", "z"):
            rounded = rounded_if_certain(out, r)
            if rounded is None:
                return Uncertain(f"{l.name}: {l.out} within the margin of a rounding tie")
            t[l.out], err[l.out], top[l.out] = out, (e, s), m
            h = l.out + "_hat"
            t[h], err[h] = rounded, (np.zeros(l.cout), np.zeros(l.cout))
            top[h] = np.abs(rounded).reshape(l.cout, -1).max(axis=1)
    return maxabs, t["y_hat"]
