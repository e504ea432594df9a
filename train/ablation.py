"""The spike ablation of issue #18: binary spikes at T = 1 and T = 2 against multi-level spikes (D = 2, 3) at T = 1,
for each shipped recipe, measured on validation data only (never the test split).

    python -m train.ablation [--recipe fsdd|arabic_digits ...] [--variant T1,T2,D2,D3] [--shard I/N]
                             [--out build/ablation] [--json build/report/spike_ablation.json] [--data DIR]
    python -m train.ablation --table            # only collect what is there: the JSON and the markdown table
    python -m train.ablation --recipe fsdd --name vtlp10 --set vtlp=0.1 --set loso_copies=2
                                                # any other variant of a recipe (``rsnn train --set`` settings),
                                                # measured by the same protocol under its own name

* **FSDD** (no val split): leave-one-speaker-out, the recipe's LOSO protocol (train on the five other speakers'
  utterances of both splits with one augmented copy and the shorter LOSO schedule; measure on all 500 utterances
  of the held-out speaker). Each variant trains 6 models, one per fold.
* **Arabic digits**: ``--validate`` (train on the train speakers, measure on the 6 val speakers).

Each (recipe, variant, fold) is one job that writes ``OUT/RECIPE/VARIANT/FOLD.json`` and its model beside it; a job
whose JSON exists is skipped, so an interrupted run resumes, and ``--shard I/N`` splits the jobs between processes.
Per job, on the held-out utterances, all from golden on the exported integers and the core's cycle model at
P = 16: accuracy, events per frame into each stage, synaptic operations per utterance, the core's compute cycles
per frame (mean, worst), the real-time clock of the worst frame, the lower bound, and the activity-based energy
estimate of :func:`synth.report.energy_from_counters`. The table aggregates the folds: accuracy as the mean over
folds (the LOSO mean), activity and cycles over all held-out frames, the worst frame over all folds.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np

from golden.core_cycles import block_reads, core_cycle_counts
from golden.cycles import FRAME_OVERHEAD, lower_bound, realtime_clock_hz
from golden.data import PROJECT_ROOT, DataError, default_data_dir
from golden.modelfile import load_model, save_model
from golden.network import run_batch
from golden.params import HardwareParams
from golden.sparse import entry_bits, memory_bits

__all__ = ["VARIANTS", "jobs", "measure", "collect", "table"]

#: name -> (what it is, TrainConfig overrides)
VARIANTS = {
    # binary spikes set explicitly: the FSDD recipe itself is D = 2 since this ablation chose it
    "T1": ("binary spikes, T = 1 (the recipes before issue #18)", {"spike_levels": (1, 1)}),
    "T2": ("binary spikes, T = 2", {"time_steps": 2, "spike_levels": (1, 1)}),
    "D2": ("multi-level spikes D = 2, T = 1", {"spike_levels": (2, 2)}),
    "D3": ("multi-level spikes D = 3, T = 1", {"spike_levels": (3, 3)}),
}
RECIPE_NAMES = ("fsdd", "arabic_digits")
ABLATION_P = 16
DEFAULT_OUT = PROJECT_ROOT / "build" / "ablation"
DEFAULT_JSON = PROJECT_ROOT / "build" / "report" / "spike_ablation.json"
FSDD_SPEAKERS = ("george", "jackson", "lucas", "nicolas", "theo", "yweweler")


def jobs(recipes, variants) -> list:
    """[(recipe, variant, fold)]: the FSDD folds are its speakers, Arabic digits has one fold, "val"."""
    out = []
    for r in recipes:
        for v in variants:
            for fold in (FSDD_SPEAKERS if r == "fsdd" else ("val",)):
                out.append((r, v, fold))
    return out


def hardware_for(model) -> HardwareParams:
    return HardwareParams(pe_count=ABLATION_P, time_steps=model.network.time_steps,
                          max_spike_level=max(lp.spike_levels for lp in model.network.layers))


def measure(model, feats: list, labels: np.ndarray) -> dict:
    """Golden and the core's cycle model on ``feats``: the per-job figures (totals, so that folds add up)."""
    from synth.report import energy_from_counters
    hw = hardware_for(model)
    hw.check(model.network)          # the core's figures only for what the core runs (ParamError otherwise)
    trace = run_batch(model, feats)
    cyc = core_cycle_counts(model, hw, feats, trace).sum(-1)
    active = np.arange(cyc.shape[1])[None, :] < trace.lengths[:, None]
    c, lb = cyc[active], lower_bound(model, hw, trace)[active]
    frames = int(active.sum())
    tot = {k: v.sum(axis=(0, 1)) for k, v in trace.counters.items()}
    counters = {k: int(v.sum()) for k, v in tot.items()}
    counters["weight_words"] = int(block_reads(model, hw, feats, trace).sum())
    bits = memory_bits(model, hw)
    e = energy_from_counters(counters, frames, entry_bits(hw), hw.weight_words * entry_bits(hw),
                             "golden counters and the core's lane reads")
    return {"n": len(feats), "correct": int((trace.decisions == labels).sum()), "frames": frames,
            "in_events": [int(x) for x in tot["in_events"]], "rec_events": [int(x) for x in tot["rec_events"]],
            "accumulations": counters["accumulations"], "counters": counters,
            "cycles_sum": int(c.sum()), "cycles_max": int(c.max()), "lower_bound_sum": float(lb.sum()),
            "energy_pj": e["total_pj_per_frame"] * frames, "memory_bits": bits["total"]}


