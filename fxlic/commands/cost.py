"""``fxlic cost MODEL [--size WxH]``: per-layer MACs, weight, activation and
line-buffer bytes and Table X energy (int8 vs fp32) of the encoder and the
decoder, the paper's Tables IX and X for any model and image size
(docs/COST.md).  MODEL is a shipped model name, a .fxq file, a float-weights
file or an architecture name such as ``hyperprior5-N192``; only its layer list
is used."""
from __future__ import annotations

import json
import os

from ..errors import CliError

WEIGHT_EXTS = (".safetensors", ".npz", ".onnx")


def resolve_arch(arg: str):
    """(display name, Architecture) of a model argument."""
    from ..eval.cost import parse_arch_name

    if not os.path.exists(arg):
        arch = parse_arch_name(arg)
        if arch is not None:
            return arg, arch
    if arg.lower().endswith(WEIGHT_EXTS) and os.path.isfile(arg):
        from ..io.floatfile import WeightsError, load_weights
        try:
            return os.path.basename(arg), load_weights(arg).arch
        except WeightsError as e:
            raise CliError(str(e)) from None
    from ..io.modelfile import ModelFileError, read_model_file, resolve_model
    try:
        path = resolve_model(arg)
        return os.path.basename(path).removesuffix(".fxq"), read_model_file(path)[0].arch
    except ModelFileError as e:
        raise CliError(f"{e} (or an architecture name such as hyperprior5-N128, factorized-N192)") from None


def run(args) -> int:
    from ..eval.cost import format_cost, model_cost, parse_size, plot_cost
    from .common import write_atomic

    try:
        w, h = parse_size(args.size)
    except ValueError as e:
        raise CliError(f"--size: {e}") from None
    name, arch = resolve_arch(args.model)
    rep = model_cost(arch, w, h, pad=not args.no_pad, name=name)
    if args.plot:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise CliError("--plot needs matplotlib: pip install 'fxlic[eval]'") from None
    for out in (args.json, args.plot):  # check before any output is printed
        if out:
            d = os.path.dirname(os.path.abspath(out))
            if os.path.isdir(out):
                raise CliError(f"{out}: is a directory")
            if not os.path.isdir(d):
                raise CliError(f"{out}: directory {d} does not exist")
    print(format_cost(rep))
    if args.json:
        write_atomic(args.json, (json.dumps(rep, indent=1) + "\n").encode())
        print(f"wrote {args.json}")
    if args.plot:
        try:
            plot_cost(rep, args.plot)
        except OSError as e:
            raise CliError(f"{args.plot}: cannot write ({e.strerror or e})") from None
        print(f"wrote {args.plot}")
    return 0


def register(sub):
    s = sub.add_parser("cost", help="per-layer MACs, memory, line buffers and energy (Tables IX/X) for any size",
                       description=__doc__.split("\n\n")[0])
    s.add_argument("model", help="shipped model name, .fxq file, float-weights file, or e.g. hyperprior5-N128")
    s.add_argument("--size", default="768x512", metavar="WxH", help="image size in pixels (default 768x512, "
                   "the size of Table IX)")
    s.add_argument("--no-pad", action="store_true",
                   help="count the size as given (default: padded to the model's multiple, as the codec does)")
    s.add_argument("--json", default=None, metavar="FILE", help="write the whole report as JSON")
    s.add_argument("--plot", default=None, metavar="FILE.png", help="write a per-layer energy / memory plot")
    s.set_defaults(func=run)
