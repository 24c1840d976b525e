#!/usr/bin/env python3
"""The int16 GEMM block variants against each other on this machine (issue 20).

    python tools/bench_block.py [--K 65536] [--reps 5] [--calls 200]

Times every variant ``fxlic.kernels.numba_kernels.variant_callers()`` offers here
(generic, AVX2 ymm vpmaddwd, AVX-512 zmm vpmaddwd fused to VNNI vpdpwssd), in
interleaved repetitions, and reports GMAC/s and the median of per-repetition
ratios against the AVX2 block (the peer in the same run).  Results are identical
by construction and checked here once more.  Prints the CPU and the variant the
engine chose at start-up.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--K", type=int, default=3200, help="columns per block call (multiple of 16; "
                    "3200 = 5x5x128, a hyperprior layer's im2col row)")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--calls", type=int, default=20000)
    args = ap.parse_args(argv)
    if args.K % 16 or args.K <= 0:
        ap.error("--K must be a positive multiple of 16")
    from fxlic.kernels import numba_kernels as nk

    from fxlic.kernels import host
    print(f"machine: {host.line()}; engine variant: {nk.BLOCK_VARIANT}")
    rng = np.random.default_rng(0)
    col = rng.integers(-32768, 32768, (5, args.K)).astype(np.int16)
    w = rng.integers(-32768, 32768, (2, args.K)).astype(np.int16)
    blocks = {n: b for n, b in nk.variant_callers().items() if n != "generic" or args.K <= 4096}
    ref = [int(v) for v in nk.block4x2_generic(col, 0, w, 0, args.K)]
    for n, b in blocks.items():
        if [int(v) for v in b(col, 0, w, 0, args.K)] != ref:
            print(f"{n}: DIFFERENT RESULTS", file=sys.stderr)
            return 1
    loops = {n: f for n, f in nk.variant_loops().items() if n in blocks}
    for f in loops.values():
        f(col, w, args.K, 2)  # compile
    times = {n: [] for n in loops}
    for _ in range(args.reps):
        for n, f in loops.items():
            t0 = time.perf_counter()
            f(col, w, args.K, args.calls)
            times[n].append(time.perf_counter() - t0)
    macs = 8 * args.K * args.calls
    peer = "avx2" if "avx2" in times else "generic"
    for n, ts in times.items():
        ratio = np.median([t / p for t, p in zip(ts, times[peer])])
        print(f"{n:>8}: {macs / np.median(ts) / 1e9:7.2f} GMAC/s  time / {peer} = {ratio:.3f} "
              f"(median of {args.reps} interleaved repetitions)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
