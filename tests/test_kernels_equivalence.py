"""Reference == Numba on every operator, random and edge-case inputs (issue 4).

Also run under NUMBA_DISABLE_JIT=1 by test_numba_disable_jit_subprocess.
"""
import os
import subprocess
import sys

import numpy as np
import pytest

from engine_util import run_layer, synthetic_layer
from fxlic.kernels import _mux_segment_tables, get_backend
from fxlic.quant.codebook import act_nlq

SHAPES = [  # (H, W) of the layer input
    (1, 1), (2, 3), (5, 4), (9, 7), (65, 47) if not os.environ.get("NUMBA_DISABLE_JIT") else (13, 11),
]


def _codes(rng, cin, H, W, signed):
    lo, hi = (-128, 128) if signed else (0, 256)
    return rng.integers(lo, hi, (cin, H, W)).astype(np.int64)


@pytest.mark.parametrize("op,k,stride", [("conv", 5, 2), ("conv", 3, 1), ("conv", 1, 1),
                                         ("tconv", 5, 2), ("tconv", 3, 2)])
@pytest.mark.parametrize("H,W", SHAPES)
def test_random_layer_all_kinds(op, k, stride, H, W):
    rng = np.random.default_rng(H * 1000 + W * 10 + k)
    for act, out, signed_in in (("relu", "act", False), ("leaky", "act", True), ("none", "act", True),
                                ("none", "y", False), ("none", "pixel", False)):
        L = synthetic_layer(op, k, stride, cin=5, cout=4, act=act, out=out, seed=int(rng.integers(1 << 30)),
                            out_exp=None if out == "act" else np.full(4, 0 if out == "y" else -8))
        x = _codes(rng, 5, H, W, signed_in)
        mu = rng.integers(-128, 128, 4) if out == "y" else None
        r = run_layer(L, x, "reference", signed_in, mu)
        n = run_layer(L, x, "numba", signed_in, mu)
        assert np.array_equal(r[1], n[1]), f"acc {op} {act} {out}"
        assert np.array_equal(r[0], n[0]), f"out {op} {act} {out}"


@pytest.mark.parametrize("pattern", ["max", "min", "alternating", "zero"])
@pytest.mark.parametrize("op", ["conv", "tconv"])
def test_edge_case_weights(pattern, op):
    k, cin, cout = 5, 3, 2
    idx = np.indices((cout, cin, k, k)).sum(axis=0)
    w = {"max": np.full((cout, cin, k, k), 127), "min": np.full((cout, cin, k, k), -127),
         "alternating": np.where(idx % 2, 127, -127), "zero": np.zeros((cout, cin, k, k))}[pattern]
    L = synthetic_layer(op, k, 2, cin, cout, act="relu", w_codes=w, bias=np.zeros(cout),
                        in_exp=np.full(cin, -8), out_exp=np.full(cout, -2))
    x = np.full((cin, 6, 7), 255, np.int64)
    r = run_layer(L, x, "reference")
    n = run_layer(L, x, "numba")
    assert np.array_equal(r[1], n[1]) and np.array_equal(r[0], n[0])
    if op == "conv" and pattern in ("max", "min"):
        # interior output pixel sees all k*k*cin taps: 504 * 255 * 75 exactly
        sign = 1 if pattern == "max" else -1
        assert r[1][0, 1, 1] == sign * 504 * 255 * k * k * cin


