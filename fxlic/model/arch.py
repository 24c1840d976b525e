"""Architectures as data: a model is a list of LayerSpec (docs/SPEC.md, section L).

``hyperprior5(N)`` is exactly the layer table of the paper's Fig. 1 as given in
architecture-notes.md (AT0-AT3, HA0-HA2, HS0-HS5, ST0-ST3); ``factorized(N)``
is its main path only.  ``src`` names the tensor a layer reads: ``x`` (input
pixels), ``y`` (the latent as h_a reads it: continuous in the float model,
equal to ``y_hat`` in the integer model, where Eq 1 rounds it at its
source), ``y_hat``, ``z_hat`` or another layer's name.

``out`` says what a layer's output is:
  act    an 8-bit activation (NLQ+mux after ReLU, LQ after LeakyReLU/none)
  y, z   the latent, rounded to integers (Eq 1, Eq 2)
  ms     HS5: 8-bit LQ activation, channels [0, M) scales and [M, 2M) means
         (the order of CompressAI's mean-scale hyperprior: chunk(2) -> scales, means)
  pixel  ST3: the reconstruction, 8-bit pixels
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

OPS = ("conv", "tconv")
ACTS = ("relu", "leaky", "none")
OUTS = ("act", "y", "z", "ms", "pixel")


@dataclass(frozen=True)
class LayerSpec:
    name: str
    op: str  # conv | tconv
    k: int
    stride: int
    cin: int
    cout: int
    act: str  # relu | leaky (slope 1/8) | none
    src: str
    out: str = "act"
    path: str = "main"  # main | hyper

    def __post_init__(self):
        if self.op not in OPS or self.act not in ACTS or self.out not in OUTS:
            raise ValueError(f"layer {self.name}: bad op/act/out")
        if self.k < 1 or self.k % 2 == 0 or self.stride not in (1, 2):
            raise ValueError(f"layer {self.name}: kernel must be odd, stride 1 or 2")
        if self.op == "tconv" and self.stride != 2:
            raise ValueError(f"layer {self.name}: tconv must have stride 2")

    @property
    def pad(self) -> int:
        return self.k // 2

    def out_hw(self, h: int, w: int) -> tuple:
        """Output size: conv ceil(h/s) (pad k//2), tconv 2h (output padding 1)."""
        if self.op == "tconv":
            return 2 * h, 2 * w
        s = self.stride
        return (h + 2 * self.pad - self.k) // s + 1, (w + 2 * self.pad - self.k) // s + 1

    def macs(self, h_in: int, w_in: int) -> int:
        """MACs; a tconv is counted as input positions x k^2 x Cin x Cout."""
        if self.op == "tconv":
            return h_in * w_in * self.k * self.k * self.cin * self.cout
        ho, wo = self.out_hw(h_in, w_in)
        return ho * wo * self.k * self.k * self.cin * self.cout

    @property
    def n_weights(self) -> int:
        return self.k * self.k * self.cin * self.cout


@dataclass(frozen=True)
class Architecture:
    name: str
    kind: str  # hyperprior | factorized
    N: int
    M: int
    layers: tuple = field(default_factory=tuple)

    #: every image is padded to a multiple of this (SPEC P1)
    @property
    def pad_multiple(self) -> int:
        return 64 if self.kind == "hyperprior" else 16

    def layer(self, name: str) -> LayerSpec:
        for l in self.layers:
            if l.name == name:
                return l
        raise KeyError(name)

    @property
    def names(self) -> list:
        return [l.name for l in self.layers]

    def group(self, prefix: str) -> list:
        return [l for l in self.layers if l.name.startswith(prefix)]

    @property
    def encoder(self) -> list:
        """g_a + h_a + h_s (the encoder needs h_s for the y entropy model)."""
        return [l for l in self.layers if l.name[:2] in ("AT", "HA", "HS")]

    @property
    def decoder(self) -> list:
        """h_s + g_s."""
        return [l for l in self.layers if l.name[:2] in ("HS", "ST")]

    def to_json(self) -> str:
        d = {"name": self.name, "kind": self.kind, "N": self.N, "M": self.M,
             "layers": [asdict(l) for l in self.layers]}
        return json.dumps(d, indent=1, sort_keys=True)

    @staticmethod
    def from_dict(d: dict) -> "Architecture":
        try:
            layers = tuple(LayerSpec(**l) for l in d["layers"])
            arch = Architecture(str(d["name"]), str(d["kind"]), int(d["N"]), int(d["M"]), layers)
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"malformed architecture description: {e}") from None
        arch.validate()
        return arch

    def validate(self):
        """Check the graph: sources exist, channel counts chain, outputs present."""
        seen = {"x": 3}
        if self.kind not in ("hyperprior", "factorized"):
            raise ValueError(f"unknown architecture kind {self.kind!r}")
        outs = {l.out: l for l in self.layers}
        need = ("y", "pixel", "z", "ms") if self.kind == "hyperprior" else ("y", "pixel")
        for o in need:
            if o not in outs:
                raise ValueError(f"architecture {self.name}: no layer produces {o!r}")
        if "y" in outs:
            seen["y_hat"] = seen["y"] = outs["y"].cout
        if "z" in outs:
            seen["z_hat"] = outs["z"].cout
        for l in self.layers:
            if l.src not in seen:
                raise ValueError(f"layer {l.name}: source {l.src!r} not produced earlier")
            if seen[l.src] != l.cin:
                raise ValueError(f"layer {l.name}: expects {l.cin} input channels, "
                                 f"{l.src} has {seen[l.src]}")
            seen[l.name] = l.cout
        if "ms" in outs and outs["ms"].cout != 2 * self.M:
            raise ValueError("means/scales layer must have 2*M outputs")


