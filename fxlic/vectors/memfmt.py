"""Byte-exact file forms of the test vectors (docs/VECTORS.md, "File formats").

* ``.npy``: NumPy format 1.0, little-endian, C order, written here (not by
  ``np.save``) so the bytes never depend on the NumPy version;
* ``.mem``: ``$readmemh`` text, one element per line, fixed width lower-case
  hex, two's complement for signed types (width = 8 x itemsize bits);
* ``.png``: 8-bit RGB, written with *stored* (uncompressed) deflate blocks so
  the bytes never depend on the zlib / Pillow build.

Everything is deterministic: the same array always gives the same bytes.
"""
from __future__ import annotations

import re
import struct
import zlib

import numpy as np

#: dtypes a vector tensor may have (name -> numpy dtype, little-endian)
DTYPES = {
    "uint8": np.dtype("u1"), "int8": np.dtype("i1"),
    "uint16": np.dtype("<u2"), "int16": np.dtype("<i2"),
    "uint32": np.dtype("<u4"), "int32": np.dtype("<i4"),
    "int64": np.dtype("<i8"), "uint64": np.dtype("<u8"),
}
_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
#: byte value -> its two lower-case hex digits, as the uint16 whose memory holds them
_HEX_PAIR = np.stack([_HEX[np.arange(256) >> 4], _HEX[np.arange(256) & 15]], axis=1).copy().view(np.uint16)[:, 0]
#: elements per step of mem_bytes
_MEM_CHUNK = 1 << 18
_HEXVAL = np.full(256, 255, dtype=np.uint8)
_HEXVAL[np.frombuffer(b"0123456789", np.uint8)] = np.arange(10)
_HEXVAL[np.frombuffer(b"abcdef", np.uint8)] = np.arange(10, 16)
_HEXVAL[np.frombuffer(b"ABCDEF", np.uint8)] = np.arange(10, 16)


class MemFormatError(ValueError):
    """A .mem or .npy file that does not have the expected form."""


def dtype_name(dt) -> str:
    dt = np.dtype(dt)
    for k, v in DTYPES.items():
        if v.kind == dt.kind and v.itemsize == dt.itemsize:
            return k
    raise ValueError(f"unsupported vector dtype {dt}")


