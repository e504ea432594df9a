"""Verilator's -Wall lint of the generated Verilog: nothing left but the waived classes, each waiver explained."""
import pytest

from golden.params import HardwareParams, default_network
from rtl.build import build_verilog
from rtl.lint import WAIVERS, lint

pytestmark = [pytest.mark.sim]


def test_lint_clean_with_waivers(tmp_path):
    v = build_verilog(default_network(n_features=12, hidden=(20, 18), n_classes=5, time_steps=2),
                      HardwareParams(pe_count=4), None, tmp_path)
    assert lint(v) == []


def test_every_waiver_says_why():
    lines = WAIVERS.read_text().splitlines()
    for i, ln in enumerate(lines):
        if ln.startswith("lint_off"):
            assert lines[i - 1].startswith("//"), f"waiver without a reason: {ln}"


def test_lint_finds_warnings_without_waivers(tmp_path, monkeypatch):
    import rtl.lint
    empty = tmp_path / "none.vlt"
    empty.write_text("`verilator_config\n")
    monkeypatch.setattr(rtl.lint, "WAIVERS", empty)
    v = build_verilog(default_network(n_features=6, hidden=(8,), n_classes=3), HardwareParams(pe_count=4), None,
                      tmp_path)
    assert any("%Warning" in ln for ln in rtl.lint.lint(v))


@pytest.mark.parametrize("hw", [HardwareParams(), HardwareParams(pe_count=4, time_steps=1, max_features=12,
                                                                  max_neurons=20, max_classes=5, max_layers=3,
                                                                  scan_width=8, weight_words=100, index_rows=90)],
                         ids=["default", "small"])
def test_core_lint_clean_with_waivers(hw, tmp_path):
    from rtl.build import build_core_verilog
    assert lint(build_core_verilog(hw, tmp_path)) == []
