"""``fxlic info``: versions, or a readable description of a model file
(``.fxq`` or the name of a shipped model) or of a float-weights file."""
from __future__ import annotations

import os

from ..errors import CliError

#: float weights (and the PyTorch pickles fxlic names and refuses: .pth, .pt, ...)
WEIGHT_EXTS = (".safetensors", ".npz", ".onnx", ".pth", ".pt", ".tar", ".ckpt", ".bin")


def _describe_weights(path: str) -> str:
    from ..io.floatfile import WeightsError, load_weights

    try:
        fm = load_weights(path)
    except WeightsError as e:
        raise CliError(str(e)) from None
    a = fm.arch
    lines = [f"float weights {path} ({fm.meta.get('format')}), sha256 {fm.meta.get('sha256')}",
             f"architecture  {a.name} ({a.kind}, N={a.N}, M={a.M}, {len(a.layers)} layers), "
             f"lambda {fm.meta.get('lambda', '-')}",
             f"weights       {sum(l.n_weights for l in a.layers):,}; entropy parameters: "
             f"{', '.join(sorted(fm.entropy)) or 'none'}"]
    if fm.probe:  # docs/MODEL_FORMAT.md 7.4: checked by fxlic quantize
        shapes = ", ".join(f"{k} {tuple(v.shape)}" for k, v in sorted(fm.probe.items()))
        lines.append(f"I/O probe     {shapes}")
    for l in a.layers:
        w = fm.weights[l.name]
        lines.append(f"  {l.name:<4} {l.op:<5} {l.k}x{l.k} s{l.stride} {l.cin:>4}->{l.cout:<4} "
                     f"{l.act:<5} max|w| {abs(w).max():.4g}")
    return "\n".join(lines)


def run(args) -> int:
    import numba
    import numpy as np

    from .. import __version__
    from ..spec import SPEC_VERSION

    print(f"fxlic {__version__}  spec {SPEC_VERSION}")
    print(f"numpy {np.__version__}  numba {numba.__version__}")
    from ..kernels import numba_kernels as nk
    print(f"kernels: int16 GEMM block {nk.BLOCK_VARIANT} (chosen at start-up from the CPU; "
          f"identical integers on every variant)")
    from ..kernels import host, threading_info
    print(f"cpu: {host.line()}")
    print(f"threads: {threading_info()}")
    if args.model:
        from ..io.modelfile import ModelFileError, describe_model_file, resolve_model

        if args.model.lower().endswith(WEIGHT_EXTS) and os.path.isfile(args.model):
            print(_describe_weights(args.model))
            return 0
        try:
            print(describe_model_file(resolve_model(args.model)))
        except ModelFileError as e:
            raise CliError(str(e)) from None
    return 0


def register(sub):
    s = sub.add_parser("info", help="print versions, or describe a .fxq model file")
    s.add_argument("model", nargs="?",
                   help="a .fxq model file, a shipped model name, or a float-weights file")
    s.set_defaults(func=run, runs_kernels=True)  # fxlic.cli: Numba set-up without the BLAS probe
