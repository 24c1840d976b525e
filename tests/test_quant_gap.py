"""fxlic.eval.attribution and tools/quant_gap.py: the per-layer loss table."""
import os
import sys

import numpy as np
import pytest

from fxlic.eval import attribution, sim
from fxlic.metrics import psnr
from fxlic.model.arch import hyperprior5
from fxlic.model.build import build_int_model, calibrate
from fxlic.model.float_model import random_float_model

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tools"))


@pytest.fixture(scope="module")
def models():
    fm = random_float_model(hyperprior5(4), seed=7)
    rng = np.random.default_rng(8)
    imgs = [rng.integers(0, 256, (3, 64, 64), dtype=np.uint8) for _ in range(2)]
    return fm, build_int_model(fm, calibrate(fm, imgs)), [(f"im{k}.png", v) for k, v in enumerate(imgs)]


def test_int_weights_are_the_integer_models_own(models):
    """Dequantized integer weights: CW-NLQ of the plain weights where no prescale
    applies (SPEC F4), and within one step of it where one does."""
    fm, im, _ = models
    W = attribution.int_weights(fm, im)
    for spec in fm.arch.layers:
        q = sim.quantize_tensor(fm.weights[spec.name], "cw-nlq")
        if spec.src == "x" or spec.out == "pixel":
            assert np.abs(W[spec.name] - fm.weights[spec.name]).max() <= np.abs(q - fm.weights[spec.name]).max() * 4
        else:
            assert np.array_equal(W[spec.name], q)


def test_rows_and_the_all_row(models):
    fm, im, images = models
    rows = attribution.attribute(fm, im, images, names=["AT1", "ST1"], engine="numpy")
    parts = [(r["part"], r["layer"]) for r in rows]
    assert parts == [("latents", "y_hat, z_hat"), ("weights", "AT1"), ("weights", "ST1"), ("activations", "AT1"),
                     ("activations", "ST1"), ("all weights", ""), ("all activations", ""),
                     ("all weights + activations", "")]
    assert len(rows) == attribution.n_runs(fm, im, ["AT1", "ST1"]) - 1  # the float run has no row
    # the last row is the float model with every weight and activation of the integer model
    fq = attribution._with_weights(fm, attribution.int_weights(fm, im))
    A = sim.activation_params(im)
    d = [psnr(px, sim.forward_codec(fq, px, A, im, engine="numpy")[0]) - psnr(px, sim.forward_codec(fm, px,
         engine="numpy")[0]) for _, px in images]
    assert rows[-1]["dpsnr"] == pytest.approx(np.mean(d), abs=1e-12)
    assert rows[-1]["worst_image"] in ("im0.png", "im1.png")


def test_tool_writes_table_and_refuses_bad_input(models, tmp_path, capsys):
    import quant_gap
    from fxlic.io.floatfile import save_float_model
    from fxlic.io.images import write_png
    from fxlic.io.modelfile import save_model
    fm, im, images = models
    d = tmp_path / "img"
    d.mkdir()
    for n, px in images:
        write_png(str(d / n), px)
    mp, wp = str(tmp_path / "m.fxq"), str(tmp_path / "m.float.safetensors")
    save_model(im, mp)
    save_float_model(fm, wp)
    out = str(tmp_path / "gap.md")
    assert quant_gap.main([mp, "--images", str(d), "--layers", "ST1", "--out", out, "-q"]) == 0
    text = open(out).read()
    assert "| activations | ST1 |" in text and "| all weights + activations |" in text
    capsys.readouterr()
    assert quant_gap.main([mp, wp, "--images", str(d), "--layers", "XX9", "-q"]) == 1
    assert "no layer XX9" in capsys.readouterr().err
    assert quant_gap.main([str(tmp_path / "none.fxq"), "--images", str(d), "-q"]) == 1
    assert quant_gap.main([mp, wp, "--images", str(tmp_path / "nope"), "-q"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and "nope" in err
