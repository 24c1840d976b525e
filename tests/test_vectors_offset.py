"""Offset latents (SPEC O5) in the vectors and the C port.

The offset-latent cases of tools/gen_vectors.py (rand8-offset: hyperprior5(8),
rand8f-offset: factorized(8)) are generated into a temporary directory
(``--cases 'rand8*'``: a partial suite, no units) and checked: the case
describes its latents, ``fxlic vectors --check`` and ``fxlic verify`` pass on
the golden files, the C decoder (from the case's tensors and from stream.fxl)
and the C encoder (byte-identical stream.fxl and substreams, identical
pixels) pass ``fxlic verify --strict``, verify catches a flipped y symbol and a
flipped ST0 level, and every O5 coverage bin is hit.  The kept rand8-offset
model may predate SPEC O6 (HA0 on integer y, H = 0) or have H > 0 (AT3's output
rule O6); both are accepted, and a model directory relabelled with an older spec
is refused or read as the spec says.
"""
import json
import os
import shutil
import subprocess

import numpy as np
import pytest

from c_port_util import build_port
from fxlic.cli import main
from fxlic.spec import SPEC_VERSION
from tool_loader import load_tool

CASES = ["rand8-offset/img64", "rand8f-offset/img64"]


@pytest.fixture(scope="module")
def suite(tmp_path_factory):
    g = load_tool("gen_vectors")
    out = str(tmp_path_factory.mktemp("o5") / "vectors")
    g.generate(out, g.DEFAULT_OUT, g.DEFAULT_KODAK, zoo_dir="none", log=lambda *a: None, cases=["rand8*"])
    return out


@pytest.fixture(scope="module")
def exes(tmp_path_factory):
    return build_port(tmp_path_factory)


def _verify(capsys, case, dumps, scope, strict=True):
    rc = main(["verify", "--vectors", case, "--dumps", dumps, "--scope", scope] + (["--strict"] if strict else []))
    out = capsys.readouterr().out
    return rc, out


def test_suite_has_the_offset_cases(suite):
    man = json.load(open(os.path.join(suite, "manifest.json")))
    assert [c["dir"] for c in man["cases"]] == ["cases/" + c for c in CASES]
    assert man["selection"] == ["rand8*"] and man["units"] == []
    assert man["coverage"]["percent"] == 100.0 or all("o5." not in k for k in man["coverage"]["missing"])
    for c in CASES:
        cdir = os.path.join(suite, "cases", c)
        assert "latents offset" in open(os.path.join(cdir, "case.txt")).read()
        m = json.load(open(os.path.join(cdir, "manifest.json")))
        assert m["model"]["latents"] == "offset"
        mdir = os.path.join(cdir, m["model"]["dir"])
        assert "latents offset" in open(os.path.join(mdir, "arch.txt")).read()
        off = np.load(os.path.join(mdir, "latents", "offset_q.npy"))
        G = int(np.load(os.path.join(mdir, "latents", "grid_bits.npy"))[0])  # the builder's G = 4
        assert G == 4 and off.min() < 0 < off.max() and np.any(off % (1 << G))
        rules = {l["name"]: l["out_rule"] for l in m["layers"]}
        t = m["tensors"]
        if m["model"]["arch_kind"] == "hyperprior":
            H = -int(np.load(os.path.join(mdir, "layers", "HA0", "in_exp.npy"))[0])  # SPEC O6
            assert rules["HA2"] == "O5" and rules["AT3"] == ("O6" if H else "O3")
            assert t["y"]["dtype"] == ("int16" if H else "int8")
            assert t["layers/ST0/in"]["dtype"] in ("int16", "int32") and "layers/ST0/dec_table" not in t
            assert t["y"]["stages"] == ["encoder"] and t["y_acc"]["dtype"] == "int32"
            assert "entropy/y_base" not in t and "entropy/z_hat" in t
            # y_hat levels = symbol * 2^G + mean_q, ST0 reads them
            lv = np.load(os.path.join(cdir, "entropy", "y_hat.npy"))
            sym = np.load(os.path.join(cdir, "entropy", "y_sym.npy"))
            means = np.load(os.path.join(cdir, "entropy", "means.npy"))
            assert np.array_equal(lv, (sym << G) + means)
            assert np.array_equal(np.load(os.path.join(cdir, "layers", "ST0", "in.npy")), lv)
            assert sym.min() == -128 and sym.max() == 127  # O5 saturation at both ends
        else:
            assert rules["AT3"] == "O5"
        # every O5 bin of the case is hit (ties come from the generator's bias edits)
        cov = json.load(open(os.path.join(cdir, "coverage.json")))
        for g in cov["layers"]:
            for b, n in g["bins"].items():
                if b.startswith("o5."):
                    assert n > 0, f"{c}: {g['name']}/{b} not hit"
    assert main(["vectors", "--check", suite]) == 0


