"""Training recipe: float -> 4-bit QAT -> structured pruning -> block pruning -> unstructured pruning, then export
to golden (block pruning is off unless the config asks for it).

Every accuracy of a quantized stage is measured by running the EXPORTED integer model through golden
(:func:`golden.network.run_batch`); only the float baseline is a PyTorch figure, and it is labelled so.
No stage looks at the test split to choose anything: the schedule is fixed by the config.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import pickle
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as Fn
from tqdm import tqdm

from golden.model import Model
from golden.modelfile import model_to_bytes
from golden.network import dense_counts, run_batch
from golden.params import FrontEndParams, LayerParams, NetworkParams, ParamError, ReadoutParams, ResetMode

from .data import FeatureSet, batches, to_tensor
from .export import export_model
from .prune import (block_mask, block_targets, magnitude_masks, mixed_masks, neuron_importance, remove_neurons,
                    sparsity_schedule)
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
    # Block pruning (issue #14; train.prune): after the structured stage, whole blocks (``block_size`` weights of one
    # source row for one aligned chunk of outputs) are emptied per matrix, ramping to the target over
    # ``epochs_block`` epochs of fine-tuning; the unstructured stage after it prunes ``sparsity`` of the weights
    # INSIDE the kept blocks. Off (0, None) by default.
    block_sparsity: float = 0.0             # fraction of empty blocks in every matrix ...
    block_sparsity_per_matrix: dict | None = None  # ... except these: {"l0.w_in": 0.3, "out.w": 0.0, ...}
    block_size: int = 16                    # P of the block-sparse weight memory
    epochs_block: int = 10
    # Peak-activity penalty (issue #14: the worst frame sets the real-time clock): during the pruning stages
    # only, ``peak_penalty`` x the part of each layer's firing fraction above ``peak_cap`` in each frame (any time
    # step), summed over frames and layers, per frame. A frame's cycles grow with its events; the mean rate
    # penalty above pushes on every frame alike, this one only on the busy frames. Off (0) by default.
    peak_cap: float = 0.0
    peak_penalty: float = 0.0
    # Multi-level spikes (issue #18; golden.network step 3): the largest spike ``D`` of each layer; 1 is binary.
    spike_levels: tuple = (1, 1)

    def network(self, n_features: int, feature_bits: int, n_classes: int) -> NetworkParams:
        layers = tuple(LayerParams(size=n, state_bits=sb, threshold=th, leak_shift=k, reset=ResetMode(self.reset),
                                   spike_levels=d)
                       for n, sb, th, k, d in zip(self.hidden, self.state_bits, self.thresholds, self.leak_shifts,
                                                  self.spike_levels))
        return NetworkParams(n_features=n_features, feature_bits=feature_bits, time_steps=self.time_steps,
                             layers=layers, readout=ReadoutParams(size=n_classes, state_bits=self.readout_bits)
                             ).validate()

    #: Fields added after models were shipped: recorded only when set, so that a recipe that does not use them
    #: still writes its model file byte for byte as before (the file's header holds this dict).
    RECORDED_WHEN_SET = ("label_smoothing", "weight_decay", "block_sparsity", "block_sparsity_per_matrix",
                         "peak_cap", "peak_penalty")
    #: ... and these only when block pruning is on.
    RECORDED_WITH_BLOCKS = ("block_size", "epochs_block")

    def to_dict(self) -> dict:
        blocks = self.block_pruning()
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()
                if not (k in self.RECORDED_WHEN_SET and (v is None or v == 0))
                and not (k in self.RECORDED_WITH_BLOCKS and not blocks)
                and not (k == "spike_levels" and all(d == 1 for d in v))}

    def matrix_names(self) -> list:
        """The weight matrices of the network, named as in the model file and in ``block_sparsity_per_matrix``."""
        return [f"l{i}.{m}" for i in range(len(self.hidden)) for m in ("w_in", "w_rec")] + ["out.w"]

    def block_pruning(self) -> bool:
        """Whether any matrix gets a block-sparsity target above 0."""
        return self.block_sparsity > 0 or any(v > 0 for v in (self.block_sparsity_per_matrix or {}).values()
                                              if isinstance(v, (int, float)))

    def validate_pruning(self) -> "TrainConfig":
        """Check the pruning fields; raise :class:`~golden.params.ParamError` naming the field and the value."""
        def frac(name, v):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0.0 <= v < 1.0:
                raise ParamError(f"{name} must be a fraction within 0 .. 1 (1 excluded), not {v!r}")
        frac("sparsity", self.sparsity)
        frac("block_sparsity", self.block_sparsity)
        per = self.block_sparsity_per_matrix
        if per is not None:
            if not isinstance(per, dict):
                raise ParamError(f"block_sparsity_per_matrix must be null or an object {{matrix: fraction}}, "
                                 f"not {per!r}")
            names = self.matrix_names()
            for k, v in per.items():
                if k not in names:
                    raise ParamError(f"block_sparsity_per_matrix names no matrix {k!r}: the matrices of this "
                                     f"network are {', '.join(names)}")
                frac(f"block_sparsity_per_matrix[{k!r}]", v)
        if isinstance(self.block_size, bool) or not isinstance(self.block_size, int) or not 1 <= self.block_size <= 256:
            raise ParamError(f"block_size must be an integer within 1 .. 256, not {self.block_size!r}")
        if isinstance(self.epochs_block, bool) or not isinstance(self.epochs_block, int) or self.epochs_block < 0:
            raise ParamError(f"epochs_block must be an integer >= 0, not {self.epochs_block!r}")
        frac("peak_cap", self.peak_cap)
        if isinstance(self.peak_penalty, bool) or not isinstance(self.peak_penalty, (int, float)) \
                or not 0 <= self.peak_penalty <= 1000:
            raise ParamError(f"peak_penalty must be a number within 0 .. 1000, not {self.peak_penalty!r}")
        if self.block_pruning() and self.epochs_block < 1:
            raise ParamError("epochs_block must be >= 1 when block pruning is on (block_sparsity or "
                             "block_sparsity_per_matrix above 0): the block masks are set at each epoch")
        return self


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
        # a spike of any level counts once (it is one event at T = 1)
        "spike_rate": {names[l]: round(float(np.count_nonzero(trace.spikes[l])) / (frames * net.time_steps
                                                                                   * lp.size), 4)
                       for l, lp in enumerate(net.layers)},
        "activation_sparsity": {names[l]: round(1 - float(np.count_nonzero(trace.spikes[l]))
                                                / (frames * net.time_steps * lp.size), 4)
                                for l, lp in enumerate(net.layers)},
        "input_sparsity": round(1 - float(tot["in_events"][0]) / (frames * net.n_features), 4),
        "synaptic_ops_per_inference": round(float(tot["accumulations"].sum()) / n, 1),
        "dense_synaptic_ops_per_inference": round(sum(dense["accumulations"]) * frames / n, 1),
        "weight_reads_per_inference": round(float(tot["weight_reads"].sum()) / n, 1),
        "block_reads_per_inference": round(block_reads(model, trace, data.feats) / n, 1),
    }


def block_reads(model: Model, trace, feats: list, P: int | None = None) -> int:
    """Stored blocks (P = 16 unless given) that the events of ``trace`` (golden's :func:`run_batch` of ``model`` on
    ``feats``) touch in all: every event (a source's distinct non-zero value over the T steps, as golden counts
    them) reads the stored blocks of its source's row, once; the block-sparse memory's weight words read, the
    dominant term of issue #14's cycles."""
    from golden.events import count_events
    from .report import REPORT_P, stored_blocks_per_row
    P = P or REPORT_P
    rows = {k: stored_blocks_per_row(w, P) for k, w in model.matrices().items()}
    L = len(model.network.layers)
    total = sum(int((np.asarray(f) != 0).sum(axis=0) @ rows["l0.w_in"]) for f in feats)
    last = np.asarray(trace.lengths) - 1
    for l in range(L):
        ev = count_events(trace.spikes[l])                  # (B, F, N): events this layer makes per frame
        nxt = rows[f"l{l + 1}.w_in"] if l + 1 < L else rows["out.w"]
        total += int(ev.sum(axis=(0, 1)) @ nxt)             # consumed by the layer above (or the readout) at once
        ev[np.arange(len(last)), last] = 0                  # ... and by itself at the next frame, if there is one
        total += int(ev.sum(axis=(0, 1)) @ rows[f"l{l}.w_rec"])
    return total


