"""Issue 18: a structured fuzz campaign over every input format fxlic reads.

Four generators mutate valid files field by field, at boundary values, and
repair what a real attacker would repair (the .fxl CRC, the .fxq content
hash), so the mutations reach the semantic checks behind the integrity checks:

* ``fxl``: every header field of a stream (magic, version, kind, model id,
  H, W, channels, pad multiple, K, mean records, Lz, Ly, truncations) with the
  CRC recomputed, decoded in memory and through ``read_stream`` from a file;
* ``fxq``: model arrays (layers, mean reduction, entropy tables: values,
  shapes, dtypes, dropped and added tables) saved with a recomputed content
  hash, and .fxq members (header.json fields, .npy headers) resealed;
* ``safetensors``: header JSON (dtype, shape, data_offsets, metadata, header
  length);
* ``onnx``: initializer dims / data type / raw data / external data, node
  attributes and op types, metadata.

A case passes when it ends in the format's own one-line error class
(BitstreamError, ModelFileError / ModelError, WeightsError) or in a valid
result; anything else (another exception, a wrong-shaped image, a case over
CASE_SECONDS) fails the test.  The default suite runs about 3,000 cases;
``pytest -m slow`` runs 100,000.
"""
import copy
import io
import json
import re
import resource
import struct
import time
import zipfile
import zlib

import numpy as np
import pytest

from engine_util import small_model
from fxlic.bitstream.container import BitstreamError, read_stream, unpack
from fxlic.codec import compress, decode_parts, decompress
from fxlic.io.floatfile import WeightsError, load_weights, save_float_model, torch_layout_tensors
from fxlic.io.modelcheck import check_model
from fxlic.io.modelfile import ModelFileError, _hash_of, load_model, save_model
from fxlic.model.arch import Architecture, hyperprior5
from fxlic.model.float_model import random_float_model
from fxlic.model.intmodel import IntModel, ModelError

#: no single case may take longer than this (a hang)
CASE_SECONDS = 20.0
DEFAULT = {"fxl": 1400, "fxq_mem": 600, "fxq_file": 200, "safetensors": 700, "onnx": 250}
SLOW = {"fxl": 40000, "fxq_mem": 25000, "fxq_file": 5000, "safetensors": 20000, "onnx": 10000}

INT_EDGES = [0, 1, -1, 2, 3, 7, 8, 15, 16, 63, 64, 65, 127, 128, 255, 256, 1023, 16383, 16384,
             16385, 32767, 32768, 65535, 65536, 2 ** 31 - 1, 2 ** 31, 2 ** 32 - 1, 2 ** 32,
             2 ** 40, 2 ** 62, 2 ** 63 - 1, -2 ** 31, -2 ** 63]


@pytest.fixture(scope="module")
def hp():
    return small_model("hyperprior", N=8, seed=3)


@pytest.fixture(scope="module")
def stream(hp):
    img = np.random.default_rng(0).integers(0, 256, (3, 40, 70), dtype=np.uint8)
    return compress(hp, img)[0]


def _edge(rng, lo=None, hi=None):
    v = INT_EDGES[int(rng.integers(len(INT_EDGES)))] + int(rng.integers(-1, 2))
    if lo is not None:
        v = min(max(v, lo), hi)
    return v


class Campaign:
    """Runs cases, counts outcomes, fails on anything but the allowed ones."""

    def __init__(self, allowed):
        self.allowed = allowed
        self.counts = {"error": 0, "ok": 0}

    def run(self, fn, *args):
        t0 = time.perf_counter()
        try:
            fn(*args)
        except self.allowed as e:
            msg = str(e)
            assert msg and "\n" not in msg, repr(msg)
            self.counts["error"] += 1
        else:
            self.counts["ok"] += 1
        dt = time.perf_counter() - t0
        assert dt < CASE_SECONDS, f"case took {dt:.1f} s"


# ---- .fxl ----------------------------------------------------------------------------

def _reseal(body) -> bytes:
    body = bytes(body)
    return body + struct.pack("<I", zlib.crc32(body) & 0xFFFFFFFF)


#: (offset, struct format) of the fixed header fields
FXL_FIELDS = [(0, "4s"), (4, "B"), (5, "B"), (6, "16s"), (22, "H"), (24, "H"), (26, "B"), (27, "B"),
              (28, "H")]


