"""The configuration interface of the configurable core (``rtl/core.py``): its register and memory map, the load
image of a model (the writes that make the core run it), and the decoder of an image (the core's configuration
unit, in Python: what the hardware must hold after the writes).

Every write is ``(addr, data)`` on the core's ``cfg`` stream (valid / ready: the core takes no write while it
computes a frame, so a write is held back, never dropped). The address is ``region << OFFSET_BITS | offset``:

==========  ==========================================  =================================================
region      offset                                      data
==========  ==========================================  =================================================
0 REGS      a register below                            the value, in the low bits
1 INDEX     row entry (``index_base`` of a matrix + r)  ``base | count_p << (word_addr_bits + p * count_bits)``
                                                        for each lane ``p``
2 BLOCKS    weight-memory word address                  lane ``p``'s entry at ``p * entry_bits``: ``chunk |
                                                        weight << chunk_bits`` (``weight_bits`` two's
                                                        complement)
==========  ==========================================  =================================================

Registers (``l`` = layer): ``0x00`` CLEAR (any write clears the sticky flags), ``0x01`` N_LAYERS, ``0x02``
TIME_STEPS, ``0x03`` N_FEATURES, ``0x04`` N_CLASSES, ``0x05`` READOUT_BITS, ``0x06`` READOUT_SHIFT, ``0x07``
OUT_INDEX_BASE, and per layer at ``0x10 + 0x10 * l``: ``+0`` SIZE, ``+1`` STATE_BITS, ``+2`` THRESHOLD, ``+3``
LEAK_SHIFT, ``+4`` RESET (0 subtract, 1 zero), ``+5`` IN_SHIFT, ``+6`` REC_SHIFT, ``+7`` IN_INDEX_BASE, ``+8``
REC_INDEX_BASE, ``+9`` SPIKE_LEVELS (``D``: 1 binary spikes, up to ``max_spike_level``; ``D > 1`` needs
TIME_STEPS = 1). Every register starts at 0 (so a core that was never configured reports BAD_CONFIG).

Status flags (bit: name), on the ``status`` port and in every result word:

* 0 BAD_ADDRESS (sticky): a write to an address that is not in the map; it is ignored.
* 1 BAD_VALUE (sticky): a register value wider than the register; it is ignored.
* 2 BAD_POINTER (sticky): an index entry whose segment runs past the weight memory (base + the largest of its
  counts) or one of whose counts exceeds the chunks of any matrix; it is ignored.
* 3 BAD_CHUNK (sticky): while computing, a lane's entry named a chunk at or past ``ceil(N / P)`` of its matrix's
  ``N`` outputs; it was skipped. (An entry of a lane past ``N`` in the last chunk is added to an accumulator no
  neuron reads: harmless, and only a hand-made image has one.)
* 4 BAD_CONFIG (not sticky): the registers do not describe a network this core runs (:func:`config_errors`
  names which). A frame taken while BAD_CONFIG or any sticky flag is set is not computed: its result word says so.
"""
from __future__ import annotations

import numpy as np

from .arith import ceil_div
from .model import Model, LayerWeights
from .params import HardwareParams, LayerParams, NetworkParams, ParamError, ReadoutParams, ResetMode
from .sparse import (SparseWeights, check_capacity, chunk_bits, count_bits, entry_bits, index_bits_per_row,
                     matrix_names, max_chunks, word_addr_bits, word_bits)

__all__ = ["REGION_REGS", "REGION_INDEX", "REGION_BLOCKS", "GLOBAL_REGS", "LAYER_REGS", "FLAGS", "offset_bits",
           "addr_bits", "data_bits", "reg_addr", "register_widths", "check_fits", "load_image", "registers_of",
           "decode_image", "config_errors", "model_from_image"]

REGION_REGS, REGION_INDEX, REGION_BLOCKS = 0, 1, 2
GLOBAL_REGS = {"CLEAR": 0x00, "N_LAYERS": 0x01, "TIME_STEPS": 0x02, "N_FEATURES": 0x03, "N_CLASSES": 0x04,
               "READOUT_BITS": 0x05, "READOUT_SHIFT": 0x06, "OUT_INDEX_BASE": 0x07}
LAYER_REGS = {"SIZE": 0, "STATE_BITS": 1, "THRESHOLD": 2, "LEAK_SHIFT": 3, "RESET": 4, "IN_SHIFT": 5,
              "REC_SHIFT": 6, "IN_INDEX_BASE": 7, "REC_INDEX_BASE": 8, "SPIKE_LEVELS": 9}
