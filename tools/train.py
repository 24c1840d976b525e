#!/usr/bin/env python3
"""Float training of the fxlic models (PyTorch), WCFT fine-tuning and export.

Implements the training side of Sun, Yu, Katto, "End-to-End Learned Image
Compression with Quantized Weights and Activations":

* the network is built from ``fxlic.model.arch`` (``hyperprior5`` or
  ``factorized``), never retyped here;
* entropy models follow CompressAI exactly (``EntropyBottleneck`` with the same
  parameter names, ``GaussianConditional`` likelihood with scale bound 0.11 and
  likelihood bound 1e-9, chunk(2) -> scales, means);
* loss = lambda * 255^2 * MSE + bpp (CompressAI convention), or
  lambda * (1 - MS-SSIM) + bpp with ``--msssim``;
* WCFT (Eq 15-22, Algorithm 1): ``--wcft 1`` or ``--wcft 1,1.4142,1`` rounds of
  per-output-channel clipping followed by ``--wcft-steps`` fine-tuning steps
  with the straight-through gradient mask of Eq 22;
* checkpoints (atomic) and exact resume, CSV log, safetensors export and a
  small float evaluation (``--eval DIR``).
* fast paths, one recipe on every machine: ``--amp auto`` runs the conv transforms
  under bf16 autocast where the device has native bf16 (CUDA; AVX-512 BF16 / AMX
  CPUs; AVX2-only CPUs stay fp32) while y, z, scales/means, x_hat, the entropy
  models, the likelihoods and the loss stay fp32; ``--device cuda``; the training
  set as one uint8 pack file (``--pack OUT.npz``, crops cut on the device); and
  ``--minutes`` that resolves the step counts from a timed warm-up to fill a wall
  budget (WCFT included).

See docs/TRAINING.md for the commands used to produce the shipped weights
(fxlic/zoo/*.float.safetensors, tools/weights/*-nowcft.safetensors) and
tools/train_campaign.py for one budgeted run of every shipped model (CPU or GPU).
"""
from __future__ import annotations

import argparse
import csv
import glob
import json
import math
import os
import random
import signal
import sys
import time

import numpy as np

try:
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
except ImportError:  # pragma: no cover - the WCFT test skips without torch
    torch = None

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from fxlic.model.arch import ARCHITECTURES, Architecture  # noqa: E402

SCALE_BOUND = 0.11
LIKELIHOOD_BOUND = 1e-9


# ----------------------------------------------------------------------------
# WCFT clip (torch mirror of fxlic.quant.wcft.wcft_clip)
# ----------------------------------------------------------------------------
def channel_maxabs(w, out_dim=0):
    """max|w| per output channel (float64)."""
    wt = w.detach().transpose(0, out_dim).double()
    return wt.abs().reshape(wt.shape[0], -1).max(dim=1).values


def wcft_bound_torch(w, beta=1.0, bits=8, alpha=0.5, out_dim=0, maxabs=None):
    """Per-output-channel bound of Eq 21 (float64, inf for all-zero channels).

    ``out_dim`` is the output-channel axis: 0 for Conv2d, 1 for ConvTranspose2d.
    ``maxabs`` (default: the current max|w|) is the max|w| whose exponent
    floor(log2 max|w|) the bound uses: ``--wcft-exponent first`` passes round 1's,
    ``keep`` twice the current one (the next exponent up: the bound of the beta-1
    round that produced weights already under it).
    """
    m = channel_maxabs(w, out_dim) if maxabs is None else maxabs.double()
    _, e = torch.frexp(m)
    f = (e - 1).double()
    bound = torch.pow(2.0, f) * beta - torch.pow(2.0, f - (bits - 1)) / alpha
    return torch.where(m > 0, bound, torch.full_like(bound, math.inf))


def _bshape(w, out_dim):
    shape = [1] * w.ndim
    shape[out_dim] = w.shape[out_dim]
    return shape


def wcft_clip_torch(w, beta=1.0, bits=8, alpha=0.5, out_dim=0, bound=None):
    """Eq 20-21 on |w| per output channel; returns (clipped w, Eq 22 mask).

    Mirrors ``fxlic.quant.wcft.wcft_clip`` (which uses axis 0) for any
    ``out_dim``.  The computation is done in float64 and cast back.
    """
    if bound is None:
        bound = wcft_bound_torch(w, beta, bits, alpha, out_dim)
    b = bound.reshape(_bshape(w, out_dim))
    wd = w.detach().double()
    mask = wd.abs() <= b
    clipped = torch.where(mask, wd, torch.sign(wd) * b)
    return clipped.to(w.dtype), mask


