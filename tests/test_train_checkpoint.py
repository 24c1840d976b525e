"""tools/train.py checkpoints: resume is bit-exact, checkpoints load without unpickling
code (torch.load(weights_only=True)), and --init accepts an exported .safetensors file."""
import os

import numpy as np
import pytest

torch = pytest.importorskip("torch")
safetensors = pytest.importorskip("safetensors")

from tool_loader import load_tool  # noqa: E402

_HERE = os.path.dirname(os.path.abspath(__file__))
TRAIN = os.path.join(_HERE, "..", "..", "shared", "data", "train")
pytestmark = pytest.mark.skipif(not os.path.isdir(TRAIN), reason="../shared/data/train not present")


def _train_module():
    return load_tool("train")


def _tensors(path):
    from safetensors.numpy import load_file
    return load_file(path)


def _run(mod, tmp_path, name, *extra):
    common = ["--arch", "factorized", "--N", "16", "--crop", "32", "--batch", "1", "--threads", "1",
              "--data", TRAIN, "--ckpt-root", str(tmp_path), "--run-name", name, "--log-every", "1",
              "--seed", "7"]
    mod.main(common + list(extra))


def test_resume_is_bit_exact_and_checkpoint_is_pickle_free(tmp_path):
    mod = _train_module()
    one = tmp_path / "one.safetensors"
    two = tmp_path / "two.safetensors"
    _run(mod, tmp_path, "one", "--steps", "3", "--wcft", "1", "--wcft-steps", "2", "--export", str(one))
    _run(mod, tmp_path, "two", "--steps", "3")
    # the checkpoint holds only tensors and plain values
    ck = torch.load(tmp_path / "two" / "ckpt.pt", map_location="cpu", weights_only=True)
    assert ck["step"] == 3
    _run(mod, tmp_path, "two", "--resume", "--steps", "3", "--wcft", "1", "--wcft-steps", "2",
         "--export", str(two))
    a, b = _tensors(one), _tensors(two)
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def test_channels_last_resume_is_bit_exact(tmp_path):
    """The NHWC layout (--channels-last on) resumes bit-exactly too, and records it."""
    import json
    from safetensors import safe_open
    mod = _train_module()
    one = tmp_path / "one.safetensors"
    two = tmp_path / "two.safetensors"
    cl = ("--channels-last", "on", "--amp", "fp32")
    _run(mod, tmp_path, "one", *cl, "--steps", "3", "--wcft", "1", "--wcft-steps", "2", "--export", str(one))
    _run(mod, tmp_path, "two", *cl, "--steps", "3")
    _run(mod, tmp_path, "two", *cl, "--resume", "--steps", "3", "--wcft", "1", "--wcft-steps", "2",
         "--export", str(two))
    a, b = _tensors(one), _tensors(two)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    with safe_open(str(two), framework="np") as f:
        assert json.loads(f.metadata()["fxlic.provenance"])["memory_format"] == "channels_last"


def test_an_nchw_checkpoint_resumes_channels_last(tmp_path):
    """A run checkpointed in NCHW continues under --channels-last on (Adam's moments
    follow the parameters' layout) and ends close to the NCHW continuation."""
    mod = _train_module()
    _run(mod, tmp_path, "a", "--amp", "fp32", "--channels-last", "off", "--steps", "3")
    _run(mod, tmp_path, "b", "--amp", "fp32", "--channels-last", "off", "--steps", "3")
    outs = {}
    for name, layout in (("a", "off"), ("b", "on")):
        outs[name] = tmp_path / f"{name}.safetensors"
        _run(mod, tmp_path, name, "--amp", "fp32", "--channels-last", layout, "--resume", "--steps", "5",
             "--export", str(outs[name]))
    a, b = _tensors(outs["a"]), _tensors(outs["b"])
    for k in a:
        np.testing.assert_allclose(a[k], b[k], rtol=0, atol=1e-3, err_msg=k)


def test_init_from_exported_safetensors(tmp_path):
    mod = _train_module()
    src = tmp_path / "src.safetensors"
    again = tmp_path / "again.safetensors"
    _run(mod, tmp_path, "src", "--steps", "2", "--export", str(src))
    _run(mod, tmp_path, "again", "--init", str(src), "--steps", "0", "--export", str(again))
    a, b = _tensors(src), _tensors(again)
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def test_a_resume_at_a_lower_lr_records_the_lr_segments(tmp_path):
    """A run stopped and resumed with another --wcft-lr (an lr drop by hand, docs/TRAINING.md
    step 13) keeps training from the same state, and the export's provenance lists the
    learning rates step by step; a resume at the same rates adds no segment."""
    import json
    from safetensors import safe_open
    mod = _train_module()
    out = tmp_path / "r.safetensors"
    _run(mod, tmp_path, "r", "--steps", "0", "--wcft", "1", "--wcft-steps", "2", "--wcft-lr", "5e-5")
    _run(mod, tmp_path, "r", "--resume", "--steps", "0", "--wcft", "1", "--wcft-steps", "3", "--wcft-lr", "5e-5")
    _run(mod, tmp_path, "r", "--resume", "--steps", "0", "--wcft", "1", "--wcft-steps", "5",
         "--wcft-lr", "1e-5", "--export", str(out))
    with safe_open(str(out), framework="np") as f:
        pv = json.loads(f.metadata()["fxlic.provenance"])
    assert pv["steps"] == 5
    assert pv["lr_segments"] == [{"until_step": 3, "lr": pv["lr"], "wcft_lr": 5e-5},
                                 {"until_step": 5, "lr": pv["lr"], "wcft_lr": 1e-5}]
