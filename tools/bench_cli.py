#!/usr/bin/env python3
"""Wall time of the CLI round trip a user sees (issue 20): ``fxlic compress`` and
``fxlic decompress`` as fresh processes on a warm Numba cache.

    python tools/bench_cli.py [--image kodim23.png] [--model NAME] [--repeat 5]
    python tools/bench_cli.py --against /tmp/wt_before   # this tree vs another checkout

Each round runs, in turn: the floor every fxlic process pays (a fresh
interpreter importing NumPy and Numba and loading one cached kernel, which sets
up Numba's CPU target), ``fxlic compress``, ``fxlic decompress``, and the same
round trip inside one persistent process (``fxlic.api``: what a server or a
notebook pays).  Prints the medians and each command's ratio to the floor in
the same round (median of the per-round ratios), and the machine.  With
``--against TREE`` each round also runs the round trip from another checkout
(``PYTHONPATH=TREE``; the two take turns first) and prints the medians of the wall
and CPU (user + system) seconds of both and of the per-round ratios: on a shared
machine the CPU seconds move less than the wall time.
"""
from __future__ import annotations

import argparse
import os
import resource
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


def _run(cmd, env) -> tuple:
    """(wall s, CPU s: user + system) of one process."""
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    # run outside any checkout: `python -m fxlic` takes the package from the cwd first
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, cwd=tempfile.gettempdir())
    wall = time.perf_counter() - t
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[:4])}: exit {r.returncode}: {r.stderr.strip()[-300:]}")
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)


def _wall(cmd, env) -> float:
    return _run(cmd, env)[0]


def _env(tree):
    return dict(os.environ, PYTHONPATH=tree + os.pathsep + os.environ.get("PYTHONPATH", ""))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--image", default=os.path.join(ROOT, "..", "shared", "data", "kodak", "kodim23.png"))
    ap.add_argument("--model", default=None, help="shipped model (default: the default model)")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--against", metavar="TREE", default=None,
                    help="another fxlic checkout (e.g. a git worktree of an older commit) whose "
                         "round trip takes turns with this one's")
    a = ap.parse_args(argv)
    if not os.path.isfile(a.image):
        ap.error(f"{a.image}: no such image")
    a.image = os.path.abspath(a.image)
    if a.against and not os.path.isfile(os.path.join(a.against, "fxlic", "cli.py")):
        ap.error(f"--against {a.against}: not an fxlic checkout (no fxlic/cli.py)")
    from fxlic.api import default_model

    model = a.model or default_model()
    env = _env(ROOT)
    from fxlic.kernels import host
    cpu = host.line()
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
        pair = _against(a, py, enc, dec, env) if a.against else None
        r = subprocess.run([py, "-c", PERSISTENT % (model, a.image, max(3, a.repeat))], env=env,
                           capture_output=True, text=True, timeout=600, cwd=d)
        persistent = float(r.stdout.split()[-1]) if r.returncode == 0 else None
    floor = rows["floor (python + numpy + numba + 1 kernel)"]
    print(f"machine: {cpu}; model {model}; image {os.path.basename(a.image)}; "
          f"{a.repeat} rounds")
    if env.get("PYTHONDONTWRITEBYTECODE"):
        # measured on a 2-vCPU Zen 4 guest: 0.1-0.15 s per process recompiling about 50 modules
        print("note: PYTHONDONTWRITEBYTECODE is set, so every process compiles the modules that have no "
              ".pyc from source (an editable install, a fresh checkout); a pip install writes them")
    print("| process | wall s (median) | ratio to the floor |\n|---|---:|---:|")
    for label, t in rows.items():
        ratio = statistics.median(x / f for x, f in zip(t, floor))
        print(f"| {label} | {statistics.median(t):.3f} | {ratio:.2f} |")
    trip = [c + e for c, e in zip(rows["fxlic compress"], rows["fxlic decompress"])]
    print(f"| round trip, two processes | {statistics.median(trip):.3f} | "
          f"{statistics.median(x / f for x, f in zip(trip, floor)):.2f} |")
    if persistent is not None:
        print(f"| round trip in one process (fxlic.api, best after the first) | {persistent:.3f} | – |")
    if pair:
        med = statistics.median
        print(f"\nround trip (two processes), this tree vs --against {a.against}, {a.repeat} alternated rounds:")
        print("| tree | wall s | CPU s |\n|---|---:|---:|")
        for k in ("this", "against"):
            print(f"| {k} | {med(w for w, _ in pair[k]):.3f} | {med(c for _, c in pair[k]):.3f} |")
        rw = med(x[0] / y[0] for x, y in zip(pair["this"], pair["against"]))
        rc = med(x[1] / y[1] for x, y in zip(pair["this"], pair["against"]))
        print(f"| ratio this / against (median of the rounds) | {rw:.2f} | {rc:.2f} |")
    return 0


def _against(a, py, enc, dec, env) -> dict:
    """Round trips of this tree and of ``--against``, taking turns first; each
    entry (wall s, CPU s) of compress + decompress."""
    other = _env(os.path.abspath(a.against))
    _wall(enc, other), _wall(dec, other)  # that tree's Numba cache
    out = {"this": [], "against": []}
    for i in range(a.repeat):
        order = [("this", env), ("against", other)]
        for k, e in (order if i % 2 == 0 else order[::-1]):
            c, d = _run(enc, e), _run(dec, e)
            out[k].append((c[0] + d[0], c[1] + d[1]))
    return out


if __name__ == "__main__":
    sys.exit(main())
