"""``make report``: the efficiency report (Markdown + JSON + PNG plots) from the figures that ``make sim`` and
``make synth`` measured, side by side with seed 004. Every number is either read from those JSON files (named in
the report) or computed here from them with the formula written beside it; the per-operation energies are
cited. Estimates are labelled as estimates.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from golden.cycles import FRAME_OVERHEAD, cycle_counts
from golden.data import PROJECT_ROOT, read_manifest
from golden.network import run_batch
from golden.params import HardwareParams

REPORT = PROJECT_ROOT / "build" / "report"

#: Per-operation energies, 45 nm, 0.9 V: M. Horowitz, "Computing's energy problem (and what we can do about it)",
#: ISSCC 2014 (the table of integer/float operations and 64-bit SRAM accesses).
ENERGY_PJ = {
    "add32": 0.1,            # 32-bit integer add (our accumulators are 16-20 bits: an upper bound)
    "sram64_8kb": 10.0,      # 64-bit read from an 8 KB SRAM
    "sram64_32kb": 20.0,     # 64-bit read from a 32 KB SRAM
}
ENERGY_SOURCE = ("M. Horowitz, 'Computing's energy problem (and what we can do about it)', ISSCC 2014, 45 nm, "
                 "0.9 V: 32-bit add 0.1 pJ; 64-bit SRAM read 10 pJ (8 KB), 20 pJ (32 KB)")
#: Seed 003 (IML-Spikeformer), eq. 16-17: E_MAC = 4.6 and E_AC = 0.9 per operation. The seed prints "nJ"; these
#: are the 45 nm 32-bit float MAC / add energies in pJ of the same Horowitz table, which is what its references use.
E_MAC_PJ, E_AC_PJ = 4.6, 0.9
SEED_004 = {"model_bytes": "0.1 MB (2.79 MB float, -96.42 %)", "work_per_s": "13.86 MMAC/s",
            "cycles_per_frame": "1,000 (100 kHz x 10 ms)", "realtime_clock": "100 kHz", "power": "71.2 uW (28 nm)",
            "tops_per_w": "28.41 (at 500 MHz)", "gops_per_mm2": "1903.11 (at 500 MHz)",
            "accuracy": "TIMIT (phone recognition), not comparable"}


class ReportError(RuntimeError):
    pass


def _load(p: Path, cmd: str) -> dict:
    if not p.is_file():
        raise ReportError(f"{p} is missing: run `{cmd}` first")
    try:
        return json.loads(p.read_text())
    except json.JSONDecodeError as e:
        raise ReportError(f"{p} is not valid JSON ({e}): run `{cmd}` again") from None


def energy(sim: dict) -> dict:
    """Activity-based energy per frame from the RTL's counters of the `make sim` run."""
    sims = sim.get("simulators") or {}
    if not sims:
        raise ReportError("sim.json has no RTL run (it was made with --no-rtl): run `make sim`")
    name, run = next(iter(sims.items()))
    from golden.sparse import entry_bits
    hw = HardwareParams(**sim["hardware"])
    return energy_from_counters(run["counters_total"], run["frames"], entry_bits(hw), hw.weight_words * entry_bits(hw),
                                f"RTL counters of `make sim` on {name} ({run['frames']} frames)")


def energy_from_counters(c: dict, frames: int, read_bits: int, lane_memory_bits: int, source: str) -> dict:
    """Activity-based energy per frame from counter totals over ``frames`` frames (the core's counters: golden's
    plus ``weight_words``, the words read from the lanes' weight memories), for reads of ``read_bits`` bits (a
    lane's entry: chunk id and weight) from a lane memory of ``lane_memory_bits`` bits."""
    word_kb = lane_memory_bits / 8 / 1024
    e_word = ENERGY_PJ["sram64_32kb"] if word_kb > 8 else ENERGY_PJ["sram64_8kb"]
    scale = read_bits / 64                                 # a lane's read is read_bits wide; the table's is 64
    parts = {
        "accumulations": c["accumulations"] * ENERGY_PJ["add32"],
        "weight_words": c["weight_words"] * e_word * scale,
        "event_memory": (c["in_events"] + c["rec_events"] + c["weight_words"]) * ENERGY_PJ["sram64_8kb"] * 0.25,
        "neuron_state": (c["state_reads"] + c["state_writes"]) * ENERGY_PJ["sram64_8kb"] * 0.25,
    }
    per_frame = {k: v / frames for k, v in parts.items()}
    total = sum(per_frame.values())
    return {"from": source, "pj_per_frame": per_frame,
            "total_pj_per_frame": total, "power_w_at_realtime": total * 1e-12 * 100,
            "assumptions": [ENERGY_SOURCE,
                            f"a lane's weight read = {read_bits} bits, charged as {scale:.2f} of a 64-bit read "
                            f"from a {'32' if word_kb > 8 else '8'} KB SRAM (a lane's weight memory is "
                            f"{word_kb:.1f} KB)",
                            "event memory (the index read of each event, and the lane queues, charged one access "
                            "per lane read of the weights) and neuron state (16-bit "
                            "words) charged as a quarter of a 64-bit 8 KB SRAM access each",
                            "not modelled: clock tree, control, leakage, the front end; 45 nm figures, no "
                            "technology scaling (the seed is 28 nm)"]}