# ----------------------------------------------------------------------------
# Entropy models (CompressAI-compatible)
# ----------------------------------------------------------------------------
if torch is not None:

    class _LowerBound(torch.autograd.Function):
        """CompressAI LowerBound: max(x, b) with gradient passed when x >= b or grad < 0."""

        @staticmethod
        def forward(ctx, x, bound):
            ctx.save_for_backward(x, bound)
            return torch.max(x, bound)

        @staticmethod
        def backward(ctx, grad):
            x, bound = ctx.saved_tensors
            pass_through = (x >= bound) | (grad < 0)
            return pass_through.type(grad.dtype) * grad, None

    def lower_bound(x, b):
        return _LowerBound.apply(x, torch.tensor([float(b)], dtype=x.dtype, device=x.device))

    class EntropyBottleneck(nn.Module):
        """Factorized density of Balle et al. 2018, as compressai.entropy_models.EntropyBottleneck."""

        def __init__(self, channels, filters=(3, 3, 3, 3), init_scale=10.0, tail_mass=1e-9):
            super().__init__()
            self.channels = int(channels)
            self.filters = tuple(int(f) for f in filters)
            self.init_scale = float(init_scale)
            self.tail_mass = float(tail_mass)
            self._biases = nn.ParameterList()
            self._factors = nn.ParameterList()
            self._matrices = nn.ParameterList()
            fl = (1,) + self.filters + (1,)
            scale = self.init_scale ** (1 / (len(self.filters) + 1))
            C = self.channels
            for i in range(len(self.filters) + 1):
                init = np.log(np.expm1(1 / scale / fl[i + 1]))
                self._matrices.append(nn.Parameter(torch.full((C, fl[i + 1], fl[i]), float(init))))
                bias = torch.empty(C, fl[i + 1], 1)
                nn.init.uniform_(bias, -0.5, 0.5)
                self._biases.append(nn.Parameter(bias))
                if i < len(self.filters):
                    self._factors.append(nn.Parameter(torch.zeros(C, fl[i + 1], 1)))
            init = torch.tensor([-self.init_scale, 0.0, self.init_scale])
            self.quantiles = nn.Parameter(init.repeat(C, 1, 1))
            target = np.log(2 / self.tail_mass - 1)
            self.register_buffer("target", torch.tensor([-target, 0.0, target]), persistent=False)

        def _logits_cumulative(self, inputs, stop_gradient):
            logits = inputs
            for i in range(len(self.filters) + 1):
                matrix = self._matrices[i]
                bias = self._biases[i]
                if stop_gradient:
                    matrix, bias = matrix.detach(), bias.detach()
                logits = torch.matmul(F.softplus(matrix), logits) + bias
                if i < len(self._factors):
                    factor = self._factors[i]
                    if stop_gradient:
                        factor = factor.detach()
                    logits = logits + torch.tanh(factor) * torch.tanh(logits)
            return logits

        def loss(self):
            logits = self._logits_cumulative(self.quantiles, stop_gradient=True)
            return torch.abs(logits - self.target).sum()

        def medians(self):
            return self.quantiles[:, :, 1:2].detach()

        def likelihood(self, values):
            """values (N, C, H, W) already noisy/rounded -> likelihoods (N, C, H, W)."""
            x = values.permute(1, 0, 2, 3).contiguous()
            shape = x.shape
            v = x.reshape(shape[0], 1, -1)
            lower = self._logits_cumulative(v - 0.5, stop_gradient=False)
            upper = self._logits_cumulative(v + 0.5, stop_gradient=False)
            sign = -torch.sign(lower + upper).detach()
            lik = torch.abs(torch.sigmoid(sign * upper) - torch.sigmoid(sign * lower))
            lik = lower_bound(lik, LIKELIHOOD_BOUND)
            return lik.reshape(shape).permute(1, 0, 2, 3).contiguous()

    def gaussian_likelihood(values, scales, means):
        """compressai GaussianConditional._likelihood (+ likelihood lower bound)."""
        scales = lower_bound(scales, SCALE_BOUND)
        v = torch.abs(values - means)
        c = -(2 ** -0.5)
        upper = 0.5 * torch.erfc(c * (0.5 - v) / scales)
        lower = 0.5 * torch.erfc(c * (-0.5 - v) / scales)
        return lower_bound(upper - lower, LIKELIHOOD_BOUND)

    def _act(name):
        return {"relu": nn.ReLU(), "leaky": nn.LeakyReLU(0.125), "none": nn.Identity()}[name]

    class Codec(nn.Module):
        """The float model built from an Architecture's LayerSpec list."""

        def __init__(self, arch: Architecture, ha_input: str = "y", amp: bool = False):
            super().__init__()
            self.arch = arch
            self.ha_input = ha_input
            self.amp = amp  # bf16 autocast for the conv transforms (set by set_amp)
            self.layers = nn.ModuleDict()
            self.acts = nn.ModuleDict()
            for l in arch.layers:
                if l.op == "conv":
                    m = nn.Conv2d(l.cin, l.cout, l.k, l.stride, padding=l.k // 2)
                else:
                    m = nn.ConvTranspose2d(l.cin, l.cout, l.k, stride=2, padding=l.k // 2,
                                           output_padding=1)
                self.layers[l.name] = m
                self.acts[l.name] = _act(l.act)
            eb_ch = arch.layer([l.name for l in arch.layers if l.out == "z"][0]).cout \
                if arch.kind == "hyperprior" else arch.M
            self.entropy_bottleneck = EntropyBottleneck(eb_ch)

        def conv_layers(self):
            """(name, module, output-channel dim) for every conv/tconv."""
            for l in self.arch.layers:
                yield l.name, self.layers[l.name], (0 if l.op == "conv" else 1)

        def _quant(self, t, mode):
            if mode == "noise":
                return t + torch.empty_like(t).uniform_(-0.5, 0.5)
            return torch.round(t)

        def forward(self, x, mode="noise"):
            """Returns dict x_hat, likelihoods {'y','z'}; mode 'noise' or 'round'."""
            arch = self.arch
            t = {"x": x}
            lik = {}
            order = list(arch.layers)
            # main path + hyper path in table order; y_hat made right after y
            for l in order:
                src = l.src
                if src == "y_hat" and l.path == "hyper":
                    inp = t["y"] if self.ha_input == "y" else t["y_hat"]
                else:
                    inp = t[src]
                # conv transforms in bf16 under --amp; what the entropy models, the
                # quantization noise and the loss read (y, z, scales/means, x_hat) is fp32
                with torch.autocast(inp.device.type, dtype=torch.bfloat16, enabled=self.amp):
                    out = self.acts[l.name](self.layers[l.name](inp))
                if l.out in ("y", "z", "ms", "pixel"):
                    out = out.float()
                t[l.name] = out
                if l.out == "y":
                    t["y"] = out
                    t["y_hat"] = self._quant(out, mode)
                elif l.out == "z":
                    t["z"] = out
                    t["z_hat"] = self._quant(out, mode)
                    lik["z"] = self.entropy_bottleneck.likelihood(t["z_hat"])
                elif l.out == "ms":
                    scales, means = out.chunk(2, 1)
                    lik["y"] = gaussian_likelihood(t["y_hat"], scales, means)
                elif l.out == "pixel":
                    t["x_hat"] = out
            if arch.kind == "factorized":
                lik["y"] = self.entropy_bottleneck.likelihood(t["y_hat"])
            return {"x_hat": t["x_hat"], "likelihoods": lik}

    # ------------------------------------------------------------------------
    # MS-SSIM (for --msssim)
    # ------------------------------------------------------------------------
    def _gauss_win(size=11, sigma=1.5):
        g = torch.arange(size, dtype=torch.float32) - size // 2
        g = torch.exp(-(g ** 2) / (2 * sigma ** 2))
        g = g / g.sum()
        return g

    def _ssim(x, y, win, data_range=1.0):
        C = x.shape[1]
        w1 = win.view(1, 1, 1, -1).repeat(C, 1, 1, 1)
        w2 = win.view(1, 1, -1, 1).repeat(C, 1, 1, 1)

        def filt(t):
            return F.conv2d(F.conv2d(t, w1, groups=C), w2, groups=C)

        K1, K2 = 0.01, 0.03
        C1, C2 = (K1 * data_range) ** 2, (K2 * data_range) ** 2
        mu1, mu2 = filt(x), filt(y)
        s11 = filt(x * x) - mu1 ** 2
        s22 = filt(y * y) - mu2 ** 2
        s12 = filt(x * y) - mu1 * mu2
        cs = (2 * s12 + C2) / (s11 + s22 + C2)
        ssim = ((2 * mu1 * mu2 + C1) / (mu1 ** 2 + mu2 ** 2 + C1)) * cs
        return ssim.flatten(2).mean(-1), cs.flatten(2).mean(-1)

    def ms_ssim(x, y, data_range=1.0):
        """5-scale MS-SSIM (Wang et al.), window 11 sigma 1.5; needs H, W >= 161."""
        weights = torch.tensor([0.0448, 0.2856, 0.3001, 0.2363, 0.1333], dtype=x.dtype, device=x.device)
        win = _gauss_win().to(x.device, x.dtype)
        mcs = []
        for i in range(5):
            ssim, cs = _ssim(x, y, win, data_range)
            if i < 4:
                mcs.append(torch.relu(cs))
                x = F.avg_pool2d(x, 2)
                y = F.avg_pool2d(y, 2)
        vals = torch.stack(mcs + [torch.relu(ssim)], dim=0)
        return torch.prod(vals ** weights.view(-1, 1, 1), dim=0).mean()


# ----------------------------------------------------------------------------
# Data
# ----------------------------------------------------------------------------
def list_images(d):
    exts = (".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".tif", ".tiff")
    files = [f for f in glob.glob(os.path.join(d, "**", "*"), recursive=True)
             if f.lower().endswith(exts)]
    return sorted(files)


def load_rgb(path):
    from PIL import Image
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"), dtype=np.uint8)


PACK_SHORT_SIDE = 288   # every training image is resized to this short side ...
PACK_MAX_ASPECT = 1.5   # ... and centre-cropped to at most 1.5:1 (the 148 images: 52 MB)


def pack_image(im, short=PACK_SHORT_SIDE, max_aspect=PACK_MAX_ASPECT):
    """One training image as it enters the pack: resized (Lanczos, antialiased) so that
    its short side is ``short`` (never upscaled), then centre-cropped to ``max_aspect``.
    Downscaling also attenuates the JPEG artefacts of the Sun-Hays images."""
    from PIL import Image
    h, w = im.shape[:2]
    s = min(h, w)
    if s > short:
        f = short / s
        nh, nw = max(short, round(h * f)), max(short, round(w * f))
        if h <= w:
            nh = short
        else:
            nw = short
        im = np.asarray(Image.fromarray(im).resize((nw, nh), Image.LANCZOS), dtype=np.uint8)
        h, w = im.shape[:2]
    s = min(h, w)
    L = int(s * max_aspect)
    if w > L:
        x0 = (w - L) // 2
        im = im[:, x0:x0 + L]
    elif h > L:
        y0 = (h - L) // 2
        im = im[y0:y0 + L]
    return np.ascontiguousarray(im)


class PackedImages:
    """The training set as one flat uint8 array plus an (n, 3) index of (offset, h, w).

    Built from a directory (every image through :func:`pack_image`) or read from a pack
    file written by ``--pack OUT.npz`` (uncompressed npz, no pickle), so a directory and
    its pack give identical training data.  The flat array can live on any torch device,
    where the crops are then cut (``--device cuda``: pixels never leave the GPU)."""

    def __init__(self, flat, index, names=()):
        self.flat = np.ascontiguousarray(flat, dtype=np.uint8)
        self.index = np.asarray(index, dtype=np.int64).reshape(-1, 3)
        self.names = list(names)

    @classmethod
    def from_dir(cls, d):
        files = list_images(d)
        if not files:
            raise SystemExit(f"no images under {d}")
        ims = [pack_image(load_rgb(f)) for f in files]
        index, off = [], 0
        for im in ims:
            index.append((off, im.shape[0], im.shape[1]))
            off += im.size
        return cls(np.concatenate([im.reshape(-1) for im in ims]), index,
                   [os.path.relpath(f, d) for f in files])

    @classmethod
    def load(cls, path):
        if os.path.isdir(path):
            return cls.from_dir(path)
        if not os.path.isfile(path):
            raise SystemExit(f"--data {path}: no such directory or pack file")
        try:
            with np.load(path, allow_pickle=False) as z:
                flat, index = z["flat"], z["index"]
                names = [str(n) for n in z["names"]] if "names" in z else []
        except (OSError, ValueError, KeyError) as e:
            raise SystemExit(f"--data {path}: not a training pack ({e})")
        if flat.dtype != np.uint8 or index.ndim != 2 or index.shape[1] != 3 or \
                (index[:, 0] + index[:, 1] * index[:, 2] * 3 > flat.size).any() or (index < 0).any():
            raise SystemExit(f"--data {path}: inconsistent pack (index outside the pixel array)")
        return cls(flat, index, names)

    def save(self, path):
        tmp = path + ".tmp.npz"
        np.savez(tmp, flat=self.flat, index=self.index, names=np.array(self.names))
        os.replace(tmp, path)

    def __len__(self):
        return len(self.index)


class CropSampler:
    """Random crops with random h/v flips from a :class:`PackedImages` set.

    Positions come from a PCG64 generator seeded with ``--seed`` on the host (its state
    is checkpointed, so resume is exact); the pixels are cut from the pack's copy on
    ``device``."""

    def __init__(self, data, crop, seed, device="cpu", memory_format=None):
        memory_format = torch.contiguous_format if memory_format is None else memory_format
        pack = data if isinstance(data, PackedImages) else PackedImages.load(data)
        keep = [i for i, (_, h, w) in enumerate(pack.index) if h >= crop and w >= crop]
        if not keep:
            raise SystemExit(f"no training image is at least {crop}x{crop}")
        self.index = pack.index[keep]
        self.flat = torch.from_numpy(pack.flat).to(device)
        self.device = device
        self.crop = crop
        self.rng = np.random.Generator(np.random.PCG64(seed))
        #: the batches' layout: torch.channels_last for --channels-last (same values)
        self.memory_format = memory_format

    def batch(self, n):
        c = self.crop
        out = []
        for _ in range(n):
            off, h, w = (int(v) for v in self.index[int(self.rng.integers(len(self.index)))])
            y0 = int(self.rng.integers(h - c + 1))
            x0 = int(self.rng.integers(w - c + 1))
            p = self.flat[off:off + h * w * 3].view(h, w, 3)[y0:y0 + c, x0:x0 + c]
            if self.rng.random() < 0.5:
                p = p.flip(1)
            if self.rng.random() < 0.5:
                p = p.flip(0)
            out.append(p)
        x = torch.stack(out).permute(0, 3, 1, 2).float().div_(255.0)
        return x.contiguous(memory_format=self.memory_format)

    def state(self):
        return self.rng.bit_generator.state

    def set_state(self, s):
        self.rng.bit_generator.state = s


# ----------------------------------------------------------------------------
# Training helpers
# ----------------------------------------------------------------------------
def bpp_of(lik, num_pixels):
    return sum(torch.log(v).sum() for v in lik.values()) / (-math.log(2) * num_pixels)


def psnr(mse):
    return 10 * math.log10(1.0 / max(mse, 1e-12))


def make_optimizers(model, lr, aux_lr, eb_lr_mult=1.0):
    main = [p for n, p in model.named_parameters() if not n.endswith("quantiles")]
    aux = [p for n, p in model.named_parameters() if n.endswith("quantiles")]
    if eb_lr_mult != 1.0:  # separate group: entropy-bottleneck density at lr * mult
        eb = [p for n, p in model.named_parameters()
              if n.startswith("entropy_bottleneck.") and not n.endswith("quantiles")]
        ids = {id(p) for p in eb}
        net = [p for p in main if id(p) not in ids]
        groups = [{"params": net, "lr_mult": 1.0}, {"params": eb, "lr_mult": eb_lr_mult}]
        return torch.optim.Adam(groups, lr=lr), torch.optim.Adam(aux, lr=aux_lr)
    return torch.optim.Adam(main, lr=lr), torch.optim.Adam(aux, lr=aux_lr)


def parse_wcft(s):
    if not s:
        return []
    return [float(v) for v in s.split(",") if v.strip()]


def np_rng_state():
    """numpy's legacy RNG state as plain values (the key array as a tensor), so that the
    checkpoint loads with ``torch.load(weights_only=True)``: no pickle is ever executed."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return {"name": name, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
            "has_gauss": int(has_gauss), "cached": float(cached)}


def set_np_rng_state(d):
    np.random.set_state((d["name"], d["keys"].numpy().astype(np.uint32), d["pos"],
                         d["has_gauss"], d["cached"]))


def load_checkpoint(path):
    """A training checkpoint (dict of tensors and plain values), without unpickling code."""
    return torch.load(path, map_location="cpu", weights_only=True)


def read_export(path):
    """An exported .safetensors file -> (float32 state dict with the model's names, metadata)."""
    from safetensors import safe_open
    with safe_open(path, framework="pt") as f:
        meta = f.metadata() or {}
        tensors = {k: f.get_tensor(k).float() for k in f.keys()}
    sd = {}
    for k, v in tensors.items():
        if k.startswith("entropy_bottleneck."):
            sd[k] = v
        else:
            name, kind = k.rsplit(".", 1)
            sd[f"layers.{name}.{kind}"] = v
    return sd, meta


def load_init_tensors(path):
    """Weights to start a run from: a training checkpoint (.pt) or an exported
    .safetensors file. Returns (state dict with model names, info dict)."""
    if path.endswith(".safetensors"):
        sd, meta = read_export(path)
        arch = json.loads(meta["fxlic.arch"]) if "fxlic.arch" in meta else {}
        prov = json.loads(meta.get("fxlic.provenance", "{}"))
        return sd, {"arch_kind": arch.get("kind"), "step": prov.get("steps"),
                    "wall": prov.get("wall_seconds", 0.0), "args": prov}
    ck = load_checkpoint(path)
    return ck["model"] if "model" in ck else ck, ck


def atomic_save(obj, path):
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        torch.save(obj, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def build(args):
    arch = ARCHITECTURES[args.arch](args.N)
    return arch, Codec(arch, ha_input=args.ha_input)


def phase_of(step, steps, wcft, wcft_steps):
    """(phase, round index) for a global step: phase 'train' or 'wcft'."""
    if step < steps:
        return "train", -1
    r = (step - steps) // wcft_steps if wcft_steps > 0 else len(wcft)
    return ("wcft", r) if r < len(wcft) else ("done", -1)


BUDGET_WARMUP = 8      # steps timed (after 2 untimed ones) to resolve a --minutes plan
BUDGET_SAFETY = 0.95   # fraction of the remaining budget the plan may fill
BUDGET_REPLAN = 0.10   # the plan is resolved again (longer timing window) at this fraction
BUDGET_TRACK_EVERY = 10     # then every this many steps the plan tracks the measured rate ...
BUDGET_TRACK_WINDOW = 100   # ... over at most this many recent steps
BUDGET_TOLERANCE = 0.02     # and changes when it is off by more than this fraction


def recent_rate(rates, step):
    """steps/s over the recorded (time, step) points of the last BUDGET_TRACK_WINDOW steps."""
    while len(rates) > 2 and rates[1][1] <= step - BUDGET_TRACK_WINDOW:
        rates.pop(0)
    if len(rates) < 2 or rates[-1][0] <= rates[0][0]:
        return None
    return (rates[-1][1] - rates[0][1]) / (rates[-1][0] - rates[0][0])


#: with --minutes and no --wcft-steps, a WCFT round gets at least this many steps
#: (while they fit in half the budget): from the same pre-WCFT weights, 47 steps after
#: clipping lost 0.39 dB of float PSNR on Kodak, 173 steps 0.12 dB (docs/TRAINING.md
#: step 11), and --wcft-frac alone gives a short CPU budget of ~1000 steps only ~40
MIN_WCFT_STEPS = 150


def wcft_round_steps(T: int, n_rounds: int, frac: float) -> int:
    """Steps per WCFT round of a T-step budget: ``frac`` of it, at least
    MIN_WCFT_STEPS while the rounds take no more than half of T."""
    if not n_rounds:
        return 0
    return max(1, int(T * frac), min(MIN_WCFT_STEPS, T // (2 * n_rounds)))


def resolve_plan(args, n_rounds, step, wall, rate):
    """--minutes: the step counts that fill what is left of the budget at ``rate`` steps/s.
    WCFT keeps ``--wcft-steps`` per round, or ``wcft_round_steps`` of the budget."""
    left = max(0.0, args.minutes * 60.0 - wall) * BUDGET_SAFETY
    T = step + int(rate * left)
    ws = args.wcft_steps or wcft_round_steps(T, n_rounds, args.wcft_frac)
    steps = max(step, T - n_rounds * ws)
    lr_drop = int(steps * args.lr_drop_frac) if args.lr_drop_frac else args.lr_drop
    return {"steps": steps, "planned_steps": steps, "wcft_steps": ws, "lr_drop": lr_drop,
            "rate": round(rate, 4)}


#: a continuation from trained weights that restarts at lr >= 1e-4 (fresh Adam state)
#: with fewer training steps than this ended worse than it started in both measured
#: campaigns (docs/TRAINING.md steps 8 and 10: 858 and 955-967 steps), better with 4000+
#: (step 9)
SHORT_RESTART_STEPS = 2000


def short_restart_warning(args):
    """A warning line when the resolved plan is a short high-lr restart of trained weights
    (``SHORT_RESTART_STEPS``), else None."""
    if not args.init or args.lr < 1e-4 or args.steps >= SHORT_RESTART_STEPS:
        return None
    return (f"warning: {args.steps} steps at lr {args.lr:g} from trained weights ({args.init}): restarts this "
            f"short made the model worse before (docs/TRAINING.md); use a longer --minutes")


def apply_plan(args, plan):
    args.steps, args.wcft_steps, args.lr_drop = plan["steps"], plan["wcft_steps"], plan["lr_drop"]
    if args.lr_drop_frac and args.lr_drop >= args.steps:  # a plan shortened before the lr drop
        args.lr_drop = plan["lr_drop"] = int(args.steps * args.lr_drop_frac)


def resolve_device(name):
    try:
        dev = torch.device(name)
    except (RuntimeError, ValueError) as e:
        raise SystemExit(f"--device {name}: {e}")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit(f"--device {name}: CUDA is not available in this torch build or machine")
    return dev


def cpu_has_native_bf16():
    """AVX-512 BF16 or AMX-BF16 in /proc/cpuinfo (AVX2-only machines: False)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return bool(flags & {"avx512_bf16", "amx_bf16"})
    except OSError:
        pass
    return False


def use_bf16(device, amp):
    if amp == "fp32":
        return False
    native = torch.cuda.is_bf16_supported() if device.type == "cuda" else cpu_has_native_bf16()
    if amp == "bf16":
        return True
    return bool(native)


def use_channels_last(device, choice):
    """--channels-last: ``on`` / ``off``, or ``auto``: NHWC on a CPU, where oneDNN's
    convolutions run faster on it (hyperprior-5, batch 8 x 256^2, one thread, Zen 5:
    0.83 of the NCHW step time in bf16, 0.81 in fp32; docs/TRAINING.md); CUDA keeps
    NCHW (not measured).  The layout changes no value a step computes beyond float
    rounding order."""
    if choice in ("on", "off"):
        return choice == "on"
    return device.type == "cpu"


def device_name(device):
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    import platform
    return f"cpu ({platform.processor() or platform.machine()}, bf16 {'native' if cpu_has_native_bf16() else 'emulated'})"


def _add_segment(segments, until_step, lr, wcft_lr):
    """``segments`` ({until_step, lr, wcft_lr} of the processes a run was resumed
    through) plus this process's up to ``until_step``; equal neighbours merged."""
    out = [dict(g) for g in segments]
    if out and out[-1]["lr"] == lr and out[-1]["wcft_lr"] == wcft_lr:
        out[-1]["until_step"] = until_step
    else:
        out.append({"until_step": until_step, "lr": lr, "wcft_lr": wcft_lr})
    return out


def lr_at(args, step):
    if step >= args.steps:
        return args.wcft_lr
    if args.lr_drop and step >= args.lr_drop:
        return args.lr * 0.1
    return args.lr


# ----------------------------------------------------------------------------
# Export / import
# ----------------------------------------------------------------------------
def export_tensors(model):
    out = {}
    for name, m, _ in model.conv_layers():
        out[f"{name}.weight"] = m.weight.detach().float().contiguous().clone()
        out[f"{name}.bias"] = m.bias.detach().float().contiguous().clone()
    for n, p in model.entropy_bottleneck.named_parameters():
        out[f"entropy_bottleneck.{n}"] = p.detach().float().contiguous().clone()
    return out


def export(model, path, lam, provenance, fp16=False):
    from safetensors.torch import save_file
    t = export_tensors(model)
    if fp16:
        t = {k: v.half() for k, v in t.items()}
    meta = {"fxlic.arch": model.arch.to_json(), "fxlic.lambda": str(lam),
            "fxlic.provenance": json.dumps(provenance, sort_keys=True)}
    os.makedirs(os.path.dirname(os.path.abspath(path)) or ".", exist_ok=True)
    tmp = path + ".tmp"
    save_file(t, tmp, metadata=meta)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)
    print(f"exported {path} ({'fp16' if fp16 else 'fp32'}, {len(t)} tensors)", flush=True)


def load_weights(path, ha_input="y"):
    sd, meta = read_export(path)
    arch = Architecture.from_dict(json.loads(meta["fxlic.arch"]))
    model = Codec(arch, ha_input=ha_input)
    model.load_state_dict(sd, strict=True)
    return model, meta


# ----------------------------------------------------------------------------
# Evaluation
# ----------------------------------------------------------------------------
@torch.no_grad() if torch is not None else (lambda f: f)
def evaluate(model, d, limit=0, log=print):
    """Float bpp (from likelihoods, y_hat = round(y), z_hat = round(z)) and PSNR."""
    model.eval()
    files = list_images(d)
    if limit:
        files = files[:limit]
    mult = model.arch.pad_multiple
    rows = []
    for f in files:
        im = load_rgb(f)
        H, W = im.shape[:2]
        x = torch.from_numpy(im.copy()).permute(2, 0, 1)[None].float().div(255.0).to(
            next(model.parameters()).device)
        ph, pw = (-H) % mult, (-W) % mult
        xp = F.pad(x, (0, pw, 0, ph), mode="replicate") if (ph or pw) else x
        out = model(xp, mode="round")
        xh = out["x_hat"][..., :H, :W].clamp(0, 1)
        bpp = float(bpp_of(out["likelihoods"], H * W))
        xh8 = torch.round(xh * 255.0) / 255.0
        mse = float(F.mse_loss(xh8, x))
        rows.append((os.path.basename(f), bpp, psnr(mse)))
        log(f"  {os.path.basename(f)}: bpp {bpp:.4f} psnr {psnr(mse):.2f}")
    if rows:
        mb = sum(r[1] for r in rows) / len(rows)
        mp = sum(r[2] for r in rows) / len(rows)
        log(f"eval {d}: {len(rows)} images, mean bpp {mb:.4f}, mean PSNR {mp:.3f} dB "
            "(8-bit rounded reconstruction)")
        return mb, mp, rows
    return None


# ----------------------------------------------------------------------------
# Main loop
# ----------------------------------------------------------------------------
def seed_all(seed):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arch", default="hyperprior5", choices=sorted(ARCHITECTURES))
    p.add_argument("--N", type=int, default=128)
    p.add_argument("--lambda", dest="lam", type=float, default=0.0075)
    p.add_argument("--msssim", action="store_true", help="distortion 1-MS-SSIM (loss lambda*(1-msssim)+bpp)")
    p.add_argument("--ha-input", default="y", choices=("y", "y_hat"),
                   help="what HA0 reads during training (default y, as CompressAI)")
    p.add_argument("--data", default="/work/shared/data/train",
                   help="training images: a directory or a pack file written by --pack")
    p.add_argument("--pack", default=None, metavar="OUT.npz",
                   help="write --data as one uint8 pack file (for --device cuda runs) and exit")
    p.add_argument("--device", default="cpu", help="torch device: cpu, cuda, cuda:1, ...")
    p.add_argument("--amp", default="auto", choices=("auto", "bf16", "fp32"),
                   help="bf16 autocast for the conv transforms (entropy models and loss stay fp32); "
                        "auto: bf16 where the device supports it natively (CUDA, AVX-512 BF16 / AMX)")
    p.add_argument("--channels-last", default="auto", choices=("auto", "on", "off"),
                   help="NHWC weights and batches; auto: on on a CPU (faster oneDNN "
                        "convolutions), off on CUDA")
    p.add_argument("--minutes", type=float, default=0.0,
                   help="wall budget: after a timed warm-up, --steps (and --wcft-steps, --lr-drop) "
                        "are resolved so that the run, WCFT included, ends within it")
    p.add_argument("--lr-drop-frac", type=float, default=0.0,
                   help="with --minutes: lr/10 from this fraction of the resolved training steps")
    p.add_argument("--wcft-frac", type=float, default=0.04,
                   help="with --minutes and no --wcft-steps: steps per WCFT round as a fraction of the budget")
    p.add_argument("--crop", type=int, default=128)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--steps", type=int, default=0, help="normal training steps (I_1)")
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--lr-drop", type=int, default=0, help="step from which lr is lr/10 (0: never)")
    p.add_argument("--aux-lr", type=float, default=1e-3)
    p.add_argument("--eb-lr-mult", type=float, default=1.0,
                   help="lr multiplier for the entropy bottleneck's density parameters (short fine-tunes)")
    p.add_argument("--clip", type=float, default=1.0, help="gradient clipping max norm")
    p.add_argument("--wcft", default="", help="WCFT betas, e.g. 1 or 1,1.4142,1")
    p.add_argument("--wcft-steps", type=int, default=0, help="fine-tuning steps per WCFT round (I_3)")
    p.add_argument("--wcft-lr", type=float, default=1e-5)
    p.add_argument("--wcft-exponent", default="recompute", choices=("recompute", "first", "keep"),
                   help="rounds 2+: floor(log2 max|w|) of the current weights (Eq 21 'at that "
                        "moment', default) or kept from round 1 (docs/TRAINING.md, WCFT rounds); "
                        "keep: floor(log2 max|w|) + 1 in every round, the bound an earlier beta-1 round "
                        "left, so a WCFT'd model (the shipped weights) trains on under its clip "
                        "without being clipped again")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--run-name", default=None)
    p.add_argument("--ckpt-root", default="/work/ckpt")
    p.add_argument("--ckpt-minutes", type=float, default=3.0)
    p.add_argument("--log-every", type=int, default=10)
    p.add_argument("--resume", action="store_true")
    p.add_argument("--init", default=None,
                   help="checkpoint .pt or exported .safetensors to initialise the model from (fine-tune)")
    p.add_argument("--init-entropy", default=None,
                   help="checkpoint .pt or exported .safetensors whose entropy_bottleneck.* tensors "
                        "replace --init's (e.g. a "
                        "factorized run's bottleneck on y with a hyperprior run's transforms)")
    p.add_argument("--export", default=None, help="safetensors path written when training ends")
    p.add_argument("--export-nowcft", default=None, help="safetensors path written before WCFT starts")
    p.add_argument("--fp16", action="store_true")
    p.add_argument("--eval", default=None, help="image dir: float bpp/PSNR after training")
    p.add_argument("--eval-limit", type=int, default=0)
    p.add_argument("--weights", default=None, help="evaluate this safetensors file (no training)")
    p.add_argument("--bench", type=int, default=0, help="time this many steps and exit")
    args = p.parse_args(argv)
    if torch is None:
        raise SystemExit("tools/train.py needs torch (pip install torch==2.13.0)")
    torch.set_num_threads(args.threads)
    if args.pack:
        pack = PackedImages.load(args.data)
        pack.save(args.pack)
        print(f"packed {len(pack)} images from {args.data}: {pack.flat.size / 2 ** 20:.1f} MiB -> {args.pack}")
        return
    device = resolve_device(args.device)
    amp = use_bf16(device, args.amp)

    if args.weights:
        model, meta = load_weights(args.weights, args.ha_input)
        print(f"{args.weights}: {model.arch.name}, lambda {meta.get('fxlic.lambda')}")
        evaluate(model.to(device), args.eval or "/work/shared/data/kodak", args.eval_limit)
        return

    seed_all(args.seed)
    arch, model = build(args)
    if args.crop % arch.pad_multiple:
        raise SystemExit(f"--crop {args.crop}: must be a multiple of {arch.pad_multiple} for {arch.name}")
    if args.msssim and args.crop < 161:
        raise SystemExit(f"--crop {args.crop}: 5-scale MS-SSIM needs crops of at least 161 (use 192 or 256)")
    model.amp = amp
    model.to(device)
    channels_last = use_channels_last(device, args.channels_last)
    if channels_last:  # the 4-d weights and every batch NHWC (parameters keep their identity)
        model.to(memory_format=torch.channels_last)
    wcft = parse_wcft(args.wcft)
    total = args.steps + len(wcft) * args.wcft_steps
    run = args.run_name or f"{args.arch}-l{args.lam}"
    cdir = os.path.join(args.ckpt_root, run)
    os.makedirs(cdir, exist_ok=True)
    ckpt_path = os.path.join(cdir, "ckpt.pt")
    logf = open(os.path.join(cdir, "train.log"), "a")

    def log(msg):
        print(msg, flush=True)
        logf.write(msg + "\n")
        logf.flush()

    opt, aux_opt = make_optimizers(model, args.lr, args.aux_lr, args.eb_lr_mult)
    data = CropSampler(args.data, args.crop, args.seed, device,
                       torch.channels_last if channels_last else None)
    step = 0
    wall = 0.0
    init_info = {}
    wcft_state = {"round": -1, "bounds": {}, "masks": {}}
    plan = {}            # --minutes: the resolved steps (kept in the checkpoint)
    px_seen = [0, 0.0]   # pixels trained and seconds spent in this process (kpix/s)
    nowcft_done = False
    segments = []       # on resume: [{until_step, lr, wcft_lr}] of the earlier processes
    if args.resume and os.path.exists(ckpt_path):
        ck = load_checkpoint(ckpt_path)
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["opt"])
        if channels_last:  # Adam's moments in the parameters' layout (a checkpoint may be NCHW)
            for st in opt.state.values():
                for k, v in st.items():
                    if torch.is_tensor(v) and v.dim() == 4:
                        st[k] = v.contiguous(memory_format=torch.channels_last)
        aux_opt.load_state_dict(ck["aux_opt"])
        for g in aux_opt.param_groups:  # the command line decides the aux lr
            g["lr"] = args.aux_lr
        step, wall = ck["step"], ck["wall"]
        data.set_state(ck["data_rng"])
        torch.set_rng_state(ck["torch_rng"])
        if device.type == "cuda" and "cuda_rng" in ck:
            torch.cuda.set_rng_state(ck["cuda_rng"], device)
        if ck.get("budget_plan"):  # a --minutes run resumes with the steps it resolved
            plan.update(ck["budget_plan"])
            apply_plan(args, plan)
        set_np_rng_state(ck["np_rng"])
        random.setstate(ck["py_rng"])
        wcft_state = ck["wcft"]
        nowcft_done = ck.get("nowcft_done", False)
        init_info = ck.get("init_info", {})
        # the learning rates of the processes before this one (a resume may change them)
        # (a checkpoint stores them up to its own step; an older one without them: its args')
        prev = ck.get("args") or {}
        segments = ck.get("lr_segments") or _add_segment([], step, prev.get("lr"), prev.get("wcft_lr"))
        log(f"resumed {ckpt_path} at step {step} (wall {wall:.0f}s)")
    elif args.init:
        own = model.state_dict()

        def load_matching(path, keep):
            """Load the tensors of ``path`` that ``keep(name, same_kind)`` selects and whose
            shape matches; returns (checkpoint info, count, same_kind)."""
            src, ck = load_init_tensors(path)
            same_kind = (ck.get("arch_kind") or arch.kind) == arch.kind
            take = {k: v for k, v in src.items()
                    if k in own and own[k].shape == v.shape and keep(k, same_kind)}
            model.load_state_dict(take, strict=False)
            return ck, len(take), same_kind

        # across kinds (factorized <- hyperprior) only the transforms are taken
        ck, n, _ = load_matching(args.init, lambda k, same: same or not k.startswith("entropy_bottleneck."))
        init_info = {"init_steps": ck.get("step"), "init_wall_seconds": round(ck.get("wall", 0.0), 1),
                     "init_args": ck.get("args")}
        log(f"initialised {n}/{len(own)} tensors from {args.init}")
        if args.init_entropy:
            ck2, n2, same = load_matching(args.init_entropy, lambda k, same: same and k.startswith("entropy_bottleneck."))
            if not same:
                raise SystemExit(f"--init-entropy {args.init_entropy}: not a {arch.kind} checkpoint")
            src = args.init_entropy if args.init_entropy.endswith(".safetensors") else os.path.dirname(args.init_entropy)
            init_info["init_entropy"] = {"path": os.path.basename(src),
                                         "steps": ck2.get("step")}
            log(f"entropy bottleneck: {n2} tensors from {args.init_entropy}")

    provenance = {"command": " ".join([os.path.basename(sys.executable)] + sys.argv),
                  "seed": args.seed, "crop": args.crop, "batch": args.batch,
                  "lr": args.lr, "lr_drop": args.lr_drop, "wcft_lr": args.wcft_lr,
                  "wcft_exponent": args.wcft_exponent,
                  "init": args.init, "init_entropy": args.init_entropy, "torch": torch.__version__,
                  "arch": arch.name,
                  "lambda": args.lam, "msssim": args.msssim, "ha_input": args.ha_input,
                  "device": device_name(device), "amp": "bf16" if amp else "fp32",
                  "memory_format": "channels_last" if channels_last else "nchw"}

    def prov(steps_done, rounds):
        d = dict(provenance)
        d.update({"steps": steps_done, "train_steps": min(steps_done, args.steps),
                  "wcft_rounds": rounds, "wcft_steps_per_round": args.wcft_steps if rounds else 0,
                  "wall_seconds": round(wall, 1),
                  "kpix_per_s": round(px_seen[0] / max(px_seen[1], 1e-9) / 1e3, 1),
                  "lr_drop": args.lr_drop})
        if plan:
            d["budget"] = {"minutes": args.minutes, **plan}
        if init_info:
            d["init_from"] = init_info
        if segments:  # resumed: the earlier processes' learning rates, then this one's (lr, wcft_lr)
            d["lr_segments"] = _add_segment(segments, steps_done, args.lr, args.wcft_lr)
        return d

    def segments_now():
        """The lr segments to store: the earlier processes', then this one's up to now."""
        return _add_segment(segments, step, args.lr, args.wcft_lr) if segments else []

    def save():
        atomic_save({"model": model.state_dict(), "opt": opt.state_dict(),
                     "aux_opt": aux_opt.state_dict(), "step": step, "wall": wall,
                     "data_rng": data.state(), "torch_rng": torch.get_rng_state(),
                     "np_rng": np_rng_state(), "py_rng": random.getstate(),
                     "wcft": wcft_state, "nowcft_done": nowcft_done, "arch_kind": arch.kind,
                     "init_info": init_info, "budget_plan": plan, "lr_segments": segments_now(),
                     **({"cuda_rng": torch.cuda.get_rng_state(device)} if device.type == "cuda" else {}),
                     "args": vars(args)}, ckpt_path)

    convs = {name: (m, od) for name, m, od in model.conv_layers()}

    def start_round(r):
        beta = wcft[r]
        wcft_state["round"] = r
        wcft_state["bounds"], wcft_state["masks"] = {}, {}
        ref = wcft_state.setdefault("ref_max", {})
        with torch.no_grad():
            for name, (m, od) in convs.items():
                if args.wcft_exponent == "first":  # round 1's exponent in every round
                    if r == 0 or name not in ref:
                        ref[name] = channel_maxabs(m.weight, od)
                    b = wcft_bound_torch(m.weight, beta, out_dim=od, maxabs=ref[name])
                elif args.wcft_exponent == "keep":  # the range an earlier beta-1 round left
                    b = wcft_bound_torch(m.weight, beta, out_dim=od, maxabs=2 * channel_maxabs(m.weight, od))
                else:  # Eq 21 "at that moment": the exponent of the current weights
                    b = wcft_bound_torch(m.weight, beta, out_dim=od)
                clipped, mask = wcft_clip_torch(m.weight, beta, out_dim=od, bound=b)
                m.weight.copy_(clipped)
                wcft_state["bounds"][name] = b
                wcft_state["masks"][name] = mask
        # fresh Adam state so that masked (clipped) weights do not drift on momentum
        opt.state.clear()
        n_clip = sum(int((~mk).sum()) for mk in wcft_state["masks"].values())
        log(f"WCFT round {r + 1}/{len(wcft)} beta {beta}: clipped {n_clip} weights, step {step}")

    csv_path = os.path.join(cdir, "log.csv")
    new_csv = not os.path.exists(csv_path)
    csvf = open(csv_path, "a", newline="")
    cw = csv.writer(csvf)
    if new_csv:
        cw.writerow(["step", "phase", "loss", "bpp", "mse", "psnr", "aux", "lr", "wall_s"])

    if args.bench:
        model.train()
        times = []
        for i in range(args.bench + 2):
            t0 = time.time()
            x = data.batch(args.batch)
            out = model(x)
            mse = F.mse_loss(out["x_hat"], x)
            loss = args.lam * 255 ** 2 * mse + bpp_of(out["likelihoods"], x.numel() / 3)
            opt.zero_grad()
            loss.backward()
            opt.step()
            times.append(time.time() - t0)
        t = sum(times[2:]) / args.bench
        log(f"bench {arch.name} crop {args.crop} batch {args.batch} threads {args.threads} "
            f"{'bf16' if amp else 'fp32'}{' channels-last' if channels_last else ''} on {device_name(device)}: "
            f"{t:.3f} s/step, {1 / t:.3f} steps/s, {args.batch * args.crop ** 2 / t / 1e3:.1f} kpix/s")
        return

    # SIGTERM / SIGINT: finish the current step, checkpoint, exit (resume with --resume)
    stop = []

    def on_signal(signum, frame):
        stop.append(signum)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, on_signal)

    last_save = time.time()
    acc = {"loss": 0.0, "bpp": 0.0, "mse": 0.0, "aux": 0.0, "n": 0}
    model.train()
    budget = args.minutes * 60.0
    if budget and not plan:
        args.steps = 1 << 40  # training phase until the plan is resolved
    step0, t_start, t_warm = step, time.time(), None
    rates = []  # (time, step) after each step of this process, for the budget tracking
    t_prev = time.time()
    while True:
        if budget and not plan:
            if step - step0 == 2:  # the first 2 steps (allocation, autotuning) are not timed
                t_warm = time.time()
            elif step - step0 == BUDGET_WARMUP:
                rate = (BUDGET_WARMUP - 2) / max(time.time() - t_warm, 1e-9)
                plan.update(resolve_plan(args, len(wcft), step, wall, rate))
                apply_plan(args, plan)
                log(f"budget {args.minutes:g} min at {rate:.3f} steps/s: {args.steps} training steps "
                    f"(lr drop at {args.lr_drop or 'none'}), {len(wcft)} WCFT round(s) of {args.wcft_steps}")
                warning = short_restart_warning(args)
                if warning:
                    log(warning)
        if budget and plan and not plan.get("replanned") and step < args.steps \
                and time.time() - t_start > BUDGET_REPLAN * budget:
            # once, at 10 % of the budget: the warm-up rate is refined with a longer window
            rate = (step - step0 - 2) / max(time.time() - t_warm, 1e-9)
            plan.update(resolve_plan(args, len(wcft), step, wall, rate), replanned=True)
            apply_plan(args, plan)
            log(f"budget re-planned at {rate:.3f} steps/s: {args.steps} training steps "
                f"(lr drop at {args.lr_drop or 'none'}), WCFT rounds of {args.wcft_steps}")
        total = args.steps + len(wcft) * args.wcft_steps
        if budget and plan.get("replanned") and step < args.steps and step - step0 >= BUDGET_WARMUP \
                and step % BUDGET_TRACK_EVERY == 0:
            # tracking: a shared machine changes speed; refit the training steps to the budget
            # from the rate of the last BUDGET_TRACK_WINDOW steps (shorter or longer; the lr drop
            # moves with them while it lies ahead)
            rate_now = recent_rate(rates, step)
            if rate_now:
                fit = step + int((budget * BUDGET_SAFETY - wall) * rate_now) - len(wcft) * args.wcft_steps
                fit = max(step, fit)
                if abs(fit - args.steps) > BUDGET_TOLERANCE * max(args.steps, 1):
                    plan["adjusted"] = plan.get("adjusted", 0) + 1
                    args.steps = plan["steps"] = fit
                    if args.lr_drop_frac and (args.lr_drop == 0 or args.lr_drop > step):
                        args.lr_drop = plan["lr_drop"] = max(step, int(fit * args.lr_drop_frac))
                    log(f"budget: {rate_now:.3f} steps/s over the last steps -> {args.steps} training "
                        f"steps (lr drop at {args.lr_drop or 'none'})")
                    total = args.steps + len(wcft) * args.wcft_steps
        if step >= total:
            break
        phase, r = phase_of(step, args.steps, wcft, args.wcft_steps)
        if phase == "wcft":
            if not nowcft_done:
                if args.export_nowcft:
                    export(model, args.export_nowcft, args.lam, prov(step, 0), args.fp16)
                nowcft_done = True
                save()
            if wcft_state["round"] != r:
                start_round(r)
                save()
        lr = lr_at(args, step)
        for g in opt.param_groups:
            g["lr"] = lr * g.get("lr_mult", 1.0)
        x = data.batch(args.batch)
        out = model(x, mode="noise")
        bpp = bpp_of(out["likelihoods"], x.shape[0] * x.shape[2] * x.shape[3])
        mse = F.mse_loss(out["x_hat"], x)
        if args.msssim:
            dist = 1 - ms_ssim(out["x_hat"].clamp(0, 1), x)
            loss = args.lam * dist + bpp
        else:
            loss = args.lam * 255 ** 2 * mse + bpp
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if phase == "wcft":
            for name, (m, od) in convs.items():
                if m.weight.grad is not None:
                    m.weight.grad.mul_(wcft_state["masks"][name].to(m.weight.grad.dtype))
        if args.clip > 0:
            torch.nn.utils.clip_grad_norm_([q for g in opt.param_groups for q in g["params"]], args.clip)
        opt.step()
        if phase == "wcft":
            with torch.no_grad():
                for name, (m, od) in convs.items():
                    b = wcft_state["bounds"][name].reshape(_bshape(m.weight, od)).to(m.weight.dtype)
                    m.weight.copy_(torch.maximum(torch.minimum(m.weight, b), -b))
        aux_opt.zero_grad(set_to_none=True)
        aux = model.entropy_bottleneck.loss()
        aux.backward()
        aux_opt.step()
        step += 1
        now = time.time()
        rates.append((now, step))
        wall += now - t_prev
        px_seen[0] += x.shape[0] * x.shape[2] * x.shape[3]
        px_seen[1] += now - t_prev
        t_prev = now
        acc["loss"] += float(loss.detach())
        acc["bpp"] += float(bpp.detach())
        acc["mse"] += float(mse.detach())
        acc["aux"] += float(aux.detach())
        acc["n"] += 1
        if step % args.log_every == 0 or step == total:
            n = acc["n"]
            m_mse = acc["mse"] / n
            row = [step, phase if phase != "wcft" else f"wcft{r + 1}", acc["loss"] / n, acc["bpp"] / n,
                   m_mse, psnr(m_mse), acc["aux"] / n, lr, round(wall, 1)]
            cw.writerow([f"{v:.6g}" if isinstance(v, float) else v for v in row])
            csvf.flush()
            log(f"step {step}/{total} [{row[1]}] loss {row[2]:.4f} bpp {row[3]:.4f} "
                f"psnr {row[5]:.2f} aux {row[6]:.1f} lr {lr:g} wall {wall:.0f}s "
                f"({step / max(wall, 1e-9):.3f} st/s avg)")
            acc = {"loss": 0.0, "bpp": 0.0, "mse": 0.0, "aux": 0.0, "n": 0}
        if now - last_save > args.ckpt_minutes * 60:
            save()
            last_save = time.time()
        if stop:
            save()
            log(f"signal {stop[0]}: checkpoint written at step {step}; continue with --resume")
            if budget and args.export:  # a budgeted run (nothing may persist) keeps what it has
                provenance["phase_complete"] = False
                export(model, args.export, args.lam, prov(step, max(0, wcft_state["round"] + 1)), args.fp16)
            return
    if step >= total and total > 0:
        save()
    # export
    rounds = len(wcft) if step >= total else 0
    if not wcft and args.export_nowcft:
        export(model, args.export_nowcft, args.lam, prov(step, 0), args.fp16)
    if args.export:
        provenance["phase_complete"] = step >= total
        export(model, args.export, args.lam, prov(step, rounds), args.fp16)
    if args.eval:
        evaluate(model, args.eval, args.eval_limit, log=log)


if __name__ == "__main__":
    main()
