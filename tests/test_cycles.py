"""The cycle model (golden/cycles.py) without a simulator: hand-counted cases from the formula of its docstring,
and the vectorized model against a slow loop over frames, layers and scan groups."""
import math

import numpy as np
import pytest

from golden.cycles import FRAME_OVERHEAD, FRAME_PERIOD_S, cycle_counts, lower_bound, realtime_clock_hz
from golden.model import LayerWeights, Model, random_model
from golden.network import run, run_batch
from golden.params import FrontEndParams, HardwareParams, LayerParams, NetworkParams, ParamError, ReadoutParams


def one_layer_model():
    """5 features -> 3 neurons (threshold 1, every input weight 1, no recurrent weight) -> 2 classes."""
    net = NetworkParams(n_features=5, layers=(LayerParams(size=3, threshold=1, leak_shift=0),),
                        readout=ReadoutParams(size=2)).validate()
    return Model(net, [LayerWeights(np.ones((5, 3), dtype=np.int64), np.zeros((3, 3), dtype=np.int64))],
                 np.ones((3, 2), dtype=np.int64), ("a", "b"), FrontEndParams(n_mels=5)).validate()


HW = HardwareParams(pe_count=2, scan_width=2)


def test_hand_counted_cycles():
    m = one_layer_model()
    x = np.array([[0, 3, 0, 0, 7],     # frame 0: features 1 and 4; all three neurons fire
                  [0, 0, 0, 0, 0]])    # frame 1: no input; the three spikes of frame 0 come back as recurrent events
    assert run(m, x).spikes[0][:, 0].tolist() == [[1, 1, 1], [1, 1, 1]]
    c = cycle_counts(m, HW, [x])
    # layer 0, K = ceil(3 / 2) = 2 chunks; scan groups of S = 2
    # frame 0: GEN_ff = groups {0,1}: 1 event, {2,3}: none -> 1, {4}: 1 event = 3; GEN_rec = {0,1}, {2} both
    #          empty = 2; E = 2 -> 3 + 2 + 1 + 2 * (2 + 3) = 16
    # frame 1: GEN_ff = 1 + 1 + 1 = 3; GEN_rec = 2 + 1 = 3; E = 3 -> 3 + 3 + 1 + 2 * (3 + 3) = 19
    # readout, K = 1, no recurrent segment: three spikes, GEN = 2 + 1 = 3, E = 3 -> 3 + 1 + 1 * (3 + 3) = 10
    assert c.tolist() == [[[16, 10], [19, 10]]]
    assert c.dtype == np.int64


def test_hand_counted_dense_cycles():
    m = one_layer_model()
    x = np.array([[0, 3, 0, 0, 7], [0, 0, 0, 0, 0]])
    # dense: every source is an event, one scan cycle each: layer 0 has 5 + 3 sources -> 8 + 1 + 2 * (8 + 3) = 31,
    # the readout 3 + 1 + 1 * (3 + 3) = 10, whatever the activity
    assert cycle_counts(m, HW, [x], dense=True).tolist() == [[[31, 10], [31, 10]]]


def test_wider_scan_and_more_pes():
    m = one_layer_model()
    x = np.array([[0, 3, 0, 0, 7], [0, 0, 0, 0, 0]])
    hw = HardwareParams(pe_count=4, scan_width=4)
    # K = 1; frame 0: GEN_ff = {0..3}: 1 event, {4}: 1 -> 2; GEN_rec = 1; E = 2 -> 2 + 1 + 1 + (2 + 3) = 9
    # frame 1: GEN_ff = 1 + 1 = 2; GEN_rec = {0,1,2}: 3 events -> 3; E = 3 -> 2 + 3 + 1 + (3 + 3) = 12
    # readout: GEN = 3, E = 3, K = 1 -> 3 + 1 + 6 = 10
    assert cycle_counts(m, hw, [x]).tolist() == [[[9, 10], [12, 10]]]


def test_padding_frames_are_zero_and_trace_is_optional():
    m = one_layer_model()
    utts = [np.array([[0, 3, 0, 0, 7], [0, 0, 0, 0, 0]]), np.array([[1, 0, 0, 0, 0]])]
    c = cycle_counts(m, HW, utts)
    assert c.shape == (2, 2, 2)
    assert c[1, 1].tolist() == [0, 0]
    assert c[1, 0].tolist() == [1 + 1 + 1 + 2 + 1 + 2 * (1 + 3), 10]   # GEN_ff 3, GEN_rec 2, E 1
    assert np.array_equal(cycle_counts(m, HW, utts, trace=run_batch(m, utts)), c)


