"""``fxlic quantize``: float weights + calibration images -> a .fxq integer model
(post-training quantization, paper Sections III-IV).

Calibration images are the first ``--n-calib`` images of ``--calib`` in name
order; each is centre-cropped to at most ``--crop`` x ``--crop`` pixels (default
512: the float forward of a full-size photo is slow, and the channel maxima of
a 512 x 512 crop are representative) and padded to the architecture's pad
multiple by edge replication, exactly as the codec pads its input.

Before calibration (docs/MODEL_FORMAT.md 7): entropy parameters from
``--entropy FILE`` when the weights carry none (ONNX), refused when neither
has them; the I/O check (fxlic.io.iocheck) of ``--check-io FILE`` and of a
probe inside the weights file.

Bad input stops the command with one line and writes nothing: weights outside
the value rules (V1, docs/MODEL_FORMAT.md part 1), calibration maxima that are
NaN, infinite or outside [2^-48, 2^48] (Q1), a finished model that fails the
loader's model check (fxlic.io.modelcheck), or ``--out`` naming an input (F2).
"""
from __future__ import annotations

import os
import sys

import numpy as np

from ..errors import CliError
from .common import check_output_arg

WEIGHT_SCHEMES = ("cw-nlq", "cw-lq", "lw-nlq", "lw-lq", "lloyd")


def _load_calibration(args, arch):
    from ..io.images import ImageError, center_crop, list_images, read_image
    from ..model.int_forward import pad_to_multiple

    try:
        paths = list_images(args.calib, args.n_calib)
    except ImageError as e:
        raise CliError(f"calibration images: {e}") from None
    if len(paths) < args.n_calib and not args.quiet:
        print(f"note: {args.calib} has {len(paths)} image(s), fewer than --n-calib {args.n_calib}",
              file=sys.stderr)
    images, sizes = [], []
    for p in paths:
        try:
            px = read_image(p)
        except ImageError as e:
            raise CliError(str(e)) from None
        px = center_crop(px, args.crop)
        sizes.append(list(px.shape[1:]))
        images.append(pad_to_multiple(px, arch.pad_multiple))
    return paths, images, sizes


#: Q1: live calibration maxima outside [2^-48, 2^48] mean weights fxlic cannot
#: represent with 8-bit codes and int32 biases (exponents beyond SPEC ranges)
CAL_MIN, CAL_MAX = 2.0 ** -48, 2.0 ** 48


def check_calibration(cal) -> None:
    """Q1: every layer's calibration maxima are finite (NaN is an error, not a
    dead channel) and, where non-zero, inside [CAL_MIN, CAL_MAX]."""
    for name, m in cal.maxabs.items():
        m = np.asarray(m, np.float64)
        if not np.all(np.isfinite(m)):
            raise CliError(f"calibration: layer {name} produced NaN or infinity on the calibration "
                           f"images (weights out of range?)")
        live = m[m > 0]
        if live.size and (live.min() < CAL_MIN or live.max() > CAL_MAX):
            v = live.min() if live.min() < CAL_MIN else live.max()
            raise CliError(f"calibration: layer {name} outputs reach {v:.3g}, outside the "
                           f"[2^-48, 2^48] fxlic quantizes (weights out of range?)")
    for what in ("y_means", "y_maxabs", "y_maxdev", "x_means"):
        if not np.all(np.isfinite(np.asarray(getattr(cal, what), np.float64))):
            raise CliError(f"calibration: {what} is NaN or infinite (weights out of range?)")


