"""rANS coder: CompressAI byte compatibility, reference/Numba twins, round
trips, adversarial inputs, code length, corrupt-stream robustness
(docs/ENTROPY.md 3-7).

Tests with ``small`` in their name are also run once with NUMBA_DISABLE_JIT=1
(the Numba kernels as plain Python) and the fuzz tests once with
NUMBA_BOUNDSCHECK=1 (any out-of-bounds access in a kernel raises).
"""
from __future__ import annotations

import glob
import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fxlic.entropy import rans, rans_numba
from fxlic.entropy.cdf import build_gaussian_tables, gaussian_scale_table, pmf_to_quantized_cdf

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
GOLDEN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "rans_golden")
GOLDEN_CASES = sorted(os.path.basename(p)[:-4] for p in glob.glob(os.path.join(GOLDEN, "*.npz"))
                      if not p.endswith("pmf_to_cdf.npz"))
SMALL_GOLDEN = ["tiny", "short2", "short3", "short4", "short5", "escapes"]
CODERS = {"reference": rans, "numba": rans_numba}
INT32_MIN, INT32_MAX = -(1 << 31), (1 << 31) - 1


def load_case(name):
    with np.load(os.path.join(GOLDEN, f"{name}.npz"), allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def small_tables():
    """Three realistic tables + a 1-symbol table (size 3) + an escape-only one."""
    rows = [pmf_to_quantized_cdf([0.05, 0.2, 0.5, 0.2, 0.05], 1e-3),
            pmf_to_quantized_cdf(np.exp(-np.arange(30) / 3.0), 1e-4),
            pmf_to_quantized_cdf([0.3, 1e-7, 0.3, 0.4], 1e-9),
            pmf_to_quantized_cdf([1.0], 1e-9),
            np.array([0, 1 << 16])]
    w = max(r.size for r in rows)
    cdfs = np.zeros((len(rows), w), np.int32)
    for i, r in enumerate(rows):
        cdfs[i, : r.size] = r
    sizes = np.array([r.size for r in rows], np.int32)
    offs = np.array([-2, 0, 5, -7, 3], np.int32)
    return cdfs, sizes, offs


@pytest.fixture(scope="module")
def gauss():
    return build_gaussian_tables(gaussian_scale_table())


def gaussian_stream(n, seed, n_tables=64, spread=1.0):
    rng = np.random.default_rng(seed)
    st_ = gaussian_scale_table()
    idx = rng.integers(0, n_tables, n).astype(np.int32)
    sym = np.round(rng.normal(0, st_[idx] * spread)).astype(np.int32)
    return sym, idx


def both_encode(sym, idx, tables):
    a = rans.encode_with_indexes(sym, idx, *tables)
    b = rans_numba.encode_with_indexes(sym, idx, *tables)
    assert a == b
    return a


def both_decode(data, idx, tables, **kw):
    """Decode with both coders; they must agree on the output or the error."""
    res = []
    for coder in (rans, rans_numba):
        try:
            res.append(("ok", coder.decode_with_indexes(data, idx, *tables, **kw).tolist()))
        except ValueError as e:
            assert str(e).startswith("corrupt rANS stream"), str(e)
            res.append(("err", str(e)))
    assert res[0] == res[1]
    return res[0]


# --------------------------------------------------------------------------
# CompressAI golden vectors (tools/gen_rans_golden.py, CompressAI 1.2.8)
# --------------------------------------------------------------------------
@pytest.mark.parametrize("coder", ["reference", "numba"])
@pytest.mark.parametrize("case", [c for c in GOLDEN_CASES if c not in SMALL_GOLDEN])
def test_golden_compressai(case, coder):
    z = load_case(case)
    c = CODERS[coder]
    args = (z["cdfs"], z["cdf_sizes"], z["offsets"])
    data = c.encode_with_indexes(z["symbols"], z["indexes"], *args)
    assert data == z["stream"].tobytes()
    out = c.decode_with_indexes(z["stream"].tobytes(), z["indexes"], *args)
    assert np.array_equal(out, z["symbols"])


@pytest.mark.parametrize("coder", ["reference", "numba"])
@pytest.mark.parametrize("case", SMALL_GOLDEN)
def test_small_golden_compressai(case, coder):
    z = load_case(case)
    c = CODERS[coder]
    args = (z["cdfs"], z["cdf_sizes"], z["offsets"])
    assert c.encode_with_indexes(z["symbols"], z["indexes"], *args) == z["stream"].tobytes()
    out = c.decode_with_indexes(z["stream"].tobytes(), z["indexes"], *args)
    assert np.array_equal(out, z["symbols"])


def test_golden_present():
    assert {"tiny", "gaussian", "escapes", "degenerate", "random_tables"} <= set(GOLDEN_CASES)


def test_small_tiny_known_bytes():
    """The 'tiny' vector, spelled out (CompressAI 1.2.8 output)."""
    cdf = [0, 6554, 19661, 39322, 64881, 65536]
    data = rans_numba.encode_with_indexes([0, 1, 2, -5, 100, 3], [0] * 6, [cdf], [6], [0])
    assert data.hex() == "cf101f370a02000091b1fd1e"
    assert rans.encode_with_indexes([0, 1, 2, -5, 100, 3], [0] * 6, [cdf], [6], [0]) == data


# --------------------------------------------------------------------------
# Round trips and twins
# --------------------------------------------------------------------------
@pytest.mark.parametrize("seed", range(4))
def test_small_roundtrip_twins(seed):
    rng = np.random.default_rng(seed)
    tables = small_tables()
    n = 200
    idx = rng.integers(0, 5, n).astype(np.int32)
    sym = (tables[2][idx] + rng.integers(-4, 40, n)).astype(np.int32)
    data = both_encode(sym, idx, tables)
    assert both_decode(data, idx, tables) == ("ok", sym.tolist())


@pytest.mark.parametrize("seed", range(3))
def test_roundtrip_gaussian_twins(gauss, seed):
    sym, idx = gaussian_stream(20_000, seed, spread=1.5)
    data = both_encode(sym, idx, gauss)
    for c in (rans, rans_numba):
        assert np.array_equal(c.decode_with_indexes(data, idx, *gauss), sym)


def test_small_empty_stream():
    tables = small_tables()
    e = np.zeros(0, np.int32)
    data = both_encode(e, e, tables)
    assert data == (1 << 31).to_bytes(8, "little")  # just the flushed initial state
    for c in (rans, rans_numba):
        out = c.decode_with_indexes(data, e, *tables)
        assert out.dtype == np.int32 and out.size == 0


def test_small_single_symbol_tables():
    """size 2 (escape only, freq 2^16) and size 3 (one symbol + escape)."""
    cdfs = np.array([[0, 1 << 16, 0], [0, 65535, 1 << 16]], np.int32)
    sizes = np.array([2, 3], np.int32)
    offs = np.array([4, -9], np.int32)
    sym = np.array([4, 5, 3, -100, 1000, -9, -9, -8, -10, 7], np.int32)
    idx = np.array([0, 0, 0, 0, 0, 1, 1, 1, 1, 1], np.int32)
    data = both_encode(sym, idx, (cdfs, sizes, offs))
    assert both_decode(data, idx, (cdfs, sizes, offs)) == ("ok", sym.tolist())


def test_small_all_escaped_huge():
    """Every symbol escaped, magnitudes up to the int32 limits of value."""
    tables = small_tables()
    cdfs, sizes, offs = tables
    vals = [1 << 30, -(1 << 30), (1 << 30) + 12345, -(1 << 30) - 1, INT32_MAX, INT32_MIN,
            (1 << 28) - 1, 1 << 28, -(1 << 27), 15, 16, -16, -17, 255, 256]
    sym, idx = [], []
    for t in range(5):
        for v in vals:  # value = symbol - offset = v, clipped to the int32 symbol range
            s = int(np.clip(v + int(offs[t]), INT32_MIN, INT32_MAX))
            if INT32_MIN <= s - int(offs[t]) <= INT32_MAX:
                sym.append(s)
                idx.append(t)
    sym = np.array(sym, np.int32)
    idx = np.array(idx, np.int32)
    data = both_encode(sym, idx, tables)
    assert both_decode(data, idx, tables) == ("ok", sym.tolist())
    # 8 raw nibbles + count for the largest values: ~ 36+ bits each
    assert len(data) * 8 > 30 * len(sym)


def test_long_stream_1e6_numba(gauss):
    sym, idx = gaussian_stream(1_000_000, 7)
    data = rans_numba.encode_with_indexes(sym, idx, *gauss)
    assert np.array_equal(rans_numba.decode_with_indexes(data, idx, *gauss), sym)
    ideal = rans.estimate_bits(sym, idx, *gauss)
    assert 8 * len(data) >= ideal - 64
    assert 8 * len(data) <= 1.005 * ideal


def test_long_stream_reference_twin(gauss):
    sym, idx = gaussian_stream(100_000, 8, spread=2.0)  # ~1% escapes
    data = both_encode(sym, idx, gauss)
    assert np.array_equal(rans.decode_with_indexes(data, idx, *gauss), sym)
    ideal = rans.estimate_bits(sym, idx, *gauss)
    assert abs(8 * len(data) / ideal - 1) < 0.005


@pytest.mark.slow
def test_long_stream_1e6_reference_twin(gauss):
    sym, idx = gaussian_stream(1_000_000, 9)
    data = both_encode(sym, idx, gauss)
    assert np.array_equal(rans.decode_with_indexes(data, idx, *gauss), sym)


def test_small_estimate_bits_counts_bypass():
    cdfs = np.array([[0, 1 << 15, 1 << 16]], np.int32)  # symbol 0: 1 bit, escape: 1 bit
    sizes = np.array([3], np.int32)
    offs = np.array([0], np.int32)
    # value 0: 1 bit.  value 1 (= max_value): escape, raw 0 -> count 0: 1 + 4 bits.
    # value -1: raw 1 -> count 1, 1 nibble: 1 + 8 bits.  value 1 + 2^27: raw 2^28 -> 8 nibbles.
    sym = np.array([0, 1, -1, 1 + (1 << 27)], np.int32)
    idx = np.zeros(4, np.int32)
    assert rans.estimate_bits(sym, idx, cdfs, sizes, offs) == 1 + 5 + 9 + (1 + 4 + 32)
    # tables checked once by the caller (entropy.chunked): the same value
    from fxlic.entropy.common import check_tables
    assert rans.estimate_bits(sym, idx, cdfs, sizes, offs, checked=check_tables(cdfs, sizes, offs)) == 52


def test_small_argument_validation():
    cdfs, sizes, offs = small_tables()
    good = (cdfs, sizes, offs)
    for c in (rans, rans_numba):
        with pytest.raises(ValueError):
            c.encode_with_indexes([1, 2], [0], *good)  # length mismatch
        with pytest.raises(ValueError):
            c.encode_with_indexes([1], [5], *good)  # index out of range
        with pytest.raises(ValueError):
            c.encode_with_indexes([1], [-1], *good)
        with pytest.raises(ValueError):
            c.encode_with_indexes([1 << 31], [0], *good)  # symbol outside int32
        with pytest.raises(ValueError):
            c.encode_with_indexes([INT32_MAX], [3], *good)  # symbol - offset (-7) overflows
        with pytest.raises(TypeError):
            c.encode_with_indexes([1.5], [0], *good)
        bad = cdfs.copy()
        bad[0, 2] = bad[0, 1]  # zero frequency
        with pytest.raises(ValueError):
            c.encode_with_indexes([0], [0], bad, sizes, offs)
        bad = cdfs.copy()
        bad[1, sizes[1] - 1] = 65535  # does not end at 2^16
        with pytest.raises(ValueError):
            c.decode_with_indexes(b"\0" * 8, [1], bad, sizes, offs)
        with pytest.raises(ValueError):
            c.encode_with_indexes([0], [0], cdfs, np.array([1, 3, 3, 3, 2]), offs)  # size < 2
        with pytest.raises(ValueError):
            c.encode_with_indexes([0], [0], cdfs, sizes, offs[:2])


# --------------------------------------------------------------------------
# Hypothesis properties
# --------------------------------------------------------------------------
@st.composite
def table_sets(draw):
    n_tables = draw(st.integers(1, 4))
    rows = []
    for _ in range(n_tables):
        k = draw(st.integers(1, 12))
        pmf = draw(st.lists(st.floats(0, 1, allow_nan=False, width=32), min_size=k, max_size=k))
        tail = draw(st.floats(1e-4, 0.5))  # >= 2^-16: never an all-zero pmf
        rows.append(pmf_to_quantized_cdf(pmf, tail))
    w = max(r.size for r in rows)
    cdfs = np.zeros((n_tables, w), np.int32)
    for i, r in enumerate(rows):
        cdfs[i, : r.size] = r
    sizes = np.array([r.size for r in rows], np.int32)
    offs = np.array(draw(st.lists(st.integers(-1000, 1000), min_size=n_tables, max_size=n_tables)),
                    np.int32)
    return cdfs, sizes, offs


def draw_stream(tables, data):
    """(symbols int32, indexes int32): up to 60 puts, a third of them huge (escapes, long bypass runs)."""
    n_tables = tables[0].shape[0]
    n = data.draw(st.integers(0, 60))
    idx = np.array(data.draw(st.lists(st.integers(0, n_tables - 1), min_size=n, max_size=n)), np.int32)
    small = st.integers(-1100, 1100)
    big = st.integers(INT32_MIN + 1000, INT32_MAX - 1000)
    sym = np.array(data.draw(st.lists(st.one_of(small, small, big), min_size=n, max_size=n)), np.int32)
    return sym, idx


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tables=table_sets(), data=st.data())
def test_hypothesis_roundtrip_twins(tables, data):
    sym, idx = draw_stream(tables, data)
    enc = both_encode(sym, idx, tables)
    assert len(enc) % 4 == 0 and len(enc) >= 8
    assert both_decode(enc, idx, tables) == ("ok", sym.tolist())


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tables=table_sets(), data=st.data())
def test_hypothesis_small_estimate_chunk_twin(tables, data):
    """rans_numba.estimate_chunk (the estimate taken beside each encoded chunk)
    == rans.estimate_bits, escapes and long bypass runs included (float sums in
    another order: equal to 1e-12)."""
    sym, idx = draw_stream(tables, data)
    cdfs, sizes, offs = tables
    fast = rans_numba.estimate_chunk(sym.astype(np.int64), idx, cdfs, sizes, offs.astype(np.int64))
    assert fast == pytest.approx(rans.estimate_bits(sym, idx, *tables), rel=1e-12, abs=1e-9)


