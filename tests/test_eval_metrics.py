"""MS-SSIM of fxlic.metrics against an independent implementation of the
published definition (Wang, Simoncelli, Bovik 2003): Gaussian window 11x11,
sigma 1.5, 'valid' filtering, K1 = 0.01, K2 = 0.03, L = 255, five scales with
weights (0.0448, 0.2856, 0.3001, 0.2363, 0.1333), contrast-structure at the
first four scales and luminance x cs at the last, 2x2 average downsampling;
per colour channel, then the mean over channels."""
import numpy as np
import pytest
from scipy.signal import convolve2d

from fxlic.metrics import ms_ssim, psnr

W = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)


def _window():
    ax = np.arange(11) - 5.0
    g = np.exp(-(ax[:, None] ** 2 + ax[None, :] ** 2) / (2 * 1.5 ** 2))
    return g / g.sum()


def _ms_ssim_channel(x, y):
    win = _window()
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    f = lambda a: convolve2d(a, win[::-1, ::-1], mode="valid")  # noqa: E731  (correlation)
    vals = []
    for s in range(5):
        mx, my = f(x), f(y)
        sxx, syy, sxy = f(x * x) - mx ** 2, f(y * y) - my ** 2, f(x * y) - mx * my
        cs = (2 * sxy + c2) / (sxx + syy + c2)
        if s < 4:
            vals.append(cs.mean())
            x = 0.25 * (x[0::2, 0::2] + x[1::2, 0::2] + x[0::2, 1::2] + x[1::2, 1::2])
            y = 0.25 * (y[0::2, 0::2] + y[1::2, 0::2] + y[0::2, 1::2] + y[1::2, 1::2])
        else:
            lum = (2 * mx * my + c1) / (mx ** 2 + my ** 2 + c1)
            vals.append((lum * cs).mean())
    return float(np.prod([v ** w for v, w in zip(vals, W)]))


def _reference(a, b):
    a, b = a.astype(np.float64), b.astype(np.float64)
    return float(np.mean([_ms_ssim_channel(a[c], b[c]) for c in range(a.shape[0])]))


@pytest.fixture(scope="module")
def pair():
    rng = np.random.default_rng(7)
    H, W_ = 192, 256
    yy, xx = np.mgrid[0:H, 0:W_]
    base = np.stack([120 + 80 * np.sin(xx / 17.0 + c) * np.cos(yy / 23.0) for c in range(3)])
    base += rng.normal(0, 12, base.shape)
    a = np.clip(base, 0, 255).astype(np.uint8)
    noisy = a.astype(np.float64) + rng.normal(0, 9, a.shape)
    noisy[:, 40:90, 60:140] = 128  # a flat patch: structure loss
    b = np.clip(noisy, 0, 255).astype(np.uint8)
    return a, b


def test_ms_ssim_matches_published_definition(pair):
    a, b = pair
    ref = _reference(a, b)
    assert 0.5 < ref < 0.99
    assert ms_ssim(a, b) == pytest.approx(ref, rel=1e-9, abs=1e-12)


def test_ms_ssim_identity_and_symmetry(pair):
    a, b = pair
    assert ms_ssim(a, a) == pytest.approx(1.0, abs=1e-12)
    assert ms_ssim(a, b) == pytest.approx(ms_ssim(b, a), rel=1e-12)
    assert ms_ssim(a, b) < 1.0


def test_ms_ssim_too_small_is_none():
    a = np.zeros((3, 100, 300), np.uint8)
    assert ms_ssim(a, a) is None


def test_psnr_known_value():
    a = np.zeros((3, 8, 8), np.uint8)
    b = a.copy()
    b[0, 0, 0] = 16  # mse = 256 / 192
    assert psnr(a, b) == pytest.approx(10 * np.log10(255 ** 2 * 192 / 256))
    assert psnr(a, a) == float("inf")
