"""The implicit-GEMM paths (issue 20, fxlic/kernels/thin.py) == the reference.

Output-channel blocks (``oc``: every conv / tconv with O a multiple of 16) and
few-output dot blocks (``few``: tconv with O < 16, e.g. ST3) read a zero-padded
input in place; their accumulators must equal ``reference.conv2d_acc`` /
``tconv2d_acc`` exactly, on random and edge inputs, for every SIMD variant the
host runs.  Also run under NUMBA_DISABLE_JIT=1 by test_disable_jit_subprocess.
"""
import os
import subprocess
import sys

import numpy as np
import pytest

from engine_util import (assert_same_layers, layer_tables, run_all_layers, run_layer, small_model,
                         synthetic_layer)
from fxlic.kernels import get_backend, split_shift, thin
from fxlic.kernels import numba_kernels as nk
from fxlic.model.arch import LayerSpec, hyperprior5

NOJIT = bool(os.environ.get("NUMBA_DISABLE_JIT"))
SHAPES = [(1, 1), (2, 3), (5, 4), (3, 17)] + ([] if NOJIT else [(9, 7), (6, 37), (2, 70)])

#: (op, k, stride, cin, cout, path): the shapes of the hyperprior's thin layers
#: and the corners of each path (odd k * C, odd C, O not a multiple of the
#: block, k = 1 tconv phases without taps)
LAYERS = [
    ("conv", 5, 2, 3, 16, "oc"),    # AT0: K = 75, a 15-tap segment per kernel row
    ("conv", 5, 2, 7, 32, "oc"),    # odd k * C = 35
    ("conv", 1, 1, 8, 48, "oc"),    # 1x1 (HS3-HS5), 48 outputs: a partial OC block
    ("conv", 1, 1, 5, 16, "oc"),    # 1x1 with odd C
    ("conv", 3, 1, 4, 16, "oc"),    # HA0 / HS2-like
    ("tconv", 5, 2, 5, 16, "oc"),   # ST0-ST2-like
    ("tconv", 3, 2, 8, 32, "oc"),
    ("tconv", 1, 2, 4, 16, "oc"),   # phases without taps: bias only
    ("tconv", 5, 2, 8, 3, "few"),   # ST3: 3 colour channels
    ("tconv", 5, 2, 16, 5, "few"),  # two dot blocks, the second partial
    ("tconv", 3, 2, 5, 1, "few"),
    ("tconv", 1, 2, 4, 3, "few"),
]


def _ids(cfg):
    return "-".join(str(v) for v in cfg)


def _codes(rng, cin, H, W, signed):
    lo, hi = (-128, 128) if signed else (0, 256)
    return rng.integers(lo, hi, (cin, H, W)).astype(np.int64)


def test_path_rule_on_the_hyperprior():
    """N = 128: every layer but ST3 on the OC blocks, ST3 on the few-output
    block; 8 outputs (small test models) stay on im2col."""
    paths = {l.name: thin.path_of(l) for l in hyperprior5(128).layers}
    assert paths.pop("ST3") == "few"
    assert set(paths.values()) == {"oc"}
    assert thin.path_of(LayerSpec("T", "conv", 5, 2, 3, 8, "relu", "x")) == "im2col"
    assert thin.path_of(LayerSpec("T", "tconv", 5, 2, 8, 24, "relu", "x")) == "im2col"


@pytest.mark.parametrize("cfg", LAYERS, ids=_ids)
@pytest.mark.parametrize("H,W", SHAPES)
def test_thin_paths_match_reference(cfg, H, W):
    op, k, stride, cin, cout, path = cfg
    rng = np.random.default_rng(H * 1000 + W * 10 + k + cout)
    for act, out, signed_in in (("relu", "act", False), ("leaky", "act", True), ("none", "pixel", False)):
        L = synthetic_layer(op, k, stride, cin, cout, act=act, out=out, seed=int(rng.integers(1 << 30)),
                            out_exp=None if out == "act" else np.full(cout, -8))
        assert thin.path_of(L.spec) == path
        x = _codes(rng, cin, H, W, signed_in)
        r = run_layer(L, x, "reference", signed_in)
        n = run_layer(L, x, "numba", signed_in)
        assert np.array_equal(r[1], n[1]), f"acc {cfg} {act}"
        assert np.array_equal(r[0], n[0]), f"out {cfg} {act}"


