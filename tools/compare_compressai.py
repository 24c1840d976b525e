#!/usr/bin/env python3
"""fxlic's integer codec against CompressAI's own compress()/decompress() on the same weights.

    python tools/compare_compressai.py --weights fxlic/zoo/hp5-mse-q2.float.safetensors \\
        --model M.fxq --images ../shared/data/kodak --n 3 [--json out.json]

The float weights (fxlic native or a CompressAI state dict) are loaded into a
``compressai.models.CompressionModel`` with the paper's networks (ReLU main
path, LeakyReLU(1/8) hyper path, docs/MODEL_FORMAT.md 7), ``update()`` builds
CompressAI's tables, and every image goes through CompressAI's
``compress()`` / ``decompress()``; the same image goes through fxlic's integer
codec with ``--model`` (quantize it with ``--latents offset`` to compare
CompressAI's semantics; issue 16's bar: bpp within +2 %, PSNR within 0.1 dB).
Needs torch and compressai (not fxlic dependencies).  compressai 1.2.8 imports
torchvision and torch_geometric only for datasets and point-cloud transforms;
where those are absent, ``--stub-missing`` stands in empty modules for them.
"""
from __future__ import annotations

import argparse
import importlib.abc
import importlib.machinery
import json
import os
import sys
import time
import types

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

STUBBED = ("torch_geometric", "torchvision")


class _StubFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Empty stand-ins for modules compressai's registry imports but this tool never uses."""

    def find_spec(self, fullname, path, target=None):
        if fullname.split(".")[0] in STUBBED:
            return importlib.machinery.ModuleSpec(fullname, self, is_package=True)
        return None

    def create_module(self, spec):
        m = types.ModuleType(spec.name)

        def attr(name):
            if name.startswith("__"):
                raise AttributeError(name)
            if name[0].islower():  # decorators such as functional_transform("x")
                return lambda *a, **k: (a[0] if len(a) == 1 and callable(a[0]) and not k else (lambda f: f))
            return type(name, (), {"__init__": lambda self, *a, **k: None})
        m.__getattr__ = attr
        m.__path__ = []
        return m

    def exec_module(self, module):
        pass


