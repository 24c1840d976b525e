"""Issue 18 items 2-6: hostile input files are refused with one line, before
memory is spent: safetensors shapes that wrap int64 (S1), extreme float
weights and NaN calibration (V1, Q1), zip bombs in .fxq files (Z1), ONNX
external data (X1), huge .fxl files (D2)."""
import json
import struct
import tracemalloc
import zipfile
import zlib

import numpy as np
import pytest

from engine_util import one_line_error

from fxlic.bitstream.container import BitstreamError, read_stream
from fxlic.cli import main
from fxlic.io.floatfile import (META_ARCH, WeightsError, load_weights, read_safetensors,
                                torch_layout_tensors, write_safetensors)
from fxlic.io.modelfile import MAX_MODEL_BYTES, ModelFileError, load_model, save_model
from fxlic.model.arch import hyperprior5
from fxlic.model.float_model import random_float_model


@pytest.fixture(scope="module")
def fm():
    return random_float_model(hyperprior5(8), 0)


@pytest.fixture(scope="module")
def cal(tmp_path_factory):
    from fxlic.io.images import write_png
    d = tmp_path_factory.mktemp("cal")
    write_png(str(d / "a.png"), np.random.default_rng(1).integers(0, 256, (3, 64, 64), dtype=np.uint8))
    return str(d)




def _safetensors(path, header: dict, data: bytes = b""):
    h = json.dumps(header).encode()
    with open(path, "wb") as f:
        f.write(len(h).to_bytes(8, "little") + h + data)
    return str(path)


# ---- S1: safetensors shapes -----------------------------------------------------------

@pytest.mark.parametrize("shape,offsets", [([2 ** 32, 2 ** 32], [0, 0]), ([2 ** 62, 4], [0, 0]),
                                           ([0, 2 ** 39], [0, 4]), ([-1, 4], [0, 0]),
                                           ([2.5], [0, 0]), ([True], [0, 4]), ([1] * 9, [0, 4])])
def test_safetensors_wrapping_shapes(tmp_path, capsys, shape, offsets):
    p = _safetensors(tmp_path / "w.safetensors", {"AT0.weight": {"dtype": "F32", "shape": shape,
                                                                   "data_offsets": offsets}}, b"\0" * 4)
    with pytest.raises(WeightsError, match="AT0.weight") as e:
        read_safetensors(p)
    assert "\n" not in str(e.value)
    assert "AT0.weight" in one_line_error(capsys, main(["info", p]), "info")
    one_line_error(capsys, main(["quantize", "--weights", p, "--calib", str(tmp_path), "--out",
                            str(tmp_path / "m.fxq")]), "quantize")
    assert not (tmp_path / "m.fxq").exists()


# ---- V1 / Q1: extreme weights, NaN calibration ----------------------------------------

SCALES = {"x1e30": 1e30, "x1e-30": 1e-30, "max": None, "denormal": 1e-40, "nan": np.nan,
          "inf": np.inf}


@pytest.mark.parametrize("kind", sorted(SCALES))
@pytest.mark.parametrize("target", ["AT1.weight", "HS2.bias"])
def test_extreme_weights_refused_naming_the_tensor(fm, cal, tmp_path, capsys, kind, target):
    T = torch_layout_tensors(fm, np.float32)
    a = T[target].astype(np.float64)
    with np.errstate(all="ignore"):
        if kind == "max":
            a = np.full_like(a, 3e38)
        elif kind == "denormal":
            a = np.full_like(a, SCALES[kind])
        else:
            a = a * SCALES[kind]
        T[target] = a.astype(np.float32)
    p = str(tmp_path / "w.safetensors")
    write_safetensors(p, T, {META_ARCH: fm.arch.to_json()})
    out = str(tmp_path / "m.fxq")
    rc = main(["quantize", "--weights", p, "--calib", cal, "--out", out, "-q"])
    if target.endswith(".bias") and kind in ("x1e-30", "denormal"):
        assert rc == 0  # tiny biases round to 0: harmless
        capsys.readouterr()
        return
    assert target in one_line_error(capsys, rc, "quantize")
    assert not (tmp_path / "m.fxq").exists()
    assert target in one_line_error(capsys, main(["info", p]), "info")


