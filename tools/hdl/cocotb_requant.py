"""cocotb test of fxlic_requant.v driven from the golden .npy files
(vectors/units/hdl_requant), for teams that verify RTL from Python.

Run by tests/test_vectors_hdl.py (skipped unless cocotb and Icarus Verilog are
installed), or by hand::

    FXLIC_UNIT_DIR=vectors/units/hdl_requant python tools/hdl/run_cocotb.py
"""
import os

import cocotb
import numpy as np
from cocotb.triggers import Timer


@cocotb.test()
async def requant_matches_golden_vectors(dut):
    d = os.environ["FXLIC_UNIT_DIR"]
    acc, shift, mux, kind, code = (np.load(os.path.join(d, f"{n}.npy"))
                                   for n in ("acc", "shift", "mux", "kind", "code"))
    errors = []
    for i in range(acc.size):
        dut.acc.value = int(acc[i])
        dut.shift.value = int(shift[i])
        dut.mux.value = int(mux[i])
        dut.kind.value = int(kind[i])
        await Timer(1, unit="ns")
        got = int(dut.code.value.to_unsigned())
        if got != int(code[i]):
            errors.append((i, int(acc[i]), int(shift[i]), int(mux[i]), int(kind[i]), int(code[i]), got))
    for e in errors[:10]:
        dut._log.error("element %d: acc=%d shift=%d mux=%d kind=%d expected %d got %d" % e)
    assert not errors, f"{len(errors)} of {acc.size} outputs differ"
    dut._log.info("all %d outputs match", acc.size)
