"""fxlic cost / fxlic.eval.cost: Tables IX and X from the layer list, for any size."""
import json

import pytest

from fxlic.eval import cost
from fxlic.io.modelfile import memory_counts
from fxlic.model.arch import factorized, hyperprior5

# The paper's Table IX ("Memory cost consumption (MB) comparison for the weight and
# activation storage", N = 128, 768 x 512 input), as printed in Sun, Yu, Katto,
# /work/shared/paper/sun-yu-katto-quantized-lic.txt: rows "Proposal" and "Baseline [28]".
PAPER_TABLE_IX_PROPOSAL = {
    "encoder": {"w": 3.942, "sf_w": 0.0014, "w_total": 3.943, "o": 19.771, "sf_o": 0.0018, "o_total": 19.773},
    "decoder": {"w": 2.975, "sf_w": 0.0012, "w_total": 2.976, "o": 20.251, "sf_o": 0.0014, "o_total": 20.252},
}
PAPER_TABLE_IX_BASELINE_FP32 = {"encoder": {"w": 15.77, "o": 79.09}, "decoder": {"w": 11.90, "o": 81.99}}
# Table IX, "Baseline [28]" row: the percentages printed beside its totals
# (reduction of the proposal against the fp32 baseline): weights, activations
PAPER_TABLE_IX_REDUCTION_PCT = {"encoder": (-74.99, -75.00), "decoder": (-74.99, -75.00)}
# Table X ("Energy costs for various operations in pJ", 45 nm)
PAPER_TABLE_X_PJ = {"int8": (0.03, 0.2), "int32": (0.1, 3.1), "fp16": (0.4, 1.1), "fp32": (0.9, 3.7)}


@pytest.fixture(scope="module")
def hp():
    return cost.model_cost(hyperprior5(128), 768, 512)


def test_table_ix_as_printed(hp):
    ix = hp["table_ix_mb"]
    for part in ("encoder", "decoder"):
        p, m = PAPER_TABLE_IX_PROPOSAL[part], ix[part]
        assert round(m["w"], 3) == p["w"] and round(m["sf_w"], 4) == p["sf_w"]
        assert round(m["w_total"], 3) == p["w_total"]
        assert round(m["sf_o"], 4) == p["sf_o"]
        b = PAPER_TABLE_IX_BASELINE_FP32[part]
        assert round(m["fp32_w"], 2) == b["w"] and round(m["fp32_o"], 2) == b["o"]
        rw, ro = PAPER_TABLE_IX_REDUCTION_PCT[part]
        # the paper's percentages are truncated to two decimals (e.g. -74.991 -> -74.99)
        assert m["w_reduction_pct"] == pytest.approx(rw, abs=0.01)
        assert m["o_reduction_pct"] == pytest.approx(ro, abs=0.01)
    enc = ix["encoder"]
    assert round(enc["o"], 3) == PAPER_TABLE_IX_PROPOSAL["encoder"]["o"]
    assert round(enc["o_total"], 3) == PAPER_TABLE_IX_PROPOSAL["encoder"]["o_total"]
    # Decoder activations: fxlic counts every layer output (20.496 MB), as the paper's
    # own fp32 column (81.99 = 4 x 20.496) and its -75.00 % do; the printed 8-bit
    # 20.251 / 20.252 is the count without the HS0 / HS1 outputs (docs/COST.md).
    dec = ix["decoder"]
    assert round(dec["o"], 3) == 20.496
    assert round(dec["o_without_hs_tconv"], 3) == PAPER_TABLE_IX_PROPOSAL["decoder"]["o"]
    assert round(dec["o_without_hs_tconv"] + dec["sf_o"], 3) == PAPER_TABLE_IX_PROPOSAL["decoder"]["o_total"]


def test_table_x_prices():
    for k, (add, mult) in PAPER_TABLE_X_PJ.items():
        assert cost.PJ[k] == {"add": add, "mult": mult}
    assert cost.op_pj("int8") == pytest.approx((0.2 + 0.1, 0.1))  # 8-bit multiply, 32-bit accumulate
    assert cost.op_pj("fp32") == pytest.approx((3.7 + 0.9, 0.9))


def test_layer_sums_are_what_fxlic_info_counts(hp):
    """The per-layer rows add up to fxlic.io.modelfile.memory_counts (fxlic info)."""
    mc = memory_counts(hyperprior5(128))
    for part in ("encoder", "decoder"):
        t = hp["parts"][part]["totals"]
        assert t["weights"] == mc[part]["weights"] and t["outputs"] == mc[part]["activations"]
        assert t["int8"]["weight_sf_bytes"] == mc[part]["weight_sf"] * 4 / 8
        assert t["int8"]["act_bytes"] == mc[part]["activations"]
        assert t["fp32"]["act_bytes"] == 4 * mc[part]["activations"]
    assert hp["parts"]["encoder"]["totals"]["layers"] == 13 and hp["parts"]["decoder"]["totals"]["layers"] == 10


