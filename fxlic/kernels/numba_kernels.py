"""Numba twins of ``reference.py`` (same integers, faster).

Layout: activations channels-last (H, W, C) inside the kernels so the inner
product over (ky, kx, c) is contiguous; weights as (O, k*k*C) rows in
(ky, kx, c) order.

Accumulation paths, all exact:

* int16 paths: operands as int16 (activation levels and weight levels, with
  the alignment shift split between the two sides, see
  ``kernels.split_shift``), int32 sums that wrap modulo 2^32; the true
  accumulator lies in int32 (SPEC A3), so the wrapped sum is exact.  Chosen by
  layer shape (``kernels.thin.path_of``):
  - implicit GEMM on a zero-padded input read in place (``conv2d_acc_oc``,
    ``tconv2d_acc_phases``): blocks vectorised over output channels
    (``oc_block``, O a multiple of 16) or, for few outputs, dot blocks over
    the taps of a pixel (``dot_seg``, ST3);
  - im2col (``conv2d_acc_i16`` / ``tconv2d_acc_i16``): one im2col row block
    per output row, GEMM blocks of 4 pixels x 2 output channels
    (``block4x2``), for every other shape.
  - the implicit-GEMM kernels with the output stage fused (``conv2d_codes_oc``,
    ``tconv2d_codes_phases``: O1 / O2 in registers, int16 codes channels-last;
    ``conv2d_stage_oc``, ``tconv2d_stage_phases``: any stage per tile), used by
    ``NumbaBackend.layer`` when no caller wants the accumulators.
* general path (``conv2d_acc_hwc`` / ``tconv2d_acc_hwc``): int32 operands
  whose products Numba widens to int64, for layers whose operands do not
  fit int16 (e.g. wide exponent spreads with Lloyd weights).

No fastmath anywhere.  Parallel loops write disjoint outputs, so the result
does not depend on NUMBA_NUM_THREADS.  All jitted code lives in this one file:
Numba's on-disk cache (cache=True) is invalidated by this file's timestamp
only, so a kernel split over several files could load a stale callee.
"""
from __future__ import annotations

import numpy as np
from numba import config, njit, prange, types

from ..spec.rounding import requant_shift as _rq
from ..spec.rounding import rshift_rhu as _rhu
from ..spec.rounding import saturate as _sat


# ---- int16 x int16 -> int32 GEMM blocks -------------------------------------
#
# ``block4x2(col, p, w, o, K)`` returns the 8 dot products
# ``sum_j col[p + a, j] * w[o + b, j]`` (a < 4, b < 2; order a-major) of int16
# rows over the first ``K`` columns (K a multiple of 16), wrapped to int32.
#
# Exactness: every product of two int16 values fits in int32 and the kernels
# add in two's-complement int32 (wrap-around), i.e. modulo 2^32.  The true sum
# equals the specification's accumulator, which the loader proves lies in int32
# (SPEC A3), so the wrapped int32 result is that accumulator exactly, whatever
# the order of additions.  (``vpmaddwd`` adds two products without saturation;
# its one wrap case, -2^15 * -2^15 * 2, is also exact modulo 2^32.)
#
# Implementations with identical results:
#
# * ``_make_simd_block(width)``: an LLVM intrinsic emitting ``vpmaddwd``
#   (int16 products summed pairwise into int32 lanes), eight accumulators in
#   ymm (AVX2) or zmm (AVX-512) registers.  Used when the host has AVX2 and the
#   JIT is on.
# * ``block4x2_generic``: plain Numba (and plain Python under
#   NUMBA_DISABLE_JIT=1), int64 products truncated to int32 at the end.
#
# No floating point is involved anywhere.

_NP, _NO = 4, 2  # pixels x output channels per block

#: Cache blocking of the implicit-GEMM kernels (issue 20): the pixels of an output
#: row run in chunks of _XCH, and inside a chunk the output-channel blocks are the
#: outer loop, so one block's weight slice (K pairs x OC_BLOCK) is read once per
#: chunk (reused by _XCH pixels) while the chunk's input (k rows x about
#: stride * _XCH columns) stays in cache.  Pixel-outer order re-read the whole
#: weight array (800 KB for AT1 / ST2) for every 4 pixels, which a 512 KB L2
#: (Zen 3) cannot hold.  Only the order of independent blocks changes: every block
#: computes the same integers.
_XCH = 32


@njit(cache=True)
def _wrap32(v):
    """Two's-complement wrap of an int64 to int32 (exact for in-range values)."""
    v = v & 0xFFFFFFFF
    if v >= 0x80000000:
        v -= 0x100000000
    return np.int32(v)


@njit(cache=True)
def block4x2_generic(col, p, w, o, K):
    s00 = np.int64(0)
    s01 = np.int64(0)
    s10 = np.int64(0)
    s11 = np.int64(0)
    s20 = np.int64(0)
    s21 = np.int64(0)
    s30 = np.int64(0)
    s31 = np.int64(0)
    for j in range(K):
        b0 = np.int64(w[o, j])
        b1 = np.int64(w[o + 1, j])
        a = np.int64(col[p, j])
        s00 += a * b0
        s01 += a * b1
        a = np.int64(col[p + 1, j])
        s10 += a * b0
        s11 += a * b1
        a = np.int64(col[p + 2, j])
        s20 += a * b0
        s21 += a * b1
        a = np.int64(col[p + 3, j])
        s30 += a * b0
        s31 += a * b1
    return (_wrap32(s00), _wrap32(s01), _wrap32(s10), _wrap32(s11),
            _wrap32(s20), _wrap32(s21), _wrap32(s30), _wrap32(s31))


def _host_feature(name: str) -> bool:
    try:
        import llvmlite.binding as llvm
        return bool(llvm.get_host_cpu_features().get(name, False))
    except Exception:  # pragma: no cover - exotic hosts
        return False


HAVE_AVX2 = _host_feature("avx2") and not config.DISABLE_JIT
#: AVX-512BW zmm vpmaddwd (and VNNI's vpdpwssd fusion).  Chosen from the host's
#: features only: Numba's cache is keyed by them, so the choice and the cache agree.
HAVE_AVX512 = HAVE_AVX2 and _host_feature("avx512bw") and _host_feature("avx512f")
HAVE_VNNI = HAVE_AVX512 and _host_feature("avx512vnni")


# ---- SIMD code generation (LLVM intrinsics) ------------------------------------
# Helpers shared by the dot-form blocks (``block4x2``, ``dot_seg``): pmaddwd runs
# over row pointers into int32 vector accumulators, and the transpose-reduction
# of the accumulators to one int32 per (pixel, output channel).

def _ir():
    from llvmlite import ir
    return ir, ir.IntType(16), ir.IntType(32), ir.IntType(64)


def _pmadd(builder, width):
    """(ymm pmaddwd, pmaddwd of ``width`` bits) declarations."""
    from numba.core import cgutils
    ir, i16, i32, _ = _ir()
    v8 = ir.VectorType(i32, 8)
    fn8 = cgutils.get_or_insert_function(builder.module, ir.FunctionType(v8, [ir.VectorType(i16, 16)] * 2),
                                         "llvm.x86.avx2.pmadd.wd")
    if width == 256:
        return fn8, fn8
    fty = ir.FunctionType(ir.VectorType(i32, 16), [ir.VectorType(i16, 32)] * 2)
    return fn8, cgutils.get_or_insert_function(builder.module, fty, "llvm.x86.avx512.pmaddw.d.512")


