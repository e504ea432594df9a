"""Lane placement (golden/placement.py, train/place.py): a relabelling of the hidden neurons that computes the same
function and balances the core's lanes."""
from __future__ import annotations

import numpy as np
import pytest

from golden.core_cycles import core_cycle_counts
from golden.model import random_model
from golden.modelfile import load_model, save_model
from golden.network import run_batch
from golden.params import HardwareParams, LayerParams, NetworkParams, ReadoutParams, ResetMode
from golden.placement import balance, neuron_loads, permute_neurons, place_lanes, source_rates
from golden.sparse import lane_counts

HW = HardwareParams(pe_count=4, time_steps=1, max_features=16, max_neurons=32, max_classes=4, max_layers=2,
                    scan_width=4, weight_words=512, index_rows=160, acc_bits=20, max_state_bits=16,
                    max_spike_level=3)


def net(levels=(1, 1)):
    return NetworkParams(n_features=10, time_steps=1, layers=(
        LayerParams(size=22, state_bits=12, threshold=14, leak_shift=2, spike_levels=levels[0]),
        LayerParams(size=13, state_bits=10, threshold=7, leak_shift=1, reset=ResetMode.ZERO,
                    spike_levels=levels[1])),
        readout=ReadoutParams(size=3, state_bits=14)).validate()


def utterances(rng, n=4):
    return [rng.integers(0, 16, (int(rng.integers(4, 12)), 10)) * (rng.random((1, 10)) < 0.7) for _ in range(n)]


@pytest.mark.parametrize("levels", [(1, 1), (3, 2)])
def test_a_permutation_computes_the_same_function(rng, levels):
    model = random_model(net(levels), seed=5, density=0.5)
    perms = [rng.permutation(22), rng.permutation(13)]
    moved = permute_neurons(model, perms)
    utts = utterances(rng)
    a, b = run_batch(model, utts), run_batch(moved, utts)
    assert np.array_equal(a.readout, b.readout) and np.array_equal(a.decisions, b.decisions)
    for c in a.counters:
        assert np.array_equal(a.counters[c], b.counters[c]), c
    for l, p in enumerate(perms):      # the spikes come out in the new order
        assert np.array_equal(a.spikes[l][..., p], b.spikes[l])
    assert np.array_equal(moved.w_out[np.argsort(perms[1])], model.w_out)
    with pytest.raises(ValueError, match="perms"):
        permute_neurons(model, [np.zeros(22, dtype=int), perms[1]])
    with pytest.raises(ValueError, match="one per layer"):
        permute_neurons(model, perms + [np.arange(13)])


def test_balance_deals_each_neuron_once_and_evens_the_lanes():
    loads = [np.array([10.0, 1, 1, 1, 10, 1, 1, 1, 10, 1, 1])]   # 11 neurons, 4 lanes: places 3, 3, 3, 2
    (perm,) = balance(loads, 4)
    assert sorted(perm.tolist()) == list(range(11))
    lane_load = [sum(loads[0][perm[k * 4 + q]] for k in range(3) if k * 4 + q < 11) for q in range(4)]
    assert sorted(lane_load) == [2.0, 12.0, 12.0, 12.0]   # a heavy neuron in each of 3 lanes, light ones around
    # in their own order, the three heavy neurons (0, 4, 8) all sit in lane 0
    ident = [sum(loads[0][k * 4 + q] for k in range(3) if k * 4 + q < 11) for q in range(4)]
    assert ident[0] == 30.0 > max(lane_load)


def test_placement_keeps_the_function_and_does_not_slow_the_lanes(rng):
    # a model whose heavy columns all sit in lane 0: placement must spread them
    model = random_model(net(), seed=9, density=0.15)
    lw = model.layers[0]
    w_in, w_rec = lw.w_in.copy(), lw.w_rec.copy()
    dense = random_model(net(), seed=10, density=0.9)
    w_in[:, ::4], w_rec[:, ::4] = dense.layers[0].w_in[:, ::4], dense.layers[0].w_rec[:, ::4]
    from golden.model import LayerWeights
    model = model.replace(layers=[LayerWeights(w_in, w_rec), model.layers[1]])
    utts = utterances(rng, 6)
    placed, perms = place_lanes(model, utts, 4)
    a, b = run_batch(model, utts), run_batch(placed, utts)
    assert np.array_equal(a.readout, b.readout)
    c0 = core_cycle_counts(model, HW, utts, a).sum()
    c1 = core_cycle_counts(placed, HW, utts, b).sum()
    assert c1 < c0
    loads = neuron_loads(model, *source_rates(model, utts))
    assert np.isclose(loads[0].sum(), neuron_loads(placed, *source_rates(placed, utts))[0].sum())
    before = lane_counts(model, 4)["in0"].sum(0)
    after = lane_counts(placed, 4)["in0"].sum(0)
    assert before.sum() == after.sum() and after.max() < before.max()


def test_place_command(tmp_path, capsys):
    from train.place import main
    src = tmp_path / "m.npz"
    save_model(load_model("models/fsdd.npz"), src)
    assert main([str(src), "--recipe", "fsdd", "--out", str(src)]) == 2
    assert "input model file" in capsys.readouterr().err
    assert main([str(src), "--recipe", "fsdd", "--out", str(tmp_path)]) == 2          # a folder
    assert "not a regular file" in capsys.readouterr().err
    assert main([str(src), "--recipe", "fsdd", "--out", str(tmp_path / "no" / "o.npz")]) == 2
    assert "does not exist" in capsys.readouterr().err and not (tmp_path / "no").exists()
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a model")
    assert main([str(bad), "--recipe", "fsdd", "--out", str(tmp_path / "o.npz")]) == 2
    assert "error:" in capsys.readouterr().err and not (tmp_path / "o.npz").exists()
    assert main([str(src), "--recipe", "fsdd", "--out", str(tmp_path / "o.npz"), "--data",
                 str(tmp_path / "nowhere")]) == 2
    assert "nowhere" in capsys.readouterr().err
