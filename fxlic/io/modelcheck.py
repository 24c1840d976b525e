"""The one validation pass over an integer model (docs/MODEL_FORMAT.md 4, "Loading").

Every entry point runs ``check_model`` before it trusts an ``IntModel``:
``load_model`` / ``read_model_file`` (so ``fxlic compress``, ``decompress``,
``info``, ``models``, ``vectors`` and the Python API's loaders) and
``fxlic.codec.compress`` / ``decompress`` for models built in memory
(``checked_tables``, cached by content hash).  It raises ``ModelError`` with a
one-line message and, on success, returns the entropy tables the codec uses.

Rules, in order:

* K1 architecture: the canonical layer list of ``hyperprior5(N, M)`` or
  ``factorized(N, M)`` with 1 <= N, M <= MAX_CHANNELS (the codec's latent
  shapes and pad multiple assume exactly these layers);
* K2 layers: ``IntModel.validate()`` (shapes, dtypes, exponent chaining, mux,
  shift ranges, int32 biases, SPEC A3 accumulator bound), after a float
  pre-bound that refuses sums which could wrap int64 (those exceed A3 anyway);
* K3 mean reduction: mask (M,) of 0/1, a_q and b_q (M,) in int32, zero off
  the mask;
* K4 entropy tables: exactly the ``fact.*`` names (plus ``gauss.*`` for a
  hyperprior) of docs/ENTROPY.md, each of the right rank, at most
  MAX_TABLE_CELLS cells, and accepted by ``FactorizedTables`` /
  ``GaussianTables`` (cdfs from 0 to 2^16, strictly increasing, sizes in
  range, offsets within +-2^24, non-decreasing thresholds, 0 <= S, F <= 40); the
  factorized tables have one row per channel of z (hyperprior) or y;
  ``gauss.frac_bits`` is exactly [S, F];
* K5 means/scales: for every HS5 channel the left shift of SPEC E1 stays in
  int64 (e + S <= 55, e + F <= 55 for |code| <= 128) and a mean fits int32
  (e <= 23), so ``y_hat - mean`` is codable;
* K6 meta: the provenance keys fxlic prints have the types it prints.

K2 is a proof about the arrays alone, so its outcome is a function of the content
hash: the shipped models' hashes are listed in ``fxlic/zoo/proven.json`` (written
by tools/make_zoo.py after a full check; tests/test_zoo_proven.py runs the full
check on every entry again), and a file whose computed content hash is listed
skips K2's 0.3-0.5 s per process (issue 20); K1 and K3-K6 always run, and any
other content is checked in full.

Names outside the ``fact.`` / ``gauss.`` namespaces are kept as opaque integer
arrays (the file format allows them; the codec ignores them).
"""
from __future__ import annotations

import functools
import json
import os
from dataclasses import dataclass

import numpy as np

from ..model.arch import ARCHITECTURES
from ..model.intmodel import IntModel, ModelError
from ..spec import INT32_MAX

#: largest N or M of a model fxlic loads (CompressAI's largest is 320)
MAX_CHANNELS = 1024
#: largest padded cdf matrix (rows x max_len) of one table set
MAX_TABLE_CELLS = 1 << 23
FACT_NAMES = {"cdfs": 2, "cdf_sizes": 1, "offsets": 1}  # name -> rank
GAUSS_NAMES = {"cdf_sizes": 1, "offsets": 1, "thresholds": 1, "frac_bits": 1}
#: SPEC E1 left shifts of an HS5 code (|code| <= 2^7) must stay below 2^62
MAX_E1_SHIFT = 55
#: a mean's integer part must fit int32 with room for y_hat (|code| 2^7 * 2^23)
MAX_MEAN_EXP = 23
#: K4: |offset| bound, so that symbol - offset fits int32 for every codable
#: symbol (|y - mean| <= 2^30 + 2^9 by K5)
MAX_ABS_OFFSET = 1 << 24
#: a float pre-bound above this means the int64 sums of SPEC A3 could wrap
FLOAT_PREBOUND = float(1 << 40)

_META_TYPES = {"weight_scheme": str, "act_quant": str, "float_model": dict,
               "calibration": dict, "mean_reduction": bool, "created_by": str}


@dataclass(frozen=True)
class EntropyTables:
    fact: object  # FactorizedTables
    gauss: object = None  # GaussianTables (hyperprior only)