def fxl_cases(stream, n, seed):
    rng = np.random.default_rng(seed)
    K = struct.unpack_from("<H", stream, 28)[0]
    lens_at = 30 + 3 * K
    body = stream[:-4]
    for i in range(n):
        b = bytearray(body)
        kind = i % 8
        if kind in (0, 1):  # one fixed field at a boundary value
            off, fmt = FXL_FIELDS[int(rng.integers(len(FXL_FIELDS)))]
            if fmt.endswith("s"):
                size = struct.calcsize(fmt)
                b[off:off + size] = bytes(rng.integers(0, 256, size, dtype=np.uint8)) \
                    if rng.random() < 0.5 else bytes(size)
            else:
                bits = 8 * struct.calcsize(fmt)
                struct.pack_into("<" + fmt, b, off, _edge(rng, 0, (1 << bits) - 1))
        elif kind == 2:  # H and W together (sizes around the limits)
            struct.pack_into("<HH", b, 22, _edge(rng, 0, 65535), _edge(rng, 0, 65535))
        elif kind == 3 and K:  # a mean record: channel or mu
            r = 30 + 3 * int(rng.integers(K))
            if rng.random() < 0.5:
                struct.pack_into("<H", b, r, _edge(rng, 0, 65535))
            else:
                struct.pack_into("<b", b, r + 2, _edge(rng, -128, 127))
        elif kind == 4:  # Lz / Ly
            j = int(rng.integers(2))
            struct.pack_into("<I", b, lens_at + 4 * j, _edge(rng, 0, 2 ** 32 - 1))
        elif kind == 5:  # K with records added or removed
            k2 = _edge(rng, 0, 65535) if rng.random() < 0.5 else K + int(rng.integers(-2, 3))
            k2 = min(max(k2, 0), 65535)
            recs = bytes(b[30:lens_at])
            extra = bytes(rng.integers(0, 256, 3 * max(0, min(k2, 64) - K), dtype=np.uint8))
            b = b[:28] + struct.pack("<H", k2) + (recs + extra)[:3 * k2] + b[lens_at:]
        elif kind == 6:  # header truncations and insertions
            cut = int(rng.integers(0, lens_at + 9))
            b = b[:cut] + (bytes(rng.integers(0, 256, int(rng.integers(0, 9)), dtype=np.uint8))
                           if rng.random() < 0.5 else b"") + b[cut + int(rng.integers(0, 9)):]
        else:  # payload byte with a valid CRC
            p = int(rng.integers(lens_at + 8, len(b)))
            b[p] = int(rng.integers(0, 256))
        yield _reseal(b) if rng.random() < 0.95 else bytes(b)


def _decode_fxl(model, data, path, max_pixels):
    if path is not None:
        with open(path, "wb") as f:
            f.write(data)
    px = decompress(model, data, max_pixels=max_pixels)
    hdr = unpack(data)[0]
    assert px.dtype == np.uint8 and px.shape == (3, hdr.height, hdr.width)
    if path is not None:
        assert np.array_equal(decode_parts(model, *read_stream(path, max_pixels),
                                           max_pixels=max_pixels), px)


def run_fxl(hp, stream, n, seed, tmp_path):
    c = Campaign(BitstreamError)
    for i, data in enumerate(fxl_cases(stream, n, seed)):
        path = str(tmp_path / "f.fxl") if i % 10 == 0 else None
        c.run(_decode_fxl, hp, data, path, 1 << 16)
        if path is not None:  # the file reader alone, header-first
            c.run(read_stream, path, 1 << 16)
    return c.counts


# ---- .fxq ----------------------------------------------------------------------------

def _clone(im: IntModel) -> IntModel:
    """A copy sharing nothing mutable that mutations touch (arrays are replaced)."""
    return IntModel(im.arch, {n: copy.copy(L) for n, L in im.layers.items()}, im.mr_mask.copy(),
                    im.mr_a_q.copy(), im.mr_b_q.copy(), dict(im.entropy), copy.deepcopy(im.meta))