@pytest.mark.parametrize("pattern", ["max", "min", "alternating"])
@pytest.mark.parametrize("cfg", [LAYERS[0], LAYERS[2], LAYERS[5], LAYERS[8]], ids=_ids)
def test_thin_paths_max_magnitude(pattern, cfg):
    """Weight codes +-127 (level 504), every input at code 255 shifted to level
    255 << 6 = 16320 (the largest int16 operands the A3 bound allows here)."""
    op, k, stride, cin, cout, _ = cfg
    idx = np.indices((cout, cin, k, k)).sum(axis=0)
    w = {"max": np.full((cout, cin, k, k), 127), "min": np.full((cout, cin, k, k), -127),
         "alternating": np.where(idx % 2, 127, -127)}[pattern]
    in_exp = np.full(cin, -10)
    in_exp[0] = -4  # channel 0: level << 6 (split shift r = 0: still int16)
    L = synthetic_layer(op, k, stride, cin, cout, act="relu", w_codes=w, bias=np.full(cout, -7),
                        in_exp=in_exp, out_exp=np.full(cout, -2))
    x = np.full((cin, 7, 6), 255, np.int64)
    r = run_layer(L, x, "reference")
    n = run_layer(L, x, "numba")
    assert np.array_equal(r[1], n[1]) and np.array_equal(r[0], n[0])
    if op == "conv" and pattern != "alternating":
        sign = 1 if pattern == "max" else -1  # interior pixel: every tap
        taps = k * k * (cin - 1 + 64)
        assert r[1][0, 1, 1] == sign * 504 * 255 * taps - 7


