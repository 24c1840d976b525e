"""tools/bench_cli.py runs end to end and prints its table (a smoke test: its
seconds are never asserted)."""
import numpy as np
from PIL import Image

from tool_loader import load_tool


def test_bench_cli_prints_every_row(tmp_path, capsys):
    img = str(tmp_path / "a.png")
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (32, 48, 3), dtype=np.uint8)).save(img)
    assert load_tool("bench_cli").main(["--image", img, "--repeat", "1"]) == 0
    out = capsys.readouterr().out
    for row in ("floor", "fxlic compress", "fxlic decompress", "two processes", "one process"):
        assert row in out, row
