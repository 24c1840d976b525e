"""Evaluation cache: keys, atomic records, evaluate() computes only misses."""
import json
import os

import numpy as np
import pytest

from fxlic.eval import runner
from fxlic.eval.cache import Cache, make_key
from fxlic.io.images import write_png


def test_make_key_stable_and_sensitive():
    k = make_key(kind="int", model_sha="ab", image="x.png", q=3)
    assert k == make_key(q=3, image="x.png", model_sha="ab", kind="int")
    assert k != make_key(kind="int", model_sha="ac", image="x.png", q=3)
    assert k != make_key(kind="int", model_sha="ab", image="x.png", q=4)


def test_put_get_roundtrip_and_disabled(tmp_path):
    c = Cache(str(tmp_path / "c"))
    assert c.get("00ff") is None
    c.put("00ff", {"bpp": 0.5, "psnr": 30.0})
    assert c.get("00ff") == {"bpp": 0.5, "psnr": 30.0}
    assert c.hits == 1 and c.misses == 1
    assert not [f for _, _, fs in os.walk(tmp_path) for f in fs if f.endswith(".tmp")]
    off = Cache(None)
    off.put("00ff", {"a": 1})
    assert off.get("00ff") is None


def test_corrupt_record_is_a_miss(tmp_path):
    c = Cache(str(tmp_path))
    c.put("abcd", {"a": 1})
    with open(os.path.join(str(tmp_path), "ab", "abcd.json"), "w") as f:
        f.write("{not json")
    assert c.get("abcd") is None


@pytest.fixture
def images(tmp_path):
    rng = np.random.default_rng(1)
    paths = []
    for i in range(2):
        p = str(tmp_path / f"im{i}.png")
        write_png(p, rng.integers(0, 256, (3, 32, 48), dtype=np.uint8))
        paths.append(p)
    return paths


def test_evaluate_computes_only_misses(tmp_path, images, monkeypatch):
    calls = []

    def fake(task):
        calls.append(task["image"])
        return {"image": os.path.basename(task["image"]), "bpp": 1.0, "psnr": 30.0, "msssim": None}

    monkeypatch.setattr(runner, "run_task", fake)
    cache = Cache(str(tmp_path / "cache"))
    tasks = [{"kind": "classical", "codec": "jpeg", "q": 50, "image": p} for p in images]
    r1 = runner.evaluate(tasks, cache, progress=False)
    assert len(calls) == 2
    r2 = runner.evaluate(tasks, cache, progress=False)
    assert len(calls) == 2 and r1 == r2
    # another quality is another key
    runner.evaluate([dict(tasks[0], q=60)], cache, progress=False)
    assert len(calls) == 3


def test_key_follows_image_content_not_path_only(tmp_path, images):
    t = {"kind": "classical", "codec": "jpeg", "q": 50, "image": images[0]}
    k1 = runner.task_key(t)
    runner._digest.cache_clear()
    write_png(images[0], np.zeros((3, 32, 48), np.uint8))
    runner._digest.cache_clear()
    assert runner.task_key(t) != k1


def test_float_key_of_latent_rule(tmp_path, images):
    """An offset-latent float task has its own key; an integer-latent one keeps the
    key it had before the rule was a task field (the cache stays valid)."""
    from fxlic.io.floatfile import save_float_model
    from fxlic.model.arch import hyperprior5
    from fxlic.model.float_model import random_float_model
    w = str(tmp_path / "w.safetensors")
    save_float_model(random_float_model(hyperprior5(4), seed=1), w)
    t = {"kind": "float", "weights": w, "image": images[0]}
    k = runner.task_key(t)
    assert runner.task_key(dict(t, latents="integer")) == k
    assert runner.task_key(dict(t, latents="offset")) != k
    parts = {"image": os.path.basename(images[0]), "image_sha": runner._digest(images[0]), "kind": "float",
             "weights_sha": runner._digest(w), "wq": None, "act_model": None, "precision": "float32",
             "engine": runner._engine()}
    assert make_key(**parts) == k


