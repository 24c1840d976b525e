"""Quantization simulations (Lin et al. Eq 31-34, weights-only, activations
only) and the Table IX / X counts."""
import numpy as np
import pytest

from fxlic.eval import counts, sim
from fxlic.model.arch import hyperprior5
from fxlic.model.build import build_int_model, calibrate
from fxlic.model.float_codec import float_codec
from fxlic.model.float_model import random_float_model
from fxlic.quant.weights import quantize_weights


def test_lin_lq_grid_and_range():
    rng = np.random.default_rng(0)
    w = rng.laplace(scale=0.05, size=(4, 8, 5, 5))
    q = sim.lin_quantize(w)
    for o in range(4):
        n = sim.lin_fraction_bits(w[o], 3.0)
        s = 3.0 * np.std(w[o]) * 0.0308
        assert s <= 2.0 ** -n < 2 * s  # n = -ceil(log2 s): the power-of-two step just above s
        codes = np.ldexp(q[o], n)
        assert np.all(codes == np.round(codes)) and codes.min() >= -128 and codes.max() <= 127
        inside = np.abs(w[o]) < 127 * 2.0 ** -n
        assert np.all(np.abs(q[o] - w[o])[inside] <= 2.0 ** -n / 2 + 1e-15)


def test_lin_nlq_segments_eq34():
    w = np.linspace(-1, 1, 4001).reshape(1, 1, 1, -1)
    n = sim.lin_fraction_bits(w[0], 1.5)
    q = np.ldexp(sim.lin_quantize(w, nonlinear=True)[0], n).ravel()
    u = np.abs(q)
    assert np.all(u[u < 64] == np.round(u[u < 64]))
    assert np.all(u[(u >= 64) & (u < 128)] % 4 == 0)
    assert np.all(u[u >= 128] % 8 == 0) and u.max() <= 504
    assert len(np.unique(q)) <= 255


def test_weights_only_uses_dequantized_plain_weights():
    fm = random_float_model(hyperprior5(4), seed=1)
    q = sim.weights_only(fm, "cw-nlq")
    for n, w in fm.weights.items():
        assert np.array_equal(q.weights[n], quantize_weights(w, "cw-nlq").dequantize())
        assert np.array_equal(q.biases[n], fm.biases[n])


def test_forward_codec_is_float_codec_and_activation_sim_runs():
    fm = random_float_model(hyperprior5(4), seed=2)
    img = np.random.default_rng(3).integers(0, 256, (3, 64, 80), dtype=np.uint8)
    rec0, bpp0 = float_codec(fm, img)
    rec1, bpp1, ys = sim.forward_codec(fm, img, dtype=np.float64)
    assert np.array_equal(rec0, rec1) and bpp1 == pytest.approx(bpp0, rel=1e-12)
    assert len(ys["y_max"]) == fm.arch.M
    rec32, bpp32, _ = sim.forward_codec(fm, img)  # float32 default
    assert bpp32 == pytest.approx(bpp0, rel=1e-3) and np.abs(rec32.astype(int) - rec0).max() <= 1
    im = build_int_model(fm, calibrate(fm, [np.pad(img, ((0, 0), (0, 0), (0, 48)), mode="edge")]))
    act = sim.activation_params(im)
    assert set(act) == {l.name for l in fm.arch.layers if l.out in ("act", "ms")}
    rec2, bpp2, _ = sim.forward_codec(fm, img, act, im)
    assert rec2.shape == img.shape and np.isfinite(bpp2)


