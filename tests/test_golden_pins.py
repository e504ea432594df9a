"""Pins of golden's specification that the other tests left loose (found by mutation testing, ``make mutate``):
signed potentials, accumulator bounds of every layer, range checks on arrays with one bad element, the
parameter ranges and defaults (which are part of the model file format), nested validation, the model file's
format name and version, and the mel filterbank's known values."""
import dataclasses
import io
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest

from golden.arith import IntFormat
from golden.events import EventFormat, frame_events
from golden.frontend import mel_filterbank
from golden.model import LayerWeights, Model, random_model
from golden.modelfile import FORMAT, VERSION, ModelFileError, load_model, model_from_bytes, model_to_bytes
from golden.network import InputError, run
from golden.params import (FrontEndParams, HardwareParams, LayerParams, NetworkParams, ParamError, ReadoutParams,
                           ResetMode, default_network)
from golden.reference import run_reference

ROOT = Path(__file__).resolve().parents[1]


# ----------------------------------------------------------------------------------------------------------------
# signed potentials: a negative potential changes what happens next


def two_input_model(threshold=10, state_bits=8, readout_bits=8):
    """2 features -> 1 neuron (w_in = [-5, +5], no leak) -> readout: each spike adds -3 to class 0, +1 to class 1."""
    net = NetworkParams(n_features=2, feature_bits=4, weight_bits=8,
                        layers=(LayerParams(size=1, state_bits=state_bits, threshold=threshold, leak_shift=0),),
                        readout=ReadoutParams(size=2, state_bits=readout_bits))
    return Model(net, [LayerWeights(np.array([[-5], [5]]), np.array([[0]]))], np.array([[-3, 1]]), ("a", "b"),
                 FrontEndParams(n_mels=2)).validate()


@pytest.mark.parametrize("runner", ["golden", "reference"])
def test_negative_potential_delays_the_spike(runner):
    m = two_input_model()
    x = np.array([[2, 0],     # v = -10 (signed: it stays negative)
                  [0, 3],     # v = -10 + 15 = 5: below the threshold 10 (an unsigned potential would be 0 + 15: fire)
                  [0, 3]])    # v = 20: fires, subtract -> 10
    if runner == "golden":
        tr = run(m, x)
        spikes, readout = tr.spikes[0][:, 0, 0].tolist(), tr.readout.tolist()
    else:
        ref = run_reference(m, x)
        spikes, readout = [s[0][0] for s in ref["spikes"][0]], ref["readout"]
    assert spikes == [0, 0, 1]
    # the readout goes negative (class 0, weight -3) and a tie at 0 is broken the other way
    assert readout == [[0, 0], [0, 0], [-3, 1]]


@pytest.mark.parametrize("runner", ["golden", "reference"])
def test_negative_saturation_is_at_minus_two_to_the_bits_minus_one(runner):
    m = two_input_model(threshold=100, state_bits=8)
    x = np.array([[15, 0]] * 3 + [[0, 15]] * 3)   # -75 -150 (-> -128) -128, then -53, 22, 97
    if runner == "golden":
        spikes = run(m, x).spikes[0][:, 0, 0].tolist()
    else:
        spikes = [s[0][0] for s in run_reference(m, x)["spikes"][0]]
    assert spikes == [0, 0, 0, 0, 0, 0]
    x = np.array([[15, 0]] * 3 + [[0, 15]] * 4)   # ... 97 + 75 = 172 -> 127: fires
    if runner == "golden":
        assert run(m, x).spikes[0][:, 0, 0].tolist() == [0] * 6 + [1]
    else:
        assert [s[0][0] for s in run_reference(m, x)["spikes"][0]] == [0] * 6 + [1]


def test_readout_potential_saturates_both_ways():
    net = NetworkParams(n_features=1, feature_bits=4, weight_bits=8,
                        layers=(LayerParams(size=1, threshold=1, leak_shift=0),),
                        readout=ReadoutParams(size=2, state_bits=4))
    m = Model(net, [LayerWeights(np.array([[1]]), np.array([[0]]))], np.array([[-3, 5]]), ("a", "b"),
              FrontEndParams(n_mels=1)).validate()
    tr = run(m, np.full((4, 1), 1))
    # one spike per frame: class 0 -3, -6, -8 (s4 min), -8; class 1 5, 7 (s4 max), 7, 7
    assert tr.readout.tolist() == [[-3, 5], [-6, 7], [-8, 7], [-8, 7]]
    assert [r[0] for r in run_reference(m, np.full((4, 1), 1))["readout"]] == [-3, -6, -8, -8]
    assert tr.decision == 1


def test_state_formats_are_signed():
    assert LayerParams(size=1, state_bits=8).state_format == IntFormat(8, True)
    assert ReadoutParams(size=2, state_bits=12).state_format == IntFormat(12, True)
    assert default_network().weight_format == IntFormat(4, True)
    assert default_network().feature_format == IntFormat(4, False)


# ----------------------------------------------------------------------------------------------------------------
# accumulator bounds of every layer (they size the RTL's accumulators)


def test_acc_bounds_and_bits_of_every_layer():
    net = NetworkParams(n_features=3, feature_bits=2, weight_bits=3, time_steps=2,
                        layers=(LayerParams(size=4, in_shift=1, rec_shift=2), LayerParams(size=5, rec_shift=1)),
                        readout=ReadoutParams(size=2, in_shift=2)).validate()
    # weights -4..3; layer 0: 3 features of at most 3, << 1 -> 18; 4 recurrent spikes << 2 -> 16
    assert net.acc_bounds(0) == (-4 * 34, 3 * 34)
    assert net.acc_bits(0) == 9                      # -136..102 needs s9 (s8 is -128..127)
    # layer 1: 4 spikes of layer 0 (payload 1) -> 4; 5 recurrent spikes << 1 -> 10
    assert net.acc_bounds(1) == (-4 * 14, 3 * 14)
    assert net.acc_bits(1) == 7                      # -56..42 needs s7
    # readout, per frame: 5 spikes x 2 time steps << 2 -> 40
    assert net.acc_bounds(2) == (-4 * 40, 3 * 40)
    assert net.acc_bits(2) == 9
    assert net.fan_in(0) == 3 and net.fan_in(1) == 4 and net.fan_in(2) == 5
    assert net.n_classes == 2


