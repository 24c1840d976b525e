"""``fxlic decompress IN.fxl -o OUT.png``: bitstream -> image, integer only.

Every input is checked before any work and before anything is written (rules
F1-F3 of fxlic.io.files): the stream's header against its file size and
``--max-pixels`` (container rules D1-D2), ``--original``'s size against the
header, and ``-o`` against the inputs.  A failure leaves no output file.
The pipeline is the Python API's (``fxlic.api.find_model``, ``Model.decode``).
"""
from __future__ import annotations

import time

from ..errors import CliError
from .common import (LayerProgress, check_input_arg, check_output_arg, find_model_for_stream,
                     load_codec_arg, read_image_arg, write_png_atomic)


def _read_stream(path: str, max_pixels: int):
    from ..bitstream.container import BitstreamError, read_stream

    check_input_arg(path, "an .fxl stream")
    try:
        return read_stream(path, max_pixels)
    except BitstreamError as e:
        raise CliError(f"{path}: {e}") from None
    except OSError as e:
        raise CliError(f"{path}: cannot read ({e.strerror})") from None


def run(args) -> int:
    from ..bitstream.container import BitstreamError
    from ..model.intmodel import ModelError

    if args.max_pixels < 1:
        raise CliError("--max-pixels must be at least 1")
    inputs = [("input", args.input), ("--original image", args.original), ("--model file", args.model)]
    check_output_arg(args.output, inputs)
    hdr, zs, ys = _read_stream(args.input, args.max_pixels)
    orig = None
    if args.original:
        orig = read_image_arg(args.original)
        if orig.shape[1:] != (hdr.height, hdr.width):
            raise CliError(f"{args.original}: size {orig.shape[2]}x{orig.shape[1]} differs from the "
                           f"stream's {hdr.width}x{hdr.height}")
    model = load_codec_arg(args.model) if args.model else find_model_for_stream(hdr)
    if model is None:
        raise CliError(f"{args.input}: made with model id {hdr.model_id.hex()}, which is not a shipped "
                       f"model; pass it with --model PATH.fxq")
    prog = LayerProgress(len(model.arch.decoder), hdr.height * hdr.width >= 2_000_000 and not args.quiet,
                         "decode")
    t0 = time.perf_counter()
    try:
        px = model.decode(hdr, zs, ys, args.backend, hook=prog, max_pixels=args.max_pixels)
    except (BitstreamError, ModelError) as e:
        raise CliError(f"{args.input}: {e}") from None
    finally:
        prog.close()
    dt = time.perf_counter() - t0
    write_png_atomic(args.output, px, inputs)
    if not args.quiet:
        n = 42 + 3 * len(hdr.mu) + len(zs) + len(ys)  # the whole file (docs/BITSTREAM.md)
        bpp = 8.0 * n / (hdr.height * hdr.width)
        msg = f"{args.input} -> {args.output}: {hdr.width}x{hdr.height}, {bpp:.4f} bpp, {dt:.2f} s"
        if orig is not None:
            from ..metrics import ms_ssim, psnr  # SciPy's import (0.7 s) only when --original asks

            msg += f", PSNR {psnr(orig, px):.3f} dB"
            m = ms_ssim(orig, px)
            if m is not None:
                msg += f", MS-SSIM {m:.5f}"
        print(msg)
    return 0


def register(sub):
    from ..bitstream.container import MAX_PIXELS

    s = sub.add_parser("decompress", help="decompress an .fxl bitstream to a PNG image")
    s.add_argument("input", help="input .fxl file")
    s.add_argument("-o", "--output", required=True, help="output PNG file (never one of the inputs)")
    s.add_argument("--model", help="model name or .fxq path (default: the shipped model the "
                                   "stream names)")
    s.add_argument("--backend", choices=("numba", "reference"), default="numba")
    s.add_argument("--original", help="original image: print PSNR and MS-SSIM against it")
    s.add_argument("--max-pixels", type=int, default=MAX_PIXELS, metavar="N",
                   help=f"refuse streams declaring more than N pixels, from the header, before any "
                        f"work (default {MAX_PIXELS:,} = 2^26, the format's limit; lower it for "
                        f"untrusted streams)")
    s.add_argument("-q", "--quiet", action="store_true")
    s.set_defaults(func=run, runs_kernels=True)  # fxlic.cli: Numba set-up without the BLAS probe
