"""The model file: round trip, size, and rejection of every kind of malformed file."""
import io
import json
import zipfile

import numpy as np
import pytest

from golden import ModelFileError, load_model, random_model, save_model
from golden.modelfile import model_from_bytes, model_to_bytes
from golden.params import LayerParams, NetworkParams, ReadoutParams, default_network


def same(a, b):
    assert a.network == b.network and a.frontend == b.frontend and a.labels == b.labels and a.meta == b.meta
    for (na, wa), (nb, wb) in zip(a.matrices().items(), b.matrices().items()):
        assert na == nb and np.array_equal(wa, wb), na


@pytest.mark.parametrize("density", [1.0, 0.3, 0.0])
@pytest.mark.parametrize("weight_bits", [4, 2, 8])
def test_round_trip(tmp_path, density, weight_bits):
    net = NetworkParams(n_features=5, weight_bits=weight_bits, time_steps=2, readout=ReadoutParams(size=3),
                        layers=(LayerParams(size=7), LayerParams(size=3)))  # odd sizes: odd nibble counts
    m = random_model(net, seed=4, density=density, labels=("yes", "no", "maybe"))
    m.meta.update({"command": "test", "seed": 4})
    n = save_model(m, tmp_path / "m.npz")
    assert n == (tmp_path / "m.npz").stat().st_size
    same(m, load_model(tmp_path / "m.npz"))


def test_size_of_a_full_size_4bit_model():
    dense = len(model_to_bytes(random_model(default_network(), seed=0)))
    pruned = len(model_to_bytes(random_model(default_network(), seed=0, density=0.3)))
    n_weights = 32 * 128 + 128 * 128 * 3 + 128 * 10
    assert dense < n_weights * 0.5 + n_weights / 8 + 2048   # nibbles + bitmap + header
    assert pruned < 0.6 * dense
    assert dense < 100_000


@pytest.fixture
def good():
    return model_to_bytes(random_model(NetworkParams(n_features=4, readout=ReadoutParams(size=2),
                                                     layers=(LayerParams(size=3), LayerParams(size=2))), seed=1))


def rewrite(data, edit):
    z = np.load(io.BytesIO(data))
    arrays = {k: z[k] for k in z.files}
    edit(arrays)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def header_edit(fn):
    def edit(arrays):
        h = json.loads(arrays["header"].tobytes())
        fn(h)
        arrays["header"] = np.frombuffer(json.dumps(h).encode(), dtype=np.uint8)
    return edit


def _set_nz_zero(a):
    a["l0.w_in.nzval"] = np.zeros_like(a["l0.w_in.nzval"])


@pytest.mark.parametrize("edit,match", [
    (lambda a: a.pop("header"), "no 'header'"),
    (lambda a: a.__setitem__("header", np.frombuffer(b"{not json", dtype=np.uint8)), "not UTF-8 JSON"),
    (header_edit(lambda h: h.__setitem__("format", "onnx")), "header.format"),
    (header_edit(lambda h: h.__setitem__("version", 99)), "version 99 is not supported"),
    (header_edit(lambda h: h.pop("labels")), "lacks"),
    (header_edit(lambda h: h["network"]["layers"][0].__setitem__("threshold", -5)), r"layers\[0\]\.threshold.*-5"),
    (header_edit(lambda h: h["network"].__setitem__("time_steps", 7)), "time_steps"),
    (header_edit(lambda h: h.__setitem__("labels", ["a"])), "labels"),
    (header_edit(lambda h: h["frontend"].__setitem__("n_mels", 5)), "n_mels"),
    (lambda a: a.pop("out.w.nzval"), r"missing \['out.w.nzval'\]"),
    (lambda a: a.__setitem__("bonus", np.zeros(3, dtype=np.uint8)), r"unexpected \['bonus'\]"),
    (lambda a: a.__setitem__("l0.w_in.nzmask", a["l0.w_in.nzmask"][:-1]), "nzmask has"),
    (lambda a: a.__setitem__("l0.w_in.nzval", a["l0.w_in.nzval"][:-1]), "nzval has"),
    (lambda a: a.__setitem__("l0.w_in.nzval", a["l0.w_in.nzval"].astype(np.int16)), "1-D uint8"),
    (_set_nz_zero, "stores a zero"),
])
def test_malformed_files_are_rejected(good, edit, match):
    with pytest.raises(ModelFileError, match=match):
        model_from_bytes(rewrite(good, edit), "bad.npz")


def test_not_a_model_file(tmp_path, good):
    with pytest.raises(ModelFileError, match="does not exist"):
        load_model(tmp_path / "nope.npz")
    (tmp_path / "noise.npz").write_bytes(b"RIFF....WAVEfmt garbage" * 10)
    with pytest.raises(ModelFileError, match="not a readable .npz"):
        load_model(tmp_path / "noise.npz")
    buf = io.BytesIO()
    np.save(buf, np.zeros(3))
    with pytest.raises(ModelFileError, match="single array"):
        model_from_bytes(buf.getvalue())
    with pytest.raises(ModelFileError):
        model_from_bytes(good[: len(good) // 2])
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("header.npy", b"not an npy")
    with pytest.raises(ModelFileError):
        model_from_bytes(buf.getvalue())