def check_architecture(arch) -> None:
    """K1: the canonical layer list for the kind, N and M in range."""
    ctor = {"hyperprior": ARCHITECTURES["hyperprior5"], "factorized": ARCHITECTURES["factorized"]}
    if arch.kind not in ctor:
        raise ModelError(f"unknown architecture kind {arch.kind!r}")
    if not (1 <= arch.N <= MAX_CHANNELS and 1 <= arch.M <= MAX_CHANNELS):
        raise ModelError(f"architecture N={arch.N}, M={arch.M} outside 1..{MAX_CHANNELS}")
    want = ctor[arch.kind](arch.N, arch.M)
    if tuple(arch.layers) != tuple(want.layers):
        bad = next((a.name for a, b in zip(arch.layers, want.layers) if a != b), None)
        raise ModelError(f"architecture {arch.name}: layer list differs from {want.name} "
                         f"(first difference at {bad or 'the layer count'})")


def _prebound(im: IntModel) -> None:
    """K2: sum |w| * max|x| * 2^d in float64; refuses before int64 could wrap.

    sum |w| (hi - lo) 2^d equals pos - neg of SPEC A3, so a float value over
    2^40 means the exact bound is over 2^31 anyway.  Layers whose arrays are
    malformed are skipped: validate() names their problem."""
    for spec in im.arch.layers:
        try:
            s = _float_sum(im, spec)
        except (ValueError, TypeError, IndexError, KeyError, AttributeError, OverflowError):
            continue
        if s is not None and s > FLOAT_PREBOUND:
            raise ModelError(f"{spec.name}: worst-case accumulator exceeds 2^31-1 (SPEC A3)")


def _float_sum(im: IntModel, spec):
    L = im.layers[spec.name]
    if L.w_codes.dtype != np.int8 or L.w_codes.shape != (spec.cout, spec.cin, spec.k, spec.k) \
            or L.w_lut.shape != (256,) or L.in_exp.shape != (spec.cin,):
        return None
    d = L.in_exp.astype(np.float64) - float(L.in_exp.min())
    if d.max() > 30:
        return None  # validate() refuses the spread
    lo, hi = im.input_range(spec)
    xmax = np.maximum(np.abs(lo), np.abs(hi)).astype(np.float64) * np.exp2(d)
    w = np.abs(L.w_lut.astype(np.float64))[L.w_codes.astype(np.int64) + 128]
    return float((w * xmax[None, :, None, None]).sum(axis=(1, 2, 3)).max())


def _check_mean_reduction(im: IntModel) -> None:
    """K3."""
    M = im.arch.M
    for nm in ("mr_mask", "mr_a_q", "mr_b_q"):
        a = getattr(im, nm)
        if not isinstance(a, np.ndarray) or a.shape != (M,) or a.dtype.kind not in "biu":
            raise ModelError(f"mean-reduction {nm[3:]} must be an integer array of shape ({M},)")
    mask = im.mr_mask
    if mask.dtype != bool and np.any((mask != 0) & (mask != 1)):
        raise ModelError("mean-reduction mask holds values other than 0/1")
    mask = mask.astype(bool)
    for nm, a in (("a_q", im.mr_a_q), ("b_q", im.mr_b_q)):
        big = a.dtype == np.uint64 and a.size and a.max() > INT32_MAX
        if big or np.any(np.abs(a.astype(np.int64)) > INT32_MAX):
            raise ModelError(f"mean-reduction {nm} outside int32")
        if np.any(a[~mask] != 0):
            raise ModelError(f"mean-reduction {nm} non-zero on a channel not mean-reduced")


def _group(ent: dict, prefix: str, names: dict, alternatives=()) -> dict:
    got = {k[len(prefix):]: v for k, v in ent.items() if k.startswith(prefix)}
    for k, v in got.items():
        if not isinstance(v, np.ndarray) or v.dtype.kind not in "iu":
            raise ModelError(f"entropy table {prefix}{k} is not an integer array")
    want = dict(names)
    for alt in alternatives:  # exactly one of these spellings
        present = [a for a in alt if a in got]
        if len(present) != 1:
            raise ModelError(f"entropy tables need exactly one of "
                             f"{' / '.join(prefix + a for a in alt)}")
        want[present[0]] = alt[present[0]]
    for k in sorted(set(want) - set(got)):
        raise ModelError(f"entropy table {prefix}{k} missing")
    for k in sorted(set(got) - set(want)):
        raise ModelError(f"unexpected entropy table {prefix}{k}")
    for k, rank in want.items():
        if got[k].ndim != rank:
            raise ModelError(f"entropy table {prefix}{k} has shape {got[k].shape}, expected "
                             f"{rank} dimension(s)")
    return got


