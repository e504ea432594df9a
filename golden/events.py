"""Events: the form in which activity travels through the accelerator, and the specification of zero-skip.

An **event** is ``(index, payload, mask)``:

* ``index``: which input of the next layer (a feature number, or a neuron number);
* ``payload``: an unsigned integer, never 0. A binary spike has payload 1; an input feature is a graded event
  whose payload is the feature value; wider payloads (multi-level spikes, FATReLU activations) use the same
  field;
* ``mask``: one bit per time step of the frame (bit ``t`` for step ``t``), never 0. The activity of one source
  over the ``T`` time steps of a frame travels as ONE merged event when it has the same payload at every step
  where it is non-zero; one weight read then serves every step in the mask.

An event ``(i, p, m)`` adds ``W[i, j] * p`` to neuron ``j``'s accumulator of every time step ``t`` whose bit is set
in ``m`` (then scaled by the layer's power-of-two shift; see :mod:`golden.network`).

**Zero-skip** is defined by :func:`frame_events`: a source whose activity is zero at every step of the frame
produces no event, costs no weight read and no accumulation. Events leave in ascending ``index`` order (then
ascending payload), the order of a find-first-set scan over the activity vector.

The hardware's event word packs the fields as ``{mask, payload, index}`` (index in the low bits); see
:class:`EventFormat`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from .params import MAX_TIME_STEPS, ParamError

__all__ = ["Event", "EventFormat", "frame_events", "decode_events", "count_events", "full_mask"]


class Event(NamedTuple):
    index: int
    payload: int
    mask: int


def full_mask(time_steps: int) -> int:
    """The mask of an event present at every time step."""
    return (1 << time_steps) - 1


def frame_events(activity) -> list[Event]:
    """The events of one frame of activity (the zero-skip specification).

    Parameters
    ----------
    activity : array of shape (T, N), non-negative integers
        ``activity[t, i]`` is source ``i``'s payload at time step ``t`` (0: nothing).

    Returns
    -------
    list of Event
        For each source ``i`` (ascending) and each distinct non-zero value ``p`` it takes (ascending), one event
        whose mask has bit ``t`` set where ``activity[t, i] == p``. A source with the same payload at all its
        active steps (binary spikes, input features) gives exactly one merged event.
    """
    a = np.asarray(activity)
    if a.ndim != 2:
        raise ValueError(f"activity must have shape (time_steps, sources), not {a.shape}")
    if a.size and a.min() < 0:
        raise ValueError("activity must be non-negative")
    events = []
    T, N = a.shape
    for i in range(N):
        column = [int(a[t, i]) for t in range(T)]
        for p in sorted(set(column) - {0}):
            mask = 0
            for t in range(T):
                if column[t] == p:
                    mask |= 1 << t
            events.append(Event(i, p, mask))
    return events


def decode_events(events, time_steps: int, n_sources: int) -> np.ndarray:
    """Inverse of :func:`frame_events`: the (T, N) activity that the events stand for."""
    a = np.zeros((time_steps, n_sources), dtype=np.int64)
    for e in events:
        for t in range(time_steps):
            if e.mask >> t & 1:
                a[t, e.index] += e.payload
    return a


def count_events(activity: np.ndarray) -> np.ndarray:
    """Vectorized number of events per source, over any leading axes.

    ``activity`` has shape ``(..., T, N)``; the result has shape ``(..., N)`` and equals, source by source, the
    number of events :func:`frame_events` makes (distinct non-zero values across the T steps).
    """
    a = np.sort(np.asarray(activity), axis=-2)
    new = a != 0
    new[..., 1:, :] &= a[..., 1:, :] != a[..., :-1, :]
    return new.sum(axis=-2)


@dataclass(frozen=True)
class EventFormat:
    """The bit layout of an event word: ``index`` in bits ``[0, index_bits)``, then ``payload``, then ``mask``.

    =================  ==========================================
    bits               field
    =================  ==========================================
    ``[0, I)``         index (``I = index_bits``)
    ``[I, I+P)``       payload (``P = payload_bits``), unsigned
    ``[I+P, I+P+T)``   mask, bit ``t`` = time step ``t``
    =================  ==========================================
    """

    index_bits: int
    payload_bits: int
    time_steps: int

    def validate(self) -> "EventFormat":
        for name, lo, hi in (("index_bits", 1, 16), ("payload_bits", 1, 16), ("time_steps", 1, MAX_TIME_STEPS)):
            v = getattr(self, name)
            if not isinstance(v, int) or not lo <= v <= hi:
                raise ParamError(f"event_format.{name} must be in {lo}..{hi}, not {v!r}")
        return self

    @property
    def width(self) -> int:
        return self.index_bits + self.payload_bits + self.time_steps

    @classmethod
    def for_sources(cls, n_sources: int, payload_bits: int, time_steps: int) -> "EventFormat":
        return cls(max(1, (n_sources - 1).bit_length()), payload_bits, time_steps).validate()

    def pack(self, e: Event) -> int:
        if not (0 <= e.index < 1 << self.index_bits and 0 < e.payload < 1 << self.payload_bits
                and 0 < e.mask < 1 << self.time_steps):
            raise ValueError(f"{e} does not fit {self}")
        return e.index | e.payload << self.index_bits | e.mask << (self.index_bits + self.payload_bits)

    def unpack(self, word: int) -> Event:
        i = word & ((1 << self.index_bits) - 1)
        p = word >> self.index_bits & ((1 << self.payload_bits) - 1)
        m = word >> (self.index_bits + self.payload_bits) & ((1 << self.time_steps) - 1)
        return Event(i, p, m)
