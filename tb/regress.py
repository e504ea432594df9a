"""``make regress``: the random regression of the RTL against golden, on Icarus and Verilator, with functional
coverage, and the fault-injection campaign that shows the regression catches deliberate RTL bugs.

Every configuration is drawn from one seed over the ranges of golden's parameter classes
(:class:`golden.params.NetworkParams`, :class:`golden.params.HardwareParams`): 1 to 4 layers of 1 to 64 neurons
(sometimes exactly the hardware's capacity), 1 to 64 features of 1 to 8 bits, T = 1..4, P = 1..32 (often
more PEs than neurons), scan widths 1..64, state widths from 2 bits (saturating all the time) to 32, every leak
shift, both reset modes, thresholds from 1 to the format's maximum, shifts up to 16, weights of 2 to 8 bits that
are random, extreme, all zero, all max or all min; inputs with zero frames, all-max frames and long utterances;
weights loaded through the write port or set at elaboration; zero-skip on or off (dense counters compared then);
random input bubbles, output stalls (some held for thousands of cycles), inputs presented while busy, weight
writes attempted while busy (documented to be ignored), and resets asserted in the middle of a frame or of an
utterance. Every frame is compared with golden (spikes, readout, counters), the RTL's cycle counter with the cycle
model, and the handshake timing that the testbench measured with the cycle model (:func:`tb.runner.compare`).

A failure prints the one command that reproduces it. Coverage (:mod:`tb.coverage`) counts the corners that were
hit; at full size a corner never hit fails the run. ``--faults`` elaborates each deliberate fault of
:data:`rtl.accel.FAULTS` (with ``--core``: :data:`rtl.core.CORE_FAULTS`) and runs the same configurations (first
simulator) until the fault is caught.

The report is ``build/report/regress.json``.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import shutil
import sys
import time
import zlib
from pathlib import Path

import numpy as np

from golden.cycles import max_frame_cycles
from golden.data import PROJECT_ROOT
from golden.model import LayerWeights, Model
from golden.params import (MAX_TIME_STEPS, HardwareParams, LayerParams, NetworkParams, ReadoutParams,
                           ResetMode)

__all__ = ["Config", "draw_config", "run_task", "main"]

WORK = PROJECT_ROOT / "build" / "regress"
#: corners of the first accelerator that the configurable core cannot hit (its weights are always loaded at
#: run time)
CORE_NOT_APPLICABLE = ("weights_at_elaboration",)
#: ... and those of the core that the first accelerator cannot (it has no configuration flags)
FIRST_NOT_APPLICABLE = ("refused_frames", "multi_level_spike", "spike_level_clipped", "multi_level_reset_zero")
REPORT = PROJECT_ROOT / "build" / "report" / "regress.json"


class Config:
    """One random configuration: model, hardware, utterances and the stimulus (keyword arguments of
    :func:`tb.runner.simulate`)."""

    def __init__(self, index: int, seed: int, model: Model, hw: HardwareParams, utterances: list, stim: dict):
        self.index, self.seed, self.model, self.hw, self.utterances, self.stim = (index, seed, model, hw,
                                                                                   utterances, stim)

    @property
    def frames(self) -> int:
        return sum(len(u) for u in self.utterances)

    def describe(self) -> str:
        net = self.model.network
        sizes = "x".join(str(lp.size) for lp in net.layers)
        levels = "D=" + "/".join(str(lp.spike_levels) for lp in net.layers) + " " \
            if any(lp.spike_levels > 1 for lp in net.layers) else ""
        return (f"{'core ' if self.stim.get('core') else ''}config {self.index}: F={net.n_features}x{net.feature_bits}b layers={sizes} C={net.readout.size} "
                f"T={net.time_steps} {levels}wb={net.weight_bits} P={self.hw.pe_count} S={self.hw.scan_width} "
                f"{'dense ' if self.stim['dense'] else ''}{'bad write ' if self.stim.get('extra_writes') else ''}"
                f"{self.frames} frames")


def config_seed(seed: int, index: int) -> int:
    return zlib.crc32(f"rsnn-regress/{seed}/{index}".encode())


def _size(rng, big: int) -> int:
    r = rng.random()
    if r < 0.12:
        return 1
    if r < 0.55:
        return int(rng.integers(2, 9))
    if r < 0.93:
        return int(rng.integers(9, 33))
    return int(rng.integers(33, big + 1))


def _icarus_cost(net, hw) -> float:
    """Relative Icarus time of one frame: the worst frame's cycles times a proxy of the design's size (Icarus
    evaluates the whole netlist every cycle; a P = 32, T = 2 design runs a few hundred cycles a second)."""
    T = net.time_steps
    size = hw.pe_count * T + (sum(lp.size for lp in net.layers) + net.readout.size) * T / 4 + 8
    return max_frame_cycles(net, hw) * size


def _shape(rng):
    """The network and hardware of one configuration (no weights, no inputs)."""
    T = int(rng.integers(1, MAX_TIME_STEPS + 1))
    n_layers = int(rng.choice([1, 2, 3, 4], p=[0.3, 0.4, 0.18, 0.12]))
    wb = int(rng.choice([2, 3, 4, 4, 4, 5, 8]))
    layers = []
    for _ in range(n_layers):
        sb = int(rng.choice([2, 3, 4, 6, 8, 10, 12, 16, 20, 24]))
        tmax = (1 << (sb - 1)) - 1
        threshold = int(rng.choice([1, tmax, int(rng.integers(1, tmax + 1)), min(tmax, int(rng.integers(1, 33)))]))
        shift = (lambda: int(rng.integers(0, 17)) if rng.random() < 0.05 else int(rng.integers(0, 4)))
        layers.append(LayerParams(size=_size(rng, 64), state_bits=sb, threshold=threshold,
                                  leak_shift=int(rng.integers(0, sb)),
                                  reset=ResetMode.SUBTRACT if rng.random() < 0.5 else ResetMode.ZERO,
                                  in_shift=shift(), rec_shift=shift()))
    rb = int(rng.choice([2, 4, 8, 12, 16, 24, 32]))
    n_features = int(rng.choice([1, int(rng.integers(2, 17)), int(rng.integers(17, 65))], p=[0.1, 0.5, 0.4]))
    net = NetworkParams(n_features=n_features, feature_bits=int(rng.integers(1, 9)), time_steps=T,
                        weight_bits=wb, layers=tuple(layers),
                        readout=ReadoutParams(size=int(rng.choice([2, int(rng.integers(3, 11)), 16],
                                                                  p=[0.25, 0.6, 0.15])),
                                              state_bits=rb, in_shift=int(rng.integers(0, 4)))).validate()
    tight = rng.random() < 0.3          # capacities exactly what the network needs: every size at its maximum
    biggest = max(lp.size for lp in layers)
    hw = HardwareParams(
        pe_count=int(rng.choice([1, 2, 3, 4, 5, 8, 16, 32], p=[.15, .15, .1, .15, .1, .15, .12, .08])),
        time_steps=T if tight else int(rng.integers(T, MAX_TIME_STEPS + 1)),
        max_features=n_features if tight else 64, max_neurons=biggest if tight else max(biggest, 64),
        max_classes=net.readout.size if tight else 16, max_layers=n_layers if tight else 4,
        weight_bits=wb, max_state_bits=max([rb] + [lp.state_bits for lp in layers]) if tight else 32,
        max_feature_bits=net.feature_bits if tight else 8,
        scan_width=int(rng.choice([1, 2, 3, 4, 5, 8, 16, 32, 64])),
        max_spike_level=1).validate()    # binary here, not the default's 2: _spike_levels draws the levels
    hw.check(net)
    return net, hw


def _weights(rng, shape, wb):
    lo, hi = -(1 << (wb - 1)), (1 << (wb - 1)) - 1
    mode = rng.choice(["random", "random", "random", "extreme", "zero", "max", "min"], p=[.3, .2, .15, .2, .05,
                                                                                          .05, .05])
    if mode == "zero":
        return np.zeros(shape, dtype=np.int64)
    if mode in ("max", "min"):
        return np.full(shape, hi if mode == "max" else lo, dtype=np.int64)
    if mode == "extreme":
        w = rng.choice([lo, lo, lo + 1, 0, 1, hi - 1, hi, hi], size=shape)
    else:
        w = rng.integers(lo, hi + 1, size=shape)
    w[rng.random(shape) < rng.uniform(0, 0.95)] = 0
    return w.astype(np.int64)


def _utterance(rng, n: int, net: NetworkParams) -> np.ndarray:
    fmax = (1 << net.feature_bits) - 1
    mode = rng.choice(["sparse", "sparse", "dense", "zero", "max"], p=[.45, .2, .25, .05, .05])
    if mode == "zero":
        return np.zeros((n, net.n_features), dtype=np.int64)
    if mode == "max":
        x = np.full((n, net.n_features), fmax, dtype=np.int64)
    else:
        x = rng.integers(0, fmax + 1, size=(n, net.n_features))
        x[rng.random(x.shape) < (rng.uniform(0.3, 0.95) if mode == "sparse" else rng.uniform(0, 0.3))] = 0
    for f in range(n):                           # some empty frames and some all-max frames
        r = rng.random()
        if r < 0.05:
            x[f] = 0
        elif r < 0.08:
            x[f] = fmax
    return x.astype(np.int64)


def _spike_levels(lrng, net: NetworkParams, hw: HardwareParams) -> tuple:
    """The multi-level spikes of a core configuration, from a generator of its own: (network, max_spike_level).
    A model at T = 1 gets multi-level layers six times in ten (levels up to what the event payload of
    ``max_feature_bits`` holds; the core's capacity exactly that, or more); a binary model sometimes runs on a
    core with multi-level capacity (wider spike memory, levels of 1)."""
    cap = min(LayerParams.MAX_SPIKE_LEVELS, (1 << hw.max_feature_bits) - 1)
    r = lrng.random()
    if cap >= 2 and r < 0.6 and net.time_steps == 1:
        levels = [min(cap, int(lrng.choice([1, 2, 2, 3, 3, 4, 7, 15]))) for _ in net.layers]
        if max(levels) == 1:
            levels[int(lrng.integers(0, len(levels)))] = 2
        net = NetworkParams(**{**net.__dict__, "layers": tuple(
            LayerParams(**{**lp.__dict__, "spike_levels": d}) for lp, d in zip(net.layers, levels))}).validate()
        return net, max(levels) if lrng.random() < 0.4 else int(lrng.integers(max(levels), cap + 1))
    if cap >= 2 and (r < 0.2 or (net.time_steps == 1 and r < 0.75)):
        return net, int(lrng.integers(2, cap + 1))
    return net, 1


def _core_hardware(rng, model: Model, hw: HardwareParams, all_blocks: bool = False, seed: int = 0) -> tuple:
    """The configurable core's version of a configuration (``--core``): multi-level spikes sometimes
    (:func:`_spike_levels`), shifts limited to what its accumulators hold, some weight blocks emptied (empty lane
    lists and empty rows), sometimes whole lanes emptied (lanes with very different loads), and capacities for the
    core (weight words, index rows, accumulator width, largest shift),
    each sometimes exactly what the model needs. Drawn after everything the first accelerator's configuration
    draws, so those stay the same."""
    from golden.sparse import compress
    net, max_level = _spike_levels(np.random.default_rng([seed, 0x5B1]), model.network, hw)
    hw = HardwareParams(**{**hw.to_dict(), "max_spike_level": max_level}).validate()
    if max(net.acc_bits(l) for l in range(len(net.layers) + 1)) > 44:     # the core's accumulators: <= 48 bits
        layers = tuple(LayerParams(**{**lp.__dict__, "in_shift": min(lp.in_shift, 2),
                                      "rec_shift": min(lp.rec_shift, 2)}) for lp in net.layers)
        net = NetworkParams(**{**net.__dict__, "layers": layers}).validate()
    model = Model(net, model.layers, model.w_out, model.labels, model.frontend, model.meta)
    P = hw.pe_count

    def blocky(w):
        if rng.random() < 0.5:
            return w
        R, N = w.shape
        K = -(-N // P)
        keep = rng.random((R, K)) < rng.uniform(0.1, 0.9)
        return w * np.repeat(keep, P, axis=1)[:, :N]

    # some matrices lose whole lanes (drawn from a generator of their own, so the draws above stay as they were)
    lrng = np.random.default_rng([seed, 0x1A9E])

    def skew(w):
        if P == 1 or lrng.random() < 0.7:
            return w
        lanes = lrng.random(P) < lrng.uniform(0.2, 0.8)
        return w * np.tile(lanes, -(-w.shape[1] // P))[:w.shape[1]]

    lws = [LayerWeights(skew(blocky(lw.w_in)), skew(blocky(lw.w_rec))) for lw in model.layers]
    model = Model(net, lws, skew(blocky(model.w_out)), model.labels, model.frontend, model.meta)
    sw = compress(model, P, all_blocks)       # the dense baseline's image stores every weight
    tight = rng.random() < 0.3
    need_acc = max(net.acc_bits(l) for l in range(len(net.layers) + 1))
    need_shift = max([net.readout.in_shift] + [max(lp.in_shift, lp.rec_shift) for lp in net.layers])
    hw = HardwareParams(**{**hw.to_dict(),
                           "weight_words": max(1, sw.words) + (0 if tight else int(rng.integers(0, 64))),
                           "index_rows": sw.index_rows + (0 if tight else int(rng.integers(0, 64))),
                           "acc_bits": need_acc + (0 if tight else int(rng.integers(0, 5))),
                           "max_shift": need_shift if tight else int(rng.integers(need_shift, 17))}).validate()
    return model, hw


def draw_config(seed: int, index: int, frames: int, core: bool = False) -> Config:
    """Configuration ``index`` of the regression with ``seed``, with about ``frames`` frames of input;
    ``core``: for the configurable core (``rtl/core.py``)."""
    cs = config_seed(seed, index)
    rng = np.random.default_rng(cs)
    net, hw = _shape(rng)
    wb = net.weight_bits
    lws = [LayerWeights(_weights(rng, (net.fan_in(i), lp.size), wb), _weights(rng, (lp.size, lp.size), wb))
           for i, lp in enumerate(net.layers)]
    model = Model(net, lws, _weights(rng, (net.layers[-1].size, net.readout.size), wb),
                  tuple(str(c) for c in range(net.readout.size)), None, {"kind": "regress", "seed": cs})
    utts, left = [], max(1, frames)
    while left > 0:
        if rng.random() < 0.1 and left >= 150:
            n = int(rng.integers(150, min(left, 400) + 1))          # a long utterance
        else:
            n = int(min(left, rng.choice([1, 2, int(rng.integers(3, 12)), int(rng.integers(12, 60))])))
        utts.append(_utterance(rng, n, net))
        left -= n
    stall = rng.random() < 0.7
    stim = {"load_port": bool(rng.random() < 0.7), "dense": bool(rng.random() < 0.1),
            "bubble_p": float(rng.choice([0.0, rng.uniform(0, 0.6)])),
            "stall_p": float(rng.uniform(0, 0.5)) if stall else 0.0,
            "long_stall_p": float(rng.choice([0.0, 0.0, 0.004])) if stall else 0.0,
            "preload_p": float(rng.choice([0.0, rng.uniform(0, 1), 1.0])),
            "busy_write_p": float(rng.choice([0.0, rng.uniform(0, 0.3)])),
            "ready_always": False if stall else bool(rng.random() < 0.5),
            "seed": int(cs & 0xFFFF)}
    aborts = []
    if rng.random() < 0.35:
        for _ in range(int(rng.integers(1, 3))):
            u = int(rng.integers(0, len(utts)))
            f = int(rng.integers(0, len(utts[u])))
            delay = -1 if (rng.random() < 0.4 and f > 0) else int(rng.integers(0, 40))
            if all(a[0] != u for a in aborts):
                aborts.append((u, f, delay))
    stim["aborts"] = aborts
    if core:
        all_blocks = bool(stim["dense"] and rng.random() < 0.7)
        model, hw = _core_hardware(rng, model, hw, all_blocks, cs)
        stim.update({"core": True, "all_blocks": all_blocks, "load_port": True})   # always loaded at run time
        # One configuration in ten also gets a bad configuration write after its image, drawn from a generator of
        # its own (the rest of the draw does not change): every frame must then be refused with golden's flags.
        # Such a configuration has no reset and no write offered while busy: a reset clears the sticky flags, and
        # a write of the image again (CLEAR, or the register the bad write changed) would undo the refusal.
        brng = np.random.default_rng([cs, 0xBAD])
        if brng.random() < 0.1:
            from tb.core_runner import refusal
            w = _bad_write(brng, hw)
            if refusal(model, hw, all_blocks, [w]):                  # golden flags it (else it is left out)
                stim.update({"extra_writes": [w], "aborts": [], "busy_write_p": 0.0})
    return Config(index, cs, model, hw, utts, stim)


def _bad_write(rng, hw: HardwareParams) -> tuple:
    """A configuration write that golden's map flags (:mod:`golden.image`): an address that is no register, a
    value too wide for its register, an index entry past the weight memory, or a layer size of 0 (BAD_CONFIG)."""
    from golden.image import (GLOBAL_REGS, LAYER_REGS, REGION_INDEX, REGION_REGS, offset_bits, reg_addr,
                              register_widths)
    from golden.sparse import count_bits, max_chunks, word_addr_bits
    ob = offset_bits(hw)
    kind = str(rng.choice(["address", "value", "pointer", "config"]))
    if kind == "address":
        used = set(GLOBAL_REGS.values()) | {reg_addr(n, l) for n in LAYER_REGS for l in range(hw.max_layers)}
        return (REGION_REGS << ob | min(set(range(1 << ob)) - used), 1)
    if kind == "value":
        return (REGION_REGS << ob | reg_addr("N_LAYERS"), 1 << register_widths(hw)["N_LAYERS"])
    if kind == "pointer":
        lane = int(rng.integers(0, hw.pe_count))
        row = REGION_INDEX << ob | int(rng.integers(0, hw.index_rows))
        if max_chunks(hw) >= 2:     # a segment of 2 words from the last word: one past the memory
            return row, (hw.weight_words - 1) | 2 << (word_addr_bits(hw) + lane * count_bits(hw))
        return row, 1 << (word_addr_bits(hw) + hw.pe_count * count_bits(hw))   # a bit past the entry's fields
    return (REGION_REGS << ob | reg_addr("SIZE", 0), 0)


def assign(configs: int, sims: list, every: int) -> list:
    """(configuration, simulator) runs: the first simulator runs every configuration, each further one every
    ``every``-th (a Verilator build of a large configuration takes a minute; Icarus builds in a second)."""
    return [(k, s) for k in range(configs) for i, s in enumerate(sims) if i == 0 or k % every == 0]


#: Share of the frames that go to the first simulator (Icarus: slow per cycle, instant build); the others
#: (Verilator: a build of up to minutes, then fast) take the rest.
FIRST_SIM_SHARE = 0.25


def frame_budgets(seed: int, configs: int, frames: int, runs: list) -> dict:
    """Frames per run ``(configuration, simulator)``, so that the ``runs`` compare at least ``frames`` frames in
    all (10 % more are drawn: resets cut some utterances short). The first simulator's share goes in inverse
    proportion to :func:`_icarus_cost` (every configuration then takes about the same time), the others' in
    inverse proportion to the worst frame's cycles (their cost is mostly per frame). At least 4 frames a run."""
    sims = list(dict.fromkeys(s for _, s in runs))
    cost = {}
    for k in sorted({k for k, _ in runs}):
        net, hw = _shape(np.random.default_rng(config_seed(seed, k)))
        cost[k] = (_icarus_cost(net, hw), max(1.0, max_frame_cycles(net, hw) / 400.0))
    out = {}
    for i, sim in enumerate(sims):
        mine = [k for k, s in runs if s == sim]
        share = 1.0 if len(sims) == 1 else (FIRST_SIM_SHARE if i == 0 else (1 - FIRST_SIM_SHARE) / (len(sims) - 1))
        w = {k: 1.0 / cost[k][0 if i == 0 else 1] for k in mine}
        scale = 1.1 * frames * share / sum(w.values())
        out.update({(k, sim): max(4, int(np.ceil(w[k] * scale))) for k in mine})
    return out


def repro_command(seed: int, configs: int, frames: int, every: int, index: int, sims: str,
                  fault: str | None = None, core: bool = False) -> str:
    """The command that draws configuration ``index`` exactly as the run did (its frame budget depends on every
    argument, the simulator list included) and runs it on the simulators that run it."""
    args = f"--seed {seed} --configs {configs} --frames {frames} --every {every} --only {index} --simulators {sims}"
    if core:
        args += " --core"
    if fault:
        args += f" --fault {fault}"
    return f"make regress REGRESS_ARGS=\"{args}\""


def run_task(task: dict) -> dict:
    """One configuration on one simulator (in a worker process): simulate, compare, count coverage."""
    from tb.coverage import Coverage
    from tb.runner import SimError, compare, simulate

    core = bool(task.get("core"))
    cfg = draw_config(task["seed"], task["index"], task["frames"], core=core)
    sim, fault = task["sim"], task.get("fault")
    if sim == "verilator" and "OPT_FAST" not in os.environ.get("MAKEFLAGS", ""):
        # unoptimised C++: a new configuration builds in about half the time, and runs few frames
        os.environ["MAKEFLAGS"] = (os.environ.get("MAKEFLAGS", "") + " OPT_FAST=-O0 OPT_SLOW=-O0 OPT_GLOBAL=-O0").strip()
    work = Path(task.get("work", WORK)) / (f"fault_{fault}" if fault else "clean") / f"cfg{task['index']}_{sim}"
    out = {"index": task["index"], "sim": sim, "fault": fault, "describe": cfg.describe(),
           "repro": repro_command(task["seed"], task["configs"], task["total_frames"], task["every"], task["index"],
                                  task["sims"], fault, core)}
    t0 = time.perf_counter()
    try:
        if core:
            from tb.core_runner import compare_core, simulate_core
            stim = {k: v for k, v in cfg.stim.items() if k not in ("core", "load_port")}
            res = simulate_core(sim, cfg.model, cfg.hw, cfg.utterances, work, fault=fault, **stim)
            c = compare_core(cfg.model, cfg.hw, cfg.utterances, res, dense=stim["dense"],
                             all_blocks=stim["all_blocks"], extra_writes=stim.get("extra_writes", ()))
            c.setdefault("periods_checked", sum(1 for n, row in enumerate(res.timing)
                                                if row[7] and row[5] == 0 and n + 1 < len(res.timing)))
        else:
            res = simulate(sim, cfg.model, cfg.hw, cfg.utterances, work, fault=fault, **cfg.stim)
            c = compare(cfg.model, cfg.hw, cfg.utterances, res, dense=cfg.stim["dense"])
    except SimError as e:
        out.update({"error": str(e), "frames": 0, "mismatches": 0, "cycle_mismatches": 0, "latency_mismatches": 0,
                    "wall_s": round(time.perf_counter() - t0, 2)})
        return out
    out.update({k: c[k] for k in ("frames", "mismatches", "cycle_mismatches", "latency_mismatches",
                                  "periods_checked", "details")})
    out["decisions_equal"] = c["decisions"] == c["golden_decisions"]
    out["wall_s"] = round(time.perf_counter() - t0, 2)
    out["sim_s"], out["build_s"] = round(res.wall_s, 2), round(res.build_s, 2)
    if not fault:
        cov = Coverage()
        cov.add(cfg, res)
        out["coverage"] = dict(cov.hits)
    ok = not (c["mismatches"] or c["cycle_mismatches"] or c["latency_mismatches"]) and out["decisions_equal"]
    if ok and not task.get("keep"):
        shutil.rmtree(work, ignore_errors=True)
    return out


def _failed(r: dict) -> bool:
    return bool(r.get("error") or r["mismatches"] or r["cycle_mismatches"] or r["latency_mismatches"]
                or not r.get("decisions_equal", True))


def _pool_map(tasks, jobs, on_result):
    if jobs <= 1:
        for t in tasks:
            on_result(run_task(t))
        return
    ctx = mp.get_context("forkserver")
    with ctx.Pool(jobs, maxtasksperchild=8) as pool:
        for r in pool.imap_unordered(run_task, tasks):
            on_result(r)


def regress(seed: int, configs: int, frames: int, sims: list, every: int, jobs: int, only=None, keep=False,
            log=print, core: bool = False) -> dict:
    from tb.coverage import Coverage, missing_corners

    runs = assign(configs, sims, every)
    budgets = frame_budgets(seed, configs, frames, runs)
    if only is not None:
        runs = [(only, s) for s in sims if (only, s) in budgets]
    runs.sort(key=lambda r: r[1] == sims[0])      # the long Verilator builds first: the pool's tail stays short
    tasks = [{"seed": seed, "index": k, "frames": budgets[(k, s)], "sim": s, "configs": configs, "every": every,
              "total_frames": frames, "keep": keep, "sims": ",".join(sims), "core": core} for k, s in runs]
    t0 = time.perf_counter()
    results, cov = [], Coverage()
    done = [0]

    def on_result(r):
        results.append(r)
        done[0] += 1
        cov.merge(r.get("coverage", {}))
        bad = _failed(r)
        if bad or done[0] % 20 == 0 or done[0] == len(tasks):
            log(f"[{done[0]}/{len(tasks)}] {time.perf_counter() - t0:7.1f} s  {r['sim']:9s} {r['describe']}"
                f"{'  FAILED' if bad else ''}")
        if bad:
            for line in ([r["error"]] if r.get("error") else r.get("details", [])):
                log(f"    {line}")
            log(f"    reproduce: {r['repro']}")

    _pool_map(tasks, jobs, on_result)
    wall = time.perf_counter() - t0
    per_sim = {s: {"configs": sum(1 for r in results if r["sim"] == s),
                   "frames": sum(r["frames"] for r in results if r["sim"] == s),
                   "sim_s": round(sum(r.get("sim_s", 0) for r in results if r["sim"] == s), 1),
                   "build_s": round(sum(r.get("build_s", 0) for r in results if r["sim"] == s), 1)}
               for s in sims}
    failures = [{"config": r["index"], "sim": r["sim"], "what": r.get("error") or r.get("details"),
                 "repro": r["repro"]} for r in results if _failed(r)]
    return {"seed": seed, "configs": len({k for k, _ in runs}), "frames": sum(r["frames"] for r in results),
            "simulators": per_sim, "mismatches": sum(r["mismatches"] for r in results),
            "cycle_mismatches": sum(r["cycle_mismatches"] for r in results),
            "latency_mismatches": sum(r["latency_mismatches"] for r in results),
            "errors": sum(1 for r in results if r.get("error")),
            "decision_mismatches": sum(1 for r in results if not r.get("decisions_equal", True)),
            "periods_checked": sum(r.get("periods_checked", 0) for r in results),
            "coverage": dict(sorted(cov.hits.items())),
            "missing_corners": [c for c in missing_corners(cov.hits)
                                if c not in (CORE_NOT_APPLICABLE if core else FIRST_NOT_APPLICABLE)],
            "core": core,
            "failures": failures, "wall_s": round(wall, 1), "jobs": jobs, "every": every}


def caught_by_testbench(error: str) -> bool:
    """Whether a run's error is one of the testbench's own checks (its watchdog, its protocol checks, a missing or
    extra output word), which catch a fault as surely as a mismatch; a build failure or a missing tool does not."""
    return "the testbench stopped" in error or "output words for" in error


def fault_campaign(seed: int, configs: int, frames: int, sims: list, every: int, jobs: int, faults: list,
                   log=print, core: bool = False) -> dict:
    """Each fault against the regression's configurations in order (on the first simulator), until one run
    catches it. The configurations and their inputs are those of the regression with the same arguments."""
    budgets = frame_budgets(seed, configs, frames, assign(configs, sims, every))
    sim = sims[0]
    budgets = {k: n for (k, s), n in budgets.items() if s == sim}
    out = {f: {"caught": False, "config": None, "how": None, "configs_run": 0} for f in faults}
    t0 = time.perf_counter()
    batch = max(1, jobs)
    pending = {f: 0 for f in faults}             # next config index per fault
    while pending:
        tasks = []
        for f, k in list(pending.items()):
            tasks += [{"seed": seed, "index": i, "frames": budgets[i], "sim": sim, "configs": configs,
                       "every": every, "total_frames": frames, "fault": f, "sims": ",".join(sims), "core": core}
                      for i in range(k, min(k + batch, configs))]
        results = []
        _pool_map(tasks, jobs, results.append)
        for f in list(pending):
            mine = sorted((r for r in results if r["fault"] == f), key=lambda r: r["index"])
            for r in mine:
                out[f]["configs_run"] += 1
                if r.get("error") and not caught_by_testbench(r["error"]):
                    out[f]["errors"] = out[f].get("errors", 0) + 1      # a build failure is not a catch
                    log(f"fault {f}: config {r['index']} did not run: {r['error']}")
                    continue
                if _failed(r):
                    how = (("watchdog" if "watchdog:" in r["error"] else "testbench check") if r.get("error") else
                           ", ".join(k for k in ("mismatches", "cycle_mismatches", "latency_mismatches") if r[k])
                           or "decisions")
                    out[f].update({"caught": True, "config": r["index"], "how": how,
                                   "detail": (r.get("error") or "; ".join(r.get("details", [])[:2]))[:300]})
                    break
            if out[f]["caught"] or pending[f] + batch >= configs:
                verdict = (f"caught by config {out[f]['config']} ({out[f]['how']})" if out[f]["caught"]
                           else "NOT CAUGHT")
                log(f"fault {f:20s}: {verdict}  [{time.perf_counter() - t0:.0f} s]")
                del pending[f]
            else:
                pending[f] += batch
    return out


def main(argv=None) -> int:
    from rtl.accel import FAULTS
    from rtl.core import CORE_FAULTS
    from tb.runner import SIMULATORS

    ap = argparse.ArgumentParser(prog="python -m tb.regress", description=__doc__.split("\n\n")[0])
    ap.add_argument("--configs", type=int, default=200, help="random configurations (default 200)")
    ap.add_argument("--frames", type=int, default=100_000,
                    help="frames to simulate in all, over every simulator (default 100000)")
    ap.add_argument("--simulators", default="icarus,verilator", help="comma-separated (default icarus,verilator)")
    ap.add_argument("--every", type=int, default=5, metavar="K",
                    help="the first simulator runs every configuration, the others every K-th (default 5; 1: all)")
    ap.add_argument("--seed", type=int, default=0, help="regression seed (default 0)")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="worker processes (default: cores)")
    ap.add_argument("--only", type=int, default=None, metavar="K", help="run configuration K only (reproduce)")
    ap.add_argument("--fault", choices=sorted(set(FAULTS) | set(CORE_FAULTS)),
                    help="inject this RTL fault (it must be caught): one of rtl.accel.FAULTS, or with --core of "
                         "rtl.core.CORE_FAULTS")
    ap.add_argument("--faults", action="store_true",
                    help="fault campaign: every fault of rtl.accel.FAULTS (--core: rtl.core.CORE_FAULTS) until "
                         "caught (first simulator)")
    ap.add_argument("--keep", action="store_true", help="keep the build folders of passing runs")
    ap.add_argument("--core", action="store_true",
                    help="run the configurable core (rtl/core.py): each configuration's model loaded at run time, "
                         "with empty weight blocks, lanes and rows")
    ap.add_argument("--no-coverage-check", action="store_true",
                    help="do not fail when a listed corner was never hit (small runs)")
    ap.add_argument("--json", default=str(REPORT), help=f"report path (default {REPORT.relative_to(PROJECT_ROOT)})")
    a = ap.parse_args(argv)
    sims = [s.strip() for s in a.simulators.split(",") if s.strip()]
    for name, v, lo in (("--configs", a.configs, 1), ("--frames", a.frames, 1), ("--jobs", a.jobs, 1),
                        ("--every", a.every, 1)):
        if v < lo:
            ap.error(f"{name} must be at least {lo}, not {v}")
    if not sims or any(s not in SIMULATORS for s in sims):
        ap.error(f"--simulators must name some of {', '.join(SIMULATORS)}, not {a.simulators!r}")
    if a.only is not None and not 0 <= a.only < a.configs:
        ap.error(f"--only must be in 0..{a.configs - 1}, not {a.only}")
    table = CORE_FAULTS if a.core else FAULTS
    if a.fault and a.fault not in table:
        ap.error(f"--fault {a.fault} is a fault of the {'first accelerator' if a.core else 'core (add --core)'}; "
                 f"{'with --core ' if a.core else ''}choose one of {', '.join(sorted(table))}")
    path = Path(a.json)
    if a.faults:
        print(f"fault campaign: {len(table)} faults of the {'core' if a.core else 'first accelerator'} x up to "
              f"{a.configs} configurations on {sims[0]}, {a.jobs} jobs")
        t0 = time.perf_counter()
        faults = fault_campaign(a.seed, a.configs, a.frames, sims, a.every, a.jobs, sorted(table), core=a.core)
        report = {"seed": a.seed, "configs": a.configs, "simulator": sims[0], "core": a.core, "faults": faults,
                  "descriptions": table, "wall_s": round(time.perf_counter() - t0, 1)}
        if a.json == str(REPORT):
            path = path.with_name(path.stem + ("_core" if a.core else "") + "_faults.json")
        ok = all(f["caught"] for f in faults.values())
    else:
        what = f"configuration {a.only}" if a.only is not None else f"{a.configs} configurations"
        print(f"regression: {what}, about {a.frames} frames in all, on {', '.join(sims)}, seed {a.seed}, "
              f"{a.jobs} jobs{', fault ' + a.fault if a.fault else ''}")
        if a.fault:
            tasks_fault = a.fault
            runs = assign(a.configs, sims, a.every)
            budgets = frame_budgets(a.seed, a.configs, a.frames, runs)
            if a.only is not None:
                runs = [(a.only, s) for s in sims if (a.only, s) in budgets]
            results = [run_task({"seed": a.seed, "index": k, "frames": budgets[(k, s)], "sim": s,
                                 "configs": a.configs,
                                 "every": a.every, "total_frames": a.frames, "fault": tasks_fault, "keep": a.keep,
                                 "sims": a.simulators, "core": a.core})
                       for k, s in runs]
            caught = [r for r in results if _failed(r) and not (r.get("error")
                                                                 and not caught_by_testbench(r["error"]))]
            for r in caught[:3]:
                print(f"caught by {r['describe']} on {r['sim']}: {r.get('error') or r.get('details')}")
            print(f"fault {a.fault}: {'caught' if caught else 'NOT caught'} ({len(caught)} of {len(results)} runs)")
            return 0 if caught else 1
        report = regress(a.seed, a.configs, a.frames, sims, a.every, a.jobs, a.only, a.keep, core=a.core)
        ok = not report["failures"]
        if report["missing_corners"] and not a.no_coverage_check and a.only is None:
            ok = False
        per_sim = ", ".join(f"{s}: {v['frames']}" for s, v in report["simulators"].items())
        print(f"{report['configs']} configurations, {report['frames']} frames "
              f"({per_sim}), "
              f"{report['mismatches']} mismatches, {report['cycle_mismatches']} cycle mismatches, "
              f"{report['latency_mismatches']} latency mismatches, {report['errors']} errors, "
              f"{report['periods_checked']} back-to-back periods timed, {report['wall_s']} s")
        if report["missing_corners"]:
            print(f"corners never hit: {', '.join(report['missing_corners'])}")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(report, indent=1) + "\n")
    tmp.replace(path)
    print(f"wrote {path}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
