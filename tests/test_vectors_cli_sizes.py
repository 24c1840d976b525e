"""`fxlic vectors` at real sizes (issue 17, docs/VECTORS.md 2): the size
estimate printed before writing (exact but for the bitstream), the budget
(--max-bytes, --force), --crop, --tensors, --layers, progress bars, the
parent directory created, and `fxlic vectors --check DIR`."""
import json
import os
import shutil

import numpy as np
import pytest

from engine_util import model_and_image_files, small_model
from fxlic.cli import main
from fxlic.vectors.writer import Options, plan_case, write_case

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VEC = os.path.join(REPO, "vectors")
#: files whose size plan_case only estimates
ESTIMATED = ("stream.fxl", "entropy/z.rans", "entropy/y.rans", "manifest.json", "model/manifest.json")


@pytest.fixture(scope="module")
def model():
    return small_model("hyperprior", N=8, seed=3)


@pytest.fixture(scope="module")
def files(tmp_path_factory, model):
    return model_and_image_files(tmp_path_factory.mktemp("vc"), model, (3, 90, 130), 5)


def _sizes(root):
    out = {}
    for dp, dn, fn in os.walk(root):
        for n in fn:
            p = os.path.join(dp, n)
            out[os.path.relpath(p, root).replace(os.sep, "/")] = os.path.getsize(p)
    return out


@pytest.mark.parametrize("kind,opts", [
    ("hyperprior", Options()),
    ("hyperprior", Options(layers=("HS0", "ST3"), mem=frozenset({"act"}), inputs=False, dec_tables=False)),
    ("hyperprior", Options(acc=False, tensors=("out", "entropy/*", "y"))),
    ("factorized", Options(mem=frozenset(), inputs=False)),
])
def test_plan_is_exact_but_for_the_stream(tmp_path, kind, opts):
    m = small_model(kind, N=8, seed=6)
    img = np.random.default_rng(1).integers(0, 256, (3, 47, 65), dtype=np.uint8)
    plan = plan_case(m, 47, 65, opts)
    root = str(tmp_path / "c")
    write_case(m, img, root, opts)
    got = _sizes(root)
    assert set(plan) == set(got)
    for rel in got:
        if rel not in ESTIMATED:
            assert plan[rel] == got[rel], rel
    for rel in ("manifest.json", "model/manifest.json"):
        assert abs(plan[rel] - got[rel]) < 200, rel
    # the stream estimate is generous but of the right order
    assert got["entropy/y.rans"] <= plan["entropy/y.rans"] * 4 + 64


def test_estimate_printed_and_budget(files, tmp_path, capsys):
    mf, imf, _ = files
    out = tmp_path / "a" / "b" / "case"  # parents missing: created
    assert main(["vectors", "--model", mf, "--image", imf, "--out", str(out), "--max-bytes", "1k"]) == 1
    cap = capsys.readouterr()
    assert "estimated" in cap.out and "over --max-bytes 1,000" in cap.err and "--force" in cap.err
    assert len(cap.err.strip().splitlines()) == 1
    assert not (tmp_path / "a").exists()  # refused before anything was written
    assert main(["vectors", "--model", mf, "--image", imf, "--out", str(out), "--max-bytes", "1k",
                 "--force", "--no-progress"]) == 0
    cap = capsys.readouterr()
    est = int(cap.out.split("estimated ")[1].split(" bytes")[0].replace(",", ""))
    real = sum(_sizes(str(out)).values())
    assert abs(est - real) / real < 0.01
    assert cap.out.index("estimated") < cap.out.index("case of")
    for bad, want in (("12q", "not a size"), ("0", "at least 1 byte")):
        assert main(["vectors", "--model", mf, "--image", imf, "--out", str(tmp_path / "x"),
                     "--max-bytes", bad]) == 1
        assert want in capsys.readouterr().err


def test_default_budget_is_256MB():
    from fxlic.commands.vectors import DEFAULT_MAX_BYTES, parse_size
    assert DEFAULT_MAX_BYTES == 256 * 10 ** 6
    assert parse_size("256M") == DEFAULT_MAX_BYTES and parse_size("64MiB") == 64 * 2 ** 20
    assert parse_size("1.5G") == 1_500_000_000 and parse_size("123") == 123


def test_default_budget_refuses_a_full_size_case(tmp_path, capsys):
    """A 768 x 512 case of the default shipped model (the issue's 838 MB) is
    refused by the default budget before anything is computed."""
    from fxlic.io.images import write_png
    from fxlic.io.modelfile import list_zoo
    if not list_zoo():
        pytest.skip("no shipped model")
    p = tmp_path / "big.png"
    write_png(str(p), np.zeros((3, 512, 768), np.uint8))
    assert main(["vectors", "--image", str(p), "--out", str(tmp_path / "o")]) == 1
    cap = capsys.readouterr()
    est = int(cap.out.split("estimated ")[1].split(" bytes")[0].replace(",", ""))
    assert est > 800 * 10 ** 6 and "over --max-bytes 256,000,000" in cap.err
    assert not (tmp_path / "o").exists()


