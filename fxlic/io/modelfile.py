"""The integer model file ``.fxq`` (docs/MODEL_FORMAT.md, part 3).

A ``.fxq`` is a zip archive (every member stored uncompressed, timestamps fixed
at 1980-01-01, names sorted after ``header.json``: the same model always gives
the same bytes) holding

* ``header.json``: magic ``fxlic-model``, ``format_version``, ``spec_version``,
  the architecture, the list of arrays with dtype and shape, ``meta``
  (provenance: float-model sha256, lambda, weight scheme, activation
  quantization, calibration images, ...) and ``content_hash``;
* one ``.npy`` file per integer tensor: ``layers/{L}/{w_codes,w_lut,w_exp,bias,
  in_exp,out_exp,mux}.npy``, ``mean_reduction/{mask,a_q,b_q}.npy`` and
  ``entropy/{name}.npy`` for every entry of ``IntModel.entropy``.

Nothing is unpickled: ``.npy`` headers are parsed by ``numpy.lib.format`` and the
data read with ``np.frombuffer``.  ``content_hash`` is the sha256 of a
canonical serialization of the architecture and every array (``model_hash``);
meta is not part of it, so the same weights imported from different formats
give the same hash.  ``load_model`` checks everything and raises
``ModelFileError`` on any problem.
"""
from __future__ import annotations

import hashlib
import io
import json
import math
import os
import re
import zipfile

import numpy as np

from .. import __version__
from ..model.arch import Architecture
from ..model.intmodel import GRID_BITS_1_2, HA_GRID_BITS_RANGE, IntLayer, IntModel, ModelError, accumulator_bound  # noqa: F401
from ..spec import SPEC_VERSION

#: spec versions whose model files this fxlic reads (SPEC V): 1.2 added offset
#: latents (SPEC O5), so a 1.1 file is a model with integer latents; 1.3 made the
#: offset grid a model property (latents/grid_bits), so a 1.2 offset-latent file
#: is a model with G = 2; 1.4 let HA0 read y on the 2^-H grid (SPEC O6, H = -HA0's
#: input exponent), so a 1.3 file (whose HA0 reads O3's integer y) is a model with H = 0
SPEC_1_2 = "fxlic-spec-1.2"
SPEC_1_3 = "fxlic-spec-1.3"
READABLE_SPECS = ("fxlic-spec-1.1", SPEC_1_2, SPEC_1_3, SPEC_VERSION)
#: the versions whose offset-latent files may carry GRID_ARRAY (G != 2)
GRID_SPECS = (SPEC_1_3, SPEC_VERSION)
from .files import check_input
from .modelcheck import ZOO_DIR, check_architecture, check_model, stamp

MAGIC = "fxlic-model"
FORMAT_VERSION = 1
HEADER = "header.json"
HASH_PREFIX = "sha256:"
MAX_HEADER_BYTES = 16 << 20
MAX_MEMBERS = 1 << 16
#: largest total of array data a model may declare (Z1; N = M = 512 needs < 100 MB)
MAX_MODEL_BYTES = 256 << 20
#: room for a .npy header in front of an array's data (npy 1.0 / 2.0)
MAX_NPY_HEADER = (1 << 16) + 16
ZIP_DATE = (1980, 1, 1, 0, 0, 0)

#: per-layer arrays: (name, dtype in the file)
LAYER_ARRAYS = (("w_codes", "|i1"), ("w_lut", "<i2"), ("w_exp", "<i8"), ("bias", "<i8"),
                ("in_exp", "<i8"), ("out_exp", "<i8"), ("mux", "<i8"))
MR_ARRAYS = (("mask", "|u1"), ("a_q", "<i8"), ("b_q", "<i8"))
#: optional: bottleneck medians of an offset-latent model on the 2^-G grid (SPEC O5)
OFFSET_ARRAY = "latents/offset_q"
#: with OFFSET_ARRAY: G, shape (1,), present iff G != 2 (spec 1.3; absent: G = 2, as in
#: every spec-1.2 file, so a G = 2 model has one id in both versions)
GRID_ARRAY = "latents/grid_bits"
_ENTROPY_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]*(/[A-Za-z0-9_][A-Za-z0-9_.\-]*)*")
#: integer dtypes allowed for entropy tables (as stored, little-endian)
ENTROPY_DTYPES = ("|i1", "|u1", "<i2", "<u2", "<i4", "<u4", "<i8", "<u8")


