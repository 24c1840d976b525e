"""Functional coverage of the vectors (fxlic/vectors/coverage.py, docs/VECTORS.md 9):
the bins against exact-rational oracles, the committed suite at 100 % with its
generated page, the recomputed coverage equal to the stored one, and the CLI
(``fxlic vectors --coverage``, ``--coverage-of DIR``)."""
import json
import os
from fractions import Fraction

import numpy as np
import pytest

from fxlic.cli import main
from fxlic.io.modelfile import load_model
from fxlic.vectors import coverage as C
from tool_loader import load_tool

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VEC = os.path.join(REPO, "vectors")
SMALL = os.path.join(VEC, "models", "rand16", "model.fxq")
DOC = os.path.join(REPO, "docs", "VECTORS-coverage.md")


@pytest.fixture(scope="module")
def small():
    return load_model(SMALL)


def _rhu(a, s):
    return (Fraction(int(a), 1 << int(s)) + Fraction(1, 2)).__floor__()


def _rq(a, s):
    return _rhu(a, s) if s > 0 else int(a) << -int(s)


def _is_tie(a, s):
    return s >= 1 and (Fraction(int(a), 1 << int(s)) - Fraction(1, 2)).denominator == 1


# ---------------------------------------------------------------------------
# the bins against oracles written from SPEC (Fraction arithmetic, plain loops)
# ---------------------------------------------------------------------------

SEGS = {0: [(0, 512, 2)], 1: [(0, 64, 2), (64, 128, 1), (128, 448, 2)],
        2: [(0, 128, 1), (128, 384, 2)], 3: [(0, 192, 1), (192, 320, 2)]}


def _o1_oracle(acc, shift, mux):
    c = {f"mux{m}.seg{j}": 0 for m in SEGS for j in range(len(SEGS[m]))}
    c.update({f"mux{m}.clip": 0 for m in SEGS})
    c.update({"relu": 0, "tie+": 0})
    for o in range(acc.shape[0]):
        m, s = int(mux[o]), int(shift[o])
        for a in acc[o].reshape(-1):
            a = int(a)
            if a < 0:
                c["relu"] += 1
            t = Fraction(max(a, 0), 1) / Fraction(2) ** s
            j = [i for i, g in enumerate(SEGS[m]) if t >= g[0]][-1]
            step = SEGS[m][j][2]
            c[f"mux{m}.seg{j}"] += 1
            if step * (t / step + Fraction(1, 2)).__floor__() > SEGS[m][-1][1] - 2:
                c[f"mux{m}.clip"] += 1
            if a > 0 and (t / step - Fraction(1, 2)).denominator == 1:
                c["tie+"] += 1
    return c


def _o2_oracle(acc, shift, leaky):
    c = {"sat-": 0, "sat+": 0, "tie+": 0, "tie-": 0}
    if leaky:
        c.update({"leaky": 0, "leaky.odd": 0, "leaky.1round": 0})
    for o in range(acc.shape[0]):
        s = int(shift[o])
        for a in acc[o].reshape(-1):
            a = int(a)
            k = s + 3 if (leaky and a < 0) else s
            v = _rq(a, k)
            c["sat-"] += v < -128
            c["sat+"] += v > 127
            if _is_tie(a, k):
                c["tie+" if a > 0 else "tie-"] += 1
            if leaky and a < 0:
                c["leaky"] += 1
                v0 = _rq(a, s)
                c["leaky.odd"] += v0 % 8 != 0
                c["leaky.1round"] += _rq(v0, 3) != v
    return c


