"""A deliberately plain, event-by-event, pure-Python reference of :mod:`golden.network`'s update order.

It exists only so that the tests can compare the vectorized model with a second, *independent* formulation of
the specification (the module docstring of :mod:`golden.network`). To keep it independent it shares no
arithmetic, event or input-checking code with :mod:`golden.network`: it does not import :mod:`golden.arith`,
:mod:`golden.events` or :mod:`golden.network`, and it does not use the ``IntFormat`` properties of the parameter
classes (``state_format``, ``feature_format``). It reads only the plain fields of :mod:`golden.params` and the
weights of :class:`golden.model.Model`, and writes every operation out again, differently where it can:

* the leak is ``v - v // 2**k`` (Python's ``//`` on ints is floor division, i.e. the arithmetic shift);
* saturation takes the middle one of ``-(2**(b-1))``, ``v`` and ``2**(b-1) - 1`` (bounds computed from
  ``state_bits``);
* the events of a frame come from a plain loop over the sources (one event per distinct non-zero value);
* the input check is its own loop over the values.

No numpy arithmetic, no vectorization: Python integers only. It is slow.
"""
from __future__ import annotations

from .model import Model
from .params import ResetMode

__all__ = ["run_reference", "ReferenceInputError", "COUNTER_NAMES"]

#: The counters, by the names the specification gives them (tests check they are golden.network.COUNTERS).
COUNTER_NAMES = ("in_events", "rec_events", "weight_reads", "nz_weight_reads", "accumulations",
                 "state_reads", "state_writes")


class ReferenceInputError(ValueError):
    """Frames the reference refuses (wrong shape, type or range)."""


def _frames(model: Model, frames) -> list:
    """The frames as a list of lists of Python ints, checked against the network's feature width."""
    net = model.network
    try:
        rows = [list(r) for r in frames]
    except TypeError:
        raise ReferenceInputError("frames must be a sequence of frames") from None
    if len(rows) == 0:
        raise ReferenceInputError("frames: an utterance needs at least one frame")
    top = 2 ** net.feature_bits - 1
    out = []
    for f, row in enumerate(rows):
        if len(row) != net.n_features:
            raise ReferenceInputError(f"frame {f} has {len(row)} features, not {net.n_features}")
        values = []
        for value in row:
            kind = getattr(getattr(value, "dtype", None), "kind", None)
            if getattr(value, "ndim", 0) != 0 or not (isinstance(value, int) or kind in ("i", "u", "b")):
                raise ReferenceInputError(f"frame {f} holds {value!r}, not an integer")
            value = int(value)
            if value < 0 or value > top:
                raise ReferenceInputError(f"frame {f} holds {value}, outside the feature range 0..{top}")
            values.append(value)
        out.append(values)
    return out


def _leak(v: int, k: int) -> int:
    if k == 0:
        return v
    return v - v // 2 ** k


def _clamp(v: int, bits: int) -> int:
    """The middle one of (lowest, v, highest): v clamped to the signed ``bits``-bit range."""
    lowest = -(2 ** (bits - 1))
    highest = 2 ** (bits - 1) - 1
    return sorted((lowest, v, highest))[1]


def _events(activity: list, sources: int) -> list:
    """``activity[t][i]`` -> [(i, payload, mask)]: for each source i (ascending) and each distinct non-zero value
    (ascending), one event whose mask has bit t set where the source takes that value."""
    steps = len(activity)
    events = []
    for i in range(sources):
        values = []
        for t in range(steps):
            p = activity[t][i]
            if p != 0 and p not in values:
                values.append(p)
        for p in sorted(values):
            mask = 0
            for t in range(steps):
                if activity[t][i] == p:
                    mask += 2 ** t
            events.append((i, p, mask))
    return events


def run_reference(model: Model, frames) -> dict:
    """Returns ``{"spikes": [layer][f][t][j], "readout": [f][c], "decision": int, "counters": [f][layer][name]}``."""
    net = model.network
    x = _frames(model, frames)
    T, L = net.time_steps, len(net.layers)
    w_in = [lw.w_in.tolist() for lw in model.layers]
    w_rec = [lw.w_rec.tolist() for lw in model.layers]
    w_out = model.w_out.tolist()
    v = [[0] * lp.size for lp in net.layers]
    s_prev = [[[0] * lp.size for _ in range(T)] for lp in net.layers]
    u = [0] * net.readout.size
    out = {"spikes": [[] for _ in range(L)], "readout": [], "counters": []}

    def integrate(events, weights, shift, acc, cnt, kind):
        for index, payload, mask in events:
            row = weights[index]
            cnt[kind] += 1
            steps = [t for t in range(T) if mask // 2 ** t % 2 == 1]
            for j, w in enumerate(row):
                cnt["weight_reads"] += 1
                if w == 0:
                    continue
                cnt["nz_weight_reads"] += 1
                for t in steps:
                    acc[t][j] += w * payload * 2 ** shift
                    cnt["accumulations"] += 1

    for f in range(len(x)):
        frame_counts = []
        activity = [list(x[f]) for _ in range(T)]
        for l, lp in enumerate(net.layers):
            cnt = dict.fromkeys(COUNTER_NAMES, 0)
            acc = [[0] * lp.size for _ in range(T)]
            integrate(_events(activity, len(w_in[l])), w_in[l], lp.in_shift, acc, cnt, "in_events")
            integrate(_events(s_prev[l], lp.size), w_rec[l], lp.rec_shift, acc, cnt, "rec_events")
            spikes = [[0] * lp.size for _ in range(T)]
            for j in range(lp.size):
                cnt["state_reads"] += 1
                vj = v[l][j]
                for t in range(T):
                    vj = _clamp(_leak(vj, lp.leak_shift) + acc[t][j], lp.state_bits)
                    # fire: count the thresholds reached, one at a time, up to spike_levels (no division)
                    level = 0
                    while level < lp.spike_levels and vj >= (level + 1) * lp.threshold:
                        level += 1
                    if level > 0:
                        spikes[t][j] = level
                        if lp.reset == ResetMode.SUBTRACT:
                            vj -= level * lp.threshold
                        elif lp.reset == ResetMode.ZERO:
                            vj = 0
                        else:  # pragma: no cover - validate() admits only the two
                            raise ValueError(f"unknown reset {lp.reset!r}")
                v[l][j] = vj
                cnt["state_writes"] += 1
            s_prev[l] = spikes
            out["spikes"][l].append(spikes)
            activity = spikes
            frame_counts.append(cnt)
        cnt = dict.fromkeys(COUNTER_NAMES, 0)
        acc = [[0] * net.readout.size for _ in range(T)]
        integrate(_events(activity, len(w_out)), w_out, net.readout.in_shift, acc, cnt, "in_events")
        for c in range(net.readout.size):
            cnt["state_reads"] += 1
            total = 0
            for t in range(T):
                total += acc[t][c]
            u[c] = _clamp(u[c] + total, net.readout.state_bits)
            cnt["state_writes"] += 1
        out["readout"].append(list(u))
        frame_counts.append(cnt)
        out["counters"].append(frame_counts)
    best = 0
    for c, value in enumerate(u):
        if value > u[best]:
            best = c
    out["decision"] = best
    return out
