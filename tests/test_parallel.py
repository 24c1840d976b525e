"""Executors (fxlic/parallel.py): `fxlic eval`, `fxlic vectors --image DIR`
and `fxlic quantize` give identical results in this process, on a local
process pool and on a Dask cluster (an in-process LocalCluster); scheduler
errors are one line with exit status 1."""
import json
import os
import sys

import numpy as np
import pytest

from engine_util import one_line_error, read_tree, small_model

from fxlic import parallel
from fxlic.cli import main
from fxlic.io.images import write_png
from fxlic.io.modelfile import load_model, model_hash, save_model

#: per-record fields that measure time, not the codec
TIMING = {"encode_s", "decode_s", "seconds"}


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """A tiny model (N = 8), its float weights and two tiny images of different sizes."""
    from fxlic.io.floatfile import save_float_model
    from fxlic.model.arch import hyperprior5
    from fxlic.model.float_model import random_float_model
    d = tmp_path_factory.mktemp("par")
    save_model(small_model("hyperprior", N=8, seed=1), str(d / "m.fxq"))
    save_float_model(random_float_model(hyperprior5(8), 0), str(d / "w.safetensors"))
    (d / "imgs").mkdir()
    rng = np.random.default_rng(5)
    for k, (h, w) in enumerate([(32, 48), (40, 40)]):
        write_png(str(d / "imgs" / f"im{k}.png"), rng.integers(0, 256, (3, h, w), dtype=np.uint8))
    return d


@pytest.fixture(scope="module")
def cluster():
    """An in-process Dask cluster: one worker, two threads (skipped without dask)."""
    pytest.importorskip("dask.distributed")
    from dask.distributed import LocalCluster
    with LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=":0") as c:
        yield c.scheduler_address


def _ways(cluster):
    """The executor options: in this process, a pool of 2, the Dask cluster."""
    return [("serial", ["--jobs", "1"]), ("pool", ["--jobs", "2"]), ("dask", ["--scheduler", cluster])]


def test_eval_same_records_on_every_executor(work, cluster, tmp_path, capsys):
    pytest.importorskip("bjontegaard")
    got = {}
    for name, opts in _ways(cluster):
        js = tmp_path / f"{name}.json"
        assert main(["eval", "--models", str(work / "m.fxq"), "--codecs", "jpeg", "--images",
                     str(work / "imgs"), "--no-cache", "-q", "--json", str(js), *opts]) == 0, capsys.readouterr().err
        res = json.loads(js.read_text())
        got[name] = {label: [[{k: v for k, v in r.items() if k not in TIMING} for r in recs]
                             for recs in [res["per_image"][label][p] for p in sorted(res["per_image"][label])]]
                     for label in res["per_image"]}
    assert got["serial"] and got["serial"] == got["pool"] == got["dask"]


def test_vectors_folder_identical_on_every_executor(work, cluster, tmp_path, capsys):
    trees = {}
    for name, opts in _ways(cluster):
        out = tmp_path / name
        assert main(["vectors", "--model", str(work / "m.fxq"), "--image", str(work / "imgs"), "--out", str(out),
                     "--mem", "none", "--no-acc", "-q", *opts]) == 0, capsys.readouterr().err
        trees[name] = read_tree(out)
    assert trees["serial"] == trees["pool"] == trees["dask"]
    suite = json.loads(trees["serial"]["manifest.json"])
    assert suite["kind"] == "suite" and [c["dir"] for c in suite["cases"]] == ["cases/m/im0", "cases/m/im1"]
    assert [c["size"] for c in suite["cases"]] == [[48, 32], [40, 40]]
    assert "models/m/model.fxq" in trees["serial"]
    assert main(["vectors", "--check", str(tmp_path / "serial"), "-q"]) == 0


