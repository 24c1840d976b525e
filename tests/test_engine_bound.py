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
