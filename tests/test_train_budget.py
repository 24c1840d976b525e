"""tools/train.py's fast paths (issue 15): the packed training set, bf16 autocast, the
--minutes wall budget, --device checks, and tools/train_campaign.py on a tiny budget.
Everything runs on the CPU on synthetic images; nothing here needs a GPU or ../shared."""
import json
import os

import numpy as np
import pytest

torch = pytest.importorskip("torch")
safetensors = pytest.importorskip("safetensors")

from tool_loader import load_tool  # noqa: E402


@pytest.fixture(scope="module")
def tr():
    return load_tool("train")


@pytest.fixture(scope="module")
def img_dir(tmp_path_factory):
    from PIL import Image
    d = tmp_path_factory.mktemp("train_imgs")
    rng = np.random.default_rng(3)
    for i, (h, w) in enumerate([(80, 120), (400, 300), (64, 64)]):
        yy, xx = np.mgrid[0:h, 0:w]
        base = np.stack([(xx * 3 + i * 40) % 256, (yy * 2) % 256, (xx + yy) % 256], -1)
        im = np.clip(base + rng.integers(-20, 20, base.shape), 0, 255).astype(np.uint8)
        Image.fromarray(im).save(d / f"im{i}.png")
    return d


def _meta(path):
    from safetensors import safe_open
    with safe_open(str(path), framework="np") as f:
        return json.loads(f.metadata()["fxlic.provenance"])


def test_pack_file_equals_directory(tr, img_dir, tmp_path):
    a = tr.PackedImages.from_dir(str(img_dir))
    p = str(tmp_path / "pack.npz")
    a.save(p)
    b = tr.PackedImages.load(p)
    np.testing.assert_array_equal(a.flat, b.flat)
    np.testing.assert_array_equal(a.index, b.index)
    assert b.names == ["im0.png", "im1.png", "im2.png"]
    # the 400x300 image is resized to the pack's short side and cropped to 1.5:1
    _, h, w = (int(v) for v in a.index[1])
    assert min(h, w) == tr.PACK_SHORT_SIDE and max(h, w) <= int(tr.PACK_SHORT_SIDE * tr.PACK_MAX_ASPECT)
    # crops from the two sources are identical for the same seed
    s1 = tr.CropSampler(a, 32, seed=5)
    s2 = tr.CropSampler(p, 32, seed=5)
    for _ in range(3):
        assert torch.equal(s1.batch(2), s2.batch(2))


