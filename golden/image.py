"""The configuration interface of the configurable core (``rtl/core.py``): its register and memory map, the load
image of a model (the writes that make the core run it), and the decoder of an image (the core's configuration
unit, in Python: what the hardware must hold after the writes).

Every write is ``(addr, data)`` on the core's ``cfg`` stream (valid / ready: the core takes no write while it
computes a frame, so a write is held back, never dropped). The address is ``region << OFFSET_BITS | offset``:

==========  ==========================================  =================================================
region      offset                                      data
==========  ==========================================  =================================================
0 REGS      a register below                            the value, in the low bits
1 INDEX     row entry (``index_base`` of a matrix + r)  ``base | count << block_addr_bits``
2 BLOCKS    weight-memory address                       ``chunk | weights << chunk_bits``, lane ``p`` in
                                                        ``weight_bits`` two's complement at ``p * weight_bits``
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
* 2 BAD_POINTER (sticky): an index entry whose blocks run past the weight memory or whose count exceeds the
  chunks of any matrix; it is ignored.
* 3 BAD_CHUNK (sticky): while computing, a stored block named a chunk past its matrix's outputs; it was skipped.
* 4 BAD_CONFIG (not sticky): the registers do not describe a network this core runs (:func:`config_errors`
  names which). A frame taken while BAD_CONFIG or any sticky flag is set is not computed: its result word says so.
"""
from __future__ import annotations

import numpy as np

from .arith import ceil_div
from .model import Model, LayerWeights
from .params import HardwareParams, LayerParams, NetworkParams, ParamError, ReadoutParams, ResetMode
from .sparse import (SparseWeights, block_addr_bits, block_word_bits, check_capacity, chunk_bits, count_bits,
                     index_bits_per_row, matrix_names, max_chunks)

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
    return max(8, _bits(hw.index_rows), block_addr_bits(hw))


def addr_bits(hw: HardwareParams) -> int:
    return 2 + offset_bits(hw)


def data_bits(hw: HardwareParams) -> int:
    return max(32, block_word_bits(hw), index_bits_per_row(hw))


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
    return its weights in the block-sparse format."""
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
    index, then the blocks. Raises :class:`ParamError` (naming the field) when the model does not fit.
    ``all_blocks``: store the empty blocks too (the dense baseline)."""
    sw = check_fits(model, hw, all_blocks)
    ob = offset_bits(hw)
    writes = [(REGION_REGS << ob | reg_addr("CLEAR"), 0)]
    for name, v in registers_of(model.network, sw).items():
        base, _, layer = name.partition(".")
        writes.append((REGION_REGS << ob | reg_addr(base, int(layer) if layer else None), int(v)))
    ab, ck, wb = block_addr_bits(hw), chunk_bits(hw), hw.weight_bits
    lane = (1 << wb) - 1
    for m in sw.matrices.values():
        for r in range(m.rows):
            writes.append((REGION_INDEX << ob | m.index_base + r, int(m.base[r]) | int(m.count[r]) << ab))
    for m in sw.matrices.values():
        for b in range(m.blocks):
            word = int(m.chunk[b])
            for p, w in enumerate(m.weights[b].tolist()):
                word |= (int(w) & lane) << (ck + p * wb)
            writes.append((REGION_BLOCKS << ob | m.first_block + b, word))
    return writes


def decode_image(writes, hw: HardwareParams) -> dict:
    """What the core holds after ``writes`` from reset: ``regs`` (name -> value; layer registers ``NAME.l``),
    ``index`` (index_rows, 2) of (base, count), ``blocks`` (weight_blocks, 1 + P) of (chunk, weights...) and the
    sticky ``flags`` (set of names). The hardware's configuration unit must agree, write by write."""
    ob = offset_bits(hw)
    widths = register_widths(hw)
    names = {GLOBAL_REGS[n]: n for n in GLOBAL_REGS}
    for l in range(hw.max_layers):
        for n in LAYER_REGS:
            names[reg_addr(n, l)] = f"{n}.{l}"
    regs = {n: 0 for n in names.values() if n != "CLEAR"}
    index = np.zeros((hw.index_rows, 2), dtype=np.int64)
    P, wb, ck, ab, cb = hw.pe_count, hw.weight_bits, chunk_bits(hw), block_addr_bits(hw), count_bits(hw)
    blocks = np.zeros((hw.weight_blocks, 1 + P), dtype=np.int64)
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
            base, count = data & ((1 << ab) - 1), data >> ab & ((1 << cb) - 1)
            if data >> (ab + cb) or count > max_chunks(hw) or base + count > hw.weight_blocks:
                flags.add("BAD_POINTER")
            else:
                index[off] = (base, count)
        elif region == REGION_BLOCKS and off < hw.weight_blocks:
            chunk = data & ((1 << ck) - 1)
            lanes = [(data >> (ck + p * wb)) & ((1 << wb) - 1) for p in range(P)]
            blocks[off] = [chunk] + [v - (1 << wb) if v >> (wb - 1) else v for v in lanes]
        else:
            flags.add("BAD_ADDRESS")
    return {"regs": regs, "index": index, "blocks": blocks, "flags": flags}


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
    """The model the core runs after ``writes`` (network from the registers, weights from the index and blocks);
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
            base, count = st["index"][r[base_reg] + i]
            for b in range(base, base + count):
                k = st["blocks"][b, 0]
                w[i, k * P:(k + 1) * P] = st["blocks"][b, 1:]
        return w[:, :cols]

    lws = [LayerWeights(matrix(f"IN_INDEX_BASE.{l}", net.fan_in(l), lp.size),
                        matrix(f"REC_INDEX_BASE.{l}", lp.size, lp.size)) for l, lp in enumerate(layers)]
    w_out = matrix("OUT_INDEX_BASE", layers[-1].size, net.readout.size)
    return template.replace(network=net, layers=lws, w_out=w_out)


