"""Classical image codecs for the rate-distortion anchors.

Each codec is ``encode(hwc_uint8, q) -> bytes`` and ``decode(bytes) -> hwc_uint8``
with a default sweep of its quality parameter ``q``.  bpp is always
``8 * len(bytes) / pixels`` (the whole file, headers included).

  jpeg      Pillow (libjpeg), quality 1-95 (the low end matters: fxlic's demo models are weak), default 4:2:0 chroma subsampling
  jpeg444   Pillow, 4:4:4 (subsampling=0)
  jpeg2000  imagecodecs (OpenJPEG); q is OpenJPEG's target PSNR of one quality layer
  webp      imagecodecs (libwebp), lossy, quality q
  avif      imagecodecs (libavif/aom), quality q, speed 6
  jpegxl    imagecodecs (libjxl), quality q, effort 7
  hevc      pillow-heif (libheif + x265), HEVC intra in HEIF (the paper's BPG
            anchor), quality q, default 4:2:0
"""
from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Codec:
    name: str
    label: str
    qualities: tuple
    library: str  # what provides it (version recorded in the cache key)

    def encode(self, img: np.ndarray, q) -> bytes:
        return _ENC[self.name](img, q)

    def decode(self, data: bytes) -> np.ndarray:
        out = np.asarray(_DEC[self.name](data))
        if out.ndim == 2:
            out = np.repeat(out[:, :, None], 3, axis=2)
        return np.ascontiguousarray(out[:, :, :3]).astype(np.uint8)


def _pil_jpeg(img, q, subsampling=-1):
    from PIL import Image
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, "JPEG", quality=int(q), subsampling=subsampling)
    return buf.getvalue()


def _pil_decode(data):
    from PIL import Image
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def _heif_encode(img, q):
    import pillow_heif
    from PIL import Image
    hf = pillow_heif.from_pillow(Image.fromarray(img))
    buf = io.BytesIO()
    hf.save(buf, quality=int(q))
    return buf.getvalue()


def _heif_decode(data):
    import pillow_heif
    return np.asarray(pillow_heif.open_heif(io.BytesIO(data)).to_pillow().convert("RGB"))


def _ic(name):
    import imagecodecs
    return getattr(imagecodecs, name)


_ENC = {
    "jpeg": lambda img, q: _pil_jpeg(img, q),
    "jpeg444": lambda img, q: _pil_jpeg(img, q, subsampling=0),
    "jpeg2000": lambda img, q: _ic("jpeg2k_encode")(img, level=float(q)),
    "webp": lambda img, q: _ic("webp_encode")(img, level=int(q), lossless=False),
    "avif": lambda img, q: _ic("avif_encode")(img, level=int(q), speed=6),
    "jpegxl": lambda img, q: _ic("jpegxl_encode")(img, level=int(q), effort=7),
    "hevc": _heif_encode,
}
_DEC = {
    "jpeg": _pil_decode,
    "jpeg444": _pil_decode,
    "jpeg2000": lambda d: _ic("jpeg2k_decode")(d),
    "webp": lambda d: _ic("webp_decode")(d),
    "avif": lambda d: _ic("avif_decode")(d),
    "jpegxl": lambda d: _ic("jpegxl_decode")(d),
    "hevc": _heif_decode,
}

CODECS = {
    "jpeg": Codec("jpeg", "JPEG (Pillow, 4:2:0)", (1, 2, 3, 5, 10, 15, 20, 30, 40, 50, 60, 70, 80, 90, 95), "pillow"),
    "jpeg444": Codec("jpeg444", "JPEG (Pillow, 4:4:4)", (1, 2, 3, 5, 10, 15, 20, 30, 40, 50, 60, 70, 80, 90, 95),
                     "pillow"),
    "jpeg2000": Codec("jpeg2000", "JPEG 2000 (OpenJPEG)", (18, 20, 22, 24, 26, 28, 30, 32, 35, 38),
                      "imagecodecs"),
    "webp": Codec("webp", "WebP (libwebp)", (0, 1, 5, 10, 20, 40, 60, 80, 90), "imagecodecs"),
    "avif": Codec("avif", "AVIF (libaom)", (0, 2, 5, 10, 20, 30, 45, 60, 75, 90), "imagecodecs"),
    "jpegxl": Codec("jpegxl", "JPEG XL (libjxl)", (1, 2, 5, 10, 20, 30, 45, 60, 75, 90), "imagecodecs"),
    "hevc": Codec("hevc", "HEVC intra (x265 via libheif, BPG anchor)", (0, 1, 5, 10, 20, 35, 50, 65, 80),
                  "pillow_heif"),
}


def library_version(lib: str) -> str:
    try:
        if lib == "pillow":
            import PIL
            return "pillow " + PIL.__version__
        if lib == "imagecodecs":
            import imagecodecs
            return "imagecodecs " + imagecodecs.__version__
        if lib == "pillow_heif":
            import pillow_heif
            info = pillow_heif.libheif_info()
            return f"pillow_heif {pillow_heif.__version__} libheif {info.get('libheif')}"
    except Exception:  # noqa: BLE001 -- any import problem means "not available"
        return ""
    return ""


def available(name: str) -> bool:
    """True if codec ``name`` can encode and decode a tiny image here."""
    c = CODECS[name]
    if not library_version(c.library):
        return False
    try:
        img = np.zeros((16, 16, 3), np.uint8)
        img[4:12, 4:12] = 200
        out = c.decode(c.encode(img, c.qualities[len(c.qualities) // 2]))
        return out.shape == img.shape
    except Exception:  # noqa: BLE001
        return False
