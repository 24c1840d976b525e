"""Image quality metrics: PSNR (8-bit RGB) and MS-SSIM (Wang, Simoncelli,
Bovik 2003), the paper's distortion measures.  Float code: evaluation only,
never part of the integer path."""
from __future__ import annotations

import numpy as np
from scipy import ndimage

#: MS-SSIM scale weights of Wang et al. 2003
MS_WEIGHTS = np.array([0.0448, 0.2856, 0.3001, 0.2363, 0.1333])
K1, K2, L = 0.01, 0.03, 255.0


#: rows per band of the banded PSNR / MS-SSIM passes (memory bounded for any size)
BAND = 256


def _row_bands(n: int, band: int = BAND):
    for a in range(0, n, band):
        yield a, min(n, a + band)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB over all channels of two uint8 images of the same shape.
    Integer images: the squared error is summed exactly (int64) in row bands,
    which equals the float64 mean (every partial sum is an integer < 2^53)."""
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        raise ValueError(f"shape mismatch {a.shape} vs {b.shape}")
    if a.ndim >= 2 and a.dtype.kind in "iu" and b.dtype.kind in "iu" and a.size < 1 << 40:
        sse = 0
        for r0, r1 in _row_bands(a.shape[-2]):
            d = (a[..., r0:r1, :].astype(np.int64) - b[..., r0:r1, :]).reshape(-1)
            sse += int(np.dot(d, d))
        mse = sse / a.size
    else:
        mse = np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(255.0 ** 2 / mse))


def _gauss_filter(x: np.ndarray) -> np.ndarray:
    """11x11 Gaussian, sigma 1.5, 'valid' region (as the reference MATLAB code)."""
    g = np.exp(-((np.arange(11) - 5) ** 2) / (2 * 1.5 ** 2))
    g /= g.sum()
    y = ndimage.correlate1d(x, g, axis=-1, mode="constant")[..., 5:-5]
    return ndimage.correlate1d(y, g, axis=-2, mode="constant")[..., 5:-5, :]


def _ssim_maps(x, y):
    c1, c2 = (K1 * L) ** 2, (K2 * L) ** 2
    mx, my = _gauss_filter(x), _gauss_filter(y)
    sxx = _gauss_filter(x * x) - mx * mx
    syy = _gauss_filter(y * y) - my * my
    sxy = _gauss_filter(x * y) - mx * my
    cs = (2 * sxy + c2) / (sxx + syy + c2)
    lum = (2 * mx * my + c1) / (mx * mx + my * my + c1)
    return lum * cs, cs


def _ssim_parts(x, y):
    """Mean SSIM and contrast-structure term of two 2-D images, in row bands:
    valid output rows [r0, r1) read input rows [r0, r1 + 10) only."""
    n = x.shape[0] - 10
    s_ssim = s_cs = 0.0
    for r0, r1 in _row_bands(n):
        ssim, cs = _ssim_maps(np.asarray(x[r0:r1 + 10], np.float64), np.asarray(y[r0:r1 + 10], np.float64))
        s_ssim += float(ssim.sum())
        s_cs += float(cs.sum())
    count = n * (x.shape[1] - 10)
    return s_ssim / count, s_cs / count


def _downsample(x) -> np.ndarray:
    """2x2 mean (odd last row / column dropped), float64, in row bands."""
    h, w = x.shape[0] // 2 * 2, x.shape[1] // 2 * 2
    out = np.empty((h // 2, w // 2))
    for r0, r1 in _row_bands(h, 2 * BAND):
        xb = np.asarray(x[r0:r1, :w], np.float64)
        out[r0 // 2:r1 // 2] = xb.reshape(((r1 - r0) // 2, 2, w // 2, 2)).mean(axis=(-3, -1))
    return out


def ms_ssim(a: np.ndarray, b: np.ndarray):
    """MS-SSIM of two (3, H, W) uint8 images (mean over channels), or None if
    the image is smaller than the 5 scales need (176 pixels per side).
    Channel by channel and in row bands (memory bounded by the band)."""
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        raise ValueError(f"shape mismatch {a.shape} vs {b.shape}")
    if min(a.shape[-2:]) < 11 * 16:
        return None
    a, b = a.reshape((-1,) + a.shape[-2:]), b.reshape((-1,) + b.shape[-2:])
    vals = []
    for c in range(a.shape[0]):
        x, y, mcs = a[c], b[c], []
        for i in range(5):
            ssim, cs = _ssim_parts(x, y)
            if i < 4:
                mcs.append(max(cs, 0.0))
                x, y = _downsample(x), _downsample(y)
        vals.append(mcs + [max(ssim, 0.0)])
    vals = np.array(vals).T  # (5, C)
    return float(np.mean(np.prod(vals ** MS_WEIGHTS[:, None], axis=0)))
