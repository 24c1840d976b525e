"""Byte files of ``fxlic verify`` (the .fxl bitstream and the rANS substreams):
the first differing byte and the header field or substream it lies in
(docs/BITSTREAM.md), the dump's CRC, and the first symbol that decodes
differently (rans_diff.py)."""
from __future__ import annotations

import struct
import zlib

import numpy as np

from .golden import Golden
from .rans_diff import rans_symbol_diff
from .results import FAIL, TensorResult


_FXL_FIELDS = [(0, 4, "magic"), (4, 5, "format version"), (5, 6, "architecture kind"), (6, 22, "model id"),
               (22, 24, "image height"), (24, 26, "image width"), (26, 27, "channels"),
               (27, 28, "pad multiple"), (28, 30, "number of mean-reduced channels")]


def fxl_layout(data: bytes):
    """The regions of a .fxl stream (docs/BITSTREAM.md), read leniently (no
    CRC check): (list of (start, end, name), {"z": (s, e), "y": (s, e)} or None
    when the lengths do not add up)."""
    regions = [r for r in _FXL_FIELDS if r[1] <= len(data)]
    if len(data) < 30:
        return regions, None
    K = struct.unpack_from("<H", data, 28)[0]
    pos = 30
    for i in range(K):
        if pos + 3 > len(data):
            return regions, None
        regions.append((pos, pos + 3, f"mean-reduced channel entry {i} (channel u16, mu int8)"))
        pos += 3
    if pos + 8 > len(data):
        return regions, None
    lz, ly = struct.unpack_from("<II", data, pos)
    regions += [(pos, pos + 4, "z substream length"), (pos + 4, pos + 8, "y substream length")]
    pos += 8
    if pos + lz + ly + 4 != len(data):
        return regions, None
    subs = {"z": (pos, pos + lz), "y": (pos + lz, pos + lz + ly)}
    regions += [(pos, pos + lz, "z substream"), (pos + lz, pos + lz + ly, "y substream"),
                (len(data) - 4, len(data), "CRC-32")]
    return regions, subs


def fxl_region(data: bytes, off: int) -> str:
    if off >= len(data):
        return "past the end of the golden stream"
    regions, _ = fxl_layout(data)
    for s, e, name in regions:
        if s <= off < e:
            if name.endswith("substream"):
                return f"{name} byte {off - s}"
            return f"header: {name}" if name != "CRC-32" else "the CRC-32"
    return "after the header"


def rans_region(off: int, n: int) -> str:
    if off >= n:
        return "past the end of the golden substream"
    w = off // 4
    return f"32-bit word {w}" + (" (initial state)" if w < 2 else "")


def first_byte_diff(a: bytes, b: bytes):
    """(differing bytes incl. the length difference, first differing offset or None)."""
    n = min(len(a), len(b))
    x = np.frombuffer(a, np.uint8, n)
    y = np.frombuffer(b, np.uint8, n)
    bad = np.flatnonzero(x != y)
    count = int(bad.size) + abs(len(a) - len(b))
    if bad.size:
        return count, int(bad[0])
    return count, (n if len(a) != len(b) else None)


def compare_bytes(G: Golden, rel: str, golden: bytes, got: bytes, res: TensorResult) -> None:
    count, off = first_byte_diff(golden, got)
    if off is None:
        return
    res.status = FAIL
    res.mismatches = count
    res.first_offset = off
    if rel == "stream.fxl":
        res.region = fxl_region(golden, off)
    else:
        res.region = rans_region(off, len(golden))
    if len(golden) != len(got):
        head = f"{rel}: {len(got)} bytes, expected {len(golden)}; first difference at byte offset {off}"
    else:
        head = f"{rel}: {count} of {len(golden)} bytes differ; first at byte offset {off}"
    res.message = f"{head} ({res.region})"
    sym = None
    if rel == "stream.fxl":
        _, gsub = fxl_layout(golden)
        _, dsub = fxl_layout(got)
        if len(got) >= 4 and zlib.crc32(got[:-4]) & 0xFFFFFFFF != struct.unpack_from("<I", got, len(got) - 4)[0]:
            res.details.append("the dump's CRC-32 does not match its bytes")
        if gsub is not None and dsub is not None:
            for which in ("z", "y"):
                a = golden[gsub[which][0]:gsub[which][1]]
                b = got[dsub[which][0]:dsub[which][1]]
                if a != b and (a or b):
                    sym = rans_symbol_diff(G, which, a, b)
                    break
        elif gsub is not None:
            res.details.append("the dump's header and substream lengths do not add up to its size: "
                               "substreams not compared")
    elif rel in ("entropy/z.rans", "entropy/y.rans"):
        sym = rans_symbol_diff(G, rel[len("entropy/")], golden, got)
    if isinstance(sym, dict):
        res.symbol = {k: v for k, v in sym.items() if k != "text"}
        res.message += "; " + sym["text"]
    elif isinstance(sym, str):
        res.details.append(sym)
