"""Issue 18 item 1: model files with a valid content hash but bad semantics are
refused at load, by the one pass of fxlic.io.modelcheck, with a one-line error,
through every entry point (load_model, fxlic compress / decompress / info, the
codec API on in-memory models)."""
import copy
import dataclasses

import numpy as np
import pytest

from engine_util import one_line_error, small_model
from fxlic.cli import main
from fxlic.codec import compress, decompress
from fxlic.io.modelcheck import MAX_CHANNELS, check_architecture, check_model, checked_tables
from fxlic.io.modelfile import ModelFileError, load_model, save_model
from fxlic.model.arch import hyperprior5
from fxlic.model.intmodel import ModelError


@pytest.fixture(scope="module")
def hp():
    im = small_model("hyperprior", N=8, seed=3)
    checked_tables(im)  # stamped: a copy edited only in meta must still be re-checked
    return im


@pytest.fixture(scope="module")
def fact():
    im = small_model("factorized", N=8, seed=3)
    checked_tables(im)
    return im


def _set(name, fn):
    def f(im):
        im.entropy[name] = fn(im.entropy[name].copy())
    return f


def _drop(name):
    return lambda im: im.entropy.pop(name)


def _cdf_row0(i, v):
    def fn(a):
        a[0, i] = v
        return a
    return fn


def _hs5_exp(v):
    def f(im):
        L = im.layers["HS5"]
        L.out_exp = L.out_exp.copy()
        L.out_exp[im.arch.M] = v  # the first means channel
    return f


def _arch_act(im):
    layers = tuple(dataclasses.replace(l, act="none") if l.name == "HS2" else l for l in im.arch.layers)
    arch = dataclasses.replace(im.arch, layers=layers)
    im.arch = arch
    for n, L in im.layers.items():
        L.spec = arch.layer(n)


#: (id, mutation, expected message fragment); each model is saved with a
#: consistent content hash, so only the semantic checks can refuse it
HP_CASES = [
    ("no-entropy", lambda im: im.entropy.clear(), "fact.cdf"),
    ("no-fact-cdfs", _drop("fact.cdfs"), "fact.cdfs missing"),
    ("no-frac-bits", _drop("gauss.frac_bits"), "gauss.frac_bits missing"),
    ("no-cdf-data", _drop("gauss.cdf_data"), "exactly one of"),
    ("no-thresholds", _drop("gauss.thresholds"), "gauss.thresholds missing"),
    ("both-spellings", lambda im: im.entropy.update({"gauss.cdfs": np.zeros((2, 2), np.int32)}),
     "exactly one of"),
    ("unknown-gauss", lambda im: im.entropy.update({"gauss.extra": np.zeros(2, np.int32)}),
     "unexpected entropy table gauss.extra"),
    ("non-increasing", _set("fact.cdfs", _cdf_row0(2, 0)), "strictly increasing"),
    ("cdf-start", _set("fact.cdfs", _cdf_row0(0, 5)), "start at 0"),
    ("cdf-end", _set("fact.cdf_sizes", lambda a: a - 1), "end at 2^16"),
    ("size-too-big", _set("fact.cdf_sizes", lambda a: a + 10 ** 6), "cdf_sizes"),
    ("size-too-small", _set("fact.cdf_sizes", lambda a: a * 0 + 1), "cdf_sizes"),
    ("offset-int64", _set("fact.offsets", lambda a: a.astype(np.int64) + (1 << 40)), "int32"),
    ("offset-2^30", _set("gauss.offsets", lambda a: a + (1 << 30)), "2^24"),
    ("offsets-2d", _set("fact.offsets", lambda a: a.reshape(1, -1)), "dimension"),
    ("fact-channels", lambda im: im.entropy.update(
        {k: im.entropy[k][:-1].copy() for k in ("fact.cdfs", "fact.cdf_sizes", "fact.offsets")}),
     "channels"),
    ("frac-bits-1", _set("gauss.frac_bits", lambda a: a[1:].copy()), "frac_bits has shape"),
    ("frac-bits-3", _set("gauss.frac_bits", lambda a: np.concatenate([a, [0]]).astype(a.dtype)),
     "frac_bits has shape"),
    ("scale-frac-41", _set("gauss.frac_bits", lambda a: np.array([41, a[1]], a.dtype)), "[0, 40]"),
    ("scale-frac-neg", _set("gauss.frac_bits", lambda a: np.array([-1, a[1]], a.dtype)), "[0, 40]"),
    ("mean-frac-3", _set("gauss.frac_bits", lambda a: np.array([a[0], 3], a.dtype)), "tables"),
    ("mean-frac-99", _set("gauss.frac_bits", lambda a: np.array([a[0], 99], a.dtype)), "[0, 40]"),
    ("thresholds-down", _set("gauss.thresholds", lambda a: a[::-1].copy()), "non-decreasing"),
    ("thresholds-2d", _set("gauss.thresholds", lambda a: a.reshape(1, -1)), "dimension"),
    ("cdf-data-short", _set("gauss.cdf_data", lambda a: a[:-1].copy()), "cdf_data"),
    ("cdf-sizes-wrap", _set("gauss.cdf_sizes", lambda a: np.concatenate(
        [[1 << 62, -(1 << 62) + int(a[0])], a[2:]]).astype(np.int64)), "cdf_sizes"),
    ("thresholds-u64", _set("gauss.thresholds", lambda a: a.astype(np.uint64) + np.uint64(1 << 63)),
     "int64"),
    ("hs5-exp", _hs5_exp(30), "SPEC E1"),
    ("arch-layers", _arch_act, "layer list differs"),
    ("meta-lambda", lambda im: im.meta.update(float_model={"lambda": "abc"}), "lambda"),
    ("meta-images", lambda im: im.meta.update(calibration={"images": 5}), "images"),
]