def test_crop(files, tmp_path, capsys):
    mf, imf, img = files
    out = str(tmp_path / "c1")
    assert main(["vectors", "--model", mf, "--image", imf, "--out", out, "-q", "--crop", "40x30+7+11",
                 "--layers", "none", "--mem", "none"]) == 0
    assert np.array_equal(np.load(os.path.join(out, "image.npy")), img[:, 11:41, 7:47])
    m = json.load(open(os.path.join(out, "manifest.json")))
    assert m["image"]["crop"] == {"x": 7, "y": 11, "width": 40, "height": 30, "source_width": 130,
                                  "source_height": 90}
    assert m["image"]["width"] == 40 and m["image"]["height"] == 30
    assert "height 30" in open(os.path.join(out, "case.txt")).read()
    out = str(tmp_path / "c2")  # centred
    assert main(["vectors", "--model", mf, "--image", imf, "--out", out, "-q", "--crop", "64x64",
                 "--layers", "none", "--mem", "none"]) == 0
    assert np.array_equal(np.load(os.path.join(out, "image.npy")), img[:, 13:77, 33:97])
    for bad, want in (("64", "WxH"), ("200x10", "larger than"), ("40x40+100+0", "outside"), ("0x5", "at least 1")):
        assert main(["vectors", "--model", mf, "--image", imf, "--out", str(tmp_path / "x"), "--crop", bad]) == 1
        assert want in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_tensors_selection(files, tmp_path, capsys):
    mf, imf, _ = files
    out = str(tmp_path / "t")
    assert main(["vectors", "--model", mf, "--image", imf, "--out", out, "-q", "--crop", "64x64",
                 "--tensors", "out,layers/HS0/acc,y_sym,y", "--mem", "none"]) == 0
    m = json.load(open(os.path.join(out, "manifest.json")))
    names = set(m["tensors"])
    assert {"layers/AT0/out", "layers/ST3/out", "layers/HS0/acc", "entropy/y_sym", "y"} <= names
    assert not {"layers/AT0/in", "layers/AT0/acc", "layers/HS1/acc", "x", "image", "recon", "entropy/y_idx",
                "layers/AT0/dec_table"} & names
    assert m["options"]["tensors"] == ["out", "layers/HS0/acc", "y_sym", "y"]
    for f in ("stream.fxl", "entropy/y.rans", "case.txt", "image.png", "recon.png"):
        assert os.path.exists(os.path.join(out, f))
    # the case verifies against itself and is intact
    assert main(["verify", "--vectors", out, "--dumps", out, "--strict"]) == 0
    assert main(["vectors", "--check", out]) == 0
    capsys.readouterr()
    assert main(["vectors", "--model", mf, "--image", imf, "--out", str(tmp_path / "x"),
                 "--tensors", "nosuch*"]) == 1
    assert "no tensor matches 'nosuch*'" in capsys.readouterr().err
    # the default options add nothing to the manifest (the committed suite's bytes)
    assert "tensors" not in Options().as_dict()


def test_layers_selection_shrinks_the_estimate(files, tmp_path, capsys):
    mf, imf, _ = files
    sizes = {}
    for sel in ("all", "HS*", "none"):
        assert main(["vectors", "--model", mf, "--image", imf, "--out", str(tmp_path / sel.replace("*", "_")),
                     "--layers", sel, "--max-bytes", "1", "--mem", "none"]) == 1
        out = capsys.readouterr().out
        sizes[sel] = int(out.split("estimated ")[1].split(" bytes")[0].replace(",", ""))
    assert sizes["all"] > sizes["HS*"] > sizes["none"]


def test_progress_bars_on_stderr(files, tmp_path, capsys):
    mf, imf, _ = files
    assert main(["vectors", "--model", mf, "--image", imf, "--out", str(tmp_path / "p"), "--progress",
                 "--crop", "64x64"]) == 0
    err = capsys.readouterr().err
    assert "running" in err and "writing" in err and "layer" in err
    assert main(["vectors", "--model", mf, "--image", imf, "--out", str(tmp_path / "q"), "-q",
                 "--crop", "64x64"]) == 0
    assert capsys.readouterr().err == ""


def test_out_is_refused_or_created(files, tmp_path, capsys):
    mf, imf, _ = files
    f = tmp_path / "file"
    f.write_text("x")
    assert main(["vectors", "--model", mf, "--image", imf, "--out", str(f / "sub")]) == 1
    assert "cannot create" in capsys.readouterr().err
    assert main(["vectors", "--model", mf, "--image", imf]) == 1
    assert "--image and --out are required" in capsys.readouterr().err
    assert main(["vectors", "--check", str(tmp_path), "--image", imf]) == 1
    assert "--check DIR takes no" in capsys.readouterr().err