FLAGS = ("BAD_ADDRESS", "BAD_VALUE", "BAD_POINTER", "BAD_CHUNK", "BAD_CONFIG")
LAYER_STRIDE = 0x10


def _bits(n_values: int) -> int:
    return max(1, (n_values - 1).bit_length())


def offset_bits(hw: HardwareParams) -> int:
    return max(8, _bits(hw.index_rows), word_addr_bits(hw))


def addr_bits(hw: HardwareParams) -> int:
    return 2 + offset_bits(hw)


def data_bits(hw: HardwareParams) -> int:
    return max(32, word_bits(hw), index_bits_per_row(hw))


def reg_addr(name: str, layer: int | None = None) -> int:
    """The offset of register ``name`` (a layer register needs its ``layer``)."""
    if layer is None:
        return GLOBAL_REGS[name]
    return LAYER_STRIDE * (layer + 1) + LAYER_REGS[name]


def register_widths(hw: HardwareParams) -> dict:
    """Register name -> its width in bits (a wider value sets BAD_VALUE)."""
    w = {"CLEAR": 32, "N_LAYERS": _bits(hw.max_layers + 1), "TIME_STEPS": _bits(hw.time_steps + 1),
         "N_FEATURES": _bits(hw.max_features + 1), "N_CLASSES": _bits(hw.max_classes + 1),
         "READOUT_BITS": _bits(hw.max_state_bits + 1), "READOUT_SHIFT": _bits(hw.max_shift + 1),
         "OUT_INDEX_BASE": _bits(hw.index_rows + 1),
         "SIZE": _bits(hw.max_neurons + 1), "STATE_BITS": _bits(hw.max_state_bits + 1),
         "THRESHOLD": hw.max_state_bits - 1, "LEAK_SHIFT": _bits(hw.max_state_bits), "RESET": 1,
         "IN_SHIFT": _bits(hw.max_shift + 1), "REC_SHIFT": _bits(hw.max_shift + 1),
         "IN_INDEX_BASE": _bits(hw.index_rows + 1), "REC_INDEX_BASE": _bits(hw.index_rows + 1),
         "SPIKE_LEVELS": _bits(hw.max_spike_level + 1)}
    return w


def check_fits(model: Model, hw: HardwareParams, all_blocks: bool = False) -> SparseWeights:
    """Raise :class:`ParamError` naming the field when ``model`` does not run on the configurable core ``hw``;
    return its weights in the core's format (:mod:`golden.sparse`)."""
    hw.validate()
    net = model.network
    hw.check(net)
    for l in range(len(net.layers) + 1):
        need = net.acc_bits(l)
        if need > hw.acc_bits:
            what = "readout" if l == len(net.layers) else f"layers[{l}]"
            raise ParamError(f"network.{what} needs {need}-bit accumulators (its exact sum range); "
                             f"hardware.acc_bits = {hw.acc_bits}")
    shifts = [("readout.in_shift", net.readout.in_shift)]
    for l, lp in enumerate(net.layers):
        shifts += [(f"layers[{l}].in_shift", lp.in_shift), (f"layers[{l}].rec_shift", lp.rec_shift)]
    for name, v in shifts:
        if v > hw.max_shift:
            raise ParamError(f"network.{name} = {v} does not fit this hardware (hardware.max_shift = {hw.max_shift})")
    return check_capacity(model, hw, all_blocks)


def registers_of(net: NetworkParams, sw: SparseWeights) -> dict:
    """The register values (name -> int; layer registers as ``NAME.l``) that describe ``net``."""
    regs = {"N_LAYERS": len(net.layers), "TIME_STEPS": net.time_steps, "N_FEATURES": net.n_features,
            "N_CLASSES": net.readout.size, "READOUT_BITS": net.readout.state_bits,
            "READOUT_SHIFT": net.readout.in_shift, "OUT_INDEX_BASE": sw.matrices["out"].index_base}
    for l, lp in enumerate(net.layers):
        vals = {"SIZE": lp.size, "STATE_BITS": lp.state_bits, "THRESHOLD": lp.threshold,
                "LEAK_SHIFT": lp.leak_shift, "RESET": int(lp.reset is ResetMode.ZERO), "IN_SHIFT": lp.in_shift,
                "REC_SHIFT": lp.rec_shift, "IN_INDEX_BASE": sw.matrices[f"in{l}"].index_base,
                "REC_INDEX_BASE": sw.matrices[f"rec{l}"].index_base, "SPIKE_LEVELS": lp.spike_levels}
        regs.update({f"{k}.{l}": v for k, v in vals.items()})
    return regs