def test_acc_bounds_are_reached():
    """The bound is the exact range: the extreme input with the extreme weights reaches it."""
    net = NetworkParams(n_features=3, feature_bits=2, weight_bits=3, time_steps=1,
                        layers=(LayerParams(size=2, state_bits=20, threshold=1, leak_shift=0, in_shift=1),),
                        readout=ReadoutParams(size=2)).validate()
    lo, hi = net.acc_bounds(0)
    w_in = np.array([[3, -4]] * 3)
    m = Model(net, [LayerWeights(w_in, np.zeros((2, 2), dtype=np.int64))], np.zeros((2, 2), dtype=np.int64),
              ("a", "b"), FrontEndParams(n_mels=3, feature_bits=2)).validate()
    # first frame, no recurrent event yet: neuron 0 gets 3 x 3 x 3 << 1 = 54, neuron 1 gets -72
    assert (lo, hi) == (-4 * (18 + 2), 3 * (18 + 2))
    tr = run(m, np.full((1, 3), 3))
    assert tr.spikes[0][0, 0].tolist() == [1, 0]


# ----------------------------------------------------------------------------------------------------------------
# range checks on arrays with several elements: only one end out of range


def test_int_format_contains_looks_at_both_ends():
    u4, s4 = IntFormat(4, False), IntFormat(4, True)
    assert u4.contains(np.array([0, 7, 15]))
    assert not u4.contains(np.array([-1, 5, 3]))       # only the minimum is out
    assert not u4.contains(np.array([0, 5, 16]))       # only the maximum is out
    assert s4.contains(np.array([-8, 0, 7]))
    assert not s4.contains(np.array([-9, 0, 1]))
    assert not s4.contains(np.array([-1, 0, 8]))
    assert u4.contains(np.zeros(0))                    # nothing to be out of range
    assert u4.contains(np.array([True, False]))
    assert not u4.contains(np.array([1.0, 2.0]))
    assert u4.contains(5) and not u4.contains(16)


def test_frames_with_one_bad_value_are_rejected():
    m = random_model(seed=0)
    x = np.full((3, 32), 4)
    x[1, 7] = -1
    with pytest.raises(InputError, match="outside"):
        run(m, x)
    x[1, 7] = 16
    with pytest.raises(InputError, match="outside"):
        run(m, x)
    x[1, 7] = 15
    run(m, x)


def test_weights_with_one_bad_value_are_rejected():
    m = random_model(seed=0)
    for bad in (-9, 8):
        w = np.zeros_like(m.w_out)
        w[3, 4] = bad
        with pytest.raises(ParamError, match="out.w"):
            m.replace(w_out=w).validate()
    w = np.zeros_like(m.w_out)
    w[0, 0], w[1, 1] = -8, 7
    m.replace(w_out=w).validate()


def test_activity_with_one_negative_value_is_rejected():
    with pytest.raises(ValueError, match="non-negative"):
        frame_events(np.array([[0, 3, -1, 2]]))
    assert frame_events(np.zeros((2, 0), dtype=np.int64)) == []


# ----------------------------------------------------------------------------------------------------------------
# parameter ranges (the validate() methods are the specification of the ranges): both ends accepted, one
# beyond each end refused


def _layer(**kw):
    return LayerParams(size=8, **kw)


RANGES = [
    # (field, make(value), lowest accepted, highest accepted, a step beyond[, what the refusal says])
    ("size", lambda v: LayerParams(size=v), 1, 4096, 1),
    ("state_bits", lambda v: _layer(state_bits=v, threshold=1, leak_shift=0), 2, 32, 1),
    ("threshold", lambda v: _layer(state_bits=8, threshold=v), 1, 127, 1),
    ("leak_shift", lambda v: _layer(state_bits=8, leak_shift=v), 0, 7, 1),
    ("in_shift", lambda v: _layer(in_shift=v), 0, 16, 1),
    ("rec_shift", lambda v: _layer(rec_shift=v), 0, 16, 1),
    ("size", lambda v: ReadoutParams(size=v), 2, 256, 1),
    ("state_bits", lambda v: ReadoutParams(size=2, state_bits=v), 2, 32, 1),
    ("in_shift", lambda v: ReadoutParams(size=2, in_shift=v), 0, 16, 1),
    ("n_features", lambda v: dataclasses.replace(default_network(), n_features=v), 1, 4096, 1),
    ("feature_bits", lambda v: dataclasses.replace(default_network(), feature_bits=v), 1, 16, 1),
    ("time_steps", lambda v: dataclasses.replace(default_network(), time_steps=v), 1, 4, 1),
    ("weight_bits", lambda v: dataclasses.replace(default_network(), weight_bits=v), 2, 8, 1),
    ("layers", lambda v: dataclasses.replace(default_network(), layers=(LayerParams(size=2),) * v), 1, 8, 1, "1..8 layers"),
    ("sample_rate", lambda v: FrontEndParams(sample_rate=v, fmax_hz=2000.0), 4000, 96000, 1),
    ("n_mels", lambda v: FrontEndParams(n_mels=v), 1, 256, 1),
    ("win_ms", lambda v: FrontEndParams(win_ms=v), 1.0, 200.0, 0.5),
    ("hop_ms", lambda v: FrontEndParams(hop_ms=v), 1.0, 200.0, 0.5),
    ("fmin_hz", lambda v: FrontEndParams(fmin_hz=v), 0.0, 3999.0, None),
    ("fmax_hz", lambda v: FrontEndParams(fmin_hz=0.0, fmax_hz=v), 0.5, 4000.0, None),   # refusals: test_fmin_must_be_below_fmax
    ("feature_bits", lambda v: FrontEndParams(feature_bits=v), 1, 16, 1),
    ("range_db", lambda v: FrontEndParams(range_db=v), 1.0, 150.0, 0.5),
    ("release_db", lambda v: FrontEndParams(release_db=v), 0.0, 100.0, 0.5),
    ("floor_db", lambda v: FrontEndParams(floor_db=v), -200.0, 200.0, 0.5),
    ("noise_gate_db", lambda v: FrontEndParams(noise_gate_db=v), 0.0, 100.0, 0.5),
    ("noise_rise_db", lambda v: FrontEndParams(noise_rise_db=v), 0.0, 100.0, 0.5),
    ("pe_count", lambda v: HardwareParams(pe_count=v), 1, 256, 1),
    ("time_steps", lambda v: HardwareParams(time_steps=v), 1, 4, 1),
    ("max_features", lambda v: HardwareParams(max_features=v), 1, 4096, 1),
    ("max_neurons", lambda v: HardwareParams(max_neurons=v), 1, 4096, 1),
    ("max_classes", lambda v: HardwareParams(max_classes=v), 2, 256, 1),
    ("max_layers", lambda v: HardwareParams(max_layers=v), 1, 8, 1),
    ("weight_bits", lambda v: HardwareParams(weight_bits=v), 2, 8, 1),
    ("max_state_bits", lambda v: HardwareParams(max_state_bits=v), 2, 32, 1),
    ("max_feature_bits", lambda v: HardwareParams(max_feature_bits=v, max_spike_level=1), 1, 16, 1),
    ("scan_width", lambda v: HardwareParams(scan_width=v), 1, 64, 1),
]