def _feature_sets(recipe, fold: str, data_dir: Path):
    """(train set, held-out set) of one job."""
    from .recipes import _load, loso_features
    if recipe.name != "fsdd":
        r = dataclasses.replace(recipe, train_splits=("train",), test_split="val", loso=False)
        return _load(r, data_dir, lambda *_: None)
    everything, clean = loso_features(recipe, data_dir)
    if fold not in set(clean.speakers):
        raise DataError(f"speaker {fold!r} is not in {data_dir}")
    return (everything.subset(i for i, x in enumerate(everything.speakers) if x != fold),
            clean.subset(i for i, x in enumerate(clean.speakers) if x == fold))


def run_job(recipe_name: str, variant: str, fold: str, out: Path, data_dir: Path | None = None, log=print,
            overrides: dict | None = None) -> dict:
    """One fold of one variant (``overrides``: the settings of a variant not in :data:`VARIANTS`)."""
    from .loop import train
    from .recipes import LABELS, RECIPES, with_overrides
    path = out / recipe_name / variant / f"{fold}.json"
    if overrides is None:
        overrides = VARIANTS[variant][1]
    overrides = {k: list(v) if isinstance(v, tuple) else v for k, v in overrides.items()}
    if path.is_file():
        done = read_job(path)
        if done.get("overrides", overrides) != overrides:
            raise ValueError(f"{path} was measured with --set {done.get('overrides')}, not {overrides}: give this "
                             "variant another --name (or remove that folder)")
        return done
    recipe = with_overrides(RECIPES[recipe_name], overrides)
    data_dir = Path(data_dir) if data_dir else default_data_dir(recipe.dataset)
    t0 = time.perf_counter()
    train_set, held = _feature_sets(recipe, fold, data_dir)
    cfg = (recipe.loso_config or recipe.config) if recipe_name == "fsdd" else recipe.config
    meta = {"kind": "trained", "recipe": recipe_name, "ablation": variant, "fold": fold, "seed": cfg.seed}
    stages = train(cfg, train_set, held, recipe.frontend, LABELS, meta, progress=False, log=lambda *_: None)
    model = stages[-1].model
    path.parent.mkdir(parents=True, exist_ok=True)
    save_model(model, path.with_suffix(".npz"))
    res = {"recipe": recipe_name, "variant": variant, "fold": fold, "overrides": overrides, "config": cfg.to_dict(),
           "stages": {s.name: s.accuracy for s in stages}, **measure(model, held.feats, held.labels),
           "train_seconds": round(time.perf_counter() - t0, 1)}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(res, indent=1))
    tmp.replace(path)
    log(f"[ablation] {recipe_name} {variant} {fold}: {res['correct']}/{res['n']} "
        f"({100 * res['correct'] / res['n']:.2f} %), worst frame {res['cycles_max']} cycles, "
        f"{res['train_seconds']:.0f} s")
    return res