def test_small_estimate_chunk_edges():
    """The bypass count of estimate_bits' own edge test, one chunk and split."""
    cdfs, sizes, offs = small_tables()
    sym = np.array([offs[0], offs[0] - 1, offs[0] + 3, offs[4], INT32_MAX - 5, INT32_MIN + 9], np.int64)
    idx = np.array([0, 0, 0, 4, 1, 2], np.int32)
    want = rans.estimate_bits(sym, idx, cdfs, sizes, offs)
    o64 = offs.astype(np.int64)
    assert rans_numba.estimate_chunk(sym, idx, cdfs, sizes, o64) == pytest.approx(want, rel=1e-12)
    parts = sum(rans_numba.estimate_chunk(sym[a:b], idx[a:b], cdfs, sizes, o64) for a, b in ((0, 2), (2, 6)))
    assert parts == pytest.approx(want, rel=1e-12)
    assert rans_numba.estimate_chunk(sym[:0], idx[:0], cdfs, sizes, o64) == 0.0


@settings(max_examples=150, deadline=None)
@given(tables=table_sets(), raw=st.binary(min_size=0, max_size=64), data=st.data())
def test_hypothesis_fuzz_decode_never_crashes(tables, raw, data):
    n = data.draw(st.integers(0, 40))
    idx = np.array(data.draw(st.lists(st.integers(0, tables[0].shape[0] - 1), min_size=n, max_size=n)),
                   np.int32)
    strict = data.draw(st.booleans())
    both_decode(raw, idx, tables, strict=strict)


