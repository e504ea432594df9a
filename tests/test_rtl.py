"""The RTL against golden, on Icarus and on Verilator: random configurations (sizes, P, T, scan width, extreme
weights, leaks, thresholds, shifts, both reset modes, narrow saturating states), random inputs with zeros, input
bubbles and output backpressure, weights loaded through the write port; the shipped model on real speech; zero-skip
off; and mutations of golden that these checks must catch. Every spike, readout potential, decision and counter
is compared by equality, and every frame's cycles with the cycle model."""
from __future__ import annotations

import numpy as np
import pytest

import golden.cycles
import golden.network
from golden.cycles import cycle_counts
from golden.model import LayerWeights, Model
from golden.params import (HardwareParams, LayerParams, NetworkParams, ParamError, ReadoutParams, ResetMode,
                           default_network)
from rtl.accel import Accelerator
from tb.runner import compare, simulate

pytestmark = [pytest.mark.sim]


def random_config(seed: int):
    rng = np.random.default_rng(seed)
    hw_T = int(rng.integers(1, 4))
    T = int(rng.integers(1, hw_T + 1))
    layers = []
    for _ in range(int(rng.integers(1, 3))):
        sb = int(rng.integers(6, 13))
        layers.append(LayerParams(size=int(rng.integers(2, 21)), state_bits=sb,
                                  threshold=int(rng.integers(1, min(48, (1 << (sb - 1)) - 1) + 1)),
                                  leak_shift=int(rng.integers(0, 5)),
                                  reset=ResetMode.SUBTRACT if rng.random() < 0.5 else ResetMode.ZERO,
                                  in_shift=int(rng.integers(0, 3)), rec_shift=int(rng.integers(0, 3))))
    net = NetworkParams(n_features=int(rng.integers(2, 14)), feature_bits=int(rng.integers(1, 5)), time_steps=T,
                        layers=tuple(layers),
                        readout=ReadoutParams(size=int(rng.integers(2, 6)), state_bits=int(rng.integers(6, 16)),
                                              in_shift=int(rng.integers(0, 3)))).validate()
    hw = HardwareParams(pe_count=int(rng.choice([1, 3, 4, 8])), time_steps=hw_T,
                        scan_width=int(rng.choice([1, 3, 4, 16]))).validate()
    extremes = np.array([-8, -8, -7, 0, 0, 1, 6, 7, 7])

    def draw(shape):
        w = rng.choice(extremes, size=shape) if rng.random() < 0.5 else rng.integers(-8, 8, size=shape)
        w[rng.random(shape) < rng.uniform(0, 0.6)] = 0
        return w.astype(np.int64)

    lws = [LayerWeights(draw((net.fan_in(i), lp.size)), draw((lp.size, lp.size))) for i, lp in enumerate(layers)]
    model = Model(net, lws, draw((layers[-1].size, net.readout.size)),
                  tuple(str(c) for c in range(net.readout.size)), None, {"kind": "random-test"})
    fmax = (1 << net.feature_bits) - 1
    utts = []
    for _ in range(int(rng.integers(2, 4))):
        n = int(rng.integers(1, 13))
        x = rng.integers(0, fmax + 1, size=(n, net.n_features))
        x[rng.random(x.shape) < rng.uniform(0.1, 0.9)] = 0
        if n > 2:
            x[int(rng.integers(0, n))] = 0            # a silent frame
        utts.append(x)
    return model, hw, utts


def _check(model, hw, utts, res, dense=False):
    c = compare(model, hw, utts, res, dense=dense)
    assert c["frames"] == sum(len(u) for u in utts)
    assert c["mismatches"] == 0, c["details"]
    assert c["cycle_mismatches"] == 0, c["details"]
    assert c["decisions"] == c["golden_decisions"]
    return c


CASES = [("icarus", s) for s in (11, 12, 13, 14)] + [("verilator", s) for s in (21, 22)]


@pytest.mark.slow
@pytest.mark.parametrize("sim,cfg_seed", CASES, ids=[f"{s}-cfg{c}" for s, c in CASES])
def test_random_configuration(sim, cfg_seed, tmp_path):
    model, hw, utts = random_config(cfg_seed)
    res = simulate(sim, model, hw, utts, tmp_path, load_port=True, bubble_p=0.3, stall_p=0.3, seed=cfg_seed)
    _check(model, hw, utts, res)
    # the comparison saw real activity, not a network that never fires
    assert sum(int(s.sum()) for o in res.outputs for s in o["spikes"]) > 0 or model.network.layers[0].threshold > 40


@pytest.mark.slow
def test_dense_mode_same_results_more_cycles(tmp_path):
    model, hw, utts = random_config(31)
    res = simulate("icarus", model, hw, utts, tmp_path, load_port=True, dense=True, seed=31)
    c = _check(model, hw, utts, res, dense=True)
    sparse = cycle_counts(model, hw, utts).sum(-1)
    assert sum(c["cycles"]) > int(sparse.sum())


def _shipped_inputs(n):
    from golden.data import default_data_dir, read_manifest
    from golden.frontend import features, features_from_file
    from golden.modelfile import load_model
    from golden.data import PROJECT_ROOT
    model = load_model(PROJECT_ROOT / "models" / "fsdd.npz")
    d = default_data_dir("fsdd")
    if (d / "manifest.csv").is_file():
        utts = read_manifest(d, "test", "digit")
        return model, [features_from_file(u.path, model.frontend) for u in utts[::150][:n]], "fsdd"
    rate = model.frontend.sample_rate
    t = np.arange(int(0.4 * rate)) / rate       # no data here: two synthetic vowel-like sweeps
    sig = [0.4 * np.sin(2 * np.pi * (300 + 500 * t) * t) * np.hanning(len(t)),
           0.3 * np.sin(2 * np.pi * 900 * t) * np.hanning(len(t))]
    return model, [features(s, rate, model.frontend) for s in sig[:n]], "synthetic"


@pytest.mark.slow
@pytest.mark.parametrize("sim", ["icarus", "verilator"])
def test_shipped_model_on_speech(sim, tmp_path):
    model, utts, _ = _shipped_inputs(2)
    hw = HardwareParams()
    res = simulate(sim, model, hw, utts, tmp_path, bubble_p=0.1, stall_p=0.1)
    _check(model, hw, utts, res)


@pytest.fixture(scope="module")
def one_run(tmp_path_factory):
    model, hw, utts = random_config(12)
    return model, hw, utts, simulate("icarus", model, hw, utts, tmp_path_factory.mktemp("mut"), load_port=True)


def test_mutation_of_golden_is_caught(one_run, monkeypatch):
    """An off-by-one in golden's leak (round the shifted value up) must turn the comparison red."""
    model, hw, utts, res = one_run
    assert compare(model, hw, utts, res)["mismatches"] == 0
    real = golden.network.leak
    monkeypatch.setattr(golden.network, "leak", lambda v, k: real(v, k) - (k > 0) * (v != 0))
    assert compare(model, hw, utts, res)["mismatches"] > 0


def test_mutation_of_cycle_model_is_caught(one_run, monkeypatch):
    model, hw, utts, res = one_run
    monkeypatch.setattr(golden.cycles, "PIPELINE", golden.cycles.PIPELINE - 1)
    assert compare(model, hw, utts, res)["cycle_mismatches"] == sum(len(u) for u in utts)


def test_model_too_big_for_hardware_is_refused():
    net = default_network(hidden=(300, 16))
    with pytest.raises(ParamError, match=r"layers\[0\]\.size = 300 .*max_neurons"):
        Accelerator(net, HardwareParams())