def clip_fractions(fm, im, images) -> dict:
    """Fraction of calibration outputs of each layer that the integer model
    saturates (a second float forward of every image)."""
    from ..model.float_model import float_forward
    from ..model.int_forward import image_mu
    from ..quant.codebook import act_lq_signed, act_nlq

    total, clipped = {}, {}
    for img in images:
        mu = image_mu(im, img)
        t = float_forward(fm, np.asarray(img, np.float64) / 255.0)
        for spec in fm.arch.layers:
            v = t[spec.name]
            L = im.layers[spec.name]
            kind = L.out_kind
            if kind == 0:
                top = np.array([act_nlq(int(m)).max_level for m in L.mux], np.float64)
                hi = np.ldexp(top, L.out_exp)[:, None, None]
                c = v > hi
            elif kind == 1:
                cb = act_lq_signed()
                e = L.out_exp[:, None, None]
                c = (v > np.ldexp(float(cb.max_level), e)) | (v < np.ldexp(float(cb.min_level), e))
            elif kind == 2:
                r = np.floor(v + 0.5)
                if spec.out == "y":
                    r = r - mu[:, None, None]
                c = (r < -128) | (r > 127)
            else:
                p = np.floor(v * 255.0 + 0.5)
                c = (p < 0) | (p > 255)
            total[spec.name] = total.get(spec.name, 0) + v.size
            clipped[spec.name] = clipped.get(spec.name, 0) + int(np.count_nonzero(c))
    return {n: clipped[n] / total[n] for n in total}


def load_checked_weights(args):
    """Weights (+ --entropy), the bottleneck required and every I/O probe
    checked, all before calibration -> (FloatModel, io_check meta or None)."""
    from ..io.floatfile import WeightsError, add_entropy, load_weights, require_bottleneck
    from ..io.iocheck import check_io, read_probe

    try:
        fm = load_weights(args.weights, args.format, arch_kind=args.arch, mapping=args.mapping)
        if args.entropy:
            fm = add_entropy(fm, args.entropy)
        require_bottleneck(fm, args.weights)
        probes = [(args.weights, fm.probe)] if fm.probe else []
        if args.check_io:
            probes.append((args.check_io, read_probe(args.check_io)))
        done = {}
        for where, probe in probes:
            rep = check_io(fm, probe, where)
            done[os.path.basename(where)] = {k: float(f"{v:.3g}") for k, v in rep.items()}
            if not args.quiet and fm.arch.kind == "hyperprior" and "z" not in rep:
                print(f"note: the probe {where} has no z / gaussian_params: h_a and h_s are not "
                      f"checked", file=sys.stderr)
            if not args.quiet:
                print(f"I/O check {where}: {', '.join(rep)} agree with fxlic's float forward "
                      f"(largest difference {max(rep.values()):.2g} of the tensor's max)", file=sys.stderr)
    except WeightsError as e:
        raise CliError(str(e)) from None
    return fm, done or None


def _calibrate_one(img, fm, forward):
    """Executor task: the Calibration of one image."""
    from ..model.build import calibrate
    with np.errstate(over="ignore", invalid="ignore"):  # Q1 reports it as one line
        return calibrate(fm, [img], forward=forward)


def _calibrate(args, fm, images, progress):
    """build.calibrate over ``images``, in this process (--jobs 1, the
    default) or one image per task on a pool / Dask cluster, merged in image
    order: maxima are exact, so the result is the same either way."""
    import dataclasses

    from ..model.build import Calibration, calibrate
    from ..parallel import SCHEDULER_ENV, make_executor

    if (args.jobs or 1) == 1 and not (args.scheduler or os.environ.get(SCHEDULER_ENV)):
        with np.errstate(over="ignore", invalid="ignore"):
            return calibrate(fm, images, progress=progress, forward=args.calib_forward)
    with make_executor(args.jobs, args.scheduler, len(images)) as ex:
        parts = ex.map(_calibrate_one, images, progress, fm=fm, forward=args.calib_forward)
    cal = Calibration()
    for p in parts:  # per-layer maxima: the maximum; per-image lists: concatenated in image order
        for f in dataclasses.fields(Calibration):
            mine, theirs = getattr(cal, f.name), getattr(p, f.name)
            if isinstance(mine, list):
                mine += theirs
            else:
                for name, m in theirs.items():
                    mine[name] = np.maximum(mine.get(name, 0), m)
    return cal


def resolve_latents(choice: str, fm) -> str:
    """--latents auto: offset latents (SPEC O5, CompressAI's y_hat = mean + round(y - mean))
    for every model.  Measured (docs/RESULTS.md, "Latent semantics"): CompressAI-style
    weights need it to match CompressAI's own codec, and fxlic's own hp5-mse-q2 gains
    with it too (6 Kodak images: -2.0 % bpp at -0.03 dB).  ``integer`` keeps O3."""
    return "offset" if choice == "auto" else choice