def fired(s: torch.Tensor) -> torch.Tensor:
    """1 where a spike of any level fired, 0 elsewhere (an event: what the hardware pays for), with the gradient
    of the spike level itself (straight through); for binary spikes, ``s`` itself."""
    return s - (s - torch.clamp(s, max=1.0)).detach()


def peak_excess(spikes: list, lengths: torch.Tensor, cap: float) -> torch.Tensor:
    """Sum over layers and frames of max(0, fraction of the layer's neurons that fire in the frame (any time step)
    - ``cap``), divided by the valid frames. ``spikes``: per layer (B, F, T, N), zero on padded frames."""
    total = lengths.new_zeros((), dtype=torch.float32)
    for s in spikes:
        total = total + torch.relu(fired(s.amax(dim=2)).mean(dim=-1) - cap).sum()
    return total / lengths.sum()


def _epochs(twin, opt, sched, data, cfg, epochs, rng, desc, on_epoch=None, progress=True, peak=False):
    """``peak``: add the peak-activity penalty (the pruning stages; off when ``cfg.peak_penalty`` is 0)."""
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
            # the rate of events (a spike of any level is one event)
            rate = sum(fired(s).sum() / (L.sum() * s.shape[-1] * s.shape[-2]) for s in out.spikes)
            loss = Fn.cross_entropy(logits, y, label_smoothing=cfg.label_smoothing) + cfg.rate_penalty * rate
            if peak and cfg.peak_penalty:
                loss = loss + cfg.peak_penalty * peak_excess(out.spikes, L, cfg.peak_cap)
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


