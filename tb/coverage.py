"""Functional coverage of the regression: how often the corners that matter were hit.

The numeric corners are counted on golden's own run of the same input (:func:`golden.network.run_batch` with an
``observe`` hook); since every compared frame of the RTL equals golden, the RTL went through the same values.
The stimulus corners (stalls, waiting inputs, resets, writes while busy) are counted from what the testbench
actually did (:attr:`tb.runner.SimResult.timing` and ``stimulus``). :data:`CORNERS` lists every corner with its
meaning; a full regression fails if one of them was never hit (:func:`missing_corners`).
"""
from __future__ import annotations

from collections import Counter

import numpy as np

from golden.arith import ceil_div
from golden.network import run_batch
from golden.params import ResetMode

__all__ = ["CORNERS", "Coverage", "missing_corners"]

_LAYERS = (0, 1, 2)
CORNERS = {}
for _l in _LAYERS:
    CORNERS[f"sat_high_l{_l}"] = f"layer {_l}: a potential saturated at the format's maximum"
    CORNERS[f"sat_low_l{_l}"] = f"layer {_l}: a potential saturated at the format's minimum"
    CORNERS[f"at_threshold_l{_l}"] = f"layer {_l}: a potential exactly at the threshold (fires)"
CORNERS.update({
    "refused_frames": "the core: a bad configuration write, then every frame refused with golden's flags",
    "multi_level_spike": "the core: a spike of level 2 or more (a multi-level spike, its level the payload)",
    "spike_level_clipped": "the core: a potential of D + 1 thresholds or more in a layer of D >= 2 levels (the "
                           "level is clipped at D)",
    "multi_level_reset_zero": "the core: a spike of level 2 or more in a layer with reset = zero",
    "lane_idle_in_stage": "the core: a stage in which some lanes read entries and another lane reads none",
    "lane_skew": "the core: a stage whose busiest lane reads at least twice the mean lane's entries (and 4 or more)",
    "readout_sat_high": "a class potential saturated high",
    "readout_sat_low": "a class potential saturated low",
    "all_spike_frame": "a frame in which every neuron of a layer (of 2 or more) fired",
    "no_spike_frame": "a frame in which no neuron of a layer fired",
    "fire_reset_subtract": "a spike in a layer with reset = subtract",
    "fire_reset_zero": "a spike in a layer with reset = zero",
    "partial_mask": "a neuron firing at some but not all of T > 1 steps (a merged event with a partial mask)",
    "argmax_tie": "an utterance ending with two classes tied for the maximum",
    "argmax_tie_nonzero": "a tie at a non-zero maximum",
    "time_steps_1": "frames at T = 1", "time_steps_2": "frames at T = 2", "time_steps_3": "frames at T = 3",
    "time_steps_4": "frames at T = 4",
    "pe_gt_n": "a layer or readout with fewer outputs than PEs",
    "multi_chunk": "a layer with more than one chunk of P outputs",
    "partial_chunk": "a layer whose last chunk has idle PEs",
    "layer_no_events": "a layer with no event in a frame (ACC replays nothing; zero-skip on)",
    "scan_group_multi_event": "a find-first-set group of layer 0 that holds two or more events (zero-skip on)",
    "scan_group_empty": "a find-first-set group of layer 0 with no event (one cycle; zero-skip on)",
    "layer_size_1": "a layer of one neuron",
    "layer_at_capacity": "a layer exactly as large as hardware.max_neurons",
    "features_at_capacity": "n_features = hardware.max_features",
    "classes_at_capacity": "readout.size = hardware.max_classes",
    "time_steps_at_capacity": "network T = hardware.time_steps",
    "t_below_capacity": "network T below hardware.time_steps",
    "narrow_state": "a layer state of at most 4 bits",
    "wide_state": "a state of 24 bits or more",
    "leak_off": "a layer without leak (leak_shift 0)",
    "leak_max": "leak_shift = state_bits - 1",
    "large_shift": "an input or recurrent shift of 8 or more",
    "weight_bits_not_4": "weights of 2, 3, 5 or 8 bits",
    "zero_frame": "an input frame of all zeros", "all_max_frame": "an input frame with every feature at its maximum",
    "long_utterance": "an utterance of 150 frames or more",
    "dense_mode": "frames with zero-skip off (dense counters compared)",
    "weights_via_port": "weights loaded through the write port", "weights_at_elaboration": "weights set at elaboration",
    "input_bubble": "frames presented after input bubbles",
    "output_stall": "an output held (ready low) for 1 to 999 cycles",
    "output_held_1000": "an output held for 1000 cycles or more",
    "ready_always": "out.ready tied high",
    "next_frame_waiting": "the next frame presented while the output was still pending",
    "busy_write": "a weight write attempted while busy (ignored)",
    "reset_mid_frame": "reset asserted while a frame was being computed (next utterance exact)",
    "reset_output_pending": "reset asserted while a finished frame's output word waited (next utterance exact)",
    "reset_between_frames": "reset asserted between two frames of an utterance",
    "first_with_live_state": "an utterance starting while the previous one left non-zero potentials",
})
# The controller's states (IDLE, GEN_FF, GEN_REC, ACC_INIT, ACC, UPD, OUT) are each visited by every frame (the
# FSM is a fixed sequence per layer); the paths through them that a frame can miss are the corners above:
# layer_no_events (ACC with nothing to replay), multi_chunk (ACC -> UPD -> ACC), scan_group_* (GEN),
# output_stall / output_held_1000 (OUT held), input_bubble / next_frame_waiting (IDLE), reset_* (any state).