@pytest.mark.parametrize("row", RANGES, ids=[r[0] for r in RANGES])
def test_parameter_range_ends(row):
    field, make, lo, hi, step = row[:5]
    for v in (lo, hi):
        obj = make(v)
        assert obj.validate() is obj
    for v in ((lo - step, hi + step) if step else ()):
        # the refusal must be this field's own range check, not another check that the value upsets
        with pytest.raises(ParamError, match=row[5] if len(row) > 5 else
                           rf"\.{field} must be in \S+, not {re.escape(str(v))}$"):
            make(v).validate()


def test_fmin_must_be_below_fmax():
    FrontEndParams(fmin_hz=3999.5, fmax_hz=4000.0).validate()
    with pytest.raises(ParamError, match="fmin_hz"):
        FrontEndParams(fmin_hz=4000.0, fmax_hz=4000.0).validate()
    with pytest.raises(ParamError, match=r"fmin_hz must be in 0\.0\.\.4000\.0, not -0\.5"):
        FrontEndParams(fmin_hz=-0.5).validate()
    with pytest.raises(ParamError, match=r"fmax_hz must be in 0\.0\.\.4000\.0, not 4000\.5"):
        FrontEndParams(fmax_hz=4000.5).validate()
    with pytest.raises(ParamError, match=r"fmax_hz must be in 0\.0\.\.8000\.0, not 8000\.5"):
        FrontEndParams(sample_rate=16000, fmax_hz=8000.5).validate()
    with pytest.raises(ParamError, match="hop_ms"):
        FrontEndParams(hop_ms=10.01).validate()


@pytest.mark.parametrize("make", [
    lambda: LayerParams(size=4.0), lambda: LayerParams(size="4"), lambda: LayerParams(size=False),
    lambda: FrontEndParams(range_db=True), lambda: FrontEndParams(range_db="30"),
    lambda: FrontEndParams(range_db=float("-inf")), lambda: dataclasses.replace(default_network(), layers=[]),
    lambda: dataclasses.replace(default_network(), layers=(LayerParams(size=2),) * 9),
    lambda: dataclasses.replace(default_network(), layers=({"size": 3},)),
    lambda: dataclasses.replace(default_network(), readout={"size": 3}),
])
def test_wrong_types_are_refused(make):
    with pytest.raises(ParamError):
        make().validate()


def test_float_and_int_fields_accept_their_own_kind():
    assert FrontEndParams(range_db=30).validate().range_db == 30     # an int is a number
    assert FrontEndParams(win_ms=32.0, sample_rate=8000).n_fft == 256


# nested validation: a network validates its layers and its readout, a model its network and front end


def test_network_validates_its_layers_and_readout():
    with pytest.raises(ParamError, match=r"network\.layers\[1\]\.threshold"):
        NetworkParams(n_features=2, layers=(LayerParams(size=2), LayerParams(size=2, threshold=0)),
                      readout=ReadoutParams(size=2)).validate()
    with pytest.raises(ParamError, match=r"network\.readout\.size"):
        NetworkParams(n_features=2, layers=(LayerParams(size=2),), readout=ReadoutParams(size=1)).validate()


def test_model_validates_its_network_and_front_end():
    m = random_model(NetworkParams(n_features=2, layers=(LayerParams(size=2),), readout=ReadoutParams(size=2)))
    with pytest.raises(ParamError, match="threshold"):
        m.replace(network=dataclasses.replace(m.network, layers=(LayerParams(size=2, threshold=0),))).validate()
    with pytest.raises(ParamError, match="range_db"):
        m.replace(frontend=dataclasses.replace(m.frontend, range_db=0.0)).validate()
    with pytest.raises(ParamError, match="n_mels"):
        m.replace(frontend=dataclasses.replace(m.frontend, n_mels=3)).validate()
    with pytest.raises(ParamError, match="feature_bits"):
        m.replace(frontend=dataclasses.replace(m.frontend, feature_bits=5)).validate()
    with pytest.raises(ParamError, match="weight layers"):
        m.replace(layers=[]).validate()
    with pytest.raises(ParamError, match="integers"):
        m.replace(w_out=m.w_out.astype(np.float64)).validate()
    with pytest.raises(ParamError, match="meta"):
        m.replace(meta=[]).validate()
    for labels in (["0", "1"], ("0", ""), ("0", "0"), ("0", 1), ("0",)):
        with pytest.raises(ParamError, match="labels"):
            m.replace(labels=labels).validate()
    assert m.validate() is m


