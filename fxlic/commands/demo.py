"""``fxlic demo``: the whole integer pipeline on a bundled image, offline."""
from __future__ import annotations

import os
import time

from .common import DEFAULT_MODEL, load_model_arg, png_bytes, read_image_arg, write_atomic

SAMPLE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "zoo", "sample.png")


def run(args) -> int:
    import numpy as np

    from ..codec import compress, decompress
    from ..io.modelfile import ZOO_DIR
    from ..metrics import ms_ssim, psnr

    model = load_model_arg(args.model)
    image = args.image or SAMPLE
    pixels = read_image_arg(image)
    name = args.model or DEFAULT_MODEL
    print(f"fxlic demo: model {name} ({model.arch.name}), image {os.path.basename(image)} "
          f"{pixels.shape[2]}x{pixels.shape[1]}")
    t0 = time.perf_counter()
    data, st = compress(model, pixels, args.backend)
    t1 = time.perf_counter()
    recon = decompress(model, data, args.backend)
    t2 = time.perf_counter()
    p_int = psnr(pixels, recon)
    print(f"  integer codec : {st.bytes_total} bytes, {st.bpp:.4f} bpp, PSNR {p_int:.3f} dB"
          + (f", MS-SSIM {ms_ssim(pixels, recon):.5f}" if ms_ssim(pixels, recon) is not None else ""))
    print(f"  entropy model : stream {8 * st.bytes_total} bits, estimate {st.estimated_bits:.0f} bits "
          f"({100 * (8 * st.bytes_total / max(st.estimated_bits, 1) - 1):+.2f}%)")
    print(f"  time          : encode {t1 - t0:.2f} s, decode {t2 - t1:.2f} s ({args.backend}; the first "
          f"run includes JIT compilation)")
    fpath = os.path.join(ZOO_DIR, f"{os.path.basename(name)}.float.safetensors")
    if os.path.exists(fpath):
        from ..eval.sim import float_engine, forward_codec
        from ..io.floatfile import load_float_model
        fm = load_float_model(fpath)
        rule = model.latents  # the integer model's latent rule (SPEC O5)
        frec, fbpp, _ = forward_codec(fm, pixels, engine=float_engine(), latents=rule)
        p_f = psnr(pixels, frec)
        print(f"  float model   : {fbpp:.4f} bpp (estimated, float32, {rule} latents), PSNR {p_f:.3f} dB; "
              f"integer - float = {p_int - p_f:+.3f} dB")
    else:
        print("  float model   : weights not shipped for this model; no float comparison")
    write_atomic(args.output, png_bytes(recon))
    print(f"  reconstruction written to {args.output}")
    assert recon.dtype == np.uint8
    return 0


def register(sub):
    s = sub.add_parser("demo", help="compress and decompress a bundled image with the default model")
    s.add_argument("--model", help="shipped model name or .fxq path")
    s.add_argument("--image", help="use this image instead of the bundled one")
    s.add_argument("-o", "--output", default="fxlic_demo_recon.png", help="reconstruction PNG")
    s.add_argument("--backend", choices=("numba", "reference"), default="numba")
    s.set_defaults(func=run, runs_kernels=True)  # fxlic.cli: Numba set-up without the BLAS probe
