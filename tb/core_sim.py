"""Both shipped models on ONE Verilog file of the configurable core: each loaded through the configuration stream
at run time, its test split's utterances through the core on the chosen simulators, every frame compared with
golden and the core's cycle model; golden's accuracy, cycles and lower bound over the whole split.

    python -m tb.core_sim [--limit N] [--simulators verilator,icarus] [--models fsdd,arabic_digits]

writes ``build/report/core_sim.json``: ``verilog_sha256`` (the one file), ``hardware``, and per model
``simulators`` (frames, mismatches, cycle and latency mismatches, RTL accuracy on the utterances run),
``accuracy`` / ``golden_accuracy``, ``cycles_per_frame`` (``mean``, ``max``, ``lower_bound_mean``, over every frame
of the split, from the cycle model the RTL was checked against), ``realtime_clock_hz`` and ``memory_bits``.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np

from golden.core_cycles import core_cycle_counts
from golden.cycles import lower_bound, realtime_clock_hz
from golden.data import PROJECT_ROOT, default_data_dir, read_manifest
from golden.frontend import features_from_file
from golden.modelfile import load_model
from golden.network import run_batch
from golden.params import HardwareParams
from golden.sparse import memory_bits
from rtl.build import build_core_verilog

from .core_runner import compare_core, simulate_core

MODELS = ("fsdd", "arabic_digits")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m tb.core_sim", description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default=",".join(MODELS))
    p.add_argument("--simulators", default="verilator")
    p.add_argument("--limit", type=int, default=20, help="utterances per model through the RTL (0: all)")
    p.add_argument("--out", type=Path, default=PROJECT_ROOT / "build" / "report" / "core_sim.json")
    args = p.parse_args(argv)
    hw = HardwareParams()
    work = PROJECT_ROOT / "build" / "core_sim"
    verilog = build_core_verilog(hw, work / "verilog")
    report = {"verilog": str(verilog.relative_to(PROJECT_ROOT)),
              "verilog_sha256": hashlib.sha256(verilog.read_bytes()).hexdigest(), "hardware": hw.to_dict(),
              "models": {}}
    for name in [m.strip() for m in args.models.split(",") if m.strip()]:
        model = load_model(PROJECT_ROOT / "models" / f"{name}.npz")
        items = read_manifest(default_data_dir(name), "test")
        feats = [features_from_file(it.path, model.frontend) for it in items]
        truth = np.array([model.labels.index(it.label) for it in items])
        trace = run_batch(model, feats)
        cyc = core_cycle_counts(model, hw, feats, trace).sum(-1)
        lb = lower_bound(model, hw, trace)
        active = np.arange(cyc.shape[1])[None, :] < trace.lengths[:, None]
        n = len(feats) if args.limit <= 0 else min(args.limit, len(feats))
        entry = {"utterances": len(feats), "golden_accuracy": float((trace.decisions == truth).mean()),
                 "cycles_per_frame": {"mean": float(cyc[active].mean()), "max": int(cyc[active].max()),
                                      "lower_bound_mean": float(lb[active].mean())},
                 "realtime_clock_hz": realtime_clock_hz(int(cyc[active].max())),
                 "memory_bits": memory_bits(model, hw), "simulators": {}}
        entry["cycles_per_frame"]["over_lower_bound"] = entry["cycles_per_frame"]["mean"] / float(lb[active].mean())
        for sim in [s.strip() for s in args.simulators.split(",") if s.strip()]:
            t = time.perf_counter()
            res = simulate_core(sim, model, hw, feats[:n], work, verilog=verilog)
            c = compare_core(model, hw, feats[:n], res)
            entry["simulators"][sim] = {
                "utterances": n, "frames": c["frames"], "mismatches": c["mismatches"],
                "cycle_mismatches": c["cycle_mismatches"], "latency_mismatches": c["latency_mismatches"],
                "accuracy": float(np.mean(np.array(c["decisions"]) == truth[:n])),
                "golden_accuracy_same_utterances": float(np.mean(trace.decisions[:n] == truth[:n])),
                "wall_s": round(time.perf_counter() - t, 1), "details": c["details"]}
            print(f"{name} on {sim}: {c['frames']} frames of {n} utterances, {c['mismatches']} mismatches, "
                  f"{c['cycle_mismatches']} cycle mismatches, {c['latency_mismatches']} latency mismatches",
                  file=sys.stderr)
        if entry["simulators"] and all(s["utterances"] == len(feats) for s in entry["simulators"].values()):
            entry["accuracy"] = min(s["accuracy"] for s in entry["simulators"].values())
        report["models"][name] = entry
        cpf = entry["cycles_per_frame"]
        print(f"{name}: golden {entry['golden_accuracy']:.2%}, cycles mean {cpf['mean']:.1f} max {cpf['max']} "
              f"(lower bound mean {cpf['lower_bound_mean']:.1f}, x{cpf['over_lower_bound']:.2f}), real-time clock "
              f"{entry['realtime_clock_hz'] / 1e3:.1f} kHz", file=sys.stderr)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
