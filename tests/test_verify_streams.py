"""`fxlic verify` on the encoder's byte files and on the golden side's integrity
(issue 17, docs/VECTORS.md 5): stream.fxl and the rANS substreams compared
byte for byte with the first differing offset and, for a substream, the
(channel, y, x) of the first symbol that decodes differently; every golden
file checked against its sha256 (a tampered stream.fxl or an edited case.txt
ends with exit status 1)."""
import json
import os
import shutil

import numpy as np
import pytest

from engine_util import small_model, vectors_case
from fxlic.cli import main
from fxlic.vectors.verify import FAIL, MISSING, PASS, SKIPPED, verify

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VEC = os.path.join(REPO, "vectors")


@pytest.fixture(scope="module")
def model():
    return small_model("hyperprior", N=8, seed=3)


@pytest.fixture(scope="module")
def case(tmp_path_factory, model):
    return vectors_case(tmp_path_factory.mktemp("vs"), model, (3, 47, 65), 7, "--mem", "none", "--no-dec-tables",
                        box=(5, 25, 10, 50))


@pytest.fixture(scope="module")
def fact_case(tmp_path_factory):
    return vectors_case(tmp_path_factory.mktemp("vf"), small_model("factorized", N=8, seed=4), (3, 32, 48), 8,
                        "--mem", "none", "--layers", "none")