def _stimulus(rng, shift, n=400):
    """Accumulators around every interesting point of each channel's grid:
    ties at s and s + 3, both signs, saturation, random."""
    O = len(shift)
    acc = np.zeros((O, 1, n), np.int64)
    for o in range(O):
        s = max(int(shift[o]), 0)
        base = rng.integers(-80, 80, n // 2) << (s + 3)
        jitter = rng.integers(-1, 2, n // 2) + np.where(rng.random(n // 2) < 0.5, 1 << max(s - 1, 0),
                                                       1 << (s + 2))
        acc[o, 0] = np.concatenate([base + jitter, rng.integers(-(1 << (s + 11)), 1 << (s + 11), n - n // 2)])
    return np.clip(acc, -(2 ** 31) + 1, 2 ** 31 - 1)


@pytest.mark.parametrize("layer", ["AT1", "ST1"])
def test_o1_bins_match_oracle(small, layer):
    L = small.layer(layer)
    L2 = L  # the model's shifts and muxes
    rng = np.random.default_rng(1)
    acc = _stimulus(rng, L2.out_shift, 160)
    got = C.count_layer(small, layer, acc, None, np.zeros(16, np.int64))["counts"]
    want = _o1_oracle(acc, L2.out_shift, L2.mux)
    assert {k: got[k] for k in want} == want
    assert got["tie-"] == 0


@pytest.mark.parametrize("layer,leaky", [("HA1", True), ("HS3", True), ("HS5", False)])
def test_o2_bins_match_oracle(small, layer, leaky):
    L = small.layer(layer)
    rng = np.random.default_rng(2)
    acc = _stimulus(rng, L.out_shift, 120)
    got = C.count_layer(small, layer, acc, None, np.zeros(16, np.int64))["counts"]
    want = _o2_oracle(acc, L.out_shift, leaky)
    assert {k: got[k] for k in want} == want
    assert want["tie+"] and want["tie-"] and want["sat+"] and want["sat-"]
    if leaky:
        assert want["leaky.odd"] and want["leaky.1round"]


def test_spec_o2_examples_are_leaky_bins(small):
    """SPEC O2: acc = -13, s = 0 -> -2 (one rounding of -13/8); -12 -> -1 (a tie at s + 3)."""
    import copy
    m = copy.deepcopy(small)
    L = m.layer("HA1")
    L.out_exp = L.acc_exp.copy()  # s = 0 on every channel
    acc = np.zeros((16, 1, 3), np.int64)
    acc[:, 0] = [-13, -12, -4]
    c = C.count_layer(m, "HA1", acc, None, np.zeros(16, np.int64))["counts"]
    assert c["leaky"] == 48 and c["leaky.odd"] == 48  # none of them is a multiple of 8
    assert c["tie-"] == 16 * 2  # -12/8 = -1.5 and -4/8 = -0.5 are ties
    assert c["leaky.1round"] == 0  # s = 0: the first rounding is exact


def test_o3_o4_and_phase_bins(small):
    L = small.layer("AT3")
    s = L.out_shift.astype(np.int64)[:, None, None]
    acc = np.zeros((16, 1, 4), np.int64)
    acc[:, 0, 0] = (3 << (s[:, 0, 0] - 1))  # 1.5 -> tie+
    acc[:, 0, 1] = -(3 << (s[:, 0, 0] - 1))  # -1.5 -> tie-
    acc[:, 0, 2] = 300 << s[:, 0, 0]  # sat+ (also 300 - mu)
    acc[:, 0, 3] = -(300 << s[:, 0, 0])  # sat-
    mu = np.zeros(16, np.int64)
    mu[1] = 100
    c = C.count_layer(small, "AT3", acc, None, mu)["counts"]
    assert c == {"sat-": 16, "sat+": 16, "tie+": 16, "tie-": 16,
                 "mean_reduced": int(small.mr_mask[1]) * 4}
    # ST3 (O4, tconv): phases count outputs with a product (acc != bias)
    S = small.layer("ST3")
    acc = np.broadcast_to(S.bias[:, None, None], (3, 4, 4)).copy()
    acc[0, 1, 0] += 5  # phase (1, 0) only
    c = C.count_layer(small, "ST3", acc, None, mu)["counts"]
    assert (c["phase00"], c["phase01"], c["phase10"], c["phase11"]) == (0, 0, 1, 0)


def test_entropy_bins_escapes_match_tables(small):
    from fxlic.io.modelcheck import checked_tables
    from fxlic.vectors.writer import run_case
    gen = load_tool("gen_vectors")
    r = run_case(small, gen.synthetic_image(64, 64, 1))
    c = C.count_entropy(small, r)
    t = checked_tables(small)
    fact, gauss = t.fact, t.gauss
    # oracle: plain loop over z with the per-channel table bounds (docs/ENTROPY.md 4)
    lo = hi = 0
    z = r["z"]
    for ch in range(z.shape[0]):
        for v in z[ch].reshape(-1):
            val = int(v) - int(fact.offsets[ch])
            lo += val < 0
            hi += val >= int(fact.cdf_sizes[ch]) - 2
    assert (c["z.esc-"], c["z.esc+"]) == (lo, hi)
    assert sum(c[f"y.scale{i}"] for i in range(64)) == r["y"].size
    assert sum(c[k] for k in ("y.d-2", "y.d-1", "y.d0", "y.d+1")) == r["y"].size


# ---------------------------------------------------------------------------
# the committed suite
# ---------------------------------------------------------------------------

def _suite_records():
    suite = json.load(open(os.path.join(VEC, "manifest.json")))
    recs, names = [], []
    for c in suite["cases"]:
        d = os.path.join(VEC, c["dir"])
        man = json.load(open(os.path.join(d, "manifest.json")))
        assert "coverage.json" in man["files"], f"{c['dir']}: no coverage.json"
        recs.append(json.load(open(os.path.join(d, "coverage.json"))))
        names.append(f"{c['model']}/{c['image']}")
    return suite, recs, names


def test_suite_reaches_every_bin():
    suite, recs, names = _suite_records()
    s = C.summarize(recs)
    assert s == suite["coverage"]
    assert s["missing"] == [] and s["hit"] == s["bins"] and s["percent"] == 100.0, s["missing"]
    # the only bins not counted are the provably unreachable ones, each with its reason
    assert set(s["unreachable"]) == {f"{n}/tie-" for n in ("AT0", "AT1", "AT2", "ST0", "ST1", "ST2")}
    # the small model's own cases do not reach everything: the directed case is needed
    small = [r for r, n in zip(recs, names) if n.startswith("rand16/")]
    assert C.summarize(small)["missing"]
    assert any(n.startswith("rand16-directed/") for n in names)


def test_coverage_page_is_generated():
    _, recs, names = _suite_records()
    gen = load_tool("gen_vectors")
    with open(DOC, encoding="utf-8") as f:
        assert f.read() == gen.coverage_markdown(recs, names), \
            "docs/VECTORS-coverage.md is out of date: run python tools/gen_vectors.py"


@pytest.mark.parametrize("case", ["rand16/img64", "rand16-directed/img64"])
def test_recomputed_coverage_equals_stored(case):
    d = os.path.join(VEC, "cases", *case.split("/"))
    stored = json.load(open(os.path.join(d, "coverage.json")))
    again = C.case_coverage_of_dir(d, recompute=True)
    assert again == stored


def test_directed_model_is_valid_and_documented():
    d = os.path.join(VEC, "models", "rand16-directed")
    man = json.load(open(os.path.join(d, "manifest.json")))
    assert man["edits"], "the directed model lists its edits"
    m = load_model(os.path.join(d, "model.fxq"))
    m.validate()
    base = load_model(SMALL)
    assert m.arch.to_json() == base.arch.to_json()
    for spec in m.arch.layers:  # integer edits only: weight codes are the small model's
        assert np.array_equal(m.layer(spec.name).w_codes, base.layer(spec.name).w_codes)


# ---------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------

def test_cli_coverage_writes_and_reports(tmp_path, capsys):
    out = tmp_path / "case"
    rc = main(["vectors", "--model", SMALL, "--image", os.path.join(VEC, "images", "img64.png"),
               "--out", str(out), "--coverage", "--layers", "AT*,ST3", "--mem", "none", "--no-dec-tables"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "coverage of" in text and "AT0" in text and "unreachable (not counted)" in text
    man = json.load(open(out / "manifest.json"))
    assert "coverage.json" in man["files"] and man["options"]["coverage"] is True
    rec = json.load(open(out / "coverage.json"))
    checked = {g["name"]: g["checked"] for g in rec["layers"]}
    assert checked["AT0"] and checked["ST3"] and not checked["HS0"]
    assert main(["vectors", "--check", str(out)]) == 0
    # the report of the written directory: stored, and recomputed (model.fxq by --model)
    capsys.readouterr()
    assert main(["vectors", "--coverage-of", str(out), "--coverage-json", str(tmp_path / "r.json")]) == 0
    assert "coverage of" in capsys.readouterr().out
    rep = json.load(open(tmp_path / "r.json"))
    assert rep["kind"] == "case" and rep["summary"] == rec["summary"]
    assert main(["vectors", "--coverage-of", str(out), "--coverage-recompute", "--model", SMALL, "-q"]) == 0


def test_cli_coverage_of_suite_and_errors(tmp_path, capsys):
    assert main(["vectors", "--coverage-of", VEC, "--coverage-min", "100"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("suite coverage:") and "(100.0 %)" in out
    # a single case is below 100 %: --coverage-min fails with one line
    assert main(["vectors", "--coverage-of", os.path.join(VEC, "cases", "rand16", "img64"),
                 "--coverage-min", "100", "-q"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "below --coverage-min" in err[0]
    for argv, msg in [(["--coverage-of", str(tmp_path / "nope")], "no such directory"),
                      (["--coverage-of", os.path.join(VEC, "models", "rand16")], "has no coverage"),
                      (["--coverage-of", VEC, "--out", str(tmp_path / "x")], "takes no"),
                      (["--coverage-of", VEC, "--coverage-min", "150"], "percentage")]:
        assert main(["vectors"] + argv) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and msg in err[0], err
    # a case whose coverage.json was edited
    import shutil
    d = tmp_path / "c"
    shutil.copytree(os.path.join(VEC, "cases", "rand16", "img64"), d / "cases" / "rand16" / "img64")
    with open(d / "cases" / "rand16" / "img64" / "coverage.json", "ab") as f:
        f.write(b" ")
    assert main(["vectors", "--coverage-of", str(d / "cases" / "rand16" / "img64")]) == 1
    assert "sha256" in capsys.readouterr().err
