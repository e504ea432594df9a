"""Training recipe: float -> 4-bit QAT -> structured pruning -> unstructured pruning, then export to golden.

Every accuracy of a quantized stage is measured by running the EXPORTED integer model through golden
(:func:`golden.network.run_batch`); only the float baseline is a PyTorch figure, and it is labelled so.
No stage looks at the test split to choose anything: the schedule is fixed by the config.
"""
from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as Fn
from tqdm import tqdm

from golden.model import Model
from golden.modelfile import model_to_bytes
from golden.network import dense_counts, run_batch
from golden.params import FrontEndParams, LayerParams, NetworkParams, ReadoutParams, ResetMode

from .data import FeatureSet, batches, to_tensor
from .export import export_model
from .prune import magnitude_masks, neuron_importance, remove_neurons, sparsity_schedule
from .twin import RSNN, init_stds

__all__ = ["TrainConfig", "Stage", "train", "golden_metrics", "twin_accuracy"]


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides a trained model (stored in the model file's ``meta``)."""

    hidden: tuple = (128, 128)
    time_steps: int = 1
    thresholds: tuple = (64, 16)
    leak_shifts: tuple = (3, 3)
    state_bits: tuple = (16, 16)
    readout_bits: int = 24
    reset: str = "subtract"
    batch_size: int = 64
    lr: float = 0.05
    epochs_float: int = 20
    epochs_quant: int = 10
    keep_neurons: tuple | None = (96, 96)
    epochs_structured: int = 5
    sparsity: float = 0.6
    epochs_sparse: int = 15
    rate_penalty: float = 1.0
    logit_scale: float = 0.5
    freq_mask: int = 0          # SpecAugment-style: zero up to this many adjacent features per utterance
    time_mask: int = 0          # ... and up to this many consecutive frames (training only)
    label_smoothing: float = 0.0  # cross-entropy against (1 - e) one-hot + e uniform
    weight_decay: float = 0.0     # decoupled (AdamW) weight decay; 0: plain Adam
    seed: int = 0

    def network(self, n_features: int, feature_bits: int, n_classes: int) -> NetworkParams:
        layers = tuple(LayerParams(size=n, state_bits=sb, threshold=th, leak_shift=k, reset=ResetMode(self.reset))
                       for n, sb, th, k in zip(self.hidden, self.state_bits, self.thresholds, self.leak_shifts))
        return NetworkParams(n_features=n_features, feature_bits=feature_bits, time_steps=self.time_steps,
                             layers=layers, readout=ReadoutParams(size=n_classes, state_bits=self.readout_bits)
                             ).validate()

    #: Fields added after models were shipped: recorded only when set, so that a recipe that does not use them
    #: still writes its model file byte for byte as before (the file's header holds this dict).
    RECORDED_WHEN_SET = ("label_smoothing", "weight_decay")

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()
                if not (k in self.RECORDED_WHEN_SET and v == 0)}


@dataclass
class Stage:
    name: str
    accuracy: float
    source: str            # "golden" (exported integers) or "pytorch-float"
    model: Model | None = None
    extra: dict = field(default_factory=dict)


def twin_accuracy(twin: RSNN, data: FeatureSet, batch: int = 200) -> float:
    twin.eval()
    correct = 0
    with torch.no_grad():
        for s in range(0, len(data), batch):
            x, lengths = to_tensor(data.feats[s:s + batch])
            correct += int((twin(x, lengths).final.argmax(1).numpy() == data.labels[s:s + batch]).sum())
    return correct / len(data)


def golden_metrics(model: Model, data: FeatureSet) -> dict:
    """Accuracy and activity of an integer model, run through golden."""
    trace = run_batch(model, data.feats)
    frames = int(trace.lengths.sum())
    net = model.network
    names = [f"layer{i}" for i in range(len(net.layers))] + ["readout"]
    tot = {k: v.sum(axis=(0, 1)) for k, v in trace.counters.items()}
    dense = dense_counts(model)
    n = len(data)
    return {
        "accuracy": float((trace.decisions == data.labels).mean()),
        "n": n,
        "frames": frames,
        "input_events_per_frame": dict(zip(names, (tot["in_events"] / frames).round(3).tolist())),
        "spike_rate": {names[l]: round(float(trace.spikes[l].sum()) / (frames * net.time_steps * lp.size), 4)
                       for l, lp in enumerate(net.layers)},
        "activation_sparsity": {names[l]: round(1 - float(trace.spikes[l].sum()) / (frames * net.time_steps
                                                                                   * lp.size), 4)
                                for l, lp in enumerate(net.layers)},
        "input_sparsity": round(1 - float(tot["in_events"][0]) / (frames * net.n_features), 4),
        "synaptic_ops_per_inference": round(float(tot["accumulations"].sum()) / n, 1),
        "dense_synaptic_ops_per_inference": round(sum(dense["accumulations"]) * frames / n, 1),
        "weight_reads_per_inference": round(float(tot["weight_reads"].sum()) / n, 1),
    }


def _epochs(twin, opt, sched, data, cfg, epochs, rng, desc, on_epoch=None, progress=True):
    lengths = [len(f) for f in data.feats]
    bar = tqdm(range(epochs), desc=desc, disable=not progress, leave=True, dynamic_ncols=True)
    for e in bar:
        if on_epoch:
            on_epoch(e)
        twin.train()
        total, correct, count = 0.0, 0, 0
        for b in batches(len(data), lengths, cfg.batch_size, rng):
            x, L = to_tensor([data.feats[i] for i in b])
            x = _mask(x, L, cfg, rng)
            y = torch.from_numpy(data.labels[b])
            out = twin(x, L)
            logits = out.final / L[:, None] * cfg.logit_scale
            rate = sum(s.sum() / (L.sum() * s.shape[-1] * s.shape[-2]) for s in out.spikes)
            loss = Fn.cross_entropy(logits, y, label_smoothing=cfg.label_smoothing) + cfg.rate_penalty * rate
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(twin.parameters(), 1.0)
            opt.step()
            total += float(loss.detach()) * len(b)
            correct += int((logits.argmax(1) == y).sum())
            count += len(b)
        if sched is not None:
            sched.step()
        bar.set_postfix(loss=f"{total / count:.3f}", train_acc=f"{correct / count:.3f}")