def _as_i64(a: np.ndarray, what: str) -> np.ndarray:
    if a.dtype == np.uint64 and a.size and a.max() > np.iinfo(np.int64).max:
        raise ModelError(f"entropy table {what} holds values beyond int64")
    return a.astype(np.int64)


def _check_offsets(a: np.ndarray, what: str) -> None:
    if a.size and (np.any(_as_i64(a, what) > MAX_ABS_OFFSET) or np.any(a.astype(np.int64) < -MAX_ABS_OFFSET)):
        raise ModelError(f"entropy table {what} outside +-2^24 (symbol - offset must fit int32)")


def _check_cells(rows: int, max_len: int, what: str) -> None:
    if rows * max_len > MAX_TABLE_CELLS:
        raise ModelError(f"entropy tables {what}: {rows} x {max_len} cells, more than "
                         f"{MAX_TABLE_CELLS}")


def _entropy(im: IntModel) -> EntropyTables:
    """K4 and K5."""
    from ..entropy.gaussian import FactorizedTables, GaussianTables

    ent = im.entropy if isinstance(im.entropy, dict) else None
    if ent is None:
        raise ModelError("entropy tables missing")
    fg = _group(ent, "fact.", FACT_NAMES)
    _check_cells(*fg["cdfs"].shape, "fact.*")
    _check_offsets(fg["offsets"], "fact.offsets")
    channels = [l for l in im.arch.layers if l.out == ("z" if im.arch.kind == "hyperprior" else "y")][0].cout
    if fg["cdfs"].shape[0] != channels:
        raise ModelError(f"entropy table fact.cdfs has {fg['cdfs'].shape[0]} rows, the coded "
                         f"tensor has {channels} channels")
    try:
        fact = FactorizedTables.from_arrays({k: _as_i64(v, "fact." + k) for k, v in fg.items()})
    except (ValueError, TypeError, OverflowError) as e:
        raise ModelError(f"entropy tables fact.*: {e}") from None
    if im.arch.kind != "hyperprior":
        if any(k.startswith("gauss.") for k in ent):
            raise ModelError("a factorized model has no gauss.* entropy tables")
        return EntropyTables(fact)
    gg = _group(ent, "gauss.", GAUSS_NAMES, alternatives=({"cdf_data": 1, "cdfs": 2},))
    if gg["frac_bits"].shape != (2,):
        raise ModelError(f"entropy table gauss.frac_bits has shape {gg['frac_bits'].shape}, "
                         f"expected (2,) = [scale_frac_bits, mean_frac_bits]")
    _check_offsets(gg["offsets"], "gauss.offsets")
    sizes = _as_i64(gg["cdf_sizes"], "gauss.cdf_sizes")
    if "cdf_data" in gg:
        n = gg["cdf_data"].size
        if sizes.size == 0 or sizes.min() < 2 or sizes.max() > n:
            raise ModelError("entropy tables gauss.*: cdf_sizes must be in [2, len(cdf_data)]")
        _check_cells(sizes.size, int(sizes.max()), "gauss.*")
    else:
        _check_cells(*gg["cdfs"].shape, "gauss.*")
    try:
        gauss = GaussianTables.from_arrays({k: _as_i64(v, "gauss." + k) for k, v in gg.items()})
    except (ValueError, TypeError, OverflowError) as e:
        raise ModelError(f"entropy tables gauss.*: {e}") from None
    hs5 = [l for l in im.arch.layers if l.out == "ms"][0].name
    e = im.layers[hs5].out_exp.astype(np.int64)
    M = im.arch.M
    S, F = gauss.scale_frac_bits, gauss.mean_frac_bits
    if im.offset_latents:  # O5 also forms the means on the 2^-G grid
        F = max(F, im.grid_bits)
    if e[:M].max() + S > MAX_E1_SHIFT or e[M:].max() + F > MAX_E1_SHIFT or e[M:].max() > MAX_MEAN_EXP:
        raise ModelError(f"{hs5}: output exponents with scale_frac_bits {S} / mean_frac_bits {F} "
                         f"give means or scales outside the integer range (SPEC E1)")
    return EntropyTables(fact, gauss)


