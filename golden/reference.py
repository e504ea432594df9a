"""A deliberately plain, event-by-event, pure-Python reference of :mod:`golden.network`'s update order.

No numpy arithmetic, no vectorization: Python integers, explicit event lists from
:func:`golden.events.frame_events`, the primitives of :mod:`golden.arith`. It is slow and exists only so that the
tests can compare the vectorized model with a second, independent formulation of the same docstring.
"""
from __future__ import annotations

from .arith import leak, saturate
from .events import frame_events
from .model import Model
from .network import COUNTERS, check_frames
from .params import ResetMode

__all__ = ["run_reference"]


def run_reference(model: Model, frames) -> dict:
    """Returns ``{"spikes": [layer][f][t][j], "readout": [f][c], "decision": int, "counters": [f][layer][name]}``."""
    net = model.network
    x = check_frames(model, frames).tolist()
    T, L = net.time_steps, len(net.layers)
    w_in = [lw.w_in.tolist() for lw in model.layers]
    w_rec = [lw.w_rec.tolist() for lw in model.layers]
    w_out = model.w_out.tolist()
    v = [[0] * lp.size for lp in net.layers]
    s_prev = [[[0] * lp.size for _ in range(T)] for lp in net.layers]
    u = [0] * net.readout.size
    out = {"spikes": [[] for _ in range(L)], "readout": [], "counters": []}

    def integrate(events, weights, shift, acc, cnt, rec):
        for e in events:
            row = weights[e.index]
            cnt["rec_events" if rec else "in_events"] += 1
            for j, w in enumerate(row):
                cnt["weight_reads"] += 1
                if w != 0:
                    cnt["nz_weight_reads"] += 1
                for t in range(T):
                    if e.mask >> t & 1:
                        acc[t][j] += (w * e.payload) * (1 << shift)
                        if w != 0:
                            cnt["accumulations"] += 1

    for f in range(len(x)):
        frame_counts = []
        activity = [list(x[f]) for _ in range(T)]
        for l, lp in enumerate(net.layers):
            cnt = dict.fromkeys(COUNTERS, 0)
            acc = [[0] * lp.size for _ in range(T)]
            integrate(frame_events(activity), w_in[l], lp.in_shift, acc, cnt, rec=False)
            integrate(frame_events(s_prev[l]), w_rec[l], lp.rec_shift, acc, cnt, rec=True)
            spikes = [[0] * lp.size for _ in range(T)]
            for j in range(lp.size):
                cnt["state_reads"] += 1
                vj = v[l][j]
                for t in range(T):
                    vj = leak(vj, lp.leak_shift)
                    vj = saturate(vj + acc[t][j], lp.state_format)
                    if vj >= lp.threshold:
                        spikes[t][j] = 1
                        vj = vj - lp.threshold if lp.reset is ResetMode.SUBTRACT else 0
                v[l][j] = vj
                cnt["state_writes"] += 1
            s_prev[l] = spikes
            out["spikes"][l].append(spikes)
            activity = spikes
            frame_counts.append(cnt)
        cnt = dict.fromkeys(COUNTERS, 0)
        acc = [[0] * net.readout.size for _ in range(T)]
        integrate(frame_events(activity), w_out, net.readout.in_shift, acc, cnt, rec=False)
        for c in range(net.readout.size):
            cnt["state_reads"] += 1
            u[c] = saturate(u[c] + sum(acc[t][c] for t in range(T)), net.readout.state_format)
            cnt["state_writes"] += 1
        out["readout"].append(list(u))
        frame_counts.append(cnt)
        out["counters"].append(frame_counts)
    best = 0
    for c in range(1, len(u)):
        if u[c] > u[best]:
            best = c
    out["decision"] = best
    return out