def theoretical(sim: dict) -> dict:
    """Seed 003's estimate for the same network: E_ANN = FLOPs x E_MAC, E_SNN = sum_l T x R_l x FLOPs_l x E_AC."""
    act = sim["activity"]
    flops = act["dense_accumulations_per_frame"]
    names = list(flops)
    rates = [act["input_feature_density"]] + [act["spike_rate"][n] for n in names[:-1]]
    T = 1  # dense_accumulations already include the time steps
    e_ann = sum(flops.values()) * E_MAC_PJ
    e_snn = sum(T * r * flops[n] * E_AC_PJ for n, r in zip(names, rates))
    return {"flops_per_frame": flops, "rates": dict(zip(names, rates)), "E_ANN_pj_per_frame": e_ann,
            "E_SNN_pj_per_frame": e_snn, "ratio": e_ann / e_snn,
            "note": "rates: input feature density for layer 0 (graded inputs), spike rates of the layer below "
                    "for the others; FLOPs = dense synaptic operations per frame"}


def plots(sim: dict, synth: dict, out: Path) -> dict:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from golden.frontend import features_from_file
    from golden.modelfile import load_model
    model = load_model(PROJECT_ROOT / "models" / "fsdd.npz")
    data = Path(sim["data"])
    utt = read_manifest(data, "test", "digit")[sim.get("rtl_utterances", [0])[0]]
    x = features_from_file(utt.path, model.frontend)
    tr = run_batch(model, [x])
    hw = HardwareParams(**sim["hardware"])
    files = {}
    fig, axes = plt.subplots(len(tr.spikes) + 1, 1, figsize=(8, 7), sharex=True)
    axes[0].imshow(x.T, aspect="auto", origin="lower", cmap="gray_r")
    axes[0].set_ylabel("feature")
    axes[0].set_title(f"{Path(utt.path).name}: input features and spikes (golden = RTL)")
    for l, s in enumerate(tr.spikes):
        f, t, j = np.nonzero(s[0])
        axes[l + 1].scatter(f, j, s=2, c="k")
        axes[l + 1].set_ylabel(f"layer {l} neuron")
    axes[-1].set_xlabel("frame (10 ms)")
    files["raster"] = _save(fig, out / "raster.png")
    act = sim["activity"]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    names = list(act["spike_rate"])
    ax.bar(["input"] + names, [1 - act["input_feature_density"]] + [1 - act["spike_rate"][n] for n in names])
    ax.set_ylabel("activation sparsity")
    ax.set_ylim(0, 1)
    ax.set_title("zeros per frame (FSDD test split)")
    files["sparsity"] = _save(fig, out / "sparsity.png")
    cyc = cycle_counts(model, hw, [x], tr).sum(-1)[0] + FRAME_OVERHEAD
    fig, ax = plt.subplots(figsize=(7, 3))
    ax.plot(cyc, drawstyle="steps-mid")
    ax.axhline(1000, color="gray", ls="--", label="100 kHz budget")
    ax.set_xlabel("frame")
    ax.set_ylabel("cycles")
    ax.set_title(f"cycles per frame, P = {hw.pe_count} (cycle model = RTL)")
    ax.legend()
    files["cycles"] = _save(fig, out / "cycles.png")
    fig, ax = plt.subplots(figsize=(7, 3.8))
    by = synth["by_module"]
    labels = [k.replace("_", " ") for k in by if k != "memories"] + ["memories (SRAM est.)"]
    vals = [v["area_um2_sky130"] / 1e6 for k, v in by.items() if k != "memories"] + [
        by["memories"]["area_um2_sram_estimate"] / 1e6]
    ax.barh(labels, vals)
    ax.set_xscale("log")
    ax.set_xlabel("mm2 (log scale)")
    ax.set_title("area breakdown (sky130 synthesis; memories as SRAM estimate)")
    files["area"] = _save(fig, out / "area.png")
    return files


