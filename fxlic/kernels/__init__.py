"""Integer operators, two interchangeable backends with identical results.

``REFERENCE`` (plain NumPy, ``reference.py``) and ``NUMBA`` (``numba_kernels.py``)
both implement ``Backend``: decode codes to aligned levels, accumulate one
conv/tconv layer, apply its output stage.  Tensors cross the interface in
(C, H, W) order; accumulators are returned as int64 (C, H, W) for hooks.
"""
from __future__ import annotations

import numpy as np

from ..quant.codebook import act_nlq
from . import reference as ref


class Backend:
    name = "abstract"

    def layer(self, L, codes: np.ndarray, tables: np.ndarray, offset: int, mu: np.ndarray,
              want_acc: bool = False):
        """Run one layer: returns (output codes (O,Ho,Wo) int64, acc or None)."""
        raise NotImplementedError


def _stage_params(L):
    lo, hi = L.output_code_range()
    return lo, hi


class ReferenceBackend(Backend):
    name = "reference"

    def layer(self, L, codes, tables, offset, mu, want_acc=False):
        x = ref.decode_levels(codes, tables, offset)
        w = L.w_levels()
        spec = L.spec
        if spec.op == "conv":
            acc = ref.conv2d_acc(x, w, L.bias, spec.stride)
        else:
            acc = ref.tconv2d_acc(x, w, L.bias, spec.stride)
        kind = L.out_kind
        s = L.out_shift
        if kind == 0:
            out = ref.out_relu_nlq(acc, s, L.mux)
        elif kind == 1:
            out = ref.out_signed_lq(acc, s, spec.act == "leaky")
        elif kind == 2:
            out = ref.out_latent(acc, s, mu)
        else:
            out = ref.out_pixel(acc, s)
        return out, (acc if want_acc else None)


class NumbaBackend(Backend):
    name = "numba"

    def __init__(self):
        self._cache = {}
        self._segs = _mux_segment_tables()

    def _weights(self, L):
        key = id(L)
        hit = self._cache.get(key)
        if hit is not None and hit[0] is L:
            return hit[1]
        w = L.w_levels().astype(np.int32)  # (O, C, k, k)
        spec = L.spec
        if spec.op == "conv":
            prep = (np.ascontiguousarray(w.transpose(0, 2, 3, 1).reshape(spec.cout, -1)),)
        else:
            prep = _tconv_phase_weights(w)
        self._cache[key] = (L, prep)
        return prep

    def layer(self, L, codes, tables, offset, mu, want_acc=False):
        from . import numba_kernels as nk

        spec = L.spec
        x = nk.decode_levels_hwc(np.ascontiguousarray(codes, dtype=np.int64),
                                 np.ascontiguousarray(tables, dtype=np.int64), offset)
        bias = L.bias.astype(np.int64)
        prep = self._weights(L)
        if spec.op == "conv":
            acc = nk.conv2d_acc_hwc(x, prep[0], bias, spec.k, spec.stride)
        else:
            wph, taps, ntaps = prep
            acc = nk.tconv2d_acc_hwc(x, wph, taps, ntaps, bias, spec.k)
        lo, hi = L.output_code_range()
        seg_lo, seg_k, seg_code, nseg, maxl = self._segs
        out = nk.output_stage_hwc(acc, L.out_kind, spec.act == "leaky", L.out_shift.astype(np.int64),
                                  L.mux.astype(np.int64), seg_lo, seg_k, seg_code, nseg, maxl,
                                  np.asarray(mu, dtype=np.int64), lo, hi)
        acc_chw = acc.transpose(2, 0, 1).astype(np.int64) if want_acc else None
        return out, acc_chw


def _mux_segment_tables(bits: int = 8):
    """(4, 3) tables of the four activation codebooks for the jitted O1."""
    seg_lo = np.zeros((4, 3), np.int64)
    seg_k = np.zeros((4, 3), np.int64)
    seg_code = np.zeros((4, 3), np.int64)
    nseg = np.zeros(4, np.int64)
    maxl = np.zeros(4, np.int64)
    for m in range(4):
        cb = act_nlq(m, bits)
        code = 0
        for j, s in enumerate(cb.segments):
            seg_lo[m, j], seg_k[m, j], seg_code[m, j] = s.lo, s.k, code
            code += (s.hi - s.lo) >> s.k
        nseg[m] = len(cb.segments)
        maxl[m] = cb.max_level
    return seg_lo, seg_k, seg_code, nseg, maxl


def _tconv_phase_weights(w: np.ndarray):
    """Split a scatter-form tconv kernel into its four output phases (SPEC C2)."""
    O, C, k, _ = w.shape
    p = k // 2
    taps_list = [[t for t in range(k) if (t - p - ph) % 2 == 0] for ph in range(2)]
    nmax = max(len(t) for t in taps_list)
    taps = np.zeros((2, nmax), np.int64)
    ntaps = np.zeros(2, np.int64)
    for ph in range(2):
        taps[ph, :len(taps_list[ph])] = taps_list[ph]
        ntaps[ph] = len(taps_list[ph])
    wph = np.zeros((2, 2, O, nmax * nmax * C), np.int32)
    for py in range(2):
        for px in range(2):
            sub = w[:, :, taps_list[py]][:, :, :, taps_list[px]]  # (O, C, ny, nx)
            flat = sub.transpose(0, 2, 3, 1).reshape(O, -1)
            wph[py, px, :, :flat.shape[1]] = flat
    return wph, taps, ntaps


REFERENCE = ReferenceBackend()
_NUMBA = None


def get_backend(name: str) -> Backend:
    global _NUMBA
    if name == "reference":
        return REFERENCE
    if name == "numba":
        if _NUMBA is None:
            _NUMBA = NumbaBackend()
        return _NUMBA
    raise ValueError(f"unknown backend {name!r} (use 'numba' or 'reference')")
