"""``make bench``: what the configurable core's sparsity saves, measured on the RTL, and golden vs Icarus vs
Verilator throughput, all side by side in one run on the same FSDD test utterances. Writes
``build/report/bench.json``.

Four runs of the same core (``rtl/core.py``) on Verilator, each bit- and cycle-exact against golden:

* ``sparse``: zero-skip on, lane lists of the non-zero weights (the normal mode);
* ``zero_skip_only``: zero-skip on, every weight stored (the pruned ones too: K entries per lane list);
* ``sparsity_only``: every source an event (``dense`` input), lane lists of the non-zero weights;
* ``dense``: every source an event and every weight stored: the same datapath with zero-skip and sparsity off,
  and no scan cycle a dense machine would not spend (the scan runs ahead of the fetch and costs nothing extra).

``dense_over_sparse_cycles`` is dense / sparse; ``zero_skip_saves`` is dense / zero_skip_only and
``pruning_saves`` is zero_skip_only / sparse (their product is the total). The first accelerator's definition
(its own RTL forced dense against its zero-skip, with a serial scan) is kept as ``accelerator_v1`` from its cycle
model (golden/cycles.py, checked against that RTL by the regression).

Ratios are what to read: the machines are shared and noisy, absolute seconds are not comparable across runs.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from golden.cycles import FRAME_OVERHEAD, cycle_counts
from golden.data import PROJECT_ROOT, default_data_dir, read_manifest
from golden.frontend import features_from_file
from golden.modelfile import load_model
from golden.network import run_batch
from golden.params import HardwareParams
from rtl.build import build_core_verilog

from .core_runner import compare_core, simulate_core

RUNS = {"sparse": (False, False), "zero_skip_only": (False, True), "sparsity_only": (True, False),
        "dense": (True, True)}    # name -> (dense input, every weight stored)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m tb.bench", description=__doc__)
    p.add_argument("--utterances", type=int, default=10, help="FSDD test utterances, evenly spaced (default 10)")
    p.add_argument("--model", default=str(PROJECT_ROOT / "models" / "fsdd.npz"),
                   help="an FSDD model file (default the shipped models/fsdd.npz)")
    p.add_argument("--icarus-utterances", type=int, default=2,
                   help="of those, how many Icarus runs for its throughput (default 2: it is slow)")
    p.add_argument("--data", default=None, help="FSDD folder (default $RSNN_DATA/fsdd or ../shared/data/fsdd)")
    p.add_argument("--json", default=str(PROJECT_ROOT / "build" / "report" / "bench.json"))
    args = p.parse_args(argv)
    data = Path(args.data) if args.data else default_data_dir("fsdd")
    if not (data / "manifest.csv").is_file():
        print(f"bench: no FSDD data at {data} (give --data DIR or set RSNN_DATA)", file=sys.stderr)
        return 2
    model = load_model(args.model)
    hw = HardwareParams()
    utts = read_manifest(data, "test", "digit")
    pick = np.linspace(0, len(utts) - 1, min(args.utterances, len(utts))).round().astype(int)
    feats = [features_from_file(utts[i].path, model.frontend) for i in pick]
    frames = sum(len(f) for f in feats)
    work = PROJECT_ROOT / "build" / "bench"
    out = {"utterances": len(feats), "frames": frames, "model": str(args.model), "hardware": hw.to_dict()}

    t = time.perf_counter()
    reps = 0
    while time.perf_counter() - t < 1.0:
        run_batch(model, feats)
        reps += 1
    golden_fps = reps * frames / (time.perf_counter() - t)
    out["throughput_frames_per_s"] = {"golden": round(golden_fps, 1)}

    verilog = build_core_verilog(hw, work / "verilog")
    runs = {}
    for name, (dense, all_blocks) in RUNS.items():
        r = simulate_core("verilator", model, hw, feats, work, dense=dense, all_blocks=all_blocks, verilog=verilog)
        c = compare_core(model, hw, feats, r, dense=dense, all_blocks=all_blocks)
        if c["mismatches"] or c["cycle_mismatches"] or c["latency_mismatches"]:
            print(f"bench: {name}: RTL differs from golden: {c['details']}", file=sys.stderr)
            return 1
        words = sum(o["counters"]["weight_words"] for o in r.outputs)
        runs[name] = {"cycles": int(sum(c["cycles"])), "weight_words": int(words), "wall_s": round(r.wall_s, 2),
                      "mean_cycles_per_frame": round(sum(c["cycles"]) / frames + FRAME_OVERHEAD, 1)}
        print(f"verilator {name:15s}: {sum(c['cycles']):9d} cycles, {words:8d} weight words, "
              f"{frames / r.wall_s:8.1f} frames/s, bit-exact and cycle-exact")
        if name == "sparse":
            out["throughput_frames_per_s"]["verilator"] = round(frames / r.wall_s, 1)
    n_icarus = min(args.icarus_utterances, len(feats))
    r = simulate_core("icarus", model, hw, feats[:n_icarus], work, verilog=verilog)
    c = compare_core(model, hw, feats[:n_icarus], r)
    if c["mismatches"] or c["cycle_mismatches"] or c["latency_mismatches"]:
        print(f"bench: icarus: RTL differs from golden: {c['details']}", file=sys.stderr)
        return 1
    out["throughput_frames_per_s"]["icarus"] = round(c["frames"] / r.wall_s, 1)
    out["icarus_utterances"] = n_icarus
    cyc = {k: v["cycles"] for k, v in runs.items()}
    out["runs"] = runs
    out["dense_over_sparse_cycles"] = round(cyc["dense"] / cyc["sparse"], 2)
    out["zero_skip_saves"] = round(cyc["dense"] / cyc["zero_skip_only"], 2)
    out["pruning_saves"] = round(cyc["zero_skip_only"] / cyc["sparse"], 2)
    out["dense_over_sparse_weight_words"] = round(runs["dense"]["weight_words"] / runs["sparse"]["weight_words"], 2)
    v1_sparse = int(cycle_counts(model, hw, feats).sum())
    v1_dense = int(cycle_counts(model, hw, feats, dense=True).sum())
    out["accelerator_v1"] = {"cycles_zero_skip": v1_sparse, "cycles_dense": v1_dense,
                             "cycles_ratio_dense_over_zero_skip": round(v1_dense / v1_sparse, 2),
                             "source": "golden/cycles.py (the model-specific accelerator rtl/accel.py)"
                             + ("; its cycle model only: that accelerator runs binary spikes, this model is "
                                "multi-level" if any(lp.spike_levels > 1 for lp in model.network.layers) else "")}
    out["core_over_v1_cycles"] = round(cyc["sparse"] / v1_sparse, 3)
    tp = out["throughput_frames_per_s"]
    out["throughput_ratios"] = {"golden_over_verilator": round(tp["golden"] / tp["verilator"], 1),
                                "verilator_over_icarus": round(tp["verilator"] / tp["icarus"], 1)}
    print(f"dense / sparse: {out['dense_over_sparse_cycles']}x the cycles (zero-skip alone "
          f"{out['zero_skip_saves']}x, skipping the pruned weights a further {out['pruning_saves']}x); the first "
          f"accelerator's definition: {out['accelerator_v1']['cycles_ratio_dense_over_zero_skip']}x")
    print(f"throughput: golden {tp['golden']:.0f}, Verilator {tp['verilator']:.1f}, Icarus {tp['icarus']:.1f} "
          f"frames/s (golden/Verilator {out['throughput_ratios']['golden_over_verilator']}x, Verilator/Icarus "
          f"{out['throughput_ratios']['verilator_over_icarus']}x)")
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(out, indent=1))
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
