"""The ablation table of a trained recipe, from the report ``rsnn train`` writes (``build/report/train.json``).

``python -m train.report [build/report/train.json]`` prints the tables train/README.md shows, so every figure there
can be regenerated from the JSON of a re-run. Sparsities are fractions of weights:

* structured: weights removed with whole neurons, against the same recipe before pruning (4-bit stage);
* unstructured: single weights that are zero among those left;
* total: 1 - non-zero weights / weights of the unpruned network;
* blocks: the weight words the block-sparse memory of issue #14 stores (:func:`block_sparse_bits`, P = 16), and
  the block reads per utterance (every event reads the stored blocks of its row: :func:`train.loop.block_reads`).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

__all__ = ["ablation_rows", "markdown", "block_sparse_bits", "stored_blocks_per_row", "REPORT_P"]

STAGE_TITLES = {"float": "float (PyTorch)", "4bit": "4-bit QAT", "4bit_structured": "+ structured pruning",
                "4bit_block": "+ block pruning", "4bit_pruned": "+ unstructured pruning"}

#: The P at which the training report counts blocks (the accelerator's P of the shipped configuration).
REPORT_P = 16


def _bits_for(n: int) -> int:
    """Bits of an unsigned field that holds 0 .. n (at least 1)."""
    return max(1, int(n).bit_length())


def stored_blocks_per_row(w, P: int = 16):
    """Per source row of ``w`` (golden's input-major layout): how many of its blocks of ``P`` outputs hold a
    non-zero weight (an int array of ``w.shape[0]``)."""
    import numpy as np
    nz = np.asarray(w) != 0
    return sum(nz[:, k:k + P].any(axis=1).astype(np.int64) for k in range(0, nz.shape[1], P))


def block_sparse_bits(model, P: int = 16) -> dict:
    """Stored blocks and bits of ``model`` (a :class:`golden.model.Model`) in the block-sparse weight format.

    A block is the ``P`` weights of one source row ``r`` for one chunk ``k`` of ``P`` consecutive outputs,
    ``W[r, P*k : P*k+P]`` of a matrix in golden's input-major layout (rows = sources, columns = outputs); a last
    partial chunk is a block of its own. Only blocks holding a non-zero weight are stored. Per matrix with ``rows``
    sources and ``chunks = ceil(cols / P)``::

        bits = stored_blocks * (P * weight_bits + chunk_id_bits) + rows * (base_bits + count_bits)

    with, over the whole model (one memory and one index format for all matrices):
    ``chunk_id_bits`` = bits for ``max(chunks) - 1`` (at least 1), ``base_bits`` = bits to address every stored
    block (``0 .. total_blocks - 1``), ``count_bits`` = bits for ``max(chunks)`` (a row stores 0 .. chunks blocks).
    Every block is stored P weights wide, a partial one too.

    Returns ``{"P", "weight_bits", "chunk_id_bits", "base_bits", "count_bits", "matrices": {name: {"rows",
    "chunks", "blocks", "stored_blocks", "bits"}}, "blocks", "stored_blocks", "empty_block_fraction",
    "word_bits_total" (the stored words: weights and chunk ids), "index_bits_total" (the (base, count) entries),
    "bits"}``; per matrix also "word_bits", "index_bits".

    A stand-in: the accelerator's owner will move the authoritative definition into golden; keep this a small pure
    function so that it can be replaced by a call to that one.
    """
    if isinstance(P, bool) or not isinstance(P, int) or P < 1:
        raise ValueError(f"P must be an integer >= 1, not {P!r}")
    wb = model.network.weight_bits
    mats = {}
    for name, w in model.matrices().items():
        rows, cols = w.shape
        chunks = -(-cols // P)
        stored = int(stored_blocks_per_row(w, P).sum())
        mats[name] = {"rows": int(rows), "chunks": int(chunks), "blocks": int(rows * chunks), "stored_blocks": stored}
    max_chunks = max(m["chunks"] for m in mats.values())
    total = sum(m["stored_blocks"] for m in mats.values())
    chunk_id_bits = _bits_for(max_chunks - 1)
    base_bits = _bits_for(max(total - 1, 0))
    count_bits = _bits_for(max_chunks)
    for m in mats.values():
        m["word_bits"] = m["stored_blocks"] * (P * wb + chunk_id_bits)
        m["index_bits"] = m["rows"] * (base_bits + count_bits)
        m["bits"] = m["word_bits"] + m["index_bits"]
    blocks = sum(m["blocks"] for m in mats.values())
    return {"P": P, "weight_bits": wb, "chunk_id_bits": chunk_id_bits, "base_bits": base_bits,
            "count_bits": count_bits, "matrices": mats, "blocks": blocks, "stored_blocks": total,
            "empty_block_fraction": round(1 - total / blocks, 4),
            "word_bits_total": sum(m["word_bits"] for m in mats.values()),
            "index_bits_total": sum(m["index_bits"] for m in mats.values()),
            "bits": sum(m["bits"] for m in mats.values())}


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
            if "stored_blocks" in s:  # reports written before block pruning existed have no block counts
                row.update({k: s[k] for k in ("block_P", "blocks", "stored_blocks", "stored_blocks_per_matrix",
                                              "block_sparse_bits", "block_sparse_index_bits")})
                row["empty_block_fraction"] = round(1 - s["stored_blocks"] / s["blocks"], 4)
            if "block_reads_per_inference" in s:
                row["block_reads_per_inference"] = s["block_reads_per_inference"]
            if "lane_list_bits" in s:    # reports written before the lane lists have none
                row.update({k: s[k] for k in ("lane_list_words", "lane_list_bits")})
        else:
            row.update({"stored_bytes": float32_dense_bytes, "bytes_vs_float32_dense_percent": 0.0})
        rows.append(row)
    return rows


def _pct(x) -> str:
    return f"{100 * x:.2f} %"


def _per_layer(d: dict) -> str:
    return " / ".join(f"{v:g}" for v in d.values())


def _blocks_of_model_file(rep: dict) -> dict | None:
    """Block counts of the model file a report written before block counting names, when that file is still the
    one the report hashed (else None): the last row of such a report's table gets them from the file itself."""
    import hashlib
    from golden.modelfile import load_model
    path = Path(__file__).resolve().parents[1] / rep.get("model_file", "")
    if not rep.get("model_file") or not path.is_file() or \
            hashlib.sha256(path.read_bytes()).hexdigest() != rep.get("model_sha256"):
        return None
    bs = block_sparse_bits(load_model(path), REPORT_P)
    return {"stored_blocks": bs["stored_blocks"], "blocks": bs["blocks"],
            "stored_blocks_per_matrix": {k: m["stored_blocks"] for k, m in bs["matrices"].items()},
            "block_sparse_bits": bs["bits"], "block_sparse_index_bits": bs["index_bits_total"]}


def markdown(name: str, rep: dict) -> str:
    """train/README.md's tables for one recipe's report."""
    pf = rep.get("platform")
    where = (f" on {pf['threads']} thread{'' if pf['threads'] == 1 else 's'}, torch {pf['torch']}, "
             f"{pf['cpu_capability']}") if pf else ""
    title = f"`{rep['command']}`" if rep["command"].endswith(f"--recipe {name}") else f"{name}: `{rep['command']}`"
    out = [f"### {title} (seed {rep['seed']}, {rep['train_seconds']:.0f} s{where}; "
           f"{rep.get('test_split', 'test')} split, golden unless marked)", "",
           "| stage | accuracy | layers | non-zero / weights | sparsity structured / unstructured / total "
           "| stored bytes (vs float32 dense) | input events per frame (per layer, readout) | activation sparsity "
           "| synaptic ops per utterance (vs dense) | stored blocks / blocks at P = 16 (per matrix) "
           "| block-sparse bits (index) | block reads per utterance |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    rows = rep["ablation"]
    lanes = any("lane_list_bits" in r for r in rows)     # the core's format: a column when the report has it
    if lanes:
        out[-2] += " lane-list bits at P = 16 before the lane placement (words) |"
        out[-1] += "---|"
    shipped = _blocks_of_model_file(rep) if rows and "stored_blocks" not in rows[-1] else None
    for i, r in enumerate(rows):
        title = STAGE_TITLES.get(r["stage"], r["stage"])
        if "weights" not in r:
            out.append(f"| {title} | {_pct(r['accuracy'])} | {', '.join(map(str, rep['config']['hidden']))} | "
                       f"dense | 0 | {r['stored_bytes']:,} | - | - | - | - | - | - |" + (" - |" if lanes else ""))
            continue
        b = r if "stored_blocks" in r else (shipped if i == len(rows) - 1 else None)
        out.append(
            f"| {title} | {_pct(r['accuracy'])} | {', '.join(map(str, r['layer_sizes']))} | "
            f"{r['nonzero_weights']:,} / {r['weights']:,} | {_pct(r['structured_sparsity'])} / "
            f"{_pct(r['unstructured_sparsity'])} / {_pct(r['total_weight_sparsity'])} | "
            f"{r['stored_bytes']:,} ({r['bytes_vs_float32_dense_percent']:+.2f} %) | "
            f"{_per_layer(r['input_events_per_frame'])} | {_per_layer(r['activation_sparsity'])} | "
            f"{r['synaptic_ops_per_inference']:,.0f} ({_pct(r['synaptic_ops_vs_dense'])}) | "
            + (f"{b['stored_blocks']:,} / {b['blocks']:,} ({_per_layer(b['stored_blocks_per_matrix'])}) | "
               f"{b['block_sparse_bits']:,} ({b['block_sparse_index_bits']:,}) |" if b else "- | - |")
            + (f" {r['block_reads_per_inference']:,.0f} |" if "block_reads_per_inference" in r else " - |")
            + ((f" {r['lane_list_bits']:,} ({r['lane_list_words']:,}) |" if "lane_list_bits" in r else " - |")
               if lanes else ""))
    ts = rep.get("time_steps_ablation")
    if ts:
        levels = max((rep.get("config") or {}).get("spike_levels") or [1])
        first = f"T = 1, spike levels D = {levels}" if levels > 1 else "T = 1"
        out += ["", f"| stage | {first} | {'binary spikes, ' if levels > 1 else ''}T = 2 |", "|---|---|---|"]
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