def load_image(model: Model, hw: HardwareParams, all_blocks: bool = False) -> list:
    """The writes ``[(addr, data), ...]`` that configure the core ``hw`` to run ``model``: registers, then the
    index, then the weight words. Raises :class:`ParamError` (naming the field) when the model does not fit.
    ``all_blocks``: store every weight, zeros too (the dense baseline)."""
    sw = check_fits(model, hw, all_blocks)
    ob = offset_bits(hw)
    writes = [(REGION_REGS << ob | reg_addr("CLEAR"), 0)]
    for name, v in registers_of(model.network, sw).items():
        base, _, layer = name.partition(".")
        writes.append((REGION_REGS << ob | reg_addr(base, int(layer) if layer else None), int(v)))
    ab, ck, cb, eb, wb = word_addr_bits(hw), chunk_bits(hw), count_bits(hw), entry_bits(hw), hw.weight_bits
    lane = (1 << wb) - 1
    for m in sw.matrices.values():
        for r in range(m.rows):
            # an empty row's base is never read: 0 (its segment's address may be the word past a full memory,
            # which the base field cannot hold when the capacity is a power of two)
            entry = int(m.base[r]) if m.count[r].any() else 0
            for p, c in enumerate(m.count[r].tolist()):
                entry |= int(c) << (ab + p * cb)
            writes.append((REGION_INDEX << ob | m.index_base + r, entry))
    for m in sw.matrices.values():
        for a in range(m.words):
            word = 0
            for p, (k, w) in enumerate(zip(m.chunk[a].tolist(), m.weights[a].tolist())):
                word |= (int(k) | (int(w) & lane) << ck) << (p * eb)
            writes.append((REGION_BLOCKS << ob | m.first_word + a, word))
    return writes


def decode_image(writes, hw: HardwareParams) -> dict:
    """What the core holds after ``writes`` from reset: ``regs`` (name -> value; layer registers ``NAME.l``),
    ``index`` (index_rows, 1 + P) of (base, count per lane), ``words`` (weight_words, P, 2) of (chunk, weight)
    per lane and the sticky ``flags`` (set of names). The hardware's configuration unit must agree, write by write."""
    ob = offset_bits(hw)
    widths = register_widths(hw)
    names = {GLOBAL_REGS[n]: n for n in GLOBAL_REGS}
    for l in range(hw.max_layers):
        for n in LAYER_REGS:
            names[reg_addr(n, l)] = f"{n}.{l}"
    regs = {n: 0 for n in names.values() if n != "CLEAR"}
    P, wb, ck, ab, cb = hw.pe_count, hw.weight_bits, chunk_bits(hw), word_addr_bits(hw), count_bits(hw)
    eb = entry_bits(hw)
    index = np.zeros((hw.index_rows, 1 + P), dtype=np.int64)
    words = np.zeros((hw.weight_words, P, 2), dtype=np.int64)
    flags = set()
    db = data_bits(hw)
    for addr, data in writes:
        region, off = addr >> ob, addr & ((1 << ob) - 1)
        data &= (1 << db) - 1
        if region == REGION_REGS and off in names:
            n = names[off]
            if n == "CLEAR":
                flags.clear()
            elif data >> widths[n.partition(".")[0]]:
                flags.add("BAD_VALUE")
            else:
                regs[n] = data
        elif region == REGION_INDEX and off < hw.index_rows:
            base = data & ((1 << ab) - 1)
            counts = [data >> (ab + p * cb) & ((1 << cb) - 1) for p in range(P)]
            if data >> (ab + P * cb) or max(counts) > max_chunks(hw) or base + max(counts) > hw.weight_words:
                flags.add("BAD_POINTER")
            else:
                index[off] = [base] + counts
        elif region == REGION_BLOCKS and off < hw.weight_words:
            for p in range(P):
                e = data >> (p * eb)
                w = e >> ck & ((1 << wb) - 1)
                words[off, p] = (e & ((1 << ck) - 1), w - (1 << wb) if w >> (wb - 1) else w)
        else:
            flags.add("BAD_ADDRESS")
    return {"regs": regs, "index": index, "words": words, "flags": flags}


