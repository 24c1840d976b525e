"""The fused output stage (issue 20, session 7) == the reference.

Without ``want_acc`` the implicit-GEMM paths run decode + conv/tconv + output
stage in one kernel (``NumbaBackend._fused``): O1 / O2 in registers on the OC
blocks (``oc_block_codes``, twin ``oc_block_codes_generic`` / ``stage32``), any
other stage per tile (``stage_tile``), intermediate activations written
channels-last and decoded from there by the next layer (``decode_hwc_i16_pad``).
Every form must give the reference's codes (SPEC O1-O4) exactly, on random and
edge inputs: int32 accumulator ends, rounding ties, NLQ segment boundaries and
clip points, shifts from -3 to 70, odd shapes, zero-size.  Also run under
NUMBA_DISABLE_JIT=1 by test_disable_jit_subprocess.
"""
import os
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest

from engine_util import layer_tables, small_model, synthetic_layer
from fxlic.kernels import NumbaBackend, channels_last, get_backend, reference as ref, split_shift, stage_prm, thin
from fxlic.kernels import numba_kernels as nk
from fxlic.model.int_forward import encode, hyper_decode, pad_to_multiple, synthesize
from fxlic.quant.codebook import act_nlq

NOJIT = bool(os.environ.get("NUMBA_DISABLE_JIT"))
SHAPES = [(1, 1), (2, 3), (5, 4), (3, 17)] + ([] if NOJIT else [(9, 7), (6, 37), (2, 70)])
I32 = (-(1 << 31), (1 << 31) - 1)

#: (op, k, stride, cin, cout): the OC path (conv / tconv, O a multiple of 16)
#: and the few-output path (tconv, O < 16)
LAYERS = [
    ("conv", 5, 2, 3, 16),    # AT0-like
    ("conv", 5, 2, 7, 32),    # odd k * C
    ("conv", 1, 1, 8, 48),    # 1x1, a partial OC block
    ("conv", 3, 1, 5, 16),    # HA0 / HS2-like, odd C
    ("tconv", 5, 2, 5, 16),   # ST0-ST2-like
    ("tconv", 1, 2, 4, 16),   # phases without taps: bias only
    ("tconv", 5, 2, 8, 3),    # ST3
    ("tconv", 3, 2, 5, 1),
]
#: (act, out, signed input): O1, O2 leaky / plain, O3 (mu), O4
STAGES = [("relu", "act", False), ("leaky", "act", True), ("none", "act", True),
          ("none", "y", True), ("none", "ms", True), ("none", "pixel", False)]


def _ids(cfg):
    return "-".join(str(v) for v in cfg)


def _layer(cfg, act, out, seed, **kw):
    op, k, stride, cin, cout = cfg
    if out != "act" and "out_exp" not in kw:
        kw["out_exp"] = np.full(cout, -8)
    return synthetic_layer(op, k, stride, cin, cout, act=act, out=out, seed=seed, **kw)


def _run(L, x, backend, signed, mu=None, want_acc=False):
    tables, off = layer_tables(L, signed)
    mu = np.zeros(L.spec.cout, np.int64) if mu is None else mu
    be = get_backend(backend) if isinstance(backend, str) else backend
    return be.layer(L, x, tables, off, mu, want_acc=want_acc)


# ---- whole layers -------------------------------------------------------------

@pytest.mark.parametrize("cfg", LAYERS, ids=_ids)
@pytest.mark.parametrize("H,W", SHAPES)
def test_fused_layers_match_reference(cfg, H, W):
    """want_acc=False (the fused kernels) == the reference, for every output
    kind; activations and HS5's codes (O2, 8-bit) come back as int16
    channels-last views on the OC path, the rest int64 C-contiguous."""
    rng = np.random.default_rng(H * 100 + W + cfg[4])
    for act, out, signed in STAGES:
        L = _layer(cfg, act, out, int(rng.integers(1 << 30)))
        x = rng.integers(-128 if signed else 0, 128 if signed else 256, (cfg[3], H, W))
        mu = rng.integers(-128, 128, cfg[4]) if out == "y" else None
        want = _run(L, x, "reference", signed, mu, want_acc=True)[0]
        got, acc = _run(L, x, "numba", signed, mu)
        assert acc is None and got.shape == want.shape
        assert np.array_equal(want, got), (cfg, act, out)
        if out == "act" or (out == "ms" and thin.path_of(L.spec) == "oc"):
            assert got.dtype == np.int16
            assert (channels_last(got) is not None) or got.flags.c_contiguous
        else:
            assert got.dtype == np.int64 and got.flags.c_contiguous