# ---------------------------------------------------------------------------
# --check
# ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def good_case(files, tmp_path_factory):
    mf, imf, _ = files
    out = str(tmp_path_factory.mktemp("chk") / "case")
    assert main(["vectors", "--model", mf, "--image", imf, "--out", out, "-q", "--crop", "64x48",
                 "--mem", "act"]) == 0
    return out


def test_check_ok(good_case, capsys):
    assert main(["vectors", "--check", good_case]) == 0
    out = capsys.readouterr().out
    assert "OK: 2 manifests" in out and "every size and sha256 matches" in out


def test_check_the_committed_suite(capsys):
    if not os.path.exists(os.path.join(VEC, "manifest.json")):
        pytest.skip("no committed suite")
    assert main(["vectors", "--check", VEC]) == 0
    assert "OK:" in capsys.readouterr().out
    assert main(["vectors", "--check", os.path.join(VEC, "cases", "rand16", "img64")]) == 0  # + its model dir
    assert main(["vectors", "--check", os.path.join(VEC, "units", "r1_rhu")]) == 0


def _bad(good_case, tmp_path, how):
    c = str(tmp_path / "c")
    shutil.copytree(good_case, c)
    mp = os.path.join(c, "manifest.json")
    m = json.load(open(mp))
    if how == "edited_case_txt":
        with open(os.path.join(c, "case.txt"), "a") as f:
            f.write("x\n")
        return c, "case.txt"
    if how == "same_size_flip":
        p = os.path.join(c, "stream.fxl")
        data = bytearray(open(p, "rb").read())
        data[10] ^= 1
        open(p, "wb").write(bytes(data))
        return c, "stream.fxl: does not match its sha256"
    if how == "missing":
        os.remove(os.path.join(c, "y.npy"))
        return c, "y.npy: missing"
    if how == "extra":
        open(os.path.join(c, "layers", "stray.npy"), "wb").write(b"x")
        return c, "stray.npy: not listed in the manifest"
    if how == "model_file":
        p = os.path.join(c, "model", "arch.txt")
        open(p, "a").write("# x\n")
        return c, "model/arch.txt"
    if how == "model_hash":
        mm = json.load(open(os.path.join(c, "model", "manifest.json")))
        mm["model_hash"] = "sha256:" + "0" * 64
        json.dump(mm, open(os.path.join(c, "model", "manifest.json"), "w"))
        return c, "model hash"
    if how == "bad_json":
        open(mp, "w").write("{")
        return c, "malformed manifest"
    if how == "no_manifest":
        os.remove(mp)
        return c, "no manifest.json"
    if how == "shape":
        m["tensors"]["y"]["shape"][0] += 1
        json.dump(m, open(mp, "w"))
        return c, "y.npy: holds"
    if how == "mem_size":
        m["tensors"]["y"]["dtype"] = "int16"
        json.dump(m, open(mp, "w"))
        return c, "y.npy: holds"
    raise AssertionError(how)


@pytest.mark.parametrize("how", ["edited_case_txt", "same_size_flip", "missing", "extra", "model_file",
                                 "model_hash", "bad_json", "no_manifest", "shape", "mem_size"])
def test_check_finds_the_first_bad_file(good_case, tmp_path, capsys, how):
    c, want = _bad(good_case, tmp_path, how)
    assert main(["vectors", "--check", c]) == 1
    err = capsys.readouterr().err
    assert want in err and len(err.strip().splitlines()) == 1, err


def test_check_suite_manifest_digests(tmp_path, capsys):
    """A suite: every manifest's sha256 and the file count are checked (on a
    copy of two committed cases and a unit, re-indexed)."""
    from fxlic.vectors.check import file_sha256
    from fxlic.vectors.store import json_bytes
    if not os.path.exists(os.path.join(VEC, "manifest.json")):
        pytest.skip("no committed suite")
    s = tmp_path / "suite"
    for rel in ("units/r1_rhu", "units/o4_pixel", "images"):
        shutil.copytree(os.path.join(VEC, rel), s / rel)
    digests, n, total = {}, 0, 0
    for dp, dn, fn in os.walk(s):
        for f in fn:
            p = os.path.join(dp, f)
            n += 1
            total += os.path.getsize(p)
            if f == "manifest.json":
                digests[os.path.relpath(p, s)] = file_sha256(p)
    suite = {"format": "fxlic-vectors", "format_version": 1, "kind": "suite", "manifests": digests,
             "file_count": n, "total_bytes": total}
    (s / "manifest.json").write_bytes(json_bytes(suite))
    assert main(["vectors", "--check", str(s)]) == 0
    assert "OK: 4 manifests" in capsys.readouterr().out
    um = s / "units/o4_pixel/manifest.json"
    um.write_bytes(um.read_bytes() + b" ")
    assert main(["vectors", "--check", str(s)]) == 1
    assert "o4_pixel/manifest.json: does not match its sha256 in the suite manifest" in capsys.readouterr().err
