"""Shared helpers of the engine tests: small random models and layer runners."""
from __future__ import annotations

import numpy as np

from fxlic.kernels import get_backend
from fxlic.model.arch import LayerSpec, factorized, hyperprior5
from fxlic.model.build import build_int_model, calibrate
from fxlic.model.float_model import random_float_model
from fxlic.model.int_forward import encode, pad_to_multiple, synthesize
from fxlic.model.intmodel import IntLayer

_CACHE = {}


def small_model(kind="hyperprior", N=8, seed=0, **kw):
    key = (kind, N, seed, tuple(sorted(kw.items())))
    if key not in _CACHE:
        arch = hyperprior5(N) if kind == "hyperprior" else factorized(N)
        fm = random_float_model(arch, seed)
        rng = np.random.default_rng(seed + 100)
        imgs = [rng.integers(0, 256, (3, 64, 64), dtype=np.uint8) for _ in range(2)]
        _CACHE[key] = build_int_model(fm, calibrate(fm, imgs), **kw)
    return _CACHE[key]


def run_all_layers(model, pixels, backend):
    """Encode + decode, returning {layer: (input codes, acc, output codes)}."""
    rec = {}

    def hook(name, inp, acc, out):
        rec[name] = (inp, acc, out)

    pixels = pad_to_multiple(pixels, model.arch.pad_multiple)
    e = encode(model, pixels, backend, hook)
    synthesize(model, e.y, e.mu, backend, hook)
    return rec


def assert_same_layers(a, b):
    assert a.keys() == b.keys()
    for name in a:
        for what, u, v in zip(("input", "acc", "output"), a[name], b[name]):
            assert u.shape == v.shape, (name, what)
            assert np.array_equal(u, v), f"{name}: {what} differs"


def synthetic_layer(op="conv", k=5, stride=2, cin=4, cout=3, act="relu", out="act",
                    w_codes=None, bias=None, in_exp=None, out_exp=None, mux=None, seed=0,
                    src="x"):
    """An IntLayer built directly from integers (for kernel-level tests)."""
    from fxlic.quant.codebook import weight_nlq
    from fxlic.quant.weights import codebook_lut

    rng = np.random.default_rng(seed)
    spec = LayerSpec("T", op, k, stride, cin, cout, act, src, out=out)
    if w_codes is None:
        w_codes = rng.integers(-127, 128, (cout, cin, k, k))
    return IntLayer(
        spec,
        np.asarray(w_codes, np.int8),
        codebook_lut(weight_nlq(8)),
        np.full(cout, -18, np.int64),
        np.asarray(rng.integers(-1000, 1000, cout) if bias is None else bias, np.int64),
        np.asarray(rng.integers(-12, -8, cin) if in_exp is None else in_exp, np.int64),
        np.asarray(rng.integers(-12, -6, cout) if out_exp is None else out_exp, np.int64),
        np.asarray(rng.integers(0, 4, cout) if (mux is None and act == "relu" and out == "act")
                   else (np.zeros(cout) if mux is None else mux), np.int64),
    )


def layer_tables(layer, signed_input=False, mu=None):
    """Decode tables for a synthetic layer reading raw codes (levels = codes)."""
    d = layer.in_shift
    codes = np.arange(256, dtype=np.int64) - (128 if signed_input else 0)
    add = 0 if mu is None else np.asarray(mu)[:, None]
    return (codes[None, :] + add) << d[:, None], (128 if signed_input else 0)


def run_layer(layer, codes, backend, signed_input=False, mu=None):
    tables, offset = layer_tables(layer, signed_input)
    lmu = np.zeros(layer.spec.cout, np.int64) if mu is None else mu
    return get_backend(backend).layer(layer, codes, tables, offset, lmu, want_acc=True)


def model_and_image_files(d, model, shape, img_seed, box=None):
    """``model`` saved as d/m.fxq and a random (3, H, W) image (``box`` = (y0, y1, x0, x1)
    painted flat at 180) as d/img.png; returns (model path, image path, pixels)."""
    from fxlic.io.images import write_png
    from fxlic.io.modelfile import save_model
    save_model(model, str(d / "m.fxq"))
    img = np.random.default_rng(img_seed).integers(0, 256, shape, dtype=np.uint8)
    if box:
        y0, y1, x0, x1 = box
        img[:, y0:y1, x0:x1] = 180
    write_png(str(d / "img.png"), img)
    return str(d / "m.fxq"), str(d / "img.png"), img


def vectors_case(d, model, shape, img_seed, *options, box=None):
    """A golden case written by ``fxlic vectors`` into d/case (quiet, with ``options``)."""
    from fxlic.cli import main
    m, im, _ = model_and_image_files(d, model, shape, img_seed, box)
    out = str(d / "case")
    assert main(["vectors", "--model", m, "--image", im, "--out", out, "-q", *options]) == 0
    return out


def tree_paths(root):
    """{relative path ('/'-separated): path} of every file below ``root``."""
    import os
    out = {}
    for dp, _, fn in os.walk(root):
        for n in fn:
            p = os.path.join(dp, n)
            out[os.path.relpath(p, root).replace(os.sep, "/")] = p
    return out


def read_tree(root):
    """{relative path: bytes} of every file below ``root`` (trees compared byte for byte)."""
    out = {}
    for rel, p in tree_paths(root).items():
        with open(p, "rb") as f:
            out[rel] = f.read()
    return out


def one_line_error(capsys, rc, cmd):
    """The CLI's bad-input contract: exit 1, one line ``fxlic CMD: error: ...`` on stderr,
    no traceback. Returns that line."""
    err = capsys.readouterr().err
    assert rc == 1, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"fxlic {cmd}: error: "), err
    assert "Traceback" not in err
    return lines[0]
