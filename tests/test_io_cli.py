"""CLI: fxlic quantize / info / models, in-process through fxlic.cli.main."""
import json

import numpy as np
import pytest

from engine_util import one_line_error
from PIL import Image

from fxlic.cli import main
from fxlic.io.floatfile import save_float_model
from fxlic.io.modelfile import load_model, model_hash
from fxlic.model.arch import hyperprior5
from fxlic.model.float_model import random_float_model


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    fm = random_float_model(hyperprior5(8), 0)
    fm.meta = {"lambda": 0.0067, "provenance": {"trainer": "test"}}
    save_float_model(fm, str(d / "w.safetensors"))
    (d / "cal").mkdir()
    rng = np.random.default_rng(3)
    Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(d / "cal" / "b.png")
    Image.fromarray(rng.integers(0, 256, (48, 80, 3), dtype=np.uint8)).save(d / "cal" / "a.png")
    return d




def test_quantize_info_models(work, capsys):
    out = str(work / "m.fxq")
    rc = main(["quantize", "--weights", str(work / "w.safetensors"), "--calib", str(work / "cal"),
               "--out", out, "-q", "--clip-stats"])
    cap = capsys.readouterr()
    assert rc == 0, cap.err
    assert "HS5" in cap.out and "content hash sha256:" in cap.out and "clipped" in cap.out
    im = load_model(out)
    assert im.meta["weight_scheme"] == "cw-nlq" and im.meta["act_quant"] == "nlq-mux"
    assert im.meta["calibration"]["images"] == ["a.png", "b.png"]  # sorted
    assert im.meta["float_model"]["lambda"] == 0.0067
    assert im.meta["float_model"]["provenance"] == {"trainer": "test"}
    assert len(im.meta["float_model"]["sha256"]) == 64
    # same inputs -> same model; options change it
    out2 = str(work / "m2.fxq")
    assert main(["quantize", "--weights", str(work / "w.safetensors"), "--calib", str(work / "cal"),
                 "--out", out2, "-q"]) == 0
    assert model_hash(load_model(out2)) == model_hash(im)
    out3 = str(work / "m3.fxq")
    assert main(["quantize", "--weights", str(work / "w.safetensors"), "--calib", str(work / "cal"),
                 "--out", out3, "-q", "--weight-quant", "lw-lq", "--act-quant", "lq", "--n-calib", "1",
                 "--no-mean-reduction"]) == 0
    im3 = load_model(out3)
    assert im3.meta["weight_scheme"] == "lw-lq" and im3.meta["calibration"]["images"] == ["a.png"]
    assert all(np.all(L.mux == 0) for L in im3.layers.values())
    capsys.readouterr()
    assert main(["info", out]) == 0
    text = capsys.readouterr().out
    assert model_hash(im) in text and "Table IX" in text and "a.png, b.png" in text
    assert main(["info", str(work / "w.safetensors")]) == 0
    assert "hyperprior5-N8" in capsys.readouterr().out
    assert main(["models"]) == 0
    assert capsys.readouterr().out.strip()


def test_quantize_bad_input(work, capsys, tmp_path):
    w, cal = str(work / "w.safetensors"), str(work / "cal")
    out = str(tmp_path / "m.fxq")
    cases = [
        (["--weights", str(tmp_path / "none.safetensors"), "--calib", cal, "--out", out], "no such file"),
        (["--weights", w, "--calib", str(tmp_path / "nodir"), "--out", out], "no such directory"),
        (["--weights", w, "--calib", str(tmp_path), "--out", out], "no images"),
        (["--weights", w, "--calib", cal, "--out", str(tmp_path / "x" / "m.fxq")], "does not exist"),
        (["--weights", w, "--calib", cal, "--out", str(tmp_path)], "is a directory"),
        (["--weights", w, "--calib", cal, "--out", out, "--n-calib", "0"], "n-calib"),
        (["--weights", cal, "--calib", cal, "--out", out], "directory"),
    ]
    for args, msg in cases:
        line = one_line_error(capsys, main(["quantize", "-q"] + args), "quantize")
        assert msg in line, (args, line)
    (tmp_path / "garbage.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}......")
    line = one_line_error(capsys, main(["quantize", "-q", "--weights", str(tmp_path / "garbage.safetensors"),
                                         "--calib", cal, "--out", out]), "quantize")
    assert "garbage.safetensors" in line
    bad = tmp_path / "badcal"
    bad.mkdir()
    (bad / "x.png").write_text("not a png")
    line = one_line_error(capsys, main(["quantize", "-q", "--weights", w, "--calib", str(bad),
                                         "--out", out]), "quantize")
    assert "x.png" in line
    assert not (tmp_path / "m.fxq").exists()


def test_info_bad_model(work, capsys, tmp_path):
    line = one_line_error(capsys, main(["info", str(tmp_path / "none.fxq")]), "info")
    assert "no such model" in line
    p = tmp_path / "bad.fxq"
    p.write_bytes(b"PK\x03\x04 truncated")
    line = one_line_error(capsys, main(["info", str(p)]), "info")
    assert "bad.fxq" in line


def test_quantize_other_formats(work, capsys, tmp_path):
    """A CompressAI-style state dict goes through --format auto."""
    import fxlic.io.floatfile as ff
    fm = ff.load_float_model(str(work / "w.safetensors"))
    sd = ff.compressai_state_from(fm)
    ff.write_safetensors(str(tmp_path / "cai.safetensors"), sd)
    out = str(tmp_path / "c.fxq")
    assert main(["quantize", "-q", "--weights", str(tmp_path / "cai.safetensors"), "--calib",
                 str(work / "cal"), "--out", out]) == 0
    ref = str(tmp_path / "r.fxq")
    assert main(["quantize", "-q", "--weights", str(work / "w.safetensors"), "--calib",
                 str(work / "cal"), "--out", ref, "--latents", "offset"]) == 0
    # a CompressAI state dict gets CompressAI's offset latents by default (SPEC O5)
    assert load_model(out).offset_latents
    assert model_hash(load_model(out)) == model_hash(load_model(ref))
    assert json.loads(json.dumps(load_model(out).meta))["float_model"]["format"] == "compressai"


def test_models_lists_zoo(work, capsys, tmp_path, monkeypatch):
    import fxlic.io.modelfile as mf
    monkeypatch.setattr(mf, "ZOO_DIR", str(tmp_path))
    assert main(["models"]) == 0
    assert "no shipped models" in capsys.readouterr().out
    assert main(["quantize", "-q", "--weights", str(work / "w.safetensors"), "--calib",
                 str(work / "cal"), "--out", str(tmp_path / "tiny.fxq")]) == 0
    (tmp_path / "broken.fxq").write_bytes(b"junk")
    capsys.readouterr()
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "tiny" in out and "hyperprior5-N8" in out and "0.0067" in out
    assert "broken" in out and "UNREADABLE" in out
    assert main(["info", "tiny"]) == 0  # a shipped model by name
    assert "hyperprior5-N8" in capsys.readouterr().out
