"""The committed conformance suite vectors/ (docs/VECTORS.md): regenerating it
with tools/gen_vectors.py gives byte-identical files (CI fails on any byte
difference), every manifest hashes every file, and the unit cases agree with
independent exact-arithmetic oracles."""
import hashlib
import json
import os
from fractions import Fraction

import numpy as np
import pytest

from engine_util import tree_paths
from fxlic.spec import SPEC_VERSION
from tool_loader import load_tool

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VEC = os.path.join(REPO, "vectors")
UNITS = os.path.join(VEC, "units")
HINT = "vectors/ is out of date: regenerate it with `python tools/gen_vectors.py` and commit it"


def _gen():
    return load_tool("gen_vectors")


def _read(p):
    with open(p, "rb") as f:
        return f.read()


def test_suite_regenerates_byte_identical(tmp_path):
    """The whole suite (every model, case and unit) is regenerated from its kept
    inputs; any byte difference fails."""
    gen = _gen()
    out = tmp_path / "vectors"
    gen.generate(str(out), VEC, gen.DEFAULT_KODAK, log=lambda *a: None)
    want, got = tree_paths(VEC), tree_paths(str(out))
    missing = sorted(set(want) - set(got))
    extra = sorted(set(got) - set(want))
    assert not extra, f"{HINT}; new files: {extra[:10]}"
    assert not missing, f"{HINT}; files no longer generated: {missing[:10]}"
    diff = [r for r in sorted(want) if _read(want[r]) != _read(got[r])]
    assert not diff, f"{HINT}; {len(diff)} files differ, e.g. {diff[:10]}"


def test_every_manifest_hashes_every_file():
    files = tree_paths(VEC)
    manifests = sorted(r for r in files if r.endswith("manifest.json"))
    covered = set(manifests)
    for mrel in manifests:
        m = json.loads(_read(files[mrel]))
        assert m["format"] == "fxlic-vectors" and m["spec_version"] == SPEC_VERSION
        base = os.path.dirname(mrel)
        for rel, info in m.get("files", {}).items():
            full = f"{base}/{rel}" if base else rel
            assert full in files, f"{mrel} lists a missing file {rel}"
            data = _read(files[full])
            assert hashlib.sha256(data).hexdigest() == info["sha256"] and len(data) == info["bytes"], full
            covered.add(full)
        for name, t in m.get("tensors", {}).items():
            if "same_as" in t:
                assert t["same_as"] in m["tensors"], f"{mrel}: {name} aliases a missing tensor"
                continue
            arr = np.load(files[f"{base}/{name}.npy"])
            assert list(arr.shape) == t["shape"] and arr.dtype.name == t["dtype"], f"{mrel}: {name}"
    assert sorted(set(files) - covered) == [], "files not listed in any manifest"
    suite = json.loads(_read(files["manifest.json"]))
    assert suite["manifests"] == {r: hashlib.sha256(_read(files[r])).hexdigest()
                                  for r in manifests if r != "manifest.json"}


def test_suite_size_and_contents():
    suite = json.loads(_read(os.path.join(VEC, "manifest.json")))
    total = sum(os.path.getsize(p) for p in tree_paths(VEC).values())
    assert total < 40_000_000, f"vectors/ is {total:,} bytes; trim tools/gen_vectors.py's plan (budget 30 MB)"
    dirs = {c["dir"] for c in suite["cases"]}
    assert {"cases/rand16/img64", "cases/rand16/img65x47"} <= dirs
    assert os.path.exists(os.path.join(VEC, "images", "kodim23_crop256.png"))
    from fxlic.io.modelfile import list_zoo
    for p in list_zoo():  # every shipped model has a case (re-run the generator when one is added)
        name = os.path.basename(p)[:-4]
        assert name in suite["models"], f"{HINT}: shipped model {name} has no vectors"


# ---------------------------------------------------------------------------
# unit cases against exact oracles (independent of fxlic's integer code)
# ---------------------------------------------------------------------------

def _unit(name, *tensors):
    return [np.load(os.path.join(UNITS, name, t + ".npy")).astype(object) for t in tensors]


def _rhu(a, s):
    return (Fraction(int(a), 1 << int(s)) + Fraction(1, 2)).__floor__()


def _rq(a, s):
    return _rhu(a, s) if s > 0 else int(a) << -int(s)


def test_unit_r1_oracle():
    a, s, out = _unit("r1_rhu", "a", "s", "out")
    assert len(a) > 1000
    for x, k, o in zip(a, s, out):
        assert o == _rhu(x, k), (x, k)


