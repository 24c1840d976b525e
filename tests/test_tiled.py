"""Tiled / banded execution (fxlic.model.tiled) == whole-image execution (issue 10)."""
import os
import subprocess
import sys

import numpy as np
import pytest

from engine_util import small_model
from fxlic.model.arch import LayerSpec
from fxlic.model.int_forward import encode, hyper_decode, synthesize
from fxlic.model.tiled import (encode_tiled, hyper_decode_tiled, input_rows, synthesize_tiled)


@pytest.mark.parametrize("kind", ["hyperprior", "factorized"])
@pytest.mark.parametrize("band", [1, 2, 3, 5, None])
def test_tiled_equals_untiled(kind, band):
    """320 x 256 image, bands down to one output row per band (many bands, halos
    crossing several layers): y, mu, z, HS5 codes and pixels identical."""
    model = small_model(kind, N=8, seed=3)
    img = np.random.default_rng(7).integers(0, 256, (3, 256, 320), dtype=np.uint8)
    img[:, 100:140] = 255  # a saturated stripe crossing band edges
    e = encode(model, img, "numba")
    et = encode_tiled(model, img, "numba", band=band)
    assert np.array_equal(e.y, et.y) and np.array_equal(e.mu, et.mu)
    px = synthesize(model, e.y, e.mu, "numba")
    pt = synthesize_tiled(model, e.y, e.mu, "numba", band=band)
    assert pt.dtype == px.dtype and np.array_equal(px, pt)
    if kind == "hyperprior":
        assert np.array_equal(e.z, et.z) and np.array_equal(e.ms, et.ms)
        assert np.array_equal(hyper_decode(model, e.z, "numba"), hyper_decode_tiled(model, e.z, "numba", band=band))


def test_tiled_mean_reduced_and_budget():
    """A model with mean-reduced y channels; the automatic band from a tiny
    element budget still gives identical results."""
    model = small_model("hyperprior", N=8, seed=5)
    img = np.random.default_rng(9).integers(0, 256, (3, 192, 128), dtype=np.uint8)
    e = encode(model, img, "numba")
    et = encode_tiled(model, img, "numba", budget=1 << 12)
    assert np.array_equal(e.y, et.y) and np.array_equal(e.ms, et.ms) and np.array_equal(e.mu, et.mu)
    assert np.array_equal(synthesize(model, e.y, e.mu, "numba"),
                          synthesize_tiled(model, e.y, e.mu, "numba", budget=1 << 12))


def test_tiled_reference_backend_small():
    model = small_model("hyperprior", N=8, seed=3)
    img = np.random.default_rng(2).integers(0, 256, (3, 128, 64), dtype=np.uint8)
    e = encode(model, img, "reference")
    et = encode_tiled(model, img, "reference", band=1)
    assert np.array_equal(e.y, et.y) and np.array_equal(e.z, et.z) and np.array_equal(e.ms, et.ms)


@pytest.mark.parametrize("op,k,stride", [("conv", 5, 2), ("conv", 3, 1), ("conv", 1, 1), ("tconv", 5, 2),
                                         ("tconv", 3, 2)])
def test_halo_rule_covers_every_tap(op, k, stride):
    """input_rows gives exactly the rows every output row in [a, b) reads
    (SPEC C1/C2), aligned to the stride phase."""
    spec = LayerSpec("T", op, k, stride, 1, 1, "none", "x")
    p = k // 2
    for H in (1, 2, 5, 8, 13):
        Ho = spec.out_hw(H, H)[0]
        for a in range(Ho):
            for b in range(a + 1, Ho + 1):
                i0, i1, g0 = input_rows(spec, a, b, H)
                need = set()
                for oy in range(a, b):
                    if op == "conv":
                        need |= {stride * oy - p + t for t in range(k)}
                    else:
                        need |= {iy for iy in range(H) for t in range(k) if 2 * iy - p + t == oy}
                need = {r for r in need if 0 <= r < H}
                assert need <= set(range(i0, i1)), (H, a, b)
                if op == "conv":
                    assert i0 % stride == 0 and g0 == i0 // stride
                    assert i0 > min(need) - stride if need else True
                else:
                    assert g0 == 2 * i0 and (not need or (i0 == min(need) and i1 == max(need) + 1))


RSS_SCRIPT = r"""
import resource, sys, time
sys.path.insert(0, %r)
import numpy as np
from engine_util import small_model
from fxlic.model.arch import hyperprior5
from fxlic.model.build import build_int_model, calibrate
from fxlic.model.float_model import random_float_model
from fxlic.model.tiled import encode_tiled, synthesize_tiled
fm = random_float_model(hyperprior5(128), 11)
rng = np.random.default_rng(0)
model = build_int_model(fm, calibrate(fm, [rng.integers(0, 256, (3, 128, 128), dtype=np.uint8)]))
img = np.empty((3, 4096, 4096), np.uint8)
for r in range(0, 4096, 512):
    yy, xx = np.mgrid[r:r + 512, 0:4096]
    img[:, r:r + 512] = ((xx // 7 + yy // 5) %% 256).astype(np.uint8)[None] + np.arange(3, dtype=np.uint8)[:, None, None] * 40
t = time.perf_counter()
e = encode_tiled(model, img)
te = time.perf_counter() - t
t = time.perf_counter()
px = synthesize_tiled(model, e.y, e.mu)
td = time.perf_counter() - t
assert px.shape == (3, 4096, 4096)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, te, td)
"""


@pytest.mark.slow
def test_4096_round_trip_peak_rss_under_2gb():
    """A 4096 x 4096 image through encode_tiled + synthesize_tiled (hyperprior-5,
    N = 128) in a fresh process: peak RSS < 2 GB."""
    here = os.path.dirname(os.path.abspath(__file__))
    r = subprocess.run([sys.executable, "-c", RSS_SCRIPT % here], capture_output=True, text=True,
                       timeout=3600, cwd=here)
    assert r.returncode == 0, r.stderr[-3000:]
    rss_mb, te, td = (float(v) for v in r.stdout.split()[-3:])
    print(f"4096x4096: peak RSS {rss_mb:.0f} MB, encode {te:.1f} s, decode {td:.1f} s")
    assert rss_mb < 2048