def test_vectors_folder_errors(work, tmp_path, capsys):
    d = tmp_path / "dup"
    d.mkdir()
    write_png(str(d / "a.png"), np.zeros((3, 8, 8), np.uint8))
    (d / "a.ppm").write_bytes(b"P6 8 8 255\n" + bytes(192))
    line = one_line_error(capsys, main(["vectors", "--model", str(work / "m.fxq"), "--image", str(d),
                                        "--out", str(tmp_path / "o"), "-q"]), "vectors")
    assert "would both be case 'a'" in line
    line = one_line_error(capsys, main(["vectors", "--model", str(work / "m.fxq"), "--image", str(work / "imgs"),
                                        "--out", str(tmp_path / "o"), "-q", "--crop", "48x33"]), "vectors")
    assert "larger than the im0.png 48x32 image" in line
    line = one_line_error(capsys, main(["vectors", "--model", str(work / "m.fxq"), "--image", str(work / "imgs"),
                                        "--out", str(tmp_path / "o"), "-q", "--max-bytes", "1M"]), "vectors")
    assert "the suite would be about" in line
    assert not os.path.exists(tmp_path / "o")


def test_quantize_calibration_same_on_every_executor(work, cluster, tmp_path, capsys):
    hashes = {}
    for name, opts in _ways(cluster):
        out = tmp_path / f"{name}.fxq"
        assert main(["quantize", "--weights", str(work / "w.safetensors"), "--calib", str(work / "imgs"),
                     "--out", str(out), "-q", *opts]) == 0, capsys.readouterr().err
        hashes[name] = model_hash(load_model(str(out)))
    assert hashes["serial"] == hashes["pool"] == hashes["dask"]


def test_bad_scheduler_is_one_line(work, tmp_path, capsys, monkeypatch):
    pytest.importorskip("dask.distributed")
    pytest.importorskip("bjontegaard")
    monkeypatch.setenv(parallel.TIMEOUT_ENV, "1")
    base = ["eval", "--models", str(work / "m.fxq"), "--codecs", "", "--images", str(work / "imgs"), "--no-cache",
            "-q"]
    line = one_line_error(capsys, main(base + ["--scheduler", "tcp://127.0.0.1:1"]), "eval")
    assert "cannot connect to the Dask scheduler within 1 s" in line
    line = one_line_error(capsys, main(base + ["--scheduler", "nohost"]), "eval")
    assert "not a Dask scheduler address" in line
    monkeypatch.setenv(parallel.SCHEDULER_ENV, "tcp://127.0.0.1:1")  # the environment variable is used too
    out = tmp_path / "v"
    line = one_line_error(capsys, main(["vectors", "--model", str(work / "m.fxq"), "--image", str(work / "imgs"),
                                        "--out", str(out), "-q"]), "vectors")
    assert "tcp://127.0.0.1:1" in line and not os.path.exists(out)
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".fxlic-vectors-")]
    monkeypatch.setenv(parallel.TIMEOUT_ENV, "soon")
    assert "FXLIC_SCHEDULER_TIMEOUT" in one_line_error(capsys, main(base), "eval")


def test_scheduler_without_workers(monkeypatch):
    pytest.importorskip("dask.distributed")
    from dask.distributed import LocalCluster
    with LocalCluster(n_workers=0, processes=False, dashboard_address=":0") as c:
        with pytest.raises(parallel.SchedulerError, match="has no workers"):
            parallel.DaskExecutor(c.scheduler_address, timeout=0.5)


def test_missing_dask_is_one_line(work, capsys, monkeypatch):
    for mod in ("dask", "dask.distributed", "distributed"):
        monkeypatch.setitem(sys.modules, mod, None)  # import fails as if not installed
    line = one_line_error(capsys, main(["vectors", "--model", str(work / "m.fxq"), "--image", str(work / "imgs"),
                                        "--out", str(work / "none"), "-q", "--scheduler", "tcp://h:8786"]),
                          "vectors")
    assert not os.path.exists(work / "none")
    assert "needs Dask: pip install 'fxlic[dask]'" in line


def test_make_executor_choices(monkeypatch):
    monkeypatch.delenv(parallel.SCHEDULER_ENV, raising=False)
    assert isinstance(parallel.make_executor(1), parallel.Serial)
    assert isinstance(parallel.make_executor(4, tasks=1), parallel.Serial)
    ex = parallel.make_executor(3, tasks=2)
    assert isinstance(ex, parallel.Pool) and ex.workers == 2 and ex.describe() == "pool x2"
    ex.close()  # never started: nothing to stop
    monkeypatch.setattr(parallel, "cpu_count", lambda: 5)
    assert parallel.make_executor(None).workers == 5
    with pytest.raises(parallel.CliError, match="--jobs must be at least 1"):
        parallel.make_executor(0)
    assert parallel.Serial().map(abs, [-3, 2, -1]) == [3, 2, 1]
