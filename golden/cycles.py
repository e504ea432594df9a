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
the RTL's ``cycles`` counter reports (compute states only).

Handshakes (what the testbench times on the ports, independently of the counter): the input word is taken on
the rising edge ``e`` where ``inp.valid`` and ``inp.ready`` are both high; ``out.valid`` rises exactly ``cycles``
edges later (``e + cycles``); the output word is taken on the first edge after that with ``out.ready`` high
(``HANDSHAKE_OUT`` = 1 cycle when ready is already high), and ``inp.ready`` is high again from that same edge,
so the next input word can be taken one edge later (``HANDSHAKE_IN`` = 1 cycle). Back to back, with the output
never stalled, one frame occupies ``cycles + FRAME_OVERHEAD`` clock cycles; :func:`realtime_clock_hz` uses that.

``dense=True`` models the same RTL with zero-skip switched off (every source an event);
:func:`dense_mode_counters` gives the counters the RTL reports in that mode.
"""
from __future__ import annotations

import numpy as np

from .arith import ceil_div
from .model import Model
from .network import BatchTrace, run_batch
from .params import HardwareParams

__all__ = ["cycle_counts", "lower_bound", "realtime_clock_hz", "dense_mode_counters", "max_frame_cycles",
           "FRAME_OVERHEAD",
           "HANDSHAKE_IN", "HANDSHAKE_OUT", "FRAME_PERIOD_S"]

HANDSHAKE_IN = 1          # the idle cycle whose closing edge takes the input word
HANDSHAKE_OUT = 1         # the cycle whose closing edge hands over the output word (output not stalled)
FRAME_OVERHEAD = HANDSHAKE_IN + HANDSHAKE_OUT   # outside the compute counter
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


def max_frame_cycles(net, hw: HardwareParams) -> int:
    """The most compute cycles any frame can take on this hardware: every source an event (what the dense mode
    always does). Bounds the real-time clock of any input, and sizes the testbench's watchdog."""
    P = hw.pe_count
    total = 0
    for l in range(len(net.layers) + 1):
        n_out = net.readout.size if l == len(net.layers) else net.layers[l].size
        srcs = [net.fan_in(l)] + ([] if l == len(net.layers) else [net.layers[l].size])
        events = sum(srcs)
        total += events + ACC_INIT + ceil_div(n_out, P) * (events + PIPELINE + UPDATE)
    return total


def dense_mode_counters(model: Model, utterances, trace: BatchTrace | None = None) -> dict:
    """The counters (:data:`golden.network.COUNTERS`, per frame and layer, (B, F_max, L + 1)) that the RTL reports
    with zero-skip switched off. Every source of a layer is an event: an input feature carries its value (0
    included) at every time step, a neuron its spike mask of the frame (empty included). So ``in_events`` /
    ``rec_events`` count every source, ``weight_reads`` every weight of every row, ``nz_weight_reads`` every
    non-zero weight, and ``accumulations`` the non-zero weights times the time steps in each event's mask (a zero
    feature's weights are added at every step; a silent neuron's at none, as with zero-skip). State traffic is
    unchanged. Padded frames are 0."""
    net = model.network
    if trace is None:
        trace = run_batch(model, utterances)
    B, F, T = len(trace.lengths), int(trace.lengths.max()), net.time_steps
    active = (np.arange(F)[None, :] < trace.lengths[:, None]).astype(np.int64)
    out = {k: v.copy() for k, v in trace.counters.items()}
    mats = [(lw.w_in, lw.w_rec) for lw in model.layers] + [(model.w_out, None)]
    for l, (w_ff, w_rec) in enumerate(mats):
        n_out = w_ff.shape[1]
        sources = w_ff.shape[0] + (0 if w_rec is None else w_rec.shape[0])
        out["in_events"][:, :, l] = w_ff.shape[0]
        out["rec_events"][:, :, l] = 0 if w_rec is None else w_rec.shape[0]
        out["weight_reads"][:, :, l] = sources * n_out
        out["nz_weight_reads"][:, :, l] = np.count_nonzero(w_ff) + (0 if w_rec is None else np.count_nonzero(w_rec))
        if l == 0:   # the zero features' rows are added too, at every step
            x = np.zeros((B, F, net.n_features), dtype=np.int64)
            for b, u in enumerate(utterances):
                x[b, :len(u)] = np.asarray(u)
            out["accumulations"][:, :, 0] += ((x == 0) @ np.count_nonzero(w_ff, axis=1)) * T
        for k in out:
            out[k][:, :, l] *= active
    return out


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
