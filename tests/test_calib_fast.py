"""The fast calibration forward (fxlic.model.calib_fast, gemm_conv): the same
build decisions as the reference float forward (docs/CALIBRATION.md), also for
statistics engineered onto the thresholds of SPEC X1 / F1 and the rounding ties
of Eq 1-2, where it must hand the image to the reference forward."""
from __future__ import annotations

import os
import numpy as np
import pytest

from fxlic.cli import main
from fxlic.io.floatfile import save_float_model
from fxlic.io.modelfile import model_hash
from fxlic.kernels.reference import conv2d, tconv2d
from fxlic.model.arch import factorized, hyperprior5
from fxlic.model.build import _reference_pass, build_int_model, calibrate
from fxlic.model.calib_fast import LAMBDA, Uncertain, decision_key, fast_pass
from fxlic.model.float_model import float_forward, random_float_model
from fxlic.model.gemm_conv import conv2d_gemm, tconv2d_gemm
from fxlic.quant.activations import relu_channel_params, signed_channel_params

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CALIB = os.path.join(ROOT, "..", "shared", "data", "train", "CBSD68")


def _images(n, seed=7, shape=(3, 64, 64)):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, shape, dtype=np.uint8) for _ in range(n)]


def _hashes(fm, cal):
    return [model_hash(build_int_model(fm, cal, latents=lat, relu_headroom=h))
            for lat in ("integer", "offset") for h in (0, 1)]


@pytest.mark.parametrize("seed", range(4))
def test_gemm_convolutions_match_reference(seed):
    rng = np.random.default_rng(seed)
    for _ in range(40):
        C, O = rng.integers(1, 12, 2)
        k, s = int(rng.choice([1, 3, 5])), int(rng.choice([1, 2]))
        x = rng.normal(size=(C, *rng.integers(1, 19, 2)))
        w = rng.normal(size=(O, C, k, k))
        scale = np.abs(w).sum() * np.abs(x).max()
        for ref, fast in ((conv2d(x, w, s), conv2d_gemm(x, w, s)), (tconv2d(x, w, 2), tconv2d_gemm(x, w, 2))):
            assert ref.shape == fast.shape
            assert np.abs(ref - fast).max() <= 1e-13 * scale
    x, w = rng.normal(size=(32, 5, 7)), rng.normal(size=(3, 32, 5, 5))  # thin output: the scatter form
    assert np.abs(tconv2d(x, w) - tconv2d_gemm(x, w)).max() <= 1e-13 * np.abs(w).sum()


def test_decision_key_orders_the_build_decisions():
    """Equal keys <=> equal (exponent, mux) of X1 / F1; keys never decrease with m."""
    rng = np.random.default_rng(0)
    edges = np.ldexp(np.array([4, 5, 6, 7])[:, None] / 8.0, np.arange(-6, 7)[None, :]).ravel()
    m = np.concatenate([np.exp(rng.uniform(-12, 12, 4000)), edges, np.nextafter(edges, 0),
                        np.nextafter(edges, 2 * edges), [0.0]])
    m.sort()
    for relu in (True, False):
        key = decision_key(m, relu)
        assert np.all(np.diff(key) >= 0)
        if relu:
            e, mux = relu_channel_params(m)
            dec = np.stack([e, mux], 1)
        else:
            dec = signed_channel_params(m)[:, None]
        live = m > 0
        same_key = key[1:] == key[:-1]
        same_dec = np.all(dec[1:] == dec[:-1], axis=1) & (live[1:] == live[:-1])
        assert np.array_equal(same_key, same_dec)


@pytest.mark.parametrize("arch", [hyperprior5(8), factorized(8)], ids=["hyperprior", "factorized"])
@pytest.mark.parametrize("seed", [0, 3])
def test_fast_calibration_builds_the_same_models(arch, seed):
    fm = random_float_model(arch, seed)
    imgs = _images(3, seed) + _images(1, seed, (3, 64, 128))
    ref, fast = calibrate(fm, imgs, forward="reference"), calibrate(fm, imgs)
    assert ref.forwards == ["reference"] * 4 and len(fast.forwards) == 4
    for f in ("y_means", "y_maxabs", "y_maxdev", "x_means"):  # from the same exact y_hat
        assert np.array_equal(np.asarray(getattr(ref, f)), np.asarray(getattr(fast, f)))
    assert _hashes(fm, ref) == _hashes(fm, fast)


def test_margins_cover_the_observed_differences():
    """The fast maxima differ from the reference's by at most 2e (proven) and by
    far less than LAMBDA s (the safety factor the conservative margin relies
    on); y_hat is exact."""
    for arch, seed in ((hyperprior5(8), 1), (factorized(8), 2), (hyperprior5(16), 4)):
        fm = random_float_model(arch, seed)
        for img in _images(2, seed):
            bounds = {}
            got = fast_pass(fm, img, bounds=bounds)
            assert not isinstance(got, Uncertain), got
            maxabs, y_hat = got
            ref_max, ref_y = _reference_pass(fm, img)
            assert np.array_equal(y_hat, ref_y)
            for name, m in ref_max.items():
                e, s = bounds[name]
                d = np.abs(maxabs[name] - m)
                assert np.all(d <= 2 * e) and np.all(d <= LAMBDA * s / 256), name


