#!/usr/bin/env python
"""One-command speed benchmark of fxlic against PyTorch and ONNX Runtime (issue 10).

    python tools/bench.py [--reference] [--repeat 3] [--no-torch] [--no-onnx]
                          [--no-startup] [--json out.json]

Workload: a 768 x 512 Kodak image (../shared/data/kodak/kodim23.png, else the
bundled fxlic/zoo/sample.png) through hyperprior-5 with N = M = 128 (a zoo
model if one is shipped, else He-initialised random weights calibrated on a
crop of the image; speed does not depend on the weight values).

Measured in one run (so ratios are meaningful on a shared machine):
  * encoder (g_a + h_a + h_s) and decoder (h_s + g_s) time and GMAC/s for
    fxlic numba, fxlic reference (--reference; slow), PyTorch fp32 of the
    same float network (2 threads), ONNX Runtime fp32 and ONNX Runtime int8
    (static QDQ quantization, per-channel weights) of the same network;
  * per-layer breakdown of fxlic numba;
  * rANS encode/decode Msym/s (the symbol stream of tools/bench_rans.py);
  * first-call JIT compile time (fresh process, empty Numba cache) and cached
    start-up time (fresh process, warm cache);
  * peak RSS.
Times are medians of --repeat interleaved rounds (every implementation's
encode and decode once per round) and ratios the medians of the per-round
ratios, so a load change on a shared machine hits every row alike; JIT
compilation and warm-up are excluded; every timed call follows --gap idle
seconds (the previous row's idle threads may spin: ONNX Runtime's pool does
by default, and on 2 cores a spinning thread halves the next row's speed).  "fxlic numba, 1 thread" is the same
run with numba.set_num_threads(1) (thread scaling).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..")
sys.path.insert(0, ROOT)
sys.path.insert(0, HERE)

THREADS = 2


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def best_time(fn, repeat):
    best, out = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


# ---- workload ---------------------------------------------------------------

def load_image():
    from PIL import Image
    p = os.path.join(ROOT, "..", "shared", "data", "kodak", "kodim23.png")
    if not os.path.exists(p):
        p = os.path.join(ROOT, "fxlic", "zoo", "sample.png")
    img = np.asarray(Image.open(p).convert("RGB")).transpose(2, 0, 1)
    if img.shape[1] > img.shape[2]:
        img = img.transpose(0, 2, 1)
    return os.path.normpath(p), np.ascontiguousarray(img[:, :512, :768])


def load_models(img):
    """(IntModel, FloatModel or None, description)."""
    from fxlic.io.modelfile import list_zoo, load_model
    from fxlic.model.arch import hyperprior5
    from fxlic.model.build import build_int_model, calibrate
    from fxlic.model.float_model import random_float_model
    for entry in list_zoo():
        path = entry if isinstance(entry, str) else getattr(entry, "path", None)
        try:
            im = load_model(path)
        except Exception:
            continue
        if im.arch.kind == "hyperprior" and im.arch.N == 128 and im.arch.M == 128:
            # the float twin of a zoo model is only needed for torch/ORT timing:
            # random weights of the same shapes time identically
            return im, random_float_model(im.arch, 11), f"zoo model {path}"
    fm = random_float_model(hyperprior5(128), 11)
    im = build_int_model(fm, calibrate(fm, [img[:, :128, :128]]))
    return im, fm, "random hyperprior-5 N=M=128 (seed 11), calibrated on a 128x128 crop"


def layer_macs(arch, h, w):
    """{layer: (MACs, input (h, w))} at image size h x w."""
    shapes = {"x": (h, w)}
    out = {}
    for l in arch.layers:
        src = shapes[l.src]
        out[l.name] = (l.macs(*src), src)
        shapes[l.name] = l.out_hw(*src)
        if l.out in ("y", "z"):
            shapes[l.out] = shapes[l.out + "_hat"] = shapes[l.name]
    return out


# ---- fxlic ------------------------------------------------------------------

def per_layer(model, img, repeat):
    """{layer: median seconds} of fxlic numba over ``repeat`` encode + decode runs."""
    from fxlic.model.int_forward import encode, synthesize
    times = {}

    class Hook:
        wants_acc = False
        wants_codes = False  # timing only: the layers run as without a hook (operands handed over)

        def __init__(self):
            self.t = time.perf_counter()

        def __call__(self, name, inp, acc, out):
            now = time.perf_counter()
            times.setdefault(name, []).append(now - self.t)
            self.t = now

    for _ in range(1 + repeat):  # the first run warms up
        e = encode(model, img, "numba", Hook())
        synthesize(model, e.y, e.mu, "numba", Hook())
    return {n: float(np.median(t[1:])) for n, t in times.items()}


# ---- PyTorch / ONNX -----------------------------------------------------------

def torch_modules(fm):
    import torch
    from torch import nn

    def chain(prefix):
        mods = []
        for l in fm.arch.layers:
            if not l.name.startswith(prefix):
                continue
            if l.op == "conv":
                m = nn.Conv2d(l.cin, l.cout, l.k, l.stride, l.k // 2)
                m.weight.data = torch.tensor(fm.weights[l.name], dtype=torch.float32)
            else:
                m = nn.ConvTranspose2d(l.cin, l.cout, l.k, 2, l.k // 2, output_padding=1)
                m.weight.data = torch.tensor(fm.weights[l.name].transpose(1, 0, 2, 3).copy(),
                                             dtype=torch.float32)
            m.bias.data = torch.tensor(fm.biases[l.name], dtype=torch.float32)
            mods.append(m)
            if l.act == "relu":
                mods.append(nn.ReLU())
            elif l.act == "leaky":
                mods.append(nn.LeakyReLU(0.125))
        return nn.Sequential(*mods)

    class Encoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.g_a, self.h_a, self.h_s = chain("AT"), chain("HA"), chain("HS")

        def forward(self, x):
            y = torch.round(self.g_a(x))
            z = torch.round(self.h_a(y))
            return y, z, self.h_s(z)

    class Decoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.h_s, self.g_s = chain("HS"), chain("ST")

        def forward(self, z, y):
            return self.h_s(z), self.g_s(y)

    return Encoder().eval(), Decoder().eval()


def onnx_models(fm, tmp):
    """fp32 ONNX graphs of the encoder and decoder, built with onnx.helper."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    def add_chain(prefix, inp, nodes, inits):
        cur = inp
        for l in fm.arch.layers:
            if not l.name.startswith(prefix):
                continue
            w = fm.weights[l.name] if l.op == "conv" else fm.weights[l.name].transpose(1, 0, 2, 3)
            inits += [numpy_helper.from_array(np.ascontiguousarray(w, np.float32), l.name + ".w"),
                      numpy_helper.from_array(fm.biases[l.name].astype(np.float32), l.name + ".b")]
            p = l.k // 2
            out = f"{prefix}_{l.name}"
            if l.op == "conv":
                nodes.append(helper.make_node("Conv", [cur, l.name + ".w", l.name + ".b"], [out],
                                              kernel_shape=[l.k, l.k], strides=[l.stride] * 2,
                                              pads=[p] * 4))
            else:
                nodes.append(helper.make_node("ConvTranspose", [cur, l.name + ".w", l.name + ".b"], [out],
                                              kernel_shape=[l.k, l.k], strides=[2, 2], pads=[p] * 4,
                                              output_padding=[1, 1]))
            if l.act == "relu":
                nodes.append(helper.make_node("Relu", [out], [out + "_a"]))
                out += "_a"
            elif l.act == "leaky":
                nodes.append(helper.make_node("LeakyRelu", [out], [out + "_a"], alpha=0.125))
                out += "_a"
            cur = out
        return cur

    def vi(name, c, h, w):
        return helper.make_tensor_value_info(name, TensorProto.FLOAT, [1, c, h, w])

    N, M = fm.arch.N, fm.arch.M
    nodes, inits = [], []
    y = add_chain("AT", "x", nodes, inits)
    nodes.append(helper.make_node("Round", [y], ["y_hat"]))
    z = add_chain("HA", "y_hat", nodes, inits)
    nodes.append(helper.make_node("Round", [z], ["z_hat"]))
    ms = add_chain("HS", "z_hat", nodes, inits)
    enc = helper.make_graph(nodes, "encoder", [vi("x", 3, "H", "W")],
                            [vi("y_hat", M, "h", "w"), vi("z_hat", N, "hz", "wz"), vi(ms, 2 * M, "h", "w")],
                            inits)
    nodes, inits = [], []
    ms = add_chain("HS", "z", nodes, inits)
    xr = add_chain("ST", "y", nodes, inits)
    dec = helper.make_graph(nodes, "decoder", [vi("z", N, "hz", "wz"), vi("y", M, "h", "w")],
                            [vi(ms, 2 * M, "h", "w"), vi(xr, 3, "H", "W")], inits)
    paths = []
    for g, nm in ((enc, "enc"), (dec, "dec")):
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
        m.ir_version = 8
        onnx.checker.check_model(m)
        p = os.path.join(tmp, nm + ".onnx")
        onnx.save(m, p)
        paths.append(p)
    return paths


