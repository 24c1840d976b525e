"""Float weights from any trainer: the native format and CompressAI state dicts
(docs/MODEL_FORMAT.md, part 1 and 2).  Pickle-free: ``.safetensors`` is parsed
here (no dependency on the ``safetensors`` package) and ``.npz`` is read with
``np.load(..., allow_pickle=False)``.

Native format
  ``{LAYER}.weight`` / ``{LAYER}.bias`` in PyTorch layouts (Conv2d (out, in, k, k),
  ConvTranspose2d (in, out, k, k)), the entropy bottleneck's parameters under
  CompressAI's names (``entropy_bottleneck._matrices.{i}``, ``._biases.{i}``,
  ``._factors.{i}``, ``.quantiles``), optionally ``gaussian_conditional.scale_table``.
  The architecture (``Architecture.to_json()``) is the safetensors metadata key
  ``fxlic.arch`` (plus ``fxlic.lambda``, ``fxlic.provenance``), or for ``.npz``
  the uint8 array ``__arch__`` (UTF-8 JSON; ``__meta__`` likewise holds a JSON
  object of the other metadata keys), or a sidecar file ``<file>.arch.json``.

CompressAI state dicts
  ``g_a.{2i}`` -> AT{i}, ``h_a.{2i}`` -> HA{i}, ``h_s.{2i}`` -> HS{i},
  ``g_s.{2i}`` -> ST{i} (the odd Sequential slots are the activations), the
  entropy bottleneck under any naming (``_matrix0``, ``matrices.0``, ``_matrices.0``);
  derived buffers (CDF tables, offsets, bounds) are dropped.  A mapping JSON
  (``{"prefix": "LAYER" or null}``) replaces the default key map.

Any file (docs/MODEL_FORMAT.md 2 and 7): a PyTorch pickle (``torch.save``'s zip or
legacy format) is named as one and never unpickled (``refuse_pickle``); keys
that all start with ``module.`` (``nn.DataParallel``) lose that prefix; GDN
parameters are named as GDN (``refuse_gdn``); ``fxlic.probe.*`` tensors are the
I/O probe (``FloatModel.probe``, fxlic.io.iocheck); ``load_entropy_file`` reads
an entropy side file (``fxlic quantize --entropy``).
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import re

import numpy as np

from ..model.arch import ARCHITECTURES, Architecture
from ..model.float_model import FloatModel, from_torch_layout, to_torch_layout
from .files import check_input

META_ARCH = "fxlic.arch"
META_LAMBDA = "fxlic.lambda"
META_PROVENANCE = "fxlic.provenance"
NPZ_ARCH = "__arch__"
NPZ_META = "__meta__"
SIDECAR_SUFFIX = ".arch.json"

#: largest safetensors JSON header accepted (bytes)
MAX_HEADER = 64 << 20
#: largest weights file read (bytes; N = M = 512 in float32 is < 400 MB)
MAX_WEIGHTS_BYTES = 1 << 30
#: V1: largest |value| of any float parameter fxlic quantizes
MAX_ABS_PARAM = float(1 << 20)
#: V1: smallest non-zero per-output-channel max |w| of a weight tensor
MIN_CHANNEL_MAX = 2.0 ** -32

EB = "entropy_bottleneck"
GC_SCALE_TABLE = "gaussian_conditional.scale_table"

_ST_DTYPES = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "BF16": "<u2",
              "I64": "<i8", "I32": "<i4", "I16": "<i2", "I8": "|i1",
              "U64": "<u8", "U32": "<u4", "U16": "<u2", "U8": "|u1", "BOOL": "|b1"}
_FLOAT_CODES = {"<f8": "F64", "<f4": "F32", "<f2": "F16"}


class WeightsError(ValueError):
    """A float-weights file fxlic cannot import (message names file and tensor)."""


# --------------------------------------------------------------------------
# raw tensor containers
# --------------------------------------------------------------------------

def file_sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _check_readable(path: str):
    check_input(path, WeightsError, "a weights file")


def _st_shape(shape) -> list:
    if not isinstance(shape, list) or len(shape) > 8 or not all(
            isinstance(d, int) and not isinstance(d, bool) and 0 <= d < (1 << 40) for d in shape):
        raise TypeError("bad shape")
    return shape


def read_safetensors(path: str):
    """Parse a .safetensors file: (tensors {name: ndarray}, metadata {str: str}).

    S1: a tensor's byte count is computed with Python integers (no wrap-around:
    a [2^32, 2^32] shape is 2^64 elements, not 0) and must equal its
    ``data_offsets`` span inside the file, before any array is made."""
    size = check_input(path, WeightsError, "a weights file")
    if size > MAX_WEIGHTS_BYTES:
        raise WeightsError(f"{path}: {size:,} bytes, larger than any weights file fxlic reads "
                           f"({MAX_WEIGHTS_BYTES:,})")
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 8:
        raise WeightsError(f"{path}: not a safetensors file (too short)")
    n = int.from_bytes(data[:8], "little")
    if n > MAX_HEADER or 8 + n > len(data):
        raise WeightsError(f"{path}: not a safetensors file (bad header length; truncated?)")
    try:
        header = json.loads(data[8:8 + n].decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise WeightsError(f"{path}: not a safetensors file (header is not JSON)") from None
    if not isinstance(header, dict):
        raise WeightsError(f"{path}: safetensors header is not a JSON object")
    meta = header.pop("__metadata__", None) or {}
    if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
        raise WeightsError(f"{path}: safetensors __metadata__ must map strings to strings")
    buf = memoryview(data)[8 + n:]
    tensors = {}
    for name, info in header.items():
        try:
            code, shape, (lo, hi) = info["dtype"], _st_shape(info["shape"]), info["data_offsets"]
            if not all(isinstance(v, int) and not isinstance(v, bool) for v in (lo, hi)):
                raise TypeError("bad offsets")
        except (TypeError, KeyError, ValueError):
            raise WeightsError(f"{path}: malformed safetensors entry for {name!r}") from None
        if not isinstance(code, str) or code not in _ST_DTYPES:
            raise WeightsError(f"{path}: tensor {name!r} has unsupported dtype {code}")
        dt = np.dtype(_ST_DTYPES[code])
        nbytes = math.prod(shape) * dt.itemsize  # Python ints (S1)
        if not (0 <= lo <= hi <= len(buf)) or hi - lo != nbytes:
            raise WeightsError(f"{path}: tensor {name!r}: shape {shape} needs {nbytes:,} bytes, "
                               f"data_offsets [{lo}, {hi}] give {hi - lo:,} (of {len(buf):,} in the "
                               f"file)")
        a = np.frombuffer(buf[lo:hi], dtype=dt).reshape(shape)
        if code == "BF16":  # bfloat16 -> float32 (upper half of the float32 bits)
            a = (a.astype(np.uint32) << 16).view(np.float32)
        tensors[name] = a
    return tensors, dict(meta)


def write_safetensors(path: str, tensors: dict, metadata: dict = None):
    """Write float tensors as .safetensors (sorted keys, 8-byte aligned header), atomically."""
    header = {}
    blobs = []
    off = 0
    for name in sorted(tensors):
        a = np.ascontiguousarray(tensors[name])
        dt = a.dtype.newbyteorder("<") if a.dtype.byteorder == ">" else a.dtype
        if dt.str not in _FLOAT_CODES:
            raise WeightsError(f"tensor {name}: only float16/32/64 are written, got {a.dtype}")
        b = a.astype(dt).tobytes()
        header[name] = {"dtype": _FLOAT_CODES[dt.str], "shape": list(a.shape),
                        "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    h = json.dumps(header, separators=(",", ":"), sort_keys=True).encode("utf-8")
    h += b" " * (-len(h) % 8)
    chunks = [len(h).to_bytes(8, "little"), h] + blobs

    def write(tmp):
        with open(tmp, "wb") as f:
            for c in chunks:
                f.write(c)
    _atomic(path, write)


def _atomic(path: str, write, suffix: str = ""):
    """Call ``write(tmp)`` for a temporary name beside ``path``, then rename it
    onto ``path``; the temporary file is removed on any failure."""
    tmp = f"{path}.tmp{os.getpid()}{suffix}"
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def read_npz(path: str):
    """Read a .npz (never unpickling): (tensors, metadata)."""
    _check_readable(path)
    with open(path, "rb") as f:
        magic = f.read(6)
    if magic[:4] not in (b"PK\x03\x04", b"PK\x05\x06"):
        what = "a single .npy array" if magic == b"\x93NUMPY" else "not a zip archive"
        raise WeightsError(f"{path}: not an .npz archive ({what})")
    try:
        z = np.load(path, allow_pickle=False)
        if not isinstance(z, np.lib.npyio.NpzFile):
            raise WeightsError(f"{path}: a single .npy array, expected an .npz archive")
        with z:
            tensors = {k: z[k] for k in z.files}
    except WeightsError:
        raise
    except ValueError as e:
        if "pickle" in str(e).lower():
            raise WeightsError(f"{path}: contains pickled objects, which fxlic never loads") from None
        raise WeightsError(f"{path}: unreadable .npz ({e})") from None
    except Exception as e:  # zipfile / zlib / npy-header errors of a damaged archive
        raise WeightsError(f"{path}: not a valid .npz archive ({e.__class__.__name__}: {e})") from None
    meta = {}
    if NPZ_ARCH in tensors:
        meta[META_ARCH] = _utf8_array(path, NPZ_ARCH, tensors.pop(NPZ_ARCH))
    if NPZ_META in tensors:
        text = _utf8_array(path, NPZ_META, tensors.pop(NPZ_META))
        try:
            extra = json.loads(text)
        except (ValueError, RecursionError):
            extra = None
        if not isinstance(extra, dict):
            raise WeightsError(f"{path}: {NPZ_META} must hold a JSON object")
        for k, v in extra.items():
            meta.setdefault(str(k), v if isinstance(v, str) else json.dumps(v, sort_keys=True))
    return tensors, meta


def _utf8_array(path, key, a) -> str:
    if a.dtype != np.uint8 or a.ndim != 1:
        raise WeightsError(f"{path}: {key} must be a 1-D uint8 array of UTF-8 JSON")
    try:
        return a.tobytes().decode("utf-8")
    except UnicodeDecodeError:
        raise WeightsError(f"{path}: {key} is not UTF-8") from None


def write_npz(path: str, tensors: dict, metadata: dict = None):
    """Write tensors (+ metadata as __arch__ / __meta__) to .npz, atomically."""
    out = {k: np.ascontiguousarray(v) for k, v in tensors.items()}
    meta = dict(metadata or {})
    if META_ARCH in meta:
        out[NPZ_ARCH] = np.frombuffer(meta.pop(META_ARCH).encode("utf-8"), dtype=np.uint8)
    if meta:
        out[NPZ_META] = np.frombuffer(json.dumps(meta, sort_keys=True).encode("utf-8"), np.uint8)
    _atomic(path, lambda tmp: np.savez(tmp, **out), suffix=".npz")


def read_tensors(path: str):
    """(tensors, metadata) of a .safetensors or .npz file (chosen by content),
    after ``refuse_pickle``; a ``module.`` prefix on every key is removed."""
    _check_readable(path)
    low = path.lower()
    if low.endswith(".fxq"):
        raise WeightsError(f"{path}: is an integer model file (.fxq), not float weights")
    refuse_pickle(path)
    if low.endswith(".npz"):
        tensors, meta = read_npz(path)
    elif low.endswith(".safetensors"):
        tensors, meta = read_safetensors(path)
    else:
        with open(path, "rb") as f:
            head = f.read(4)
        # a zip starts with PK\3\4; as a safetensors header length that is > MAX_HEADER
        tensors, meta = read_npz(path) if head == b"PK\x03\x04" else read_safetensors(path)
    return strip_dataparallel(tensors), meta


#: what ``torch.save`` writes is a pickle; fxlic names it and never loads it
PICKLE_MESSAGE = ("a PyTorch pickle: fxlic never unpickles; convert with "
                  "safetensors.torch.save_file(model.state_dict(), 'x.safetensors')")


def refuse_pickle(path: str) -> None:
    """A ``.pth`` / ``.pth.tar`` / ``.pt`` file, by content whatever its name: a
    pickle (protocol 2-5 opcode ``0x80 N``, PyTorch's legacy format) or a zip
    with a ``.pkl`` member (``torch.save`` >= 1.6, TorchScript).  Only the
    first bytes and the zip directory are read."""
    import zipfile

    with open(path, "rb") as f:
        head = f.read(4)
    if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
        raise WeightsError(f"{path}: {PICKLE_MESSAGE}")
    if head != b"PK\x03\x04":
        return
    try:
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        return  # read_npz names the damage
    if any(n.endswith(".pkl") for n in names):
        raise WeightsError(f"{path}: {PICKLE_MESSAGE}")


DATAPARALLEL = "module."


def strip_dataparallel(tensors: dict) -> dict:
    """``nn.DataParallel`` / DDP state dicts: when every key starts with
    ``module.``, the prefix is removed (``module.g_a.0.weight`` -> ``g_a.0.weight``)."""
    if tensors and all(k.startswith(DATAPARALLEL) for k in tensors):
        return {k[len(DATAPARALLEL):]: v for k, v in tensors.items()}
    return tensors


#: CompressAI's GDN / IGDN parameters and their NonNegativeParametrizer buffers
GDN_KEY = re.compile(r"(^|\.)(beta|gamma)(_reparam\.(pedestal|lower_bound\.bound))?$")


def refuse_gdn(path: str, tensors: dict) -> None:
    gdn = sorted(k for k in tensors if GDN_KEY.search(k))
    if gdn:
        raise WeightsError(f"{path}: {gdn[0]} belongs to a GDN layer; fxlic's models use ReLU "
                           f"in place of GDN (GDN does not suit fixed point): retrain with ReLU")


#: names of the I/O probe's tensors inside a weights file
PROBE_PREFIX = "fxlic.probe."


def split_probe(tensors: dict) -> tuple:
    """(tensors without the I/O probe, probe {name: array}): the
    ``fxlic.probe.*`` tensors (docs/MODEL_FORMAT.md 7.4)."""
    probe = {k[len(PROBE_PREFIX):]: v for k, v in tensors.items() if k.startswith(PROBE_PREFIX)}
    return {k: v for k, v in tensors.items() if not k.startswith(PROBE_PREFIX)}, probe


# --------------------------------------------------------------------------
# architecture and entropy parameters
# --------------------------------------------------------------------------

def _parse_arch(text: str, where: str) -> Architecture:
    try:
        d = json.loads(text)
    except (ValueError, RecursionError) as e:
        raise WeightsError(f"{where}: architecture is not valid JSON ({e})") from None
    if not isinstance(d, dict):
        raise WeightsError(f"{where}: architecture must be a JSON object")
    try:
        return Architecture.from_dict(d)
    except ValueError as e:
        raise WeightsError(f"{where}: {e}") from None


def find_architecture(path: str, meta: dict, arch: Architecture = None):
    """Explicit ``arch`` > embedded (metadata / __arch__) > sidecar ``<path>.arch.json``."""
    if arch is not None:
        return arch
    if META_ARCH in meta:
        return _parse_arch(meta[META_ARCH], f"{path} ({META_ARCH})")
    side = path + SIDECAR_SUFFIX
    if os.path.isfile(side):
        with open(side, "rb") as f:
            try:
                text = f.read().decode("utf-8")
            except UnicodeDecodeError:
                raise WeightsError(f"{side}: not UTF-8 text") from None
        return _parse_arch(text, side)
    return None


def entropy_channels(arch: Architecture) -> int:
    """Channels of the entropy bottleneck: z (hyperprior) or y (factorized)."""
    want = "z" if arch.kind == "hyperprior" else "y"
    return [l for l in arch.layers if l.out == want][0].cout


def _float64(path, name, a) -> np.ndarray:
    """V1: a float tensor, finite, every |value| <= MAX_ABS_PARAM (larger ones
    are no trained weights and overflow the integer conversion)."""
    a = np.asarray(a)
    if a.dtype.kind != "f":
        raise WeightsError(f"{path}: tensor {name} has dtype {a.dtype}, expected a float type")
    out = a.astype(np.float64)
    if not np.all(np.isfinite(out)):
        raise WeightsError(f"{path}: tensor {name} contains NaN or infinity")
    big = float(np.abs(out).max()) if out.size else 0.0
    if big > MAX_ABS_PARAM:
        raise WeightsError(f"{path}: tensor {name} holds |value| {big:.3g}, more than the 2^20 "
                           f"fxlic quantizes (not trained weights?)")
    return out


def check_weight_channels(path, name, w) -> None:
    """V1: every output channel of weight tensor ``w`` (internal layout) is
    all zero or has max |w| >= MIN_CHANNEL_MAX (2^-32): smaller (x1e-30,
    denormal) channels need exponents outside the integer range."""
    m = np.abs(w).reshape(w.shape[0], -1).max(axis=1) if w.size else np.zeros(0)
    tiny = np.flatnonzero((m > 0) & (m < MIN_CHANNEL_MAX))
    if tiny.size:
        o = int(tiny[0])
        raise WeightsError(f"{path}: tensor {name} output channel {o} has max |w| {m[o]:.3g}, "
                           f"below the 2^-32 fxlic quantizes (zero it, or rescale the weights)")


def check_entropy(path: str, arch: Architecture, ent: dict) -> dict:
    """Validate the entropy parameters (native names) and return float64 copies."""
    ent = {k: _float64(path, k, v) for k, v in ent.items()}
    eb = {k: v for k, v in ent.items() if k.startswith(EB + ".")}
    if eb:
        C = entropy_channels(arch)
        nmat = len([k for k in eb if k.startswith(f"{EB}._matrices.")])
        if nmat < 1:
            raise WeightsError(f"{path}: entropy bottleneck has no _matrices")
        want = {f"{EB}.quantiles": (C, 1, 3)}
        prev = 1
        for i in range(nmat):
            m = eb.get(f"{EB}._matrices.{i}")
            if m is None or m.ndim != 3:
                raise WeightsError(f"{path}: {EB}._matrices.{i} missing or not 3-D")
            f = m.shape[1] if i < nmat - 1 else 1
            want[f"{EB}._matrices.{i}"] = (C, f, prev)
            want[f"{EB}._biases.{i}"] = (C, f, 1)
            if i < nmat - 1:
                want[f"{EB}._factors.{i}"] = (C, f, 1)
            prev = f
        for k in sorted(set(want) | set(eb)):
            if k not in want:
                raise WeightsError(f"{path}: unexpected entropy-bottleneck tensor {k}")
            if k not in eb:
                raise WeightsError(f"{path}: entropy-bottleneck tensor {k} missing")
            if eb[k].shape != want[k]:
                raise WeightsError(f"{path}: {k} has shape {eb[k].shape}, expected {want[k]} "
                                   f"({C} channels)")
    st = ent.get(GC_SCALE_TABLE)
    if st is not None and (st.ndim != 1 or st.size == 0 or np.any(st <= 0)):
        raise WeightsError(f"{path}: {GC_SCALE_TABLE} must be a non-empty 1-D array of positive scales")
    return ent


def _is_native_entropy_key(k: str) -> bool:
    return (k == GC_SCALE_TABLE or k == f"{EB}.quantiles"
            or re.fullmatch(rf"{EB}\._(matrices|biases|factors)\.\d+", k) is not None)


# --------------------------------------------------------------------------
# assembling a FloatModel
# --------------------------------------------------------------------------

def _layers_from_torch(path: str, arch: Architecture, tensors: dict, names: dict) -> tuple:
    """tensors in PyTorch layout, names[layer] = (weight key, bias key) -> (W, B) internal."""
    W, B = {}, {}
    for l in arch.layers:
        wk, bk = names[l.name]
        if wk not in tensors:
            raise WeightsError(f"{path}: tensor {wk} (layer {l.name}) missing")
        w = _float64(path, wk, tensors[wk])
        want = (l.cout, l.cin, l.k, l.k) if l.op == "conv" else (l.cin, l.cout, l.k, l.k)
        layout = "Conv2d (out, in, k, k)" if l.op == "conv" else "ConvTranspose2d (in, out, k, k)"
        if w.shape != want:
            raise WeightsError(f"{path}: {wk} has shape {tuple(w.shape)}, expected {want} "
                               f"({layout} for {l.name}: {l.op} {l.k}x{l.k}, {l.cin}->{l.cout})")
        W[l.name] = from_torch_layout(l.op, w)
        check_weight_channels(path, wk, W[l.name])
        if bk in tensors:
            b = _float64(path, bk, tensors[bk])
            if b.shape != (l.cout,):
                raise WeightsError(f"{path}: {bk} has shape {tuple(b.shape)}, expected ({l.cout},)")
        else:
            raise WeightsError(f"{path}: tensor {bk} (layer {l.name}) missing")
        B[l.name] = b
    return W, B


def _meta_from(path: str, meta: dict, fmt: str) -> dict:
    out = {"source": os.path.basename(path), "format": fmt, "sha256": file_sha256(path)}
    lam = meta.get(META_LAMBDA)
    if lam is not None:
        try:
            out["lambda"] = float(lam)
        except ValueError:
            raise WeightsError(f"{path}: {META_LAMBDA} is not a number: {lam!r}") from None
    prov = meta.get(META_PROVENANCE)
    if prov is not None:
        try:
            out["provenance"] = json.loads(prov)
        except ValueError:
            out["provenance"] = prov
    return out


def load_float_model(path: str, arch: Architecture = None) -> FloatModel:
    """Load the native float format (.safetensors / .npz) into a FloatModel."""
    tensors, meta = read_tensors(path)
    tensors, probe = split_probe(tensors)
    refuse_gdn(path, tensors)
    arch = find_architecture(path, meta, arch)
    if arch is None:
        hint = ""
        if any(k.startswith(("g_a.", "g_s.")) for k in tensors):
            hint = " (this looks like a CompressAI state dict: use --format compressai)"
        raise WeightsError(f"{path}: no architecture: expected metadata key {META_ARCH}, npz key "
                           f"{NPZ_ARCH} or a sidecar {os.path.basename(path)}{SIDECAR_SUFFIX}{hint}")
    names = {l.name: (f"{l.name}.weight", f"{l.name}.bias") for l in arch.layers}
    known = {k for pair in names.values() for k in pair}
    unknown = sorted(k for k in tensors if k not in known and not _is_native_entropy_key(k))
    if unknown:
        hint = " (a CompressAI state dict? use --format compressai)" \
            if any(k.startswith(("g_a.", "g_s.")) for k in unknown) else ""
        raise WeightsError(f"{path}: unknown tensor(s) {', '.join(unknown[:5])}"
                           f"{' ...' if len(unknown) > 5 else ''} for architecture {arch.name}{hint}")
    W, B = _layers_from_torch(path, arch, tensors, names)
    ent = check_entropy(path, arch, {k: v for k, v in tensors.items() if _is_native_entropy_key(k)})
    fm = FloatModel(arch, W, B, ent, _meta_from(path, meta, "native"), probe)
    _validate(path, fm)
    return fm


def _validate(path, fm):
    try:
        fm.validate()
    except ValueError as e:
        raise WeightsError(f"{path}: {e}") from None


def torch_layout_tensors(fm: FloatModel, dtype=np.float32) -> dict:
    """The native tensors of a FloatModel (PyTorch layouts), entropy params included."""
    out = {}
    for l in fm.arch.layers:
        out[f"{l.name}.weight"] = to_torch_layout(l.op, fm.weights[l.name]).astype(dtype)
        out[f"{l.name}.bias"] = np.asarray(fm.biases[l.name]).astype(dtype)
    for k, v in fm.entropy.items():
        out[k] = np.asarray(v).astype(dtype)
    return out


def save_float_model(fm: FloatModel, path: str, dtype=np.float32, lam=None, provenance=None):
    """Write ``fm`` in the native format; ``.npz`` by extension, else safetensors."""
    meta = {META_ARCH: fm.arch.to_json()}
    lam = fm.meta.get("lambda") if lam is None else lam
    if lam is not None:
        meta[META_LAMBDA] = str(lam)
    prov = fm.meta.get("provenance") if provenance is None else provenance
    if prov is not None:
        meta[META_PROVENANCE] = json.dumps(prov, sort_keys=True)
    t = torch_layout_tensors(fm, dtype)
    if path.lower().endswith(".npz"):
        write_npz(path, t, meta)
    else:
        write_safetensors(path, t, meta)


# --------------------------------------------------------------------------
# CompressAI state dicts
# --------------------------------------------------------------------------

#: Sequential prefix of each fxlic layer group
CAI_GROUPS = (("g_a", "AT"), ("h_a", "HA"), ("h_s", "HS"), ("g_s", "ST"))
#: derived CompressAI buffers that fxlic recomputes and therefore drops
CAI_DROPPED = re.compile(r"^(entropy_bottleneck|gaussian_conditional)\.("
                         r"_offset|_quantized_cdf|_cdf_length|target|_medians|scale_bound|"
                         r"likelihood_lower_bound\.bound|lower_bound_scale\.bound|"
                         r"lower_bound_scale\.pedestal)$")


def default_compressai_map(arch: Architecture) -> dict:
    """Module prefix -> layer: the i-th conv of each Sequential sits at slot 2i
    (the odd slots hold the activations, which carry no parameters)."""
    m = {}
    for prefix, g in CAI_GROUPS:
        for i, l in enumerate(arch.group(g)):
            m[f"{prefix}.{2 * i}"] = l.name
    return m


def _eb_rename(k: str):
    """CompressAI entropy-bottleneck names -> native names; None if not one."""
    m = re.fullmatch(rf"{EB}\._(matrix|bias|factor)(\d+)", k)
    if m:
        plural = {"matrix": "matrices", "bias": "biases", "factor": "factors"}[m.group(1)]
        return f"{EB}._{plural}.{int(m.group(2))}"
    m = re.fullmatch(rf"{EB}\.(matrices|biases|factors)\.(\d+)", k)  # CompressAI >= 1.2
    if m:
        return f"{EB}._{m.group(1)}.{int(m.group(2))}"
    if _is_native_entropy_key(k):
        return k
    return None


def _read_mapping(mapping) -> dict:
    if mapping is None or isinstance(mapping, dict):
        d = mapping
    else:
        _check_readable(mapping)
        with open(mapping, "rb") as f:
            try:
                d = json.loads(f.read().decode("utf-8"))
            except (UnicodeDecodeError, ValueError) as e:
                raise WeightsError(f"{mapping}: mapping is not valid JSON ({e})") from None
    if d is not None and (not isinstance(d, dict) or not all(
            isinstance(k, str) and (v is None or isinstance(v, str)) for k, v in d.items())):
        raise WeightsError("mapping must be a JSON object {\"module.prefix\": \"LAYER\" or null}")
    return d


def infer_compressai_arch(path: str, tensors: dict, arch_kind: str = "auto") -> Architecture:
    """N, M from g_a's first and last convolution; kind from the presence of h_a."""
    if arch_kind in ("auto", None):
        arch_kind = "hyperprior5" if any(k.startswith("h_a.") for k in tensors) else "factorized"
    if arch_kind not in ARCHITECTURES:
        raise WeightsError(f"unknown architecture kind {arch_kind!r}; choose from "
                           f"{', '.join(sorted(ARCHITECTURES))}")
    w0, w6 = tensors.get("g_a.0.weight"), tensors.get("g_a.6.weight")
    if w0 is None or w6 is None or np.ndim(w0) != 4 or np.ndim(w6) != 4:
        raise WeightsError(f"{path}: cannot infer the architecture: g_a.0.weight and g_a.6.weight "
                           f"(4-D) are needed (or give the architecture JSON)")
    N, M = int(np.shape(w0)[0]), int(np.shape(w6)[0])
    try:
        return ARCHITECTURES[arch_kind](N, M)
    except ValueError as e:
        raise WeightsError(f"{path}: {e}") from None


def load_compressai_state(path: str, arch_kind: str = "auto", mapping=None,
                          arch: Architecture = None) -> FloatModel:
    """Load a CompressAI-style state dict saved as .safetensors / .npz."""
    tensors, meta = read_tensors(path)
    tensors, probe = split_probe(tensors)
    refuse_gdn(path, tensors)
    arch = find_architecture(path, meta, arch) or infer_compressai_arch(path, tensors, arch_kind)
    mp = _read_mapping(mapping)
    if mp is not None and not any(k.startswith(DATAPARALLEL) for k in tensors):
        # the keys lost their DataParallel prefix: so do the mapping's
        mp = {(p[len(DATAPARALLEL):] if p.startswith(DATAPARALLEL) else p): v for p, v in mp.items()}
    if mp is None:
        mp = default_compressai_map(arch)
    else:
        bad = sorted(v for v in mp.values() if v is not None and v not in arch.names)
        if bad:
            raise WeightsError(f"mapping names unknown layer(s) {', '.join(bad)} "
                               f"(layers: {' '.join(arch.names)})")
    ignored = [p for p, v in mp.items() if v is None]
    layer_of = {p: v for p, v in mp.items() if v is not None}
    missing_layers = [n for n in arch.names if n not in layer_of.values()]
    if missing_layers:
        raise WeightsError(f"mapping gives no module for layer(s) {', '.join(missing_layers)}")
    names = {v: (f"{p}.weight", f"{p}.bias") for p, v in layer_of.items()}
    used = {k for pair in names.values() for k in pair}
    ent = {}
    unknown = []
    for k in sorted(tensors):
        if k in used or CAI_DROPPED.match(k) or any(k.startswith(p + ".") for p in ignored):
            continue
        nk = _eb_rename(k)
        if nk is not None:
            ent[nk] = tensors[k]
        else:
            unknown.append(k)
    if unknown:
        raise WeightsError(f"{path}: unmapped tensor(s) {', '.join(unknown[:5])}"
                           f"{' ...' if len(unknown) > 5 else ''}; the default key map is "
                           f"g_a/h_a/h_s/g_s.{{0,2,4,...}} -> AT/HA/HS/ST{{0,1,2,...}} "
                           f"(give a mapping JSON for other names)")
    W, B = _layers_from_torch(path, arch, tensors, names)
    ent = check_entropy(path, arch, ent)
    fm = FloatModel(arch, W, B, ent, _meta_from(path, meta, "compressai"), probe)
    _validate(path, fm)
    return fm


def compressai_state_from(fm: FloatModel, dtype=np.float32, eb_style: str = "compressai") -> dict:
    """The state dict CompressAI would hold for ``fm`` (default key map); the
    entropy bottleneck as ``_matrix0`` (``eb_style='compressai'``, CompressAI < 1.2),
    ``matrices.0`` (``'compressai12'``) or ``_matrices.0`` (anything else)."""
    out = {}
    rev = {v: k for k, v in default_compressai_map(fm.arch).items()}
    for l in fm.arch.layers:
        out[f"{rev[l.name]}.weight"] = to_torch_layout(l.op, fm.weights[l.name]).astype(dtype)
        out[f"{rev[l.name]}.bias"] = np.asarray(fm.biases[l.name]).astype(dtype)
    for k, v in fm.entropy.items():
        m = re.fullmatch(rf"{EB}\._(matrices|biases|factors)\.(\d+)", k)
        if m and eb_style == "compressai":
            single = {"matrices": "matrix", "biases": "bias", "factors": "factor"}[m.group(1)]
            k = f"{EB}._{single}{m.group(2)}"
        elif m and eb_style == "compressai12":
            k = f"{EB}.{m.group(1)}.{m.group(2)}"
        out[k] = np.asarray(v).astype(dtype)
    return out


# --------------------------------------------------------------------------
# any format
# --------------------------------------------------------------------------

FORMATS = ("auto", "native", "compressai", "onnx")


def detect_format(path: str) -> str:
    _check_readable(path)
    if path.lower().endswith(".onnx"):
        return "onnx"
    tensors, meta = read_tensors(path)
    if any(k.startswith(("g_a.", "g_s.")) for k in tensors):
        return "compressai"
    return "native"


def load_weights(path: str, fmt: str = "auto", arch_kind: str = "auto", mapping=None) -> FloatModel:
    """Load float weights in any supported format (``fmt`` one of FORMATS)."""
    if fmt not in FORMATS:
        raise WeightsError(f"unknown weights format {fmt!r}; choose from {', '.join(FORMATS)}")
    _check_readable(path)
    refuse_pickle(path)
    if fmt == "auto":
        fmt = detect_format(path)
    if fmt == "onnx":
        from .onnx_import import load_onnx
        return load_onnx(path, arch_kind=arch_kind)
    if fmt == "compressai":
        return load_compressai_state(path, arch_kind=arch_kind, mapping=mapping)
    return load_float_model(path)


def load_entropy_file(path: str, arch: Architecture) -> dict:
    """An entropy side file (``fxlic quantize --entropy``, docs/MODEL_FORMAT.md
    7.2): a .safetensors / .npz holding the ``entropy_bottleneck.*`` tensors
    (any of the namings of part 2; a whole state dict is fine: its layer
    tensors and CompressAI's derived buffers are ignored) and optionally
    ``gaussian_conditional.scale_table``.  Returns them checked, native names."""
    tensors, _ = read_tensors(path)
    ent = {}
    for k in sorted(tensors):
        nk = _eb_rename(k)
        if nk is not None:
            ent[nk] = tensors[k]
        elif k.startswith(EB + ".") and not CAI_DROPPED.match(k):
            raise WeightsError(f"{path}: unknown entropy-bottleneck tensor {k}")
    if not any(k.startswith(EB + ".") for k in ent):
        raise WeightsError(f"{path}: no entropy-bottleneck tensors (entropy_bottleneck._matrices.0, "
                           f"... .quantiles) in this entropy file")
    return check_entropy(path, arch, ent)


def has_bottleneck(fm: FloatModel) -> bool:
    return any(k.startswith(EB + ".") for k in fm.entropy)


def add_entropy(fm: FloatModel, path: str) -> FloatModel:
    """``fm`` with the entropy parameters of side file ``path``; refused when
    ``fm`` carries its own (two sources, one silently ignored)."""
    side = load_entropy_file(path, fm.arch)
    both = sorted(set(side) & set(fm.entropy))
    if has_bottleneck(fm) or both:
        what = "entropy-bottleneck parameters" if has_bottleneck(fm) else both[0]
        raise WeightsError(f"{path}: the weights file already carries {what}; give --entropy only "
                           f"for weights without them (ONNX)")
    fm.entropy = {**fm.entropy, **side}
    return fm


def require_bottleneck(fm: FloatModel, path: str) -> None:
    """Refuse, before any calibration, float weights without entropy-bottleneck
    parameters: an ONNX export carries none (docs/MODEL_FORMAT.md 7.2)."""
    if not has_bottleneck(fm):
        hint = " (ONNX exports carry none)" if fm.meta.get("format") == "onnx" else ""
        raise WeightsError(f"{path}: no entropy-bottleneck parameters (entropy_bottleneck.*){hint}; "
                           f"give them with --entropy FILE (.safetensors / .npz of the model's "
                           f"entropy_bottleneck.* tensors)")


def float_models_equal(a: FloatModel, b: FloatModel) -> bool:
    """Same architecture, weights, biases and entropy parameters (meta ignored)."""
    if a.arch != b.arch or set(a.entropy) != set(b.entropy):
        return False
    for n in a.arch.names:
        if not (np.array_equal(a.weights[n], b.weights[n]) and np.array_equal(a.biases[n], b.biases[n])):
            return False
    return all(np.array_equal(a.entropy[k], b.entropy[k]) for k in a.entropy)
