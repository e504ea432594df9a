"""The cycle model of the configurable core (``rtl/core.py``): exact compute cycles per frame, vectorized.

Per stage (each recurrent layer, then the readout), with ``S`` the scan width, ``P`` the lanes, ``K = ceil(N_out /
P)`` chunks and ``c_p(r)`` the entries of lane ``p``'s list of source row ``r`` (:func:`golden.sparse.lane_counts`)::

    cycles(stage) = x + K + 1

    x     = max(G + e_last,  max over lanes p of  max over events j with c_p(j) > 0 of
                                                  (g_j + 1 + sum over events i >= j of c_p(i)) + 1)
    G     = sum over groups of S sources (feed-forward segment, then recurrent) of max(1, events in the group)
    g_j   = the scan cycle of event j: the cycles of the groups before its own, plus the events before it in
            its group (events leave in ascending source order, feed-forward first)
    e_last = 1 when the last group scanned holds an event (its row lookup ends one cycle after the scan)

The RUN units overlap: the scan emits an event per cycle (``g_j``), its row entry (base and the P counts) is read
the cycle after (``g_j + 1``). Each lane has a queue, a fetch and accumulators of its own: an event with entries in
lane ``p`` goes straight to lane ``p``'s fetch if nothing waits before it in that lane (else it waits in the lane's
queue, and the lane's fetch is busy with earlier events until after it could have started); a lane's fetch reads
one entry per cycle, back to back; an entry's data arrives the cycle after its read. The lanes do not wait for each
other within a stage. ``x`` (counted from 0, the stage's first cycle) is the first cycle at which the scan, the
lookup, every queue and every fetch are idle: the sweep reads chunk 0 in that very cycle, while the last entry's
accumulation is still being written (each accumulator memory's read port is transparent, and no later write goes
to any chunk). Then ``K - 1`` more chunk reads and ``+1`` for the last update: ``x + K + 1``. An event costs a lane
nothing where the lane's list of its row is empty.

``cycles(frame)`` is the sum over the stages; it is what the core's ``cycles`` counter reports. The handshakes
around it are those of :mod:`golden.cycles` (``HANDSHAKE_IN`` / ``HANDSHAKE_OUT``).

``dense=True``: every source is an event (the core's ``dense`` input); with ``all_blocks=True`` every weight (zeros too) is
stored (:func:`golden.image.load_image` with ``all_blocks``): together, the dense baseline, the same datapath with
zero-skip and sparsity off.

The lower bound (:func:`golden.cycles.lower_bound`) is ``ceil(nz_weight_reads / P) + ceil(state_writes / P)``: the
lanes' entries are the non-zero weights, so a stage's fetch is at least the mean lane's total; the gap is the
longest lane's excess over the mean, the scan cycles the fetch does not hide, and the pipeline's fill and drain.
"""
from __future__ import annotations

import numpy as np

from .arith import ceil_div
from .model import Model
from .network import BatchTrace, run_batch
from .params import HardwareParams
from .sparse import lane_counts

__all__ = ["core_cycle_counts", "core_max_frame_cycles", "stage_cycles", "block_reads", "source_activity",
           "QUEUE_LATENCY",
           "FETCH_DRAIN"]

QUEUE_LATENCY = 1    # scan cycle -> a lane's fetch can take the event (row lookup; it bypasses an empty queue)
FETCH_DRAIN = 1      # last entry read -> the lane's fetch is idle (its data cycle); the sweep may start then


def _scan(act: np.ndarray, S: int):
    """(scan cycle of each source (meaningful where active), scan cycles of the segment, last group has an event)
    of activity ``act`` (..., n)."""
    n = act.shape[-1]
    groups = ceil_div(n, S)
    pad = np.zeros(act.shape[:-1] + (groups * S - n,), dtype=bool)
    a = np.concatenate([act.astype(bool), pad], axis=-1).reshape(act.shape[:-1] + (groups, S))
    e = a.sum(-1)                                                     # events per group
    cost = np.maximum(1, e)
    start = np.cumsum(cost, axis=-1) - cost                           # first cycle of each group
    rank = np.cumsum(a, axis=-1) - a                                  # events before, within the group
    t = (start[..., :, None] + rank).reshape(act.shape[:-1] + (groups * S,))[..., :n]
    return t, cost.sum(-1), e[..., -1] > 0


