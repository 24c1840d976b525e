"""External-model cases of the committed suite (docs/VECTORS.md 6, issue 17):
the shipped models without a model directory in vectors/ (fact-mse-q1, the
factorized prior, and the hp5 models but the default) are named by their
fxlic/zoo/NAME.fxq file (zoo name, repository path, sha256, model id) in the
case and suite manifests and in case.txt; `fxlic vectors --model NAME
--model-only --out DIR` writes their model directory exactly as the suite holds
the default model's; the C decoder (and encoder) port checks the cases from such
a directory; `fxlic verify` and `fxlic vectors --check` refuse a model file that
is missing or another."""
import hashlib
import json
import os
import shutil
import subprocess

import pytest

from c_port_util import build_port
from engine_util import tree_paths
from fxlic.cli import main

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VEC = os.path.join(REPO, "vectors")
ZOO = os.path.join(REPO, "fxlic", "zoo")
DEFAULT_DIR = "models/hp5-mse-q2"
FACT = "cases/fact-mse-q1/img64"
HP5 = "cases/hp5-mse-q0/img64"


def _suite():
    with open(os.path.join(VEC, "manifest.json")) as f:
        return json.load(f)


def _external_cases():
    s = _suite()
    return [c for c in s["cases"] if s["models"][c["model"]]["dir"] is None]


