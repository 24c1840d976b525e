"""Exact rational helpers shared by the quantizer property tests (no fxlic code)."""
from __future__ import annotations

from fractions import Fraction as F


def p2(e) -> F:
    """2^e as an exact Fraction (e may be negative)."""
    return F(2) ** e


def oracle_floor_log2(m) -> int:
    """floor(log2 m) of a positive number, exactly (m converted to a Fraction)."""
    x = F(m)
    e = x.numerator.bit_length() - x.denominator.bit_length()
    while p2(e) > x:
        e -= 1
    while p2(e + 1) <= x:
        e += 1
    return e
