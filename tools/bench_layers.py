#!/usr/bin/env python3
"""Per-layer and whole-network CPU time of fxlic numba (issue 20).

    python tools/bench_layers.py [--root DIR] [--threads 1] [--repeat 5]

CPU seconds (``time.process_time``: every thread of the process, kernel time
included) are far steadier than wall seconds on a machine shared with other
jobs: a time slice lost to another process is not counted.  The workload is
the one of tools/bench.py (the Kodak image at 768 x 512, the first shipped
hyperprior-5 N = 128 model of *this* checkout); ``--root`` imports fxlic from
another tree (e.g. ``git worktree add /tmp/old <commit>``) to compare versions
on the same workload, run after run.  Per layer: decode tables + conv + output
stage; medians of --repeat runs after one warm-up run.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", default=os.path.dirname(HERE), help="tree to import fxlic from")
    ap.add_argument("--threads", type=int, default=1, help="NUMBA_NUM_THREADS")
    ap.add_argument("--repeat", type=int, default=5)
    a = ap.parse_args(argv)
    os.environ["NUMBA_NUM_THREADS"] = str(a.threads)
    sys.path.insert(0, HERE)
    from bench import layer_macs, load_image, load_models  # this checkout's workload
    img_path, img = load_image()
    desc = load_models(img)[2]
    if not desc.startswith("zoo model "):
        ap.error("needs a shipped hyperprior-5 N = 128 model in fxlic/zoo")
    path = desc.removeprefix("zoo model ")
    sys.path.insert(0, os.path.abspath(a.root))
    for m in [m for m in sys.modules if m == "fxlic" or m.startswith("fxlic.")]:
        del sys.modules[m]  # bench imported this checkout's fxlic
    import numpy as np

    import fxlic
    from fxlic.io.modelfile import load_model
    from fxlic.model.int_forward import encode, hyper_decode, synthesize
    model = load_model(path)
    print(f"fxlic from {os.path.dirname(fxlic.__file__)}; model {path}; image {img_path} "
          f"{img.shape[2]}x{img.shape[1]}; {a.threads} thread(s)")
    layers, te, td = {}, [], []

    class Hook:
        wants_acc = False
        wants_codes = False  # timing only: the layers run as without a hook (operands handed over)

        def __init__(self):
            self.t = time.process_time()

        def __call__(self, name, inp, acc, out):
            now = time.process_time()
            layers.setdefault(name, []).append(now - self.t)
            self.t = now

    for i in range(1 + a.repeat):  # run 0 warms up (JIT cache, buffers)
        e = encode(model, img, "numba", Hook())
        synthesize(model, e.y, e.mu, "numba", Hook())  # (run 0 also compiles or loads the kernels)
        t = time.process_time()
        e = encode(model, img, "numba")
        te.append(time.process_time() - t)
        t = time.process_time()
        hyper_decode(model, e.z, "numba")
        synthesize(model, e.y, e.mu, "numba")
        td.append(time.process_time() - t)
    macs = layer_macs(model.arch, img.shape[1], img.shape[2])
    print("| layer | GMAC | CPU ms | GMAC per CPU-s |")
    print("|---|---:|---:|---:|")
    for n, ts in layers.items():
        t = float(np.median(ts[1:]))
        print(f"| {n} | {macs[n][0] / 1e9:.3f} | {1e3 * t:.1f} | {macs[n][0] / 1e9 / t:.1f} |")
    print(f"encode {1e3 * np.median(te[1:]):.0f} ms CPU, decode (h_s + g_s) {1e3 * np.median(td[1:]):.0f} ms CPU "
          f"(medians of {a.repeat})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