def _zero_slots(builder, width, n):
    from numba.core import cgutils
    ir, _, i32, _ = _ir()
    va = ir.VectorType(i32, width // 32)
    slots = []
    for _ in range(n):
        slot = cgutils.alloca_once(builder, va)
        builder.store(ir.Constant(va, None), slot)
        slots.append(slot)
    return slots


def _madd_run(builder, width, slots, crow, wrow, kv):
    """slots[a * len(wrow) + b] += the pmaddwd products of the int16 rows at byte
    pointers crow[a] and wrow[b] over kv columns (a multiple of 16; with width 512
    an odd 16-column step runs on ymm into the accumulator's low half)."""
    from numba.core import cgutils
    ir, i16, i32, i64 = _ir()
    lanes = width // 32
    vw, v16, v8 = ir.VectorType(i16, 2 * lanes), ir.VectorType(i16, 16), ir.VectorType(i32, 8)
    fn8, fn = _pmadd(builder, width)
    step = 2 * lanes  # int16 columns per multiply-add
    nblk = builder.sdiv(kv, ir.Constant(i64, step))

    def madd(off, vt, f, widen):
        wv_ = [builder.load(builder.bitcast(builder.gep(r, [off]), vt.as_pointer()), align=2) for r in wrow]
        for a, cr in enumerate(crow):
            cv = builder.load(builder.bitcast(builder.gep(cr, [off]), vt.as_pointer()), align=2)
            for b in range(len(wrow)):
                slot = slots[a * len(wrow) + b]
                prod = builder.call(f, [cv, wv_[b]])
                if widen:  # ymm product into the low half of a zmm accumulator
                    prod = builder.shuffle_vector(prod, ir.Constant(v8, None),
                                                  ir.Constant(ir.VectorType(i32, 16), list(range(16))))
                builder.store(builder.add(builder.load(slot), prod), slot)
    with cgutils.for_range(builder, nblk) as loop:
        madd(builder.mul(loop.index, ir.Constant(i64, 2 * step)), vw, fn, False)  # bytes
    if width == 512:  # K = 16 (mod 32): the last 16 columns on ymm
        odd = builder.icmp_signed("!=", builder.srem(kv, ir.Constant(i64, 32)), ir.Constant(i64, 0))
        with builder.if_then(odd):
            madd(builder.mul(nblk, ir.Constant(i64, 64)), v16, fn8, True)


def _reduce_slots(builder, width, slots):
    """The horizontal sums of the accumulators (wrapping int32), in slot order:
    zmm folded to ymm, then in groups of 8 three levels of (even + odd) lane
    pairs leave lane i = sum of accumulator i (a short group is padded with zeros)."""
    ir, _, i32, _ = _ir()
    v8 = ir.VectorType(i32, 8)
    ev = ir.Constant(v8, [0, 2, 4, 6, 8, 10, 12, 14])
    od = ir.Constant(v8, [1, 3, 5, 7, 9, 11, 13, 15])

    def pair(u, v):
        return builder.add(builder.shuffle_vector(u, v, ev), builder.shuffle_vector(u, v, od))

    vs = [builder.load(slot) for slot in slots]
    if width == 512:  # low half + high half
        lo = ir.Constant(v8, list(range(8)))
        hi = ir.Constant(v8, list(range(8, 16)))
        vs = [builder.add(builder.shuffle_vector(v, v, lo), builder.shuffle_vector(v, v, hi)) for v in vs]
    vals = []
    for g in range(0, len(vs), 8):
        grp = vs[g:g + 8] + [ir.Constant(v8, None)] * (8 - len(vs[g:g + 8]))
        l1 = [pair(grp[0], grp[1]), pair(grp[2], grp[3]), pair(grp[4], grp[5]), pair(grp[6], grp[7])]
        # l1[j]: lanes 0-3 partial sums of acc 2j, lanes 4-7 of acc 2j+1
        l2 = [pair(l1[0], l1[1]), pair(l1[2], l1[3])]
        l3 = pair(l2[0], l2[1])
        vals += [builder.extract_element(l3, ir.Constant(i32, lane)) for lane in range(min(8, len(vs) - g))]
    return vals


def _is_array(t, dtype, ndim):
    return isinstance(t, types.Array) and t.dtype == dtype and t.ndim == ndim


def _pixel_offsets(builder, base, pstep, npix):
    """Element offsets base + a' * pstep of the block's pixels, a' = min(a, npix - 1)."""
    ir, _, _, i64 = _ir()
    last = builder.sub(npix, ir.Constant(i64, 1))
    out = []
    for a in range(_NP):
        ca = ir.Constant(i64, a)
        aa = builder.select(builder.icmp_signed("<", ca, npix), ca, last)
        out.append(builder.add(base, builder.mul(aa, pstep)))
    return out


def _make_simd_block(width: int = 256):
    """The block as an LLVM intrinsic: ``vpmaddwd`` on ymm (width 256, AVX2) or zmm
    (width 512, AVX-512BW; with AVX-512 VNNI, LLVM fuses each multiply-add pair
    with its accumulation into ``vpdpwssd``).  K is a multiple of 16; a 512-bit
    block finishes an odd 16-column step on ymm."""
    from numba.core import cgutils
    from numba.extending import intrinsic
    ir, _, _, i64 = _ir()
    out_t = types.UniTuple(types.int32, _NP * _NO)

    @intrinsic
    def _block4x2_simd(typingctx, col, p, w, o, K):
        if not (_is_array(col, types.int16, 2) and _is_array(w, types.int16, 2)):
            return None
        sig = out_t(col, types.intp, w, types.intp, types.intp)

        def codegen(context, builder, signature, args):
            colv, pv, wv, ov, kv = args
            ca = context.make_array(signature.args[0])(context, builder, colv)
            wa = context.make_array(signature.args[2])(context, builder, wv)
            cstr = cgutils.unpack_tuple(builder, ca.strides, 2)[0]
            wstr = cgutils.unpack_tuple(builder, wa.strides, 2)[0]
            cbase = builder.bitcast(ca.data, ir.IntType(8).as_pointer())
            wbase = builder.bitcast(wa.data, ir.IntType(8).as_pointer())
            crow = [builder.gep(cbase, [builder.mul(builder.add(pv, ir.Constant(i64, a)), cstr)])
                    for a in range(_NP)]
            wrow = [builder.gep(wbase, [builder.mul(builder.add(ov, ir.Constant(i64, b)), wstr)])
                    for b in range(_NO)]
            slots = _zero_slots(builder, width, _NP * _NO)
            _madd_run(builder, width, slots, crow, wrow, kv)
            return context.make_tuple(builder, out_t, _reduce_slots(builder, width, slots))

        return sig, codegen

    return _block4x2_simd


# ---- implicit-GEMM blocks of the thin layers (issue 20) --------------------------
#
# Both read a zero-padded channels-last input ``x`` (flat int16, SLACK zeros at
# the end) in place, without im2col.  An output pixel's taps are ``nseg``
# segments, each a contiguous run of x: segment s of pixel a starts at element
# ``base + a * pstep + segs[s]`` (e.g. one kernel row ky: k * C elements).
# Pixels a >= npix (a block past the row's end) read pixel npix - 1 again and
# are not stored.  Exactness as above: int16 x int16 products, int32
# wrap-around sums, the true accumulator lies in int32 (SPEC A3).

#: padding elements after a padded input: the blocks read a segment rounded up
#: to a whole pmaddwd step (the matching weights are zero)
SLACK = 32
#: output channels per dot_seg block (ST3: the 3 colour channels in one block)
DOT_NO = 3
#: output channels per oc_block call, per SIMD width (None: the generic twin)
OC_BLOCK_OF = {512: 64, 256: 16, None: 64}

#: ``kind | LEVELS`` (oc_block_codes, stage32, the *_codes_* kernels): store
#: the next layer's decoded int16 operand of each code instead of the code
LEVELS = 4


@njit(cache=True)
def dot_seg_generic(x, base, pstep, npix, segs, seglen, w, o):
    """dot_seg in plain code: r[a * DOT_NO + b] = sum over segments s and
    j < seglen of x[base + a' * pstep + segs[s] + j] * w[o + b, s * seglen + j]
    (a' = min(a, npix - 1)), wrapped to int32."""
    r = np.zeros(_NP * DOT_NO, np.int32)
    for a in range(_NP):
        xa = base + min(a, npix - 1) * pstep
        for b in range(DOT_NO):
            s = np.int64(0)
            for si in range(segs.shape[0]):
                xs = xa + segs[si]
                wc = si * seglen
                for j in range(seglen):
                    s += np.int64(x[xs + j]) * np.int64(w[o + b, wc + j])
            r[a * DOT_NO + b] = _wrap32(s)
    return r


def _make_seg_dot_block(width: int):
    """dot_seg as an LLVM intrinsic: 4 pixels x DOT_NO outputs of pmaddwd rows
    (``_madd_run``) over every segment, one reduction at the end (seglen a
    multiple of 16; w (>= o + DOT_NO, nseg * seglen) int16, C order)."""
    from numba.core import cgutils
    from numba.extending import intrinsic
    ir, _, _, i64 = _ir()
    out_t = types.UniTuple(types.int32, _NP * DOT_NO)

    @intrinsic
    def _dot_seg_simd(typingctx, x, base, pstep, npix, segs, seglen, w, o):
        if not (_is_array(x, types.int16, 1) and _is_array(segs, types.int64, 1)
                and _is_array(w, types.int16, 2)):
            return None
        ip = types.intp
        sig = out_t(x, ip, ip, ip, segs, ip, w, ip)

        def codegen(context, builder, signature, args):
            xv, basev, pstepv, npixv, segsv, seglenv, wv, ov = args
            xa = context.make_array(signature.args[0])(context, builder, xv)
            sa = context.make_array(signature.args[4])(context, builder, segsv)
            wa = context.make_array(signature.args[6])(context, builder, wv)
            wlen = cgutils.unpack_tuple(builder, wa.shape, 2)[1]
            nseg = cgutils.unpack_tuple(builder, sa.shape, 1)[0]
            i8p = ir.IntType(8).as_pointer()
            xb, wb = builder.bitcast(xa.data, i8p), builder.bitcast(wa.data, i8p)
            two = ir.Constant(i64, 2)
            pix = _pixel_offsets(builder, basev, pstepv, npixv)
            slots = _zero_slots(builder, width, _NP * DOT_NO)
            with cgutils.for_range(builder, nseg) as ls:
                soff = builder.load(builder.gep(sa.data, [ls.index]))
                crow = [builder.gep(xb, [builder.mul(builder.add(p, soff), two)]) for p in pix]
                wcol = builder.mul(ls.index, seglenv)
                wrow = []
                for b in range(DOT_NO):
                    row = builder.mul(builder.add(ov, ir.Constant(i64, b)), wlen)
                    wrow.append(builder.gep(wb, [builder.mul(builder.add(row, wcol), two)]))
                _madd_run(builder, width, slots, crow, wrow, seglenv)
            return context.make_tuple(builder, out_t, _reduce_slots(builder, width, slots))

        return sig, codegen

    return _dot_seg_simd


@njit(cache=True)
def oc_block_generic(x, base, pstep, npix, segs, nps, wpk, o, bias, out, obase, ostride, nout):
    """oc_block in plain code: for pixels a < npix and outputs oo in
    [o, min(o + OC_BLOCK_OF[None], nout)): out[obase + a * ostride + oo] =
    bias[oo] + sum over segments s and pairs j < nps of
    x[e] * wpk[q, 2 (oo - o)] + x[e + 1] * wpk[q, 2 (oo - o) + 1], with
    e = base + a * pstep + segs[s] + 2 j and q = s * nps + j, wrapped to int32.
    ``wpk`` holds the block's weights only (one block of ``thin.oc_weights``)."""
    for a in range(npix):
        xa = base + a * pstep
        for oo in range(o, min(o + 64, nout)):
            s = np.int64(bias[oo])
            for si in range(segs.shape[0]):
                xs = xa + segs[si]
                for j in range(nps):
                    q = si * nps + j
                    e = xs + 2 * j
                    s += np.int64(x[e]) * np.int64(wpk[q, 2 * (oo - o)])
                    s += np.int64(x[e + 1]) * np.int64(wpk[q, 2 * (oo - o) + 1])
            out[obase + a * ostride + oo] = _wrap32(s)


def _make_oc_block(width: int, codes: bool = False):
    """oc_block as an LLVM intrinsic, vectorised over output channels: the
    accumulators of 4 pixels x OC_BLOCK_OF[width] outputs stay in registers (16
    zmm / 8 ymm), each input pair x[e], x[e + 1] is broadcast to every lane and
    multiplied with the interleaved weight pairs by pmaddwd (VNNI: vpdpwssd).
    No horizontal reduction: the lanes are the outputs, stored as int32 vectors
    (bias as the initial value).  wpk is the block's own (Q, 2 OC_BLOCK) slice
    of ``thin.oc_weights`` (contiguous rows: one cache line per pair step on
    AVX2, where rows of every output, strided by 2 O, halved the MAC rate);
    bias is padded to o + OC_BLOCK; nout a multiple of 16.

    ``codes``: ``oc_block_codes`` instead, the same accumulators put through the
    output stage in registers (``_emit_stage``) and stored as int16 codes."""
    from numba.core import cgutils
    from numba.extending import intrinsic
    ir, i16, i32, i64 = _ir()
    lanes = width // 32
    nv = OC_BLOCK_OF[width] // lanes  # vectors per pixel
    vw, va = ir.VectorType(i16, 2 * lanes), ir.VectorType(i32, lanes)

    def accumulate(context, builder, xa, sa, wa, ba, basev, pstepv, npixv, npsv, ov):
        wlen = cgutils.unpack_tuple(builder, wa.shape, 2)[1]
        nseg = cgutils.unpack_tuple(builder, sa.shape, 1)[0]
        _, fn = _pmadd(builder, width)
        c = lambda v: ir.Constant(i64, v)  # noqa: E731
        pix = _pixel_offsets(builder, basev, pstepv, npixv)
        slots = []
        for a in range(_NP):
            for v in range(nv):
                slot = cgutils.alloca_once(builder, va)
                bp = builder.gep(ba.data, [builder.add(ov, c(v * lanes))])
                builder.store(builder.load(builder.bitcast(bp, va.as_pointer()), align=4), slot)
                slots.append(slot)
        splat = ir.Constant(ir.VectorType(i32, lanes), [0] * lanes)
        with cgutils.for_range(builder, nseg) as ls:
            soff = builder.load(builder.gep(sa.data, [ls.index]))
            xs = [builder.add(p, soff) for p in pix]
            qbase = builder.mul(ls.index, npsv)
            with cgutils.for_range(builder, npsv) as lj:
                wrow = builder.mul(builder.add(qbase, lj.index), wlen)
                wvec = []
                for v in range(nv):
                    wp = builder.gep(wa.data, [builder.add(wrow, c(2 * lanes * v))])
                    wvec.append(builder.load(builder.bitcast(wp, vw.as_pointer()), align=2))
                j2 = builder.mul(lj.index, c(2))
                for a in range(_NP):
                    e = builder.gep(xa.data, [builder.add(xs[a], j2)])
                    d = builder.load(builder.bitcast(e, i32.as_pointer()), align=2)
                    undef = ir.Constant(va, ir.Undefined)
                    bc = builder.insert_element(undef, d, ir.Constant(i32, 0))
                    bc = builder.bitcast(builder.shuffle_vector(bc, undef, splat), vw)  # pair in every lane
                    for v in range(nv):
                        slot = slots[a * nv + v]
                        prod = builder.call(fn, [bc, wvec[v]])
                        builder.store(builder.add(builder.load(slot), prod), slot)
        return slots

    if not codes:
        @intrinsic
        def _oc_block_simd(typingctx, x, base, pstep, npix, segs, nps, wpk, o, bias, out, obase, ostride, nout):
            if not (_is_array(x, types.int16, 1) and _is_array(segs, types.int64, 1)
                    and _is_array(wpk, types.int16, 2) and _is_array(bias, types.int32, 1)
                    and _is_array(out, types.int32, 1)):
                return None
            ip = types.intp
            sig = types.void(x, ip, ip, ip, segs, ip, wpk, ip, bias, out, ip, ip, ip)

            def codegen(context, builder, signature, args):
                xv, basev, pstepv, npixv, segsv, npsv, wv, ov, bv, outv, obasev, ostrv, noutv = args
                arr = [context.make_array(signature.args[k])(context, builder, args[k]) for k in (0, 4, 6, 8, 9)]
                xa, sa, wa, ba, oa = arr
                slots = accumulate(context, builder, xa, sa, wa, ba, basev, pstepv, npixv, npsv, ov)
                c = lambda v: ir.Constant(i64, v)  # noqa: E731
                for a in range(_NP):
                    with builder.if_then(builder.icmp_signed("<", c(a), npixv)):
                        row = builder.add(obasev, builder.mul(c(a), ostrv))
                        for v in range(nv):
                            oo = builder.add(ov, c(v * lanes))
                            with builder.if_then(builder.icmp_signed("<", oo, noutv)):
                                dst = builder.bitcast(builder.gep(oa.data, [builder.add(row, oo)]), va.as_pointer())
                                builder.store(builder.load(slots[a * nv + v]), dst, align=4)
                return context.get_dummy_value()

            return sig, codegen

        return _oc_block_simd

    @intrinsic
    def _oc_block_codes_simd(typingctx, x, base, pstep, npix, segs, nps, wpk, o, bias, kind, prm, lo, hi,
                             out, obase, ostride, nout):
        if not (_is_array(x, types.int16, 1) and _is_array(segs, types.int64, 1)
                and _is_array(wpk, types.int16, 2) and _is_array(bias, types.int32, 1)
                and _is_array(prm, types.int32, 2) and _is_array(out, types.int16, 1)):
            return None
        ip = types.intp
        sig = types.void(x, ip, ip, ip, segs, ip, wpk, ip, bias, ip, prm, ip, ip, out, ip, ip, ip)

        def codegen(context, builder, signature, args):
            (xv, basev, pstepv, npixv, segsv, npsv, wv, ov, bv, kindv, pv, lov, hiv, outv, obasev, ostrv,
             noutv) = args
            arr = [context.make_array(signature.args[k])(context, builder, args[k]) for k in (0, 4, 6, 8, 10, 13)]
            xa, sa, wa, ba, pa, oa = arr
            slots = accumulate(context, builder, xa, sa, wa, ba, basev, pstepv, npixv, npsv, ov)
            c = lambda v: ir.Constant(i64, v)  # noqa: E731
            plen = cgutils.unpack_tuple(builder, pa.shape, 2)[1]
            lo32, hi32 = builder.trunc(lov, i32), builder.trunc(hiv, i32)
            vi16 = ir.VectorType(i16, lanes)
            is_nlq = builder.icmp_signed("==", builder.and_(kindv, c(LEVELS - 1)), c(0))
            want_lv = builder.icmp_signed("!=", builder.and_(kindv, c(LEVELS)), c(0))
            full = builder.icmp_signed("==", npixv, c(_NP))

            def store(a, oo, q):
                row = builder.add(obasev, builder.mul(c(a), ostrv))
                dst = builder.bitcast(builder.gep(oa.data, [builder.add(row, oo)]), vi16.as_pointer())
                builder.store(builder.trunc(q, vi16), dst, align=2)

            def stage(rows, acc, nlq, levels):
                """One vector through O1 (nlq) or O2, as a code or (levels) as the next
                layer's int16 operand (level << lsh) >> rsh (rows 10, 11)."""
                if nlq:
                    code, lev = _emit_nlq(builder, lanes, acc, rows.__getitem__, want_code=not levels)
                else:
                    code = lev = _emit_lq(builder, lanes, acc, rows.__getitem__, lo32, hi32)  # O2: level = code
                return builder.ashr(builder.shl(lev, rows[10]), rows[11]) if levels else code

            def pixels(v, rows, oo, nlq, levels):
                """Vector v of every pixel's accumulators through the stage; a full
                block (every block but a row's last) without a test per pixel."""
                with builder.if_else(full) as (whole, part):
                    with whole:
                        for a in range(_NP):
                            store(a, oo, stage(rows, builder.load(slots[a * nv + v]), nlq, levels))
                    with part:
                        for a in range(_NP):
                            with builder.if_then(builder.icmp_signed("<", c(a), npixv)):
                                store(a, oo, stage(rows, builder.load(slots[a * nv + v]), nlq, levels))

            for v in range(nv):
                oo = builder.add(ov, c(v * lanes))
                with builder.if_then(builder.icmp_signed("<", oo, noutv)):
                    rows = []  # the channel parameters, loaded once per vector of outputs
                    for r in range(12):
                        pp = builder.gep(pa.data, [builder.add(builder.mul(c(r), plen), oo)])
                        rows.append(builder.load(builder.bitcast(pp, va.as_pointer()), align=4))
                    with builder.if_else(is_nlq) as kinds:  # one straight-line body per (kind, store)
                        for nlq, kind_branch in zip((True, False), kinds):
                            with kind_branch:
                                with builder.if_else(want_lv) as stores:
                                    for levels, store_branch in zip((True, False), stores):
                                        with store_branch:
                                            pixels(v, rows, oo, nlq, levels)
            return context.get_dummy_value()

        return sig, codegen

    return _oc_block_codes_simd


def _phi(builder, ty, incoming):
    ph = builder.phi(ty)
    for val, blk in incoming:
        ph.add_incoming(val, blk)
    return ph


def _vsplat(lanes, v):
    from llvmlite import ir
    return ir.Constant(ir.VectorType(ir.IntType(32), lanes), [v] * lanes)


def _vmin(builder, a, b):
    return builder.select(builder.icmp_signed("<", a, b), a, b)


def _vmax(builder, a, b):
    return builder.select(builder.icmp_signed(">", a, b), a, b)


def _emit_nlq(builder, lanes, acc, prow, want_code=True):
    """O1 on an int32 vector of accumulators in registers: the code of the
    channel's NLQ codebook, computed from the segments (``stage_params32``
    rows: 0 sa, 1 sb, 2 lo1, 3 lo2, 4-6 k0-k2, 7 c1, 8 c2, 9 max level), the
    same function of u = min(min(max(a, 0) >> sa, 4096) << sb, ...) as
    ``nlq_u_table`` (``_nlq_code`` at shift 1) without a table.  Returns
    (code, level): the level is what ``LEVELS`` stores (``want_code`` False:
    (None, level), the code's selects not emitted)."""
    k = lambda v: _vsplat(lanes, v)  # noqa: E731
    sa, sb, lo1, lo2, k0, k1, k2, c1, c2, maxl = (prow(r) for r in range(10))
    v = _vmax(builder, acc, k(0))
    u = builder.shl(_vmin(builder, builder.ashr(v, sa), k(4096)), sb)
    h = builder.ashr(u, k(1))
    m1, m2 = builder.icmp_signed(">=", h, lo1), builder.icmp_signed(">=", h, lo2)
    kk = builder.select(m2, k2, builder.select(m1, k1, k0))
    level = builder.add(builder.ashr(u, builder.add(kk, k(1))), builder.and_(builder.ashr(u, kk), k(1)))
    level = _vmin(builder, builder.shl(level, kk), maxl)
    if not want_code:
        return None, level
    n1, n2 = builder.icmp_signed(">=", level, lo1), builder.icmp_signed(">=", level, lo2)
    kk = builder.select(n2, k2, builder.select(n1, k1, k0))
    base = builder.select(n2, lo2, builder.select(n1, lo1, k(0)))
    code = builder.select(n2, c2, builder.select(n1, c1, k(0)))
    return builder.add(code, builder.ashr(builder.sub(level, base), kk)), level


def _emit_lq(builder, lanes, acc, prow, lo, hi):
    """O2 on an int32 vector: SAT(R2(a, t), lo, hi) with t = sb (row 1) for a < 0,
    else sa (row 0), exact for every int32 a and every t (``stage_tile``'s
    int64 form): R1's shift clipped to 31 (for int32 a the same as R1 by any
    t >= 31), and for t <= 0 the left shift of a clamped to [lo - 1, hi + 1] by
    at most 8 (the same saturated result for codes within +-256)."""
    ir = __import__("llvmlite").ir
    k = lambda v: _vsplat(lanes, v)  # noqa: E731
    va = ir.VectorType(ir.IntType(32), lanes)
    lov = builder.insert_element(ir.Constant(va, ir.Undefined), lo, ir.Constant(ir.IntType(32), 0))
    lov = builder.shuffle_vector(lov, ir.Constant(va, ir.Undefined), k(0))
    hiv = builder.insert_element(ir.Constant(va, ir.Undefined), hi, ir.Constant(ir.IntType(32), 0))
    hiv = builder.shuffle_vector(hiv, ir.Constant(va, ir.Undefined), k(0))
    t = builder.select(builder.icmp_signed("<", acc, k(0)), prow(1), prow(0))
    r = _vmin(builder, _vmax(builder, t, k(0)), k(31))
    r1 = _vmin(builder, _vmax(builder, builder.sub(t, k(1)), k(0)), k(31))
    qr = builder.add(builder.ashr(acc, r), builder.and_(builder.ashr(acc, r1), k(1)))
    cl = _vmin(builder, _vmax(builder, acc, builder.sub(lov, k(1))), builder.add(hiv, k(1)))
    ql = builder.shl(cl, _vmin(builder, _vmax(builder, builder.sub(k(0), t), k(0)), k(8)))
    q = builder.select(builder.icmp_signed(">", t, k(0)), qr, ql)
    return _vmin(builder, _vmax(builder, q, lov), hiv)


#: the SIMD width chosen at start-up from the host's features (issue 20); every
#: variant gives the same integers (tests/test_kernels_equivalence.py,
#: tests/test_kernels_thin.py)
_WIDTH = 512 if HAVE_AVX512 else (256 if HAVE_AVX2 else None)
BLOCK_VARIANT = {512: "avx512-vnni" if HAVE_VNNI else "avx512bw", 256: "avx2", None: "generic"}[_WIDTH]
block4x2 = _make_simd_block(_WIDTH) if _WIDTH else block4x2_generic
dot_seg = _make_seg_dot_block(_WIDTH) if _WIDTH else dot_seg_generic
oc_block = _make_oc_block(_WIDTH) if _WIDTH else oc_block_generic
oc_block_codes = _make_oc_block(_WIDTH, codes=True) if _WIDTH else None  # generic: see oc_block_codes_generic
OC_BLOCK = OC_BLOCK_OF[_WIDTH]


@njit(cache=True)
def block4x2_call(col, p, w, o, K):
    """``block4x2`` callable from Python (an intrinsic is not), for tests."""
    return block4x2(col, p, w, o, K)


def _variant_widths() -> dict:
    out = {"generic": None}
    for name, width, ok in (("avx2", 256, HAVE_AVX2), ("avx512", 512, HAVE_AVX512)):
        if ok:
            out[name] = width
    return out


def _variant_blocks() -> dict:
    return {n: (_make_simd_block(wd) if wd else block4x2_generic) for n, wd in _variant_widths().items()}


def variant_callers() -> dict:
    """{variant: a Python-callable block} for every SIMD variant this host runs
    (tests compare each with the generic block)."""
    def caller(blk):
        @njit
        def call(col, p, w, o, K):
            return blk(col, p, w, o, K)
        return call
    return {n: (b if n == "generic" else caller(b)) for n, b in _variant_blocks().items()}


def thin_variant_callers() -> dict:
    """{variant: (dot_seg caller, oc_block caller, its OC_BLOCK)} for every
    variant this host runs (tests compare each with the int64 dot products)."""
    def callers(dot, oc):
        @njit
        def call_dot(x, base, pstep, npix, segs, seglen, w, o):
            return dot(x, base, pstep, npix, segs, seglen, w, o)

        @njit
        def call_oc(x, base, pstep, npix, segs, nps, wpk, o, bias, out, obase, ostride, nout):
            oc(x, base, pstep, npix, segs, nps, wpk, o, bias, out, obase, ostride, nout)
        return call_dot, call_oc
    out = {}
    for n, wd in _variant_widths().items():
        if wd is None:
            out[n] = (dot_seg_generic, oc_block_generic, OC_BLOCK_OF[None])
        else:
            out[n] = callers(_make_seg_dot_block(wd), _make_oc_block(wd)) + (OC_BLOCK_OF[wd],)
    return out


def variant_loops() -> dict:
    """{variant: loop(col, w, K, n)} calling the block n times inside compiled code
    (tools/bench_block.py: no Python call overhead in the timing)."""
    def looper(blk):
        @njit
        def loop(col, w, K, n):
            s = np.int64(0)
            for i in range(n):
                r = blk(col, i & 1, w, 0, K)
                s += np.int64(r[0]) + np.int64(r[7])
            return s
        return loop
    return {n: looper(b) for n, b in _variant_blocks().items()}


@njit(parallel=True)
def _oc_peak_loop(x, segs, nps, wpk, bias, out, calls, nthr):
    """``calls`` calls of the engine's oc_block per thread on operands that stay
    in cache (one 4-pixel x OC_BLOCK tile, ``nps`` pair steps): the MAC rate of
    the block itself, without the memory traffic of a layer."""
    for t in prange(nthr):
        for i in range(calls):
            oc_block(x, (i & 1) * 2, 2 * nps, 4, segs, nps, wpk, 0, bias, out[t], 0, OC_BLOCK, OC_BLOCK)
    return out


def oc_block_peak(threads: int, nps: int = 320, calls: int = 20000, reps: int = 5) -> float:
    """The exact int16 MAC rate (GMAC/s, best of ``reps``) of the engine's OC
    block on ``threads`` threads with in-cache operands (``nps`` = 320 pair
    steps: 80 KB of weights, an AT1-sized block row): the ceiling a layer on the
    fast path can reach on this machine (tools/bench.py's per-layer % of peak)."""
    import time

    import numba
    rng = np.random.default_rng(0)
    x = rng.integers(-300, 300, 8 * nps + 64).astype(np.int16)
    wpk = rng.integers(-300, 300, (nps, 2 * OC_BLOCK)).astype(np.int16)
    bias = np.zeros(OC_BLOCK, np.int32)
    out = np.zeros((threads, 4 * OC_BLOCK), np.int32)
    segs = np.zeros(1, np.int64)
    old = numba.get_num_threads()
    numba.set_num_threads(threads)
    try:
        _oc_peak_loop(x, segs, nps, wpk, bias, out, 10, threads)  # compile
        best = np.inf
        for _ in range(reps):
            t0 = time.perf_counter()
            _oc_peak_loop(x, segs, nps, wpk, bias, out, calls, threads)
            best = min(best, time.perf_counter() - t0)
    finally:
        numba.set_num_threads(old)
    return threads * calls * 4 * OC_BLOCK * 2 * nps / best / 1e9


@njit(cache=True)
def _tail_dot(col, p, w, o, K):
    s = np.int64(0)
    for j in range(K):
        s += np.int64(col[p, j]) * np.int64(w[o, j])
    return _wrap32(s)


@njit(cache=True)
def gemm_rows(col, P, w, bias, out, row, x0, xstep, Kp):
    """out[row, x0 + xstep*i, o] = bias[o] + sum_{j<Kp} col[i, j] * w[o, j]
    for i < P and every o < O = out.shape[2].

    col (>= ceil(P/4)*4, >= Kp) int16 with zero rows beyond P, w (Op, >= Kp)
    int16 with Op >= O (rows beyond O are padding; an even Op keeps every
    output channel in the vector blocks), Kp a multiple of 16; out (H, W, O)
    int32.  Exact int32 (see the GEMM notes above).
    """
    O = out.shape[2]
    Op = w.shape[0]
    for p in range(0, P, 4):
        for o in range(0, Op - 1, 2):
            r = block4x2(col, p, w, o, Kp)
            b0 = np.int64(bias[o])
            b1 = np.int64(bias[o + 1]) if o + 1 < O else np.int64(0)
            for a in range(4):
                if p + a < P:
                    out[row, x0 + xstep * (p + a), o] = _wrap32(np.int64(r[2 * a]) + b0)
                    if o + 1 < O:
                        out[row, x0 + xstep * (p + a), o + 1] = _wrap32(np.int64(r[2 * a + 1]) + b1)
        if Op % 2 == 1 and Op - 1 < O:
            o = Op - 1
            for a in range(4):
                if p + a < P:
                    out[row, x0 + xstep * (p + a), o] = _wrap32(np.int64(_tail_dot(col, p + a, w, o, Kp))
                                                             + np.int64(bias[o]))
    return out


@njit(cache=True)
def _im2col_row(x, oy, k, stride, Wo, col):
    """C1 gather of output row oy: col[ox, (ky*k + kx)*C + c] = x[iy, ix, c]
    for every in-range tap (out-of-range taps keep the caller's zeros)."""
    H, W, C = x.shape
    p = k // 2
    for ox in range(Wo):
        for ky in range(k):
            iy = oy * stride - p + ky
            if iy < 0 or iy >= H:
                continue
            for kx in range(k):
                ix = ox * stride - p + kx
                if ix < 0 or ix >= W:
                    continue
                base = (ky * k + kx) * C
                for c in range(C):
                    col[ox, base + c] = x[iy, ix, c]


@njit(parallel=True, cache=True)
def conv2d_acc_i16(x, w16, bias, k, stride, O):
    """C1, fast path: x (H, W, C) int16, w16 (Op, Kp) int16 rows in (ky, kx, c)
    order zero-padded to Kp (a multiple of 16) and Op (even), bias (O,) int32
    -> (Ho, Wo, O) int32."""
    H, W, C = x.shape
    p = k // 2
    Ho = (H + 2 * p - k) // stride + 1
    Wo = (W + 2 * p - k) // stride + 1
    Kp = w16.shape[1]
    Pp = (Wo + 3) // 4 * 4
    out = np.empty((Ho, Wo, O), dtype=np.int32)
    for oy in prange(Ho):
        col = np.zeros((Pp, Kp), dtype=np.int16)
        _im2col_row(x, oy, k, stride, Wo, col)
        gemm_rows(col, Wo, w16, bias, out, oy, 0, 1, Kp)
    return out


@njit(parallel=True, cache=True)
def tconv2d_acc_i16(x, wph, kph, taps, ntaps, bias, k, O):
    """C2, fast path, as four stride-1 sub-pixel convolutions (one per output
    phase (py, px)).  ``wph[py, px]`` (Op, Kmax) int16 holds the phase's taps in
    (ty, tx, c) order, zero-padded; ``kph[py, px]`` is its length rounded up to
    16.  x (H, W, C) int16 -> (2H, 2W, O) int32."""
    H, W, C = x.shape
    p = k // 2
    Ho, Wo = 2 * H, 2 * W
    Kmax = wph.shape[3]
    Pp = (W + 3) // 4 * 4
    out = np.empty((Ho, Wo, O), dtype=np.int32)
    for oy in prange(Ho):
        py = oy % 2
        ny = ntaps[py]
        col = np.empty((Pp, Kmax), dtype=np.int16)
        for px in range(2):
            nx = ntaps[px]
            Kph = kph[py, px]
            col[:, :Kph] = 0
            for m in range(W):
                ox = 2 * m + px
                for a in range(ny):
                    iy2 = oy + p - taps[py, a]
                    if iy2 < 0 or iy2 // 2 >= H:
                        continue
                    iy = iy2 // 2
                    for b in range(nx):
                        ix2 = ox + p - taps[px, b]
                        if ix2 < 0 or ix2 // 2 >= W:
                            continue
                        ix = ix2 // 2
                        base = (a * nx + b) * C
                        for c in range(C):
                            col[m, base + c] = x[iy, ix, c]
            gemm_rows(col, W, wph[py, px], bias, out, oy, px, 2, Kph)
    return out


@njit(parallel=True, cache=True)
def decode_levels_i16_pad(codes, tables, offset, pad, slack):
    """I1 for the fast paths: (C, H, W) codes (any integer dtype) -> the flat
    int16 buffer of the (H + 2 pad, W + 2 pad, C) channels-last levels (aligned
    levels >> the channel's weight-side shift) with a zero border of ``pad``
    and ``slack`` zeros after it.  Rows in parallel; inside a row 8 channels at
    a time (8 contiguous reads, 16-byte writes).  Indexes are unsigned (no
    negative-index wrap code): a code + offset lies in [0, 256) by I1."""
    C, H, W = codes.shape
    Wp = W + 2 * pad
    rl = Wp * C
    n = (H + 2 * pad) * rl
    buf = np.empty(n + slack, dtype=np.int16)
    u = np.uint64
    for y in prange(H + 2 * pad):
        r0 = y * rl
        iy = y - pad
        if iy < 0 or iy >= H:
            buf[r0:r0 + rl] = 0
        else:
            buf[r0:r0 + pad * C] = 0
            buf[r0 + (pad + W) * C:r0 + rl] = 0
            for c0 in range(0, C, 8):
                for x in range(W):
                    b = u(r0 + (x + pad) * C)
                    for c in range(c0, min(C, c0 + 8)):
                        buf[b + u(c)] = tables[u(c), u(np.int64(codes[u(c), u(iy), u(x)]) + offset)]
    buf[n:] = 0
    return buf


def decode_levels_i16(codes, tables, offset):
    """I1 for the im2col path: (C, H, W) codes -> (H, W, C) int16 (the unpadded
    ``decode_levels_i16_pad``)."""
    C, H, W = codes.shape
    return decode_levels_i16_pad(codes, tables, offset, 0, 0).reshape(H, W, C)


@njit(parallel=True, cache=True)
def conv2d_acc_oc(xp, Wp, C, stride, Ho, Wo, segs, nps, wpk, bias, O, out):
    """C1 for O a multiple of 16, vectorised over output channels (``oc_block``)
    on the zero-padded input xp (``decode_levels_i16_pad`` with pad k//2: Wp
    columns of C channels), no im2col.  segs[ky] = ky * Wp * C, nps = pairs per
    kernel row, wpk / bias as ``thin.oc_weights``; out a flat int32 buffer of at
    least Ho * Wo * O elements (its head is overwritten).  -> (Ho, Wo, O) int32."""
    pstep = stride * C
    for oy in prange(Ho):
        base = oy * stride * Wp * C
        for xc in range(0, Wo, _XCH):
            for o in range(0, O, OC_BLOCK):
                wb = wpk[o // OC_BLOCK]
                for x0 in range(xc, min(xc + _XCH, Wo), _NP):
                    npix = min(_NP, Wo - x0)
                    obase = (oy * Wo + x0) * O
                    oc_block(xp, base + x0 * pstep, pstep, npix, segs, nps, wb, o, bias, out, obase, O, O)
    return out[:Ho * Wo * O].reshape((Ho, Wo, O))


@njit(parallel=True, cache=True)
def tconv2d_acc_phases(xp, H, W, C, pad, wk, dy, nseg, klen, dxmin, bias, O, few, out):
    """C2 phase by phase (SPEC C2) on the zero-padded input xp (pad ``pad``), no
    im2col: output (2 my + py, 2 m + px) reads input rows my + dy[py, a] (a <
    nseg[py]), each one segment of the columns m + dxmin[px], ... (the taps of
    the phase in ``thin.phase_taps`` order).  ``few`` (O < 16, ST3): all outputs
    of 4 pixels in one ``dot_seg`` block, wk[py, px, 0] (Op, nseg * klen[px]) with
    klen the segment length; else (O a multiple of 16) ``oc_block``, wk[py, px]
    as ``thin.oc_weights`` with klen[px] pairs per segment and bias padded.
    out: as in ``conv2d_acc_oc``.  -> (2H, 2W, O) int32."""
    Wp = W + 2 * pad
    Wo = 2 * W
    segs = dy * (Wp * C)
    for oy in prange(2 * H):
        py = oy % 2
        sg = segs[py, :nseg[py]]
        for px in range(2):
            w = wk[py, px]
            base = ((oy // 2 + pad) * Wp + dxmin[px] + pad) * C
            if not few:
                for mc in range(0, W, _XCH):
                    for o in range(0, O, OC_BLOCK):
                        wb = w[o // OC_BLOCK]
                        for m0 in range(mc, min(mc + _XCH, W), _NP):
                            npix = min(_NP, W - m0)
                            obase = (oy * Wo + 2 * m0 + px) * O
                            oc_block(xp, base + m0 * C, C, npix, sg, klen[px], wb, o, bias, out, obase, 2 * O, O)
                continue
            for m0 in range(0, W, _NP):
                npix = min(_NP, W - m0)
                obase = (oy * Wo + 2 * m0 + px) * O
                for o in range(0, O, DOT_NO):
                    r = dot_seg(xp, base + m0 * C, C, npix, sg, klen[px], w[0], o)
                    for a in range(npix):
                        for b in range(min(DOT_NO, O - o)):
                            v = np.int64(r[a * DOT_NO + b]) + np.int64(bias[o + b])
                            out[obase + 2 * a * O + o + b] = _wrap32(v)
    return out[:2 * H * Wo * O].reshape((2 * H, Wo, O))


@njit(parallel=True, cache=True)
def conv2d_acc_hwc(x, w2, bias, k, stride):
    """C1 on x (H, W, C) int32, w2 (O, k*k*C) int32, bias (O,) int64 -> (Ho, Wo, O) int32."""
    H, W, C = x.shape
    O = w2.shape[0]
    p = k // 2
    Ho = (H + 2 * p - k) // stride + 1
    Wo = (W + 2 * p - k) // stride + 1
    K = k * k * C
    out = np.empty((Ho, Wo, O), dtype=np.int32)
    for oy in prange(Ho):
        col = np.zeros((Wo, K), dtype=np.int32)
        _im2col_row(x, oy, k, stride, Wo, col)
        for ox in range(Wo):
            for o in range(O):
                acc = np.int64(bias[o])
                for j in range(K):
                    acc += np.int64(col[ox, j]) * np.int64(w2[o, j])
                out[oy, ox, o] = np.int32(acc)
    return out


@njit(parallel=True, cache=True)
def tconv2d_acc_hwc(x, wph, taps, ntaps, bias, k):
    """C2 as four stride-1 sub-pixel convolutions (one per output phase).

    ``taps[ph, j]`` lists the kernel rows (or columns) that reach output phase
    ph (ky = p + ph + 2m for integers m; input row iy = (oy + p - ky) / 2),
    ``wph[py, px]`` holds the weights of that phase as (O, ntaps[py]*ntaps[px]*C)
    rows in (ty, tx, c) order.  x (H, W, C) int32 -> (2H, 2W, O) int32.
    """
    H, W, C = x.shape
    O = wph.shape[2]
    p = k // 2
    Ho, Wo = 2 * H, 2 * W
    out = np.empty((Ho, Wo, O), dtype=np.int32)
    for oy in prange(Ho):
        py = oy % 2
        ny = ntaps[py]
        Kmax = wph.shape[3]
        col = np.zeros((Wo, Kmax), dtype=np.int32)
        for ox in range(Wo):
            px = ox % 2
            nx = ntaps[px]
            for a in range(ny):
                ky = taps[py, a]
                iy2 = oy + p - ky
                for b in range(nx):
                    kx = taps[px, b]
                    ix2 = ox + p - kx
                    base = (a * nx + b) * C
                    if iy2 < 0 or ix2 < 0 or iy2 // 2 >= H or ix2 // 2 >= W:
                        for c in range(C):
                            col[ox, base + c] = 0
                    else:
                        iy = iy2 // 2
                        ix = ix2 // 2
                        for c in range(C):
                            col[ox, base + c] = x[iy, ix, c]
        for ox in range(Wo):
            px = ox % 2
            K = ny * ntaps[px] * C
            for o in range(O):
                acc = np.int64(bias[o])
                for j in range(K):
                    acc += np.int64(col[ox, j]) * np.int64(wph[py, px, o, j])
                out[oy, ox, o] = np.int32(acc)
    return out


# ---- output stages: kind 0 relu-nlq, 1 signed lq, 2 latent, 3 pixel --------

@njit(cache=True)
def _nlq_code(a, s, seg_lo, seg_k, seg_code, nseg, max_level):
    """O1 for one element: segment by |t| (t = a 2^-s), round on its grid, clip,
    code = code_base + (level - lo) >> k of the level's segment."""
    if s < 0:
        a = a << (-s)
        s = 0
    j = 0
    sh = s if s < 63 else 63
    for i in range(nseg):
        if (a >> sh) >= seg_lo[i]:  # |t| >= lo without overflow
            j = i
    level = _rhu(a, s + seg_k[j]) << seg_k[j]
    if level > max_level:
        level = max_level
    # the level may have moved up into the next segment (boundary level)
    j2 = 0
    for i in range(nseg):
        if level >= seg_lo[i]:
            j2 = i
    return seg_code[j2] + ((level - seg_lo[j2]) >> seg_k[j2])


#: size of the per-mux O1 table indexed by u (see nlq_u_table)
NLQ_U = 2048


@njit(cache=True)
def nlq_u_table(seg_lo, seg_k, seg_code, nseg, max_level):
    """O1 as a table: for a >= 0 and shift s, let u = a >> (s - 1) (s >= 1) or
    u = a << (1 - s) (s <= 0).  Then code(a, s) == code(u, 1), because the
    segment test uses a >> s = u >> 1 and the rounding RHU(a, s + k) =
    (a >> (s+k)) + ((a >> (s+k-1)) & 1) uses only bits at or above s - 1
    (s <= 0: RHU(2a', 1 + k) = RHU(a', k)).  The code is non-decreasing in u
    and reaches the top code (the clip) below u = NLQ_U for every codebook
    with levels < 1024, so u is clipped to NLQ_U - 1.  Returns (4, NLQ_U) int64."""
    lut = np.empty((4, NLQ_U), np.int64)
    for m in range(4):
        for u in range(NLQ_U):
            lut[m, u] = _nlq_code(np.int64(u), 1, seg_lo[m], seg_k[m], seg_code[m], nseg[m],
                                  max_level[m])
    return lut


@njit(parallel=True, cache=True)
def output_stage_into(acc, kind, leaky, shift, mux, nlq_lut, mu, lo, hi, out):
    """Apply the layer's output stage to acc (Ho, Wo, O) -> ``out`` (O, Ho, Wo),
    any integer dtype holding the code range (int64, int16, ...).

    nlq_lut is the (4, NLQ_U) O1 table of the four mux codebooks (``nlq_u_table``
    of the SPEC Q2 segment tables; built once per backend, read only for kind 0),
    mu (O,) the mean-reduction offsets, [lo, hi] the saturation range of kinds 1-3.
    Rows in parallel; within a row channel by channel, so the writes are
    contiguous and the strided reads stay inside one row of acc (cache).
    """
    Ho, Wo, O = acc.shape
    for y in prange(Ho):
        for o in range(O):
            s = shift[o]
            m = mux[o]
            for x in range(Wo):
                a = np.int64(acc[y, x, o])
                if kind == 0:
                    # O1 via the u-table: code(a, s) = code(u, 1), see nlq_u_table
                    if a < 0:
                        a = 0
                    if s >= 1:
                        u = a >> (s - 1) if s <= 63 else a - a
                    else:
                        u = a << (1 - s)
                    if u >= NLQ_U:
                        u = NLQ_U - 1
                    v = nlq_lut[m, u]
                elif kind == 1:
                    if leaky and a < 0:
                        v = _rq(a, s + 3)
                    else:
                        v = _rq(a, s)
                    v = _sat(v, lo, hi)
                elif kind == 2:
                    v = _sat(_rq(a, s) - mu[o], lo, hi)
                else:
                    v = _sat(_rq(a, s), lo, hi)
                out[o, y, x] = v
    return out


def output_stage_hwc(acc, kind, leaky, shift, mux, seg_lo, seg_k, seg_code, nseg,
                     max_level, mu, lo, hi, out_dtype=np.int64):
    """Apply the layer's output stage to acc (Ho, Wo, O) -> codes (O, Ho, Wo) int64
    (or ``out_dtype``); see ``output_stage_into``."""
    Ho, Wo, O = acc.shape
    out = np.empty((O, Ho, Wo), dtype=out_dtype)
    lut = nlq_u_table(seg_lo, seg_k, seg_code, nseg, max_level)
    return output_stage_into(acc, kind, leaky, shift, mux, lut, mu, lo, hi, out)


@njit(parallel=True, cache=True)
def decode_levels_hwc(codes, tables, offset):
    """I1: (C, H, W) codes -> (H, W, C) int32 aligned levels via per-channel tables."""
    C, H, W = codes.shape
    out = np.empty((H, W, C), dtype=np.int32)
    for y in prange(H):
        for x in range(W):
            for c in range(C):
                out[y, x, c] = np.int32(tables[c, np.int64(codes[c, y, x]) + offset])
    return out


# ---- single-threaded twins (small layers) ------------------------------------
# The same Python functions compiled without parallel=True (prange is then a
# plain range): for tiny tensors a parallel region's launch costs milliseconds
# on a loaded machine.  Distinct qualnames keep their cache entries apart.

def _serial(f):
    import types as _pytypes
    py = getattr(f, "py_func", f)
    g = _pytypes.FunctionType(py.__code__, py.__globals__, py.__name__ + "_serial",
                              py.__defaults__, py.__closure__)
    g.__qualname__ = py.__qualname__ + "_serial"
    g.__doc__ = py.__doc__
    return njit(cache=True)(g) if not config.DISABLE_JIT else g


conv2d_acc_i16_serial = _serial(conv2d_acc_i16)
tconv2d_acc_i16_serial = _serial(tconv2d_acc_i16)
decode_levels_i16_pad_serial = _serial(decode_levels_i16_pad)
conv2d_acc_oc_serial = _serial(conv2d_acc_oc)
tconv2d_acc_phases_serial = _serial(tconv2d_acc_phases)
output_stage_into_serial = _serial(output_stage_into)


def decode_levels_i16_serial(codes, tables, offset):
    """``decode_levels_i16`` on one thread."""
    C, H, W = codes.shape
    return decode_levels_i16_pad_serial(codes, tables, offset, 0, 0).reshape(H, W, C)


# ---- fused output stage (issue 20, session 7) ----------------------------------
#
# The implicit-GEMM kernels below apply the layer's output stage (SPEC O1-O4) to
# each block of 4 pixels x O accumulators while it is still in registers or L1,
# and write the codes straight to the layer's output: no int32 accumulator
# tensor, no transposing pass.  Two forms:
#
# * ``*_codes_*`` (intermediate activations, O1 / O2 on the OC blocks): the
#   block's int32 vectors go through the stage in registers (``oc_block_codes``:
#   ``_emit_nlq`` / ``_emit_lq``; plain twin ``oc_block_codes_generic`` /
#   ``stage32``) and are stored as int16 codes channels-last (Ho, Wo, O), the
#   layout the next layer's decode reads in one pass (``decode_hwc_i16_pad``).
#   Per-channel parameters: the (12, Op) int32 rows of ``kernels.stage_prm``.
#   With ``kind | LEVELS`` (session 13) they store instead what that decode
#   would make of each code -- the next layer's int16 operand (level << lsh) >>
#   rsh, rows 10 and 11 (``kernels.level_operand_rows``, checked against the
#   next layer's table on every code) -- straight into the interior of its
#   zero-padded buffer (``opad``): no codes, no decode pass (``Predecoded``).
# * ``*_stage_*`` (every other kind and path, e.g. ST3's pixels, HS5's means and
#   scales): the block goes to a per-row tile of _NP * O int32 and ``stage_tile``
#   (the scalar O1-O4 of ``output_stage_into``) writes the codes (O, Ho, Wo) or
#   channels-last.  Parameters (``stage_params``), int64 (O,):
#   - kind 0: sa = clip(s - 1, 0, 63), sb = clip(1 - s, 0, 12), sc = mux * NLQ_U;
#     u = min(min(max(a, 0) >> sa, 4096) << sb, NLQ_U - 1) is
#     ``output_stage_into``'s clipped u for every int32 a (for s <= 0 any a >= 1
#     shifted by more than 12 leaves the table), code = lut[sc + u];
#   - kinds 1-3: sa = s (the shift for a >= 0), sb = s + 3 for O2 with
#     LeakyReLU(1/8) (the shift for a < 0), else s; sc = mu (O3) or 0; then
#     SAT(R2(a, t) - sc, lo, hi), R2's right shift clipped to 63 (for |a| < 2^62
#     R1's 0 of any s >= 64).
#
# The accumulators are the int32 values of the unfused kernels (same blocks), so
# the codes are those of ``output_stage_into``; tests/test_kernels_fused.py
# checks every form against the reference O1-O4 at random and extreme
# accumulators and shifts.


def stage_params(kind, leaky, shift, mux, mu):
    """(sa, sb, sc) int64 (O,) of ``stage_tile`` (see the notes above)."""
    s = np.asarray(shift, np.int64)
    if kind == 0:
        return np.clip(s - 1, 0, 63), np.clip(1 - s, 0, 12), np.asarray(mux, np.int64) * NLQ_U
    sb = s + 3 if (kind == 1 and leaky) else s.copy()
    sc = np.asarray(mu, np.int64).copy() if kind == 2 else np.zeros(len(s), np.int64)
    return s.copy(), sb, sc


@njit(cache=True)
def stage_tile(tile, npix, O, kind, sa, sb, sc, lut, lo, hi, out, obase, ostride, ocs):
    """Output stage of one tile: tile[a * O + o] (int32 accumulators of pixel
    a < npix, output o < O) -> out[obase + a * ostride + o * ocs] (flat ``out``
    of any integer dtype holding the codes).  ``lut``: the flat O1 table
    (4 * NLQ_U, ``nlq_u_table``), read for kind 0 only."""
    for a in range(npix):
        t0 = a * O
        d0 = obase + a * ostride
        if kind == 0:
            for o in range(O):
                v = max(np.int64(tile[t0 + o]), 0)
                u = min(min(v >> sa[o], 4096) << sb[o], NLQ_U - 1)
                out[d0 + o * ocs] = lut[sc[o] + u]
        else:
            for o in range(O):
                v = np.int64(tile[t0 + o])
                t = sb[o] if v < 0 else sa[o]
                if t > 0:
                    r = min(t, 63)
                    q = (v >> r) + ((v >> (r - 1)) & 1)
                else:
                    q = v << (-t)
                out[d0 + o * ocs] = min(max(q - sc[o], lo), hi)


@njit(cache=True)
def stage32(kind, a, prm, o, lo, hi):
    """The in-register stage of ``oc_block_codes`` (``_emit_nlq`` / ``_emit_lq``)
    for one int32 accumulator ``a`` of output ``o``, in plain code.  prm rows
    (``kernels.stage_prm``): kind 0 (O1): 0 sa, 1 sb, 2 lo1, 3 lo2, 4-6 k0-k2,
    7 c1, 8 c2, 9 max level of the channel's NLQ segments (lo0 = c0 = 0; an
    absent segment has lo = 2^30); kind 1 (O2): 0 the shift t for a >= 0, 1 for
    a < 0, clipped to [-64, 64].  ``kind | LEVELS``: the code's level (O2: the
    code) as the next layer's int16 operand, (level << prm[10]) >> prm[11]
    (``kernels.level_operand_rows``)."""
    if kind & (LEVELS - 1) == 0:
        v = max(a, 0)
        u = min(v >> prm[0, o], 4096) << prm[1, o]
        h = u >> 1
        if h >= prm[3, o]:
            k = prm[6, o]
        elif h >= prm[2, o]:
            k = prm[5, o]
        else:
            k = prm[4, o]
        level = min(((u >> (k + 1)) + ((u >> k) & 1)) << k, prm[9, o])
        if level >= prm[3, o]:
            code = prm[8, o] + ((level - prm[3, o]) >> prm[6, o])
        elif level >= prm[2, o]:
            code = prm[7, o] + ((level - prm[2, o]) >> prm[5, o])
        else:
            code = level >> prm[4, o]
    else:
        t = prm[1, o] if a < 0 else prm[0, o]
        if t > 0:
            q = (a >> min(t, 31)) + ((a >> min(t - 1, 31)) & 1)
        else:
            q = min(max(a, lo - 1), hi + 1) << min(-t, 8)
        code = level = min(max(q, lo), hi)
    if kind & LEVELS:
        return (level << prm[10, o]) >> prm[11, o]
    return code


@njit(cache=True)
def oc_block_codes_generic(x, base, pstep, npix, segs, nps, wpk, o, bias, kind, prm, lo, hi, out, obase,
                           ostride, nout):
    """oc_block_codes in plain code: the accumulators of ``oc_block_generic``
    through ``stage32``, stored as codes at out[obase + a * ostride + oo]."""
    for a in range(npix):
        xa = base + a * pstep
        for oo in range(o, min(o + 64, nout)):
            s = np.int64(bias[oo])
            for si in range(segs.shape[0]):
                xs = xa + segs[si]
                for j in range(nps):
                    q = si * nps + j
                    e = xs + 2 * j
                    s += np.int64(x[e]) * np.int64(wpk[q, 2 * (oo - o)])
                    s += np.int64(x[e + 1]) * np.int64(wpk[q, 2 * (oo - o) + 1])
            out[obase + a * ostride + oo] = stage32(kind, np.int64(_wrap32(s)), prm, oo, lo, hi)


if oc_block_codes is None:
    oc_block_codes = oc_block_codes_generic


@njit(parallel=True, cache=True)
def conv2d_codes_oc(xp, Wp, C, stride, Ho, Wo, segs, nps, wpk, bias, O, kind, prm, lo, hi, opad, out):
    """``conv2d_acc_oc`` with O1 / O2 fused in registers (``oc_block_codes``):
    -> ``out``, the flat int16 codes (Ho, Wo, O) channels-last; with ``opad``
    > 0 at the interior of (Ho + 2 opad, Wo + 2 opad, O) (the next layer's
    padded input buffer; ``kind | LEVELS`` stores its operands)."""
    pstep = stride * C
    Wq = Wo + 2 * opad
    for oy in prange(Ho):
        base = oy * stride * Wp * C
        for xc in range(0, Wo, _XCH):
            for o in range(0, O, OC_BLOCK):
                wb = wpk[o // OC_BLOCK]
                for x0 in range(xc, min(xc + _XCH, Wo), _NP):
                    npix = min(_NP, Wo - x0)
                    obase = ((oy + opad) * Wq + x0 + opad) * O
                    oc_block_codes(xp, base + x0 * pstep, pstep, npix, segs, nps, wb, o, bias, kind, prm, lo, hi,
                                   out, obase, O, O)
    return out


@njit(parallel=True, cache=True)
def tconv2d_codes_phases(xp, H, W, C, pad, wk, dy, nseg, klen, dxmin, bias, O, kind, prm, lo, hi, opad, out):
    """``tconv2d_acc_phases`` (O a multiple of 16) with O1 / O2 fused in
    registers: -> ``out``, the flat int16 codes (2H, 2W, O) channels-last
    (``opad``: placed as in ``conv2d_codes_oc``)."""
    Wp = W + 2 * pad
    Wo = 2 * W
    Wq = Wo + 2 * opad
    segs = dy * (Wp * C)
    for oy in prange(2 * H):
        py = oy % 2
        sg = segs[py, :nseg[py]]
        for px in range(2):
            w = wk[py, px]
            base = ((oy // 2 + pad) * Wp + dxmin[px] + pad) * C
            for mc in range(0, W, _XCH):
                for o in range(0, O, OC_BLOCK):
                    wb = w[o // OC_BLOCK]
                    for m0 in range(mc, min(mc + _XCH, W), _NP):
                        npix = min(_NP, W - m0)
                        obase = ((oy + opad) * Wq + 2 * m0 + px + opad) * O
                        oc_block_codes(xp, base + m0 * C, C, npix, sg, klen[px], wb, o, bias, kind, prm, lo, hi,
                                       out, obase, 2 * O, O)
    return out


@njit(parallel=True, cache=True)
def conv2d_stage_oc(xp, Wp, C, stride, Ho, Wo, segs, nps, wpk, bias, O, kind, sa, sb, sc, lut, lo, hi,
                    chw, out):
    """``conv2d_acc_oc`` with the output stage per tile (``stage_tile``): ->
    ``out``, the flat codes (O, Ho, Wo) with ``chw``, else (Ho, Wo, O)."""
    pstep = stride * C
    ocs = Ho * Wo if chw else 1
    for oy in prange(Ho):
        tile = np.empty(_XCH * O, np.int32)
        base = oy * stride * Wp * C
        for xc in range(0, Wo, _XCH):
            nch = min(_XCH, Wo - xc)
            for o in range(0, O, OC_BLOCK):
                wb = wpk[o // OC_BLOCK]
                for x0 in range(xc, xc + nch, _NP):
                    npix = min(_NP, Wo - x0)
                    oc_block(xp, base + x0 * pstep, pstep, npix, segs, nps, wb, o, bias, tile, (x0 - xc) * O, O, O)
            if chw:
                stage_tile(tile, nch, O, kind, sa, sb, sc, lut, lo, hi, out, oy * Wo + xc, 1, ocs)
            else:
                stage_tile(tile, nch, O, kind, sa, sb, sc, lut, lo, hi, out, (oy * Wo + xc) * O, O, 1)
    return out


@njit(parallel=True, cache=True)
def tconv2d_stage_phases(xp, H, W, C, pad, wk, dy, nseg, klen, dxmin, bias, O, few, kind, sa, sb, sc, lut,
                         lo, hi, chw, out):
    """``tconv2d_acc_phases`` with the output stage per tile (``stage_tile``):
    -> ``out``, the flat codes (O, 2H, 2W) with ``chw``, else (2H, 2W, O)."""
    Wp = W + 2 * pad
    Wo = 2 * W
    segs = dy * (Wp * C)
    ocs = 2 * H * Wo if chw else 1
    for oy in prange(2 * H):
        tile = np.empty(_XCH * O, np.int32)
        py = oy % 2
        sg = segs[py, :nseg[py]]
        for px in range(2):
            w = wk[py, px]
            base = ((oy // 2 + pad) * Wp + dxmin[px] + pad) * C
            for mc in range(0, W, _XCH):
                nch = min(_XCH, W - mc)
                if few:
                    for m0 in range(mc, mc + nch, _NP):
                        npix = min(_NP, W - m0)
                        t0 = (m0 - mc) * O
                        for o in range(0, O, DOT_NO):
                            r = dot_seg(xp, base + m0 * C, C, npix, sg, klen[px], w[0], o)
                            for a in range(npix):
                                for b in range(min(DOT_NO, O - o)):
                                    tile[t0 + a * O + o + b] = _wrap32(np.int64(r[a * DOT_NO + b])
                                                                       + np.int64(bias[o + b]))
                else:
                    for o in range(0, O, OC_BLOCK):
                        wb = w[o // OC_BLOCK]
                        for m0 in range(mc, mc + nch, _NP):
                            npix = min(_NP, W - m0)
                            oc_block(xp, base + m0 * C, C, npix, sg, klen[px], wb, o, bias, tile, (m0 - mc) * O, O, O)
                if chw:
                    stage_tile(tile, nch, O, kind, sa, sb, sc, lut, lo, hi, out, oy * Wo + 2 * mc + px, 2, ocs)
                else:
                    stage_tile(tile, nch, O, kind, sa, sb, sc, lut, lo, hi, out, (oy * Wo + 2 * mc + px) * O,
                               2 * O, 1)
    return out


@njit(parallel=True, cache=True)
def decode_hwc_i16_pad(codes, tables, offset, pad, slack):
    """``decode_levels_i16_pad`` of channels-last codes: codes (H, W, C) (any
    integer dtype, C order: the fused kernels' output) -> the same flat int16
    buffer of the (H + 2 pad, W + 2 pad, C) levels with a zero border of ``pad``
    and ``slack`` zeros after it; one contiguous pass (unsigned indexes: a code +
    offset lies in [0, 256) by I1)."""
    H, W, C = codes.shape
    Wp = W + 2 * pad
    rl = Wp * C
    n = (H + 2 * pad) * rl
    buf = np.empty(n + slack, dtype=np.int16)
    u = np.uint64
    for y in prange(H + 2 * pad):
        r0 = y * rl
        iy = y - pad
        if iy < 0 or iy >= H:
            buf[r0:r0 + rl] = 0
        else:
            buf[r0:r0 + pad * C] = 0
            buf[r0 + (pad + W) * C:r0 + rl] = 0
            for x in range(W):
                b = u(r0 + (x + pad) * C)
                for c in range(C):
                    buf[b + u(c)] = tables[u(c), u(np.int64(codes[u(iy), u(x), u(c)]) + offset)]
    buf[n:] = 0
    return buf


conv2d_codes_oc_serial = _serial(conv2d_codes_oc)
tconv2d_codes_phases_serial = _serial(tconv2d_codes_phases)
conv2d_stage_oc_serial = _serial(conv2d_stage_oc)
tconv2d_stage_phases_serial = _serial(tconv2d_stage_phases)
decode_hwc_i16_pad_serial = _serial(decode_hwc_i16_pad)


def codes_variant_callers() -> dict:
    """{variant: (oc_block_codes caller, its OC_BLOCK)} for every variant this
    host runs (tests compare each with stage32 and the reference stages)."""
    def caller(blk):
        @njit
        def call(x, base, pstep, npix, segs, nps, wpk, o, bias, kind, prm, lo, hi, out, obase, ostride, nout):
            blk(x, base, pstep, npix, segs, nps, wpk, o, bias, kind, prm, lo, hi, out, obase, ostride, nout)
        return call
    out = {}
    for n, wd in _variant_widths().items():
        if wd is None:
            out[n] = (oc_block_codes_generic, OC_BLOCK_OF[None])
        else:
            out[n] = (caller(_make_oc_block(wd, codes=True)), OC_BLOCK_OF[wd])
    return out