@pytest.mark.parametrize("case", CASES)
def test_verify_golden_and_flipped_symbol(suite, case, tmp_path, capsys):
    cdir = os.path.join(suite, "cases", case)
    rc, out = _verify(capsys, cdir, cdir, "all", strict=False)  # inputs are aliases: not strict
    assert rc == 0 and "VERIFY PASSED" in out
    d = str(tmp_path / "dumps")
    shutil.copytree(cdir, d)
    p = os.path.join(d, "entropy", "y_sym.npy")
    a = np.load(p)
    a.flat[3] += 1
    np.save(p, a)
    os.unlink(os.path.join(d, "entropy", "y_sym.mem"))
    rc, out = _verify(capsys, cdir, d, "decoder", strict=False)
    assert rc != 0 and "entropy/y_sym" in out and "FAIL" in out
    if "rand8-offset" in case:  # a flipped ST0 input level
        shutil.rmtree(d)
        shutil.copytree(cdir, d)
        p = os.path.join(d, "layers", "ST0", "in.npy")
        a = np.load(p)
        a.flat[5] ^= 1
        np.save(p, a)
        os.unlink(os.path.join(d, "layers", "ST0", "in.mem"))
        rc, out = _verify(capsys, cdir, d, "decoder", strict=False)
        assert rc != 0 and "layers/ST0/in" in out


@pytest.mark.parametrize("mode", ["npy", "stream-mem"])
@pytest.mark.parametrize("case", CASES)
def test_c_decoder_offset(suite, exes, case, mode, tmp_path, capsys):
    cdir = os.path.join(suite, "cases", case)
    dumps = str(tmp_path / "dumps")
    args = [cdir, dumps] if mode == "npy" else ["--stream", "-f", "mem", cdir, dumps]
    r = subprocess.run([exes["fxlic_dec"], *args], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    rc, out = _verify(capsys, cdir, dumps, "decoder")
    assert rc == 0, out
    if mode == "npy":
        assert np.array_equal(np.load(os.path.join(dumps, "recon.npy")), np.load(os.path.join(cdir, "recon.npy")))


@pytest.mark.parametrize("case", CASES)
def test_c_encoder_offset(suite, exes, case, tmp_path, capsys):
    cdir = os.path.join(suite, "cases", case)
    mdir = os.path.join(suite, "models", case.split("/")[0])
    dumps = str(tmp_path / "enc")
    r = subprocess.run([exes["fxlic_enc"], mdir, os.path.join(cdir, "image.npy"), dumps],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    for f in ("stream.fxl", "entropy/y.rans") + (("entropy/z.rans",) if "rand8-" in case else ()):
        assert open(os.path.join(dumps, f), "rb").read() == open(os.path.join(cdir, f), "rb").read(), f
    rc, out = _verify(capsys, cdir, dumps, "encoder")
    assert rc == 0, out
    # the C encoder's stream decodes (C decoder) to the golden pixels
    case2 = str(tmp_path / "case")
    shutil.copytree(cdir, case2)
    txt = open(os.path.join(case2, "case.txt")).read()
    txt = txt.replace("model_dir ../../../models", "model_dir " + os.path.join(suite, "models"))
    open(os.path.join(case2, "case.txt"), "w").write(txt)
    shutil.copy(os.path.join(dumps, "stream.fxl"), os.path.join(case2, "stream.fxl"))
    r = subprocess.run([exes["fxlic_dec"], "--stream", case2, str(tmp_path / "dec")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert np.array_equal(np.load(str(tmp_path / "dec" / "recon.npy")), np.load(os.path.join(cdir, "recon.npy")))


def test_c_port_refuses_another_spec(suite, exes, tmp_path):
    mdir = str(tmp_path / "m")
    shutil.copytree(os.path.join(suite, "models", "rand8-offset"), mdir)
    p = os.path.join(mdir, "manifest.json")
    txt = open(p).read()
    assert f'"{SPEC_VERSION}"' in txt
    img = os.path.join(suite, "cases", CASES[0], "image.npy")
    H = -int(np.load(os.path.join(mdir, "layers", "HA0", "in_exp.npy"))[0])  # SPEC O6

    def enc(spec, drop_grid=False):
        open(p, "w").write(txt.replace(f'"{SPEC_VERSION}"', f'"{spec}"'))
        g = os.path.join(mdir, "latents", "grid_bits.npy")
        if drop_grid and os.path.exists(g):
            os.remove(g)
        return subprocess.run([exes["fxlic_enc"], mdir, img, str(tmp_path / "e")], capture_output=True, text=True)

    r = enc("fxlic-spec-1.1")  # 1.1 had no offset latents
    assert r.returncode != 0 and "spec" in r.stderr
    r = enc("fxlic-spec-1.3")  # 1.3: HA0 reads integer y (H = 0); one saying H > 0 is refused
    if H:
        assert r.returncode != 0 and "SPEC O6" in r.stderr and SPEC_VERSION in r.stderr
    else:
        assert r.returncode == 0, r.stderr
    r = enc("fxlic-spec-1.2")  # a 1.2 directory has G = 2 and no grid_bits
    assert r.returncode != 0 and "grid_bits" in r.stderr
    r = enc("fxlic-spec-1.5")  # a later spec than the port's
    assert r.returncode != 0 and "another spec" in r.stderr