@pytest.mark.parametrize("pattern", ["max", "min", "alternating"])
@pytest.mark.parametrize("act", ["relu", "leaky"])
@pytest.mark.parametrize("cfg", [LAYERS[0], LAYERS[2], LAYERS[4]], ids=_ids)
def test_fused_layers_at_saturation(pattern, act, cfg):
    """Weight levels +-504, inputs at the largest int16 operand (255 << 6), out
    shifts from -3 (every nonzero code saturates) to 40 (everything rounds to
    0): accumulators near +-2^31, both saturation ends of O1 and O2."""
    op, k, stride, cin, cout = cfg
    idx = np.indices((cout, cin, k, k)).sum(axis=0)
    w = {"max": np.full((cout, cin, k, k), 127), "min": np.full((cout, cin, k, k), -127),
         "alternating": np.where(idx % 2, 127, -127)}[pattern]
    in_exp = np.full(cin, -10)
    in_exp[0] = -4
    out_exp = np.resize(np.array([-2, 10, 2, 5, 30, -30, 1, 0]), cout) + np.full(cout, -18)
    L = synthetic_layer(op, k, stride, cin, cout, act=act, w_codes=w, bias=np.full(cout, -7),
                        in_exp=in_exp, out_exp=out_exp)
    seen = set()
    for x in (np.full((cin, 7, 6), 255, np.int64), np.zeros((cin, 7, 6), np.int64)):
        want = _run(L, x, "reference", False, want_acc=True)[0]
        got = _run(L, x, "numba", False)[0]
        assert np.array_equal(want, got)
        seen.update(want.ravel().tolist())
    lo, hi = L.output_code_range()
    assert {"max": hi, "min": lo}.get(pattern, lo) in seen and len(seen) > 1 or pattern == "min"
    assert lo in seen  # the saturation end of the sign (relu: 0 for negative accumulators)


@pytest.mark.parametrize("cfg", [LAYERS[0], LAYERS[4], LAYERS[6]], ids=_ids)
def test_channels_last_codes_feed_every_path(cfg):
    """A fused layer's channels-last output read by the next layer on every
    path: fused, accumulate (want_acc), im2col (8 outputs), the general int32
    path and the reference -- all equal to the reference fed the same codes."""
    rng = np.random.default_rng(cfg[4])
    op, k, stride, cin, cout = cfg
    first = _layer(("conv", 3, 1, 3, 16), "relu", "act", 5)
    x0 = rng.integers(0, 256, (3, 11, 9))
    codes = _run(first, x0, "numba", False)[0]
    assert channels_last(codes) is not None
    plain = np.ascontiguousarray(codes).astype(np.int64)
    nxt = [_layer((op, k, stride, 16, cout), a, o, 9) for a, o, _ in STAGES if not (a == "none" and o == "act")]
    nxt.append(_layer(("conv", 3, 2, 16, 8), "relu", "act", 11))  # im2col
    for L in nxt:
        want = _run(L, plain, "reference", False, want_acc=True)
        for be in (get_backend("numba"), NumbaBackend(fast=False), NumbaBackend(fused=False)):
            got = _run(L, codes, be, False)
            assert np.array_equal(want[0], got[0]), (L.spec, be.fast, be.fused)
            got = _run(L, codes, be, False, want_acc=True)
            assert np.array_equal(want[0], got[0]) and np.array_equal(want[1], got[1])


