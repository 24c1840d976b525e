"""Reading and writing images (PNG, JPEG, PPM/PGM/PBM) via Pillow.

Rules (``read_image``):
* the result is (3, H, W) uint8;
* 8-bit RGB is taken as is; greyscale (L, 1-bit) is replicated to three
  channels; palette images are expanded to RGB;
* an alpha channel (RGBA, LA, or a palette with transparency) is dropped -- no
  compositing -- with a warning on stderr;
* more than 8 bits per sample (16-bit PNG, PPM with maxval > 255) is refused:
  convert the image to 8 bits first; CMYK and other modes are refused too;
* zero-sized images and images of more than MAX_PIXELS pixels are refused;
* every problem raises ``ImageError`` with a one-line message.
"""
from __future__ import annotations

import os
import sys
import warnings

import numpy as np

#: largest image accepted (pixels): 4096 * 4096 * 4
MAX_PIXELS = 4096 * 4096 * 4
#: extensions ``list_images`` picks up (lower case)
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".ppm", ".pgm", ".pbm", ".pnm")
FORMATS = ("PNG", "JPEG", "PPM")


class ImageError(ValueError):
    """An image fxlic cannot read or write."""


def _png_bit_depth(path: str):
    with open(path, "rb") as f:
        head = f.read(26)
    if len(head) >= 25 and head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR":
        return head[24]
    return None


def _pnm_maxval(path: str):
    """maxval of a PNM header (None for bitmaps or an unparsable header)."""
    with open(path, "rb") as f:
        head = f.read(1024)
    if len(head) < 2 or head[:1] != b"P" or head[1:2] not in b"2356":
        return None
    tokens, i, n = [], 2, len(head)
    while len(tokens) < 3 and i < n:
        c = head[i:i + 1]
        if c == b"#":
            while i < n and head[i:i + 1] not in (b"\n", b"\r"):
                i += 1
        elif c.isspace():
            i += 1
        else:
            j = i
            while j < n and not head[j:j + 1].isspace() and head[j:j + 1] != b"#":
                j += 1
            tokens.append(head[i:j])
            i = j
    try:
        return int(tokens[2])
    except (IndexError, ValueError):
        return None


def read_image(path: str, warn=None) -> np.ndarray:
    """Read an image as (3, H, W) uint8 (rules in the module docstring)."""
    from PIL import Image, UnidentifiedImageError

    if warn is None:
        def warn(msg):
            print(f"warning: {msg}", file=sys.stderr)
    from .files import check_input

    check_input(path, ImageError, "an image file")  # F1: loops, devices, directories
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                fmt = im.format
                if fmt not in FORMATS:
                    raise ImageError(f"{path}: {fmt} images are not supported (use PNG, JPEG or PPM)")
                w, h = im.size
                if w <= 0 or h <= 0:
                    raise ImageError(f"{path}: image has zero size ({w}x{h})")
                if w * h > MAX_PIXELS:
                    raise ImageError(f"{path}: image is {w}x{h} = {w * h:,} pixels, more than the "
                                     f"{MAX_PIXELS:,} fxlic accepts")
                if fmt == "PNG" and (_png_bit_depth(path) or 8) > 8:
                    raise ImageError(f"{path}: 16-bit PNG is not supported; convert it to 8 bits "
                                     f"per sample first")
                if fmt == "PPM" and (_pnm_maxval(path) or 255) > 255:
                    raise ImageError(f"{path}: PNM with maxval {_pnm_maxval(path)} (more than 8 bits "
                                     f"per sample) is not supported; convert it to 8 bits first")
                mode = im.mode
                if mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
                    raise ImageError(f"{path}: {mode} image with more than 8 bits per sample is not "
                                     f"supported; convert it to 8 bits per sample first")
                if mode == "P":
                    im = im.convert("RGBA" if "transparency" in im.info else "RGB")
                    mode = im.mode
                elif mode == "PA":
                    im = im.convert("RGBA")
                    mode = im.mode
                if mode in ("RGBA", "LA", "RGBa", "La"):
                    warn(f"{path}: alpha channel dropped (no compositing)")
                    im = im.convert("RGB" if mode.startswith("RGB") else "L")
                    mode = im.mode
                if mode == "1":
                    im = im.convert("L")
                    mode = "L"
                if mode == "YCbCr":
                    im, mode = im.convert("RGB"), "RGB"
                if mode in ("L", "RGB"):
                    a = _planar(im)
                else:
                    raise ImageError(f"{path}: {mode} images are not supported (use 8-bit RGB or "
                                     f"greyscale)")
    except ImageError:
        raise
    except UnidentifiedImageError:
        raise ImageError(f"{path}: not an image (or an unsupported format)") from None
    except Image.DecompressionBombError as e:
        raise ImageError(f"{path}: image too large ({e})") from None
    except Image.DecompressionBombWarning as e:
        raise ImageError(f"{path}: image too large ({e})") from None
    except (OSError, ValueError, SyntaxError, EOFError) as e:
        raise ImageError(f"{path}: cannot read image ({e.__class__.__name__}: {e})") from None
    if a.shape[1] == 0 or a.shape[2] == 0:
        raise ImageError(f"{path}: image has zero size")
    return a