#: The fields that only act after the structured stage (a prefix cache ignores them).
_PRUNING_FIELDS = ("sparsity", "epochs_sparse", "block_sparsity", "block_sparsity_per_matrix", "block_size",
                   "epochs_block", "peak_cap", "peak_penalty")


def _prefix_key(cfg: TrainConfig, train_set: FeatureSet, test_set: FeatureSet, frontend: FrontEndParams,
                labels: tuple) -> str:
    """What the stages up to structured pruning depend on: the config without its pruning fields, the data (every
    feature, label), the front end, the labels, torch's version and thread count."""
    h = hashlib.sha256()
    d = {k: v for k, v in cfg.to_dict().items() if k not in _PRUNING_FIELDS}
    h.update(json.dumps([d, frontend.to_dict(), list(labels), torch.__version__, torch.get_num_threads()],
                        sort_keys=True).encode())
    for fs in (train_set, test_set):
        for f in fs.feats:
            h.update(np.ascontiguousarray(f, dtype=np.int64).tobytes())
            h.update(b"|")
        h.update(np.asarray(fs.labels, dtype=np.int64).tobytes())
    return h.hexdigest()[:24]


def train(cfg: TrainConfig, train_set: FeatureSet, test_set: FeatureSet, frontend: FrontEndParams, labels: tuple,
          meta: dict, progress: bool = True, log=print, prefix_cache=None) -> list:
    """Run the recipe; returns the stages (float, 4-bit, 4-bit + structured, 4-bit + block, 4-bit + pruned, as the
    config enables them), each evaluated on ``test_set`` (golden for the integer ones). The last stage's model is
    the one to ship.

    ``prefix_cache`` (a folder, or None): save the state after the structured stage (twin, random generators, the
    stages so far) under a key of everything those stages depend on, and resume from it when a later run has the
    same key. Pruning sweeps then train the shared prefix once; a resumed run continues with the same state a full
    run would have reached, so it ends in the same model (only the logged times differ)."""
    cfg.validate_pruning()
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    net = cfg.network(frontend.n_mels, frontend.feature_bits, len(labels))
    stages = []
    t0 = time.perf_counter()
    cache_file = None
    if prefix_cache is not None:
        cache_file = Path(prefix_cache) / f"prefix-{_prefix_key(cfg, train_set, test_set, frontend, labels)}.pt"
    if cache_file is not None and cache_file.is_file():
        with open(cache_file, "rb") as fh:
            state = pickle.load(fh)
        twin, rng, stages = state["twin"], state["rng"], state["stages"]
        torch.set_rng_state(state["torch_rng"])
        for s in stages:  # the file's meta names this run's command and config, as a full run's would
            if s.model is not None:
                s.model = s.model.replace(meta=dict(meta, stage=s.name, config=cfg.to_dict()))
        log(f"resumed after the {stages[-1].name} stage from {cache_file} ("
            + ", ".join(f"{s.name} {s.accuracy * 100:.2f} %" for s in stages) + ")")
        return _pruning_stages(cfg, twin, stages, rng, train_set, test_set, frontend, labels, meta, progress, log, t0)
    energy = float(np.mean([(f.astype(np.float64) ** 2).sum(axis=1).mean() for f in train_set.feats[:500]]))
    twin = RSNN(net, init_stds(net, energy), seed=cfg.seed)

    def export(stage_name):
        _export(stage_name, cfg, twin, stages, test_set, frontend, labels, meta, log, t0)

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

    if cache_file is not None:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache_file.with_suffix(".tmp")
        with open(tmp, "wb") as fh:
            pickle.dump({"twin": twin, "rng": rng, "stages": stages, "torch_rng": torch.get_rng_state()}, fh)
        tmp.replace(cache_file)
    return _pruning_stages(cfg, twin, stages, rng, train_set, test_set, frontend, labels, meta, progress, log, t0)