@pytest.mark.parametrize("mux", [0, 1, 2, 3])
@pytest.mark.parametrize("s", [0, 1, 2, 5, 11, 31, 45])
def test_nlq_output_stage_at_boundaries_and_ties(mux, s):
    """Accumulators at every segment boundary, tie and clip point of a mux codebook."""
    cb = act_nlq(mux)
    pts = set()
    for seg in cb.segments:
        for b in (seg.lo, seg.hi):
            for frac in (-2, -1, 0, 1, 2):  # in halves of the fine unit
                pts.add(2 * b + frac)
    for lvl in cb.levels[::7]:
        pts.update((2 * int(lvl) - 1, 2 * int(lvl), 2 * int(lvl) + 1))
    pts.update((2 * cb.max_level + 1, 2 * cb.max_level + 3, 4 * cb.max_level, -1, -2, -3))
    # t = p / 2 fine units -> a = p * 2^(s-1) (for s >= 1); s = 0: integers only
    if s == 0:
        acc = np.array(sorted({p // 2 for p in pts}), np.int64)
    else:
        acc = np.array(sorted(pts), np.int64) << (s - 1)
    acc = acc[(acc >= -(1 << 31)) & (acc < (1 << 31))]
    from fxlic.kernels import reference as ref
    want = ref.out_relu_nlq(acc[None, :, None], np.array([s]), np.array([mux]))
    from fxlic.kernels.numba_kernels import output_stage_hwc
    seg = _mux_segment_tables()
    got = output_stage_hwc(acc[:, None, None].astype(np.int32).reshape(len(acc), 1, 1).transpose(1, 0, 2).copy(),
                           0, False, np.array([s]), np.array([mux]), *seg, np.zeros(1, np.int64), 0, 255)
    assert np.array_equal(want.ravel(), got.ravel())


@pytest.mark.parametrize("s", [0, 1, 3, 8, 20])
def test_signed_output_stages_negative_odd_values(s):
    vals = np.arange(-(1 << (s + 9)) - 7, (1 << (s + 9)) + 7, max(1, 1 << max(0, s - 3)), dtype=np.int64)
    vals = np.concatenate([vals, [-(1 << 31), (1 << 31) - 1, -1, -3, -5, 1, 3]])
    from fxlic.kernels import reference as ref
    from fxlic.kernels.numba_kernels import output_stage_hwc
    seg = _mux_segment_tables()
    acc3 = vals.reshape(1, -1, 1).astype(np.int32)
    for leaky in (False, True):
        want = ref.out_signed_lq(vals[None, :, None], np.array([s]), leaky)
        got = output_stage_hwc(acc3, 1, leaky, np.array([s]), np.zeros(1, np.int64), *seg,
                               np.zeros(1, np.int64), -128, 127)
        assert np.array_equal(want.ravel(), got.ravel())
    for mu in (-128, -5, 0, 77, 127):
        want = ref.out_latent(vals[None, :, None], np.array([s]), np.array([mu]))
        got = output_stage_hwc(acc3, 2, False, np.array([s]), np.zeros(1, np.int64), *seg,
                               np.array([mu], np.int64), -128, 127)
        assert np.array_equal(want.ravel(), got.ravel())
    want = ref.out_pixel(vals[None, :, None], np.array([s]))
    got = output_stage_hwc(acc3, 3, False, np.array([s]), np.zeros(1, np.int64), *seg,
                           np.zeros(1, np.int64), 0, 255)
    assert np.array_equal(want.ravel(), got.ravel())


def test_leaky_relu_is_one_rounding():
    """LeakyReLU(1/8) then requantize = R1 of acc/8 at shift s (SPEC O2), e.g. -13/8 -> -2."""
    from fxlic.kernels import reference as ref
    acc = np.array([[[-13, -12, -4, -5, -3, -1, 0, 1, 13]]], np.int64).reshape(1, -1, 1)
    got = ref.out_signed_lq(acc, np.array([0]), True).ravel().tolist()
    # floor(a/8 + 1/2) for negatives, a for positives
    assert got == [-2, -1, 0, -1, 0, 0, 0, 1, 13]


@pytest.mark.skipif(bool(os.environ.get("NUMBA_DISABLE_JIT")), reason="already without JIT")
def test_numba_disable_jit_subprocess():
    """The numba kernels, run as plain Python (NUMBA_DISABLE_JIT=1), still match."""
    env = dict(os.environ, NUMBA_DISABLE_JIT="1")
    here = os.path.dirname(__file__)
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider",
                        os.path.join(here, "test_kernels_equivalence.py"),
                        "-k", "random_layer_all_kinds and (1-1 or 2-3 or 5-4) or edge_case or signed_output or boundaries"
                        " or int16_shift or split_shift or gemm_block or u_table"],
                       env=env, capture_output=True, text=True, timeout=900, cwd=here)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]


