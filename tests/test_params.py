"""Parameter dataclasses: validation names field and value; JSON round trip."""
import dataclasses
import json

import pytest
from hypothesis import given, strategies as st

from golden.params import (EXACT_LIMIT, FrontEndParams, HardwareParams, LayerParams, NetworkParams, ParamError, ReadoutParams,
                           ResetMode, default_network)


@st.composite
def networks(draw, max_size=300):
    n_layers = draw(st.integers(1, 3))
    layers = []
    for _ in range(n_layers):
        sb = draw(st.integers(4, 24))
        layers.append(LayerParams(
            size=draw(st.integers(1, max_size)), state_bits=sb, threshold=draw(st.integers(1, (1 << (sb - 1)) - 1)),
            leak_shift=draw(st.integers(0, sb - 1)), reset=draw(st.sampled_from(ResetMode)),
            in_shift=draw(st.integers(0, 4)), rec_shift=draw(st.integers(0, 4))))
    return NetworkParams(
        n_features=draw(st.integers(1, 64)), layers=tuple(layers),
        readout=ReadoutParams(size=draw(st.integers(2, 16)), state_bits=draw(st.integers(8, 32)),
                              in_shift=draw(st.integers(0, 4))),
        feature_bits=draw(st.integers(1, 8)), time_steps=draw(st.integers(1, 2)),
        weight_bits=draw(st.integers(2, 8))).validate()


@given(networks())
def test_network_json_round_trip(net):
    text = json.dumps(net.to_dict())
    assert NetworkParams.from_dict(json.loads(text)) == net


def test_frontend_and_hardware_round_trip():
    for obj in (FrontEndParams(), FrontEndParams(sample_rate=16000, fmax_hz=8000.0), HardwareParams(),
                FrontEndParams(noise_gate_db=6.0), FrontEndParams(noise_gate_db=3.0, noise_rise_db=0.5)):
        assert type(obj).from_dict(json.loads(json.dumps(obj.to_dict()))) == obj


def test_noise_gate_fields_are_written_only_when_set():
    # models shipped before the gate existed keep their bytes: their header has no noise_* field
    assert not any(k.startswith("noise_") for k in FrontEndParams().to_dict())
    assert FrontEndParams(noise_gate_db=6.0).to_dict()["noise_gate_db"] == 6.0
    assert "noise_rise_db" not in FrontEndParams(noise_gate_db=6.0).to_dict()
    assert FrontEndParams(noise_rise_db=0.3).to_dict()["noise_rise_db"] == 0.3


def _bad_layer(**kw):
    return dataclasses.replace(LayerParams(size=8), **kw)


@pytest.mark.parametrize("make,field,value", [
    (lambda: _bad_layer(size=0), "size", "0"),
    (lambda: _bad_layer(threshold=0), "threshold", "0"),
    (lambda: _bad_layer(state_bits=8, threshold=128), "threshold", "128"),
    (lambda: _bad_layer(leak_shift=16), "leak_shift", "16"),
    (lambda: _bad_layer(reset="sometimes"), "reset", "sometimes"),
    (lambda: _bad_layer(in_shift=-1), "in_shift", "-1"),
    (lambda: _bad_layer(size=True), "size", "True"),
    (lambda: ReadoutParams(size=1), "size", "1"),
    (lambda: ReadoutParams(size=10, state_bits=40), "state_bits", "40"),
    (lambda: dataclasses.replace(default_network(), time_steps=5), "time_steps", "5"),
    (lambda: dataclasses.replace(default_network(), weight_bits=1), "weight_bits", "1"),
    (lambda: dataclasses.replace(default_network(), layers=()), "layers", "()"),
    (lambda: FrontEndParams(win_ms=25.01), "win_ms", "25.01"),
    (lambda: FrontEndParams(fmax_hz=5000.0), "fmax_hz", "5000.0"),
    (lambda: FrontEndParams(range_db=float("nan")), "range_db", "nan"),
    (lambda: FrontEndParams(noise_gate_db=-1.0), "noise_gate_db", "-1.0"),
    (lambda: FrontEndParams(noise_rise_db=float("inf")), "noise_rise_db", "inf"),
    (lambda: HardwareParams(pe_count=0), "pe_count", "0"),
    (lambda: LayerParams(size=4, spike_levels=0), "spike_levels", "0"),
    (lambda: LayerParams(size=4, spike_levels=16), "spike_levels", "16"),
    (lambda: HardwareParams(max_spike_level=0), "max_spike_level", "0"),
    (lambda: HardwareParams(max_feature_bits=2, max_spike_level=4), "max_spike_level", "4"),
])
def test_validate_names_field_and_value(make, field, value):
    with pytest.raises(ParamError) as e:
        make().validate()
    assert field in str(e.value) and value in str(e.value)