def test_zero_size_layers():
    """Zero input rows or columns: empty codes of the layer's output shape, as
    the unfused path gives them (the reference has no zero-size form)."""
    for cfg in (LAYERS[0], LAYERS[4], LAYERS[6]):
        for act, out, signed in STAGES[:2] + STAGES[4:]:
            L = _layer(cfg, act, out, 3)
            for H, W in ((0, 4), (3, 0), (0, 0)):
                x = np.zeros((cfg[3], H, W), np.int64)
                want = _run(L, x, NumbaBackend(fused=False), signed)[0]
                got = _run(L, x, "numba", signed)[0]
                Ho, Wo = L.spec.out_hw(H, W) if cfg[0] == "conv" else (2 * H, 2 * W)
                assert got.shape == want.shape == (cfg[4], Ho, Wo)
                # HS5's codes: int16 on the in-register path (test_fused_layers_match_reference)
                assert got.dtype == (np.int16 if out == "ms" and thin.path_of(L.spec) == "oc" else want.dtype)


# ---- the stage forms on their own -----------------------------------------------

def _acc_values(s):
    """int32 accumulators around every tie, NLQ boundary and clip point at shift s,
    plus the int32 ends."""
    pts = set()
    for m in range(4):
        cb = act_nlq(m)
        for seg in cb.segments:
            for b in (seg.lo, seg.hi):
                pts.update(2 * b + f for f in range(-3, 4))
        pts.update(2 * int(v) + f for v in cb.levels[::5] for f in (-1, 0, 1))
        pts.update((2 * cb.max_level + 1, 2 * cb.max_level + 3, 4 * cb.max_level))
    pts.update(range(-300, 300, 1 if NOJIT else 1))
    pts.update(range(-(1 << 10), 1 << 10, 7))
    p = np.array(sorted(pts), np.int64)
    vals = [p << (s - 1) if s >= 1 else p >> min(-s + 1, 62), p, -p]
    ends = np.array([I32[0], I32[0] + 1, -(1 << 30) - 1, -(1 << 30), 1 << 30, (1 << 30) - 1, I32[1] - 1, I32[1],
                     -1, 0, 1], np.int64)
    v = np.unique(np.concatenate(vals + [ends]))
    return v[(v >= I32[0]) & (v <= I32[1])]


SHIFTS = [-3, -1, 0, 1, 2, 5, 11, 30, 31, 32, 33, 40, 63, 64, 70]


def _ref_stage(kind, leaky, acc, s, mux, mu):
    a = acc[None, :, None]
    if kind == 0:
        return ref.out_relu_nlq(a, np.array([s]), np.array([mux])).ravel()
    if kind == 1:
        return ref.out_signed_lq(a, np.array([s]), leaky).ravel()
    if kind == 2:
        return ref.out_latent(a, np.array([s]), np.array([mu])).ravel()
    return ref.out_pixel(a, np.array([s])).ravel()


def _stage_layer(kind, leaky, shift, mux):
    act = "relu" if kind == 0 else ("leaky" if leaky else "none")
    return SimpleNamespace(out_kind=kind, out_shift=np.asarray(shift, np.int64), mux=np.asarray(mux, np.int64),
                           spec=SimpleNamespace(act=act))


@pytest.mark.parametrize("s", SHIFTS)
def test_stage32_and_stage_tile_match_reference_stages(s):
    """The plain twin of the in-register stage (stage32, O1 / O2) and the per-tile
    stage (stage_tile, O1-O4, both layouts) == reference O1-O4 on every
    accumulator of _acc_values."""
    acc = _acc_values(s)
    n = len(acc)
    lut = NumbaBackend()._lut16()
    tile = acc.astype(np.int32)
    for kind, leaky, mux, mu in ([(0, False, m, 0) for m in range(4)] + [(1, False, 0, 0), (1, True, 0, 0)]
                                 + [(2, False, 0, v) for v in (-128, -3, 0, 127)] + [(3, False, 0, 0)]):
        want = _ref_stage(kind, leaky, acc, s, mux, mu)
        lo, hi = {0: (0, 255), 3: (0, 255)}.get(kind, (-128, 127))
        if kind in (0, 1):
            prm = stage_prm(_stage_layer(kind, leaky, [s], [mux]), 1)
            got = np.array([nk.stage32(kind, np.int64(a), prm, 0, lo, hi) for a in acc.tolist()])
            assert np.array_equal(want, got), ("stage32", kind, leaky, mux)
        sa, sb, sc = nk.stage_params(kind, leaky, np.full(n, s), np.full(n, mux), np.full(n, mu))
        for ocs in (1, 3):  # one pixel of n channels, channel stride 1 (channels-last) or 3
            out = np.full(3 * n, 999, np.int64)
            nk.stage_tile(tile, 1, n, kind, sa, sb, sc, lut, lo, hi, out, 0, n, ocs)
            assert np.array_equal(want, out[::ocs][:n]), ("stage_tile", kind, leaky, mux, mu, ocs)
        # several pixels of one channel, the (O, Ho, Wo) form
        out16 = np.full(n, 999, np.int16)
        nk.stage_tile(tile, n, 1, kind, sa[:1], sb[:1], sc[:1], lut, lo, hi, out16, 0, 1, 1)
        assert np.array_equal(want, out16.astype(np.int64))


