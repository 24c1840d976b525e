"""tools/hdl: the Verilog requantize + NLQ + mux element (SPEC O1, Q2, Q3, X2,
and O2) run with Icarus Verilog on the committed $readmemh vectors: the unit
case vectors/units/hdl_requant and every O1/O2 layer of a whole-model case.
Skipped, with the reason, when iverilog/vvp (or cocotb, for the cocotb test)
is not installed."""
import json
import os
import shutil
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HDL = os.path.join(REPO, "tools", "hdl")
VEC = os.path.join(REPO, "vectors")
UNIT = os.path.join(VEC, "units", "hdl_requant")
CASE = os.path.join(VEC, "cases", "rand16", "img64")

needs_iverilog = pytest.mark.skipif(
    shutil.which("iverilog") is None or shutil.which("vvp") is None,
    reason="Icarus Verilog is not installed (apt-get install -y iverilog); the HDL check is skipped")


def _run_tb(tmp_path, N, HW, C, plusargs):
    vvp = str(tmp_path / f"tb_{N}_{HW}_{C}.vvp")
    r = subprocess.run(["iverilog", "-g2005", "-Wall", "-o", vvp, f"-Ptb.N={N}", f"-Ptb.HW={HW}", f"-Ptb.C={C}",
                        os.path.join(HDL, "tb_requant.v"), os.path.join(HDL, "fxlic_requant.v")],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "warning" not in r.stderr.lower(), r.stderr
    r = subprocess.run(["vvp", "-n", vvp] + [f"+{k}={v}" for k, v in plusargs.items()],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    return r.stdout


def _count(path):
    with open(path, "rb") as f:
        return f.read().count(b"\n")


@needs_iverilog
def test_hdl_unit_vectors(tmp_path):
    n = _count(os.path.join(UNIT, "acc.mem"))
    assert n > 5000
    out = _run_tb(tmp_path, n, 1, n, {"ACC": f"{UNIT}/acc.mem", "SHIFT": f"{UNIT}/shift.mem",
                                      "MUX": f"{UNIT}/mux.mem", "KINDS": f"{UNIT}/kind.mem",
                                      "EXPECT": f"{UNIT}/code.mem"})
    assert f"PASS {n}" in out, out


@needs_iverilog
def test_hdl_whole_layers(tmp_path):
    """Per-channel shift and mux of the model, the layer's int32 accumulators in,
    the layer's output codes expected: every element of every O1/O2 layer."""
    m = json.load(open(os.path.join(CASE, "manifest.json")))
    mdir = os.path.normpath(os.path.join(CASE, m["model"]["dir"]))
    done = 0
    for L in m["layers"]:
        if L["out_rule"] not in ("O1", "O2"):
            continue
        name = L["name"]
        C, H, W = L["out_shape"]
        kind = 0 if L["out_rule"] == "O1" else (1 if L["act"] == "leaky" else 2)
        out = _run_tb(tmp_path, C * H * W, H * W, C,
                      {"ACC": f"{CASE}/layers/{name}/acc.mem", "SHIFT": f"{mdir}/layers/{name}/out_shift.mem",
                       "MUX": f"{mdir}/layers/{name}/mux.mem", "KIND": kind,
                       "EXPECT": f"{CASE}/layers/{name}/out.mem"})
        assert f"PASS {C * H * W}" in out, f"{name}: {out}"
        done += 1
    assert done >= 12


@needs_iverilog
def test_hdl_testbench_reports_a_mismatch(tmp_path):
    exp = (tmp_path / "code.mem")
    lines = open(os.path.join(UNIT, "code.mem")).read().splitlines()
    lines[3] = "%02x" % (int(lines[3], 16) ^ 1)
    exp.write_text("\n".join(lines) + "\n")
    n = len(lines)
    out = _run_tb(tmp_path, n, 1, n, {"ACC": f"{UNIT}/acc.mem", "SHIFT": f"{UNIT}/shift.mem",
                                      "MUX": f"{UNIT}/mux.mem", "KINDS": f"{UNIT}/kind.mem", "EXPECT": str(exp)})
    assert f"FAIL 1 of {n}" in out and "MISMATCH element 3" in out


@needs_iverilog
def test_hdl_cocotb(tmp_path):
    try:
        import cocotb  # noqa: F401
        import cocotb_tools.runner  # noqa: F401
    except ImportError:
        pytest.skip("cocotb is not installed (pip install cocotb); the cocotb test is optional")
    r = subprocess.run([sys.executable, os.path.join(HDL, "run_cocotb.py"), UNIT], capture_output=True,
                       text=True, timeout=600, cwd=str(tmp_path))
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "FAIL=0" in r.stdout
