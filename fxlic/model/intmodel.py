"""The integer model: per-layer integer tensors and exponents (docs/SPEC.md F, A, O).

An ``IntLayer`` holds exactly what a hardware port stores for one layer:
int8 weight codes with their level table and per-output-channel exponents,
int32 biases at the accumulator exponent, the exponents of the input and
output channels and the 2-bit mux of every output channel.  Everything the
kernels need (alignment shifts, requantization shifts, decode tables) is
derived from these, in one place.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..quant.codebook import act_lq_signed, act_nlq
from ..spec import INT32_MAX
from .arch import Architecture, LayerSpec

ACT_BITS = 8
LATENT_BITS = 8
#: the input image: pixel p has level p and exponent -8 (x = p/255 is folded
#: into AT0 as a 256/255 weight prescale, SPEC F4)
PIXEL_EXP = -8
OUT_KIND = {"act_relu": 0, "act_signed": 1, "latent": 2, "pixel": 3}
#: SPEC O5: offset latents (y_hat, z_hat) live on the grid of G fractional bits
#: (exponent -G), G = the model's ``grid_bits``; spec-1.2 files have G = 2,
#: the builder writes GRID_BITS
GRID_BITS_1_2 = 2
GRID_BITS = 4
GRID_BITS_RANGE = (2, 6)
#: SPEC O6: HA0 reads y on the 2^-H grid, H = -HA0.in_exp (0: O3's integer y);
#: the builder writes H = G for offset-latent hyperpriors
HA_GRID_BITS_RANGE = (0, 6)
#: SPEC O5: |offset| bound in real units: |offset_q| <= 127 * 2^G (keeps every
#: level range around 0, A3)
OFFSET_REAL_MAX = 127


def offset_q_max(grid_bits: int) -> int:
    """SPEC O5: the bound on |offset_q| for a model with ``grid_bits`` G."""
    return OFFSET_REAL_MAX << int(grid_bits)


class ModelError(ValueError):
    """A model that fxlic refuses to run (bad shapes, ranges or bound)."""


@dataclass
class IntLayer:
    spec: LayerSpec
    w_codes: np.ndarray  # int8 (O, C, k, k); tconv weights in scatter form W[o,c,ky,kx]
    w_lut: np.ndarray  # int16 (256,), level of code c at c + 128
    w_exp: np.ndarray  # int64 (O,)
    bias: np.ndarray  # int64 (O,) at the accumulator exponent
    in_exp: np.ndarray  # int64 (C,)
    out_exp: np.ndarray  # int64 (O,)
    mux: np.ndarray  # int64 (O,), 0..3 (relu layers), zeros otherwise

    # ---- derived quantities (SPEC A2, O) ----
    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def in_shift(self) -> np.ndarray:
        """A2: alignment left shift of input channel c: d_c = e_c - min(e)."""
        return self.in_exp - self.in_exp.min()

    @property
    def acc_exp(self) -> np.ndarray:
        """A2: exponent of output channel o's accumulator: min(e_in) + w_exp[o]."""
        return self.in_exp.min() + self.w_exp

    @property
    def out_shift(self) -> np.ndarray:
        """O: requantization shift s_o = out_exp - acc_exp (right shift if > 0)."""
        return self.out_exp - self.acc_exp

    @property
    def out_kind(self) -> int:
        s = self.spec
        if s.out == "act" and s.act == "relu":
            return OUT_KIND["act_relu"]
        if s.out in ("act", "ms"):
            return OUT_KIND["act_signed"]
        if s.out in ("y", "z"):
            return OUT_KIND["latent"]
        return OUT_KIND["pixel"]

    def w_levels(self) -> np.ndarray:
        return self.w_lut.astype(np.int64)[self.w_codes.astype(np.int64) + 128]

    def output_range(self) -> tuple:
        """Per output channel (lo, hi) of the LEVEL the next layer sees (SPEC I2)."""
        O = self.spec.cout
        kind = self.out_kind
        if kind == 0:
            top = {int(m): act_nlq(int(m), ACT_BITS).max_level for m in np.unique(self.mux)}
            hi = np.array([top[int(m)] for m in self.mux], dtype=np.int64)
            return np.zeros(O, dtype=np.int64), hi
        if kind == 1:
            cb = act_lq_signed(ACT_BITS)
            return np.full(O, cb.min_level, np.int64), np.full(O, cb.max_level, np.int64)
        if kind == 2:
            return (np.full(O, -(1 << (LATENT_BITS - 1)), np.int64),
                    np.full(O, (1 << (LATENT_BITS - 1)) - 1, np.int64))
        return np.zeros(O, dtype=np.int64), np.full(O, 255, np.int64)

    def output_code_range(self) -> tuple:
        """(lo, hi) of the stored output codes (all 8-bit)."""
        kind = self.out_kind
        if kind == 0:
            return 0, 255
        if kind == 3:
            return 0, 255
        return -128, 127


