"""``fxlic decompress IN.fxl -o OUT.png``: bitstream -> image, integer only."""
from __future__ import annotations

import time

from ..errors import CliError
from .common import (LayerProgress, find_model_for_stream, load_model_arg, png_bytes,
                     read_image_arg, read_input_file, write_atomic)


def run(args) -> int:
    from ..bitstream.container import BitstreamError
    from ..codec import decompress, read_header
    from ..metrics import ms_ssim, psnr

    data = read_input_file(args.input)
    try:
        hdr = read_header(data)
    except BitstreamError as e:
        raise CliError(f"{args.input}: {e}") from None
    model = load_model_arg(args.model) if args.model else find_model_for_stream(data)
    if model is None:
        raise CliError(f"{args.input}: made with model id {hdr.model_id.hex()}, which is not a shipped "
                       f"model; pass it with --model PATH.fxq")
    prog = LayerProgress(len(model.arch.decoder), hdr.height * hdr.width >= 2_000_000 and not args.quiet,
                         "decode")
    t0 = time.perf_counter()
    try:
        px = decompress(model, data, args.backend, hook=prog)
    except BitstreamError as e:
        raise CliError(f"{args.input}: {e}") from None
    finally:
        prog.close()
    dt = time.perf_counter() - t0
    write_atomic(args.output, png_bytes(px))
    if not args.quiet:
        bpp = 8.0 * len(data) / (hdr.height * hdr.width)
        msg = f"{args.input} -> {args.output}: {hdr.width}x{hdr.height}, {bpp:.4f} bpp, {dt:.2f} s"
        if args.original:
            orig = read_image_arg(args.original)
            if orig.shape != px.shape:
                raise CliError(f"{args.original}: size {orig.shape[2]}x{orig.shape[1]} differs from the "
                               f"stream's {hdr.width}x{hdr.height}")
            msg += f", PSNR {psnr(orig, px):.3f} dB"
            m = ms_ssim(orig, px)
            if m is not None:
                msg += f", MS-SSIM {m:.5f}"
        print(msg)
    return 0


def register(sub):
    s = sub.add_parser("decompress", help="decompress an .fxl bitstream to a PNG image")
    s.add_argument("input", help="input .fxl file")
    s.add_argument("-o", "--output", required=True, help="output PNG file")
    s.add_argument("--model", help="model name or .fxq path (default: the shipped model the "
                                   "stream names)")
    s.add_argument("--backend", choices=("numba", "reference"), default="numba")
    s.add_argument("--original", help="original image: print PSNR and MS-SSIM against it")
    s.add_argument("-q", "--quiet", action="store_true")
    s.set_defaults(func=run)
