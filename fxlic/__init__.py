"""fxlic: bit-exact fixed-point learned image compression (Sun, Yu, Katto).

Data path (one subpackage per stage):
``spec`` (rounding, saturation, widths) -> ``quant`` (scale factors, LQ/NLQ/Lloyd,
mux, mean reduction) -> ``kernels`` (reference and numba twins) -> ``model``
(layer lists, float and integer forwards) -> ``entropy`` (integer CDFs, rANS)
-> ``bitstream`` -> ``cli``.

``fxlic.load(name_or_path)`` is the Python API (fxlic/api.py, README "Python
API"); it is imported on first use, so ``import fxlic`` stays light.
"""
__version__ = "0.1.0"

from .spec import SPEC_VERSION  # noqa: E402,F401

_API = ("load", "find_model", "Model", "DEFAULT_MODEL")


def __getattr__(name):
    if name in _API:
        from . import api
        return getattr(api, name)
    raise AttributeError(f"module 'fxlic' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_API))
