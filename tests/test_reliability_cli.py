"""Issue 18 items 7 and 9: outputs (never onto an input, nothing left behind on
failure, mode from the umask), closed pipes, symbolic-link loops, and
``decompress --max-pixels`` checked from the header before any work."""
import os
import subprocess
import sys

import numpy as np
import pytest

from engine_util import one_line_error, small_model
from fxlic.bitstream.container import MAX_PIXELS, BitstreamError
from fxlic.cli import build_parser, main
from fxlic.codec import compress, decode_parts, decompress
from fxlic.io.images import write_png
from fxlic.io.modelfile import save_model


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    d = tmp_path_factory.mktemp("rel_cli")
    im = small_model("hyperprior", N=8, seed=3)
    save_model(im, str(d / "m.fxq"))
    px = np.random.default_rng(0).integers(0, 256, (3, 40, 70), dtype=np.uint8)
    write_png(str(d / "in.png"), px)
    (d / "s.fxl").write_bytes(compress(im, px)[0])
    return d




def _snapshot(d):
    return {p: (d / p).read_bytes() for p in sorted(os.listdir(d)) if (d / p).is_file()}


def test_decompress_checks_original_before_writing(work, tmp_path, capsys):
    out = tmp_path / "o.png"
    m = str(work / "m.fxq")
    line = one_line_error(capsys, main(["decompress", str(work / "s.fxl"), "-o", str(out), "--model", m,
                                   "--original", str(tmp_path / "missing.png")]), "decompress")
    assert "missing.png: no such file" in line and not out.exists()
    small = tmp_path / "small.png"
    write_png(str(small), np.zeros((3, 8, 8), np.uint8))
    line = one_line_error(capsys, main(["decompress", str(work / "s.fxl"), "-o", str(out), "--model", m,
                                   "--original", str(small)]), "decompress")
    assert "differs" in line and not out.exists()
    assert main(["decompress", str(work / "s.fxl"), "-o", str(out), "--model", m,
                 "--original", str(work / "in.png")]) == 0
    assert "PSNR" in capsys.readouterr().out and out.exists()
    assert sorted(os.listdir(tmp_path)) == ["o.png", "small.png"]  # no temporary files


@pytest.mark.parametrize("how", ["same", "symlink", "hardlink", "dotted"])
def test_output_equal_to_an_input_is_refused(work, tmp_path, capsys, how):
    import shutil
    for n in ("in.png", "s.fxl", "m.fxq"):
        shutil.copy(work / n, tmp_path / n)
    before = _snapshot(tmp_path)
    m = str(tmp_path / "m.fxq")

    def alias(name):
        if how == "same":
            return str(tmp_path / name)
        if how == "dotted":
            return str(tmp_path / "." / name)
        link = tmp_path / f"alias-{name}"
        if link.exists():
            link.unlink()
        (os.symlink if how == "symlink" else os.link)(tmp_path / name, link)
        return str(link)

    cases = [
        ("compress", [str(tmp_path / "in.png"), "-o", alias("in.png"), "--model", m]),
        ("compress", [str(tmp_path / "in.png"), "-o", alias("m.fxq"), "--model", m]),
        ("decompress", [str(tmp_path / "s.fxl"), "-o", alias("s.fxl"), "--model", m]),
        ("decompress", [str(tmp_path / "s.fxl"), "-o", alias("in.png"), "--model", m,
                        "--original", str(tmp_path / "in.png")]),
        ("decompress", [str(tmp_path / "s.fxl"), "-o", alias("m.fxq"), "--model", m]),
    ]
    for cmd, argv in cases:
        line = one_line_error(capsys, main([cmd] + argv + ["-q"]), cmd)
        assert "same file" in line
    after = {k: v for k, v in _snapshot(tmp_path).items() if not k.startswith("alias-")}
    assert after == before  # nothing changed, nothing added


def test_quantize_out_equal_to_weights_refused(tmp_path, capsys):
    from fxlic.io.floatfile import save_float_model
    from fxlic.model.arch import hyperprior5
    from fxlic.model.float_model import random_float_model
    w = tmp_path / "w.safetensors"
    save_float_model(random_float_model(hyperprior5(8), 0), str(w))
    before = w.read_bytes()
    line = one_line_error(capsys, main(["quantize", "--weights", str(w), "--calib", str(tmp_path),
                                   "--out", str(w)]), "quantize")
    assert "same file" in line and w.read_bytes() == before