FACT_CASES = [
    ("fact-gauss", lambda im: im.entropy.update({"gauss.frac_bits": np.array([16, 2], np.int32)}),
     "no gauss"),
    ("fact-no-offsets", _drop("fact.offsets"), "fact.offsets missing"),
]


def _tampered(base, fn):
    im = copy.deepcopy(base)
    fn(im)
    return im




@pytest.mark.parametrize("case", HP_CASES + FACT_CASES, ids=[c[0] for c in HP_CASES + FACT_CASES])
def test_semantic_damage_refused_everywhere(case, hp, fact, tmp_path, capsys):
    name, fn, match = case
    base = fact if name.startswith("fact-") else hp
    im = _tampered(base, fn)
    # the API: the codec runs the same pass on an in-memory model
    with pytest.raises(ModelError) as e:
        checked_tables(im)
    assert match in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(ModelError):
        compress(im, np.zeros((3, 16, 16), np.uint8))
    # the file, saved with a consistent content hash
    p = str(tmp_path / f"{name}.fxq")
    save_model(im, p)
    with pytest.raises(ModelFileError, match="model refused") as e:
        load_model(p)
    assert match in str(e.value) and "\n" not in str(e.value)
    # the CLI: info and compress refuse it in one line, and write nothing
    line = one_line_error(capsys, main(["info", p]), "info")
    assert "model refused" in line
    img = str(tmp_path / "i.png")
    from fxlic.io.images import write_png
    write_png(img, np.zeros((3, 16, 16), np.uint8))
    out = str(tmp_path / "o.fxl")
    one_line_error(capsys, main(["compress", img, "-o", out, "--model", p, "-q"]), "compress")
    assert not (tmp_path / "o.fxl").exists()


def test_decompress_with_refused_model(hp, tmp_path, capsys):
    data, _ = compress(hp, np.zeros((3, 16, 16), np.uint8))
    s = tmp_path / "s.fxl"
    s.write_bytes(data)
    p = str(tmp_path / "bad.fxq")
    save_model(_tampered(hp, _drop("gauss.frac_bits")), p)
    line = one_line_error(capsys, main(["decompress", str(s), "-o", str(tmp_path / "o.png"), "--model", p]),
                     "decompress")
    assert "gauss.frac_bits missing" in line
    assert not (tmp_path / "o.png").exists()


def test_good_models_pass_and_are_checked_once(hp, fact, tmp_path):
    for im in (hp, fact):
        t = check_model(im)
        assert t.fact.channels == (im.arch.N if im.arch.kind == "hyperprior" else im.arch.M)
        assert (t.gauss is None) == (im.arch.kind == "factorized")
    p = str(tmp_path / "m.fxq")
    save_model(hp, p)
    back = load_model(p)
    assert checked_tables(back) is checked_tables(back)  # stamped by the loader
    # editing an array after the check re-runs it
    back.entropy["gauss.frac_bits"] = np.array([16], np.int32)
    with pytest.raises(ModelError, match="frac_bits"):
        decompress(back, compress(hp, np.zeros((3, 8, 8), np.uint8))[0])


def test_architecture_bounds():
    check_architecture(hyperprior5(8))
    with pytest.raises(ModelError, match="outside"):
        check_architecture(hyperprior5(MAX_CHANNELS + 1))