def test_nan_calibration_maxima_are_an_error():
    from fxlic.commands.quantize import check_calibration
    from fxlic.errors import CliError
    from fxlic.model.build import Calibration

    good = Calibration(maxabs={"AT0": np.array([0.0, 1.5])}, x_means=[0.5])
    check_calibration(good)
    for bad, match in (({"AT0": np.array([np.nan, 1.0])}, "AT0 produced NaN"),
                       ({"AT1": np.array([np.inf])}, "AT1 produced NaN"),
                       ({"HS3": np.array([1e-30, 1.0])}, "HS3 outputs reach 1e-30"),
                       ({"HS4": np.array([1e30])}, "HS4 outputs reach 1e\\+30")):
        with pytest.raises(CliError, match=match):
            check_calibration(Calibration(maxabs=bad, x_means=[0.5]))


def test_scaled_weights_overflowing_calibration(fm, cal, tmp_path, capsys):
    """x1e5 is under the V1 limit; the calibration outputs then leave Q1's range."""
    T = {k: v * np.float32(1e5) if k.endswith(".weight") else v
         for k, v in torch_layout_tensors(fm, np.float32).items()}
    p = str(tmp_path / "w.safetensors")
    write_safetensors(p, T, {META_ARCH: fm.arch.to_json()})
    line = one_line_error(capsys, main(["quantize", "--weights", p, "--calib", cal, "--out",
                                   str(tmp_path / "m.fxq"), "-q"]), "quantize")
    assert "calibration: layer" in line


# ---- Z1: zip bombs ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def fxq(tmp_path_factory):
    from engine_util import small_model
    p = str(tmp_path_factory.mktemp("fxq") / "m.fxq")
    save_model(small_model("hyperprior", N=8, seed=3), p)
    return p


def _rezip(src, dst, edit, deflate=(), big=None):
    """Copy src to dst, header.json edited by ``edit``; members in ``deflate``
    deflated; ``big`` = (name, n_bytes): a member of that many zero bytes."""
    with zipfile.ZipFile(src) as z:
        members = {n: z.read(n) for n in z.namelist()}
    h = json.loads(members["header.json"])
    edit(h)
    members["header.json"] = json.dumps(h).encode()
    with zipfile.ZipFile(dst, "w") as z:
        for n, d in members.items():
            z.writestr(n, d, zipfile.ZIP_DEFLATED if n in deflate else zipfile.ZIP_STORED)
        if big:
            zi = zipfile.ZipInfo(big[0])
            zi.compress_type = zipfile.ZIP_DEFLATED
            with z.open(zi, "w", force_zip64=True) as f:
                chunk = bytes(1 << 20)
                for _ in range(big[1] >> 20):
                    f.write(chunk)
    return dst


def test_declared_total_over_the_limit_refused_before_reading(fxq, tmp_path):
    """A header declaring a 300 MiB entropy table (a bomb that inflates to it)."""
    n = (MAX_MODEL_BYTES >> 2) + 1

    def edit(h):
        h["arrays"]["entropy/huge"] = {"dtype": "<i4", "shape": [n]}
    p = _rezip(fxq, str(tmp_path / "b.fxq"), edit, big=("entropy/huge.npy", 1 << 20))
    tracemalloc.start()
    with pytest.raises(ModelFileError, match="arrays total more than"):
        load_model(p)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 64 << 20


def _patch_central_size(path, name: str, size: int):
    """Set a member's uncompressed size in the central directory (a lying zip)."""
    data = bytearray(open(path, "rb").read())
    key = name.encode()
    pos = data.find(b"PK\x01\x02")
    while pos >= 0:
        nlen = struct.unpack_from("<H", data, pos + 28)[0]
        if bytes(data[pos + 46:pos + 46 + nlen]) == key:
            struct.pack_into("<I", data, pos + 24, size)
            break
        pos = data.find(b"PK\x01\x02", pos + 4)
    open(path, "wb").write(bytes(data))


def test_member_larger_than_its_header_entry_refused_before_inflating(fxq, tmp_path):
    p = _rezip(fxq, str(tmp_path / "b.fxq"), lambda h: None, deflate=("layers/AT0/bias.npy",))
    _patch_central_size(p, "layers/AT0/bias.npy", 0xFFFF0000)
    with pytest.raises(ModelFileError, match="declares"):
        load_model(p)
    # a member inflating to more than it declares stops at the declared size (CRC error)
    q = _rezip(fxq, str(tmp_path / "c.fxq"), lambda h: None, deflate=("layers/AT0/bias.npy",))
    _patch_central_size(q, "layers/AT0/bias.npy", 100)
    with pytest.raises(ModelFileError):
        load_model(q)


