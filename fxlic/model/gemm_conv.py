"""Float convolutions as banded BLAS matrix products (the fast calibration path,
docs/CALIBRATION.md "Fast calibration forward").

One mechanism serves SPEC C1 and C2: a *strided correlation with offsets*

    out[o, u, v] = sum_t sum_c  Wt[o, c] * x[c, s*u + dy_t, s*v + dx_t]   (zero outside x)

A stride-s input is split into its s*s polyphase components, so every tap t is a
contiguous shift of one component flattened row by row; a band of output rows
is one GEMM of the (O, T*C) tap-major weights with the (T*C, rows*width) stack
of those shifts (columns past the output width are computed and dropped).  A
convolution (C1) is one such correlation (dy = ky - k//2); a stride-2
transposed convolution (C2) is four, one per output phase, each with the taps
of that phase.  Same sums as fxlic.kernels.reference.conv2d / tconv2d in
another order: the result differs in the last bits (bounded in
fxlic.model.calib_fast).
"""
from __future__ import annotations

import contextlib
import ctypes

import numpy as np

#: elements of one band's stacked-shift matrix (16 MiB in float64): large enough
#: for an efficient GEMM, small enough to stay near the cache
BAND_ELEMENTS = 1 << 21

#: OpenBLAS thread controls as exported by numpy's wheels (2.x, 1.x) and plain builds
_OPENBLAS = (("scipy_openblas_get_num_threads64_", "scipy_openblas_set_num_threads64_"),
             ("openblas_get_num_threads64_", "openblas_set_num_threads64_"),
             ("openblas_get_num_threads", "openblas_set_num_threads"))


@contextlib.contextmanager
def one_blas_thread():
    """Run the block with one OpenBLAS thread (the one numpy links), restoring
    the count after; a no-op for any other BLAS.  The GEMMs here are large
    enough for OpenBLAS to start its threads, whose busy waiting cost 3-4x the
    CPU time on a loaded 2-core machine (docs/CALIBRATION.md); calibration runs
    images in parallel instead (``fxlic quantize --jobs``)."""
    get = put = None
    try:
        try:
            from numpy._core import _multiarray_umath as umath
        except ImportError:  # numpy 1.x
            from numpy.core import _multiarray_umath as umath
        lib = ctypes.CDLL(umath.__file__)  # its symbols and those of the BLAS it links
        for g, p in _OPENBLAS:
            if hasattr(lib, g) and hasattr(lib, p):
                get, put = getattr(lib, g), getattr(lib, p)
                put.argtypes, put.restype, get.restype = [ctypes.c_int], None, ctypes.c_int
                break
    except (ImportError, OSError, AttributeError):
        pass
    before = get() if get is not None else None
    if before is not None and before > 1:
        put(1)
    try:
        yield
    finally:
        if before is not None and before > 1:
            put(before)


