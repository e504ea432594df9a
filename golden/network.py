"""The integer RSNN: the update order (THE specification), the vectorized golden model and its counters.

Update order
============
This docstring is the one definition of the network's semantics. The PyTorch twin (``train/``), the pure-Python
reference (:mod:`golden.reference`) and the RTL (``rtl/``) cite it; where they differ from it, they are wrong.

Notation: frames ``f = 0 .. F-1`` (one every 10 ms), time steps ``t = 0 .. T-1`` within a frame, recurrent layers
``l = 0 .. L-1`` then the readout. ``x[f]`` is the frame's integer feature vector. ``a_{-1}[f, t] = x[f]`` for
every ``t`` (the frame is presented at each of its time steps); ``a_l[f, t] = s_l[f, t]``, layer ``l``'s spikes:
binary (0 or 1) when its ``spike_levels`` ``D`` is 1, else multi-level (an integer ``0 .. D``, the payload of its
event). All potentials and spikes start at zero (``s_l[-1, t] = 0``).

For each frame ``f``, layers are processed in order ``l = 0, 1, .., L-1``, then the readout. Layer ``l``:

1. **Events** (zero-skip, :func:`golden.events.frame_events`): the feed-forward events of ``a_{l-1}[f, :]`` (this
   frame, the layer below) and the recurrent events of ``s_l[f-1, :]`` (the layer's own spikes of the PREVIOUS
   frame). One source's activity over the ``T`` steps is one merged event with a time-step mask.
2. **Accumulate**, exactly (the accumulator is wide enough never to overflow, see
   :meth:`golden.params.NetworkParams.acc_bits`; the order of additions therefore does not matter)::

       acc[t, j] = (sum over feed-forward events e with bit t of e.mask:  w_in[e.index, j] * e.payload) << in_shift
                 + (sum over recurrent events e with bit t of e.mask:     w_rec[e.index, j] * e.payload) << rec_shift

   So at time step ``t`` of frame ``f`` the recurrent weights see ``s_l[f-1, t]``: the same time step of the
   previous frame. No accumulator of frame ``f`` depends on a spike of frame ``f`` of the same layer, which is
   what lets the ``T`` accumulator sets be filled in parallel from one weight read per event.
3. **Neuron update**, for ``t = 0, 1, .., T-1`` in this order, for every neuron ``j`` (potential ``v``)::

       v = leak(v, leak_shift)              # v - (v >> leak_shift); leak_shift = 0: no leak     (golden.arith)
       v = saturate(v + acc[t, j])          # to the signed state_bits format, once per time step
       k = clip(floor(v / threshold), 0, D) # fire: D = spike_levels; D = 1 gives k = (v >= threshold)
       s_l[f, t, j] = k
       if k > 0:
           v = v - k * threshold   (reset = subtract)    or    v = 0   (reset = zero)

   A multi-level spike (``D > 1``, seeds 002/003) carries in one event what binary spikes would need ``k`` time
   steps for; it costs a payload on the event and a reset by ``k`` thresholds.

   The state is read once and written once per frame: the T steps run back to back in the neuron unit.

Readout (``C`` classes, potential ``u``, no leak, no spikes), after the last layer::

    u = saturate(u + sum over events e of s_{L-1}[f, :], over t in e.mask:  w_out[e.index, c] * e.payload << in_shift)

once per frame (one saturation per frame). ``readout[f]`` is ``u`` after frame ``f``.

**Decision**: ``argmax_c u`` after the last frame; a tie goes to the LOWEST class index.

Counters
========
Per frame and per layer (index ``L`` is the readout), in :attr:`Trace.counters`:

``in_events``        feed-forward events consumed (input features for layer 0, spikes of the layer below)
``rec_events``       recurrent events consumed (0 for the readout)
``weight_reads``     weights read under ideal zero-skip of inputs: every event reads its whole row (fan-out),
                     once for all the time steps in its mask
``nz_weight_reads``  the non-zero weights among them (what a memory that skips pruned weights reads)
``accumulations``    synaptic additions of non-zero weights: sum over events of nnz(row) x popcount(mask)
``state_reads``      neuron potentials read (N per frame for a layer, C for the readout)
``state_writes``     neuron potentials written (likewise)
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .arith import leak
from .events import count_events
from .model import Model
from .params import ResetMode

__all__ = ["COUNTERS", "InputError", "Trace", "BatchTrace", "run", "run_batch", "check_frames", "dense_counts"]

COUNTERS = ("in_events", "rec_events", "weight_reads", "nz_weight_reads", "accumulations",
            "state_reads", "state_writes")


class InputError(ValueError):
    """Input frames of the wrong shape, type or range."""


@dataclass
class Trace:
    """Everything the network did on one utterance.

    Members
    -------
    spikes : list of uint8 arrays (F, T, N_l), one per recurrent layer (the spike level: 0 / 1 for binary spikes)
    readout : int64 array (F, C), the class potentials after each frame
    potentials : int64 array (C,), after the last frame
    decision : int, argmax of ``potentials`` (lowest index on a tie)
    counters : dict name -> int64 array (F, L + 1), see the module docstring
    """

    spikes: list
    readout: np.ndarray
    potentials: np.ndarray
    decision: int
    counters: dict

    @property
    def n_frames(self) -> int:
        return int(self.readout.shape[0])

    def totals(self) -> dict:
        """Counters summed over the utterance: name -> list with one int per layer (readout last)."""
        return {k: [int(x) for x in v.sum(axis=0)] for k, v in self.counters.items()}


@dataclass
class BatchTrace:
    """:class:`Trace` for a batch, padded to the longest utterance (``lengths`` says how far each is valid)."""

    spikes: list
    readout: np.ndarray
    counters: dict
    lengths: np.ndarray

    @property
    def potentials(self) -> np.ndarray:
        return self.readout[np.arange(len(self.lengths)), self.lengths - 1]

    @property
    def decisions(self) -> np.ndarray:
        return np.argmax(self.potentials, axis=1)

    def __len__(self) -> int:
        return len(self.lengths)

    def __getitem__(self, b: int) -> Trace:
        n = int(self.lengths[b])
        pot = self.readout[b, n - 1].copy()
        return Trace([s[b, :n].copy() for s in self.spikes], self.readout[b, :n].copy(), pot,
                     int(np.argmax(pot)), {k: v[b, :n].copy() for k, v in self.counters.items()})


def check_frames(model: Model, frames, what: str = "frames") -> np.ndarray:
    """Return ``frames`` as an int64 array (F, n_features) or raise :class:`InputError` saying what is wrong."""
    net = model.network
    a = np.asarray(frames)
    if a.ndim != 2 or a.shape[1] != net.n_features:
        raise InputError(f"{what} must have shape (n_frames, {net.n_features}), not {a.shape}")
    if a.shape[0] == 0:
        raise InputError(f"{what} has no frames: an utterance needs at least one")
    if a.dtype.kind not in "iub":
        raise InputError(f"{what} must be integers, not {a.dtype}")
    if not net.feature_format.contains(a):
        raise InputError(f"{what} holds values in {int(a.min())}..{int(a.max())}, outside the "
                         f"{net.feature_format} feature range 0..{net.feature_format.max}")
    return a.astype(np.int64)


def run(model: Model, frames) -> Trace:
    """Run one utterance (an int array of shape (F, n_features)) through the network."""
    return run_batch(model, [frames])[0]


def run_batch(model: Model, utterances, observe=None) -> BatchTrace:
    """Run a batch of utterances (a list of int arrays (F_b, n_features), lengths may differ); vectorized over
    the batch and the neurons, exact. Equal, utterance by utterance, to :func:`run` and to
    :func:`golden.reference.run_reference`.

    ``observe`` (optional, for functional coverage) is called as ``observe(f, l, t, total, v, active)`` at every
    saturation: ``total`` the unsaturated sum (B, N) and ``v`` the saturated potential, before any reset, for
    layer ``l`` at step ``t`` of frame ``f``; for the readout ``l = L`` and ``t = None``. ``active`` (B,) marks
    the utterances that have frame ``f``. It must not modify its arguments."""
    net = model.network
    xs = [check_frames(model, u, f"utterance {b}") for b, u in enumerate(utterances)]
    if not xs:
        raise InputError("the batch is empty")
    B, T, L = len(xs), net.time_steps, len(net.layers)
    lengths = np.array([len(x) for x in xs], dtype=np.int64)
    F = int(lengths.max())
    x = np.zeros((B, F, net.n_features), dtype=np.int64)
    for b, u in enumerate(xs):
        x[b, :len(u)] = u

    # float64 matmuls of integers are exact here: validate() bounds every sum below 2**52.
    w_in = [lw.w_in.astype(np.float64) for lw in model.layers]
    w_rec = [lw.w_rec.astype(np.float64) for lw in model.layers]
    w_out = model.w_out.astype(np.float64)
    nnz_in = [np.count_nonzero(lw.w_in, axis=1) for lw in model.layers]
    nnz_rec = [np.count_nonzero(lw.w_rec, axis=1) for lw in model.layers]
    nnz_out = np.count_nonzero(model.w_out, axis=1)

    v = [np.zeros((B, lp.size), dtype=np.int64) for lp in net.layers]
    s_prev = [np.zeros((B, T, lp.size), dtype=np.int64) for lp in net.layers]
    u = np.zeros((B, net.readout.size), dtype=np.int64)
    spikes = [np.zeros((B, F, T, lp.size), dtype=np.uint8) for lp in net.layers]
    readout = np.zeros((B, F, net.readout.size), dtype=np.int64)
    counters = {k: np.zeros((B, F, L + 1), dtype=np.int64) for k in COUNTERS}
    u_fmt = net.readout.state_format

    def matmul(a, w):  # a: (B, T, K) int, w: (K, N) float -> (B, T, N) int64
        return np.rint(a.reshape(-1, a.shape[-1]).astype(np.float64) @ w).astype(np.int64).reshape(
            a.shape[0], a.shape[1], w.shape[1])

    def count(f, layer, ff, ff_nnz, rec, rec_nnz, n_out, active):
        ev_ff = count_events(ff)
        steps_ff = np.count_nonzero(ff, axis=-2)
        c = {"in_events": ev_ff.sum(-1), "weight_reads": ev_ff.sum(-1) * n_out,
             "nz_weight_reads": ev_ff @ ff_nnz, "accumulations": steps_ff @ ff_nnz,
             "rec_events": np.zeros(B, dtype=np.int64)}
        if rec is not None:
            ev_rec = count_events(rec)
            c["rec_events"] = ev_rec.sum(-1)
            c["weight_reads"] = c["weight_reads"] + ev_rec.sum(-1) * n_out
            c["nz_weight_reads"] = c["nz_weight_reads"] + ev_rec @ rec_nnz
            c["accumulations"] = c["accumulations"] + np.count_nonzero(rec, axis=-2) @ rec_nnz
        c["state_reads"] = c["state_writes"] = np.full(B, n_out, dtype=np.int64)
        for k, val in c.items():
            counters[k][:, f, layer] = np.where(active, val, 0)

    for f in range(F):
        active = f < lengths
        a = np.broadcast_to(x[:, f, None, :], (B, T, net.n_features))
        for l, lp in enumerate(net.layers):
            acc = (matmul(a, w_in[l]) << lp.in_shift) + (matmul(s_prev[l], w_rec[l]) << lp.rec_shift)
            count(f, l, a, nnz_in[l], s_prev[l], nnz_rec[l], lp.size, active)
            fmt = lp.state_format
            vv = v[l]
            s = np.zeros((B, T, lp.size), dtype=np.int64)
            for t in range(T):
                total = leak(vv, lp.leak_shift) + acc[:, t]
                vv = np.clip(total, fmt.min, fmt.max)
                if observe is not None:
                    observe(f, l, t, total, vv, active)
                k = np.clip(vv // lp.threshold, 0, lp.spike_levels)
                s[:, t] = k
                if lp.reset is ResetMode.SUBTRACT:
                    vv = vv - k * lp.threshold
                else:
                    vv = np.where(k > 0, 0, vv)
            s *= active[:, None, None]
            v[l] = np.where(active[:, None], vv, v[l])
            s_prev[l] = s
            spikes[l][:, f] = s
            a = s
        acc = matmul(a, w_out).sum(axis=1) << net.readout.in_shift
        count(f, L, a, nnz_out, None, None, net.readout.size, active)
        total = u + acc
        clipped = np.clip(total, u_fmt.min, u_fmt.max)
        if observe is not None:
            observe(f, L, None, total, clipped, active)
        u = np.where(active[:, None], clipped, u)
        readout[:, f] = u
    return BatchTrace(spikes, readout, counters, lengths)


def dense_counts(model: Model) -> dict:
    """Per frame and per layer (readout last), what a dense machine without zero-skip would do: every input and
    every neuron an event at every time step. The baseline that zero-skip is measured against."""
    net = model.network
    T = net.time_steps
    reads, accs = [], []
    for l, lp in enumerate(net.layers):
        rows = net.fan_in(l) + lp.size
        reads.append(rows * lp.size)
        accs.append(rows * lp.size * T)
    reads.append(net.layers[-1].size * net.readout.size)
    accs.append(net.layers[-1].size * net.readout.size * T)
    return {"weight_reads": reads, "accumulations": accs}
