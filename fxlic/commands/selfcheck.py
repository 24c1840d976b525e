"""``fxlic selfcheck``: run a small random model through both backends and
check every layer's integers agree."""
from __future__ import annotations

import time

import numpy as np


def run(args) -> int:
    from ..model.arch import factorized, hyperprior5
    from ..model.build import build_int_model, calibrate
    from ..model.float_model import random_float_model
    from ..model.int_forward import encode, synthesize

    rng = np.random.default_rng(args.seed)
    ok = True
    for arch in (hyperprior5(8), factorized(8)):
        fm = random_float_model(arch, args.seed)
        imgs = [rng.integers(0, 256, (3, 64, 64), dtype=np.uint8) for _ in range(2)]
        im = build_int_model(fm, calibrate(fm, imgs))
        rec = {}
        for be in ("reference", "numba"):
            layers = {}
            t0 = time.perf_counter()
            e = encode(im, imgs[0], be, hook=lambda n, i, a, o: layers.__setitem__(n, (a, o)))
            synthesize(im, e.y, e.mu, be, hook=lambda n, i, a, o: layers.__setitem__(n, (a, o)))
            rec[be] = (layers, time.perf_counter() - t0)
        bad = [n for n in rec["reference"][0]
               if not all(np.array_equal(u, v) for u, v in zip(rec["reference"][0][n], rec["numba"][0][n]))]
        ok &= not bad
        if not args.quiet:
            status = "OK" if not bad else f"MISMATCH in {', '.join(bad)}"
            print(f"{arch.name}: {len(rec['reference'][0])} layers, reference == numba: {status}")
    print("selfcheck passed" if ok else "selfcheck FAILED")
    return 0 if ok else 1


def register(sub):
    s = sub.add_parser("selfcheck", help="check reference == numba on a small random model")
    s.add_argument("-q", "--quiet", action="store_true")
    s.add_argument("--seed", type=int, default=0)
    s.set_defaults(func=run, runs_kernels=True)  # fxlic.cli: Numba set-up without the BLAS probe
