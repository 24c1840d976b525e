"""Test-vector file forms (.npy, .mem, .png), `fxlic vectors` (determinism,
options, errors) and `fxlic verify` (pass, mismatch position, missing,
malformed, scope and layer filters, exit codes).  docs/VECTORS.md."""
import io
import json
import os
import shutil

import numpy as np
import pytest

from engine_util import read_tree, small_model
from fxlic.cli import main
from fxlic.spec import SPEC_VERSION
from fxlic.io.modelfile import save_model
from fxlic.vectors.memfmt import (MemFormatError, mem_bytes, npy_bytes, png_bytes, read_mem)
from fxlic.vectors.verify import FAIL, MALFORMED, MISSING, PASS, SKIPPED, verify
from fxlic.vectors.writer import parse_layers


# ---------------------------------------------------------------------------
# file forms
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("a", [np.arange(-5, 5, dtype=np.int8), np.zeros((3, 7, 5), np.uint8),
                               np.arange(12, dtype="<i2").reshape(3, 4), np.array([1, -1], np.int64),
                               np.zeros((0,), np.int32), np.zeros((16, 128, 128), np.int32)])
def test_npy_bytes_equal_numpy_save(a):
    b = io.BytesIO()
    np.save(b, a)
    assert npy_bytes(a) == b.getvalue()


@pytest.mark.parametrize("dtype,vals,text", [
    ("int8", [-128, -1, 0, 1, 127], b"80\nff\n00\n01\n7f\n"),
    ("uint8", [0, 9, 255], b"00\n09\nff\n"),
    ("int16", [-504, 504], b"fe08\n01f8\n"),
    ("int32", [-2 ** 31, -1, 2 ** 31 - 1], b"80000000\nffffffff\n7fffffff\n"),
    ("int64", [-1, 5], b"ffffffffffffffff\n0000000000000005\n"),
])
def test_mem_layout(dtype, vals, text):
    assert mem_bytes(np.array(vals), dtype) == text
    assert read_mem(text, len(vals), dtype).tolist() == vals


def test_mem_reader_accepts_readmemh_forms_and_refuses_others():
    want = [-128, -1, 0, 1, 127]
    assert read_mem(b"// header\n80 FF\n0 /* one */ 1\n7f", 5, "int8").tolist() == want
    for bad, msg in [(b"1ff\n", "wider"), (b"@0 1\n", "address"), (b"zz\n", "not a hex"),
                     (b"1\n2\n", "more than"), (b"1\n", "1 words, expected 2"), (b"x\n", "not a hex")]:
        n = 2 if b"expected 2" in msg.encode() else 1
        with pytest.raises(MemFormatError, match=msg):
            read_mem(bad, n, "int8")


def test_mem_round_trip_random():
    rng = np.random.default_rng(0)
    for dt, lo, hi in (("int8", -128, 127), ("uint8", 0, 255), ("int32", -2 ** 31, 2 ** 31 - 1),
                       ("int64", -2 ** 63, 2 ** 63 - 1), ("int16", -2 ** 15, 2 ** 15 - 1)):
        a = rng.integers(lo, hi, 1000, endpoint=True)
        assert np.array_equal(read_mem(mem_bytes(a, dt), 1000, dt), a)


def _mem_oracle(a, dtype):
    """$readmemh text digit by digit: (u >> 4 i) & 15 of the two's complement pattern."""
    bits = 8 * np.dtype(dtype).itemsize
    return b"".join(f"{int(v) % (1 << bits):0{bits // 4}x}\n".encode() for v in np.asarray(a).reshape(-1))


