"""Implicit-GEMM paths of the Numba backend (issue 20): which layers take them,
and their weight layouts.

The im2col GEMM (``numba_kernels.conv2d_acc_i16`` / ``tconv2d_acc_i16``) copies
every input element k*k times and reduces each dot product horizontally; it was
slowest on the thin layers (AT0: 3 input channels, K = 75; ST3: 3 outputs; the
1x1 HS3-HS5).  These paths read the input in place from a zero-padded
channels-last buffer (``decode_levels_i16_pad``), one segment per kernel row:

* ``"oc"`` (O a multiple of 16, conv and tconv): vectorised over output
  channels (``oc_block``), no reduction -- faster than im2col on every layer
  of the hyperprior, thin or not;
* ``"few"`` (tconv, O < 16: ST3): all outputs of a pixel in one dot block
  (``dot_seg``) over the phase's taps.

Both give the int32 accumulators of every other path (twins: ``reference.conv2d_acc``
/ ``tconv2d_acc``; tests/test_kernels_thin.py).  Anything else takes "im2col".
"""
from __future__ import annotations

import numpy as np


def path_of(spec) -> str:
    """"oc", "few" or "im2col" for a layer's LayerSpec (the int16 fast path)."""
    if spec.cout % 16 == 0 and (spec.op == "conv" or spec.stride == 2):
        return "oc"
    if spec.op == "tconv" and spec.stride == 2 and spec.cout < 16:
        return "few"
    return "im2col"


def oc_weights(w: np.ndarray, block: int):
    """w (O, C, kh, kw) int16-range levels -> (wpk, nps): wpk (Op / block, kh * nps,
    2 * block) int16, block-major: wpk[b, r * nps + j] holds the pairs (w[o, tap 2j],
    w[o, tap 2j + 1]) of kernel row r for the outputs o = b * block, ...,
    (b + 1) * block - 1 (taps kx * C + c; past kw * C zero), Op = O rounded up to
    ``block`` (zero outputs); nps = ceil(kw * C / 2).  One block's weights are
    contiguous, read front to back by ``oc_block``."""
    O, C, kh, kw = w.shape
    seg = kw * C
    nps = (seg + 1) // 2
    Op = -(-O // block) * block
    buf = np.zeros((kh, 2 * nps, Op), np.int16)
    buf[:, :seg, :O] = w.transpose(2, 3, 1, 0).reshape(kh, seg, O)
    wpk = buf.reshape(kh, nps, 2, Op // block, block).transpose(3, 0, 1, 4, 2)
    return np.ascontiguousarray(wpk.reshape(Op // block, kh * nps, 2 * block)), nps


def padded_bias(bias: np.ndarray, block: int) -> np.ndarray:
    out = np.zeros(-(-len(bias) // block) * block, np.int32)
    out[:len(bias)] = bias
    return out


def phase_taps(k: int):
    """The tconv's output phases (SPEC C2, stride 2): output row 2 my + py reads
    input row my + d through kernel row ky = p + py - 2 d (p = k // 2); likewise
    for columns.  Returns (taps, d): per phase the kernel rows in increasing d,
    and their d.  With this order the input columns m + d of one row are
    contiguous, so each kernel row of a phase is one segment of the input."""
    p = k // 2
    taps = [sorted((t for t in range(k) if (t - p - ph) % 2 == 0), key=lambda t: (ph + p - t) // 2)
            for ph in range(2)]
    return taps, [[(ph + p - t) // 2 for t in taps[ph]] for ph in range(2)]


def tconv_phases(w: np.ndarray, few: bool, block: int):
    """Scatter-form tconv weights w (O, C, k, k) -> the arguments of
    ``tconv2d_acc_phases`` after the input: (pad, wk, dy, nseg, klen, dxmin).

    ``few``: wk[py, px, 0] (Op, nseg[py] * klen[px]) int16 with kernel row a of the
    phase at columns a * klen[px] (nx * C taps in (b, c) order, zero-padded to
    klen, a multiple of 16), Op = O rounded up to ``block`` (DOT_NO).  Else
    wk[py, px] is ``oc_weights`` of the phase's sub-kernel (klen[px] = its pairs
    per segment, outputs padded to ``block`` = OC_BLOCK; rows padded to the
    longest phase).  pad is the zero border the input needs."""
    O, C, k, _ = w.shape
    taps, d = phase_taps(k)
    nseg = np.array([len(t) for t in taps], np.int64)
    dy = np.zeros((2, max(1, int(nseg.max()))), np.int64)
    for ph in range(2):
        dy[ph, :len(d[ph])] = d[ph]
    dxmin = np.array([d[ph][0] if d[ph] else 0 for ph in range(2)], np.int64)
    subs = [[w[:, :, taps[py]][:, :, :, taps[px]] for px in range(2)] for py in range(2)]  # (O, C, ny, nx)
    if few:
        klen = np.array([max(16, -(-len(t) * C // 16) * 16) for t in taps], np.int64)
        Op = -(-O // block) * block
        wk = np.zeros((2, 2, Op, dy.shape[1] * int(klen.max())), np.int16)
        for py in range(2):
            for px in range(2):
                for a in range(nseg[py]):
                    seg = subs[py][px][:, :, a].transpose(0, 2, 1).reshape(O, -1)  # (O, nx * C)
                    wk[py, px, :O, a * klen[px]:a * klen[px] + seg.shape[1]] = seg
        wk = wk[:, :, None]
    else:
        packed = [[oc_weights(subs[py][px], block) for px in range(2)] for py in range(2)]
        klen = np.array([packed[0][px][1] for px in range(2)], np.int64)
        nb, _, cols = packed[0][0][0].shape
        rows = max(p[0].shape[1] for r in packed for p in r)
        wk = np.zeros((2, 2, nb, rows, cols), np.int16)
        for py in range(2):
            for px in range(2):
                wk[py, px, :, :packed[py][px][0].shape[1]] = packed[py][px][0]
    flat = [v for ds in d for v in ds]
    pad = max([0] + [-v for v in flat] + flat)
    return pad, wk, dy, nseg, klen, dxmin