def test_macs_energy_and_line_buffers(hp):
    by = {r["name"]: r for r in hp["layers"]}
    # workload of architecture-notes.md: g_a 14.16 G, g_s 14.16 G, h_a 0.42 G, h_s 1.61 G
    g = lambda p: sum(r["macs"] for r in hp["layers"] if r["name"].startswith(p)) / 1e9  # noqa: E731
    assert round(g("AT"), 2) == 14.16 and round(g("ST"), 2) == 14.16
    assert round(g("HA"), 2) == 0.42 and round(g("HS"), 2) == 1.61
    assert by["AT0"]["macs"] == 256 * 384 * 25 * 3 * 128
    assert by["ST0"]["macs"] == 32 * 48 * 25 * 128 * 128  # tconv: input positions
    # energy: MACs x (mult + add) + outputs x add
    r = by["AT1"]
    assert r["int8"]["energy_pj"] == pytest.approx(r["macs"] * 0.3 + r["outputs"] * 0.1)
    assert r["fp32"]["energy_pj"] == pytest.approx(r["macs"] * 4.6 + r["outputs"] * 0.9)
    e = hp["parts"]["encoder"]["totals"]
    assert 14 < e["energy_ratio_fp32_int8"] < 15.4
    # line buffer: (rows one output row reads - 1) x input width x Cin x bytes
    assert by["AT0"]["int8"]["line_buffer_bytes"] == 4 * 768 * 3
    assert by["HA0"]["int8"]["line_buffer_bytes"] == 2 * 48 * 128
    assert by["HS3"]["int8"]["line_buffer_bytes"] == 0
    assert by["ST3"]["int8"]["line_buffer_bytes"] == 2 * 384 * 128  # tconv 5: ceil(5/2) = 3 rows
    assert by["ST3"]["fp32"]["line_buffer_bytes"] == 4 * 2 * 384 * 128
    lb = [by[n]["int8"]["line_buffer_bytes"] for n in hp["parts"]["decoder"]["layers"]]
    d = hp["parts"]["decoder"]["totals"]["int8"]
    assert d["line_buffer_bytes_sum"] == sum(lb) and d["line_buffer_bytes_max"] == max(lb)


def test_any_size_and_padding():
    a = hyperprior5(128)
    r1, r2 = cost.model_cost(a, 768, 512), cost.model_cost(a, 1536, 1024)
    t1, t2 = r1["parts"]["encoder"]["totals"], r2["parts"]["encoder"]["totals"]
    assert t2["macs"] == 4 * t1["macs"] and t2["outputs"] == 4 * t1["outputs"]
    assert t2["weights"] == t1["weights"]
    assert t2["int8"]["line_buffer_bytes_sum"] == 2 * t1["int8"]["line_buffer_bytes_sum"]
    r = cost.model_cost(a, 770, 510)
    assert r["computed_size"] == [832, 512] and r["padded"]
    r = cost.model_cost(a, 770, 510, pad=False)
    assert r["computed_size"] == [770, 510] and not r["padded"]
    f = cost.model_cost(factorized(192), 640, 480)
    assert f["parts"]["encoder"]["layers"] == ["AT0", "AT1", "AT2", "AT3"]
    assert f["parts"]["decoder"]["layers"] == ["ST0", "ST1", "ST2", "ST3"]
    assert f["computed_size"] == [640, 480]  # a multiple of 16 already
    json.dumps(f)


def test_parsers():
    assert cost.parse_size("768x512") == (768, 512) and cost.parse_size("64X32") == (64, 32)
    for bad in ("768", "0x5", "axb", "", "-4x4"):
        with pytest.raises(ValueError):
            cost.parse_size(bad)
    assert cost.parse_arch_name("hyperprior5-N192").N == 192
    assert cost.parse_arch_name("hyperprior5-N192-M320").M == 320
    assert cost.parse_arch_name("factorized-N64").kind == "factorized"
    assert cost.parse_arch_name("resnet-N64") is None and cost.parse_arch_name("hp5-mse-q2") is None


def test_cli(tmp_path, capsys):
    from fxlic.cli import main
    js, png = tmp_path / "c.json", tmp_path / "c.png"
    assert main(["cost", "hp5-mse-q2", "--json", str(js)]) == 0
    out = capsys.readouterr().out
    assert "encoder" in out and "decoder" in out and "Table IX" in out and "line buffer" in out
    rep = json.loads(js.read_text())
    assert rep["model"] == "hp5-mse-q2" and rep["architecture"] == "hyperprior5-N128"
    ref = cost.model_cost(hyperprior5(128))
    assert rep["table_ix_mb"] == json.loads(json.dumps(ref["table_ix_mb"]))
    pytest.importorskip("matplotlib")
    assert main(["cost", "factorized-N64", "--size", "256x128", "--plot", str(png)]) == 0
    assert png.read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("argv", [["cost", "no-such-model"], ["cost", "hp5-mse-q2", "--size", "12"],
                                  ["cost", "hp5-mse-q2", "--json", "/nonexistent/dir/x.json"],
                                  ["cost", "hp5-mse-q2", "--plot", "/nonexistent/dir/x.png"]])
def test_cli_bad_input_is_one_line(argv, capsys):
    from fxlic.cli import main
    assert main(argv) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err and err.startswith("fxlic cost: error:")