def _q1_oracle(acc, s, mux):
    """SPEC Q1 / X1 on the exact rational t = max(acc, 0) * 2^-s."""
    segs = {0: [(0, 512, 2)], 1: [(0, 64, 2), (64, 128, 1), (128, 448, 2)],
            2: [(0, 128, 1), (128, 384, 2)], 3: [(0, 192, 1), (192, 320, 2)]}[int(mux)]
    top = segs[-1][1] - 2
    t = Fraction(max(int(acc), 0)) / Fraction(2) ** int(s)
    lo, hi, step = [g for g in segs if t >= g[0]][-1]
    L = step * (t / step + Fraction(1, 2)).__floor__()
    L = min(L, top)
    levels = [v for a, b, st in segs for v in range(a, b, st) if v <= top]
    assert len(levels) == 256
    return levels.index(L), L


def test_unit_o1_oracle():
    acc, sh, mux, code, level = _unit("o1_relu_nlq", "acc", "shift", "mux", "code", "level")
    for a, s, m, c, lv in zip(acc, sh, mux, code, level):
        assert (c, lv) == _q1_oracle(a, s, m), (a, s, m)
    # the cases reach every boundary: each mux shows codes of every segment and the top code
    for m in range(4):
        assert set(code[mux == m]) >= {0, 255}


def test_unit_o2_oracle():
    acc, sh, lk, code = _unit("o2_signed_lq", "acc", "shift", "leaky", "code")
    for a, s, l, c in zip(acc, sh, lk, code):
        k = s + 3 if (l and a < 0) else s
        assert c == max(-128, min(127, _rq(a, k))), (a, s, l)
    sel = (sh == 0) & (lk == 1)
    got = dict(zip(acc[sel], code[sel]))
    assert (got[-13], got[-12], got[-4], got[-5]) == (-2, -1, 0, -1)  # SPEC O2 examples


def test_unit_hdl_requant_is_o1_plus_o2():
    acc, sh, mux, kind, code = _unit("hdl_requant", "acc", "shift", "mux", "kind", "code")
    for a, s, m, k, c in zip(acc[::7], sh[::7], mux[::7], kind[::7], code[::7]):
        if k == 0:
            assert c == _q1_oracle(a, s, m)[0]
        else:
            kk = s + 3 if (k == 1 and a < 0) else s
            assert c == max(-128, min(127, _rq(a, kk))) & 0xFF


def test_unit_latent_pixel_mu_oracles():
    acc, sh, mu, st = _unit("o3_latent", "acc", "shift", "mu", "stored")
    for a, s, m, o in zip(acc, sh, mu, st):
        assert o == max(-128, min(127, _rq(a, s) - m))
    acc, ex, g, off, sym, lv = _unit("o5_offset_latent", "acc", "acc_exp", "grid_bits", "offset_q",
                                     "symbol", "level")
    assert len(acc) > 500 and set(int(v) for v in g) == {2, 4}
    for a, e, G, f, o, v in zip(acc, ex, g, off, sym, lv):
        r = (Fraction(a) * Fraction(2) ** e - Fraction(f, 2 ** G) + Fraction(1, 2)).__floor__()
        assert o == max(-128, min(127, r)) and v == o * 2 ** G + f
    acc, ex, hb, lv = _unit("o6_ha_input", "acc", "acc_exp", "ha_grid_bits", "level")
    assert len(acc) > 300 and set(int(v) for v in hb) == {0, 2, 4, 6}
    seen = set()
    for a, e, H, v in zip(acc, ex, hb, lv):
        H = int(H)
        x = Fraction(int(a)) * Fraction(2) ** (int(e) + H)
        lo, hi = -(1 << (7 + H)), (1 << (7 + H)) - 1
        r = (x + Fraction(1, 2)).__floor__()
        assert v == max(lo, min(hi, r))
        seen |= {("lo", H)} if r < lo else {("hi", H)} if r > hi else set()
        seen |= {("tie", H)} if x - x.__floor__() == Fraction(1, 2) else set()
    assert seen == {(k, H) for k in ("lo", "hi", "tie") for H in (0, 2, 4, 6)}  # every grid
    acc, sh, px = _unit("o4_pixel", "acc", "shift", "pixel")
    for a, s, o in zip(acc, sh, px):
        assert o == max(0, min(255, _rq(a, s)))
    S, n, a_q, b_q, mu = _unit("m2_mu", "pixel_sum", "n_values", "a_q", "b_q", "mu")
    for s_, n_, a_, b_, m_ in zip(S, n, a_q, b_q, mu):
        D = 255 * n_
        assert m_ == max(-128, min(127, (Fraction(a_ * s_ + b_ * D, D << 16) + Fraction(1, 2)).__floor__()))


@pytest.mark.parametrize("op", ["conv", "tconv"])
def test_unit_accumulator_worst_case(op):
    d = os.path.join(UNITS, f"a3_acc_worst_{op}")
    acc = np.load(os.path.join(d, "acc.npy"))
    m = json.load(open(os.path.join(d, "manifest.json")))
    assert max(m["layer"]["acc_bound"]) == 2 ** 31 - 1
    assert acc.max() == 2 ** 31 - 1 and acc.min() == -(2 ** 31 - 1)


