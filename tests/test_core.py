"""The configurable core (accelerator v2): golden's lane-list weight format, configuration map and cycle model, and
the core itself on Icarus (one Verilog file, models loaded at run time, bit- and cycle-exact)."""
from __future__ import annotations

import numpy as np
import pytest

import golden.core_cycles as core_cycles
from golden.core_cycles import core_cycle_counts, stage_cycles
from golden.image import (FLAGS, REGION_BLOCKS, REGION_INDEX, REGION_REGS, config_errors, decode_image,
                          load_image, model_from_image, offset_bits, reg_addr)
from golden.model import random_model
from golden.modelfile import load_model
from golden.params import HardwareParams, LayerParams, NetworkParams, ParamError, ReadoutParams, ResetMode
from golden.sparse import compress, format_bits, lane_counts, row_blocks

HW = HardwareParams(pe_count=4, time_steps=2, max_features=16, max_neurons=32, max_classes=4, max_layers=2,
                    scan_width=4, weight_words=512, index_rows=160, acc_bits=20, max_state_bits=16,
                    max_spike_level=3)


def small_net(T=2, sizes=(20, 13), levels=(1, 1)):
    return NetworkParams(n_features=10, time_steps=T, layers=(
        LayerParams(size=sizes[0], state_bits=12, threshold=20, leak_shift=2, spike_levels=levels[0]),
        LayerParams(size=sizes[1], state_bits=10, threshold=9, leak_shift=0, reset=ResetMode.ZERO,
                    spike_levels=levels[1])),
        readout=ReadoutParams(size=3, state_bits=14)).validate()


def utterances(rng, n=3, F=10):
    return [rng.integers(0, 16, (int(rng.integers(3, 8)), F)) * (rng.random((1, F)) < 0.6) for _ in range(n)]


# ---------------------------------------------------------------------------------------------- golden side
@pytest.mark.parametrize("name", ["fsdd", "arabic_digits"])
def test_image_of_a_shipped_model_decodes_to_the_same_model(name):
    model = load_model(f"models/{name}.npz")
    hw = HardwareParams()
    writes = load_image(model, hw)
    back = model_from_image(writes, hw, model)
    assert back.network == model.network
    for a, b in zip(model.layers, back.layers):
        assert np.array_equal(a.w_in, b.w_in) and np.array_equal(a.w_rec, b.w_rec)
    assert np.array_equal(model.w_out, back.w_out)
    st = decode_image(writes, hw)
    assert not st["flags"] and config_errors(st["regs"], hw) == []


def test_compress_stores_exactly_the_non_zero_weights_in_lane_lists(rng):
    model = random_model(small_net(), seed=3, density=0.3)
    sw = compress(model, 4)
    for name, m in sw.matrices.items():
        w = {"out": model.w_out, **{f"in{l}": lw.w_in for l, lw in enumerate(model.layers)},
             **{f"rec{l}": lw.w_rec for l, lw in enumerate(model.layers)}}[name]
        assert np.array_equal(sw.dense(name), w)
        assert np.array_equal(m.count, lane_counts(model, 4)[name])
        for r in range(m.rows):
            depth = int(m.count[r].max())
            assert (m.base[r + 1] if r + 1 < m.rows else m.first_word + m.words) - m.base[r] == depth
            for p in range(4):
                seg = slice(m.base[r] - m.first_word, m.base[r] - m.first_word + depth)
                c = int(m.count[r, p])
                assert (m.weights[seg, p][:c] != 0).all() and (m.weights[seg, p][c:] == 0).all()
                assert (np.diff(m.chunk[seg, p][:c]) > 0).all()              # ascending chunk ids
                assert np.array_equal(w[r, m.chunk[seg, p][:c] * 4 + p], m.weights[seg, p][:c])
    assert sw.entries == sum(int(np.count_nonzero(a)) for a in model.matrices().values())
    full = compress(model, 4, all_blocks=True)
    assert full.words == sum(m.rows * m.chunks for m in full.matrices.values()) > sw.words
    assert all((m.count == m.chunks).all() for m in full.matrices.values())
    bits = format_bits(model, HW)
    assert bits["lane_lists"]["weights"] == sw.words * 4 * 4 and bits["lane_lists"]["words"] == sw.words
    assert bits["block_sparse"]["words"] == sum(int(v.sum()) for v in row_blocks(model, 4).values())
    assert bits["dense"]["words"] == full.words