@pytest.mark.parametrize("dtype", ["int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64"])
@pytest.mark.parametrize("chunk", [None, 7])
def test_mem_bytes_equals_digit_oracle(dtype, chunk, monkeypatch):
    """Random values and every edge (min, max, 0, +-1, byte boundaries), from
    arrays of other dtypes, byte orders and memory layouts; also in chunks of 7
    elements (the chunk loop's seams)."""
    if chunk:
        import fxlic.vectors.memfmt as memfmt
        monkeypatch.setattr(memfmt, "_MEM_CHUNK", chunk)
    info = np.iinfo(dtype)
    rng = np.random.default_rng(len(dtype))
    edges = [info.min, info.max, 0, 1, 255, 256, 0x7f, 0x80, 0xff00 % (int(info.max) + 1)]
    edges += [-1, -128, -129] if info.min < 0 else []
    vals = [v for v in edges if info.min <= v <= info.max] + \
        rng.integers(info.min, info.max, 500, endpoint=True, dtype=dtype).tolist()
    for a in (np.array(vals, dtype=dtype), np.array(vals, dtype=np.dtype(dtype).newbyteorder(">")),
              np.array(vals, dtype=object).astype(dtype)[::-1], np.zeros(0, dtype)):
        assert mem_bytes(a, dtype) == _mem_oracle(a, dtype)
    two_d = np.array(vals[:500], dtype=dtype).reshape(20, 25).T  # not C-contiguous
    assert mem_bytes(two_d, dtype) == _mem_oracle(two_d, dtype)
    if info.min < 0:
        assert mem_bytes(np.array(vals, dtype=np.int64).clip(info.min, info.max), dtype) == \
            _mem_oracle(np.array(vals, dtype=np.int64).clip(info.min, info.max), dtype)


def test_png_is_lossless_and_independent_of_zlib_level():
    from PIL import Image
    img = np.random.default_rng(1).integers(0, 256, (3, 47, 65), dtype=np.uint8)
    data = png_bytes(img)
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(data))).transpose(2, 0, 1), img)
    assert png_bytes(img) == data
    big = np.random.default_rng(2).integers(0, 256, (3, 200, 150), dtype=np.uint8)  # > 64 KiB
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(png_bytes(big)))).transpose(2, 0, 1), big)


def test_parse_layers():
    names = ["AT0", "AT1", "HS0", "HS1", "ST0"]
    assert parse_layers("all", names) == tuple(names)
    assert parse_layers("none", names) == ()
    assert parse_layers("ST0,AT0", names) == ("AT0", "ST0")
    assert parse_layers("HS*", names) == ("HS0", "HS1")
    with pytest.raises(ValueError, match="XX"):
        parse_layers("XX", names)


# ---------------------------------------------------------------------------
# fxlic vectors
# ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    p = tmp_path_factory.mktemp("m") / "small.fxq"
    save_model(small_model("hyperprior", N=8, seed=3), str(p))
    return str(p)


@pytest.fixture(scope="module")
def image_file(tmp_path_factory):
    from fxlic.io.images import write_png
    p = tmp_path_factory.mktemp("i") / "img.png"
    img = np.random.default_rng(4).integers(0, 256, (3, 47, 65), dtype=np.uint8)
    img[:, 10:30, 10:40] = 200
    write_png(str(p), img)
    return str(p)


@pytest.fixture(scope="module")
def case(tmp_path_factory, model_file, image_file):
    out = str(tmp_path_factory.mktemp("c") / "case")
    assert main(["vectors", "--model", model_file, "--image", image_file, "--out", out, "-q"]) == 0
    return out


def test_vectors_deterministic_and_manifest_complete(case, model_file, image_file, tmp_path):
    out2 = str(tmp_path / "again")
    assert main(["vectors", "--model", model_file, "--image", image_file, "--out", out2, "-q"]) == 0
    a, b = read_tree(case), read_tree(out2)
    assert a == b  # byte-identical directories
    m = json.loads(a["manifest.json"])
    assert m["spec_version"] == SPEC_VERSION and m["model"]["hash"].startswith("sha256:")
    import hashlib
    assert set(m["files"]) == {k for k in a if k != "manifest.json" and not k.startswith("model/")}
    for rel, info in m["files"].items():
        assert hashlib.sha256(a[rel]).hexdigest() == info["sha256"]
    mm = json.loads(a["model/manifest.json"])
    assert set(mm["files"]) == {k[6:] for k in a if k.startswith("model/") and k != "model/manifest.json"}
    # every layer has in / acc / out / dec_table, npy and mem, with consistent shapes
    for L in m["layers"]:
        for t in ("in", "acc", "out", "dec_table"):
            e = m["tensors"][f"layers/{L['name']}/{t}"]
            assert e["files"] == [f"layers/{L['name']}/{t}.npy", f"layers/{L['name']}/{t}.mem"]
            arr = np.load(io.BytesIO(a[e["files"][0]]))
            assert list(arr.shape) == e["shape"] and arr.dtype.name == e["dtype"]
            assert len(a[e["files"][1]]) == arr.size * (e["mem"]["hex_digits"] + 1)
        assert m["tensors"][f"layers/{L['name']}/out"]["shape"] == L["out_shape"]
    assert m["tensors"]["layers/AT0/acc"]["dtype"] == "int32"
    assert m["tensors"]["layers/AT0/out"]["dtype"] == "uint8"
    assert m["tensors"]["layers/HS0/out"]["dtype"] == "int8"


