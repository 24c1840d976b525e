"""tools/bench_cli.py runs end to end and prints its table (a smoke test: its
seconds are never asserted)."""
import numpy as np
import pytest
from PIL import Image

from tool_loader import load_tool


def test_bench_cli_prints_every_row(tmp_path, capsys):
    img = str(tmp_path / "a.png")
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (32, 48, 3), dtype=np.uint8)).save(img)
    assert load_tool("bench_cli").main(["--image", img, "--repeat", "1"]) == 0
    out = capsys.readouterr().out
    for row in ("floor", "fxlic compress", "fxlic decompress", "two processes", "one process"):
        assert row in out, row


@pytest.mark.slow
def test_bench_cli_against_another_tree(tmp_path, capsys):
    """--against TREE: here the same checkout, so both rows run and the ratio row prints."""
    import os
    img = str(tmp_path / "a.png")
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (32, 48, 3), dtype=np.uint8)).save(img)
    bc = load_tool("bench_cli")
    assert bc.main(["--image", img, "--repeat", "1", "--against", bc.ROOT]) == 0
    out = capsys.readouterr().out
    assert "| this |" in out and "| against |" in out and "ratio this / against" in out
    with pytest.raises(SystemExit):
        bc.main(["--image", img, "--against", os.fspath(tmp_path)])