def test_model_that_does_not_fit_is_refused_naming_the_field():
    model = random_model(small_net(), seed=0, density=0.5)
    for hw, field in [(HardwareParams(**{**HW.to_dict(), "weight_words": 8}), "weight_words"),
                      (HardwareParams(**{**HW.to_dict(), "index_rows": 50}), "index_rows"),
                      (HardwareParams(**{**HW.to_dict(), "acc_bits": 8}), "acc_bits"),
                      (HardwareParams(**{**HW.to_dict(), "max_neurons": 16}), "max_neurons")]:
        with pytest.raises(ParamError, match=field):
            load_image(model, hw)
    net = small_net()
    shifted = NetworkParams(**{**net.__dict__, "layers": (LayerParams(**{**net.layers[0].__dict__, "in_shift": 9}),
                                                           net.layers[1])}).validate()
    with pytest.raises(ParamError, match="max_shift"):
        load_image(random_model(shifted, seed=0), HardwareParams(**{**HW.to_dict(), "acc_bits": 40}))


def test_decoder_flags_bad_writes():
    ob = offset_bits(HW)
    cases = {"BAD_ADDRESS": (REGION_REGS << ob | 0x0F, 1), "BAD_VALUE": (REGION_REGS << ob | reg_addr("N_LAYERS"), 99),
             "BAD_POINTER": (REGION_INDEX << ob | 0, 510 | 5 << (9 + 4 * 3))}
    for flag, w in cases.items():
        assert decode_image([w], HW)["flags"] == {flag}
        assert decode_image([w, (REGION_REGS << ob | reg_addr("CLEAR"), 0)], HW)["flags"] == set()
    assert decode_image([(3 << ob, 0)], HW)["flags"] == {"BAD_ADDRESS"}
    assert decode_image([(REGION_BLOCKS << ob | HW.weight_words, 0)], HW)["flags"] == {"BAD_ADDRESS"}
    assert config_errors(decode_image([], HW)["regs"], HW)      # a core never configured runs nothing


def test_stage_cycles_by_hand():
    hw = HardwareParams(pe_count=4, scan_width=4)
    # 6 sources in 2 groups: events at 1, 2 (group 0) and 5 (group 1); 8 outputs = 2 chunks. Lane 0's lists of
    # the rows hold 2, 0, 3 entries, lane 1's 1, 1, 0, lanes 2 and 3 nothing.
    ff = np.array([0, 1, 1, 0, 0, 1], dtype=bool)
    c = np.zeros((6, 4), dtype=np.int64)
    c[:, 0] = [9, 2, 0, 9, 9, 3]
    c[:, 1] = [9, 1, 1, 9, 9, 0]
    # scan: group 0 costs 2 cycles (events at cycles 0, 1), group 1 one (event at 2): G = 3, last group has one.
    # lane 0: events to its fetch at 1, (2: its list is empty), 3; reads 1,2 (event 1), 3,4,5 (event 5): end 6.
    # lane 1: reads 1 (event 1), 2 (event 2): end 3. x = max(6, 3) + 1 = 7 (the sweep reads chunk 0 at x), one
    # more chunk read, one last update
    assert int(stage_cycles(ff, None, c, None, 8, hw)) == 7 + 2 + 1
    # lanes run independently: lane 1's reads do not delay lane 0's
    c1 = c.copy()
    c1[:, 1] = [9, 3, 3, 9, 9, 0]          # lane 1: reads 1..3, 4..6: end 7 -> x = 8
    assert int(stage_cycles(ff, None, c1, None, 8, hw)) == 8 + 2 + 1
    # nothing active: G = 2 groups of 1 cycle, x = 2
    assert int(stage_cycles(np.zeros(6, bool), None, c, None, 8, hw)) == 2 + 2 + 1


def test_cycles_grow_with_activity_and_blocks(rng):
    model = random_model(small_net(), seed=2, density=0.4)
    utts = utterances(rng)
    sparse = core_cycle_counts(model, HW, utts).sum(-1)
    dense = core_cycle_counts(model, HW, utts, dense=True, all_blocks=True).sum(-1)
    assert (dense >= sparse).all() and dense.sum() > sparse.sum()