@pytest.mark.parametrize("cfg", [LAYERS[1], LAYERS[5], LAYERS[9]], ids=_ids)
def test_thin_paths_with_shift_split(cfg):
    """Aligned levels beyond int16 (spread 10): part of the shift moves onto
    the weights (kernels.split_shift) on the thin paths too."""
    op, k, stride, cin, cout, _ = cfg
    rng = np.random.default_rng(7)
    in_exp = np.array([-20, -10] + list(rng.integers(-20, -17, cin - 2)))
    w = rng.integers(-127, 128, (cout, cin, k, k))
    w[:, 1] = 0
    w[:, 1, k // 2, k // 2] = 3  # channel 1 (shift 10): one small tap (A3 holds)
    L = synthetic_layer(op, k, stride, cin, cout, act="relu", in_exp=in_exp, w_codes=w, seed=3)
    r_, _ = split_shift(layer_tables(L)[0])
    assert r_ is not None and r_.max() > 0
    x = _codes(rng, cin, 9, 11, False)
    x[:, 0] = 255
    a = run_layer(L, x, "reference")
    b = run_layer(L, x, "numba")
    assert np.array_equal(a[1], b[1]) and np.array_equal(a[0], b[0])


def _operand_cases(rng, n):
    return [np.full(n, -32768, np.int16), np.full(n, 32767, np.int16),
            rng.integers(-32768, 32768, n).astype(np.int16)]


@pytest.mark.parametrize("seglen,nseg", [(16, 1), (48, 3), (80, 2)])
def test_every_dot_seg_variant_is_exact(seglen, nseg):
    """dot_seg of every variant (generic, AVX2, AVX-512 / VNNI with the ymm tail
    for seglen = 16 mod 32) == int64 dot products wrapped to int32, at extreme
    operands, odd segment offsets and every npix (pixels past npix repeat the
    last one)."""
    rng = np.random.default_rng(seglen + nseg)
    segs = np.array([0, 131, 517][:nseg], np.int64)
    for name, (dot, _, _) in nk.thin_variant_callers().items():
        for x, wv in zip(_operand_cases(rng, 1200), _operand_cases(rng, 9 * nseg * seglen)):
            w = wv.reshape(9, nseg * seglen)
            for base, pstep, npix, o in ((0, 16, 4, 0), (5, 37, 3, 3), (11, 3, 1, 6)):
                got = [int(v) for v in dot(x, base, pstep, npix, segs, seglen, w, o)]
                want = []
                for a in range(nk._NP):
                    xa = base + min(a, npix - 1) * pstep
                    row = np.concatenate([x[xa + s:xa + s + seglen] for s in segs]).astype(np.int64)
                    for b in range(nk.DOT_NO):
                        want.append(int(nk._wrap32(np.int64(row @ w[o + b].astype(np.int64)))))
                assert got == want, (name, base, npix)


@pytest.mark.parametrize("nps,nout", [(1, 16), (7, 48), (40, 64), (3, 80)])
def test_every_oc_block_variant_is_exact(nps, nout):
    """oc_block of every variant == bias + int64 dot products wrapped to int32,
    stored only for pixels < npix and outputs < nout (the rest of ``out``
    untouched), at extreme operands and offsets."""
    rng = np.random.default_rng(nps * 100 + nout)
    segs = np.array([0, 301], np.int64)
    cols = 2 * 128  # outputs 0..127 in pairs
    for name, (_, oc, block) in nk.thin_variant_callers().items():
        for x, wv in zip(_operand_cases(rng, 900), _operand_cases(rng, 2 * nps * cols)):
            wpk = wv.reshape(2 * nps, cols)
            bias = rng.integers(-(1 << 31), 1 << 31, 128).astype(np.int32)
            for base, pstep, npix, o in ((0, 6, 4, 0), (3, 41, 2, 16), (9, 2, 1, 0)):
                if o + block > 128:
                    continue
                out = np.full(8 * 200, 12345, np.int32)
                wblk = np.ascontiguousarray(wpk[:, 2 * o:2 * (o + block)])  # the block's own weights
                oc(x, base, pstep, npix, segs, nps, wblk, o, bias, out, 7, 200, nout)
                want = np.full(8 * 200, 12345, np.int64)
                for a in range(npix):
                    e = np.concatenate([x[base + a * pstep + s:base + a * pstep + s + 2 * nps] for s in segs])
                    w = wpk.reshape(2 * nps, 128, 2).transpose(0, 2, 1).reshape(4 * nps, 128).astype(np.int64)
                    for oo in range(o, min(o + block, nout)):
                        want[7 + a * 200 + oo] = nk._wrap32(np.int64(bias[oo]) + e.astype(np.int64) @ w[:, oo])
                assert np.array_equal(out.astype(np.int64), want), (name, npix, o)


def test_decode_levels_i16_pad():
    """The padded decode: a zero border of ``pad``, the levels inside, ``slack``
    zeros after; its unpadded form is decode_levels_i16."""
    rng = np.random.default_rng(5)
    codes = rng.integers(0, 256, (5, 4, 7))
    t16 = rng.integers(-30000, 30000, (5, 256)).astype(np.int16)
    want = np.stack([t16[c][codes[c]] for c in range(5)], axis=-1)
    for pad in (0, 1, 2):
        buf = nk.decode_levels_i16_pad(codes, t16, 0, pad, nk.SLACK)
        body = buf[:-nk.SLACK].reshape(4 + 2 * pad, 7 + 2 * pad, 5)
        assert not buf[-nk.SLACK:].any()
        assert np.array_equal(body[pad:pad + 4, pad:pad + 7], want)
        body[pad:pad + 4, pad:pad + 7] = 0
        assert not body.any()
    assert np.array_equal(nk.decode_levels_i16(codes, t16, 0), want)
    assert np.array_equal(nk.decode_levels_i16_serial(codes, t16, 0), want)


@pytest.mark.skipif(NOJIT, reason="twins are the same Python code without JIT")
def test_parallel_and_serial_thin_twins_agree():
    be = get_backend("numba")
    rng = np.random.default_rng(9)
    for op, k, stride, cin, cout, _ in (LAYERS[0], LAYERS[5], LAYERS[8]):
        L = synthetic_layer(op, k, stride, cin, cout, seed=4)
        tables, off = layer_tables(L)
        r, t16 = split_shift(tables)
        prep = be._weights(L, r)
        codes = rng.integers(0, 256, (cin, 23, 18))
        pad = prep[0]
        buf = nk.decode_levels_i16_pad(codes, t16, off, pad, nk.SLACK)
        assert np.array_equal(buf, nk.decode_levels_i16_pad_serial(codes, t16, off, pad, nk.SLACK))
        if op == "conv":
            Wp = 18 + 2 * pad
            args = (buf, Wp, cin, stride, 12, 9, np.arange(k) * Wp * cin, prep[2], prep[1], prep[3], cout)
            n = 12 * 9 * cout
            assert np.array_equal(nk.conv2d_acc_oc(*args, np.empty(n, np.int32)),
                                  nk.conv2d_acc_oc_serial(*args, np.full(n + 5, 7, np.int32)))
        else:
            args = (buf, 23, 18, cin, pad) + tuple(prep[1:]) + (cout, thin.path_of(L.spec) == "few")
            n = 4 * 23 * 18 * cout
            assert np.array_equal(nk.tconv2d_acc_phases(*args, np.empty(n, np.int32)),
                                  nk.tconv2d_acc_phases_serial(*args, np.full(n + 5, 7, np.int32)))


@pytest.mark.skipif(NOJIT, reason="slow without JIT")
def test_small_model_every_layer_on_the_thin_paths():
    """N = 16: AT0, the 1x1 HS3-HS5, ST3 and every other layer of a whole
    hyperprior on the new paths, layer by layer equal to the reference."""
    m = small_model(N=16, seed=2)
    paths = {l.name: thin.path_of(l) for l in m.arch.layers}
    assert paths["ST3"] == "few" and paths["AT0"] == paths["HS4"] == "oc"
    px = np.random.default_rng(1).integers(0, 256, (3, 80, 48), dtype=np.uint8)
    assert_same_layers(run_all_layers(m, px, "reference"), run_all_layers(m, px, "numba"))


@pytest.mark.skipif(NOJIT, reason="the backend's cache logic, not a kernel: a whole model run "
                    "three times, 44 s as plain Python")
def test_layer_edited_in_place_is_prepared_again():
    """The backend's prepared-weight cache never serves stale parameters: a bias or
    weight edited in place (gen_vectors' directed model edits biases this way) gives
    the reference's integers on the next run of the same backend object."""
    import copy
    m = copy.deepcopy(small_model(N=16, seed=2))
    px = np.random.default_rng(4).integers(0, 256, (3, 32, 48), dtype=np.uint8)
    be = get_backend("numba")
    run_all_layers(m, px, be)  # fills the cache
    m.layer("AT0").bias[3] += 194773  # beyond int16: the thin path's padded int32 bias
    m.layer("ST3").bias[1] -= 5000
    m.layer("HS4").w_codes[0, 0, 0, 0] = -m.layer("HS4").w_codes[0, 0, 0, 0] - 1
    m.validate()
    assert_same_layers(run_all_layers(m, px, "reference"), run_all_layers(m, px, be))


@pytest.mark.skipif(NOJIT, reason="already without JIT")
def test_disable_jit_subprocess():
    """The same kernels as plain Python (NUMBA_DISABLE_JIT=1: generic blocks)."""
    env = dict(os.environ, NUMBA_DISABLE_JIT="1")
    here = os.path.dirname(__file__)
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider",
                        os.path.join(here, "test_kernels_thin.py"),
                        "-k", "not match_reference or 1-1 or 2-3 or 3-17"],
                       env=env, capture_output=True, text=True, timeout=900, cwd=here)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]


