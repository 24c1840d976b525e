"""``fxlic info``: versions, or a readable description of a model file."""
from __future__ import annotations


def run(args) -> int:
    import numba
    import numpy as np

    from .. import __version__
    from ..spec import SPEC_VERSION

    print(f"fxlic {__version__}  spec {SPEC_VERSION}")
    print(f"numpy {np.__version__}  numba {numba.__version__}")
    if args.model:
        from ..io.modelfile import describe_model_file
        print(describe_model_file(args.model))
    return 0


def register(sub):
    s = sub.add_parser("info", help="print versions, or describe a .fxq model file")
    s.add_argument("model", nargs="?", help="a .fxq model file (or a shipped model name)")
    s.set_defaults(func=run)