def _operand_cases(rng, n):
    return [np.zeros(n, np.int16), np.full(n, -32768, np.int16), np.full(n, 32767, np.int16),
            rng.integers(-32768, 32768, n).astype(np.int16), rng.integers(-40, 40, n).astype(np.int16)]


@pytest.mark.parametrize("levels", [False, True], ids=["codes", "levels"])
@pytest.mark.parametrize("kind,leaky", [(0, False), (1, True), (1, False)])
@pytest.mark.parametrize("nps,nout", [(1, 16), (3, 48), (7, 64), (2, 80)])
def test_every_oc_block_codes_variant_is_exact(kind, leaky, nps, nout, levels):
    """oc_block_codes of every variant (generic, AVX2, AVX-512 / VNNI) == the
    reference stage of bias + the int64 dot products wrapped to int32, stored
    as int16 only for pixels < npix and outputs < nout; per-channel shifts and
    muxes of every kind of value (SHIFTS, the four codebooks); with zero
    operands the accumulator is the bias, which sweeps ties and int32 ends.
    ``kind | LEVELS``: the code's level (its NLQ codebook's, or the O2 code)
    shifted by the per-channel (lsh, rsh) of prm rows 10, 11 instead."""
    rng = np.random.default_rng(nps * 100 + nout + kind)
    segs = np.array([0, 301], np.int64)
    cols = 2 * 128
    shift = np.resize(np.array(SHIFTS), 128)
    rng.shuffle(shift)
    mux = rng.integers(0, 4, 128)
    prm = stage_prm(_stage_layer(kind, leaky, shift, mux), 128).copy()
    lsh, rsh = rng.integers(0, 7, 128), rng.integers(0, 4, 128)
    if levels:
        prm[10], prm[11] = lsh, rsh
    luts = np.stack([act_nlq(m).lut() for m in range(4)])

    def stored(code, oo):
        if not levels:
            return code
        lv = luts[mux[oo], code] if kind == 0 else code
        return (int(lv) << int(lsh[oo])) >> int(rsh[oo])
    lo, hi = (0, 255) if kind == 0 else (-128, 127)
    ends = np.array([I32[0], I32[1], -1, 0, 1, 3 << 20, -(3 << 20), 1 << 30, (1 << 30) - 1], np.int64)
    for name, (blk, block) in nk.codes_variant_callers().items():
        for ci, (x, wv) in enumerate(zip(_operand_cases(rng, 900), _operand_cases(rng, 2 * nps * cols))):
            wpk = wv.reshape(2 * nps, cols)
            bias = rng.integers(I32[0], I32[1] + 1, 128)
            if ci == 0:  # zero operands: the bias is the accumulator
                bias[:len(ends)] = ends
                bias[len(ends):] = (rng.integers(-(1 << 12), 1 << 12, 128 - len(ends)) * 2 + 1) << \
                    np.clip(shift[len(ends):] - 1, 0, 18)
            bias = bias.astype(np.int32)
            for base, pstep, npix, o in ((0, 6, 4, 0), (3, 41, 2, 16), (9, 2, 1, 0), (5, 17, 3, 64)):
                if o + block > 128 or o >= nout:
                    continue
                out = np.full(8 * 200, 12345, np.int16)
                wblk = np.ascontiguousarray(wpk[:, 2 * o:2 * (o + block)])  # the block's own weights
                blk(x, base, pstep, npix, segs, nps, wblk, o, bias, kind | (nk.LEVELS if levels else 0), prm,
                    lo, hi, out, 7, 200, nout)
                want = np.full(8 * 200, 12345, np.int64)
                w = wpk.reshape(2 * nps, 128, 2).transpose(0, 2, 1).reshape(4 * nps, 128).astype(np.int64)
                for a in range(npix):
                    e = np.concatenate([x[base + a * pstep + s:base + a * pstep + s + 2 * nps] for s in segs])
                    for oo in range(o, min(o + block, nout)):
                        acc = int(nk._wrap32(np.int64(bias[oo]) + e.astype(np.int64) @ w[:, oo]))
                        want[7 + a * 200 + oo] = stored(_ref_stage(kind, leaky, np.array([acc]), int(shift[oo]),
                                                                   int(mux[oo]), 0)[0], oo)
                assert np.array_equal(out.astype(np.int64), want), (name, ci, npix, o)


