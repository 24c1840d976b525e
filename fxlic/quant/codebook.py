"""Piecewise-uniform codebooks: LQ (Eq 8), NLQ (Eq 12-13), weight NLQ (Eq 14),
activation NLQ with mux (Eq 24-27).  docs/SPEC.md section Q.

A codebook is data: a list of magnitude segments ``[lo, hi)`` on a fine
integer grid (unit ``2^-G`` of the scaled value ``sw`` or ``so``), each with
its step ``2^k`` fine units (Eq 12: QP ``2^-N_i`` = ``2^(k-G)``), plus the
saturation bounds.  Every segment boundary is a multiple of the coarser step on
either side, so boundaries are levels of both neighbours and "find the
segment of |t|, then round t on that segment's grid" always yields a level.

Quantization rule Q1 (SPEC): segment by the exact magnitude |t|; inside the
segment ``L = 2^k * floor(t / 2^k + 1/2)`` (rule R1/R4, ties toward
+infinity); then saturate to ``[min_level, max_level]``.

Codes: ``code = sign(L) * index(|L|)`` where ``index`` is the position of
``|L|`` in the sorted magnitude list.  For unsigned codebooks the code is the
index (0..2^N-1); for the symmetric weight codebooks it is a sign-magnitude
index stored as int8 in [-(2^(N-1)-1), 2^(N-1)-1]; for the signed LQ
activation codebook the code equals the level (two's complement int8).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property, lru_cache

import numpy as np

from ..spec import rshift_rhu, round_half_up_float


@dataclass(frozen=True)
class Segment:
    """Magnitudes in ``[lo, hi)`` quantized with step ``2^k`` (fine units)."""

    lo: int
    hi: int
    k: int


@dataclass(frozen=True)
class Codebook:
    """Piecewise-uniform quantizer on a fine grid of ``2^-frac_bits``."""

    name: str
    frac_bits: int
    segments: tuple
    min_level: int
    max_level: int

    def __post_init__(self):
        prev = 0
        for seg in self.segments:
            if seg.lo != prev or seg.hi <= seg.lo:
                raise ValueError(f"{self.name}: segments must tile [0, hi) in order")
            if seg.lo % (1 << seg.k) or (seg.hi % (1 << seg.k)):
                raise ValueError(f"{self.name}: boundary not on the segment grid")
            prev = seg.hi
        if self.max_level >= prev + 1 or -self.min_level > prev:
            raise ValueError(f"{self.name}: saturation bound outside the segments")

    @property
    def signed(self) -> bool:
        return self.min_level < 0

    @cached_property
    def magnitudes(self) -> np.ndarray:
        """Sorted non-negative level magnitudes (int64), index = |code|."""
        lim = max(self.max_level, -self.min_level)
        mags = []
        for seg in self.segments:
            mags.extend(m for m in range(seg.lo, seg.hi, 1 << seg.k) if m <= lim)
        return np.asarray(mags, dtype=np.int64)

    @property
    def n_levels(self) -> int:
        """Number of distinct levels (sign-magnitude zero counted once)."""
        m = self.magnitudes
        pos = int(np.sum(m <= self.max_level))
        neg = int(np.sum((m > 0) & (m <= -self.min_level)))
        return pos + neg

    @cached_property
    def levels(self) -> np.ndarray:
        """All levels in increasing order (int64)."""
        m = self.magnitudes
        neg = -m[(m > 0) & (m <= -self.min_level)][::-1]
        return np.concatenate([neg, m[m <= self.max_level]])

    @property
    def code_range(self) -> tuple:
        """(min code, max code) a valid code can take."""
        m = self.magnitudes
        hi = int(np.searchsorted(m, self.max_level))
        lo = -int(np.searchsorted(m, -self.min_level)) if self.signed else 0
        return lo, hi

    def lut(self) -> np.ndarray:
        """Code -> level table over ``code_range`` (entry i is code lo + i)."""
        lo, hi = self.code_range
        codes = np.arange(lo, hi + 1, dtype=np.int64)
        return np.sign(codes) * self.magnitudes[np.abs(codes)]

    # ---- quantization --------------------------------------------------
    def _segment_index_of_magnitude(self, mag, lo_bounds):
        idx = np.zeros(np.shape(mag), dtype=np.int64)
        for j, b in enumerate(lo_bounds[1:], start=1):
            idx = np.where(mag >= b, j, idx)
        return idx

    def quantize_float(self, t) -> np.ndarray:
        """Q1 on exact float64 values ``t`` given in fine units.  Returns levels."""
        t = np.asarray(t, dtype=np.float64)
        if not np.all(np.isfinite(t)):
            raise ValueError(f"{self.name}: non-finite value")
        # anything beyond the top segment saturates; clip first so R4 stays in int64
        top = float(self.segments[-1].hi)
        flat = np.clip(t.reshape(-1), -top, top)
        seg = self._segment_index_of_magnitude(np.abs(flat), [s.lo for s in self.segments])
        ks = np.asarray([s.k for s in self.segments], dtype=np.int64)[seg]
        # t * 2^-k is exact (power-of-two scaling); R4 rounds it exactly.
        level = round_half_up_float(np.ldexp(flat, -ks)) << ks
        return np.clip(level, self.min_level, self.max_level).reshape(t.shape)

    def quantize_int(self, a, s: int) -> np.ndarray:
        """Q1 on the exact value ``t = a * 2^-s`` fine units (a: integer array).

        This is the form the engine uses on accumulators (SPEC Q2).
        """
        a = np.asarray(a, dtype=np.int64)
        if s < 0:
            a = a << (-s)
            s = 0
        mag = np.abs(a)
        out = np.zeros(a.shape, dtype=np.int64)
        done = np.zeros(a.shape, dtype=bool)
        for seg in reversed(self.segments):
            # |t| >= lo  <=>  floor(|a| / 2^s) >= lo  (lo integer; no overflow)
            sel = (~done) & ((mag >> min(s, 63)) >= seg.lo)
            if np.any(sel):
                out[sel] = rshift_rhu(a[sel], s + seg.k) << seg.k
            done |= sel
        return np.clip(out, self.min_level, self.max_level)

    def code_of_level(self, level) -> np.ndarray:
        """Code of each level (levels must belong to the codebook)."""
        level = np.asarray(level, dtype=np.int64)
        if np.any(level < self.min_level) or np.any(level > self.max_level):
            raise ValueError(f"{self.name}: level outside [{self.min_level}, {self.max_level}]")
        mag = np.abs(level)
        idx = np.searchsorted(self.magnitudes, mag)
        if np.any(idx >= len(self.magnitudes)) or np.any(self.magnitudes[np.minimum(idx, len(self.magnitudes) - 1)] != mag):
            raise ValueError(f"{self.name}: value is not a level of the codebook")
        return np.sign(level) * idx

    def level_of_code(self, code) -> np.ndarray:
        code = np.asarray(code, dtype=np.int64)
        lo, hi = self.code_range
        if np.any(code < lo) or np.any(code > hi):
            raise ValueError(f"{self.name}: code outside [{lo}, {hi}]")
        return np.sign(code) * self.magnitudes[np.abs(code)]

    def local_step(self, t) -> np.ndarray:
        """Step ``2^k`` (fine units) of the segment holding each |t|."""
        los = [s.lo for s in self.segments]
        seg = self._segment_index_of_magnitude(np.abs(np.asarray(t, dtype=np.float64)), los)
        return np.asarray([1 << s.k for s in self.segments], dtype=np.int64)[seg]


# ---- the paper's codebooks ---------------------------------------------

def weight_lq(bits: int = 8) -> Codebook:
    """Eq 8 with alpha = 1/2: sw in (-1/2, 1/2), step 2^-N, symmetric.

    Fine grid G = N; magnitudes 0 .. 2^(N-1)-1.
    """
    half = 1 << (bits - 1)
    return Codebook(f"w-lq{bits}", bits, (Segment(0, half, 0),), -(half - 1), half - 1)


def weight_nlq(bits: int = 8) -> Codebook:
    """Eq 14, alpha = 1/2: steps 2^-(N+2) on [0, a/8), 2^-N on [a/8, a/4),
    2^-(N-1) on [a/4, a).  Fine grid G = N + 2; max level a - 2^-(N-1) (Eq 18).

    For N = 8 the magnitudes are 0..63, 64..124 step 4, 128..504 step 8
    (128 magnitudes; with sign: 255 levels, Eq 13).
    """
    g = bits + 2
    a = 1 << (g - 1)  # alpha = 1/2 on the 2^-G grid
    segs = (Segment(0, a // 8, 0), Segment(a // 8, a // 4, 2), Segment(a // 4, a, 3))
    top = a - 8
    return Codebook(f"w-nlq{bits}", g, segs, -top, top)


#: Activation codebook alpha = 1 (after ReLU), fine grid G = N + 1 (Eq 24-27).
#: ``MUX_INTERVALS[m]`` is the interval of max|so|/alpha in eighths that selects m.
MUX_INTERVALS = {0: (7, 8), 1: (6, 7), 2: (5, 6), 3: (4, 5)}


@lru_cache(maxsize=None)
def act_nlq(mux: int, bits: int = 8) -> Codebook:
    """The four unsigned activation codebooks selected by the 2-bit mux
    (one shared frozen object per (mux, bits): the forward looks them up per layer).

    mux 0, Eq 24: max|so| in [7a/8, a): uniform step 2^-N on [0, a).
    mux 1, Eq 25: [3a/4, 7a/8): step 2^-(N+1) on [a/8, a/4), else 2^-N, up to 7a/8.
    mux 2, Eq 26: [5a/8, 3a/4): step 2^-(N+1) on [0, a/4), 2^-N on [a/4, 3a/4).
    mux 3, Eq 27: [a/2, 5a/8): step 2^-(N+1) on [0, 3a/8), 2^-N on [3a/8, 5a/8).
    Each has exactly 2^N levels; the top level is (range end) - 2^-N.
    """
    g = bits + 1
    a = 1 << g  # alpha = 1 on the 2^-G grid
    e = a // 8
    table = {
        0: (Segment(0, a, 1),),
        1: (Segment(0, e, 1), Segment(e, 2 * e, 0), Segment(2 * e, 7 * e, 1)),
        2: (Segment(0, 2 * e, 0), Segment(2 * e, 6 * e, 1)),
        3: (Segment(0, 3 * e, 0), Segment(3 * e, 5 * e, 1)),
    }
    if mux not in table:
        raise ValueError("mux must be 0, 1, 2 or 3")
    segs = table[mux]
    return Codebook(f"a-nlq{bits}-m{mux}", g, segs, 0, segs[-1].hi - 2)


@lru_cache(maxsize=None)
def act_nlq_luts(bits: int = 8) -> np.ndarray:
    """(4, 2^bits) read-only int64: row m is ``act_nlq(m, bits).lut()`` (code -> level
    of the four mux codebooks; every code 0..2^bits - 1 is valid)."""
    t = np.stack([act_nlq(m, bits).lut() for m in range(4)])
    t.flags.writeable = False
    return t


@lru_cache(maxsize=None)
def act_lq_signed(bits: int = 8) -> Codebook:
    """Eq 8 for activations with alpha = 1/2 (LeakyReLU or none, hyper path):
    so in (-1/2, 1/2), step 2^-N, two's complement int8 (code == level)."""
    half = 1 << (bits - 1)
    return Codebook(f"a-lq{bits}-signed", bits, (Segment(0, half + 1, 0),), -half, half - 1)
