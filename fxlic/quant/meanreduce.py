"""Mean-reduced quantization of the analysis output y (Eq 28-30, Table V).

For a channel with a large non-zero mean, y_hat - mu is stored instead of
y_hat, with mu = a * mean(x) + b (Eq 30) predicted from the input image.
The integer form (SPEC M1-M3) keeps a and b as Q16 integers and computes
mu with integer division from the pixel sum, so encoders agree bit for bit.
"""
from __future__ import annotations

import numpy as np

MR_FRAC_BITS = 16


def fit_mean_regression(img_means, chan_means):
    """Least-squares fit of Eq 30, mu = a * xbar + b.  Returns (a, b, r2)."""
    x = np.asarray(img_means, dtype=np.float64)
    y = np.asarray(chan_means, dtype=np.float64)
    if x.size < 2 or np.ptp(x) == 0:
        return 0.0, float(np.mean(y)), 0.0
    a, b = np.polyfit(x, y, 1)
    pred = a * x + b
    ss = np.sum((y - y.mean()) ** 2)
    r2 = 1.0 - np.sum((y - pred) ** 2) / ss if ss > 0 else 1.0
    return float(a), float(b), float(r2)


def mu_from_pixels(pixel_sum: int, n_values: int, a_q: int, b_q: int, bits: int = 8) -> int:
    """SPEC M2: mu = sat_bits(floor((a_q * S + b_q * D) / (D * 2^16) + 1/2)),
    D = 255 * n_values (xbar = S / D in [0, 1]).  Python integers, exact."""
    from ..spec import round_half_up_fraction, sat_signed
    from fractions import Fraction

    d = 255 * n_values
    num = a_q * pixel_sum + b_q * d
    mu = round_half_up_fraction(Fraction(num, d << MR_FRAC_BITS))
    return int(sat_signed(mu, bits))
