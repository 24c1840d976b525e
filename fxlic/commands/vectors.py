"""``fxlic vectors --model M --image I --out DIR``: write a conformance case
(docs/VECTORS.md): every layer's integer input, accumulator and output, the
layer parameters, the entropy-coder side, the bitstream and the reconstruction,
as .npy and $readmemh .mem files with a manifest; on request also in the
layouts hardware flows read (``--layout hwc``, packed ``--mem-pack P``, raw
``--bin``, C headers ``--c-headers``: fxlic/vectors/layouts.py).

Before anything is computed the size of the case is known exactly (except the
bitstream, a few % at most): it is printed, and a case over ``--max-bytes``
(default 256 MB) is refused unless ``--force``.  ``--crop``, ``--layers``,
``--tensors``, ``--mem`` and the ``--no-*`` options make it smaller.

``--image DIR`` writes a suite, one case per image (fxlic/vectors/batch.py),
on a local process pool (``--jobs``) or a Dask cluster (``--scheduler``).

``fxlic vectors --check DIR``: manifest, sizes and sha256 of every file of a
case, model, unit or suite directory, and of the .fxq of an external-model case
(exit status 1 naming the first bad file).

``fxlic vectors --model M --model-only --out DIR``: only the model directory
(docs/VECTORS.md 3) of M, as the committed suite holds a shipped model's
(fxlic/vectors/external.py): what a port reads for an external-model case.
"""
from __future__ import annotations

import os
import re
import shutil
import sys
import tempfile

from ..errors import CliError

#: default --max-bytes: a case larger than this needs --force
DEFAULT_MAX_BYTES = 256 * 10 ** 6
_UNITS = {"": 1, "k": 10 ** 3, "m": 10 ** 6, "g": 10 ** 9, "t": 10 ** 12,
          "ki": 2 ** 10, "mi": 2 ** 20, "gi": 2 ** 30, "ti": 2 ** 40}


def parse_size(arg: str) -> int:
    """``123``, ``500k``, ``256M``, ``1G`` (powers of 1000), ``64Mi``/``64MiB`` (1024);
    a trailing ``B`` is allowed."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kKmMgGtT]i?)?[bB]?\s*", str(arg))
    if not m:
        raise CliError(f"--max-bytes: {arg!r} is not a size (e.g. 256M, 1G, 64MiB, 500000000)")
    v = float(m.group(1)) * _UNITS[(m.group(2) or "").lower()]
    if v < 1:
        raise CliError("--max-bytes must be at least 1 byte")
    return int(v)


def parse_crop(arg: str):
    """``WxH`` (centred) or ``WxH+X+Y`` (top-left corner at column X, row Y)
    -> (w, h, x or None, y or None)."""
    m = re.fullmatch(r"\s*(\d+)[xX](\d+)(?:\+(\d+)\+(\d+))?\s*", arg)
    if not m:
        raise CliError(f"--crop: {arg!r} is not WxH or WxH+X+Y (e.g. 256x256 or 256x128+64+32)")
    w, h = int(m.group(1)), int(m.group(2))
    if w < 1 or h < 1:
        raise CliError(f"--crop: {arg!r}: width and height must be at least 1")
    x = int(m.group(3)) if m.group(3) is not None else None
    y = int(m.group(4)) if m.group(4) is not None else None
    return w, h, x, y


def check_crop(crop, W: int, H: int, what: str = "the") -> None:
    """CliError unless the crop (w, h, x or None, y or None) fits a W x H image."""
    w, h, x, y = crop
    if w > W or h > H:
        raise CliError(f"--crop: {w}x{h} is larger than {what} {W}x{H} image")
    if x is not None and (x + w > W or y + h > H):
        raise CliError(f"--crop: {w}x{h}+{x}+{y} reaches outside {what} {W}x{H} image")


def crop_image(pixels, crop):
    """The (3, h, w) crop of (3, H, W) pixels and its manifest entry."""
    from ..vectors.batch import crop_pixels

    _, H, W = pixels.shape
    check_crop(crop, W, H)
    return crop_pixels(pixels, crop)


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


def _hw_args(args) -> dict:
    """--layout, --mem-pack, --bin, --c-headers -> Options fields (CliError if bad)."""
    from ..vectors.layouts import parse_layout, parse_pack

    try:
        layout = parse_layout(args.layout)
    except ValueError as e:
        raise CliError(f"--layout: {e}") from None
    try:
        pack = parse_pack(args.mem_pack)
    except ValueError as e:
        raise CliError(f"--mem-pack: {e}") from None
    if pack and args.mem == "none":
        raise CliError("--mem-pack packs the .mem files, and --mem none writes none (pick --mem categories)")
    return {"layout": layout, "mem_pack": pack, "bin": args.bin, "c_headers": args.c_headers}


class BarProgress:
    """tqdm bars on stderr for the two phases of write_case (running, writing)."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.bar = None

    def phase(self, name, total, unit):
        self.close()
        if self.enabled:
            from tqdm import tqdm
            self.bar = tqdm(total=total, desc=name, unit=unit, unit_scale=(unit == "B"),
                            unit_divisor=1000, file=sys.stderr, leave=False, mininterval=0.2)

    def update(self, n=1):
        if self.bar is not None:
            self.bar.update(n)

    def close(self):
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def options(args, model, H, W):
    """(writer.Options, dumped layer names) of the command line, for a model
    and an H x W image (CliError for a bad option)."""
    from ..vectors.writer import Options, parse_layers, parse_tensors, plan_case

    names = [s.name for s in model.arch.layers]
    try:
        layers = parse_layers(args.layers, names)
    except ValueError as e:
        raise CliError(f"--layers: {e}") from None
    opts = Options(layers=layers, mem=_mem_arg(args.mem), acc=not args.no_acc,
                   inputs=not args.no_inputs, dec_tables=not args.no_dec_tables, backend=args.backend,
                   **_hw_args(args))
    opts.coverage = bool(getattr(args, "coverage", False))  # coverage.json (fxlic/vectors/coverage.py)
    if args.tensors not in (None, "all"):
        every = []
        plan_case(model, H, W, opts, None, tensors=every)
        try:
            opts.tensors = parse_tensors(args.tensors, every)
        except ValueError as e:
            raise CliError(f"--tensors: {e}") from None
    return opts, layers


