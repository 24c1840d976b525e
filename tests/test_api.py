"""The Python API (fxlic/api.py, README "Python API"): fxlic.load, Model.compress /
decompress / float_forward / vectors, and the CLI running through it."""
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import fxlic
from fxlic.bitstream.container import BitstreamError
from fxlic.cli import main
from fxlic.codec import read_header
from fxlic.io.floatfile import save_float_model
from fxlic.io.images import ImageError
from fxlic.io.modelfile import ModelFileError, list_zoo, save_model
from fxlic.model.arch import factorized
from fxlic.model.build import build_int_model, calibrate
from fxlic.model.float_model import random_float_model

needs_zoo = pytest.mark.skipif(not any(p.endswith("hp5-mse-q2.fxq") for p in list_zoo()),
                               reason="hp5-mse-q2 is not shipped")


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    d = tmp_path_factory.mktemp("api")
    rng = np.random.default_rng(2)
    a = rng.integers(0, 256, (40, 72, 3), dtype=np.uint8)
    Image.fromarray(a).save(d / "in.png")
    return a, str(d / "in.png")


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """A factorized N=4 model as a .fxq with its float weights beside it."""
    d = tmp_path_factory.mktemp("small")
    fm = random_float_model(factorized(4), 5)
    rng = np.random.default_rng(1)
    im = build_int_model(fm, calibrate(fm, [rng.integers(0, 256, (3, 32, 32), dtype=np.uint8)]))
    save_model(im, str(d / "tiny.fxq"))
    save_float_model(fm, str(d / "tiny.float.safetensors"))
    return str(d / "tiny.fxq")


