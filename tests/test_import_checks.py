"""Imports that cannot be silently wrong (issue 16, docs/MODEL_FORMAT.md 7):
PyTorch pickles named and never loaded, DataParallel ``module.`` keys, GDN
named, the ONNX entropy side file (refused before calibration without one)
and the I/O check of the trainer's own input and outputs."""
import pickle
import warnings
import zipfile

import numpy as np
import pytest
from PIL import Image

from fxlic.cli import main
from fxlic.io.floatfile import (PICKLE_MESSAGE, WeightsError, compressai_state_from,
                                default_compressai_map, float_models_equal, load_weights,
                                torch_layout_tensors, write_npz, write_safetensors)
from fxlic.io.iocheck import IO_RTOL, check_io
from fxlic.io.modelfile import load_model, model_hash
from fxlic.model.arch import factorized, hyperprior5
from fxlic.model.float_model import random_float_model


def one_line(capsys, rc, cmd="quantize"):
    out = capsys.readouterr()
    assert rc == 1, out
    lines = out.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"fxlic {cmd}: error: "), out.err
    return lines[0]


@pytest.fixture(scope="module")
def cal(tmp_path_factory):
    d = tmp_path_factory.mktemp("cal")
    rng = np.random.default_rng(3)
    Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(d / "a.png")
    return str(d)


def quantize(weights, cal, out, *extra):
    return main(["quantize", "-q", "--weights", str(weights), "--calib", cal, "--out", str(out),
                 *map(str, extra)])


# ---- PyTorch pickles -------------------------------------------------------

class _Evil:
    """Unpickling this creates the file ``_Evil.target``: it must never exist."""
    target = None

    def __reduce__(self):
        return (open, (self.target, "w"))


def test_pytorch_pickles_refused_never_loaded(tmp_path, cal, capsys):
    _Evil.target = str(tmp_path / "UNPICKLED")
    payload = pickle.dumps({"g_a.0.weight": _Evil()}, protocol=2)
    legacy = tmp_path / "model.pth.tar"  # torch.save(..., _use_new_zipfile_serialization=False)
    legacy.write_bytes(payload)
    zipped = tmp_path / "model.pth"  # torch.save >= 1.6: a zip with archive/data.pkl
    with zipfile.ZipFile(zipped, "w") as z:
        z.writestr("archive/data.pkl", payload)
        z.writestr("archive/version", "3\n")
    renamed = tmp_path / "model.safetensors"
    renamed.write_bytes(zipped.read_bytes())
    for p in (legacy, zipped, renamed):
        with pytest.raises(WeightsError, match="a PyTorch pickle: fxlic never unpickles"):
            load_weights(str(p))
        for fmt in ("auto", "compressai", "native", "onnx"):
            line = one_line(capsys, quantize(p, cal, tmp_path / "m.fxq", "--format", fmt))
            assert line.endswith(f"{p}: {PICKLE_MESSAGE}"), line
        assert PICKLE_MESSAGE in one_line(capsys, main(["info", str(p)]), "info")
    assert not (tmp_path / "UNPICKLED").exists() and not (tmp_path / "m.fxq").exists()


def test_real_torch_save_refused(tmp_path):
    torch = pytest.importorskip("torch")
    sd = {"g_a.0.weight": torch.zeros(2, 3, 5, 5)}
    torch.save(sd, tmp_path / "a.pth")
    torch.save(sd, tmp_path / "b.pth.tar", _use_new_zipfile_serialization=False)
    with warnings.catch_warnings():  # TorchScript is deprecated, its archives still exist
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.save(torch.jit.script(torch.nn.Conv2d(3, 2, 5)), str(tmp_path / "c.pt"))
    for n in ("a.pth", "b.pth.tar", "c.pt"):
        with pytest.raises(WeightsError, match="PyTorch pickle"):
            load_weights(str(tmp_path / n))


# ---- DataParallel keys and GDN -------------------------------------------

def test_dataparallel_prefix_accepted(tmp_path):
    fm = random_float_model(hyperprior5(8), 1)
    sd = compressai_state_from(fm)
    write_safetensors(str(tmp_path / "plain.safetensors"), sd)
    write_safetensors(str(tmp_path / "dp.safetensors"), {"module." + k: v for k, v in sd.items()})
    a, b = load_weights(str(tmp_path / "plain.safetensors")), load_weights(str(tmp_path / "dp.safetensors"))
    assert b.meta["format"] == "compressai" and float_models_equal(a, b)
    # a mapping written against the prefixed names works too
    mapping = {f"module.{k}": v for k, v in default_compressai_map(fm.arch).items()}
    c = load_weights(str(tmp_path / "dp.safetensors"), fmt="compressai", mapping=mapping)
    assert float_models_equal(a, c)
    # a native file saved from a DataParallel wrapper (npz), too
    write_npz(str(tmp_path / "n.npz"), {"module." + k: v for k, v in torch_layout_tensors(fm).items()},
              {"fxlic.arch": fm.arch.to_json()})
    assert float_models_equal(load_weights(str(tmp_path / "n.npz")), a)