@pytest.mark.skipif(NOJIT, reason="slow without JIT")
def test_offset_latent_model_levels_input():
    """Offset latents (SPEC O5, the shipped models): ST0 reads per-element
    aligned levels instead of codes, on the OC path (N = 16)."""
    m = small_model(N=16, seed=3, latents="offset")
    assert m.offset_latents and thin.path_of(m.layer("ST0").spec) == "oc"
    px = np.random.default_rng(2).integers(0, 256, (3, 64, 64), dtype=np.uint8)
    assert_same_layers(run_all_layers(m, px, "reference"), run_all_layers(m, px, "numba"))


@pytest.mark.parametrize("cfg", LAYERS, ids=_ids)
def test_im2col_path_still_matches_reference(cfg, monkeypatch):
    """The im2col GEMM stays the path of every other shape: forced onto it,
    the thin layers' shapes match the reference too."""
    from fxlic.kernels import NumbaBackend
    monkeypatch.setattr(thin, "path_of", lambda spec: "im2col")
    op, k, stride, cin, cout, _ = cfg
    rng = np.random.default_rng(k + cout)
    L = synthetic_layer(op, k, stride, cin, cout, act="leaky", seed=5)
    x = _codes(rng, cin, 6, 37 if not NOJIT else 5, True)
    tables, off = layer_tables(L, True)
    mu = np.zeros(cout, np.int64)
    r = get_backend("reference").layer(L, x, tables, off, mu, want_acc=True)
    n = NumbaBackend().layer(L, x, tables, off, mu, want_acc=True)
    assert np.array_equal(r[1], n[1]) and np.array_equal(r[0], n[0])
