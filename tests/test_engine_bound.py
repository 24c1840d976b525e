"""Overflow is proven, not hoped (SPEC A3): the loader refuses a model whose
worst-case accumulator exceeds int32; a layer driven to exactly 2^31 - 1 does
not wrap in either backend."""
import numpy as np
import pytest

from engine_util import small_model, synthetic_layer
from fxlic.model.intmodel import ModelError, accumulator_bound
from fxlic.spec import INT32_MAX


def _copy(model):
    import copy
    return copy.deepcopy(model)


def test_valid_model_passes_and_bound_below_int32():
    m = small_model("hyperprior", N=8, seed=3)
    m.validate()
    for name in m.layers:
        assert accumulator_bound(m, name).max() <= INT32_MAX


def test_model_with_huge_bias_is_refused():
    m = _copy(small_model("hyperprior", N=8, seed=3))
    m.layers["AT1"].bias[2] = INT32_MAX - 5
    with pytest.raises(ModelError, match="AT1.*output channel 2"):
        m.validate()


def test_model_with_wide_exponent_spread_is_refused():
    m = _copy(small_model("hyperprior", N=8, seed=3))
    L = m.layers["ST1"]
    m.layers["ST0"].out_exp[0] += 25  # one input channel of ST1 shifted by 2^25
    L.in_exp[0] += 25
    L.w_codes[:] = 127
    with pytest.raises(ModelError, match="ST1"):
        m.validate()


def test_exact_worst_case_value():
    """All weights at +504 (code 127), every input at its top level 510 (mux 0),
    alignment shifts 0 and 4: the bias brings the centre pixel to exactly
    2^31 - 1, which both backends return without wrapping."""
    cin, k = 16, 5
    d = np.array([0] + [4] * (cin - 1))
    total = 510 * 504 * k * k * int(np.sum(1 << d))
    bias = INT32_MAX - total
    L = synthetic_layer("conv", k, 1, cin, 1, act="relu", w_codes=np.full((1, cin, k, k), 127),
                        bias=np.array([bias]), in_exp=-8 + d, out_exp=np.full(1, 0), mux=np.zeros(1))
    from fxlic.kernels import get_backend
    from fxlic.quant.codebook import act_nlq
    tables = np.stack([act_nlq(0).lut() << int(s) for s in L.in_shift])
    x = np.full((cin, 5, 5), 255, np.int64)
    for be in ("reference", "numba"):
        _, acc = get_backend(be).layer(L, x, tables, 0, np.zeros(1, np.int64), want_acc=True)
        assert int(acc[0, 2, 2]) == INT32_MAX
        assert int(acc.max()) == INT32_MAX and int(acc.min()) > 0  # no wrap anywhere


def test_build_narrows_exponent_spread_instead_of_overflowing():
    """build_int_model keeps every layer within int32 (spread limits recorded)."""
    m = small_model("hyperprior", N=8, seed=3)
    assert "spread_limits" in m.meta
    m.validate()


# ---- the bound against its plain term-by-term definition -----------------------------

def _bound_oracle(model, name):
    """SPEC A3 written out: every term's extreme max/min(w lo, w hi), summed per
    output channel (over the taps of each output phase of a tconv)."""
    L = model.layers[name]
    spec = L.spec
    lo, hi = model.input_range(spec)
    d = L.in_shift
    w = L.w_levels()
    lo_s = (lo << d)[None, :, None, None]
    hi_s = (hi << d)[None, :, None, None]
    tmax, tmin = np.maximum(w * lo_s, w * hi_s), np.minimum(w * lo_s, w * hi_s)
    phases = [list(range(spec.k))] if spec.op == "conv" else \
        [[t for t in range(spec.k) if (t - spec.pad - ph) % 2 == 0] for ph in range(2)]
    best = np.zeros(spec.cout, dtype=np.int64)
    for ky in phases:
        for kx in phases:
            sel = np.ix_(range(spec.cout), range(spec.cin), ky, kx)
            pos = L.bias + tmax[sel].sum(axis=(1, 2, 3))
            neg = L.bias + tmin[sel].sum(axis=(1, 2, 3))
            best = np.maximum(best, np.maximum(pos, -neg))
    return best


@pytest.mark.parametrize("seed", range(6))
def test_bound_equals_term_by_term_oracle(seed):
    """Random codes (the extremes -128 / 127 included), biases of both signs and
    exponent spreads on every layer, conv and tconv, signed and unsigned inputs."""
    m = _copy(small_model("hyperprior", N=8, seed=3))
    rng = np.random.default_rng(seed)
    for name, L in m.layers.items():
        L.w_codes[:] = rng.choice([-128, -127, -1, 0, 1, 126, 127, int(rng.integers(-128, 128))],
                                  L.w_codes.shape).astype(np.int8)
        L.bias[:] = rng.integers(-2 ** 20, 2 ** 20, L.bias.shape)
        assert np.array_equal(accumulator_bound(m, name), _bound_oracle(m, name)), name


def test_bound_equals_oracle_on_shipped_models():
    from fxlic.io.modelfile import list_zoo, load_model
    for p in list_zoo():
        m = load_model(p)
        for name in m.layers:
            assert np.array_equal(accumulator_bound(m, name), _bound_oracle(m, name)), (p, name)
