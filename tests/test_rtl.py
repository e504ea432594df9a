"""The RTL against golden, on Icarus and on Verilator: a sample of the random regression (``make regress``, see
tb/regress.py: configurations over every parameter's range, bubbles, stalls, waiting inputs, writes while busy,
resets mid-frame), every injected RTL fault caught, the shipped model on real speech, zero-skip off with its dense
counters, and mutations of golden and of the handshake model that these checks must catch. Every spike, readout
potential, decision and counter is compared by equality, every frame's cycles counter with the cycle model, and
the handshake timing that the testbench measured with the cycle model."""
from __future__ import annotations

import numpy as np
import pytest

import golden.cycles
import golden.network
import tb.runner
from conftest import real_data
from golden.cycles import cycle_counts, max_frame_cycles
from golden.model import LayerWeights, Model
from golden.params import (HardwareParams, LayerParams, NetworkParams, ParamError, ReadoutParams, ResetMode,
                           default_network)
from rtl.accel import FAULTS, Accelerator
from tb.regress import _shape, config_seed, draw_config, run_task
from tb.runner import SimError, compare, simulate

pytestmark = [pytest.mark.sim]


SAMPLE_SEED = 1          # make test's sample of the regression (make regress runs seed 0 at full size)


def _small_configs(n: int, max_cycles: int, start: int = 0) -> list:
    """The first ``n`` configurations of the sample seed whose slowest frame is at most ``max_cycles`` cycles."""
    out, k = [], start
    while len(out) < n:
        net, hw = _shape(np.random.default_rng(config_seed(SAMPLE_SEED, k)))
        if max_frame_cycles(net, hw) <= max_cycles:
            out.append(k)
        k += 1
    return out


def _task(index, sim, tmp_path, frames=40, **kw):
    return {"seed": SAMPLE_SEED, "index": index, "frames": frames, "sim": sim, "configs": 1000, "every": 1,
            "total_frames": 0, "work": str(tmp_path), "sims": "icarus,verilator", **kw}


def random_config(index: int):
    cfg = draw_config(SAMPLE_SEED, index, 30)
    return cfg.model, cfg.hw, cfg.utterances


def _check(model, hw, utts, res, dense=False):
    c = compare(model, hw, utts, res, dense=dense)
    assert c["frames"] == sum(len(u) for u in utts)
    assert c["mismatches"] == 0, c["details"]
    assert c["cycle_mismatches"] == 0, c["details"]
    assert c["decisions"] == c["golden_decisions"]
    return c


CASES = [("icarus", k) for k in _small_configs(4, 300)] + [("verilator", k) for k in _small_configs(2, 150, 50)]


@pytest.mark.slow
@pytest.mark.parametrize("sim,index", CASES, ids=[f"{s}-cfg{k}" for s, k in CASES])
def test_regression_sample(sim, index, tmp_path):
    """make regress in small: a random configuration with its random stimulus (bubbles, stalls, waiting inputs,
    writes while busy, resets), every frame, counter and handshake compared."""
    r = run_task(_task(index, sim, tmp_path))
    assert r.get("error") is None, r["error"]
    assert r["frames"] > 0
    assert (r["mismatches"], r["cycle_mismatches"], r["latency_mismatches"]) == (0, 0, 0), r["details"]
    assert r["decisions_equal"]
    assert sum(r["coverage"].get(f"time_steps_{t}", 0) for t in range(1, 5)) == r["frames"]


@pytest.mark.slow
def test_every_injected_fault_is_caught(tmp_path):
    """Each deliberate RTL fault (rtl.accel.FAULTS) turns the comparison red on a small network that leaks, fires,
    saturates and uses two time steps: wrong datapath results, a wrong cycles counter (only the counter check sees
    it), a slow handshake (only the testbench's own timing sees it) and a hang (the watchdog fires, naming where).
    ``make regress REGRESS_ARGS=--faults`` shows the same for the full regression's configurations."""
    model, hw, utts = _hand_config()
    for fault in FAULTS:
        try:
            res = simulate("icarus", model, hw, utts, tmp_path / fault, load_port=True, fault=fault, preload_p=0.5,
                           seed=3)
        except SimError as e:
            assert fault == "hang", f"{fault}: {e}"
            assert "watchdog: no output word" in str(e) and "utterance 0 frame 0" in str(e), str(e)
            continue
        c = compare(model, hw, utts, res)
        how = (c["mismatches"], c["cycle_mismatches"], c["latency_mismatches"])
        assert how != (0, 0, 0), f"fault {fault} was not caught"
        if fault == "counter_skips_init":
            assert how[0] == 0 and how[1] > 0 and how[2] == 0           # only the counter check sees it
        if fault == "slow_handshake":
            assert how[:2] == (0, 0) and how[2] > 0                     # only the testbench's timing sees it


