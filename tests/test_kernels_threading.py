"""fxlic's default for Numba's threads (issue 20, fxlic/kernels/__init__.py
``_threading_default``): OpenMP with passive waiting unless the user chose,
reported by ``threading_info``; the integers never depend on it."""
import json
import os
import subprocess
import sys

import pytest

PROBE = r"""
import json, os, sys
import numpy as np
import fxlic.kernels as K
from fxlic.kernels import get_backend
sys.path.insert(0, %r)
from engine_util import run_layer, synthetic_layer
L = synthetic_layer("conv", 5, 2, 3, 16, seed=1)
x = np.random.default_rng(0).integers(0, 256, (3, 40, 36))
out = run_layer(L, x, "numba")[0]
tables = [[int(v) for v in out.ravel()[::97]]]
print(json.dumps({"wait": os.environ.get("OMP_WAIT_POLICY"), "info": K.threading_info(),
                  "default": K.THREADING_DEFAULT, "codes": tables}))
"""


def _probe(env_over):
    env = {k: v for k, v in os.environ.items()
           if k not in ("NUMBA_THREADING_LAYER", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    env.update(env_over)
    env.setdefault("NUMBA_NUM_THREADS", "2")
    here = os.path.dirname(os.path.abspath(__file__))
    r = subprocess.run([sys.executable, "-c", PROBE % here], env=env, capture_output=True, text=True,
                       timeout=600, cwd=here)
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(bool(os.environ.get("NUMBA_DISABLE_JIT")), reason="no threads without JIT")
def test_threading_default_and_user_choice():
    d = _probe({})
    assert d["wait"] == "PASSIVE" and d["default"].startswith("fxlic default")
    assert "layer " in d["info"] and "OMP_WAIT_POLICY PASSIVE" in d["info"]
    for over in ({"OMP_WAIT_POLICY": "ACTIVE"}, {"GOMP_SPINCOUNT": "300000"},
                 {"NUMBA_THREADING_LAYER": "workqueue"}):
        u = _probe(over)
        assert u["default"].startswith("as set by the user"), over
        assert u["wait"] == over.get("OMP_WAIT_POLICY"), over  # left as the user set it
        assert u["codes"] == d["codes"]  # identical integers either way
    assert "workqueue" in _probe({"NUMBA_THREADING_LAYER": "workqueue"})["info"]
