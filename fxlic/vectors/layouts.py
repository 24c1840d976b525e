"""The files hardware flows read, besides ``.npy`` and one-element-per-line
``.mem`` (docs/VECTORS.md 1, "Layouts for hardware flows"):

* **layout** ``chw`` (default) or ``hwc``: the element order of a tensor's
  ``.mem``, packed ``.mem``, ``.bin`` and C-header data.  ``hwc`` is channels
  last: ``C, H, W`` tensors are written ``H, W, C`` and weights ``O, C, KY,
  KX`` are written ``O, KY, KX, C``; every other tensor keeps its C order.
  The ``.npy`` is always the C order of the manifest shape (``axes``);
* **packed .mem** ``NAME.pP.mem``: ``$readmemh`` words of P elements, element
  ``j`` of the file order in word ``j // P`` at bits ``[k*W, (k+1)*W)``,
  ``k = j % P`` (element 0 in the least significant bits: the rightmost hex
  digits), the last word padded with zero elements;
* **raw** ``NAME.bin``: the stored dtype's little-endian bytes, no header;
* **C headers** ``weights/<L>.h`` (hls4ml style) of the model's per-layer
  arrays, mean-reduction and entropy tables, with shape macros.

Everything is deterministic and sized exactly from the shape
(``hw_files(..., sizing=True)``) except the C headers, whose text is
generated in the sizing run as well.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from .memfmt import _HEXVAL, DTYPES, as_dtype, mem_bytes, mem_layout

LAYOUTS = ("chw", "hwc")
#: the axes a layout reorders, and the order it writes them in
HWC_ORDER = {("C", "H", "W"): ("H", "W", "C"), ("O", "C", "KY", "KX"): ("O", "KY", "KX", "C")}
MAX_PACK = 256
C_TYPES = {"int8": "int8_t", "uint8": "uint8_t", "int16": "int16_t", "uint16": "uint16_t",
           "int32": "int32_t", "uint32": "uint32_t", "int64": "int64_t", "uint64": "uint64_t"}
_C_MIN = {"int32": "INT32_MIN", "int64": "INT64_MIN"}  # literals that are not valid C as written
PACKED_RE = re.compile(r"\.p(\d+)\.mem$")


@dataclass(frozen=True)
class HwFormats:
    """Which hardware files a VectorDir writes with each tensor (default: none)."""
    layout: str = "chw"
    mem_pack: tuple = ()  # element counts P of the packed .mem files
    bin: bool = False

    def any(self) -> bool:
        return self.layout != "chw" or bool(self.mem_pack) or self.bin


NONE = HwFormats()


def parse_layout(arg) -> str:
    a = (arg or "chw").strip().lower()
    if a not in LAYOUTS:
        raise ValueError(f"{arg!r} is not a layout (use chw or hwc)")
    return a


def parse_pack(arg) -> tuple:
    """``16`` or ``4,16`` -> (4, 16): sorted, each 2..MAX_PACK; None / "" -> ()."""
    if arg is None or str(arg).strip() in ("", "none"):
        return ()
    out = set()
    for tok in str(arg).split(","):
        tok = tok.strip()
        if not tok.isdigit() or not 2 <= int(tok) <= MAX_PACK:
            raise ValueError(f"{tok!r} is not a number of elements per word from 2 to {MAX_PACK} "
                             f"(e.g. 16, or 4,16)")
        out.add(int(tok))
    return tuple(sorted(out))


def file_order(axes, layout: str):
    """(permutation of the array's axes, file axes) for a layout; (None, axes)
    when the layout keeps the C order."""
    axes = tuple(axes) if axes is not None else ()
    if layout == "hwc" and axes in HWC_ORDER:
        to = HWC_ORDER[axes]
        return tuple(axes.index(a) for a in to), to
    return None, axes


def in_file_order(arr: np.ndarray, axes, layout: str) -> np.ndarray:
    perm, _ = file_order(axes, layout)
    return arr if perm is None else np.ascontiguousarray(arr.transpose(perm))


def _count(shape) -> int:
    n = 1
    for s in shape:
        n *= int(s)
    return n


def packed_layout(shape, dtype: str, P: int) -> dict:
    """The manifest entry of a packed .mem: word width, words, padding."""
    w = mem_layout(dtype)["width_bits"]
    n = _count(shape)
    words = -(-n // P)
    return {"elements_per_word": P, "element_bits": w, "word_bits": P * w, "hex_digits": P * w // 4,
            "words": words, "pad_elements": words * P - n, "element_order": "lsb-first"}


def packed_size(shape, dtype: str, P: int) -> int:
    lay = packed_layout(shape, dtype, P)
    return lay["words"] * (lay["hex_digits"] + 1)


def bin_size(shape, dtype: str) -> int:
    return _count(shape) * DTYPES[dtype].itemsize


def packed_mem_bytes(flat: np.ndarray, dtype: str, P: int) -> bytes:
    """``$readmemh`` text of P-element words: slot k of a word is bits
    [k*W, (k+1)*W), so slot 0 is the rightmost ``W/4`` hex digits; the last
    word's missing slots are 0."""
    digits = mem_layout(dtype)["hex_digits"]
    flat = np.asarray(flat).reshape(-1)
    n = flat.size
    words = -(-n // P)
    hexd = np.full((words * P, digits), ord("0"), dtype=np.uint8)
    if n:
        hexd[:n] = np.frombuffer(mem_bytes(flat, dtype), np.uint8).reshape(n, digits + 1)[:, :digits]
    out = np.empty((words, P * digits + 1), dtype=np.uint8)
    out[:, :P * digits] = hexd.reshape(words, P, digits)[:, ::-1, :].reshape(words, P * digits)
    out[:, P * digits] = ord("\n")
    return out.tobytes()


def read_packed_mem(data: bytes, count: int, dtype: str, P: int) -> np.ndarray:
    """The ``count`` elements (file order) of a canonical packed .mem; raises
    ValueError on a wrong size, a non-hex digit or a non-zero pad slot."""
    digits = mem_layout(dtype)["hex_digits"]
    words = -(-count // P)
    if len(data) != words * (P * digits + 1):
        raise ValueError(f"{len(data)} bytes, a packed .mem of {count} x {dtype} in words of {P} has "
                         f"{words * (P * digits + 1)}")
    lines = np.frombuffer(data, np.uint8).reshape(words, P * digits + 1)
    if words and np.any(lines[:, -1] != ord("\n")):
        raise ValueError("a word is not ended by a newline")
    val = _HEXVAL[lines[:, :P * digits].reshape(words, P, digits)[:, ::-1, :].reshape(words * P, digits)]
    if np.any(val == 255):
        raise ValueError("not a lower/upper-case hex digit")
    u = np.zeros(words * P, dtype=np.uint64)
    for i in range(digits):
        u = (u << np.uint64(4)) | val[:, i].astype(np.uint64)
    if np.any(u[count:] != 0):
        raise ValueError("a pad slot of the last word is not 0")
    dt = DTYPES[dtype]
    return u[:count].astype(np.dtype(f"<u{dt.itemsize}")).view(dt)


def hw_files(name: str, arr, dtype: str, axes, mem: bool, fmt: HwFormats, sizing: bool):
    """The hardware files of one tensor besides ``.npy``: ([(rel, bytes or
    size)], manifest-entry fields).  The ``.mem`` itself is included (in the
    layout's order) when ``mem``; with ``sizing`` only sizes are computed."""
    shape = tuple(int(s) for s in np.shape(arr))
    perm, faxes = file_order(axes, fmt.layout)
    fshape = shape if perm is None else tuple(shape[i] for i in perm)
    flat = None if sizing else in_file_order(as_dtype(arr, dtype), axes, fmt.layout).reshape(-1)
    files, meta = [], {}
    if perm is not None:
        meta["file_axes"], meta["file_shape"] = list(faxes), list(fshape)
    if mem:
        files.append((name + ".mem", _count(shape) * (mem_layout(dtype)["hex_digits"] + 1) if sizing
                      else mem_bytes(flat, dtype)))
        packs = []
        for P in fmt.mem_pack:
            rel = f"{name}.p{P}.mem"
            files.append((rel, packed_size(shape, dtype, P) if sizing else packed_mem_bytes(flat, dtype, P)))
            packs.append({"file": rel, **packed_layout(shape, dtype, P)})
        if packs:
            meta["mem_pack"] = packs
    if fmt.bin:
        files.append((name + ".bin", bin_size(shape, dtype) if sizing else flat.tobytes()))
        meta["bin"] = {"file": name + ".bin", "byteorder": "little", "itemsize": DTYPES[dtype].itemsize,
                       "signed": DTYPES[dtype].kind == "i"}
    return files, meta


def expected_size(rel: str, shape, dtype: str):
    """Size a tensor file of this name must have (None: not a sized kind)."""
    m = PACKED_RE.search(rel)
    if m:
        return packed_size(shape, dtype, int(m.group(1)))
    if rel.endswith(".mem"):
        return _count(shape) * (mem_layout(dtype)["hex_digits"] + 1)
    if rel.endswith(".bin"):
        return bin_size(shape, dtype)
    return None


# ---------------------------------------------------------------------------
# C headers (hls4ml-style weights/*.h)
# ---------------------------------------------------------------------------

def c_ident(s: str) -> str:
    s = re.sub(r"[^0-9A-Za-z_]", "_", s)
    return "_" + s if s[:1].isdigit() else s


class CHeader:
    """One ``weights/NAME.h``: ``static const int8_t AT0_w_codes[AT0_W_CODES_SIZE] = {...};``
    per array, flattened in the layout's order, with ``_SIZE``, ``_NDIM`` and
    ``_DIMi`` macros, an include guard, the model id and spec version."""

    PER_LINE = 16

    def __init__(self, rel: str, title: str, model_id: str, spec: str, layout: str):
        self.rel, self.title, self.model_id, self.spec, self.layout = rel, title, model_id, spec, layout
        self.parts = []
        self.symbols = []

    def add(self, symbol: str, arr, dtype: str, axes, what: str = "") -> dict:
        """Append an array; returns the manifest field ``c_header`` of its tensor."""
        sym = c_ident(symbol)
        a = in_file_order(as_dtype(arr, dtype), axes, self.layout)
        _, faxes = file_order(axes, self.layout)
        M = sym.upper()
        lines = [f"/* {symbol}: {dtype} {' x '.join(map(str, a.shape)) or 'scalar'} "
                 f"({', '.join(faxes)}){'; ' + what if what else ''} */",
                 f"#define {M}_SIZE {a.size}", f"#define {M}_NDIM {a.ndim}"]
        lines += [f"#define {M}_DIM{i} {int(n)} /* {ax} */" for i, (n, ax) in enumerate(zip(a.shape, faxes))]
        if a.size:
            vals = [str(v) for v in a.reshape(-1).tolist()]
            if dtype in _C_MIN:
                lo = str(int(np.iinfo(DTYPES[dtype]).min))
                vals = [_C_MIN[dtype] if v == lo else v for v in vals]
            if dtype == "uint64":
                vals = [v + "u" for v in vals]
            lines.append(f"static const {C_TYPES[dtype]} {sym}[{M}_SIZE] = {{")
            k = self.PER_LINE
            lines += ["    " + ", ".join(vals[i:i + k]) + "," for i in range(0, len(vals), k)]
            lines.append("};")
        self.parts.append("\n".join(lines) + "\n")
        self.symbols.append(sym)
        return {"file": self.rel, "symbol": sym, "size": int(a.size)}

    def text(self) -> str:
        guard = "FXLIC_" + c_ident(self.rel).upper()
        head = [f"/* {self.rel}: {self.title}",
                f" * model id {self.model_id}",
                f" * spec version {self.spec}; written by fxlic vectors (docs/VECTORS.md)",
                f" * element order: layout {self.layout}, each array flattened, last axis fastest */",
                f"#ifndef {guard}", f"#define {guard}", "", "#include <stdint.h>", ""]
        return "\n".join(head) + "\n" + "\n".join(self.parts) + f"\n#endif /* {guard} */\n"

    def bytes(self) -> bytes:
        return self.text().encode("ascii")


def umbrella_header(rel: str, includes, model_id: str, spec: str, name: str, n_layers: int) -> bytes:
    """``weights/fxlic_model.h``: includes every header, the model id as a string."""
    guard = "FXLIC_" + c_ident(rel).upper()
    lines = [f"/* {rel}: every weights header of model {name}",
             f" * model id {model_id}", f" * spec version {spec}; written by fxlic vectors */",
             f"#ifndef {guard}", f"#define {guard}", "",
             f'#define FXLIC_MODEL_ID "{model_id}"', f'#define FXLIC_SPEC_VERSION "{spec}"',
             f"#define FXLIC_N_LAYERS {n_layers}", ""]
    lines += [f'#include "{inc}"' for inc in includes]
    lines += ["", f"#endif /* {guard} */", ""]
    return "\n".join(lines).encode("ascii")


def header_of(name: str):
    """(header path, symbol) of a model-directory tensor: ``layers/AT0/w_codes``
    -> (``weights/AT0.h``, ``AT0_w_codes``); ``mean_reduction/a_q`` ->
    (``weights/mean_reduction.h``, ``mean_reduction_a_q``); ``entropy/gauss.cdf_data``
    -> (``weights/entropy.h``, ``entropy_gauss_cdf_data``)."""
    parts = name.split("/")
    if parts[0] == "layers":
        return f"weights/{parts[1]}.h", c_ident("_".join(parts[1:]))
    return f"weights/{parts[0]}.h", c_ident("_".join(parts))


def c_headers(records, model_id: str, spec: str, model_name: str, layout: str, n_layers: int):
    """The C headers of a model directory from its tensors ``records`` =
    [(name, stored array, dtype, axes, what)]: [(rel, bytes, what)] and
    {tensor name: manifest field ``c_header``}."""
    heads, info = {}, {}
    for name, arr, dtype, axes, what in records:
        rel, sym = header_of(name)
        if rel not in heads:
            title = (f"layer {rel[8:-2]} of model {model_name}" if name.startswith("layers/")
                     else f"{rel[8:-2].replace('_', ' ')} of model {model_name}")
            heads[rel] = CHeader(rel, title, model_id, spec, layout)
        info[name] = heads[rel].add(sym, arr, dtype, axes, what)
    out = [(rel, h.bytes(), "C header: " + h.title) for rel, h in heads.items()]
    top = "weights/fxlic_model.h"
    out.append((top, umbrella_header(top, [r[8:] for r in heads], model_id, spec, model_name,
                                     n_layers), "C header: includes every weights/*.h"))
    return out, info