def test_vectors_tensors_match_the_codec(case, model_file, image_file):
    """The case's integers are the codec's: stream, reconstruction, y."""
    from fxlic.codec import compress, decompress
    from fxlic.io.images import read_image
    from fxlic.io.modelfile import load_model
    model = load_model(model_file)
    img = read_image(image_file)
    data, _ = compress(model, img)
    with open(os.path.join(case, "stream.fxl"), "rb") as f:
        assert f.read() == data
    assert np.array_equal(np.load(os.path.join(case, "recon.npy")), decompress(model, data))
    x = np.load(os.path.join(case, "x.npy"))
    assert x.shape == (3, 64, 128) and np.array_equal(x[:, :47, :65], img)
    # layer chaining: a layer's input is its source's output
    assert np.array_equal(np.load(os.path.join(case, "layers/AT1/in.npy")),
                          np.load(os.path.join(case, "layers/AT0/out.npy")))
    assert np.array_equal(np.load(os.path.join(case, "layers/ST0/in.npy")), np.load(os.path.join(case, "y.npy")))


def test_vectors_options(model_file, image_file, tmp_path):
    out = str(tmp_path / "c")
    assert main(["vectors", "--model", model_file, "--image", image_file, "--out", out, "-q",
                 "--layers", "HS*,ST3", "--mem", "none", "--no-acc", "--no-inputs", "--no-dec-tables"]) == 0
    m = json.load(open(os.path.join(out, "manifest.json")))
    dumped = sorted({t.split("/")[1] for t in m["tensors"] if t.startswith("layers/")})
    assert dumped == ["HS0", "HS1", "HS2", "HS3", "HS4", "HS5", "ST3"]
    assert not [f for f in m["files"] if f.endswith(".mem")]
    assert "layers/HS1/acc" not in m["tensors"]
    assert m["tensors"]["layers/HS1/in"]["same_as"] == "layers/HS0/out"
    assert m["tensors"]["layers/HS0/in"]["same_as"] == "z"
    assert m["tensors"]["layers/ST3/in"]["files"] == ["layers/ST3/in.npy"]  # producer not dumped


def test_vectors_errors(model_file, image_file, tmp_path, capsys):
    nonempty = tmp_path / "full"
    nonempty.mkdir()
    (nonempty / "x").write_text("x")
    assert main(["vectors", "--model", model_file, "--image", image_file, "--out", str(nonempty)]) == 1
    assert "not an empty directory" in capsys.readouterr().err
    assert main(["vectors", "--model", model_file, "--image", image_file, "--out", str(tmp_path / "o"),
                 "--layers", "AT9"]) == 1
    assert "AT9" in capsys.readouterr().err
    assert main(["vectors", "--model", model_file, "--image", str(tmp_path / "nope.png"),
                 "--out", str(tmp_path / "o")]) == 1
    assert main(["vectors", "--model", model_file, "--image", image_file, "--out", str(tmp_path / "o"),
                 "--mem", "bogus"]) == 1
    assert not (tmp_path / "o").exists()
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".fxlic-vectors-")]


# ---------------------------------------------------------------------------
# fxlic verify
# ---------------------------------------------------------------------------

