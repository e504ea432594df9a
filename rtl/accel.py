"""The RSNN accelerator: event generation with zero-skip, input broadcasting to P processing elements, T parallel
time steps from one weight read, the neuron unit, and the integrating readout. It runs golden's network
(:mod:`golden.network`, whose docstring is the specification) bit-exactly, in the cycles that
:mod:`golden.cycles` predicts.

One frame, for each recurrent layer ``l`` then the readout (``golden/cycles.py`` counts every cycle):

``GEN``  the event generator scans the layer's sources (the frame's features or the spikes of the layer below,
         then the layer's own spikes of the previous frame) ``scan_width`` at a time with a find-first-set; each
         non-zero source becomes one merged event ``(index, payload, mask)`` in the event memory. A group of
         sources costs one cycle per event, or one cycle if it holds none.
``ACC``  for each chunk ``k`` of ``P`` output neurons: every event is replayed; its weight word (``P`` 4-bit
         weights, one per PE) is read once and each PE adds ``w * payload << shift`` to the accumulator of every
         time step in the event's mask (input broadcasting + parallel time steps). Two pipeline stages (event
         memory, weight memory): ``E + 2`` cycles.
``UPD``  one cycle: the P neurons of the chunk run their T steps (leak, saturate, fire, reset) from the state
         memory and the T accumulators; the state is written back, the spikes land in the spike vector.

The spike vector of a layer is both the feed-forward input of the next layer (this frame) and the layer's own
recurrent input (next frame): the layer's GEN has consumed the previous frame's spikes into the event memory
before its UPD overwrites them, which is exactly golden's update order.
"""
from __future__ import annotations

from amaranth import Array, Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import memory, stream, wiring
from amaranth.lib.data import StructLayout
from amaranth.lib.wiring import In, Out

from golden.model import Model
from golden.params import HardwareParams, NetworkParams, ParamError, ResetMode

from .layout import COUNTER_BITS, HW_COUNTERS, MemoryMap, OutputLayout, ceil_div, event_depth, event_fields

__all__ = ["Accelerator", "WeightWriteSignature", "FAULTS"]

#: Deliberate faults, chosen at elaboration (``Accelerator(..., fault=NAME)``), that the regression must catch
#: (``make regress REGRESS_ARGS=--faults``): each one is a plausible design bug. Never used by default.
FAULTS = {
    "leak_off_by_one": "the leak shifts by leak_shift + 1 (a wrong shift amount)",
    "mask_ignored": "every event adds into the accumulators of every time step, whatever its mask",
    "acc_not_cleared": "the accumulators are not cleared between chunks and layers",
    "event_dropped": "the last event of each layer is not replayed (the ACC loop stops one early)",
    "no_saturation": "the membrane potential wraps around instead of saturating",
    "fire_above": "a neuron fires when v > threshold instead of v >= threshold",
    "rec_uses_in_shift": "recurrent events are scaled by in_shift instead of rec_shift",
    "counter_skips_init": "the cycles counter does not count the ACC_INIT cycle (timing itself is right)",
    "slow_handshake": "one idle cycle after each output word, outside the cycles counter",
    "hang": "the controller never leaves the readout's last update (the testbench's watchdog must fire)",
}


class WeightWriteSignature(wiring.Signature):
    """The runtime model-loading port: while ``busy`` is low, ``en`` writes ``data`` (P weights, see
    :class:`rtl.layout.MemoryMap`) at ``addr`` of the weight memory on the rising edge."""

    def __init__(self, addr_bits: int, data_bits: int):
        super().__init__({"en": Out(1), "addr": Out(addr_bits), "data": Out(data_bits)})


def _popcount(bits):
    return sum((bits[i] for i in range(len(bits))), Const(0, range(len(bits) + 1)))