def _mutate_array(rng, a: np.ndarray) -> np.ndarray:
    a = np.array(a, copy=True)
    kind = int(rng.integers(6))
    if kind <= 2 and a.size:  # values at the edges of the dtype and of the rules
        info = np.iinfo(a.dtype) if a.dtype.kind in "iu" else None
        for _ in range(int(rng.integers(1, 4))):
            v = _edge(rng)
            if info is not None:
                v = min(max(v, int(info.min)), int(info.max))
            a.reshape(-1)[int(rng.integers(a.size))] = v
        return a
    if kind == 3:  # shape: drop, add or reshape
        flat = a.reshape(-1)
        m = int(rng.integers(3))
        if m == 0:
            return flat[:max(0, flat.size - int(rng.integers(1, 4)))].copy()
        if m == 1:
            return np.concatenate([flat, flat[:int(rng.integers(1, 4))]])
        return flat.reshape(1, -1) if flat.size else flat.reshape(0, 1)
    if kind == 4:  # dtype
        dt = [np.int8, np.uint8, np.int16, np.uint16, np.int32, np.uint32, np.int64, np.uint64]
        return a.astype(dt[int(rng.integers(len(dt)))])
    return a[::-1].copy() if a.ndim else a  # order


LAYER_FIELDS = ("w_codes", "w_lut", "w_exp", "bias", "in_exp", "out_exp", "mux")


def fxq_model_cases(base: IntModel, n, seed):
    rng = np.random.default_rng(seed)
    names = sorted(base.layers)
    ent = sorted(base.entropy)
    for i in range(n):
        im = _clone(base)
        for _ in range(int(rng.integers(1, 3))):
            kind = int(rng.integers(10))
            if kind <= 4:  # an entropy table (the weakest part before issue 18)
                k = ent[int(rng.integers(len(ent)))]
                if rng.random() < 0.1:
                    im.entropy.pop(k, None)
                else:
                    im.entropy[k] = _mutate_array(rng, base.entropy[k])
            elif kind == 5:
                im.entropy[["fact.x", "gauss.x", "other", "gauss.cdfs"][int(rng.integers(4))]] = \
                    np.arange(int(rng.integers(0, 6)), dtype=np.int32)
            elif kind <= 8:
                L = im.layers[names[int(rng.integers(len(names)))]]
                f = LAYER_FIELDS[int(rng.integers(len(LAYER_FIELDS)))]
                old = getattr(L, f)
                new = _mutate_array(rng, old)
                if new.shape == old.shape and rng.random() < 0.7:
                    new = new.astype(old.dtype)  # past the dtype check, onto the value checks
                setattr(L, f, new)
            else:
                f = ["mr_mask", "mr_a_q", "mr_b_q"][int(rng.integers(3))]
                setattr(im, f, _mutate_array(rng, getattr(im, f)))
        yield im


def _check_and_run(im, rng, run_codec):
    check_model(im)
    if run_codec:
        px = rng.integers(0, 256, (3, 17, 23), dtype=np.uint8)
        data, _ = compress(im, px)
        out = decompress(im, data)
        assert out.shape == px.shape and out.dtype == np.uint8


def _save_and_load(im, path, rng, run_codec):
    try:
        save_model(im, path)  # recomputes the content hash
    except (ModelFileError, ValueError, TypeError):
        return  # the writer refused it (e.g. an array of a type the format has no name for)
    back = load_model(path)
    if run_codec:
        _check_and_run(back, rng, True)


def _npy_header(a: np.ndarray, shape=None, descr=None, fortran=False) -> bytes:
    d = {"descr": descr or np.lib.format.dtype_to_descr(a.dtype), "fortran_order": fortran,
         "shape": tuple(a.shape if shape is None else shape)}
    b = io.BytesIO()
    np.lib.format.write_array_header_1_0(b, d)
    return b.getvalue() + a.tobytes()