def test_decode_hwc_i16_pad():
    """decode_hwc_i16_pad of channels-last codes == decode_levels_i16_pad of the
    same codes (C, H, W), every pad, odd channel counts, its serial twin, and the
    backend's pick of the decode by layout (``channels_last``)."""
    rng = np.random.default_rng(3)
    for C, H, W in ((5, 4, 7), (1, 3, 2), (16, 1, 1), (3, 0, 4)):
        codes = rng.integers(0, 256, (C, H, W))
        t16 = rng.integers(-32768, 32768, (C, 256)).astype(np.int16)
        for dt in (np.int16, np.int64):
            hwc = np.ascontiguousarray(codes.transpose(1, 2, 0)).astype(dt)
            for pad in (0, 1, 2):
                want = nk.decode_levels_i16_pad(codes, t16, 0, pad, nk.SLACK)
                assert np.array_equal(nk.decode_hwc_i16_pad(hwc, t16, 0, pad, nk.SLACK), want)
                assert np.array_equal(nk.decode_hwc_i16_pad_serial(hwc, t16, 0, pad, nk.SLACK), want)
                buf, _ = NumbaBackend._padded(pad, hwc.transpose(2, 0, 1), t16, 0)
                assert np.array_equal(buf, want)
    signed = rng.integers(-128, 128, (4, 3, 5))
    t16 = rng.integers(-999, 999, (4, 256)).astype(np.int16)
    hwc = np.ascontiguousarray(signed.transpose(1, 2, 0)).astype(np.int16)
    assert np.array_equal(nk.decode_hwc_i16_pad(hwc, t16, 128, 1, 0), nk.decode_levels_i16_pad(signed, t16, 128, 1, 0))


def test_channels_last_detection():
    a = np.zeros((4, 3, 5), np.int16)
    assert channels_last(a) is None  # C-contiguous (C, H, W): read as it is
    v = np.zeros((3, 5, 4), np.int16).transpose(2, 0, 1)
    assert channels_last(v) is not None and channels_last(v).shape == (3, 5, 4)
    assert channels_last(v[:, 1:]) is not None and channels_last(v[:, :, 1:]) is None
    assert channels_last(np.zeros((2, 3))) is None and channels_last([[[1]]]) is None


