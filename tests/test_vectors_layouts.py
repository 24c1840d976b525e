"""The files hardware flows read (issue 17, docs/VECTORS.md 1 "Layouts for
hardware flows"): channels-last order (--layout hwc), packed $readmemh words
(--mem-pack P), raw little-endian .bin (--bin) and hls4ml-style C headers
(--c-headers); recorded in the manifest, sized exactly, checked by --check,
and read by the C port (.bin weights, C headers) and by the Verilog bench
(packed words)."""
import json
import os
import re
import shutil
import subprocess

import numpy as np
import pytest

from c_port_util import CFLAGS, build_port
from engine_util import small_model
from fxlic.cli import main
from fxlic.vectors.layouts import (CHeader, bin_size, packed_mem_bytes, packed_size, read_packed_mem)
from fxlic.vectors.memfmt import DTYPES, mem_bytes, read_npy
from fxlic.vectors.writer import Options, plan_case, write_case

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VEC = os.path.join(REPO, "vectors")
MODEL = os.path.join(VEC, "models", "rand16", "model.fxq")
IMAGE = os.path.join(VEC, "images", "img64.png")
HDL = os.path.join(REPO, "tools", "hdl")
ESTIMATED = ("stream.fxl", "entropy/z.rans", "entropy/y.rans", "manifest.json", "model/manifest.json")
NEW_KEYS = ("file_axes", "file_shape", "mem_pack", "bin", "c_header")

needs_gcc = pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc is not installed")
needs_iverilog = pytest.mark.skipif(
    shutil.which("iverilog") is None or shutil.which("vvp") is None,
    reason="Icarus Verilog is not installed (apt-get install -y iverilog); the HDL check is skipped")
needs_suite = pytest.mark.skipif(not os.path.exists(MODEL), reason="no committed vectors/models/rand16")


def _write(root, *opts):
    assert main(["vectors", "--model", MODEL, "--image", IMAGE, "--out", root, "-q", *opts]) == 0
    return root


@pytest.fixture(scope="module")
def hwc_case(tmp_path_factory):
    """rand16 on img64 with every hardware file, channels last."""
    return _write(str(tmp_path_factory.mktemp("hw") / "hwc"), "--layout", "hwc", "--mem-pack", "4,16",
                  "--bin", "--c-headers")


@pytest.fixture(scope="module")
def chw_case(tmp_path_factory):
    return _write(str(tmp_path_factory.mktemp("hw") / "chw"), "--mem-pack", "4,16", "--bin", "--c-headers")


def _man(root):
    return json.load(open(os.path.join(root, "manifest.json")))


def _file_order(a, entry):
    """The .npy array in the order of the entry's hardware files."""
    if "file_axes" not in entry:
        return a
    return a.transpose([entry["axes"].index(x) for x in entry["file_axes"]])


# ---------------------------------------------------------------------------
# the forms themselves
# ---------------------------------------------------------------------------

def test_packed_word_worked_example_of_the_docs():
    """docs/VECTORS.md: element 0 in the least significant bits, last word padded."""
    a = np.array([1, -2, 3, -4, 5, 127, -128, 0, 16, 17, 18, 19, 20, 21, 22, 23], np.int8)
    word = packed_mem_bytes(a, "int8", 16)
    assert word == b"171615141312111000807f05fc03fe01\n"
    assert a.tobytes().hex() == "01fe03fc057f80001011121314151617"
    # a packed word is the little-endian reading of P consecutive .bin elements
    assert int(word, 16) == int.from_bytes(a.tobytes(), "little")
    b = np.array([7, -1, 65536, -2 ** 31, 9], np.int32)
    assert packed_mem_bytes(b, "int32", 4) == (b"8000000000010000ffffffff00000007\n"
                                               b"00000000000000000000000000000009\n")
    doc = open(os.path.join(REPO, "docs", "VECTORS.md")).read()
    for text in ("171615141312111000807f05fc03fe01", "8000000000010000ffffffff00000007",
                 "00000000000000000000000000000009", "01 fe 03 fc 05 7f 80 00"):
        assert text in doc