# ---------------------------------------------------------------------------------------------- the RTL
sim = pytest.mark.sim


@pytest.fixture(scope="module")
def core_run(tmp_path_factory):
    """Three different models on ONE Verilog file of the core, on Icarus: binary spikes at T = 2 and T = 1, and
    multi-level spikes (D = 3 and 2, reset by subtraction and to zero) at T = 1."""
    from rtl.build import build_core_verilog
    from tb.core_runner import compare_core, simulate_core
    work = tmp_path_factory.mktemp("core")
    verilog = build_core_verilog(HW, work / "verilog")
    rng = np.random.default_rng(5)
    runs = []
    for net, seed in ((small_net(T=2), 1), (small_net(T=1, sizes=(32, 7)), 2),
                      (small_net(T=1, sizes=(24, 11), levels=(3, 2)), 3)):
        model = random_model(net, seed=seed, density=0.35)
        utts = utterances(rng)
        if seed == 3:    # the multi-level model must fire every level of both layers
            from golden.network import run_batch
            tr = run_batch(model, utts)
            assert {1, 2, 3} <= set(np.unique(tr.spikes[0]).tolist()), np.unique(tr.spikes[0])
            assert {1, 2} <= set(np.unique(tr.spikes[1]).tolist()), np.unique(tr.spikes[1])
        res = simulate_core("icarus", model, HW, utts, work, verilog=verilog, bubble_p=0.2, stall_p=0.2,
                            preload_p=0.3, busy_write_p=0.3, seed=seed)
        runs.append((model, utts, res, compare_core(model, HW, utts, res)))
    return runs


@sim
def test_one_verilog_runs_three_models_bit_and_cycle_exact(core_run):
    for model, utts, res, cmp in core_run:
        assert cmp["frames"] == sum(len(u) for u in utts) > 0
        assert (cmp["mismatches"], cmp["cycle_mismatches"], cmp["latency_mismatches"]) == (0, 0, 0), cmp["details"]
        assert cmp["decisions"] == cmp["golden_decisions"]
        assert res.stimulus["busy_write"] > 0          # writes were offered while busy, and waited


@sim
def test_cycle_model_change_is_caught(core_run, monkeypatch):
    from tb.core_runner import compare_core
    model, utts, res, _ = core_run[0]
    monkeypatch.setattr(core_cycles, "FETCH_DRAIN", core_cycles.FETCH_DRAIN + 1)
    cmp = compare_core(model, HW, utts, res)
    assert cmp["cycle_mismatches"] == cmp["frames"]


@sim
def test_golden_change_is_caught(core_run):
    from tb.core_runner import compare_core
    model, utts, res, _ = core_run[0]
    other = model.replace(w_out=-model.w_out)
    assert compare_core(other, HW, utts, res)["mismatches"] > 0


@sim
@pytest.mark.slow
@pytest.mark.parametrize("fault,run", [("acc_not_transparent", 0), ("last_block_dropped", 0), ("lanes_share_count", 0),
                                       ("cfg_ready_while_busy", 0), ("spike_payload_one", 2)])
def test_injected_core_faults_are_caught(fault, run, core_run, tmp_path):
    """make regress --core --faults in small: a model's stimulus on a core with a deliberate bug (a unit's
    datapath, the fetch, the configuration handshake, the multi-level spike payload) fails the comparison or the
    testbench's own checks."""
    from rtl.core import CORE_FAULTS
    from tb.core_runner import compare_core, simulate_core
    from tb.runner import SimError
    assert fault in CORE_FAULTS
    model, utts, _, _ = core_run[run]
    try:
        res = simulate_core("icarus", model, HW, utts, tmp_path, bubble_p=0.2, stall_p=0.2, preload_p=0.3,
                            busy_write_p=0.3, seed=1, fault=fault)
    except SimError as e:
        assert "cfg.ready is high while the core is busy" in str(e)
        return
    cmp = compare_core(model, HW, utts, res)
    assert cmp["mismatches"] > 0 and fault != "cfg_ready_while_busy", cmp


