"""Measure the core's weight format (per-lane lists) against its alternatives on the shipped models (rtl/README.md
table).

    python scripts/weight_formats.py [MODEL.npz ...] [--pe 16] [--limit N]

(default: the shipped models; a model runs on its data set: ``arabic`` in the file name, else FSDD.)

For each model: the bits each format stores (golden.sparse.format_bits) and the weight-fetch cycles per frame it
costs over the test split (golden traces), summed over the stages: lane lists, the busiest lane's entries (each
lane walks its own lists of the stage's events); block-sparse rows, one cycle per stored block of each event's row;
dense, every chunk of every event's row.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from golden.data import PROJECT_ROOT, default_data_dir, read_manifest
from golden.frontend import features_from_file
from golden.modelfile import load_model
from golden.network import run_batch
from golden.params import HardwareParams
from golden.sparse import format_bits, lane_counts, row_blocks


def fetch_cycles(model, trace, utts, costs) -> float:
    """Mean over frames of the fetch cycles: per stage, the largest over lanes of the sum over events of the row's
    cost (``costs[name]``: (R, lanes); one lane for the formats that fetch a whole row segment at once)."""
    net = model.network
    total, frames = 0, 0
    for b, u in enumerate(utts):
        tr = trace[b]
        x = np.asarray(u) != 0
        fired = [s.any(axis=1) for s in tr.spikes]
        for s in range(len(net.layers) + 1):
            ff = x if s == 0 else fired[s - 1]
            stage = ff.astype(np.int64) @ costs["out" if s == len(net.layers) else f"in{s}"]     # (F, lanes)
            if s < len(net.layers):
                prev = np.vstack([np.zeros_like(fired[s][:1]), fired[s][:-1]])
                stage = stage + prev.astype(np.int64) @ costs[f"rec{s}"]
            total += int(stage.max(axis=1).sum())
        frames += tr.n_frames
    return total / frames


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="scripts/weight_formats.py")
    p.add_argument("models", nargs="*", type=Path)
    p.add_argument("--pe", type=int, default=16)
    p.add_argument("--limit", type=int, default=0)
    args = p.parse_args(argv)
    hw = HardwareParams(pe_count=args.pe)
    print("| model | format | weight bits | index bits | total bits | fetch cycles / frame |")
    print("|---|---|---|---|---|---|")
    paths = args.models or [PROJECT_ROOT / "models" / f"{n}.npz" for n in ("fsdd", "arabic_digits")]
    for path in paths:
        model = load_model(path)
        name = path.stem if path.parent == PROJECT_ROOT / "models" else str(path)
        items = read_manifest(default_data_dir("arabic_digits" if "arabic" in path.name else "fsdd"), "test")
        items = items[:args.limit] if args.limit else items
        utts = [features_from_file(it.path, model.frontend) for it in items]
        trace = run_batch(model, utts)
        bits = format_bits(model, hw)
        blocks = row_blocks(model, hw.pe_count)
        dense = {k: np.full_like(v, -(-(model.w_out.shape[1] if k == "out" else
                                        model.layers[int(k[-1])].w_in.shape[1]) // hw.pe_count))
                 for k, v in blocks.items()}
        costs = {"block_sparse": {k: v[:, None] for k, v in blocks.items()},
                 "lane_lists": lane_counts(model, hw.pe_count), "dense": {k: v[:, None] for k, v in dense.items()}}
        for fmt in ("dense", "block_sparse", "lane_lists"):
            b = bits[fmt]
            print(f"| {name} | {fmt} | {b['weights']:,} | {b['weight_index']:,} | {b['total']:,} | "
                  f"{fetch_cycles(model, trace, utts, costs[fmt]):.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
