"""The .fxq model file: round trip, determinism, and refusal of every kind of
damage (byte flips, truncation, wrong versions, missing/extra/mistyped arrays,
models whose accumulator could overflow int32)."""
import io
import json
import zipfile

import numpy as np
import pytest

from fxlic.io.modelfile import (FORMAT_VERSION, ModelFileError, describe_model_file, load_model,
                                memory_counts, model_hash, read_model_file, save_model)
from fxlic.model.arch import factorized, hyperprior5
from fxlic.model.build import build_int_model, calibrate
from fxlic.model.float_model import random_float_model
from fxlic.model.intmodel import accumulator_bound


def _model(arch=None, seed=0):
    arch = arch or hyperprior5(8)
    fm = random_float_model(arch, seed)
    rng = np.random.default_rng(seed + 1)
    imgs = [rng.integers(0, 256, (3, 64, 64), dtype=np.uint8) for _ in range(2)]
    im = build_int_model(fm, calibrate(fm, imgs))
    im.meta["float_model"] = {"sha256": "ab" * 32, "lambda": 0.0130}
    im.meta["calibration"] = {"images": ["a.png", "b.png"]}
    return im


@pytest.fixture(scope="module")
def model():
    im = _model()
    im.entropy.update({"z/cdf": np.arange(-5, 19, dtype=np.int32).reshape(2, 12),
                       "z/offset": np.array([-3, 4], np.int64),
                       "y_scale_table": np.arange(7, dtype=np.uint16),
                       "empty": np.zeros((0, 3), np.uint8)})
    return im


def _arrays_equal(a, b):
    assert a.arch == b.arch
    for n in a.arch.names:
        for f in ("w_codes", "w_lut", "w_exp", "bias", "in_exp", "out_exp", "mux"):
            x, y = getattr(a.layers[n], f), getattr(b.layers[n], f)
            assert x.dtype == y.dtype and np.array_equal(x, y), (n, f)
    assert np.array_equal(a.mr_mask, b.mr_mask) and b.mr_mask.dtype == bool
    assert np.array_equal(a.mr_a_q, b.mr_a_q) and np.array_equal(a.mr_b_q, b.mr_b_q)
    assert set(a.entropy) == set(b.entropy)
    for k in a.entropy:
        assert a.entropy[k].dtype == b.entropy[k].dtype and np.array_equal(a.entropy[k], b.entropy[k])


def test_round_trip_identity(tmp_path, model):
    p = str(tmp_path / "m.fxq")
    h = save_model(model, p)
    assert h == model_hash(model)
    back = load_model(p)
    _arrays_equal(model, back)
    assert model_hash(back) == h
    assert back.meta == json.loads(json.dumps(model.meta))
    # deterministic bytes; saving the loaded model gives the same file
    p2 = str(tmp_path / "m2.fxq")
    save_model(back, p2)
    assert open(p, "rb").read() == open(p2, "rb").read()
    # the loaded model runs and gives the same integers
    from fxlic.model.int_forward import encode, synthesize
    img = np.random.default_rng(9).integers(0, 256, (3, 64, 64), dtype=np.uint8)
    e1, e2 = encode(model, img, "reference"), encode(back, img, "reference")
    assert np.array_equal(e1.y, e2.y) and np.array_equal(e1.z, e2.z) and np.array_equal(e1.ms, e2.ms)
    assert np.array_equal(synthesize(model, e1.y, e1.mu, "reference"),
                          synthesize(back, e2.y, e2.mu, "reference"))
    # no temporary files left behind
    assert sorted(x.name for x in tmp_path.iterdir()) == ["m.fxq", "m2.fxq"]


def test_hash_depends_on_every_array(model):
    h = model_hash(model)
    L = model.layers["HS2"]
    old = L.bias[0]
    L.bias[0] += 1
    try:
        assert model_hash(model) != h
    finally:
        L.bias[0] = old
    ent = model.entropy["z/offset"]
    ent[0] += 1
    try:
        assert model_hash(model) != h
    finally:
        ent[0] -= 1
    assert model_hash(model) == h


def test_factorized_and_mean_reduction_round_trip(tmp_path):
    im = _model(factorized(8), seed=3)
    im.mr_mask[[1, 5]] = True
    im.mr_a_q[[1, 5]] = [70000, -123456]
    im.mr_b_q[[1, 5]] = [-5, 1 << 20]
    p = str(tmp_path / "f.fxq")
    save_model(im, p)
    back = load_model(p)
    _arrays_equal(im, back)