def test_hardware_check_limits_are_inclusive():
    net = NetworkParams(n_features=5, feature_bits=3, time_steps=2,
                        layers=(LayerParams(size=7, state_bits=12), LayerParams(size=9, state_bits=10)),
                        readout=ReadoutParams(size=3, state_bits=14)).validate()
    fits = HardwareParams(max_features=5, time_steps=2, max_feature_bits=3, max_classes=3, max_state_bits=14,
                          max_layers=2, max_neurons=9)
    fits.check(net)
    for field, name in [("max_features", "n_features"), ("time_steps", "time_steps"),
                        ("max_feature_bits", "feature_bits"), ("max_classes", "readout.size"),
                        ("max_layers", r"len\(layers\)"), ("max_neurons", r"layers\[1\]\.size")]:
        with pytest.raises(ParamError, match=name):
            dataclasses.replace(fits, **{field: getattr(fits, field) - 1}).check(net)
    with pytest.raises(ParamError, match=r"readout\.state_bits"):
        dataclasses.replace(fits, max_state_bits=13).check(net)
    with pytest.raises(ParamError, match=r"layers\[0\]\.state_bits"):
        fits.check(dataclasses.replace(net, readout=ReadoutParams(size=3, state_bits=8),
                                       layers=(LayerParams(size=7, state_bits=15), LayerParams(size=9))))
    with pytest.raises(ParamError, match=r"layers\[0\]\.size"):
        fits.check(dataclasses.replace(net, layers=(LayerParams(size=10), LayerParams(size=9))))
    with pytest.raises(ParamError, match="weight_bits"):
        dataclasses.replace(fits, weight_bits=5).check(net)


# ----------------------------------------------------------------------------------------------------------------
# defaults: part of the file format (a field left out of a header reads as its default)


def test_defaults_are_the_documented_ones():
    assert LayerParams.from_dict({"size": 3}).to_dict() == {
        "size": 3, "state_bits": 16, "threshold": 64, "leak_shift": 3, "reset": "subtract", "in_shift": 0,
        "rec_shift": 0}
    # spike_levels defaults to 1 (binary spikes) and is written only when set
    assert LayerParams.from_dict({"size": 3}).spike_levels == 1
    assert LayerParams.from_dict({"size": 3, "spike_levels": 3}).to_dict()["spike_levels"] == 3
    assert ReadoutParams.from_dict({"size": 3}).to_dict() == {"size": 3, "state_bits": 24, "in_shift": 0}
    net = NetworkParams.from_dict({"n_features": 2, "layers": [{"size": 3}], "readout": {"size": 2}})
    assert (net.feature_bits, net.time_steps, net.weight_bits) == (4, 1, 4)
    fe = FrontEndParams.from_dict({})
    assert dataclasses.asdict(fe) == {
        "sample_rate": 8000, "n_mels": 32, "win_ms": 25.0, "hop_ms": 10.0, "fmin_hz": 50.0, "fmax_hz": 4000.0,
        "feature_bits": 4, "range_db": 30.0, "release_db": 0.2, "floor_db": -10.0, "noise_gate_db": 0.0,
        "noise_rise_db": 0.1, "band_norm_frames": 0, "band_norm_strength": 1.0}
    assert dataclasses.asdict(HardwareParams.from_dict({})) == {
        "pe_count": 16, "time_steps": 2, "max_features": 64, "max_neurons": 128, "max_classes": 16,
        "max_layers": 2, "weight_bits": 4, "max_state_bits": 24, "max_feature_bits": 8, "scan_width": 16,
        "weight_words": 3584, "index_rows": 576, "acc_bits": 20, "max_shift": 7, "max_spike_level": 2}
    d = default_network()
    assert (d.n_features, [lp.size for lp in d.layers], d.readout.size, d.time_steps) == (32, [128, 128], 10, 1)


def test_frontend_fields_left_out_of_a_header_read_as_their_defaults():
    full = FrontEndParams(noise_gate_db=6.0, noise_rise_db=0.3).to_dict()
    assert full["noise_gate_db"] == 6.0 and full["noise_rise_db"] == 0.3
    old = {k: v for k, v in full.items() if not k.startswith("noise_")}
    assert FrontEndParams.from_dict(old) == FrontEndParams()
    assert FrontEndParams.from_dict(old).to_dict() == old


def test_frontend_derived_sizes():
    p = FrontEndParams()
    assert (p.win_length, p.hop_length, p.n_fft) == (200, 80, 256)
    p = FrontEndParams(sample_rate=16000, win_ms=16.0, hop_ms=10.0, fmax_hz=8000.0)
    assert (p.win_length, p.hop_length, p.n_fft) == (256, 160, 256)
    assert FrontEndParams(win_ms=32.125).validate().n_fft == 512   # 257 samples
    p = FrontEndParams(sample_rate=48000, win_ms=200.0, hop_ms=100.0).validate()
    assert (p.win_length, p.hop_length, p.n_fft) == (9600, 4800, 16384)


# ----------------------------------------------------------------------------------------------------------------
# the model file: format name, version, and the shipped files written byte for byte


def header_of(data: bytes) -> dict:
    z = np.load(io.BytesIO(data))
    return json.loads(z["header"].tobytes())


def test_format_name_and_version_are_written_and_required():
    data = model_to_bytes(random_model(seed=2))
    h = header_of(data)
    assert (h["format"], h["version"]) == ("rsnn-model", 1) and FORMAT == "rsnn-model"
    assert set(h) == {"format", "version", "network", "frontend", "labels", "meta"}
    assert "spike_levels" not in h["network"]["layers"][0]
    # multi-level spikes: version 2, spike_levels in the header, read back equal
    m = random_model(seed=2)
    net = m.network
    net2 = dataclasses.replace(net, layers=(dataclasses.replace(net.layers[0], spike_levels=3),) + net.layers[1:])
    m2 = m.replace(network=net2)
    h2 = header_of(model_to_bytes(m2))
    assert (h2["version"], VERSION) == (2, 2)
    assert h2["network"]["layers"][0]["spike_levels"] == 3 and "spike_levels" not in h2["network"]["layers"][1]
    assert model_from_bytes(model_to_bytes(m2)).network == net2