def check_meta(meta) -> None:
    """K6: the meta keys fxlic prints have the types it prints."""
    if not isinstance(meta, dict):
        raise ModelError("meta must be a JSON object")
    for k, t in _META_TYPES.items():
        if k in meta and meta[k] is not None and not isinstance(meta[k], t):
            raise ModelError(f"meta field {k!r} must be a {t.__name__}")
    fm = meta.get("float_model") or {}
    lam = fm.get("lambda")
    if lam is not None and (isinstance(lam, bool) or not isinstance(lam, (int, float))):
        raise ModelError("meta field float_model.lambda must be a number")
    imgs = (meta.get("calibration") or {}).get("images")
    if imgs is not None and not (isinstance(imgs, list) and all(isinstance(s, str) for s in imgs)):
        raise ModelError("meta field calibration.images must be a list of file names")


#: the shipped models' directory (fxlic/zoo; fxlic.io.modelfile re-exports it)
ZOO_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "zoo")
#: the shipped models' content hashes whose K2 proof passed (tools/make_zoo.py)
PROVEN_FILE = os.path.join(ZOO_DIR, "proven.json")


@functools.lru_cache(maxsize=1)
def proven_hashes() -> frozenset:
    """Content hashes listed in PROVEN_FILE for this spec version (empty if the
    file is missing, unreadable or written for another spec version)."""
    from ..spec import SPEC_VERSION
    try:
        with open(PROVEN_FILE, encoding="utf-8") as f:
            d = json.load(f)
        if d.get("spec_version") != SPEC_VERSION:
            return frozenset()
        return frozenset(h for h in d["models"].values() if isinstance(h, str))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return frozenset()


def check_model(im: IntModel, digest: str | None = None) -> EntropyTables:
    """Rules K1-K6 of the module docstring; returns the codec's entropy tables.
    ``digest``: the content hash the file loader computed from the arrays it parsed
    (dtypes and shapes fixed by the file's plan); when it is one of
    ``proven_hashes()`` K2 is not run again."""
    if not isinstance(im, IntModel):
        raise ModelError(f"expected an IntModel, got {type(im).__name__}")
    check_architecture(im.arch)
    if not isinstance(im.layers, dict):
        raise ModelError("layers must be a dict")
    if digest is None or digest not in proven_hashes():
        _check_layers(im)
    _check_mean_reduction(im)
    tables = _entropy(im)
    check_meta(im.meta if im.meta is not None else {})
    return tables


def _check_layers(im: IntModel) -> None:
    """K2: the float pre-bound, then ``IntModel.validate()``."""
    _prebound(im)
    try:
        im.validate()
    except ModelError:
        raise
    except (ValueError, TypeError, IndexError, OverflowError, AttributeError) as e:
        raise ModelError(f"malformed layer arrays ({e.__class__.__name__}: {e})") from None


_STAMP = "_fxlic_checked"


def _key(im: IntModel, digest: str):
    """The content hash covers the arrays, not meta; K6 checks meta too."""
    try:
        meta = json.dumps(im.meta, sort_keys=True, default=repr)
    except (TypeError, ValueError, RecursionError):
        meta = None  # never equal to a stored key: the check runs and names it
    return digest, meta


def stamp(im: IntModel, digest: str, tables: EntropyTables) -> None:
    """Remember that ``im`` with content hash ``digest`` passed check_model."""
    object.__setattr__(im, _STAMP, (_key(im, digest), tables))


def checked_tables(im: IntModel) -> EntropyTables:
    """check_model, run once per content (the stamp is keyed by the content
    hash and meta, so editing a model after a check re-runs it)."""
    return checked(im)[1]


def checked(im: IntModel):
    """(content hash, entropy tables) of ``checked_tables``: one hash per call,
    which the codec also takes its model id from."""
    from .modelfile import model_hash

    try:
        digest = model_hash(im)
    except Exception as e:  # arrays of a type the hash cannot serialize
        raise ModelError(f"malformed model ({e.__class__.__name__}: {e})") from None
    got = getattr(im, _STAMP, None)
    key = _key(im, digest)
    if got is not None and key[1] is not None and got[0] == key:
        return digest, got[1]
    tables = check_model(im)  # in memory the dtypes are not fixed by a file: K2 always runs
    stamp(im, digest, tables)
    return digest, tables
