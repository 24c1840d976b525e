#!/usr/bin/env python3
"""One training campaign: every shipped model continued for a fixed wall budget.

    python tools/train_campaign.py --out OUT --minutes 8 --device cuda      # one GPU call
    python tools/train_campaign.py --out OUT --minutes 60 --lanes 2         # 2-core CPU
    python tools/train_campaign.py --out OUT --dry-run                      # the commands

Each recipe below (the shipped models, as data) becomes one ``tools/train.py`` run
with ``--minutes``: the run times a warm-up, resolves its step counts to fill the
budget (training, lr drop at --lr-drop-frac, WCFT rounds), and exports
``OUT/<name>.safetensors`` (fp16, after WCFT) and ``OUT/<name>-nowcft.safetensors``
(just before WCFT: the point the next campaign continues from, and the WCFT
ablation's input).  On a GPU all recipes run concurrently in one call; on a CPU
``--lanes`` of them at a time with ``--threads`` split between the lanes.
Runs continue from the committed exports (``tools/weights/<name>-nowcft``, else the
package's ``fxlic/zoo/<name>.float.safetensors``, else the recipe's ``init_from``
model), so a fresh machine picks up where the last campaign stopped; optimizer
state restarts.  Install the results with ``python tools/make_zoo.py --from OUT``.
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

#: The shipped models.  lam is the paper's lambda (Sec. IV-A: MSE {0.001625, 0.00325,
#: 0.0075, ...} and MS-SSIM {3, 5, 10, ...}, N = 128 below 0.015 / 80); the three lower
#: lambdas get one WCFT round with beta 1 (Sec. IV-B).  init_from: the model a recipe
#: starts from while it has no export of its own.
RECIPES = [
    {"name": "hp5-mse-q0", "arch": "hyperprior5", "lam": 0.001625, "wcft": "1"},
    {"name": "hp5-mse-q1", "arch": "hyperprior5", "lam": 0.00325, "wcft": "1"},
    {"name": "hp5-mse-q2", "arch": "hyperprior5", "lam": 0.0075, "wcft": "1"},
    {"name": "fact-mse-q1", "arch": "factorized", "lam": 0.00325, "wcft": "1"},
    {"name": "hp5-msssim-q1", "arch": "hyperprior5", "lam": 5.0, "msssim": True, "wcft": "1",
     "init_from": "hp5-mse-q1"},
    {"name": "hp5-msssim-q2", "arch": "hyperprior5", "lam": 10.0, "msssim": True, "wcft": "1",
     "init_from": "hp5-mse-q2"},
]


def committed_export(name, weights_dir):
    """The newest committed weights of ``name``: pre-WCFT export, else the package copy."""
    for p in (os.path.join(weights_dir, f"{name}-nowcft.safetensors"),
              os.path.join(ROOT, "fxlic", "zoo", f"{name}.float.safetensors")):
        if os.path.isfile(p):
            return p
    return None


def init_for(recipe, weights_dir, override=None):
    """The weights a recipe starts from: ``override`` (a model name) if given, else its own
    committed export, else its ``init_from`` model's."""
    for n in ((override,) if override else (recipe["name"], recipe.get("init_from"))):
        if n and committed_export(n, weights_dir):
            return committed_export(n, weights_dir)
    return None