def _copy_dumps(case, tmp_path, rels):
    d = tmp_path / "dumps"
    for rel in rels:
        (d / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(os.path.join(case, rel), d / rel)
    return str(d)


def _read(p):
    with open(p, "rb") as f:
        return f.read()


def _write(p, data):
    with open(p, "wb") as f:
        f.write(data)


def _by_name(results):
    return {r.name: r for r in results}


def _tables(model):
    from fxlic.io.modelcheck import checked_tables
    t = checked_tables(model)
    return t.fact, t.gauss


def _reencode_y(case, model, changes):
    """The y substream with y symbols changed at (c, y, x) -> new value, coded
    with the model's tables and the golden table indexes: the first differing
    symbol is known exactly."""
    from fxlic.entropy import rans_numba as R
    sym = np.load(os.path.join(case, "entropy/y_sym.npy")).astype(np.int64)
    idx = np.load(os.path.join(case, "entropy/y_idx.npy")).astype(np.int32)
    for (c, y, x), v in changes.items():
        sym[c, y, x] = v
    _, gauss = _tables(model)
    return R.encode_with_indexes(sym.reshape(-1), idx.reshape(-1), gauss.cdfs, gauss.cdf_sizes, gauss.offsets)


def test_golden_against_itself_compares_the_byte_files(case, tmp_path, capsys):
    d = _copy_dumps(case, tmp_path, ["stream.fxl", "entropy/z.rans", "entropy/y.rans", "layers/AT0/out.npy"])
    res, _ = verify(case, d, "encoder")
    r = _by_name(res)
    for n in ("stream.fxl", "entropy/z.rans", "entropy/y.rans"):
        assert r[n].status == PASS and r[n].kind == "bytes" and r[n].elements == os.path.getsize(
            os.path.join(case, n))
    # the decoder scope does not produce them
    res, _ = verify(case, d, "decoder")
    assert "stream.fxl" not in _by_name(res)
    # optional unless --strict; --layers leaves them out
    res, _ = verify(case, str(tmp_path), "encoder")
    assert _by_name(res)["stream.fxl"].status == SKIPPED
    res, _ = verify(case, str(tmp_path), "encoder", strict=True)
    assert _by_name(res)["stream.fxl"].status == MISSING
    res, _ = verify(case, d, "encoder", layers=["AT0"])
    assert set(_by_name(res)) == {"layers/AT0/out", "layers/AT0/in", "layers/AT0/acc"}
    assert main(["verify", "--vectors", case, "--dumps", case, "--scope", "encoder", "--strict"]) == 0
    out = capsys.readouterr().out
    assert "PASS      stream   stream.fxl (" in out and " y.rans " in out and " z.rans " in out


def test_flipped_byte_in_y_rans_gives_offset_and_symbol(case, model, tmp_path, capsys):
    golden = _read(os.path.join(case, "entropy/y.rans"))
    y_sym = np.load(os.path.join(case, "entropy/y_sym.npy"))
    C, H, W = y_sym.shape
    c, yy, xx = 5, 1, 2
    bad = _reencode_y(case, model, {(c, yy, xx): int(y_sym[c, yy, xx]) + 3})
    assert bad != golden
    d = _copy_dumps(case, tmp_path, ["entropy/y.rans"])
    _write(os.path.join(d, "entropy/y.rans"), bad)
    res, _ = verify(case, d, "encoder")
    r = _by_name(res)["entropy/y.rans"]
    assert r.status == FAIL
    n = min(len(bad), len(golden))
    first = next((i for i in range(n) if bad[i] != golden[i]), n)
    assert r.first_offset == first
    s = r.symbol
    assert s["index"] == [c, yy, xx] and s["symbol"] == (c * H + yy) * W + xx and s["of"] == C * H * W
    assert s["expected"] == int(y_sym[c, yy, xx]) and s["got"] == int(y_sym[c, yy, xx]) + 3
    assert main(["verify", "--vectors", case, "--dumps", d, "--scope", "encoder"]) == 1
    out = capsys.readouterr().out
    assert f"first at byte offset {first}" in out or f"first difference at byte offset {first}" in out
    assert f"first symbol that decodes differently: #{s['symbol']} of {C * H * W} at channel={c} y={yy} x={xx}" \
        in out
    assert "VERIFY FAILED" in out


def test_plain_byte_flip_in_y_and_z_rans(case, tmp_path):
    d = _copy_dumps(case, tmp_path, ["entropy/y.rans", "entropy/z.rans"])
    for rel, off in (("entropy/y.rans", 9), ("entropy/z.rans", 1)):
        data = bytearray(_read(os.path.join(case, rel)))
        data[off] ^= 0x40
        _write(os.path.join(d, rel), bytes(data))
    r = _by_name(verify(case, d, "encoder")[0])
    y, z = r["entropy/y.rans"], r["entropy/z.rans"]
    assert y.status == FAIL and y.first_offset == 9 and y.mismatches == 1 and "32-bit word 2" in y.region
    assert z.status == FAIL and z.first_offset == 1 and "initial state" in z.region
    # a changed initial state changes the first symbols or makes the stream undecodable
    for res in (y, z):
        assert res.symbol is not None and res.symbol["symbol"] is not None
        assert "substream" in res.message


def test_truncated_and_extended_substream(case, tmp_path):
    g = _read(os.path.join(case, "entropy/y.rans"))
    d = _copy_dumps(case, tmp_path, ["entropy/y.rans"])
    _write(os.path.join(d, "entropy/y.rans"), g[:-4])
    r = _by_name(verify(case, d, "encoder")[0])["entropy/y.rans"]
    assert r.status == FAIL and r.first_offset == len(g) - 4
    assert f"{len(g) - 4} bytes, expected {len(g)}" in r.message
    assert r.symbol["symbol"] is not None  # decoding runs out of words (or decodes differently)
    _write(os.path.join(d, "entropy/y.rans"), g + b"\0\0\0\0")
    r = _by_name(verify(case, d, "encoder")[0])["entropy/y.rans"]
    assert r.status == FAIL and r.first_offset == len(g) and r.mismatches == 4
    assert r.symbol["symbol"] is None and "all" in r.message and "end-of-stream check fails" in r.message


def test_stream_fxl_offset_field_and_substream_symbol(case, model, tmp_path, capsys):
    from fxlic.bitstream.container import pack, unpack
    golden = _read(os.path.join(case, "stream.fxl"))
    hdr, zs, ys = unpack(golden)
    y_sym = np.load(os.path.join(case, "entropy/y_sym.npy"))
    c, yy, xx = 2, 0, 3
    bad = pack(hdr, zs, _reencode_y(case, model, {(c, yy, xx): int(y_sym[c, yy, xx]) - 1}))
    d = _copy_dumps(case, tmp_path, ["stream.fxl"])
    _write(os.path.join(d, "stream.fxl"), bad)
    r = _by_name(verify(case, d, "encoder")[0])["stream.fxl"]
    assert r.status == FAIL and r.group == "stream"
    ystart = len(golden) - 4 - len(ys)
    if r.first_offset < ystart:  # the new y substream has another length
        assert r.region == "header: y substream length" and "bytes, expected" in r.message
    else:
        assert r.region == f"y substream byte {r.first_offset - ystart}"
    assert r.symbol["substream"] == "y" and r.symbol["index"] == [c, yy, xx]
    assert not any("CRC" in x for x in r.details)  # a well-formed stream with another symbol
    # a header field, and a bad CRC
    data = bytearray(golden)
    data[23] ^= 1  # image height (high byte)
    _write(os.path.join(d, "stream.fxl"), bytes(data))
    r = _by_name(verify(case, d, "encoder")[0])["stream.fxl"]
    assert r.first_offset == 23 and r.region == "header: image height"
    assert any("CRC-32" in x for x in r.details)
    data = bytearray(golden)
    data[-1] ^= 1
    _write(os.path.join(d, "stream.fxl"), bytes(data))
    r = _by_name(verify(case, d, "encoder")[0])["stream.fxl"]
    assert r.first_offset == len(golden) - 1 and r.region == "the CRC-32"
    assert main(["verify", "--vectors", case, "--dumps", d, "--scope", "encoder"]) == 1
    assert "FAIL      stream   stream.fxl: 1 of" in capsys.readouterr().out


def test_factorized_case_y_substream(fact_case, tmp_path):
    m = json.load(open(os.path.join(fact_case, "manifest.json")))
    assert "entropy/z.rans" not in m["files"]
    g = bytearray(_read(os.path.join(fact_case, "entropy/y.rans")))
    g[len(g) // 2] ^= 0x08
    d = _copy_dumps(fact_case, tmp_path, ["entropy/y.rans"])
    _write(os.path.join(d, "entropy/y.rans"), bytes(g))
    r = _by_name(verify(fact_case, d, "all")[0])
    assert "entropy/z.rans" not in r
    y = r["entropy/y.rans"]
    assert y.status == FAIL and y.symbol is not None and len(y.symbol["index"]) == 3


def test_committed_suite_stream_check(tmp_path):
    """The committed cases (read-only): a flipped byte in y.rans and in
    stream.fxl is reported (the issue's reproduction), with the zoo model's
    tables for a case without a model directory."""
    for case in ("cases/rand16/img64", "cases/hp5-mse-q0/img64"):
        cdir = os.path.join(VEC, case)
        if not os.path.isdir(cdir):
            pytest.skip(f"{case} not in the committed suite")
        d = tmp_path / case.replace("/", "_")
        for rel, off in (("entropy/y.rans", 40), ("stream.fxl", 45)):
            data = bytearray(_read(os.path.join(cdir, rel)))
            data[off] ^= 0x01
            (d / rel).parent.mkdir(parents=True, exist_ok=True)
            _write(str(d / rel), bytes(data))
        r = _by_name(verify(cdir, str(d), "encoder")[0])
        assert r["entropy/y.rans"].status == FAIL and r["entropy/y.rans"].first_offset == 40
        assert r["stream.fxl"].status == FAIL and r["stream.fxl"].first_offset == 45
        sub = r["stream.fxl"].region.split()[0]  # byte 45: the z substream of both cases
        assert sub in ("z", "y")
        if r["entropy/y.rans"].symbol is None:  # the shipped model changed since the suite was made
            assert not case.startswith("cases/rand16")
            assert any("symbols not decoded" in x for x in r["entropy/y.rans"].details)
            continue
        assert r["entropy/y.rans"].symbol["substream"] == "y"
        assert r["stream.fxl"].symbol["substream"] == sub


# ---------------------------------------------------------------------------
# integrity of the golden side
# ---------------------------------------------------------------------------

def _golden_copy(case, tmp_path):
    g = str(tmp_path / "golden")
    shutil.copytree(case, g)
    return g


def test_tampered_golden_stream_and_edited_case_txt_fail(case, tmp_path, capsys):
    d = case  # the untouched case as the port's dumps
    g = _golden_copy(case, tmp_path)
    assert main(["verify", "--vectors", g, "--dumps", d, "--scope", "decoder"]) == 0
    capsys.readouterr()
    data = bytearray(_read(os.path.join(g, "stream.fxl")))
    data[40] ^= 1
    _write(os.path.join(g, "stream.fxl"), bytes(data))
    assert main(["verify", "--vectors", g, "--dumps", d, "--scope", "decoder"]) == 1
    err = capsys.readouterr().err
    assert "stream.fxl" in err and "sha256" in err and len(err.strip().splitlines()) == 1
    shutil.rmtree(g)
    g = _golden_copy(case, tmp_path)
    with open(os.path.join(g, "case.txt"), "a") as f:
        f.write("# edited\n")
    assert main(["verify", "--vectors", g, "--dumps", d]) == 1
    err = capsys.readouterr().err
    assert "case.txt" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("how", ["missing_file", "unlisted_read", "bad_json", "bad_shape", "npy_shape",
                                 "not_dict", "model_tables"])
def test_unusable_golden_directory(case, tmp_path, capsys, how):
    g = _golden_copy(case, tmp_path)
    d = str(tmp_path / "dumps")
    shutil.copytree(case, d)
    mpath = os.path.join(g, "manifest.json")
    m = json.load(open(mpath))
    if how == "missing_file":
        os.remove(os.path.join(g, "recon.png"))
        want = "recon.png"
    elif how == "unlisted_read":
        del m["files"]["layers/ST3/out.npy"]
        json.dump(m, open(mpath, "w"))
        want = "ST3/out.npy"
    elif how == "bad_json":
        open(mpath, "w").write("{not json")
        want = "malformed manifest"
    elif how == "bad_shape":
        m["tensors"]["layers/ST3/out"]["shape"] = [3, "x"]
        json.dump(m, open(mpath, "w"))
        want = "shape"
    elif how == "npy_shape":
        m["tensors"]["layers/ST3/out"]["shape"] = [3, 1, 2]
        json.dump(m, open(mpath, "w"))
        want = "ST3/out.npy"
    elif how == "not_dict":
        open(mpath, "w").write("[1, 2]")
        want = "malformed manifest"
    else:  # a model table the rANS comparison reads
        p = os.path.join(g, "model/entropy/gauss.cdf_sizes.npy")
        a = np.load(p)
        a[0] += 1
        np.save(p, a)
        data = bytearray(_read(os.path.join(d, "stream.fxl")))
        data[-8] ^= 1
        _write(os.path.join(d, "stream.fxl"), bytes(data))
        want = "gauss.cdf_sizes.npy"
    rc = main(["verify", "--vectors", g, "--dumps", d, "--scope", "all"])
    err = capsys.readouterr().err
    assert rc == 1 and want in err and len(err.strip().splitlines()) == 1, err


def test_bad_arguments_are_one_line_errors(case, tmp_path, capsys):
    for argv, want in ((["--vectors", str(tmp_path / "nope"), "--dumps", str(tmp_path)], "no such directory"),
                       (["--vectors", case, "--dumps", str(tmp_path / "nope")], "no such dumps directory"),
                       (["--vectors", VEC, "--dumps", str(tmp_path)], "suite directory"),
                       (["--vectors", case, "--dumps", str(tmp_path), "--max-mismatches", "-1"], ">= 0")):
        assert main(["verify", *argv]) == 1
        err = capsys.readouterr().err
        assert want in err and len(err.strip().splitlines()) == 1, err
