"""Numba's CPU-target set-up without its SciPy BLAS probe (issue 20: CLI wall time).

The first compiled call in a process sets up Numba's CPU target.  Part of that
set-up imports ``numba.np.arraymath``, which probes for BLAS by importing
``scipy.linalg.cython_blas`` -- and with it all of ``scipy.linalg`` (0.2-0.5 s of
an fxlic process on the 2-vCPU Zen 3 guest, by ``python -X importtime`` and
``tools/bench_cli.py``; docs/PERFORMANCE.md, session 10) -- only to learn whether
``np.dot`` / ``np.linalg`` may be compiled.  fxlic's kernels are integer loops that never call BLAS.
Its typing context likewise imports ``cffi`` where it is installed (a dependency of
``cryptography``, so often), 0.1 s, to type CFFI functions, which fxlic never calls.

``set_up_cpu_target_without_blas`` runs that set-up once with both probes answered
"absent" (a ``None`` entry in ``sys.modules`` makes the import fail at once,
without loading the package) and removes the entries again, so every later import
of SciPy -- metrics, the BD-rate interpolation -- or of cffi loads normally.  The one
effect left is Numba's: jitted ``np.dot`` / ``np.linalg`` and CFFI calls raise a
typing error *in this process*.  That is why only the ``fxlic`` command calls it (``fxlic.cli``), never an
import of the library: a program that imports fxlic keeps its own Numba intact.
The integers are untouched: nothing here is in the integer path.
"""
from __future__ import annotations

import sys

_PROBE = "scipy.linalg.cython_blas"
#: every import the set-up is spared: the BLAS probe, and cffi (numba.core.typing.cffi_utils)
_PROBES = (_PROBE, "cffi")


def set_up_cpu_target_without_blas() -> str:
    """Set up Numba's CPU target now, skipping its SciPy BLAS probe when it has
    not run yet.  Returns what happened, one word (for the tests):
    ``"skipped-blas"``, ``"already-set-up"`` (the probe ran before: nothing to
    save), ``"no-numba"``, or ``"failed"`` (Numba's set-up raised: the blocking
    entry is removed all the same, and whatever is not set up yet is set up as
    usual at the first kernel)."""
    if "numba.np.arraymath" in sys.modules or _PROBE in sys.modules:
        return "already-set-up"
    blocked = [m for m in _PROBES if m not in sys.modules]
    for m in blocked:
        sys.modules[m] = None  # import of it now raises ImportError without loading the package
    try:
        try:
            from numba.core.registry import cpu_target
        except ImportError:
            return "no-numba"
        try:
            cpu_target.target_context.refresh()  # loads the registries, numba.np.arraymath among them
        except Exception:  # pragma: no cover - a Numba whose set-up changed
            return "failed"
    finally:
        for m in blocked:
            if m in sys.modules and sys.modules[m] is None:
                del sys.modules[m]
    return "skipped-blas"
