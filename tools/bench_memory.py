#!/usr/bin/env python
"""Peak RSS and time of ``fxlic compress`` / ``fxlic decompress`` at 2k, 4k and 8k (issue 18).

    python tools/bench_memory.py [--sizes 2048,4096,8000] [--repeat N] [--model M]
                                 [--original] [--pythonpath DIR] [--json out.json]

Thin over the package: every run is a fresh ``python -m fxlic`` process on a
synthetic image (a smooth gradient plus noise, written in a temporary
directory); its peak RSS is the child's ``ru_maxrss`` (``os.wait4``), its
time the wall clock of the process and the coding time the CLI prints.
A 256 x 256 round trip first fills the Numba cache (not reported).  Sizes up
to 4 Mpixel are repeated ``--repeat`` times (default 3) and the median is
reported; larger ones run once unless ``--repeat-large`` says otherwise.
``--pythonpath DIR`` runs another checkout (e.g. ``git archive`` of an older
commit) for before/after tables; the stream's and the decoded pixels' sha256
show whether two runs produced the same integers.

Reported per size and direction: wall / coding seconds, s per Mpixel, peak
RSS (MB) and MB per Mpixel, and scaling ratios against the smallest size
(1.00 = linear time, < 1 RSS ratio = sub-linear memory); plus the CPU model.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, ".."))
sys.path.insert(0, ROOT)
from fxlic.eval.cache import file_digest  # noqa: E402  (sha256 prefix of a file)


def cpu_model() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform
    return platform.processor() or "unknown"


def synthetic_image(path: str, size: int, seed: int = 0) -> None:
    """(size, size) RGB PNG: a smooth gradient plus uniform noise, built in row bands."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    img = np.empty((size, size, 3), np.uint8)
    xx = np.arange(size)[None, :]
    for r in range(0, size, 512):
        yy = np.arange(r, min(size, r + 512))[:, None]
        for c in range(3):
            base = 128 + 90 * np.sin(xx / (size / (3 + c))) * np.cos(yy / (size / (2 + c)))
            noise = rng.integers(-12, 13, (yy.shape[0], size))
            img[r:r + yy.shape[0], :, c] = np.clip(base + noise, 0, 255).astype(np.uint8)
    Image.fromarray(img, "RGB").save(path, format="PNG", compress_level=1)