@pytest.mark.parametrize("name,version", [("fsdd", 2), ("fsdd_binary", 1), ("arabic_digits", 1)])
def test_shipped_model_files_are_rewritten_byte_for_byte(name, version):
    """Version 2 only for a model with multi-level spikes (the FSDD model); binary ones keep version 1."""
    path = ROOT / "models" / f"{name}.npz"
    data = path.read_bytes()
    model = load_model(path)
    assert model_to_bytes(model) == data
    assert header_of(data)["version"] == version
    assert (version == 2) == any(lp.spike_levels > 1 for lp in model.network.layers)


def test_weight_code_packing_by_hand():
    """4-bit codes two per byte, low nibble first; wider codes one per byte."""
    net = NetworkParams(n_features=1, layers=(LayerParams(size=3),), readout=ReadoutParams(size=2))
    m = Model(net, [LayerWeights(np.array([[1, -1, 0]]), np.array([[0, 0, 0], [0, 2, 0], [0, 0, -8]]))],
              np.array([[7, 0], [0, 0], [0, -3]]), ("a", "b"), FrontEndParams(n_mels=1)).validate()
    z = np.load(io.BytesIO(model_to_bytes(m)))
    assert z["l0.w_in.nzmask"].tolist() == [0b11000000]
    assert z["l0.w_in.nzval"].tolist() == [0x1 | 0xF << 4]
    assert z["l0.w_rec.nzmask"].tolist() == [0b00001000, 0b10000000]
    assert z["l0.w_rec.nzval"].tolist() == [0x2 | 0x8 << 4]
    assert z["out.w.nzval"].tolist() == [0x7 | 0xD << 4]
    wide = Model(dataclasses.replace(net, weight_bits=8), m.layers, m.w_out * 10, m.labels, m.frontend).validate()
    z = np.load(io.BytesIO(model_to_bytes(wide)))
    assert z["l0.w_in.nzval"].tolist() == [1, 255]
    assert z["out.w.nzval"].tolist() == [70, 226]
    for mm in (m, wide):
        back = model_from_bytes(model_to_bytes(mm))
        for k, w in mm.matrices().items():
            assert np.array_equal(back.matrices()[k], w), k


def test_model_file_refuses_a_nonzero_padding_nibble_and_stray_bitmap_bits():
    net = NetworkParams(n_features=1, layers=(LayerParams(size=3),), readout=ReadoutParams(size=2))
    m = Model(net, [LayerWeights(np.array([[1, -1, 3]]), np.zeros((3, 3), dtype=np.int64))],
              np.array([[7, 0], [0, 0], [0, -3]]), ("a", "b"), FrontEndParams(n_mels=1)).validate()
    good = model_to_bytes(m)

    def rewrite(name, value):
        z = np.load(io.BytesIO(good))
        arrays = {k: z[k] for k in z.files}
        arrays[name] = np.array(value, dtype=np.uint8)
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        return buf.getvalue()

    z = np.load(io.BytesIO(good))
    assert z["l0.w_in.nzval"].tolist() == [0x1 | 0xF << 4, 0x3]
    for pad in (0x5, 0x1):
        with pytest.raises(ModelFileError, match="padding nibble"):
            model_from_bytes(rewrite("l0.w_in.nzval", [0x1 | 0xF << 4, 0x3 | pad << 4]))
    with pytest.raises(ModelFileError, match="past the end"):
        model_from_bytes(rewrite("l0.w_in.nzmask", [0b11110000]))
    with pytest.raises(ModelFileError, match="nzmask' holds 2 bytes, more than the 1 it can need"):
        model_from_bytes(rewrite("l0.w_in.nzmask", [0b11100000, 0]))
    with pytest.raises(ModelFileError, match="nzval has 3 bytes, expected 2"):
        model_from_bytes(rewrite("l0.w_in.nzval", [0x1 | 0xF << 4, 0x3, 0]))
    assert model_from_bytes(good).matrices()["l0.w_in"].tolist() == [[1, -1, 3]]


# ----------------------------------------------------------------------------------------------------------------
# the mel filterbank: HTK mel scale, triangles between equally spaced mel points


def test_htk_mel_scale_known_points():
    from golden.frontend import _hz_to_mel, _mel_to_hz
    assert _hz_to_mel(0.0) == 0.0
    assert _hz_to_mel(700.0) == pytest.approx(2595.0 * math.log10(2.0))    # 781.17
    assert _hz_to_mel(1000.0) == pytest.approx(1000.0, abs=0.05)            # the scale's anchor
    assert _mel_to_hz(1000.0) == pytest.approx(1000.0, abs=0.05)
    assert _mel_to_hz(2595.0) == pytest.approx(700.0 * 9.0)                 # 10**1 - 1


def test_mel_filterbank_known_values():
    p = FrontEndParams(n_mels=2, fmin_hz=0.0, fmax_hz=4000.0)
    fb = mel_filterbank(p)
    assert fb.shape == (2, 129)                     # n_fft 256: 129 bins of 31.25 Hz
    top = 2595.0 * math.log10(1.0 + 4000.0 / 700.0)
    edges = [700.0 * (10.0 ** (top * i / 3 / 2595.0) - 1.0) for i in range(4)]
    assert edges[1] == pytest.approx(620.58, abs=0.01) and edges[2] == pytest.approx(1791.33, abs=0.01)
    for k in range(129):
        f = k * 31.25
        for m in range(2):
            lo, mid, hi = edges[m], edges[m + 1], edges[m + 2]
            want = max(0.0, min((f - lo) / (mid - lo), (hi - f) / (hi - mid)))
            assert fb[m, k] == pytest.approx(want, abs=1e-12), (m, k)
    # by hand: the first filter peaks at bin 20 (625 Hz), just above its centre 620.8 Hz
    assert int(fb[0].argmax()) == 20 and fb[0, 20] == pytest.approx((1791.33 - 625.0) / (1791.33 - 620.58), abs=1e-4)
    assert fb[0, 0] == 0.0 and fb[1, 128] == 0.0
    assert not fb.flags.writeable


