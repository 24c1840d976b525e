"""Building the C port (tools/ports/c) for the tests that run it."""
from __future__ import annotations

import os
import shutil
import subprocess

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PORT = os.path.join(REPO, "tools", "ports", "c")
CFLAGS = ["-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-pedantic"]


def build_port(tmp_path_factory, progs=("fxlic_dec", "fxlic_enc"), name="cport") -> dict:
    """Compile the port's programs with gcc (strict C99, warnings as errors) into a
    fresh temp dir: {program: executable}; skips the test without gcc."""
    if shutil.which("gcc") is None:
        pytest.skip("gcc is not installed")
    d = tmp_path_factory.mktemp(name)
    out = {}
    for prog in progs:
        out[prog] = str(d / prog)
        r = subprocess.run(["gcc", *CFLAGS, "-o", out[prog], os.path.join(PORT, prog + ".c")],
                           capture_output=True, text=True)
        assert r.returncode == 0, f"gcc failed:\n{r.stderr}"
    return out