def test_deflated_model_still_loads(fxq, tmp_path):
    with zipfile.ZipFile(fxq) as z:
        names = z.namelist()
    p = _rezip(fxq, str(tmp_path / "d.fxq"), lambda h: None, deflate=set(names))
    assert load_model(p) is not None


# ---- X1: ONNX external data -------------------------------------------------------------

def _onnx_with_external(tmp_path, fm, loc, size, offset=None, length=None):
    onnx = pytest.importorskip("onnx")
    from test_io_formats import make_onnx
    T = torch_layout_tensors(fm, np.float32)
    p = str(tmp_path / "m.onnx")
    make_onnx(fm.arch, T, p)
    m = onnx.load(p)
    t = [t for t in m.graph.initializer if t.name == "AT1.weight"][0]
    raw = t.raw_data
    t.ClearField("raw_data")
    t.data_location = onnx.TensorProto.EXTERNAL
    kv = {"location": loc}
    if offset is not None:
        kv["offset"] = str(offset)
    if length is not None:
        kv["length"] = str(length)
    for k, v in kv.items():
        e = t.external_data.add()
        e.key, e.value = k, v
    onnx.save(m, p)
    if size is not None:
        with open(tmp_path / "ext.bin", "wb") as f:
            if size == "exact":
                f.write(raw)
            else:
                f.truncate(size)  # sparse: no disk, no memory
    return p, len(raw)


@pytest.mark.parametrize("case", ["3GiB", "3GiB-length", "offset-outside", "escape", "absolute",
                                  "missing", "short"])
def test_onnx_external_data_checked_before_reading(fm, tmp_path, case):
    n = 8 * 8 * 25 * 4
    loc, size, off, length = {
        "3GiB": ("ext.bin", 3 << 30, None, None),
        "3GiB-length": ("ext.bin", 3 << 30, 0, 3 << 30),
        "offset-outside": ("ext.bin", n, 8, n),
        "escape": ("../ext.bin", n, None, None),
        "absolute": ("/etc/passwd", None, None, None),
        "missing": ("nope.bin", None, None, None),
        "short": ("ext.bin", n - 4, None, None),
    }[case]
    p, _ = _onnx_with_external(tmp_path, fm, loc, size, off, length)
    tracemalloc.start()
    with pytest.raises(WeightsError, match="AT1.weight") as e:
        load_weights(p)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 64 << 20 and "\n" not in str(e.value)


def test_onnx_valid_external_data_loads(fm, tmp_path):
    p, n = _onnx_with_external(tmp_path, fm, "ext.bin", "exact", 0, None)
    got = load_weights(p)
    assert np.array_equal(got.weights["AT1"], fm.weights["AT1"].astype(np.float32).astype(np.float64))


# ---- D2: huge .fxl files ----------------------------------------------------------------

def _fxl_prefix(lz: int, ly: int) -> bytes:
    fixed = struct.pack("<4sBB16sHHBBH", b"FXLC", 1, 0, b"\0" * 16, 64, 64, 3, 64, 0)
    return fixed + struct.pack("<II", lz, ly)


def test_huge_fxl_checked_header_first_and_crc_streamed(tmp_path):
    size = 64 << 20
    p = tmp_path / "big.fxl"
    with open(p, "wb") as f:
        f.write(_fxl_prefix(10, 10))
        f.truncate(size)
    with pytest.raises(BitstreamError, match="substream lengths"):
        read_stream(str(p))
    q = tmp_path / "big2.fxl"
    with open(q, "wb") as f:
        f.write(_fxl_prefix(size - 42 - 1000, 1000))
        f.truncate(size)
    tracemalloc.start()
    with pytest.raises(BitstreamError, match="CRC"):
        read_stream(str(q))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 8 << 20  # 1 MiB chunks, never the whole file


def test_read_stream_equals_unpack(tmp_path):
    from fxlic.bitstream.container import Header, pack, unpack
    d = pack(Header("hyperprior", b"\1" * 16, 10, 20, 64, {2: -3}), b"z" * 8, b"y" * 12)
    p = tmp_path / "s.fxl"
    p.write_bytes(d)
    assert read_stream(str(p)) == unpack(d)
    p.write_bytes(d[:-1] + bytes([d[-1] ^ 1]))
    with pytest.raises(BitstreamError, match="CRC"):
        read_stream(str(p))
    body = d[:-4]
    p.write_bytes(body + struct.pack("<I", zlib.crc32(body)) + b"x")
    with pytest.raises(BitstreamError, match="lengths"):
        read_stream(str(p))