@sim
def test_dense_baseline_on_the_core(tmp_path, rng):
    from tb.core_runner import compare_core, simulate_core
    model = random_model(small_net(), seed=4, density=0.3)
    utts = utterances(rng, n=2)
    res = simulate_core("icarus", model, HW, utts, tmp_path, dense=True, all_blocks=True)
    cmp = compare_core(model, HW, utts, res, dense=True, all_blocks=True)
    assert (cmp["mismatches"], cmp["cycle_mismatches"], cmp["latency_mismatches"]) == (0, 0, 0), cmp["details"]
    sparse = core_cycle_counts(model, HW, utts).sum()
    assert sum(cmp["cycles"]) > sparse


@sim
@pytest.mark.parametrize("flag,write", [("BAD_ADDRESS", (REGION_REGS, 0x0F, 1)),
                                        ("BAD_VALUE", (REGION_REGS, reg_addr("N_LAYERS"), 99)),
                                        ("BAD_POINTER", (REGION_INDEX, 0, 510 | 5 << 9)),
                                        ("BAD_CONFIG", (REGION_REGS, reg_addr("SIZE", 0), 0)),
                                        # multi-level spikes at T = 2 (the model is T = 2)
                                        ("BAD_CONFIG", (REGION_REGS, reg_addr("SPIKE_LEVELS", 1), 2)),
                                        ("BAD_CONFIG", (REGION_REGS, reg_addr("SPIKE_LEVELS", 0), 0))])
def test_bad_configuration_is_flagged_and_no_frame_runs(flag, write, tmp_path, rng):
    from tb.core_runner import compare_core, simulate_core
    model = random_model(small_net(), seed=4, density=0.3)
    region, off, data = write
    utts = utterances(rng, n=1)
    extra = [(region << offset_bits(HW) | off, data)]
    res = simulate_core("icarus", model, HW, utts, tmp_path, extra_writes=extra, stall_p=0.3, preload_p=0.5)
    for o in res.outputs:
        assert o["flags"] == {flag} and o["ran"] == 0 and o["counters"]["cycles"] == 0
    cmp = compare_core(model, HW, utts, res, extra_writes=extra)      # the regression's check of a refusal
    assert cmp["refused"] == [flag] and cmp["frames"] == len(utts[0])
    assert (cmp["mismatches"], cmp["latency_mismatches"]) == (0, 0), cmp["details"]
    other = "BAD_VALUE" if flag != "BAD_VALUE" else "BAD_ADDRESS"
    res.outputs[0]["flags"] = {other}
    assert compare_core(model, HW, utts, res, extra_writes=extra)["mismatches"] == 1
    assert FLAGS.index(flag) >= 0


# ---------------------------------------------------------------------------------------------- rsnn image
def test_rsnn_image_writes_the_load_image_and_refuses_what_does_not_fit(tmp_path, capsys):
    import json
    from rsnn.cli import main
    out = tmp_path / "img.json"
    assert main(["image", "--model", "fsdd", "--out", str(out)]) == 0
    img = json.loads(out.read_text())
    hw = HardwareParams(**img["hardware"])
    writes = [(int(a, 16), int(d, 16)) for a, d in img["writes"]]
    model = load_model("models/fsdd.npz")
    back = model_from_image(writes, hw, model)
    assert back.network == model.network and np.array_equal(back.w_out, model.w_out)
    assert main(["image", "--model", "fsdd", "--weight-words", "100", "--out", str(tmp_path / "b.json")]) == 2
    assert "weight_words = 100" in capsys.readouterr().err and not (tmp_path / "b.json").exists()
    assert main(["image", "--model", "models/fsdd.npz", "--out", "models/fsdd.npz"]) == 2
    assert "reads" in capsys.readouterr().err


@sim
def test_resets_mid_frame_keep_the_loaded_model(tmp_path, rng):
    """Resets in the middle of a frame, while the output waits and between frames: the frames before each are
    exact, and the model loaded before the resets still runs (the configuration survives a reset)."""
    from tb.core_runner import compare_core, simulate_core
    model = random_model(small_net(), seed=6, density=0.4)
    utts = utterances(rng, n=4)
    aborts = [(0, 2, 5), (1, 1, 400), (2, 3, -1)]
    res = simulate_core("icarus", model, HW, utts, tmp_path, aborts=aborts, stall_p=0.3, seed=3)
    cmp = compare_core(model, HW, utts, res)
    assert cmp["frames"] == 2 + 1 + 3 + len(utts[3])
    assert (cmp["mismatches"], cmp["cycle_mismatches"], cmp["latency_mismatches"]) == (0, 0, 0), cmp["details"]
    assert res.stimulus["reset_mid_frame"] + res.stimulus["reset_output_pending"] == 2


