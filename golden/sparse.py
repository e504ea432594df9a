"""The weight format of the configurable core (``rtl/core.py``): per-lane lists in row segments, what is stored,
what it costs.

A weight matrix ``W`` of ``R`` rows (sources) and ``N`` columns (outputs) is cut, for ``P`` processing elements
(lanes), into ``K = ceil(N / P)`` chunks of ``P`` consecutive outputs; lane ``p`` owns the outputs ``k*P + p``. For
each row ``r`` and lane ``p`` the **lane list** holds the lane's non-zero weights of the row with their chunk ids,
in ascending chunk order::

    list(r, p) = [(k, W[r, k*P + p]) for k in 0 .. K-1 if W[r, k*P + p] != 0]      count(r, p) = its length

Row ``r`` owns a **segment** of ``depth(r) = max_p count(r, p)`` consecutive words of the weight memory from
address ``base(r)``; word ``base(r) + j`` holds, in lane ``p``, entry ``j`` of ``list(r, p)`` (``{chunk id,
weight}``), or a padding entry ``{0, 0}`` past the list's end. Each lane has its own memory (the lane slice of the
words), so the lanes read different addresses at once. The index memory holds per row ``(base, count(r, 0..P-1))``.
Matrices follow each other in the order ``w_in[0], w_rec[0], w_in[1], w_rec[1], ..., w_out`` in both memories; a
matrix's first row entry is its **index base** (a configuration register).

An event on row ``r`` costs lane ``p`` one read per entry of ``list(r, p)``: each lane walks its own list, of its
own queue of events, independently of the others, so a stage costs about the longest lane's total (unstructured
sparsity at full value, not rounded up to a block per chunk); a row with no weight costs nothing past its scan.

:func:`format_bits` counts the bits of this format and of the alternatives it was chosen against (rtl/README.md):
block-sparse rows (a block = the P weights of one row for one chunk, only non-empty blocks stored, an event costing
one cycle per stored block) and the dense memory.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .arith import ceil_div
from .model import Model
from .params import HardwareParams, NetworkParams, ParamError

__all__ = ["SparseMatrix", "SparseWeights", "compress", "lane_counts", "row_blocks", "matrix_names", "matrix_rows",
           "max_chunks", "chunk_bits", "count_bits", "word_addr_bits", "index_bits_per_row", "entry_bits",
           "word_bits", "format_bits", "memory_bits", "check_capacity"]


def _bits(n_values: int) -> int:
    """Bits to write any of ``n_values`` distinct values (at least 1)."""
    return max(1, (n_values - 1).bit_length())


def max_chunks(hw: HardwareParams) -> int:
    """Most chunks any matrix can have on this hardware (its widest layer or readout)."""
    return ceil_div(max(hw.max_neurons, hw.max_classes), hw.pe_count)


def chunk_bits(hw: HardwareParams) -> int:
    return _bits(max_chunks(hw))


def count_bits(hw: HardwareParams) -> int:
    """One lane's count: 0 .. max chunks."""
    return _bits(max_chunks(hw) + 1)


def word_addr_bits(hw: HardwareParams) -> int:
    return _bits(hw.weight_words)


def index_bits_per_row(hw: HardwareParams) -> int:
    """One index entry: ``base`` (a weight-memory address) and ``P`` counts (0 .. max chunks each)."""
    return word_addr_bits(hw) + hw.pe_count * count_bits(hw)


def entry_bits(hw: HardwareParams) -> int:
    """One lane's entry of a word: the chunk id and the weight."""
    return chunk_bits(hw) + hw.weight_bits


def word_bits(hw: HardwareParams) -> int:
    """One weight-memory word: ``P`` lane entries."""
    return hw.pe_count * entry_bits(hw)


def matrix_names(net: NetworkParams) -> list:
    """``in0, rec0, in1, rec1, ..., out``: the order of the matrices in both memories."""
    return [n for l in range(len(net.layers)) for n in (f"in{l}", f"rec{l}")] + ["out"]


def matrix_rows(net: NetworkParams) -> dict:
    rows = {}
    for l, lp in enumerate(net.layers):
        rows[f"in{l}"], rows[f"rec{l}"] = net.fan_in(l), lp.size
    rows["out"] = net.layers[-1].size
    return rows


def _arrays(model: Model) -> dict:
    out = {}
    for l, lw in enumerate(model.layers):
        out[f"in{l}"], out[f"rec{l}"] = lw.w_in, lw.w_rec
    out["out"] = model.w_out
    return out


def _blocked(w: np.ndarray, P: int) -> np.ndarray:
    """``w`` (R, N) as (R, K, P), zero-padded."""
    R, N = w.shape
    K = ceil_div(N, P)
    out = np.zeros((R, K * P), dtype=np.int64)
    out[:, :N] = w
    return out.reshape(R, K, P)


def lane_counts(model: Model, P: int, all_blocks: bool = False) -> dict:
    """Entries per row and lane: matrix name -> int64 array (R, P). ``all_blocks``: every weight stored, zeros
    too (the dense baseline's image: ``K`` entries in every lane)."""
    out = {}
    for name, w in _arrays(model).items():
        blk = _blocked(np.asarray(w, dtype=np.int64), P)
        out[name] = (np.full((blk.shape[0], P), blk.shape[1], dtype=np.int64) if all_blocks
                     else np.count_nonzero(blk, axis=1).astype(np.int64))
    return out


def row_blocks(model: Model, P: int) -> dict:
    """The block-sparse alternative's cost: non-empty blocks per row. Matrix name -> int64 array (R,)."""
    return {name: np.count_nonzero(_blocked(w, P), axis=2).astype(bool).sum(axis=1).astype(np.int64)
            for name, w in _arrays(model).items()}