def test_default_filterbank_centres_are_mel_spaced():
    p = FrontEndParams()
    fb = mel_filterbank(p)
    assert fb.shape == (32, 129)
    freqs = np.arange(129) * 8000 / 256
    centres = freqs[fb.argmax(axis=1)]
    mel = 2595.0 * np.log10(1.0 + centres / 700.0)
    steps = np.diff(mel)
    # equal steps on the mel scale (to within one FFT bin), so growing steps in Hz
    assert np.all(np.abs(steps[8:] - steps[8:].mean()) < 2595.0 * np.log10(1.0 + 31.25 / 700.0) + 1e-9)
    assert np.diff(centres)[-1] > 3 * np.diff(centres)[8]


# ----------------------------------------------------------------------------------------------------------------
# number formats


def test_int_format_width_limits():
    for fmt in (IntFormat(1, False), IntFormat(62, False), IntFormat(2, True), IntFormat(62, True)):
        assert fmt.validate() is fmt
    assert (IntFormat(1, False).min, IntFormat(1, False).max) == (0, 1)
    assert (IntFormat(2, True).min, IntFormat(2, True).max) == (-2, 1)
    assert IntFormat(62, True).max == (1 << 61) - 1
    for bits, signed in ((0, False), (63, True), (1, True), (-1, False), (True, False)):
        with pytest.raises(ValueError):
            IntFormat(bits, signed).validate()


def test_int_format_methods():
    s8, u4 = IntFormat(8, True), IntFormat(4, False)
    assert (s8.saturate(200), s8.saturate(-200), s8.saturate(5)) == (127, -128, 5)
    assert s8.saturate(np.array([300, -300, 1])).tolist() == [127, -128, 1]
    assert u4.contains(np.array([1.0])) is False and u4.contains(np.array([3])) is True
    assert IntFormat(4, True).from_code(np.array([16 + 3, 8, 15, 7])).tolist() == [3, -8, -1, 7]
    assert u4.from_code(np.array([16 + 3, 8, 15])).tolist() == [3, 8, 15]
    assert IntFormat(4, True).to_code(np.array([-8, -1, 7])).tolist() == [8, 15, 7]
    assert (str(s8), str(u4)) == ("s8", "u4")


def test_signed_bits_for_is_at_least_two():
    from golden.arith import ceil_div, signed_bits_for
    assert signed_bits_for(0, 0) == 2 and signed_bits_for(-1, 0) == 2 and signed_bits_for(-2, 1) == 2
    assert signed_bits_for(-3, 0) == 3 and signed_bits_for(0, 2) == 3 and signed_bits_for(-128, 127) == 8
    assert [ceil_div(a, 4) for a in (0, 1, 4, 5, 8, 9)] == [0, 1, 1, 2, 2, 3]


@pytest.mark.parametrize("make", [
    lambda: IntFormat(4, True), lambda: LayerParams(size=2), lambda: ReadoutParams(size=2), default_network,
    FrontEndParams, HardwareParams, lambda: EventFormat(4, 4, 2),
])
def test_parameter_objects_are_frozen(make):
    obj = make()
    name = next(iter(dataclasses.asdict(obj)))
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(obj, name, 3)
    assert hash(obj) == hash(make())


# ----------------------------------------------------------------------------------------------------------------
# events: the mask of every step, the event word's field widths and its limits


def test_full_mask_and_event_word_limits():
    from golden.events import Event, EventFormat, full_mask
    assert [full_mask(t) for t in (1, 2, 3, 4)] == [0b1, 0b11, 0b111, 0b1111]
    assert [EventFormat.for_sources(n, 4, 1).index_bits for n in (1, 2, 3, 4, 5, 128, 129)] == [1, 1, 2, 2, 3, 7, 8]
    fmt = EventFormat(3, 2, 2).validate()
    assert fmt.width == 7
    for e in (Event(0, 1, 1), Event(7, 3, 3), Event(5, 2, 2)):
        w = fmt.pack(e)
        assert w < 1 << 7 and fmt.unpack(w) == e
    assert fmt.pack(Event(7, 3, 3)) == 0b1111111 and fmt.pack(Event(0, 1, 1)) == 0b0101000
    assert fmt.unpack(0b1111111 | 1 << 7) == Event(7, 3, 3)   # bits above the word are not part of it
    for bad in (Event(-1, 1, 1), Event(8, 1, 1), Event(0, 4, 1), Event(0, 1, 4), Event(0, -1, 1)):
        with pytest.raises(ValueError, match="does not fit"):
            fmt.pack(bad)
    for ok in (EventFormat(1, 1, 1), EventFormat(16, 16, 4)):
        assert ok.validate() is ok
    for bad in (EventFormat(0, 1, 1), EventFormat(17, 1, 1), EventFormat(1, 0, 1), EventFormat(1, 17, 1),
                EventFormat(1, 1, 0), EventFormat(1, 1, 5), EventFormat(4.0, 1, 1)):
        with pytest.raises(ParamError):
            bad.validate()


# ----------------------------------------------------------------------------------------------------------------
# the network's outputs besides spikes and potentials


def test_dense_counts_by_hand():
    from golden.network import dense_counts
    net = NetworkParams(n_features=3, time_steps=2, readout=ReadoutParams(size=2),
                        layers=(LayerParams(size=4), LayerParams(size=5), LayerParams(size=6)))
    m = random_model(net, seed=0)
    # every source of every layer an event at every step: rows x N reads, x T accumulations
    assert dense_counts(m) == {"weight_reads": [(3 + 4) * 4, (4 + 5) * 5, (5 + 6) * 6, 6 * 2],
                               "accumulations": [(3 + 4) * 4 * 2, (4 + 5) * 5 * 2, (5 + 6) * 6 * 2, 6 * 2 * 2]}


def test_trace_members():
    from golden.network import run_batch
    m = random_model(NetworkParams(n_features=2, layers=(LayerParams(size=3, threshold=2),),
                                   readout=ReadoutParams(size=2)), seed=5)
    utts = [np.full((4, 2), 15), np.full((2, 2), 3)]
    batch = run_batch(m, utts)
    assert len(batch) == 2
    tr = batch[1]
    assert tr.n_frames == 2 and tr.readout.shape == (2, 2)
    assert tr.totals() == {k: [int(x) for x in v.sum(axis=0)] for k, v in tr.counters.items()}
    assert tr.totals()["state_reads"] == [3 * 2, 2 * 2]
    assert np.array_equal(batch.potentials, np.array([batch.readout[0, 3], batch.readout[1, 1]]))
    assert batch.decisions.tolist() == [int(np.argmax(batch.readout[0, 3])), int(np.argmax(batch.readout[1, 1]))]
    assert np.array_equal(tr.potentials, batch.readout[1, 1])


