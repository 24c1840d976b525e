"""`fxlic verify` reports (issue 17, docs/VECTORS.md 5): --max-mismatches with
the list of mismatching elements, per-channel counts and max |diff|, the
mismatch masks (--mask-dir), --json, --junit (one testcase per tensor) and
--html (per-layer heat maps embedded as base64 PNG)."""
import base64
import io
import json
import os
import re
import shutil
import xml.etree.ElementTree as ET
from html.parser import HTMLParser

import numpy as np
import pytest

from engine_util import small_model, vectors_case
from fxlic.cli import main
from fxlic.vectors.verify import FAIL, PASS, diff_tensor, verify


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    return vectors_case(tmp_path_factory.mktemp("vr"), small_model("hyperprior", N=8, seed=3), (3, 40, 70), 9,
                        "--mem", "none", "--no-dec-tables", "--no-inputs")


#: (c, y, x) -> added value in layers/ST1/out (uint8 codes)
CHANGES = {(2, 5, 7): 1, (3, 0, 0): -4, (3, 1, 2): 2, (7, 9, 9): 9}


@pytest.fixture
def dumps(case, tmp_path):
    m = json.load(open(os.path.join(case, "manifest.json")))
    d = tmp_path / "dumps"
    for l in m["layers"]:
        if "decoder" in l["stages"]:
            rel = f"layers/{l['name']}/out.npy"
            (d / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(os.path.join(case, rel), d / rel)
    p = d / "layers/ST1/out.npy"
    a = np.load(p).astype(np.int64)
    for (c, y, x), v in CHANGES.items():
        a[c, y, x] = (a[c, y, x] + v) % 256 if a[c, y, x] + v not in range(256) else a[c, y, x] + v
    np.save(p, a)
    golden = np.load(os.path.join(case, "layers/ST1/out.npy")).astype(np.int64)
    return str(d), golden, a


def test_diff_tensor_lists_counts_and_max_diff():
    g = np.zeros((3, 4, 5), np.int8)
    v = g.astype(np.int64).copy()
    v[0, 1, 2], v[2, 3, 4], v[2, 0, 0] = 5, -128, 127
    d = diff_tensor(g, v, {"axes": ["C", "H", "W"]}, 2, keep_mask=True)
    assert d["mismatches"] == 3 and d["max_abs_diff"] == 128
    assert d["per_channel"] == {0: 1, 2: 2}
    assert [x["index"] for x in d["listed"]] == [[0, 1, 2], [2, 0, 0]]  # C order, at most 2
    assert d["listed"][1] == {"index": [2, 0, 0], "at": "channel=2 y=0 x=0", "expected": 0, "got": 127,
                              "diff": 127}
    assert d["mask"].dtype == np.uint8 and d["mask"].shape == g.shape and int(d["mask"].sum()) == 3
    assert diff_tensor(g, g, {"axes": ["C", "H", "W"]}) is None
    # exact beyond int64 differences, no per-channel for 1-D unit tensors
    big = diff_tensor(np.array([-2 ** 63], np.int64), np.array([2 ** 63 - 1], np.int64), {"axes": ["N"]})
    assert big["max_abs_diff"] == 2 ** 64 - 1 and big["per_channel"] is None


def test_max_mismatches_text_listing(case, dumps, capsys):
    d, golden, got = dumps
    n_diff = int((golden != got).sum())
    assert main(["verify", "--vectors", case, "--dumps", d, "--scope", "decoder", "--max-mismatches", "2"]) == 1
    out = capsys.readouterr().out
    lines = out.splitlines()
    i = next(k for k, l in enumerate(lines) if l.startswith("FAIL      ST1"))
    maxd = int(np.abs(got - golden).max())
    assert f"{n_diff} of {golden.size} elements differ" in lines[i] and f"max |diff| {maxd}" in lines[i]
    assert lines[i + 1].strip() == f"mismatches per channel (3 of {golden.shape[0]} channels): 2:1 3:2 7:1"
    assert lines[i + 2].strip() == f"channel=2 y=5 x=7: expected {golden[2, 5, 7]}, got {got[2, 5, 7]} " \
                                   f"(diff {int(got[2, 5, 7] - golden[2, 5, 7]):+d})"
    assert lines[i + 3].strip().startswith("channel=3 y=0 x=0:")
    assert lines[i + 4].strip() == f"... {n_diff - 2} more (--max-mismatches N lists more)"
    assert main(["verify", "--vectors", case, "--dumps", d, "--scope", "decoder", "--max-mismatches", "0"]) == 1
    out = capsys.readouterr().out
    assert "channel=3 y=1 x=2:" not in out and "mismatches per channel" in out


def test_json_junit_and_masks(case, dumps, tmp_path, capsys):
    d, golden, got = dumps
    rj, rx, md = tmp_path / "rep/r.json", tmp_path / "rep/sub/r.xml", tmp_path / "masks"
    rc = main(["verify", "--vectors", case, "--dumps", d, "--scope", "decoder", "--json", str(rj),
               "--junit", str(rx), "--mask-dir", str(md), "--max-mismatches", "3"])
    assert rc == 1
    assert "mismatch masks: 1 files" in capsys.readouterr().out
    r = json.load(open(rj))
    assert r["format"] == "fxlic-verify-report" and r["passed"] is False and r["scope"] == "decoder"
    assert r["summary"]["fail"] == 1 and r["case"]["model"]["hash"].startswith("sha256:")
    st1 = [x for x in r["results"] if x["name"] == "layers/ST1/out"][0]
    assert st1["status"] == FAIL and st1["mismatches"] == int((golden != got).sum())
    assert st1["per_channel"] == {"2": 1, "3": 2, "7": 1} and len(st1["first_mismatches"]) == 3
    assert st1["first_mismatches"][0]["index"] == [2, 5, 7] and st1["max_abs_diff"] == int(np.abs(got - golden).max())
    assert {x["status"] for x in r["results"]} <= {PASS, FAIL, "SKIPPED"}
    # JUnit: one testcase per compared tensor, the failure on ST1
    root = ET.parse(rx).getroot()
    suite = root.find("testsuite")
    cases = suite.findall("testcase")
    assert len(cases) == len(r["results"]) == int(suite.get("tests"))
    failed = [c for c in cases if c.find("failure") is not None]
    assert [(c.get("classname"), c.get("name")) for c in failed] == [("fxlic.verify.ST1", "layers/ST1/out")]
    assert "channel=2 y=5 x=7" in failed[0].find("failure").get("message")
    assert suite.get("failures") == "1" and suite.get("errors") == "0"
    assert int(suite.get("skipped")) == sum(1 for c in cases if c.find("skipped") is not None) > 0
    # the mask
    mask = np.load(md / "layers/ST1/out.mask.npy")
    assert mask.dtype == np.uint8 and np.array_equal(mask, (golden != got).astype(np.uint8))
    # a passing run: JUnit with no failures
    assert main(["verify", "--vectors", case, "--dumps", case, "--junit", str(rx), "--json", str(rj)]) == 0
    assert ET.parse(rx).getroot().find("testsuite").get("failures") == "0"
    assert json.load(open(rj))["passed"] is True


def test_junit_missing_and_malformed(case, dumps, capsys, tmp_path):
    d, _, _ = dumps
    os.remove(os.path.join(d, "layers/HS1/out.npy"))
    with open(os.path.join(d, "layers/HS2/out.mem"), "w") as f:
        f.write("zz\n")
    rx = tmp_path / "r.xml"
    assert main(["verify", "--vectors", case, "--dumps", d, "--scope", "decoder", "--junit", str(rx)]) == 1
    suite = ET.parse(rx).getroot().find("testsuite")
    kinds = {c.get("name"): [e.tag + ":" + e.get("type", "") for e in c] for c in suite.findall("testcase")}
    assert kinds["layers/HS1/out"] == ["failure:MISSING"]
    assert kinds["layers/HS2/out"] == ["error:MALFORMED"]
    assert suite.get("errors") == "1" and suite.get("failures") == "2"


class _Imgs(HTMLParser):
    def __init__(self):
        super().__init__()
        self.imgs, self.ids = [], set()

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if "id" in a:
            self.ids.add(a["id"])
        if tag == "img":
            self.imgs.append(a)


def test_html_report_with_heat_maps(case, dumps, tmp_path):
    from PIL import Image
    d, golden, got = dumps
    p = tmp_path / "r.html"
    assert main(["verify", "--vectors", case, "--dumps", d, "--scope", "decoder", "--html", str(p)]) == 1
    text = p.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>") and "VERIFY FAILED" in text
    parser = _Imgs()
    parser.feed(text)
    assert {"verdict", "summary", "results", "layer-ST1"} <= parser.ids
    assert len(parser.imgs) == 1 and "layers/ST1/out" in parser.imgs[0]["alt"]
    src = parser.imgs[0]["src"]
    assert src.startswith("data:image/png;base64,")
    png = base64.b64decode(src.split(",", 1)[1], validate=True)
    im = Image.open(io.BytesIO(png))
    assert im.format == "PNG" and im.size[0] > 100 and im.size[1] > 100
    assert len(re.findall(r'<tr class="(PASS|FAIL|SKIPPED|MISSING|MALFORMED)">', text)) == \
        len(verify(case, d, "decoder")[0])
