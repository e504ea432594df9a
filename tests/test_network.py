"""The vectorized golden model against the pure-Python reference, and hand-computed cases that pin the order."""
import dataclasses

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from golden import (COUNTERS, InputError, LayerParams, LayerWeights, Model, NetworkParams, ReadoutParams,
                    ResetMode, dense_counts, random_model, run, run_batch)
from golden.params import FrontEndParams
from golden.reference import run_reference


@st.composite
def models(draw):
    T = draw(st.integers(1, 2))
    wb = draw(st.sampled_from([4, 4, 4, 2, 8]))
    n_layers = draw(st.integers(1, 2))
    layers = []
    for _ in range(n_layers):
        sb = draw(st.integers(4, 16))
        layers.append(LayerParams(
            size=draw(st.integers(1, 9)), state_bits=sb,
            threshold=draw(st.one_of(st.just(1), st.just((1 << (sb - 1)) - 1), st.integers(1, (1 << (sb - 1)) - 1))),
            leak_shift=draw(st.integers(0, min(sb - 1, 5))), reset=draw(st.sampled_from(ResetMode)),
            in_shift=draw(st.integers(0, 3)), rec_shift=draw(st.integers(0, 3)),
            spike_levels=draw(st.sampled_from([1, 1, 2, 3, 7]))))
    net = NetworkParams(n_features=draw(st.integers(1, 8)), layers=tuple(layers),
                        readout=ReadoutParams(size=draw(st.integers(2, 5)), state_bits=draw(st.integers(4, 20)),
                                              in_shift=draw(st.integers(0, 2))),
                        feature_bits=draw(st.integers(1, 5)), time_steps=T, weight_bits=wb).validate()
    seed = draw(st.integers(0, 2**31))
    rng = np.random.default_rng(seed)
    wf = net.weight_format
    style = draw(st.sampled_from(["uniform", "extremes", "sparse"]))

    def w(shape):
        if style == "extremes":
            return rng.choice(np.array([wf.min, wf.max, 0, -1, 1]), size=shape).astype(np.int64)
        m = rng.integers(wf.min, wf.max + 1, size=shape)
        if style == "sparse":
            m[rng.random(shape) < 0.7] = 0
        return m.astype(np.int64)

    lw = [LayerWeights(w((net.fan_in(i), lp.size)), w((lp.size, lp.size))) for i, lp in enumerate(net.layers)]
    model = Model(net, lw, w((net.layers[-1].size, net.readout.size)),
                  tuple(str(c) for c in range(net.readout.size)),
                  FrontEndParams(n_mels=net.n_features, feature_bits=net.feature_bits)).validate()
    n_frames = draw(st.integers(1, 12))
    fmax = net.feature_format.max
    x = rng.integers(0, fmax + 1, size=(n_frames, net.n_features))
    x[rng.random(x.shape) < draw(st.sampled_from([0.0, 0.5, 0.9]))] = 0
    if draw(st.booleans()):
        x[rng.random(x.shape) < 0.3] = fmax
    return model, x


def assert_same_as_reference(model, x):
    tr = run(model, x)
    ref = run_reference(model, x)
    for l in range(len(model.network.layers)):
        assert np.array_equal(tr.spikes[l], np.array(ref["spikes"][l], dtype=np.uint8)), f"spikes of layer {l}"
    assert np.array_equal(tr.readout, np.array(ref["readout"])), "readout potentials"
    assert tr.decision == ref["decision"]
    for name in COUNTERS:
        want = np.array([[c[name] for c in frame] for frame in ref["counters"]])
        assert np.array_equal(tr.counters[name], want), name
    return tr


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(models())
def test_vectorized_equals_reference(mx):
    assert_same_as_reference(*mx)