def ort_quantize(path, feeds_list, out_path):
    from onnxruntime.quantization import (CalibrationDataReader, QuantFormat, QuantType,
                                          quantize_static)

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter(feeds_list)

        def get_next(self):
            return next(self.it, None)

    quantize_static(path, out_path, Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    return out_path


def ort_session(path):
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = THREADS
    so.inter_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


# ---- start-up ----------------------------------------------------------------

STARTUP = r"""
import sys, time
t0 = time.perf_counter()
sys.path.insert(0, %r)
import numpy as np
from fxlic.model.arch import hyperprior5
from fxlic.model.build import build_int_model, calibrate
from fxlic.model.float_model import random_float_model
from fxlic.model.int_forward import encode, hyper_decode, synthesize
t_import = time.perf_counter() - t0
fm = random_float_model(hyperprior5(8), 0)
img = np.random.default_rng(0).integers(0, 256, (3, 64, 64), dtype=np.uint8)
m = build_int_model(fm, calibrate(fm, [img]))
def run():
    e = encode(m, img, "numba"); hyper_decode(m, e.z, "numba"); synthesize(m, e.y, e.mu, "numba")
t = time.perf_counter(); run(); first = time.perf_counter() - t
t = time.perf_counter(); run(); second = time.perf_counter() - t
print(t_import, first, second)
"""


def startup_times():
    """(import s, first call s, steady call s) for an empty and a warm Numba cache."""
    res = {}
    with tempfile.TemporaryDirectory() as d:
        for label, env in (("cold cache", dict(os.environ, NUMBA_CACHE_DIR=d)),
                           ("warm cache", dict(os.environ, NUMBA_CACHE_DIR=d))):
            r = subprocess.run([sys.executable, "-c", STARTUP % ROOT], env=env, capture_output=True,
                               text=True, timeout=1800)
            if r.returncode != 0:
                res[label] = None
                print(r.stderr[-2000:], file=sys.stderr)
                continue
            res[label] = [float(v) for v in r.stdout.split()[-3:]]
    return res


# ---- rANS ----------------------------------------------------------------------

def rans_rates(n, repeat):
    from bench_rans import make_stream

    from fxlic.entropy import rans_numba
    from fxlic.entropy.gaussian import GaussianTables
    tables = GaussianTables.build(scale_frac_bits=16, mean_frac_bits=2)  # as fxlic models (SPEC E1)
    args_t = (tables.cdfs, tables.cdf_sizes, tables.offsets)
    sym, idx = make_stream(n, tables)
    w = rans_numba.encode_with_indexes(sym[:1000], idx[:1000], *args_t)
    rans_numba.decode_with_indexes(w, idx[:1000], *args_t)
    te, data = best_time(lambda: rans_numba.encode_with_indexes(sym, idx, *args_t), repeat)
    td, dec = best_time(lambda: rans_numba.decode_with_indexes(data, idx, *args_t), repeat)
    assert np.array_equal(dec, sym)
    return n / te / 1e6, n / td / 1e6


# ---- main ----------------------------------------------------------------------

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reference", action="store_true", help="also time the NumPy reference (minutes)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--no-torch", action="store_true")
    ap.add_argument("--no-onnx", action="store_true")
    ap.add_argument("--no-startup", action="store_true", help="skip the fresh-process start-up runs")
    ap.add_argument("--rans-n", type=int, default=1_000_000)
    ap.add_argument("--json", help="write the results here")
    ap.add_argument("--gap", type=float, default=0.2,
                    help="idle seconds before each timed call, so that the spinning idle threads of the "
                         "previous implementation (ONNX Runtime's pool spins by default) have stopped")
    a = ap.parse_args(argv)

    os.environ.setdefault("NUMBA_NUM_THREADS", str(THREADS))
    img_path, img = load_image()
    model, fm, mdesc = load_models(img)
    H, W = img.shape[1:]
    macs = layer_macs(model.arch, H, W)
    gm = {n: v[0] / 1e9 for n, v in macs.items()}
    enc_g = sum(v for n, v in gm.items() if n[:2] in ("AT", "HA", "HS"))
    dec_g = sum(v for n, v in gm.items() if n[:2] in ("HS", "ST"))
    res = {"image": img_path, "size": [W, H], "model": mdesc, "enc_gmac": enc_g, "dec_gmac": dec_g,
           "rows": {}}
    print(f"image {img_path} {W}x{H}; model: {mdesc}")
    print(f"workload: encoder {enc_g:.2f} GMAC, decoder {dec_g:.2f} GMAC")
    import platform
    from fxlic.kernels import host
    rec = host.describe()
    print(f"machine: {host.line(rec)}; python {platform.python_version()}")
    from fxlic.kernels.numba_kernels import BLOCK_VARIANT
    res["machine"] = dict(rec, kernel=BLOCK_VARIANT)
    print(f"kernel variant: {BLOCK_VARIANT}")
    from fxlic.kernels import threading_info
    res["machine"]["threading"] = threading_info()
    print(f"numba threading: {res['machine']['threading']}")

    from fxlic.model.int_forward import encode, hyper_decode, synthesize
    import numba

    def fx_runner(backend, threads=None):
        """(encode, decode) callables of fxlic on ``backend`` (``threads``: numba threads)."""
        state = {}

        def call(f):
            if threads is None:
                return f()
            numba.set_num_threads(threads)
            try:
                return f()
            finally:
                numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)

        def enc():
            state["e"] = call(lambda: encode(model, img, backend))

        def dec():
            e = state["e"]
            call(lambda: (hyper_decode(model, e.z, backend), synthesize(model, e.y, e.mu, backend)))
        return enc, dec

    runners = {}  # row name -> (encode, decode), timed interleaved below
    t = time.perf_counter()
    e_nb = encode(model, img, "numba")
    res["numba_first_encode_s"] = time.perf_counter() - t
    runners["fxlic numba"] = fx_runner("numba")
    runners["fxlic numba, 1 thread"] = fx_runner("numba", threads=1)
    from fxlic.kernels import NumbaBackend
    # the session-6 layer path (accumulators, then a separate output stage), same integers
    runners["fxlic numba, unfused output stage"] = fx_runner(NumbaBackend(fused=False))
    from fxlic.codec import compress, decompress
    stream = {}

    def cx():
        stream["d"] = compress(model, np.ascontiguousarray(img, np.uint8), "numba")[0]

    def dx():
        decompress(model, stream["d"], "numba")
    # what a user's compress / decompress costs: the network plus entropy coding and the container
    runners["fxlic numba, compress / decompress (network + rANS + container)"] = (cx, dx)
    lt = per_layer(model, img, a.repeat)
    res["per_layer"] = {n: (lt[n], gm[n]) for n in lt}
    from fxlic.kernels.numba_kernels import oc_block_peak
    res["machine"]["threads"] = numba.config.NUMBA_NUM_THREADS
    res["int16_peak_gmacs"] = oc_block_peak(numba.config.NUMBA_NUM_THREADS)
    res["peak_rss_mb_fxlic"] = peak_rss_mb()
    single = {}  # rows timed once (slow), outside the interleaved rounds
    from fxlic.kernels import NumbaBackend
    general = NumbaBackend(fast=False)
    e_w = encode(model, img[:, :64, :64], general)  # compile / load the general kernels first
    hyper_decode(model, e_w.z, general)
    synthesize(model, e_w.y, e_w.mu, general)
    te_g, e_g = best_time(lambda: encode(model, img, general), 1)
    td_g, _ = best_time(lambda: (hyper_decode(model, e_g.z, general), synthesize(model, e_g.y, e_g.mu, general)), 1)
    assert np.array_equal(e_g.y, e_nb.y) and np.array_equal(e_g.ms, e_nb.ms)
    single["fxlic numba, general int32 path (previous kernels)"] = (te_g, td_g)
    print(f"fxlic numba general path: encode {te_g:.3f} s, decode {td_g:.3f} s")
    if a.reference:
        te_r, e_ref = best_time(lambda: encode(model, img, "reference"), 1)
        td_r, _ = best_time(lambda: (hyper_decode(model, e_ref.z, "reference"),
                                     synthesize(model, e_ref.y, e_ref.mu, "reference")), 1)
        assert np.array_equal(e_ref.y, e_nb.y) and np.array_equal(e_ref.ms, e_nb.ms)
        single["fxlic reference"] = (te_r, td_r)
        print(f"fxlic reference: encode {te_r:.1f} s, decode {td_r:.1f} s")

    if not a.no_torch:
        try:
            import torch
            torch.set_num_threads(THREADS)
            enc_m, dec_m = torch_modules(fm)
            x = torch.tensor(img[None].astype(np.float32) / 255.0)
            with torch.inference_mode():
                yh, zh, _ = enc_m(x)

            def t_enc():
                with torch.inference_mode():
                    enc_m(x)

            def t_dec():
                with torch.inference_mode():
                    dec_m(zh, yh)
            runners[f"PyTorch {torch.__version__} fp32"] = (t_enc, t_dec)
        except ImportError as ex:
            print(f"PyTorch not available: {ex}")
            a.no_onnx = True

    tmpdir = tempfile.TemporaryDirectory()
    if not a.no_onnx:
        try:
            import onnxruntime as ort
            tmp = tmpdir.name
            enc_p, dec_p = onnx_models(fm, tmp)
            xin = (img[None].astype(np.float32) / 255.0)
            s = ort_session(enc_p)
            oy_hat, oz_hat, _ = s.run(None, {"x": xin})
            feeds_e = {"x": xin}
            feeds_d = {"z": oz_hat, "y": oy_hat}
            variants = [("fp32", enc_p, dec_p)]
            rng = np.random.default_rng(0)
            cal_e, cal_d = [], []
            for i in range(4):  # calibration: crops of the image and the matching latents
                oy, ox = 64 * int(rng.integers(0, 4)), 64 * int(rng.integers(0, 8))
                c = np.ascontiguousarray(xin[:, :, oy:oy + 256, ox:ox + 256])
                cy, cz, _ = s.run(None, {"x": c})
                cal_e.append({"x": c})
                cal_d.append({"z": cz, "y": cy})
            q_e = ort_quantize(enc_p, cal_e, os.path.join(tmp, "enc_int8.onnx"))
            q_d = ort_quantize(dec_p, cal_d, os.path.join(tmp, "dec_int8.onnx"))
            variants.append(("int8 QDQ", q_e, q_d))
            for label, pe, pd in variants:
                se, sd = ort_session(pe), ort_session(pd)
                runners[f"ONNX Runtime {ort.__version__} {label}"] = (
                    lambda se=se: se.run(None, feeds_e), lambda sd=sd: sd.run(None, feeds_d))
        except ImportError as ex:
            print(f"ONNX Runtime not available: {ex}")

    # interleaved rounds: every runner's encode and decode once per round, so
    # load changes on a shared machine hit all rows alike; medians of the
    # times and of the per-round ratios against fxlic numba
    for enc_f, dec_f in runners.values():  # warm-up (JIT, caches, ORT/oneDNN set-up)
        enc_f()
        dec_f()
    times = {n: ([], []) for n in runners}
    for _ in range(a.repeat):
        for n, (enc_f, dec_f) in runners.items():
            for f, ts in zip((enc_f, dec_f), times[n]):
                time.sleep(a.gap)
                t = time.perf_counter()
                f()
                ts.append(time.perf_counter() - t)
    base = times["fxlic numba"]
    for n, (te_, td_) in times.items():
        res["rows"][n] = (float(np.median(te_)), float(np.median(td_)))
        res.setdefault("round_ratios", {})[n] = (
            float(np.median(np.array(base[0]) / np.array(te_))), float(np.median(np.array(base[1]) / np.array(td_))))
        print(f"{n}: encode {np.median(te_):.3f} s, decode {np.median(td_):.3f} s (median of {a.repeat})")
    res["rows"].update(single)
    tmpdir.cleanup()

    try:
        res["rans_msym_s"] = rans_rates(a.rans_n, a.repeat)
    except Exception as ex:  # pragma: no cover
        print(f"rANS bench failed: {ex}")
    res["peak_rss_mb_total"] = peak_rss_mb()
    if not a.no_startup:
        res["startup"] = startup_times()

    # ---- report ----
    print()
    print("| implementation | encode s | encode GMAC/s | decode s | decode GMAC/s | enc ratio | dec ratio |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    base = res["rows"]["fxlic numba"]
    for name, (te_, td_) in res["rows"].items():
        re_, rd_ = res["round_ratios"].get(name, (base[0] / te_, base[1] / td_))
        print(f"| {name} | {te_:.3f} | {enc_g / te_:.1f} | {td_:.3f} | {dec_g / td_:.1f} | "
              f"{re_:.2f} | {rd_:.2f} |")
    print(f"(times: medians of {a.repeat} interleaved rounds; ratio = fxlic numba time / this row's time, "
          "the median of the per-round ratios (rows timed once: of the medians); < 1: fxlic numba is faster)")
    print()
    peak = res.get("int16_peak_gmacs")
    print("| layer | in (h x w) | GMAC | ms | GMAC/s | % of int16 peak |")
    print("|---|---|---:|---:|---:|---:|")
    for n, (t, g) in res["per_layer"].items():
        pct = f"{100 * g / t / peak:.0f}" if peak else "-"
        print(f"| {n} | {macs[n][1][0]}x{macs[n][1][1]} | {g:.3f} | {1e3 * t:.1f} | {g / t:.1f} | {pct} |")
    print(f"(per layer: decode tables + conv + output stage, median of {a.repeat}; int16 peak: the engine's "
          f"OC block on in-cache operands, {res['machine']['threads']} threads, "
          f"{peak:.1f} GMAC/s; numba.oc_block_peak)" if peak else "")
    if "rans_msym_s" in res:
        print(f"\nrANS (numba): encode {res['rans_msym_s'][0]:.1f} Msym/s, decode {res['rans_msym_s'][1]:.1f} Msym/s")
    print(f"peak RSS: {res['peak_rss_mb_fxlic']:.0f} MB after fxlic numba, {res['peak_rss_mb_total']:.0f} MB "
          "at the end (torch and ORT loaded)")
    for label, v in (res.get("startup") or {}).items():
        if v:
            print(f"fresh process, {label}: import {v[0]:.2f} s, first encode+decode (64x64, N=8) "
                  f"{v[1]:.2f} s, second {v[2]:.3f} s -> JIT/cache load {v[1] - v[2]:.2f} s")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f, indent=1)


if __name__ == "__main__":
    main()
