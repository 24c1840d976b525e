"""Plain NumPy reference of every integer operator (docs/SPEC.md, sections C and O).

Written to be obviously correct, not fast: int64 throughout, one loop over
kernel taps, einsum over channels.  The Numba twins in ``numba_kernels.py``
must give identical integers (tests/test_kernels_equivalence.py).

Accumulator range (SPEC A1-A4): the model loader proves
``|bias| + sum |w * x| < 2^31`` for every output, so the int64 sums here are
the int32 sums of the specification; ``check_int32`` asserts it.
"""
from __future__ import annotations

import numpy as np

from ..quant.codebook import act_lq_signed, act_nlq
from ..spec import INT32_MAX, INT32_MIN, requant_shift, saturate_array


def check_int32(acc: np.ndarray, where: str) -> np.ndarray:
    """A1: every accumulator value must lie in int32; anything else is a bug."""
    if acc.size and (acc.min() < INT32_MIN or acc.max() > INT32_MAX):
        raise OverflowError(f"{where}: accumulator left int32 (the bound check should prevent this)")
    return acc


def conv2d(x: np.ndarray, w: np.ndarray, stride: int) -> np.ndarray:
    """C1 without bias, any dtype: out[o,y,x] = sum_{c,ky,kx} w[o,c,ky,kx] *
    xpad[c, s*y+ky, s*x+kx], zero padding k//2, size floor((H+2p-k)/s)+1."""
    C, H, W = x.shape
    O, C2, k, _ = w.shape
    if C != C2:
        raise ValueError(f"conv2d: input has {C} channels, weights expect {C2}")
    p = k // 2
    Ho, Wo = (H + 2 * p - k) // stride + 1, (W + 2 * p - k) // stride + 1
    xp = np.zeros((C, H + 2 * p, W + 2 * p), dtype=x.dtype)
    xp[:, p:p + H, p:p + W] = x
    out = np.zeros((O, Ho, Wo), dtype=np.result_type(x, w))
    for ky in range(k):
        for kx in range(k):
            patch = xp[:, ky:ky + stride * (Ho - 1) + 1:stride, kx:kx + stride * (Wo - 1) + 1:stride]
            out += np.tensordot(w[:, :, ky, kx], patch, axes=(1, 0))
    return out


def tconv2d(x: np.ndarray, w: np.ndarray, stride: int = 2) -> np.ndarray:
    """C2 without bias, any dtype: scatter
    out[o, s*iy - p + ky, s*ix - p + kx] += w[o,c,ky,kx] * x[c,iy,ix]  (p = k//2),
    keeping positions in [0, sH) x [0, sW) (PyTorch ConvTranspose2d with padding
    k//2 and output_padding s-1; fxlic stores the weight out-channel first)."""
    C, H, W = x.shape
    O, C2, k, _ = w.shape
    if C != C2:
        raise ValueError(f"tconv2d: input has {C} channels, weights expect {C2}")
    p = k // 2
    full = np.zeros((O, stride * (H - 1) + k, stride * (W - 1) + k), dtype=np.result_type(x, w))
    for ky in range(k):
        for kx in range(k):
            full[:, ky:ky + stride * (H - 1) + 1:stride, kx:kx + stride * (W - 1) + 1:stride] += \
                np.tensordot(w[:, :, ky, kx], x, axes=(1, 0))
    Ho, Wo = stride * H, stride * W
    out = np.zeros((O, Ho, Wo), dtype=full.dtype)
    hh, ww = min(Ho, full.shape[1] - p), min(Wo, full.shape[2] - p)
    out[:, :hh, :ww] = full[:, p:p + hh, p:p + ww]
    return out


def conv2d_acc(x: np.ndarray, w: np.ndarray, bias: np.ndarray, stride: int) -> np.ndarray:
    """C1 with bias in int64, checked against int32 (A1)."""
    acc = conv2d(np.asarray(x, np.int64), np.asarray(w, np.int64), stride)
    acc += np.asarray(bias, dtype=np.int64)[:, None, None]
    return check_int32(acc, "conv2d")


def tconv2d_acc(x: np.ndarray, w: np.ndarray, bias: np.ndarray, stride: int = 2) -> np.ndarray:
    """C2 with bias in int64, checked against int32 (A1)."""
    acc = tconv2d(np.asarray(x, np.int64), np.asarray(w, np.int64), stride)
    acc += np.asarray(bias, dtype=np.int64)[:, None, None]
    return check_int32(acc, "tconv2d")


# ---- output stages (SPEC O1-O4) ---------------------------------------------

def out_relu_nlq(acc: np.ndarray, shift: np.ndarray, mux: np.ndarray, bits: int = 8) -> np.ndarray:
    """O1: ReLU, then the NLQ codebook of the channel's mux on t = acc * 2^-shift.
    Returns unsigned codes (uint8 for 8 bits)."""
    out = np.empty(acc.shape, dtype=np.int64)
    for o in range(acc.shape[0]):
        cb = act_nlq(int(mux[o]), bits)
        level = cb.quantize_int(np.maximum(acc[o], 0), int(shift[o]))
        out[o] = cb.code_of_level(level)
    return out


