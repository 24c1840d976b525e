"""fxlic/zoo/proven.json: the shipped models whose K2 proof (SPEC A3 accumulator
bounds, shapes, exponent chaining; fxlic.io.modelcheck) the loader does not run
again.  Every entry is proven again here, the list is exactly the shipped models
and what tools/make_zoo.py writes, and any other content gets the full check."""
import json
import os

import numpy as np
import pytest

from fxlic.io import modelcheck
from fxlic.io.modelfile import ZOO_DIR, ModelFileError, load_model, model_hash, read_model_file, save_model
from fxlic.spec import SPEC_VERSION
from tool_loader import load_tool

SHIPPED = sorted(f[:-4] for f in os.listdir(ZOO_DIR) if f.endswith(".fxq"))


def _listed():
    with open(modelcheck.PROVEN_FILE, encoding="utf-8") as f:
        return json.load(f)


def test_the_list_is_the_shipped_models_for_this_spec():
    d = _listed()
    assert d["spec_version"] == SPEC_VERSION
    assert sorted(d["models"]) == SHIPPED
    assert modelcheck.proven_hashes() == frozenset(d["models"].values())


@pytest.mark.parametrize("name", SHIPPED)
def test_every_entry_is_proven_again_in_full(name):
    im, _ = read_model_file(os.path.join(ZOO_DIR, f"{name}.fxq"))
    assert model_hash(im) == _listed()["models"][name]
    modelcheck.check_model(im)  # no digest: K2 in full (raises ModelError if it fails)


def test_make_zoo_writes_the_committed_list():
    with open(modelcheck.PROVEN_FILE, encoding="utf-8") as f:
        assert load_tool("make_zoo").proven_list(ZOO_DIR) == f.read()


def _count_k2(monkeypatch):
    calls = []
    real = modelcheck._check_layers
    monkeypatch.setattr(modelcheck, "_check_layers", lambda im: (calls.append(1), real(im)))
    return calls


def test_a_shipped_file_skips_k2_and_any_other_content_does_not(monkeypatch, tmp_path):
    calls = _count_k2(monkeypatch)
    shipped = load_model(os.path.join(ZOO_DIR, "hp5-mse-q2.fxq"))
    assert calls == []
    # a re-saved copy of the same content is the same content: skipped too
    p = str(tmp_path / "copy.fxq")
    save_model(shipped, p)
    load_model(p)
    assert calls == []
    # one bias changed: new content, full check
    shipped.layers["AT0"].bias[0] += 1
    save_model(shipped, p)
    load_model(p)
    assert calls == [1]


def test_a_model_in_memory_is_checked_in_full(monkeypatch):
    """In memory nothing fixes the dtypes a hash does not see: K2 always runs there."""
    im = load_model(os.path.join(ZOO_DIR, "hp5-mse-q0.fxq"))
    object.__delattr__(im, modelcheck._STAMP)
    calls = _count_k2(monkeypatch)
    modelcheck.checked_tables(im)
    assert calls == [1]


def test_an_unlisted_overflowing_model_is_still_refused(tmp_path):
    im = load_model(os.path.join(ZOO_DIR, "hp5-mse-q0.fxq"))
    im.layers["AT1"].bias[0] = (1 << 31) - 1  # with any input the accumulator can pass 2^31-1
    p = str(tmp_path / "big.fxq")
    save_model(im, p)
    with pytest.raises(ModelFileError, match="2\\^31-1"):
        load_model(p)


@pytest.mark.parametrize("text", ['{"spec_version": "fxlic-spec-0.9", "models": {"a": "%s"}}', "not json",
                                  '{"models": 3}', '[]'])
def test_a_list_of_another_spec_or_damaged_is_ignored(monkeypatch, tmp_path, text):
    h = _listed()["models"]["hp5-mse-q0"]
    f = tmp_path / "proven.json"
    f.write_text(text.replace("%s", h))
    monkeypatch.setattr(modelcheck, "PROVEN_FILE", str(f))
    modelcheck.proven_hashes.cache_clear()
    try:
        assert modelcheck.proven_hashes() == frozenset()
        calls = _count_k2(monkeypatch)
        load_model(os.path.join(ZOO_DIR, "hp5-mse-q0.fxq"))
        assert calls == [1]
    finally:
        monkeypatch.undo()
        modelcheck.proven_hashes.cache_clear()
    assert h in modelcheck.proven_hashes()
