"""The pure-Python reference (golden/reference.py): independent of golden.network, and right on its own
(hand-computed cases, its input check), so that comparing the two in tests/test_network.py means something."""
import ast
from pathlib import Path

import numpy as np
import pytest

from golden.model import LayerWeights, Model, random_model
from golden.network import COUNTERS, InputError, run
from golden.params import FrontEndParams, LayerParams, NetworkParams, ReadoutParams, ResetMode
from golden.reference import COUNTER_NAMES, ReferenceInputError, run_reference

SOURCE = Path(__file__).resolve().parents[1] / "golden" / "reference.py"


def test_reference_shares_no_code_with_the_vectorized_model():
    """It may use the parameter classes and the model, nothing arithmetic (issue #15: a bug in a shared helper
    cannot show up when the two are compared)."""
    imported, used = set(), set()
    for node in ast.walk(ast.parse(SOURCE.read_text())):
        if isinstance(node, ast.ImportFrom):
            imported.add(("." * node.level) + (node.module or ""))
            used.update(a.name for a in node.names)
        elif isinstance(node, ast.Import):
            imported.update(a.name for a in node.names)
        elif isinstance(node, ast.Attribute):
            used.add(node.attr)
        elif isinstance(node, ast.Name):
            used.add(node.id)
    assert imported <= {"__future__", ".model", ".params"}, imported
    # nor the number formats of the parameter classes (golden.network reads those)
    assert not used & {"state_format", "feature_format", "weight_format", "IntFormat", "np", "numpy"}


def test_counter_names_are_the_specification_s():
    assert COUNTER_NAMES == COUNTERS


def tiny(T=1, reset=ResetMode.SUBTRACT, leak_shift=0, threshold=10, w_in=1, w_rec=0, state_bits=8, in_shift=0,
         rec_shift=0, readout_shift=0):
    net = NetworkParams(n_features=1, feature_bits=4, time_steps=T, weight_bits=8,
                        layers=(LayerParams(size=1, state_bits=state_bits, threshold=threshold, leak_shift=leak_shift,
                                            reset=reset, in_shift=in_shift, rec_shift=rec_shift),),
                        readout=ReadoutParams(size=2, state_bits=12, in_shift=readout_shift))
    return Model(net, [LayerWeights(np.array([[w_in]]), np.array([[w_rec]]))], np.array([[0, 1]]), ("a", "b"),
                 FrontEndParams(n_mels=1)).validate()


def ref_spikes(model, x):
    return [s[0][0] for s in run_reference(model, x)["spikes"][0]]


def test_reference_hand_cases():
    # subtract: 3 6 9 12 fires (2) 5 8 11 fires (1)
    assert ref_spikes(tiny(), np.full((7, 1), 3)) == [0, 0, 0, 1, 0, 0, 1]
    # zero: 3 6 9 12 fires (0) 3 6 9 12 fires
    assert ref_spikes(tiny(reset=ResetMode.ZERO), np.full((8, 1), 3)) == [0, 0, 0, 1, 0, 0, 0, 1]
    # zero, not -1: 5 10 fires (0) 5 10 fires (reset to -1 would give 4 9 14)
    assert ref_spikes(tiny(reset=ResetMode.ZERO), np.full((5, 1), 5)) == [0, 1, 0, 1, 0]
    assert ref_spikes(tiny(), np.full((5, 1), 5)) == [0, 1, 0, 1, 0]
    # leak 1 before integrating 6: 6, 9, 11 fires (1), 1 - 0 + 6 = 7, 7 - 3 + 6 = 10 fires (0), 6
    assert ref_spikes(tiny(leak_shift=1), np.full((6, 1), 6)) == [0, 0, 1, 0, 1, 0]
    # the leak of a negative potential: -7 - floor(-7 / 2) = -7 + 4 = -3 (a truncating shift would give -4)
    m = Model(NetworkParams(n_features=2, feature_bits=4, weight_bits=8,
                            layers=(LayerParams(size=1, threshold=9, leak_shift=1),), readout=ReadoutParams(size=2)),
              [LayerWeights(np.array([[-1], [4]]), np.array([[0]]))], np.array([[0, 1]]), ("a", "b"),
              FrontEndParams(n_mels=2)).validate()
    # frame 0: v = -7; frame 1: v = -3 + 12 = 9 fires (0); with floor(-7/2) taken as -3 it would be -4 + 12 = 8
    assert [s[0][0] for s in run_reference(m, np.array([[7, 0], [0, 3]]))["spikes"][0]] == [0, 1]
    assert run(m, np.array([[7, 0], [0, 3]])).spikes[0][:, 0, 0].tolist() == [0, 1]