# ---- fast int16 path (issue 10): shift split, general fallback, GEMM blocks ----

@pytest.mark.parametrize("op,k,stride", [("conv", 5, 2), ("conv", 3, 1), ("conv", 1, 1), ("tconv", 5, 2)])
@pytest.mark.parametrize("spread", [0, 8, 12, 20])
def test_int16_shift_split_and_general_path(op, k, stride, spread):
    """Wide input exponent spreads: levels << d no longer fit int16, so part of
    the shift moves onto the weights (spread 8, 12) or the layer falls back to
    the int32 path (spread 20: weight 4 << 13 leaves int16).  Odd cout (3) and
    cin (7) exercise the GEMM tails."""
    from fxlic.kernels import split_shift
    from engine_util import layer_tables
    rng = np.random.default_rng(spread * 10 + k)
    cin, cout = 7, 3
    in_exp = np.array([-20, -20 + spread] + list(rng.integers(-20, -17, cin - 2)))
    w = rng.integers(-127, 128, (cout, cin, k, k))
    w[:, 1] = 0
    w[:, 1, k // 2, k // 2] = [4, -4, 3]  # channel 1 (shift `spread`): one small tap (SPEC A3 holds)
    L = synthetic_layer(op, k, stride, cin, cout, act="relu", in_exp=in_exp, seed=spread, w_codes=w,
                        bias=rng.integers(-5000, 5000, cout))
    tables, _ = layer_tables(L)
    r, t16 = split_shift(tables)
    if spread <= 6:
        assert r is not None and not r.any()
    elif spread <= 12:
        assert r is not None and r.max() > 0
        assert np.array_equal(t16.astype(np.int64) << r[:, None], tables)
    x = _codes(rng, cin, 11, 9, False)
    x[:, 0, :] = 255  # saturated inputs
    a = run_layer(L, x, "reference")
    b = run_layer(L, x, "numba")
    assert np.array_equal(a[1], b[1]) and np.array_equal(a[0], b[0])


def test_split_shift_refuses_non_multiples():
    from fxlic.kernels import split_shift
    t = np.zeros((2, 256), np.int64)
    t[0, 1] = 40001  # odd and beyond int16: no exact split exists
    assert split_shift(t) == (None, None)
    t[0, 1] = 40000  # 40000 = 2^6 * 625: r = 1
    r, t16 = split_shift(t)
    assert r.tolist() == [1, 0] and t16[0, 1] == 20000


@pytest.mark.parametrize("K", [16, 32, 80, 1152])
def test_gemm_block_extremes_and_wrap(K):
    """block4x2 (vpmaddwd on AVX2) == the generic block == int64 dot, wrapped
    to int32, on extreme int16 operands (including -32768 * -32768 pairs)."""
    from fxlic.kernels.numba_kernels import _wrap32, block4x2_call, block4x2_generic
    rng = np.random.default_rng(K)
    for col, w in ((np.full((4, K), -32768, np.int16), np.full((2, K), -32768, np.int16)),
                   (rng.integers(-32768, 32768, (4, K)).astype(np.int16),
                    rng.integers(-32768, 32768, (2, K)).astype(np.int16)),
                   (rng.integers(0, 511, (4, K)).astype(np.int16),
                    rng.integers(-504, 505, (2, K)).astype(np.int16))):
        exact = col.astype(np.int64) @ w.T.astype(np.int64)
        want = [int(_wrap32(np.int64(v))) for v in exact.ravel()]  # (a, b) a-major
        got = [int(v) for v in block4x2_call(col, 0, w, 0, K)]
        gen = [int(v) for v in block4x2_generic(col, 0, w, 0, K)]
        assert got == want and gen == want


@pytest.mark.parametrize("K", [16, 32, 48, 80, 1152, 1168])
def test_every_gemm_block_variant_is_exact(K):
    """Each SIMD variant this host runs (AVX2 ymm vpmaddwd, AVX-512 zmm vpmaddwd /
    VNNI vpdpwssd with its ymm tail for K = 16 mod 32) equals the int64 dot product
    wrapped to int32, at random and extreme operands and at offsets p, o > 0.
    Issue 20: the integers never depend on the machine."""
    from fxlic.kernels.numba_kernels import _wrap32, variant_callers
    rng = np.random.default_rng(K + 1)
    cases = [(np.full((6, K), -32768, np.int16), np.full((3, K), -32768, np.int16)),
             (np.full((6, K), 32767, np.int16), np.full((3, K), -32768, np.int16)),
             (rng.integers(-32768, 32768, (6, K)).astype(np.int16),
              rng.integers(-32768, 32768, (3, K)).astype(np.int16))]
    for name, blk in variant_callers().items():
        for col, w in cases:
            for p, o in ((0, 0), (2, 1)):
                exact = col[p:p + 4].astype(np.int64) @ w[o:o + 2].T.astype(np.int64)
                want = [int(_wrap32(np.int64(v))) for v in exact.ravel()]
                assert [int(v) for v in blk(col, p, w, o, K)] == want, name


def test_nlq_u_table_saturates():
    """The O1 table is indexed by u clipped to NLQ_U - 1: the clip must already
    give the top code there (and for any larger u)."""
    from fxlic.kernels.numba_kernels import NLQ_U, _nlq_code, nlq_u_table
    seg = _mux_segment_tables()
    lut = nlq_u_table(*seg)
    seg_lo, seg_k, seg_code, nseg, maxl = seg
    for m in range(4):
        assert lut[m, NLQ_U // 2 + 8] == 255 and lut[m, NLQ_U - 1] == 255
        for u in (NLQ_U, 1 << 20, 1 << 40):
            assert _nlq_code(np.int64(u), 1, seg_lo[m], seg_k[m], seg_code[m], nseg[m], maxl[m]) == 255
        assert np.all(np.diff(lut[m]) >= 0)


def test_parallel_and_serial_twins_agree():
    """The prange kernels and their single-threaded twins (used for small
    layers) give identical accumulators and codes."""
    from fxlic.kernels import numba_kernels as nk
    rng = np.random.default_rng(3)
    x = rng.integers(-600, 600, (37, 29, 20)).astype(np.int16)
    w = rng.integers(-504, 505, (6, 5 * 5 * 20 + 12)).astype(np.int16)
    w[:, 500:] = 0
    b = rng.integers(-9999, 9999, 5).astype(np.int32)
    assert np.array_equal(nk.conv2d_acc_i16(x, w, b, 5, 2, 5), nk.conv2d_acc_i16_serial(x, w, b, 5, 2, 5))
    L = synthetic_layer("tconv", 5, 2, 20, 18, seed=1)  # 18 outputs: the im2col path (kernels.thin)
    be = get_backend("numba")
    from fxlic.kernels import split_shift
    from engine_util import layer_tables
    r, _ = split_shift(layer_tables(L)[0])
    w16, kph, taps, ntaps = be._weights(L, r)
    b18 = rng.integers(-9999, 9999, 18).astype(np.int32)
    assert np.array_equal(nk.tconv2d_acc_i16(x, w16, kph, taps, ntaps, b18, 5, 18),
                          nk.tconv2d_acc_i16_serial(x, w16, kph, taps, ntaps, b18, 5, 18))
    codes = rng.integers(0, 256, (20, 37, 29))
    t16 = rng.integers(-3000, 3000, (20, 256)).astype(np.int16)
    assert np.array_equal(nk.decode_levels_i16(codes, t16, 0), nk.decode_levels_i16_serial(codes, t16, 0))