def _main_path(N: int, M: int) -> tuple:
    L = LayerSpec
    ga = (L("AT0", "conv", 5, 2, 3, N, "relu", "x"),
          L("AT1", "conv", 5, 2, N, N, "relu", "AT0"),
          L("AT2", "conv", 5, 2, N, N, "relu", "AT1"),
          L("AT3", "conv", 5, 2, N, M, "none", "AT2", out="y"))
    gs = (L("ST0", "tconv", 5, 2, M, N, "relu", "y_hat"),
          L("ST1", "tconv", 5, 2, N, N, "relu", "ST0"),
          L("ST2", "tconv", 5, 2, N, N, "relu", "ST1"),
          L("ST3", "tconv", 5, 2, N, 3, "none", "ST2", out="pixel"))
    return ga, gs


def hyperprior5(N: int = 128, M: int | None = None) -> Architecture:
    """Mean-scale hyperprior of Fig. 1 (hyperprior-5 of [28])."""
    M = N if M is None else M
    L = LayerSpec
    ga, gs = _main_path(N, M)
    ha = (L("HA0", "conv", 3, 1, M, N, "leaky", "y", path="hyper"),
          L("HA1", "conv", 5, 2, N, N, "leaky", "HA0", path="hyper"),
          L("HA2", "conv", 5, 2, N, N, "none", "HA1", out="z", path="hyper"))
    hs = (L("HS0", "tconv", 5, 2, N, N, "leaky", "z_hat", path="hyper"),
          L("HS1", "tconv", 5, 2, N, N, "leaky", "HS0", path="hyper"),
          L("HS2", "conv", 3, 1, N, 2 * N, "leaky", "HS1", path="hyper"),
          L("HS3", "conv", 1, 1, 2 * N, 5 * N, "leaky", "HS2", path="hyper"),
          L("HS4", "conv", 1, 1, 5 * N, 4 * N, "leaky", "HS3", path="hyper"),
          L("HS5", "conv", 1, 1, 4 * N, 2 * M, "none", "HS4", out="ms", path="hyper"))
    arch = Architecture(f"hyperprior5-N{N}", "hyperprior", N, M, ga + ha + hs + gs)
    arch.validate()
    return arch


def factorized(N: int = 128, M: int | None = None) -> Architecture:
    """Factorized-prior model: g_a and g_s only, factorized entropy model on y."""
    M = N if M is None else M
    ga, gs = _main_path(N, M)
    arch = Architecture(f"factorized-N{N}", "factorized", N, M, ga + gs)
    arch.validate()
    return arch


ARCHITECTURES = {"hyperprior5": hyperprior5, "factorized": factorized}