def config_errors(regs: dict, hw: HardwareParams) -> list:
    """Why the registers ``regs`` do not describe a network the core runs (empty: they do). The core's
    BAD_CONFIG flag is set exactly when this is not empty."""
    err = []

    def rng(name, lo, hi):
        if not lo <= regs[name] <= hi:
            err.append(f"{name} = {regs[name]} not in {lo}..{hi}")

    rng("N_LAYERS", 1, hw.max_layers)
    rng("TIME_STEPS", 1, hw.time_steps)
    rng("N_FEATURES", 1, hw.max_features)
    rng("N_CLASSES", 2, hw.max_classes)
    rng("READOUT_BITS", 2, hw.max_state_bits)
    rng("READOUT_SHIFT", 0, hw.max_shift)
    L = regs["N_LAYERS"]
    for l in range(min(max(L, 0), hw.max_layers)):
        rng(f"SIZE.{l}", 1, hw.max_neurons)
        rng(f"STATE_BITS.{l}", 2, hw.max_state_bits)
        sb = regs[f"STATE_BITS.{l}"]
        rng(f"THRESHOLD.{l}", 1, (1 << max(sb - 1, 0)) - 1)
        rng(f"LEAK_SHIFT.{l}", 0, sb - 1)
        rng(f"IN_SHIFT.{l}", 0, hw.max_shift)
        rng(f"REC_SHIFT.{l}", 0, hw.max_shift)
        fan_in = regs["N_FEATURES"] if l == 0 else regs[f"SIZE.{l - 1}"]
        rng(f"IN_INDEX_BASE.{l}", 0, hw.index_rows - fan_in)
        rng(f"REC_INDEX_BASE.{l}", 0, hw.index_rows - regs[f"SIZE.{l}"])
        rng(f"SPIKE_LEVELS.{l}", 1, hw.max_spike_level)
        if regs[f"SPIKE_LEVELS.{l}"] > 1 and regs["TIME_STEPS"] > 1:
            err.append(f"SPIKE_LEVELS.{l} = {regs[f'SPIKE_LEVELS.{l}']} with TIME_STEPS = {regs['TIME_STEPS']}: "
                       "multi-level spikes run at TIME_STEPS = 1")
    if 1 <= L <= hw.max_layers:
        rng("OUT_INDEX_BASE", 0, hw.index_rows - regs[f"SIZE.{L - 1}"])
    return err


def model_from_image(writes, hw: HardwareParams, template: Model) -> Model:
    """The model the core runs after ``writes`` (network from the registers, weights from the index and words);
    ``template`` gives what the core does not hold (front end, labels). Raises :class:`ParamError` when the
    image leaves a flag set or the registers are inconsistent."""
    st = decode_image(writes, hw)
    if st["flags"]:
        raise ParamError(f"the image sets {sorted(st['flags'])}")
    errs = config_errors(st["regs"], hw)
    if errs:
        raise ParamError("the image's registers are inconsistent: " + "; ".join(errs))
    r = st["regs"]
    L = r["N_LAYERS"]
    layers = tuple(LayerParams(size=r[f"SIZE.{l}"], state_bits=r[f"STATE_BITS.{l}"], threshold=r[f"THRESHOLD.{l}"],
                               leak_shift=r[f"LEAK_SHIFT.{l}"],
                               reset=ResetMode.ZERO if r[f"RESET.{l}"] else ResetMode.SUBTRACT,
                               in_shift=r[f"IN_SHIFT.{l}"], rec_shift=r[f"REC_SHIFT.{l}"],
                               spike_levels=r[f"SPIKE_LEVELS.{l}"]) for l in range(L))
    net = NetworkParams(n_features=r["N_FEATURES"], layers=layers,
                        readout=ReadoutParams(size=r["N_CLASSES"], state_bits=r["READOUT_BITS"],
                                              in_shift=r["READOUT_SHIFT"]),
                        feature_bits=template.network.feature_bits, time_steps=r["TIME_STEPS"],
                        weight_bits=hw.weight_bits).validate()
    P = hw.pe_count

    def matrix(base_reg, rows, cols):
        w = np.zeros((rows, ceil_div(cols, P) * P), dtype=np.int64)
        for i in range(rows):
            base, counts = st["index"][r[base_reg] + i, 0], st["index"][r[base_reg] + i, 1:]
            for p in range(P):
                for a in range(base, base + counts[p]):
                    k, v = st["words"][a, p]
                    if k * P + p < w.shape[1]:     # else the core skips it (BAD_CHUNK)
                        w[i, k * P + p] = v
        return w[:, :cols]

    lws = [LayerWeights(matrix(f"IN_INDEX_BASE.{l}", net.fan_in(l), lp.size),
                        matrix(f"REC_INDEX_BASE.{l}", lp.size, lp.size)) for l, lp in enumerate(layers)]
    w_out = matrix("OUT_INDEX_BASE", layers[-1].size, net.readout.size)
    return template.replace(network=net, layers=lws, w_out=w_out)