def test_exactness_bound_holds_at_the_largest_accepted_parameters():
    huge = NetworkParams(n_features=4096, feature_bits=16, time_steps=4, weight_bits=8,
                         layers=(LayerParams(size=4096, state_bits=32, threshold=1, in_shift=16, rec_shift=16,
                                             spike_levels=LayerParams.MAX_SPIKE_LEVELS),) * 2,
                         readout=ReadoutParams(size=256, state_bits=32, in_shift=16)).validate()
    for layer in (0, 1, 2):
        lo, hi = huge.acc_bounds(layer)
        assert max(-lo, hi) < EXACT_LIMIT


def test_multi_level_spikes_widen_the_accumulator_bounds_and_the_hardware_check():
    net = NetworkParams(n_features=4, feature_bits=4, layers=(LayerParams(size=8, spike_levels=3), LayerParams(size=6)),
                        readout=ReadoutParams(size=2)).validate()
    binary = NetworkParams(n_features=4, feature_bits=4, layers=(LayerParams(size=8), LayerParams(size=6)),
                           readout=ReadoutParams(size=2)).validate()
    # layer 0's recurrent events carry up to 3, and so do layer 1's feed-forward ones
    assert net.acc_bounds(0) == (-8 * (4 * 15 + 8 * 3), 7 * (4 * 15 + 8 * 3))
    assert net.acc_bounds(1) == (-8 * (8 * 3 + 6), 7 * (8 * 3 + 6))
    assert binary.acc_bounds(1) == (-8 * (8 + 6), 7 * (8 + 6)) and net.acc_bounds(2) == binary.acc_bounds(2)
    with pytest.raises(ParamError, match=r"layers\[0\]\.spike_levels = 3 .*max_spike_level = 2"):
        HardwareParams().check(net)
    with pytest.raises(ParamError, match=r"layers\[0\]\.spike_levels = 3 .*max_spike_level = 1"):
        HardwareParams(max_spike_level=1).check(net)
    HardwareParams(max_spike_level=3).check(net)
    t2 = dataclasses.replace(net, time_steps=2)
    with pytest.raises(ParamError, match=r"spike_levels = 3 with network.time_steps = 2"):
        HardwareParams(max_spike_level=3).check(t2)
    assert [HardwareParams(max_spike_level=d).spike_bits for d in (1, 2, 3, 4, 7)] == [1, 2, 2, 3, 3]


def test_from_dict_rejects_unknown_and_missing():
    d = default_network().to_dict()
    d["extra"] = 1
    with pytest.raises(ParamError, match="unknown field.*extra"):
        NetworkParams.from_dict(d)
    d = default_network().to_dict()
    del d["n_features"]
    with pytest.raises(ParamError, match="n_features is missing"):
        NetworkParams.from_dict(d)
    d = default_network().to_dict()
    d["layers"][1]["reset"] = "never"
    with pytest.raises(ParamError, match=r"layers\[1\]\.reset"):
        NetworkParams.from_dict(d)
    with pytest.raises(ParamError, match="JSON object"):
        NetworkParams.from_dict([1, 2])


def test_acc_bits_holds_worst_case():
    net = default_network()
    lo, hi = net.acc_bounds(0)
    # 32 features of value 15 times weight -8, plus 128 recurrent spikes times -8
    assert lo == -8 * (32 * 15 + 128) and hi == 7 * (32 * 15 + 128)
    assert net.acc_bits(0) == 14
    assert net.acc_bounds(2) == (-8 * 128, 7 * 128)


def test_hardware_check():
    hw = HardwareParams()
    hw.check(default_network())
    with pytest.raises(ParamError, match=r"layers\[0\]\.size = 300.*max_neurons = 128"):
        hw.check(default_network(hidden=(300, 128)))
    with pytest.raises(ParamError, match="time_steps"):
        HardwareParams(time_steps=1).check(default_network(time_steps=2))