def test_reference_shifts_and_two_time_steps():
    # in_shift 1: input 3 -> 6 per step; T = 2; recurrent weight 5 << 1 = 10 at the step where it spiked last frame
    m = tiny(T=2, in_shift=1, w_rec=5, rec_shift=1, readout_shift=2)
    ref = run_reference(m, np.full((2, 1), 3))
    # frame 0: t0 v = 6; t1 v = 12 fires -> 2: spikes [0, 1]
    assert ref["spikes"][0][0] == [[0], [1]]
    tr = run(m, np.full((2, 1), 3))
    assert ref["spikes"][0][1] == tr.spikes[0][1].tolist()
    # frame 1: t0 v = 8; t1 v = 8 + 6 + 10 = 24 fires -> 14: spikes [0, 1]
    assert ref["spikes"][0][1] == [[0], [1]]
    # the readout adds 1 << 2 per spike
    assert [r[1] for r in ref["readout"]] == [4, 8]
    c = ref["counters"]
    assert [c[f][0]["rec_events"] for f in range(2)] == [0, 1]
    assert [c[f][0]["accumulations"] for f in range(2)] == [2, 3]
    assert [c[f][1]["in_events"] for f in range(2)] == [1, 1]
    assert [c[f][1]["weight_reads"] for f in range(2)] == [2, 2]
    assert [c[f][1]["nz_weight_reads"] for f in range(2)] == [1, 1]
    assert [c[f][1]["state_reads"] for f in range(2)] == [2, 2] == [c[f][1]["state_writes"] for f in range(2)]


def test_reference_decision_is_the_lowest_best_class():
    m = random_model(NetworkParams(n_features=2, layers=(LayerParams(size=2, threshold=1),),
                                   readout=ReadoutParams(size=3)), seed=1)
    m.w_out[:] = [[2, 5, 5], [2, 5, 5]]
    x = np.full((3, 2), 15)
    assert run_reference(m, x)["decision"] == 1 == run(m, x).decision
    m.w_out[:] = [[2, 5, 6], [2, 5, 6]]
    assert run_reference(m, x)["decision"] == 2 == run(m, x).decision
    m.w_out[:] = [[-1, -1, -1], [-1, -1, -1]]
    assert run_reference(m, x)["decision"] == 0


@pytest.mark.parametrize("frames", [
    np.zeros((0, 32), dtype=np.int64), np.zeros((3, 31), dtype=np.int64), np.zeros(32, dtype=np.int64),
    np.zeros((3, 32, 1), dtype=np.int64), np.full((3, 32), 16), np.full((3, 32), -1), np.zeros((3, 32)),
    np.array([[0] * 31 + [16]] * 2), np.array([[-1] + [0] * 31] * 2), [[0.0] * 32], [[0] * 31 + [1.5]], 7,
])
def test_reference_refuses_what_golden_refuses(frames):
    m = random_model(seed=0)
    with pytest.raises(InputError):
        run(m, frames)
    with pytest.raises(ReferenceInputError):
        run_reference(m, frames)


def test_reference_accepts_what_golden_accepts():
    m = random_model(NetworkParams(n_features=3, layers=(LayerParams(size=4, threshold=3),),
                                   readout=ReadoutParams(size=2)), seed=3)
    for frames in ([[0, 15, 1], [2, 0, 0]], np.array([[0, 15, 1]], dtype=np.uint8), np.array([[True, False, True]])):
        ref = run_reference(m, frames)
        tr = run(m, frames)
        assert ref["readout"] == tr.readout.tolist()
        assert ref["decision"] == tr.decision
