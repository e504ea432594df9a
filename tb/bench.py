"""``make bench``: zero-skip against the same RTL forced dense, and golden vs Icarus vs Verilator throughput, all
measured side by side in one run on the same FSDD test utterances. Writes ``build/report/bench.json``.

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

from .runner import compare, simulate


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m tb.bench", description=__doc__)
    p.add_argument("--utterances", type=int, default=10, help="FSDD test utterances, evenly spaced (default 10)")
    p.add_argument("--data", default=None, help="FSDD folder (default $RSNN_DATA/fsdd or ../shared/data/fsdd)")
    p.add_argument("--json", default=str(PROJECT_ROOT / "build" / "report" / "bench.json"))
    args = p.parse_args(argv)
    data = Path(args.data) if args.data else default_data_dir("fsdd")
    if not (data / "manifest.csv").is_file():
        print(f"bench: no FSDD data at {data} (give --data DIR or set RSNN_DATA)", file=sys.stderr)
        return 2
    model = load_model(PROJECT_ROOT / "models" / "fsdd.npz")
    hw = HardwareParams()
    utts = read_manifest(data, "test", "digit")
    pick = np.linspace(0, len(utts) - 1, min(args.utterances, len(utts))).round().astype(int)
    feats = [features_from_file(utts[i].path, model.frontend) for i in pick]
    frames = sum(len(f) for f in feats)
    work = PROJECT_ROOT / "build" / "bench"
    out = {"utterances": len(feats), "frames": frames, "model": "models/fsdd.npz", "hardware": hw.to_dict()}

    t = time.perf_counter()
    reps = 0
    while time.perf_counter() - t < 1.0:
        run_batch(model, feats)
        reps += 1
    golden_fps = reps * frames / (time.perf_counter() - t)
    out["throughput_frames_per_s"] = {"golden": round(golden_fps, 1)}

    runs = {}
    for sim, dense in (("verilator", False), ("verilator", True), ("icarus", False)):
        r = simulate(sim, model, hw, feats, work, dense=dense)
        c = compare(model, hw, feats, r, dense=dense)
        if c["mismatches"] or c["cycle_mismatches"] or c["latency_mismatches"]:
            print(f"bench: {sim} dense={dense}: RTL differs from golden: {c['details']}", file=sys.stderr)
            return 1
        words = sum(o["counters"]["weight_words"] for o in r.outputs)
        runs[(sim, dense)] = {"cycles": int(sum(c["cycles"])), "weight_words": int(words), "wall_s": r.wall_s}
        print(f"{sim:9s} {'dense' if dense else 'zero-skip':9s}: {sum(c['cycles']):9d} cycles, {words:8d} weight "
              f"words, {frames / r.wall_s:8.1f} frames/s, bit-exact and cycle-exact")
        if not dense:
            out["throughput_frames_per_s"][sim] = round(frames / r.wall_s, 1)
    zs, dn = runs[("verilator", False)], runs[("verilator", True)]
    model_dense = int(cycle_counts(model, hw, feats, dense=True).sum())
    out["zero_skip"] = {
        "cycles_zero_skip": zs["cycles"], "cycles_dense": dn["cycles"],
        "cycles_ratio_dense_over_zero_skip": round(dn["cycles"] / zs["cycles"], 2),
        "weight_words_zero_skip": zs["weight_words"], "weight_words_dense": dn["weight_words"],
        "weight_words_ratio": round(dn["weight_words"] / zs["weight_words"], 2),
        "cycle_model_dense_agrees": model_dense == dn["cycles"],
        "mean_cycles_per_frame_zero_skip": round(zs["cycles"] / frames + FRAME_OVERHEAD, 1),
        "mean_cycles_per_frame_dense": round(dn["cycles"] / frames + FRAME_OVERHEAD, 1),
    }
    tp = out["throughput_frames_per_s"]
    out["throughput_ratios"] = {"golden_over_verilator": round(tp["golden"] / tp["verilator"], 1),
                                "verilator_over_icarus": round(tp["verilator"] / tp["icarus"], 1)}
    print(f"zero-skip: {out['zero_skip']['cycles_ratio_dense_over_zero_skip']}x fewer cycles and "
          f"{out['zero_skip']['weight_words_ratio']}x fewer weight words than the same RTL forced dense")
    print(f"throughput: golden {tp['golden']:.0f}, Verilator {tp['verilator']:.1f}, Icarus {tp['icarus']:.1f} "
          f"frames/s (golden/Verilator {out['throughput_ratios']['golden_over_verilator']}x, Verilator/Icarus "
          f"{out['throughput_ratios']['verilator_over_icarus']}x)")
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(out, indent=1))
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