@sim
@pytest.mark.parametrize("threshold,levels", [(32767, 1), (1000, 1), (12000, 3)])
def test_saturation_at_the_widest_state_format(threshold, levels, tmp_path, rng):
    """Layers and readout at the core's widest state format, pushed into saturation both ways (large shifts,
    dense weights, no leak): exact. Layer 0 fires from saturation and resets by subtraction, with its threshold
    at the top of the range (smax - threshold = 0) and below it (the core's registered smax - threshold); with
    multi-level spikes (D = 3 at T = 1) whose third level (36,000) lies above smax, so that the saturated
    potential fires level 2 and keeps smax - 2 x threshold."""
    from tb.core_runner import compare_core, simulate_core
    from golden.network import run_batch
    net = NetworkParams(n_features=10, time_steps=2 if levels == 1 else 1, layers=(
        LayerParams(size=20, state_bits=16, threshold=threshold, leak_shift=0, in_shift=4 if levels == 1 else 5,
                    rec_shift=5, spike_levels=levels),
        LayerParams(size=9, state_bits=16, threshold=1, leak_shift=1, reset=ResetMode.ZERO, in_shift=7)),
        readout=ReadoutParams(size=4, state_bits=16, in_shift=7)).validate()
    model = random_model(net, seed=8, density=0.9)
    l0 = model.layers[0]
    l0.w_in[:, :10], l0.w_in[:, 10:] = 7, -8                       # half the neurons up, half down
    l1 = model.layers[1]
    l1.w_in[:] = 7
    model.w_out[:, 0], model.w_out[:, 1] = 7, -8
    # the last utterance saturates, then goes silent: what the saturated neurons keep after their reset decides
    # whether they go on firing (the state itself is not in the output word)
    utts = [np.full((6, 10), 15), rng.integers(0, 16, (5, 10)), np.vstack([np.full((2, 10), 15), np.zeros((20, 10), int)])]
    saturated = set()

    def observe(f, l, t, total, v, active):
        if (total > v).any():
            saturated.add((l, "max"))
        if (total < v).any():
            saturated.add((l, "min"))

    tr = run_batch(model, utts, observe=observe)
    assert {(0, "max"), (0, "min"), (2, "max"), (2, "min")} <= saturated, saturated  # layer 0, readout
    assert tr.spikes[0].max() == min(levels, 2)
    hw = HardwareParams(**{**HW.to_dict(), "acc_bits": 24, "max_classes": 4})
    res = simulate_core("icarus", model, hw, utts, tmp_path)
    cmp = compare_core(model, hw, utts, res)
    assert (cmp["mismatches"], cmp["cycle_mismatches"], cmp["latency_mismatches"]) == (0, 0, 0), cmp["details"]


@sim
def test_fewer_layers_than_the_core_holds(tmp_path, rng):
    """A one-layer model on a core built for three: the readout's registers (state bits, shift, index base) are
    its own, not those of the unused layer slots (the regression found this)."""
    from tb.core_runner import compare_core, simulate_core
    hw = HardwareParams(**{**HW.to_dict(), "max_layers": 3})
    net = NetworkParams(n_features=10, time_steps=1, layers=(
        LayerParams(size=12, state_bits=10, threshold=6, leak_shift=1),),
        readout=ReadoutParams(size=3, state_bits=8, in_shift=2)).validate()
    model = random_model(net, seed=9, density=0.6)
    utts = utterances(rng, n=2)
    res = simulate_core("icarus", model, hw, utts, tmp_path)
    cmp = compare_core(model, hw, utts, res)
    assert (cmp["mismatches"], cmp["cycle_mismatches"], cmp["latency_mismatches"]) == (0, 0, 0), cmp["details"]


