"""Entropy coding of fxlic (docs/ENTROPY.md).

* ``rans`` / ``rans_numba``: range-ANS coder byte-compatible with CompressAI's
  ``ans`` coder (reference plain-integer twin and Numba twin);
* ``cdf``: integer CDF tables (CompressAI ``pmf_to_quantized_cdf``, Gaussian
  and factorized tables, the integer scale-index rule);
* ``gaussian``: the integer y model (means/scales at fixed point) and the
  factorized z model.
"""
from .gaussian import (  # noqa: F401
    FactorizedTables,
    GaussianTables,
    decode_factorized,
    decode_y,
    encode_factorized,
    encode_y,
    estimate_bits,
    estimate_factorized_bits,
    estimate_y_bits,
)
