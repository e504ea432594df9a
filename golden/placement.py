"""Lane placement: the order of each hidden layer's neurons, chosen so that the core's lanes share the work evenly.

On the configurable core (``rtl/core.py``, :mod:`golden.sparse`) lane ``p`` of ``P`` owns the outputs ``k*P + p`` of
every matrix, and each lane walks its own list of non-zero weights for every event: a stage lasts about as long as
its busiest lane. The order of a hidden layer's neurons is free (relabelling them, with the rows and columns of
every matrix that touches them, computes the same function: every decision, readout potential and counter is
unchanged; the spikes come out in the new order), so it can be chosen to balance the lanes.

The load a neuron ``n`` of layer ``l`` brings to its lane is the expected number of its weights that events read
per frame: ``sum_r a_r [w_in[r, n] != 0] + sum_r b_r [w_rec[r, n] != 0]``, with ``a_r`` the rate at which source
``r`` of the layer's input is an event and ``b_r`` the rate at which neuron ``r`` of the layer spiked in the
previous frame (both measured on training data). :func:`balance` deals the neurons, heaviest first, each to the
least-loaded lane that has a free place (``ceil(N / P)`` places per lane, the last chunk's lanes past ``N``
excluded; ties to the lowest lane). The readout's classes keep their order (the decision is a class index).
"""
from __future__ import annotations

import numpy as np

from .arith import ceil_div
from .core_cycles import source_activity
from .model import LayerWeights, Model
from .network import run_batch

__all__ = ["permute_neurons", "source_rates", "neuron_loads", "balance", "place_lanes"]


def permute_neurons(model: Model, perms) -> Model:
    """``model`` with layer ``l``'s neuron ``i`` moved to position ``j`` where ``perms[l][j] == i`` (one
    permutation per hidden layer). Computes the same function."""
    if len(perms) != len(model.layers):
        raise ValueError(f"{len(perms)} perms for a model of {len(model.layers)} hidden layers: one per layer")
    layers = []
    for l, lw in enumerate(model.layers):
        p = np.asarray(perms[l], dtype=np.int64)
        if sorted(p.tolist()) != list(range(lw.w_rec.shape[0])):
            raise ValueError(f"perms[{l}] is not a permutation of the layer's {lw.w_rec.shape[0]} neurons")
        w_in = lw.w_in if l == 0 else lw.w_in[np.asarray(perms[l - 1])]
        layers.append(LayerWeights(np.ascontiguousarray(w_in[:, p]), np.ascontiguousarray(lw.w_rec[p][:, p])))
    w_out = np.ascontiguousarray(model.w_out[np.asarray(perms[-1])])
    return model.replace(layers=layers, w_out=w_out)


def source_rates(model: Model, utterances) -> tuple[list, list]:
    """Per layer, the rate (over the frames of ``utterances``) at which each source of its input is an event, and
    at which each of its neurons spiked in the previous frame (its recurrent sources)."""
    trace = run_batch(model, utterances)
    active = np.arange(int(trace.lengths.max()))[None, :] < trace.lengths[:, None]
    x, fired, prev = source_activity(model, utterances, trace)
    rates_ff = [x[active].mean(0)] + [f[active].mean(0) for f in fired[:-1]]
    rates_rec = [p[active].mean(0) for p in prev]
    return rates_ff, rates_rec


def neuron_loads(model: Model, rates_ff, rates_rec) -> list:
    """Per hidden layer, each neuron's expected weight reads per frame (see the module's docstring)."""
    return [np.asarray(rates_ff[l]) @ (lw.w_in != 0) + np.asarray(rates_rec[l]) @ (lw.w_rec != 0)
            for l, lw in enumerate(model.layers)]


def balance(loads, P: int) -> list:
    """One permutation per layer that deals the neurons of ``loads`` (per layer, (N,)) to ``P`` lanes (see the
    module's docstring)."""
    perms = []
    for load in loads:
        load = np.asarray(load, dtype=float)
        N = len(load)
        K = ceil_div(N, P)
        places = [[k * P + q for k in range(K) if k * P + q < N] for q in range(P)]
        filled = [0] * P
        total = np.zeros(P)
        perm = np.empty(N, dtype=np.int64)
        for n in np.argsort(-load, kind="stable"):
            q = min((q for q in range(P) if filled[q] < len(places[q])), key=lambda q: (total[q], q))
            perm[places[q][filled[q]]] = n
            filled[q] += 1
            total[q] += load[n]
        perms.append(perm)
    return perms


def place_lanes(model: Model, utterances, P: int) -> tuple[Model, list]:
    """``model`` with each hidden layer's neurons placed for ``P`` lanes by the activity on ``utterances`` (training
    data), and the permutations applied."""
    perms = balance(neuron_loads(model, *source_rates(model, utterances)), P)
    return permute_neurons(model, perms), perms
