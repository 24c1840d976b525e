"""``fxlic models``: the shipped models (fxlic/zoo/*.fxq)."""
from __future__ import annotations

import os


def run(args) -> int:
    from ..io.modelfile import ZOO_DIR, ModelFileError, list_zoo, read_model_file

    paths = list_zoo()
    if not paths:
        print(f"no shipped models in {ZOO_DIR} yet; make one with "
              f"`fxlic quantize --weights W --calib DIR --out model.fxq` and pass its path")
        return 0
    rows = [("name", "architecture", "lambda", "weights", "size", "hash")]
    for p in paths:
        name = os.path.basename(p)[:-4]
        size = f"{os.path.getsize(p):,}"
        try:
            im, header = read_model_file(p)
        except ModelFileError as e:
            rows.append((name, "UNREADABLE", "-", "-", size, str(e).split(": ", 1)[-1][:60]))
            continue
        fmeta = (im.meta or {}).get("float_model") or {}
        lam = fmeta.get("lambda")
        rows.append((name, im.arch.name, "-" if lam is None else f"{lam:g}",
                     str(im.meta.get("weight_scheme", "?")), size, header["content_hash"][7:19]))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
    return 0


def register(sub):
    s = sub.add_parser("models", help="list the shipped models")
    s.set_defaults(func=run)
