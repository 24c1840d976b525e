"""Whole-model integer forwards: reference == numba on every layer (issue 4),
determinism across thread counts, padding of odd sizes."""
import hashlib
import os
import subprocess
import sys

import numpy as np
import pytest

from engine_util import assert_same_layers, run_all_layers, small_model

KODAK = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "kodak")


@pytest.mark.parametrize("kind", ["hyperprior", "factorized"])
@pytest.mark.parametrize("hw", [(64, 64), (65, 47), (1, 1), (130, 70)])
def test_reference_equals_numba_every_layer(kind, hw):
    model = small_model(kind, N=8, seed=3)
    rng = np.random.default_rng(hw[0] * 7 + hw[1])
    img = rng.integers(0, 256, (3,) + hw, dtype=np.uint8)
    assert_same_layers(run_all_layers(model, img, "reference"), run_all_layers(model, img, "numba"))


def test_lq_activation_variant_and_lw_weights():
    model = small_model("hyperprior", N=8, seed=4, weight_scheme="lw-lq", act_quant="lq")
    assert all(np.all(L.mux == 0) for L in model.layers.values())
    img = np.random.default_rng(1).integers(0, 256, (3, 64, 128), dtype=np.uint8)
    assert_same_layers(run_all_layers(model, img, "reference"), run_all_layers(model, img, "numba"))


def test_one_by_one_latent_shapes():
    model = small_model("hyperprior", N=8, seed=3)
    rec = run_all_layers(model, np.zeros((3, 64, 64), np.uint8), "numba")
    assert rec["AT3"][2].shape == (8, 4, 4)
    assert rec["HA2"][2].shape == (8, 1, 1)
    assert rec["ST3"][2].shape == (3, 64, 64)


def _digest(rec):
    h = hashlib.sha256()
    for name in sorted(rec):
        for arr in rec[name]:
            h.update(np.ascontiguousarray(arr, dtype=np.int64).tobytes())
    return h.hexdigest()


def test_deterministic_for_any_thread_count():
    model = small_model("hyperprior", N=8, seed=3)
    img = np.random.default_rng(5).integers(0, 256, (3, 64, 128), dtype=np.uint8)
    here = _digest(run_all_layers(model, img, "numba"))
    assert here == _digest(run_all_layers(model, img, "numba"))
    code = ("import sys; sys.path.insert(0, %r)\n"
            "import numpy as np, test_engine_pipeline as t, engine_util as u\n"
            "m = u.small_model('hyperprior', N=8, seed=3)\n"
            "img = np.random.default_rng(5).integers(0, 256, (3, 64, 128), dtype=np.uint8)\n"
            "print(t._digest(u.run_all_layers(m, img, 'numba')))\n") % os.path.dirname(__file__)
    for threads in ("1", "2"):
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600,
                           env=dict(os.environ, NUMBA_NUM_THREADS=threads))
        assert r.returncode == 0, r.stderr[-2000:]
        assert r.stdout.strip().splitlines()[-1] == here


def test_full_kodak_image_reference_equals_numba():
    """A whole 768 x 512 Kodak image through encoder and decoder, N = 128
    (random He-initialised weights calibrated on a crop of another image)."""
    from PIL import Image

    from fxlic.model.arch import hyperprior5
    from fxlic.model.build import build_int_model, calibrate
    from fxlic.model.float_model import random_float_model

    path = os.path.join(KODAK, "kodim23.png")
    if not os.path.exists(path):
        pytest.skip("Kodak set not available")
    img = np.asarray(Image.open(path).convert("RGB")).transpose(2, 0, 1)
    calib = np.asarray(Image.open(os.path.join(KODAK, "kodim01.png")).convert("RGB")).transpose(2, 0, 1)
    fm = random_float_model(hyperprior5(128), 11)
    model = build_int_model(fm, calibrate(fm, [calib[:, :128, :128]]))
    ref = run_all_layers(model, img, "reference")
    nb = run_all_layers(model, img, "numba")
    assert_same_layers(ref, nb)
    assert ref["ST3"][2].shape == (3, 512, 768)
