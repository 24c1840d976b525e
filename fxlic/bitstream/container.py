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
"""
from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field

MAGIC = b"FXLC"
FORMAT_VERSION = 1
KINDS = {"hyperprior": 0, "factorized": 1}
MAX_SIDE = 16384
MAX_PIXELS = 1 << 26  # 8192 x 8192
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


def unpack(data: bytes):
    """-> (Header, z bytes, y bytes).  Raises BitstreamError on anything wrong."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise BitstreamError("not a byte string")
    data = bytes(data)
    if len(data) < _FIXED.size + 12:
        raise BitstreamError(f"stream too short ({len(data)} bytes): not an fxlic stream or truncated")
    magic, ver, kind, mid, H, W, C, pm, K = _FIXED.unpack_from(data, 0)
    if magic != MAGIC:
        raise BitstreamError("not an fxlic stream (bad magic)")
    if ver != FORMAT_VERSION:
        raise BitstreamError(f"stream format version {ver} is not supported (this fxlic reads {FORMAT_VERSION})")
    crc = struct.unpack_from("<I", data, len(data) - 4)[0]
    if zlib.crc32(data[:-4]) & 0xFFFFFFFF != crc:
        raise BitstreamError("CRC mismatch: the stream is corrupt or truncated")
    kinds = {v: k for k, v in KINDS.items()}
    if kind not in kinds:
        raise BitstreamError(f"unknown architecture kind {kind}")
    if not (1 <= H <= MAX_SIDE and 1 <= W <= MAX_SIDE) or H * W > MAX_PIXELS:
        raise BitstreamError(f"image size {W} x {H} outside the supported range")
    if C != 3:
        raise BitstreamError(f"{C} channels: only RGB streams exist")
    pos = _FIXED.size
    if pos + 3 * K + 8 + 4 > len(data):
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
    if pos + lz + ly + 4 != len(data):
        raise BitstreamError("substream lengths do not match the stream size")
    z = data[pos:pos + lz]
    y = data[pos + lz:pos + lz + ly]
    return Header(kinds[kind], mid, H, W, pm, mu, C), z, y
