"""Bit layouts shared by the RTL, the testbenches and the documentation: the weight memory map, the event word,
the input word and the output word. One definition, used on both sides of every port.

Weight memory (one word = ``P`` lanes of ``weight_bits``, lane ``p`` in bits ``[p*wb, (p+1)*wb)``)
-----------------------------------------------------------------------------------------------------
The matrices follow each other in the order ``w_in[0], w_rec[0], w_in[1], w_rec[1], ..., w_out``. A matrix of
``R`` rows (inputs) and ``N`` columns (outputs) takes ``K = ceil(N / P)`` chunks of ``R`` words, chunk-major::

    address(matrix, row r, chunk k) = base(matrix) + k * R + r
    lane p of that word              = W[r, k * P + p]          (0 where k * P + p >= N)

so that PE ``p`` owns the outputs ``k * P + p`` of chunk ``k``, and one word read serves all ``P`` PEs.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from golden.arith import ceil_div
from golden.model import Model
from golden.network import COUNTERS
from golden.params import HardwareParams, NetworkParams

__all__ = ["Matrix", "MemoryMap", "OutputLayout", "HW_COUNTERS", "ceil_div", "event_fields", "event_depth",
           "pack_features"]

#: counters on the output word: golden's (summed over the layers of one frame), then the hardware's own
HW_COUNTERS = COUNTERS + ("weight_words", "cycles")
COUNTER_BITS = 32


def event_fields(net: NetworkParams) -> dict:
    """The event memory's word: ``index`` (wide enough for any layer's sources), ``payload`` (a feature value or
    1), ``mask`` (one bit per time step), ``rec`` (1: a recurrent event). Field name -> width, low bits first."""
    index_bits = max(1, (max(net.n_features, max(lp.size for lp in net.layers)) - 1).bit_length())
    return {"index": index_bits, "payload": net.feature_bits, "mask": net.time_steps, "rec": 1}


def event_depth(net: NetworkParams) -> int:
    """Events one layer can produce in a frame: every source of the layer (feed-forward + recurrent), or of the
    readout; the dense mode reaches it."""
    return max([net.fan_in(l) + lp.size for l, lp in enumerate(net.layers)] + [net.layers[-1].size])


@dataclass(frozen=True)
class Matrix:
    name: str        # "in0", "rec0", ..., "out"
    rows: int
    cols: int
    chunks: int
    base: int

    @property
    def words(self) -> int:
        return self.rows * self.chunks


class MemoryMap:
    """Where each weight matrix lives in the weight memory; packs a :class:`Model` into memory words."""

    def __init__(self, net: NetworkParams, hw: HardwareParams):
        self.net, self.hw, self.P, self.wb = net, hw, hw.pe_count, hw.weight_bits
        mats, base = [], 0
        for l, lp in enumerate(net.layers):
            for name, rows in ((f"in{l}", net.fan_in(l)), (f"rec{l}", lp.size)):
                m = Matrix(name, rows, lp.size, ceil_div(lp.size, self.P), base)
                mats.append(m)
                base += m.words
        m = Matrix("out", net.layers[-1].size, net.readout.size, ceil_div(net.readout.size, self.P), base)
        mats.append(m)
        self.matrices = {m.name: m for m in mats}
        self.depth = base + m.words

    def words(self, model: Model) -> np.ndarray:
        """All memory words (python ints, ``P * weight_bits`` wide) for ``model``, address order."""
        if model.network != self.net:
            raise ValueError("the model's network differs from the one this memory map was built for")
        arrays = {}
        for l, lw in enumerate(model.layers):
            arrays[f"in{l}"], arrays[f"rec{l}"] = lw.w_in, lw.w_rec
        arrays["out"] = model.w_out
        out = []
        lane_mask = (1 << self.wb) - 1
        for name, m in self.matrices.items():
            w = np.zeros((m.rows, m.chunks * self.P), dtype=np.int64)
            w[:, :m.cols] = arrays[name]
            w = (w & lane_mask).reshape(m.rows, m.chunks, self.P)
            for k in range(m.chunks):
                for r in range(m.rows):
                    word = 0
                    for p in range(self.P):
                        word |= int(w[r, k, p]) << (p * self.wb)
                    out.append(word)
        assert len(out) == self.depth
        return out


def pack_features(frame, feature_bits: int) -> int:
    """An input frame as the input word's ``features`` field: feature ``i`` in bits ``[i*fb, (i+1)*fb)``."""
    word = 0
    for i, v in enumerate(np.asarray(frame).tolist()):
        word |= int(v) << (i * feature_bits)
    return word


class OutputLayout:
    """The output word of one frame, low bits first:

    ==========================  ========================================================================
    field                       bits
    ==========================  ========================================================================
    ``readout``                 ``C`` signed potentials of ``readout.state_bits``, class 0 lowest
    ``spikes{l}``               ``T * N_l`` bits per layer: bit ``t * N_l + j`` = neuron ``j`` fired at step ``t``
    counters                    :data:`HW_COUNTERS`, 32 bits each, in that order: golden's counters summed
                                over the layers of the frame, ``weight_words`` (memory words read) and
                                ``cycles`` (compute cycles of the frame, see :mod:`golden.cycles`)
    ==========================  ========================================================================
    """

    def __init__(self, net: NetworkParams):
        self.net = net
        fields = [("readout", net.readout.size * net.readout.state_bits)]
        fields += [(f"spikes{l}", net.time_steps * lp.size) for l, lp in enumerate(net.layers)]
        fields += [(c, COUNTER_BITS) for c in HW_COUNTERS]
        self.fields, off = {}, 0
        for name, width in fields:
            self.fields[name] = (off, width)
            off += width
        self.width = off

    def decode(self, word: int) -> dict:
        net = self.net
        get = {n: (word >> o) & ((1 << w) - 1) for n, (o, w) in self.fields.items()}
        rb = net.readout.state_bits
        readout = []
        for c in range(net.readout.size):
            u = get["readout"] >> (c * rb) & ((1 << rb) - 1)
            readout.append(u - (1 << rb) if u >> (rb - 1) else u)
        spikes = []
        for l, lp in enumerate(net.layers):
            bits = get[f"spikes{l}"]
            spikes.append(np.array([[bits >> (t * lp.size + j) & 1 for j in range(lp.size)]
                                    for t in range(net.time_steps)], dtype=np.uint8))
        return {"readout": np.array(readout, dtype=np.int64), "spikes": spikes,
                "counters": {c: get[c] for c in HW_COUNTERS}}