class ModelFileError(ValueError):
    """A .fxq file fxlic refuses to load (corrupt, truncated, wrong version...)."""


# --------------------------------------------------------------------------
# arrays and hash
# --------------------------------------------------------------------------

def _layer_shapes(spec) -> dict:
    O, C, k = spec.cout, spec.cin, spec.k
    return {"w_codes": (O, C, k, k), "w_lut": (256,), "w_exp": (O,), "bias": (O,),
            "in_exp": (C,), "out_exp": (O,), "mux": (O,)}


def expected_arrays(arch: Architecture) -> dict:
    """Array name -> (dtype str, shape) of every fixed (non-entropy) array."""
    out = {}
    for spec in arch.layers:
        shapes = _layer_shapes(spec)
        for nm, dt in LAYER_ARRAYS:
            out[f"layers/{spec.name}/{nm}"] = (dt, shapes[nm])
    for nm, dt in MR_ARRAYS:
        out[f"mean_reduction/{nm}"] = (dt, (arch.M,))
    return out


def _as_file_dtype(a, dt: str) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(a).astype(np.dtype(dt), copy=False))


def _entropy_array(name: str, a) -> np.ndarray:
    if not isinstance(name, str) or not _ENTROPY_NAME.fullmatch(name) or ".." in name:
        raise ModelFileError(f"entropy table name {name!r} is not allowed (letters, digits, _ . - /)")
    a = np.asarray(a)
    if a.dtype.kind not in "iu":
        raise ModelFileError(f"entropy table {name!r} has dtype {a.dtype}; only integer arrays "
                             f"are stored in a model file")
    return np.ascontiguousarray(a.astype(a.dtype.newbyteorder("<"), copy=False))


def model_arrays(im: IntModel) -> dict:
    """Every array of the model file (name without ``.npy`` -> array in file dtype)."""
    out = {}
    for spec in im.arch.layers:
        if spec.name not in im.layers:
            raise ModelFileError(f"layer {spec.name} missing from the model")
        L = im.layers[spec.name]
        for nm, dt in LAYER_ARRAYS:
            out[f"layers/{spec.name}/{nm}"] = _as_file_dtype(getattr(L, nm), dt)
    out["mean_reduction/mask"] = _as_file_dtype(np.asarray(im.mr_mask, dtype=bool), "|u1")
    out["mean_reduction/a_q"] = _as_file_dtype(im.mr_a_q, "<i8")
    out["mean_reduction/b_q"] = _as_file_dtype(im.mr_b_q, "<i8")
    if im.offset_latents:  # SPEC O5; its presence makes the model an offset-latent one
        out[OFFSET_ARRAY] = _as_file_dtype(im.offset_q, "<i8")
        if im.grid_bits != GRID_BITS_1_2:
            out[GRID_ARRAY] = _as_file_dtype(np.array([im.grid_bits], np.int64), "<i8")
    for name, a in (im.entropy or {}).items():
        out[f"entropy/{name}"] = _entropy_array(name, a)
    return out


def _canonical_arch(arch: Architecture) -> bytes:
    return json.dumps(json.loads(arch.to_json()), sort_keys=True, separators=(",", ":")).encode()


def _hash_of(arch: Architecture, arrays: dict) -> str:
    h = hashlib.sha256()

    def feed(b: bytes):
        h.update(len(b).to_bytes(8, "little"))
        h.update(b)

    feed(MAGIC.encode())
    feed(_canonical_arch(arch))
    for name in sorted(arrays):
        a = arrays[name]
        feed(name.encode())
        feed(a.dtype.str.encode())
        feed(json.dumps(list(a.shape)).encode())
        feed(a.tobytes())
    return HASH_PREFIX + h.hexdigest()


def model_hash(im: IntModel) -> str:
    """Content hash: sha256 over architecture and all integer arrays (not meta)."""
    return _hash_of(im.arch, model_arrays(im))