def run(args) -> int:
    from .. import __version__
    from ..io.modelcheck import check_model
    from ..io.modelfile import ModelFileError, format_layer_table, layer_rows, save_model
    from ..model.build import build_int_model
    from ..model.intmodel import ModelError
    from ..parallel import check_jobs

    check_jobs(args.jobs)
    if args.n_calib < 1:
        raise CliError("--n-calib must be at least 1")
    if args.crop < 0:
        raise CliError("--crop must be >= 0 (0: no crop)")
    out = args.out
    if os.path.isdir(out):
        raise CliError(f"--out {out} is a directory; give a file name such as model.fxq")
    out_dir = os.path.dirname(os.path.abspath(out))
    if not os.path.isdir(out_dir):
        raise CliError(f"--out: directory {out_dir} does not exist")
    check_output_arg(out, [("--weights file", args.weights), ("--mapping file", args.mapping),
                           ("--entropy file", args.entropy), ("--check-io file", args.check_io)])
    fm, io_check = load_checked_weights(args)
    arch = fm.arch
    paths, images, sizes = _load_calibration(args, arch)
    check_output_arg(out, [("calibration image", p) for p in paths])
    if not args.quiet:
        print(f"{os.path.basename(args.weights)}: {arch.name} ({fm.meta.get('format')}), "
              f"calibrating on {len(images)} image(s) of {args.calib}", file=sys.stderr)
    from tqdm import tqdm
    with tqdm(total=len(images), desc="calibration", unit="img", file=sys.stderr,
              disable=True if args.quiet else None) as bar:
        cal = _calibrate(args, fm, images, bar.update)
    redone = [(os.path.basename(p), f) for p, f in zip(paths, cal.forwards) if f.startswith("reference (")]
    if redone and not args.quiet:
        print(f"note: {len(redone)} calibration image(s) re-run with the reference forward, the fast "
              f"one not certain of a decision: " + "; ".join(f"{p} {f[10:]}" for p, f in redone),
              file=sys.stderr)
    check_calibration(cal)
    try:
        im = build_int_model(fm, cal, weight_scheme=args.weight_quant, act_quant=args.act_quant,
                             mean_reduction=not args.no_mean_reduction, relu_headroom=args.relu_headroom,
                             latents=resolve_latents(args.latents, fm), ha_grid=args.ha_input == "grid")
    except (ModelError, ValueError, OverflowError, FloatingPointError) as e:
        raise CliError(f"quantization failed: {e}") from None
    im.meta.update({
        "mean_reduction": not args.no_mean_reduction,
        "float_model": {k: fm.meta.get(k) for k in ("source", "format", "sha256", "lambda", "provenance")},
        "calibration": {"images": [os.path.basename(p) for p in paths], "crop": args.crop,
                        "sizes": sizes, "pad_multiple": arch.pad_multiple},
        "created_by": f"fxlic {__version__}",
    })
    if io_check:
        im.meta["io_check"] = io_check
    try:
        check_model(im)  # the loader's pass: never write a model `fxlic` would refuse
    except ModelError as e:
        raise CliError(f"quantization failed: {e}") from None
    clip = None
    if args.clip_stats:
        clip = clip_fractions(fm, im, images)
    try:
        digest = save_model(im, out)
    except (OSError, ModelFileError) as e:
        raise CliError(f"cannot write {out}: {e}") from None
    rows = layer_rows(im)
    extra = ()
    if clip is not None:
        for r in rows:
            r["clipped"] = clip[r["name"]]
        extra = (("clipped", "clipped"),)
    print(format_layer_table(rows, extra))
    n_mr = int(np.sum(im.mr_mask))
    print(f"\nweights {args.weight_quant}, activations {args.act_quant}, mean-reduced channels of y: "
          f"{n_mr}/{arch.M}" + (f", input-exponent spread limited: {im.meta['spread_limits']}"
                                 if im.meta.get("spread_limits") else ""))
    print(f"wrote {out} ({os.path.getsize(out):,} bytes), content hash {digest}")
    return 0