@pytest.mark.parametrize("key", ["g_a.1.beta", "g_s.3.gamma", "g_a.1.beta_reparam.pedestal",
                                 "g_s.1.gamma_reparam.lower_bound.bound"])
@pytest.mark.parametrize("prefix", ["", "module."])
def test_gdn_named(tmp_path, key, prefix):
    fm = random_float_model(factorized(8), 2)
    sd = compressai_state_from(fm)
    sd[key] = np.ones(8, np.float32)
    p = str(tmp_path / "gdn.safetensors")
    write_safetensors(p, {prefix + k: v for k, v in sd.items()})
    with pytest.raises(WeightsError, match=f"{key} belongs to a GDN layer"):
        load_weights(p)


def test_gdn_named_in_native_format(tmp_path):
    fm = random_float_model(factorized(8), 2)
    t = torch_layout_tensors(fm)
    t["GDN1.gamma"] = np.ones((8, 8), np.float32)
    write_safetensors(str(tmp_path / "n.safetensors"), t, {"fxlic.arch": fm.arch.to_json()})
    with pytest.raises(WeightsError, match="GDN1.gamma belongs to a GDN layer"):
        load_weights(str(tmp_path / "n.safetensors"))


# ---- ONNX: the entropy side file ------------------------------------------

def test_onnx_entropy_side_file(tmp_path, cal, capsys, monkeypatch):
    pytest.importorskip("onnx")
    from test_io_formats import compressai_keys, make_onnx, torch_tensors
    arch = hyperprior5(8)
    T = torch_tensors(arch, seed=4)
    bare = make_onnx(arch, T, str(tmp_path / "bare.onnx"), entropy=False)
    full = make_onnx(arch, T, str(tmp_path / "full.onnx"), entropy=True)
    cai = compressai_keys(T, new_names=True)  # the whole CompressAI state dict is a fine side file
    write_safetensors(str(tmp_path / "eb.safetensors"),
                      {k: v for k, v in cai.items() if v.dtype.kind == "f"})
    # refused before calibration, naming the option
    import fxlic.model.build as build
    real = build.calibrate
    monkeypatch.setattr(build, "calibrate", lambda *a, **k: pytest.fail("calibrated"))
    line = one_line(capsys, quantize(bare, cal, tmp_path / "m.fxq"))
    assert "no entropy-bottleneck parameters" in line and "ONNX" in line and "--entropy FILE" in line
    line = one_line(capsys, quantize(full, cal, tmp_path / "m.fxq", "--entropy", tmp_path / "eb.safetensors"))
    assert "already carries entropy-bottleneck parameters" in line
    write_safetensors(str(tmp_path / "none.safetensors"), {"g_a.0.weight": T["AT0.weight"]})
    line = one_line(capsys, quantize(bare, cal, tmp_path / "m.fxq", "--entropy",
                                     tmp_path / "none.safetensors"))
    assert "no entropy-bottleneck tensors" in line
    short = {k: v for k, v in cai.items()
             if k.startswith("entropy_bottleneck.") and "quantiles" not in k and v.dtype.kind == "f"}
    write_safetensors(str(tmp_path / "short.safetensors"), short)
    assert "quantiles missing" in one_line(capsys, quantize(bare, cal, tmp_path / "m.fxq", "--entropy",
                                                            tmp_path / "short.safetensors"))
    assert not (tmp_path / "m.fxq").exists()
    # with the side file: the same model as the ONNX file that carries them
    monkeypatch.setattr(build, "calibrate", real)
    assert quantize(bare, cal, tmp_path / "a.fxq", "--entropy", tmp_path / "eb.safetensors") == 0
    assert quantize(full, cal, tmp_path / "b.fxq") == 0
    assert model_hash(load_model(str(tmp_path / "a.fxq"))) == model_hash(load_model(str(tmp_path / "b.fxq")))


# ---- the I/O check -----------------------------------------------------------

