"""The Python API (README "Python API"), after ``compressai.zoo``::

    import fxlic
    m = fxlic.load("hp5-mse-q2")     # a shipped model, a .fxq path, or None (the default)
    data = m.compress("photo.png")   # .fxl bytes (docs/BITSTREAM.md); or an (H, W, 3) uint8 array
    img = m.decompress(data)         # (H, W, 3) uint8, integers only (docs/SPEC.md)

``fxlic compress`` / ``decompress`` run through this module (``Model.encode``
/ ``Model.decode`` are the same pipeline with the CLI's progress hook).
Errors are ValueError subclasses with one-line messages: ModelFileError
(fxlic.io.modelfile), ImageError (fxlic.io.images), BitstreamError
(fxlic.bitstream.container), ModelError (fxlic.model.intmodel).
"""
from __future__ import annotations

import os

import numpy as np

from .io.modelfile import ModelFileError

#: the model ``load()`` (and ``fxlic compress`` / ``demo``) use when none is named
DEFAULT_MODEL = "hp5-mse-q2"
#: float weights shipped beside a model: ``<name>.float.safetensors`` (fxlic/zoo)
FLOAT_SUFFIX = ".float.safetensors"


class NoShippedModel(ModelFileError):
    """``load()`` without a name, and fxlic/zoo holds no model."""


def default_model() -> str:
    """The default shipped model's name (DEFAULT_MODEL, else the first one)."""
    from .io.modelfile import list_zoo

    names = [os.path.basename(p)[:-4] for p in list_zoo()]
    if not names:
        raise NoShippedModel("no shipped model is installed (fxlic/zoo); give a .fxq path")
    return DEFAULT_MODEL if DEFAULT_MODEL in names else names[0]


def load(model=None) -> "Model":
    """A shipped model name (``fxlic models``), a ``.fxq`` path or None (the
    default model) -> Model.  The file passes the model check (K1-K6 of
    docs/MODEL_FORMAT.md 4) or ModelFileError says why not."""
    from .io.modelfile import load_model, resolve_model

    arg = default_model() if model is None else os.fspath(model)
    path = resolve_model(arg)
    return Model(load_model(path), os.path.basename(path)[:-4] if path.endswith(".fxq") else
                 os.path.basename(path), path)


def find_model(stream):
    """The shipped Model whose id the stream names (bytes of an .fxl, or its
    Header), or None.  BitstreamError for a stream without a valid header."""
    from .bitstream.container import Header
    from .codec import model_id, read_header
    from .io.modelfile import declared_hash, list_zoo, load_model

    mid = stream.model_id if isinstance(stream, Header) else read_header(stream).model_id
    for p in list_zoo():
        try:  # the zoo indexed by the ids its headers declare; only a match is loaded
            if bytes.fromhex(declared_hash(p).split(":")[-1])[:16] != mid:
                continue
            im = load_model(p)
        except (ModelFileError, ValueError):
            continue
        if model_id(im) == mid:  # the loader verified the declared hash
            return Model(im, os.path.basename(p)[:-4], p)
    return None


def to_pixels(image) -> np.ndarray:
    """An (H, W, 3) uint8 array or an image path (fxlic.io.images.read_image)
    -> the codec's (3, H, W) uint8."""
    from .io.images import ImageError, read_image

    if isinstance(image, (str, os.PathLike)):
        return read_image(os.fspath(image))
    a = np.asarray(image)
    if a.dtype != np.uint8 or a.ndim != 3 or a.shape[2] != 3 or a.shape[0] < 1 or a.shape[1] < 1:
        raise ImageError(f"expected an (H, W, 3) uint8 image or a path, got {a.dtype} {a.shape}")
    return np.ascontiguousarray(a.transpose(2, 0, 1))


