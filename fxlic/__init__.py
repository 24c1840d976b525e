"""fxlic: bit-exact fixed-point learned image compression (Sun, Yu, Katto).

Data path (one subpackage per stage):
``spec`` (rounding, saturation, widths) -> ``quant`` (scale factors, LQ/NLQ/Lloyd,
mux, mean reduction) -> ``kernels`` (reference and numba twins) -> ``model``
(layer lists, float and integer forwards) -> ``entropy`` (integer CDFs, rANS)
-> ``bitstream`` -> ``cli``.
"""
__version__ = "0.1.0"

from .spec import SPEC_VERSION  # noqa: E402,F401
