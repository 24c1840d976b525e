"""Integer operators, two interchangeable backends with identical results.

``REFERENCE`` (plain NumPy, ``reference.py``) and ``NUMBA`` (``numba_kernels.py``)
both implement ``Backend``: decode codes to aligned levels, accumulate one
conv/tconv layer, apply its output stage.  Tensors cross the interface in
(C, H, W) order; accumulators are returned as int64 (C, H, W) for hooks.  The
Numba backend's intermediate activations may be (C, H, W) *views* of
channels-last (H, W, C) memory (the fused output stage writes them so; same
values, read back in one pass by the next layer): callers index them as usual
and call ``np.ascontiguousarray`` where they need C-order bytes.
"""
from __future__ import annotations

import os
import threading

import numpy as np


def _threading_default() -> str:
    """fxlic's default for Numba's threads, set before the first parallel kernel
    launches them (issue 20): the OpenMP layer with *passive* waiting.

    With libgomp's default (active) wait policy every idle worker spins about
    300000 iterations at each barrier and after each parallel region; fxlic
    runs ~30 regions per encode, so on a machine whose cores are shared the
    spinning takes the time slices the working threads need (measured on a
    loaded 2-vCPU guest: 2 threads used 25 % more CPU than 1 thread for the same
    work, and ran slower than 1 thread; docs/PERFORMANCE.md).  The workqueue
    layer does not spin either, but it is not thread-safe (Numba terminates the
    process on parallel calls from two Python threads), so fxlic keeps OpenMP
    and sets OMP_WAIT_POLICY=PASSIVE -- only when the user set none of
    NUMBA_THREADING_LAYER, OMP_WAIT_POLICY and GOMP_SPINCOUNT, and only before
    the threads exist (the OpenMP runtime reads it when it is loaded).  The
    integers never depend on the threading layer or the thread count.
    Returns how the default was decided (``threading_info``)."""
    env = os.environ
    user = [v for v in ("NUMBA_THREADING_LAYER", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT") if v in env]
    if user:
        return "as set by the user (" + ", ".join(f"{v}={env[v]}" for v in user) + ")"
    try:
        from numba.np.ufunc import parallel as _par
        if getattr(_par, "_is_initialized", False):
            return "threads already launched before fxlic.kernels was imported: left as they are"
    except Exception:  # pragma: no cover - numba internals moved
        pass
    env["OMP_WAIT_POLICY"] = "PASSIVE"
    return "fxlic default (OMP_WAIT_POLICY=PASSIVE for the OpenMP layer)"


#: how the threading default was decided at import (``threading_info``)
THREADING_DEFAULT = _threading_default()


def threading_info() -> str:
    """One line for ``fxlic info`` and tools/bench.py: the Numba threading layer
    in use (launching the threads if they are not yet), the thread count, the
    OpenMP wait policy and how it was chosen."""
    import numba

    try:
        from numba.np.ufunc import parallel as _par
        _par._launch_threads()
        layer = numba.threading_layer()
    except Exception as e:  # pragma: no cover - no threading layer at all
        layer = f"none ({e})"
    wait = os.environ.get("OMP_WAIT_POLICY", "unset")
    return f"layer {layer}, {numba.get_num_threads()} threads, OMP_WAIT_POLICY {wait}: {THREADING_DEFAULT}"

from ..quant.codebook import act_nlq, act_nlq_luts
from . import reference as ref
from . import thin


class Backend:
    name = "abstract"

    def layer(self, L, codes: np.ndarray, tables: np.ndarray, offset: int, mu: np.ndarray,
              want_acc: bool = False, into=None):
        """Run one layer: returns (output codes (O,Ho,Wo), acc or None); the codes
        int64, or int16 where every code fits (a backend's choice, e.g. the numba
        backend's in-register path: activations, HS5).
        With ``tables`` None, ``codes`` already holds the aligned input levels V
        (SPEC I1; the per-element levels of offset latents, O5).

        ``into`` (L2, tables2, offset2): the one layer that reads this output,
        and its I1 tables.  A backend may then return, instead of codes, an
        object that only its own ``layer(L2, ...)`` reads (``Predecoded``); one
        that ignores the hint returns codes."""
        raise NotImplementedError


def _stage_params(L):
    lo, hi = L.output_code_range()
    return lo, hi


class ReferenceBackend(Backend):
    name = "reference"

    def layer(self, L, codes, tables, offset, mu, want_acc=False, into=None):
        x = np.asarray(codes, np.int64) if tables is None else ref.decode_levels(codes, tables, offset)
        w = L.w_levels()
        spec = L.spec
        if spec.op == "conv":
            acc = ref.conv2d_acc(x, w, L.bias, spec.stride)
        else:
            acc = ref.tconv2d_acc(x, w, L.bias, spec.stride)
        kind = L.out_kind
        s = L.out_shift
        if kind == 0:
            out = ref.out_relu_nlq(acc, s, L.mux)
        elif kind == 1:
            out = ref.out_signed_lq(acc, s, spec.act == "leaky")
        elif kind == 2:
            out = ref.out_latent(acc, s, mu)
        else:
            out = ref.out_pixel(acc, s)
        return out, (acc if want_acc else None)


def _layer_content(L) -> tuple:
    """What the prepared weights are made of (w_codes, w_lut, w_exp, bias, in_exp)."""
    return tuple(np.asarray(a) for a in (L.w_codes, L.w_lut, L.w_exp, L.bias, L.in_exp))


def _same_content(L, snapshot) -> bool:
    """Layer L still holds ``snapshot`` (copies taken when its weights were
    prepared): the cache never serves a layer edited in place.  A comparison,
    not a hash: ~20x cheaper than the blake2b digest it replaces (0.3 ms per
    layer of the N = 128 model, 5.5 ms per encode + decode)."""
    return all(a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b)
               for a, b in zip(_layer_content(L), snapshot))


class NumbaBackend(Backend):
    name = "numba"

    def __init__(self, fast: bool = True, fused: bool = True):
        #: fast=False forces the general int32 x int32 -> int64 path (the
        #: pre-issue-10 kernels; tools/bench.py times it for comparison)
        self.fast = fast
        self._cache = {}
        #: O1 table of the four mux codebooks, built once (nk.nlq_u_table)
        self._nlq_lut = None
        self._nlq_lut16 = None
        #: fused=False: the unfused layer path (accumulators, then output_stage)
        #: even without want_acc (tools/bench.py times it for comparison)
        self.fused = fused and fast

    def _weights(self, L, r=None, verify=True):
        """Prepared weights of layer L; ``r`` (C,) the weight-side shifts of the
        fast int16 path (None: the general int32 path).  Cached per layer and
        per content: a layer edited in place (bias, weights, exponents -- as
        tools/gen_vectors.py's directed model does) is prepared again.
        ``verify=False`` skips that content check on a hit (a look at the pad
        and path of a layer about to run, which checks when it runs)."""
        key = (id(L), None if r is None else r.tobytes())
        hit = self._cache.get(key)
        if hit is not None and hit[0] is L and (not verify or _same_content(L, hit[2])):
            return hit[1]
        spec = L.spec
        w = L.w_levels()  # (O, C, k, k) int64
        if r is None:
            w = w.astype(np.int32)
            if spec.op == "conv":
                prep = (np.ascontiguousarray(w.transpose(0, 2, 3, 1).reshape(spec.cout, -1)),)
            else:
                prep = _tconv_phase_weights(w)
        else:
            w = w << r[None, :, None, None]
            path = thin.path_of(spec)
            if w.size and (w.min() < -32768 or w.max() > 32767):
                prep = None
            elif path != "im2col":
                from .numba_kernels import DOT_NO, OC_BLOCK
                block = OC_BLOCK if path == "oc" else DOT_NO
                bias = thin.padded_bias(L.bias, block)
                if spec.op == "conv":
                    wpk, nps = thin.oc_weights(w, block)
                    prep = (spec.k // 2, wpk, nps, bias)
                else:
                    prep = thin.tconv_phases(w, path == "few", block) + (bias,)
            elif spec.op == "conv":
                flat = w.transpose(0, 2, 3, 1).reshape(spec.cout, -1)
                w16 = np.zeros((_even(spec.cout), _round16(flat.shape[1])), np.int16)
                w16[:spec.cout, :flat.shape[1]] = flat
                prep = (w16,)
            else:
                wph, taps, ntaps = _tconv_phase_weights(w)
                C = spec.cin
                kph = np.array([[_round16(ntaps[a] * ntaps[b] * C) for b in range(2)] for a in range(2)],
                               np.int64)
                w16 = np.zeros(wph.shape[:2] + (_even(spec.cout), int(kph.max())), np.int16)
                w16[:, :, :spec.cout, :wph.shape[3]] = wph
                prep = (w16, kph, taps, ntaps)
        if len(self._cache) > 256:
            self._cache.clear()
        self._cache[key] = (L, prep, tuple(a.copy() for a in _layer_content(L)))
        return prep

    def layer(self, L, codes, tables, offset, mu, want_acc=False, into=None):
        """``Backend.layer``; the codes of intermediate activations (``spec.out``
        "act", read only by the next layer) and of HS5 (``spec.out`` "ms", O2:
        8-bit) are int16 on the in-register path, every other output int64.

        Without ``want_acc``, the implicit-GEMM paths fuse the output stage into
        the GEMM (``_fused``): an intermediate activation or HS5's codes then
        come back as the (O, Ho, Wo) view of a channels-last (Ho, Wo, O) array
        (the layout the next layer's decode reads in one pass); every other
        output is C-contiguous.
        With ``into`` and both layers on the in-register paths it comes back as a
        ``Predecoded``: the next layer's operand buffer itself, no codes."""
        if not want_acc and self.fused:
            out = self._fused(L, codes, tables, offset, mu, into)
            if out is not None:
                return out, None
        acc = self.accumulate(L, codes, tables, offset, scratch=True)
        out = self.output_stage(L, acc, mu, np.int16 if L.spec.out == "act" else np.int64)
        acc_chw = acc.transpose(2, 0, 1).astype(np.int64) if want_acc else None
        return out, acc_chw

    def _operands(self, L, codes, tables):
        """(r, t16, codes): the weight-side shifts and int16 tables of the fast
        path (r None: the general int32 path) and the codes, C-contiguous unless
        they are a channels-last view (``channels_last``)."""
        spec = L.spec
        if isinstance(codes, Predecoded):
            return split_shift(np.asarray(tables, dtype=np.int64)) + (codes,)
        if tables is None:  # levels: the int16 path when every level fits int16
            levels = np.asarray(codes)
            fits = levels.size == 0 or (levels.min() >= -32768 and levels.max() <= 32767)
            r = np.zeros(spec.cin, np.int64) if (self.fast and fits) else None
            return r, None, levels
        if channels_last(codes) is None:
            codes = np.ascontiguousarray(codes)
        if codes.dtype.kind not in "iu":
            codes = codes.astype(np.int64)
        tables = np.asarray(tables, dtype=np.int64)
        r, t16 = split_shift(tables) if self.fast else (None, None)
        return r, t16, codes

    def _fused(self, L, codes, tables, offset, mu, into=None):
        """Decode + conv/tconv + output stage in one kernel (``conv2d_codes_oc`` /
        ``tconv2d_codes_phases``), or None where the layer takes another path.
        With ``into`` (``Backend.layer``) an O1 / O2 layer stores the next layer's
        operands (``kind | LEVELS``) into that layer's padded buffer."""
        from . import numba_kernels as nk

        spec = L.spec
        r, t16, codes = self._operands(L, codes, tables)
        if r is None or thin.path_of(spec) == "im2col":
            return None
        prep = self._weights(L, r)
        if prep is None:
            return None
        C, H, W = np.shape(codes)
        buf, Wp = self._padded(prep[0], codes, t16, offset)
        act = spec.out == "act"
        lo, hi = L.output_code_range()
        kind = int(L.out_kind)
        small = _is_small(L, (C, H, W))
        O = spec.cout
        path = thin.path_of(spec)
        Ho, Wo = spec.out_hw(H, W) if spec.op == "conv" else (2 * H, 2 * W)
        # O1 / O2 in registers; HS5's O2 codes (spec.out "ms", 8-bit) too, as int16 channels-last
        if (act or spec.out == "ms") and kind in (0, 1) and path == "oc" and -256 <= lo and hi <= 256:
            prm = stage_prm(L, len(prep[-1]))
            nxt = self._consumer_operands(L, into, len(prep[-1])) if into is not None else None
            opad = 0
            if nxt is None:
                out = np.empty(Ho * Wo * O, np.int16)
            else:
                opad, t16n, offn, prm = nxt
                kind |= nk.LEVELS
                out = _padded_buffer(Ho, Wo, O, opad, nk.SLACK)
            if spec.op == "conv":
                _, wpk, nps, bias = prep
                segs = np.arange(spec.k, dtype=np.int64) * (Wp * C)
                f = nk.conv2d_codes_oc_serial if small else nk.conv2d_codes_oc
                f(buf, Wp, C, spec.stride, Ho, Wo, segs, nps, wpk, bias, O, kind, prm, lo, hi, opad, out)
            else:
                _, wk, dy, nseg, klen, dxmin, bias = prep
                f = nk.tconv2d_codes_phases_serial if small else nk.tconv2d_codes_phases
                f(buf, H, W, C, prep[0], wk, dy, nseg, klen, dxmin, bias, O, kind, prm, lo, hi, opad, out)
            if nxt is not None:
                return Predecoded(out, Wo + 2 * opad, opad, (O, Ho, Wo), t16n, offn)
            return out.reshape(Ho, Wo, O).transpose(2, 0, 1)
        else:  # per-tile stage (any kind): (O, Ho, Wo), or channels-last for activations
            out = np.empty(Ho * Wo * O, np.int16 if act else np.int64)
            sa, sb, sc = nk.stage_params(kind, spec.act == "leaky", L.out_shift, L.mux, mu)
            lut = self._lut16()
            if spec.op == "conv":
                _, wpk, nps, bias = prep
                segs = np.arange(spec.k, dtype=np.int64) * (Wp * C)
                f = nk.conv2d_stage_oc_serial if small else nk.conv2d_stage_oc
                f(buf, Wp, C, spec.stride, Ho, Wo, segs, nps, wpk, bias, O, kind, sa, sb, sc, lut, lo, hi,
                  not act, out)
            else:
                _, wk, dy, nseg, klen, dxmin, bias = prep
                f = nk.tconv2d_stage_phases_serial if small else nk.tconv2d_stage_phases
                f(buf, H, W, C, prep[0], wk, dy, nseg, klen, dxmin, bias, O, path == "few",
                  kind, sa, sb, sc, lut, lo, hi, not act, out)
        if act:
            return out.reshape(Ho, Wo, O).transpose(2, 0, 1)
        return out.reshape(O, Ho, Wo)

    def _consumer_operands(self, L, into, Op):
        """(pad, t16, offset, prm) for storing L's output as the operands of the
        layer ``into`` = (L2, tables2, offset2) names, or None where that layer
        would not read them (not a fast implicit-GEMM path) or they are not a
        shift of L's levels (``level_operand_rows``)."""
        L2, tables2, offset2 = into
        if tables2 is None or thin.path_of(L2.spec) == "im2col":
            return None
        r2, t16n = split_shift(np.asarray(tables2, dtype=np.int64))
        if r2 is None:
            return None
        prep2 = self._weights(L2, r2, verify=False)  # its pad and path; checked when L2 runs
        if prep2 is None:
            return None
        prm = level_operand_rows(L, t16n, int(offset2), Op)
        if prm is None:
            return None
        return int(prep2[0]), t16n, int(offset2), prm

    def _lut16(self):
        """The O1 table (``nk.nlq_u_table``) flat as int16, built once."""
        from . import numba_kernels as nk

        if self._nlq_lut16 is None:
            if self._nlq_lut is None:
                self._nlq_lut = nk.nlq_u_table(*_mux_segment_tables())
            self._nlq_lut16 = np.ascontiguousarray(self._nlq_lut.astype(np.int16).ravel())
        return self._nlq_lut16

    @staticmethod
    def _acc_buffer(n: int, scratch: bool) -> np.ndarray:
        """A flat int32 buffer of n elements for the implicit-GEMM kernels.  With
        ``scratch`` (``layer``, which never lets the accumulators escape) one
        buffer per thread is reused up to SCRATCH_MAX elements: a fresh array
        pays a page fault per page on every layer (measured: AT0's 50 MB
        accumulator 27 ms fresh, 9 ms reused)."""
        if not scratch or n > SCRATCH_MAX:
            return np.empty(n, np.int32)
        buf = getattr(_SCRATCH, "acc", None)
        if buf is None or buf.size < n:
            buf = _SCRATCH.acc = np.empty(n, np.int32)
        return buf

    def accumulate(self, L, codes, tables, offset, scratch=False):
        """Decode + conv/tconv: (C, H, W) codes -> (Ho, Wo, O) int32 accumulators.
        With ``tables`` None, ``codes`` holds aligned levels (``Backend.layer``).
        ``scratch``: the result may live in a buffer that the next call reuses."""
        from . import numba_kernels as nk

        spec = L.spec
        r, t16, codes = self._operands(L, codes, tables)
        levels = codes
        if tables is not None:
            tables = np.asarray(tables, dtype=np.int64)
        prep = self._weights(L, r) if r is not None else None
        bias = L.bias.astype(np.int64)
        if prep is not None and thin.path_of(spec) != "im2col":
            return self._thin(L, prep, levels if tables is None else codes, t16, offset, scratch)
        if prep is not None:
            if tables is None:
                x = np.ascontiguousarray(levels.transpose(1, 2, 0)).astype(np.int16)
            else:
                # single-threaded twins (same code, no parallel launch) for small work
                x = self._padded(0, codes, t16, offset)[0][:codes.size].reshape(
                    codes.shape[1], codes.shape[2], codes.shape[0])
            if _is_small(L, np.shape(codes)):
                conv, tconv = nk.conv2d_acc_i16_serial, nk.tconv2d_acc_i16_serial
            else:
                conv, tconv = nk.conv2d_acc_i16, nk.tconv2d_acc_i16
            b32 = bias.astype(np.int32)
            if spec.op == "conv":
                return conv(x, prep[0], b32, spec.k, spec.stride, spec.cout)
            w16, kph, taps, ntaps = prep
            return tconv(x, w16, kph, taps, ntaps, b32, spec.k, spec.cout)
        # general path: int32 operands, int64 products
        if tables is None:
            x = np.ascontiguousarray(levels.transpose(1, 2, 0)).astype(np.int32)
        else:
            x = nk.decode_levels_hwc(np.ascontiguousarray(codes), np.require(tables, requirements="CW"), offset)
        prep = self._weights(L, None)
        if spec.op == "conv":
            return nk.conv2d_acc_hwc(x, prep[0], bias, spec.k, spec.stride)
        wph, taps, ntaps = prep
        return nk.tconv2d_acc_hwc(x, wph, taps, ntaps, bias, spec.k)

    def _thin(self, L, prep, codes, t16, offset, scratch):
        """The implicit-GEMM paths (``thin.path_of``): decode into the zero-padded
        channels-last buffer the kernel reads in place, then accumulate."""
        from . import numba_kernels as nk

        spec = L.spec
        C, H, W = np.shape(codes)
        buf, Wp = self._padded(prep[0], codes, t16, offset)
        small = _is_small(L, (C, H, W))
        if spec.op == "conv":
            _, wpk, nps, bias = prep
            Ho, Wo = spec.out_hw(H, W)
            segs = np.arange(spec.k, dtype=np.int64) * (Wp * C)
            f = nk.conv2d_acc_oc_serial if small else nk.conv2d_acc_oc
            out = self._acc_buffer(Ho * Wo * spec.cout, scratch)
            return f(buf, Wp, C, spec.stride, Ho, Wo, segs, nps, wpk, bias, spec.cout, out)
        _, wk, dy, nseg, klen, dxmin, bias = prep
        f = nk.tconv2d_acc_phases_serial if small else nk.tconv2d_acc_phases
        out = self._acc_buffer(4 * H * W * spec.cout, scratch)
        return f(buf, H, W, C, prep[0], wk, dy, nseg, klen, dxmin, bias, spec.cout, thin.path_of(spec) == "few", out)

    @staticmethod
    def _padded(pad, codes, t16, offset):
        """I1 into the zero-padded channels-last int16 buffer the kernels read in
        place (``SLACK`` zeros after it): (buffer, padded width).  ``codes``: (C, H,
        W) codes, C-contiguous or a channels-last view (the fused layers' output),
        or with ``t16`` None aligned levels in int16 range (checked by the caller)."""
        from . import numba_kernels as nk

        if isinstance(codes, Predecoded):
            if codes.t16 is not t16 or codes.offset != offset or codes.pad != pad:
                raise RuntimeError("a pre-decoded input was made for another layer's operands")
            return codes.buf, codes.Wp
        C, H, W = np.shape(codes)
        Wp = W + 2 * pad
        if t16 is None:
            buf = np.zeros((H + 2 * pad) * Wp * C + nk.SLACK, np.int16)
            body = buf[:-nk.SLACK].reshape(H + 2 * pad, Wp, C)
            body[pad:pad + H, pad:pad + W] = np.asarray(codes).transpose(1, 2, 0)
            return buf, Wp
        # single-threaded twins (same code, no parallel launch) for small work
        small = np.size(codes) < SMALL_OUTPUT
        hwc = channels_last(codes)
        if hwc is not None:
            dec = nk.decode_hwc_i16_pad_serial if small else nk.decode_hwc_i16_pad
            return dec(hwc, t16, offset, pad, nk.SLACK), Wp
        dec = nk.decode_levels_i16_pad_serial if small else nk.decode_levels_i16_pad
        return dec(codes, t16, offset, pad, nk.SLACK), Wp

    def output_stage(self, L, acc, mu, out_dtype=np.int64):
        """(Ho, Wo, O) int32 accumulators -> (O, Ho, Wo) codes (SPEC O1-O4)."""
        from . import numba_kernels as nk

        lo, hi = L.output_code_range()
        if self._nlq_lut is None:
            self._nlq_lut = nk.nlq_u_table(*_mux_segment_tables())
        Ho, Wo, O = acc.shape
        out = np.empty((O, Ho, Wo), dtype=out_dtype)
        f = nk.output_stage_into_serial if acc.size < SMALL_OUTPUT else nk.output_stage_into
        return f(acc, L.out_kind, L.spec.act == "leaky", L.out_shift.astype(np.int64),
                 L.mux.astype(np.int64), self._nlq_lut,
                 np.asarray(mu, dtype=np.int64), lo, hi, out)


#: layers below this many MACs (decode and conv) run on one thread: on a
#: loaded machine a parallel region can wait a scheduler time slice for its
#: workers (measured 10-30 ms per region on tiny
#: tensors), so they use the single-threaded twins of the kernels.  Results
#: do not depend on the thread count.
SMALL_LAYER_MACS = 30_000_000
#: decode and output stages of fewer elements than this run single-threaded
SMALL_OUTPUT = 1 << 21
#: largest accumulator (int32 elements, 128 MB) kept for reuse by ``NumbaBackend.layer``
SCRATCH_MAX = 1 << 25
_SCRATCH = threading.local()


#: an absent NLQ segment's start in ``stage_prm`` (never reached: u < 2^25)
_NO_SEGMENT = 1 << 30


def stage_prm(L, Op: int) -> np.ndarray:
    """(12, Op) int32 per-channel rows of the in-register output stage
    (``numba_kernels.stage32`` / ``oc_block_codes``) of layer L, O1 or O2;
    columns past O are zero (padding, never stored).  Shared between calls with
    the same shifts, mux and activation (compared by value); never written."""
    kind = int(L.out_kind)
    s = np.asarray(L.out_shift, np.int64)
    leaky = L.spec.act == "leaky"
    mux = np.asarray(L.mux, np.int64) if kind == 0 else None
    key = (kind, leaky, int(Op), s.tobytes(), None if mux is None else mux.tobytes())
    hit = _PRM_CACHE.get(key)
    if hit is None:
        hit = _stage_prm(kind, leaky, s, mux, Op)  # writeable: Numba types read-only arrays apart
        if len(_PRM_CACHE) > 256:
            _PRM_CACHE.clear()
        _PRM_CACHE[key] = hit
    return hit


_PRM_CACHE: dict = {}


def _stage_prm(kind, leaky, s, m, Op):
    O = len(s)
    prm = np.zeros((12, Op), np.int32)  # rows 10, 11: set by level_operand_rows
    if kind == 0:
        seg_lo, seg_k, seg_code, nseg, maxl = _mux_segment_tables()
        if np.any(seg_lo[:, 0] != 0) or np.any(seg_code[:, 0] != 0) or np.any(nseg > 3):
            raise ValueError("stage_prm: NLQ codebooks must start at level 0 with at most 3 segments")
        prm[0, :O] = np.clip(s - 1, 0, 31)
        prm[1, :O] = np.clip(1 - s, 0, 12)
        for j, row in ((1, 2), (2, 3)):
            prm[row, :O] = np.where(nseg[m] > j, seg_lo[m, j], _NO_SEGMENT)
        for j in range(3):
            prm[4 + j, :O] = seg_k[m, j]
        prm[7, :O] = seg_code[m, 1]
        prm[8, :O] = seg_code[m, 2]
        prm[9, :O] = maxl[m]
    elif kind == 1:
        prm[0, :O] = np.clip(s, -64, 64)
        prm[1, :O] = np.clip(s + 3 if leaky else s, -64, 64)
    else:
        raise ValueError(f"stage_prm: output kind {kind} has no in-register stage")
    return prm


class Predecoded:
    """A layer's output stored as the operands of the one layer that reads it
    (``NumbaBackend._fused`` with ``into``): that layer's zero-padded channels-last
    int16 buffer, what ``_padded`` would have decoded from the codes -- made by
    the producer's in-register stage (``kind | LEVELS``), so the codes are never
    written.  Read only by ``NumbaBackend.layer`` of that layer (same ``t16``,
    offset and pad, checked)."""
    __slots__ = ("buf", "Wp", "pad", "shape", "t16", "offset")

    def __init__(self, buf, Wp, pad, shape, t16, offset):
        self.buf, self.Wp, self.pad, self.shape, self.t16, self.offset = buf, Wp, pad, tuple(shape), t16, offset


def _padded_buffer(H, W, C, pad, slack):
    """A flat int16 (H + 2 pad, W + 2 pad, C) buffer plus ``slack`` whose border
    and slack are zero (the interior is written by the producing kernel)."""
    Wp = W + 2 * pad
    buf = np.empty((H + 2 * pad) * Wp * C + slack, np.int16)
    body = buf[:buf.size - slack].reshape(H + 2 * pad, Wp, C)
    body[:pad] = 0
    body[H + pad:] = 0
    body[:, :pad] = 0
    body[:, W + pad:] = 0
    buf[buf.size - slack:] = 0
    return buf


def level_operand_rows(L, t16: np.ndarray, offset: int, Op: int):
    """``stage_prm(L, Op)`` with rows 10, 11 = (lsh, rsh) per output channel such
    that ``(level(code) << lsh) >> rsh == t16[o, code + offset]`` for *every* code
    L's stage can produce (``output_code_range``; level: the channel's NLQ
    codebook, O1, or the code itself, O2): the next layer's I1 operand of the
    code, computed in registers (``kind | LEVELS``).  None when some channel's
    table is no such shift of its levels.  Checked on the whole code range here,
    so the stored operands are the decode's by construction."""
    kind = int(L.out_kind)
    lo, hi = L.output_code_range()
    t16 = np.asarray(t16)
    O = L.spec.cout
    if kind not in (0, 1) or t16.ndim != 2 or t16.shape != (O, 256) or lo + offset < 0 or hi + offset > 255:
        return None
    mux = np.asarray(L.mux, np.int64)
    key = (id(t16), kind, lo, hi, int(offset), int(Op), mux.tobytes() if kind == 0 else None,
           np.asarray(L.out_shift, np.int64).tobytes(), L.spec.act)
    hit = _OPERAND_CACHE.get(key)
    if hit is not None and hit[0] is t16:
        return hit[1]
    codes = np.arange(lo, hi + 1, dtype=np.int64)
    if kind == 0:
        lv = act_nlq_luts(8)[mux][:, codes]
    else:
        lv = np.broadcast_to(codes, (O, codes.size))
    want = t16[:, codes + offset].astype(np.int64)
    lsh = np.full(O, -1, np.int64)
    rsh = np.zeros(O, np.int64)
    for s in range(16, -17, -1):  # every candidate shift; a channel keeps the first that matches
        got = (lv << s) if s >= 0 else (lv >> -s)
        ok = (lsh < 0) & np.all(got == want, axis=1)
        lsh[ok], rsh[ok] = max(s, 0), max(-s, 0)
    prm = None
    if np.all(lsh >= 0):
        prm = stage_prm(L, Op).copy()
        prm[10, :O], prm[11, :O] = lsh, rsh
    if len(_OPERAND_CACHE) > 256:
        _OPERAND_CACHE.clear()
    _OPERAND_CACHE[key] = (t16, prm)
    return prm


_OPERAND_CACHE: dict = {}


def channels_last(codes):
    """The (H, W, C) C-contiguous array under a (C, H, W) view ``codes``, or None
    (C-contiguous (C, H, W) codes are read as they are)."""
    if not isinstance(codes, np.ndarray) or codes.ndim != 3 or codes.flags.c_contiguous:
        return None
    hwc = codes.transpose(1, 2, 0)
    return hwc if hwc.flags.c_contiguous else None


def _is_small(L, shape) -> bool:
    spec = L.spec
    Ho, Wo = spec.out_hw(shape[1], shape[2])
    return Ho * Wo * spec.k * spec.k * spec.cin * spec.cout < SMALL_LAYER_MACS


def _even(n: int) -> int:
    """Output channels padded to a whole number of GEMM blocks (zero rows)."""
    return n + (n % 2)


def _round16(n: int) -> int:
    return max(16, -(-int(n) // 16) * 16)


def split_shift(tables: np.ndarray):
    """Move part of each input channel's alignment shift onto the weights so
    that both GEMM operands fit int16 (exactly: V * w = (V >> r) * (w << r)
    when V is a multiple of 2^r).

    Returns (r, tables >> r as int16) with ``r[c]`` the smallest right shift
    that brings channel c's aligned levels into int16 and divides all of them,
    or (None, None) if some channel cannot be brought into int16.  The
    weights are checked separately (``NumbaBackend._weights``).
    """
    tables = np.asarray(tables, dtype=np.int64)
    # read-only arrays that own their data (``input_tables``' shared tables) are
    # found by identity, without hashing their 256 KB; others by content
    frozen = not tables.flags.writeable and tables.base is None
    if frozen:
        hit = _SPLIT_BY_ID.get(id(tables))
        if hit is not None and hit[0] is tables:
            return hit[1]
    key = tables.tobytes()
    hit = _SPLIT_CACHE.get(key)
    if hit is not None:
        if frozen:
            _remember_split(tables, hit)
        return hit
    lo = tables.min(axis=1)
    hi = tables.max(axis=1)
    # smallest r with -2^15 <= lo >> r and hi >> r <= 2^15 - 1 (r <= 62)
    pw = np.arange(63, dtype=np.int64)
    need = np.maximum((hi[:, None] >> pw[None, :]) > 32767, (lo[:, None] >> pw[None, :]) < -32768)
    r = need.sum(axis=1)  # need[c, s] is True exactly for s < r[c] (monotone in s)
    # every level of channel c must be a multiple of 2^r[c]
    mask = (np.int64(1) << r) - 1
    ok = (r < 63) & np.all((tables & mask[:, None]) == 0, axis=1)
    if not np.all(ok):
        out = (None, None)
    else:
        out = (r, np.ascontiguousarray((tables >> r[:, None]).astype(np.int16)))
    if len(_SPLIT_CACHE) > 64:
        _SPLIT_CACHE.clear()
    _SPLIT_CACHE[key] = out
    if frozen:
        _remember_split(tables, out)
    return out


def _remember_split(tables, out):
    if len(_SPLIT_BY_ID) > 256:
        _SPLIT_BY_ID.clear()
    _SPLIT_BY_ID[id(tables)] = (tables, out)


_SPLIT_CACHE: dict = {}
#: id -> (the read-only table array, its split); the entry keeps the array
#: alive, so its id cannot be reused by another array while it is cached
_SPLIT_BY_ID: dict = {}


def _mux_segment_tables(bits: int = 8):
    """(4, 3) tables of the four activation codebooks for the jitted O1 (built
    once per ``bits``; read only)."""
    hit = _SEG_CACHE.get(bits)
    if hit is None:
        hit = _SEG_CACHE[bits] = _build_segment_tables(bits)
    return hit


_SEG_CACHE: dict = {}


def _build_segment_tables(bits: int):
    seg_lo = np.zeros((4, 3), np.int64)
    seg_k = np.zeros((4, 3), np.int64)
    seg_code = np.zeros((4, 3), np.int64)
    nseg = np.zeros(4, np.int64)
    maxl = np.zeros(4, np.int64)
    for m in range(4):
        cb = act_nlq(m, bits)
        code = 0
        for j, s in enumerate(cb.segments):
            seg_lo[m, j], seg_k[m, j], seg_code[m, j] = s.lo, s.k, code
            code += (s.hi - s.lo) >> s.k
        nseg[m] = len(cb.segments)
        maxl[m] = cb.max_level
    return seg_lo, seg_k, seg_code, nseg, maxl


def _tconv_phase_weights(w: np.ndarray):
    """Split a scatter-form tconv kernel into its four output phases (SPEC C2)."""
    O, C, k, _ = w.shape
    p = k // 2
    taps_list = [[t for t in range(k) if (t - p - ph) % 2 == 0] for ph in range(2)]
    nmax = max(len(t) for t in taps_list)
    taps = np.zeros((2, nmax), np.int64)
    ntaps = np.zeros(2, np.int64)
    for ph in range(2):
        taps[ph, :len(taps_list[ph])] = taps_list[ph]
        ntaps[ph] = len(taps_list[ph])
    wph = np.zeros((2, 2, O, nmax * nmax * C), np.int32)
    for py in range(2):
        for px in range(2):
            sub = w[:, :, taps_list[py]][:, :, :, taps_list[px]]  # (O, C, ny, nx)
            flat = sub.transpose(0, 2, 3, 1).reshape(O, -1)
            wph[py, px, :, :flat.shape[1]] = flat
    return wph, taps, ntaps


REFERENCE = ReferenceBackend()
_NUMBA = None


def get_backend(name: str) -> Backend:
    global _NUMBA
    if name == "reference":
        return REFERENCE
    if name == "numba":
        if _NUMBA is None:
            _NUMBA = NumbaBackend()
        return _NUMBA
    raise ValueError(f"unknown backend {name!r} (use 'numba' or 'reference')")