def model_name_of(args, model) -> str:
    """The model's name in the manifests: the .fxq file's stem, the shipped name or the architecture."""
    if args.model and args.model.endswith(".fxq"):
        return os.path.basename(args.model)[:-4]
    return args.model or model.arch.name


def run_check(args) -> int:
    from ..vectors.check import IntegrityError, check_tree

    root = args.check
    try:
        s = check_tree(root, zoo=args.zoo)
    except IntegrityError as e:
        raise CliError(str(e)) from None
    if not args.quiet:
        print(f"{root}: OK: {s.manifests} manifest{'s' if s.manifests != 1 else ''}, {s.files} files, "
              f"{s.bytes:,} bytes; every size and sha256 matches")
    return 0


def check_out(out: str, what: str = "case") -> None:
    """CliError unless ``out`` does not exist or is an empty directory."""
    if os.path.exists(out) and (not os.path.isdir(out) or os.listdir(out)):
        raise CliError(f"{out}: exists and is not an empty directory (vectors are written to a new "
                       f"directory so that no stale file is left in a {what})")


def temp_dir_for(out: str) -> str:
    """A temporary directory next to ``out`` (missing parents are created); the
    output is written there and swapped in by ``swap_in``."""
    parent = os.path.dirname(os.path.abspath(out))
    try:
        os.makedirs(parent, exist_ok=True)
        return tempfile.mkdtemp(prefix=".fxlic-vectors-", dir=parent)
    except OSError as e:
        raise CliError(f"{out}: cannot create the output directory ({e.strerror})") from None


def swap_in(tmp: str, out: str) -> None:
    if os.path.isdir(out):
        os.rmdir(out)
    os.replace(tmp, out)


def run_model_only(args) -> int:
    """``--model-only``: the model directory of --model, written as the suite writes
    a shipped model's (external.write_model_dir_of)."""
    from ..io.modelfile import model_hash
    from ..vectors.external import write_model_dir_of
    from ..vectors.writer import Options
    from .common import load_codec_arg

    for flag, val in (("--image", args.image), ("--crop", args.crop), ("--check", args.check),
                      ("--coverage", getattr(args, "coverage", False))):
        if val:
            raise CliError(f"--model-only writes a model directory and takes no {flag}")
    if not args.out:
        raise CliError("--model-only needs --out DIR")
    check_out(args.out, "model directory")
    opts = Options(mem=_mem_arg(args.mem), **_hw_args(args))
    codec = load_codec_arg(args.model)
    tmp = temp_dir_for(args.out)
    try:
        man = write_model_dir_of(codec.int_model, codec.path, tmp, codec.name, opts)
        swap_in(tmp, args.out)
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise CliError(f"{args.out}: cannot write the model directory ({e.strerror or e})") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if not args.quiet:
        size = sum(f["bytes"] for f in man["files"].values())
        print(f"{args.out}: model directory of {codec.name} ({model_hash(codec.int_model)[7:19]}, "
              f"{man['source']}): {len(man['files'])} files, {size:,} bytes")
    return 0


