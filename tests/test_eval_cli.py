"""fxlic eval: default models and codecs, the image directory, per-image and
CompressAI-layout results."""
import csv
import json
import os

import numpy as np
import pytest

from fxlic.cli import main
from fxlic.io.images import write_png
from fxlic.io.modelfile import list_zoo

COMPRESSAI_KEYS = {"psnr-rgb", "ms-ssim-rgb", "bpp", "encoding_time", "decoding_time"}


@pytest.fixture()
def imgdir(tmp_path):
    d = tmp_path / "imgs"
    d.mkdir()
    rng = np.random.default_rng(3)
    for k in range(2):
        base = np.linspace(0, 255, 64 * 64).reshape(1, 64, 64)
        px = np.clip(base + rng.normal(0, 12, (3, 64, 64)), 0, 255).astype(np.uint8)
        write_png(str(d / f"im{k}.png"), px)
    return str(d)


def test_defaults_every_shipped_model_and_compressai_layout(imgdir, tmp_path, capsys, monkeypatch):
    pytest.importorskip("bjontegaard")
    monkeypatch.delenv("FXLIC_KODAK", raising=False)
    out = tmp_path / "out"
    assert main(["eval", "--images", imgdir, "--codecs", "jpeg", "--cache", str(tmp_path / "c"),
                 "--out", str(out), "-q"]) == 0
    text = capsys.readouterr().out
    zoo = [os.path.basename(p) for p in list_zoo()]
    assert zoo, "no shipped model"
    res = json.loads((out / "results.json").read_text())
    models = [m for c in res["curves"] if c["kind"] == "int" for m in c["models"]]
    assert sorted(models) == sorted(zoo)
    assert "JPEG (Pillow, 4:2:0)" in text and "BD (psnr" in text
    # per-image rows: every model and every JPEG quality on both images
    from fxlic.eval.codecs import CODECS
    rows = list(csv.DictReader(open(out / "per_image.csv")))
    assert len(rows) == 2 * (len(zoo) + len(CODECS["jpeg"].qualities))
    assert {r["image"] for r in rows} == {"im0.png", "im1.png"}
    assert all(float(r["bpp"]) > 0 and float(r["encode_s"]) >= 0 for r in rows)
    # one CompressAI eval_model file per curve
    files = sorted(os.listdir(out / "compressai"))
    assert "fxlic-int-hyperprior5-N128.json" in files and "JPEG-Pillow-4-2-0.json" in files
    for f in files:
        doc = json.loads((out / "compressai" / f).read_text())
        assert set(doc) == {"name", "description", "results"} and set(doc["results"]) == COMPRESSAI_KEYS
        r = doc["results"]
        assert len({len(v) for v in r.values()}) == 1 and r["bpp"] == sorted(r["bpp"])
        assert all(v is None or 0 <= v <= 1 for v in r["ms-ssim-rgb"])  # linear, null if not computable
    hp = json.loads((out / "compressai" / "fxlic-int-hyperprior5-N128.json").read_text())["results"]
    hp_rows = [r for r in rows if r["curve"] == "fxlic int hyperprior5-N128"]
    assert len(hp["bpp"]) == len(hp_rows) // 2
    assert min(hp["bpp"]) == pytest.approx(min(
        np.mean([float(r["bpp"]) for r in hp_rows if r["point"] == p]) for p in {r["point"] for r in hp_rows}))


def test_default_codecs_are_the_installed_ones(monkeypatch, capsys):
    from fxlic.commands import eval as ev
    from fxlic.eval import codecs as C
    monkeypatch.setattr(C, "available", lambda n: n in ("jpeg", "webp"))

    class A:
        codecs = None
    assert ev._codec_names(A) == ["jpeg", "webp"]
    assert "left out" in capsys.readouterr().err
    A.codecs = ""
    assert ev._codec_names(A) == []
    A.codecs = "jpeg,nope"
    with pytest.raises(Exception, match="unknown codec 'nope'"):
        ev._codec_names(A)


def test_image_directory_comes_from_flag_or_env(imgdir, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("FXLIC_KODAK", raising=False)
    monkeypatch.chdir(tmp_path)  # nothing relative to the cwd is looked at
    assert main(["eval", "--models", "--codecs", "jpeg", "--no-cache", "-q"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--images DIR" in err and "FXLIC_KODAK" in err
    assert main(["eval", "--images", str(tmp_path / "none"), "--codecs", "jpeg", "--no-cache", "-q"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no such directory" in err
    monkeypatch.setenv("FXLIC_KODAK", imgdir)
    js = tmp_path / "r.json"
    assert main(["eval", "--models", "--codecs", "jpeg", "-n", "1", "--no-cache", "-q", "--json", str(js)]) == 0
    assert json.loads(js.read_text())["images"] == ["im0.png"]
    # the old meaning of --images N (a count) still works
    assert main(["eval", "--models", "--codecs", "jpeg", "--images", "1", "--no-cache", "-q",
                 "--json", str(js)]) == 0
    assert json.loads(js.read_text())["images"] == ["im0.png"]


def test_export_helpers():
    from fxlic.eval import export
    recs = [[{"bpp": 0.5, "psnr": 30.0, "msssim": 0.9, "encode_s": 1.0, "decode_s": 2.0},
             {"bpp": 0.7, "psnr": 32.0, "msssim": None, "seconds": 4.0}],
            [{"bpp": 0.2, "psnr": 25.0, "msssim": 0.8, "seconds": 2.0}]]
    r = export.compressai_results(recs)
    assert r["bpp"] == [0.2, pytest.approx(0.6)] and r["psnr-rgb"] == [25.0, 31.0]
    assert r["ms-ssim-rgb"] == [0.8, None]
    assert r["encoding_time"] == [1.0, 1.5] and r["decoding_time"] == [1.0, 2.0]  # seconds split in half
    assert export.slug("JPEG (Pillow, 4:2:0)") == "JPEG-Pillow-4-2-0"
    assert export.finite({"a": [float("inf"), 1.0, (float("nan"),)]}) == {"a": [None, 1.0, [None]]}


def test_plot_styles_are_distinct():
    """Every curve of a full figure gets its own colour and marker; the integer
    hyperprior curve and HEVC intra in particular do not look alike."""
    from fxlic.eval.codecs import CODECS
    from fxlic.eval.paper import rd_points
    from fxlic.eval.plots import curve_styles
    curves = [{"label": "fxlic 8-bit integer hyperprior-5", "kind": "int", "arch_kind": "hyperprior"},
              {"label": "fxlic float32 hyperprior-5", "kind": "float", "arch_kind": "hyperprior"},
              {"label": "fxlic integer fact-mse-q1", "kind": "int", "arch_kind": "factorized"},
              {"label": "fxlic float32 fact-mse-q1", "kind": "float", "arch_kind": "factorized"},
              {"label": "fxlic integer other", "kind": "int", "arch_kind": "hyperprior"}]
    curves += [{"label": c.label, "kind": "classical", "codec": n} for n, c in CODECS.items()]
    curves += rd_points("psnr")
    st = curve_styles(curves)
    pairs = [(s["color"], s["marker"]) for s in st]
    assert len(set(pairs)) == len(pairs)
    colours = [s["color"] for s in st]
    assert colours[0] != colours[curves.index(next(c for c in curves if c.get("codec") == "hevc"))]
    assert len(rd_points("psnr")) == 2 and rd_points("msssim_db") == []