# ----------------------------------------------------------------------------------------------------------------
# the front end, step by step as its docstring writes it


def test_log_mel_is_the_documented_computation():
    from golden.frontend import log_mel
    p = FrontEndParams()
    x = np.random.default_rng(7).normal(0, 0.3, 1000)
    win, hop, n_fft = 200, 80, 256
    n = 1 + (len(x) - win) // hop
    hann = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(win) / win)      # periodic Hann
    frames = np.stack([x[f * hop:f * hop + win] * hann for f in range(n)])
    power = np.abs(np.fft.rfft(frames, n=n_fft, axis=1)) ** 2
    want = 10 * np.log10(power @ mel_filterbank(p).T + 1e-10)
    got = log_mel(x, p)
    assert got.shape == (n, 32) == (11, 32)
    assert np.allclose(got, want, rtol=0, atol=1e-9)
    assert np.array_equal(log_mel(np.zeros(300), p), np.full((2, 32), -100.0))   # 10 log10(1e-10)
    short = log_mel(x[:150], p)                       # zero-padded to one window
    assert short.shape == (1, 32)
    assert np.allclose(short, log_mel(np.concatenate([x[:150], np.zeros(50)]), p), rtol=0, atol=1e-12)


def test_resample_keeps_the_rate_and_changes_it_by_the_ratio():
    from golden.frontend import resample
    x = np.arange(12, dtype=np.int64)
    same = resample(x, 8000, 8000)
    assert same.dtype == np.float64 and np.array_equal(same, x)
    assert len(resample(np.zeros(300), 12000, 8000)) == 200
    assert len(resample(np.zeros(300), 8000, 16000)) == 600


def test_noise_gate_passes_a_value_exactly_at_the_gate():
    from golden.frontend import noise_gate
    p = FrontEndParams(n_mels=1, noise_gate_db=6.0, noise_rise_db=1.0)
    # floor: 0, then min(7, 0 + 1) = 1; 7 is exactly 6 dB above it and passes; 6.5 does not
    assert noise_gate(np.array([[0.0], [7.0]]), p).tolist() == [[-np.inf], [7.0]]
    assert noise_gate(np.array([[0.0], [6.5]]), p).tolist() == [[-np.inf], [-np.inf]]
    assert noise_gate(np.zeros((0, 3)), FrontEndParams(n_mels=3, noise_gate_db=6.0)).shape == (0, 3)


def test_quantizer_release_and_floor():
    from golden.frontend import quantize
    p = FrontEndParams(n_mels=1, range_db=30.0, release_db=10.0, floor_db=-100.0)
    # reference 0, then falls 10 dB a frame: -10, -20; level = floor((dB - ref + 30) * 15 / 30)
    assert quantize(np.array([[0.0], [-30.0], [-30.0]]), p).tolist() == [[15], [5], [10]]
    # the reference never falls below floor_db: -50 dB against a floor of -40 gives (-50 + 40 + 30) / 2 = 10
    p = FrontEndParams(n_mels=2, range_db=30.0, release_db=10.0, floor_db=-40.0, feature_bits=4)
    assert quantize(np.array([[-50.0, -100.0]]), p).tolist() == [[10, 0]]
    # the reference is the loudest band of the frame; feature_bits sets the levels: 2 bits -> 0..3
    p = FrontEndParams(n_mels=2, range_db=30.0, release_db=0.0, floor_db=-100.0, feature_bits=2)
    assert quantize(np.array([[-10.0, 0.0], [0.0, -20.0]]), p).tolist() == [[2, 3], [3, 1]]
    assert quantize(np.array([[-np.inf, 0.0]]), p).tolist() == [[0, 3]]


# ----------------------------------------------------------------------------------------------------------------
# parameters from JSON, models, and the model file's remaining refusals


def test_from_dict_names_the_class_and_refuses_a_non_list():
    with pytest.raises(ParamError, match=r"^NetworkParams\.n_features is missing"):
        NetworkParams.from_dict({"layers": [{"size": 2}], "readout": {"size": 2}})
    with pytest.raises(ParamError, match=r"network\.layers must be a JSON list"):
        NetworkParams.from_dict({"n_features": 2, "layers": {"size": 2}, "readout": {"size": 2}}, "network")
    with pytest.raises(ParamError, match=r"NetworkParams\.readout\.size"):
        NetworkParams.from_dict({"n_features": 2, "layers": [{"size": 2}], "readout": {"size": 1}})


def test_whole_samples_tolerance():
    FrontEndParams(win_ms=25.0 + 0.8e-9 / 8).validate()      # 0.8e-9 samples off: float noise, accepted
    with pytest.raises(ParamError, match="whole number"):
        FrontEndParams(win_ms=25.0 + 2e-9 / 8).validate()


def test_random_model_uses_the_whole_weight_range_and_says_what_it_is():
    m = random_model(seed=3)
    assert sorted(np.unique(m.layers[0].w_rec).tolist()) == list(range(-8, 8))
    assert m.meta["kind"] == "random" and m.meta["seed"] == 3
    assert m.labels == tuple(str(c) for c in range(10))
    assert (m.frontend.n_mels, m.frontend.feature_bits) == (32, 4)
    assert m.total_weights() == 32 * 128 + 128 * 128 * 3 + 128 * 10
    assert m.nonzero_weights() == sum(int(np.count_nonzero(w)) for w in m.matrices().values())
    sparse = random_model(seed=3, density=0.25)
    frac = sparse.nonzero_weights() / sparse.total_weights()
    assert 0.2 < frac < 0.25                                      # a quarter kept, 1/16 of those drawn as 0
    assert np.array_equal(random_model(seed=3).w_out, m.w_out)    # the seed chooses the model
    assert random_model(seed=3, density=1.0).nonzero_weights() == m.nonzero_weights()


