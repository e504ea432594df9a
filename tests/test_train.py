"""The PyTorch twin against golden (bit-exact), the export's refusals, pruning, and a tiny end-to-end training."""

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

from conftest import real_data, tone
from golden import run_batch
from golden.arith import leak
from golden.frontend import features, features_from_file
from golden.modelfile import load_model
from golden.params import FrontEndParams, LayerParams, NetworkParams, ReadoutParams, ResetMode
from train.data import FeatureSet, to_tensor
from train.export import ExportError, export_model, import_model
from train.loop import TrainConfig, golden_metrics, train
from train.prune import magnitude_masks, remove_neurons
from train.twin import RSNN, floor_leak

pytestmark = pytest.mark.train
LABELS4 = ("a", "b", "c", "d")


def small_net(T=1, reset=ResetMode.SUBTRACT, leak_shift=2, state_bits=10, sizes=(12, 9), levels=(1, 1)):
    return NetworkParams(n_features=6, feature_bits=4, time_steps=T,
                         layers=(LayerParams(size=sizes[0], state_bits=state_bits, threshold=30, leak_shift=leak_shift,
                                             reset=reset, in_shift=1, spike_levels=levels[0]),
                                 LayerParams(size=sizes[1], state_bits=state_bits, threshold=9, leak_shift=1,
                                             reset=reset, rec_shift=1, spike_levels=levels[1])),
                         readout=ReadoutParams(size=4, state_bits=12)).validate()


def assert_twin_equals_golden(twin, feats):
    model = export_model(twin, FrontEndParams(n_mels=twin.net.n_features), LABELS4[:twin.net.readout.size], {})
    x, L = to_tensor(feats)
    with torch.no_grad():
        out = twin(x, L)
    ref = run_batch(model, feats)
    assert np.array_equal(ref.lengths, L.numpy())
    for l in range(len(model.network.layers)):
        assert np.array_equal(out.spikes[l].numpy().astype(np.uint8), ref.spikes[l]), f"spikes of layer {l}"
    got = out.readout.numpy().astype(np.int64)
    for b, n in enumerate(ref.lengths):
        assert np.array_equal(got[b, :n], ref.readout[b, :n]), "readout potentials"
    assert np.array_equal(out.final.argmax(1).numpy(), ref.decisions)
    return model, ref


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 2), st.sampled_from(ResetMode), st.integers(0, 4), st.integers(6, 12), st.integers(0, 2**31),
       st.sampled_from([(1, 1), (1, 1), (2, 1), (3, 3), (1, 2), (7, 2)]))
def test_quantized_twin_equals_golden(T, reset, k, state_bits, seed, levels):
    g = torch.Generator().manual_seed(seed)
    twin = RSNN(small_net(T, reset, k, state_bits, levels=levels), ((4.0, 4.0), (4.0, 4.0), 6.0), seed=seed)
    twin.mode = "quant"
    with torch.no_grad():  # push some weights past the format so the clamp is exercised
        twin.w_in[0].mul_(1.0 + 2.0 * torch.rand(twin.w_in[0].shape, generator=g))
    rng = np.random.default_rng(seed)
    feats = [rng.integers(0, 16, size=(n, 6)) * (rng.random((n, 6)) < 0.6) for n in rng.integers(1, 30, size=5)]
    _, ref = assert_twin_equals_golden(twin, feats)


def test_multi_level_twin_fires_every_level_like_golden_and_has_a_staircase_gradient():
    twin = RSNN(small_net(reset=ResetMode.SUBTRACT, levels=(3, 2)), ((8.0, 4.0), (6.0, 4.0), 6.0), seed=3)
    twin.mode = "quant"
    rng = np.random.default_rng(3)
    feats = [rng.integers(0, 16, size=(n, 6)) for n in (25, 17, 30)]
    _, ref = assert_twin_equals_golden(twin, feats)
    assert {1, 2, 3} <= set(np.unique(ref.spikes[0]).tolist()) and {1, 2} <= set(np.unique(ref.spikes[1]).tolist())
    # the surrogate of the staircase: one fast-sigmoid bump per level, each as high as the binary spike's
    from train.twin import SpikeFn
    v = torch.tensor([10.0, 20.0, 30.0, 25.0], requires_grad=True)
    th = 10.0
    s = sum(SpikeFn.apply((v - m * th) / th, 5.0) for m in (1, 2, 3))
    s.sum().backward()
    assert s.tolist() == [1.0, 2.0, 3.0, 2.0]
    assert v.grad[0] > 0 and abs(float(v.grad[1]) - float(v.grad[0])) < 0.05 and v.grad[3] < v.grad[1]


def test_twin_saturates_like_golden():
    twin = RSNN(small_net(state_bits=6), ((30.0, 30.0), (30.0, 30.0), 30.0), seed=1)
    twin.mode = "quant"
    feats = [np.full((20, 6), 15)]
    _, ref = assert_twin_equals_golden(twin, feats)
    assert ref.spikes[0].any()


@given(st.integers(-(1 << 20), 1 << 20), st.integers(0, 10))
def test_floor_leak_is_golden_leak(v, k):
    assert floor_leak(torch.tensor([float(v)]), k).item() == leak(v, k)


def test_export_refuses_what_does_not_fit():
    twin = RSNN(small_net(), ((3.0, 3.0), (3.0, 3.0), 3.0))
    fe = FrontEndParams(n_mels=6)
    with pytest.raises(ExportError, match="only a quantized twin"):
        export_model(twin, fe, LABELS4, {})

    class Raw(RSNN):  # bypasses the quantizer: what a broken QAT would hand over
        def effective(self, name, w):
            return w

    raw = Raw(small_net(), ((3.0, 3.0), (3.0, 3.0), 3.0))
    raw.mode = "quant"
    with pytest.raises(ExportError, match="not all integers"):
        export_model(raw, fe, LABELS4, {})
    with torch.no_grad():
        for _, w in raw.named_matrices():
            w.copy_(torch.round(w).clamp(-8, 7))
        raw.w_out[0, 0] = 9.0
    with pytest.raises(ExportError, match="out.w hold .*outside s4"):
        export_model(raw, fe, LABELS4, {})
    with torch.no_grad():
        raw.w_out[0, 0] = 1.0
    with pytest.raises(ExportError, match="golden rejects"):
        export_model(raw, fe, ("x",) * 4, {})


def test_import_is_the_inverse_of_export():
    twin = RSNN(small_net(T=2), ((4.0, 4.0), (4.0, 4.0), 4.0), seed=3)
    twin.mode = "quant"
    model = export_model(twin, FrontEndParams(n_mels=6), LABELS4, {})
    again = export_model(import_model(model), FrontEndParams(n_mels=6), LABELS4, {})
    for (n, a), (_, b) in zip(model.matrices().items(), again.matrices().items()):
        assert np.array_equal(a, b), n


def test_removing_silent_neurons_changes_nothing():
    twin = RSNN(small_net(), ((4.0, 4.0), (4.0, 4.0), 4.0), seed=5)
    twin.mode = "quant"
    drop = [3, 7]
    with torch.no_grad():  # neurons whose spikes reach nobody
        twin.w_rec[0][:, drop] = 0
        twin.w_in[1][:, drop] = 0
    rng = np.random.default_rng(0)
    feats = [rng.integers(0, 16, size=(25, 6))]
    x, L = to_tensor(feats)
    before = twin(x, L)
    keep = [torch.tensor([i for i in range(12) if i not in drop]), torch.arange(9)]
    remove_neurons(twin, keep)
    assert twin.net.layers[0].size == 10 and twin.w_in[0].shape == (10, 6) and twin.w_in[1].shape == (9, 10)
    after = twin(x, L)
    assert torch.equal(before.readout, after.readout)
    assert torch.equal(before.spikes[0][..., keep[0]], after.spikes[0])
    assert_twin_equals_golden(twin, feats)