@pytest.mark.skipif(NOJIT, reason="twins are the same Python code without JIT")
def test_parallel_and_serial_fused_twins_agree():
    be = get_backend("numba")
    rng = np.random.default_rng(9)
    for cfg in (LAYERS[0], LAYERS[4], LAYERS[6]):
        L = _layer(cfg, "relu", "act", 4)
        tables, off = layer_tables(L)
        r, t16 = split_shift(tables)
        prep = be._weights(L, r)
        codes = rng.integers(0, 256, (cfg[3], 23, 18))
        buf, Wp = be._padded(prep[0], codes, t16, off)
        C, O = cfg[3], cfg[4]
        lut = be._lut16()
        sa, sb, sc = nk.stage_params(0, False, L.out_shift, L.mux, np.zeros(O, np.int64))
        if cfg[0] == "conv":
            _, wpk, nps, bias = prep
            Ho, Wo = L.spec.out_hw(23, 18)
            args = (buf, Wp, C, cfg[2], Ho, Wo, np.arange(cfg[1]) * Wp * C, nps, wpk, bias, O, 0)
            n = Ho * Wo * O
            prm = stage_prm(L, len(bias))
            assert np.array_equal(nk.conv2d_codes_oc(*args, prm, 0, 255, 0, np.empty(n, np.int16)),
                                  nk.conv2d_codes_oc_serial(*args, prm, 0, 255, 0, np.empty(n, np.int16)))
            for chw in (False, True):
                st = args + (sa, sb, sc, lut, 0, 255, chw)
                assert np.array_equal(nk.conv2d_stage_oc(*st, np.empty(n, np.int64)),
                                      nk.conv2d_stage_oc_serial(*st, np.empty(n, np.int64)))
        else:
            few = thin.path_of(L.spec) == "few"
            args = (buf, 23, 18, C, prep[0]) + tuple(prep[1:]) + (O,)
            n = 4 * 23 * 18 * O
            if not few:
                prm = stage_prm(L, len(prep[-1]))
                assert np.array_equal(nk.tconv2d_codes_phases(*args, 0, prm, 0, 255, 0, np.empty(n, np.int16)),
                                      nk.tconv2d_codes_phases_serial(*args, 0, prm, 0, 255, 0, np.empty(n, np.int16)))
            for chw in (False, True):
                st = args + (few, 0, sa, sb, sc, lut, 0, 255, chw)
                assert np.array_equal(nk.tconv2d_stage_phases(*st, np.empty(n, np.int64)),
                                      nk.tconv2d_stage_phases_serial(*st, np.empty(n, np.int64)))


# ---- operands stored for the next layer (Predecoded) ------------------------------

def _consumer_pairs(model, names):
    """(producer, consumer) layer names where the consumer is the one reader."""
    readers = {}
    for l in model.arch.layers:
        readers.setdefault(l.src, []).append(l.name)
    return [(a, b) for a, b in zip(names, names[1:]) if model.layer(a).spec.out == "act" and readers[a] == [b]]


def _pair_inputs(model, px):
    """{layer: its input codes} of one encode + decode (a recording hook)."""
    rec = {}

    def hook(name, inp, acc, out):
        rec[name] = inp
    hook.wants_acc = False
    e = encode(model, px, "numba", hook)
    synthesize(model, e.y, e.mu, "numba", hook)
    return rec


@pytest.mark.skipif(NOJIT, reason="slow without JIT")
@pytest.mark.parametrize("kw", [{}, {"latents": "offset"}], ids=["plain", "offset"])
def test_stored_operands_are_the_decode_of_the_codes(kw):
    """A producer given its consumer (``into``) returns a Predecoded whose buffer
    is exactly ``_padded`` of the codes it would have written (border, slack and
    all), for every producer / consumer pair of the network; the consumer then
    gives the codes it gives from the codes."""
    from fxlic.kernels import Predecoded
    from fxlic.model.int_forward import input_tables
    m = small_model(N=16, seed=2, **kw)
    px = pad_to_multiple(np.random.default_rng(4).integers(0, 256, (3, 48, 80), dtype=np.uint8),
                         m.arch.pad_multiple)
    ins = _pair_inputs(m, px)
    names = [l.name for l in m.arch.layers]
    be = NumbaBackend()
    pairs = _consumer_pairs(m, names)
    assert len(pairs) >= 8
    made = 0
    for a, b in pairs:
        La, Lb = m.layer(a), m.layer(b)
        ta, oa = input_tables(m, a, None)
        tb, ob = input_tables(m, b, None)
        codes, _ = be.layer(La, ins[a], ta, oa, np.zeros(La.spec.cout, np.int64))
        pre, _ = be.layer(La, ins[a], ta, oa, np.zeros(La.spec.cout, np.int64), into=(Lb, tb, ob))
        if not isinstance(pre, Predecoded):
            continue
        made += 1
        r, t16 = split_shift(tb)
        assert pre.t16 is t16 and pre.shape == np.shape(codes)
        want, wp = NumbaBackend._padded(pre.pad, codes, t16, ob)
        assert wp == pre.Wp and np.array_equal(pre.buf, want), (a, b)
        mu = np.zeros(Lb.spec.cout, np.int64)
        u, _ = be.layer(Lb, codes, tb, ob, mu)
        v, _ = be.layer(Lb, pre, tb, ob, mu)
        assert np.array_equal(np.asarray(u), np.asarray(v)), (a, b)
    assert made >= 6


