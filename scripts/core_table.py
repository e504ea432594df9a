"""The configurable core's table over P and over models (pruning levels): golden accuracy on the test split, the
core's cycles per frame (mean / max, from its cycle model, which the RTL is checked against cycle for cycle), the
real-time clock, the lower bound, and the bits the model needs in the core's lane-list format.

    python scripts/core_table.py MODEL.npz [MODEL.npz ...] [--pe 1,2,4,8,16,32] [--data DIR] [--split val]
                                 [--json PATH]

Each model runs on its own data set (``meta.dataset`` of the model file, else the file name: ``fsdd`` or
``arabic_digits``), every utterance of the test split, or with ``--split val`` of the split that training's
``--validate`` measures on (Arabic digits: the val speakers; FSDD: the train utterances with index 5-9 of every
speaker and digit, :data:`train.recipes.RECIPES` ``val_holdout``), to choose settings without the test split.
Prints a markdown table; ``--json`` also writes the rows.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from golden.core_cycles import core_cycle_counts
from golden.cycles import FRAME_OVERHEAD, lower_bound, realtime_clock_hz
from golden.data import DataError, dataset_of, default_data_dir, read_manifest
from golden.frontend import features_from_file
from golden.modelfile import load_model
from golden.network import run_batch
from golden.params import HardwareParams, ParamError
from golden.sparse import format_bits


def split_items(ds: str, data: Path, split: str) -> list:
    """The utterances of ``split`` ("test" or "val", as training's --validate defines val) of data set ``ds``."""
    if split == "test":
        return read_manifest(data, "test")
    from train.recipes import RECIPES, manifest_index
    if ds not in RECIPES:
        raise DataError(f"--split val is defined by a training recipe, and there is none for data set {ds!r} "
                        f"(recipes: {', '.join(RECIPES)}); use --split test")
    holdout = RECIPES[ds].val_holdout
    if not holdout:
        return read_manifest(data, "val")
    train = read_manifest(data, "train")           # a missing folder or manifest is named here
    index = manifest_index(data)
    return [it for it in train if index.get(str(it.path)) in holdout]


def rows_for(path: Path, pes, data: Path | None = None, split: str = "test") -> list:
    model = load_model(path)
    ds = dataset_of(model.meta, path.name)
    items = split_items(ds, data or default_data_dir(ds), split)
    feats = [features_from_file(it.path, model.frontend) for it in items]
    truth = np.array([model.labels.index(it.label) for it in items])
    trace = run_batch(model, feats)
    acc = float((trace.decisions == truth).mean())
    out = []
    for P in pes:
        hw = HardwareParams(pe_count=P, max_spike_level=max(lp.spike_levels for lp in model.network.layers))
        hw.check(model.network)     # ParamError (named by main) for a model the core does not run
        cyc = core_cycle_counts(model, hw, feats, trace).sum(-1)
        active = np.arange(cyc.shape[1])[None, :] < trace.lengths[:, None]
        c, lb = cyc[active], lower_bound(model, hw, trace)[active]
        fb = format_bits(model, hw)
        bits = fb["lane_lists"]
        out.append({"model": str(path), "dataset": ds, "split": split, "P": P, "accuracy": acc,
                    "cycles_mean": float(c.mean()) + FRAME_OVERHEAD, "cycles_max": int(c.max()) + FRAME_OVERHEAD,
                    "realtime_clock_hz": realtime_clock_hz(int(c.max())), "lower_bound_mean": float(lb.mean()),
                    "compute_over_bound": float(c.mean() / lb.mean()), "words": bits["words"], "weights": bits["entries"],
                    "empty_blocks": 1 - fb["block_sparse"]["words"] / fb["dense"]["words"],
                    "memory_bits": bits["total"]})
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="scripts/core_table.py", description=__doc__.split("\n\n")[0])
    p.add_argument("models", nargs="+", type=Path)
    p.add_argument("--pe", default="1,2,4,8,16,32")
    p.add_argument("--data", type=Path, default=None, help="data folder (default: the model's data set)")
    p.add_argument("--split", choices=("test", "val"), default="test",
                   help="test (default) or val: the split training's --validate measures on")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    try:
        pes = [int(x) for x in args.pe.split(",") if x.strip()]
    except ValueError:
        p.error(f"--pe must be a comma-separated list of integers, not {args.pe!r}")
    if not pes or any(p < 1 for p in pes):
        p.error(f"--pe must list PE counts >= 1, not {args.pe!r}")
    rows = []
    try:
        for path in args.models:
            rows += rows_for(path, pes, args.data, args.split)
    except (DataError, ParamError, ValueError, OSError) as e:
        print(f"scripts/core_table.py: error: {e}", file=sys.stderr)
        return 2
    print(f"| model | P | {args.split} accuracy | cycles mean | cycles max | real-time clock | compute / bound | "
          "non-zero weights | memory bits |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['model']} | {r['P']} | {r['accuracy']:.2%} | {r['cycles_mean']:.1f} | "
              f"{r['cycles_max']} | {r['realtime_clock_hz'] / 1e3:.1f} kHz | {r['compute_over_bound']:.2f} | "
              f"{r['weights']:,} | {r['memory_bits']:,} |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
