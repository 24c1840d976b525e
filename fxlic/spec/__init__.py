"""Normative integer arithmetic of fxlic (docs/SPEC.md, rules R1-R4, W1-W3).

Every rounding, shift and saturation in the integer path is one of the functions
exported here; nothing else in fxlic rounds.
"""
from .rounding import (  # noqa: F401
    SPEC_VERSION,
    INT32_MIN,
    INT32_MAX,
    rshift_rhu,
    requant_shift,
    saturate,
    saturate_array,
    sat_signed,
    round_half_up_float,
    round_half_up_fraction,
)