@dataclass
class IntModel:
    arch: Architecture
    layers: dict  # name -> IntLayer
    #: mean-reduced channels of y (bool M) and the Q16 regression of Eq 30
    mr_mask: np.ndarray = None
    mr_a_q: np.ndarray = None
    mr_b_q: np.ndarray = None
    entropy: dict = field(default_factory=dict)
    meta: dict = field(default_factory=dict)
    #: SPEC O5 (offset latents): medians (C,) on the 2^-G grid of the latent the
    #: factorized bottleneck codes (z of a hyperprior, y of a factorized model);
    #: None for integer latents (O3 only)
    offset_q: np.ndarray = None
    #: SPEC O5: G, the fractional bits of the offset grid (latents/grid_bits;
    #: 2 for spec-1.2 files)
    grid_bits: int = GRID_BITS_1_2
    #: SPEC O6: H, the fractional bits of the y HA0 reads (HA0's input exponent
    #: is -H); 0 = O3's integer y; H > 0 only for an offset-latent hyperprior
    ha_grid_bits: int = 0

    def __post_init__(self):
        M = self.arch.M
        if self.mr_mask is None:
            self.mr_mask = np.zeros(M, dtype=bool)
            self.mr_a_q = np.zeros(M, dtype=np.int64)
            self.mr_b_q = np.zeros(M, dtype=np.int64)

    def layer(self, name: str) -> IntLayer:
        return self.layers[name]

    @property
    def offset_latents(self) -> bool:
        """SPEC O5: y_hat and z_hat are ``symbol * 2^G + offset`` on the 2^-G grid."""
        return self.offset_q is not None

    @property
    def latents(self) -> str:
        return "offset" if self.offset_latents else "integer"

    def latent_layer(self, which: str) -> str:
        """Name of the layer whose output is latent ``which`` ('y' or 'z')."""
        return [l.name for l in self.arch.layers if l.out == which][0]

    def offset_range(self, src: str) -> tuple:
        """SPEC O5: (lo, hi) per channel of the offset (2^-G grid) added to the
        symbols of ``src``: the bottleneck medians (z_hat; y_hat of a factorized
        model), or the range of HS5's mean channels mapped by E1 (y_hat of a hyperprior)."""
        if src == "y_hat" and self.arch.kind == "hyperprior":
            from ..spec import requant_shift
            hs5 = self.layers[self.latent_layer("ms")]
            M = self.arch.M
            e = hs5.out_exp[M:]
            lo, hi = hs5.output_code_range()
            G = self.grid_bits
            return (np.array([requant_shift(lo, -(int(v) + G)) for v in e], np.int64),
                    np.array([requant_shift(hi, -(int(v) + G)) for v in e], np.int64))
        off = np.asarray(self.offset_q, np.int64)
        return off, off

    def input_range(self, spec: LayerSpec) -> tuple:
        """(lo, hi) level of each input channel of ``spec`` (SPEC I2), mean offsets
        included (a mean-reduced y channel carries stored + mu, |mu| <= 128)."""
        if spec.src == "x":
            return np.zeros(3, np.int64), np.full(3, 255, np.int64)
        if spec.src == "y" and self.ha_grid_bits:  # O6: SAT_{8+H} levels
            b = LATENT_BITS - 1 + self.ha_grid_bits
            return np.full(spec.cin, -(1 << b), np.int64), np.full(spec.cin, (1 << b) - 1, np.int64)
        if spec.src in ("y", "y_hat", "z_hat"):
            prod = [l for l in self.arch.layers if l.out == spec.src[0]][0]
            lo, hi = self.layers[prod.name].output_range()
            if self.offset_latents and spec.src != "y":  # O5: symbol * 2^G + offset
                olo, ohi = self.offset_range(spec.src)
                return (lo << self.grid_bits) + olo, (hi << self.grid_bits) + ohi
            if spec.src in ("y", "y_hat"):
                lo = lo - np.where(self.mr_mask, 128, 0)
                hi = hi + np.where(self.mr_mask, 127, 0)
            return lo, hi
        return self.layers[spec.src].output_range()

    def input_exp_of(self, spec: LayerSpec) -> np.ndarray:
        """Exponents of the tensor a layer reads (SPEC F2-F4)."""
        if spec.src == "x":
            return np.full(3, PIXEL_EXP, np.int64)
        if spec.src in ("y", "y_hat", "z_hat"):
            if self.offset_latents and spec.src != "y":
                return np.full(spec.cin, -self.grid_bits, np.int64)  # O5
            if spec.src == "y":
                return np.full(spec.cin, -self.ha_grid_bits, np.int64)  # O6
            return np.zeros(spec.cin, np.int64)
        return self.layers[spec.src].out_exp

    def validate(self):
        """Loader checks: shapes, dtypes, ranges, exponent chaining and the
        accumulator bound of every layer (SPEC A3).  Raises ModelError."""
        self.arch.validate()
        if self.offset_latents:
            self._validate_offset_array()
        self._validate_ha_grid()
        for spec in self.arch.layers:
            if spec.name not in self.layers:
                raise ModelError(f"layer {spec.name} missing")
            L = self.layers[spec.name]
            O, C, k = spec.cout, spec.cin, spec.k
            _expect(L.w_codes, (O, C, k, k), np.int8, f"{spec.name}.w_codes")
            _expect(L.w_lut, (256,), np.int16, f"{spec.name}.w_lut")
            for nm, n in (("w_exp", O), ("bias", O), ("in_exp", C), ("out_exp", O), ("mux", O)):
                _expect(getattr(L, nm), (n,), np.int64, f"{spec.name}.{nm}")
            if not np.array_equal(L.in_exp, self.input_exp_of(spec)):
                raise ModelError(f"{spec.name}: input exponents do not match its source {spec.src}")
            if np.any((L.mux < 0) | (L.mux > 3)):
                raise ModelError(f"{spec.name}: mux outside 0..3")
            if L.out_kind != 0 and np.any(L.mux != 0):
                raise ModelError(f"{spec.name}: mux set on a layer without NLQ")
            if np.any(np.abs(L.w_exp) > 64) or np.any(np.abs(L.out_exp) > 64):
                raise ModelError(f"{spec.name}: exponent out of range")
            if np.any(L.in_shift > 30):
                raise ModelError(f"{spec.name}: input exponent spread {int(L.in_shift.max())} > 30")
            s = L.out_shift
            if np.any(s < -31) or np.any(s > 62):
                raise ModelError(f"{spec.name}: requantization shift outside [-31, 62]")
            if np.any(np.abs(L.bias) > INT32_MAX):
                raise ModelError(f"{spec.name}: bias outside int32")
            bound = accumulator_bound(self, spec.name)
            if bound.max() > INT32_MAX:
                o = int(np.argmax(bound))
                raise ModelError(
                    f"{spec.name}: worst-case accumulator of output channel {o} is "
                    f"{int(bound[o])} > 2^31-1; the model could overflow int32 (SPEC A3)")
        if self.mr_mask.shape != (self.arch.M,):
            raise ModelError("mean-reduction mask has the wrong shape")
        if self.offset_latents:
            self._validate_offsets()

    def _validate_offset_array(self):
        """SPEC O5 loader checks: grid, offset shape and range."""
        G = self.grid_bits
        if not isinstance(G, (int, np.integer)) or not GRID_BITS_RANGE[0] <= G <= GRID_BITS_RANGE[1]:
            raise ModelError(f"latents grid_bits {G!r} outside {GRID_BITS_RANGE[0]}..{GRID_BITS_RANGE[1]}")
        fact = self.arch.layer(self.latent_layer("z" if self.arch.kind == "hyperprior" else "y"))
        _expect(self.offset_q, (fact.cout,), np.int64, "latents offset_q")
        if np.any(np.abs(self.offset_q) > offset_q_max(G)):
            raise ModelError(f"latents offset_q outside +-{offset_q_max(G)} (grid 2^-{G})")
        if np.asarray(self.mr_mask).shape == (self.arch.M,) and np.any(self.mr_mask):
            raise ModelError("offset latents (SPEC O5) and mean-reduced channels (M1) exclude each other")

    def _validate_ha_grid(self):
        """SPEC O6 loader checks: H in range, only for an offset-latent hyperprior,
        and its requantization shift -H - Eacc within R2's [-31, 62]."""
        H = self.ha_grid_bits
        lo, hi = HA_GRID_BITS_RANGE
        if not isinstance(H, (int, np.integer)) or isinstance(H, bool) or not lo <= H <= hi:
            raise ModelError(f"HA0 input grid bits {H!r} outside {lo}..{hi} (SPEC O6)")
        if H == 0:
            return
        if not (self.offset_latents and self.arch.kind == "hyperprior"):
            raise ModelError("HA0 reads y on a fractional grid (SPEC O6) only in an offset-latent hyperprior")
        if self.latent_layer("y") in self.layers:
            s = self.ha_y_shift()
            if np.any(s < -31) or np.any(s > 62):
                raise ModelError("HA0's y (SPEC O6): requantization shift outside [-31, 62]")

    def ha_y_shift(self) -> np.ndarray:
        """SPEC O6: per channel of y, the shift -H - Eacc that brings AT3's
        accumulator to HA0's input grid 2^-H."""
        return -self.ha_grid_bits - self.layers[self.latent_layer("y")].acc_exp

    def _validate_offsets(self):
        """SPEC O5 loader checks: every intermediate of the symbol computation within int64."""
        for which in ("y", "z") if self.arch.kind == "hyperprior" else ("y",):
            L = self.layers[self.latent_layer(which)]
            olo, ohi = self.offset_range(f"{which}_hat")
            omax = int(np.max(np.maximum(np.abs(olo), np.abs(ohi))))
            G = self.grid_bits
            for e in np.unique(L.acc_exp):
                F = offset_frac_bits(int(e), G)
                if ((INT32_MAX + 1) << (F + int(e))) + (omax << (F - G)) >= 1 << 62:
                    raise ModelError(f"{L.name}: offset-latent symbol (SPEC O5) could leave int64 "
                                     f"(accumulator exponent {int(e)})")