def _hand_config():
    """A small fixed network that leaks, fires, saturates and uses both time steps."""
    rng = np.random.default_rng(5)
    net = NetworkParams(n_features=6, feature_bits=4, time_steps=2,
                        layers=(LayerParams(10, state_bits=10, threshold=20, leak_shift=2, in_shift=1),
                                LayerParams(7, state_bits=8, threshold=6, leak_shift=1, reset=ResetMode.ZERO)),
                        readout=ReadoutParams(3, state_bits=12)).validate()
    lws = [LayerWeights(rng.integers(-8, 8, (net.fan_in(i), lp.size)), rng.integers(-8, 8, (lp.size, lp.size)))
           for i, lp in enumerate(net.layers)]
    model = Model(net, lws, rng.integers(-8, 8, (7, 3)), ("a", "b", "c"), None, {"kind": "test"})
    utts = [rng.integers(0, 16, (n, 6)) * (rng.random((n, 6)) < 0.6) for n in (9, 5)]
    return model, HardwareParams(pe_count=4, scan_width=4), utts


@pytest.mark.slow
def test_dense_mode_same_results_more_cycles(tmp_path):
    """Zero-skip off: the same results, the dense counters of golden.cycles.dense_mode_counters, more cycles."""
    model, hw, utts = _hand_config()
    res = simulate("icarus", model, hw, utts, tmp_path, load_port=True, dense=True, seed=31, stall_p=0.2,
                   preload_p=0.5)
    c = _check(model, hw, utts, res, dense=True)
    sparse = cycle_counts(model, hw, utts).sum(-1)
    assert sum(c["cycles"]) > int(sparse.sum())
    assert c["counters_total"]["in_events"] == sum(len(u) for u in utts) * (6 + 10 + 7)
    assert c["counters_total"]["rec_events"] == sum(len(u) for u in utts) * (10 + 7)


def _shipped_inputs(n):
    from golden.data import PROJECT_ROOT, read_manifest
    from golden.frontend import features_from_file
    from golden.modelfile import load_model
    # the first accelerator runs binary spikes only: the binary FSDD model (the shipped one is multi-level)
    model = load_model(PROJECT_ROOT / "models" / "fsdd_binary.npz")
    d = real_data("fsdd")          # skips, naming the folder, when the data set is absent: never a stand-in
    utts = read_manifest(d, "test", "digit")
    return model, [features_from_file(u.path, model.frontend) for u in utts[::150][:n]]


@pytest.mark.slow
@pytest.mark.data
@pytest.mark.parametrize("sim", ["icarus", "verilator"])
def test_shipped_model_on_speech(sim, tmp_path):
    model, utts = _shipped_inputs(2)
    hw = HardwareParams()
    res = simulate(sim, model, hw, utts, tmp_path, bubble_p=0.1, stall_p=0.1, preload_p=0.5)
    _check(model, hw, utts, res)


@pytest.fixture(scope="module")
def one_run(tmp_path_factory):
    model, hw, utts = _hand_config()
    return model, hw, utts, simulate("icarus", model, hw, utts, tmp_path_factory.mktemp("mut"), load_port=True,
                                     preload_p=0.5)


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


def test_handshake_model_change_is_caught(one_run, monkeypatch):
    """The testbench's own timing is compared with the cycle model: one handshake cycle more or less in the
    model turns every waiting frame red, although the RTL's counter still agrees."""
    model, hw, utts, res = one_run
    c = compare(model, hw, utts, res)
    assert c["latency_mismatches"] == 0 and c["periods_checked"] > 0
    monkeypatch.setattr(tb.runner, "HANDSHAKE_IN", 2)
    c = compare(model, hw, utts, res)
    assert c["latency_mismatches"] == c["periods_checked"] + sum(1 for row in res.timing if row[7] and row[5])
    monkeypatch.setattr(tb.runner, "HANDSHAKE_IN", 1)
    monkeypatch.setattr(tb.runner, "HANDSHAKE_OUT", 2)      # the DUT's out.valid falls one edge earlier
    assert compare(model, hw, utts, res)["latency_mismatches"] == len(res.timing)


def test_model_too_big_for_hardware_is_refused():
    net = default_network(hidden=(300, 16))
    with pytest.raises(ParamError, match=r"layers\[0\]\.size = 300 .*max_neurons"):
        Accelerator(net, HardwareParams())