class Model:
    """An integer model, ready to code.  ``name``: shipped name or file stem;
    ``arch``: its Architecture (``.name``, ``.kind``, ``.N``, ``.M``); ``id``: the
    32-hex-digit model id every stream carries (docs/BITSTREAM.md);
    ``int_model``: the IntModel; ``path``: its .fxq file (or None)."""

    def __init__(self, int_model, name: str = None, path: str = None):
        from .codec import model_id

        self.int_model = int_model
        self.arch = int_model.arch
        self.name = name or self.arch.name
        self.path = path
        self.id = model_id(int_model).hex()
        self._float = None

    def __repr__(self):
        return f"fxlic.Model({self.name!r}, {self.arch.name}, id {self.id})"

    # -- the integer codec ------------------------------------------------
    def encode(self, pixels: np.ndarray, backend: str = "numba", hook=None):
        """(3, H, W) uint8 -> (stream bytes, fxlic.codec.CodecStats)."""
        from .codec import compress

        return compress(self.int_model, pixels, backend, hook=hook)

    def decode(self, header, zs: bytes, ys: bytes, backend: str = "numba", hook=None,
               max_pixels: int = None) -> np.ndarray:
        """A stream split by ``fxlic.bitstream.container.read_stream`` -> (3, H, W) uint8."""
        from .codec import decode_parts

        return decode_parts(self.int_model, header, zs, ys, backend, hook=hook, max_pixels=max_pixels)

    def compress(self, image, backend: str = "numba") -> bytes:
        """An (H, W, 3) uint8 array or an image path -> the .fxl stream's bytes."""
        return self.encode(to_pixels(image), backend)[0]

    def decompress(self, data: bytes, backend: str = "numba", max_pixels: int = None) -> np.ndarray:
        """.fxl bytes -> (H, W, 3) uint8; streams over ``max_pixels`` are refused
        from the header (container rule D1)."""
        from .bitstream.container import unpack

        hdr, zs, ys = unpack(bytes(data))
        return self.decode(hdr, zs, ys, backend, max_pixels=max_pixels).transpose(1, 2, 0).copy()

    # -- the float model --------------------------------------------------
    @property
    def latents(self) -> str:
        """How the model rounds y and z (SPEC O5): "offset" (y_hat = mean + round(y - mean))
        or "integer" (round(y)); its float reference rounds the same way."""
        return self.int_model.latents

    @property
    def float_path(self):
        """``<model>.float.safetensors`` beside the .fxq, or None."""
        if self.path is None:
            return None
        p = self.path[:-4] + FLOAT_SUFFIX if self.path.endswith(".fxq") else self.path + FLOAT_SUFFIX
        return p if os.path.isfile(p) else None

    @property
    def float_model(self):
        """The float network the model was quantized from (fxlic.io.floatfile)."""
        if self._float is None:
            if self.float_path is None:
                raise ModelFileError(f"{self.name}: no float weights beside the model "
                                     f"(<name>{FLOAT_SUFFIX})")
            from .io.floatfile import load_weights
            self._float = load_weights(self.float_path)
        return self._float

    def float_forward(self, image, exact: bool = False) -> dict:
        """The float codec on an image: ``{"x_hat": (H, W, 3) uint8, "bpp":
        ideal rate of its rounded latents}``, the latents rounded by this
        model's rule (``latents``: SPEC O5 offset, CompressAI's inference, or
        integer).  float32 (PyTorch when installed); ``exact=True``: the
        float64 NumPy forward calibration uses."""
        from .model.float_codec import float_codec
        from .eval.sim import float_engine, forward_codec

        px = to_pixels(image)
        if exact:
            rec, bpp = float_codec(self.float_model, px, latents=self.latents)
        else:
            rec, bpp, _ = forward_codec(self.float_model, px, engine=float_engine(), latents=self.latents)
        return {"x_hat": rec.transpose(1, 2, 0).copy(), "bpp": bpp}

    # -- golden vectors ---------------------------------------------------
    def vectors(self, image, out_dir: str, **options) -> dict:
        """Write a conformance case (docs/VECTORS.md 2) into ``out_dir`` (new or
        empty; it appears whole or not at all) and return its manifest.
        ``options``: the fields of ``fxlic.vectors.writer.Options`` (``layers``,
        ``tensors`` and ``mem`` also as ``fxlic vectors`` strings: ``"AT0,HS*"``,
        ``"none"``; ``acc=False``, ``dec_tables=False``, ...)."""
        import shutil
        import tempfile

        from .vectors.writer import (MEM_CATEGORIES, Options, parse_layers, parse_tensors, plan_case,
                                     write_case)

        if os.path.exists(out_dir) and (not os.path.isdir(out_dir) or os.listdir(out_dir)):
            raise ValueError(f"{out_dir}: exists and is not an empty directory")
        px = to_pixels(image)
        if isinstance(options.get("layers"), str):
            options["layers"] = parse_layers(options["layers"], self.arch.names)
        mem = options.get("mem")
        if isinstance(mem, str):
            mem = {"all": MEM_CATEGORIES, "none": ()}.get(mem, [c.strip() for c in mem.split(",")
                                                               if c.strip()])
        if mem is not None:
            bad = sorted(set(mem) - set(MEM_CATEGORIES))
            if bad:
                raise ValueError(f"mem: unknown categories {', '.join(bad)} (of {', '.join(MEM_CATEGORIES)})")
            options["mem"] = frozenset(mem)
        tensors = options.pop("tensors", None)
        opts = Options(**options)
        if isinstance(tensors, str) and tensors != "all":
            every = []
            plan_case(self.int_model, px.shape[1], px.shape[2], opts, None, tensors=every)
            opts.tensors = parse_tensors(tensors, every)
        elif tensors not in (None, "all"):
            opts.tensors = tuple(tensors)
        stem = os.path.splitext(os.path.basename(os.fspath(image)))[0] \
            if isinstance(image, (str, os.PathLike)) else "image"
        parent = os.path.dirname(os.path.abspath(out_dir))
        os.makedirs(parent, exist_ok=True)
        tmp = tempfile.mkdtemp(prefix=".fxlic-vectors-", dir=parent)
        try:
            man = write_case(self.int_model, px, tmp, opts, model_name=self.name, image_name=stem)
            if os.path.isdir(out_dir):
                os.rmdir(out_dir)
            os.replace(tmp, out_dir)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return man