@pytest.mark.parametrize("dtype", sorted(DTYPES))
@pytest.mark.parametrize("n,P", [(1, 2), (7, 4), (16, 16), (33, 16), (5, 3), (0, 4)])
def test_packed_roundtrip_and_padding(dtype, n, P):
    info = np.iinfo(DTYPES[dtype])
    rng = np.random.default_rng(n * 31 + P)
    a = rng.integers(int(info.min), int(info.max), n, dtype=DTYPES[dtype], endpoint=True)
    if n >= 2:
        a[0], a[1] = info.min, info.max
    data = packed_mem_bytes(a, dtype, P)
    assert len(data) == packed_size((n,), dtype, P)
    assert np.array_equal(read_packed_mem(data, n, dtype, P), a)
    digits = 2 * DTYPES[dtype].itemsize
    lines = data.decode().splitlines()
    assert len(lines) == -(-n // P) and all(len(l) == P * digits for l in lines)
    # each word, as an integer, is slot k at bits [k*W, (k+1)*W); unused slots are 0
    flat = list(a.view(f"<u{DTYPES[dtype].itemsize}").tolist()) + [0] * (len(lines) * P - n)
    for w, line in enumerate(lines):
        assert int(line, 16) == sum(flat[w * P + k] << (8 * DTYPES[dtype].itemsize * k) for k in range(P))
    # and the slots are the .mem lines, right to left
    one = mem_bytes(a, dtype).decode().split()
    assert [line[(P - 1 - k) * digits:(P - k) * digits] for line in lines for k in range(P)][:n] == one
    with pytest.raises(ValueError):
        read_packed_mem(data + b"0", n, dtype, P)


def test_read_packed_refuses_a_non_zero_pad_slot():
    data = bytearray(packed_mem_bytes(np.arange(5, dtype=np.int8), "int8", 4))
    data[0:2] = b"01"  # the most significant slot of the last word... of the first line
    assert read_packed_mem(bytes(data), 5, "int8", 4)[3] == 1
    last = bytearray(packed_mem_bytes(np.arange(5, dtype=np.int8), "int8", 4))
    last[9:11] = b"ff"  # slot 3 of word 1: padding
    with pytest.raises(ValueError, match="pad slot"):
        read_packed_mem(bytes(last), 5, "int8", 4)


def test_default_options_write_no_new_file_or_key(tmp_path):
    m = small_model("hyperprior", N=8, seed=6)
    img = np.random.default_rng(1).integers(0, 256, (3, 40, 50), dtype=np.uint8)
    write_case(m, img, str(tmp_path / "a"), Options())
    write_case(m, img, str(tmp_path / "b"), Options(layout="chw", mem_pack=(), bin=False, c_headers=False))
    for d in ("", "model"):
        ma = open(tmp_path / "a" / d / "manifest.json", "rb").read()
        assert ma == open(tmp_path / "b" / d / "manifest.json", "rb").read()
        man = json.loads(ma)
        assert not any(k in man["options"] for k in ("layout", "mem_pack", "bin", "c_headers"))
        assert not any(k in e for e in man["tensors"].values() for k in NEW_KEYS)
        assert not any(re.search(r"\.(bin|h)$|\.p\d+\.mem$", f) for f in man["files"])


# ---------------------------------------------------------------------------
# a written case: manifest, order, sizes, --check
# ---------------------------------------------------------------------------

@needs_suite
def test_manifest_records_the_options(hwc_case, chw_case):
    for root, lay in ((hwc_case, "hwc"), (chw_case, None)):
        for man in (_man(root), _man(os.path.join(root, "model"))):
            o = man["options"]
            assert o.get("layout") == lay and o["mem_pack"] == [4, 16] and o["bin"] is True
            assert o["c_headers"] is True
    e = _man(hwc_case)["tensors"]["layers/AT1/acc"]
    assert e["file_axes"] == ["H", "W", "C"] and e["file_shape"] == [16, 16, 16]
    assert e["files"] == ["layers/AT1/acc.npy", "layers/AT1/acc.mem", "layers/AT1/acc.p4.mem",
                          "layers/AT1/acc.p16.mem", "layers/AT1/acc.bin"]
    assert [p["word_bits"] for p in e["mem_pack"]] == [128, 512]
    assert e["bin"] == {"file": "layers/AT1/acc.bin", "byteorder": "little", "itemsize": 4, "signed": True}
    w = _man(os.path.join(hwc_case, "model"))["tensors"]["layers/HS0/w_codes"]
    assert w["file_axes"] == ["O", "KY", "KX", "C"]
    assert w["c_header"] == {"file": "weights/HS0.h", "symbol": "HS0_w_codes", "size": 6400}
    assert "file_axes" not in _man(chw_case)["tensors"]["layers/AT1/acc"]


@needs_suite
@pytest.mark.parametrize("which", ["hwc", "chw"])
def test_every_hardware_file_holds_the_npy_values(hwc_case, chw_case, which):
    """.mem, every .pP.mem and .bin of every tensor equal the .npy in the file order."""
    root0 = hwc_case if which == "hwc" else chw_case
    n = 0
    for root in (root0, os.path.join(root0, "model")):
        man = _man(root)
        for name, e in man["tensors"].items():
            if "same_as" in e:
                continue
            a = read_npy(open(os.path.join(root, name + ".npy"), "rb").read())
            want = np.ascontiguousarray(_file_order(a, e)).reshape(-1)
            dt = DTYPES[e["dtype"]]
            got = np.frombuffer(open(os.path.join(root, name + ".bin"), "rb").read(), dt)
            assert np.array_equal(got, want), name
            if "mem" in e:
                assert open(os.path.join(root, name + ".mem"), "rb").read() == mem_bytes(want, e["dtype"])
                for p in e["mem_pack"]:
                    data = open(os.path.join(root, p["file"]), "rb").read()
                    assert np.array_equal(read_packed_mem(data, want.size, e["dtype"], p["elements_per_word"]),
                                          want), p["file"]
                    assert p["words"] * (p["hex_digits"] + 1) == len(data)
            n += 1
    assert n > 200


@needs_suite
def test_hwc_is_channels_last(hwc_case):
    x = read_npy(open(os.path.join(hwc_case, "x.npy"), "rb").read())
    C, H, W = x.shape
    b = np.fromfile(os.path.join(hwc_case, "x.bin"), np.uint8)
    for c, y, xx in ((0, 0, 0), (2, 5, 7), (1, H - 1, W - 1)):
        assert b[(y * W + xx) * C + c] == x[c, y, xx]
    w = read_npy(open(os.path.join(hwc_case, "model", "layers", "AT1", "w_codes.npy"), "rb").read())
    O, Ci, K, _ = w.shape
    wb = np.fromfile(os.path.join(hwc_case, "model", "layers", "AT1", "w_codes.bin"), np.int8)
    for o, c, ky, kx in ((0, 0, 0, 0), (3, 7, 2, 4), (O - 1, Ci - 1, K - 1, 1)):
        assert wb[((o * K + ky) * K + kx) * Ci + c] == w[o, c, ky, kx]
    # per-channel vectors and decode tables keep their order
    t = _man(hwc_case)["tensors"]["layers/AT1/dec_table"]
    assert "file_axes" not in t


@pytest.mark.parametrize("kind,opts", [
    ("hyperprior", Options(layout="hwc", mem_pack=(3, 16), bin=True, c_headers=True)),
    ("hyperprior", Options(layers=("HS0", "ST3"), mem=frozenset({"act", "params"}), mem_pack=(8,),
                           c_headers=True, inputs=False)),
    ("factorized", Options(layout="hwc", mem=frozenset(), bin=True, c_headers=True, acc=False)),
])
def test_plan_is_exact_for_the_new_files(tmp_path, kind, opts):
    m = small_model(kind, N=8, seed=6)
    img = np.random.default_rng(1).integers(0, 256, (3, 47, 65), dtype=np.uint8)
    plan = plan_case(m, 47, 65, opts)
    root = str(tmp_path / "c")
    write_case(m, img, root, opts)
    got = {}
    for dp, _, fn in os.walk(root):
        for f in fn:
            p = os.path.join(dp, f)
            got[os.path.relpath(p, root).replace(os.sep, "/")] = os.path.getsize(p)
    assert set(plan) == set(got)
    new = [r for r in got if re.search(r"\.(bin|h)$|\.p\d+\.mem$", r)]
    assert len(new) > 20
    for rel in got:
        if rel not in ESTIMATED:
            assert plan[rel] == got[rel], rel
    for rel in ("manifest.json", "model/manifest.json"):
        assert abs(plan[rel] - got[rel]) < 200, rel
    assert main(["vectors", "--check", root]) == 0


def test_sizes_formulas():
    assert bin_size((3, 5, 7), "int32") == 420
    assert packed_size((3, 5, 7), "int8", 16) == 7 * 33  # 105 elements: 7 words, 9 pad slots
    assert packed_size((0,), "int8", 16) == 0


@needs_suite
@pytest.mark.parametrize("how", ["bin_flip", "packed_flip", "header_edit", "packed_size", "bin_size"])
def test_check_verifies_the_new_files(hwc_case, tmp_path, capsys, how):
    assert main(["vectors", "--check", hwc_case]) == 0
    capsys.readouterr()
    c = str(tmp_path / "c")
    shutil.copytree(hwc_case, c)
    mp = os.path.join(c, "manifest.json")
    if how in ("bin_flip", "packed_flip", "header_edit"):
        rel = {"bin_flip": "layers/HS2/out.bin", "packed_flip": "layers/HS2/out.p16.mem",
               "header_edit": "model/weights/HS2.h"}[how]
        p = os.path.join(c, rel)
        data = bytearray(open(p, "rb").read())
        data[3] = ord("7") if data[3] != ord("7") else ord("6")
        open(p, "wb").write(bytes(data))
        want = rel + ": does not match its sha256"
    else:  # a consistent manifest whose file is not the canonical size
        from fxlic.vectors.check import file_sha256
        rel = "layers/HS2/out.p16.mem" if how == "packed_size" else "layers/HS2/out.bin"
        p = os.path.join(c, rel)
        data = open(p, "rb").read()
        open(p, "wb").write(data[:-33] if how == "packed_size" else data[:-1])
        m = _man(c)
        m["files"][rel] = {"bytes": os.path.getsize(p), "sha256": file_sha256(p)}
        json.dump(m, open(mp, "w"))
        want = f"{rel}: {os.path.getsize(p)} bytes, a canonical " + \
            ("packed .mem" if how == "packed_size" else ".bin")
    assert main(["vectors", "--check", c]) == 1
    err = capsys.readouterr().err
    assert want in err and len(err.strip().splitlines()) == 1, err


@needs_suite
@pytest.mark.parametrize("args,want", [
    (["--layout", "nhwc"], "--layout: 'nhwc' is not a layout (use chw or hwc)"),
    (["--mem-pack", "1"], "--mem-pack: '1' is not a number of elements per word from 2 to 256"),
    (["--mem-pack", "16,x"], "--mem-pack: 'x' is not a number"),
    (["--mem-pack", "1024"], "--mem-pack: '1024'"),
    (["--mem-pack", "16", "--mem", "none"], "--mem-pack packs the .mem files"),
])
def test_bad_options_one_line_exit_1(tmp_path, capsys, args, want):
    out = str(tmp_path / "c")
    assert main(["vectors", "--model", MODEL, "--image", IMAGE, "--out", out, *args]) == 1
    err = capsys.readouterr().err
    assert want in err and len(err.strip().splitlines()) == 1, err
    assert not os.path.exists(out)


def test_bad_options_in_the_api_are_value_errors(tmp_path):
    m = small_model("hyperprior", N=8, seed=6)
    img = np.zeros((3, 16, 16), np.uint8)
    for bad in (Options(layout="whc"), Options(mem_pack=(1,))):
        with pytest.raises(ValueError):
            plan_case(m, 16, 16, bad)
        with pytest.raises(ValueError):
            write_case(m, img, str(tmp_path / "x"), bad)


# ---------------------------------------------------------------------------
# the C port reads them
# ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def exe(tmp_path_factory):
    return build_port(tmp_path_factory, ("fxlic_dec",))["fxlic_dec"]


@needs_suite
@pytest.mark.parametrize("which", ["chw", "hwc"])
def test_c_port_reads_bin_weights(exe, hwc_case, chw_case, which, tmp_path, capsys):
    """fxlic_dec -w bin [-l hwc]: the model's stored fields from the raw .bin files
    only (the .npy of the fields removed), then fxlic verify --strict passes."""
    case = str(tmp_path / "case")
    shutil.copytree(hwc_case if which == "hwc" else chw_case, case)
    for dp, _, fn in os.walk(os.path.join(case, "model", "layers")):
        for f in fn:
            if f.endswith(".npy"):
                os.remove(os.path.join(dp, f))  # the C port must not need them
    dumps = str(tmp_path / "d")
    args = [exe, "-w", "bin"] + (["-l", "hwc"] if which == "hwc" else []) + [case, dumps]
    r = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    golden = hwc_case if which == "hwc" else chw_case
    rc = main(["verify", "--vectors", golden, "--dumps", dumps, "--scope", "decoder", "--strict"])
    out = capsys.readouterr().out
    assert rc == 0 and "VERIFY PASSED" in out, out
    if which == "hwc":  # the layout matters: read as chw, the decoder is wrong
        r = subprocess.run([exe, "-w", "bin", case, str(tmp_path / "d2")], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        assert main(["verify", "--vectors", golden, "--dumps", str(tmp_path / "d2"), "--scope", "decoder"]) == 1
        capsys.readouterr()


def _c_dump_program(man, headers):
    """A C99 program printing every array of the headers, one value a line."""
    lines = ["#include <stdio.h>", "#include <inttypes.h>"] + [f'#include "{h}"' for h in headers] + \
        ["int main(void)", "{", "    long i;"]
    for name in sorted(man["tensors"]):
        e = man["tensors"][name]
        h = e.get("c_header")
        if not h or not h["size"]:
            continue
        s, S = h["symbol"], h["symbol"].upper()
        fmt = "PRIu64" if e["dtype"].startswith("u") else "PRId64"
        cast = "uint64_t" if e["dtype"].startswith("u") else "int64_t"
        lines += [f'    printf("@%s %d\\n", "{name}", {S}_SIZE);',
                  f'    for (i = 0; i < {S}_SIZE; i++) printf("%" {fmt} "\\n", ({cast}){s}[i]);']
    return "\n".join(lines + ["    return 0;", "}", ""])


@needs_gcc
@needs_suite
@pytest.mark.parametrize("which", ["chw", "hwc"])
def test_c_headers_compile_and_match_the_npy(hwc_case, chw_case, which, tmp_path):
    """Every weights/*.h (through fxlic_model.h) compiles with gcc -std=c99
    -pedantic -Werror; every array printed from C equals the .npy in the file order."""
    mdir = os.path.join(hwc_case if which == "hwc" else chw_case, "model")
    man = _man(mdir)
    src = tmp_path / "dump.c"
    src.write_text(_c_dump_program(man, ["fxlic_model.h"]))
    exe = str(tmp_path / "dump")
    r = subprocess.run(["gcc", *CFLAGS, "-I", os.path.join(mdir, "weights"), "-o", exe, str(src)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    out = subprocess.run([exe], capture_output=True, text=True, check=True).stdout
    blocks = out.split("@")[1:]
    assert len(blocks) == sum(1 for e in man["tensors"].values() if e.get("c_header", {}).get("size"))
    for b in blocks:
        head, *vals = b.strip().split("\n")
        name, size = head.split()
        e = man["tensors"][name]
        a = read_npy(open(os.path.join(mdir, name + ".npy"), "rb").read())
        want = np.ascontiguousarray(_file_order(a, e)).reshape(-1)
        assert int(size) == want.size
        assert [int(v) for v in vals] == want.tolist(), name
    text = open(os.path.join(mdir, "weights", "HS0.h")).read()
    assert "#ifndef FXLIC_WEIGHTS_HS0_H" in text and man["model_hash"] in text and man["spec_version"] in text
    assert "static const int8_t HS0_w_codes[HS0_W_CODES_SIZE] = {" in text
    assert "#define HS0_W_CODES_DIM0 16 /* O */" in text
    top = open(os.path.join(mdir, "weights", "fxlic_model.h")).read()
    assert f'#define FXLIC_MODEL_ID "{man["model_hash"]}"' in top


@needs_gcc
def test_c_header_extremes_of_every_dtype(tmp_path):
    h = CHeader("weights/x.h", "extremes", "sha256:" + "0" * 64, "spec", "chw")
    arrays = {}
    for dt in sorted(DTYPES):
        info = np.iinfo(DTYPES[dt])
        a = np.array([info.min, info.max, 0, 1, info.min + 1], dtype=DTYPES[dt]).reshape(5, 1)
        arrays[dt] = a
        h.add("t_" + dt, a, dt, ("A", "B"))
    h.add("empty", np.zeros((0, 3), np.int8), "int8", ("A", "B"))
    (tmp_path / "weights").mkdir()
    (tmp_path / "weights" / "x.h").write_bytes(h.bytes())
    text = h.text()
    assert "INT64_MIN" in text and "INT32_MIN" in text and "#define EMPTY_SIZE 0" in text
    prog = ["#include <stdio.h>", "#include <inttypes.h>", '#include "x.h"', '#include "x.h"',
            "int main(void)", "{", "    int i;"]
    for dt in sorted(DTYPES):
        fmt, cast = ("PRIu64", "uint64_t") if dt.startswith("u") else ("PRId64", "int64_t")
        prog.append(f'    for (i = 0; i < T_{dt.upper()}_SIZE; i++) printf("%" {fmt} "\\n", ({cast})t_{dt}[i]);')
    prog += ["    return EMPTY_SIZE;", "}", ""]
    (tmp_path / "p.c").write_text("\n".join(prog))
    r = subprocess.run(["gcc", *CFLAGS, "-I", str(tmp_path / "weights"), "-o", str(tmp_path / "p"),
                        str(tmp_path / "p.c")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    out = subprocess.run([str(tmp_path / "p")], capture_output=True, text=True, check=True).stdout.split()
    assert [int(v) for v in out] == [int(v) for dt in sorted(DTYPES) for v in arrays[dt].reshape(-1)]


# ---------------------------------------------------------------------------
# the Verilog bench reads packed words
# ---------------------------------------------------------------------------

def _run_packed(tmp_path, params, plusargs):
    vvp = str(tmp_path / ("tbp_" + "_".join(f"{k}{v}" for k, v in params.items()) + ".vvp"))
    r = subprocess.run(["iverilog", "-g2005", "-Wall", "-o", vvp] + [f"-Ptb.{k}={v}" for k, v in params.items()] +
                       [os.path.join(HDL, "tb_requant_packed.v"), os.path.join(HDL, "fxlic_requant.v")],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "warning" not in r.stderr.lower(), r.stderr
    r = subprocess.run(["vvp", "-n", vvp] + [f"+{k}={v}" for k, v in plusargs.items()],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    return r.stdout


def _layer_run(tmp_path, case, L, hwc, acc=None, out=None):
    C, H, W = L["out_shape"]
    name = L["name"]
    mdir = os.path.join(case, "model", "layers", name)
    kind = 0 if L["out_rule"] == "O1" else (1 if L["act"] == "leaky" else 2)
    return _run_packed(tmp_path, {"N": C * H * W, "C": C, "HW": H * W, "PA": 4, "PO": 16, "HWC": hwc},
                       {"ACC": acc or f"{case}/layers/{name}/acc.p4.mem",
                        "EXPECT": out or f"{case}/layers/{name}/out.p16.mem",
                        "SHIFT": f"{mdir}/out_shift.mem", "MUX": f"{mdir}/mux.mem", "KIND": kind})


@needs_iverilog
@needs_suite
@pytest.mark.parametrize("which", ["hwc", "chw"])
def test_hdl_reads_packed_words_of_every_layer(hwc_case, chw_case, which, tmp_path):
    """$readmemh of 128-bit words: four int32 accumulators and sixteen 8-bit
    codes per line, channels last (hwc) or first; every element of every O1/O2 layer."""
    case = hwc_case if which == "hwc" else chw_case
    done = 0
    for L in _man(case)["layers"]:
        if L["out_rule"] not in ("O1", "O2"):
            continue
        C, H, W = L["out_shape"]
        out = _layer_run(tmp_path, case, L, 1 if which == "hwc" else 0)
        assert f"PASS {C * H * W}" in out, f"{L['name']}: {out}"
        done += 1
    assert done >= 12
    if which == "hwc":  # the channel order matters: read as chw, it fails
        L = [l for l in _man(case)["layers"] if l["name"] == "AT1"][0]
        assert "FAIL" in _layer_run(tmp_path, case, L, 0)


@needs_iverilog
@needs_suite
def test_hdl_packed_bench_reports_a_bad_slot_and_bad_padding(hwc_case, tmp_path):
    L = [l for l in _man(hwc_case)["layers"] if l["name"] == "HS2"][0]
    src = f"{hwc_case}/layers/HS2/out.p16.mem"
    lines = open(src).read().splitlines()
    w = lines[2]
    lines[2] = w[:-4] + "%02x" % (int(w[-4:-2], 16) ^ 1) + w[-2:]  # slot 1 of word 2: element 33
    bad = tmp_path / "out.p16.mem"
    bad.write_text("\n".join(lines) + "\n")
    out = _layer_run(tmp_path, hwc_case, L, 1, out=str(bad))
    assert "MISMATCH element 33 (channel 1, word 2 slot 1)" in out and "FAIL 1 of 512" in out


@needs_iverilog
@needs_suite
def test_hdl_packed_unit_with_a_padded_last_word(tmp_path):
    """units/hdl_requant (7207 elements: the last words are padded), packed by
    fxlic.vectors.layouts as `fxlic vectors --mem-pack` packs."""
    U = os.path.join(VEC, "units", "hdl_requant")
    acc = read_npy(open(os.path.join(U, "acc.npy"), "rb").read())
    code = read_npy(open(os.path.join(U, "code.npy"), "rb").read())
    n = acc.size
    assert n % 4 and n % 16
    (tmp_path / "acc.p4.mem").write_bytes(packed_mem_bytes(acc, "int32", 4))
    (tmp_path / "code.p16.mem").write_bytes(packed_mem_bytes(code, "uint8", 16))
    plus = {"ACC": tmp_path / "acc.p4.mem", "EXPECT": tmp_path / "code.p16.mem", "SHIFT": f"{U}/shift.mem",
            "MUX": f"{U}/mux.mem", "KINDS": f"{U}/kind.mem"}
    out = _run_packed(tmp_path, {"N": n, "C": n, "HW": 1, "PA": 4, "PO": 16, "HWC": 0}, plus)
    assert f"PASS {n}" in out, out
    lines = (tmp_path / "code.p16.mem").read_text().splitlines()
    lines[-1] = "ff" + lines[-1][2:]  # the top slot of the last word is padding
    (tmp_path / "code.p16.mem").write_text("\n".join(lines) + "\n")
    out = _run_packed(tmp_path, {"N": n, "C": n, "HW": 1, "PA": 4, "PO": 16, "HWC": 0}, plus)
    assert "pad slot 15 of the last code word is not 0" in out and "FAIL 1 of" in out