def _mask(x: torch.Tensor, L: torch.Tensor, cfg: TrainConfig, rng: np.random.Generator) -> torch.Tensor:
    """Zero one random band of features and one random span of frames per utterance (seeded)."""
    if not (cfg.freq_mask or cfg.time_mask):
        return x
    B, F, n = x.shape
    keep = torch.ones(B, F, n)
    for b in range(B):
        w = int(rng.integers(0, cfg.freq_mask + 1))
        f0 = int(rng.integers(0, n - w + 1))
        keep[b, :, f0:f0 + w] = 0
        w = int(rng.integers(0, min(cfg.time_mask, int(L[b]) // 4) + 1))
        t0 = int(rng.integers(0, int(L[b]) - w + 1))
        keep[b, t0:t0 + w, :] = 0
    return x * keep


def _optimizer(twin, cfg, epochs, lr_scale=1.0):
    if cfg.weight_decay:
        opt = torch.optim.AdamW(twin.parameters(), lr=cfg.lr * lr_scale, weight_decay=cfg.weight_decay)
    else:
        opt = torch.optim.Adam(twin.parameters(), lr=cfg.lr * lr_scale)
    return opt, torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(1, epochs), eta_min=cfg.lr * lr_scale * 0.05)


def _rates(twin: RSNN, data: FeatureSet, n: int = 400) -> list:
    twin.eval()
    with torch.no_grad():
        x, L = to_tensor(data.feats[:n])
        out = twin(x, L)
    frames = float(L.sum())
    return [s.sum(dim=(0, 1, 2)) / frames for s in out.spikes]


def train(cfg: TrainConfig, train_set: FeatureSet, test_set: FeatureSet, frontend: FrontEndParams, labels: tuple,
          meta: dict, progress: bool = True, log=print) -> list:
    """Run the recipe; returns the stages (float, 4-bit, 4-bit + structured, 4-bit + pruned), each evaluated on
    ``test_set`` (golden for the integer ones). The last stage's model is the one to ship."""
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    net = cfg.network(frontend.n_mels, frontend.feature_bits, len(labels))
    energy = float(np.mean([(f.astype(np.float64) ** 2).sum(axis=1).mean() for f in train_set.feats[:500]]))
    twin = RSNN(net, init_stds(net, energy), seed=cfg.seed)
    stages = []
    t0 = time.perf_counter()

    def export(stage_name):
        m = export_model(twin, frontend, labels, dict(meta, stage=stage_name, config=cfg.to_dict()))
        met = golden_metrics(m, test_set)
        stages.append(Stage(stage_name, met["accuracy"], "golden", m, met))
        log(f"[{stage_name}] golden accuracy {met['accuracy'] * 100:.2f} % on {met['n']} held-out utterances "
            f"({time.perf_counter() - t0:.0f} s)")

    twin.mode = "float"
    opt, sched = _optimizer(twin, cfg, cfg.epochs_float)
    _epochs(twin, opt, sched, train_set, cfg, cfg.epochs_float, rng, "float", progress=progress)
    acc = twin_accuracy(twin, test_set)
    stages.append(Stage("float", acc, "pytorch-float"))
    log(f"[float] PyTorch float accuracy {acc * 100:.2f} % ({time.perf_counter() - t0:.0f} s)")

    twin.mode = "quant"
    opt, sched = _optimizer(twin, cfg, cfg.epochs_quant, 0.5)
    _epochs(twin, opt, sched, train_set, cfg, cfg.epochs_quant, rng, "4-bit QAT", progress=progress)
    export("4bit")

    if cfg.keep_neurons is not None:
        imp = neuron_importance(twin, _rates(twin, train_set))
        keep = [torch.argsort(i, descending=True)[:k] for i, k in zip(imp, cfg.keep_neurons)]
        remove_neurons(twin, keep)
        opt, sched = _optimizer(twin, cfg, cfg.epochs_structured, 0.3)
        _epochs(twin, opt, sched, train_set, cfg, cfg.epochs_structured, rng, "structured", progress=progress)
        export("4bit_structured")

    if cfg.sparsity > 0:
        opt, sched = _optimizer(twin, cfg, cfg.epochs_sparse, 0.3)
        _epochs(twin, opt, sched, train_set, cfg, cfg.epochs_sparse, rng, "unstructured", progress=progress,
                on_epoch=lambda e: magnitude_masks(twin, sparsity_schedule(e, max(1, cfg.epochs_sparse - 3),
                                                                           cfg.sparsity)))
        export("4bit_pruned")
    stages[-1].extra["twin"] = twin
    return stages


def model_summary(model: Model) -> dict:
    """Sizes of a model: stored bytes, weights, non-zeros, and the float32 dense baseline of the same shape."""
    data = model_to_bytes(model)
    return {"stored_bytes": len(data), "weights": model.total_weights(), "nonzero_weights": model.nonzero_weights(),
            "layer_sizes": [lp.size for lp in model.network.layers]}


def dumps(obj) -> str:
    return json.dumps(obj, indent=1, default=lambda o: o.to_dict() if hasattr(o, "to_dict") else str(o))