def offset_frac_bits(acc_exp: int, grid_bits: int) -> int:
    """SPEC O5: F = max(G, -acc_exp), the grid the symbol difference is formed on."""
    return max(int(grid_bits), -int(acc_exp))


def _expect(a, shape, dtype, what):
    if not isinstance(a, np.ndarray) or a.shape != tuple(shape) or a.dtype != dtype:
        got = (getattr(a, "shape", None), getattr(a, "dtype", None))
        raise ModelError(f"{what}: expected {np.dtype(dtype).name}{tuple(shape)}, got {got}")


def accumulator_bound(model: IntModel, name: str) -> np.ndarray:
    """SPEC A3: exact worst case of |acc| per output channel over all inputs in range.

    max over inputs of |bias + sum w*x*2^d| with x_c in [lo_c, hi_c] independently:
    each term's extreme is max(w lo, w hi) (or min), so the bound is
    max(bias + sum max(...), -(bias + sum min(...))).  For a transposed conv only
    the taps of one output phase meet at a pixel, so the max over phases is taken.
    Every partial sum in any order is bounded by the same number because each
    term's extreme has the sign of the total (lo <= 0 <= hi).  Computed with the
    taps of each channel summed first (w = w+ + w-, below), the same integers as
    the term-by-term form (tests/test_engine_bound.py).
    """
    L = model.layers[name]
    spec = L.spec
    lo, hi = model.input_range(spec)
    d = L.in_shift
    lo_s, hi_s = lo << d, hi << d  # (C,)
    w = L.w_levels()  # (O, C, k, k)
    # lo <= hi, so per term max(w lo, w hi) = w+ hi + w- lo and min = w+ lo + w- hi
    # (w+ = max(w, 0), w- = min(w, 0)): the taps are summed first, then one
    # product per channel.  Exact integers: every partial sum is bounded by
    # sum |w| max|x| 2^d, which K2's float pre-bound keeps far inside int64.
    wp, wn = np.maximum(w, 0), np.minimum(w, 0)
    if spec.op == "tconv":
        # only one output phase's taps meet at a pixel: taps t = (pad + phase) mod 2, +2, ...
        starts = [(spec.pad + ph) % 2 for ph in range(2)]
        sums = [(wp[:, :, sy::2, sx::2].sum(axis=(2, 3)), wn[:, :, sy::2, sx::2].sum(axis=(2, 3)))
                for sy in starts for sx in starts]
    else:
        sums = [(wp.sum(axis=(2, 3)), wn.sum(axis=(2, 3)))]
    best = np.zeros(spec.cout, dtype=np.int64)
    for P, N in sums:  # (O, C) each
        pos = L.bias + P @ hi_s + N @ lo_s
        neg = L.bias + P @ lo_s + N @ hi_s
        best = np.maximum(best, np.maximum(pos, -neg))
    return best
