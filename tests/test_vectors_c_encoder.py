"""The C99 encoder of tools/ports/c (fxlic_enc.c, sharing fxlic_common.h with
the decoder port; written from docs/SPEC.md, docs/ENTROPY.md, docs/BITSTREAM.md)
is built with gcc and run from an image and a model directory on every suite
case that ships a model directory: its stream.fxl must be byte-identical to the
case's and its dumps must pass `fxlic verify --scope encoder --strict` (every
encoder-side tensor and byte file of the case dumped and equal). vectors/ is read
afresh at collection time, so regenerated suites (new shipped-model cases) are
picked up.  SPEC O6 (spec 1.4): an offset-latent hyperprior built with HA0 on the
2^-4 grid (tools/gen_vectors.py build_offset_model, H = G = 4) is written with
`fxlic vectors` into a temporary case; the C encoder must reproduce its int16 y
(O6 levels), z and streams, the C decoder must read its model directory, and both
refuse such a directory labelled fxlic-spec-1.3 or failing O6's loader checks."""
import json
import os
import shutil
import subprocess

import pytest

import numpy as np

from c_port_util import CFLAGS, PORT, build_port
from fxlic.cli import main
from fxlic.spec import SPEC_VERSION
from tool_loader import load_tool

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VEC = os.path.join(REPO, "vectors")

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc is not installed")


def _suite():
    return json.load(open(os.path.join(VEC, "manifest.json")))


def _slow(cdir):
    m = json.load(open(os.path.join(VEC, cdir, "manifest.json")))
    work = m["model"]["N"] ** 2 * m["image"]["padded_height"] * m["image"]["padded_width"]
    return work > 128 ** 2 * 128 * 64


def _cases():
    """(case dir, model dir) of every suite case with a model directory in vectors/ and an input image."""
    suite = _suite()
    out = []
    for c in suite["cases"]:
        info = suite["models"][c["model"]]
        if not info["dir"] or not os.path.exists(os.path.join(VEC, c["dir"], "image.npy")):
            continue
        out.append(pytest.param(c["dir"], info["dir"], marks=[pytest.mark.slow] if _slow(c["dir"]) else [],
                                id=c["dir"][6:]))
    return out


def _shipped_without_dir():
    """suite cases whose (shipped) model has no model directory in vectors/"""
    suite = _suite()
    out = []
    for c in suite["cases"]:
        info = suite["models"][c["model"]]
        src = os.path.join(REPO, info.get("source") or "")
        img = os.path.join(VEC, "images", c["image"] + ".png")
        if info["dir"] or not src.endswith(".fxq") or not os.path.isfile(src) or not os.path.isfile(img):
            continue
        out.append(pytest.param(c["dir"], src, img, marks=[pytest.mark.slow], id=c["dir"][6:]))
    return out


@pytest.fixture(scope="module")
def exe(tmp_path_factory):
    return build_port(tmp_path_factory, ("fxlic_enc",), "cenc")["fxlic_enc"]


def _verify(cdir, dumps, capsys):
    rc = main(["verify", "--vectors", cdir, "--dumps", dumps, "--scope", "encoder", "--strict"])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "VERIFY PASSED" in out
    return int(out.split("verify (scope encoder): ")[1].split(" tensors pass")[0])


def _same_bytes(a, b):
    x, y = open(a, "rb").read(), open(b, "rb").read()
    assert x == y, (f"{a} differs from {b}: {len(x)} vs {len(y)} bytes, first difference at "
                    f"{next((i for i, (p, q) in enumerate(zip(x, y)) if p != q), min(len(x), len(y)))}")