def run(args) -> int:
    if args.mem is None:  # a model directory alone: the suite's (.npy, .mem of the parameters)
        args.mem = "params" if args.model_only else "all"
    if getattr(args, "coverage_of", None) is not None:  # functional coverage: fxlic/vectors/coverage.py
        from ..vectors.coverage import run_coverage_of
        return run_coverage_of(args)
    if args.model_only:
        return run_model_only(args)
    if args.check is not None:
        if args.image or args.out:
            raise CliError("--check DIR takes no --image / --out")
        return run_check(args)
    if not args.image or not args.out:
        raise CliError("--image and --out are required (or --check DIR, or --model-only --out DIR)")
    from ..io.modelfile import model_hash
    from ..vectors.writer import plan_case, write_case
    from .common import load_model_arg, read_image_arg

    out = args.out
    check_out(out)
    crop = parse_crop(args.crop) if args.crop else None
    max_bytes = parse_size(args.max_bytes) if args.max_bytes is not None else DEFAULT_MAX_BYTES
    if os.path.isdir(args.image):  # one case per image: fxlic/vectors/batch.py
        from .vectors_folder import run_folder
        return run_folder(args, out, crop, max_bytes)
    pixels = read_image_arg(args.image)
    image_meta = None
    if crop:
        pixels, image_meta = crop_image(pixels, crop)
    model = load_model_arg(args.model)
    _, H, W = pixels.shape
    opts, layers = options(args, model, H, W)
    plan = plan_case(model, H, W, opts, None)
    total = sum(plan.values())
    mbytes = sum(v for k, v in plan.items() if k.startswith("model/"))
    if not args.quiet:
        print(f"{out}: estimated {total:,} bytes in {len(plan)} files ({total - mbytes:,} case + "
              f"{mbytes:,} model/) for {W}x{H}" + (f" (crop of {args.image})" if crop else ""), flush=True)
    if total > max_bytes and not args.force:
        raise CliError(f"the case would be about {total:,} bytes, over --max-bytes {max_bytes:,}: write less "
                       f"(--crop WxH, --layers, --tensors, --mem none, --no-acc, --no-dec-tables, "
                       f"--no-inputs) or pass --force")
    model_name = model_name_of(args, model)
    image_name = os.path.splitext(os.path.basename(args.image))[0]
    tmp = temp_dir_for(out)
    show = args.progress if args.progress is not None else (not args.quiet and sys.stderr.isatty())
    bar = BarProgress(show)
    try:
        man = write_case(model, pixels, tmp, opts, model_name=model_name, image_name=image_name,
                         image_meta=image_meta, progress=bar)
        bar.close()
        swap_in(tmp, out)
    except OSError as e:
        bar.close()
        shutil.rmtree(tmp, ignore_errors=True)
        raise CliError(f"{out}: cannot write the case ({e.strerror or e})") from None
    except BaseException:
        bar.close()
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if not args.quiet:
        n = len(man["files"])
        size = sum(f["bytes"] for f in man["files"].values())
        print(f"{out}: case of {args.image} ({W}x{H}{', cropped' if crop else ''}) with model "
              f"{model_name} ({model_hash(model)[7:19]}): {len(layers)} layers dumped, {n} files, "
              f"{size:,} bytes (+ model/)")
    if opts.coverage:
        from ..vectors.coverage import report_written_case
        return report_written_case(args, out)
    return 0


