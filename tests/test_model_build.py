"""PTQ policy of fxlic.model.build: ReLU activation headroom."""
from __future__ import annotations

import numpy as np
import pytest

from fxlic.model.arch import hyperprior5
from fxlic.model.build import build_int_model, calibrate
from fxlic.model.float_model import random_float_model
from fxlic.quant.activations import relu_channel_params


@pytest.fixture(scope="module")
def fm_cal():
    fm = random_float_model(hyperprior5(8), 3)
    rng = np.random.default_rng(7)
    imgs = [rng.integers(0, 256, (3, 64, 64), dtype=np.uint8) for _ in range(2)]
    return fm, calibrate(fm, imgs)


def test_relu_headroom_scales_only_relu_ranges(fm_cal):
    fm, cal = fm_cal
    m0 = build_int_model(fm, cal, relu_headroom=0)
    m2 = build_int_model(fm, cal, relu_headroom=2)
    assert m0.meta["relu_headroom_bits"] == 0 and m2.meta["relu_headroom_bits"] == 2
    for spec in fm.arch.layers:
        a, b = m0.layers[spec.name], m2.layers[spec.name]
        if spec.act == "relu" and spec.out == "act" and not m2.meta["spread_limits"].get(spec.name):
            # h bits of headroom = the exponent / mux chosen for 2^h x the calibrated maximum
            e, mux = relu_channel_params(cal.maxabs[spec.name] * 4.0, use_mux=True)
            assert np.array_equal(b.out_exp, e) and np.array_equal(b.mux, mux)
            assert np.all(b.out_exp >= a.out_exp)
        elif spec.act != "relu":
            assert np.array_equal(a.out_exp, b.out_exp)


@pytest.mark.parametrize("h", [-1, 5])
def test_relu_headroom_range_checked(fm_cal, h):
    fm, cal = fm_cal
    with pytest.raises(ValueError, match="relu_headroom"):
        build_int_model(fm, cal, relu_headroom=h)