def test_import_stays_light():
    code = ("import sys, fxlic; assert not {'fxlic.api', 'fxlic.codec'} & set(sys.modules); "
            "fxlic.load; assert 'fxlic.api' in sys.modules; print(fxlic.DEFAULT_MODEL)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "hp5-mse-q2"
    assert "load" in dir(fxlic)
    with pytest.raises(AttributeError):
        fxlic.no_such_thing


@needs_zoo
def test_load_compress_decompress_shipped(image, tmp_path, capsys):
    a, path = image
    m = fxlic.load("hp5-mse-q2")
    assert m.name == "hp5-mse-q2" and m.arch.name == "hyperprior5-N128" and m.arch.kind == "hyperprior"
    assert fxlic.load().id == m.id and len(m.id) == 32 and m.path.endswith("hp5-mse-q2.fxq")
    data = m.compress(a)
    assert isinstance(data, bytes) and data == m.compress(path)
    assert read_header(data).model_id.hex() == m.id
    rec = m.decompress(data)
    assert rec.shape == a.shape and rec.dtype == np.uint8
    assert fxlic.find_model(data).name == "hp5-mse-q2"
    # the CLI writes the same bytes and pixels
    assert main(["compress", path, "-o", str(tmp_path / "s.fxl"), "-q"]) == 0
    assert (tmp_path / "s.fxl").read_bytes() == data
    assert main(["decompress", str(tmp_path / "s.fxl"), "-o", str(tmp_path / "r.png"), "-q"]) == 0
    assert np.array_equal(np.asarray(Image.open(tmp_path / "r.png")), rec)
    # float forward from the shipped float weights
    f = m.float_forward(a)
    assert f["x_hat"].shape == a.shape and f["x_hat"].dtype == np.uint8 and f["bpp"] > 0
    # under the model's own latent rule (SPEC O5): the shipped models code round(y - mean)
    from fxlic.eval.sim import float_engine, forward_codec
    assert m.latents == "offset"
    rec_o, bpp_o, _ = forward_codec(m.float_model, a.transpose(2, 0, 1).copy(), engine=float_engine(),
                                    latents="offset")
    assert f["bpp"] == bpp_o and np.array_equal(f["x_hat"], rec_o.transpose(1, 2, 0))


def test_path_model_float_forward_and_errors(small, image):
    a, path = image
    m = fxlic.load(small)
    assert m.name == "tiny" and m.arch.name == "factorized-N4" and repr(m).startswith("fxlic.Model('tiny'")
    rec = m.decompress(m.compress(path))
    assert rec.shape == a.shape
    fast, exact = m.float_forward(a), m.float_forward(path, exact=True)
    assert fast["x_hat"].shape == exact["x_hat"].shape == a.shape
    assert abs(fast["bpp"] - exact["bpp"]) < 1e-3 * exact["bpp"]
    assert np.abs(fast["x_hat"].astype(int) - exact["x_hat"]).max() <= 1
    assert fxlic.find_model(m.compress(a)) is None  # not a shipped model
    with pytest.raises(ImageError, match=r"\(H, W, 3\) uint8"):
        m.compress(a.transpose(2, 0, 1))
    with pytest.raises(ImageError, match=r"\(H, W, 3\) uint8"):
        m.compress(a.astype(np.float32))
    with pytest.raises(ModelFileError, match="no such model file or shipped model"):
        fxlic.load("no-such-model")
    with pytest.raises(BitstreamError):
        m.decompress(b"not a stream")
    with pytest.raises(BitstreamError, match="max"):
        m.decompress(m.compress(a), max_pixels=10)
    other = fxlic.Model(build_int_model(random_float_model(factorized(4), 6), calibrate(
        random_float_model(factorized(4), 6), [a.transpose(2, 0, 1)[:, :32, :32].copy()])))
    with pytest.raises(BitstreamError, match="another model"):
        other.decompress(m.compress(a))
    with pytest.raises(ModelFileError, match="no float weights"):
        other.float_forward(a)


def test_vectors(small, image, tmp_path, capsys):
    a, path = image
    m = fxlic.load(small)
    man = m.vectors(path, str(tmp_path / "case"), layers="AT0,ST*", mem="none", acc=False)
    assert os.path.isfile(tmp_path / "case" / "manifest.json") and man["files"]
    assert not any(k.endswith(".mem") for k in man["files"])
    assert main(["vectors", "--check", str(tmp_path / "case"), "-q"]) == 0
    with pytest.raises(ValueError, match="not an empty directory"):
        m.vectors(a, str(tmp_path / "case"))
    with pytest.raises(ValueError, match="mem: unknown"):
        m.vectors(a, str(tmp_path / "c2"), mem="bogus")
    assert not os.path.exists(tmp_path / "c2")


def test_cli_runs_through_the_api(small, image, tmp_path, monkeypatch):
    import fxlic.api as api
    calls = []
    enc, dec = api.Model.encode, api.Model.decode
    monkeypatch.setattr(api.Model, "encode", lambda *a, **k: calls.append("encode") or enc(*a, **k))
    monkeypatch.setattr(api.Model, "decode", lambda *a, **k: calls.append("decode") or dec(*a, **k))
    _, path = image
    assert main(["compress", path, "-o", str(tmp_path / "s.fxl"), "--model", small, "-q"]) == 0
    assert main(["decompress", str(tmp_path / "s.fxl"), "-o", str(tmp_path / "r.png"), "--model", small,
                 "-q"]) == 0
    assert calls == ["encode", "decode"]


def test_no_shipped_model(tmp_path, monkeypatch, capsys, image):
    import fxlic.io.modelfile as mf
    monkeypatch.setattr(mf, "ZOO_DIR", str(tmp_path))
    with pytest.raises(fxlic.api.NoShippedModel):
        fxlic.load()
    assert main(["compress", image[1], "-o", str(tmp_path / "s.fxl")]) == 1
    assert capsys.readouterr().err.strip() == \
        "fxlic compress: error: no shipped model is installed; pass --model PATH.fxq"


def test_find_model_loads_only_the_match(monkeypatch):
    """The zoo is indexed by the ids its headers declare (issue 20: decompress loaded
    every shipped model to find the stream's): one full load, the matching model's."""
    import fxlic.io.modelfile as mf
    m = fxlic.load("hp5-mse-q1")
    data = m.compress(np.zeros((64, 64, 3), np.uint8))
    loads = []
    real = mf.load_model
    monkeypatch.setattr(mf, "load_model", lambda p: loads.append(p) or real(p))
    assert fxlic.find_model(data).name == "hp5-mse-q1"
    assert [os.path.basename(p) for p in loads] == ["hp5-mse-q1.fxq"]