def test_reference_default_size_random_models(rng):
    for T in (1, 2):
        for reset in ResetMode:
            net = NetworkParams(n_features=32, time_steps=T, readout=ReadoutParams(size=10),
                                layers=(LayerParams(size=48, threshold=40, leak_shift=2, reset=reset),
                                        LayerParams(size=40, threshold=30, leak_shift=1, reset=reset)))
            model = random_model(net, seed=int(rng.integers(1 << 30)), density=0.5)
            x = rng.integers(0, 16, size=(15, 32))
            x[rng.random(x.shape) < 0.5] = 0
            tr = assert_same_as_reference(model, x)
            assert tr.spikes[0].any() and tr.spikes[1].any(), "the test should exercise spiking"


def test_reference_multi_level_spikes_random_models(rng):
    # multi-level spikes (D = 2, 3) at T = 1 and T = 2 (where a source's level may change between the steps and
    # make two events), both resets, default-size layers
    for T in (1, 2):
        for reset in ResetMode:
            net = NetworkParams(n_features=32, time_steps=T, readout=ReadoutParams(size=10),
                                layers=(LayerParams(size=48, threshold=12, leak_shift=2, reset=reset, spike_levels=3),
                                        LayerParams(size=40, threshold=10, leak_shift=1, reset=reset,
                                                    spike_levels=2)))
            model = random_model(net, seed=int(rng.integers(1 << 30)), density=0.5)
            x = rng.integers(0, 16, size=(15, 32))
            x[rng.random(x.shape) < 0.5] = 0
            tr = assert_same_as_reference(model, x)
            assert (tr.spikes[0] == 3).any() and (tr.spikes[0] == 1).any() and (tr.spikes[1] == 2).any(), \
                "the test should exercise every level"


def test_hand_multi_level_spike_and_reset_by_k_thresholds():
    # threshold 10, D = 3, input 25 per frame, no leak: v = 25 -> k = 2, v = 5; 30 -> 3, 0; 25 -> 2, 5; with
    # a recurrent weight 0
    net = NetworkParams(n_features=1, feature_bits=5, weight_bits=8,
                        layers=(LayerParams(size=1, threshold=10, leak_shift=0, spike_levels=3),),
                        readout=ReadoutParams(size=2, state_bits=12))
    m = Model(net, [LayerWeights(np.array([[1]]), np.array([[0]]))], np.array([[0, 2]]), ("a", "b"),
              FrontEndParams(n_mels=1, feature_bits=5)).validate()
    tr = run(m, np.array([[25], [25], [25], [31]]))
    # v: 25 -> 2 (5); 30 -> 3 (0); 25 -> 2 (5); 36 -> clipped to 3 (6)
    assert tr.spikes[0][:, 0, 0].tolist() == [2, 3, 2, 3]
    # the readout adds w * k = 2 * k per frame
    assert tr.readout[:, 1].tolist() == [4, 10, 14, 20]
    assert tr.counters["in_events"][:, 1].tolist() == [1, 1, 1, 1]
    zero = dataclasses.replace(m, network=dataclasses.replace(
        net, layers=(dataclasses.replace(net.layers[0], reset=ResetMode.ZERO),)))
    # reset to zero: 25 -> 2 (0); 25 -> 2 (0); ...
    assert run(zero, np.array([[25], [25], [9]])).spikes[0][:, 0, 0].tolist() == [2, 2, 0]
    # a negative potential gives no spike (floor of a negative quotient is clipped at 0)
    neg = Model(net, [LayerWeights(np.array([[-1]]), np.array([[0]]))], np.array([[0, 2]]), ("a", "b"),
                FrontEndParams(n_mels=1, feature_bits=5)).validate()
    assert run(neg, np.array([[25]])).spikes[0].tolist() == [[[0]]]
    assert run_reference(m, np.array([[25], [25], [25], [31]]))["spikes"][0] == [[[2]], [[3]], [[2]], [[3]]]


