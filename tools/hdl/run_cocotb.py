#!/usr/bin/env python3
"""Build fxlic_requant.v with Icarus Verilog and run cocotb_requant.py on a
unit directory (default vectors/units/hdl_requant).  Exit status 0 on success."""
import os
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))


def run(unit_dir: str, build_dir: str) -> bool:
    from cocotb_tools.check_results import get_results
    from cocotb_tools.runner import get_runner

    runner = get_runner("icarus")
    runner.build(sources=[os.path.join(HERE, "fxlic_requant.v")], hdl_toplevel="fxlic_requant",
                 build_dir=build_dir, always=True)
    xml = runner.test(hdl_toplevel="fxlic_requant", test_module="cocotb_requant", test_dir=HERE,
                      build_dir=build_dir, results_xml=os.path.join(build_dir, "results.xml"),
                      extra_env={"FXLIC_UNIT_DIR": os.path.abspath(unit_dir)})
    total, failed = get_results(xml)
    return total > 0 and failed == 0


if __name__ == "__main__":
    unit = sys.argv[1] if len(sys.argv) > 1 else os.path.join(REPO, "vectors", "units", "hdl_requant")
    with tempfile.TemporaryDirectory() as tmp:
        sys.exit(0 if run(unit, tmp) else 1)