# ---------------------------------------------------------------------------------------------- regression sample
def _core_sample(n: int, max_cycles: int) -> list:
    """The first ``n`` core configurations of seed 1 whose slowest frame (first accelerator's bound, a proxy) is at
    most ``max_cycles``."""
    from golden.cycles import max_frame_cycles
    from tb.regress import _shape, config_seed
    out, k = [], 0
    while len(out) < n:
        net, hw = _shape(np.random.default_rng(config_seed(1, k)))
        if max_frame_cycles(net, hw) <= max_cycles:
            out.append(k)
        k += 1
    return out


@sim
@pytest.mark.slow
@pytest.mark.parametrize("index", _core_sample(4, 300))
def test_core_regression_sample(index, tmp_path):
    """make regress --core in small: a random configuration (sizes, formats, empty blocks and rows, capacities,
    stimulus with resets and writes offered while busy) on the core, every frame, counter and handshake."""
    from tb.regress import run_task
    r = run_task({"seed": 1, "index": index, "frames": 40, "sim": "icarus", "configs": 1000, "every": 1,
                  "total_frames": 0, "work": str(tmp_path), "sims": "icarus", "core": True})
    assert r.get("error") is None, r["error"]
    assert r["frames"] > 0
    assert (r["mismatches"], r["cycle_mismatches"], r["latency_mismatches"]) == (0, 0, 0), r["details"]
    assert r["decisions_equal"] and "core config" in r["describe"]


@sim
def test_an_entry_naming_a_chunk_past_its_matrix_is_skipped_and_flagged(tmp_path):
    """BAD_CHUNK: a lane entry whose chunk id is past its matrix's outputs (here lane 0 of word 0, row 0 of the
    input matrix, rewritten with the last chunk id the core holds) is skipped with the flag set; the frame that
    met it reports it, and the next frame is refused (the flag is sticky)."""
    from golden.sparse import chunk_bits, entry_bits, max_chunks
    from tb.core_runner import simulate_core
    model = random_model(small_net(), seed=10, density=0.9)
    sw = compress(model, HW.pe_count)
    assert sw.matrices["in0"].count[0, 0] > 0 and max_chunks(HW) - 1 >= sw.matrices["in0"].chunks
    word = 0
    m0 = sw.matrices["in0"]
    for p, (k, w) in enumerate(zip(m0.chunk[0].tolist(), m0.weights[0].tolist())):
        k = max_chunks(HW) - 1 if p == 0 else k
        word |= (k | (w & 0xF) << chunk_bits(HW)) << (entry_bits(HW) * p)
    res = simulate_core("icarus", model, HW, [np.full((2, 10), 15)], tmp_path,
                        extra_writes=[(REGION_BLOCKS << offset_bits(HW) | 0, word)])
    assert res.outputs[0]["ran"] == 1 and res.outputs[0]["flags"] == {"BAD_CHUNK"}
    assert res.outputs[1]["ran"] == 0 and res.outputs[1]["flags"] == {"BAD_CHUNK"}


def test_an_image_that_fills_the_weight_memory_exactly_decodes_to_its_model():
    """A trailing empty row's segment starts at the word past the last one; when the model fills a memory of a
    power-of-two depth exactly, that address does not fit the base field: the image writes base 0 for an empty
    row (its base is never read) instead of spilling the top bit into lane 0's count."""
    from golden.model import LayerWeights
    for seed in range(2000):
        model = random_model(small_net(T=1), seed=seed, density=0.05 + (seed % 90) / 100)
        w_out = model.w_out.copy()
        w_out[-1] = 0                                          # the last row of the last matrix: empty
        model = model.replace(w_out=w_out)
        words = compress(model, 2).words
        if words & (words - 1) == 0:                           # a power of two
            break
    else:
        pytest.fail("no seed gave a power-of-two word count")
    hw = HardwareParams(**{**HW.to_dict(), "pe_count": 2, "weight_words": words, "max_spike_level": 1})
    writes = load_image(model, hw)
    st = decode_image(writes, hw)
    assert not st["flags"]
    back = model_from_image(writes, hw, model)
    assert np.array_equal(back.w_out, model.w_out)
    for a, b in zip(model.layers, back.layers):
        assert np.array_equal(a.w_in, b.w_in) and np.array_equal(a.w_rec, b.w_rec)