def fxq_member_cases(path, n, seed):
    """Members of a saved .fxq edited and resealed with a recomputed hash."""
    rng = np.random.default_rng(seed)
    with zipfile.ZipFile(path) as z:
        base = {m: z.read(m) for m in z.namelist()}
    arrays = sorted(m for m in base if m.endswith(".npy"))
    for _ in range(n):
        mem = dict(base)
        h = json.loads(mem["header.json"])
        kind = int(rng.integers(6))
        m = arrays[int(rng.integers(len(arrays)))]
        name = m[:-4]
        a = np.load(io.BytesIO(base[m]), allow_pickle=False)
        if kind == 0:  # shape in the .npy header and in header.json together
            shape = [_edge(rng, 0, 2 ** 40) for _ in range(int(rng.integers(0, 4)))]
            mem[m] = _npy_header(a, shape=shape)
            h["arrays"][name]["shape"] = shape
        elif kind == 1:  # dtype in both places
            dt = ["<i8", "|i1", "<u8", "<f8", "|O", "<i4", "|b1", ">i8"][int(rng.integers(8))]
            mem[m] = _npy_header(a, descr=dt)
            h["arrays"][name]["dtype"] = dt
        elif kind == 2:  # architecture fields
            arch = h["architecture"]
            key = ["N", "M", "kind", "name", "layers"][int(rng.integers(5))]
            if key == "layers":
                layer = arch["layers"][int(rng.integers(len(arch["layers"])))]
                f = sorted(layer)[int(rng.integers(len(layer)))]
                layer[f] = [_edge(rng), "x", None, [], "relu", "y_hat"][int(rng.integers(6))]
            else:
                arch[key] = [_edge(rng), "factorized", "hyperprior", None, ""][int(rng.integers(5))]
        elif kind == 3:  # meta fields
            h["meta"][["float_model", "calibration", "weight_scheme", "x"][int(rng.integers(4))]] = \
                [5, "s", None, {"lambda": "abc"}, {"images": 7}, [], {"images": ["a"]}][int(rng.integers(7))]
        elif kind == 4:  # drop / add a member
            if rng.random() < 0.5:
                mem.pop(m)
            else:
                extra = f"entropy/e{int(rng.integers(3))}"
                mem[extra + ".npy"] = _npy_header(np.arange(4, dtype=np.int32))
                h["arrays"][extra] = {"dtype": "<i4", "shape": [4]}
        else:  # a data value
            flat = a.reshape(-1).copy()
            if flat.size and flat.dtype.kind in "iu":
                info = np.iinfo(flat.dtype)
                flat[int(rng.integers(flat.size))] = min(max(_edge(rng), int(info.min)), int(info.max))
            mem[m] = _npy_header(flat.reshape(a.shape))
        _rehash(h, mem)
        mem["header.json"] = json.dumps(h).encode()
        yield mem


def _rehash(h, mem):
    """Recompute content_hash from the members where they parse (as an editor would)."""
    try:
        arch = Architecture.from_dict(h["architecture"])
        arrays = {}
        for name in h["arrays"]:
            f = io.BytesIO(mem[name + ".npy"])
            np.lib.format.read_magic(f)
            shape, fortran, dt = np.lib.format.read_array_header_1_0(f)
            rest = mem[name + ".npy"][f.tell():]
            if dt.hasobject or int(np.prod(shape, dtype=object)) * dt.itemsize != len(rest):
                return
            a = np.frombuffer(rest, dtype=dt).reshape(shape)
            arrays[name] = a.astype(dt.newbyteorder("<"), copy=False)
        h["content_hash"] = _hash_of(arch, arrays)
    except Exception:  # an unparsable edit keeps the old hash
        return


def _write_zip(path, mem):
    with zipfile.ZipFile(path, "w") as z:
        for n, d in mem.items():
            z.writestr(n, d)


