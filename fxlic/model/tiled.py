"""Tiled (banded) integer forward for large images, bit-identical to int_forward.

``encode_tiled`` / ``hyper_decode_tiled`` / ``synthesize_tiled`` have the
signatures and results of ``int_forward.encode`` / ``hyper_decode`` /
``synthesize`` but run every chain of layers (g_a, h_a, h_s, g_s) in
horizontal bands of output rows, so the peak memory is set by the band, not
by the image.  Between layers the codes of a band are kept as int16 (all
codes are 8-bit); only the chain outputs (y, z, HS5 codes, pixels) are
stored whole.

Halo rule (exact; docs/PERFORMANCE.md).  To produce output rows [a, b) of a
layer whose input has H rows (padding p = k // 2):

* conv k, stride s:   input rows [i0, i1) with
  ``i0 = s * floor(max(0, s*a - p) / s)``, ``i1 = min(H, s*(b-1) - p + k)``;
  the layer is run on the band as if it were the whole input (zero padding at
  the band edges) and band output row r is global row ``r + i0 / s``.
  ``i0`` is a multiple of s so band rows keep their stride phase.
* tconv k, stride 2:  input rows [i0, i1) with
  ``i0 = max(0, ceil((a + p - k + 1) / 2))``, ``i1 = min(H, floor((b - 1 + p) / 2) + 1)``;
  band output row r is global row ``r + 2 * i0``.

Every output row in [a, b) then sees exactly the input rows it sees in the
whole-image computation: rows outside the band are either outside the image
(zero padding in both) or not among its taps.  Band edges in the middle of
the image only corrupt band output rows outside [a, b), which are cropped.
Chains are evaluated recursively from the chain output backwards, with a
line buffer per layer: the rows a layer computed for the previous band are
kept and only the rows past them are computed (``_Chain.rows``), so halo rows
are not recomputed and the result does not depend on the band height.
"""
from __future__ import annotations

import numpy as np

from ..kernels import Backend, NumbaBackend, get_backend
from ..kernels.reference import out_ha_y
from .int_forward import Encoded, _names, aligned_levels, check_padded, image_mu, input_tables, offset_symbols
from .intmodel import IntModel

#: default budget of one intermediate band: elements (channels x rows x cols),
#: enough for BAND_ROWS rows of y at 8192 pixels wide (issue 18)
BAND_ELEMENTS = 1 << 27
#: output rows per band (y rows for g_a, z rows for h_a, HS5 rows for h_s);
#: g_s, whose output is pixels, runs SYNTH_ROWS pixel rows per band
BAND_ROWS = 8
SYNTH_ROWS = 16 * BAND_ROWS


