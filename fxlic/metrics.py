"""Image quality metrics: PSNR (8-bit RGB) and MS-SSIM (Wang, Simoncelli,
Bovik 2003), the paper's distortion measures.  Float code: evaluation only,
never part of the integer path."""
from __future__ import annotations

import numpy as np
from scipy import ndimage

#: MS-SSIM scale weights of Wang et al. 2003
MS_WEIGHTS = np.array([0.0448, 0.2856, 0.3001, 0.2363, 0.1333])
K1, K2, L = 0.01, 0.03, 255.0


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB over all channels of two uint8 images of the same shape."""
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    if a.shape != b.shape:
        raise ValueError(f"shape mismatch {a.shape} vs {b.shape}")
    mse = np.mean((a - b) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(255.0 ** 2 / mse))


def _gauss_filter(x: np.ndarray) -> np.ndarray:
    """11x11 Gaussian, sigma 1.5, 'valid' region (as the reference MATLAB code)."""
    g = np.exp(-((np.arange(11) - 5) ** 2) / (2 * 1.5 ** 2))
    g /= g.sum()
    y = ndimage.correlate1d(x, g, axis=-1, mode="constant")[..., 5:-5]
    return ndimage.correlate1d(y, g, axis=-2, mode="constant")[..., 5:-5, :]


def _ssim_parts(x, y):
    c1, c2 = (K1 * L) ** 2, (K2 * L) ** 2
    mx, my = _gauss_filter(x), _gauss_filter(y)
    sxx = _gauss_filter(x * x) - mx * mx
    syy = _gauss_filter(y * y) - my * my
    sxy = _gauss_filter(x * y) - mx * my
    cs = (2 * sxy + c2) / (sxx + syy + c2)
    lum = (2 * mx * my + c1) / (mx * mx + my * my + c1)
    return np.mean(lum * cs, axis=(-2, -1)), np.mean(cs, axis=(-2, -1))


def ms_ssim(a: np.ndarray, b: np.ndarray):
    """MS-SSIM of two (3, H, W) uint8 images (mean over channels), or None if
    the image is smaller than the 5 scales need (176 pixels per side)."""
    x = np.asarray(a, np.float64)
    y = np.asarray(b, np.float64)
    if x.shape != y.shape:
        raise ValueError(f"shape mismatch {x.shape} vs {y.shape}")
    if min(x.shape[-2:]) < 11 * 16:
        return None
    mcs = []
    for i in range(5):
        ssim, cs = _ssim_parts(x, y)
        if i < 4:
            mcs.append(np.maximum(cs, 0))
            h, w = x.shape[-2] // 2 * 2, x.shape[-1] // 2 * 2
            x = x[..., :h, :w].reshape(x.shape[:-2] + (h // 2, 2, w // 2, 2)).mean(axis=(-3, -1))
            y = y[..., :h, :w].reshape(y.shape[:-2] + (h // 2, 2, w // 2, 2)).mean(axis=(-3, -1))
    vals = np.stack(mcs + [np.maximum(ssim, 0)], axis=0)  # (5, C)
    return float(np.mean(np.prod(vals ** MS_WEIGHTS[:, None], axis=0)))
