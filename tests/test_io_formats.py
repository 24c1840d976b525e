"""Float-weight importers: native safetensors / npz, CompressAI state dicts, ONNX.

Each importer is checked against a float forward computed here independently
(scipy correlate2d for Conv2d, explicit scatter loops for ConvTranspose2d, both
in PyTorch semantics on PyTorch-layout weights), and the importers must agree
with each other exactly: identical FloatModels and identical .fxq content
hashes after quantization with the same calibration images.
"""
import importlib.util
import json
import os

import numpy as np
import pytest
from scipy.signal import correlate2d

from fxlic.io.floatfile import (WeightsError, float_models_equal, load_compressai_state,
                                load_float_model, load_weights, read_safetensors, save_float_model,
                                write_safetensors)
from fxlic.io.modelfile import model_hash, read_model_file, save_model
from fxlic.model.arch import factorized, hyperprior5
from fxlic.model.build import build_int_model, calibrate
from fxlic.model.float_model import float_forward

# --------------------------------------------------------------------------
# independent oracle (PyTorch semantics, PyTorch layouts)
# --------------------------------------------------------------------------


def oracle_conv2d(x, w, b, stride):
    """torch.nn.Conv2d(padding=k//2): w is (out, in, k, k), cross-correlation."""
    O, C, k, _ = w.shape
    p = k // 2
    H, W = x.shape[1:]
    Ho, Wo = (H + 2 * p - k) // stride + 1, (W + 2 * p - k) // stride + 1
    xp = np.pad(x, ((0, 0), (p, p), (p, p)))
    out = np.empty((O, Ho, Wo))
    for o in range(O):
        acc = sum(correlate2d(xp[c], w[o, c], mode="valid") for c in range(C))
        out[o] = acc[::stride, ::stride][:Ho, :Wo] + b[o]
    return out


def oracle_tconv2d(x, w, b, stride=2, output_padding=1):
    """torch.nn.ConvTranspose2d(stride, padding=k//2, output_padding): w is
    (in, out, k, k); input pixel (iy, ix) adds w[:, :, ky, kx] at output
    (iy*stride - p + ky, ix*stride - p + kx)."""
    C, H, W = x.shape
    _, O, k, _ = w.shape
    p = k // 2
    Ho = (H - 1) * stride - 2 * p + k + output_padding
    Wo = (W - 1) * stride - 2 * p + k + output_padding
    out = np.zeros((O, Ho, Wo)) + b[:, None, None]
    for iy in range(H):
        for ix in range(W):
            v = x[:, iy, ix]
            for ky in range(k):
                oy = iy * stride - p + ky
                if not 0 <= oy < Ho:
                    continue
                for kx in range(k):
                    ox = ix * stride - p + kx
                    if 0 <= ox < Wo:
                        out[:, oy, ox] += v @ w[:, :, ky, kx]
    return out


def oracle_forward(arch, T, x):
    """Every layer's output from PyTorch-layout tensors T (float64)."""
    t = {"x": x}
    for l in arch.layers:
        w, b = T[f"{l.name}.weight"].astype(np.float64), T[f"{l.name}.bias"].astype(np.float64)
        if l.op == "conv":
            v = oracle_conv2d(t[l.src], w, b, l.stride)
        else:
            v = oracle_tconv2d(t[l.src], w, b)
        if l.act == "relu":
            v = np.maximum(v, 0)
        elif l.act == "leaky":
            v = np.where(v >= 0, v, v / 8)
        t[l.name] = v
        if l.out in ("y", "z"):
            t[l.out] = v  # h_a reads the continuous y (src "y")
            t[f"{l.out}_hat"] = np.floor(v + 0.5)
    return t


def torch_tensors(arch, seed=0, entropy=True):
    """Known random weights in PyTorch layouts (float32), + entropy bottleneck."""
    rng = np.random.default_rng(seed)
    T = {}
    for l in arch.layers:
        shape = (l.cout, l.cin, l.k, l.k) if l.op == "conv" else (l.cin, l.cout, l.k, l.k)
        fan = l.cin * l.k * l.k / (1 if l.op == "conv" else 4)
        T[f"{l.name}.weight"] = (rng.standard_normal(shape) / np.sqrt(fan)).astype(np.float32)
        T[f"{l.name}.bias"] = (rng.standard_normal(l.cout) * 0.05).astype(np.float32)
    if entropy:
        C = arch.N if arch.kind == "hyperprior" else arch.M
        f = (1, 3, 3, 3, 1)
        for i in range(4):
            T[f"entropy_bottleneck._matrices.{i}"] = rng.standard_normal((C, f[i + 1], f[i])).astype(np.float32)
            T[f"entropy_bottleneck._biases.{i}"] = rng.standard_normal((C, f[i + 1], 1)).astype(np.float32)
            if i < 3:
                T[f"entropy_bottleneck._factors.{i}"] = rng.standard_normal((C, f[i + 1], 1)).astype(np.float32)
        T["entropy_bottleneck.quantiles"] = np.tile(np.float32([-10, 0, 10]), (C, 1, 1))
    return T


