"""Mixed-level pruning of the twin.

* **Structured** (coarse): whole neurons are removed and the layers physically shrink (fewer potentials to store
  and update, fewer rows and columns in every weight memory). A neuron's importance is its firing rate times the
  norm of its outgoing weights: a neuron that never fires, or whose spikes reach nobody, goes first.
* **Unstructured** (fine): single weights of smallest latent magnitude are masked to zero, per matrix, to a
  target sparsity that ramps up during fine-tuning (``s(e) = target * (1 - (1 - e / E)**3)``).
* **Block** (between the two, issue #14): whole blocks of weights are masked to zero, per matrix, to a target
  fraction of empty blocks that ramps up with the same schedule. A block is what the block-sparse weight memory
  stores as one word and the PE array spends one cycle on per event: the ``block`` (default 16 = P) weights of ONE
  source row ``r`` for ONE chunk ``k`` of consecutive outputs, ``W[r, block*k : block*(k+1)]`` in golden's
  input-major layout (``w_in (fan_in, N)``, ``w_rec (N, N)``, ``w_out (N_last, C)``). Chunks are aligned at
  multiples of ``block``; a last partial chunk (``C = 10`` outputs of the readout, or a layer whose size is no
  multiple of ``block``) is a block of its own.

  *Importance of a block*: the L2 norm of its LATENT weights (the float weights QAT rounds, in units of the
  quantization step). L2 rather than L1 or the count of non-zeros because one large weight matters more to a
  neuron's input sum than several that round to +-1, and latent rather than quantized weights because the rounded
  values tie in large groups and carry no ranking between blocks that quantize alike. A partial block is scored
  by its own (shorter) norm, unnormalised: it costs the same one word and one cycle per event as a full one.

The levels compose: unstructured pruning after block pruning masks single weights only INSIDE the kept blocks
(its sparsity is a fraction of the weights those blocks hold), and the mask a matrix trains with is the product
of the two (:func:`mixed_masks`).
"""
from __future__ import annotations

import dataclasses

import torch
from torch import nn

from .twin import RSNN

__all__ = ["neuron_importance", "remove_neurons", "magnitude_masks", "sparsity_schedule", "block_importance",
           "block_mask", "block_targets", "mixed_masks"]


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


def _magnitude_mask(twin: RSNN, name: str, w, sparsity: float) -> None:
    """Mask the ``sparsity`` fraction of smallest-magnitude latent weights of matrix ``name`` (none: no mask)."""
    n = int(round(sparsity * w.numel()))
    if n <= 0:
        twin.masks.pop(name, None)
        return
    cut = w.abs().flatten().kthvalue(n).values
    twin.masks[name] = (w.abs() > cut).to(w.dtype)


def magnitude_masks(twin: RSNN, sparsity: float) -> None:
    """Mask the ``sparsity`` fraction of smallest-magnitude latent weights of every matrix (readout included)."""
    with torch.no_grad():
        for name, w in twin.named_matrices():
            _magnitude_mask(twin, name, w, sparsity)


def sparsity_schedule(epoch: int, epochs: int, target: float) -> float:
    e = min(epoch + 1, epochs) / epochs
    return target * (1 - (1 - e) ** 3)


def _chunks(n_out: int, block: int) -> list:
    """``(start, stop)`` of every chunk of ``n_out`` outputs: aligned at multiples of ``block``, the last one
    partial when ``block`` does not divide ``n_out``."""
    return [(s, min(s + block, n_out)) for s in range(0, n_out, block)]


def block_importance(w: torch.Tensor, block: int = 16) -> torch.Tensor:
    """L2 norm of every block of a twin matrix ``w`` (output-major ``(N_out, N_in)``, as the twin stores it):
    a ``(chunks, N_in)`` tensor whose entry ``[k, r]`` scores golden's block ``W[r, block*k : block*(k+1)]``."""
    if block < 1:
        raise ValueError(f"block size must be >= 1, not {block}")
    with torch.no_grad():
        return torch.stack([w[a:b].norm(dim=0) for a, b in _chunks(w.shape[0], block)])


def block_mask(w: torch.Tensor, sparsity: float, block: int = 16) -> torch.Tensor | None:
    """0/1 mask of ``w``'s shape that empties the ``round(sparsity * blocks)`` blocks of smallest L2 norm (ties
    broken by position, so the count is exact); None when that is no block."""
    if not 0.0 <= sparsity <= 1.0:
        raise ValueError(f"block sparsity must be within 0 .. 1, not {sparsity}")
    imp = block_importance(w, block)
    n = int(round(sparsity * imp.numel()))
    if n <= 0:
        return None
    drop = torch.zeros(imp.numel(), dtype=torch.bool)
    drop[torch.argsort(imp.flatten(), stable=True)[:n]] = True
    drop = drop.view(imp.shape)
    m = torch.ones_like(w)
    for k, (a, b) in enumerate(_chunks(w.shape[0], block)):
        m[a:b, drop[k]] = 0
    return m


def block_targets(names, uniform: float, per_matrix: dict | None) -> dict:
    """The target block sparsity of every matrix ``names``: ``per_matrix[name]`` where given, else ``uniform``.
    A key of ``per_matrix`` that names no matrix raises ``ValueError`` (a typo would otherwise prune nothing)."""
    names = list(names)
    per_matrix = dict(per_matrix or {})
    unknown = sorted(set(per_matrix) - set(names))
    if unknown:
        raise ValueError(f"block_sparsity_per_matrix names no matrix {unknown}: the matrices are {names}")
    return {n: float(per_matrix.get(n, uniform)) for n in names}


def mixed_masks(twin: RSNN, sparsity: float = 0.0, blocks: dict | None = None) -> None:
    """Set ``twin.masks`` to the product of two levels, per matrix: ``blocks[name]`` (a 0/1 block mask from
    :func:`block_mask`, or absent / None: every block kept) and an unstructured magnitude mask that zeroes the
    ``sparsity`` fraction of smallest-magnitude latent weights AMONG THOSE THE BLOCK MASK KEEPS.

    With no block mask this is exactly :func:`magnitude_masks` (the same cut over the whole matrix)."""
    blocks = blocks or {}
    with torch.no_grad():
        for name, w in twin.named_matrices():
            keep = blocks.get(name)
            if keep is None:
                _magnitude_mask(twin, name, w, sparsity)
                continue
            kept = w.abs()[keep > 0]
            n = int(round(sparsity * kept.numel()))
            m = keep.clone()
            if n > 0:
                cut = kept.kthvalue(n).values
                m = m * (w.abs() > cut).to(w.dtype)
            twin.masks[name] = m
