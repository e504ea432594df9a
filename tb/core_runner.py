"""The configurable core (``rtl/core.py``) under cocotb: one Verilog file per :class:`HardwareParams`, any model
loaded through the configuration stream at run time (:func:`golden.image.load_image`), every frame compared with
golden (spikes, readout potentials, decision, counters), with the core's cycle model
(:mod:`golden.core_cycles`) and with the handshake timing the testbench measured itself.

The testbench is :mod:`tb.cocotb_accel` (the same witness as for the model-specific accelerator).
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np

from golden.core_cycles import block_reads, core_cycle_counts, core_max_frame_cycles
from golden.cycles import dense_mode_counters
from golden.image import FLAGS, addr_bits, config_errors, decode_image, load_image
from golden.model import Model
from golden.network import COUNTERS, run_batch
from golden.params import HardwareParams
from rtl.build import CORE_TOP, build_core_verilog
from rtl.core import CORE_COUNTERS, core_layouts

from .runner import SimError, SimResult, _timing_errors, build_sim, ensure_simulator, kept_frames, run_job

__all__ = ["simulate_core", "compare_core", "decode_output", "pack_config"]


def pack_config(writes, hw: HardwareParams) -> list:
    """Configuration writes as ``cfg`` stream payloads (``addr`` low, then ``data``), hex strings."""
    ab = addr_bits(hw)
    return [hex(a | d << ab) for a, d in writes]


def _field(word: int, layout, name):
    f = layout[name]
    return (word >> f.offset) & ((1 << f.width) - 1)


def _signed(v: int, bits: int) -> int:
    return v - (1 << bits) if v >> (bits - 1) & 1 else v


def decode_output(word: int, hw: HardwareParams, net) -> dict:
    """One output word of the core (with ``debug``) for a model of network ``net``: ``decision``, ``ran``,
    ``flags`` (set of names), ``readout`` (C,), ``spikes`` (per layer (T, N), the levels), ``counters``."""
    lay = core_layouts(hw, debug=True)["output"]
    res = _field(word, lay, "result")
    rl = lay["result"].shape
    out = {"decision": _field(res, rl, "decision"), "ran": _field(res, rl, "ran")}
    st = _field(res, rl, "status")
    out["flags"] = {f for i, f in enumerate(FLAGS) if st >> i & 1}
    ro = _field(word, lay, "readout")
    sb = hw.max_state_bits
    out["readout"] = np.array([_signed(ro >> (c * sb) & ((1 << sb) - 1), sb) for c in range(net.readout.size)],
                              dtype=np.int64)
    spk = _field(word, lay, "spikes")
    N, T, sb = hw.max_neurons, hw.time_steps, hw.spike_bits
    out["spikes"] = []
    for l, lp in enumerate(net.layers):
        rows = []
        for t in range(net.time_steps):
            levels = spk >> ((l * T + t) * N * sb) & ((1 << (N * sb)) - 1)
            rows.append([levels >> (j * sb) & ((1 << sb) - 1) for j in range(lp.size)])
        out["spikes"].append(np.array(rows, dtype=np.uint8))
    cnt = _field(word, lay, "counters")
    out["counters"] = {c: cnt >> (32 * i) & 0xFFFFFFFF for i, c in enumerate(CORE_COUNTERS)}
    return out


def simulate_core(sim: str, model: Model, hw: HardwareParams, utterances, work_dir: Path, *, dense: bool = False,
                  all_blocks: bool = False, bubble_p: float = 0.0, stall_p: float = 0.0, long_stall_p: float = 0.0,
                  preload_p: float = 0.0, busy_write_p: float = 0.0, ready_always: bool | None = None, aborts=(),
                  seed: int = 0, verilog: Path | None = None, extra_writes=(), fault: str | None = None) -> SimResult:
    """Configure the core with ``model`` through its ``cfg`` stream and run ``utterances`` through it on ``sim``.
    ``extra_writes`` (``(addr, data)``) follow the model's image (to probe the status flags). Stimulus:
    ``bubble_p`` input bubbles, ``stall_p`` output stalls, ``preload_p`` the next frame offered early,
    ``busy_write_p`` a configuration write offered while a frame is computed (it must wait), ``aborts`` resets
    as ``(utterance, frame, delay)`` (see :func:`tb.runner.simulate`): the loaded model survives them. ``fault``:
    a deliberate RTL bug of :data:`rtl.core.CORE_FAULTS` (the regression's fault campaign)."""
    ensure_simulator(sim)
    work_dir = Path(work_dir).resolve()
    net = model.network
    t0 = time.perf_counter()
    writes = load_image(model, hw, all_blocks=all_blocks) + [tuple(w) for w in extra_writes]
    if verilog is None:
        verilog = build_core_verilog(hw, work_dir / "verilog", fault=fault)
    built = build_sim(sim, verilog, CORE_TOP, work_dir)
    build_s = time.perf_counter() - t0
    frames = np.concatenate([np.asarray(u, dtype=np.int64) for u in utterances])
    lengths = np.array([len(u) for u in utterances], dtype=np.int64)
    aborts = [tuple(int(x) for x in a) for a in aborts]
    kept = kept_frames(lengths, aborts)
    if ready_always is None:
        ready_always = stall_p == 0 and long_stall_p == 0
    watchdog = 2 * core_max_frame_cycles(model, hw, all_blocks) + 100
    meta = {"seed": seed, "dense": dense, "bubble_p": bubble_p, "stall_p": stall_p, "long_stall_p": long_stall_p,
            "preload_p": preload_p, "busy_write_p": busy_write_p, "ready_always": bool(ready_always), "aborts": aborts,
            "watchdog_cycles": int(watchdog), "feature_bits": hw.max_feature_bits, "core": True}
    job = {"frames": frames, "lengths": lengths, "meta": json.dumps(meta),
           "config": np.array(pack_config(writes, hw))}
    result, wall = run_job(sim, built, CORE_TOP, job, work_dir / f"run_core_{sim}_{os.getpid()}")
    words = result["words"]
    if len(words) != sum(kept):
        raise SimError(f"{sim}: {len(words)} output words for {sum(kept)} frames")
    outs = [decode_output(int(w, 16), hw, net) for w in words]
    return SimResult(sim, outs, wall, build_s, len(frames), result["timing"], kept, result.get("stimulus", {}))


def refusal(model: Model, hw: HardwareParams, all_blocks: bool = False, extra_writes=()) -> set:
    """The flags with which golden says the core refuses every frame after ``model``'s image and ``extra_writes``
    (:func:`golden.image.decode_image`, plus BAD_CONFIG when :func:`golden.image.config_errors` finds one);
    empty: the frames run."""
    if not extra_writes:
        return set()
    st = decode_image(load_image(model, hw, all_blocks=all_blocks) + [tuple(w) for w in extra_writes], hw)
    return set(st["flags"]) | ({"BAD_CONFIG"} if config_errors(st["regs"], hw) else set())


def _compare_refused(result: SimResult, flags: set) -> dict:
    """Every output must be a refusal: ``ran`` 0, exactly ``flags``, no compute cycle (and the handshakes of a
    frame of 0 cycles)."""
    mism = lmism = 0
    details = []
    for n, o in enumerate(result.outputs):
        bad = []
        if o["ran"] or o["flags"] != flags:
            bad.append(f"ran {o['ran']} flags {sorted(o['flags'])}, golden: refused with {sorted(flags)}")
        if o["counters"]["cycles"]:
            bad.append(f"cycles {o['counters']['cycles']} != 0")
        if bad:
            mism += 1
            if len(details) < 5:
                details.append(f"output {n}: {', '.join(bad)}")
        late = _timing_errors(result.timing, n, 0) if result.timing else ""
        if late:
            lmism += 1
            if len(details) < 10:
                details.append(f"output {n}: {late}")
    return {"frames": len(result.outputs), "mismatches": mism, "cycle_mismatches": 0, "latency_mismatches": lmism,
            "details": details, "counters_total": {}, "decisions": [], "golden_decisions": [],
            "cycles": [int(o["counters"]["cycles"]) for o in result.outputs], "refused": sorted(flags)}


def compare_core(model: Model, hw: HardwareParams, utterances, result: SimResult, dense: bool = False,
                 all_blocks: bool = False, extra_writes=()) -> dict:
    """Every frame of ``result`` against golden: readout, spikes, decision (the argmax so far), counters (and
    ``weight_words`` against :func:`golden.core_cycles.block_reads`), the ``cycles`` counter against
    :func:`golden.core_cycles.core_cycle_counts` and the measured handshakes against it. When ``extra_writes``
    (those given to :func:`simulate_core`) leave a flag set (:func:`refusal`), every frame must be refused
    instead. Never raises on a mismatch: returns counts and the first few described."""
    refused = refusal(model, hw, all_blocks, extra_writes)
    if refused:
        return _compare_refused(result, refused)
    kept = result.kept or [len(u) for u in utterances]
    utts = [np.asarray(u)[:k] for u, k in zip(utterances, kept) if k > 0]
    if not utts:
        return {"frames": 0, "mismatches": 0, "cycle_mismatches": 0, "latency_mismatches": 0, "details": [],
                "counters_total": {}, "decisions": [], "golden_decisions": [], "cycles": []}
    trace = run_batch(model, utts)
    cyc = core_cycle_counts(model, hw, utts, trace, dense=dense, all_blocks=all_blocks).sum(-1)
    words = block_reads(model, hw, utts, trace, dense=dense, all_blocks=all_blocks)
    expected = dense_mode_counters(model, utts, trace) if dense else trace.counters
    mism = cmism = lmism = 0
    details, n = [], 0
    for b in range(len(utts)):
        tr = trace[b]
        for f in range(tr.n_frames):
            o = result.outputs[n]
            bad = []
            if not o["ran"] or o["flags"]:
                bad.append(f"not run (flags {sorted(o['flags'])})")
            if not np.array_equal(o["readout"], tr.readout[f]):
                bad.append("readout")
            if o["decision"] != int(np.argmax(tr.readout[f])):
                bad.append("decision")
            for l, s in enumerate(tr.spikes):
                if not np.array_equal(o["spikes"][l], s[f]):
                    bad.append(f"spikes{l}")
            for c in COUNTERS:
                if o["counters"][c] != int(expected[c][b, f].sum()):
                    bad.append(f"{c} {o['counters'][c]} != {int(expected[c][b, f].sum())}")
            if o["counters"]["weight_words"] != int(words[b, f]):
                bad.append(f"weight_words {o['counters']['weight_words']} != {int(words[b, f])}")
            if bad:
                mism += 1
                if len(details) < 5:
                    details.append(f"utterance {b} frame {f}: {', '.join(bad)}")
            if o["counters"]["cycles"] != int(cyc[b, f]):
                cmism += 1
                if len(details) < 10:
                    details.append(f"utterance {b} frame {f}: cycles core {o['counters']['cycles']} "
                                   f"model {int(cyc[b, f])}")
            if result.timing:
                late = _timing_errors(result.timing, n, int(cyc[b, f]))
                if late:
                    lmism += 1
                    if len(details) < 15:
                        details.append(f"utterance {b} frame {f}: {late}")
            n += 1
    totals = {k: int(sum(o["counters"][k] for o in result.outputs)) for k in CORE_COUNTERS} if n else {}
    return {"frames": n, "mismatches": mism, "counters_total": totals, "cycle_mismatches": cmism, "latency_mismatches": lmism,
            "details": details, "decisions": [int(result.outputs[i]["decision"]) for i in
                                              np.cumsum([len(u) for u in utts]) - 1],
            "golden_decisions": [int(d) for d in trace.decisions],
            "cycles": [int(o["counters"]["cycles"]) for o in result.outputs]}