def test_unit_layers_recomputed_by_plain_loops():
    """Every one-layer unit: acc from C1/C2 written as plain loops over the
    stored integers (decode table, weight codes and LUT, bias)."""
    names = sorted(n for n in os.listdir(UNITS) if n.startswith(("c1_", "c2_", "a3_")))
    assert len(names) >= 12
    for n in names:
        d = os.path.join(UNITS, n)
        m = json.load(open(os.path.join(d, "manifest.json")))["layer"]
        x = np.load(os.path.join(d, "in.npy")).astype(np.int64)
        tab = np.load(os.path.join(d, "dec_table.npy"))
        wc = np.load(os.path.join(d, "params", "w_codes.npy")).astype(np.int64)
        lut = np.load(os.path.join(d, "params", "w_lut.npy")).astype(np.int64)
        bias = np.load(os.path.join(d, "params", "bias.npy")).astype(np.int64)
        V = np.stack([tab[c][x[c] + m["dec_offset"]] for c in range(x.shape[0])])
        w = lut[wc + 128]
        k, p, S = m["k"], m["k"] // 2, m["stride"]
        C, H, W = V.shape
        if m["op"] == "conv":
            Ho, Wo = (H + 2 * p - k) // S + 1, (W + 2 * p - k) // S + 1
        else:
            Ho, Wo = 2 * H, 2 * W
        acc = np.zeros((w.shape[0], Ho, Wo), np.int64) + bias[:, None, None]
        for c in range(C):
            for ky in range(k):
                for kx in range(k):
                    for iy in range(H):
                        for ix in range(W):
                            if m["op"] == "conv":
                                if (iy + p - ky) % S or (ix + p - kx) % S:
                                    continue
                                oy, ox = (iy + p - ky) // S, (ix + p - kx) // S
                            else:
                                oy, ox = 2 * iy - p + ky, 2 * ix - p + kx
                            if 0 <= oy < Ho and 0 <= ox < Wo:
                                acc[:, oy, ox] += w[:, c, ky, kx] * V[c, iy, ix]
        assert np.array_equal(acc, np.load(os.path.join(d, "acc.npy"))), n


def test_generator_picks_up_shipped_models(tmp_path):
    """Shipped models (here a fake zoo: a default hyperprior and a factorized
    model) get cases; the default one a model directory and per-layer tensors
    that the C port reproduces."""
    import shutil
    import subprocess

    from engine_util import small_model
    from fxlic.cli import main
    from fxlic.io.modelfile import save_model

    zoo = tmp_path / "zoo"
    zoo.mkdir()
    save_model(small_model("hyperprior", N=8, seed=5), str(zoo / "hp5-mse-q2.fxq"))
    save_model(small_model("factorized", N=8, seed=5), str(zoo / "zz-fact.fxq"))
    gen = _gen()
    out = tmp_path / "v"
    suite = gen.generate(str(out), VEC, gen.DEFAULT_KODAK, zoo_dir=str(zoo), log=lambda *a: None)
    assert set(suite["models"]) == {"rand16", "rand16-directed", "rand8-offset", "rand8f-offset", "hp5-mse-q2",
                                    "zz-fact"}
    assert suite["models"]["zz-fact"]["dir"] is None
    dirs = {c["dir"] for c in suite["cases"]}
    assert {"cases/hp5-mse-q2/img64", "cases/hp5-mse-q2/img65x47", "cases/zz-fact/img64"} <= dirs
    assert (out / "models/hp5-mse-q2/layers/ST3/w_codes.npy").exists()
    assert not (out / "models/hp5-mse-q2/layers/ST3/w_codes.mem").exists()
    assert (out / "models/hp5-mse-q2/layers/ST3/out_shift.mem").exists()
    assert (out / "cases/hp5-mse-q2/img64/layers/ST3/acc.npy").exists()
    assert not (out / "cases/hp5-mse-q2/img65x47/layers").exists()
    assert "model_dir -" in (out / "cases/zz-fact/img64/case.txt").read_text()
    ext = suite["models"]["zz-fact"]["external"]  # named by its file (fxlic/vectors/external.py)
    assert ext["zoo"] == "zz-fact" and ext["bytes"] == os.path.getsize(zoo / "zz-fact.fxq")
    assert main(["vectors", "--check", str(out), "--zoo", str(zoo), "-q"]) == 0
    for c in dirs:
        assert main(["verify", "--vectors", str(out / c), "--dumps", str(out / c), "--zoo", str(zoo)]) == 0
    if shutil.which("gcc"):
        exe = str(tmp_path / "fxlic_dec")
        subprocess.run(["gcc", "-std=c99", "-O2", "-o", exe, os.path.join(REPO, "tools/ports/c/fxlic_dec.c")],
                       check=True)
        case = str(out / "cases/hp5-mse-q2/img64")
        subprocess.run([exe, "--stream", case, str(tmp_path / "d")], check=True, capture_output=True)
        assert main(["verify", "--vectors", case, "--dumps", str(tmp_path / "d"), "--scope", "decoder",
                     "--strict"]) == 0
