"""The ablation table of a trained recipe, from the report ``rsnn train`` writes (``build/report/train.json``).

``python -m train.report [build/report/train.json]`` prints the tables the README shows, so every figure there can
be regenerated from the JSON of a re-run. Sparsities are fractions of weights:

* structured: weights removed with whole neurons, against the same recipe before pruning (4-bit stage);
* unstructured: single weights that are zero among those left;
* total: 1 - non-zero weights / weights of the unpruned network.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

__all__ = ["ablation_rows", "markdown"]

STAGE_TITLES = {"float": "float (PyTorch)", "4bit": "4-bit QAT", "4bit_structured": "+ structured pruning",
                "4bit_pruned": "+ unstructured pruning"}


def ablation_rows(stages: list, float32_dense_bytes: int) -> list:
    """One row per stage (``stages`` is the ``stages`` list of a recipe's report): accuracy, sparsities, bytes,
    activity and synaptic operations, with the unpruned 4-bit network as the reference for "dense"."""
    ref = next((s for s in stages if s.get("weights")), None)
    rows = []
    for s in stages:
        row = {"stage": s["stage"], "accuracy": s["accuracy"], "measured_with": s["measured_with"]}
        if s.get("weights") and ref:
            w, nz, w0 = s["weights"], s["nonzero_weights"], ref["weights"]
            row.update({
                "layer_sizes": s["layer_sizes"], "weights": w, "nonzero_weights": nz,
                "structured_sparsity": round(1 - w / w0, 4), "unstructured_sparsity": round(1 - nz / w, 4),
                "total_weight_sparsity": round(1 - nz / w0, 4),
                "stored_bytes": s["stored_bytes"],
                "bytes_vs_float32_dense_percent": round(100 * (s["stored_bytes"] / float32_dense_bytes - 1), 2),
                "input_events_per_frame": s["input_events_per_frame"],
                "activation_sparsity": s["activation_sparsity"],
                "synaptic_ops_per_inference": s["synaptic_ops_per_inference"],
                "dense_synaptic_ops_per_inference": ref["dense_synaptic_ops_per_inference"],
                "synaptic_ops_vs_dense": round(s["synaptic_ops_per_inference"]
                                               / ref["dense_synaptic_ops_per_inference"], 4),
            })
        else:
            row.update({"stored_bytes": float32_dense_bytes, "bytes_vs_float32_dense_percent": 0.0})
        rows.append(row)
    return rows


def _pct(x) -> str:
    return f"{100 * x:.2f} %"


def _per_layer(d: dict) -> str:
    return " / ".join(f"{v:g}" for v in d.values())


def markdown(name: str, rep: dict) -> str:
    """The README's tables for one recipe's report."""
    pf = rep.get("platform")
    where = (f" on {pf['threads']} thread{'' if pf['threads'] == 1 else 's'}, torch {pf['torch']}, "
             f"{pf['cpu_capability']}") if pf else ""
    title = f"`{rep['command']}`" if rep["command"].endswith(f"--recipe {name}") else f"{name}: `{rep['command']}`"
    out = [f"### {title} (seed {rep['seed']}, {rep['train_seconds']:.0f} s{where}; "
           f"{rep.get('test_split', 'test')} split, golden unless marked)", "",
           "| stage | accuracy | layers | non-zero / weights | sparsity structured / unstructured / total "
           "| stored bytes (vs float32 dense) | input events per frame (per layer, readout) | activation sparsity "
           "| synaptic ops per utterance (vs dense) |",
           "|---|---|---|---|---|---|---|---|---|"]
    for r in rep["ablation"]:
        title = STAGE_TITLES.get(r["stage"], r["stage"])
        if "weights" not in r:
            out.append(f"| {title} | {_pct(r['accuracy'])} | {', '.join(map(str, rep['config']['hidden']))} | "
                       f"dense | 0 | {r['stored_bytes']:,} | - | - | - |")
            continue
        out.append(
            f"| {title} | {_pct(r['accuracy'])} | {', '.join(map(str, r['layer_sizes']))} | "
            f"{r['nonzero_weights']:,} / {r['weights']:,} | {_pct(r['structured_sparsity'])} / "
            f"{_pct(r['unstructured_sparsity'])} / {_pct(r['total_weight_sparsity'])} | "
            f"{r['stored_bytes']:,} ({r['bytes_vs_float32_dense_percent']:+.2f} %) | "
            f"{_per_layer(r['input_events_per_frame'])} | {_per_layer(r['activation_sparsity'])} | "
            f"{r['synaptic_ops_per_inference']:,.0f} ({_pct(r['synaptic_ops_vs_dense'])}) |")
    ts = rep.get("time_steps_ablation")
    if ts:
        out += ["", "| stage | T = 1 | T = 2 |", "|---|---|---|"]
        for k, v in ts["T=1"].items():
            out.append(f"| {STAGE_TITLES.get(k, k)} | {_pct(v)} | {_pct(ts['T=2'].get(k, float('nan')))} |")
        act = ts.get("T=2_activity")
        if act:
            out += ["", f"T = 2 shipped-stage activity: input events per frame {_per_layer(act['input_events_per_frame'])}"
                        f", activation sparsity {_per_layer(act['activation_sparsity'])}, "
                        f"{act['synaptic_ops_per_inference']:,.0f} synaptic ops per utterance."]
    lo = rep.get("leave_one_speaker_out")
    if lo:
        per = ", ".join(f"{k} {_pct(v)}" for k, v in lo["per_speaker"].items())
        out += ["", f"Leave-one-speaker-out (mean over {len(lo['per_speaker'])} speakers): **{_pct(lo['mean'])}** "
                    f"({per}; {lo['seconds']:.0f} s)."]
    return "\n".join(out)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    path = Path(argv[0]) if argv else Path(__file__).resolve().parents[1] / "build" / "report" / "train.json"
    if not path.is_file():
        print(f"error: no training report at {path}: run `make train` (or rsnn train) first", file=sys.stderr)
        return 1
    try:
        report = json.loads(path.read_text())
        print("\n\n".join(markdown(n, r) for n, r in report.items()))
    except (ValueError, KeyError, TypeError) as e:
        print(f"error: {path} is not a report written by rsnn train ({type(e).__name__}: {e})", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
