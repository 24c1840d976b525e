"""Large images in bounded memory (issue 18 item 8): every banded / chunked stage
gives the whole-image result bit for bit, and peak RSS grows sub-linearly."""
from __future__ import annotations

import os
import sys

import numpy as np
import pytest

import fxlic.codec as C
import fxlic.metrics as metrics
import fxlic.model.tiled as T
from engine_util import small_model
from fxlic.io import images


@pytest.mark.parametrize("kind,seed", [("hyperprior", 5), ("factorized", 3)])
@pytest.mark.parametrize("hw", [(131, 77), (64, 200)])
def test_banded_codec_odd_sizes_identical(kind, seed, hw, monkeypatch):
    """Odd (padded) sizes, bands of 1-3 rows (many bands, line buffers crossing
    every layer), mean-reduced channels: the same stream and the same pixels
    as the whole-image path."""
    model = small_model(kind, N=8, seed=seed)
    img = np.random.default_rng(11).integers(0, 256, (3,) + hw, dtype=np.uint8)
    img[:, hw[0] // 3:hw[0] // 2] = 255
    monkeypatch.setattr(C, "TILE_FROM", 1 << 40)
    d1, s1 = C.compress(model, img)
    r1 = C.decompress(model, d1)
    monkeypatch.setattr(C, "TILE_FROM", 1)
    monkeypatch.setattr(T, "BAND_ROWS", 1 if hw[0] > 100 else 2)
    monkeypatch.setattr(T, "SYNTH_ROWS", 3)
    d2, s2 = C.compress(model, img)
    r2 = C.decompress(model, d2)
    assert d1 == d2 and r1.shape == img.shape and np.array_equal(r1, r2)
    assert s2.estimated_bits == pytest.approx(s1.estimated_bits, rel=1e-12)


def test_auto_band_is_fixed_rows_and_capped_by_budget():
    """The default band does not depend on the image height (time linear in
    pixels) and shrinks only when its intermediates exceed the budget."""
    model = small_model("hyperprior", N=8, seed=3)
    ga = T._Chain(model, [n for n in model.arch.names if n.startswith("AT")], 1024, 256,
                  T.get_backend("numba"), None)
    assert ga.auto_band(T.BAND_ELEMENTS) == T.BAND_ROWS
    tall = T._Chain(model, [n for n in model.arch.names if n.startswith("AT")], 4096, 256,
                    T.get_backend("numba"), None)
    assert tall.auto_band(T.BAND_ELEMENTS) == T.BAND_ROWS
    assert ga.auto_band(ga.band_peak(0, 2)) <= 2


def test_psnr_and_ms_ssim_banded_equal_whole(monkeypatch):
    rng = np.random.default_rng(2)
    a = rng.integers(0, 256, (3, 203, 190), dtype=np.uint8)
    b = np.clip(a.astype(np.int64) + rng.integers(-20, 21, a.shape), 0, 255).astype(np.uint8)
    p_float = float(10 * np.log10(255.0 ** 2 / np.mean((a.astype(np.float64) - b) ** 2)))
    whole = metrics.ms_ssim(a, b)
    monkeypatch.setattr(metrics, "BAND", 7)
    assert metrics.psnr(a, b) == p_float  # exact: integer sum of squares
    assert metrics.ms_ssim(a, b) == pytest.approx(whole, rel=1e-12)


def test_planar_image_io_in_bands(tmp_path, monkeypatch):
    """read_image / write_png / png_bytes convert in row bands: same pixels,
    same PNG bytes as Pillow's whole-image conversion."""
    import io

    from PIL import Image

    from fxlic.commands.common import png_bytes, write_png_atomic

    monkeypatch.setattr(images, "ROW_BAND", 5)
    px = np.random.default_rng(3).integers(0, 256, (3, 23, 17), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(px.transpose(1, 2, 0))).save(
        buf, format="PNG", compress_level=images.PNG_ZLIB_LEVEL)
    assert png_bytes(px) == buf.getvalue()
    write_png_atomic(str(tmp_path / "a.png"), px)
    assert (tmp_path / "a.png").read_bytes() == buf.getvalue()
    assert np.array_equal(images.read_image(str(tmp_path / "a.png")), px)
    Image.fromarray(px[1]).save(tmp_path / "g.png")
    assert np.array_equal(images.read_image(str(tmp_path / "g.png")), np.stack([px[1]] * 3))


@pytest.mark.slow
def test_cli_peak_rss_sublinear(tmp_path):
    """``fxlic compress`` / ``decompress --original`` (shipped default model) at
    1024^2 and 3072^2 pixels (9x): peak RSS grows less than 3x and stays under
    2 GB (tools/bench_memory.py measures 2k/4k/8k)."""
    sys.path.insert(0, os.path.join(os.path.dirname(__file__)))
    from tool_loader import load_tool

    bench = load_tool("bench_memory")
    rss = {}
    for s in (1024, 3072):
        img, fxl, out = (str(tmp_path / f"i{s}{e}") for e in (".png", ".fxl", ".out.png"))
        bench.synthetic_image(img, s)
        enc = bench.run_cli(["compress", img, "-o", fxl, "-q"])
        dec = bench.run_cli(["decompress", fxl, "-o", out, "--original", img])
        rss[s] = (enc["rss_mb"], dec["rss_mb"])
    print(f"peak RSS MB (compress, decompress): {rss}")
    for i in range(2):
        assert rss[3072][i] < 2048 and rss[3072][i] < 3 * rss[1024][i]