def test_batch_equals_single_and_padding_is_inert(rng):
    model = random_model(NetworkParams(n_features=8, time_steps=2, readout=ReadoutParams(size=4),
                                       layers=(LayerParams(size=16, threshold=20), LayerParams(size=12, threshold=9))),
                         seed=3)
    utts = [rng.integers(0, 16, size=(n, 8)) for n in (7, 1, 20, 13)]
    batch = run_batch(model, utts)
    assert batch.lengths.tolist() == [7, 1, 20, 13]
    for b, u in enumerate(utts):
        one = run(model, u)
        got = batch[b]
        assert got.decision == one.decision == int(batch.decisions[b])
        assert np.array_equal(got.readout, one.readout)
        for l in range(2):
            assert np.array_equal(got.spikes[l], one.spikes[l])
        for k in COUNTERS:
            assert np.array_equal(got.counters[k], one.counters[k])
    assert not batch.spikes[0][1, 1:].any() and not batch.counters["in_events"][1, 1:].any()


def tiny(T=1, reset=ResetMode.SUBTRACT, leak_shift=0, threshold=10, w_in=5, w_rec=0, state_bits=8, classes=2):
    """1 feature -> 1 neuron -> 1 neuron -> readout; layer 1 relays (threshold 1), readout class 1 counts spikes."""
    net = NetworkParams(n_features=1, feature_bits=4, time_steps=T, weight_bits=8,
                        layers=(LayerParams(size=1, state_bits=state_bits, threshold=threshold,
                                            leak_shift=leak_shift, reset=reset),
                                LayerParams(size=1, threshold=1, leak_shift=0, reset=ResetMode.ZERO)),
                        readout=ReadoutParams(size=classes, state_bits=8))
    w_out = np.zeros((1, classes), dtype=np.int64)
    w_out[0, -1] = 1
    return Model(net, [LayerWeights(np.array([[w_in]]), np.array([[w_rec]])),
                       LayerWeights(np.array([[1]]), np.array([[0]]))], w_out,
                 tuple(str(c) for c in range(classes)), FrontEndParams(n_mels=1)).validate()


def test_hand_integrate_fire_subtract():
    # v: 3 -> 6 -> 9 -> 12 fires (v=2) -> 5 -> 8 -> 11 fires (v=1)
    tr = run(tiny(w_in=1), np.full((7, 1), 3))
    assert tr.spikes[0][:, 0, 0].tolist() == [0, 0, 0, 1, 0, 0, 1]
    assert tr.spikes[1][:, 0, 0].tolist() == [0, 0, 0, 1, 0, 0, 1]
    assert tr.readout[:, 1].tolist() == [0, 0, 0, 1, 1, 1, 2]


def test_hand_reset_to_zero():
    # v: 3 6 9 12 fires -> 0, 3 6 9 12 fires
    tr = run(tiny(w_in=1, reset=ResetMode.ZERO), np.full((8, 1), 3))
    assert tr.spikes[0][:, 0, 0].tolist() == [0, 0, 0, 1, 0, 0, 0, 1]


def test_hand_leak_before_integrate():
    # leak_shift 1: v = v - (v >> 1) then + 4: 4, 6, 7, 8, 8, ... never reaches 10
    tr = run(tiny(w_in=1, leak_shift=1), np.full((10, 1), 4))
    assert not tr.spikes[0].any()
    # with input 6: 6, 9, 11 fires (v=1), 1-0+6=7, 4+6=10 fires (v=0), 6, ...
    tr = run(tiny(w_in=1, leak_shift=1), np.full((6, 1), 6))
    assert tr.spikes[0][:, 0, 0].tolist() == [0, 0, 1, 0, 1, 0]


def test_hand_saturation():
    # state_bits 8: v saturates at 127; threshold 100 subtract: 127 -> fire -> 27 -> 127 ...
    tr = run(tiny(w_in=100, threshold=100, state_bits=8), np.full((3, 1), 15))
    assert tr.spikes[0][:, 0, 0].tolist() == [1, 1, 1]
    # negative saturation: weight -100 x 15 = -1500 clamps at -128; one frame of +10*... cannot recover at once
    m = tiny(w_in=-100, threshold=100, state_bits=8)
    assert not run(m, np.full((4, 1), 15)).spikes[0].any()