def test_magnitude_masks_reach_the_target():
    twin = RSNN(small_net(), ((4.0, 4.0), (4.0, 4.0), 4.0), seed=6)
    magnitude_masks(twin, 0.7)
    for name, w in twin.named_matrices():
        assert abs(1 - twin.masks[name].mean().item() - 0.7) < 1.0 / w.numel() + 1e-6, name
    twin.mode = "quant"
    model = export_model(twin, FrontEndParams(n_mels=6), LABELS4, {})
    assert model.nonzero_weights() <= 0.3 * model.total_weights() + 4


def tone_set(n_per_class, seed):
    fe = FrontEndParams(n_mels=6, fmax_hz=4000.0)
    rng = np.random.default_rng(seed)
    feats, labels = [], []
    for c, f in enumerate((300.0, 700.0, 1500.0, 3000.0)):
        for _ in range(n_per_class):
            x = tone(f * rng.uniform(0.9, 1.1), rng.uniform(0.2, 0.4), 8000) + rng.normal(0, 0.01, 3200)[:1]
            feats.append(features(x, 8000, fe))
            labels.append(c)
    return FeatureSet(feats, np.array(labels), [None] * len(feats), [""] * len(feats)), fe


def test_tiny_training_end_to_end():
    train_set, fe = tone_set(12, 0)
    test_set, _ = tone_set(5, 1)
    cfg = TrainConfig(hidden=(16, 12), thresholds=(30, 9), state_bits=(12, 12), readout_bits=16, epochs_float=6,
                      epochs_quant=3, keep_neurons=(12, 10), epochs_structured=2, sparsity=0.5, epochs_sparse=5,
                      batch_size=16, rate_penalty=0.1)
    stages = train(cfg, train_set, test_set, fe, LABELS4, {"command": "test"}, progress=False, log=lambda *_: None)
    assert [s.name for s in stages] == ["float", "4bit", "4bit_structured", "4bit_pruned"]
    final = stages[-1].model
    assert [lp.size for lp in final.network.layers] == [12, 10]
    assert final.nonzero_weights() <= 0.55 * final.total_weights()
    assert stages[-1].accuracy >= 0.75, [s.accuracy for s in stages]
    assert golden_metrics(final, test_set)["accuracy"] == stages[-1].accuracy
    assert_twin_equals_golden(stages[-1].extra["twin"], test_set.feats)

    # the ablation rows of the report: sparsities add up, the float row is the float32 dense baseline
    from train.recipes import _stage_table
    from train.report import ablation_rows, markdown
    rows = ablation_rows(_stage_table(stages), 4000)
    assert [r["stage"] for r in rows] == [s.name for s in stages]
    assert rows[0]["stored_bytes"] == 4000 and "weights" not in rows[0]
    q, st, pr = rows[1], rows[2], rows[3]
    assert q["structured_sparsity"] == 0 and st["structured_sparsity"] > 0
    assert st["weights"] == pr["weights"] and pr["nonzero_weights"] == final.nonzero_weights()
    assert abs((1 - pr["total_weight_sparsity"]) - (1 - pr["structured_sparsity"]) * (1 - pr["unstructured_sparsity"])) < 1e-3
    assert pr["synaptic_ops_per_inference"] < q["dense_synaptic_ops_per_inference"]
    text = markdown("tiny", {"command": "test", "seed": 0, "train_seconds": 1.0, "config": cfg.to_dict(),
                             "ablation": rows})
    assert text.count("\n|") == 2 + len(rows)


@pytest.mark.data
@pytest.mark.parametrize("name", ["fsdd", "arabic_digits"])
def test_shipped_model_twin_equals_golden_on_real_speech(name):
    """Each shipped model: at most 0.1 MB stored, and its PyTorch twin gives golden's spikes and readout exactly
    on the first 12 utterances of the real test split."""
    d = real_data(name)
    from golden.data import read_manifest
    from rsnn.cli import MODELS_DIR
    path = MODELS_DIR / f"{name}.npz"
    if not path.is_file():
        pytest.skip(f"no shipped model at {path}")
    assert path.stat().st_size <= 100_000
    model = load_model(path)
    twin = import_model(model)
    files = [u.path for u in read_manifest(d, "test")[:12]]
    feats = [features_from_file(f, model.frontend) for f in files]
    x, L = to_tensor(feats)
    with torch.no_grad():
        out = twin(x, L)
    ref = run_batch(model, feats)
    for l in range(len(model.network.layers)):
        assert np.array_equal(out.spikes[l].numpy().astype(np.uint8), ref.spikes[l])
    for b, n in enumerate(ref.lengths):
        assert np.array_equal(out.readout.numpy().astype(np.int64)[b, :n], ref.readout[b, :n])
    assert ref.spikes[0].any()


