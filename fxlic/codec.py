"""Image codec: integer network + integer entropy model + container.

``compress`` / ``decompress`` run the whole pipeline of docs/SPEC.md on one
image; the decoder uses integers only (no float anywhere between the
bitstream and the reconstructed pixels).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .bitstream.container import BitstreamError, Header, check_pixels, pack, unpack
from .entropy import chunked as K
from .entropy import gaussian as G
from .kernels.reference import offset_level, requant_channels
from .model.int_forward import encode, hyper_decode, offset_mean, offset_y, pad_to_multiple, synthesize
from .model.tiled import encode_tiled, hyper_decode_tiled, synthesize_tiled
from .model.intmodel import IntModel

#: images from this many (padded) pixels run in bands (fxlic/model/tiled.py):
#: identical integers, memory bounded by the band instead of the image
TILE_FROM = 1 << 20


def _tiled(hook, pixels: int) -> bool:
    """Banded execution unless a hook wants every layer's tensors."""
    return pixels >= TILE_FROM and (hook is None or not getattr(hook, "wants_acc", True))


@dataclass
class CodecStats:
    bytes_total: int
    bytes_z: int
    bytes_y: int
    estimated_bits: float
    pixels: int

    @property
    def bpp(self) -> float:
        return 8.0 * self.bytes_total / self.pixels


def _checked(model: IntModel):
    """(model id, factorized tables, Gaussian tables or None) after the one model
    check (fxlic.io.modelcheck, run once per model content; raises ModelError),
    from one content hash."""
    from .io.modelcheck import checked

    digest, t = checked(model)
    return _id_of(digest), t.fact, t.gauss


def _id_of(digest: str) -> bytes:
    return bytes.fromhex(digest.split(":")[-1])[:16]


def model_id(model: IntModel) -> bytes:
    """The 16-byte model id a stream carries: the head of the content hash."""
    from .io.modelfile import model_hash
    return _id_of(model_hash(model))


def channel_means_scales(model: IntModel, ms: np.ndarray, gauss=None):
    """SPEC E1 a group of channels at a time: a function c -> (mean_q, scale_q)
    of y channel c (an int: (h, w) arrays; a slice of channels: (n, h, w)),
    int64 (2^-F and 2^-S, F, S the tables' mean_frac_bits and scale_frac_bits),
    from the HS5 codes ``ms`` (any integer dtype) by R2 shifts, once per
    distinct exponent.  ``gauss``: the model's checked Gaussian tables, if the
    caller has them."""
    M = model.arch.M
    if gauss is None:
        gauss = _checked(model)[2]
    hs5 = [l for l in model.arch.layers if l.out == "ms"][0].name
    e = np.asarray(model.layer(hs5).out_exp, np.int64)

    def get(c):
        cs = c if isinstance(c, slice) else slice(c, c + 1)
        scales = requant_channels(ms[:M][cs], -(e[:M][cs] + gauss.scale_frac_bits))
        means = requant_channels(ms[M:][cs], -(e[M:][cs] + gauss.mean_frac_bits))
        return (means, scales) if isinstance(c, slice) else (means[0], scales[0])
    return get


def means_scales(model: IntModel, ms: np.ndarray, gauss=None):
    """SPEC E1 for every channel: (means, scales), int64 (M, h, w).
    ``gauss``: the model's checked Gaussian tables, if the caller has them
    (saves the content hash of the model check)."""
    return channel_means_scales(model, ms, gauss)(slice(0, model.arch.M))


#: symbols per entropy-coding chunk (about): channels are coded in groups of
#: this many symbols, so that the per-chunk work is not paid once per channel,
#: and a chunk stays small beside y (issue 18's memory bound)
CHUNK_SYMBOLS = 1 << 16


