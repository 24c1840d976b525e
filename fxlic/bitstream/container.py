"""The .fxl bitstream container (docs/BITSTREAM.md).

Layout (little-endian), every field checked on read before anything is
allocated:

    offset size field
    0      4    magic b"FXLC"
    4      1    format version (1)
    5      1    architecture kind: 0 hyperprior, 1 factorized
    6      16   model id: first 16 bytes of the model's sha256 content hash
    22     2    image height H (1..16384)
    24     2    image width W (1..16384)
    26     1    channels (3)
    27     1    pad multiple (64 hyperprior, 16 factorized; SPEC P1)
    28     2    number K of mean-reduced channels
    30     3K   K x (channel u16, mu int8)       (SPEC M3)
    ..     4    length of the z substream Lz (0 for a factorized model)
    ..     4    length of the y substream Ly
    ..     Lz   z substream (rANS, docs/ENTROPY.md)
    ..     Ly   y substream
    end-4  4    CRC-32 (zlib / ISO-HDLC polynomial) of every preceding byte

Decoder limits (docs/BITSTREAM.md, "Limits"):

* D1 ``max_pixels``: a stream declaring more than this many pixels is refused
  from its header, before any decoding work (``check_pixels``;
  ``fxlic decompress --max-pixels``, default MAX_PIXELS);
* D2 a file is checked header-first: declared lengths against the file size,
  then the CRC streamed in 1 MiB chunks, then the substreams are read
  (``read_stream``), so a large file costs no memory before it is known good.
"""
from __future__ import annotations

import os
import struct
import zlib
from dataclasses import dataclass, field

MAGIC = b"FXLC"
FORMAT_VERSION = 1
KINDS = {"hyperprior": 0, "factorized": 1}
MAX_SIDE = 16384
MAX_PIXELS = 1 << 26  # 8192 x 8192
#: largest .fxl file read (bytes)
MAX_STREAM_BYTES = 1 << 30
_CHUNK = 1 << 20
_FIXED = struct.Struct("<4sBB16sHHBBH")


class BitstreamError(ValueError):
    """A stream fxlic refuses to decode (corrupt, truncated, foreign model...)."""


@dataclass
class Header:
    kind: str
    model_id: bytes
    height: int
    width: int
    pad_multiple: int
    mu: dict = field(default_factory=dict)  # channel -> int8 mu
    channels: int = 3


def pack(h: Header, z: bytes, y: bytes) -> bytes:
    if not (1 <= h.height <= MAX_SIDE and 1 <= h.width <= MAX_SIDE) or h.height * h.width > MAX_PIXELS:
        raise BitstreamError(f"image size {h.width} x {h.height} outside the supported range "
                             f"(1..{MAX_SIDE} per side, at most {MAX_PIXELS} pixels)")
    if len(h.model_id) != 16:
        raise ValueError("model id must be 16 bytes")
    out = bytearray(_FIXED.pack(MAGIC, FORMAT_VERSION, KINDS[h.kind], h.model_id, h.height,
                                h.width, h.channels, h.pad_multiple, len(h.mu)))
    for c in sorted(h.mu):
        out += struct.pack("<Hb", c, h.mu[c])
    out += struct.pack("<II", len(z), len(y))
    out += z + y
    out += struct.pack("<I", zlib.crc32(out) & 0xFFFFFFFF)
    return bytes(out)