def missing_corners(hits: dict) -> list:
    return [c for c in CORNERS if not hits.get(c)]


class Coverage:
    def __init__(self):
        self.hits: Counter = Counter()

    def merge(self, hits: dict) -> None:
        self.hits.update(hits)

    def add(self, cfg, res) -> None:
        """Count the corners of one simulated configuration (``cfg``: :class:`tb.regress.Config`, ``res``: its
        :class:`tb.runner.SimResult`)."""
        model, hw, stim, h = cfg.model, cfg.hw, cfg.stim, self.hits
        if stim.get("extra_writes"):              # the core refused every frame: nothing else was exercised
            h["refused_frames"] += int(bool(res.outputs) and all(not o.get("ran", 1) for o in res.outputs))
            return
        net = model.network
        L, T, P, S = len(net.layers), net.time_steps, hw.pe_count, hw.scan_width
        utts = [np.asarray(u)[:k] for u, k in zip(cfg.utterances, res.kept) if k > 0]
        if not utts:
            return
        fmts = [lp.state_format for lp in net.layers] + [net.readout.state_format]

        def observe(f, l, t, total, v, active):
            a = active[:, None]
            name = f"l{l}" if l < L else None
            hi, lo = (total > fmts[l].max) & a, (total < fmts[l].min) & a
            if name is None:
                h["readout_sat_high"] += int(hi.sum())
                h["readout_sat_low"] += int(lo.sum())
            elif l in _LAYERS:
                h[f"sat_high_{name}"] += int(hi.sum())
                h[f"sat_low_{name}"] += int(lo.sum())
                h[f"at_threshold_{name}"] += int(((v == net.layers[l].threshold) & a).sum())
            if name is not None and net.layers[l].spike_levels > 1:
                lp_ = net.layers[l]
                h["spike_level_clipped"] += int(((v >= (lp_.spike_levels + 1) * lp_.threshold) & a).sum())

        trace = run_batch(model, utts, observe=observe)
        frames = int(trace.lengths.sum())
        active = np.arange(trace.readout.shape[1])[None, :] < trace.lengths[:, None]
        for l, (lp, s) in enumerate(zip(net.layers, trace.spikes)):
            fired = s.any(axis=2)                                   # (B, F, N)
            if lp.size >= 2:
                h["all_spike_frame"] += int((fired.all(-1) & active).sum())
            h["no_spike_frame"] += int((~fired.any(-1) & active).sum())
            h["fire_reset_subtract" if lp.reset is ResetMode.SUBTRACT else "fire_reset_zero"] += int(
                np.count_nonzero(s))
            h["multi_level_spike"] += int((s >= 2).sum())
            if lp.reset is ResetMode.ZERO:
                h["multi_level_reset_zero"] += int((s >= 2).sum())
            if T > 1:
                h["partial_mask"] += int((fired & ~s.all(axis=2)).sum())
            K = ceil_div(lp.size, P)
            h["pe_gt_n"] += frames * (lp.size < P)
            h["multi_chunk"] += frames * (K > 1)
            h["partial_chunk"] += frames * (K > 1 and lp.size % P != 0)
            h["layer_size_1"] += frames * (lp.size == 1)
            h["layer_at_capacity"] += frames * (lp.size == hw.max_neurons)
            h["narrow_state"] += frames * (lp.state_bits <= 4)
            h["leak_off"] += frames * (lp.leak_shift == 0)
            h["leak_max"] += frames * (lp.leak_shift == lp.state_bits - 1)
            h["large_shift"] += frames * (max(lp.in_shift, lp.rec_shift) >= 8)
            h["wide_state"] += frames * (lp.state_bits >= 24)
        h["wide_state"] += frames * (net.readout.state_bits >= 24)
        h["pe_gt_n"] += frames * (net.readout.size < P)
        events = sum(trace.counters[k] for k in ("in_events", "rec_events"))      # (B, F, L + 1)
        sparse = not stim.get("dense")          # zero-skip off: every source is an event, no group is empty
        h["layer_no_events"] += sparse * int(((events == 0) & active[:, :, None]).sum())
        x = np.zeros(trace.readout.shape[:2] + (net.n_features,), dtype=np.int64)
        for b, u in enumerate(utts):
            x[b, :len(u)] = u
        groups = ceil_div(net.n_features, S)
        nz = np.zeros(x.shape[:2] + (groups * S,), dtype=np.int64)
        nz[..., :net.n_features] = x != 0
        per_group = nz.reshape(x.shape[:2] + (groups, S)).sum(-1)
        h["scan_group_multi_event"] += sparse * int(((per_group >= 2) & active[..., None]).sum())
        h["scan_group_empty"] += sparse * int(((per_group == 0) & active[..., None]).sum())
        h["zero_frame"] += int(((x == 0).all(-1) & active).sum())
        h["all_max_frame"] += int(((x == net.feature_format.max).all(-1) & active).sum())
        h["long_utterance"] += sum(1 for u in utts if len(u) >= 150)
        top = np.sort(trace.potentials, axis=1)
        if top.shape[1] >= 2:
            tie = top[:, -1] == top[:, -2]
            h["argmax_tie"] += int(tie.sum())
            h["argmax_tie_nonzero"] += int((tie & (top[:, -1] != 0)).sum())
        idx = [i for i, k in enumerate(res.kept) if k > 0]          # utterance of each row of the trace
        for j in range(len(idx) - 1):                                # ran to its end, the next one right after
            whole = res.kept[idx[j]] == len(cfg.utterances[idx[j]]) and idx[j + 1] == idx[j] + 1
            h["first_with_live_state"] += int(whole and np.abs(trace.potentials[j]).sum() > 0)
        if stim.get("core"):       # each lane walks its own lists: stages where the lanes' loads differ
            from golden.core_cycles import _stages
            act, stages = _stages(model, hw, utts, trace, bool(stim.get("dense")), bool(stim.get("all_blocks")))
            for ff, rec, c_ff, c_rec, n_out in stages:
                lanes = ff.astype(np.int64) @ c_ff + (0 if rec is None else rec.astype(np.int64) @ c_rec)
                lanes = lanes[..., :min(P, n_out)]      # the lanes that own an output of the stage
                n = lanes.shape[-1]
                busy = lanes.sum(-1) > 0
                h["lane_idle_in_stage"] += int((busy & (lanes == 0).any(-1) & act).sum())
                h["lane_skew"] += int(((lanes.max(-1) >= 4) & (lanes.max(-1) * n >= 2 * lanes.sum(-1)) & busy
                                       & act).sum()) * (n > 1)
        h[f"time_steps_{T}"] += frames
        h["features_at_capacity"] += frames * (net.n_features == hw.max_features)
        h["classes_at_capacity"] += frames * (net.readout.size == hw.max_classes)
        h["time_steps_at_capacity"] += frames * (T == hw.time_steps)
        h["t_below_capacity"] += frames * (T < hw.time_steps)
        h["weight_bits_not_4"] += frames * (net.weight_bits != 4)
        h["dense_mode"] += frames * bool(stim.get("dense"))
        h["weights_via_port" if stim.get("load_port") else "weights_at_elaboration"] += 1
        h["ready_always"] += frames * bool(stim.get("ready_always"))
        for key in ("input_bubble", "busy_write", "reset_mid_frame", "reset_output_pending", "reset_between_frames"):
            h[key] += int(res.stimulus.get(key, 0))
        for row in res.timing:
            hold, nxt = row[5], row[7]
            h["output_held_1000" if hold >= 1000 else "output_stall"] += hold > 0
            h["next_frame_waiting"] += bool(nxt)


def markdown(hits: dict, columns: int = 3) -> str:
    """The coverage as a Markdown table, ``columns`` corners to a row (for docs/verification.md)."""
    cells = [f"{c} | {hits.get(c, 0):,}" for c in CORNERS]
    head = " | ".join(["corner | hits"] * columns)
    rows = [head, " | ".join(["---|---:"] * columns)]
    for i in range(0, len(cells), columns):
        row = cells[i:i + columns]
        row += [" | "] * (columns - len(row))
        rows.append(" | ".join(row))
    return "\n".join(f"| {r} |" for r in rows)


# python -m tb.coverage build/report/regress.json: the coverage table of docs/verification.md
if __name__ == "__main__":
    import json
    import sys

    report = json.loads(open(sys.argv[1] if len(sys.argv) > 1 else "build/report/regress.json").read())
    print(markdown(report["coverage"]))
