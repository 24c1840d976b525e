"""Integer CDF tables for the rANS coder (model-build time; floats allowed).

Implements docs/ENTROPY.md section 2 and section 8:

* ``pmf_to_quantized_cdf``: CompressAI ``compressai/cpp_exts/ops/ops.cpp``
  ``pmf_to_quantized_cdf`` (float32 pmf, round-half-away, integer rescale,
  frequency stealing), bit for bit, with CompressAI's habit of appending the
  tail mass as the last (escape) entry (``EntropyModel._pmf_to_cdf``).
* ``gaussian_scale_table``: CompressAI ``compressai.models.google.get_scale_table``
  (``exp(linspace(log(min), log(max), levels))``), in float64.
* ``build_gaussian_tables``: CompressAI ``GaussianConditional.update``.
* ``scale_thresholds`` / ``scale_index``: CompressAI
  ``GaussianConditional.build_indexes`` for integer scales (integer only; run by
  the decoder).
* ``build_factorized_tables``: CompressAI ``EntropyBottleneck.update`` for a
  density on the integer ``z_hat = round(z)`` (fxlic codes z_hat directly, not
  ``round(z - median)``; docs/ENTROPY.md 8.2).

The float evaluations here are float64 (scipy/numpy) where CompressAI uses
float32 torch kernels, so an fxlic table can differ from a CompressAI model's
``_quantized_cdf`` when a float lands within an ulp of a rounding boundary.
The integer tables (cdfs, cdf_sizes, offsets, thresholds) produced here are
the normative objects: they are stored with the model, never recomputed by a
decoder.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .common import PRECISION, check_tables


# ---------------------------------------------------------------------------
# pmf -> quantized cdf
# ---------------------------------------------------------------------------
def pmf_to_quantized_cdf(pmf, tail_mass=None, precision: int = PRECISION) -> np.ndarray:
    """CompressAI's C++ ``pmf_to_quantized_cdf(pmf + [tail_mass], precision)``.

    ``pmf``: probabilities (any float dtype; converted to float32 exactly as
    pybind11 converts a Python float list to ``std::vector<float>``).
    ``tail_mass``: appended as the last entry (the escape symbol), as
    ``EntropyModel._pmf_to_cdf`` does; ``None`` appends nothing.
    Returns an int32 cdf of ``len(pmf) + 2`` entries (``+1`` if tail_mass is
    None) with cdf[0] = 0, cdf[-1] = 2^precision, strictly increasing.

    Algorithm (ops.cpp): q_i = round_half_away(p_i * 2^precision) (float32
    product, exact); total = sum q_i; f_i = floor(2^precision * q_i / total);
    cdf = [0, partial sums of f], last entry forced to 2^precision; then for
    i = 0, 1, ...: if cdf[i] == cdf[i+1], steal one unit from the symbol j
    with the smallest frequency > 1 (lowest j among ties), shifting the cdf
    entries between j and i by one.
    """
    p = np.asarray(pmf, dtype=np.float64).reshape(-1)
    if tail_mass is not None:
        p = np.concatenate([p, np.asarray(tail_mass, dtype=np.float64).reshape(-1)])
    p32 = p.astype(np.float32)
    if np.any(~np.isfinite(p32)) or np.any(p32 < 0):
        raise ValueError("Invalid `pmf`, non-finite or negative element found")
    if precision < 1 or precision > 30:
        raise ValueError("precision must be in [1, 30]")
    one = 1 << precision
    x = p32.astype(np.float64) * float(one)  # exact: float32 value times 2^k
    f = np.floor(x)
    q = f + (x - f >= 0.5)  # std::round on non-negative values (exact)
    if np.any(q >= 2.0 ** 31):
        raise ValueError("Invalid `pmf`: element too large")
    q = q.astype(np.int64)
    total = int(q.sum())
    if total == 0:
        raise ValueError("Invalid `pmf`: at least one element must have a non-zero probability.")
    if total >= 1 << 31:
        raise ValueError("Invalid `pmf`: sum too large")
    if q.size + 1 > one + 1:
        raise ValueError("pmf too long for the precision")
    freq = (one * q) // total
    cdf = np.zeros(q.size + 1, dtype=np.int64)
    np.cumsum(freq, out=cdf[1:])
    cdf[-1] = one
    # Stealing, on the frequencies d = diff(cdf): a steal between j and i
    # changes only d[j] (-1) and d[i] (+1).  Zero frequencies are never created
    # (d[j] > 1 before the steal), so the i visited are exactly the initial
    # zeros, in increasing order, as in ops.cpp's scan.
    d = np.diff(cdf)
    big = np.iinfo(np.int64).max
    for i in np.flatnonzero(d == 0).tolist():
        cand = np.where(d > 1, d, big)
        best = int(np.argmin(cand))  # first j with the smallest freq > 1
        if cand[best] == big:
            raise ValueError("pmf too long for the precision (nothing to steal)")
        d[best] -= 1
        d[i] += 1
    cdf = np.concatenate([[0], np.cumsum(d)])
    assert cdf[0] == 0 and cdf[-1] == one and np.all(np.diff(cdf) > 0)
    return cdf.astype(np.int32)


def _pad_tables(cdf_list):
    width = max(c.size for c in cdf_list)
    out = np.zeros((len(cdf_list), width), dtype=np.int32)
    for i, c in enumerate(cdf_list):
        out[i, : c.size] = c
    sizes = np.array([c.size for c in cdf_list], dtype=np.int32)
    return out, sizes


# ---------------------------------------------------------------------------
# Gaussian conditional (mean-scale hyperprior, y)
# ---------------------------------------------------------------------------
SCALES_MIN = 0.11
SCALES_MAX = 256
SCALES_LEVELS = 64


def gaussian_scale_table(min: float = SCALES_MIN, max: float = SCALES_MAX,
                         levels: int = SCALES_LEVELS) -> np.ndarray:
    """CompressAI ``get_scale_table``: ``exp(linspace(log(min), log(max), levels))``.

    float64 (CompressAI: float32 torch).  Evaluated with ``math.log/exp`` on
    the linspace points to avoid depending on NumPy's SIMD transcendental
    kernels.
    """
    lo, hi = math.log(min), math.log(max)
    pts = np.linspace(lo, hi, int(levels))
    return np.array([math.exp(float(v)) for v in pts], dtype=np.float64)


def _standardized_cumulative(x):
    """CompressAI ``GaussianConditional._standardized_cumulative``:
    0.5 * erfc(-(2^-0.5) * x)."""
    from scipy.special import erfc
    return 0.5 * erfc(-(2 ** -0.5) * np.asarray(x, dtype=np.float64))


def build_gaussian_tables(scale_table, tail_mass: float = 1e-9, precision: int = PRECISION):
    """CompressAI ``GaussianConditional.update`` -> ``(cdfs, cdf_sizes, offsets)``.

    multiplier = -Phi^-1(tail_mass / 2); pmf_center_i = ceil(s_i * multiplier);
    pmf_length_i = 2 * pmf_center_i + 1; for k in [0, pmf_length_i):
    d = |k - pmf_center_i|, pmf = Phi((0.5 - d)/s_i) - Phi((-0.5 - d)/s_i);
    tail = 2 * Phi((-0.5 - pmf_center_i)/s_i); cdf_i =
    pmf_to_quantized_cdf(pmf, tail); offsets_i = -pmf_center_i;
    cdf_sizes_i = pmf_length_i + 2; rows zero-padded to max_length + 2.
    ``s_i * multiplier`` is rounded to float32 before the ceil, as CompressAI
    computes it on a float32 tensor.
    """
    from scipy.special import ndtri  # = scipy.stats.norm.ppf (its _ppf)

    s = np.asarray(scale_table, dtype=np.float64).reshape(-1)
    if s.size == 0 or np.any(~np.isfinite(s)) or np.any(s <= 0) or np.any(np.diff(s) < 0):
        raise ValueError("scale_table must be positive, finite and sorted")
    multiplier = float(-ndtri(tail_mass / 2))
    prod32 = s.astype(np.float32) * np.float32(multiplier)
    pmf_center = np.ceil(prod32.astype(np.float64)).astype(np.int64)
    pmf_length = 2 * pmf_center + 1
    cdf_list = []
    for i in range(s.size):
        c = int(pmf_center[i])
        d = np.abs(np.arange(2 * c + 1, dtype=np.float64) - c)
        upper = _standardized_cumulative((0.5 - d) / s[i])
        lower = _standardized_cumulative((-0.5 - d) / s[i])
        pmf = upper - lower
        tail = 2.0 * float(_standardized_cumulative((-0.5 - c) / s[i]))
        cdf_list.append(pmf_to_quantized_cdf(pmf, tail, precision))
    cdfs, sizes = _pad_tables(cdf_list)
    # (rows padded to max(pmf_length) + 2, as CompressAI)
    assert np.array_equal(sizes, (pmf_length + 2).astype(np.int32))
    return cdfs, sizes, (-pmf_center).astype(np.int32)


def build_gaussian_offset_tables(scale_table, mean_frac_bits: int, tail_mass: float = 1e-9,
                                 precision: int = PRECISION):
    """Tables of the fractional-mean families (docs/ENTROPY.md, "mean offsets").

    Family f = 0 .. 2^(F-1) (F = mean_frac_bits) holds the tables of
    N(f / 2^F, s_i) over integer bins [k - 1/2, k + 1/2); family 0 is exactly
    ``build_gaussian_tables`` (CompressAI).  Families f > 0 use the support
    k in [-c-1, c+1] (c = CompressAI's pmf_center), offsets -(c+1), and the
    mass outside it as tail.  Row r = f * len(scale_table) + i.
    Returns (cdf_list, sizes, offsets) with ragged rows.
    """
    from scipy.special import ndtr, ndtri

    cdfs0, sizes0, offs0 = build_gaussian_tables(scale_table, tail_mass, precision)
    rows = [cdfs0[i, : sizes0[i]].copy() for i in range(len(sizes0))]
    offs = list(offs0)
    s = np.asarray(scale_table, dtype=np.float64).reshape(-1)
    multiplier = float(-ndtri(tail_mass / 2))
    centers = np.ceil((s.astype(np.float32) * np.float32(multiplier)).astype(np.float64)).astype(np.int64)
    F = int(mean_frac_bits)
    for f in range(1, (1 << (F - 1)) + 1 if F >= 1 else 1):
        delta = math.ldexp(f, -F)
        for i in range(s.size):
            c = int(centers[i]) + 1
            k = np.arange(-c, c + 1, dtype=np.float64)
            hi = (k + 0.5 - delta) / s[i]
            lo = (k - 0.5 - delta) / s[i]
            # upper half via the survival function: no cancellation in the right tail
            pmf = np.where(k - delta > 0, ndtr(-lo) - ndtr(-hi), ndtr(hi) - ndtr(lo))
            tail = float(ndtr((-c - 0.5 - delta) / s[i]) + ndtr(-(c + 0.5 - delta) / s[i]))
            rows.append(pmf_to_quantized_cdf(pmf, tail, precision))
            offs.append(-c)
    sizes = np.array([r.size for r in rows], dtype=np.int32)
    return rows, sizes, np.array(offs, dtype=np.int32)


def scale_thresholds(scale_table, frac_bits: int) -> np.ndarray:
    """T_i = floor(s_i * 2^frac_bits) for i < len(scale_table) - 1 (int64).

    With these, ``scale_index`` on an integer scale ``scale_q`` (real value
    scale_q * 2^-frac_bits) equals CompressAI ``build_indexes`` on that real
    value: scale_q/2^f > s_i  <=>  scale_q > floor(s_i * 2^f).
    (``s * 2^f`` is exact in float64, so the floor is exact.)
    """
    s = np.asarray(scale_table, dtype=np.float64).reshape(-1)
    if frac_bits < 0 or frac_bits > 40:
        raise ValueError("frac_bits must be in [0, 40]")
    if np.any(np.diff(s) < 0):
        raise ValueError("scale_table must be sorted")
    t = [math.floor(math.ldexp(float(v), int(frac_bits))) for v in s[:-1]]
    return np.array(t, dtype=np.int64)


def scale_index(scale_q, thresholds) -> np.ndarray:
    """Table index of integer scales: index = #{i : scale_q > T_i} (int32).

    CompressAI ``build_indexes``: start at len-1, subtract one for every
    s_i (i < len-1) with scale <= s_i.  Integer only (decoder path).
    Scales below the lower bound 0.11 get index 0 either way (lower_bound_scale
    only raises them to s_0).
    """
    t = np.asarray(thresholds, dtype=np.int64)
    q = np.asarray(scale_q)
    if q.size and q.dtype.kind not in "iu":
        raise TypeError("scale_q must be an integer array")
    return np.searchsorted(t, q.astype(np.int64), side="left").astype(np.int32)


# ---------------------------------------------------------------------------
# Factorized density (EntropyBottleneck: z in the hyperprior, y in factorized)
# ---------------------------------------------------------------------------
@dataclass
class FactorizedParams:
    """EntropyBottleneck parameters as float64 arrays.

    matrices[i]: (C, f_{i+1}, f_i); biases[i]: (C, f_{i+1}, 1);
    factors[i]: (C, f_{i+1}, 1) for i < len(filters); quantiles: (C, 1, 3).
    """
    matrices: list
    biases: list
    factors: list
    quantiles: np.ndarray


def factorized_params_from_state_dict(sd, prefix: str = "entropy_bottleneck.") -> FactorizedParams:
    """Collect EntropyBottleneck parameters from a name -> array mapping.

    Accepts the names of tools/train.py (``_matrices.{i}``, ``_biases.{i}``,
    ``_factors.{i}``), of CompressAI >= 1.2 (``matrices.{i}``, ...) and of
    older CompressAI (``_matrix{i}``, ``_bias{i}``, ``_factor{i}``), plus
    ``quantiles``.
    """
    def get(kind_list):
        out = []
        i = 0
        while True:
            for form in kind_list:
                k = prefix + form.format(i=i)
                if k in sd:
                    out.append(np.asarray(sd[k], dtype=np.float64))
                    break
            else:
                return out
            i += 1

    mats = get(["_matrices.{i}", "matrices.{i}", "_matrix{i}"])
    biases = get(["_biases.{i}", "biases.{i}", "_bias{i}"])
    factors = get(["_factors.{i}", "factors.{i}", "_factor{i}"])
    if prefix + "quantiles" not in sd:
        raise KeyError(prefix + "quantiles")
    return FactorizedParams(mats, biases, factors, np.asarray(sd[prefix + "quantiles"], dtype=np.float64))


def _softplus(x):
    return np.logaddexp(0.0, x)


def logits_cumulative(params: FactorizedParams, x: np.ndarray) -> np.ndarray:
    """CompressAI ``EntropyBottleneck._logits_cumulative`` in float64.

    x: (C, 1, N) -> (C, 1, N).  For each layer: logits = softplus(M) @ logits
    + b; then (all but the last) logits += tanh(f) * tanh(logits).
    """
    logits = np.asarray(x, dtype=np.float64)
    for i, (m, b) in enumerate(zip(params.matrices, params.biases)):
        logits = np.matmul(_softplus(m), logits) + b
        if i < len(params.factors):
            logits = logits + np.tanh(params.factors[i]) * np.tanh(logits)
    return logits


def _sigmoid(x):
    from scipy.special import expit
    return expit(x)


def factorized_likelihood(params: FactorizedParams, values) -> np.ndarray:
    """P(bin [v - 1/2, v + 1/2]) per channel, with the sign trick of
    tools/train.py / CompressAI < 1.2 (``|sigmoid(s*upper) - sigmoid(s*lower)|``,
    s = -sign(lower + upper), taking s = +1 when the sum is 0).
    values: (C, 1, N) float64."""
    v = np.asarray(values, dtype=np.float64)
    lower = logits_cumulative(params, v - 0.5)
    upper = logits_cumulative(params, v + 0.5)
    sign = np.where(lower + upper > 0, -1.0, 1.0)
    return np.abs(_sigmoid(sign * upper) - _sigmoid(sign * lower)), lower, upper


def build_factorized_tables(params: FactorizedParams, tail_mass: float = 1e-9,
                            precision: int = PRECISION, offset_q=None, grid_bits: int = None):
    """Per-channel integer tables for the integer symbol ``z_hat`` -> (cdfs,
    cdf_sizes, offsets); table index = channel.

    CompressAI ``EntropyBottleneck.update`` adapted to integer bins
    (docs/ENTROPY.md 8.2):
      median = quantiles[c,0,1];  minima = max(0, ceil(median - quantiles[c,0,0]));
      maxima = max(0, ceil(quantiles[c,0,2] - median));
      center = round_half_up(median) (SPEC R4);  offset = center - minima;
      pmf_length = minima + maxima + 1;  pmf[k] = P(bin of n = offset + k);
      tail = sigmoid(lower[0]) + sigmoid(-upper[-1]);
      cdf = pmf_to_quantized_cdf(pmf, tail).
    So symbol = z_hat - offset; z_hat = offset + k is coded without escape for
    0 <= k < pmf_length, everything else through the escape.
    ``tail_mass`` is kept for signature symmetry (the tail is measured).

    ``offset_q`` (C,) (offset latents, SPEC O5; CompressAI's own semantics): the
    symbol is ``n = round(z - m)`` with m = offset_q * 2^-G the median on the grid of
    ``grid_bits`` G fractional bits;
    center = 0, so offset = -minima and pmf[k] = P(bin of m + offset + k).
    """
    from fxlic.spec import round_half_up_float

    q = np.asarray(params.quantiles, dtype=np.float64)
    if q.ndim != 3 or q.shape[1:] != (1, 3):
        raise ValueError("quantiles must have shape (C, 1, 3)")
    if not np.all(np.isfinite(q)):
        raise ValueError("quantiles must be finite")
    C = q.shape[0]
    medians = q[:, 0, 1]
    minima = np.maximum(np.ceil(medians - q[:, 0, 0]), 0).astype(np.int64)
    maxima = np.maximum(np.ceil(q[:, 0, 2] - medians), 0).astype(np.int64)
    if offset_q is None:
        center = np.asarray(round_half_up_float(medians), dtype=np.int64).reshape(-1)
        shift = np.zeros(C)
    else:
        if grid_bits is None:
            raise ValueError("offset_q needs grid_bits (SPEC O5)")
        center = np.zeros(C, np.int64)
        shift = np.ldexp(np.asarray(offset_q, np.float64).reshape(C), -int(grid_bits))
    offsets = center - minima
    pmf_length = minima + maxima + 1
    max_length = int(pmf_length.max())
    samples = (offsets[:, None] + np.arange(max_length)[None, :]).astype(np.float64) + shift[:, None]
    pmf, lower, upper = factorized_likelihood(params, samples[:, None, :])
    cdf_list = []
    for c in range(C):
        n = int(pmf_length[c])
        tail = float(_sigmoid(lower[c, 0, 0]) + _sigmoid(-upper[c, 0, n - 1]))
        cdf_list.append(pmf_to_quantized_cdf(pmf[c, 0, :n], tail, precision))
    cdfs, sizes = _pad_tables(cdf_list)
    if np.any(offsets < -(1 << 31)) or np.any(offsets >= (1 << 31)):
        raise ValueError("factorized offsets outside int32")
    return cdfs, sizes, offsets.astype(np.int32)


def validate_tables(cdfs, cdf_sizes, offsets):
    """Check a table set against docs/ENTROPY.md 2 (raises ValueError)."""
    return check_tables(cdfs, cdf_sizes, offsets)
