"""tools/paper_tables.py: --quick on one tiny crop, inputs checked at start with
one-line errors, the full-run interface unchanged."""
import csv
import json
import os

import numpy as np
import pytest
from tool_loader import load_tool

from fxlic.io.images import write_png
from fxlic.io.modelfile import list_zoo

pt = load_tool("paper_tables")


@pytest.fixture()
def kodak(tmp_path):
    """One 192 x 192 crop of a smooth synthetic image (MS-SSIM needs >= 176 pixels)."""
    d = tmp_path / "kodak"
    d.mkdir()
    y, x = np.mgrid[0:192, 0:192]
    px = np.stack([(x + y) % 256, (2 * x) % 256, (255 - y) % 256]).astype(np.uint8)
    write_png(str(d / "kodim01.png"), px)
    return str(d)


def one_line_error(capsys):
    err = capsys.readouterr().err.strip().splitlines()
    assert err and "Traceback" not in "\n".join(err)
    return err[-1]


def test_quick_headline_table(kodak, tmp_path, monkeypatch, capsys):
    pytest.importorskip("matplotlib")
    pytest.importorskip("bjontegaard")
    monkeypatch.setenv("FXLIC_KODAK", kodak)  # the Kodak directory from the environment
    out = tmp_path / "q"
    rc = pt.main(["--quick", "--codecs", "jpeg", "--cache", str(tmp_path / "cache"), "--out-dir", str(out),
                  "--jobs", "1", "-q"])
    assert rc == 0
    report = (out / "RESULTS-quick.md").read_text()
    shipped = [os.path.basename(p)[:-4] for p in list_zoo()]
    for name in shipped:
        assert f"| {name} | 1 |" in report  # a row per shipped model, float and integer
    assert "JPEG (Pillow, 4:2:0)" in report and "Standing" in report
    assert "Table I" in report  # the caption cites the published points
    assert "Issue 7" not in report
    assert (out / "figures" / "rd_psnr.png").stat().st_size > 0
    rows = list(csv.DictReader(open(out / "per_image.csv")))
    from fxlic.eval.codecs import CODECS
    hp = [n for n in shipped if n.startswith("hp5") and "msssim" not in n]  # the MSE curve
    ms = [n for n in shipped if n.startswith("hp5") and "msssim" in n]  # its own curve
    with_float = [n for n, _, w in pt.shipped_models(pt.os.path.join(pt.REPO, "tools", "weights")) if w]
    assert len(rows) == len(shipped) + len(with_float) + len(CODECS["jpeg"].qualities)  # 1 image
    doc = json.loads((out / "compressai" / "fxlic-int-hyperprior5.json").read_text())
    assert set(doc["results"]) == {"psnr-rgb", "ms-ssim-rgb", "bpp", "encoding_time", "decoding_time"}
    assert len(doc["results"]["bpp"]) == len(hp)
    if ms:
        doc = json.loads((out / "compressai" / "fxlic-int-hyperprior5-msssim.json").read_text())
        assert len(doc["results"]["bpp"]) == len(ms)
    assert "hyperprior-5 MSE" in report
    assert "| " in capsys.readouterr().out  # the table is printed too


def test_missing_inputs_are_one_line_errors(kodak, tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("FXLIC_KODAK", raising=False)
    monkeypatch.delenv("FXLIC_CALIB", raising=False)
    base = ["--cache", str(tmp_path / "c"), "--out", str(tmp_path / "R.md"), "--figures", str(tmp_path / "f"), "-q"]
    assert pt.main(["--kodak", str(tmp_path / "nope")] + base) == 1
    err = one_line_error(capsys)
    assert "--kodak" in err and "FXLIC_KODAK" in err and "no such directory" in err
    assert pt.main(["--kodak", kodak, "--weights-dir", str(tmp_path / "nope")] + base) == 1
    assert "FXLIC_WEIGHTS" in one_line_error(capsys)
    assert pt.main(["--kodak", kodak, "--codecs", "jpeg,nope"] + base) == 1
    assert "nope" in one_line_error(capsys)
    # a full run with an empty cache must quantize (LQ, no-WCFT variants): calibration
    # images are checked before anything is computed
    wdir = tmp_path / "w"
    wdir.mkdir()
    assert pt.main(["--kodak", kodak, "--weights-dir", str(wdir), "--calib", str(tmp_path / "nope"),
                    "--codecs", "jpeg"] + base) == 1
    err = one_line_error(capsys)
    assert "--calib" in err and "FXLIC_CALIB" in err
    assert not (tmp_path / "R.md").exists() and not os.listdir(tmp_path / "c")


def test_full_run_interface_and_helpers(tmp_path, monkeypatch):
    monkeypatch.delenv("FXLIC_WEIGHTS", raising=False)
    a = pt.parse_args(["--jobs", "2"])
    assert a.jobs == 2 and not a.quick and a.images is None and a.ablation_images == 6
    assert a.out == os.path.join(pt.REPO, "docs", "RESULTS.md") and a.figures == os.path.join(pt.REPO, "docs",
                                                                                              "figures")
    assert a.codecs == pt.DEFAULT_CODECS.split(",")
    q = pt.parse_args(["--quick", "--out-dir", str(tmp_path)])
    assert q.out == os.path.join(str(tmp_path), "RESULTS-quick.md") and q.codecs == pt.QUICK_CODECS.split(",")
    assert pt.command_line(a) == "python tools/paper_tables.py"
    assert pt.spread(list(range(24)), 6) == [0, 4, 8, 12, 16, 20] and pt.spread([1, 2], 6) == [1, 2]
    fm = pt.float_models(str(tmp_path))  # the shipped float models are found without a weights dir
    for p in list_zoo():
        name = os.path.basename(p)[:-4]
        if os.path.exists(p[:-4] + ".float.safetensors"):
            assert name in fm


def test_figures_show_only_shipped_models_by_default():
    class Args:
        all_models = False

    class Ctx:
        args = Args()
        models = [("hp5-a", "hyperprior"), ("hp5-b", "hyperprior"), ("hp5-x", "hyperprior"),
                  ("fact-a", "factorized")]

        def is_shipped(self, n):
            return n != "hp5-x"
    s = lambda b, q: {"bpp": b, "psnr": q}  # noqa: E731
    rd = {"hp5-a": {"float": s(0.2, 25), "int": s(0.2, 25), "kind": "hyperprior"},
          "hp5-b": {"float": s(0.3, 26), "int": s(0.3, 26), "kind": "hyperprior"},
          "hp5-x": {"float": s(0.6, 25.5), "int": s(0.55, 25.5), "kind": "hyperprior"},
          "fact-a": {"float": None, "int": s(0.25, 25), "kind": "factorized"}}
    ctx = Ctx()
    names = lambda cs: sorted({n for c in cs for n in c["names"]})  # noqa: E731
    assert names(pt.curves(ctx, rd, "psnr", plot=True)) == ["fact-a", "hp5-a", "hp5-b"]
    assert names(pt.curves(ctx, rd, "psnr")) == ["fact-a", "hp5-a", "hp5-b", "hp5-x"]  # tables: every model
    ctx.args.all_models = True
    assert "hp5-x" in names(pt.curves(ctx, rd, "psnr", plot=True))
    hp = [c for c in pt.curves(ctx, rd, "psnr") if len(c["names"]) > 1]
    assert [c["kind"] for c in hp] == ["float", "int"] and hp[0]["names"] == ["hp5-a", "hp5-b"]