def test_byte_flips_and_truncation(tmp_path, model):
    p = str(tmp_path / "m.fxq")
    h = save_model(model, p)
    data = open(p, "rb").read()
    n = len(data)
    offsets = set(np.linspace(0, n - 1, 200).astype(int).tolist())
    # the central directory and end record sit in the last few KB: probe them densely
    offsets |= set(np.linspace(max(0, n - 9000), n - 1, 100).astype(int).tolist())
    q = str(tmp_path / "c.fxq")
    loaded = 0
    for i, off in enumerate(sorted(offsets)):
        d = bytearray(data)
        d[off] ^= (0xFF, 0x01, 0x80)[i % 3]
        open(q, "wb").write(bytes(d))
        try:
            im = load_model(q)
        except ModelFileError as e:
            assert str(e).startswith(q)
            continue
        loaded += 1
        assert model_hash(im) == h, f"flip at {off} gave a different model"
    assert loaded < len(offsets)  # most flips must be detected
    for cut in np.linspace(0, n - 1, 100).astype(int):
        open(q, "wb").write(data[:cut])
        with pytest.raises(ModelFileError):
            load_model(q)


# ---- crafted files -------------------------------------------------------

def _rewrite(src, dst, header_fn=None, members_fn=None):
    with zipfile.ZipFile(src) as z:
        members = {n: z.read(n) for n in z.namelist()}
    header = json.loads(members["header.json"])
    if header_fn:
        header_fn(header)
    members["header.json"] = json.dumps(header).encode()
    if members_fn:
        members_fn(members)
    with zipfile.ZipFile(dst, "w") as z:
        for n, d in members.items():
            z.writestr(n, d)
    return dst


def _npy(a):
    b = io.BytesIO()
    np.save(b, a)
    return b.getvalue()