# --------------------------------------------------------------------------
# Corrupt / truncated / random input
# --------------------------------------------------------------------------
def _fuzz(n_cases, seed):
    rng = np.random.default_rng(seed)
    tables = small_tables()
    n = 60
    idx = rng.integers(0, 5, n).astype(np.int32)
    sym = (tables[2][idx] + rng.integers(-3, 30, n)).astype(np.int32)
    sym[::7] += rng.integers(-(1 << 20), 1 << 20, sym[::7].size).astype(np.int32)
    good = rans_numba.encode_with_indexes(sym, idx, *tables)
    outcomes = {"ok": 0, "err": 0}
    for k in range(n_cases):
        kind = k % 4
        b = bytearray(good)
        if kind == 0:  # truncation (any length)
            b = b[: rng.integers(0, len(b))]
        elif kind == 1:  # bit flips
            for _ in range(rng.integers(1, 4)):
                j = rng.integers(0, len(b))
                b[j] ^= 1 << int(rng.integers(0, 8))
        elif kind == 2:  # random bytes
            b = bytearray(rng.integers(0, 256, int(rng.integers(0, 80))).astype(np.uint8).tobytes())
        else:  # words appended / removed in the middle
            j = int(rng.integers(2, len(b) // 4)) * 4
            b = b[:j] + bytes(rng.integers(0, 256, 4).astype(np.uint8)) + b[j:] if k % 8 == 3 \
                else b[:j] + b[j + 4:]
        kind_out, _ = both_decode(bytes(b), idx, tables, strict=bool(k % 3))
        outcomes[kind_out] += 1
    return outcomes


def test_fuzz_small_corrupt_streams():
    out = _fuzz(3000, 11)
    assert out["err"] > 1000  # most corruptions are detected


def test_small_truncated_and_tail_errors():
    tables = small_tables()
    idx = np.array([0, 1, 2, 3, 4] * 10, np.int32)
    sym = (tables[2][idx] + 1000).astype(np.int32)  # all escaped, many words
    good = rans_numba.encode_with_indexes(sym, idx, *tables)
    for c in (rans, rans_numba):
        for cut in range(0, len(good), 4):
            with pytest.raises(ValueError, match="corrupt rANS stream"):
                c.decode_with_indexes(good[:cut], idx, *tables)
        with pytest.raises(ValueError, match="corrupt rANS stream"):
            c.decode_with_indexes(good + b"\0\0\0\0", idx, *tables)  # left-over words
        assert np.array_equal(c.decode_with_indexes(good + b"\0\0\0\0", idx, *tables, strict=False), sym)
        with pytest.raises(ValueError, match="corrupt rANS stream"):
            c.decode_with_indexes(good[:-1], idx, *tables)  # not a multiple of 4
        with pytest.raises(ValueError, match="initial state"):
            c.decode_with_indexes(b"\xff" * 8, idx[:0], *tables)
        with pytest.raises(ValueError, match="initial state"):
            c.decode_with_indexes(b"\0" * 8, idx[:0], *tables)


# --------------------------------------------------------------------------
# Numba as plain Python; Numba with bounds checking
# --------------------------------------------------------------------------
def _run_pytest(env_extra, kexpr, tmp_path):
    env = dict(os.environ)
    env.update(env_extra)
    env["NUMBA_CACHE_DIR"] = str(tmp_path / "numba_cache")  # never reuse unchecked builds
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    r = subprocess.run([sys.executable, "-m", "pytest", os.path.abspath(__file__), "-q", "-x",
                        "-p", "no:cacheprovider", "-k", kexpr],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert " passed" in r.stdout


def test_subprocess_numba_disable_jit(tmp_path):
    if os.environ.get("NUMBA_DISABLE_JIT") == "1":
        pytest.skip("already without JIT")
    _run_pytest({"NUMBA_DISABLE_JIT": "1"}, "small and not subprocess and not fuzz", tmp_path)


@pytest.mark.slow  # ~20 s: recompiles every kernel with bounds checking
def test_subprocess_numba_boundscheck(tmp_path):
    if os.environ.get("NUMBA_DISABLE_JIT") == "1" or os.environ.get("NUMBA_BOUNDSCHECK") == "1":
        pytest.skip("nested run")
    _run_pytest({"NUMBA_BOUNDSCHECK": "1"}, "(fuzz or small) and not subprocess", tmp_path)
