"""Synthesis runs on a small core and reports every view (cells, transistors, sky130 area, iCE40)."""
import pytest

from golden.params import HardwareParams, ParamError, default_network
from synth.synth import SKY130_CELLS, memory_bits, sky130_liberty, synthesize

SMALL = HardwareParams(pe_count=2, time_steps=1, max_features=8, max_neurons=8, max_classes=4, max_layers=2,
                       scan_width=4, weight_words=64, index_rows=40, acc_bits=16, max_state_bits=16)

pytestmark = [pytest.mark.synth, pytest.mark.slow]


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    net = default_network(n_features=6, hidden=(8, 6), n_classes=3)
    return net, SMALL, synthesize(SMALL, tmp_path_factory.mktemp("synth"), log=lambda *a: None)


def test_every_view_is_reported(small):
    net, hw, r = small
    assert r["area_um2"]["sky130"] > 0 and r["transistors"] > 0
    # the OSU view is there, or the report says why not (no apt-get/dpkg, no network)
    assert (r["area_um2"]["osu018"] or 0) > r["area_um2"]["sky130"] or r.get("osu018_unavailable")
    assert r["ice40"]["lut"] > 0 and r["ice40"]["ff"] > 0
    assert r["sky130_cells"]["sky130_fd_sc_hd__dfxtp_1"] > 0
    # the logic holds at least the counters of the debug word as flip-flops
    assert r["cells_generic"]["$_DFF_P_"] >= 9 * 32
    # without the debug word the core is smaller
    assert 0 < r["area_without_debug_um2"]["sky130"] < r["area_um2"]["sky130"]
    by = r["by_module"]
    parts = [by[k]["area_um2_sky130"] for k in ("event_generator", "lane_queues", "lane_fetches",
                                                "lane_accumulators", "neuron_sweep_configuration_control")]
    assert min(parts) > 0 and sum(parts) == pytest.approx(r["area_um2"]["sky130"], abs=1)
    mb = r["memory_bits"]
    assert mb["weights"] == hw.weight_words * hw.pe_count * 4
    assert mb["total"] == sum(v for k, v in mb.items() if k != "total")
    assert r["memory_area_um2"]["as_sram_estimate"] == pytest.approx(mb["total"] * 23.28, rel=1e-6)


def test_area_liberty_names_every_cell():
    lib = sky130_liberty({f"sky130_fd_sc_hd__{k}_1": 1.0 for k in list(SKY130_CELLS) + ["dfxtp"]})
    for k in SKY130_CELLS:
        assert f"sky130_fd_sc_hd__{k}_1" in lib
    assert 'next_state : "D"' in lib


def test_memory_bits_refuse_bad_hardware():
    with pytest.raises(ParamError, match="weight_words"):
        memory_bits(HardwareParams(weight_words=0))


def test_report_from_a_small_run(small, tmp_path, capsys):
    """rsnn sim (Icarus, synthetic speech) + synthesis of a small configuration -> report.md, report.json, plots."""
    import json
    from conftest import tone, write_wav
    from rsnn.cli import main
    from synth.report import build
    net, hw, synth = small
    d = tmp_path / "data"
    (d / "wav").mkdir(parents=True)
    rows = ["path,digit,speaker,official_split"]
    for i, f in enumerate((400, 1200)):
        write_wav(d / "wav" / f"{i}.wav", tone(f, 0.3, 8000), 8000)
        rows.append(f"wav/{i}.wav,{i},s{i},test")
    (d / "manifest.csv").write_text("\n".join(rows) + "\n")
    assert main(["sim", "--data", str(d), "--simulators", "icarus", "--pe", "8",
                 "--json", str(tmp_path / "sim.json")]) == 0
    (tmp_path / "synth.json").write_text(json.dumps(synth))
    r = build(tmp_path / "out", tmp_path / "sim.json", tmp_path / "synth.json")
    md = (tmp_path / "out" / "report.md").read_text()
    assert "seed 004" in md and "ESTIMATE" in md
    assert r["ours"]["power_w_estimate"] > 0 and r["theoretical_seed_003"]["ratio"] > 1
    for png in r["plots"].values():
        assert (tmp_path / "out" / png).stat().st_size > 1000


def test_report_names_what_is_missing(tmp_path):
    from synth.report import ReportError, build
    with pytest.raises(ReportError, match="make sim"):
        build(tmp_path, tmp_path / "nope.json", tmp_path / "nope2.json")