@pytest.mark.parametrize("fmt", ["npy", "mem"])
@pytest.mark.parametrize("case,model", _cases())
def test_c_encoder_matches_vectors(exe, case, model, fmt, tmp_path, capsys):
    cdir = os.path.join(VEC, case)
    dumps = str(tmp_path / "dumps")
    r = subprocess.run([exe, "-f", fmt, os.path.join(VEC, model), os.path.join(cdir, "image.npy"), dumps],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    _same_bytes(os.path.join(dumps, "stream.fxl"), os.path.join(cdir, "stream.fxl"))
    for sub in ("z.rans", "y.rans"):
        if os.path.exists(os.path.join(cdir, "entropy", sub)):
            _same_bytes(os.path.join(dumps, "entropy", sub), os.path.join(cdir, "entropy", sub))
    assert _verify(cdir, dumps, capsys) >= 10


@pytest.mark.parametrize("case,fxq,image", _shipped_without_dir())
def test_c_encoder_shipped_model_without_a_model_dir(exe, case, fxq, image, tmp_path, capsys):
    """a shipped model whose suite case has no model directory (fact-mse-q1: the
    factorized path): write its directory with `fxlic vectors` and encode the
    suite image: the stream is the suite case's"""
    cdir = str(tmp_path / "case")
    assert main(["vectors", "--model", fxq, "--image", image, "--out", cdir, "--layers", "AT*",
                 "--mem", "none", "--no-dec-tables", "-q"]) == 0
    capsys.readouterr()
    _same_bytes(os.path.join(cdir, "stream.fxl"), os.path.join(VEC, case, "stream.fxl"))
    dumps = str(tmp_path / "dumps")
    r = subprocess.run([exe, os.path.join(cdir, "model"), os.path.join(VEC, case, "image.npy"), dumps],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    _same_bytes(os.path.join(dumps, "stream.fxl"), os.path.join(VEC, case, "stream.fxl"))
    _verify(cdir, dumps, capsys)


def test_c_encoder_bin_weights_hwc_and_ppm(exe, tmp_path, capsys):
    """-w bin -l hwc (the model's stored fields from channels-last .bin files) and a
    PPM image give the same stream and dumps"""
    cdir = str(tmp_path / "case")
    assert main(["vectors", "--model", os.path.join(VEC, "models", "rand16", "model.fxq"),
                 "--image", os.path.join(VEC, "images", "img65x47.png"), "--out", cdir,
                 "--bin", "--layout", "hwc", "--mem", "none", "-q"]) == 0
    capsys.readouterr()
    img = np.load(os.path.join(cdir, "image.npy"))
    ppm = str(tmp_path / "img.ppm")
    with open(ppm, "wb") as f:
        f.write(b"P6\n# comment\n%d %d\n255\n" % (img.shape[2], img.shape[1]))
        f.write(np.ascontiguousarray(img.transpose(1, 2, 0)).tobytes())
    dumps = str(tmp_path / "dumps")
    r = subprocess.run([exe, "-w", "bin", "-l", "hwc", os.path.join(cdir, "model"), ppm, dumps],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    _same_bytes(os.path.join(dumps, "stream.fxl"), os.path.join(cdir, "stream.fxl"))
    _verify(cdir, dumps, capsys)


def test_c_encoder_model_id_option_and_bad_input(exe, tmp_path):
    case = os.path.join(VEC, "cases", "rand16", "img64")
    model = os.path.join(VEC, "models", "rand16")
    mhash = json.load(open(os.path.join(model, "manifest.json")))["model_hash"].split(":")[1]
    d = tmp_path / "m"
    shutil.copytree(model, d)
    os.remove(d / "manifest.json")
    r = subprocess.run([exe, str(d), os.path.join(case, "image.npy"), str(tmp_path / "x")],
                       capture_output=True, text=True)
    assert r.returncode != 0 and "model-id" in r.stderr
    r = subprocess.run([exe, "--model-id", mhash[:32], str(d), os.path.join(case, "image.npy"),
                        str(tmp_path / "o")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    _same_bytes(str(tmp_path / "o" / "stream.fxl"), os.path.join(case, "stream.fxl"))
    r = subprocess.run([exe, model, os.path.join(case, "mu.npy"), str(tmp_path / "b")],
                       capture_output=True, text=True)
    assert r.returncode != 0 and "(3, H, W)" in r.stderr


HARNESS = r"""
#define main fxlic_enc_main
#include "fxlic_enc.c"
#undef main
int main(void)
{
    /* docs/ENTROPY.md 5: the worked example (escapes -5 and 100 included) */
    static const int64_t cdf[6] = {0, 6554, 19661, 39322, 64881, 65536};
    static const int64_t sym[6] = {0, 1, 2, -5, 100, 3}, idx[6] = {0, 0, 0, 0, 0, 0};
    tables_t t;
    long len, i, one = 1, six = 6;
    unsigned char *s;
    t.data = arr_new(1, &six);
    t.sizes = arr_new(1, &one);
    t.offsets = arr_new(1, &one);
    for (i = 0; i < 6; i++) t.data.v[i] = cdf[i];
    t.sizes.v[0] = 6;
    t.start = t.offsets.v; /* row 0 starts at 0 */
    s = rans_encode(&t, idx, sym, 6, &len);
    for (i = 0; i < len; i++) printf("%02x%s", s[i], i % 4 == 3 && i + 1 < len ? " " : "");
    printf("\n");
    s = rans_encode(&t, idx, sym, 0, &len);
    for (i = 0; i < len; i++) printf("%02x", s[i]);
    printf("\n");
    return 0;
}
"""


def test_c_rans_encoder_worked_example(tmp_path):
    src = tmp_path / "h.c"
    src.write_text(HARNESS)
    exe = str(tmp_path / "h")
    r = subprocess.run(["gcc", *CFLAGS, "-I", PORT, "-o", exe, str(src)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    out = subprocess.run([exe], capture_output=True, text=True, check=True).stdout.split("\n")
    assert out[0] == "cf101f37 0a020000 91b1fd1e"
    assert out[1] == "0000008000000000"


def test_c_encoder_builds_with_its_makefile(tmp_path):
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    d = tmp_path / "c"
    shutil.copytree(PORT, d, ignore=shutil.ignore_patterns("fxlic_dec", "fxlic_enc"))
    r = subprocess.run(["make", "-C", str(d)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert os.path.exists(d / "fxlic_enc") and os.path.exists(d / "fxlic_dec")


# ---------------------------------------------------------------------------
# SPEC O6 (spec 1.4): HA0 reads y on the 2^-H grid
# ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def o6(tmp_path_factory):
    """an offset-latent hyperprior5(8) with H = G = 4 (the builder's default) and its
    img64 cases: {"npy": case dir (.npy fields), "bin": case dir (--bin --layout hwc)}"""
    d = tmp_path_factory.mktemp("o6")
    fxq = str(d / "h4.fxq")
    im = load_tool("gen_vectors").build_offset_model("hyperprior", 8, fxq, log=lambda *a: None)
    assert im.ha_grid_bits == 4 and im.grid_bits == 4
    img = os.path.join(VEC, "images", "img64.png")
    out = {"npy": str(d / "case"), "bin": str(d / "case-bin")}
    assert main(["vectors", "--model", fxq, "--image", img, "--out", out["npy"], "-q"]) == 0
    assert main(["vectors", "--model", fxq, "--image", img, "--out", out["bin"], "--bin", "--layout", "hwc",
                 "--mem", "none", "-q"]) == 0
    return out


@pytest.fixture(scope="module")
def dec_exe(tmp_path_factory):
    return build_port(tmp_path_factory, ("fxlic_dec",), "cdec")["fxlic_dec"]


def test_o6_case_is_what_the_c_tests_expect(o6):
    cdir = o6["npy"]
    m = json.load(open(os.path.join(cdir, "manifest.json")))
    rules = {l["name"]: (l["out_rule"], l["out_dtype"]) for l in m["layers"]}
    t = m["tensors"]
    assert rules["AT3"] == ("O6", "int16") and rules["HA2"][0] == "O5"
    assert t["y"]["dtype"] == "int16" and t["y"]["rule"] == "O6"
    assert t["layers/HA0/in"]["dtype"] == "int16" and "layers/HA0/dec_table" not in t
    assert np.all(np.load(os.path.join(cdir, "model", "layers", "HA0", "in_exp.npy")) == -4)
    assert SPEC_VERSION in open(os.path.join(cdir, "model", "manifest.json")).read()
    y = np.load(os.path.join(cdir, "y.npy"))
    assert y.dtype == np.int16 and y.min() == -2048 and y.max() == 2047  # SAT12 at both ends


@pytest.mark.parametrize("fmt", ["npy", "mem", "bin-hwc"])
def test_c_encoder_o6(exe, o6, fmt, tmp_path, capsys):
    """the C encoder's y (O6 levels), z, HA0's input and streams are the vectors'"""
    cdir = o6["bin" if fmt == "bin-hwc" else "npy"]
    dumps = str(tmp_path / "dumps")
    opts = ["-w", "bin", "-l", "hwc"] if fmt == "bin-hwc" else ["-f", fmt]
    r = subprocess.run([exe, *opts, os.path.join(cdir, "model"), os.path.join(cdir, "image.npy"), dumps],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    for f in ("stream.fxl", "entropy/z.rans", "entropy/y.rans"):
        _same_bytes(os.path.join(dumps, f), os.path.join(cdir, f))
    if fmt != "mem":
        for t in ("y", "z", "y_acc", "layers/HA0/in", "layers/AT3/out"):
            a, b = np.load(os.path.join(dumps, t + ".npy")), np.load(os.path.join(cdir, t + ".npy"))
            assert a.dtype == b.dtype and np.array_equal(a, b), t
        assert not os.path.exists(os.path.join(dumps, "layers", "HA0", "dec_table.npy"))
    assert _verify(cdir, dumps, capsys) >= 10


@pytest.mark.parametrize("mode", ["npy", "stream-mem"])
def test_c_decoder_reads_an_o6_model_dir(dec_exe, o6, mode, tmp_path, capsys):
    """the decoder never runs HA, but reads the spec-1.4 directory (H in HA0's in_exp)"""
    cdir = o6["npy"]
    dumps = str(tmp_path / "dumps")
    args = [cdir, dumps] if mode == "npy" else ["--stream", "-f", "mem", cdir, dumps]
    r = subprocess.run([dec_exe, *args], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    rc = main(["verify", "--vectors", cdir, "--dumps", dumps, "--scope", "decoder", "--strict"])
    out = capsys.readouterr().out
    assert rc == 0 and "VERIFY PASSED" in out, out


def _edit_npy(path, f):
    a = np.load(path)
    f(a)
    np.save(path, a)
    mem = path[:-4] + ".mem"
    if os.path.exists(mem):
        os.remove(mem)


def test_c_port_refuses_bad_o6_model_dirs(exe, dec_exe, o6, tmp_path):
    """O6's loader checks: H > 0 needs spec 1.4, one in_exp for every channel in 0..-6,
    an offset-latent hyperprior, and -H - Eacc of AT3 within [-31, 62]"""
    cdir = o6["npy"]
    img = os.path.join(cdir, "image.npy")
    n = [0]

    def model(edit):
        n[0] += 1
        d = str(tmp_path / f"m{n[0]}")
        shutil.copytree(os.path.join(cdir, "model"), d)
        edit(d)
        return d

    def enc(d):
        return subprocess.run([exe, d, img, str(tmp_path / "e")], capture_output=True, text=True)

    def relabel(d, spec):
        p = os.path.join(d, "manifest.json")
        txt = open(p).read()
        assert f'"{SPEC_VERSION}"' in txt
        open(p, "w").write(txt.replace(f'"{SPEC_VERSION}"', f'"{spec}"'))

    d = model(lambda d: relabel(d, "fxlic-spec-1.3"))  # 1.3 has H = 0: H = 4 is refused
    r = enc(d)
    assert r.returncode != 0 and "SPEC O6" in r.stderr and SPEC_VERSION in r.stderr and "1.3" in r.stderr
    r = subprocess.run([dec_exe, "-m", d, cdir, str(tmp_path / "dd")], capture_output=True, text=True)
    assert r.returncode != 0 and "SPEC O6" in r.stderr and SPEC_VERSION in r.stderr
    ha0 = lambda d: os.path.join(d, "layers", "HA0", "in_exp.npy")  # noqa: E731
    r = enc(model(lambda d: _edit_npy(ha0(d), lambda a: a.fill(-7))))  # H = 7 > 6
    assert r.returncode != 0 and "SPEC O6" in r.stderr and "0..6" in r.stderr

    def one_differs(a):
        a[3] = -3
    r = enc(model(lambda d: _edit_npy(ha0(d), one_differs)))
    assert r.returncode != 0 and "SPEC O6" in r.stderr and "differs between channels" in r.stderr

    def integer_latents(d):
        p = os.path.join(d, "arch.txt")
        txt = open(p).read()
        assert "latents offset" in txt
        open(p, "w").write(txt.replace("latents offset", "latents integer"))
    r = enc(model(integer_latents))
    assert r.returncode != 0 and "SPEC O6" in r.stderr and "offset-latent hyperprior" in r.stderr

    def shift_out_of_range(d):  # Eacc[0] of AT3 down by 50, out_exp with it (A4 unchanged)
        at3 = os.path.join(d, "layers", "AT3")
        _edit_npy(os.path.join(at3, "w_exp.npy"), lambda a: a.__setitem__(0, a[0] - 50))
        _edit_npy(os.path.join(at3, "out_exp.npy"), lambda a: a.__setitem__(0, a[0] - 50))
    r = enc(model(shift_out_of_range))
    assert r.returncode != 0 and "SPEC O6" in r.stderr and "[-31, 62]" in r.stderr
