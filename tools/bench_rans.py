#!/usr/bin/env python
"""Throughput of the rANS coders (fxlic.entropy.rans / rans_numba).

Symbols are drawn like a hyperprior latent: per element a scale (log-uniform
in [0.11, 64]) and a mean, y ~ round(N(mean, scale)); they are coded with the
CompressAI Gaussian tables (64 scales, docs/ENTROPY.md 8.1) through the plain
``encode_with_indexes`` / ``decode_with_indexes`` API (validation included).

    python tools/bench_rans.py [--n 1000000] [--ref-n 1000000] [--repeat 3]

Prints Msym/s of encode and decode for both coders and the numba/reference
ratio; the numba figures exclude JIT compilation (one warm-up call).
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from fxlic.entropy import rans, rans_numba  # noqa: E402
from fxlic.entropy.gaussian import GaussianTables  # noqa: E402


def make_stream(n, tables, seed=0):
    rng = np.random.default_rng(seed)
    scale = np.exp(rng.uniform(np.log(0.11), np.log(64.0), n))
    mean = rng.normal(0.0, 4.0, n)
    y = np.round(rng.normal(mean, scale)).astype(np.int64)
    sq = np.round(scale * (1 << tables.scale_frac_bits)).astype(np.int64)
    mq = np.round(mean * (1 << tables.mean_frac_bits)).astype(np.int64)
    from fxlic.entropy.gaussian import _y_streams
    return _y_streams(y, mq, sq, tables)


def best_time(fn, repeat):
    best = float("inf")
    out = None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=1_000_000, help="symbols for numba")
    ap.add_argument("--ref-n", type=int, default=1_000_000, help="symbols for the reference")
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args(argv)

    tables = GaussianTables.build(scale_frac_bits=16, mean_frac_bits=2)  # as fxlic models (SPEC E1)
    args_t = (tables.cdfs, tables.cdf_sizes, tables.offsets)
    sym, idx = make_stream(a.n, tables)
    rsym, ridx = sym[: a.ref_n], idx[: a.ref_n]

    # warm-up (JIT compile / cache load)
    w = rans_numba.encode_with_indexes(sym[:1000], idx[:1000], *args_t)
    rans_numba.decode_with_indexes(w, idx[:1000], *args_t)

    rows = []
    te, data = best_time(lambda: rans_numba.encode_with_indexes(sym, idx, *args_t), a.repeat)
    td, dec = best_time(lambda: rans_numba.decode_with_indexes(data, idx, *args_t), a.repeat)
    assert np.array_equal(dec, sym)
    rows.append(("numba", a.n, te, td, len(data)))
    rrep = 1 if a.ref_n >= 200_000 else a.repeat
    re_, rdata = best_time(lambda: rans.encode_with_indexes(rsym, ridx, *args_t), rrep)
    rd, rdec = best_time(lambda: rans.decode_with_indexes(rdata, ridx, *args_t), rrep)
    assert np.array_equal(rdec, rsym)
    assert rdata == rans_numba.encode_with_indexes(rsym, ridx, *args_t)
    rows.append(("reference", a.ref_n, re_, rd, len(rdata)))

    print(f"rANS throughput (Gaussian tables, {len(tables.cdf_sizes)} scales; best of runs)")
    print(f"{'coder':<10} {'symbols':>9} {'enc Msym/s':>11} {'dec Msym/s':>11} {'bits/sym':>9}")
    for name, n, e, d, nb in rows:
        print(f"{name:<10} {n:>9} {n / e / 1e6:>11.2f} {n / d / 1e6:>11.2f} {8 * nb / n:>9.3f}")
    (_, n1, e1, d1, _), (_, n2, e2, d2, _) = rows
    print(f"{'ratio':<10} {'':>9} {(n1 / e1) / (n2 / e2):>10.1f}x {(n1 / d1) / (n2 / d2):>10.1f}x"
          "  (numba / reference)")


if __name__ == "__main__":
    main()
