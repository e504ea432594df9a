"""Mixed-level pruning of the twin.

* **Structured** (coarse): whole neurons are removed and the layers physically shrink (fewer potentials to store
  and update, fewer rows and columns in every weight memory). A neuron's importance is its firing rate times the
  norm of its outgoing weights: a neuron that never fires, or whose spikes reach nobody, goes first.
* **Unstructured** (fine): single weights of smallest latent magnitude are masked to zero, per matrix, to a
  target sparsity that ramps up during fine-tuning (``s(e) = target * (1 - (1 - e / E)**3)``).
"""
from __future__ import annotations

import dataclasses

import torch
from torch import nn

from .twin import RSNN

__all__ = ["neuron_importance", "remove_neurons", "magnitude_masks", "sparsity_schedule"]


def neuron_importance(twin: RSNN, rates: list) -> list:
    """Per layer, a (N,) tensor: firing rate (spikes per frame) x norm of the neuron's outgoing weights."""
    out = []
    with torch.no_grad():
        for i in range(len(twin.net.layers)):
            nxt = twin.w_in[i + 1] if i + 1 < len(twin.net.layers) else twin.w_out
            fan_out = torch.cat([nxt, twin.w_rec[i]], dim=0)  # columns = this layer's neurons
            out.append(rates[i] * fan_out.norm(dim=0))
    return out


def remove_neurons(twin: RSNN, keep: list) -> None:
    """Shrink every layer to the neurons ``keep[l]`` (sorted index tensors), in place."""
    net = twin.net
    layers = list(net.layers)
    with torch.no_grad():
        for i, k in enumerate(keep):
            k = torch.as_tensor(sorted(int(j) for j in k))
            twin.w_in[i] = nn.Parameter(twin.w_in[i][k].clone())
            twin.w_rec[i] = nn.Parameter(twin.w_rec[i][k][:, k].clone())
            if i + 1 < len(layers):
                twin.w_in[i + 1] = nn.Parameter(twin.w_in[i + 1][:, k].clone())
            else:
                twin.w_out = nn.Parameter(twin.w_out[:, k].clone())
            for name, rows, cols in ((f"l{i}.w_in", k, None), (f"l{i}.w_rec", k, k),
                                     (f"l{i + 1}.w_in" if i + 1 < len(layers) else "out.w", None, k)):
                m = twin.masks.get(name)
                if m is not None:
                    m = m[rows] if rows is not None else m
                    m = m[:, cols] if cols is not None else m
                    twin.masks[name] = m.clone()
            layers[i] = dataclasses.replace(layers[i], size=len(k))
    twin.net = dataclasses.replace(net, layers=tuple(layers)).validate()


def magnitude_masks(twin: RSNN, sparsity: float) -> None:
    """Mask the ``sparsity`` fraction of smallest-magnitude latent weights of every matrix (readout included)."""
    with torch.no_grad():
        for name, w in twin.named_matrices():
            n = int(round(sparsity * w.numel()))
            if n <= 0:
                twin.masks.pop(name, None)
                continue
            cut = w.abs().flatten().kthvalue(n).values
            twin.masks[name] = (w.abs() > cut).to(w.dtype)


def sparsity_schedule(epoch: int, epochs: int, target: float) -> float:
    e = min(epoch + 1, epochs) / epochs
    return target * (1 - (1 - e) ** 3)