def command(recipe, args, seed, threads):
    name = recipe["name"]
    cmd = [sys.executable, os.path.join(HERE, "train.py"),
           "--arch", recipe["arch"], "--lambda", str(recipe["lam"]),
           "--data", args.data, "--device", args.device, "--amp", args.amp,
           "--channels-last", args.channels_last,
           "--crop", str(args.crop), "--batch", str(args.batch), "--threads", str(threads),
           "--lr", str(args.lr), "--lr-drop-frac", str(args.lr_drop_frac),
           "--minutes", str(args.minutes), "--seed", str(seed),
           "--wcft", recipe["wcft"], "--wcft-lr", str(args.wcft_lr), "--aux-lr", str(args.aux_lr),
           "--ckpt-root", os.path.join(args.out, "ckpt"), "--run-name", name, "--resume",
           "--log-every", str(args.log_every), "--fp16",
           "--export-nowcft", os.path.join(args.out, f"{name}-nowcft.safetensors"),
           "--export", os.path.join(args.out, f"{name}.safetensors")]
    if recipe.get("msssim"):
        cmd.append("--msssim")
    if args.N:
        cmd += ["--N", str(args.N)]
    init = None if args.scratch else init_for(recipe, args.weights_dir, args.init_from.get(name))
    if init:
        cmd += ["--init", init]
    return cmd


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 epilog=__doc__.split("\n\n", 1)[1],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="directory for exports, logs and checkpoints")
    ap.add_argument("--minutes", type=float, default=8.0, help="wall budget of every run")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--amp", default="auto", choices=("auto", "bf16", "fp32"))
    ap.add_argument("--channels-last", default="auto", choices=("auto", "on", "off"),
                    help="train.py's NHWC layout (auto: on on a CPU)")
    ap.add_argument("--data", default=os.environ.get("FXLIC_TRAIN", os.path.join(ROOT, "..", "shared", "data", "train")),
                    help="training directory or pack file (env FXLIC_TRAIN)")
    ap.add_argument("--only", default="", help="comma-separated recipe names (default: all)")
    ap.add_argument("--lanes", type=int, default=0, help="runs at a time (default: all on cuda, 2 on cpu)")
    ap.add_argument("--threads", type=int, default=2, help="CPU threads in all, split between lanes")
    ap.add_argument("--crop", type=int, default=256)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--lr-drop-frac", type=float, default=0.85)
    ap.add_argument("--wcft-lr", type=float, default=3e-5)
    ap.add_argument("--aux-lr", type=float, default=1e-2)
    ap.add_argument("--seed", type=int, default=100, help="run i gets seed + i")
    ap.add_argument("--log-every", type=int, default=50)
    ap.add_argument("--weights-dir", default=os.path.join(HERE, "weights"))
    ap.add_argument("--N", type=int, default=0, help="channels (0: the architecture's 128; tests use 8)")
    ap.add_argument("--init-from", action="append", default=[], metavar="NAME=MODEL",
                    help="start recipe NAME from MODEL's committed export instead of its own "
                         "(e.g. hp5-mse-q0=hp5-mse-q1: a per-lambda fine-tune from a better-trained "
                         "neighbour); repeatable")
    ap.add_argument("--scratch", action="store_true", help="start from random weights (tests)")
    ap.add_argument("--dry-run", action="store_true", help="print the commands and exit")
    args = ap.parse_args(argv)

    names = [n for n in args.only.split(",") if n]
    known = {r["name"] for r in RECIPES}
    bad = [n for n in names if n not in known]
    if bad:
        ap.error(f"unknown recipe(s) {', '.join(bad)}; known: {', '.join(sorted(known))}")
    recipes = [r for r in RECIPES if not names or r["name"] in names]
    overrides = {}
    for item in args.init_from:
        name, sep, model = item.partition("=")
        if not sep or name not in known or model not in known:
            ap.error(f"--init-from {item!r}: expected NAME=MODEL with both among: {', '.join(sorted(known))}")
        if not committed_export(model, args.weights_dir):
            ap.error(f"--init-from {item!r}: {model} has no committed export")
        overrides[name] = model
    args.init_from = overrides
    if not (os.path.isdir(args.data) or os.path.isfile(args.data)):
        ap.error(f"--data {args.data}: no such directory or pack file")
    on_gpu = args.device.startswith("cuda")
    lanes = args.lanes or (len(recipes) if on_gpu else 2)
    threads = max(1, args.threads // min(lanes, len(recipes)))
    cmds = [(r["name"], command(r, args, args.seed + i, threads)) for i, r in enumerate(recipes)]
    if args.dry_run:
        for _, c in cmds:
            print(shlex.join(c))
        return 0

    os.makedirs(args.out, exist_ok=True)
    t0 = time.time()
    pending, running, done = list(cmds), [], {}
    hard_limit = args.minutes * 60 * 1.15 + 120  # a run past this is stopped (it checkpoints)
    while pending or running:
        while pending and len(running) < lanes:
            name, c = pending.pop(0)
            log = open(os.path.join(args.out, f"{name}.log"), "w")
            print(f"[{time.time() - t0:6.0f}s] start {name}", flush=True)
            running.append((name, subprocess.Popen(c, stdout=log, stderr=subprocess.STDOUT), log, time.time()))
        time.sleep(1.0)
        for item in list(running):
            name, proc, log, ts = item
            if proc.poll() is None and time.time() - ts > hard_limit:
                proc.send_signal(signal.SIGTERM)
            if proc.poll() is not None:
                log.close()
                running.remove(item)
                done[name] = proc.returncode
                print(f"[{time.time() - t0:6.0f}s] {name} exited {proc.returncode}", flush=True)
    summary = {"minutes": args.minutes, "device": args.device, "wall_s": round(time.time() - t0, 1),
               "runs": {}}
    for name, _ in cmds:
        p = os.path.join(args.out, f"{name}.safetensors")
        entry = {"exit": done.get(name), "export": os.path.basename(p) if os.path.isfile(p) else None}
        if entry["export"]:
            from safetensors import safe_open
            with safe_open(p, framework="np") as f:
                prov = json.loads((f.metadata() or {}).get("fxlic.provenance", "{}"))
            entry.update({k: prov.get(k) for k in ("steps", "wall_seconds", "kpix_per_s", "device", "amp")})
        summary["runs"][name] = entry
    with open(os.path.join(args.out, "campaign.json"), "w") as f:
        json.dump(summary, f, indent=1, sort_keys=True)
    failed = [n for n, rc in done.items() if rc != 0]
    print(json.dumps(summary, indent=1, sort_keys=True))
    if failed:
        print(f"train_campaign: failed: {', '.join(failed)} (logs in {args.out})", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