#: rows converted per step between Pillow's interleaved and fxlic's planar layout
ROW_BAND = 256


def _planar(im) -> np.ndarray:
    """An L or RGB Pillow image -> (3, H, W) uint8 (L replicated), converted in
    row bands so that no whole-image (H, W, 3) copy is made (issue 18)."""
    w, h = im.size
    im.load()
    out = np.empty((3, h, w), np.uint8)
    for r in range(0, h, ROW_BAND):
        band = np.asarray(im.crop((0, r, w, min(h, r + ROW_BAND))), dtype=np.uint8)
        out[:, r:r + band.shape[0]] = band[None] if band.ndim == 2 else band.transpose(2, 0, 1)
    return out


#: zlib level of the PNGs fxlic writes (decompress, demo, write_png): on a
#: 768 x 512 reconstruction level 3 took 0.07 s against 0.31 s at Pillow's
#: default 6, for a 10 % larger file (docs/PERFORMANCE.md, session 9)
PNG_ZLIB_LEVEL = 3


def save_png(pixels, f) -> None:
    """(3, H, W) uint8 -> PNG into the open binary file ``f`` (zlib level PNG_ZLIB_LEVEL)."""
    png_image(pixels).save(f, format="PNG", compress_level=PNG_ZLIB_LEVEL)


def png_image(pixels):
    """(3, H, W) uint8 -> an RGB Pillow image, filled in row bands (no
    whole-image interleaved copy; Pillow's own buffer is the only one)."""
    from PIL import Image

    _, h, w = pixels.shape
    im = Image.new("RGB", (w, h))
    for r in range(0, h, ROW_BAND):
        band = np.ascontiguousarray(pixels[:, r:r + ROW_BAND].transpose(1, 2, 0))
        im.paste(Image.fromarray(band), (0, r))
    return im


def write_png(path: str, pixels) -> None:
    """Write (3, H, W) uint8 pixels as PNG atomically (temporary file + rename,
    nothing left behind on error, mode 0666 minus the umask: fxlic.io.files F3)."""
    a = np.asarray(pixels)
    if a.ndim != 3 or a.shape[0] != 3 or a.dtype != np.uint8 or a.shape[1] == 0 or a.shape[2] == 0:
        raise ImageError(f"write_png expects (3, H, W) uint8 pixels, got {a.dtype}{a.shape}")
    from .files import atomic_write

    atomic_write(path, lambda f: save_png(a, f), ImageError)


def list_images(directory: str, n: int = None) -> list:
    """Image files of ``directory`` (by extension, hidden files skipped), sorted
    by name; the first ``n`` if given.  Raises ImageError if there are none."""
    if not os.path.exists(directory):
        raise ImageError(f"{directory}: no such directory")
    if not os.path.isdir(directory):
        raise ImageError(f"{directory}: not a directory")
    names = sorted(f for f in os.listdir(directory)
                   if not f.startswith(".") and f.lower().endswith(IMAGE_EXTENSIONS)
                   and os.path.isfile(os.path.join(directory, f)))
    if not names:
        raise ImageError(f"{directory}: no images ({', '.join(IMAGE_EXTENSIONS)})")
    if n is not None:
        if n < 1:
            raise ImageError("the number of images must be at least 1")
        names = names[:n]
    return [os.path.join(directory, f) for f in names]


def center_crop(pixels: np.ndarray, max_size: int) -> np.ndarray:
    """Crop (C, H, W) to at most max_size x max_size around the centre."""
    if not max_size:
        return pixels
    C, H, W = pixels.shape
    h, w = min(H, max_size), min(W, max_size)
    y, x = (H - h) // 2, (W - w) // 2
    return pixels[:, y:y + h, x:x + w]