def test_level_operand_rows_refuse_other_tables():
    """The stored operands are a shift of the levels, checked on every code:
    a table that is no such shift (one entry off) gets None, and then the
    producer writes codes; a Predecoded fed to another layer's operands is an
    error, never silent."""
    from fxlic.kernels import Predecoded, level_operand_rows
    L = _stage_layer(0, False, np.zeros(16, np.int64), np.arange(16) % 4)
    L.spec.cout = 16
    L.output_code_range = lambda: (0, 255)
    t = (np.stack([act_nlq(m).lut() for m in np.arange(16) % 4]) << 3).astype(np.int16)
    assert level_operand_rows(L, t, 0, 64) is not None
    bad = t.copy()
    bad[5, 200] += 8
    assert level_operand_rows(L, bad, 0, 64) is None
    p = Predecoded(np.zeros(10, np.int16), 3, 1, (16, 1, 1), t, 0)
    with pytest.raises(RuntimeError):
        NumbaBackend._padded(1, p, bad, 0)


@pytest.mark.skipif(NOJIT, reason="slow without JIT")
def test_shipped_models_store_operands_on_every_pair():
    """On every shipped model each producer / consumer pair of the fast paths
    hands over operands (the in-register form covers them all)."""
    import glob
    from fxlic.io.modelfile import load_model
    from fxlic.kernels import Predecoded
    from fxlic.model.int_forward import input_tables
    be = NumbaBackend()
    for f in sorted(glob.glob(os.path.join(os.path.dirname(nk.__file__), "..", "zoo", "*.fxq"))):
        m = load_model(f)
        names = [l.name for l in m.arch.layers]
        x = np.random.default_rng(0).integers(0, 256, (3, 64, 64), dtype=np.uint8)
        ins = _pair_inputs(m, x)
        for a, b in _consumer_pairs(m, names):
            La, Lb = m.layer(a), m.layer(b)
            ta, oa = input_tables(m, a, None)
            pre, _ = be.layer(La, ins[a], ta, oa, np.zeros(La.spec.cout, np.int64),
                              into=(Lb,) + input_tables(m, b, None))
            assert isinstance(pre, Predecoded), (f, a, b)


# ---- whole networks -------------------------------------------------------------

@pytest.mark.skipif(NOJIT, reason="slow without JIT")
@pytest.mark.parametrize("kw", [{}, {"latents": "offset"}], ids=["plain", "offset"])
def test_small_model_without_hooks_matches_reference(kw):
    """encode / hyper_decode / synthesize with no hook (the fused path on every
    layer that can take it) == the reference, and == the unfused backend."""
    m = small_model(N=16, seed=2, **kw)
    px = pad_to_multiple(np.random.default_rng(1).integers(0, 256, (3, 80, 48), dtype=np.uint8),
                         m.arch.pad_multiple)
    outs = []
    for be in ("reference", get_backend("numba"), NumbaBackend(fused=False)):
        e = encode(m, px, be)
        outs.append((e.y, e.z, e.ms, hyper_decode(m, e.z, be), synthesize(m, e.y, e.mu, be)))
    for o in outs[1:]:
        for i, (u, v) in enumerate(zip(outs[0], o)):
            assert np.array_equal(u, v)
            # HS5's 8-bit codes (e.ms, hyper_decode) are int16 on the in-register path
            assert u.dtype == v.dtype or (i in (2, 3) and v.dtype == np.int16)


@pytest.mark.skipif(NOJIT, reason="already without JIT")
def test_disable_jit_subprocess():
    """The same kernels as plain Python (NUMBA_DISABLE_JIT=1: generic blocks).
    The channels-last feed runs on one conv and one tconv configuration here
    (the 5x5 tconv with 16 outputs alone took 47 of 103 s as plain Python)."""
    env = dict(os.environ, NUMBA_DISABLE_JIT="1")
    here = os.path.dirname(__file__)
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider",
                        os.path.join(here, "test_kernels_fused.py"),
                        "-k", "(not match_reference or 1-1 or 2-3 or 3-17 or stage) "
                              "and not feed_every_path[tconv-5-2-5-16]"],
                       env=env, capture_output=True, text=True, timeout=900, cwd=here)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
