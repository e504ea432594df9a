"""The cycle model of the accelerator in ``rtl/accel.py``: exact compute cycles per frame, vectorized.

For each recurrent layer ``l`` (``N_l`` neurons) and then the readout (``C`` classes), with ``P`` processing
elements, scan width ``S`` and ``K = ceil(N_out / P)`` chunks::

    cycles(layer) = GEN_ff + GEN_rec + 1 + K * (E + 3)

    GEN_x  = sum over groups g of S sources of max(1, nonzero sources in g)     (find-first-set scan;
             a group with no event costs one cycle: what a zero costs)
    1      = ACC_INIT (chunk 0 set up, last event write lands)
    E      = events of the layer (feed-forward + recurrent); each chunk replays them through a two-stage
             pipeline (event memory, weight memory): E + 2 cycles, then 1 cycle of neuron update (UPD)

The readout has no recurrent segment. ``cycles(frame)`` is the sum over the layers and the readout; it is what
the RTL's ``cycles`` counter reports (compute states only). A frame occupies the accelerator ``cycles + 2`` clock
cycles when the output is not stalled (one cycle to accept the input word, one to hand over the output word);
:func:`realtime_clock_hz` uses that figure.

``dense=True`` models the same RTL with zero-skip switched off (every source an event).
"""
from __future__ import annotations

import numpy as np

from .arith import ceil_div
from .model import Model
from .network import BatchTrace, run_batch
from .params import HardwareParams

__all__ = ["cycle_counts", "lower_bound", "realtime_clock_hz", "FRAME_OVERHEAD", "FRAME_PERIOD_S"]

FRAME_OVERHEAD = 2        # input handshake + output handshake, outside the compute counter
ACC_INIT = 1              # cycles to set up chunk 0 of a layer
PIPELINE = 2              # event memory + weight memory read latency drained at the end of each chunk
UPDATE = 1                # neuron-update cycles per chunk
FRAME_PERIOD_S = 0.010    # one frame every 10 ms


def _gen(nz: np.ndarray, S: int, dense: bool) -> tuple[np.ndarray, np.ndarray]:
    """(scan cycles, events) of activity bitmaps ``nz`` (..., n)."""
    n = nz.shape[-1]
    groups = ceil_div(n, S)
    if dense:   # every source an event: one cycle each
        return np.full(nz.shape[:-1], n, dtype=np.int64), np.full(nz.shape[:-1], n, dtype=np.int64)
    pad = np.zeros(nz.shape[:-1] + (groups * S - n,), dtype=bool)
    per_group = np.concatenate([nz.astype(bool), pad], axis=-1).reshape(nz.shape[:-1] + (groups, S)).sum(-1)
    return np.maximum(1, per_group).sum(-1), nz.astype(bool).sum(-1)


def cycle_counts(model: Model, hw: HardwareParams, utterances=None, trace: BatchTrace | None = None,
                 dense: bool = False) -> np.ndarray:
    """Compute cycles per frame, per layer: int64 array (B, F_max, L + 1) (readout last; padded frames 0).

    Give the ``utterances`` (frames, as for :func:`golden.network.run_batch`) and optionally their ``trace`` (run
    here if missing)."""
    net = model.network
    hw.check(net)
    if trace is None:
        trace = run_batch(model, utterances)
    B, F = len(trace.lengths), int(trace.lengths.max())
    x = np.zeros((B, F, net.n_features), dtype=np.int64)
    for b, u in enumerate(utterances):
        x[b, :len(u)] = np.asarray(u)
    active = np.arange(F)[None, :] < trace.lengths[:, None]
    P, S, L = hw.pe_count, hw.scan_width, len(net.layers)
    out = np.zeros((B, F, L + 1), dtype=np.int64)
    fired = [s.any(axis=2) for s in trace.spikes]                  # (B, F, N_l): source active in the frame
    for l in range(L + 1):
        ff = x != 0 if l == 0 else fired[l - 1]
        gen, events = _gen(ff, S, dense)
        n_out = net.readout.size if l == L else net.layers[l].size
        if l < L:
            rec = np.zeros_like(fired[l])
            rec[:, 1:] = fired[l][:, :-1]
            g2, e2 = _gen(rec, S, dense)
            gen, events = gen + g2, events + e2
        out[:, :, l] = gen + ACC_INIT + ceil_div(n_out, P) * (events + PIPELINE + UPDATE)
    return out * active[:, :, None]


def lower_bound(model: Model, hw: HardwareParams, trace: BatchTrace) -> np.ndarray:
    """A bound no design with ``P`` PEs and one weight word per cycle beats: every event's non-zero weights
    (``nz_weight_reads``) must pass through P lanes, and every neuron must be updated (``state_writes / P``).
    Per frame, (B, F_max)."""
    c = trace.counters
    return (np.ceil(c["nz_weight_reads"].sum(-1) / hw.pe_count) + np.ceil(c["state_writes"].sum(-1)
                                                                           / hw.pe_count)).astype(np.int64)


def realtime_clock_hz(max_cycles_per_frame: int) -> float:
    """The clock at which the slowest frame (compute + handshakes) still fits in its 10 ms."""
    return (int(max_cycles_per_frame) + FRAME_OVERHEAD) / FRAME_PERIOD_S
