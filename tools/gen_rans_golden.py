#!/usr/bin/env python
"""Generate CompressAI golden vectors for fxlic's rANS coder and CDF builder.

Writes tests/data/rans_golden/*.npz (plain arrays, no pickle) and meta.json.
Needs CompressAI's compiled extensions ``ans`` (RansEncoder/RansDecoder) and
``_CXX`` (pmf_to_quantized_cdf); they are loaded straight from their .so
files, so neither torch nor ``import compressai`` is needed.  Point
``--compressai`` at a directory holding the ``compressai`` package, e.g. an
unpacked wheel::

    pip download compressai==1.2.8 --no-deps -d /tmp/cai
    python -m zipfile -e /tmp/cai/compressai-1.2.8-*.whl /tmp/cai/x
    python tools/gen_rans_golden.py --compressai /tmp/cai/x

(default: wherever ``importlib.util.find_spec("compressai")`` finds it).

All cases stay inside the domain where CompressAI's C++ is well defined:
streams of >= 2 symbols (its flush writes 2 words into a buffer of
len(puts) words), escaped raw values < 2^28 (for raw >= 2^28 its bypass
count loop shifts a uint32 by 32 and never ends) and tables of >= 3 entries
(a frequency of 2^16 wraps to 0 in its uint16_t and divides by zero).  See docs/ENTROPY.md 6.
"""
from __future__ import annotations

import argparse
import glob
import importlib.util
import json
import os
import re
import sys

import numpy as np

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, ROOT)

from fxlic.entropy.cdf import build_gaussian_tables, gaussian_scale_table  # noqa: E402

OUT = os.path.join(ROOT, "tests", "data", "rans_golden")
RAW_LIMIT = 1 << 28  # CompressAI encodes raw < 2^28 only (see docstring)


def load_ext(pkg_dir, name):
    files = glob.glob(os.path.join(pkg_dir, f"{name}.*.so")) + glob.glob(os.path.join(pkg_dir, f"{name}.*.pyd"))
    if not files:
        raise SystemExit(f"no compiled {name} extension in {pkg_dir}")
    spec = importlib.util.spec_from_file_location(f"compressai.{name}", files[0])
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def find_pkg(arg):
    if arg:
        d = os.path.join(arg, "compressai") if os.path.isdir(os.path.join(arg, "compressai")) else arg
        return d
    spec = importlib.util.find_spec("compressai")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("compressai not found; pass --compressai DIR")
    return list(spec.submodule_search_locations)[0]


def version_of(pkg_dir):
    try:
        with open(os.path.join(pkg_dir, "version.py")) as f:
            m = re.search(r"""__version__\s*=\s*["']([^"']+)""", f.read())
            return m.group(1) if m else "unknown"
    except OSError:
        return "unknown"


def pad(rows):
    w = max(len(r) for r in rows)
    out = np.zeros((len(rows), w), dtype=np.int32)
    for i, r in enumerate(rows):
        out[i, : len(r)] = r
    return out, np.array([len(r) for r in rows], dtype=np.int32)