def run_fxq(hp, n_mem, n_file, seed, tmp_path):
    rng = np.random.default_rng(seed)
    c = Campaign((ModelError, ModelFileError))
    for i, im in enumerate(fxq_model_cases(hp, n_mem, seed)):
        c.run(_check_and_run, im, rng, i % 20 == 0)
    p = str(tmp_path / "m.fxq")
    for i, im in enumerate(fxq_model_cases(hp, n_file // 2, seed + 1)):
        c.run(_save_and_load, im, p, rng, i % 10 == 0)
    save_model(hp, p)
    q = str(tmp_path / "e.fxq")
    for mem in fxq_member_cases(p, n_file - n_file // 2, seed + 2):
        _write_zip(q, mem)
        c.run(load_model, q)
    return c.counts


# ---- safetensors -------------------------------------------------------------------------

def _st_value(rng):
    return [_edge(rng), -1, 2.5, "x", None, True, [], [_edge(rng)], [_edge(rng), _edge(rng)],
            {"a": 1}, [[1]], 2 ** 64, [2 ** 32, 2 ** 32], [0, 0]][int(rng.integers(14))]


def safetensors_cases(path, n, seed):
    rng = np.random.default_rng(seed)
    data = open(path, "rb").read()
    hl = int.from_bytes(data[:8], "little")
    header = json.loads(data[8:8 + hl])
    body = data[8 + hl:]
    names = sorted(k for k in header if k != "__metadata__")
    for _ in range(n):
        h = copy.deepcopy(header)
        kind = int(rng.integers(6))
        t = h[names[int(rng.integers(len(names)))]]
        if kind == 0:
            t["shape"] = _st_value(rng) if rng.random() < 0.5 else \
                [_edge(rng, -1, 2 ** 40) for _ in range(int(rng.integers(0, 4)))]
        elif kind == 1:
            t["data_offsets"] = _st_value(rng) if rng.random() < 0.5 else \
                [_edge(rng, -1, 2 ** 40), _edge(rng, -1, 2 ** 40)]
        elif kind == 2:
            t["dtype"] = ["F32", "F16", "BF16", "F64", "I64", "U8", "BOOL", "F8", 3, None][int(rng.integers(10))]
        elif kind == 3:
            h["__metadata__"] = [_st_value(rng), {"fxlic.arch": "{"}, {"fxlic.arch": json.dumps(
                {"name": "x", "kind": "hyperprior", "N": _edge(rng), "M": 8, "layers": []})},
                {"fxlic.lambda": "nan?"}][int(rng.integers(4))]
        elif kind == 4:
            h[names[int(rng.integers(len(names)))]] = _st_value(rng)
        else:
            t.pop(["dtype", "shape", "data_offsets"][int(rng.integers(3))])
        hb = json.dumps(h).encode()
        n_len = len(hb) if rng.random() < 0.9 else _edge(rng, 0, 2 ** 64 - 1)
        yield n_len.to_bytes(8, "little") + hb + body


def run_safetensors(n, seed, tmp_path):
    fm = random_float_model(hyperprior5(8), 0)
    p = str(tmp_path / "w.safetensors")
    save_float_model(fm, p)
    q = str(tmp_path / "m.safetensors")
    c = Campaign(WeightsError)
    for data in safetensors_cases(p, n, seed):
        with open(q, "wb") as f:
            f.write(data)
        c.run(load_weights, q)
    return c.counts


# ---- ONNX ----------------------------------------------------------------------------------

def onnx_cases(model, n, seed):
    from onnx import TensorProto
    rng = np.random.default_rng(seed)
    base = model.SerializeToString()
    for _ in range(n):
        m = type(model)()
        m.ParseFromString(base)
        g = m.graph
        kind = int(rng.integers(6))
        t = g.initializer[int(rng.integers(len(g.initializer)))]
        if kind == 0:
            dims = [_edge(rng, -2, 2 ** 40) for _ in range(int(rng.integers(0, 5)))]
            del t.dims[:]
            t.dims.extend(dims)
        elif kind == 1:
            t.data_type = [0, 1, 2, 6, 7, 10, 11, 16, 8, 99][int(rng.integers(10))]
        elif kind == 2:
            t.raw_data = t.raw_data[:int(rng.integers(0, len(t.raw_data) + 1))] + \
                bytes(int(rng.integers(0, 9)))
        elif kind == 3:
            t.data_location = TensorProto.EXTERNAL
            for k, v in (("location", ["w.bin", "../w.bin", "/etc/passwd", "", "m.onnx"][int(rng.integers(5))]),
                         ("offset", str(_edge(rng))), ("length", str(_edge(rng)))):
                if rng.random() < 0.8:
                    e = t.external_data.add()
                    e.key, e.value = k, v
        elif kind == 4:
            node = g.node[int(rng.integers(len(g.node)))]
            if node.attribute and rng.random() < 0.7:
                a = node.attribute[int(rng.integers(len(node.attribute)))]
                if a.ints:
                    a.ints[int(rng.integers(len(a.ints)))] = _edge(rng, -2 ** 63, 2 ** 63 - 1)
                else:
                    a.f = float(rng.normal())
            else:
                node.op_type = ["Conv", "Relu", "Add", "Identity", "Gemm", "Split"][int(rng.integers(6))]
        else:
            p = m.metadata_props.add()
            p.key, p.value = "fxlic.arch", ["{", "[]", json.dumps({"N": _edge(rng)})][int(rng.integers(3))]
        yield m.SerializeToString()


def run_onnx(n, seed, tmp_path):
    onnx = pytest.importorskip("onnx")
    from test_io_formats import make_onnx
    fm = random_float_model(hyperprior5(8), 0)
    p = str(tmp_path / "m.onnx")
    make_onnx(fm.arch, torch_layout_tensors(fm, np.float32), p)
    (tmp_path / "w.bin").write_bytes(bytes(4096))
    c = Campaign(WeightsError)
    for data in onnx_cases(onnx.load(p), n, seed):
        with open(p, "wb") as f:
            f.write(data)
        c.run(load_weights, p)
    return c.counts


# ---- the campaigns -----------------------------------------------------------------------

#: the most a campaign may add to the test process's resident set (a memory blow-up)
CAMPAIGN_RSS_BYTES = 1 << 30


def _rss_kib(field):
    """``VmRSS`` / ``VmHWM`` of this process in KiB (Linux /proc), or None elsewhere."""
    try:
        with open("/proc/self/status") as f:
            return int(re.search(field + r":\s+(\d+)", f.read()).group(1))
    except (OSError, AttributeError):
        return None


def _reset_peak_rss():
    """Start a fresh peak: writing 5 to /proc/self/clear_refs resets VmHWM (proc(5)).

    Without it the peak would be the whole pytest process's (every earlier test,
    torch included), not the campaign's.  Returns False where it is not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return _rss_kib("VmHWM") is not None
    except OSError:
        return False


def _all(hp, stream, sizes, seed, tmp_path):
    t0 = time.perf_counter()
    fresh_peak = _reset_peak_rss()
    before = _rss_kib("VmRSS") if fresh_peak else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    got = {
        "fxl": run_fxl(hp, stream, sizes["fxl"], seed, tmp_path),
        "fxq": run_fxq(hp, sizes["fxq_mem"], sizes["fxq_file"], seed, tmp_path),
        "safetensors": run_safetensors(sizes["safetensors"], seed, tmp_path),
        "onnx": run_onnx(sizes["onnx"], seed, tmp_path),
    }
    peak = _rss_kib("VmHWM") if fresh_peak else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    grew = (peak - before) << 10
    assert grew < CAMPAIGN_RSS_BYTES, f"the campaign raised peak RSS by {grew / 2 ** 30:.2f} GiB"
    for k, v in got.items():  # every campaign reaches both outcomes' side of the checks
        assert v["error"] > 0, (k, v)
    assert sum(v["error"] + v["ok"] for v in got.values()) >= sum(sizes.values())
    return got, time.perf_counter() - t0


def test_fuzz_campaign(hp, stream, tmp_path):
    got, dt = _all(hp, stream, DEFAULT, 18, tmp_path)
    assert got["fxl"]["ok"] > 0 and got["fxq"]["ok"] > 0  # the mutations also keep valid files


@pytest.mark.slow
@pytest.mark.parametrize("part", range(4))
def test_fuzz_campaign_long(hp, stream, tmp_path, part):
    """100,000 cases in four parts of 25,000 (different seeds)."""
    _all(hp, stream, {k: v // 4 for k, v in SLOW.items()}, 1000 + part, tmp_path)


def test_atheris_targets_run_without_atheris():
    """tools/fuzz_atheris.py: every target accepts its seed and mutations of it."""
    from tool_loader import load_tool
    fz = load_tool("fuzz_atheris")
    rng = np.random.default_rng(5)
    for name, target in fz.targets().items():
        s = fz.seed(name)
        target(s)
        for _ in range(10):
            b = bytearray(s or bytes(64))
            for _ in range(3):
                b[int(rng.integers(len(b)))] = int(rng.integers(256))
            target(bytes(b))