def out_signed_lq(acc: np.ndarray, shift: np.ndarray, leaky: bool, bits: int = 8) -> np.ndarray:
    """O2: signed LQ code = sat(R2(acc, s')), s' = s + 3 for negative acc when the
    activation is LeakyReLU(1/8) (one rounding, no double rounding), else s."""
    cb = act_lq_signed(bits)
    out = np.empty(acc.shape, dtype=np.int64)
    for o in range(acc.shape[0]):
        s = int(shift[o])
        a = acc[o]
        if leaky:
            neg = a < 0
            v = np.where(neg, _rq(a, s + 3), _rq(a, s))
        else:
            v = _rq(a, s)
        out[o] = saturate_array(v, cb.min_level, cb.max_level)
    return out


def out_latent(acc: np.ndarray, shift: np.ndarray, mu: np.ndarray, bits: int = 8) -> np.ndarray:
    """O3 (Eq 1, Eq 2, Eq 28-30): integer latent v = R2(acc, s) (s = -acc_exp),
    stored value = sat_bits(v - mu[c]) (mu = 0 for channels not mean-reduced)."""
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    out = np.empty(acc.shape, dtype=np.int64)
    mu = np.asarray(mu, np.int64).reshape((-1,) + (1,) * (acc.ndim - 1))
    for s, idx in _channels_by_value(shift):  # the channels that share one shift, at once
        out[idx] = saturate_array(_rq(acc[idx], s) - mu[idx], lo, hi)
    return out


def _channels_by_value(v):
    """[(value, indexes of the channels with it)] of a per-channel int array: the
    per-channel rules then run once per distinct value instead of once per channel
    (the same integers: each channel still gets its own value)."""
    v = np.asarray(v, np.int64)
    return [(int(u), np.flatnonzero(v == u)) for u in np.unique(v)]


def requant_channels(x: np.ndarray, shifts) -> np.ndarray:
    """R2 per channel: ``requant_shift(x[i], shifts[i])`` for every channel i of
    ``x`` (C, ...), int64, run once per distinct shift (SPEC E1 / O5's means and
    scales of several channels at once)."""
    from ..spec import requant_shift

    x = np.asarray(x, np.int64)
    out = np.empty(x.shape, np.int64)
    for s, idx in _channels_by_value(shifts):
        out[idx] = requant_shift(x[idx], s)
    return out


def offset_difference(acc_o: np.ndarray, e: int, off_o: np.ndarray, grid_bits: int):
    """O5's exact difference of one channel: (acc * 2^(F + E) - off * 2^(F - G), F) with
    F = max(G, -E), int64 on the 2^-F grid (the loader bounds it, SPEC O5)."""
    from ..model.intmodel import offset_frac_bits

    F = offset_frac_bits(e, grid_bits)
    return (np.asarray(acc_o).astype(np.int64) << (F + e)) - (np.asarray(off_o, np.int64) << (F - grid_bits)), F


def out_offset_latent(acc: np.ndarray, acc_exp: np.ndarray, off_q: np.ndarray, grid_bits: int,
                      bits: int = 8) -> np.ndarray:
    """O5 (offset latents): symbol = SAT8(R1(acc * 2^(F + E) - off * 2^(F - G), F)) with
    E = acc_exp[o], G = ``grid_bits`` and F = max(G, -E): round(y - offset) for
    y = acc * 2^E and the offset off * 2^-G (the predicted mean, or the bottleneck
    median), both exact on the 2^-F grid.  ``off_q`` broadcasts against ``acc`` (O, H, W)."""
    from ..spec import rshift_rhu

    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    acc = np.asarray(acc)
    off = np.broadcast_to(np.asarray(off_q, np.int64), acc.shape)
    out = np.empty(acc.shape, dtype=np.int64)
    for e, idx in _channels_by_value(acc_exp):
        diff, F = offset_difference(acc[idx], e, off[idx], grid_bits)
        out[idx] = saturate_array(rshift_rhu(diff, F), lo, hi)
    return out


def out_ha_y(acc: np.ndarray, acc_exp: np.ndarray, ha_grid_bits: int) -> np.ndarray:
    """O6: the y HA0 reads, on the 2^-H grid: SAT_{8+H}(RQ(acc, -H - E)) per channel
    (E = acc_exp[o], H = ``ha_grid_bits``; H = 0 is O3's integer y without M1)."""
    H = int(ha_grid_bits)
    E = np.asarray(acc_exp, np.int64)
    return out_latent(acc, -H - E, np.zeros(len(E), np.int64), bits=8 + H)


def offset_level(symbols: np.ndarray, off_q: np.ndarray, grid_bits: int) -> np.ndarray:
    """O5 / I1: the level of an offset latent on the 2^-G grid, symbol * 2^G + offset."""
    return (np.asarray(symbols, np.int64) << int(grid_bits)) + np.asarray(off_q, np.int64)


def out_pixel(acc: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """O4: reconstruction pixel = sat(R2(acc, s), 0, 255), s = -8 - acc_exp."""
    out = np.empty(acc.shape, dtype=np.int64)
    for o in range(acc.shape[0]):
        out[o] = saturate_array(_rq(acc[o], int(shift[o])), 0, 255)
    return out


def _rq(a: np.ndarray, s: int) -> np.ndarray:
    return requant_shift(np.asarray(a, dtype=np.int64), s)


def decode_levels(codes: np.ndarray, tables: np.ndarray, offset: int) -> np.ndarray:
    """I1: aligned input level of element (c, y, x) = tables[c, codes[c,y,x] + offset]."""
    codes = np.asarray(codes, dtype=np.int64)
    out = np.empty(codes.shape, dtype=np.int64)
    for c in range(codes.shape[0]):
        out[c] = tables[c][codes[c] + offset]
    return out