def test_hardware_that_cannot_run_the_model_is_refused():
    m = one_layer_model()
    with pytest.raises(ParamError, match="max_features"):
        cycle_counts(m, HardwareParams(max_features=4), [np.zeros((1, 5), dtype=np.int64)])


def slow_cycles(model, hw, frames, dense=False):
    """The docstring's formula, one frame, one layer and one scan group at a time."""
    net = model.network
    tr = run(model, frames)
    P, S = hw.pe_count, hw.scan_width
    out = []
    for f in range(len(frames)):
        row = []
        for l in range(len(net.layers) + 1):
            segments = []
            if l == 0:
                segments.append([int(v) != 0 for v in frames[f]])
            else:
                segments.append([bool(tr.spikes[l - 1][f, :, i].any()) for i in range(net.layers[l - 1].size)])
            if l < len(net.layers):
                n = net.layers[l].size
                segments.append([f > 0 and bool(tr.spikes[l][f - 1, :, i].any()) for i in range(n)])
            n_out = net.readout.size if l == len(net.layers) else net.layers[l].size
            gen = events = 0
            for seg in segments:
                if dense:
                    gen += len(seg)
                    events += len(seg)
                    continue
                for g in range(0, len(seg), S):
                    k = sum(seg[g:g + S])
                    gen += max(1, k)
                    events += k
            chunks = -(-n_out // P)
            row.append(gen + 1 + chunks * (events + 2 + 1))
        out.append(row)
    return out


@pytest.mark.parametrize("seed", range(6))
def test_vectorized_equals_slow_loop(seed):
    rng = np.random.default_rng(seed)
    net = NetworkParams(n_features=int(rng.integers(1, 20)), time_steps=int(rng.integers(1, 3)),
                        layers=(LayerParams(size=int(rng.integers(1, 30)), threshold=int(rng.integers(1, 40)),
                                            leak_shift=1),
                                LayerParams(size=int(rng.integers(1, 30)), threshold=int(rng.integers(1, 40)))),
                        readout=ReadoutParams(size=int(rng.integers(2, 12)))).validate()
    hw = HardwareParams(pe_count=int(rng.integers(1, 9)), scan_width=int(rng.integers(1, 9)))
    model = random_model(net, seed=seed, density=0.6)
    utts = []
    for n in rng.integers(1, 12, size=3):
        x = rng.integers(0, 16, size=(n, net.n_features))
        x[rng.random(x.shape) < 0.5] = 0
        utts.append(x)
    for dense in (False, True):
        got = cycle_counts(model, hw, utts, dense=dense)
        for b, x in enumerate(utts):
            assert got[b, :len(x)].tolist() == slow_cycles(model, hw, x, dense), (b, dense)
            assert not got[b, len(x):].any()
    assert run_batch(model, utts).spikes[0].any(), "the case should have spikes"


def test_lower_bound_formula():
    m = one_layer_model()
    utts = [np.array([[0, 3, 0, 0, 7], [0, 0, 0, 0, 1], [0, 0, 0, 0, 0]])]
    tr = run_batch(m, utts)
    c = tr.counters
    for P in (1, 2, 3, 4, 7):
        want = [math.ceil(int(c["nz_weight_reads"][0, f].sum()) / P) + math.ceil(int(c["state_writes"][0, f].sum()) / P)
                for f in range(3)]
        assert lower_bound(m, HardwareParams(pe_count=P), tr)[0].tolist() == want
    # frame 0 by hand: nz_weight_reads = 2 input events x 3 + 3 spikes x 2 = 12, state_writes = 3 + 2 = 5
    assert lower_bound(m, HardwareParams(pe_count=4), tr)[0, 0] == 3 + 2
    assert lower_bound(m, HardwareParams(pe_count=7), tr)[0, 0] == 2 + 1
    assert lower_bound(m, HardwareParams(pe_count=4), tr).dtype == np.int64


def test_realtime_clock():
    # a frame of c compute cycles occupies c + 2 clock cycles and must fit in 10 ms
    assert FRAME_OVERHEAD == 2 and FRAME_PERIOD_S == 0.010
    assert realtime_clock_hz(98) == pytest.approx(10_000.0)
    assert realtime_clock_hz(np.int64(0)) == pytest.approx(200.0)