@pytest.mark.parametrize("name", ["fsdd", "arabic_digits"])
def test_shipped_models_are_the_files_their_training_report_describes(name):
    """models/train.json is the report of the run that wrote the shipped models (``rsnn train``): its hash, size,
    command, seed and accuracy are the shipped file's, it was trained with the kernels pinned, and the report tool
    prints it (train/README.md's tables come from that tool's output)."""
    import hashlib
    import json
    from rsnn.cli import MODELS_DIR
    from train.report import markdown
    report = json.loads((MODELS_DIR / "train.json").read_text())
    rep = report[name]
    path = MODELS_DIR / f"{name}.npz"
    assert rep["model_file"] == f"models/{name}.npz"
    assert rep["model_sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert rep["model_bytes"] == path.stat().st_size
    model = load_model(path)
    meta = model.meta
    assert (meta["command"], meta["seed"]) == (rep["command"], rep["seed"]) == (f"rsnn train --recipe {name}", 0)
    from train.recipes import RECIPES  # the recipe as it stands made this file: front end and config
    assert model.frontend == RECIPES[name].frontend and meta["config"] == RECIPES[name].config.to_dict()
    assert meta["test_accuracy_golden"] == rep["accuracy"] == rep["stages"][-1]["accuracy"]
    assert rep["platform"]["pinned_isa"] == "AVX2" and rep["platform"]["cpu_capability"] == "AVX2"
    assert f"--recipe {name}`" in markdown(name, rep)


def test_spec_masks_zero_one_band_and_one_span_per_utterance():
    from train.loop import _mask
    x = torch.ones(3, 20, 10)
    L = torch.tensor([20, 12, 8])
    cfg = TrainConfig(freq_mask=3, time_mask=4)
    a = _mask(x, L, cfg, np.random.default_rng(5))
    b = _mask(x, L, cfg, np.random.default_rng(5))
    assert torch.equal(a, b)                                     # seeded
    for i in range(3):
        zero_cols = int((a[i].sum(0) == 0).sum())
        zero_rows = int((a[i, :int(L[i])].sum(1) == 0).sum())
        assert zero_cols <= 3 and zero_rows <= 4
    assert torch.equal(_mask(x, L, TrainConfig(), np.random.default_rng(0)), x)   # off by default


def test_report_tool_names_a_missing_or_foreign_file(tmp_path, capsys):
    from train.report import main
    assert main([str(tmp_path / "none.json")]) == 1
    assert "run `make train`" in capsys.readouterr().err
    bad = tmp_path / "train.json"
    bad.write_text('{"fsdd": {"stages": []}}')
    assert main([str(bad)]) == 1
    assert "not a report written by rsnn train" in capsys.readouterr().err


def test_speed_perturbation_resamples_within_its_range_and_leaves_the_default_draws_alone():
    from train.data import augment_waveform
    x = np.sin(np.arange(16000) * 0.05)
    # speed 0 draws exactly what the augmentation drew before the option existed: gain, shift, noise level, noise
    rng = np.random.default_rng(3)
    gain = 10 ** (rng.uniform(-6, 6) / 20)
    shift = int(rng.uniform(-0.05, 0.15) * 16000)
    assert len(augment_waveform(x, 16000, np.random.default_rng(3))) == len(x) + shift
    assert np.isfinite(gain)
    for seed in range(5):
        a = augment_waveform(x, 16000, np.random.default_rng(seed), speed=0.1)
        assert np.array_equal(a, augment_waveform(x, 16000, np.random.default_rng(seed), speed=0.1))   # seeded
        r = np.random.default_rng(seed)
        factor = r.uniform(0.9, 1.1)
        r.uniform(-6, 6)
        shift = int(r.uniform(-0.05, 0.15) * 16000)
        assert 0.9 <= factor <= 1.1
        assert len(a) == round(len(x) / factor) + shift
    with pytest.raises(ValueError, match="speed perturbation"):
        augment_waveform(x, 16000, np.random.default_rng(0), speed=0.7)


def _tone_digits(d, n, splits):
    """A synthetic digit data set: utterance k is a tone for digit k % 10 by speaker s{k % 3}; ``splits`` maps
    the first index of each split after ``train`` to its name ({30: "test"}: 0-29 train, 30.. test)."""
    from conftest import write_wav
    (d / "wav").mkdir(parents=True)
    rows = ["path,digit,speaker,official_split"]
    split = "train"
    for k in range(n):
        split = splits.get(k, split)
        write_wav(d / "wav" / f"{k}.wav", tone(300 + 250 * (k % 10) + 7 * k, 0.3, 8000), 8000)
        rows.append(f"wav/{k}.wav,{k % 10},s{k % 3},{split}")
    (d / "manifest.csv").write_text("\n".join(rows) + "\n")
    return d


def test_a_recipe_run_saves_the_model_its_report_describes(tmp_path, monkeypatch):
    """run_recipe end to end on a synthetic two-split data set: the saved file is the one the report hashes, its
    golden accuracy is the report's, and the report records what a bit-identical re-run depends on."""
    import hashlib
    import train.data
    from golden.data import read_manifest
    from train import recipes
    from train.report import markdown
    d = _tone_digits(tmp_path / "data", 40, {30: "test"})
    monkeypatch.setattr(train.data, "CACHE", tmp_path / "cache")
    cfg = TrainConfig(hidden=(16, 16), keep_neurons=(12, 12), sparsity=0.5, epochs_float=1, epochs_quant=1,
                      epochs_structured=1, epochs_sparse=1, batch_size=8)
    monkeypatch.setitem(recipes.RECIPES, "tiny", recipes.Recipe(name="tiny", dataset="tiny",
                                                                frontend=FrontEndParams(), config=cfg, aug_copies=1,
                                                                loso=True, loso_config=cfg, ablate_time_steps=True))
    rep = recipes.run_recipe("tiny", data_dir=d, models_dir=tmp_path / "models", progress=False, log=lambda *a: None)
    path = tmp_path / "models" / "tiny.npz"
    assert rep["model_sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert rep["model_bytes"] == path.stat().st_size
    assert set(rep["platform"]) == {"torch", "threads", "cpu_capability", "machine", "kernel_settings", "pinned_isa"}
    last = rep["ablation"][-1]         # the core's format: at most 16 weights a word, 4 bits each and a chunk id
    assert last["nonzero_weights"] <= 16 * last["lane_list_words"] <= 16 * last["nonzero_weights"]
    assert last["lane_list_bits"] > 16 * 4 * last["lane_list_words"]
    assert "lane-list bits at P = 16" in markdown("tiny", rep)
    model = load_model(path)
    test = [features_from_file(u.path, model.frontend) for u in read_manifest(d, "test")]
    labels = [int(u.label) for u in read_manifest(d, "test")]
    assert rep["accuracy"] == float((run_batch(model, test).decisions == np.array(labels)).mean())
    assert [r["stage"] for r in rep["ablation"]] == ["float", "4bit", "4bit_structured", "4bit_pruned"]
    assert rep["ablation"][-1]["layer_sizes"] == [12, 12]
    # the T = 2 ablation and leave-one-speaker-out run too (every speaker held out once, golden accuracies)
    ts = rep["time_steps_ablation"]
    assert list(ts["T=1"]) == list(ts["T=2"]) == ["float", "4bit", "4bit_structured", "4bit_pruned"]
    assert ts["T=1"]["4bit_pruned"] == rep["accuracy"]
    lo = rep["leave_one_speaker_out"]
    assert sorted(lo["per_speaker"]) == ["s0", "s1", "s2"]
    for spk, acc in lo["per_speaker"].items():
        n = sum(u.speaker == spk for s in ("train", "test") for u in read_manifest(d, s))
        assert round(acc * n, 6) == round(acc * n)  # a count of correct utterances out of the speaker's n
    assert lo["mean"] == pytest.approx(np.mean(list(lo["per_speaker"].values())), abs=0)
    text = markdown("tiny", rep)
    assert " thread" in text and "| T = 1 | T = 2 |" in text and "Leave-one-speaker-out" in text


def test_a_validate_run_trains_on_train_and_measures_on_val_with_overrides(tmp_path, monkeypatch):
    """``rsnn train --validate --set ...``: the model learns from the train split only, every figure is on val,
    the overrides are applied and named, and the model is written outside models/."""
    import train.data
    from golden.data import read_manifest
    from train import recipes
    d = _tone_digits(tmp_path / "data", 50, {30: "val", 40: "test"})
    monkeypatch.setattr(train.data, "CACHE", tmp_path / "cache")
    cfg = TrainConfig(hidden=(16, 16), keep_neurons=(12, 12), sparsity=0.5, epochs_float=1, epochs_quant=1,
                      epochs_structured=1, epochs_sparse=1, batch_size=8)
    monkeypatch.setitem(recipes.RECIPES, "tiny", recipes.Recipe(name="tiny", dataset="tiny",
                                                                frontend=FrontEndParams(), config=cfg, aug_copies=1))
    over = {"keep_neurons": None, "sparsity": 0.25, "aug_copies": 0}
    rep = recipes.run_recipe("tiny", data_dir=d, models_dir=tmp_path / "m", progress=False, log=lambda *a: None,
                             validate=True, overrides=over)
    assert rep["test_split"] == "val" and list(rep["train_splits"]) == ["train"]
    assert rep["command"] == "rsnn train --recipe tiny --validate --set keep_neurons=null --set sparsity=0.25 " \
                            "--set aug_copies=0"
    assert rep["config"]["keep_neurons"] is None and rep["config"]["sparsity"] == 0.25
    assert rep["augmentation"]["copies"] == 0
    model = load_model(tmp_path / "m" / "tiny.npz")
    val = read_manifest(d, "val")
    decisions = run_batch(model, [features_from_file(u.path, model.frontend) for u in val]).decisions
    assert rep["accuracy"] == model.meta["val_accuracy_golden"] == float(
        (decisions == np.array([int(u.label) for u in val])).mean())
    assert rep["ablation"][-1]["layer_sizes"] == [16, 16]                      # no neuron removed
    assert rep["ablation"][-1]["unstructured_sparsity"] == pytest.approx(0.25, abs=0.01)
    assert "leave_one_speaker_out" not in rep


@pytest.mark.parametrize("over, message", [
    ({"nope": 1}, "cannot set 'nope'"),
    ({"epochs_float": 2.5}, "takes int"),
    ({"hidden": [16, "x"]}, "list of integers"),
    ({"keep_neurons": [200, 10]}, "keep_neurons needs one count per hidden layer"),
    ({"sparsity": 1.0}, "sparsity must be"),
    ({"time_steps": 9}, "time_steps"),
    ({"aug_copies": -1}, "aug_copies"),
    ({"label_smoothing": 1.0}, "label_smoothing must be"),
    ({"weight_decay": -0.1}, "weight_decay must be"),
    ({"noise_gate_db": -3}, "noise_gate_db must be in"),
    ({"n_mels": 2.0}, "takes int"),
    ({"vtlp": 0.5}, "vtlp must be"),
    ({"loso_copies": -1}, "loso_copies must be"),
    ({"spike_levels": [2]}, "spike_levels need one entry per layer"),
    ({"spike_levels": [16, 1]}, "spike_levels must be in 1..15"),
])
def test_recipe_overrides_refuse_what_does_not_fit(over, message):
    from train.recipes import RECIPES, with_overrides
    with pytest.raises(ValueError, match=message):
        with_overrides(RECIPES["fsdd"], over)
    ok = with_overrides(RECIPES["fsdd"], {"hidden": [64, 64], "keep_neurons": [48, 48], "lr": 1, "aug_copies": 1})
    assert ok.config.hidden == (64, 64) and ok.config.lr == 1.0 and ok.aug_copies == 1
    assert RECIPES["fsdd"].config.hidden == (128, 128)                         # the recipe itself is unchanged
    fe = with_overrides(RECIPES["arabic_digits"], {"noise_gate_db": 0, "n_mels": 32}).frontend
    assert fe == dataclasses.replace(RECIPES["arabic_digits"].frontend, noise_gate_db=0.0, n_mels=32)


def _cpu_flags() -> set:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    line = next((ln for ln in text.splitlines() if ln.startswith("flags")), "")
    return set(line.split(":", 1)[-1].split())


@pytest.mark.parametrize("native", [False, True])
def test_importing_train_pins_the_cpu_kernels_to_avx2(native):
    """Training computes with AVX2 kernels on any x86-64 CPU that has them (an AVX-512 CPU otherwise trains to other
    weights); RSNN_TRAIN_ISA=native leaves torch's own choice. Run in a fresh interpreter: the pin must be in the
    environment before torch's first kernel."""
    import os
    import subprocess
    import sys
    flags = _cpu_flags()
    if "avx2" not in flags:
        pytest.skip("this CPU has no AVX2 (or is not x86-64): the pin has nothing to choose")
    from train import KERNEL_ENV
    env = {k: v for k, v in os.environ.items() if k not in (*KERNEL_ENV, "RSNN_TRAIN_ISA")}
    if native:
        env["RSNN_TRAIN_ISA"] = "native"
    code = ("import train, torch; torch.ones(4).sum(); "
            "print(torch.backends.cpu.get_cpu_capability(), train.kernel_settings()['pinned_isa'])")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    isa, pinned = out.split()
    if native:
        assert pinned == "None"
        assert isa == ("AVX512" if "avx512f" in flags and "avx512bw" in flags else "AVX2")
    else:
        assert (isa, pinned) == ("AVX2", "AVX2")
    # a setting of the user's own wins, and the report then does not call the run pinned
    env.update(MKL_CBWR="COMPATIBLE", RSNN_TRAIN_ISA="")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert out.split()[1] == "None"


def test_rsnn_train_keeps_the_shipped_models_report_beside_them(tmp_path, monkeypatch):
    """When ``rsnn train`` writes a shipped file (models/<name>.npz) it also records that run's report under <name> in
    models/train.json; a variant written elsewhere leaves that file alone."""
    import json
    from rsnn import cli
    from train import recipes
    monkeypatch.setattr(cli, "MODELS_DIR", tmp_path / "models")
    monkeypatch.setitem(recipes.RECIPES, "tiny", recipes.RECIPES["fsdd"])

    def fake_run(name, validate=False, overrides=None, **_):
        where = "build/models" if validate or overrides else "models"
        return {"model_file": f"{where}/{name}.npz", "command": "rsnn train --recipe " + name, "seed": 0,
                "train_seconds": 1.0, "config": {"hidden": [4]}, "ablation": [], "marker": where}
    monkeypatch.setattr(recipes, "run_recipe", fake_run)
    shipped = tmp_path / "models" / "train.json"
    assert cli.main(["train", "--recipe", "tiny", "--validate", "--json", str(tmp_path / "r.json")]) == 0
    assert not shipped.exists()
    assert cli.main(["train", "--recipe", "tiny", "--json", str(tmp_path / "r.json")]) == 0
    assert json.loads(shipped.read_text())["tiny"]["marker"] == "models"
    assert set(json.loads((tmp_path / "r.json").read_text())) == {"tiny", "tiny --validate"}


def test_weight_decay_and_label_smoothing_are_off_by_default_and_reach_the_training_step(monkeypatch):
    """The two regularizers of TrainConfig: default off (plain Adam, plain cross-entropy, so the shipped recipes
    train as before); set, they choose AdamW with that decay and smooth the targets of every training step."""
    import dataclasses
    import train.loop as loop
    twin = RSNN(small_net(), ((4.0, 4.0), (4.0, 4.0), 4.0))
    opt, _ = loop._optimizer(twin, TrainConfig(), 3)
    assert type(opt) is torch.optim.Adam and opt.param_groups[0]["weight_decay"] == 0
    opt, _ = loop._optimizer(twin, TrainConfig(weight_decay=0.02), 3)
    assert type(opt) is torch.optim.AdamW and opt.param_groups[0]["weight_decay"] == 0.02
    train_set, fe = tone_set(4, 0)
    cfg = TrainConfig(hidden=(8, 8), thresholds=(30, 9), state_bits=(12, 12), readout_bits=16, epochs_float=1,
                      epochs_quant=1, keep_neurons=None, epochs_structured=1, sparsity=0.5, epochs_sparse=1,
                      batch_size=8, rate_penalty=0.0)
    seen = {}
    for ls in (0.0, 0.5):
        captured = []
        orig = loop.Fn.cross_entropy

        def spy(logits, y, **kw):
            captured.append(kw.get("label_smoothing", 0.0))
            return orig(logits, y, **kw)
        monkeypatch.setattr(loop.Fn, "cross_entropy", spy)
        train(dataclasses.replace(cfg, label_smoothing=ls), train_set, train_set, fe, LABELS4, {"command": "t"},
              progress=False, log=lambda *_: None)
        monkeypatch.setattr(loop.Fn, "cross_entropy", orig)
        seen[ls] = set(captured)
    assert seen == {0.0: {0.0}, 0.5: {0.5}}
    # recorded in the model file only when set: the shipped recipes' files keep their bytes
    assert not {"label_smoothing", "weight_decay"} & set(TrainConfig().to_dict())
    assert TrainConfig(label_smoothing=0.1).to_dict()["label_smoothing"] == 0.1


# ---- block pruning (issue #14, deliverable 7) ----

def _blocks_of(m: torch.Tensor, block: int) -> torch.Tensor:
    """(chunks, N_in) 0/1: block [k, r] of a twin-layout (N_out, N_in) mask is kept; asserts each block is whole."""
    out = []
    for a in range(0, m.shape[0], block):
        part = m[a:a + block]
        assert torch.all(part == part[:1]), "a block mask must keep or drop whole blocks"
        out.append(part[0])
    return torch.stack(out)


@pytest.mark.parametrize("block", [16, 8, 5])
@pytest.mark.parametrize("sparsity", [0.0, 0.3, 0.5, 0.9])
def test_block_masks_empty_whole_aligned_blocks_of_smallest_norm_at_the_requested_sparsity(block, sparsity):
    from train.prune import block_importance, block_mask
    twin = RSNN(small_net(sizes=(20, 12)), ((4.0, 4.0), (4.0, 4.0), 4.0), seed=3)
    for name, w in twin.named_matrices():
        chunks = -(-w.shape[0] // block)                    # a last partial chunk is a block of its own
        imp = block_importance(w, block)
        assert imp.shape == (chunks, w.shape[1])
        assert torch.allclose(imp[-1], w[(chunks - 1) * block:].norm(dim=0))
        m = block_mask(w, sparsity, block)
        n = round(sparsity * chunks * w.shape[1])
        if n == 0:
            assert m is None
            continue
        assert m.shape == w.shape
        kept = _blocks_of(m, block)
        assert int((kept == 0).sum()) == n, name             # exactly the requested number of empty blocks
        if 0 < n < kept.numel():                             # ... and they are the ones of smallest L2 norm
            assert imp[kept == 0].max() <= imp[kept == 1].min()


def test_block_masks_compose_with_unstructured_masks_inside_the_kept_blocks():
    from train.prune import block_mask, mixed_masks
    twin = RSNN(small_net(sizes=(32, 16)), ((4.0, 4.0), (4.0, 4.0), 4.0), seed=4)
    blocks = {name: block_mask(w, 0.5, 8) for name, w in twin.named_matrices()}
    mixed_masks(twin, 0.4, blocks)
    for name, w in twin.named_matrices():
        m, b = twin.masks[name], blocks[name]
        assert torch.all(m <= b), name                         # a dropped block stays empty: the mask is a product
        assert torch.equal(m, m * b)
        inside = int(b.sum())
        assert abs(int((m[b > 0] == 0).sum()) - 0.4 * inside) <= 1, name  # 40 % of the weights the blocks keep
        kept_w, dropped_w = w.abs()[(m > 0)], w.abs()[(b > 0) & (m == 0)]
        assert dropped_w.max() <= kept_w.min()                 # the smallest magnitudes inside the kept blocks
    # no block mask: exactly the unstructured masks of before (the shipped recipes depend on it)
    a = RSNN(small_net(), ((4.0, 4.0), (4.0, 4.0), 4.0), seed=6)
    b = RSNN(small_net(), ((4.0, 4.0), (4.0, 4.0), 4.0), seed=6)
    magnitude_masks(a, 0.6)
    mixed_masks(b, 0.6, {})
    assert a.masks.keys() == b.masks.keys() and all(torch.equal(a.masks[k], b.masks[k]) for k in a.masks)
    mixed_masks(b, 0.0, {})
    assert b.masks == {}


def test_block_pruning_ramps_per_matrix_targets_and_the_exported_model_has_the_empty_blocks(monkeypatch):
    import train.loop as loop
    from train.report import block_sparse_bits
    calls = []
    real = loop.block_mask

    def spy(w, s, block):
        calls.append((w.shape, s, block))
        return real(w, s, block)

    monkeypatch.setattr(loop, "block_mask", spy)
    train_set, fe = tone_set(8, 0)
    test_set, _ = tone_set(3, 1)
    per = {"l0.w_in": 0.0, "out.w": 0.25}
    cfg = TrainConfig(hidden=(24, 16), thresholds=(30, 9), state_bits=(12, 12), readout_bits=16, epochs_float=2,
                      epochs_quant=1, keep_neurons=None, sparsity=0.2, epochs_sparse=2, batch_size=16,
                      rate_penalty=0.1, block_sparsity=0.6, block_sparsity_per_matrix=per, block_size=8,
                      epochs_block=6)
    stages = train(cfg, train_set, test_set, fe, LABELS4, {}, progress=False, log=lambda *a: None)
    assert [s.name for s in stages] == ["float", "4bit", "4bit_block", "4bit_pruned"]
    assert all(b == 8 for _, _, b in calls) and len(calls) == 6 * 5       # every matrix at every block epoch
    by_epoch = [[s for _, s, _ in calls[5 * e:5 * e + 5]] for e in range(6)]
    names = cfg.matrix_names()
    targets = [per.get(n, 0.6) for n in names]
    for e, got in enumerate(by_epoch):                    # the cubic ramp over epochs_block - 3, then the target
        assert got == pytest.approx([t * (1 - (1 - min(e + 1, 3) / 3) ** 3) for t in targets])
    assert by_epoch[0][1] < by_epoch[1][1] < by_epoch[2][1] == by_epoch[5][1] == 0.6
    for stage in stages[2:]:
        bs = block_sparse_bits(stage.model, 8)
        for n, t in zip(names, targets):
            m = bs["matrices"][n]
            assert m["stored_blocks"] <= m["blocks"] - round(t * m["blocks"]), (stage.name, n)
    assert stages[-1].model.meta["config"]["block_sparsity_per_matrix"] == per


def test_block_sparse_bits_of_a_hand_made_model():
    from golden.model import random_model
    from train.report import block_sparse_bits
    model = random_model(small_net(sizes=(20, 12)), labels=LABELS4)
    for w in model.matrices().values():
        w[...] = 0
    m = model.matrices()
    m["l0.w_in"][0, 0], m["l0.w_in"][0, 7] = 1, -2          # one block (row 0, chunk 0) with two weights
    m["l0.w_in"][0, 19] = 3                                  # row 0, the partial chunk 2 (outputs 16..19)
    m["l0.w_in"][5, 8] = 1                                   # row 5, chunk 1
    m["l0.w_rec"][3, 16] = -1
    m["l1.w_rec"][11, 0], m["l1.w_rec"][11, 8] = 1, 1        # two blocks of one row
    m["out.w"][2, 3] = 7
    bs = block_sparse_bits(model, 8)
    assert {k: v["stored_blocks"] for k, v in bs["matrices"].items()} == \
        {"l0.w_in": 3, "l0.w_rec": 1, "l1.w_in": 0, "l1.w_rec": 2, "out.w": 1}
    assert {k: v["chunks"] for k, v in bs["matrices"].items()} == \
        {"l0.w_in": 3, "l0.w_rec": 3, "l1.w_in": 2, "l1.w_rec": 2, "out.w": 1}
    assert bs["blocks"] == 6 * 3 + 20 * 3 + 20 * 2 + 12 * 2 + 12 and bs["stored_blocks"] == 7
    # chunk id: 0..2 -> 2 bits; base: blocks 0..6 -> 3 bits; count: 0..3 -> 2 bits; 70 source rows in all
    assert (bs["chunk_id_bits"], bs["base_bits"], bs["count_bits"]) == (2, 3, 2)
    assert bs["matrices"]["l0.w_in"]["bits"] == 3 * (8 * 4 + 2) + 6 * (3 + 2)
    assert bs["bits"] == 7 * (8 * 4 + 2) + 70 * (3 + 2) == bs["word_bits_total"] + bs["index_bits_total"]
    # P = 5: 4 chunks of 20 outputs (chunk id 0..3: 2 bits, count 0..4: 3 bits), 8 stored blocks (base 0..7: 3 bits)
    b5 = block_sparse_bits(model, 5)
    assert {k: v["stored_blocks"] for k, v in b5["matrices"].items()} == \
        {"l0.w_in": 4, "l0.w_rec": 1, "l1.w_in": 0, "l1.w_rec": 2, "out.w": 1}
    assert (b5["chunk_id_bits"], b5["base_bits"], b5["count_bits"]) == (2, 3, 3)
    assert b5["bits"] == 8 * (5 * 4 + 2) + 70 * (3 + 3)
    # P = 1: a block is a weight; an empty model still needs its index (1-bit fields at least)
    assert block_sparse_bits(model, 1)["stored_blocks"] == model.nonzero_weights() == 8
    for w in model.matrices().values():
        w[...] = 0
    empty = block_sparse_bits(model, 8)
    assert empty["stored_blocks"] == 0 and empty["bits"] == 70 * (1 + 2)
    with pytest.raises(ValueError, match="P must be"):
        block_sparse_bits(model, 0)


@pytest.mark.parametrize("over, message", [
    ({"block_sparsity": 1.0}, "block_sparsity must be a fraction"),
    ({"block_sparsity": -0.1}, "block_sparsity must be a fraction"),
    ({"block_sparsity_per_matrix": {"l2.w_in": 0.5}}, "names no matrix 'l2.w_in'"),
    ({"block_sparsity_per_matrix": {"l0.w_in": 1.5}}, r"block_sparsity_per_matrix\['l0.w_in'\] must be"),
    ({"block_sparsity_per_matrix": {"l0.w_in": "x"}}, r"block_sparsity_per_matrix\['l0.w_in'\] must be"),
    ({"block_sparsity_per_matrix": [0.5]}, "takes an object"),
    ({"block_size": 0}, "block_size must be"),
    ({"block_size": 300}, "block_size must be"),
    ({"block_sparsity": 0.5, "epochs_block": 0}, "epochs_block must be >= 1 when block pruning is on"),
    ({"epochs_block": -1}, "epochs_block must be an integer >= 0"),
])
def test_block_pruning_settings_are_refused_when_out_of_range(over, message):
    from golden.params import ParamError
    from train.recipes import RECIPES, with_overrides
    with pytest.raises(ValueError, match=message):
        with_overrides(RECIPES["fsdd"], over)
    cfg = dataclasses.replace(TrainConfig(), **{k: tuple(v) if isinstance(v, list) else v for k, v in over.items()})
    with pytest.raises(ParamError, match=message.replace("takes an object", "must be null or an object")):
        cfg.validate_pruning()                              # train() itself refuses it too


def test_block_pruning_is_off_by_default_and_recorded_only_when_set():
    from train.recipes import RECIPES, with_overrides
    for name in ("fsdd", "arabic_digits"):                  # the shipped recipes' model headers do not change
        d = RECIPES[name].config.to_dict()
        assert not RECIPES[name].config.block_pruning()
        assert not set(d) & {"block_sparsity", "block_sparsity_per_matrix", "block_size", "epochs_block"}
    r = with_overrides(RECIPES["fsdd"], {"block_sparsity": 0, "block_sparsity_per_matrix": {"l0.w_in": 0.3}})
    assert r.config.block_pruning() and r.config.block_sparsity_per_matrix == {"l0.w_in": 0.3}
    d = r.config.to_dict()
    assert (d["block_sparsity_per_matrix"], d["block_size"], d["epochs_block"]) == ({"l0.w_in": 0.3}, 16, 10)
    assert "block_sparsity" not in d


def test_fsdd_validate_holds_out_train_utterances_by_index(tmp_path, monkeypatch):
    """A data set without a val split: --validate trains on the train utterances outside ``val_holdout`` and
    measures on those inside it; the test split is not read."""
    import train.data
    from conftest import write_wav
    from train import recipes
    monkeypatch.setattr(train.data, "CACHE", tmp_path / "cache")
    d = tmp_path / "data"
    (d / "wav").mkdir(parents=True)
    rows = ["path,digit,speaker,index,official_split"]
    for k in range(24):
        write_wav(d / "wav" / f"{k}.wav", tone(300 + 250 * (k % 4), 0.2, 8000), 8000)
        rows.append(f"wav/{k}.wav,{k % 4},s0,{k // 4},{'test' if k // 4 == 0 else 'train'}")
    (d / "manifest.csv").write_text("\n".join(rows) + "\n")
    r = dataclasses.replace(recipes.RECIPES["fsdd"], aug_copies=1, val_holdout=(1, 2), test_split="val")
    tr, va = recipes._load(r, d, lambda *a: None)
    idx = recipes.manifest_index(d)
    assert sorted(idx[p] for p in va.paths) == [1] * 4 + [2] * 4
    assert sorted({idx[p] for p in tr.paths}) == [3, 4, 5] and len(tr) == 2 * 12   # one augmented copy each


@pytest.mark.parametrize("T", [1, 2])
def test_block_reads_count_the_stored_blocks_each_event_touches(T):
    """At P = 1 a block is a weight, so the block reads are golden's own count of non-zero weight reads; at
    P = 16 every event reads at most its row's chunks, and a model without a zero reads them all."""
    from golden.model import random_model
    from train.loop import block_reads
    net = dataclasses.replace(small_net(T=T, sizes=(20, 12)), layers=tuple(
        dataclasses.replace(lp, threshold=4) for lp in small_net(T=T, sizes=(20, 12)).layers))
    rng = np.random.default_rng(T)
    feats = [rng.integers(0, 16, size=(n, 6)) * (rng.random((n, 6)) < 0.6) for n in rng.integers(1, 30, size=7)]
    sparse = random_model(net, seed=T, density=0.3, labels=LABELS4)
    tr = run_batch(sparse, feats)
    assert sum(int(s.sum()) for s in tr.spikes) > 50
    assert block_reads(sparse, tr, feats, 1) == int(tr.counters["nz_weight_reads"].sum())
    dense = random_model(net, seed=T, density=1.0, labels=LABELS4)
    for w in dense.matrices().values():
        w[w == 0] = 1
    tr = run_batch(dense, feats)
    events = tr.counters["in_events"] + tr.counters["rec_events"]            # (B, F, L + 1)
    chunks = np.array([2, 1, 1])                                                # 20 -> 2 chunks, 12 -> 1, 4 -> 1
    assert block_reads(dense, tr, feats, 16) == int((events.sum(axis=(0, 1)) * chunks).sum())


def test_the_chosen_block_pruning_settings_are_valid_overrides_of_their_recipes():
    from train.recipes import BLOCK_PRUNING, RECIPES, with_overrides
    for name, over in BLOCK_PRUNING.items():
        assert with_overrides(RECIPES[name], over).config.block_pruning(), name
        assert not RECIPES[name].config.block_pruning()      # the shipped recipe itself stays unpruned by blocks


def test_fired_counts_events_with_the_gradient_of_the_level():
    from train.loop import fired
    s = torch.tensor([0.0, 1.0, 2.0, 3.0], requires_grad=True)
    f = fired(s)
    f.sum().backward()
    assert f.tolist() == [0.0, 1.0, 1.0, 1.0] and s.grad.tolist() == [1.0, 1.0, 1.0, 1.0]


def test_peak_excess_counts_only_the_frames_above_the_cap():
    from train.loop import peak_excess
    s = torch.zeros(2, 3, 2, 10)                  # (B, F, T, N)
    s[0, 0, 0, :6] = 1                            # 6 of 10 fire at step 0: 0.6
    s[0, 1, 1, :3] = 1                            # 3 of 10 at step 1: 0.3, under the cap
    s[1, 0, 0, :5] = 1
    s[1, 0, 1, 3:9] = 1                           # 9 distinct neurons over the two steps: 0.9
    L = torch.tensor([3.0, 1.0])                  # frame 1 and 2 of utterance 1 are padding (zeros)
    got = peak_excess([s, s[..., :5]], L, 0.4)    # second layer: the first 5 neurons
    # layer 0: (0.6 - 0.4) + (0.9 - 0.4); layer 1 (5 neurons): frame (0,0) 5/5, (0,1) 3/5, (1,0) 5/5
    want = (0.2 + 0.5) + (0.6 + 0.2 + 0.6)
    assert float(got) == pytest.approx(want / 4)
    assert float(peak_excess([s], L, 0.95)) == 0.0


def test_peak_penalty_is_recorded_only_when_set_and_refused_out_of_range():
    from golden.params import ParamError
    from train.loop import _PRUNING_FIELDS
    assert not {"peak_cap", "peak_penalty"} & set(TrainConfig().to_dict())
    d = dataclasses.replace(TrainConfig(), peak_cap=0.2, peak_penalty=5.0).to_dict()
    assert (d["peak_cap"], d["peak_penalty"]) == (0.2, 5.0)
    assert {"peak_cap", "peak_penalty"} <= set(_PRUNING_FIELDS)     # a prefix cache ignores them
    for over, msg in (({"peak_cap": 1.0}, "peak_cap must be a fraction"),
                      ({"peak_penalty": -1}, "peak_penalty must be a number"),
                      ({"peak_penalty": True}, "peak_penalty must be a number")):
        with pytest.raises(ParamError, match=msg):
            dataclasses.replace(TrainConfig(), **over).validate_pruning()


def test_peak_penalty_lowers_the_busiest_frames_of_the_exported_model():
    """Same seed and data, with and without the penalty: the pruned model's busiest frames (golden's spikes, the
    core's events) hold fewer spikes with it."""
    from golden.network import run_batch
    train_set, fe = tone_set(8, 0)
    test_set, _ = tone_set(3, 1)
    base = TrainConfig(hidden=(24, 16), thresholds=(30, 9), state_bits=(12, 12), readout_bits=16, epochs_float=2,
                       epochs_quant=1, keep_neurons=None, sparsity=0.2, epochs_sparse=8, batch_size=16,
                       rate_penalty=0.0)
    peaks = []
    for cfg in (base, dataclasses.replace(base, peak_cap=0.05, peak_penalty=200.0)):
        m = train(cfg, train_set, test_set, fe, LABELS4, {}, progress=False, log=lambda *a: None)[-1].model
        tr = run_batch(m, list(test_set.feats))
        per_frame = sum(s.any(axis=2).sum(-1) for s in tr.spikes)           # (B, F) spikes of all layers
        peaks.append(np.sort(per_frame.ravel())[-10:].mean())
    assert peaks[1] < 0.7 * peaks[0], peaks


def test_depth_changing_overrides_keep_binary_spikes_per_layer():
    from train.recipes import RECIPES, with_overrides
    r = with_overrides(RECIPES["fsdd"], {"hidden": [64], "thresholds": [32], "leak_shifts": [3], "state_bits": [16],
                                         "keep_neurons": None})
    assert r.config.spike_levels == r.loso_config.spike_levels == (2,)          # the FSDD recipe's D = 2
    r = with_overrides(RECIPES["arabic_digits"], {"hidden": [64, 32, 16], "thresholds": [32] * 3,
                                                  "leak_shifts": [3] * 3, "state_bits": [16] * 3})
    assert r.config.spike_levels == (1, 1, 1)
    with pytest.raises(ValueError, match="spike_levels need one entry per layer"):
        with_overrides(RECIPES["fsdd"], {"hidden": [64], "thresholds": [32], "leak_shifts": [3],
                                         "state_bits": [16], "keep_neurons": None, "spike_levels": [2, 2]})


def test_overrides_reach_the_leave_one_speaker_out_schedule():
    """A variant's settings apply to the recipe's LOSO schedule too (they used not to: a T = 2 or multi-level
    variant would have measured binary T = 1 folds), which keeps its own epochs."""
    from train.recipes import RECIPES, with_overrides
    r = with_overrides(RECIPES["fsdd"], {"spike_levels": [3, 2], "time_steps": 1, "vtlp": 0.1, "loso_copies": 2})
    assert r.config.spike_levels == r.loso_config.spike_levels == (3, 2)
    assert r.loso_config.epochs_float == RECIPES["fsdd"].loso_config.epochs_float == 12
    assert (r.vtlp, r.loso_copies) == (0.1, 2)
    net = r.config.network(32, 4, 10)
    assert [lp.spike_levels for lp in net.layers] == [3, 2]
    # recorded in the model's config only when not binary
    assert "spike_levels" not in RECIPES["arabic_digits"].config.to_dict()
    assert RECIPES["fsdd"].config.to_dict()["spike_levels"] == [2, 2] and r.config.to_dict()["spike_levels"] == [3, 2]


def test_vtlp_filterbank_is_the_front_end_s_at_one_and_moves_the_bands_otherwise():
    from golden.frontend import mel_band_edges, mel_filterbank
    from train.data import vtlp_filterbank
    p = FrontEndParams()
    assert np.allclose(vtlp_filterbank(p, 1.0), mel_filterbank(p))
    bins = np.arange(p.n_fft // 2 + 1) * p.sample_rate / p.n_fft
    centre = lambda fb: (fb * bins).sum(1) / fb.sum(1)      # noqa: E731
    lo, hi = centre(vtlp_filterbank(p, 0.9)), centre(vtlp_filterbank(p, 1.1))
    base = centre(mel_filterbank(p))
    # the low bands move by the factor, the top band stays below Nyquist
    assert np.allclose(hi[:10] / base[:10], 1.1, atol=0.03) and np.allclose(lo[:10] / base[:10], 0.9, atol=0.03)
    assert hi[-1] < p.sample_rate / 2 and (np.diff(hi) > 0).all() and (np.diff(lo) > 0).all()
    assert len(mel_band_edges(p)) == p.n_mels + 2


def _train_tones(data, n: int, seconds: float):
    """A data folder of ``n`` tones (300, 500, ... Hz, digit i, speaker si), all in the train split."""
    from conftest import write_wav
    (data / "wav").mkdir(parents=True)
    rows = ["path,speaker,digit,official_split"]
    for i in range(n):
        write_wav(data / "wav" / f"{i}.wav", tone(300 + 200 * i, seconds, 8000), 8000)
        rows.append(f"wav/{i}.wav,s{i},{i},train")
    (data / "manifest.csv").write_text("\n".join(rows) + "\n")
    return data


def test_vtlp_warps_only_the_augmented_copies(tmp_path, monkeypatch):
    import train.data as td
    monkeypatch.setattr(td, "CACHE", tmp_path / "cache")
    data = _train_tones(tmp_path / "data", 3, 0.4)
    plain = td.load_features(data, "train", ("0", "1", "2"), FrontEndParams(), copies=1, seed=3)
    warped = td.load_features(data, "train", ("0", "1", "2"), FrontEndParams(), copies=1, seed=3, vtlp=0.2)
    for i in range(3):
        assert np.array_equal(plain.feats[i], warped.feats[i])          # the clean utterances are untouched
    assert any(not np.array_equal(plain.feats[i], warped.feats[i]) for i in range(3, 6))
    with pytest.raises(ValueError, match="vtlp must be"):
        td.load_features(data, "train", ("0", "1", "2"), FrontEndParams(), copies=1, vtlp=0.6)


def test_spike_ablation_measures_folds_and_aggregates_them(tmp_path, capsys):
    """train.ablation: the per-job figures (golden, the core's cycle model, the energy estimate) of a multi-level
    model, and the table over folds (mean accuracy over folds, activity over all frames, worst frame overall)."""
    import json
    from golden.core_cycles import core_cycle_counts
    from golden.model import random_model
    from train import ablation
    net = small_net(levels=(3, 2))
    model = random_model(net, seed=4, density=0.5)
    rng = np.random.default_rng(0)
    feats = [rng.integers(0, 16, size=(n, 6)) for n in (9, 14)]
    labels = np.array([0, 1])
    m = ablation.measure(model, feats, labels)
    hw = ablation.hardware_for(model)
    assert hw.max_spike_level == 3 and hw.pe_count == ablation.ABLATION_P
    cyc = core_cycle_counts(model, hw, feats).sum(-1)
    assert m["frames"] == 23 and m["cycles_sum"] == int(cyc.sum()) and m["cycles_max"] == int(cyc.max())
    assert m["correct"] == int((run_batch(model, feats).decisions == labels).sum()) and m["energy_pj"] > 0
    for r, v, fold, correct in (("fsdd", "D3", "george", 10), ("fsdd", "D3", "theo", 20),
                                ("arabic_digits", "T1", "val", 7)):
        d = tmp_path / r / v
        d.mkdir(parents=True, exist_ok=True)
        (d / f"{fold}.json").write_text(json.dumps({**m, "fold": fold, "n": 40, "correct": correct,
                                                    "train_seconds": 1.0}))
    rows = ablation.collect(tmp_path)
    d3 = rows["fsdd"]["D3"]
    assert d3["accuracy"] == pytest.approx((10 / 40 + 20 / 40) / 2) and not d3["complete"]
    assert d3["cycles_max"] == m["cycles_max"] + ablation.FRAME_OVERHEAD
    assert rows["arabic_digits"]["T1"]["complete"]
    assert "INCOMPLETE" in ablation.table(rows)
    assert ablation.main(["--table", "--out", str(tmp_path), "--json", str(tmp_path / "a.json")]) == 0
    assert json.loads((tmp_path / "a.json").read_text())["fsdd"]["D3"]["folds"] == {"george": 0.25, "theo": 0.5}
    for argv, msg in ((["--variant", "T9"], "unknown variant"), (["--shard", "2/2"], "--shard takes"),
                      (["--set", "vtlp=0.1"], "--set needs --name"),
                      (["--name", "x", "--set", "vtlp=0.7"], "vtlp must be"),
                      (["--name", "D2", "--set", "vtlp=0.1"], "--name takes")):
        with pytest.raises(SystemExit):
            ablation.main(argv + ["--out", str(tmp_path), "--json", str(tmp_path / "a.json")])
        assert msg in capsys.readouterr().err


def test_ablation_refuses_a_truncated_or_foreign_job_file(tmp_path, capsys):
    from train import ablation
    d = tmp_path / "fsdd" / "D2"
    d.mkdir(parents=True)
    (d / "george.json").write_text('{"fold": "george", "n": 5')          # truncated
    assert ablation.main(["--table", "--out", str(tmp_path), "--json", str(tmp_path / "a.json")]) == 2
    assert "george.json cannot be read as an ablation result" in capsys.readouterr().err
    (d / "george.json").write_text("[1, 2]")                              # not a result
    assert ablation.main(["--table", "--out", str(tmp_path), "--json", str(tmp_path / "a.json")]) == 2
    assert "not a job's result" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        ablation.main(["--table", "--out", str(tmp_path), "--json", str(tmp_path)])
    assert "is a folder" in capsys.readouterr().err
    from train.recipes import parse_overrides
    assert parse_overrides(["a=1", "b=[2,3]", "c=word"]) == {"a": 1, "b": [2, 3], "c": "word"}
    with pytest.raises(ValueError, match="KEY=VALUE"):
        parse_overrides(["=3"])


def test_ablation_variants_set_their_spikes_whatever_the_recipe():
    """The ablation's variants are what their names say for every recipe, also now that the FSDD recipe itself is
    multi-level (T1 once meant "the recipe as it is"): in the main config and in the leave-one-speaker-out one."""
    from train import ablation
    from train.recipes import RECIPES, with_overrides
    want = {"T1": (1, 1), "T2": (1, 2), "D2": (2, 1), "D3": (3, 1)}       # (spike level of every layer, T)
    assert set(want) == set(ablation.VARIANTS)
    for name in RECIPES:
        for v, (_, over) in ablation.VARIANTS.items():
            r = with_overrides(RECIPES[name], over)
            for cfg in (r.config, r.loso_config) if r.loso_config else (r.config,):
                assert set(cfg.spike_levels) == {want[v][0]} and cfg.time_steps == want[v][1], (name, v)
    assert RECIPES["fsdd"].config.spike_levels == (2, 2) == RECIPES["fsdd"].loso_config.spike_levels


def test_a_cut_or_foreign_feature_cache_file_is_computed_again(tmp_path, monkeypatch):
    """Two runs at once (a run reading the cache while another writes it) or a crash must not break training: the
    cache is written whole and renamed, and a file that is not a whole cache is ignored and rewritten."""
    import train.data as td
    monkeypatch.setattr(td, "CACHE", tmp_path / "cache")
    data = _train_tones(tmp_path / "data", 2, 0.3)
    first = td.load_features(data, "train", ("0", "1"), FrontEndParams())
    (cached,) = list((tmp_path / "cache").glob("features-*.npz"))
    assert not list((tmp_path / "cache").glob("*.tmp"))
    whole = cached.read_bytes()
    for bad in (whole[:len(whole) // 2], b"not a zip file", b""):
        cached.write_bytes(bad)
        again = td.load_features(data, "train", ("0", "1"), FrontEndParams())
        assert all(np.array_equal(a, b) for a, b in zip(first.feats, again.feats))
        assert cached.read_bytes() != bad                  # rewritten whole