def _save(fig, path: Path) -> str:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    import matplotlib.pyplot as plt
    plt.close(fig)
    return path.name


def build(out: Path = REPORT, sim_path: Path | None = None, synth_path: Path | None = None) -> dict:
    sim = _load(Path(sim_path or REPORT / "sim.json"), "make sim")
    if "models" in sim:   # both shipped models on one core: the report is FSDD's, beside the seed's figures
        if "fsdd" not in sim["models"]:
            raise ReportError("sim.json has no FSDD run: run `make sim`")
        sim = {**sim["models"]["fsdd"], "hardware": sim["hardware"]}
    synth = _load(Path(synth_path or REPORT / "synth.json"), "make synth")
    e = energy(sim)
    th = theoretical(sim)
    cpf = sim["cycles_per_frame"]
    clock = sim["realtime_clock_hz"]
    ops_per_s = sum(sim["activity"]["accumulations_per_frame"].values()) * 100
    dense_per_s = sum(sim["activity"]["dense_accumulations_per_frame"].values()) * 100
    area_mm2 = (synth["area_um2"]["sky130"] + synth["memory_area_um2"]["as_sram_estimate"]) / 1e6
    power = e["power_w_at_realtime"]
    from golden.modelfile import load_model, model_to_bytes
    model_bytes = len(model_to_bytes(load_model(PROJECT_ROOT / "models" / "fsdd.npz")))
    ours = {
        "model_bytes": model_bytes,
        "work_per_s_synaptic_ops": ops_per_s, "work_per_s_dense_mac_equivalent": dense_per_s,
        "cycles_per_frame_mean": cpf["mean"], "cycles_per_frame_max": cpf["max"],
        "realtime_clock_hz": clock, "power_w_estimate": power,
        "tops_per_w_effective": ops_per_s / power / 1e12 if power else None,
        "gops_per_mm2_at_realtime": ops_per_s / 1e9 / area_mm2,
        "area_mm2_estimate": area_mm2, "accuracy_fsdd": sim["golden_accuracy"],
    }
    res = {"ours": ours, "seed_004": SEED_004, "energy": e, "theoretical_seed_003": th,
           "inputs": ["build/report/sim.json (make sim)", "build/report/synth.json (make synth)"]}
    out.mkdir(parents=True, exist_ok=True)
    res["plots"] = plots(sim, synth, out)
    (out / "report.json").write_text(json.dumps(res, indent=1))
    (out / "report.md").write_text(markdown(res, sim, synth))
    return res