def run_cli(args, pythonpath=None) -> dict:
    """One fresh ``python -m fxlic ARGS``: wall s, peak RSS MB, coding s (from its output)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = pythonpath or ROOT
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t = time.perf_counter()
        p = subprocess.Popen([sys.executable, "-m", "fxlic"] + args, stdout=out, stderr=err, env=env)
        _, status, ru = os.wait4(p.pid, 0)
        wall = time.perf_counter() - t
        p.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        text, etext = out.read().decode(), err.read().decode()
    if p.returncode != 0:
        raise SystemExit(f"fxlic {' '.join(args)} failed ({p.returncode}): {etext.strip()[-500:]}")
    m = re.findall(r"([0-9.]+) s\b", text)
    return {"wall_s": wall, "rss_mb": ru.ru_maxrss / 1024.0, "coding_s": float(m[-1]) if m else None,
            "output": text.strip()}


def pixels_sha(path: str) -> str:
    from PIL import Image

    with Image.open(path) as im:
        return hashlib.sha256(im.convert("RGB").tobytes()).hexdigest()[:16]


def median_run(n, fn) -> dict:
    runs = [fn() for _ in range(n)]
    med = {k: statistics.median(r[k] for r in runs) for k in ("wall_s", "rss_mb")}
    cod = [r["coding_s"] for r in runs if r["coding_s"] is not None]
    med["coding_s"] = statistics.median(cod) if cod else None
    med["runs"] = len(runs)
    med["all_wall_s"] = [round(r["wall_s"], 2) for r in runs]
    med["all_rss_mb"] = [round(r["rss_mb"], 1) for r in runs]
    return med


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="2048,4096,8000", help="square image sides (comma-separated)")
    ap.add_argument("--repeat", type=int, default=3, help="runs per size up to 4 Mpixel (median)")
    ap.add_argument("--repeat-large", type=int, default=1, help="runs per larger size")
    ap.add_argument("--model", help="model name or .fxq (default: the shipped default)")
    ap.add_argument("--original", action="store_true", help="decompress with --original (PSNR, MS-SSIM)")
    ap.add_argument("--pythonpath", help="run the fxlic found here instead of this checkout")
    ap.add_argument("--workdir", help="where the images and streams go (default: a temporary dir)")
    ap.add_argument("--json", help="write the results as JSON")
    a = ap.parse_args(argv)
    sizes = [int(s) for s in a.sizes.split(",") if s.strip()]
    model = ["--model", a.model] if a.model else []
    res = {"cpu": cpu_model(), "cpus": os.cpu_count(), "load_avg_start": os.getloadavg(),
           "python": sys.version.split()[0], "pythonpath": a.pythonpath or ROOT, "sizes": []}
    print(f"machine: {res['cpu']}, {res['cpus']} cpus, load {res['load_avg_start'][0]:.2f}; "
          f"fxlic from {res['pythonpath']}", flush=True)
    with tempfile.TemporaryDirectory(prefix="fxlic-bench-mem-", dir=a.workdir) as d:
        warm = os.path.join(d, "warm.png")
        synthetic_image(warm, 256)
        run_cli(["compress", warm, "-o", warm + ".fxl", "-q"] + model, a.pythonpath)
        run_cli(["decompress", warm + ".fxl", "-o", warm + ".out.png", "-q"] + model, a.pythonpath)
        for s in sizes:
            img, fxl, out = (os.path.join(d, f"img{s}{e}") for e in (".png", ".fxl", ".out.png"))
            synthetic_image(img, s)
            n = a.repeat if s * s <= 4 << 20 else a.repeat_large
            enc = median_run(n, lambda: run_cli(["compress", img, "-o", fxl] + model, a.pythonpath))
            dargs = ["decompress", fxl, "-o", out] + model + (["--original", img] if a.original else [])
            dec = median_run(n, lambda: run_cli(dargs, a.pythonpath))
            mp = s * s / 1e6
            row = {"size": s, "mpixels": mp, "compress": enc, "decompress": dec,
                   "stream_bytes": os.path.getsize(fxl), "stream_sha": file_digest(fxl),
                   "pixels_sha": pixels_sha(out)}
            res["sizes"].append(row)
            for name, r in (("compress", enc), ("decompress", dec)):
                print(f"{s}x{s} {name:10s}: {r['wall_s']:8.1f} s wall ({r['coding_s'] or 0:8.1f} s coding, "
                      f"{r['wall_s'] / mp:6.2f} s/MP), peak RSS {r['rss_mb']:7.0f} MB "
                      f"({r['rss_mb'] / mp:6.1f} MB/MP), median of {r['runs']}", flush=True)
            print(f"{s}x{s} stream {row['stream_bytes']} bytes sha {row['stream_sha']}, "
                  f"pixels sha {row['pixels_sha']}", flush=True)
            for p in (img, fxl, out):
                os.unlink(p)
    res["load_avg_end"] = os.getloadavg()
    base = res["sizes"][0] if res["sizes"] else None
    if base:
        print("\nscaling against the smallest size (time per MP ratio 1.00 = linear; RSS ratio vs pixel ratio):")
        for row in res["sizes"]:
            px = row["mpixels"] / base["mpixels"]
            for name in ("compress", "decompress"):
                r, b = row[name], base[name]
                row[name]["time_per_mp_ratio"] = (r["wall_s"] / row["mpixels"]) / (b["wall_s"] / base["mpixels"])
                row[name]["rss_ratio"] = r["rss_mb"] / b["rss_mb"]
                print(f"  {row['size']:5d} {name:10s}: pixels x{px:5.2f}, time/MP x"
                      f"{row[name]['time_per_mp_ratio']:.2f}, RSS x{row[name]['rss_ratio']:.2f}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
