"""SPEC O6 (spec 1.4): HA0 of an offset-latent hyperprior reads y on the 2^-H grid
(CompressAI's h_a reads the unrounded y), H = -(HA0's input exponent).

Exact oracle for the level rule, reference == numba == tiled for HA0's input and
every encoder output, the accumulator bound on the (8 + H)-bit range, model-file
round trips (H is in the in_exp arrays, so in the id), refusals of hostile or
inconsistent files, and spec-1.3 files read with H = 0 and unchanged integers.
"""
from __future__ import annotations

import copy
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fxlic.codec import compress, decompress, model_id
from fxlic.io.modelfile import ModelFileError, load_model, save_model
from fxlic.kernels.reference import out_ha_y
from fxlic.model.build import build_int_model, calibrate
from fxlic.model.int_forward import encode, input_tables, pad_to_multiple
from fxlic.model.intmodel import ModelError, accumulator_bound
from fxlic.model.tiled import encode_tiled
from test_latents_offset import _rewrite, offset_model


def _oracle(acc, e, H):
    v = Fraction(acc) * Fraction(2) ** (e + H)
    r = (v + Fraction(1, 2)).__floor__()
    return min(max(r, -(1 << (7 + H))), (1 << (7 + H)) - 1)


@settings(max_examples=400, deadline=None)
@given(st.integers(-(1 << 31), (1 << 31) - 1), st.integers(-30, 6), st.integers(0, 6))
def test_ha_y_is_round_half_up_on_the_grid(acc, e, H):
    if not -31 <= -H - e <= 62:
        return
    got = out_ha_y(np.array([[[acc]]], np.int64), np.array([e]), H)
    assert int(got[0, 0, 0]) == _oracle(acc, e, H)


def test_ha_y_edges():
    # E = -6, H = 4: y = acc / 64 on the 1/16 grid = RHU(acc, 2); ties toward +inf
    acc = np.array([[[2, -2, 6, -6, 1 << 30, -(1 << 30), 3, -3]]], np.int64)
    assert out_ha_y(acc, np.array([-6]), 4).tolist() == [[[1, 0, 2, -1, 2047, -2048, 1, -1]]]
    # H = 0 is O3's integer y (SAT8(RQ(acc, -E))); E above -H is an exact left shift
    assert out_ha_y(np.array([[[96, -96, 95]]]), np.array([-6]), 0).tolist() == [[[2, -1, 1]]]
    assert out_ha_y(np.array([[[5, -5, 200]]]), np.array([-2]), 4).tolist() == [[[20, -20, 800]]]


def test_builder_sets_h_to_g_and_ha0_reads_levels():
    _, m = offset_model("hyperprior")
    assert m.ha_grid_bits == m.grid_bits == 4
    ha0 = m.layer("HA0")
    assert np.all(ha0.in_exp == -4) and input_tables(m, "HA0") == (None, None)
    lo, hi = m.input_range(ha0.spec)
    assert lo.tolist() == [-2048] * 8 and hi.tolist() == [2047] * 8
    # A3 on the 12-bit range: the exact worst case over inputs in range
    w = ha0.w_levels()
    bound = np.maximum(np.abs(ha0.bias + np.sum(np.maximum(w * -2048, w * 2047), axis=(1, 2, 3))),
                       np.abs(ha0.bias + np.sum(np.minimum(w * -2048, w * 2047), axis=(1, 2, 3))))
    assert np.array_equal(accumulator_bound(m, "HA0"), bound)
    _, fact = offset_model("factorized")
    assert fact.ha_grid_bits == 0


def test_ha_grid_reference_numba_tiled_identical():
    _, m = offset_model("hyperprior")
    img = np.random.default_rng(7).integers(0, 256, (3, 64, 128), dtype=np.uint8)
    p = pad_to_multiple(img, m.arch.pad_multiple)
    r, n, t = encode(m, p, "reference"), encode(m, p, "numba"), encode_tiled(m, p, band=1)
    ha0 = out_ha_y(r.y_acc, m.layer("AT3").acc_exp, 4)
    for e in (r, n, t):
        assert np.array_equal(e.y, ha0) and np.array_equal(e.y_acc, r.y_acc)
        assert np.array_equal(e.z, r.z) and np.array_equal(e.ms, r.ms)
    assert np.abs(r.y).max() > 127 or np.any(r.y % 16 != 0)  # levels, not integer y codes
    s = compress(m, img, "reference")[0]
    assert compress(m, img, "numba")[0] == s
    assert np.array_equal(decompress(m, s, "reference"), decompress(m, s, "numba"))


