"""The first symbol of a rANS substream that decodes differently from the
golden one: both substreams decoded with the golden model's tables and the
golden table indexes (the longest decodable prefix where a dump breaks off)."""
from __future__ import annotations

import numpy as np

from .golden import Golden
from .results import VerifyError, position, unravel


def decode_prefix(data: bytes, idx, cdfs, sizes, offs):
    """(the longest prefix of symbols that decodes, error text or None).
    rANS decodes in order, so decoding the first n indexes gives the first n
    symbols of the whole stream."""
    from ..entropy import rans_numba as R

    try:
        return R.decode_with_indexes(data, idx, cdfs, sizes, offs, strict=False), None
    except ValueError as e:
        err = str(e)

    def ok(n):
        try:
            R.decode_with_indexes(data, idx[:n], cdfs, sizes, offs, strict=False)
            return True
        except ValueError:
            return False

    if not ok(0):
        return np.zeros(0, np.int32), err
    lo, hi = 0, len(idx)  # ok(lo), not ok(hi)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if ok(mid):
            lo = mid
        else:
            hi = mid
    return R.decode_with_indexes(data, idx[:lo], cdfs, sizes, offs, strict=False), err


def substream_model(G: Golden, which: str):
    """(indexes, cdfs, sizes, offsets, shape) to decode substream ``which``
    ("z" | "y"), or a string saying why not."""
    tables = G.tables()
    if isinstance(tables, str):
        return tables
    fact, gauss = tables
    kind = G.m.get("model", {}).get("arch_kind", "hyperprior")
    if which == "z" or kind != "hyperprior":
        t = fact
        name = "z" if which == "z" else "y"
        if G.has(f"entropy/{name}_idx"):
            idx = G.tensor(f"entropy/{name}_idx")
            shape = idx.shape
        else:
            src = [n for n in (name, f"entropy/{name}_sym") if G.has(n)]
            if not src:
                return f"the case has no {name} or entropy/{name}_idx: symbols not decoded"
            shape = tuple(G.m["tensors"][src[0]]["shape"])
            idx = np.broadcast_to(np.arange(shape[0], dtype=np.int32)[:, None, None], shape)
    else:
        t = gauss
        if not G.has("entropy/y_idx"):
            return "the case has no entropy/y_idx (table indexes): symbols not decoded"
        idx = G.tensor("entropy/y_idx")
        shape = idx.shape
    idx = np.ascontiguousarray(np.asarray(idx).reshape(-1), dtype=np.int32)
    return idx, t.cdfs, t.cdf_sizes, t.offsets, tuple(shape)


def rans_symbol_diff(G: Golden, which: str, golden: bytes, got: bytes):
    """The first symbol of substream ``which`` that decodes differently, as a
    dict (``symbol`` = its number in coding order, ``index`` = (c, y, x)), or
    a string when the symbols cannot be decoded."""
    from ..entropy import rans_numba as R

    mod = substream_model(G, which)
    if isinstance(mod, str):
        return mod
    idx, cdfs, sizes, offs, shape = mod
    try:
        exp = R.decode_with_indexes(golden, idx, cdfs, sizes, offs, strict=True)
    except ValueError as e:
        raise VerifyError(f"the golden {which} substream does not decode with the model's tables ({e})") from None
    dec, err = decode_prefix(got, idx, cdfs, sizes, offs)
    n = min(dec.size, exp.size)
    bad = np.flatnonzero(dec[:n] != exp[:n])
    axes = ["C", "H", "W"][:len(shape)]
    N = int(exp.size)
    if bad.size:
        i = int(bad[0])
        return {"substream": which, "symbol": i, "of": N, "index": unravel(shape, i),
                "at": position(axes, shape, i), "expected": int(exp[i]), "got": int(dec[i]),
                "decodes_to_the_end": err is None,
                "text": f"{which} substream: first symbol that decodes differently: #{i} of {N} at "
                        f"{position(axes, shape, i)}: expected {int(exp[i])}, got {int(dec[i])}"}
    if dec.size < N:
        i = int(dec.size)
        return {"substream": which, "symbol": i, "of": N, "index": unravel(shape, i),
                "at": position(axes, shape, i), "expected": int(exp[i]), "got": None, "error": err,
                "decodes_to_the_end": False,
                "text": f"{which} substream: decoding stops at symbol #{i} of {N} at "
                        f"{position(axes, shape, i)} (expected {int(exp[i])}): {err}"}
    try:
        R.decode_with_indexes(got, idx, cdfs, sizes, offs, strict=True)
        tail = "the streams differ only in bytes the decoder does not read"
    except ValueError as e:
        tail = f"the end-of-stream check fails ({e})"
    return {"substream": which, "symbol": None, "of": N, "decodes_to_the_end": True,
            "text": f"{which} substream: all {N} symbols decode to the golden ones; {tail}"}