def input_rows(spec, a: int, b: int, H: int):
    """Input rows [i0, i1) needed for output rows [a, b) of layer ``spec`` whose
    input has H rows, and the global row of band output row 0."""
    k, p = spec.k, spec.k // 2
    if spec.op == "conv":
        s = spec.stride
        i0 = max(0, s * a - p) // s * s
        i1 = min(H, s * (b - 1) - p + k)
        return i0, i1, i0 // s
    i0 = max(0, -((-(a + p - k + 1)) // 2))
    i1 = min(H, (b - 1 + p) // 2 + 1)
    return i0, i1, 2 * i0


class _Chain:
    """A run of layers where each layer reads the previous one's output."""

    def __init__(self, model: IntModel, names, src_h: int, src_w: int, backend: Backend, mu):
        self.model = model
        self.specs = [model.layer(n).spec for n in names]
        for prev, cur in zip(self.specs, self.specs[1:]):
            if cur.src != prev.name:
                raise ValueError(f"tiled: {cur.name} does not read {prev.name}")
        self.be = backend
        M = model.arch.M
        self.mu = np.zeros(M, np.int64) if mu is None else np.asarray(mu, np.int64)
        self.tables = []
        for s in self.specs:
            self.tables.append(input_tables(model, s.name, self.mu if s.src == "y_hat" else None))
        self.h = [src_h]
        self.w = [src_w]
        for s in self.specs:
            h, w = s.out_hw(self.h[-1], self.w[-1])
            self.h.append(h)
            self.w.append(w)

    def _run_layer(self, i, codes):
        spec = self.specs[i]
        L = self.model.layer(spec.name)
        tables, offset = self.tables[i]
        lmu = self.mu if spec.out == "y" else np.zeros(spec.cout, np.int64)
        if tables is None:  # offset y_hat (SPEC O5), O6 y: the band holds levels
            codes = aligned_levels(L, codes)
        if self.model.offset_latents and spec.out in ("y", "z"):
            if isinstance(self.be, NumbaBackend):
                acc = self.be.accumulate(L, codes, tables, offset).transpose(2, 0, 1).astype(np.int64)
            else:
                acc = self.be.layer(L, codes, tables, offset, lmu, want_acc=True)[1]
            sym = offset_symbols(self.model, L, acc)
            return acc if sym is None else sym  # hyperprior y: symbols need the means
        out, _ = self.be.layer(L, codes, tables, offset, lmu, want_acc=False)  # numba: fused stage
        return out.astype(np.int16, copy=False)

    def rows(self, src, i: int, a: int, b: int):
        """Codes (C, b - a, W) of rows [a, b) of layer i's output; ``src`` the
        chain input (indexable by rows).

        Line buffer: the rows of the previous request to layer i are kept, and
        only rows past them are computed (from input rows by the halo rule), so
        no row of a layer is computed twice beyond the couple of rows the band
        edges cost.  Requests to a layer never move backwards within ``run``;
        any request still gets exact rows (older rows are recomputed)."""
        spec = self.specs[i]
        c0, kept = self.kept[i]
        parts, s = [], a
        if kept is not None and c0 <= a < c0 + kept.shape[1]:
            s = min(b, c0 + kept.shape[1])
            parts.append(kept[:, a - c0:s - c0])
        if s < b:
            i0, i1, g0 = input_rows(spec, s, b, self.h[i])
            if i == 0:
                x = np.ascontiguousarray(src[:, i0:i1])
            else:
                x = self.rows(src, i - 1, i0, i1)
            parts.append(self._run_layer(i, x)[:, s - g0:b - g0])
        out = parts[0] if len(parts) == 1 else np.concatenate(parts, axis=1)
        self.kept[i] = (a, out)
        return out

    def band_peak(self, a: int, b: int) -> int:
        """Largest intermediate band (elements) when computing rows [a, b)."""
        peak = 0
        for i in range(len(self.specs) - 1, -1, -1):
            s = self.specs[i]
            peak = max(peak, s.cout * (b - a) * self.w[i + 1] * 3, s.cin * 2 * self.w[i] * (b - a))
            a, b, _ = input_rows(s, a, b, self.h[i])
            b = max(b, a + 1)
        return peak

    def auto_band(self, budget: int, rows: int = None) -> int:
        """``rows`` (default BAND_ROWS) output rows per band, halved while the
        band's intermediates exceed ``budget`` elements.  A band height that
        does not depend on the image keeps the time linear in pixels."""
        H = self.h[-1]
        band = min(H, BAND_ROWS if rows is None else int(rows))
        while band > 1 and self.band_peak(0, min(H, band)) > budget:
            band = (band + 1) // 2
        return max(1, band)

    def run(self, src, band=None, out_dtype=np.int64, budget=BAND_ELEMENTS, progress=None, rows=None):
        H, W = self.h[-1], self.w[-1]
        band = self.auto_band(budget, rows) if band is None else max(1, int(band))
        out = np.empty((self.specs[-1].cout, H, W), dtype=out_dtype)
        self.kept = [(0, None)] * len(self.specs)
        for a in range(0, H, band):
            b = min(H, a + band)
            out[:, a:b] = self.rows(src, len(self.specs) - 1, a, b)
            if progress is not None:
                progress(b - a, H)
        self.kept = [(0, None)] * len(self.specs)
        return out


def _backend(backend):
    return get_backend(backend) if isinstance(backend, str) else backend


def encode_tiled(model: IntModel, pixels: np.ndarray, backend="numba", hook=None, band=None,
                 budget=BAND_ELEMENTS, progress=None, dtype=np.int64) -> Encoded:
    """``int_forward.encode`` in bands: identical y, mu, z and HS5 codes.
    ``band`` (rows of each chain's output per band) defaults to BAND_ROWS,
    halved while its intermediates exceed ``budget`` elements.  ``dtype``:
    of the returned y, z and HS5 codes (np.int16 holds every code, SPEC O1;
    the codec uses it to keep whole-image arrays narrow)."""
    if hook is not None:
        raise ValueError("encode_tiled does not support hooks (use encode)")
    be = _backend(backend)
    pixels = check_padded(model, pixels)
    mu = image_mu(model, pixels)
    H, W = pixels.shape[1:]
    g_a = _Chain(model, _names(model, ("AT",)), H, W, be, mu)
    if model.offset_latents and model.arch.kind == "hyperprior":
        y_acc = g_a.run(pixels, band, np.int32, budget, progress)
        L = model.layer(model.latent_layer("y"))
        # O6: HA0's input, y on the 2^-H grid (SAT_{8+H}: int16); H = 0 is O3's integer y
        # (an offset-latent model has no mean-reduced channels, so no mu)
        y = out_ha_y(y_acc, L.acc_exp, model.ha_grid_bits).astype(np.int16)
        enc = Encoded(y=y.astype(dtype, copy=False), mu=mu, y_acc=y_acc)
    else:
        y = g_a.run(pixels, band, np.int16, budget, progress)
        enc = Encoded(y=y.astype(dtype, copy=False), mu=mu)
    if model.arch.kind == "hyperprior":
        h_a = _Chain(model, _names(model, ("HA",)), y.shape[1], y.shape[2], be, mu)
        z = h_a.run(y, band, np.int16, budget)
        enc.z = z.astype(dtype, copy=False)
        enc.ms = hyper_decode_tiled(model, z, be, band=band, budget=budget, dtype=dtype)
    return enc


def hyper_decode_tiled(model: IntModel, z: np.ndarray, backend="numba", hook=None, band=None,
                       budget=BAND_ELEMENTS, dtype=np.int64) -> np.ndarray:
    """``int_forward.hyper_decode`` in bands (HS5 codes, ``dtype``: int64 or int16)."""
    if hook is not None:
        raise ValueError("hyper_decode_tiled does not support hooks")
    z = np.asarray(z)
    h_s = _Chain(model, _names(model, ("HS",)), z.shape[1], z.shape[2], _backend(backend), None)
    return h_s.run(z, band, dtype, budget)


def synthesize_tiled(model: IntModel, y: np.ndarray, mu: np.ndarray, backend="numba", hook=None,
                     band=None, budget=BAND_ELEMENTS, progress=None) -> np.ndarray:
    """``int_forward.synthesize`` in bands: identical (3, H, W) uint8 pixels."""
    if hook is not None:
        raise ValueError("synthesize_tiled does not support hooks")
    y = np.asarray(y)
    g_s = _Chain(model, _names(model, ("ST",)), y.shape[1], y.shape[2], _backend(backend), mu)
    return g_s.run(y, band, np.uint8, budget, progress, rows=SYNTH_ROWS)