def _engineer(fm, img, layer, where, nudge=0.0):
    """A copy of fm with one bias of ``layer`` shifted so that a reference
    statistic lands on a threshold: 'relu' the mux boundary 5/8 2^(f+1) of a
    channel's maximum, 'dead' a largest pre-activation of exactly 0, 'signed'
    the largest |output| on a power of two, 'tie' an element of y / z on k + 1/2;
    ``nudge`` moves it off by that fraction of max(1, |threshold|)."""
    fm2 = type(fm)(fm.arch, dict(fm.weights), {k: v.copy() for k, v in fm.biases.items()}, fm.entropy)
    spec = fm.arch.layer(layer)
    t = float_forward(fm, np.asarray(img, np.float64) / 255.0)
    op = conv2d if spec.op == "conv" else tconv2d
    pre = op(t[spec.src], fm.weights[layer], spec.stride) + fm.biases[layer][:, None, None]
    c = int(np.argmax(pre.reshape(spec.cout, -1).max(axis=1)))
    v = pre[c].ravel()
    if where == "tie":
        e = v[0]
        target = np.floor(e) + 0.5
    elif where in ("relu", "dead"):
        e = v.max()
        target = 0.0 if where == "dead" else 5 / 8 * 2.0 ** (np.floor(np.log2(e)) + 1)
    else:
        out = np.where(v >= 0, v, v / 8) if spec.act == "leaky" else v
        i = int(np.argmax(np.abs(out)))
        e, m = v[i], abs(out[i])
        target = np.sign(e) * 2.0 ** (np.floor(np.log2(m)) + 1) * (8 if e < 0 and spec.act == "leaky" else 1)
    fm2.biases[layer][c] += target + nudge * max(1.0, abs(target)) - e
    return fm2


@pytest.mark.parametrize("layer,where", [("AT1", "relu"), ("ST1", "relu"), ("AT2", "dead"),
                                         ("HA1", "signed"), ("HS2", "signed"), ("AT3", "tie"),
                                         ("HA2", "tie")])
def test_statistic_on_a_threshold_goes_to_the_reference_forward(layer, where):
    fm = random_float_model(hyperprior5(8), 5)
    img = _images(1, 9)[0]
    fm2 = _engineer(fm, img, layer, where)
    got = fast_pass(fm2, img)
    assert isinstance(got, Uncertain) and got.startswith(layer), got
    imgs = [img] + _images(2, 11)
    fast = calibrate(fm2, imgs)
    assert fast.forwards[0].startswith(f"reference ({layer}")
    assert _hashes(fm2, calibrate(fm2, imgs, forward="reference")) == _hashes(fm2, fast)
    near = _engineer(fm, img, layer, where, nudge=3e-6)  # far outside the margin: fast is certain
    cal = calibrate(near, imgs)
    assert cal.forwards[0] == "fast"
    assert _hashes(near, calibrate(near, imgs, forward="reference")) == _hashes(near, cal)


def test_quantize_cli_forwards_write_the_same_file(tmp_path, capsys):
    from PIL import Image

    fm = random_float_model(hyperprior5(8), 0)
    save_float_model(fm, str(tmp_path / "w.safetensors"))
    (tmp_path / "cal").mkdir()
    for i, shape in enumerate([(64, 64, 3), (48, 80, 3)]):
        Image.fromarray(np.random.default_rng(i).integers(0, 256, shape, dtype=np.uint8)).save(
            tmp_path / "cal" / f"{i}.png")
    outs = []
    for fw, jobs in (("fast", "1"), ("reference", "1"), ("fast", "2")):  # --jobs 2: a pool of workers
        out = tmp_path / f"{fw}{jobs}.fxq"
        assert main(["quantize", "-q", "--weights", str(tmp_path / "w.safetensors"), "--calib",
                     str(tmp_path / "cal"), "--out", str(out), "--calib-forward", fw, "--jobs", jobs]) == 0
        outs.append(out.read_bytes())
    capsys.readouterr()
    assert outs[0] == outs[1] == outs[2]


@pytest.mark.slow
@pytest.mark.skipif(not os.path.isdir(CALIB), reason="the zoo's calibration images are not here")
@pytest.mark.parametrize("name", ["hp5-mse-q2", "fact-mse-q1"])
def test_zoo_weights_same_model_from_both_forwards(name, tmp_path, capsys):
    """A hyperprior and the factorized model of the zoo, calibrated as tools/make_zoo.py
    does: the fast forward writes the reference forward's file byte for byte (and,
    while the zoo is current, ``tools/make_zoo.py --check`` the shipped one)."""
    weights, outs = os.path.join(ROOT, "fxlic", "zoo", f"{name}.float.safetensors"), []
    for fw in ("fast", "reference"):
        out = tmp_path / f"{fw}.fxq"
        assert main(["quantize", "-q", "--weights", weights, "--calib", CALIB, "--out", str(out),
                     "--n-calib", "9", "--calib-forward", fw]) == 0
        outs.append(out.read_bytes())
    capsys.readouterr()
    assert outs[0] == outs[1]