def _export(stage_name, cfg, twin, stages, test_set, frontend, labels, meta, log, t0) -> None:
    """Export the twin as stage ``stage_name``, measure it with golden on ``test_set`` and append the stage."""
    m = export_model(twin, frontend, labels, dict(meta, stage=stage_name, config=cfg.to_dict()))
    met = golden_metrics(m, test_set)
    stages.append(Stage(stage_name, met["accuracy"], "golden", m, met))
    log(f"[{stage_name}] golden accuracy {met['accuracy'] * 100:.2f} % on {met['n']} held-out utterances "
        f"({time.perf_counter() - t0:.0f} s)")


def _pruning_stages(cfg, twin, stages, rng, train_set, test_set, frontend, labels, meta, progress, log, t0):
    """Block pruning (when on), then unstructured pruning (inside the kept blocks), each fine-tuned and exported."""
    def export(stage_name):
        _export(stage_name, cfg, twin, stages, test_set, frontend, labels, meta, log, t0)

    blocks = {}  # matrix name -> 0/1 block mask (the kept blocks), frozen after the block stage
    if cfg.block_pruning():
        targets = block_targets([n for n, _ in twin.named_matrices()], cfg.block_sparsity,
                                cfg.block_sparsity_per_matrix)
        ramp = max(1, cfg.epochs_block - 3)

        def set_blocks(e):
            blocks.clear()
            for name, w in twin.named_matrices():
                m = block_mask(w, sparsity_schedule(e, ramp, targets[name]), cfg.block_size)
                if m is not None:
                    blocks[name] = m
            mixed_masks(twin, 0.0, blocks)

        opt, sched = _optimizer(twin, cfg, cfg.epochs_block, 0.3)
        _epochs(twin, opt, sched, train_set, cfg, cfg.epochs_block, rng, "block", progress=progress,
                on_epoch=set_blocks, peak=True)
        export("4bit_block")

    if cfg.sparsity > 0:
        def set_masks(e):
            s = sparsity_schedule(e, max(1, cfg.epochs_sparse - 3), cfg.sparsity)
            if blocks:
                mixed_masks(twin, s, blocks)
            else:  # no block level: exactly the masks of the recipes shipped before it existed
                magnitude_masks(twin, s)
        opt, sched = _optimizer(twin, cfg, cfg.epochs_sparse, 0.3)
        _epochs(twin, opt, sched, train_set, cfg, cfg.epochs_sparse, rng, "unstructured", progress=progress,
                on_epoch=set_masks, peak=True)
        export("4bit_pruned")
    stages[-1].extra["twin"] = twin
    return stages


def model_summary(model: Model) -> dict:
    """Sizes of a model: stored bytes, weights, non-zeros, its blocks and bits in the block-sparse format
    (:func:`train.report.block_sparse_bits` at P = 16), and its words and bits in the core's lane-list format
    (:func:`golden.sparse.format_bits` at P = 16, before the lane placement)."""
    from golden.params import HardwareParams
    from golden.sparse import format_bits
    from .report import REPORT_P, block_sparse_bits
    data = model_to_bytes(model)
    bs = block_sparse_bits(model, REPORT_P)
    ll = format_bits(model, HardwareParams(pe_count=REPORT_P))["lane_lists"]     # the core's format
    return {"stored_bytes": len(data), "weights": model.total_weights(), "nonzero_weights": model.nonzero_weights(),
            "layer_sizes": [lp.size for lp in model.network.layers],
            "block_P": bs["P"], "blocks": bs["blocks"], "stored_blocks": bs["stored_blocks"],
            "stored_blocks_per_matrix": {k: m["stored_blocks"] for k, m in bs["matrices"].items()},
            "blocks_per_matrix": {k: m["blocks"] for k, m in bs["matrices"].items()},
            "block_sparse_bits": bs["bits"], "block_sparse_index_bits": bs["index_bits_total"],
            "lane_list_words": ll["words"], "lane_list_bits": ll["total"]}


def dumps(obj) -> str:
    return json.dumps(obj, indent=1, default=lambda o: o.to_dict() if hasattr(o, "to_dict") else str(o))