def _check_fields(data, total: int, crc_ok=None):
    """Every header field of ``data`` (the stream's first bytes, at least the
    whole header) against the stream length ``total``: (Header, lz, ly, pos).
    ``crc_ok()`` is called after magic and version (in-memory streams)."""
    if total < _FIXED.size + 12 or len(data) < _FIXED.size:
        raise BitstreamError(f"stream too short ({total} bytes): not an fxlic stream or truncated")
    magic, ver, kind, mid, H, W, C, pm, K = _FIXED.unpack_from(data, 0)
    if magic != MAGIC:
        raise BitstreamError("not an fxlic stream (bad magic)")
    if ver != FORMAT_VERSION:
        raise BitstreamError(f"stream format version {ver} is not supported (this fxlic reads {FORMAT_VERSION})")
    if crc_ok is not None and not crc_ok():
        raise BitstreamError("CRC mismatch: the stream is corrupt or truncated")
    kinds = {v: k for k, v in KINDS.items()}
    if kind not in kinds:
        raise BitstreamError(f"unknown architecture kind {kind}")
    if not (1 <= H <= MAX_SIDE and 1 <= W <= MAX_SIDE) or H * W > MAX_PIXELS:
        raise BitstreamError(f"image size {W} x {H} outside the supported range")
    if C != 3:
        raise BitstreamError(f"{C} channels: only RGB streams exist")
    pos = _FIXED.size
    if pos + 3 * K + 8 + 4 > total or pos + 3 * K + 8 > len(data):
        raise BitstreamError("truncated header")
    mu = {}
    for _ in range(K):
        c, m = struct.unpack_from("<Hb", data, pos)
        pos += 3
        if c in mu:
            raise BitstreamError("duplicate mean-reduced channel")
        mu[c] = m
    lz, ly = struct.unpack_from("<II", data, pos)
    pos += 8
    if pos + lz + ly + 4 != total:
        raise BitstreamError("substream lengths do not match the stream size")
    return Header(kinds[kind], mid, H, W, pm, mu, C), lz, ly, pos


def unpack(data: bytes):
    """-> (Header, z bytes, y bytes).  Raises BitstreamError on anything wrong."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise BitstreamError("not a byte string")
    view = memoryview(data).cast("B")
    n = len(view)

    def crc_ok():
        return zlib.crc32(view[:-4]) & 0xFFFFFFFF == struct.unpack_from("<I", view, n - 4)[0]

    hdr, lz, ly, pos = _check_fields(view, n, crc_ok)
    return hdr, bytes(view[pos:pos + lz]), bytes(view[pos + lz:pos + lz + ly])


def check_pixels(hdr: Header, max_pixels: int = None) -> None:
    """D1: refuse a stream whose declared H x W exceeds ``max_pixels``
    (default MAX_PIXELS), from the header alone, before any decoding work."""
    limit = MAX_PIXELS if max_pixels is None else int(max_pixels)
    if hdr.height * hdr.width > limit:
        raise BitstreamError(f"image of {hdr.width} x {hdr.height} = {hdr.width * hdr.height:,} pixels "
                             f"exceeds --max-pixels {limit:,}")


def read_stream(path: str, max_pixels: int = None, max_bytes: int = MAX_STREAM_BYTES):
    """A .fxl file -> (Header, z bytes, y bytes), bounded (D2): the header is
    read and checked against the file size (and ``max_pixels``, D1) first, the
    CRC is computed in 1 MiB chunks, and only then are the substreams read --
    memory is the substreams themselves, whatever the file holds.  Raises
    BitstreamError (stream problems) or OSError (file problems)."""
    with open(path, "rb") as f:
        total = os.fstat(f.fileno()).st_size
        if total > max_bytes:
            raise BitstreamError(f"{total} bytes is larger than any fxlic stream ({max_bytes} at most)")
        head = f.read(_FIXED.size + 3 * 0xFFFF + 8)
        hdr, lz, ly, pos = _check_fields(head, total)
        check_pixels(hdr, max_pixels)
        f.seek(0)
        crc, left = 0, total - 4
        while left > 0:
            chunk = f.read(min(_CHUNK, left))
            if not chunk:
                raise BitstreamError("stream truncated while reading")
            crc = zlib.crc32(chunk, crc)
            left -= len(chunk)
        if crc & 0xFFFFFFFF != struct.unpack("<I", f.read(4))[0]:
            raise BitstreamError("CRC mismatch: the stream is corrupt or truncated")
        f.seek(pos)
        z, y = f.read(lz), f.read(ly)
    if len(z) != lz or len(y) != ly:
        raise BitstreamError("stream truncated while reading")
    return hdr, z, y
