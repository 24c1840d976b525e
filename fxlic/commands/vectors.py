"""``fxlic vectors --model M --image I --out DIR``: write a conformance case
(docs/VECTORS.md): every layer's integer input, accumulator and output, the
layer parameters, the entropy-coder side, the bitstream and the reconstruction,
as .npy and $readmemh .mem files with a manifest."""
from __future__ import annotations

import os
import shutil
import tempfile

from ..errors import CliError


def _mem_arg(arg):
    from ..vectors.writer import MEM_CATEGORIES

    if arg in (None, "all"):
        return frozenset(MEM_CATEGORIES)
    if arg == "none":
        return frozenset()
    cats = {c.strip() for c in arg.split(",") if c.strip()}
    bad = sorted(cats - set(MEM_CATEGORIES))
    if bad:
        raise CliError(f"--mem: unknown categories {', '.join(bad)} (use all, none or a comma list of "
                       f"{', '.join(MEM_CATEGORIES)})")
    return frozenset(cats)


def run(args) -> int:
    from ..io.modelfile import model_hash
    from ..vectors.writer import Options, parse_layers, write_case
    from .common import load_model_arg, read_image_arg

    out = args.out
    if os.path.exists(out) and (not os.path.isdir(out) or os.listdir(out)):
        raise CliError(f"{out}: exists and is not an empty directory (vectors are written to a new "
                       f"directory so that no stale file is left in a case)")
    parent = os.path.dirname(os.path.abspath(out))
    if not os.path.isdir(parent):
        raise CliError(f"{out}: directory {parent} does not exist")
    pixels = read_image_arg(args.image)
    model = load_model_arg(args.model)
    names = [s.name for s in model.arch.layers]
    try:
        layers = parse_layers(args.layers, names)
    except ValueError as e:
        raise CliError(f"--layers: {e}") from None
    opts = Options(layers=layers, mem=_mem_arg(args.mem), acc=not args.no_acc,
                   inputs=not args.no_inputs, dec_tables=not args.no_dec_tables, backend=args.backend)
    model_name = os.path.basename(args.model)[:-4] if args.model and args.model.endswith(".fxq") else \
        (args.model or model.arch.name)
    image_name = os.path.splitext(os.path.basename(args.image))[0]
    tmp = tempfile.mkdtemp(prefix=".fxlic-vectors-", dir=parent)
    try:
        man = write_case(model, pixels, tmp, opts, model_name=model_name, image_name=image_name)
        if os.path.isdir(out):
            os.rmdir(out)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if not args.quiet:
        n = len(man["files"])
        size = sum(f["bytes"] for f in man["files"].values())
        print(f"{out}: case of {args.image} ({pixels.shape[2]}x{pixels.shape[1]}) with model "
              f"{model_name} ({model_hash(model)[7:19]}): {len(layers)} layers dumped, {n} files, "
              f"{size:,} bytes (+ model/)")
    return 0


def register(sub):
    s = sub.add_parser("vectors", help="write golden per-layer test vectors for one image (for ports and RTL)")
    s.add_argument("--model", help="shipped model name or .fxq path (default: the shipped default)")
    s.add_argument("--image", required=True, help="input image (PNG/JPEG/PPM)")
    s.add_argument("--out", required=True, help="output directory (must not exist or be empty)")
    s.add_argument("--layers", default="all",
                   help="layers with per-layer tensors: all (default), none, or a comma list of names "
                        "or patterns, e.g. AT0,HS*")
    s.add_argument("--mem", default="all",
                   help="which tensors also get a $readmemh .mem file: all (default), none, or a comma "
                        "list of image,act,acc,weights,params,dec,entropy,tables")
    s.add_argument("--no-acc", action="store_true", help="do not write the int32 accumulators")
    s.add_argument("--no-inputs", action="store_true",
                   help="do not repeat a layer's input when it is another tensor of the case (alias in "
                        "the manifest)")
    s.add_argument("--no-dec-tables", action="store_true", help="do not write the per-layer decode tables (I1)")
    s.add_argument("--backend", choices=("numba", "reference"), default="numba")
    s.add_argument("-q", "--quiet", action="store_true")
    s.set_defaults(func=run)