def register(sub):
    s = sub.add_parser(
        "vectors", help="write golden per-layer test vectors for one image (for ports and RTL)",
        description="Write a conformance case (docs/VECTORS.md 2) for one model and image, or check "
                    "the integrity of a vectors directory (--check). The size is estimated and printed "
                    "before anything is written; a case over --max-bytes is refused unless --force.")
    s.add_argument("--model", help="shipped model name or .fxq path (default: the shipped default)")
    s.add_argument("--image", help="input image (PNG/JPEG/PPM), or a directory of images: a suite with one case "
                                   "per image (cases/<model>/<image>/, models/<model>/, a suite manifest); "
                                   "required unless --check")
    s.add_argument("--out", help="output directory (must not exist or be empty; missing parent "
                                 "directories are created); required unless --check")
    s.add_argument("--check", metavar="DIR",
                   help="only check DIR (a case, model, unit or suite directory): manifest, sizes, sha256 "
                        "of every file, tensor headers, no unlisted file, the .fxq of an external-model case; "
                        "exit 1 naming the first bad file")
    s.add_argument("--model-only", action="store_true",
                   help="write only the model directory of --model to --out (docs/VECTORS.md 3), as the "
                        "committed suite holds a shipped model's: .npy arrays, .mem of the parameters (other "
                        "--mem, --layout, --mem-pack, --bin, --c-headers apply); for external-model cases")
    s.add_argument("--zoo", metavar="DIR",
                   help="with --check: where the .fxq of an external-model case is looked up (default: "
                        "fxlic/zoo of this fxlic)")
    s.add_argument("--crop", metavar="WxH[+X+Y]",
                   help="use a W x H crop of the image: centred, or with its top-left corner at column X, "
                        "row Y (recorded in the manifest's image.crop)")
    s.add_argument("--layers", default="all",
                   help="layers with per-layer tensors: all (default), none, or a comma list of names "
                        "or patterns, e.g. AT0,HS*")
    s.add_argument("--tensors", default="all", metavar="LIST",
                   help="which case tensors to write: all (default) or a comma list of names or patterns, "
                        "matched against the full name (layers/HS0/acc, entropy/y_sym, layers/ST*/out) "
                        "or its last part (out, acc, in, dec_table, y, z, mu, x, image, recon, y_sym...); "
                        "stream.fxl, the rANS substreams, the PNGs and case.txt are always written")
    s.add_argument("--mem", default=None,
                   help="which tensors also get a $readmemh .mem file: all (default; with --model-only: "
                        "params), none, or a comma list of image,act,acc,weights,params,dec,entropy,tables")
    s.add_argument("--layout", default="chw", metavar="chw|hwc",
                   help="element order of the .mem, packed .mem, .bin and C-header files: chw (default, the "
                        ".npy order) or hwc (channels last: C,H,W tensors as H,W,C, weights O,C,KY,KX as "
                        "O,KY,KX,C); the .npy files are always the manifest's C order")
    s.add_argument("--mem-pack", metavar="P[,P...]", default=None,
                   help="also write NAME.pP.mem next to every .mem: $readmemh words of P elements (e.g. 16 x "
                        "8-bit = 128-bit bus words), element 0 in the least significant bits, the last word "
                        "zero-padded (docs/VECTORS.md 1)")
    s.add_argument("--bin", action="store_true",
                   help="also write NAME.bin of every tensor: raw little-endian values of the stored dtype, "
                        "no header, in the --layout order")
    s.add_argument("--c-headers", action="store_true",
                   help="also write the model directory's C headers weights/<L>.h, mean_reduction.h, "
                        "entropy.h and fxlic_model.h (hls4ml style: static const arrays with shape macros)")
    s.add_argument("--no-acc", action="store_true", help="do not write the int32 accumulators")
    s.add_argument("--no-inputs", action="store_true",
                   help="do not repeat a layer's input when it is another tensor of the case (alias in "
                        "the manifest)")
    s.add_argument("--no-dec-tables", action="store_true", help="do not write the per-layer decode tables (I1)")
    s.add_argument("--max-bytes", metavar="SIZE", default=None,
                   help="refuse a case (with --image DIR: a suite) estimated larger than SIZE "
                        "(default 256M = 256,000,000 bytes; "
                        "k/M/G are powers of 1000, Ki/Mi/Gi of 1024)")
    s.add_argument("--force", action="store_true", help="write the case even if it is over --max-bytes")
    g = s.add_mutually_exclusive_group()
    g.add_argument("--progress", dest="progress", action="store_true", default=None,
                   help="progress bars on stderr (default: when stderr is a terminal)")
    g.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")
    s.add_argument("--backend", choices=("numba", "reference"), default="numba")
    from ..parallel import add_arguments as _parallel_arguments
    _parallel_arguments(s, "cases of --image DIR")
    s.add_argument("-q", "--quiet", action="store_true")
    from ..vectors.coverage import add_arguments as _coverage_arguments
    _coverage_arguments(s)
    s.set_defaults(func=run, runs_kernels=True)  # fxlic.cli: Numba set-up without the BLAS probe