def test_h0_and_h4_models_differ_only_in_the_hyper_analysis():
    fm, m4 = offset_model("hyperprior")
    rng = np.random.default_rng(3)
    imgs = [rng.integers(0, 256, (3, 64, 64), dtype=np.uint8) for _ in range(2)]
    m0 = build_int_model(fm, calibrate(fm, imgs), latents="offset", ha_grid=False)
    assert m0.ha_grid_bits == 0 and np.all(m0.layer("HA0").in_exp == 0)
    assert model_id(m0) != model_id(m4)
    for name in m4.layers:
        if name != "HA0":
            assert np.array_equal(m0.layer(name).w_codes, m4.layer(name).w_codes), name
    img = rng.integers(0, 256, (3, 64, 64), dtype=np.uint8)
    e0, e4 = encode(m0, img, "reference"), encode(m4, img, "reference")
    assert np.array_equal(e0.y_acc, e4.y_acc)
    assert np.array_equal(e0.y, out_ha_y(e0.y_acc, m0.layer("AT3").acc_exp, 0))
    t0 = encode_tiled(m0, img, band=1)  # the banded encoder forms H = 0 through O6 too
    assert np.array_equal(t0.y, e0.y) and np.array_equal(t0.z, e0.z) and np.array_equal(t0.ms, e0.ms)


def test_model_file_round_trip_and_refusals(tmp_path):
    fm, m4 = offset_model("hyperprior")
    p = tmp_path / "m.fxq"
    save_model(m4, str(p))
    back = load_model(str(p))
    assert back.ha_grid_bits == 4 and model_id(back) == model_id(m4)
    img = np.random.default_rng(2).integers(0, 256, (3, 64, 64), dtype=np.uint8)
    assert compress(back, img)[0] == compress(m4, img)[0]
    # a spec-1.3 file cannot say H > 0
    q = tmp_path / "old.fxq"
    _rewrite(p, q, lambda h: h.update(spec_version="fxlic-spec-1.3"))
    with pytest.raises(ModelFileError, match="O6"):
        load_model(str(q))
    # a spec-1.3 file with H = 0 reads with the same id and integers
    rng = np.random.default_rng(3)
    imgs = [rng.integers(0, 256, (3, 64, 64), dtype=np.uint8) for _ in range(2)]
    m0 = build_int_model(fm, calibrate(fm, imgs), latents="offset", ha_grid=False)
    p0, q0 = tmp_path / "m0.fxq", tmp_path / "old0.fxq"
    save_model(m0, str(p0))
    _rewrite(p0, q0, lambda h: h.update(spec_version="fxlic-spec-1.3"))
    old = load_model(str(q0))
    assert old.ha_grid_bits == 0 and model_id(old) == model_id(m0)
    assert compress(old, img)[0] == compress(m0, img)[0]


@pytest.mark.parametrize("edit, match", [
    (lambda m: setattr(m, "ha_grid_bits", 7), "O6"),
    (lambda m: setattr(m, "ha_grid_bits", -1), "O6"),
    (lambda m: setattr(m, "ha_grid_bits", True), "O6"),
    (lambda m: setattr(m, "ha_grid_bits", 3), "input exponents"),  # in_exp says 4
    # AT3's accumulator exponent 29: O3's shift -29 is fine, O6's -4 - 29 is not
    (lambda m: setattr(m.layer("AT3"), "w_exp", 29 - m.layer("AT3").w_exp * 0 - m.layer("AT3").in_exp.min()),
     "O6"),
])
def test_inconsistent_models_refused(edit, match):
    _, m = offset_model("hyperprior")
    bad = copy.deepcopy(m)
    edit(bad)
    with pytest.raises(ModelError, match=match):
        bad.validate()


def test_integer_latent_model_cannot_read_a_grid():
    _, mi = offset_model("hyperprior", latents="integer")
    assert mi.ha_grid_bits == 0
    bad = copy.deepcopy(mi)
    bad.ha_grid_bits = 4
    bad.layer("HA0").in_exp = np.full(8, -4, np.int64)
    with pytest.raises(ModelError, match="offset-latent"):
        bad.validate()


def test_hostile_ha0_exponents_one_line_refusal(tmp_path):
    """Mixed or out-of-range HA0 input exponents in a file (with a valid content
    hash): refused by the loader in one line, never run."""
    _, m4 = offset_model("hyperprior")
    for e in ([-4] * 7 + [-3], [-9] * 8, [5] * 8, [0] * 7 + [-4]):
        bad = copy.deepcopy(m4)
        bad.layer("HA0").in_exp = np.array(e, np.int64)
        p = tmp_path / "bad.fxq"
        save_model(bad, str(p))
        with pytest.raises(ModelFileError) as ei:
            load_model(str(p))
        assert "\n" not in str(ei.value) and "HA0" in str(ei.value)


def test_info_and_quantize_flag(tmp_path, capsys):
    """`fxlic info` says what HA0 reads; `fxlic quantize --ha-input` documents the choice."""
    from fxlic.cli import main

    _, m4 = offset_model("hyperprior")
    p = tmp_path / "m.fxq"
    save_model(m4, str(p))
    assert main(["info", str(p)]) == 0
    assert "HA0 input    y on the 2^-4 grid (SPEC O6)" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["quantize", "--help"])
    assert "--ha-input {grid,integer}" in capsys.readouterr().out
