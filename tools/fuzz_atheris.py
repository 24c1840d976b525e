"""Coverage-guided fuzzing of fxlic's input formats with atheris (issue 18).

    pip install atheris
    python tools/fuzz_atheris.py fxl  CORPUS_DIR [-atheris_runs=1000000] [-max_len=4096]
    python tools/fuzz_atheris.py fxq  CORPUS_DIR -rss_limit_mb=2048
    python tools/fuzz_atheris.py safetensors CORPUS_DIR
    python tools/fuzz_atheris.py onnx CORPUS_DIR

Each target feeds the bytes to the reader a user would run and accepts only
that format's one-line error (BitstreamError, ModelFileError, WeightsError) or
a valid result; any other exception is a crash atheris reports with the input
that caused it.  ``-rss_limit_mb=2048`` turns a memory blow-up into a crash
too.  An empty CORPUS_DIR is seeded with a valid file of the format, made from
a small random model.  The structured campaign that runs in the test suite is
tests/test_reliability_fuzz.py; ``targets()`` here is also called by it, so
the targets stay runnable without atheris.
"""
from __future__ import annotations

import os
import sys
import tempfile

import numpy as np

_STATE = {}


def _small():
    if "model" not in _STATE:
        from fxlic.model.arch import hyperprior5
        from fxlic.model.build import build_int_model, calibrate
        from fxlic.model.float_model import random_float_model
        fm = random_float_model(hyperprior5(8), 0)
        imgs = [np.random.default_rng(1).integers(0, 256, (3, 64, 64), dtype=np.uint8)]
        _STATE["float"] = fm
        _STATE["model"] = build_int_model(fm, calibrate(fm, imgs))
        _STATE["dir"] = tempfile.mkdtemp(prefix="fxlic-fuzz-")
    return _STATE["model"]


def _file(name: str, data: bytes) -> str:
    _small()
    p = os.path.join(_STATE["dir"], name)
    with open(p, "wb") as f:
        f.write(data)
    return p


def fxl(data: bytes):
    from fxlic.bitstream.container import BitstreamError, read_stream
    from fxlic.codec import decode_parts, decompress
    model = _small()
    try:
        px = decompress(model, data, max_pixels=1 << 16)
        assert px.dtype == np.uint8 and px.ndim == 3
    except BitstreamError:
        pass
    try:
        decode_parts(model, *read_stream(_file("f.fxl", data), 1 << 16), max_pixels=1 << 16)
    except BitstreamError:
        pass


def fxq(data: bytes):
    from fxlic.io.modelfile import ModelFileError, load_model
    try:
        load_model(_file("m.fxq", data))
    except ModelFileError:
        pass


def safetensors(data: bytes):
    from fxlic.io.floatfile import WeightsError, load_weights
    try:
        load_weights(_file("w.safetensors", data))
    except WeightsError:
        pass


def onnx(data: bytes):
    from fxlic.io.floatfile import WeightsError, load_weights
    try:
        load_weights(_file("m.onnx", data))
    except WeightsError:
        pass


def seed(name: str) -> bytes:
    """A valid input of target ``name``."""
    model = _small()
    if name == "fxl":
        from fxlic.codec import compress
        return compress(model, np.zeros((3, 40, 70), np.uint8))[0]
    if name == "fxq":
        from fxlic.io.modelfile import save_model
        p = os.path.join(_STATE["dir"], "seed.fxq")
        save_model(model, p)
    elif name == "safetensors":
        from fxlic.io.floatfile import save_float_model
        p = os.path.join(_STATE["dir"], "seed.safetensors")
        save_float_model(_STATE["float"], p)
    else:
        return b""  # write an ONNX seed with tests/test_io_formats.make_onnx
    with open(p, "rb") as f:
        return f.read()


def targets() -> dict:
    return {"fxl": fxl, "fxq": fxq, "safetensors": safetensors, "onnx": onnx}


def main(argv):
    import atheris
    if len(argv) < 2 or argv[1] not in targets():
        sys.exit(__doc__)
    name = argv[1]
    corpus = next((a for a in argv[2:] if not a.startswith("-")), None)
    if corpus and os.path.isdir(corpus) and not os.listdir(corpus):
        s = seed(name)
        if s:
            with open(os.path.join(corpus, "seed"), "wb") as f:
                f.write(s)
    import fxlic.codec  # noqa: F401  (import everything, then instrument it for coverage)
    import fxlic.io.floatfile  # noqa: F401
    import fxlic.io.onnx_import  # noqa: F401
    atheris.instrument_all()
    atheris.Setup([argv[0]] + argv[2:], targets()[name])
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)