@dataclass(frozen=True)
class SparseMatrix:
    """One matrix in the format: ``base`` and ``count`` (P lanes) per row, ``chunk`` and ``weights`` per word and
    lane (words numbered from ``first_word``, this matrix's first address in the weight memory)."""

    name: str
    rows: int
    cols: int
    chunks: int
    index_base: int
    first_word: int
    base: np.ndarray      # (rows,) weight-memory address of each row's first word
    count: np.ndarray     # (rows, P) entries of each row's lane lists
    chunk: np.ndarray     # (words, P) chunk id of each entry (0: padding)
    weights: np.ndarray   # (words, P) int64 (0: padding)

    @property
    def words(self) -> int:
        return int(len(self.chunk))


@dataclass(frozen=True)
class SparseWeights:
    """A model's weights in the format for ``P`` lanes."""

    P: int
    matrices: dict        # name -> SparseMatrix, in memory order

    @property
    def words(self) -> int:
        return sum(m.words for m in self.matrices.values())

    @property
    def entries(self) -> int:
        """Entries that are not padding (the weights stored)."""
        return sum(int(m.count.sum()) for m in self.matrices.values())

    @property
    def index_rows(self) -> int:
        return sum(m.rows for m in self.matrices.values())

    def dense(self, name: str) -> np.ndarray:
        """The matrix ``name`` rebuilt from its lane lists (the inverse of :func:`compress`)."""
        m = self.matrices[name]
        w = np.zeros((m.rows, m.chunks, self.P), dtype=np.int64)
        for r in range(m.rows):
            for p in range(self.P):
                for a in range(int(m.base[r]), int(m.base[r] + m.count[r, p])):
                    w[r, int(m.chunk[a - m.first_word, p]), p] = m.weights[a - m.first_word, p]
        return w.reshape(m.rows, -1)[:, :m.cols]


def compress(model: Model, P: int, all_blocks: bool = False) -> SparseWeights:
    """``model``'s weights in the format (matrices and words in memory order). ``all_blocks``: store every
    weight, zeros too (the dense baseline's image)."""
    mats, index_base, first = {}, 0, 0
    for name, w in _arrays(model).items():
        blk = _blocked(np.asarray(w, dtype=np.int64), P)
        R, K, _ = blk.shape
        keep = np.ones(blk.shape, dtype=bool) if all_blocks else blk != 0       # (R, K, P)
        count = keep.sum(axis=1).astype(np.int64)                             # (R, P)
        depth = count.max(axis=1) if R else np.zeros(0, dtype=np.int64)
        base = first + np.concatenate([[0], np.cumsum(depth)[:-1]]).astype(np.int64)
        words = int(depth.sum())
        chunk = np.zeros((words, P), dtype=np.int64)
        weights = np.zeros((words, P), dtype=np.int64)
        rank = np.cumsum(keep, axis=1) - 1                                    # entry of (r, k, p) in its list
        rr, kk, pp = np.nonzero(keep)
        addr = base[rr] - first + rank[rr, kk, pp]
        chunk[addr, pp] = kk
        weights[addr, pp] = blk[rr, kk, pp]
        mats[name] = SparseMatrix(name, R, w.shape[1], K, index_base, first, base, count, chunk, weights)
        index_base += R
        first += words
    return SparseWeights(P, mats)


def format_bits(model: Model, hw: HardwareParams) -> dict:
    """Bits that ``model`` needs on ``hw`` (its ``P``) in the chosen format and in two alternatives.

    ``lane_lists`` (chosen): ``weights`` = words x P x weight_bits (padding included); ``weight_index`` = words x P
    x chunk id bits + index rows x (base + P count bits); ``words`` = the weight-memory words used.
    ``block_sparse``: only non-empty blocks of P weights stored, each with a chunk id; per row a base and a count.
    ``dense``: every block stored, no index (``rtl/accel.py``'s memory).
    """
    P, wb = hw.pe_count, hw.weight_bits
    sw = compress(model, P)
    rows = sw.index_rows
    ck = chunk_bits(hw)
    blocks = sum(int(v.sum()) for v in row_blocks(model, P).values())
    dense_blocks = sum(m.rows * m.chunks for m in sw.matrices.values())
    block_index = _bits(max(1, blocks)) + _bits(max_chunks(hw) + 1)
    out = {
        "lane_lists": {"weights": sw.words * P * wb,
                       "weight_index": sw.words * P * ck + rows * index_bits_per_row(hw),
                       "words": sw.words, "entries": sw.entries},
        "block_sparse": {"weights": blocks * P * wb, "weight_index": blocks * ck + rows * block_index,
                         "words": blocks, "entries": blocks * P},
        "dense": {"weights": dense_blocks * P * wb, "weight_index": 0, "words": dense_blocks,
                  "entries": dense_blocks * P},
    }
    for v in out.values():
        v["total"] = v["weights"] + v["weight_index"]
    return out


def memory_bits(model: Model, hw: HardwareParams) -> dict:
    """The chosen format's bits of ``model`` on ``hw``: ``weights``, ``weight_index``, ``total``, ``words``."""
    return format_bits(model, hw)["lane_lists"]


def check_capacity(model: Model, hw: HardwareParams, all_blocks: bool = False) -> SparseWeights:
    """Raise :class:`ParamError` naming the field when ``model``'s weights do not fit ``hw``'s memories."""
    sw = compress(model, hw.pe_count, all_blocks)
    if sw.index_rows > hw.index_rows:
        raise ParamError(f"the model has {sw.index_rows} weight rows (sources of every matrix); "
                         f"hardware.index_rows = {hw.index_rows}")
    if sw.words > hw.weight_words:
        raise ParamError(f"the model needs {sw.words} weight-memory words of {hw.pe_count} lane entries; "
                         f"hardware.weight_words = {hw.weight_words}")
    return sw
