"""Image reading rules (fxlic/io/images.py) and atomic PNG writing."""
import os
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from fxlic.io.images import ImageError, center_crop, list_images, read_image, write_png

RNG = np.random.default_rng(0)


def _rgb(h=5, w=7):
    return RNG.integers(0, 256, (h, w, 3), dtype=np.uint8)


def _png16_rgb(path, h=5, w=7):
    def chunk(t, b):
        return struct.pack(">I", len(b)) + t + b + struct.pack(">I", zlib.crc32(t + b) & 0xFFFFFFFF)
    raw = b"".join(b"\0" + RNG.integers(0, 256, w * 6, dtype=np.uint8).tobytes() for _ in range(h))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def test_rgb_formats(tmp_path):
    a = _rgb()
    Image.fromarray(a).save(tmp_path / "a.png")
    Image.fromarray(a).save(tmp_path / "a.ppm")
    for name in ("a.png", "a.ppm"):
        px = read_image(str(tmp_path / name))
        assert px.dtype == np.uint8 and px.shape == (3, 5, 7)
        assert np.array_equal(px, a.transpose(2, 0, 1))
    Image.fromarray(a).save(tmp_path / "a.jpg")
    assert read_image(str(tmp_path / "a.jpg")).shape == (3, 5, 7)


def test_grey_palette_alpha(tmp_path, capsys):
    g = RNG.integers(0, 256, (4, 6), dtype=np.uint8)
    Image.fromarray(g, "L").save(tmp_path / "g.png")
    px = read_image(str(tmp_path / "g.png"))
    assert np.array_equal(px, np.stack([g, g, g]))  # grey replicated to RGB
    a = _rgb()
    Image.fromarray(a).convert("P", palette=Image.Palette.ADAPTIVE, colors=256).save(tmp_path / "p.png")
    assert read_image(str(tmp_path / "p.png")).shape == (3, 5, 7)
    rgba = np.concatenate([a, np.full((5, 7, 1), 9, np.uint8)], axis=2)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "t.png")
    px = read_image(str(tmp_path / "t.png"))
    assert np.array_equal(px, a.transpose(2, 0, 1))  # alpha dropped, no compositing
    assert "alpha channel dropped" in capsys.readouterr().err
    Image.fromarray(g, "L").convert("LA").save(tmp_path / "la.png")
    assert np.array_equal(read_image(str(tmp_path / "la.png")), np.stack([g, g, g]))


def test_refusals(tmp_path):
    with pytest.raises(ImageError, match="no such file"):
        read_image(str(tmp_path / "missing.png"))
    with pytest.raises(ImageError, match="directory"):
        read_image(str(tmp_path))
    (tmp_path / "text.png").write_text("not an image")
    with pytest.raises(ImageError, match="not an image"):
        read_image(str(tmp_path / "text.png"))
    Image.fromarray(RNG.integers(0, 65535, (4, 4), dtype=np.uint16)).save(tmp_path / "g16.png")
    with pytest.raises(ImageError, match="16-bit PNG"):
        read_image(str(tmp_path / "g16.png"))
    _png16_rgb(tmp_path / "rgb16.png")
    with pytest.raises(ImageError, match="16-bit PNG"):
        read_image(str(tmp_path / "rgb16.png"))
    (tmp_path / "p16.ppm").write_bytes(b"P6 7 5 65535\n" + bytes(7 * 5 * 6))
    with pytest.raises(ImageError, match="maxval 65535"):
        read_image(str(tmp_path / "p16.ppm"))
    Image.fromarray(_rgb()).save(tmp_path / "a.bmp")
    with pytest.raises(ImageError, match="BMP"):
        read_image(str(tmp_path / "a.bmp"))
    Image.fromarray(_rgb(64, 64)).save(tmp_path / "big.png")
    data = (tmp_path / "big.png").read_bytes()
    (tmp_path / "trunc.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageError):
        read_image(str(tmp_path / "trunc.png"))
    (tmp_path / "zero.ppm").write_bytes(b"P6 0 5 255\n")
    with pytest.raises(ImageError):
        read_image(str(tmp_path / "zero.ppm"))


def test_too_large_refused(tmp_path):
    # a PNG header claiming 20000 x 20000 pixels (> 4096*4096*4)
    def chunk(t, b):
        return struct.pack(">I", len(b)) + t + b + struct.pack(">I", zlib.crc32(t + b) & 0xFFFFFFFF)
    (tmp_path / "huge.png").write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(
        b"IHDR", struct.pack(">IIBBBBB", 20000, 20000, 8, 2, 0, 0, 0)) + chunk(b"IEND", b""))
    with pytest.raises(ImageError, match="pixels"):
        read_image(str(tmp_path / "huge.png"))


def test_write_png_atomic(tmp_path):
    px = _rgb(6, 9).transpose(2, 0, 1).copy()
    p = str(tmp_path / "o.png")
    write_png(p, px)
    assert np.array_equal(read_image(p), px)
    with pytest.raises(ImageError):
        write_png(str(tmp_path / "bad.png"), px.astype(np.int16))
    with pytest.raises(ImageError):
        write_png(str(tmp_path / "nodir" / "x.png"), px)
    assert sorted(os.listdir(tmp_path)) == ["o.png"]


def test_list_images_and_crop(tmp_path):
    for n in ("b.png", "a.PNG", "c.jpg", ".hidden.png", "notes.txt", "d.ppm"):
        (tmp_path / n).write_bytes(b"x")
    (tmp_path / "sub.png").mkdir()
    names = [os.path.basename(p) for p in list_images(str(tmp_path))]
    assert names == ["a.PNG", "b.png", "c.jpg", "d.ppm"]
    assert [os.path.basename(p) for p in list_images(str(tmp_path), 2)] == ["a.PNG", "b.png"]
    with pytest.raises(ImageError, match="no images"):
        list_images(str(tmp_path / "sub.png"))
    with pytest.raises(ImageError, match="no such directory"):
        list_images(str(tmp_path / "none"))
    x = np.arange(3 * 10 * 7).reshape(3, 10, 7)
    c = center_crop(x, 4)
    assert c.shape == (3, 4, 4) and np.array_equal(c, x[:, 3:7, 1:5])
    assert center_crop(x, 0) is x
