"""What ``fxlic verify`` reports: the statuses, one ``TensorResult`` per
compared tensor or byte file, the error for an unusable golden directory, and
how an element's flat index is named (``position``: ``channel=3 y=0 x=5``)."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

PASS, FAIL, MISSING, MALFORMED, SKIPPED = "PASS", "FAIL", "MISSING", "MALFORMED", "SKIPPED"
STATUSES = (PASS, FAIL, MISSING, MALFORMED, SKIPPED)
SCOPES = ("all", "encoder", "decoder")
#: how many mismatching elements are listed by default
DEFAULT_MAX_MISMATCHES = 10


class VerifyError(ValueError):
    """The golden directory itself is unusable (no manifest, corrupt file...)."""


@dataclass
class TensorResult:
    """The comparison of one golden tensor or byte file with the port's dump."""

    name: str
    group: str  # the layer name, or the top-level group ("entropy", "stream", ...)
    status: str
    message: str = ""
    mismatches: int = 0  # differing elements (bytes for a byte file)
    elements: int = 0  # elements (bytes) of the golden tensor (file)
    files: list = field(default_factory=list)
    kind: str = "tensor"  # "tensor" | "bytes"
    shape: list = None
    axes: list = None
    max_abs_diff: int = None
    per_channel: dict = None  # {channel: differing elements}, for tensors whose first axis is C / O
    listed: list = field(default_factory=list)  # first mismatching elements (dicts)
    first_offset: int = None  # bytes: first differing byte
    region: str = None  # bytes: where that byte is (header field, substream...)
    symbol: dict = None  # rANS: the first symbol that decodes differently
    details: list = field(default_factory=list)  # extra report lines
    mask: np.ndarray = None  # 1 where an element differs (keep_masks)
    seconds: float = 0.0

    def as_dict(self) -> dict:
        d = {"name": self.name, "group": self.group, "kind": self.kind, "status": self.status,
             "message": self.message, "files": list(self.files), "elements": self.elements,
             "mismatches": self.mismatches}
        if self.kind == "tensor":
            d.update(shape=self.shape, axes=self.axes, max_abs_diff=self.max_abs_diff,
                     per_channel=None if self.per_channel is None else
                     {str(k): v for k, v in sorted(self.per_channel.items())},
                     first_mismatches=self.listed)
        else:
            d.update(first_offset=self.first_offset, region=self.region, symbol=self.symbol)
        if self.details:
            d["details"] = list(self.details)
        return d


AXIS_NAMES = {"C": "channel", "H": "y", "W": "x", "O": "out_channel", "KY": "ky", "KX": "kx",
              "INDEX": "index", "CODE": "code", "N": "i"}


def unravel(shape, flat_index) -> list:
    return [int(i) for i in np.unravel_index(int(flat_index), tuple(shape))] if len(shape) else []


def position(axes, shape, flat_index) -> str:
    idx = unravel(shape, flat_index)
    axes = axes or [f"d{i}" for i in range(len(shape))]
    return " ".join(f"{AXIS_NAMES.get(a, a)}={int(i)}" for a, i in zip(axes, idx)) or "scalar"
