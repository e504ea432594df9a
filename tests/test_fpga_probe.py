"""scripts/fpga_probe.py (issue #17's placement probe) without running yosys or nextpnr: its board capacities hold
both shipped models, and its probe top reaches every port of the core through 6 pins (clock and reset included)."""
from __future__ import annotations

import importlib.util

import pytest

from golden.data import PROJECT_ROOT
from golden.image import check_fits
from golden.modelfile import load_model

_spec = importlib.util.spec_from_file_location("fpga_probe", PROJECT_ROOT / "scripts" / "fpga_probe.py")
probe = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(probe)


@pytest.mark.parametrize("pe, blocks", [(4, 16384), (2, 32768)])
def test_board_capacities_hold_both_shipped_models(pe, blocks):
    hw = probe.board_hardware(pe, 8, blocks)
    for name in ("fsdd", "arabic_digits"):
        check_fits(load_model(PROJECT_ROOT / "models" / f"{name}.npz"), hw)


def test_probe_top_elaborates_with_six_pins():
    from amaranth.back import rtlil
    p = probe.Probe(probe.board_hardware(4, 8))
    text = rtlil.convert(p, name="probe", emit_src=False, ports=[p.sin, p.shift, p.cap, p.sout])
    top = text.split("module \\probe\n", 1)[1].split("\nend\n", 1)[0]
    wires = [ln for ln in top.splitlines() if ln.strip().startswith("wire") and (" input " in ln or " output " in ln)]
    assert len(wires) == 6, wires          # sin, shift, cap, sout, clk, rst