class PEArray(wiring.Component):
    """P processing elements x T accumulators. While ``en``: every PE ``p`` adds ``w_p * payload << shift`` (``w_p``
    = lane ``p`` of ``word``, two's complement) into the accumulator of each time step set in ``mask``. ``clear``
    zeroes them all (it wins over ``en``). ``acc``: accumulator ``(t, p)`` in bits ``[(t*P + p)*ab, ...)``."""

    def __init__(self, P: int, T: int, wb: int, pb: int, ab: int, max_shift: int):
        self.P, self.T, self.wb, self.ab = P, T, wb, ab
        super().__init__({"word": In(P * wb), "payload": In(pb), "mask": In(T), "shift": In(range(max_shift + 1)),
                          "en": In(1), "clear": In(1), "acc": Out(T * P * ab)})

    def elaborate(self, platform):
        m = Module()
        P, T, wb, ab = self.P, self.T, self.wb, self.ab
        for p in range(P):
            w = self.word[p * wb:(p + 1) * wb].as_signed()
            add = Signal(signed(ab), name=f"add_p{p}")
            m.d.comb += add.eq((w * self.payload) << self.shift)
            for t in range(T):
                acc = Signal(signed(ab), name=f"acc_t{t}_p{p}")
                m.d.comb += self.acc[(t * P + p) * ab:(t * P + p + 1) * ab].eq(acc)
                with m.If(self.clear):
                    m.d.sync += acc.eq(0)
                with m.Elif(self.en & self.mask[t]):
                    m.d.sync += acc.eq(acc + add)
        return m


class NeuronUnit(wiring.Component):
    """The neuron update of P lanes over T steps, combinational (golden's update order, step 3): per lane ``p``,
    from ``state`` (zero when ``fresh``) and the T accumulators: leak, saturate, fire, reset. ``fired`` bit
    ``t*P + p``; lanes not set in ``lanes`` never fire."""

    def __init__(self, lp, P: int, T: int, ab: int, fault: str | None = None):
        self.lp, self.P, self.T, self.ab, self.fault = lp, P, T, ab, fault
        sb = lp.state_bits
        super().__init__({"state": In(P * sb), "acc": In(T * P * ab), "fresh": In(1), "lanes": In(P),
                          "new_state": Out(P * sb), "fired": Out(T * P)})

    def elaborate(self, platform):
        m = Module()
        lp, P, T, ab = self.lp, self.P, self.T, self.ab
        sb, th = lp.state_bits, lp.threshold
        smin, smax = -(1 << (sb - 1)), (1 << (sb - 1)) - 1
        for p in range(P):
            v = Mux(self.fresh, 0, self.state[p * sb:(p + 1) * sb].as_signed())
            for t in range(T):
                if lp.leak_shift:
                    v = v - (v >> (lp.leak_shift + (self.fault == "leak_off_by_one")))
                tot = v + self.acc[(t * P + p) * ab:(t * P + p + 1) * ab].as_signed()
                sat = Signal(signed(sb), name=f"sat_t{t}_p{p}")
                if self.fault == "no_saturation":
                    m.d.comb += sat.eq(tot)
                else:
                    m.d.comb += sat.eq(Mux(tot > smax, smax, Mux(tot < smin, smin, tot)))
                f = self.fired[t * P + p]
                m.d.comb += f.eq(((sat > th) if self.fault == "fire_above" else (sat >= th)) & self.lanes[p])
                if lp.reset is ResetMode.SUBTRACT:
                    v = Mux(f, sat - th, sat)
                else:
                    v = Mux(f, 0, sat)
            m.d.comb += self.new_state[p * sb:(p + 1) * sb].eq(v)
        return m


class ReadoutUnit(wiring.Component):
    """The readout update of P lanes: ``new_u = saturate(u + sum over t of acc[t])`` (one saturation per frame)."""

    def __init__(self, rb: int, P: int, T: int, ab: int):
        self.rb, self.P, self.T, self.ab = rb, P, T, ab
        super().__init__({"u": In(P * rb), "acc": In(T * P * ab), "new_u": Out(P * rb)})

    def elaborate(self, platform):
        m = Module()
        rb, P, T, ab = self.rb, self.P, self.T, self.ab
        lo, hi = -(1 << (rb - 1)), (1 << (rb - 1)) - 1
        for p in range(P):
            tot = self.u[p * rb:(p + 1) * rb].as_signed() + sum(
                self.acc[(t * P + p) * ab:(t * P + p + 1) * ab].as_signed() for t in range(T))
            m.d.comb += self.new_u[p * rb:(p + 1) * rb].eq(Mux(tot > hi, hi, Mux(tot < lo, lo, tot)))
        return m


