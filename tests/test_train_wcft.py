"""tools/train.py's torch WCFT clip must equal fxlic.quant.wcft.wcft_clip."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from fxlic.quant.wcft import wcft_clip  # noqa: E402
from tool_loader import load_tool  # noqa: E402


def _train_module():
    return load_tool("train")


@pytest.mark.parametrize("beta", [1.0, 1.4142, 2 ** 0.5])
@pytest.mark.parametrize("shape", [(8, 3, 5, 5), (16, 4, 3, 3), (5, 7, 1, 1)])
def test_conv_clip_matches_numpy(beta, shape):
    tr = _train_module()
    rng = np.random.default_rng(hash((beta, shape)) % 2 ** 32)
    w = rng.standard_normal(shape) * rng.uniform(0.01, 3.0, size=(shape[0], 1, 1, 1))
    w[0] = 0.0  # a dead channel stays unchanged
    if shape[0] > 2:
        w[1, 0, 0, 0] = 0.5  # exact power of two as the maximum
        w[1] = np.clip(w[1], -0.5, 0.5)
    with np.errstate(invalid="ignore"):  # reference computes sign(0) * inf for dead channels
        ref, ref_mask = wcft_clip(w, beta)
    got, mask = tr.wcft_clip_torch(torch.from_numpy(w), beta, out_dim=0)
    assert got.dtype == torch.float64
    np.testing.assert_array_equal(got.numpy(), ref)
    np.testing.assert_array_equal(mask.numpy(), ref_mask)
    # float32 weights: same result cast to float32
    got32, mask32 = tr.wcft_clip_torch(torch.from_numpy(w.astype(np.float32)), beta, out_dim=0)
    with np.errstate(invalid="ignore"):
        ref32, ref_mask32 = wcft_clip(w.astype(np.float32), beta)
    np.testing.assert_array_equal(got32.numpy(), ref32.astype(np.float32))
    np.testing.assert_array_equal(mask32.numpy(), ref_mask32)


@pytest.mark.parametrize("beta", [1.0, 1.4142])
def test_tconv_clip_uses_dim1(beta):
    """ConvTranspose2d weights are (in, out, k, k): output channel is dim 1."""
    tr = _train_module()
    rng = np.random.default_rng(7)
    w = rng.standard_normal((6, 9, 5, 5)) * rng.uniform(0.01, 2.0, size=(1, 9, 1, 1))
    ref, ref_mask = wcft_clip(np.transpose(w, (1, 0, 2, 3)), beta)
    got, mask = tr.wcft_clip_torch(torch.from_numpy(w), beta, out_dim=1)
    np.testing.assert_array_equal(np.transpose(got.numpy(), (1, 0, 2, 3)), ref)
    np.testing.assert_array_equal(np.transpose(mask.numpy(), (1, 0, 2, 3)), ref_mask)


def test_clipped_weights_within_bound():
    tr = _train_module()
    w = torch.randn(4, 3, 3, 3, dtype=torch.float64)
    got, _ = tr.wcft_clip_torch(w, 1.0)
    b = tr.wcft_bound_torch(w, 1.0)
    assert torch.all(got.abs().reshape(4, -1).max(1).values <= b)
    # beta = 1 always clips the largest weight of each channel (bound < 2^floor(log2 max))
    assert torch.all(got.abs().reshape(4, -1).max(1).values < w.abs().reshape(4, -1).max(1).values)