CAI_PREFIX = {"AT": "g_a", "HA": "h_a", "HS": "h_s", "ST": "g_s"}


def compressai_keys(T, new_names=False):
    """Rename to a CompressAI state dict (Sequential slot 2i; entropy bottleneck
    as _matrix0 (CompressAI < 1.2) or matrices.0 (>= 1.2)), plus derived buffers
    the importer must drop."""
    out = {}
    for k, v in T.items():
        if k.startswith("entropy_bottleneck.") and new_names:
            out[k.replace("._", ".")] = v
            continue
        if k.startswith("entropy_bottleneck."):
            k = (k.replace("_matrices.", "_matrix").replace("_biases.", "_bias")
                 .replace("_factors.", "_factor"))
            out[k] = v
            continue
        name, kind = k.split(".")
        out[f"{CAI_PREFIX[name[:2]]}.{2 * int(name[2:])}.{kind}"] = v
    C = T["entropy_bottleneck.quantiles"].shape[0]
    out["entropy_bottleneck._quantized_cdf"] = np.zeros((C, 10), np.int32)
    out["entropy_bottleneck._offset"] = np.zeros(C, np.int32)
    out["entropy_bottleneck._cdf_length"] = np.zeros(C, np.int32)
    return out


def calib_images(n=2, size=64, seed=5):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (3, size, size), dtype=np.uint8) for _ in range(n)]


# --------------------------------------------------------------------------
# ONNX graph built with onnx.helper
# --------------------------------------------------------------------------

def make_onnx(arch, T, path, *, with_arch=True, alpha=0.125, output_padding=1, pads=None,
              extra=None, shuffle=False, drop_act=None, entropy=True, opset=17, chunk="split"):
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes, inits = [], []
    out_t = {"x": "x"}
    outputs = []
    for l in arch.layers:
        src = out_t[l.src]
        w, b = f"{l.name}.weight", f"{l.name}.bias"
        inits += [numpy_helper.from_array(T[w], w), numpy_helper.from_array(T[b], b)]
        p = l.k // 2 if pads is None else pads
        attrs = dict(kernel_shape=[l.k, l.k], strides=[l.stride, l.stride], pads=[p] * 4)
        if l.op == "tconv":
            attrs["output_padding"] = [output_padding] * 2
        pre = f"{l.name}_pre"
        nodes.append(helper.make_node("Conv" if l.op == "conv" else "ConvTranspose", [src, w, b],
                                      [pre], name=f"{l.name}_conv", **attrs))
        cur = pre
        if l.act != "none" and l.name != drop_act:
            op = "Relu" if l.act == "relu" else "LeakyRelu"
            kw = {"alpha": alpha} if op == "LeakyRelu" else {}
            nodes.append(helper.make_node(op, [pre], [f"{l.name}_act"], name=f"{l.name}_{op}", **kw))
            cur = f"{l.name}_act"
        out_t[l.name] = cur
        if l.out in ("y", "z"):
            nodes.append(helper.make_node("Round", [cur], [f"{l.out}_hat"], name=f"round_{l.out}"))
            out_t[f"{l.out}_hat"] = f"{l.out}_hat"
            out_t[l.out] = cur  # h_a reads the unrounded y
            outputs.append(cur)
        if l.out == "ms" and chunk == "split":
            nodes.append(helper.make_node("Split", [cur], ["scales", "means"], name="split_ms", axis=1))
            outputs += ["scales", "means"]
        elif l.out == "ms":  # chunk(2) as PyTorch exports it: split point from the shape
            def const(name, v):
                return helper.make_node("Constant", [], [name], name=f"const_{name}",
                                        value=numpy_helper.from_array(np.array(v, np.int64), name))
            nodes += [helper.make_node("Shape", [cur], ["ms_shape"], name="shape_ms"),
                      const("one", [1]), const("two", [2]), const("zero", [0]), const("big", [2 ** 62]),
                      helper.make_node("Gather", ["ms_shape", "one"], ["ms_ch"], name="gather_ch", axis=0),
                      helper.make_node("Div", ["ms_ch", "two"], ["half"], name="div_half"),
                      helper.make_node("Slice", [cur, "zero", "half", "one"], ["scales"], name="slice_s"),
                      helper.make_node("Slice", [cur, "half", "big", "one"], ["means"], name="slice_m")]
            outputs += ["scales", "means"]
        if l.out == "pixel":
            nodes.append(helper.make_node("Identity", [cur], ["x_hat"], name="out_id"))
            outputs.append("x_hat")
    if extra is not None:
        nodes.append(extra)
    if entropy:
        inits += [numpy_helper.from_array(v, k) for k, v in T.items() if k.startswith("entropy_")]
    if shuffle:
        nodes = nodes[::-1]
    graph = helper.make_graph(
        nodes, "fxlic-test", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, None, None])],
        [helper.make_tensor_value_info(o, TensorProto.FLOAT, [1, None, None, None]) for o in outputs], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    if with_arch:
        helper.set_model_props(model, {"fxlic.arch": arch.to_json(), "fxlic.lambda": "0.0130"})
    if not shuffle:
        onnx.checker.check_model(model)
    onnx.save(model, path)
    return path


