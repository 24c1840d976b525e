"""fxlic.kernels.numba_start: the CLI's Numba set-up without SciPy's BLAS probe
(issue 20).  Run in a fresh interpreter: the probe runs once per process."""
import subprocess
import sys

SCRIPT = r"""
import sys
import numpy as np
from fxlic.kernels.numba_start import set_up_cpu_target_without_blas as setup
assert setup() == "skipped-blas"
assert "scipy.linalg" not in sys.modules            # the 0.2-0.5 s import it saves
assert "scipy.linalg.cython_blas" not in sys.modules  # the blocking entry is gone again
assert "cffi" not in sys.modules                     # nor was cffi imported for typing CFFI calls
import numba.core.typing.cffi_utils as cu
assert cu.ffi is None
assert setup() == "already-set-up"
from fxlic.kernels import numba_kernels as nk          # a compiled kernel still runs
assert int(nk._wrap32(np.int64(2**31))) == -2**31
import scipy.interpolate, scipy.linalg               # SciPy itself still loads normally
assert scipy.linalg.cython_blas is not None
try:                                                 # cffi, where installed, still imports
    import cffi
    assert cffi.FFI() is not None
except ImportError:
    pass
print("ok")
"""


def test_cli_numba_setup_skips_the_blas_probe_and_leaves_scipy_importable():
    r = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip().endswith("ok")


def test_the_setup_is_a_no_op_once_the_probe_ran():
    r = subprocess.run([sys.executable, "-c",
                        "import scipy.linalg.cython_blas\n"
                        "from fxlic.kernels.numba_start import set_up_cpu_target_without_blas as s\n"
                        "print(s())"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip() == "already-set-up"


def test_commands_that_run_kernels_say_so_when_they_register():
    """Each command module registers ``runs_kernels=True`` itself (fxlic.cli reads it);
    the commands that only read files or print tables do not pay for the Numba set-up."""
    from fxlic.cli import COMMANDS, build_parser
    p = build_parser()
    sub = next(a for a in p._actions if a.dest == "command")
    runs = {name for name in COMMANDS if sub.choices[name].get_default("runs_kernels")}
    assert runs == {"demo", "compress", "decompress", "info", "quantize", "vectors", "selfcheck", "eval"}