def read_job(path: Path) -> dict:
    """A finished job's JSON, or ``ValueError`` naming the file (a truncated or foreign file is not a result)."""
    try:
        if path.stat().st_size > 1 << 20:
            raise ValueError("it is larger than any job's result")
        d = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(d, dict) or not {"fold", "n", "correct", "frames", "cycles_max"} <= set(d):
            raise ValueError("it is not a job's result")
        return d
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise ValueError(f"{path} cannot be read as an ablation result ({e}): remove it and run the job again") \
            from None


def collect(out: Path) -> dict:
    """Aggregate every finished job under ``out``: {recipe: {variant: row}}."""
    rows = {}
    for r in RECIPE_NAMES:
        names = list(VARIANTS) + sorted(p.name for p in (out / r).glob("*") if p.is_dir() and p.name not in VARIANTS)
        for v in names:
            folds = [read_job(p) for p in sorted((out / r / v).glob("*.json"))]
            if not folds:
                continue
            want = len(FSDD_SPEAKERS) if r == "fsdd" else 1
            frames = sum(f["frames"] for f in folds)
            n = sum(f["n"] for f in folds)
            cmax = max(f["cycles_max"] for f in folds)
            sets = " ".join(f"--set {k}={json.dumps(x, separators=(',', ':'))}"
                            for k, x in folds[0].get("overrides", {}).items())
            row = {
                "variant": VARIANTS[v][0] if v in VARIANTS else (sets or "the recipe as it is"),
                "overrides": folds[0].get("overrides", {}),
                "folds": {f["fold"]: f["correct"] / f["n"] for f in folds},
                "complete": len(folds) == want,
                "accuracy": float(np.mean([f["correct"] / f["n"] for f in folds])),
                "events_per_frame": [round(sum(f["in_events"][i] + f["rec_events"][i] for f in folds) / frames, 3)
                                     for i in range(len(folds[0]["in_events"]))],
                "synaptic_ops_per_utterance": round(sum(f["accumulations"] for f in folds) / n, 1),
                "cycles_mean": round(sum(f["cycles_sum"] for f in folds) / frames + FRAME_OVERHEAD, 2),
                "cycles_max": cmax + FRAME_OVERHEAD,
                "realtime_clock_hz": realtime_clock_hz(cmax),
                "mean_over_bound": round(sum(f["cycles_sum"] for f in folds)
                                         / sum(f["lower_bound_sum"] for f in folds), 3),
                "energy_nj_per_frame": round(sum(f["energy_pj"] for f in folds) / frames / 1e3, 3),
                "memory_bits_mean": round(float(np.mean([f["memory_bits"] for f in folds]))),
                "train_seconds": round(sum(f["train_seconds"] for f in folds), 1),
            }
            rows.setdefault(r, {})[v] = row
    return rows