def _sha(p):
    with open(p, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def _need(*rels):
    for r in rels:
        if not os.path.exists(os.path.join(VEC, r)):
            pytest.skip(f"vectors/{r} is not in this suite")


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """name -> model directory written by `fxlic vectors --model NAME --model-only` (once)"""
    root = tmp_path_factory.mktemp("export")
    done = {}

    def get(name):
        if name not in done:
            out = str(root / name)
            assert main(["vectors", "--model", name, "--model-only", "--out", out, "-q"]) == 0
            done[name] = out
        return done[name]
    return get


def test_every_external_case_names_its_model_file():
    """manifest, suite manifest and case.txt name the shipped file by zoo name, path,
    sha256 and id; the file is the one in fxlic/zoo"""
    s = _suite()
    cases = _external_cases()
    assert {c["model"] for c in cases} >= {"fact-mse-q1", "hp5-mse-q0", "hp5-mse-q1"} & set(s["models"])
    for c in cases:
        ext = s["models"][c["model"]]["external"]
        with open(os.path.join(VEC, c["dir"], "manifest.json")) as f:
            m = json.load(f)
        assert m["model"]["dir"] is None and m["model"]["external"] == ext
        assert ext["zoo"] == c["model"] and ext["path"] == f"fxlic/zoo/{c['model']}.fxq"
        p = os.path.join(REPO, *ext["path"].split("/"))
        assert _sha(p) == ext["sha256"] and os.path.getsize(p) == ext["bytes"], \
            f"{ext['path']} changed: regenerate vectors/ (python tools/gen_vectors.py)"
        assert ext["id"] == m["model"]["hash"].split(":")[1][:32]
        with open(os.path.join(VEC, c["dir"], "case.txt")) as f:
            kv = dict(line.rstrip("\n").split(" ", 1) for line in f if not line.startswith("#"))
        assert kv["model_dir"] == "-" and kv["model_name"] == c["model"] and kv["model_file"] == ext["path"]
        assert kv["model_sha256"] == ext["sha256"] and kv["model_hash"] == m["model"]["hash"]


def test_model_only_export_is_the_suite_model_directory(exported, tmp_path):
    """the export of the default model (by name and by path) is byte for byte vectors/models/hp5-mse-q2"""
    _need(DEFAULT_DIR)
    want = tree_paths(os.path.join(VEC, DEFAULT_DIR))
    by_path = str(tmp_path / "by-path")
    assert main(["vectors", "--model", os.path.join(ZOO, "hp5-mse-q2.fxq"), "--model-only", "--out", by_path,
                 "-q"]) == 0
    for out in (exported("hp5-mse-q2"), by_path):
        got = tree_paths(out)
        assert sorted(got) == sorted(want)
        diff = [r for r in want if _sha(want[r]) != _sha(got[r])]
        assert not diff, f"{len(diff)} files differ from vectors/{DEFAULT_DIR}, e.g. {diff[:5]}"
    with open(os.path.join(VEC, DEFAULT_DIR, "manifest.json")) as f:
        man = json.load(f)
    assert man["fxq"] == {"path": "fxlic/zoo/hp5-mse-q2.fxq", "sha256": _sha(os.path.join(ZOO, "hp5-mse-q2.fxq")),
                          "bytes": os.path.getsize(os.path.join(ZOO, "hp5-mse-q2.fxq"))}
    assert main(["vectors", "--check", by_path, "-q"]) == 0


def test_model_only_options_and_errors(tmp_path, capsys):
    small = os.path.join(VEC, "models", "rand8f-offset", "model.fxq")
    out = str(tmp_path / "m")
    assert main(["vectors", "--model", small, "--model-only", "--out", out, "--mem", "none", "--bin",
                 "--c-headers", "-q"]) == 0
    with open(os.path.join(out, "manifest.json")) as f:
        m = json.load(f)
    assert m["name"] == "model" and m["source"] == "model.fxq" and m["fxq"]["sha256"] == _sha(small)
    assert m["options"]["mem"] == [] and m["options"]["bin"] and m["options"]["c_headers"]
    assert os.path.exists(os.path.join(out, "weights", "fxlic_model.h"))
    assert not any(p.endswith(".mem") for p in tree_paths(out))
    assert main(["vectors", "--check", out, "-q"]) == 0
    capsys.readouterr()
    assert main(["vectors", "--model", small, "--model-only", "--out", out]) == 1  # not empty
    assert main(["vectors", "--model", small, "--model-only", "--out", str(tmp_path / "x"),
                 "--image", small]) == 1
    assert main(["vectors", "--model", small, "--model-only"]) == 1
    err = capsys.readouterr().err
    assert "not an empty directory" in err and "takes no --image" in err and "needs --out" in err
    assert not os.path.exists(tmp_path / "x")


@pytest.fixture(scope="module")
def c_exe(tmp_path_factory):
    return build_port(tmp_path_factory, name="cext")


def _verify(case, dumps, scope, capsys, extra=()):
    rc = main(["verify", "--vectors", case, "--dumps", dumps, "--scope", scope, "--strict", *extra])
    out = capsys.readouterr().out
    assert rc == 0 and "VERIFY PASSED" in out, out
    return int(out.split(f"verify (scope {scope}): ")[1].split(" tensors pass")[0])


@pytest.mark.parametrize("case", [FACT, HP5])
def test_c_decoder_checks_an_external_case(c_exe, exported, case, tmp_path, capsys):
    """the C decoder, given the exported model directory with -m, decodes the
    factorized case and a non-default hp5 case byte-identically (from the tensors
    and from stream.fxl): verify --scope decoder --strict passes"""
    _need(case)
    cdir = os.path.join(VEC, case)
    name = case.split("/")[1]
    mdir = exported(name)
    r = subprocess.run([c_exe["fxlic_dec"], cdir, str(tmp_path / "no")], capture_output=True, text=True)
    assert r.returncode != 0 and "-m" in r.stderr and f"fxlic/zoo/{name}.fxq" in r.stderr
    for mode, args in (("npy", []), ("stream", ["--stream", "-f", "mem"])):
        dumps = str(tmp_path / mode)
        r = subprocess.run([c_exe["fxlic_dec"], *args, "-m", mdir, cdir, dumps], capture_output=True, text=True,
                           timeout=300)
        assert r.returncode == 0, r.stderr
        assert _verify(cdir, dumps, "decoder", capsys) >= 5  # y, z, entropy side, recon: equal
    other = exported("hp5-mse-q0" if name != "hp5-mse-q0" else "fact-mse-q1")
    r = subprocess.run([c_exe["fxlic_dec"], "-m", other, cdir, str(tmp_path / "wrong")], capture_output=True,
                       text=True)
    assert r.returncode != 0 and "the case was made with" in r.stderr


def test_c_encoder_checks_the_factorized_case(c_exe, exported, tmp_path, capsys):
    """the encoder side of the factorized case: the C encoder from the exported
    directory writes the case's stream.fxl byte for byte"""
    _need(FACT)
    cdir = os.path.join(VEC, FACT)
    dumps = str(tmp_path / "enc")
    r = subprocess.run([c_exe["fxlic_enc"], exported("fact-mse-q1"), os.path.join(cdir, "image.npy"), dumps],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    with open(os.path.join(cdir, "stream.fxl"), "rb") as f, open(os.path.join(dumps, "stream.fxl"), "rb") as g:
        assert f.read() == g.read()
    assert _verify(cdir, dumps, "encoder", capsys) >= 5


def _case_copy(tmp_path, case):
    d = str(tmp_path / "case")
    shutil.copytree(os.path.join(VEC, case), d)
    return d


def test_verify_and_check_refuse_another_or_a_missing_model_file(tmp_path, capsys):
    _need(FACT)
    cdir = os.path.join(VEC, FACT)
    zoo = tmp_path / "zoo"
    zoo.mkdir()
    assert main(["verify", "--vectors", cdir, "--dumps", cdir, "--scope", "decoder"]) == 0
    assert main(["vectors", "--check", cdir, "-q"]) == 0
    capsys.readouterr()
    for flags in (["verify", "--vectors", cdir, "--dumps", cdir], ["vectors", "--check", cdir]):
        assert main([*flags, "--zoo", str(zoo)]) == 1  # missing
        err = capsys.readouterr().err.strip()
        assert "fact-mse-q1.fxq not found" in err and "--zoo" in err and "\n" not in err
    shutil.copy(os.path.join(ZOO, "hp5-mse-q0.fxq"), zoo / "fact-mse-q1.fxq")  # another file, the right name
    for flags in (["verify", "--vectors", cdir, "--dumps", cdir], ["vectors", "--check", cdir],
                  ["vectors", "--check", VEC]):
        assert main([*flags, "--zoo", str(zoo)]) == 1
        err = capsys.readouterr().err.strip()
        assert "another model file" in err and "gen_vectors" in err and "\n" not in err
    # a case whose manifest names another sha256 (the model file unchanged)
    d = _case_copy(tmp_path, FACT)
    mp = os.path.join(d, "manifest.json")
    with open(mp) as f:
        m = json.load(f)
    m["model"]["external"]["sha256"] = "0" * 64
    with open(mp, "w") as f:
        json.dump(m, f, indent=1, sort_keys=True)
    assert main(["vectors", "--check", d]) == 1
    assert "another model file" in capsys.readouterr().err
    m["model"]["external"]["path"] = "../../etc/passwd"
    with open(mp, "w") as f:
        json.dump(m, f, indent=1, sort_keys=True)
    assert main(["verify", "--vectors", d, "--dumps", d]) == 1
    assert "malformed manifest (model.external path" in capsys.readouterr().err