# --------------------------------------------------------------------------
# tests
# --------------------------------------------------------------------------

def test_oracle_matches_torch():
    """The test's oracle itself, against PyTorch where available."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, 9, 7))
    w = rng.standard_normal((4, 3, 5, 5))
    b = rng.standard_normal(4)
    ref = torch.nn.functional.conv2d(torch.tensor(x[None]), torch.tensor(w), torch.tensor(b),
                                     stride=2, padding=2)[0].numpy()
    np.testing.assert_allclose(oracle_conv2d(x, w, b, 2), ref, atol=1e-12)
    wt = rng.standard_normal((3, 4, 5, 5))
    ref = torch.nn.functional.conv_transpose2d(torch.tensor(x[None]), torch.tensor(wt), torch.tensor(b),
                                               stride=2, padding=2, output_padding=1)[0].numpy()
    np.testing.assert_allclose(oracle_tconv2d(x, wt, b), ref, atol=1e-12)


@pytest.mark.parametrize("arch", [hyperprior5(8), factorized(8, 6)], ids=lambda a: a.name)
def test_native_import_matches_oracle(tmp_path, arch):
    st = pytest.importorskip("safetensors.numpy")
    T = torch_tensors(arch)
    p = str(tmp_path / "w.safetensors")
    st.save_file(T, p, metadata={"fxlic.arch": arch.to_json(), "fxlic.lambda": "0.013",
                                 "fxlic.provenance": json.dumps({"steps": 5})})
    fm = load_float_model(p)
    assert fm.arch == arch
    assert fm.meta["lambda"] == 0.013 and fm.meta["provenance"] == {"steps": 5}
    assert fm.meta["format"] == "native" and len(fm.meta["sha256"]) == 64
    assert set(fm.entropy) == {k for k in T if k.startswith("entropy_")}
    assert all(v.dtype == np.float64 for v in fm.entropy.values())
    x = np.random.default_rng(2).random((3, 64, 64))
    ours = float_forward(fm, x)
    ref = oracle_forward(arch, T, x)
    for l in arch.layers:
        assert ours[l.name].shape == ref[l.name].shape, l.name
        assert np.max(np.abs(ours[l.name] - ref[l.name])) < 1e-9, l.name


def test_all_formats_agree(tmp_path):
    """npz, safetensors, CompressAI state and ONNX give identical FloatModels
    and identical .fxq content hashes."""
    st = pytest.importorskip("safetensors.numpy")
    arch = hyperprior5(8)
    T = torch_tensors(arch, seed=3)
    meta = {"fxlic.arch": arch.to_json()}
    st.save_file(T, str(tmp_path / "a.safetensors"), metadata=meta)
    np.savez(tmp_path / "a.npz", __arch__=np.frombuffer(arch.to_json().encode(), np.uint8), **T)
    st.save_file(compressai_keys(T), str(tmp_path / "cai.safetensors"))
    np.savez(tmp_path / "cai.npz", **compressai_keys(T, new_names=True))
    models = {
        "safetensors": load_weights(str(tmp_path / "a.safetensors")),
        "npz": load_weights(str(tmp_path / "a.npz")),
        "compressai": load_weights(str(tmp_path / "cai.safetensors")),
        "compressai-npz": load_compressai_state(str(tmp_path / "cai.npz"), arch_kind="hyperprior5"),
    }
    assert models["compressai"].meta["format"] == "compressai"
    if importlib.util.find_spec("onnx") is not None:  # optional extra
        models["onnx"] = load_weights(make_onnx(arch, T, str(tmp_path / "a.onnx")))
        models["onnx-inferred"] = load_weights(make_onnx(arch, T, str(tmp_path / "b.onnx"),
                                                         with_arch=False))
    base = models["safetensors"]
    for name, fm in models.items():
        assert float_models_equal(base, fm), name
    imgs = calib_images()
    hashes = {}
    for name, fm in models.items():
        im = build_int_model(fm, calibrate(fm, imgs))
        h = save_model(im, str(tmp_path / f"{name}.fxq"))
        assert read_model_file(str(tmp_path / f"{name}.fxq"))[1]["content_hash"] == h
        hashes[name] = model_hash(im)
    assert len(set(hashes.values())) == 1, hashes


def test_native_writer_roundtrip_and_fp16(tmp_path):
    arch = factorized(8)
    T = torch_tensors(arch, seed=4)
    fm = load_float_model_from(T, arch, tmp_path)
    for ext in ("safetensors", "npz"):
        p = str(tmp_path / f"re.{ext}")
        save_float_model(fm, p)
        assert float_models_equal(load_float_model(p), fm)
    # fp16 tensors are accepted and converted to float64 exactly
    half = {k: v.astype(np.float16) for k, v in T.items()}
    p = str(tmp_path / "h.safetensors")
    write_safetensors(p, half, {"fxlic.arch": arch.to_json()})
    fh = load_float_model(p)
    assert fh.weights["AT0"].dtype == np.float64
    assert np.array_equal(fh.weights["AT0"], half["AT0.weight"].astype(np.float64))
    assert np.array_equal(fh.weights["ST1"], half["ST1.weight"].astype(np.float64).transpose(1, 0, 2, 3))


def load_float_model_from(T, arch, tmp_path):
    p = str(tmp_path / "src.safetensors")
    write_safetensors(p, T, {"fxlic.arch": arch.to_json()})
    return load_float_model(p)


def test_safetensors_package_reads_our_writer(tmp_path):
    st = pytest.importorskip("safetensors.numpy")
    arch = factorized(8)
    fm = load_float_model_from(torch_tensors(arch), arch, tmp_path)
    p = str(tmp_path / "o.safetensors")
    save_float_model(fm, p, lam=0.5)
    back = st.load_file(p)
    assert np.array_equal(back["ST0.weight"], fm.weights["ST0"].transpose(1, 0, 2, 3).astype(np.float32))
    t, meta = read_safetensors(p)
    assert meta["fxlic.lambda"] == "0.5" and json.loads(meta["fxlic.arch"])["name"] == arch.name


def test_sidecar_architecture(tmp_path):
    arch = factorized(8)
    T = torch_tensors(arch)
    np.savez(tmp_path / "w.npz", **T)
    with pytest.raises(WeightsError, match="no architecture"):
        load_float_model(str(tmp_path / "w.npz"))
    (tmp_path / "w.npz.arch.json").write_text(arch.to_json())
    assert load_float_model(str(tmp_path / "w.npz")).arch == arch


def test_native_errors(tmp_path):
    arch = factorized(8)
    T = torch_tensors(arch)
    meta = {"fxlic.arch": arch.to_json()}

    def write(d, name="w.safetensors", m=meta):
        p = str(tmp_path / name)
        write_safetensors(p, d, m)
        return p

    bad = dict(T)
    bad["ST0.weight"] = np.zeros((8, 6, 5, 5), np.float32)
    with pytest.raises(WeightsError, match=r"ST0\.weight has shape"):
        load_float_model(write(bad))
    bad = dict(T)
    del bad["AT2.bias"]
    with pytest.raises(WeightsError, match=r"AT2\.bias"):
        load_float_model(write(bad))
    bad = dict(T, extra=np.zeros(3, np.float32))
    with pytest.raises(WeightsError, match="unknown tensor"):
        load_float_model(write(bad))
    bad = dict(T)
    bad["AT1.weight"] = T["AT1.weight"].copy()
    bad["AT1.weight"][0, 0, 0, 0] = np.nan
    with pytest.raises(WeightsError, match="NaN"):
        load_float_model(write(bad))
    bad = dict(T)
    bad["entropy_bottleneck.quantiles"] = np.zeros((5, 1, 3), np.float32)
    with pytest.raises(WeightsError, match="quantiles"):
        load_float_model(write(bad))
    with pytest.raises(WeightsError, match="architecture"):
        load_float_model(write(T, m={"fxlic.arch": "{\"name\": 1"}))
    # truncated safetensors
    p = write(T)
    data = open(p, "rb").read()
    for cut in (3, 40, len(data) // 2, len(data) - 1):
        open(p, "wb").write(data[:cut])
        with pytest.raises(WeightsError):
            load_float_model(p)
    with pytest.raises(WeightsError, match="no such file"):
        load_float_model(str(tmp_path / "missing.safetensors"))
    with pytest.raises(WeightsError, match="directory"):
        load_float_model(str(tmp_path))


def test_npz_pickle_refused(tmp_path):
    p = tmp_path / "evil.npz"
    np.savez(p, obj=np.array([{"a": 1}], dtype=object))
    with pytest.raises(WeightsError, match="pickle"):
        load_float_model(str(p))
    (tmp_path / "junk.npz").write_bytes(b"PK\x03\x04garbage")
    with pytest.raises(WeightsError):
        load_float_model(str(tmp_path / "junk.npz"))
    (tmp_path / "text.npz").write_bytes(b"random text, not a zip")
    with pytest.raises(WeightsError, match="not a zip"):
        load_float_model(str(tmp_path / "text.npz"))
    np.save(tmp_path / "one.npy", np.zeros(3))
    os.replace(tmp_path / "one.npy", tmp_path / "one.npz")
    with pytest.raises(WeightsError, match="single .npy"):
        load_float_model(str(tmp_path / "one.npz"))


def test_compressai_infers_architecture(tmp_path):
    arch = hyperprior5(8, 12)
    T = torch_tensors(arch)
    np.savez(tmp_path / "s.npz", **compressai_keys(T))
    fm = load_compressai_state(str(tmp_path / "s.npz"))
    assert fm.arch == arch and fm.meta["format"] == "compressai"
    assert np.array_equal(fm.weights["HS3"], T["HS3.weight"].astype(np.float64))
    assert np.array_equal(fm.weights["HS1"], T["HS1.weight"].astype(np.float64).transpose(1, 0, 2, 3))
    assert np.array_equal(fm.entropy["entropy_bottleneck._matrices.2"],
                          T["entropy_bottleneck._matrices.2"].astype(np.float64))
    # factorized: no h_a keys
    farch = factorized(8)
    np.savez(tmp_path / "f.npz", **compressai_keys(torch_tensors(farch)))
    assert load_weights(str(tmp_path / "f.npz")).arch == farch


def test_compressai_mapping_and_errors(tmp_path):
    arch = factorized(8)
    T = torch_tensors(arch, entropy=False)
    # a trainer with its own module names
    custom = {}
    mapping = {}
    for l in arch.layers:
        pre = f"{'enc' if l.name[0] == 'A' else 'dec'}.conv{l.name[2]}"
        mapping[pre] = l.name
        custom[f"{pre}.weight"] = T[f"{l.name}.weight"]
        custom[f"{pre}.bias"] = T[f"{l.name}.bias"]
    custom["aux.scale"] = np.ones(3, np.float32)
    mapping["aux"] = None
    p = str(tmp_path / "c.safetensors")
    write_safetensors(p, custom, {"fxlic.arch": arch.to_json()})
    mp = tmp_path / "map.json"
    mp.write_text(json.dumps(mapping))
    fm = load_compressai_state(p, mapping=str(mp))
    ref = load_float_model_from(T, arch, tmp_path)
    assert float_models_equal(fm, ref)
    with pytest.raises(WeightsError, match="unmapped tensor"):
        load_compressai_state(p)
    del mapping["enc.conv2"]
    with pytest.raises(WeightsError, match="AT2"):
        load_compressai_state(p, mapping=mapping)
    # GDN parameters are refused with a clear message
    cai = compressai_keys(torch_tensors(arch))
    cai["g_a.1.beta"] = np.ones(8, np.float32)
    np.savez(tmp_path / "gdn.npz", **cai)
    with pytest.raises(WeightsError, match="GDN"):
        load_weights(str(tmp_path / "gdn.npz"))
    # native names given to the compressai loader / compressai names to the native loader
    np.savez(tmp_path / "cai.npz", **compressai_keys(torch_tensors(arch)))
    with pytest.raises(WeightsError, match="compressai"):
        load_weights(str(tmp_path / "cai.npz"), fmt="native")


# ---- ONNX ----------------------------------------------------------------

def test_onnx_import_matches_oracle(tmp_path):
    pytest.importorskip("onnx")
    arch = factorized(8)
    T = torch_tensors(arch, seed=7)
    fm = load_weights(make_onnx(arch, T, str(tmp_path / "f.onnx"), shuffle=True))
    assert fm.meta["format"] == "onnx" and fm.meta["lambda"] == 0.013
    x = np.random.default_rng(8).random((3, 32, 48))
    ours, ref = float_forward(fm, x), oracle_forward(arch, T, x)
    for l in arch.layers:
        assert np.max(np.abs(ours[l.name] - ref[l.name])) < 1e-9, l.name


def test_onnx_chunk_by_slices(tmp_path):
    """Scales/means separated by Slice nodes whose bounds come from shape arithmetic."""
    pytest.importorskip("onnx")
    arch = hyperprior5(8)
    T = torch_tensors(arch, seed=11)
    fm = load_weights(make_onnx(arch, T, str(tmp_path / "s.onnx"), chunk="slice", with_arch=False))
    x = np.random.default_rng(12).random((3, 64, 64))
    ours, ref = float_forward(fm, x), oracle_forward(arch, T, x)
    for l in arch.layers:
        assert np.max(np.abs(ours[l.name] - ref[l.name])) < 1e-9, l.name


def test_onnx_refusals(tmp_path):
    onnx = pytest.importorskip("onnx")
    from onnx import helper
    arch = hyperprior5(8)
    T = torch_tensors(arch)

    def refused(match, **kw):
        p = make_onnx(arch, T, str(tmp_path / "bad.onnx"), **kw)
        with pytest.raises(WeightsError, match=match):
            load_weights(p)

    refused(r"unsupported ONNX op 'Sigmoid' \(node 'gate'\)",
            extra=helper.make_node("Sigmoid", ["ST3_pre"], ["g"], name="gate"))
    refused(r"unsupported ONNX op 'Add' \(node 'bias_add'\)",
            extra=helper.make_node("Add", ["AT0_act", "AT0.bias"], ["odd"], name="bias_add"))
    refused(r"alpha", alpha=0.01)
    refused(r"output_padding", output_padding=0)
    refused(r"pads", pads=1)
    refused(r"layer AT1 .* no activation", drop_act="AT1")
    (tmp_path / "junk.onnx").write_bytes(b"\x00not a protobuf" * 7)
    with pytest.raises(WeightsError):
        load_weights(str(tmp_path / "junk.onnx"))
    assert onnx is not None


def test_damaged_weight_files_give_weights_error(tmp_path):
    """Byte flips and truncation: WeightsError or a model, never another exception."""
    arch = factorized(8)
    T = torch_tensors(arch)
    write_safetensors(str(tmp_path / "f.safetensors"), T, {"fxlic.arch": arch.to_json()})
    np.savez_compressed(tmp_path / "f.npz", __arch__=np.frombuffer(arch.to_json().encode(), np.uint8), **T)
    paths = [tmp_path / "f.safetensors", tmp_path / "f.npz"]
    if importlib.util.find_spec("onnx") is not None:
        paths.append(tmp_path / "f.onnx")
        make_onnx(arch, T, str(paths[-1]))
    for p in paths:
        data = p.read_bytes()
        q = str(tmp_path / f"z{p.suffix}")
        for i, off in enumerate(np.linspace(0, len(data) - 1, 80).astype(int)):
            d = bytearray(data)
            d[off] ^= (0xFF, 0x01, 0x80)[i % 3]
            open(q, "wb").write(bytes(d))
            try:
                load_weights(q)
            except WeightsError:
                pass
        for cut in np.linspace(0, len(data) - 1, 30).astype(int):
            open(q, "wb").write(data[:cut])
            with pytest.raises(WeightsError):
                load_weights(q)
