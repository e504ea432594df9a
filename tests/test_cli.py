"""The rsnn command line: output formats, errors as one line, and a real evaluation when the data is there."""
import json
import re

import numpy as np
import pytest

from conftest import real_data, tone_dataset
from golden import random_model, save_model
from rsnn.cli import build_parser, main


@pytest.fixture
def dataset(tmp_path):
    return tone_dataset(tmp_path)


def run_cli(capsys, *argv):
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.mark.parametrize("cmd", [None, "infer", "eval", "sim", "train"])
def test_help_everywhere(capsys, cmd):
    with pytest.raises(SystemExit) as e:
        main(([cmd] if cmd else []) + ["--help"])
    assert e.value.code == 0
    assert "usage: rsnn" in capsys.readouterr().out


def test_infer_json_lines(capsys, dataset, tmp_path):
    path = tmp_path / "m.npz"
    model = random_model(seed=5)
    save_model(model, path)
    files = [str(dataset / "wav" / "0.wav"), str(dataset / "wav" / "1.wav")]
    rc, out, err = run_cli(capsys, "infer", *files, "--model", str(path))
    assert rc == 0
    lines = [json.loads(x) for x in out.splitlines()]
    assert [x["path"] for x in lines] == files
    for x in lines:
        assert x["label"] in model.labels and x["frames"] == 1 + (3200 - 200) // 80
        assert set(x["counters"]) >= {"in_events", "accumulations", "state_reads"}
        assert set(x["counters"]["in_events"]) == {"layer0", "layer1", "readout"}
    assert "random" in err  # the stand-in says what it is


def test_eval_json_and_confusion(capsys, dataset, tmp_path):
    out_json = tmp_path / "r.json"  # an existing folder: rsnn creates no folders for --json
    rc, out, _ = run_cli(capsys, "eval", "--data", str(dataset), "--split", "test", "--model", "random",
                         "--json", str(out_json))
    assert rc == 0
    assert "random" in out and "golden accuracy" in out and "confusion" in out
    res = json.loads(out_json.read_text())
    assert res["n"] == 3
    assert np.array(res["confusion"]).sum() == 3
    assert np.trace(np.array(res["confusion"])) == round(res["accuracy"] * 3)
    assert np.array(res["confusion"])[[0, 1, 7]].sum() == 3 and np.array(res["confusion"])[3].sum() == 0


@pytest.mark.parametrize("argv,match", [
    (["infer", "{d}/nope.wav"], "does not exist"),
    (["infer", "{d}/manifest.csv"], "not a readable audio file"),
    (["eval", "--data", "{d}/nowhere"], "does not exist"),
    (["eval", "--data", "{d}", "--split", "dev"], "no row in split 'dev'"),
    (["eval", "--data", "{d}", "--label-column", "word"], "no 'word' column"),
    (["eval", "--data", "{d}", "--label-column", "speaker"], "label 's0'.*not one of the model's classes"),
    (["eval", "--data", "{d}", "--model", "nosuchmodel"], "no model named 'nosuchmodel'"),
    (["eval", "--data", "{d}", "--model", "{d}/manifest.csv"], "not an rsnn-model file"),
    (["train", "--recipe", "fsdd", "--set", "epochs_float"], "--set takes KEY=VALUE"),
    (["train", "--recipe", "fsdd", "--set", "hiden=[64,64]"], "cannot set 'hiden'"),
    (["train", "--recipe", "fsdd", "--set", "sparsity=2"], "sparsity must be"),
    (["train", "--recipe", "fsdd", "--validate", "--data", "{d}"], "no 'index' column: a val split cannot be held"),
])
def test_errors_are_one_line(capsys, dataset, argv, match):
    rc, out, err = run_cli(capsys, *[a.format(d=dataset) for a in argv])
    assert rc == 2
    lines = [x for x in err.splitlines() if not x.startswith("rsnn: note: ")]
    assert len(lines) == 1 and lines[0].startswith("rsnn: error: "), err
    assert re.search(match, lines[0]), err


def test_empty_manifest(capsys, tmp_path):
    (tmp_path / "manifest.csv").write_text("path,digit\n")
    rc, _, err = run_cli(capsys, "eval", "--data", str(tmp_path))
    assert rc == 2 and "lists no utterances" in err


@pytest.mark.sim
def test_sim_writes_report(capsys, dataset, tmp_path):
    rc, out, _ = run_cli(capsys, "sim", "--data", str(dataset), "--json", str(tmp_path / "sim.json"),
                         "--simulators", "icarus", "--pe", "8", "--icarus-utterances", "3")
    assert rc == 0 and "zero-skip" in out and "RTL == golden: yes" in out
    res = json.loads((tmp_path / "sim.json").read_text())
    assert res["split"] == "test" and res["n"] == 3 and 0 < res["activity"]["zero_skip_work_fraction"] <= 1
    ic = res["simulators"]["icarus"]
    assert ic["utterances"] == 3 and ic["frames"] == 3 * 38 and ic["mismatches"] == 0 == ic["cycle_mismatches"]
    assert res["accuracy"] == res["simulators"]["icarus"]["golden_accuracy_same_utterances"]
    assert res["cycles_per_frame"]["max"] >= res["cycles_per_frame"]["mean"] > res["cycles_per_frame"][
        "lower_bound_mean"] > 0
    assert res["realtime_clock_hz"] == res["cycles_per_frame"]["max"] * 100
    assert res["hardware"]["pe_count"] == 8 and set(res["cycles_over_pe"]) >= {"8", "16"}


@pytest.mark.sim
def test_infer_through_the_rtl(capsys, dataset):
    rc, out, _ = run_cli(capsys, "infer", "--rtl", str(dataset / "wav" / "1.wav"), "--pe", "8")
    assert rc == 0
    line = json.loads(out.splitlines()[-1])
    assert line["rtl"]["decision"] == line["decision"] and line["rtl"]["mismatching_frames"] == 0
    assert line["rtl"]["cycle_mismatches"] == 0 and line["rtl"]["cycles"] > 0


def test_sim_refuses_zero_rtl_utterances(capsys, dataset):
    rc, _, err = run_cli(capsys, "sim", "--data", str(dataset), "--rtl-utterances", "0")
    assert rc == 2 and "--rtl-utterances" in err


def test_sim_refuses_unknown_simulator(capsys, dataset):
    rc, _, err = run_cli(capsys, "sim", "--data", str(dataset), "--simulators", "modelsim")
    assert rc == 2 and "unknown simulator" in err


def test_sim_refuses_bad_hardware(capsys, dataset):
    rc, _, err = run_cli(capsys, "sim", "--data", str(dataset), "--pe", "0")
    assert rc == 2 and "pe_count" in err and "--pe" in err


def test_parser_lists_commands():
    text = build_parser().format_help()
    for cmd in ("infer", "eval", "sim"):
        assert cmd in text


@pytest.mark.data
def test_eval_real_fsdd_test_split(capsys, tmp_path):
    d = real_data("fsdd")
    rc, out, _ = run_cli(capsys, "eval", "--data", str(d), "--split", "test", "--json", str(tmp_path / "o.json"))
    assert rc == 0
    res = json.loads((tmp_path / "o.json").read_text())
    assert res["n"] == 300 and np.array(res["confusion"]).sum() == 300
    assert np.array(res["confusion"]).sum(axis=1).tolist() == [30] * 10
    assert 0.0 <= res["accuracy"] <= 1.0 and res["frames"] > 300