def test_jpeg_task_end_to_end(tmp_path, images):
    cache = Cache(str(tmp_path / "c"))
    rec = runner.evaluate([{"kind": "classical", "codec": "jpeg", "q": 75, "image": images[0]}],
                          cache, progress=False)[0]
    assert rec["bytes"] > 0 and rec["bpp"] == pytest.approx(8 * rec["bytes"] / (32 * 48))
    assert 5 < rec["psnr"] < 60 and rec["msssim"] is None  # too small for 5 scales
    json.dumps(rec)
    s = runner.summarize([rec, dict(rec, bpp=rec["bpp"] + 1)])
    assert s["n"] == 2 and s["bpp"] == pytest.approx(rec["bpp"] + 0.5)


def test_fxlic_eval_command(tmp_path, images, capsys):
    pytest.importorskip("bjontegaard")
    from engine_util import small_model

    from fxlic.cli import main
    from fxlic.io.modelfile import save_model
    mp = str(tmp_path / "m.fxq")
    save_model(small_model("hyperprior", N=8, seed=1), mp)
    d = os.path.dirname(images[0])
    out_json = str(tmp_path / "r.json")
    argv = ["eval", "--models", mp, "--codecs", "jpeg", "--images-dir", d, "--cache", str(tmp_path / "c"),
            "--json", out_json, "-q"]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "JPEG (Pillow, 4:2:0)" in text and "fxlic int" in text and "BD (psnr" in text
    res = json.load(open(out_json))
    assert res["images"] == ["im0.png", "im1.png"] and len(res["curves"]) == 2
    assert main(argv) == 0  # second run: everything from the cache
    assert "0 computed" in capsys.readouterr().out
    assert main(["eval", "--codecs", "nope", "--images-dir", d, "--no-cache", "-q"]) == 1


def test_fxlic_eval_command_bad_model_files(tmp_path, images, capsys):
    """A missing or corrupt model / weights file is one error line and exit 1."""
    from fxlic.cli import main
    d = os.path.dirname(images[0])
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}garbage")
    for opt, path in (("--models", str(tmp_path / "none.fxq")), ("--float", str(bad))):
        capsys.readouterr()
        assert main(["eval", opt, path, "--codecs", "", "--images-dir", d, "--no-cache", "-q"]) == 1
        err = capsys.readouterr().err
        assert "Traceback" not in err and path.split("/")[-1] in err


def test_fxlic_eval_float_latents(tmp_path, images):
    """--float-latents: offset (default) is the float model with y_hat = mean + round(y - mean)
    (sim.forward_codec latents="offset"), integer is round(y); the JSON says which."""
    from fxlic.cli import main
    from fxlic.eval import sim
    from fxlic.io.floatfile import load_weights, save_float_model
    from fxlic.io.images import read_image
    from fxlic.model.arch import hyperprior5
    from fxlic.model.float_model import random_float_model
    w = str(tmp_path / "w.safetensors")
    save_float_model(random_float_model(hyperprior5(8), seed=3), w)
    fm, d = load_weights(w), os.path.dirname(images[0])
    for rule in ("offset", "integer"):
        out = str(tmp_path / f"{rule}.json")
        argv = ["eval", "--models", "--float", w, "--codecs", "", "--images-dir", d, "--no-cache", "--json", out,
                "-q"] + (["--float-latents", rule] if rule == "integer" else [])
        assert main(argv) == 0
        res = json.load(open(out))
        (c,) = res["curves"]
        want = np.mean([sim.forward_codec(fm, read_image(p), engine=runner._engine(), latents=rule)[1]
                        for p in images])
        assert c["points"][0][1]["bpp"] == pytest.approx(want, rel=1e-9)
        assert ("mean + round" in c["description"]) == (rule == "offset")