def _jsonable(x):
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return _jsonable(x.tolist())
    if isinstance(x, np.generic):
        return x.item()
    if x is None or isinstance(x, (bool, int, float, str)):
        return x
    return str(x)


# --------------------------------------------------------------------------
# save
# --------------------------------------------------------------------------

def _npy_bytes(a: np.ndarray) -> bytes:
    b = io.BytesIO()
    np.lib.format.write_array(b, a, version=(1, 0), allow_pickle=False)
    return b.getvalue()


def save_model(im: IntModel, path: str) -> str:
    """Write ``im`` as a .fxq file (atomically); returns the content hash."""
    arrays = model_arrays(im)
    digest = _hash_of(im.arch, arrays)
    header = {
        "magic": MAGIC,
        "format_version": FORMAT_VERSION,
        "spec_version": SPEC_VERSION,
        "writer": f"fxlic {__version__}",
        "architecture": json.loads(im.arch.to_json()),
        "arrays": {n: {"dtype": a.dtype.str, "shape": list(a.shape)} for n, a in sorted(arrays.items())},
        "meta": _jsonable(im.meta or {}),
        "content_hash": digest,
    }
    members = [(HEADER, json.dumps(header, indent=1, sort_keys=True).encode("utf-8"))]
    members += [(f"{n}.npy", _npy_bytes(arrays[n])) for n in sorted(arrays)]
    d = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(d, f".{os.path.basename(path)}.tmp{os.getpid()}")
    try:
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as z:
            for name, data in members:
                zi = zipfile.ZipInfo(name, date_time=ZIP_DATE)
                zi.compress_type = zipfile.ZIP_STORED
                zi.create_system = 3
                zi.external_attr = 0o644 << 16
                z.writestr(zi, data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return digest


# --------------------------------------------------------------------------
# load
# --------------------------------------------------------------------------

def _parse_npy(data: bytes, name: str, want_dt: str, want_shape: tuple) -> np.ndarray:
    f = io.BytesIO(data)
    try:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, fortran, dt = np.lib.format.read_array_header_1_0(f)
        elif version == (2, 0):
            shape, fortran, dt = np.lib.format.read_array_header_2_0(f)
        else:
            raise ValueError(f"npy version {version}")
    except ValueError as e:
        raise ModelFileError(f"array {name}: malformed .npy header ({e})") from None
    if dt.hasobject or dt.str != want_dt:
        raise ModelFileError(f"array {name}: dtype {dt.str}, expected {want_dt}")
    if fortran:
        raise ModelFileError(f"array {name}: Fortran order is not allowed")
    if tuple(shape) != tuple(want_shape):
        raise ModelFileError(f"array {name}: shape {tuple(shape)}, expected {tuple(want_shape)}")
    count = math.prod(int(s) for s in want_shape)  # Python ints: no wrap-around
    rest = memoryview(data)[f.tell():]
    if len(rest) != count * dt.itemsize:
        raise ModelFileError(f"array {name}: {len(rest)} data bytes, expected {count * dt.itemsize}")
    a = np.frombuffer(rest, dtype=dt).reshape(want_shape)
    return a.astype(dt.newbyteorder("="), copy=True)


def _read_member(z: zipfile.ZipFile, info: zipfile.ZipInfo, cap: int, path: str) -> bytes:
    """Z1: a member is inflated only up to ``cap`` bytes, the size its header
    entry allows; a larger declared size is refused before inflating."""
    if info.file_size > cap:
        raise ModelFileError(f"{path}: member {info.filename} declares {info.file_size:,} bytes, "
                             f"more than the {cap:,} its header entry allows")
    with z.open(info) as f:  # zipfile stops inflating at the declared file_size
        data = f.read(cap + 1)
    if len(data) != info.file_size:
        raise ModelFileError(f"{path}: member {info.filename} is truncated")
    return data


def _open_zip(path: str, z: zipfile.ZipFile) -> dict:
    """Z0: member table checks; returns {name: ZipInfo}."""
    infos = z.infolist()
    if len(infos) > MAX_MEMBERS:
        raise ModelFileError(f"{path}: too many members ({len(infos)})")
    names = [i.filename for i in infos]
    if len(set(names)) != len(names):
        raise ModelFileError(f"{path}: duplicate member names")
    for i in infos:
        if i.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise ModelFileError(f"{path}: member {i.filename} uses unsupported compression")
        if i.flag_bits & 0x1:
            raise ModelFileError(f"{path}: member {i.filename} is encrypted")
    if HEADER not in names:
        raise ModelFileError(f"{path}: no {HEADER}: not a fxlic model file")
    return {i.filename: i for i in infos}


def _check_header(path: str, h):
    if not isinstance(h, dict) or h.get("magic") != MAGIC:
        raise ModelFileError(f"{path}: wrong magic (not a fxlic model file)")
    v = h.get("format_version")
    if not isinstance(v, int) or isinstance(v, bool):
        raise ModelFileError(f"{path}: format_version missing or not an integer")
    if v != FORMAT_VERSION:
        newer = " (written by a newer fxlic; upgrade)" if v > FORMAT_VERSION else ""
        raise ModelFileError(f"{path}: model format version {v} is not supported; this fxlic "
                             f"reads version {FORMAT_VERSION}{newer}")
    if h.get("spec_version") not in READABLE_SPECS:
        raise ModelFileError(f"{path}: model was made for spec {h.get('spec_version')!r}, this fxlic "
                             f"implements {SPEC_VERSION!r}; re-quantize the float model")
    for key, typ in (("architecture", dict), ("arrays", dict), ("meta", dict), ("content_hash", str)):
        if not isinstance(h.get(key), typ):
            raise ModelFileError(f"{path}: header field {key!r} missing or of the wrong type")
    for n, d in h["arrays"].items():
        if not (isinstance(d, dict) and isinstance(d.get("dtype"), str) and isinstance(d.get("shape"), list)
                and len(d["shape"]) <= 8
                and all(isinstance(s, int) and not isinstance(s, bool) and 0 <= s < (1 << 40)
                        for s in d["shape"])):
            raise ModelFileError(f"{path}: header entry of array {n!r} is malformed")


def _header_of(path: str, z: zipfile.ZipFile):
    """Z0 and the checked header.json of an open .fxq: ({name: ZipInfo}, header)."""
    members = _open_zip(path, z)
    try:
        header = json.loads(_read_member(z, members[HEADER], MAX_HEADER_BYTES, path).decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        if isinstance(e, ModelFileError):
            raise
        raise ModelFileError(f"{path}: {HEADER} is not valid JSON ({e})") from None
    _check_header(path, header)
    return members, header


def _open_model_zip(path: str) -> zipfile.ZipFile:
    check_input(path, ModelFileError, "a .fxq model file")
    if not zipfile.is_zipfile(path):
        raise ModelFileError(f"{path}: not a fxlic model file (not a zip archive; truncated?)")
    return zipfile.ZipFile(path)


def declared_hash(path: str) -> str:
    """The content hash a .fxq's header.json declares, read without loading the
    arrays (an index of the zoo by model id; the model itself is verified when it
    is loaded).  Raises ModelFileError."""
    with _open_model_zip(path) as z:
        return _header_of(path, z)[1]["content_hash"]


def read_model_file(path: str):
    """(IntModel, header) after every check; raises ModelFileError."""
    try:
        return _read_model_file(path)
    except ModelFileError:
        raise
    except MemoryError:
        raise ModelFileError(f"{path}: corrupt model file (implausible sizes)") from None
    except Exception as e:  # zipfile / zlib / numpy parsing errors of a damaged file
        raise ModelFileError(f"{path}: corrupt or truncated model file "
                             f"({e.__class__.__name__}: {e})") from None


def _array_plan(path: str, header: dict, arch: Architecture) -> dict:
    """Array name -> (dtype, shape, data bytes) from header.json, checked
    against the architecture and bounded in total (Z1) before any member is read."""
    fixed = expected_arrays(arch)
    declared = header["arrays"]
    for n in sorted(set(fixed) - set(declared)):
        raise ModelFileError(f"{path}: array {n} missing")
    plan, total = {}, 0
    if GRID_ARRAY in declared and OFFSET_ARRAY not in declared:
        raise ModelFileError(f"{path}: {GRID_ARRAY} without {OFFSET_ARRAY}")
    if OFFSET_ARRAY in declared:
        spec = header.get("spec_version")
        if spec not in (SPEC_1_2,) + GRID_SPECS:
            raise ModelFileError(f"{path}: offset latents need {SPEC_1_2} or later, the file says {spec!r}")
        if GRID_ARRAY in declared and spec not in GRID_SPECS:
            raise ModelFileError(f"{path}: {spec} offset latents have no {GRID_ARRAY} (G = 2)")
        which = "z" if arch.kind == "hyperprior" else "y"
        fixed = dict(fixed)
        fixed[OFFSET_ARRAY] = ("<i8", ([l for l in arch.layers if l.out == which][0].cout,))
        if spec in GRID_SPECS:
            fixed[GRID_ARRAY] = ("<i8", (1,))
    for n in sorted(declared):
        if n not in fixed:
            if n.startswith("layers/"):
                raise ModelFileError(f"{path}: array {n} belongs to no layer of {arch.name}")
            if not n.startswith("entropy/"):
                raise ModelFileError(f"{path}: unknown array {n}")
            en = n[len("entropy/"):]
            if not _ENTROPY_NAME.fullmatch(en) or ".." in en:
                raise ModelFileError(f"{path}: bad entropy table name {en!r}")
            if declared[n]["dtype"] not in ENTROPY_DTYPES:
                raise ModelFileError(f"{path}: entropy table {en}: dtype {declared[n]['dtype']} "
                                     f"is not an integer type")
        dt, shape = fixed[n] if n in fixed else (declared[n]["dtype"], tuple(declared[n]["shape"]))
        if n in fixed and (declared[n]["dtype"] != dt or tuple(declared[n]["shape"]) != tuple(shape)):
            raise ModelFileError(f"{path}: array {n}: header says {declared[n]['dtype']}"
                                 f"{tuple(declared[n]['shape'])}, expected {dt}{tuple(shape)}")
        nbytes = math.prod(shape) * np.dtype(dt).itemsize
        total += nbytes
        if total > MAX_MODEL_BYTES:
            raise ModelFileError(f"{path}: arrays total more than {MAX_MODEL_BYTES:,} bytes "
                                 f"(at array {n}); not a model fxlic runs")
        plan[n] = (dt, shape, nbytes)
    return plan


def _ha_grid_bits(path: str, header: dict, im: IntModel) -> int:
    """SPEC O6: H = -(HA0's input exponent) when every channel has the same one in
    0..-6 (validate then checks it against the model: H > 0 only for an
    offset-latent hyperprior); 0 otherwise (validate refuses what does not chain).
    Files of spec 1.3 and earlier have H = 0."""
    srcs = [l for l in im.arch.layers if l.src == "y"]
    if not srcs:
        return 0
    e = im.layers[srcs[0].name].in_exp
    if e.size == 0 or np.any(e != e[0]) or not -HA_GRID_BITS_RANGE[1] <= int(e[0]) < 0:
        return 0
    if header.get("spec_version") != SPEC_VERSION:
        raise ModelFileError(f"{path}: HA0 reads y on a 2^{int(e[0])} grid (SPEC O6), which needs "
                             f"{SPEC_VERSION}; the file says {header.get('spec_version')!r}")
    return -int(e[0])


def _read_model_file(path: str):
    with _open_model_zip(path) as z:
        members, header = _header_of(path, z)
        try:
            arch = Architecture.from_dict(header["architecture"])
        except ValueError as e:
            raise ModelFileError(f"{path}: {e}") from None
        try:
            check_architecture(arch)  # K1 first: it bounds the sizes of every array
        except ModelError as e:
            raise ModelFileError(f"{path}: model refused: {e}") from None
        plan = _array_plan(path, header, arch)
        want = {f"{n}.npy" for n in plan} | {HEADER}
        missing, extra = sorted(want - set(members)), sorted(set(members) - want)
        if missing:
            raise ModelFileError(f"{path}: array {missing[0][:-4]} missing from the archive")
        if extra:
            raise ModelFileError(f"{path}: unexpected member {extra[0]} in the archive")
        arrays = {}
        for n, (dt, shape, nbytes) in plan.items():
            raw = _read_member(z, members[f"{n}.npy"], nbytes + MAX_NPY_HEADER, path)
            try:
                arrays[n] = _parse_npy(raw, n, dt, shape)
            except ModelFileError as e:
                raise ModelFileError(f"{path}: {e}") from None
    layers = {}
    for spec in arch.layers:
        g = {nm: arrays[f"layers/{spec.name}/{nm}"] for nm, _ in LAYER_ARRAYS}
        layers[spec.name] = IntLayer(spec, g["w_codes"], g["w_lut"], g["w_exp"], g["bias"],
                                     g["in_exp"], g["out_exp"], g["mux"])
    mask = arrays["mean_reduction/mask"]
    if np.any(mask > 1):
        raise ModelFileError(f"{path}: mean-reduction mask holds values other than 0/1")
    entropy = {n[len("entropy/"):]: a for n, a in arrays.items() if n.startswith("entropy/")}
    im = IntModel(arch, layers, mask.astype(bool), arrays["mean_reduction/a_q"],
                  arrays["mean_reduction/b_q"], entropy, header["meta"], arrays.get(OFFSET_ARRAY))
    if GRID_ARRAY in arrays:
        im.grid_bits = int(arrays[GRID_ARRAY][0])
        if im.grid_bits == GRID_BITS_1_2:
            raise ModelFileError(f"{path}: {GRID_ARRAY} = 2 is written as no {GRID_ARRAY} (one id per model)")
    im.ha_grid_bits = _ha_grid_bits(path, header, im)
    digest = _hash_of(arch, {n: a.astype(a.dtype.newbyteorder("<"), copy=False)
                             for n, a in arrays.items()})
    if digest != header["content_hash"]:
        raise ModelFileError(f"{path}: content hash mismatch (file {header['content_hash']}, "
                             f"computed {digest}): the file is corrupt or was edited")
    try:  # the computed hash: a shipped model's K2 proof is not run again (modelcheck)
        tables = check_model(im, digest)
    except ModelError as e:
        raise ModelFileError(f"{path}: model refused: {e}") from None
    stamp(im, digest, tables)
    return im, header


def load_model(path: str) -> IntModel:
    """Load and verify a .fxq file (see ``read_model_file``)."""
    return read_model_file(path)[0]


# --------------------------------------------------------------------------
# shipped models (ZOO_DIR: fxlic.io.modelcheck)
# --------------------------------------------------------------------------


def list_zoo() -> list:
    """Paths of the shipped models (fxlic/zoo/*.fxq), sorted by name."""
    if not os.path.isdir(ZOO_DIR):
        return []
    return [os.path.join(ZOO_DIR, n) for n in sorted(os.listdir(ZOO_DIR)) if n.endswith(".fxq")]


def resolve_model(arg: str) -> str:
    """A path, or the name of a shipped model (with or without .fxq).  A path
    that exists as a name (a dangling or looping symbolic link too) is returned
    as it is, so the loader reports what is wrong with it (rule F1)."""
    if os.path.lexists(arg):
        return arg
    for cand in (arg, arg + ".fxq"):
        p = os.path.join(ZOO_DIR, cand)
        if os.sep not in arg and "/" not in arg and os.path.isfile(p):
            return p
    raise ModelFileError(f"{arg}: no such model file or shipped model (see `fxlic models`)")


# --------------------------------------------------------------------------
# description (fxlic info)
# --------------------------------------------------------------------------

#: image size Table IX counts activations for (W x H)
TABLE_IX_SIZE = (768, 512)
#: bits Table IX counts per weight, per weight scale factor, per activation,
#: per activation scale factor (5 bits reproduces the printed 0.0018 / 0.0014 MB)
W_BITS, WSF_BITS, A_BITS, ASF_BITS = 8, 4, 8, 5


def output_sizes(arch: Architecture, h: int, w: int) -> dict:
    """Output (H, W) of every layer for an h x w input."""
    size = {"x": (h, w)}
    out = {}
    for l in arch.layers:
        src = size[l.src]
        out[l.name] = l.out_hw(*src)
        size[l.name] = out[l.name]
        if l.out == "y":
            size["y_hat"] = size["y"] = out[l.name]
        elif l.out == "z":
            size["z_hat"] = out[l.name]
    return out


def memory_counts(arch: Architecture, w: int = TABLE_IX_SIZE[0], h: int = TABLE_IX_SIZE[1]) -> dict:
    """Table IX counts for encoder (g_a+h_a+h_s) and decoder (h_s+g_s)."""
    sizes = output_sizes(arch, h, w)
    res = {}
    for part, layers in (("encoder", arch.encoder), ("decoder", arch.decoder)):
        acts = sum(l.cout * sizes[l.name][0] * sizes[l.name][1] for l in layers)
        res[part] = {
            "weights": sum(l.n_weights for l in layers),
            "weight_sf": sum(l.cout for l in layers),
            "activations": acts,
            "act_sf": sum(l.cout for l in layers),
            "biases": sum(l.cout for l in layers),
        }
    hs_t = [l for l in arch.decoder if l.name.startswith("HS") and l.op == "tconv"]
    res["decoder"]["activations_without_hs_tconv"] = res["decoder"]["activations"] - sum(
        l.cout * sizes[l.name][0] * sizes[l.name][1] for l in hs_t)
    return res


def _rng(a) -> str:
    a = np.asarray(a)
    if a.size == 0:
        return "-"
    lo, hi = int(a.min()), int(a.max())
    return f"{lo}" if lo == hi else f"{lo}..{hi}"


def layer_rows(im: IntModel) -> list:
    """Per layer: dict of the quantities fxlic info / quantize print."""
    rows = []
    for spec in im.arch.layers:
        L = im.layers[spec.name]
        bound = accumulator_bound(im, spec.name)
        if L.out_kind == 0:
            h = np.bincount(L.mux, minlength=4)
            mux = "/".join(str(int(c)) for c in h[:4])
        else:
            mux = "-"
        rows.append({
            "name": spec.name,
            "op": f"{spec.op}{spec.k}s{spec.stride}",
            "shape": f"{spec.cin}->{spec.cout}",
            "act": spec.act,
            "w_exp": _rng(L.w_exp),
            "out_exp": _rng(L.out_exp),
            "mux": mux,
            "acc_bound": int(bound.max()),
            "acc_pct": 100.0 * float(bound.max()) / float(1 << 31),
        })
    return rows


def format_layer_table(rows: list, extra_cols=()) -> str:
    cols = [("layer", "name"), ("op", "op"), ("channels", "shape"), ("act", "act"),
            ("w exp", "w_exp"), ("act exp", "out_exp"), ("mux 0/1/2/3", "mux"),
            ("acc bound", "acc_bound"), ("% 2^31", "acc_pct")] + list(extra_cols)

    def cell(r, k):
        v = r.get(k, "")
        if k == "acc_pct":
            return f"{v:.2f}"
        if k == "clipped":
            return "-" if v is None else f"{100 * v:.4f}%"
        if isinstance(v, int):
            return f"{v:,}"
        return str(v)

    table = [[h for h, _ in cols]] + [[cell(r, k) for _, k in cols] for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(cols))]
    lines = []
    for j, row in enumerate(table):
        lines.append("  ".join(c.ljust(wd) if i < 4 else c.rjust(wd) for i, (c, wd) in
                               enumerate(zip(row, widths))).rstrip())
        if j == 0:
            lines.append("  ".join("-" * wd for wd in widths))
    return "\n".join(lines)


def describe_model(im: IntModel, header: dict = None, path: str = None) -> str:
    arch = im.arch
    lines = []
    if path:
        lines.append(f"model file   {path} ({os.path.getsize(path):,} bytes)")
    if header:
        lines.append(f"format       {header['magic']} v{header['format_version']}, "
                     f"{header['spec_version']}, written by {header.get('writer', '?')}")
    lines.append(f"architecture {arch.name} ({arch.kind}, N={arch.N}, M={arch.M}, "
                 f"{len(arch.layers)} layers, pad to multiples of {arch.pad_multiple})")
    lines.append(f"content hash {model_hash(im) if header is None else header['content_hash']}")
    meta = im.meta or {}
    for key, label in (("weight_scheme", "weights"), ("act_quant", "activations"),
                       ("mean_reduction", "mean reduce"), ("relu_headroom_bits", "ReLU headroom")):
        if key in meta:
            lines.append(f"{label:<12} {meta[key]}")
    fmeta = meta.get("float_model")
    if isinstance(fmeta, dict):
        lines.append(f"float model  {fmeta.get('source', '?')} ({fmeta.get('format', '?')}), "
                     f"sha256 {str(fmeta.get('sha256', '?'))[:16]}..., lambda "
                     f"{'-' if fmeta.get('lambda') is None else fmeta['lambda']}")
        if fmeta.get("provenance") is not None:
            prov = json.dumps(fmeta["provenance"], sort_keys=True)
            lines.append(f"provenance   {prov if len(prov) <= 200 else prov[:197] + '...'}")
    cal = meta.get("calibration")
    if isinstance(cal, dict):
        names = cal.get("images") or []
        shown = ", ".join(map(str, names[:9])) + (" ..." if len(names) > 9 else "")
        lines.append(f"calibration  {len(names)} image(s): {shown}")
    n_mr = int(np.sum(im.mr_mask))
    lines.append(f"mean-reduced {n_mr} of {arch.M} channels of y")
    lines.append("latents      " + (f"offset: y_hat = mean + round(y - mean), z around its medians, "
                                     f"grid 2^-{im.grid_bits} (SPEC O5)" if im.offset_latents
                                     else "integer: y_hat = round(y) (SPEC O3)"))
    if im.arch.kind == "hyperprior":
        lines.append("HA0 input    " + (f"y on the 2^-{im.ha_grid_bits} grid (SPEC O6)" if im.ha_grid_bits
                                        else "integer y (SPEC O3)"))
    if im.entropy:
        for i, (k, v) in enumerate(sorted(im.entropy.items())):
            lines.append(f"{'entropy' if i == 0 else '':<12} {k} {v.dtype.name}{tuple(v.shape)}")
    else:
        lines.append("entropy      (no integer entropy tables stored)")
    lines.append("")
    lines.append(format_layer_table(layer_rows(im)))
    lines.append("")
    mc = memory_counts(arch)
    W, H = TABLE_IX_SIZE
    lines.append(f"memory as Table IX counts it: {W}x{H} input, MB = 10^6 bytes; weights {W_BITS}-bit, "
                 f"weight sf {WSF_BITS}-bit and activation sf {ASF_BITS}-bit per output channel, "
                 f"activations {A_BITS}-bit")
    hdr = ("", "weights", "MB", "weight sf", "MB", "activations", "MB", "act sf MB", "fp32 w MB", "fp32 act MB")
    tab = [hdr]
    for part in ("encoder", "decoder"):
        m = mc[part]
        tab.append((part, f"{m['weights']:,}", f"{m['weights'] * W_BITS / 8e6:.3f}",
                    f"{m['weight_sf']:,}", f"{m['weight_sf'] * WSF_BITS / 8e6:.4f}",
                    f"{m['activations']:,}", f"{m['activations'] * A_BITS / 8e6:.3f}",
                    f"{m['act_sf'] * ASF_BITS / 8e6:.4f}", f"{m['weights'] * 4 / 1e6:.2f}",
                    f"{m['activations'] * 4 / 1e6:.2f}"))
    wd = [max(len(r[i]) for r in tab) for i in range(len(hdr))]
    for r in tab:
        lines.append("  " + "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in
                                      enumerate(zip(r, wd))))
    if arch.kind == "hyperprior":
        d = mc["decoder"]["activations_without_hs_tconv"]
        lines.append(f"  decoder activations count every layer output (as Table IX's float32 column "
                     f"does); without the HS0/HS1 outputs they are {d:,} = {d * A_BITS / 8e6:.3f} MB, "
                     f"the rule behind Table IX's printed 8-bit 20.251 MB at N=128")
    total_bias = sum(l.cout for l in arch.layers)
    lines.append(f"  all layers: {sum(l.n_weights for l in arch.layers):,} weights, "
                 f"{total_bias:,} int32 biases")
    return "\n".join(lines)


def describe_model_file(path: str) -> str:
    """Readable description of a .fxq file (``fxlic info model.fxq``)."""
    im, header = read_model_file(path)
    return describe_model(im, header, path)
