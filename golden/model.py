"""A model: network parameters, front-end parameters, class labels and the integer weights.

Weight matrices are stored **input-major**: ``w_in[i, j]`` is the weight from source ``i`` to neuron ``j``, so
row ``i`` is everything one event with index ``i`` reads (the hardware's weight memory is addressed by the event
index). Shapes, for layer ``l`` of ``N_l`` neurons and readout of ``C`` classes:

* ``layers[l].w_in``: ``(fan_in_l, N_l)`` with ``fan_in_0 = n_features`` and ``fan_in_l = N_{l-1}``;
* ``layers[l].w_rec``: ``(N_l, N_l)``;
* ``w_out``: ``(N_last, C)``.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from .params import FrontEndParams, NetworkParams, ParamError, default_network

__all__ = ["LayerWeights", "Model", "random_model"]


@dataclass
class LayerWeights:
    w_in: np.ndarray
    w_rec: np.ndarray


@dataclass
class Model:
    network: NetworkParams
    layers: list
    w_out: np.ndarray
    labels: tuple
    frontend: FrontEndParams = field(default_factory=FrontEndParams)
    meta: dict = field(default_factory=dict)

    def matrices(self) -> dict:
        """Every weight matrix by its name in the model file (``l0.w_in``, ``l0.w_rec``, ..., ``out.w``)."""
        out = {}
        for i, lw in enumerate(self.layers):
            out[f"l{i}.w_in"] = lw.w_in
            out[f"l{i}.w_rec"] = lw.w_rec
        out["out.w"] = self.w_out
        return out

    def expected_shapes(self) -> dict:
        net = self.network
        out = {}
        for i, lp in enumerate(net.layers):
            out[f"l{i}.w_in"] = (net.fan_in(i), lp.size)
            out[f"l{i}.w_rec"] = (lp.size, lp.size)
        out["out.w"] = (net.layers[-1].size, net.readout.size)
        return out

    def validate(self) -> "Model":
        """Check every shape, every weight's range and the labels; raise :class:`ParamError` naming the culprit."""
        net = self.network.validate()
        self.frontend.validate()
        if self.frontend.n_mels != net.n_features:
            raise ParamError(f"frontend.n_mels ({self.frontend.n_mels}) must equal network.n_features "
                             f"({net.n_features})")
        if self.frontend.feature_bits != net.feature_bits:
            raise ParamError(f"frontend.feature_bits ({self.frontend.feature_bits}) must equal "
                             f"network.feature_bits ({net.feature_bits})")
        if len(self.layers) != len(net.layers):
            raise ParamError(f"the model has {len(self.layers)} weight layers but network.layers has "
                             f"{len(net.layers)}")
        wf = net.weight_format
        for name, w in self.matrices().items():
            shape = self.expected_shapes()[name]
            if not isinstance(w, np.ndarray) or w.shape != shape:
                got = getattr(w, "shape", type(w).__name__)
                raise ParamError(f"weights {name} must have shape {shape}, not {got}")
            if w.dtype.kind not in "iu":
                raise ParamError(f"weights {name} must be integers, not {w.dtype}")
            if not wf.contains(w):
                raise ParamError(f"weights {name} hold values in {int(w.min())}..{int(w.max())}, outside the "
                                 f"{wf} range {wf.min}..{wf.max}")
        if (not isinstance(self.labels, tuple) or len(self.labels) != net.readout.size
                or not all(isinstance(x, str) and x for x in self.labels) or len(set(self.labels)) != len(self.labels)):
            raise ParamError(f"labels must be {net.readout.size} distinct non-empty strings, not {self.labels!r}")
        if not isinstance(self.meta, dict):
            raise ParamError(f"meta must be a JSON object, not {self.meta!r}")
        return self

    def replace(self, **kw) -> "Model":
        return dataclasses.replace(self, **kw)

    def nonzero_weights(self) -> int:
        return int(sum(np.count_nonzero(w) for w in self.matrices().values()))

    def total_weights(self) -> int:
        return int(sum(w.size for w in self.matrices().values()))


def random_model(network: NetworkParams | None = None, seed: int = 0, density: float = 1.0,
                 labels: tuple | None = None, frontend: FrontEndParams | None = None) -> Model:
    """An untrained model with uniformly random weights over the whole weight range (a stand-in and a test
    vehicle). ``density`` is the fraction of weights kept non-zero."""
    net = (network or default_network()).validate()
    rng = np.random.default_rng(seed)
    wf = net.weight_format

    def draw(shape):
        w = rng.integers(wf.min, wf.max + 1, size=shape, dtype=np.int64)
        if density < 1.0:
            w[rng.random(shape) >= density] = 0
        return w

    layers = [LayerWeights(draw((net.fan_in(i), lp.size)), draw((lp.size, lp.size)))
              for i, lp in enumerate(net.layers)]
    w_out = draw((net.layers[-1].size, net.readout.size))
    fe = frontend or FrontEndParams(n_mels=net.n_features, feature_bits=net.feature_bits)
    labels = labels or tuple(str(c) for c in range(net.readout.size))
    return Model(net, layers, w_out, tuple(labels), fe,
                 {"kind": "random", "seed": seed, "note": "untrained random weights: decisions are chance"}).validate()
