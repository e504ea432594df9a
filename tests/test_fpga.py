"""scripts/fpga.py and rtl/icebreaker.py (issue #17) without running yosys or nextpnr: the board capacities hold
both shipped models, the iCEBreaker top prepares with the platform's pins and our synthesis script, and the
report's parsers read nextpnr's and yosys' outputs (the build itself is `make fpga`)."""
from __future__ import annotations

import importlib.util
import json

import pytest

from golden.data import PROJECT_ROOT
from golden.image import check_fits
from golden.modelfile import load_model
from rtl.icebreaker import BOARD_MODELS, ICEBreakerTop, board_hardware, icebreaker_platform

_spec = importlib.util.spec_from_file_location("fpga", PROJECT_ROOT / "scripts" / "fpga.py")
fpga = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fpga)


def test_board_capacities_hold_both_shipped_models():
    hw = board_hardware()
    for name in BOARD_MODELS:
        check_fits(load_model(PROJECT_ROOT / "models" / f"{name}.npz"), hw)


def test_weights_go_to_spram_by_the_numbers():
    c = fpga.memory_choice(board_hardware())
    assert c["weight_memory"] == {"lanes": 1, "depth": 49152, "width": 11, "bits": 49152 * 11}
    assert c["as_ebr"]["blocks"] == 192 > c["as_ebr"]["available"] == 30      # 256 x 16 per EBR
    assert c["as_spram"]["blocks"] == 3 and c["choice"] == "spram"


def test_icebreaker_top_prepares_with_the_board_pins():
    pytest.importorskip("amaranth_boards")
    plan = icebreaker_platform().prepare(ICEBreakerTop(board_hardware()), name="t",
                                         synth_opts="-device u -spram", script_after_read="# here")
    pcf = plan.files["t.pcf"]
    for port, pin in (("clk12_0__io", 35), ("uart_0__rx__io", 6), ("uart_0__tx__io", 9), ("led_g_0__io", 37),
                      ("led_r_0__io", 11), ("button_0__io", 10)):
        assert f"set_io {port} {pin}" in pcf
    assert "set_frequency clk12_0__io 12.0" in pcf
    ys = plan.files["t.ys"]
    assert "synth_ice40 -device u -spram -top t" in ys and "# here" in ys
    il = plan.files["t.il"]       # the setparam of scripts/fpga.py names this module: the weights' SPRAM needs it
    core = il[il.index("module \\t.link.core\n"):]
    # one weight memory per lane (one lane)
    assert "memory width 11 size 49152 \\wmem0\n" in core[:core.index("\nend\n")]


def test_report_parsers(tmp_path):
    rep = tmp_path / "r.json"
    rep.write_text(json.dumps({"fmax": {"clk": {"achieved": 15.93, "constraint": 12.0}},
                               "utilization": {"ICESTORM_LC": {"used": 5168, "available": 5280}}}))
    assert fpga.parse_report(rep) == {"fmax_mhz": 15.93,
                                      "utilization": {"ICESTORM_LC": {"used": 5168, "available": 5280}}}
    log = tmp_path / "n.tim"
    log.write_text("Info: Device utilisation:\nInfo:     ICESTORM_LC:  5404/ 5280   102%\n"
                   "Info:     ICESTORM_RAM:    14/   30    46%\nERROR: Failed to expand region\n")
    f = fpga.nextpnr_failure(log)
    assert f["utilization"]["ICESTORM_LC"] == {"used": 5404, "available": 5280}
    assert f["error"].startswith("ERROR: Failed")
    ylog = ("2.1. Printing statistics.\n   9 SB_DFF\n"
            "5.50. Printing statistics.\n=== top ===\n   188   SB_DFF\n   195   SB_DFFE\n   4103   SB_LUT4\n"
            "=== design hierarchy ===\n   188   SB_DFF\n   195   SB_DFFE\n")
    assert fpga.flip_flops(ylog) == 383


def test_bad_options_are_refused_before_any_build(capsys):
    for argv, word in ((["--pe", "0"], "--pe"), (["--baud", "5000000"], "baud"),
                       (["--weight-words", "100"], "weight_words")):
        with pytest.raises(SystemExit) as e:
            fpga.main(argv)
        assert e.value.code == 2 and word in capsys.readouterr().err