@pytest.mark.parametrize("mask", [0o022, 0o027, 0o002])
def test_outputs_follow_the_umask(work, tmp_path, mask):
    old = os.umask(mask)
    try:
        m = str(work / "m.fxq")
        assert main(["compress", str(work / "in.png"), "-o", str(tmp_path / "a.fxl"), "--model", m,
                     "-q"]) == 0
        assert main(["decompress", str(tmp_path / "a.fxl"), "-o", str(tmp_path / "a.png"), "--model", m,
                     "-q"]) == 0
        write_png(str(tmp_path / "b.png"), np.zeros((3, 4, 4), np.uint8))
    finally:
        os.umask(old)
    for n in ("a.fxl", "a.png", "b.png"):
        assert (os.stat(tmp_path / n).st_mode & 0o777) == 0o666 & ~mask, n


def test_symlink_loops_and_special_files(work, tmp_path, capsys):
    a, b = tmp_path / "a", tmp_path / "b"
    os.symlink(b, a)
    os.symlink(a, b)
    m = str(work / "m.fxq")
    for cmd, argv in (("decompress", [str(a), "-o", str(tmp_path / "o.png")]),
                      ("compress", [str(a), "-o", str(tmp_path / "o.fxl")]),
                      ("compress", [str(work / "in.png"), "-o", str(tmp_path / "o.fxl"), "--model", str(a)]),
                      ("info", [str(a)]),
                      ("decompress", [str(work / "s.fxl"), "-o", str(tmp_path / "o.png"), "--model", m,
                                      "--original", str(a)])):
        assert "symbolic link loop" in one_line_error(capsys, main([cmd] + argv), cmd)
    os.symlink(tmp_path / "nowhere", tmp_path / "dangling")
    assert "broken symbolic link" in one_line_error(
        capsys, main(["decompress", str(tmp_path / "dangling"), "-o", str(tmp_path / "o.png")]), "decompress")
    if os.path.exists("/dev/zero"):
        assert "not a regular file" in one_line_error(
            capsys, main(["decompress", "/dev/zero", "-o", str(tmp_path / "o.png")]), "decompress")
    assert not (tmp_path / "o.png").exists() and not (tmp_path / "o.fxl").exists()


@pytest.mark.parametrize("argv", [["info", "hp5-mse-q2"], ["models"], ["--help"]])
def test_closed_pipe_exits_quietly(argv):
    cmd = [sys.executable, "-m", "fxlic.cli"] + argv
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    p.stdout.readline()
    p.stdout.close()  # `| head -1`
    err = p.stderr.read().decode()
    p.wait(timeout=120)
    assert "Traceback" not in err and "BrokenPipe" not in err, err


def test_max_pixels(work, tmp_path, capsys):
    assert build_parser().parse_args(["decompress", "x", "-o", "y"]).max_pixels == MAX_PIXELS == 1 << 26
    m = str(work / "m.fxq")
    out = tmp_path / "o.png"
    line = one_line_error(capsys, main(["decompress", str(work / "s.fxl"), "-o", str(out), "--model", m,
                                   "--max-pixels", str(40 * 70 - 1)]), "decompress")
    assert "exceeds --max-pixels 2,799" in line and not out.exists()
    assert "at least 1" in one_line_error(capsys, main(["decompress", str(work / "s.fxl"), "-o", str(out),
                                                   "--max-pixels", "0"]), "decompress")
    assert main(["decompress", str(work / "s.fxl"), "-o", str(out), "--model", m, "-q",
                 "--max-pixels", str(40 * 70)]) == 0
    # API: checked from the header before the model is even looked at
    data = (work / "s.fxl").read_bytes()
    with pytest.raises(BitstreamError, match="max-pixels"):
        decompress(small_model("hyperprior", N=8, seed=3), data, max_pixels=100)
    from fxlic.bitstream.container import unpack
    with pytest.raises(BitstreamError, match="max-pixels"):
        decode_parts(None, *unpack(data), max_pixels=100)