class Accelerator(wiring.Component):
    """Ports: ``inp`` (stream of :meth:`input_layout`: ``first`` clears all state before the frame), ``out``
    (stream of :class:`rtl.layout.OutputLayout` words, one per frame), ``wr`` (weight loading), ``dense`` (1:
    zero-skip off, every source is an event: for the benchmark; results stay exact, counters count the dense
    work), ``busy``.

    ``model`` (optional) initialises the weight memory at elaboration; otherwise it starts at zero and is loaded
    through ``wr``.
    """

    def __init__(self, net: NetworkParams, hw: HardwareParams, model: Model | None = None, fault: str | None = None):
        try:
            if fault is not None and fault not in FAULTS:
                raise ValueError(f"unknown fault {fault!r}: choose one of {sorted(FAULTS)}")
            net.validate()
            hw.validate()
            hw.check(net)
            multi = [i for i, lp in enumerate(net.layers) if lp.spike_levels > 1]
            if multi:
                raise ParamError(f"network.layers[{multi[0]}].spike_levels = {net.layers[multi[0]].spike_levels}: "
                                 "the first accelerator (rtl/accel.py) runs binary spikes only; multi-level "
                                 "spikes run on the configurable core (rtl/core.py)")
            self.mmap = MemoryMap(net, hw)
            self.init_words = self.mmap.words(model) if model is not None else None
        except Exception:
            self._MustUse__silence = True   # refused: never to be elaborated, so no "created but never used"
            raise
        self.net, self.hw, self.fault = net, hw, fault
        self.olayout = OutputLayout(net)
        P = hw.pe_count
        super().__init__({
            "inp": In(stream.Signature(self.input_layout(net))),
            "out": Out(stream.Signature(unsigned(self.olayout.width))),
            "wr": In(WeightWriteSignature(max(1, (self.mmap.depth - 1).bit_length()), P * hw.weight_bits)),
            "dense": In(1),
            "busy": Out(1),
        })

    @staticmethod
    def input_layout(net: NetworkParams) -> StructLayout:
        return StructLayout({"first": 1, "features": net.n_features * net.feature_bits})

    def elaborate(self, platform):
        net, hw, mmap = self.net, self.hw, self.mmap
        m = Module()
        P, T, S, wb, fb = hw.pe_count, net.time_steps, hw.scan_width, hw.weight_bits, net.feature_bits
        L = len(net.layers)
        full_mask = (1 << T) - 1

        # ---------------------------------------------------------------- storage
        wmem = memory.Memory(shape=unsigned(P * wb), depth=mmap.depth, init=self.init_words or [])
        m.submodules.wmem = wmem
        wwr = wmem.write_port()
        wrd = wmem.read_port(domain="sync")
        m.d.comb += [wwr.en.eq(self.wr.en & ~self.busy), wwr.addr.eq(self.wr.addr), wwr.data.eq(self.wr.data)]

        n_src_max = event_depth(net)
        ev_layout = StructLayout(event_fields(net))
        emem = memory.Memory(shape=ev_layout, depth=n_src_max, init=[])
        m.submodules.emem = emem
        ewr = emem.write_port()
        erd = emem.read_port(domain="sync")

        smems = []
        for l, lp in enumerate(net.layers):
            sm = memory.Memory(shape=unsigned(P * lp.state_bits), depth=ceil_div(lp.size, P), init=[])
            m.submodules[f"state{l}"] = sm
            smems.append((sm.write_port(), sm.read_port(domain="sync")))
        features = Signal(net.n_features * fb)
        spikes = [Signal(T * lp.size, name=f"spikes{l}") for l, lp in enumerate(net.layers)]
        C, rb = net.readout.size, net.readout.state_bits
        readout = Signal(C * rb)
        fresh = Signal(L)                      # layer l's state memory is to be read as zero (utterance start)

        # ---------------------------------------------------------------- datapath registers
        acc_bits = max(net.acc_bits(l) for l in range(L + 1))
        max_shift = max([net.readout.in_shift] + [max(lp.in_shift, lp.rec_shift) for lp in net.layers])
        m.submodules.pe_array = pes = PEArray(P, T, wb, fb, acc_bits, max_shift)
        counters = {c: Signal(COUNTER_BITS, name=f"cnt_{c}") for c in HW_COUNTERS}
        n_ev = Signal(range(n_src_max + 1))    # events written by GEN
        grp = Signal(range(ceil_div(n_src_max, S) + 1))
        done = Signal(S)                       # bits of the current group already turned into events
        k = Signal(range(max(ceil_div(lp.size, P) for lp in net.layers) + ceil_div(C, P) + 1))
        i = Signal(range(n_src_max + 3))       # ACC step
        koff_ff = Signal(range(mmap.depth + 1))
        koff_rec = Signal(range(mmap.depth + 1))
        s2_valid = Signal()
        s2_ev = Signal(ev_layout)

        m.d.comb += self.busy.eq(1)
        m.d.comb += [erd.addr.eq(i)] + [srd.addr.eq(k) for _, srd in smems]

        def sources(l, seg):
            """(n, nonzero bits, payload array, mask array) of segment ``seg`` ("ff"/"rec") of layer ``l``."""
            if seg == "ff" and l == 0:
                n = net.n_features
                vals = [features[j * fb:(j + 1) * fb] for j in range(n)]
                return n, [v != 0 for v in vals], vals, [Const(full_mask, T)] * n
            src = spikes[l - 1] if seg == "ff" else spikes[l]
            n = net.layers[l - 1].size if seg == "ff" else net.layers[l].size
            masks = [Cat(*[src[t * n + j] for t in range(T)]) for j in range(n)]
            return n, [mk.any() for mk in masks], [Const(1, fb)] * n, masks

        def stage_names(l):
            return f"GEN_FF{l}", f"GEN_REC{l}", f"ACC{l}", f"UPD{l}"

        def counter_add(name, value):
            m.d.sync += counters[name].eq(counters[name] + value)

        # per-cycle accounting of the compute states
        in_compute = Signal()
        in_init = Signal()
        with m.If((in_compute & ~in_init) if self.fault == "counter_skips_init" else in_compute):
            counter_add("cycles", 1)

        with m.FSM(init="IDLE"):
            with m.State("IDLE"):
                m.d.comb += [self.busy.eq(0), self.inp.ready.eq(1)]
                with m.If(self.inp.valid):
                    m.d.sync += features.eq(self.inp.payload.features)
                    m.d.sync += [c.eq(0) for c in counters.values()]
                    with m.If(self.inp.payload.first):
                        m.d.sync += [s.eq(0) for s in spikes] + [readout.eq(0), fresh.eq((1 << L) - 1)]
                    m.d.sync += [grp.eq(0), done.eq(0), n_ev.eq(0)]
                    m.next = "GEN_FF0"

            for l in range(L + 1):
                is_readout = l == L
                n_out = C if is_readout else net.layers[l].size
                K = ceil_div(n_out, P)
                ff_mat = mmap.matrices["out" if is_readout else f"in{l}"]
                rec_mat = None if is_readout else mmap.matrices[f"rec{l}"]
                gen_ff, gen_rec, acc_st, upd_st = stage_names(l)
                after_ff = "ACC_INIT%d" % l if is_readout else gen_rec
                nxt_layer_first = "GEN_FF%d" % (l + 1) if l < L else "OUT"

                # ---------------- GEN: find-first-set over groups of S sources
                for seg, state, after in (("ff", gen_ff, after_ff), ("rec", gen_rec, "ACC_INIT%d" % l)):
                    if seg == "rec" and is_readout:
                        continue
                    n, nz, pay, msk = sources(l, seg)
                    groups = ceil_div(n, S)
                    with m.State(state):
                        m.d.comb += in_compute.eq(1)
                        gbits = Array([Cat(*[nz[g * S + b] if g * S + b < n else Const(0, 1) for b in range(S)])
                                       for g in range(groups)])
                        gvalid = Array([Const(sum(1 << b for b in range(S) if g * S + b < n), S)
                                        for g in range(groups)])
                        rem = Signal(S, name=f"rem_{state}")
                        m.d.comb += rem.eq(Mux(self.dense, gvalid[grp], gbits[grp]) & ~done)
                        first = Signal(range(S), name=f"ffs_{state}")
                        for b in reversed(range(S)):
                            with m.If(rem[b]):
                                m.d.comb += first.eq(b)
                        onehot = Signal(S, name=f"onehot_{state}")
                        m.d.comb += onehot.eq(Const(1, S) << first)
                        src = Signal(range(groups * S), name=f"src_{state}")
                        m.d.comb += src.eq(grp * S + first)
                        advance = Signal(name=f"adv_{state}")
                        with m.If(rem == 0):
                            m.d.comb += advance.eq(1)
                        with m.Else():
                            m.d.comb += [ewr.en.eq(1), ewr.addr.eq(n_ev), ewr.data.index.eq(src),
                                         ewr.data.payload.eq(Array(pay + [Const(0, fb)] * (groups * S - n))[src]),
                                         ewr.data.mask.eq(Array(msk + [Const(0, T)] * (groups * S - n))[src]),
                                         ewr.data.rec.eq(seg == "rec")]
                            m.d.sync += [n_ev.eq(n_ev + 1), done.eq(done | onehot)]
                            counter_add("in_events" if seg == "ff" else "rec_events", 1)
                            counter_add("weight_reads", n_out)
                            with m.If((rem & ~onehot) == 0):
                                m.d.comb += advance.eq(1)
                        with m.If(advance):
                            m.d.sync += [done.eq(0), grp.eq(grp + 1)]
                            with m.If(grp == groups - 1):
                                m.d.sync += grp.eq(0)
                                m.next = after

                # ---------------- ACC_INIT: one cycle to set chunk 0 (and let the last event write land)
                with m.State("ACC_INIT%d" % l):
                    m.d.comb += [in_compute.eq(1), in_init.eq(1)]
                    m.d.sync += [k.eq(0), i.eq(0), koff_ff.eq(ff_mat.base),
                                 koff_rec.eq(rec_mat.base if rec_mat else 0), s2_valid.eq(0)]
                    m.next = acc_st

                # ---------------- ACC: replay the events of chunk k through the 2-stage pipeline
                valid_lanes = Signal(P, name=f"lanes{l}")
                last_lanes = sum(1 << p for p in range(P) if (K - 1) * P + p < n_out)
                m.d.comb += valid_lanes.eq(Mux(k == K - 1, last_lanes, (1 << P) - 1))
                with m.State(acc_st):
                    m.d.comb += in_compute.eq(1)
                    # stage 1: event i-1 is on erd.data; issue its weight word read
                    s1_valid = Signal(name=f"s1v{l}")
                    m.d.comb += s1_valid.eq((i >= 1) & (i <= n_ev))
                    row_base = Mux(erd.data.rec, koff_rec, koff_ff)
                    m.d.comb += wrd.addr.eq(row_base + erd.data.index)
                    m.d.sync += [s2_valid.eq(s1_valid), s2_ev.eq(erd.data), i.eq(i + 1)]
                    # stage 2: weights on wrd.data, broadcast to the PE array (accumulators of the masked steps)
                    shift_in = net.readout.in_shift if is_readout else net.layers[l].in_shift
                    shift_rec = 0 if is_readout else net.layers[l].rec_shift
                    if self.fault == "rec_uses_in_shift":
                        shift_rec = shift_in
                    mask = Const(full_mask, T) if self.fault == "mask_ignored" else s2_ev.mask
                    m.d.comb += [pes.word.eq(wrd.data), pes.payload.eq(s2_ev.payload), pes.mask.eq(mask),
                                 pes.shift.eq(Mux(s2_ev.rec, shift_rec, shift_in)), pes.en.eq(s2_valid)]
                    with m.If(s2_valid):
                        counter_add("weight_words", 1)
                        nzw = Cat(*[wrd.data[p * wb:(p + 1) * wb] != 0 for p in range(P)]) & valid_lanes
                        n_nz = _popcount(nzw)
                        counter_add("nz_weight_reads", n_nz)
                        counter_add("accumulations", n_nz * _popcount(s2_ev.mask))
                    last = (n_ev - (n_ev != 0)) if self.fault == "event_dropped" else n_ev
                    with m.If(i == last + 1):
                        m.next = upd_st

                # ---------------- UPD: the neuron unit, P lanes x T steps, one cycle
                with m.State(upd_st):
                    m.d.comb += in_compute.eq(1)
                    n_valid = _popcount(valid_lanes)
                    counter_add("state_reads", n_valid)
                    counter_add("state_writes", n_valid)
                    if is_readout:
                        unit = ReadoutUnit(rb, P, T, acc_bits)
                        m.submodules.readout_unit = unit
                        m.d.comb += unit.acc.eq(pes.acc)
                        chunks = [Cat(*[readout[(kk * P + p) * rb:(kk * P + p + 1) * rb] if kk * P + p < C
                                        else Const(0, rb) for p in range(P)]) for kk in range(K)]
                        m.d.comb += unit.u.eq(Array(chunks)[k])
                        with m.Switch(k):
                            for kk in range(K):
                                with m.Case(kk):
                                    for p in range(min(P, C - kk * P)):
                                        c = kk * P + p
                                        m.d.sync += readout[c * rb:(c + 1) * rb].eq(unit.new_u[p * rb:(p + 1) * rb])
                    else:
                        lp = net.layers[l]
                        unit = NeuronUnit(lp, P, T, acc_bits, self.fault)
                        m.submodules[f"neuron_unit{l}"] = unit
                        swr, srd = smems[l]
                        m.d.comb += [unit.state.eq(srd.data), unit.acc.eq(pes.acc), unit.fresh.eq(fresh[l]),
                                     unit.lanes.eq(valid_lanes)]
                        m.d.comb += [swr.en.eq(1), swr.addr.eq(k), swr.data.eq(unit.new_state)]
                        with m.Switch(k):
                            for kk in range(K):
                                with m.Case(kk):
                                    for t in range(T):
                                        lo = t * lp.size + kk * P
                                        width = min(P, lp.size - kk * P)
                                        m.d.sync += spikes[l][lo:lo + width].eq(unit.fired[t * P:t * P + width])
                    m.d.comb += pes.clear.eq(self.fault != "acc_not_cleared")
                    with m.If(k == K - 1):
                        if not is_readout:
                            m.d.sync += fresh[l].eq(0)
                        m.d.sync += [grp.eq(0), done.eq(0), n_ev.eq(0)]
                        m.next = upd_st if (self.fault == "hang" and is_readout) else nxt_layer_first
                    with m.Else():
                        m.d.sync += [k.eq(k + 1), i.eq(0), koff_ff.eq(koff_ff + ff_mat.rows)]
                        if rec_mat is not None:
                            m.d.sync += koff_rec.eq(koff_rec + rec_mat.rows)
                        m.next = acc_st

            with m.State("OUT"):
                m.d.comb += self.out.valid.eq(1)
                with m.If(self.out.ready):
                    m.next = "SLOW" if self.fault == "slow_handshake" else "IDLE"
            if self.fault == "slow_handshake":
                with m.State("SLOW"):
                    m.next = "IDLE"

        payload = [readout] + spikes + [counters[c] for c in HW_COUNTERS]
        m.d.comb += self.out.payload.eq(Cat(*payload))
        return m