@pytest.mark.parametrize("arch", ["hyperprior", "factorized"])
def test_forward_codec_offset_latents_is_float_codec_offset(arch):
    """latents="offset" (SPEC O5's rule in float, CompressAI's inference) is
    float_codec(latents="offset"): same reconstruction, same ideal rate."""
    from fxlic.model.arch import factorized
    fm = random_float_model(hyperprior5(4) if arch == "hyperprior" else factorized(4), seed=5)
    img = np.random.default_rng(6).integers(0, 256, (3, 64, 80), dtype=np.uint8)
    rec0, bpp0 = float_codec(fm, img, latents="offset")
    rec1, bpp1, _ = sim.forward_codec(fm, img, dtype=np.float64, latents="offset")
    assert np.array_equal(rec0, rec1) and bpp1 == pytest.approx(bpp0, rel=1e-12)
    with pytest.raises(ValueError, match="float model only"):
        sim.forward_codec(fm, img, act={}, latents="offset")
    with pytest.raises(ValueError, match="latents"):
        sim.forward_codec(fm, img, latents="median")


def test_fake_quantize_matches_codebook_levels():
    from fxlic.quant.activations import quantize_activation_float, relu_channel_params
    rng = np.random.default_rng(5)
    o = np.abs(rng.normal(size=(4, 6, 6))) * np.array([0.3, 1.7, 5.0, 11.0])[:, None, None]
    exp, mux = relu_channel_params(np.abs(o).reshape(4, -1).max(1))
    lv = quantize_activation_float(o, exp, mux)
    fq = sim.fake_quantize(o, "nlq", exp, mux)
    assert np.array_equal(fq, np.ldexp(lv.astype(float), exp[:, None, None]))


def test_table_ix_counts_reproduce_the_paper():
    t = counts.table_ix(hyperprior5(128))
    assert t["encoder"]["weights"] == 3941760 and t["decoder"]["weights"] == 2975104
    assert t["encoder"]["weight_sf_channels"] == 2816 and t["decoder"]["weight_sf_channels"] == 2307
    assert t["encoder"]["activations_all"] == 19771392
    assert t["decoder"]["activations_all"] == 20496384
    assert round(t["decoder"]["o_wo_hs_tconv_mb"], 3) == 20.251
    assert round(t["encoder"]["o_fp32_mb"], 2) == 79.09 and round(t["decoder"]["o_fp32_mb"], 2) == 81.99


def test_macs_and_energy():
    m = counts.macs(hyperprior5(128))
    assert round(m["encoder"]["macs"] / 1e9, 2) == 16.18 or round(m["encoder"]["macs"] / 1e9, 2) == 16.19
    assert round(m["groups"]["ST"]["macs"] / 1e9, 2) == 14.16
    e_int, e_fp = counts.energy(m["encoder"], "int"), counts.energy(m["encoder"], "fp32")
    assert e_fp / e_int == pytest.approx((3.7 + 0.9) / 0.3, rel=0.01)


def test_torch_engine_agrees_with_numpy():
    pytest.importorskip("torch")
    fm = random_float_model(hyperprior5(4), seed=4)
    img = np.random.default_rng(6).integers(0, 256, (3, 64, 64), dtype=np.uint8)
    r_np, b_np, y_np = sim.forward_codec(fm, img)
    r_t, b_t, y_t = sim.forward_codec(fm, img, engine="torch")
    assert np.abs(r_np.astype(int) - r_t).max() <= 1 and b_t == pytest.approx(b_np, rel=1e-3)
    assert y_np["y_max"] == y_t["y_max"]


def test_torch_engine_activation_sim_agrees_with_numpy():
    """The activation simulation (y_hat - mu saturated, h_a reading y_hat) runs
    through the torch engine too: the latents keep the float32 dtype."""
    pytest.importorskip("torch")
    fm = random_float_model(hyperprior5(4), seed=4)
    img = np.random.default_rng(6).integers(0, 256, (3, 64, 64), dtype=np.uint8)
    im = build_int_model(fm, calibrate(fm, [img]))
    act = sim.activation_params(im)
    r_np, b_np, _ = sim.forward_codec(fm, img, act, im)
    r_t, b_t, _ = sim.forward_codec(fm, img, act, im, engine="torch")
    assert np.abs(r_np.astype(int) - r_t).max() <= 1 and b_t == pytest.approx(b_np, rel=1e-3)
