"""The independent C99 decoder tools/ports/c (written from docs/SPEC.md,
docs/ENTROPY.md, docs/BITSTREAM.md) is built with gcc, run on the committed
vectors and its dumps are checked with `fxlic verify` (scope decoder, strict:
every decoder-side tensor of the case must be dumped and equal)."""
import json
import os
import shutil
import subprocess

import pytest

from c_port_util import PORT, build_port
from fxlic.cli import main

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VEC = os.path.join(REPO, "vectors")

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc is not installed")


def _cases():
    """(case dir, slow?) of every suite case whose model directory is in vectors/."""
    suite = json.load(open(os.path.join(VEC, "manifest.json")))
    out = []
    for c in suite["cases"]:
        info = suite["models"][c["model"]]
        if not info["dir"]:
            continue
        m = json.load(open(os.path.join(VEC, c["dir"], "manifest.json")))
        work = m["model"]["N"] ** 2 * m["image"]["padded_height"] * m["image"]["padded_width"]
        out.append(pytest.param(c["dir"], marks=[pytest.mark.slow] if work > 128 ** 2 * 128 * 64 else [],
                                id=c["dir"][6:]))
    return out


@pytest.fixture(scope="module")
def exe(tmp_path_factory):
    return build_port(tmp_path_factory, ("fxlic_dec",))["fxlic_dec"]


@pytest.mark.parametrize("mode", ["npy", "stream-mem"])
@pytest.mark.parametrize("case", _cases())
def test_c_port_matches_vectors(exe, case, mode, tmp_path, capsys):
    cdir = os.path.join(VEC, case)
    dumps = str(tmp_path / "dumps")
    args = [exe, cdir, dumps] if mode == "npy" else [exe, "--stream", "-f", "mem", cdir, dumps]
    r = subprocess.run(args, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    rc = main(["verify", "--vectors", cdir, "--dumps", dumps, "--scope", "decoder", "--strict"])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "VERIFY PASSED" in out
    n_pass = int(out.split("verify (scope decoder): ")[1].split(" tensors pass")[0])
    assert n_pass >= 10


def test_c_port_refuses_a_corrupt_stream(exe, tmp_path):
    case = str(tmp_path / "case")
    shutil.copytree(os.path.join(VEC, "cases", "rand16", "img64"), case, symlinks=True)
    with open(os.path.join(case, "case.txt")) as f:
        txt = f.read().replace("model_dir ../../../models", "model_dir " + os.path.join(VEC, "models"))
    with open(os.path.join(case, "case.txt"), "w") as f:
        f.write(txt)
    p = os.path.join(case, "stream.fxl")
    data = bytearray(open(p, "rb").read())
    data[50] ^= 0x10
    open(p, "wb").write(bytes(data))
    r = subprocess.run([exe, "--stream", case, str(tmp_path / "d")], capture_output=True, text=True)
    assert r.returncode != 0 and "CRC" in r.stderr


def test_c_port_builds_with_its_makefile(tmp_path):
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    d = tmp_path / "c"
    shutil.copytree(PORT, d)
    r = subprocess.run(["make", "-C", str(d)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert os.path.exists(d / "fxlic_dec")