def stage_cycles(ff: np.ndarray, rec: np.ndarray | None, c_ff: np.ndarray, c_rec: np.ndarray | None, n_out: int,
                 hw: HardwareParams) -> np.ndarray:
    """Cycles of one stage for activity ``ff`` (..., n_ff) and ``rec`` (..., n_rec) (bool: the source is an
    event) with ``c_ff`` (n_ff, P) / ``c_rec`` (n_rec, P) entries per row and lane. Returns (...)."""
    S = hw.scan_width
    t_ff, G, last = _scan(ff, S)
    times, acts, counts = [t_ff], [ff.astype(bool)], [np.asarray(c_ff)]
    if rec is not None and rec.shape[-1]:
        t_rec, G_rec, last = _scan(rec, S)
        times.append(t_rec + G[..., None])
        acts.append(rec.astype(bool))
        counts.append(np.asarray(c_rec))
        G = G + G_rec
    t = np.concatenate(times, axis=-1)
    act = np.concatenate(acts, axis=-1)
    c = np.concatenate(counts, axis=0)                                 # (n, P)
    end = np.full(t.shape[:-1], -1, dtype=np.int64)
    for p in range(c.shape[1]):                                        # each lane on its own
        b = np.where(act, c[:, p], 0)
        suffix = np.cumsum(b[..., ::-1], axis=-1)[..., ::-1]           # entries of this event and all after it
        end = np.maximum(end, np.where(b > 0, t + QUEUE_LATENCY + suffix, -1).max(axis=-1))
    x = np.maximum(G + last, np.where(end >= 0, end + FETCH_DRAIN, 0))
    return x + ceil_div(n_out, hw.pe_count) + 1


def source_activity(model: Model, utterances, trace: BatchTrace):
    """Which sources are events, per frame: the input features (``x != 0``, (B, F_max, n_features)), each layer's
    neurons that fired in the frame (``fired``, per layer (B, F_max, N_l)) and in the frame before (``prev``:
    the layer's recurrent events). Frames past an utterance's end are padding: mask them with ``trace.lengths``."""
    net = model.network
    B, F = len(trace.lengths), int(trace.lengths.max())
    x = np.zeros((B, F, net.n_features), dtype=np.int64)
    for i, u in enumerate(utterances):
        x[i, :len(u)] = np.asarray(u)
    fired = [s.any(axis=2) for s in trace.spikes]                      # (B, F, N_l)
    prev = []
    for f in fired:
        p = np.zeros_like(f)
        p[:, 1:] = f[:, :-1]
        prev.append(p)
    return x != 0, fired, prev


def _blocks(model: Model, hw: HardwareParams, all_blocks: bool) -> dict:
    return lane_counts(model, hw.pe_count, all_blocks)


def _stages(model: Model, hw: HardwareParams, utterances, trace: BatchTrace | None, dense: bool,
            all_blocks: bool):
    """(active frames (B, F_max), [(activity ff, activity rec or None, lane counts ff (n_ff, P), lane counts rec
    or None, outputs)]
    per stage, readout last)."""
    net = model.network
    if trace is None:
        trace = run_batch(model, utterances)
    feat, fired, prev = source_activity(model, utterances, trace)
    F, L = int(trace.lengths.max()), len(net.layers)
    active = np.arange(F)[None, :] < trace.lengths[:, None]
    rb = _blocks(model, hw, all_blocks)
    stages = []
    for s in range(L + 1):
        ff = feat if s == 0 else fired[s - 1]
        rec = None if s == L else prev[s]
        if dense:
            ff = np.ones_like(ff, dtype=bool)
            rec = None if rec is None else np.ones_like(rec, dtype=bool)
        n_out = net.readout.size if s == L else net.layers[s].size
        stages.append((ff, rec, rb["out" if s == L else f"in{s}"], None if s == L else rb[f"rec{s}"], n_out))
    return active, stages


def core_cycle_counts(model: Model, hw: HardwareParams, utterances, trace: BatchTrace | None = None,
                      dense: bool = False, all_blocks: bool = False) -> np.ndarray:
    """Compute cycles per frame and stage: int64 array (B, F_max, L + 1) (readout last; padded frames 0)."""
    active, stages = _stages(model, hw, utterances, trace, dense, all_blocks)
    out = np.stack([stage_cycles(ff, rec, b_ff, b_rec, n_out, hw) for ff, rec, b_ff, b_rec, n_out in stages], -1)
    return out.astype(np.int64) * active[:, :, None]


def block_reads(model: Model, hw: HardwareParams, utterances, trace: BatchTrace | None = None,
                dense: bool = False, all_blocks: bool = False) -> np.ndarray:
    """Lane entries read per frame (every lane's reads summed): the core's ``weight_words`` counter. (B, F_max)."""
    active, stages = _stages(model, hw, utterances, trace, dense, all_blocks)
    total = np.zeros(active.shape, dtype=np.int64)
    for ff, rec, b_ff, b_rec, _ in stages:
        total += ff.astype(np.int64) @ b_ff.sum(axis=1)
        if rec is not None:
            total += rec.astype(np.int64) @ b_rec.sum(axis=1)
    return total * active


def core_max_frame_cycles(model: Model, hw: HardwareParams, all_blocks: bool = False) -> int:
    """The most compute cycles any frame of ``model`` can take on the core: every source an event (``all_blocks``:
    with every block stored, the dense baseline's image)."""
    net = model.network
    rb = _blocks(model, hw, all_blocks)
    total = 0
    for s in range(len(net.layers) + 1):
        ff = np.ones((net.fan_in(s),), dtype=bool)
        last = s == len(net.layers)
        rec = None if last else np.ones((net.layers[s].size,), dtype=bool)
        n_out = net.readout.size if last else net.layers[s].size
        total += int(stage_cycles(ff, rec, rb["out" if last else f"in{s}"], None if last else rb[f"rec{s}"],
                                  n_out, hw))
    return total
