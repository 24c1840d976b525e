"""Markdown formatting of the report's numbers: missing values as a dash,
signed values with their unit, pipe tables."""
from __future__ import annotations

import math


def f(v, fmt="{:.3f}", none="–"):
    """``v`` formatted, or ``none`` when missing or not finite."""
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return none
    return fmt.format(v)


def sgn(v, nd=3, none="–"):
    """``v`` with its sign and ``nd`` decimals, or ``none``."""
    return f(v, "{:+.%df}" % nd, none)


def with_unit(v, nd, unit, none="n/a"):
    """Signed value with its unit, or ``none`` alone (no dangling unit)."""
    return none if v is None or (isinstance(v, float) and not math.isfinite(v)) else f"{sgn(v, nd)} {unit}"


def md_table(header, rows):
    """A markdown pipe table."""
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)