def _raw_npy(descr, shape, data=b""):
    h = "{'descr': '%s', 'fortran_order': False, 'shape': %r, }" % (descr, tuple(shape))
    h += " " * (-(len(h) + 11) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + len(h).to_bytes(2, "little") + h.encode() + data


@pytest.fixture
def saved(tmp_path, model):
    p = str(tmp_path / "m.fxq")
    save_model(model, p)
    return p


def test_wrong_versions_and_magic(tmp_path, saved):
    def refused(match, **kw):
        q = _rewrite(saved, str(tmp_path / "x.fxq"), **kw)
        with pytest.raises(ModelFileError, match=match):
            load_model(q)

    refused("format version 2 is not supported", header_fn=lambda h: h.update(format_version=2))
    refused("format_version missing", header_fn=lambda h: h.pop("format_version"))
    refused("wrong magic", header_fn=lambda h: h.update(magic="something-else"))
    refused("spec", header_fn=lambda h: h.update(spec_version="fxlic-spec-0.9"))
    refused("not valid JSON", members_fn=lambda m: m.update({"header.json": b"{not json"}))
    refused("content hash mismatch", header_fn=lambda h: h.update(content_hash="sha256:" + "0" * 64))
    assert FORMAT_VERSION == 1


def test_missing_extra_and_mistyped_arrays(tmp_path, saved, model):
    def refused(match, **kw):
        q = _rewrite(saved, str(tmp_path / "x.fxq"), **kw)
        with pytest.raises(ModelFileError, match=match):
            load_model(q)

    refused(r"array layers/HA1/bias missing",
            members_fn=lambda m: m.pop("layers/HA1/bias.npy"))
    refused(r"array layers/HA1/bias missing",
            header_fn=lambda h: h["arrays"].pop("layers/HA1/bias"),
            members_fn=lambda m: m.pop("layers/HA1/bias.npy"))
    refused(r"unexpected member", members_fn=lambda m: m.update({"notes.txt": b"hi"}))

    def extra_layer(h):
        h["arrays"]["layers/XX9/bias"] = {"dtype": "<i8", "shape": [8]}
    refused(r"layers/XX9/bias belongs to no layer", header_fn=extra_layer,
            members_fn=lambda m: m.update({"layers/XX9/bias.npy": _npy(np.zeros(8, np.int64))}))

    codes = model.layers["AT1"].w_codes
    refused(r"AT1/w_codes: dtype <i2, expected \|i1",
            members_fn=lambda m: m.update({"layers/AT1/w_codes.npy": _npy(codes.astype(np.int16))}))
    refused(r"AT1/w_codes: shape",
            members_fn=lambda m: m.update({"layers/AT1/w_codes.npy": _npy(codes[:, :4].copy())}))
    refused(r"header says",
            header_fn=lambda h: h["arrays"]["layers/AT1/w_codes"].update(dtype="<i8"))
    refused(r"dtype",
            members_fn=lambda m: m.update({"layers/ST0/mux.npy": _npy(np.zeros(8, np.float64))}))
    refused(r"dtype \|O", members_fn=lambda m: m.update({"layers/ST0/mux.npy": _raw_npy("|O", (8,))}))
    refused(r"entropy table .*dtype", header_fn=lambda h: h["arrays"]["entropy/z/offset"].update(dtype="<f8"))
    refused(r"mean-reduction mask", members_fn=lambda m: m.update(
        {"mean_reduction/mask.npy": _npy(np.full(8, 2, np.uint8))}))


def _tampered(tmp_path, model, fn):
    """A model edited in memory and saved with a consistent hash: only the
    semantic checks can refuse it."""
    im = _model()
    fn(im)
    p = str(tmp_path / "t.fxq")
    save_model(im, p)
    return p


def test_accumulator_bound_refused(tmp_path, model):
    def huge_bias(im):
        im.layers["HS2"].bias[3] = (1 << 31) - 16
    with pytest.raises(ModelFileError, match=r"HS2: worst-case accumulator .* > 2\^31-1"):
        load_model(_tampered(tmp_path, model, huge_bias))

    def max_codes(im):
        L = im.layers["ST1"]
        L.w_codes[...] = 127
        L.bias[:] = (1 << 31) - (1 << 24)
        assert accumulator_bound(im, "ST1").max() > (1 << 31) - 1
    with pytest.raises(ModelFileError, match="ST1"):
        load_model(_tampered(tmp_path, model, max_codes))


def test_semantic_checks(tmp_path, model):
    def bad_mux(im):
        im.layers["AT0"].mux[0] = 5
    with pytest.raises(ModelFileError, match="AT0: mux"):
        load_model(_tampered(tmp_path, model, bad_mux))

    def bad_exp(im):
        im.layers["AT2"].in_exp[0] += 1
    with pytest.raises(ModelFileError, match="AT2: input exponents"):
        load_model(_tampered(tmp_path, model, bad_exp))

    def bad_mr(im):
        im.mr_a_q[2] = 7  # coefficient on a channel that is not mean-reduced
    with pytest.raises(ModelFileError, match="mean-reduction a_q"):
        load_model(_tampered(tmp_path, model, bad_mr))


def test_not_a_model(tmp_path):
    with pytest.raises(ModelFileError, match="no such file"):
        load_model(str(tmp_path / "nope.fxq"))
    with pytest.raises(ModelFileError, match="directory"):
        load_model(str(tmp_path))
    (tmp_path / "e.fxq").write_bytes(b"")
    with pytest.raises(ModelFileError, match="not a zip"):
        load_model(str(tmp_path / "e.fxq"))
    with zipfile.ZipFile(tmp_path / "z.fxq", "w") as z:
        z.writestr("readme", "x")
    with pytest.raises(ModelFileError, match="no header.json"):
        load_model(str(tmp_path / "z.fxq"))


def test_entropy_names_checked_on_save(tmp_path):
    im = _model(factorized(8))
    im.entropy = {"../evil": np.zeros(2, np.int32)}
    with pytest.raises(ModelFileError, match="not allowed"):
        save_model(im, str(tmp_path / "x.fxq"))
    im.entropy = {"p": np.zeros(2, np.float32)}
    with pytest.raises(ModelFileError, match="integer"):
        save_model(im, str(tmp_path / "x.fxq"))
    assert not list(tmp_path.iterdir())


def test_describe(tmp_path, saved, model):
    text = describe_model_file(saved)
    _, header = read_model_file(saved)
    assert header["content_hash"] in text
    for name in model.arch.names:
        assert f"\n{name} " in text
    assert "Table IX" in text and "encoder" in text and "decoder" in text
    assert "a.png, b.png" in text


def test_table_ix_counts():
    """Counts of the paper's Table IX for N = M = 128 at 768 x 512."""
    m = memory_counts(hyperprior5(128))
    assert m["encoder"]["weights"] == 3_941_760 and m["encoder"]["weight_sf"] == 2816
    assert m["decoder"]["weights"] == 2_975_104 and m["decoder"]["weight_sf"] == 2307
    assert m["encoder"]["activations"] == 19_771_392
    assert m["decoder"]["activations"] == 20_496_384
    assert m["decoder"]["activations_without_hs_tconv"] == 20_250_624