def clip_domain(sym, idx, sizes, offs):
    """Move symbols whose escape raw value would be >= 2^28 back inside."""
    max_value = sizes[idx].astype(np.int64) - 2
    lo = offs[idx].astype(np.int64) - (RAW_LIMIT // 2) + 1
    hi = offs[idx].astype(np.int64) + max_value + RAW_LIMIT // 2 - 1
    return np.clip(sym.astype(np.int64), lo, hi).astype(np.int32)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--compressai", default=None, help="dir containing the compressai package")
    ap.add_argument("--out", default=OUT)
    a = ap.parse_args(argv)
    pkg = find_pkg(a.compressai)
    ans = load_ext(pkg, "ans")
    cxx = load_ext(pkg, "_CXX")
    os.makedirs(a.out, exist_ok=True)
    rng = np.random.default_rng(20240601)
    enc = ans.RansEncoder()
    dec = ans.RansDecoder()
    cases = {}

    def cdf_of(pmf, tail):
        return cxx.pmf_to_quantized_cdf([float(v) for v in np.append(pmf, tail)], 16)

    def add(name, sym, idx, cdfs, sizes, offs):
        sym = np.asarray(sym, dtype=np.int32)
        idx = np.asarray(idx, dtype=np.int32)
        sym = clip_domain(sym, idx, sizes, offs)
        assert sym.size >= 2
        rows = [list(map(int, cdfs[t])) for t in range(cdfs.shape[0])]
        data = enc.encode_with_indexes(sym.tolist(), idx.tolist(), rows, sizes.tolist(), offs.tolist())
        back = dec.decode_with_indexes(data, idx.tolist(), rows, sizes.tolist(), offs.tolist())
        assert list(back) == sym.tolist(), name
        np.savez_compressed(os.path.join(a.out, f"{name}.npz"), symbols=sym, indexes=idx,
                            cdfs=cdfs, cdf_sizes=sizes, offsets=offs,
                            stream=np.frombuffer(data, dtype=np.uint8))
        cases[name] = {"symbols": int(sym.size), "bytes": len(data)}

    # 1. tiny hand-made table with escapes on both sides
    c = cdf_of([0.1, 0.2, 0.3, 0.39], 0.01)
    cdfs, sizes = pad([c])
    add("tiny", [0, 1, 2, -5, 100, 3], [0] * 6, cdfs, sizes, np.array([0], np.int32))

    # 2. Gaussian tables (16 scales up to 20) and a hyperprior-like stream
    st = gaussian_scale_table(0.11, 20.0, 16)
    cdfs, sizes, offs = build_gaussian_tables(st)
    n = 20_000
    idx = rng.integers(0, st.size, n)
    sym = np.round(rng.normal(0, st[idx] * 1.3)).astype(np.int32)  # some tail escapes
    add("gaussian", sym, idx, cdfs, sizes, offs)

    # 3. every symbol escaped, magnitudes up to the CompressAI limit
    mags = np.concatenate([rng.integers(1, 16, 200), rng.integers(16, 1 << 12, 200),
                           rng.integers(1 << 12, 1 << 20, 200), rng.integers(1 << 20, 1 << 27, 200),
                           np.array([(1 << 27) - 1] * 4)])
    signs = np.where(rng.random(mags.size) < 0.5, -1, 1)
    idx = rng.integers(0, st.size, mags.size)
    base = np.where(signs < 0, offs[idx] - 1, offs[idx] + sizes[idx] - 2)
    add("escapes", base + signs * mags, idx, cdfs, sizes, offs)

    # 4. degenerate tables: one symbol + escape (size 3), near-certain symbols.
    # (A size-2 table [0, 2^16] is outside CompressAI's domain: it stores the
    # frequency 2^16 in a uint16_t, codes freq 0 and divides by zero.)
    rows = [[0, 1, 65536], cdf_of([1.0], 1e-9), cdf_of([0.5, 0.5], 1e-3), cdf_of([1e-9, 1.0, 1e-9], 1e-9)]
    cdfs4, sizes4 = pad(rows)
    offs4 = np.array([0, 7, -3, 100], np.int32)
    n = 3000
    idx = rng.integers(0, 4, n)
    sym = offs4[idx] + rng.integers(-3, 5, n)
    add("degenerate", sym, idx, cdfs4, sizes4, offs4)

    # 5. many random tables, random offsets, skewed pmfs
    rows = []
    for _ in range(40):
        k = int(rng.integers(1, 60))
        p = rng.random(k) ** 4
        rows.append(cdf_of(p / p.sum() * 0.999, float(rng.random() * 1e-3 + 1e-9)))
    cdfs5, sizes5 = pad(rows)
    offs5 = rng.integers(-1000, 1000, 40).astype(np.int32)
    n = 8_000
    idx = rng.integers(0, 40, n)
    sym = offs5[idx] + rng.integers(-5, 70, n)
    add("random_tables", sym, idx, cdfs5, sizes5, offs5)

    # 6. short streams (2..5 symbols)
    for k in range(2, 6):
        idx = rng.integers(0, st.size, k)
        add(f"short{k}", rng.integers(-30, 30, k), idx, cdfs, sizes, offs)

    # pmf_to_quantized_cdf goldens
    pmfs, tails, outs = [], [], []
    for trial in range(200):
        k = int(rng.integers(1, 120))
        kind = trial % 4
        if kind == 0:
            p = rng.random(k)
        elif kind == 1:
            p = rng.random(k) ** 8
            p /= p.sum()
        elif kind == 2:
            p = np.exp(-rng.random() * 50 * np.arange(k))
            p /= p.sum()
        else:
            p = rng.random(k) * (rng.random(k) < 0.3)
            p[0] += 1e-3
            p /= p.sum() * 1.001
        tm = float(rng.random() * 1e-3)
        pmfs.append(p.astype(np.float32))
        tails.append(tm)
        outs.append(cdf_of(p.astype(np.float32), np.float32(tm)))
    w = max(p.size for p in pmfs)
    pm = np.zeros((len(pmfs), w), np.float32)
    for i, p in enumerate(pmfs):
        pm[i, : p.size] = p
    oc, ol = pad(outs)
    np.savez_compressed(os.path.join(a.out, "pmf_to_cdf.npz"), pmfs=pm,
                        pmf_lengths=np.array([p.size for p in pmfs], np.int32),
                        tails=np.array(tails, np.float32), cdfs=oc, cdf_sizes=ol)
    meta = {"generator": "tools/gen_rans_golden.py", "compressai_version": version_of(pkg),
            "cases": cases, "pmf_to_cdf_cases": len(pmfs)}
    with open(os.path.join(a.out, "meta.json"), "w") as f:
        json.dump(meta, f, indent=1, sort_keys=True)
        f.write("\n")
    print(json.dumps(meta, indent=1, sort_keys=True))


if __name__ == "__main__":
    main()