def mem_layout(dtype) -> dict:
    """The .mem layout of a dtype: bits, hex digits per line, signedness."""
    dt = DTYPES[dtype] if isinstance(dtype, str) else np.dtype(dtype)
    bits = 8 * dt.itemsize
    return {"width_bits": bits, "hex_digits": bits // 4, "signed": dt.kind == "i"}


def as_dtype(a, dtype: str) -> np.ndarray:
    """Cast an integer array to a vector dtype, refusing values that do not fit."""
    a = np.asarray(a)
    dt = DTYPES[dtype]
    if a.size:
        if a.dtype.kind not in "iub":
            raise TypeError(f"expected integers, got {a.dtype}")
        info = np.iinfo(dt)
        lo, hi = int(a.min()), int(a.max())
        if lo < info.min or hi > info.max:
            raise OverflowError(f"values [{lo}, {hi}] do not fit {dtype}")
    return np.ascontiguousarray(a.astype(dt))


def smallest_dtype(a, candidates=("int32", "int64")) -> str:
    """The first candidate dtype that holds every value of ``a``."""
    a = np.asarray(a)
    lo, hi = (int(a.min()), int(a.max())) if a.size else (0, 0)
    for c in candidates:
        info = np.iinfo(DTYPES[c])
        if info.min <= lo and hi <= info.max:
            return c
    raise OverflowError(f"values [{lo}, {hi}] fit none of {candidates}")


# ---------------------------------------------------------------------------
# .npy
# ---------------------------------------------------------------------------

def npy_bytes(a: np.ndarray) -> bytes:
    """NumPy .npy format 1.0 of a C-contiguous little-endian array (the header
    is the one ``np.save`` writes: dict literal padded with spaces to a
    64-byte boundary, ending in a newline)."""
    a = np.asarray(a)
    a = a if a.flags.c_contiguous else a.copy(order="C")
    if a.dtype.byteorder == ">":
        raise ValueError("big-endian arrays are not written")
    return _npy_header(a.dtype, a.shape) + a.tobytes()


def _npy_header(dt, shape) -> bytes:
    """The 10-byte preamble and the padded header dict of ``npy_bytes``."""
    dt = np.dtype(dt)
    descr = dt.str if dt.itemsize > 1 else "|" + dt.str[1:]
    s = "(" + "".join(f"{int(n)}, " for n in shape)
    s = (s[:-2] + ",)") if len(shape) == 1 else (s[:-2] + ")" if len(shape) else "()")
    header = "{'descr': '%s', 'fortran_order': False, 'shape': %s, }" % (descr, s)
    total = 10 + len(header) + 1
    header += " " * (64 - total % 64) + "\n"  # as np.save (1..64 spaces)
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode("latin1")


def npy_size(shape, dtype: str) -> int:
    """Exact size in bytes of ``npy_bytes`` of an array of ``shape`` and ``dtype``."""
    dt = DTYPES[dtype] if isinstance(dtype, str) else np.dtype(dtype)
    count = 1
    for n in shape:
        count *= int(n)
    return len(_npy_header(dt, tuple(shape))) + count * dt.itemsize


def mem_size(shape, dtype: str) -> int:
    """Exact size in bytes of ``mem_bytes``: elements x (hex digits + 1)."""
    count = 1
    for n in shape:
        count *= int(n)
    return count * (mem_layout(dtype)["hex_digits"] + 1)


def png_size(height: int, width: int) -> int:
    """Exact size in bytes of ``png_bytes`` of a (3, height, width) image."""
    raw = height * (1 + 3 * width)
    blocks = max(1, -(-raw // 65535))
    z = 2 + 5 * blocks + raw + 4
    return 8 + (12 + 13) + (12 + z) + 12


def read_npy(data: bytes) -> np.ndarray:
    """Parse .npy bytes (no pickles).  Raises MemFormatError."""
    import io

    try:
        return np.load(io.BytesIO(data), allow_pickle=False)
    except Exception as e:  # noqa: BLE001 - any parse failure is "malformed"
        raise MemFormatError(f"not a valid .npy file ({e.__class__.__name__}: {e})") from None


# ---------------------------------------------------------------------------
# .mem ($readmemh)
# ---------------------------------------------------------------------------

def mem_bytes(a, dtype: str = None) -> bytes:
    """``$readmemh`` text: element i (C order) on line i, ``hex_digits`` lower-case
    hex digits of the two's complement bit pattern, newline-terminated."""
    a = np.asarray(a)
    dt = DTYPES[dtype] if dtype else a.dtype
    a = as_dtype(a, dtype_name(dt)).reshape(-1)  # little-endian, contiguous (DTYPES)
    n = a.dtype.itemsize
    # the bytes of each element, most significant first (the text's digit order),
    # each byte looked up as its two hex digits (one uint16 per byte)
    b = a.view(np.uint8).reshape(a.size, n)[:, ::-1]
    out = np.empty((a.size, 2 * n + 1), dtype=np.uint8)
    for i in range(0, a.size, _MEM_CHUNK):  # bounded temporaries (intp indices)
        j = min(i + _MEM_CHUNK, a.size)
        idx = b[i:j].astype(np.intp)
        out[i:j, :2 * n] = _HEX_PAIR[idx].view(np.uint8).reshape(j - i, 2 * n)
    out[:, 2 * n] = ord("\n")
    return out.tobytes()


_TOKEN = re.compile(rb"[0-9a-fA-F]+")


def read_mem(data: bytes, count: int, dtype: str) -> np.ndarray:
    """Parse ``$readmemh`` text into ``count`` values of ``dtype`` (C order).

    Accepts what ``$readmemh`` accepts for data: hex words separated by white
    space, ``//`` and ``/* */`` comments, upper or lower case, fewer digits
    than the width (zero-extended).  Address records (``@``), ``x``/``z``
    digits and words wider than the type are refused.  Raises MemFormatError
    with the line number of the first problem.
    """
    lay = mem_layout(dtype)
    digits, bits = lay["hex_digits"], lay["width_bits"]
    # fast path: exactly the canonical form
    if len(data) == count * (digits + 1):
        arr = np.frombuffer(data, dtype=np.uint8).reshape(count, digits + 1) if count else None
        if count == 0 or np.all(arr[:, digits] == ord("\n")):
            if count == 0:
                return np.zeros(0, DTYPES[dtype])
            val = _HEXVAL[arr[:, :digits]]
            if not np.any(val == 255):
                u = np.zeros(count, dtype=np.uint64)
                for i in range(digits):
                    u = (u << np.uint64(4)) | val[:, i].astype(np.uint64)
                return _from_unsigned(u, dtype)
    # general path
    text = data
    if b"/*" in text:
        text = re.sub(rb"/\*.*?\*/", lambda m: b"\n" * m.group(0).count(b"\n"), text, flags=re.S)
    vals = []
    for lineno, line in enumerate(text.split(b"\n"), start=1):
        if b"//" in line:
            line = line[:line.index(b"//")]
        for tok in line.split():
            if tok.startswith(b"@"):
                raise MemFormatError(f"line {lineno}: address records (@) are not supported")
            if not _TOKEN.fullmatch(tok):
                raise MemFormatError(f"line {lineno}: {tok[:20].decode('latin1')!r} is not a hex word")
            if len(tok.lstrip(b"0")) > digits or int(tok, 16) >> bits:
                raise MemFormatError(f"line {lineno}: {tok[:20].decode('latin1')!r} is wider than "
                                     f"{bits} bits")
            vals.append(int(tok, 16))
            if len(vals) > count:
                raise MemFormatError(f"line {lineno}: more than the expected {count} words")
    if len(vals) != count:
        raise MemFormatError(f"{len(vals)} words, expected {count}")
    return _from_unsigned(np.asarray(vals, dtype=np.uint64), dtype)


def _from_unsigned(u: np.ndarray, dtype: str) -> np.ndarray:
    dt = DTYPES[dtype]
    return u.astype(np.dtype(f"<u{dt.itemsize}")).view(dt)


# ---------------------------------------------------------------------------
# .png (stored deflate: independent of the zlib build)
# ---------------------------------------------------------------------------

def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def png_bytes(pixels) -> bytes:
    """8-bit RGB PNG of (3, H, W) uint8 pixels, filter 0 on every row, the
    zlib stream made of stored blocks of at most 65535 bytes."""
    a = np.asarray(pixels)
    if a.ndim != 3 or a.shape[0] != 3 or a.dtype != np.uint8:
        raise ValueError("png_bytes expects (3, H, W) uint8")
    _, H, W = a.shape
    rows = np.zeros((H, 1 + 3 * W), dtype=np.uint8)
    rows[:, 1:] = a.transpose(1, 2, 0).reshape(H, 3 * W)
    raw = rows.tobytes()
    z = bytearray(b"\x78\x01")
    n = len(raw)
    pos = 0
    while True:
        blk = raw[pos:pos + 65535]
        pos += len(blk)
        final = 1 if pos >= n else 0
        z += bytes([final]) + struct.pack("<HH", len(blk), len(blk) ^ 0xFFFF) + blk
        if final:
            break
    z += struct.pack(">I", zlib.adler32(raw) & 0xFFFFFFFF)
    ihdr = struct.pack(">IIBBBBB", W, H, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", bytes(z)) + _chunk(b"IEND", b"")