def markdown(r: dict, sim: dict, synth: dict) -> str:
    o, e, th = r["ours"], r["energy"], r["theoretical_seed_003"]
    s4 = r["seed_004"]
    rows = [
        ("model bytes", f"{o['model_bytes']:,} (4-bit, pruned, with its index)", s4["model_bytes"], "measured"),
        ("work per second", f"{o['work_per_s_synaptic_ops'] / 1e6:.3f} M synaptic ops/s done "
                            f"({o['work_per_s_dense_mac_equivalent'] / 1e6:.2f} M dense MAC/s equivalent)",
         s4["work_per_s"], "golden counters x 100 frames/s"),
        ("cycles per frame", f"mean {o['cycles_per_frame_mean']:.0f}, max {o['cycles_per_frame_max']}",
         s4["cycles_per_frame"], "cycle model, checked = RTL"),
        ("real-time clock", f"{o['realtime_clock_hz'] / 1e3:.1f} kHz", s4["realtime_clock"], "max cycles / 10 ms"),
        ("power at that clock", f"{o['power_w_estimate'] * 1e6:.2f} uW (dynamic, 45 nm figures)", s4["power"],
         "ESTIMATE: RTL counters x cited energies"),
        ("TOPS/W", f"{o['tops_per_w_effective']:.3f} effective (synaptic ops / estimated energy)",
         s4["tops_per_w"], "ESTIMATE"),
        ("GOPS/mm2", f"{o['gops_per_mm2_at_realtime']:.6f} at the real-time clock", s4["gops_per_mm2"],
         "ESTIMATE: sky130 logic + SRAM estimate"),
        ("area", f"{o['area_mm2_estimate']:.3f} mm2 (logic {synth['area_um2']['sky130'] / 1e6:.3f} + memories "
                 f"{synth['memory_area_um2']['as_sram_estimate'] / 1e6:.3f})", "-", "ESTIMATE (synthesis, no P&R)"),
        ("accuracy", f"{o['accuracy_fsdd'] * 100:.2f} % FSDD test (golden; RTL equal)", s4["accuracy"],
         "measured"),
    ]
    lines = ["# Efficiency report", "",
             "Made by `make report` from `build/report/sim.json` (`make sim`) and `build/report/synth.json` "
             "(`make synth`). Operating point: the shipped `fsdd` model, P = "
             f"{sim['hardware']['pe_count']}, clocked at the real-time clock (each frame done within its 10 ms). "
             "Our areas are SkyWater 130 nm synthesis estimates; our energies use 45 nm per-operation figures; "
             "seed 004 is a 28 nm chip measured at its own operating points. No technology scaling is applied: "
             "compare orders of magnitude, not digits.", "",
             "| figure | ours | seed 004 | how ours was obtained |", "|---|---|---|---|"]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]
    lines += ["", "## Energy per frame (estimate)", "", f"From {e['from']}:", "",
              "| part | pJ per frame |", "|---|---|"]
    lines += [f"| {k} | {v:.1f} |" for k, v in e["pj_per_frame"].items()]
    lines += [f"| **total** | **{e['total_pj_per_frame']:.1f}** |", "", "Assumptions:", ""]
    lines += [f"- {a}" for a in e["assumptions"]]
    lines += ["", "## Seed 003's theoretical estimate for the same network", "",
              f"E_ANN = FLOPs x E_MAC ({E_MAC_PJ} pJ) = {th['E_ANN_pj_per_frame'] / 1e3:.1f} nJ per frame; "
              f"E_SNN = sum over layers of T x R_l x FLOPs_l x E_AC ({E_AC_PJ} pJ) = "
              f"{th['E_SNN_pj_per_frame'] / 1e3:.2f} nJ per frame: {th['ratio']:.1f}x less. {th['note']}. "
              "Seed 003 prints the two energies as nJ; they are the 45 nm 32-bit float figures in pJ.", "",
              "## Synthesis", "",
              "| module | sky130 area (um2) |", "|---|---|"] + [
              f"| {k} | {v['area_um2_sky130']:,.0f} |" for k, v in synth["by_module"].items() if k != "memories"] + [
              f"| memories ({synth['memory_bits']['total']:,} bits, SRAM estimate) | "
              f"{synth['memory_area_um2']['as_sram_estimate']:,.0f} |", "",
              f"sky130 logic {synth['area_um2']['sky130']:.0f} um2 (OSU 0.18 um: "
              f"{synth['area_um2'].get('osu018') or 'not available'} um2), {synth['transistors']:,} transistors (logic), "
              f"iCE40 {synth['ice40']['lut']} LUT4 / {synth['ice40']['ff']} FF / {synth['ice40']['bram']} "
              f"BRAM; memories {synth['memory_bits']['total']:,} bits "
              f"({', '.join(f'{k} {v:,}' for k, v in synth['memory_bits'].items() if k != 'total')}).", "",
              "## Plots", ""]
    lines += [f"![{k}]({v})" for k, v in r["plots"].items()]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    argparse.ArgumentParser(prog="python -m synth.report", description=__doc__.split("\n\n")[0]).parse_args(argv)
    try:
        r = build()
    except ReportError as e:
        print(f"report: error: {e}", file=sys.stderr)
        return 2
    o = r["ours"]
    print(f"real time at {o['realtime_clock_hz'] / 1e3:.1f} kHz, estimated {o['power_w_estimate'] * 1e6:.2f} uW, "
          f"{o['area_mm2_estimate']:.3f} mm2 (estimate); wrote {REPORT / 'report.md'} and report.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
