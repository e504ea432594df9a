"""Export: the only bridge from the PyTorch twin to golden's integers.

It refuses (:class:`ExportError`) any weight that is not an integer inside the weight format, any twin not in
quantized mode, and any parameter golden's ``validate()`` rejects; it never rounds or clips on its own.
"""
from __future__ import annotations

import numpy as np
import torch

from golden.model import LayerWeights, Model
from golden.params import FrontEndParams

from .twin import RSNN

__all__ = ["ExportError", "export_model", "import_model"]


class ExportError(ValueError):
    """The twin holds something golden's formats cannot represent exactly."""


def export_model(twin: RSNN, frontend: FrontEndParams, labels: tuple, meta: dict) -> Model:
    if twin.mode != "quant":
        raise ExportError(f"only a quantized twin can be exported (mode is {twin.mode!r}); set mode = 'quant' "
                          "and fine-tune first")
    net = twin.net
    wf = net.weight_format
    mats = {}
    with torch.no_grad():
        for name, w in twin.named_matrices():
            e = twin.effective(name, w).detach().cpu().double().numpy()
            if not np.all(np.isfinite(e)) or not np.array_equal(e, np.round(e)):
                raise ExportError(f"weights {name} are not all integers")
            if e.min() < wf.min or e.max() > wf.max:
                raise ExportError(f"weights {name} hold {e.min():.0f}..{e.max():.0f}, outside {wf} "
                                  f"({wf.min}..{wf.max})")
            mats[name] = e.astype(np.int64).T.copy()  # nn.Linear layout (out, in) -> golden's (in, out)
    layers = [LayerWeights(mats[f"l{i}.w_in"], mats[f"l{i}.w_rec"]) for i in range(len(net.layers))]
    try:
        return Model(net, layers, mats["out.w"], tuple(labels), frontend, dict(meta)).validate()
    except ValueError as e:
        raise ExportError(f"golden rejects the exported model: {e}") from None


def import_model(model: Model) -> RSNN:
    """A quantized twin holding exactly ``model``'s integer weights (the inverse of :func:`export_model`)."""
    net = model.network
    twin = RSNN(net, tuple((0.0, 0.0) for _ in net.layers) + (0.0,))
    twin.mode = "quant"
    mats = model.matrices()
    with torch.no_grad():
        for name, w in twin.named_matrices():
            w.copy_(torch.from_numpy(mats[name].T.astype(np.float32)))
    return twin
