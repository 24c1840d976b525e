"""Numba twins of ``reference.py`` (same integers, faster).

Layout: activations channels-last (H, W, C) inside the kernels so the inner
product over (ky, kx, c) is contiguous; weights as (O, k*k*C) rows in
(ky, kx, c) order.  Accumulation is exact: Numba widens the int32 products to
int64 and the loader's bound (SPEC A3) keeps every partial sum inside int32,
so the stored int32 equals the specification's int32 accumulator.
No fastmath anywhere.  Parallel loops write disjoint outputs, so the result
does not depend on NUMBA_NUM_THREADS.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from ..spec.rounding import requant_shift as _rq
from ..spec.rounding import rshift_rhu as _rhu
from ..spec.rounding import saturate as _sat


@njit(parallel=True, cache=True)
def conv2d_acc_hwc(x, w2, bias, k, stride):
    """C1 on x (H, W, C) int32, w2 (O, k*k*C) int32, bias (O,) int64 -> (Ho, Wo, O) int32."""
    H, W, C = x.shape
    O = w2.shape[0]
    p = k // 2
    Ho = (H + 2 * p - k) // stride + 1
    Wo = (W + 2 * p - k) // stride + 1
    K = k * k * C
    out = np.empty((Ho, Wo, O), dtype=np.int32)
    for oy in prange(Ho):
        col = np.zeros((Wo, K), dtype=np.int32)
        for ox in range(Wo):
            for ky in range(k):
                iy = oy * stride - p + ky
                if iy < 0 or iy >= H:
                    continue
                for kx in range(k):
                    ix = ox * stride - p + kx
                    if ix < 0 or ix >= W:
                        continue
                    base = (ky * k + kx) * C
                    for c in range(C):
                        col[ox, base + c] = x[iy, ix, c]
        for ox in range(Wo):
            for o in range(O):
                acc = np.int64(bias[o])
                for j in range(K):
                    acc += np.int64(col[ox, j]) * np.int64(w2[o, j])
                out[oy, ox, o] = np.int32(acc)
    return out


@njit(parallel=True, cache=True)
def tconv2d_acc_hwc(x, wph, taps, ntaps, bias, k):
    """C2 as four stride-1 sub-pixel convolutions (one per output phase).

    ``taps[ph, j]`` lists the kernel rows (or columns) that reach output phase
    ph (ky = p + ph + 2m for integers m; input row iy = (oy + p - ky) / 2),
    ``wph[py, px]`` holds the weights of that phase as (O, ntaps[py]*ntaps[px]*C)
    rows in (ty, tx, c) order.  x (H, W, C) int32 -> (2H, 2W, O) int32.
    """
    H, W, C = x.shape
    O = wph.shape[2]
    p = k // 2
    Ho, Wo = 2 * H, 2 * W
    out = np.empty((Ho, Wo, O), dtype=np.int32)
    for oy in prange(Ho):
        py = oy % 2
        ny = ntaps[py]
        Kmax = wph.shape[3]
        col = np.zeros((Wo, Kmax), dtype=np.int32)
        for ox in range(Wo):
            px = ox % 2
            nx = ntaps[px]
            for a in range(ny):
                ky = taps[py, a]
                iy2 = oy + p - ky
                for b in range(nx):
                    kx = taps[px, b]
                    ix2 = ox + p - kx
                    base = (a * nx + b) * C
                    if iy2 < 0 or ix2 < 0 or iy2 // 2 >= H or ix2 // 2 >= W:
                        for c in range(C):
                            col[ox, base + c] = 0
                    else:
                        iy = iy2 // 2
                        ix = ix2 // 2
                        for c in range(C):
                            col[ox, base + c] = x[iy, ix, c]
        for ox in range(Wo):
            px = ox % 2
            K = ny * ntaps[px] * C
            for o in range(O):
                acc = np.int64(bias[o])
                for j in range(K):
                    acc += np.int64(col[ox, j]) * np.int64(wph[py, px, o, j])
                out[oy, ox, o] = np.int32(acc)
    return out


# ---- output stages: kind 0 relu-nlq, 1 signed lq, 2 latent, 3 pixel --------

@njit(cache=True)
def _nlq_code(a, s, seg_lo, seg_k, seg_code, nseg, max_level):
    """O1 for one element: segment by |t| (t = a 2^-s), round on its grid, clip,
    code = code_base + (level - lo) >> k of the level's segment."""
    if s < 0:
        a = a << (-s)
        s = 0
    j = 0
    sh = s if s < 63 else 63
    for i in range(nseg):
        if (a >> sh) >= seg_lo[i]:  # |t| >= lo without overflow
            j = i
    level = _rhu(a, s + seg_k[j]) << seg_k[j]
    if level > max_level:
        level = max_level
    # the level may have moved up into the next segment (boundary level)
    j2 = 0
    for i in range(nseg):
        if level >= seg_lo[i]:
            j2 = i
    return seg_code[j2] + ((level - seg_lo[j2]) >> seg_k[j2])


@njit(parallel=True, cache=True)
def output_stage_hwc(acc, kind, leaky, shift, mux, seg_lo, seg_k, seg_code, nseg,
                     max_level, mu, lo, hi):
    """Apply the layer's output stage to acc (Ho, Wo, O) -> codes (O, Ho, Wo) int64.

    seg_* are (4, 3) tables of the four mux codebooks (SPEC Q2), mu (O,) the
    mean-reduction offsets, [lo, hi] the saturation range of kinds 1-3.
    """
    Ho, Wo, O = acc.shape
    out = np.empty((O, Ho, Wo), dtype=np.int64)
    for o in prange(O):
        s = shift[o]
        m = mux[o]
        for y in range(Ho):
            for x in range(Wo):
                a = np.int64(acc[y, x, o])
                if kind == 0:
                    if a < 0:
                        a = 0
                    v = _nlq_code(a, s, seg_lo[m], seg_k[m], seg_code[m], nseg[m], max_level[m])
                elif kind == 1:
                    if leaky and a < 0:
                        v = _rq(a, s + 3)
                    else:
                        v = _rq(a, s)
                    v = _sat(v, lo, hi)
                elif kind == 2:
                    v = _sat(_rq(a, s) - mu[o], lo, hi)
                else:
                    v = _sat(_rq(a, s), lo, hi)
                out[o, y, x] = v
    return out


@njit(parallel=True, cache=True)
def decode_levels_hwc(codes, tables, offset):
    """I1: (C, H, W) codes -> (H, W, C) int32 aligned levels via per-channel tables."""
    C, H, W = codes.shape
    out = np.empty((H, W, C), dtype=np.int32)
    for y in prange(H):
        for x in range(W):
            for c in range(C):
                out[y, x, c] = np.int32(tables[c, codes[c, y, x] + offset])
    return out