def register(sub):
    from ..quant.activations import RELU_HEADROOM_BITS, RELU_HEADROOM_MAX

    s = sub.add_parser("quantize", help="float weights + calibration images -> .fxq integer model",
                       description="Float weights + calibration images -> a .fxq integer model "
                                   "(post-training quantization, paper Sections III-IV). "
                                   "Calibration images are the first --n-calib images of --calib "
                                   "in name order, centre-cropped to --crop and padded to the "
                                   "architecture's pad multiple.")
    s.add_argument("--weights", required=True, metavar="W",
                   help="float weights: .safetensors / .npz (native or CompressAI state dict) or .onnx")
    s.add_argument("--calib", required=True, metavar="DIR", help="directory of calibration images")
    s.add_argument("--out", required=True, metavar="MODEL.fxq", help="output model file")
    s.add_argument("--weight-quant", default="cw-nlq", choices=WEIGHT_SCHEMES,
                   help="weight quantization (default cw-nlq, channel-wise non-linear)")
    s.add_argument("--act-quant", default="nlq-mux", choices=("nlq-mux", "lq"),
                   help="activation quantization of the main path (default nlq-mux)")
    s.add_argument("--bits", type=int, default=8, choices=(8,), help="bit width (8 only)")
    s.add_argument("--n-calib", type=int, default=9, metavar="N",
                   help="number of calibration images, first in name order (default 9)")
    s.add_argument("--crop", type=int, default=512, metavar="PX",
                   help="centre-crop calibration images to at most PX x PX (default 512, 0: no crop)")
    s.add_argument("--format", default="auto", choices=("auto", "native", "compressai", "onnx"),
                   help="weights format (default: from the file)")
    s.add_argument("--arch", default="auto", choices=("auto", "hyperprior5", "factorized"),
                   help="architecture kind when the weights carry no architecture JSON")
    s.add_argument("--mapping", default=None, metavar="JSON",
                   help="CompressAI key map {\"module.prefix\": \"LAYER\" or null}")
    s.add_argument("--entropy", default=None, metavar="FILE",
                   help="entropy-bottleneck parameters (entropy_bottleneck.* tensors, .safetensors / "
                        ".npz) for weights that carry none, e.g. ONNX exports")
    s.add_argument("--check-io", default=None, metavar="FILE",
                   help="I/O probe (.npz: the trainer's x, y, x_hat, optionally z, gaussian_params) "
                        "compared with fxlic's float forward before calibration; a probe inside the "
                        "weights (fxlic.probe.*) is always checked (docs/MODEL_FORMAT.md 7.4)")
    s.add_argument("--latents", default="auto", choices=("auto", "integer", "offset"),
                   help="latent semantics: integer (y_hat = round(y), SPEC O3) or offset (CompressAI's "
                        "y_hat = mean + round(y - mean), z around the bottleneck medians, SPEC O5); "
                        "default auto = offset, measured to be the better choice for every model tried")
    s.add_argument("--ha-input", default="grid", choices=("grid", "integer"),
                   help="what HA0 reads in an offset-latent hyperprior: y on the offset grid 2^-G "
                        "(SPEC O6, CompressAI's h_a on the unrounded y; default) or O3's integer y "
                        "(spec 1.3's encoder)")
    s.add_argument("--no-mean-reduction", action="store_true", help="disable mean-reduced channels of y")
    s.add_argument("--relu-headroom", type=int, default=RELU_HEADROOM_BITS,
                   choices=range(0, RELU_HEADROOM_MAX + 1), metavar="BITS",
                   help=f"bits of range above the calibrated maximum for ReLU activations, 0-{RELU_HEADROOM_MAX} "
                        f"(default {RELU_HEADROOM_BITS}: 2x the largest calibration value)")
    s.add_argument("--calib-forward", default="fast", choices=("fast", "reference"),
                   help="calibration float forward: fast (float64 GEMM convolutions, every build decision "
                        "checked against an error margin, the reference forward for an image where one is "
                        "not certain) or reference (float_model.float_forward); the same model either way "
                        "(docs/CALIBRATION.md)")
    s.add_argument("--clip-stats", action="store_true",
                   help="report the clipped fraction of calibration outputs (a second float pass)")
    from ..parallel import add_arguments as _parallel_arguments
    _parallel_arguments(s, "calibration", jobs=1)
    s.add_argument("-q", "--quiet", action="store_true", help="no progress bar or notes")
    s.set_defaults(func=run, runs_kernels=True)  # fxlic.cli: Numba set-up without the BLAS probe