def test_pack_errors_are_one_line(tr, tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(SystemExit, match="not a training pack"):
        tr.PackedImages.load(str(bad))
    np.savez(tmp_path / "inc.npz", flat=np.zeros(10, np.uint8), index=np.array([[0, 8, 8]]))
    with pytest.raises(SystemExit, match="inconsistent pack"):
        tr.PackedImages.load(str(tmp_path / "inc.npz"))
    with pytest.raises(SystemExit, match="no such directory or pack file"):
        tr.PackedImages.load(str(tmp_path / "missing"))


def test_bf16_autocast_keeps_entropy_inputs_fp32(tr):
    from fxlic.model.arch import ARCHITECTURES
    torch.manual_seed(0)
    model = tr.Codec(ARCHITECTURES["hyperprior5"](8))
    x = torch.rand(1, 3, 64, 64)
    ref = model(x, mode="round")
    model.amp = True
    out = model(x, mode="round")
    assert out["x_hat"].dtype == torch.float32
    assert all(v.dtype == torch.float32 for v in out["likelihoods"].values())
    # bf16 transforms: close to fp32, not equal (an 8-bit mantissa)
    assert torch.allclose(out["x_hat"], ref["x_hat"], atol=0.05)


def test_channels_last_changes_layout_not_values(tr):
    """--channels-last: the same forward and gradients up to float rounding order, and
    the export is the NCHW-contiguous tensors of the same weights."""
    from fxlic.model.arch import ARCHITECTURES
    torch.manual_seed(0)
    a = tr.Codec(ARCHITECTURES["hyperprior5"](8))
    b = tr.Codec(ARCHITECTURES["hyperprior5"](8))
    b.load_state_dict(a.state_dict())
    b.to(memory_format=torch.channels_last)
    assert b.layers["AT0"].weight.is_contiguous(memory_format=torch.channels_last)
    x = torch.rand(2, 3, 64, 64)
    ra, rb = a(x, mode="round"), b(x.contiguous(memory_format=torch.channels_last), mode="round")
    assert torch.allclose(ra["x_hat"], rb["x_hat"], atol=1e-5)
    for k in ra["likelihoods"]:
        assert torch.allclose(ra["likelihoods"][k], rb["likelihoods"][k], rtol=1e-4, atol=1e-7)
    sum(v.log().sum() for v in ra["likelihoods"].values()).backward()
    sum(v.log().sum() for v in rb["likelihoods"].values()).backward()
    ga, gb = a.layers["AT0"].weight.grad, b.layers["AT0"].weight.grad
    assert torch.allclose(ga, gb, rtol=1e-3, atol=1e-3 * float(ga.abs().max()))
    ea, eb = tr.export_tensors(a), tr.export_tensors(b)
    assert ea.keys() == eb.keys()
    for k in ea:
        assert eb[k].is_contiguous() and torch.equal(ea[k], eb[k]), k


def test_channels_last_auto_is_on_on_a_cpu(tr):
    cpu = torch.device("cpu")
    assert tr.use_channels_last(cpu, "auto") is True
    assert tr.use_channels_last(torch.device("cuda"), "auto") is False
    assert tr.use_channels_last(torch.device("cuda"), "on") is True
    assert tr.use_channels_last(cpu, "off") is False


def test_cpu_bf16_detection_reads_cpuinfo(tr):
    flags = open("/proc/cpuinfo").read() if os.path.exists("/proc/cpuinfo") else ""
    assert tr.cpu_has_native_bf16() == ("avx512_bf16" in flags or "amx_bf16" in flags)
    assert tr.use_bf16(torch.device("cpu"), "fp32") is False
    assert tr.use_bf16(torch.device("cpu"), "bf16") is True


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is present")
def test_cuda_unavailable_is_a_one_line_error(tr, img_dir, tmp_path):
    with pytest.raises(SystemExit, match="CUDA is not available"):
        tr.main(["--device", "cuda", "--data", str(img_dir), "--ckpt-root", str(tmp_path)])


def test_bad_crop_is_refused(tr, img_dir, tmp_path):
    with pytest.raises(SystemExit, match="multiple of 64"):
        tr.main(["--crop", "100", "--N", "8", "--data", str(img_dir), "--ckpt-root", str(tmp_path)])


def test_minutes_budget_resolves_steps_and_exports(tr, img_dir, tmp_path):
    out = tmp_path / "b.safetensors"
    tr.main(["--arch", "factorized", "--N", "8", "--crop", "32", "--batch", "1", "--threads", "1",
             "--data", str(img_dir), "--ckpt-root", str(tmp_path), "--run-name", "b", "--log-every", "1000",
             "--minutes", "0.05", "--wcft", "1", "--lr-drop-frac", "0.8", "--amp", "bf16",
             "--export", str(out)])
    pv = _meta(out)
    plan = pv["budget"]
    assert plan["minutes"] == 0.05 and plan["steps"] > tr.BUDGET_WARMUP
    assert pv["train_steps"] == plan["steps"] and pv["wcft_rounds"] == 1
    assert pv["steps"] == plan["steps"] + plan["wcft_steps"]
    # the lr drop follows the plan, which tracks the measured rate (a loaded machine)
    assert pv["lr_drop"] == plan["lr_drop"]
    assert 0 < plan["lr_drop"] <= plan["steps"]
    assert pv["amp"] == "bf16" and pv["kpix_per_s"] > 0
    assert pv["wall_seconds"] < 0.05 * 60 * 1.5


def test_campaign_dry_run_covers_every_recipe(tmp_path, capsys):
    camp = load_tool("train_campaign")
    assert camp.main(["--out", str(tmp_path), "--dry-run", "--data", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == len(camp.RECIPES)
    for r, line in zip(camp.RECIPES, lines):
        assert f"--run-name {r['name']}" in line and "--minutes 8.0" in line
        assert ("--msssim" in line) == bool(r.get("msssim"))
        # every recipe continues from committed weights (its own, or its init_from model's)
        assert "--init " in line, r["name"]


def test_campaign_tiny_budget_on_cpu(img_dir, tmp_path):
    camp = load_tool("train_campaign")
    rc = camp.main(["--out", str(tmp_path), "--minutes", "0.04", "--N", "8", "--crop", "64",
                    "--batch", "1", "--scratch", "--only", "hp5-mse-q2,fact-mse-q1",
                    "--data", str(img_dir), "--threads", "1"])
    assert rc == 0
    summary = json.loads((tmp_path / "campaign.json").read_text())
    for name in ("hp5-mse-q2", "fact-mse-q1"):
        run = summary["runs"][name]
        assert run["exit"] == 0 and run["export"] == f"{name}.safetensors" and run["steps"] > 0
        assert (tmp_path / f"{name}-nowcft.safetensors").is_file()


def test_wcft_exponent_first_keeps_round_one_range(tr, img_dir, tmp_path):
    """--wcft-exponent first: round 2 (beta sqrt 2) loosens round 1's range instead of halving it."""
    from safetensors.numpy import load_file
    outs = {}
    for mode in ("recompute", "first"):
        out = tmp_path / f"{mode}.safetensors"
        tr.main(["--arch", "factorized", "--N", "8", "--crop", "32", "--batch", "1", "--threads", "1",
                 "--data", str(img_dir), "--ckpt-root", str(tmp_path), "--run-name", mode,
                 "--log-every", "1000", "--steps", "2", "--wcft", "1,1.4142", "--wcft-steps", "1",
                 "--wcft-lr", "0", "--wcft-exponent", mode, "--export", str(out)])
        outs[mode] = load_file(str(out))
        assert _meta(out)["wcft_exponent"] == mode
    convs = [k for k in outs["first"] if k.endswith(".weight")]
    # same start, lr 0: recompute clips harder in round 2 (half the range x sqrt 2)
    for k in convs:
        assert np.abs(outs["recompute"][k]).max() < np.abs(outs["first"][k]).max(), k


def test_recent_rate_uses_the_last_window(tr):
    pts = [(float(t), t) for t in range(0, 50)] + [(50.0 + 2 * k, 50 + k) for k in range(1, 300)]
    rates = list(pts)
    # the last BUDGET_TRACK_WINDOW steps ran at 0.5 steps/s; the first 50 at 1 step/s are dropped
    assert tr.recent_rate(rates, pts[-1][1]) == pytest.approx(0.5)
    assert len(rates) <= tr.BUDGET_TRACK_WINDOW + 2
    assert tr.recent_rate([(1.0, 5)], 5) is None


def test_short_high_lr_restart_of_trained_weights_is_warned(tr):
    """The plan check of docs/TRAINING.md steps 8 and 10: a continuation from trained
    weights at lr >= 1e-4 with fewer than SHORT_RESTART_STEPS steps gets a warning;
    a long one, a low-lr one or one from scratch does not."""
    from types import SimpleNamespace as NS
    n = tr.SHORT_RESTART_STEPS
    assert "warning" in tr.short_restart_warning(NS(init="w.safetensors", lr=1e-4, steps=n - 1))
    assert tr.short_restart_warning(NS(init="w.safetensors", lr=1e-4, steps=n)) is None
    assert tr.short_restart_warning(NS(init="w.safetensors", lr=1e-5, steps=100)) is None
    assert tr.short_restart_warning(NS(init=None, lr=1e-4, steps=100)) is None


def test_wcft_round_keeps_a_floor_of_steps(tr):
    """A short budget's WCFT round is not the bare --wcft-frac (docs/TRAINING.md step
    11: 47 steps lost twice the PSNR of 173); a tiny budget keeps half for training."""
    m = tr.MIN_WCFT_STEPS
    assert tr.wcft_round_steps(1100, 1, 0.04) == m            # 4 % would be 44
    assert tr.wcft_round_steps(10000, 1, 0.04) == 400         # the fraction, above the floor
    assert tr.wcft_round_steps(1100, 3, 0.04) == m
    assert tr.wcft_round_steps(100, 1, 0.04) == 50            # at most half the budget
    assert tr.wcft_round_steps(60, 3, 0.04) == 10
    assert tr.wcft_round_steps(1, 1, 0.04) == 1
    assert tr.wcft_round_steps(1000, 0, 0.04) == 0


def test_wcft_exponent_keep_continues_a_wcft_model_unclipped(tr, img_dir, tmp_path):
    """--wcft-exponent keep on weights that a beta-1 round produced clips nothing more, and the
    continued weights stay under that round's bound, so the quantizer's exponent
    floor(log2 max|w|) of no channel grows (docs/TRAINING.md, continuing a shipped model)."""
    from safetensors.numpy import load_file
    common = ["--arch", "factorized", "--N", "8", "--crop", "32", "--batch", "1", "--threads", "1",
              "--data", str(img_dir), "--ckpt-root", str(tmp_path), "--log-every", "1000"]
    first = tmp_path / "wcft.safetensors"
    tr.main(common + ["--run-name", "a", "--steps", "2", "--wcft", "1", "--wcft-steps", "2",
                      "--wcft-lr", "1e-3", "--export", str(first)])
    again = {}
    for mode in ("keep", "recompute"):
        out = tmp_path / f"{mode}.safetensors"
        tr.main(common + ["--run-name", mode, "--steps", "0", "--wcft", "1", "--wcft-steps", "3",
                          "--wcft-lr", "1e-3" if mode == "keep" else "0", "--wcft-exponent", mode,
                          "--init", str(first), "--export", str(out)])
        again[mode] = load_file(str(out))
        log = (tmp_path / mode / "train.log").read_text()
        n_clip = int(log.split("clipped ")[1].split()[0])
        assert (n_clip == 0) == (mode == "keep"), (mode, n_clip)
    from fxlic.model.arch import factorized
    a = load_file(str(first))
    layers = factorized(N=8).layers
    assert layers
    for layer in layers:
        k, od = f"{layer.name}.weight", (0 if layer.op == "conv" else 1)
        wa = np.moveaxis(a[k].astype(np.float64), od, 0).reshape(a[k].shape[od], -1)
        wk = np.moveaxis(again["keep"][k].astype(np.float64), od, 0).reshape(a[k].shape[od], -1)
        ea, ek = np.floor(np.log2(np.abs(wa).max(1))), np.floor(np.log2(np.abs(wk).max(1)))
        assert np.all(ek <= ea), k
        assert not np.array_equal(wa, wk), k  # it did train (lr 1e-3)