def table(rows: dict) -> str:
    lines = []
    for r, by_v in rows.items():
        what = ("leave-one-speaker-out mean over 6 folds, per fold: " + " / ".join(FSDD_SPEAKERS) if r == "fsdd"
                else "val speakers")
        lines += [f"**{r}** ({what}; golden on the exported integers; cycles from the core's cycle model at "
                  f"P = {ABLATION_P})", "",
                  "| variant | accuracy | per fold | events per frame (layer 1 / 2 / readout) | synaptic ops per "
                  "utt. | cycles mean / worst | real-time clock | mean / bound | energy per frame (estimate) |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for v, row in by_v.items():
            want = FSDD_SPEAKERS if r == "fsdd" else ("val",)
            folds = " / ".join(f"{100 * row['folds'][f]:.1f}" if f in row["folds"] else "-" for f in want)
            lines.append(f"| {v}: {row['variant']}{'' if row['complete'] else ' (INCOMPLETE)'} | "
                         f"{100 * row['accuracy']:.2f} % | {folds} | "
                         f"{' / '.join(f'{e:.2f}' for e in row['events_per_frame'])} | "
                         f"{row['synaptic_ops_per_utterance']:,.0f} | {row['cycles_mean']:.1f} / {row['cycles_max']} | "
                         f"{row['realtime_clock_hz'] / 1e3:.1f} kHz | {row['mean_over_bound']:.2f} | "
                         f"{row['energy_nj_per_frame']:.2f} nJ |")
        lines.append("")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m train.ablation", description=__doc__.split("\n\n")[0])
    p.add_argument("--recipe", action="append", choices=RECIPE_NAMES)
    p.add_argument("--variant", default=",".join(VARIANTS), help="comma-separated, of " + ", ".join(VARIANTS))
    p.add_argument("--shard", default="0/1", help="I/N: run every N-th job starting at I (parallel processes)")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    p.add_argument("--json", type=Path, default=DEFAULT_JSON)
    p.add_argument("--data", type=Path, help="data folder (default ../shared/data/<set>)")
    p.add_argument("--table", action="store_true", help="only collect the finished jobs")
    p.add_argument("--fold", action="append", metavar="FOLD", help="only these folds (FSDD speakers, or 'val'); "
                   "the table marks a variant with missing folds INCOMPLETE")
    p.add_argument("--name", help="a variant of your own, with --set (its jobs go under OUT/RECIPE/NAME)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="a setting of --name's variant, as for "
                   "`rsnn train --set` (repeatable)")
    a = p.parse_args(argv)
    overrides = None
    if a.name is not None:
        from .recipes import RECIPES, with_overrides
        if not a.name.replace("_", "").replace("-", "").isalnum() or a.name in VARIANTS:
            p.error(f"--name takes letters, digits, '-' and '_', and not one of {', '.join(VARIANTS)}: {a.name!r}")
        from .recipes import parse_overrides
        try:
            overrides = parse_overrides(a.set)
        except ValueError as e:
            p.error(str(e))
        for r in a.recipe or RECIPE_NAMES:
            try:
                rec = with_overrides(RECIPES[r], overrides)
                net = rec.config.network(rec.frontend.n_mels, rec.frontend.feature_bits, 10)
                HardwareParams(pe_count=ABLATION_P, time_steps=net.time_steps, max_spike_level=max(
                    lp.spike_levels for lp in net.layers)).check(net)
            except ValueError as e:
                p.error(str(e))
        variants = [a.name]
    elif a.set:
        p.error("--set needs --name (the variant's name)")
    else:
        variants = [v.strip() for v in a.variant.split(",") if v.strip()]
        bad = [v for v in variants if v not in VARIANTS]
        if bad:
            p.error(f"unknown variant(s) {bad}: choose from {', '.join(VARIANTS)}")
    try:
        i, n = (int(x) for x in a.shard.split("/"))
        if not 0 <= i < n:
            raise ValueError
    except ValueError:
        p.error(f"--shard takes I/N with 0 <= I < N, not {a.shard!r}")
    if not a.table:
        todo = [j for j in jobs(a.recipe or RECIPE_NAMES, variants) if not a.fold or j[2] in a.fold][i::n]
        for r, v, fold in todo:
            try:
                run_job(r, v, fold, a.out, a.data, overrides=overrides)
            except (DataError, ValueError) as e:
                print(f"error: {e}", file=sys.stderr)
                return 2
    if a.json.is_dir():
        p.error(f"--json {a.json} is a folder; give a file path")
    try:
        rows = collect(a.out)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    a.json.parent.mkdir(parents=True, exist_ok=True)
    a.json.write_text(json.dumps(rows, indent=1))
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