def test_model_refuses_weights_that_are_not_arrays():
    m = random_model(NetworkParams(n_features=2, layers=(LayerParams(size=2),), readout=ReadoutParams(size=2)))
    with pytest.raises(ParamError, match=r"out\.w must have shape \(2, 2\), not list"):
        m.replace(w_out=m.w_out.tolist()).validate()


def test_model_file_writer_and_reader_refusals(tmp_path):
    m = random_model(NetworkParams(n_features=2, layers=(LayerParams(size=2),), readout=ReadoutParams(size=2)))
    with pytest.raises(ParamError):
        model_to_bytes(m.replace(labels=("a",)))                 # an invalid model is never written
    path = tmp_path / "a" / "b" / "m.npz"
    assert save_model_twice(m, path) == path.stat().st_size
    good = model_to_bytes(m)

    def with_header(value):
        z = np.load(io.BytesIO(good))
        arrays = {k: z[k] for k in z.files}
        arrays["header"] = value
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        return buf.getvalue()

    h = np.load(io.BytesIO(good))["header"]
    with pytest.raises(ModelFileError, match="1-D uint8"):
        model_from_bytes(with_header(h.reshape(1, -1)))
    with pytest.raises(ModelFileError, match="1-D uint8"):
        model_from_bytes(with_header(h.astype(np.int16)))
    with pytest.raises(ModelFileError, match="header.format"):
        model_from_bytes(with_header(np.frombuffer(b"[1, 2]", dtype=np.uint8)))
    for version in (0, 3, "1", "2", None, True, 2.5, 2.0, 1.0):
        hd = json.loads(h.tobytes())
        hd["version"] = version
        with pytest.raises(ModelFileError, match="not supported"):
            model_from_bytes(with_header(np.frombuffer(json.dumps(hd).encode(), dtype=np.uint8)))
    hd = json.loads(h.tobytes())
    hd["version"] = 2        # version 2 reads a binary-spike header too
    assert model_from_bytes(with_header(np.frombuffer(json.dumps(hd).encode(), dtype=np.uint8))).labels == m.labels
    hd["version"] = 1        # but version 1 has no multi-level spikes
    hd["network"]["layers"][0]["spike_levels"] = 2
    with pytest.raises(ModelFileError, match="version 1 .*spike_levels"):
        model_from_bytes(with_header(np.frombuffer(json.dumps(hd).encode(), dtype=np.uint8)))
    assert model_from_bytes(with_header(h)).labels == m.labels


def save_model_twice(m, path):
    from golden.modelfile import save_model
    save_model(m, path)
    return save_model(m, path)     # a second save over the first


@pytest.mark.parametrize("bits", [5, 6])
def test_model_file_refuses_codes_wider_than_the_weights(bits):
    net = NetworkParams(n_features=1, weight_bits=bits, layers=(LayerParams(size=2),), readout=ReadoutParams(size=2))
    top = 1 << (bits - 1)
    m = Model(net, [LayerWeights(np.array([[-top, top - 1]]), np.zeros((2, 2), dtype=np.int64))],
              np.array([[1, 0], [0, -1]]), ("a", "b"), FrontEndParams(n_mels=1)).validate()
    good = model_to_bytes(m)
    z = np.load(io.BytesIO(good))
    assert z["l0.w_in.nzval"].tolist() == [top, top - 1]         # codes one per byte
    arrays = {k: z[k] for k in z.files}
    arrays["l0.w_in.nzval"] = np.array([top | 1 << bits, top - 1], dtype=np.uint8)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    with pytest.raises(ModelFileError, match=f"wider than {bits} bits"):
        model_from_bytes(buf.getvalue())
    assert model_from_bytes(good).matrices()["l0.w_in"].tolist() == [[-top, top - 1]]


@pytest.mark.parametrize("weight_bits", [3, 5])
def test_model_file_round_trip_at_the_nibble_boundary(weight_bits):
    """Up to 4 bits two codes share a byte; from 5 bits each code has its own."""
    net = NetworkParams(n_features=3, weight_bits=weight_bits, layers=(LayerParams(size=5),),
                        readout=ReadoutParams(size=2))
    m = random_model(net, seed=weight_bits, density=0.7)
    data = model_to_bytes(m)
    n = int(np.count_nonzero(m.layers[0].w_in))
    assert len(np.load(io.BytesIO(data))["l0.w_in.nzval"]) == (n if weight_bits > 4 else (n + 1) // 2)
    back = model_from_bytes(data)
    for k, w in m.matrices().items():
        assert np.array_equal(back.matrices()[k], w), k


def test_random_model_defaults_and_density():
    m = random_model()
    assert m.meta["seed"] == 0 and m.nonzero_weights() == random_model(seed=0, density=1.0).nonzero_weights()
    frac = random_model(seed=1, density=0.6).nonzero_weights() / m.total_weights()
    assert abs(frac - 0.6 * 15 / 16) < 0.02           # 60 % kept, 1/16 of those drawn as 0


def test_model_file_refuses_labels_that_are_not_a_list():
    m = random_model(NetworkParams(n_features=2, layers=(LayerParams(size=2),), readout=ReadoutParams(size=2)))
    z = np.load(io.BytesIO(model_to_bytes(m)))
    arrays = {k: z[k] for k in z.files}
    h = json.loads(arrays["header"].tobytes())
    h["labels"] = "01"
    arrays["header"] = np.frombuffer(json.dumps(h).encode(), dtype=np.uint8)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    with pytest.raises(ModelFileError, match="labels must be a list"):
        model_from_bytes(buf.getvalue())


def test_exact_limit_is_the_documented_two_to_the_52():
    from golden.params import EXACT_LIMIT
    assert EXACT_LIMIT == 2 ** 52            # golden.network: "validate() bounds every sum below 2**52"
    assert float(EXACT_LIMIT - 1) == EXACT_LIMIT - 1 and float(-EXACT_LIMIT + 1) == -EXACT_LIMIT + 1