def torch_trainer_model(arch, slope=0.125, seed=0):
    """A trainer's model as PyTorch modules (nn.Sequential, CompressAI names);
    ``slope`` is its LeakyReLU slope in h_a / h_s (fxlic's is 1/8)."""
    import torch
    from torch import nn

    torch.manual_seed(seed)

    def seq(group):
        mods = []
        for l in arch.group(group):
            mods.append(nn.Conv2d(l.cin, l.cout, l.k, l.stride, l.k // 2) if l.op == "conv" else
                        nn.ConvTranspose2d(l.cin, l.cout, l.k, l.stride, l.k // 2, output_padding=1))
            if l.act != "none":
                mods.append(nn.ReLU() if l.act == "relu" else nn.LeakyReLU(slope))
        return nn.Sequential(*mods)

    m = nn.Module()
    for name, group in (("g_a", "AT"), ("h_a", "HA"), ("h_s", "HS"), ("g_s", "ST")):
        if arch.group(group):
            setattr(m, name, seq(group))
    return m.eval()


def probe_of(model, hyper=True, size=64):
    """docs/MODEL_FORMAT.md 7.4's recipe, as written there."""
    import torch
    x = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        y = model.g_a(x)
        io = dict(x=x, y=y, x_hat=model.g_s(torch.round(y)))
        if hyper:
            z = model.h_a(y)
            io.update(z=z, gaussian_params=model.h_s(torch.round(z)))
    return {k: v.numpy() for k, v in io.items()}


def state_dict_with_entropy(model, arch):
    from fxlic.model.float_model import default_bottleneck
    sd = {k: v.detach().numpy() for k, v in model.state_dict().items()}
    sd.update({k: v.astype(np.float32) for k, v in default_bottleneck(arch).items()})
    return sd


def test_check_io_passes_and_is_recorded(tmp_path, cal, capsys):
    pytest.importorskip("torch")
    arch = hyperprior5(8)
    model = torch_trainer_model(arch)
    write_safetensors(str(tmp_path / "w.safetensors"), state_dict_with_entropy(model, arch))
    np.savez(tmp_path / "probe.npz", **probe_of(model))
    rc = main(["quantize", "--weights", str(tmp_path / "w.safetensors"), "--calib", cal,
               "--out", str(tmp_path / "m.fxq"), "--check-io", str(tmp_path / "probe.npz")])
    err = capsys.readouterr().err
    assert rc == 0 and "I/O check" in err and "y, z, gaussian_params, x_hat agree" in err, err
    im = load_model(str(tmp_path / "m.fxq"))
    rep = im.meta["io_check"]["probe.npz"]
    assert set(rep) == {"y", "z", "gaussian_params", "x_hat"} and max(rep.values()) < 1e-5
    # a probe inside the weights file is checked without being asked for
    sd = state_dict_with_entropy(model, arch)
    sd.update({f"fxlic.probe.{k}": v for k, v in probe_of(model).items()})
    write_safetensors(str(tmp_path / "wp.safetensors"), sd)
    fm = load_weights(str(tmp_path / "wp.safetensors"))
    assert set(fm.probe) == {"x", "y", "z", "gaussian_params", "x_hat"}
    capsys.readouterr()
    assert main(["info", str(tmp_path / "wp.safetensors")]) == 0
    assert "I/O probe     gaussian_params (1, 16, 4, 4), x (1, 3, 64, 64)" in capsys.readouterr().out
    assert quantize(tmp_path / "wp.safetensors", cal, tmp_path / "p.fxq") == 0
    p = load_model(str(tmp_path / "p.fxq"))
    assert "wp.safetensors" in p.meta["io_check"] and model_hash(p) == model_hash(im)


def test_check_io_refuses_other_activations(tmp_path, cal, capsys, monkeypatch):
    """LeakyReLU(0.01) instead of 1/8: shapes all right, refused naming z (h_a)."""
    pytest.importorskip("torch")
    arch = hyperprior5(8)
    model = torch_trainer_model(arch, slope=0.01)
    sd = state_dict_with_entropy(model, arch)
    write_safetensors(str(tmp_path / "w.safetensors"), sd)
    np.savez(tmp_path / "probe.npz", **probe_of(model))
    import fxlic.model.build as build
    monkeypatch.setattr(build, "calibrate", lambda *a, **k: pytest.fail("calibrated"))
    line = one_line(capsys, quantize(tmp_path / "w.safetensors", cal, tmp_path / "m.fxq",
                                     "--check-io", tmp_path / "probe.npz"))
    assert "I/O check: z (h_a = HA0-HA2) differs from fxlic's float forward" in line, line
    assert "LeakyReLU(1/8)" in line
    # embedded: refused the same way, without --check-io
    sd.update({f"fxlic.probe.{k}": v for k, v in probe_of(model).items()})
    write_safetensors(str(tmp_path / "wp.safetensors"), sd)
    assert "I/O check: z (h_a" in one_line(capsys, quantize(tmp_path / "wp.safetensors", cal,
                                                            tmp_path / "m.fxq"))
    assert not (tmp_path / "m.fxq").exists()


def test_check_io_names_the_first_differing_tensor(tmp_path):
    torch = pytest.importorskip("torch")
    arch = factorized(8)
    model = torch_trainer_model(arch)
    write_safetensors(str(tmp_path / "w.safetensors"), state_dict_with_entropy(model, arch))
    fm = load_weights(str(tmp_path / "w.safetensors"))
    good = probe_of(model, hyper=False)
    rep = check_io(fm, good, "probe")
    assert set(rep) == {"y", "x_hat"} and max(rep.values()) < IO_RTOL
    bad = dict(good, y=good["y"] * 1.01)  # a different g_a
    with pytest.raises(WeightsError, match=r"I/O check: y \(g_a = AT0-AT3\)"):
        check_io(fm, bad, "probe")
    # x_hat of model(x) (CompressAI's dequantized y) is not g_s(round(y))
    with torch.no_grad():
        xh = model.g_s(torch.from_numpy(good["y"]) + 0.3).numpy()
    with pytest.raises(WeightsError, match=r"x_hat \(g_s = ST0-ST3\).*g_s\(round\(y\)\)"):
        check_io(fm, dict(good, x_hat=xh), "probe")


@pytest.mark.parametrize("change, match", [
    (lambda p: dict(p, x=p["x"] * 255), r"x must lie in \[0, 1\]"),
    (lambda p: dict(p, x=p["x"][:, :, :24]), "multiples of 16"),
    (lambda p: {k: v for k, v in p.items() if k != "x_hat"}, "x_hat missing"),
    (lambda p: dict(p, y_hat=p["y"]), "unknown probe tensor"),
    (lambda p: dict(p, z=p["y"]), "no hyperprior"),
    (lambda p: dict(p, y=p["y"][:, :3]), "probe y has shape"),
    (lambda p: dict(p, y=p["y"].astype(np.int32)), "expected float"),
    (lambda p: dict(p, x=np.zeros((2, 3, 1024, 1024), np.float32)), "more than"),
])
def test_bad_probes(tmp_path, change, match):
    fm = random_float_model(factorized(4), 0)
    rng = np.random.default_rng(0)
    probe = {"x": rng.random((1, 3, 32, 32)), "y": rng.random((1, 4, 2, 2)),
             "x_hat": rng.random((1, 3, 32, 32))}
    with pytest.raises(WeightsError, match=match):
        check_io(fm, change(probe), "p.npz")


def test_onnx_gdn_named(tmp_path):
    pytest.importorskip("onnx")
    from onnx import helper
    from test_io_formats import make_onnx, torch_tensors
    arch = factorized(8)
    p = make_onnx(arch, torch_tensors(arch), str(tmp_path / "g.onnx"),
                  extra=helper.make_node("Sqrt", ["AT0_act"], ["norm"], name="gdn_sqrt"))
    with pytest.raises(WeightsError, match=r"'Sqrt' \(node 'gdn_sqrt'\) \(a GDN / IGDN layer\?"):
        load_weights(p)


def test_check_io_leaky_slope_without_torch(tmp_path, cal, capsys, monkeypatch):
    """The same refusal with the trainer simulated in NumPy (no PyTorch needed):
    the probe of a LeakyReLU(0.01) network, fxlic's weights file of it."""
    import fxlic.model.float_model as flm
    from fxlic.io.floatfile import save_float_model
    fm = random_float_model(hyperprior5(8), 9)
    x = np.random.default_rng(4).random((3, 64, 64))

    def probe():
        t = flm.float_forward(fm, x)
        gp = np.floor(t["z"] + 0.5)
        for l in fm.arch.group("HS"):
            gp = flm.float_layer(fm, l.name, gp)
        x_hat = np.floor(t["y"] + 0.5)
        for l in fm.arch.group("ST"):
            x_hat = flm.float_layer(fm, l.name, x_hat)
        return {"x": x, "y": t["y"], "z": t["z"], "gaussian_params": gp, "x_hat": x_hat}

    good = probe()
    monkeypatch.setattr(flm, "LEAKY_SLOPE", 0.01)  # the trainer's network
    bad = probe()
    monkeypatch.undo()
    save_float_model(fm, str(tmp_path / "w.safetensors"))
    np.savez(tmp_path / "good.npz", **good)
    np.savez(tmp_path / "bad.npz", **bad)
    assert quantize(tmp_path / "w.safetensors", cal, tmp_path / "g.fxq",
                    "--check-io", tmp_path / "good.npz") == 0
    line = one_line(capsys, quantize(tmp_path / "w.safetensors", cal, tmp_path / "b.fxq",
                                     "--check-io", tmp_path / "bad.npz"))
    assert "bad.npz: I/O check: z (h_a = HA0-HA2) differs" in line
    assert not (tmp_path / "b.fxq").exists()