def networks(kind: str, N: int, M: int):
    import torch.nn as nn
    from compressai.entropy_models import EntropyBottleneck, GaussianConditional
    from compressai.models import CompressionModel

    def conv(i, o, k=5, s=2):
        return nn.Conv2d(i, o, k, s, k // 2)

    def tconv(i, o, k=5):
        return nn.ConvTranspose2d(i, o, k, 2, k // 2, output_padding=1)

    class Factorized(CompressionModel):
        def __init__(self):
            super().__init__()
            self.entropy_bottleneck = EntropyBottleneck(M)
            self.g_a = nn.Sequential(conv(3, N), nn.ReLU(), conv(N, N), nn.ReLU(), conv(N, N), nn.ReLU(), conv(N, M))
            self.g_s = nn.Sequential(tconv(M, N), nn.ReLU(), tconv(N, N), nn.ReLU(), tconv(N, N), nn.ReLU(),
                                     tconv(N, 3))

        def compress(self, x):
            y = self.g_a(x)
            return {"strings": [self.entropy_bottleneck.compress(y)], "shape": y.shape[-2:]}

        def decompress(self, strings, shape):
            y_hat = self.entropy_bottleneck.decompress(strings[0], shape)
            return {"x_hat": self.g_s(y_hat).clamp_(0, 1)}

    class Hyperprior5(CompressionModel):
        def __init__(self):
            super().__init__()
            self.entropy_bottleneck = EntropyBottleneck(N)
            self.gaussian_conditional = GaussianConditional(None)
            lk = lambda: nn.LeakyReLU(0.125)  # noqa: E731
            self.g_a = nn.Sequential(conv(3, N), nn.ReLU(), conv(N, N), nn.ReLU(), conv(N, N), nn.ReLU(), conv(N, M))
            self.h_a = nn.Sequential(conv(M, N, 3, 1), lk(), conv(N, N), lk(), conv(N, N))
            self.h_s = nn.Sequential(tconv(N, N), lk(), tconv(N, N), lk(), conv(N, 2 * N, 3, 1), lk(),
                                     conv(2 * N, 5 * N, 1, 1), lk(), conv(5 * N, 4 * N, 1, 1), lk(),
                                     conv(4 * N, 2 * M, 1, 1))
            self.g_s = nn.Sequential(tconv(M, N), nn.ReLU(), tconv(N, N), nn.ReLU(), tconv(N, N), nn.ReLU(),
                                     tconv(N, 3))

        def compress(self, x):
            y = self.g_a(x)
            z = self.h_a(y)
            z_strings = self.entropy_bottleneck.compress(z)
            z_hat = self.entropy_bottleneck.decompress(z_strings, z.size()[-2:])
            scales, means = self.h_s(z_hat).chunk(2, 1)
            idx = self.gaussian_conditional.build_indexes(scales)
            y_strings = self.gaussian_conditional.compress(y, idx, means=means)
            return {"strings": [y_strings, z_strings], "shape": z.size()[-2:]}

        def decompress(self, strings, shape):
            z_hat = self.entropy_bottleneck.decompress(strings[1], shape)
            scales, means = self.h_s(z_hat).chunk(2, 1)
            idx = self.gaussian_conditional.build_indexes(scales)
            y_hat = self.gaussian_conditional.decompress(strings[0], idx, means=means)
            return {"x_hat": self.g_s(y_hat).clamp_(0, 1)}

    return Hyperprior5() if kind == "hyperprior" else Factorized()


def compressai_model(weights: str):
    import numpy as np
    import torch

    from fxlic.io.floatfile import compressai_state_from, load_weights

    fm = load_weights(weights)
    arch = fm.arch
    net = networks(arch.kind, arch.N, arch.M)
    sd = {k: torch.from_numpy(np.asarray(v, np.float32))
          for k, v in compressai_state_from(fm, eb_style="compressai12").items()}
    # nn.Module's loader: CompressionModel's wants the derived tables, update() builds them
    missing, unexpected = torch.nn.Module.load_state_dict(net, sd, strict=False)
    derived = ("_quantized_cdf", "_offset", "_cdf_length", "scale_table", "target", "bound")
    bad = [k for k in missing if not any(t in k for t in derived)]
    if bad or unexpected:
        raise SystemExit(f"compare_compressai: weights do not fit the networks: missing {bad}, "
                         f"unexpected {unexpected}")
    net.eval()
    net.update(force=True)
    return net, fm


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", required=True, help="float weights (.safetensors / .npz)")
    ap.add_argument("--model", required=True, help="fxlic integer model (.fxq or zoo name)")
    ap.add_argument("--images", default=os.environ.get("FXLIC_KODAK", os.path.join(HERE, "..", "..", "shared",
                                                                                  "data", "kodak")))
    ap.add_argument("--n", type=int, default=3, help="first N images (default 3)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--stub-missing", action="store_true",
                    help="empty stand-ins for torchvision / torch_geometric if they are not installed")
    ap.add_argument("--json", default=None, help="write the per-image results here")
    args = ap.parse_args(argv)
    if args.stub_missing:
        sys.meta_path.insert(0, _StubFinder())
    try:
        import torch
        import compressai  # noqa: F401
    except ImportError as e:
        ap.error(f"needs torch and compressai ({e}); try --stub-missing if torchvision is what is missing")
    import numpy as np

    import fxlic
    from fxlic.io.images import list_images, read_image
    from fxlic.metrics import psnr

    torch.set_num_threads(args.threads)
    net, fm = compressai_model(args.weights)
    from fxlic.bitstream.container import unpack

    codec = fxlic.load(args.model)
    rows = []
    for path in list_images(args.images, args.n):
        x = read_image(path)
        _, H, W = x.shape
        t = torch.from_numpy(x[None].astype(np.float32) / 255.0)
        pm = fm.arch.pad_multiple
        Hp, Wp = -(-H // pm) * pm, -(-W // pm) * pm
        tp = torch.nn.functional.pad(t, (0, Wp - W, 0, Hp - H), mode="replicate")
        t0 = time.time()
        with torch.no_grad():
            out = net.compress(tp)
            rec = net.decompress(out["strings"], out["shape"])["x_hat"][0, :, :H, :W]
        nbytes = sum(len(s[0]) for s in out["strings"])
        cai = np.clip(np.floor(rec.numpy() * 255 + 0.5), 0, 255).astype(np.uint8)
        t1 = time.time()
        data = codec.compress(x.transpose(1, 2, 0))  # the API takes (H, W, 3)
        mine = codec.decompress(data).transpose(2, 0, 1)
        _, zs, ys = unpack(data)
        # like for like: CompressAI's strings carry no container; fxlic's file adds
        # its header, substream lengths and CRC (docs/BITSTREAM.md)
        cai_sub = {"y": len(out["strings"][0][0]), "z": len(out["strings"][1][0]) if len(out["strings"]) > 1 else 0}
        row = {"image": os.path.basename(path),
               "compressai": {"bpp": 8 * nbytes / (H * W), "psnr": psnr(x, cai), "s": round(t1 - t0, 2),
                              "bytes": cai_sub},
               "fxlic": {"bpp": 8 * len(data) / (H * W), "psnr": psnr(x, mine), "s": round(time.time() - t1, 2),
                         "bytes": {"y": len(ys), "z": len(zs), "container": len(data) - len(ys) - len(zs)}}}
        row["bpp_ratio"] = row["fxlic"]["bpp"] / row["compressai"]["bpp"]
        row["payload_ratio"] = (len(ys) + len(zs)) / nbytes
        row["dpsnr"] = row["fxlic"]["psnr"] - row["compressai"]["psnr"]
        rows.append(row)
        print(f"{row['image']}: CompressAI {row['compressai']['bpp']:.4f} bpp {row['compressai']['psnr']:.3f} dB | "
              f"fxlic {row['fxlic']['bpp']:.4f} bpp {row['fxlic']['psnr']:.3f} dB | "
              f"bpp {100 * (row['bpp_ratio'] - 1):+.2f} % (substreams {100 * (row['payload_ratio'] - 1):+.2f} %)  "
              f"PSNR {row['dpsnr']:+.3f} dB", flush=True)
    mean = {k: float(np.mean([r[k] for r in rows])) for k in ("bpp_ratio", "payload_ratio", "dpsnr")}
    print(f"mean: bpp {100 * (mean['bpp_ratio'] - 1):+.2f} % (substreams alone "
          f"{100 * (mean['payload_ratio'] - 1):+.2f} %), PSNR {mean['dpsnr']:+.3f} dB "
          f"(model {args.model}, weights {os.path.basename(args.weights)}, {len(rows)} images)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"weights": args.weights, "model": args.model, "images": rows, "mean": mean}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
