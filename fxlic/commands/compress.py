"""``fxlic compress IN -o OUT.fxl``: image -> bitstream through the integer pipeline.

``-o`` must not name the input image or the model file (rule F2 of
fxlic.io.files); the output appears whole or not at all (F3).  The pipeline
is the Python API's (``fxlic.api.Model.encode``).
"""
from __future__ import annotations

import time

from ..errors import CliError
from .common import LayerProgress, check_output_arg, load_codec_arg, read_image_arg, write_atomic

LARGE = 2_000_000  # pixels from which a progress bar is shown


def run(args) -> int:
    from ..bitstream.container import BitstreamError
    from ..model.intmodel import ModelError

    inputs = [("input", args.input), ("--model file", args.model)]
    check_output_arg(args.output, inputs)
    pixels = read_image_arg(args.input)
    model = load_codec_arg(args.model)
    n_layers = len(model.arch.encoder)
    prog = LayerProgress(n_layers, pixels[0].size >= LARGE and not args.quiet, "encode")
    t0 = time.perf_counter()
    try:
        data, st = model.encode(pixels, args.backend, hook=prog)
    except (BitstreamError, ModelError) as e:
        raise CliError(str(e)) from None
    finally:
        prog.close()
    dt = time.perf_counter() - t0
    write_atomic(args.output, data, inputs)
    if not args.quiet:
        print(f"{args.input}: {pixels.shape[2]}x{pixels.shape[1]} -> {args.output}: "
              f"{st.bytes_total} bytes, {st.bpp:.4f} bpp (model {model.arch.name}, "
              f"{args.backend}, {dt:.2f} s)")
    return 0


def register(sub):
    s = sub.add_parser("compress", help="compress a PNG/JPEG/PPM image to an .fxl bitstream")
    s.add_argument("input", help="input image (8-bit RGB; grey is replicated, alpha dropped)")
    s.add_argument("-o", "--output", required=True, help="output .fxl file (never the input)")
    s.add_argument("--model", help="shipped model name or .fxq path (default: the shipped default)")
    s.add_argument("--backend", choices=("numba", "reference"), default="numba")
    s.add_argument("-q", "--quiet", action="store_true")
    s.set_defaults(func=run, runs_kernels=True)  # fxlic.cli: Numba set-up without the BLAS probe