def _dumps_from(case, tmp_path, names, fmt="npy"):
    """A port's dumps made from the golden files (the given tensors, .npy or .mem)."""
    d = tmp_path / "dumps"
    for n in names:
        src = os.path.join(case, n + "." + fmt)
        dst = d / (n + "." + fmt)
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(src, dst)
    return str(d)


def _decoder_outs(case):
    m = json.load(open(os.path.join(case, "manifest.json")))
    return [f"layers/{l['name']}/out" for l in m["layers"] if "decoder" in l["stages"]]


def test_verify_pass_and_exit_code(case, tmp_path, capsys):
    d = _dumps_from(case, tmp_path, _decoder_outs(case), "mem")
    assert main(["verify", "--vectors", case, "--dumps", d, "--scope", "decoder"]) == 0
    out = capsys.readouterr().out
    assert "PASS      HS0" in out and "PASS      ST3" in out and "VERIFY PASSED" in out
    # the golden case against itself, everything, strict
    assert main(["verify", "--vectors", case, "--dumps", case, "--strict"]) == 0


def test_verify_reports_first_mismatch(case, tmp_path, capsys):
    d = _dumps_from(case, tmp_path, _decoder_outs(case))
    p = os.path.join(d, "layers/ST1/out.npy")
    a = np.load(p)
    a[2, 5, 7] += 1
    a[3, 0, 0] += 1
    np.save(p, a.astype(np.int64))  # any integer dtype is accepted
    res, _ = verify(case, d, "decoder")
    bad = [r for r in res if r.status == FAIL]
    assert len(bad) == 1 and bad[0].name == "layers/ST1/out" and bad[0].mismatches == 2
    assert "channel=2 y=5 x=7" in bad[0].message
    assert main(["verify", "--vectors", case, "--dumps", d, "--scope", "decoder"]) == 1
    out = capsys.readouterr().out
    assert "FAIL      ST1" in out and "2 of" in out and "VERIFY FAILED" in out


def test_verify_missing_malformed_and_filters(case, tmp_path, capsys):
    names = _decoder_outs(case)
    d = _dumps_from(case, tmp_path, [n for n in names if "HS2" not in n], "mem")
    with open(os.path.join(d, "layers/HS3/out.mem"), "ab") as f:
        f.write(b"zz\n")
    os.remove(os.path.join(d, "layers/ST0/out.mem"))
    np.save(os.path.join(d, "layers/ST0/out.npy"), np.zeros((1, 2), np.int8))  # wrong shape
    res, _ = verify(case, d, "decoder")
    st = {r.name: r.status for r in res}
    assert st["layers/HS2/out"] == MISSING
    assert st["layers/HS3/out"] == MALFORMED
    assert st["layers/ST0/out"] == MALFORMED
    assert st["layers/HS0/out"] == PASS
    assert st["layers/HS0/acc"] == SKIPPED  # optional and not dumped
    assert not any(n.startswith("layers/AT") for n in st)  # encoder layers not in the decoder scope
    # --layers restricts the comparison
    assert main(["verify", "--vectors", case, "--dumps", d, "--layers", "HS0,HS1"]) == 0
    assert main(["verify", "--vectors", case, "--dumps", d, "--layers", "HS0,XX9"]) == 1
    assert "XX9" in capsys.readouterr().err
    # strict: optional tensors become required
    assert main(["verify", "--vectors", case, "--dumps", d, "--scope", "decoder", "--layers", "HS0",
                 "--strict"]) == 1
    assert main(["verify", "--vectors", str(tmp_path), "--dumps", d]) == 1
    assert "no manifest.json" in capsys.readouterr().err


def test_verify_detects_corrupt_golden(case, tmp_path, capsys):
    g = str(tmp_path / "golden")
    shutil.copytree(case, g)
    p = os.path.join(g, "layers/HS0/out.npy")
    a = np.load(p)
    a.flat[0] ^= 1
    np.save(p, a)
    d = _dumps_from(case, tmp_path, _decoder_outs(case))
    assert main(["verify", "--vectors", g, "--dumps", d, "--scope", "decoder"]) == 1
    assert "sha256" in capsys.readouterr().err