def correlate(x: np.ndarray, wmat: np.ndarray, offsets, stride: int, out_hw) -> np.ndarray:
    """``out`` above for taps ``offsets = [(dy, dx), ...]`` whose (O, C) weights
    are the consecutive column blocks of ``wmat`` (O, T*C)."""
    C, H, W = x.shape
    O, Ho, Wo, s = wmat.shape[0], out_hw[0], out_hw[1], stride
    top, left = max(0, -min(d for d, _ in offsets)), max(0, -min(d for _, d in offsets))
    q = [((dy + top) // s, (dx + left) // s, (dy + top) % s, (dx + left) % s) for dy, dx in offsets]
    Hc, Wc = Ho + max(t[0] for t in q) + 1, Wo + max(t[1] for t in q)
    xp = np.zeros((C, s * Hc, s * Wc), x.dtype)
    h, w = min(H, s * Hc - top), min(W, s * Wc - left)
    xp[:, top:top + h, left:left + w] = x[:, :h, :w]
    comps = {(a, b): np.ascontiguousarray(xp[:, a::s, b::s]).reshape(C, Hc * Wc)
             for a in range(s) for b in range(s)}
    out = np.empty((O, Ho, Wo), np.result_type(x, wmat))
    rows = max(1, min(Ho, BAND_ELEMENTS // (len(q) * C * Wc)))
    col = np.empty((len(q) * C, rows * Wc), x.dtype)
    for u0 in range(0, Ho, rows):
        n = min(rows, Ho - u0) * Wc
        for i, (qy, qx, a, b) in enumerate(q):
            off = (u0 + qy) * Wc + qx
            col[i * C:(i + 1) * C, :n] = comps[(a, b)][:, off:off + n]
        out[:, u0:u0 + n // Wc] = (wmat @ col[:, :n]).reshape(O, -1, Wc)[:, :, :Wo]
    return out


def conv2d_gemm(x: np.ndarray, w: np.ndarray, stride: int) -> np.ndarray:
    """SPEC C1 without bias (zero padding k//2): as reference.conv2d."""
    O, C, k, _ = w.shape
    p = k // 2
    taps = [(ky, kx) for ky in range(k) for kx in range(k)]
    wmat = np.concatenate([w[:, :, ky, kx] for ky, kx in taps], axis=1)
    out_hw = ((x.shape[1] + 2 * p - k) // stride + 1, (x.shape[2] + 2 * p - k) // stride + 1)
    return correlate(x, wmat, [(ky - p, kx - p) for ky, kx in taps], stride, out_hw)


def tconv2d_gemm(x: np.ndarray, w: np.ndarray, stride: int = 2) -> np.ndarray:
    """SPEC C2 without bias, stride 2 (output 2H x 2W): as reference.tconv2d.
    Output row 2u + a receives tap ky from input row u + (a + p - ky) / 2 when
    that is an integer; likewise for columns.  A thin output (4 O <= C, e.g.
    ST3's three colours) is computed as the scatter itself instead: one GEMM
    gives every tap's product, which is added at its place; stacking shifts of
    the wide input would cost far more than that GEMM."""
    if stride != 2:
        raise ValueError("tconv2d_gemm: stride 2 only (SPEC C2)")
    O, C, k, _ = w.shape
    _, H, W = x.shape
    p = k // 2
    if 4 * O <= C:
        return _tconv_scatter(x, w)
    out = np.empty((O, 2 * H, 2 * W), np.result_type(x, w))
    for a in range(2):
        for b in range(2):
            taps = [(ky, kx) for ky in range(k) for kx in range(k)
                    if (a + p - ky) % 2 == 0 and (b + p - kx) % 2 == 0]
            if not taps:  # k = 1: odd output rows / columns receive nothing
                out[:, a::2, b::2] = 0.0
                continue
            wmat = np.concatenate([w[:, :, ky, kx] for ky, kx in taps], axis=1)
            offs = [((a + p - ky) // 2, (b + p - kx) // 2) for ky, kx in taps]
            out[:, a::2, b::2] = correlate(x, wmat, offs, 1, (H, W))
    return out


def _tconv_scatter(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """C2 as written: ``full[o, 2 iy + ky, 2 ix + kx] += w[o, :, ky, kx] . x[:, iy, ix]``,
    a band of input rows at a time, then the window [p, p + 2H) of ``full``."""
    O, C, k, _ = w.shape
    _, H, W = x.shape
    p = k // 2
    wall = w.transpose(2, 3, 0, 1).reshape(k * k * O, C)
    full = np.zeros((O, 2 * H + k, 2 * W + k), np.result_type(x, w))
    rows = max(1, min(H, BAND_ELEMENTS // (k * k * O * W)))
    for r0 in range(0, H, rows):
        n = min(rows, H - r0)
        prod = (wall @ x[:, r0:r0 + n].reshape(C, n * W)).reshape(k, k, O, n, W)
        for ky in range(k):
            for kx in range(k):
                full[:, 2 * r0 + ky:2 * (r0 + n) + ky:2, kx:2 * W + kx:2] += prod[ky, kx]
    return full[:, p:p + 2 * H, p:p + 2 * W]
