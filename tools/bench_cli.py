#!/usr/bin/env python3
"""Wall time of the CLI round trip a user sees (issue 20): ``fxlic compress`` and
``fxlic decompress`` as fresh processes on a warm Numba cache.

    python tools/bench_cli.py [--image kodim23.png] [--model NAME] [--repeat 5]

Each round runs, in turn: the floor every fxlic process pays (a fresh
interpreter importing NumPy and Numba and loading one cached kernel, which sets
up Numba's CPU target), ``fxlic compress``, ``fxlic decompress``, and the same
round trip inside one persistent process (``fxlic.api``: what a server or a
notebook pays).  Prints the medians and each command's ratio to the floor in
the same round (median of the per-round ratios), and the machine.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FLOOR = ("import numpy as np\nfrom fxlic.kernels.numba_start import set_up_cpu_target_without_blas\n"
         "set_up_cpu_target_without_blas()  # as fxlic.cli does\n"
         "from fxlic.kernels import numba_kernels as nk\nnk._wrap32(np.int64(5))\n")
PERSISTENT = r"""
import sys, time
from fxlic import api
m, image = api.load(%r), %r
best = []
for _ in range(%d):  # PNG read included, PNG write not
    t = time.perf_counter()
    m.decompress(m.compress(image))
    best.append(time.perf_counter() - t)
print(min(best[1:] or best))
"""


def _wall(cmd, env) -> float:
    t = time.perf_counter()
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[:4])}: exit {r.returncode}: {r.stderr.strip()[-300:]}")
    return time.perf_counter() - t


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--image", default=os.path.join(ROOT, "..", "shared", "data", "kodak", "kodim23.png"))
    ap.add_argument("--model", default=None, help="shipped model (default: the default model)")
    ap.add_argument("--repeat", type=int, default=5)
    a = ap.parse_args(argv)
    if not os.path.isfile(a.image):
        ap.error(f"{a.image}: no such image")
    from fxlic.api import default_model

    model = a.model or default_model()
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")),
               "?") if os.path.exists("/proc/cpuinfo") else "?"
    py = sys.executable
    with tempfile.TemporaryDirectory() as d:
        fxl, png = os.path.join(d, "a.fxl"), os.path.join(d, "a.png")
        enc = [py, "-m", "fxlic", "compress", a.image, "-o", fxl, "--model", model, "-q"]
        dec = [py, "-m", "fxlic", "decompress", fxl, "-o", png, "-q"]
        _wall(enc, env), _wall(dec, env)  # fills the Numba cache
        rows = {"floor (python + numpy + numba + 1 kernel)": [], "fxlic compress": [],
                "fxlic decompress": []}
        for _ in range(a.repeat):
            for (label, cmd) in zip(rows, ([py, "-c", FLOOR], enc, dec)):
                rows[label].append(_wall(cmd, env))
        r = subprocess.run([py, "-c", PERSISTENT % (model, a.image, max(3, a.repeat))], env=env,
                           capture_output=True, text=True, timeout=600)
        persistent = float(r.stdout.split()[-1]) if r.returncode == 0 else None
    floor = rows["floor (python + numpy + numba + 1 kernel)"]
    print(f"machine: {cpu}, {os.cpu_count()} cpus; model {model}; image {os.path.basename(a.image)}; "
          f"{a.repeat} rounds")
    print("| process | wall s (median) | ratio to the floor |\n|---|---:|---:|")
    for label, t in rows.items():
        ratio = statistics.median(x / f for x, f in zip(t, floor))
        print(f"| {label} | {statistics.median(t):.3f} | {ratio:.2f} |")
    trip = [c + e for c, e in zip(rows["fxlic compress"], rows["fxlic decompress"])]
    print(f"| round trip, two processes | {statistics.median(trip):.3f} | "
          f"{statistics.median(x / f for x, f in zip(trip, floor)):.2f} |")
    if persistent is not None:
        print(f"| round trip in one process (fxlic.api, best after the first) | {persistent:.3f} | – |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