def test_hand_two_time_steps_and_recurrence_from_previous_frame():
    # T = 2, input 6 each step, threshold 10, no leak, recurrent self-weight +20.
    # frame 0: t0 v=6; t1 v=12 fires -> 2.            spikes f0 = [0, 1]
    # frame 1: recurrent event of f0 has mask 0b10 (step 1 only): acc = [6, 6 + 20]
    #          t0 v=8; t1 v=34 fires -> 24.           spikes f1 = [0, 1]
    # frame 2: t0 v=30 fires -> 20; t1 v=46 fires -> 36. spikes f2 = [1, 1]
    tr = run(tiny(T=2, w_in=1, w_rec=20), np.full((3, 1), 6))
    assert tr.spikes[0][:, :, 0].tolist() == [[0, 1], [0, 1], [1, 1]]
    # the readout counts every spike of every step (layer 1 relays them): 1, 2, 4
    assert tr.readout[:, 1].tolist() == [1, 2, 4]
    c = tr.counters
    assert c["rec_events"][:, 0].tolist() == [0, 1, 1]       # one merged event per spiking neuron
    assert c["accumulations"][:, 0].tolist() == [2, 3, 3]    # input event x 2 steps + recurrent x popcount
    assert c["weight_reads"][:, 0].tolist() == [1, 2, 2]     # one weight read per event, shared by the steps


def test_tie_goes_to_lowest_class():
    m = tiny(classes=3)
    m.w_out[0] = [1, 1, 1]
    tr = run(m, np.full((5, 1), 15))
    assert tr.potentials[0] == tr.potentials[1] == tr.potentials[2] > 0
    assert tr.decision == 0
    assert run(m, np.zeros((3, 1), dtype=np.int64)).decision == 0


def test_counters_hand_case():
    m = random_model(seed=0)
    x = np.zeros((2, 32), dtype=np.int64)
    x[0, [1, 5, 9]] = [3, 15, 1]
    tr = run(m, x)
    assert tr.counters["in_events"][:, 0].tolist() == [3, 0]
    assert tr.counters["weight_reads"][0, 0] == 3 * 128 + 128 * tr.counters["rec_events"][0, 0]
    nnz = np.count_nonzero(m.layers[0].w_in, axis=1)
    assert tr.counters["nz_weight_reads"][0, 0] == nnz[[1, 5, 9]].sum()
    assert tr.counters["state_reads"][0].tolist() == [128, 128, 10]
    assert tr.counters["rec_events"][0, 0] == 0  # nothing spiked before frame 0
    d = dense_counts(m)
    assert d["accumulations"] == [(32 + 128) * 128, 256 * 128, 128 * 10]


@pytest.mark.parametrize("frames,match", [
    (np.zeros((0, 32), dtype=np.int64), "no frames"),
    (np.zeros((3, 31), dtype=np.int64), "shape"),
    (np.zeros(32, dtype=np.int64), "shape"),
    (np.full((3, 32), 16), "outside"),
    (np.full((3, 32), -1), "outside"),
    (np.zeros((3, 32)), "integers"),
])
def test_bad_frames_are_rejected(frames, match):
    with pytest.raises(InputError, match=match):
        run(random_model(seed=0), frames)
    with pytest.raises(InputError, match="empty"):
        run_batch(random_model(seed=0), [])


def test_model_validation_names_the_problem():
    m = random_model(seed=0)
    bad = dataclasses.replace(m, w_out=m.w_out + 100)
    with pytest.raises(ValueError, match="out.w.*outside"):
        bad.validate()
    with pytest.raises(ValueError, match=r"l0.w_rec must have shape \(128, 128\)"):
        dataclasses.replace(m, layers=[LayerWeights(m.layers[0].w_in, m.layers[0].w_rec[:5]), m.layers[1]]).validate()
    with pytest.raises(ValueError, match="labels"):
        dataclasses.replace(m, labels=("a",) * 10).validate()
