"""The block-sparse weight format of the configurable core (``rtl/core.py``): what is stored, what it costs.

A weight matrix ``W`` of ``R`` rows (sources) and ``N`` columns (outputs) is cut, for ``P`` processing elements, into
``K = ceil(N / P)`` chunks of ``P`` consecutive outputs. A **block** is the ``P`` weights of one row for one chunk::

    block(r, k) = W[r, k*P : k*P + P]        (lanes past N are 0)

Only blocks holding a non-zero weight are **stored**. Each stored block is one word of the weight memory: its chunk
id ``k`` and its ``P`` weights. The blocks of a row are contiguous, in ascending chunk order; the row's entry in the
index memory is ``(base, count)``: the address of its first stored block and how many it has (0: an empty row).
Matrices follow each other in the order ``w_in[0], w_rec[0], w_in[1], w_rec[1], ..., w_out`` in both memories; a
matrix's first row entry is its **index base** (a configuration register).

An event on row ``r`` costs one weight-memory read per stored block of the row (and none when the row is empty):
the hardware walks ``base .. base + count - 1`` and adds each block into the accumulators of chunk ``k``.

:func:`format_bits` counts the bits of this format and of the alternatives it was chosen against (rtl/README.md).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .arith import ceil_div
from .model import Model
from .params import HardwareParams, NetworkParams, ParamError

__all__ = ["SparseMatrix", "SparseWeights", "compress", "row_blocks", "matrix_names", "matrix_rows",
           "lane_list_rows", "max_chunks", "chunk_bits", "count_bits", "block_addr_bits", "index_bits_per_row", "block_word_bits",
           "format_bits"]


def _bits(n_values: int) -> int:
    """Bits to write any of ``n_values`` distinct values (at least 1)."""
    return max(1, (n_values - 1).bit_length())


def max_chunks(hw: HardwareParams) -> int:
    """Most chunks any matrix can have on this hardware (its widest layer or readout)."""
    return ceil_div(max(hw.max_neurons, hw.max_classes), hw.pe_count)


def chunk_bits(hw: HardwareParams) -> int:
    return _bits(max_chunks(hw))


def count_bits(hw: HardwareParams) -> int:
    return _bits(max_chunks(hw) + 1)


def block_addr_bits(hw: HardwareParams) -> int:
    return _bits(hw.weight_blocks)


def index_bits_per_row(hw: HardwareParams) -> int:
    """One index entry: ``base`` (a weight-memory address) and ``count`` (0 .. max chunks)."""
    return block_addr_bits(hw) + count_bits(hw)


def block_word_bits(hw: HardwareParams) -> int:
    """One weight-memory word: the chunk id and ``P`` weights."""
    return chunk_bits(hw) + hw.pe_count * hw.weight_bits


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


def row_blocks(model: Model, P: int) -> dict:
    """Stored blocks per row: matrix name -> int64 array (R,)."""
    return {name: np.count_nonzero(_blocked(w, P), axis=2).astype(bool).sum(axis=1).astype(np.int64)
            for name, w in _arrays(model).items()}


@dataclass(frozen=True)
class SparseMatrix:
    """One matrix in the format: ``base``/``count`` per row, ``chunk`` and ``weights`` (P lanes) per stored block
    (blocks numbered from ``first_block``, this matrix's first address in the weight memory)."""

    name: str
    rows: int
    cols: int
    chunks: int
    index_base: int
    first_block: int
    base: np.ndarray      # (rows,) weight-memory address of each row's first block
    count: np.ndarray     # (rows,) stored blocks of each row
    chunk: np.ndarray     # (blocks,) chunk id of each stored block
    weights: np.ndarray   # (blocks, P) int64

    @property
    def blocks(self) -> int:
        return int(len(self.chunk))


@dataclass(frozen=True)
class SparseWeights:
    """A model's weights in the block-sparse format for ``P`` lanes."""

    P: int
    matrices: dict        # name -> SparseMatrix, in memory order

    @property
    def blocks(self) -> int:
        return sum(m.blocks for m in self.matrices.values())

    @property
    def index_rows(self) -> int:
        return sum(m.rows for m in self.matrices.values())

    def dense(self, name: str) -> np.ndarray:
        """The matrix ``name`` rebuilt from its blocks (the inverse of :func:`compress`)."""
        m = self.matrices[name]
        w = np.zeros((m.rows, m.chunks, self.P), dtype=np.int64)
        for r in range(m.rows):
            for b in range(int(m.base[r]), int(m.base[r] + m.count[r])):
                w[r, int(m.chunk[b - m.first_block])] = m.weights[b - m.first_block]
        return w.reshape(m.rows, -1)[:, :m.cols]


def compress(model: Model, P: int, all_blocks: bool = False) -> SparseWeights:
    """``model``'s weights in the block-sparse format (matrices and blocks in memory order). ``all_blocks``:
    store every block, empty ones too (the dense baseline's image)."""
    mats, index_base, first = {}, 0, 0
    for name, w in _arrays(model).items():
        blk = _blocked(np.asarray(w, dtype=np.int64), P)
        R, K, _ = blk.shape
        keep = (np.count_nonzero(blk, axis=2) > 0) | all_blocks  # (R, K)
        count = keep.sum(axis=1).astype(np.int64)
        base = first + np.concatenate([[0], np.cumsum(count)[:-1]]).astype(np.int64)
        rr, kk = np.nonzero(keep)                              # row-major: rows ascending, chunks ascending
        mats[name] = SparseMatrix(name, R, w.shape[1], K, index_base, first, base, count,
                                  kk.astype(np.int64), blk[rr, kk].astype(np.int64))
        index_base += R
        first += len(rr)
    return SparseWeights(P, mats)


def lane_list_rows(model: Model, P: int) -> dict:
    """The alternative format's cost per row: each lane keeps a list of its non-zero weights with their chunk
    ids, and an event costs the longest lane list of its row. Matrix name -> int64 array (R,)."""
    return {name: np.count_nonzero(_blocked(w, P), axis=1).max(axis=1).astype(np.int64)
            for name, w in _arrays(model).items()}


def format_bits(model: Model, hw: HardwareParams) -> dict:
    """Bits that ``model`` needs on ``hw`` (its ``P``) in the chosen format and in two alternatives.

    ``block_sparse`` (chosen): ``weights`` = stored blocks x P x weight_bits; ``weight_index`` = stored blocks x
    chunk id bits + index rows x (base + count bits).
    ``dense``: every block stored, no index (``rtl/accel.py``'s memory).
    ``lane_lists``: each lane keeps its own list of (weight, chunk id) of its non-zero weights, per row a base and
    a length per lane's list (unstructured sparsity at full value; an event costs the longest lane list).
    """
    P, wb = hw.pe_count, hw.weight_bits
    sw = compress(model, P)
    rows = sw.index_rows
    blocks = sw.blocks
    dense_blocks = sum(m.rows * m.chunks for m in sw.matrices.values())
    nnz = sum(int(np.count_nonzero(m.weights)) for m in sw.matrices.values())
    ck = chunk_bits(hw)
    out = {
        "block_sparse": {"weights": blocks * P * wb,
                         "weight_index": blocks * ck + rows * index_bits_per_row(hw),
                         "blocks": blocks},
        "dense": {"weights": dense_blocks * P * wb, "weight_index": 0, "blocks": dense_blocks},
    }
    # lane lists: per row, a base and P list lengths
    len_bits = _bits(max_chunks(hw) + 1)
    out["lane_lists"] = {"weights": nnz * wb, "weight_index": nnz * ck + rows * (_bits(max(1, nnz)) + P * len_bits),
                         "blocks": None}
    for v in out.values():
        v["total"] = v["weights"] + v["weight_index"]
    return out


def check_capacity(model: Model, hw: HardwareParams, all_blocks: bool = False) -> SparseWeights:
    """Raise :class:`ParamError` naming the field when ``model``'s weights do not fit ``hw``'s memories."""
    sw = compress(model, hw.pe_count, all_blocks)
    if sw.index_rows > hw.index_rows:
        raise ParamError(f"the model has {sw.index_rows} weight rows (sources of every matrix); "
                         f"hardware.index_rows = {hw.index_rows}")
    if sw.blocks > hw.weight_blocks:
        raise ParamError(f"the model needs {sw.blocks} stored weight blocks of {hw.pe_count}; "
                         f"hardware.weight_blocks = {hw.weight_blocks}")
    return sw