def chunk_channels(C: int, plane: int) -> int:
    """Channels per entropy chunk for C channels of ``plane`` symbols each (>= 1)."""
    return max(1, min(int(C), CHUNK_SYMBOLS // max(1, int(plane))))


def channel_groups(C: int, plane: int):
    """(channels per chunk, number of chunks, k -> the slice of chunk k's channels)."""
    g = chunk_channels(C, plane)
    return g, -(-C // g), lambda k: slice(k * g, min(C, (k + 1) * g))


def compress(model: IntModel, pixels: np.ndarray, backend="numba", hook=None):
    """(3, H, W) uint8 -> (bitstream bytes, CodecStats)."""
    pixels = np.asarray(pixels)
    if pixels.ndim != 3 or pixels.shape[0] != 3 or pixels.dtype != np.uint8:
        raise ValueError("compress expects a (3, H, W) uint8 image")
    _, H, W = pixels.shape
    mid, fact, gauss = _checked(model)
    padded = pad_to_multiple(pixels, model.arch.pad_multiple)
    if _tiled(hook, padded[0].size):  # y, z, HS5 codes kept int16 (issue 18)
        enc = encode_tiled(model, padded, backend, progress=getattr(hook, "band", None), dtype=np.int16)
    else:
        enc = encode(model, padded, backend, hook)
    del padded
    coder = "reference" if backend == "reference" else "numba"
    M = model.arch.M

    # entropy coding a group of channels at a time (fxlic.entropy.chunked): same bytes
    # for every group; the ideal bits are taken in the same pass
    per_chunk, n, chans = channel_groups(M, int(np.prod(np.shape(enc.y)[1:])))

    def y_hat(cs):  # M1: y_hat = stored y + mu
        return np.asarray(enc.y[cs], np.int64) + np.asarray(enc.mu[cs], np.int64).reshape(-1, 1, 1)
    if model.arch.kind == "hyperprior":
        Cz = np.shape(enc.z)[0]
        zs, est = K.encode_factorized_chunks(lambda c: enc.z[c], fact, coder=coder, estimate=True,
                                             group=chunk_channels(Cz, int(np.prod(np.shape(enc.z)[1:]))))
        ms_of = channel_means_scales(model, enc.ms, gauss)
        if model.offset_latents:  # SPEC O5: code round(y - mean) with the zero-mean family
            def chunk(k):
                cs = chans(k)
                sym = offset_y(model, enc.y_acc[cs], offset_mean(model, enc.ms, cs), cs)
                return sym, np.zeros_like(sym), ms_of(cs)[1]
        else:
            def chunk(k):
                cs = chans(k)
                return (y_hat(cs),) + ms_of(cs)
        ys, est_y = K.encode_y_chunks(n, chunk, gauss, coder=coder, estimate=True)
        est += est_y
    else:
        zs = b""
        ys, est = K.encode_factorized_chunks(lambda c: y_hat(slice(c, c + 1))[0], fact, coder=coder,
                                             estimate=True, group=per_chunk)
    mu = {int(c): int(enc.mu[c]) for c in np.flatnonzero(model.mr_mask)}
    hdr = Header(model.arch.kind, mid, H, W, model.arch.pad_multiple, mu)
    data = pack(hdr, zs, ys)
    return data, CodecStats(len(data), len(zs), len(ys), est, H * W)


def read_header(data: bytes) -> Header:
    return unpack(data)[0]


def decompress(model: IntModel, data: bytes, backend="numba", hook=None,
               max_pixels: int = None) -> np.ndarray:
    """Bitstream -> (3, H, W) uint8.  Raises BitstreamError for anything wrong
    in the stream (a stream over ``max_pixels`` pixels included, checked from
    the header before any work: container rule D1) and ModelError for a model
    that fails fxlic.io.modelcheck."""
    hdr, zs, ys = unpack(data)
    return decode_parts(model, hdr, zs, ys, backend, hook, max_pixels)


def decode_parts(model: IntModel, hdr: Header, zs: bytes, ys: bytes, backend="numba", hook=None,
                 max_pixels: int = None) -> np.ndarray:
    """``decompress`` of a stream already split by ``unpack`` / ``read_stream``."""
    check_pixels(hdr, max_pixels)
    mid, fact, gauss = _checked(model)
    if hdr.model_id != mid:
        raise BitstreamError("the stream was made with another model (model id "
                             f"{hdr.model_id.hex()} != {mid.hex()})")
    arch = model.arch
    if hdr.kind != arch.kind or hdr.pad_multiple != arch.pad_multiple:
        raise BitstreamError("stream header does not match the model's architecture")
    M = arch.M
    want = set(int(c) for c in np.flatnonzero(model.mr_mask))
    if set(hdr.mu) != want:
        raise BitstreamError("mean-reduced channels in the header do not match the model")
    mu = np.zeros(M, np.int64)
    for c, v in hdr.mu.items():
        mu[c] = v
    pm = arch.pad_multiple
    Hp, Wp = -(-hdr.height // pm) * pm, -(-hdr.width // pm) * pm
    coder = "reference" if backend == "reference" else "numba"
    # stored y = y_hat - mu (M1), int16, filled channel by channel as the rANS
    # stream is decoded (fxlic.entropy.chunked; issue 18)
    stored = np.empty((M, Hp // 16, Wp // 16), np.int16)
    in_range = [True]

    def check8(a):  # every decoded value of y must be 8-bit (checked after decoding)
        in_range[0] &= bool(a.size == 0 or (a.min() >= -128 and a.max() <= 127))
        return np.clip(a, -128, 127)

    def put(c, y):
        stored[c] = check8(y.astype(np.int64) - mu[c])
    # channels per rANS chunk: same symbols for every group (fxlic.entropy.chunked)
    per_chunk, n, chans = channel_groups(M, (Hp // 16) * (Wp // 16))
    try:
        if arch.kind == "hyperprior":
            zshape = (fact.channels, Hp // 64, Wp // 64)
            z = np.empty(zshape, np.int64)
            K.decode_factorized_chunks(zs, fact, zshape, z.__setitem__, coder=coder,
                                       group=chunk_channels(zshape[0], zshape[1] * zshape[2]))
            if z.min() < -128 or z.max() > 127:
                raise BitstreamError("corrupt stream: z outside int8")
            if _tiled(hook, Hp * Wp):
                ms = hyper_decode_tiled(model, z, backend, dtype=np.int16)
            else:
                ms = hyper_decode(model, z, backend, hook)
            ms_of = channel_means_scales(model, ms, gauss)
            if model.offset_latents:  # SPEC O5: levels symbol * 2^G + mean, a group of channels at a time
                y_lv = np.empty((M, Hp // 16, Wp // 16), np.int32)

                def get(k):
                    scale = ms_of(chans(k))[1]
                    return np.zeros_like(scale), scale

                def put_level(k, sym):
                    cs = chans(k)
                    y_lv[cs] = offset_level(check8(sym), offset_mean(model, ms, cs), model.grid_bits)
                K.decode_y_chunks(ys, n, get, gauss, put_level, coder=coder)
                stored = y_lv  # g_s reads the levels (int_forward.synthesize)
            else:
                def put_group(k, y):
                    cs = chans(k)
                    stored[cs] = check8(y.astype(np.int64) - mu[cs].reshape(-1, 1, 1))
                K.decode_y_chunks(ys, n, lambda k: ms_of(chans(k)), gauss, put_group, coder=coder)
            del ms
        else:
            if zs:
                raise BitstreamError("a factorized stream has no z substream")
            K.decode_factorized_chunks(ys, fact, stored.shape, put, coder=coder, group=per_chunk)
    except BitstreamError:
        raise
    except ValueError as e:
        raise BitstreamError(str(e)) from None
    if not in_range[0]:
        raise BitstreamError("corrupt stream: y outside its 8-bit range")
    if _tiled(hook, Hp * Wp):
        px = synthesize_tiled(model, stored, mu, backend, progress=getattr(hook, "band", None))
    else:
        px = synthesize(model, stored, mu, backend, hook)
    return px[:, :hdr.height, :hdr.width]
