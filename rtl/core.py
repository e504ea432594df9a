"""The configurable core (accelerator v2): one elaborated design that runs any model that fits its
:class:`golden.params.HardwareParams`, loaded at run time through the configuration stream
(:mod:`golden.image` is the register and memory map), with its weights as per-lane lists of the non-zero weights
(:mod:`golden.sparse`), and an event-outer datapath whose ``P`` lanes each walk their own lists with their
accumulators in a memory of their own. It runs golden's network (:mod:`golden.network`) bit-exactly in the cycles
:mod:`golden.core_cycles` predicts.

One frame: for each stage ``s`` (the recurrent layers, then the readout):

``RUN``    the units work at once, joined by streams:

           * :class:`EventGen` scans the stage's sources (the frame's features or the spikes of the layer below,
             then the layer's own spikes of the previous frame) ``scan_width`` at a time with a find-first-set:
             one event per cycle, one cycle per group without events;
           * the row lookup reads each event's index entry ``(base, count per lane)`` and passes the event to
             every lane whose list of the row is not empty: straight to the lane's fetch when it is free and
             nothing waits in the lane, else through the lane's :class:`EventQueue` (a lane with an empty list
             spends nothing on the event);
           * each lane's :class:`BlockFetch` issues one read per cycle of the lane's weight memory: the lane's
             entries of its queued events, back to back; each entry goes to the lane's :class:`AccUnit` (one PE),
             which adds ``w * payload << shift`` into the lane's accumulators of the entry's chunk for every time
             step in the event's mask (a read-modify-write of the lane's accumulator memory, whose transparent read
             port forwards a write to the next entry of the same chunk). The lanes do not wait for each other.

``SWEEP``  as soon as the scan, the lookup, every queue and every fetch are idle (the last accumulations may still
           be being written), the neuron unit reads each chunk's accumulators (every lane's) and states, runs the
           ``T`` steps of ``P`` neurons (or the readout's saturating sum and argmax), writes the states back, clears
           the chunk (its valid bits) and writes the spikes: one chunk per cycle, then one cycle for the last
           update.

Spikes of a layer are both the feed-forward input of the next stage (this frame) and the layer's own recurrent
input (next frame): the scan of stage ``s`` has read the previous frame's spikes before its sweep overwrites them,
which is golden's update order.
"""
from __future__ import annotations

from amaranth import Array, Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from golden.arith import ceil_div
from golden.image import (FLAGS, GLOBAL_REGS, LAYER_REGS, REGION_BLOCKS, REGION_INDEX, REGION_REGS, addr_bits,
                          data_bits, offset_bits, reg_addr, register_widths)
from golden.params import HardwareParams
from golden.sparse import chunk_bits, count_bits, max_chunks, word_addr_bits

__all__ = ["Core", "core_layouts", "CORE_COUNTERS", "CORE_FAULTS", "event_queue_depth"]

#: counters of the debug word, in order (golden's counters summed over the stages of the frame, then the core's)
CORE_COUNTERS = ("in_events", "rec_events", "weight_reads", "nz_weight_reads", "accumulations", "state_reads",
                 "state_writes", "weight_words", "cycles")
COUNTER_BITS = 32

#: Deliberate faults of the core, chosen at elaboration (``Core(hw, fault=NAME)``), that the regression must catch
#: (``make regress REGRESS_ARGS="--core --faults"``): each a plausible bug of one unit. Never used by default.
CORE_FAULTS = {
    "acc_not_transparent": "the accumulator memories' read ports do not forward a write in flight: an entry that "
                           "follows one to the same chunk reads the old accumulators",
    "valid_not_cleared": "the sweep does not clear the chunk's valid bit: a stage starts from the accumulators of "
                         "the one before",
    "last_block_dropped": "a lane's fetch reads one entry fewer than its list's count when it has two or more",
    "lanes_share_count": "every lane walks lane 0's count of the row instead of its own",
    "sweep_before_drain": "the sweep starts without waiting for the fetch to drain",
    "bypass_ignores_queue": "an event bypasses the queue even when events wait in it (the new event is lost)",
    "rec_uses_in_shift": "recurrent events are scaled by the layer's input shift instead of its recurrent shift",
    "fire_above": "a neuron fires when v > threshold instead of v >= threshold",
    "leak_off_by_one": "the leak shifts by leak_shift + 1",
    "no_saturation": "the membrane potential wraps around instead of saturating",
    "argmax_last_on_tie": "the readout's argmax takes the highest index of a tie instead of the lowest",
    "cfg_ready_while_busy": "a configuration write is taken while a frame is computed",
    "bad_index_not_flagged": "an index entry whose segment runs past the weight memory is written without "
                             "BAD_POINTER",
    "counter_skips_last": "the cycles counter does not count the stage's last update cycle (timing is right)",
    "slow_output": "one idle cycle after each output word, outside the cycles counter",
    "hang": "the core never leaves the readout's last update (the testbench's watchdog must fire)",
    "spike_payload_one": "a spike event carries payload 1 whatever its level (multi-level spikes counted as binary)",
    "level_past_smax": "a spike level whose multiple of the threshold lies above the saturated maximum is not "
                       "switched off (a saturated potential fires it)",
}


def _bits(n_values: int) -> int:
    return max(1, (n_values - 1).bit_length())


def event_queue_depth(hw: HardwareParams) -> int:
    """Events one stage can produce: all its feed-forward and recurrent sources."""
    return max(hw.max_features, hw.max_neurons) + hw.max_neurons


def core_layouts(hw: HardwareParams, debug: bool = False) -> dict:
    """Every bus layout of the core, by name (the testbench and the documentation use the same ones)."""
    P, T, wb = hw.pe_count, hw.time_steps, hw.weight_bits
    fb = hw.max_feature_bits
    lay = {
        "cfg": data.StructLayout({"addr": addr_bits(hw), "data": data_bits(hw)}),
        "input": data.StructLayout({"first": 1, "features": data.ArrayLayout(unsigned(fb), hw.max_features)}),
        "index": data.StructLayout({"base": word_addr_bits(hw), "count": data.ArrayLayout(count_bits(hw), P)}),
        # one lane's entry of a weight word (an array of one weight: the accumulator unit of a lane is a PE array
        # of one PE)
        "entry": data.StructLayout({"chunk": chunk_bits(hw), "weights": data.ArrayLayout(signed(wb), 1)}),
        "queued": data.StructLayout({"payload": fb, "mask": T, "rec": 1, "base": word_addr_bits(hw),
                                     "count": count_bits(hw)}),
        "status": data.StructLayout({f.lower(): 1 for f in FLAGS}),
    }
    lay["result"] = data.StructLayout({"decision": _bits(hw.max_classes), "ran": 1, "status": lay["status"]})
    out = {"result": lay["result"]}
    if debug:
        out["readout"] = data.ArrayLayout(signed(hw.max_state_bits), hw.max_classes)
        # per layer and time step, each neuron's spike level (one bit for binary spikes)
        out["spikes"] = data.ArrayLayout(data.ArrayLayout(data.ArrayLayout(unsigned(hw.spike_bits), hw.max_neurons),
                                                          T), hw.max_layers)
        out["counters"] = data.StructLayout({c: COUNTER_BITS for c in CORE_COUNTERS})
    lay["output"] = data.StructLayout(out)
    return lay


class EventGen(wiring.Component):
    """The event generator of one stage: a find-first-set over ``S`` sources per cycle, feed-forward segment then
    recurrent segment. ``start`` (one cycle) begins a stage; ``finished`` is high from the cycle after the last
    scan cycle until the next ``start``. Each event leaves on ``o`` (``index``, ``rec``) in ascending index order;
    a group without events costs one cycle. ``o.ready`` low holds the scan.

    The activity vectors are ``sources[ff_sel]`` (feed-forward) and ``sources[rec_sel]`` (recurrent): a group's
    ``S`` bits are selected from each source first and only then between the sources, which costs a fraction of
    the logic of selecting whole vectors first (``S`` bits against ``width`` bits per multiplexer)."""

    def __init__(self, width: int, S: int, n_src: int = 2):
        self.width, self.S, self.n_src = width, S, n_src
        super().__init__({
            "start": In(1), "sources": In(data.ArrayLayout(unsigned(width), n_src)),
            "ff_sel": In(range(max(n_src, 2))), "rec_sel": In(range(max(n_src, 2))),
            "n_ff": In(range(width + 1)), "n_rec": In(range(width + 1)), "finished": Out(1),
            "o": Out(stream.Signature(data.StructLayout({"index": _bits(width), "rec": 1}))),
        })

    def elaborate(self, platform):
        m = Module()
        W, S = self.width, self.S
        groups = ceil_div(W, S)
        active = Signal()
        seg = Signal()                       # 0: feed-forward, 1: recurrent
        g = Signal(range(groups + 1))
        done = Signal(S)
        n = Mux(seg, self.n_rec, self.n_ff)
        pad = Const(0, groups * S - W) if groups * S > W else Cat()
        group_of = Array([Cat(self.sources[i], pad).word_select(g, S) for i in range(self.n_src)])
        gbits = Signal(S)
        m.d.comb += gbits.eq(group_of[Mux(seg, self.rec_sel, self.ff_sel)])
        valid_bits = Signal(S)
        for b in range(S):
            m.d.comb += valid_bits[b].eq(g * S + b < n)
        rem = Signal(S)
        m.d.comb += rem.eq(gbits & valid_bits & ~done)
        first = Signal(range(S))
        for b in reversed(range(S)):
            with m.If(rem[b]):
                m.d.comb += first.eq(b)
        onehot = Signal(S)
        m.d.comb += onehot.eq(Const(1, S) << first)
        last_group = Signal()
        m.d.comb += last_group.eq((g + 1) * S >= n)
        m.d.comb += [self.o.payload.index.eq(g * S + first), self.o.payload.rec.eq(seg)]
        advance = Signal()
        with m.If(active & (n == 0)):         # an empty segment (no recurrent sources) costs nothing
            m.d.comb += advance.eq(1)
        with m.Elif(active & (rem == 0)):
            m.d.comb += advance.eq(1)
        with m.Elif(active):
            m.d.comb += self.o.valid.eq(1)
            with m.If(self.o.ready):
                m.d.sync += done.eq(done | onehot)
                with m.If((rem & ~onehot) == 0):
                    m.d.comb += advance.eq(1)
        with m.If(advance):
            m.d.sync += [done.eq(0), g.eq(g + 1)]
            with m.If(last_group | (n == 0)):
                m.d.sync += [g.eq(0), seg.eq(1)]
                with m.If(seg | (self.n_rec == 0)):
                    m.d.sync += [active.eq(0), self.finished.eq(1)]
        with m.If(self.start):
            m.d.sync += [active.eq(1), self.finished.eq(0), seg.eq(0), g.eq(0), done.eq(0)]
        return m


class EventQueue(wiring.Component):
    """A first-word-fall-through queue in a memory: a word written in cycle ``c`` is on ``r`` from cycle ``c + 1``
    (the read port is transparent to the write port and reads the address the head will have next). ``clear``
    empties it. ``w.ready`` is high while it is not full."""

    def __init__(self, layout, depth: int):
        self.layout, self.depth = layout, depth
        super().__init__({"w": In(stream.Signature(layout)), "r": Out(stream.Signature(layout)), "clear": In(1),
                          "empty": Out(1)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.mem = mem = memory.Memory(shape=self.layout, depth=self.depth, init=[])
        wp_ = mem.write_port()
        rp_ = mem.read_port(domain="sync", transparent_for=(wp_,))
        wptr = Signal(range(self.depth + 1))
        rptr = Signal(range(self.depth + 1))
        m.d.comb += [self.w.ready.eq(wptr < self.depth), wp_.addr.eq(wptr), wp_.data.eq(self.w.payload),
                     wp_.en.eq(self.w.valid & self.w.ready)]
        pop = self.r.valid & self.r.ready
        m.d.comb += [self.r.valid.eq(rptr < wptr), self.r.payload.eq(rp_.data), rp_.addr.eq(rptr + pop),
                     self.empty.eq(rptr == wptr)]
        with m.If(wp_.en):
            m.d.sync += wptr.eq(wptr + 1)
        with m.If(pop):
            m.d.sync += rptr.eq(rptr + 1)
        with m.If(self.clear):
            m.d.sync += [wptr.eq(0), rptr.eq(0)]
        return m


class BlockFetch(wiring.Component):
    """Walks the queued events' words (in the core: a lane's entries of each event's row): one weight-memory read
    per cycle, the words of one event back to back, the next event's first on the cycle after its last (no bubble
    while the queue is not empty). ``o`` carries each word with its event's payload, mask and segment, one cycle
    after the read (it must always be taken). ``idle``: nothing loaded and nothing in flight."""

    def __init__(self, qlayout, blayout, fb: int, T: int, ab: int, cb: int, fault: str | None = None):
        self.qlayout, self.blayout, self.fault = qlayout, blayout, fault
        out = data.StructLayout({"block": blayout, "payload": fb, "mask": T, "rec": 1})
        super().__init__({"q": In(stream.Signature(qlayout)), "o": Out(stream.Signature(out)),
                          "rd_addr": Out(ab), "rd_data": In(blayout), "idle": Out(1)})
        self.ab, self.cb = ab, cb

    def elaborate(self, platform):
        m = Module()
        q = self.q.payload
        cur_addr = Signal(self.ab)
        cur_rem = Signal(self.cb)
        cur = Signal(data.StructLayout({"payload": len(q.payload), "mask": len(q.mask), "rec": 1}))
        use_head = Signal()
        m.d.comb += use_head.eq((cur_rem == 0) & self.q.valid)
        m.d.comb += self.q.ready.eq(cur_rem == 0)
        issue = Signal()
        m.d.comb += issue.eq((cur_rem != 0) | self.q.valid)
        sel_addr = Mux(use_head, q.base, cur_addr)
        sel_rem = Mux(use_head, q.count, cur_rem)
        if self.fault == "last_block_dropped":
            sel_rem = Mux(use_head & (q.count > 1), q.count - 1, sel_rem)
        m.d.comb += self.rd_addr.eq(sel_addr)
        s1 = Signal()
        s1_ev = Signal.like(cur)
        m.d.sync += s1.eq(issue)
        with m.If(issue):
            m.d.sync += [cur_addr.eq(sel_addr + 1), cur_rem.eq(sel_rem - 1)]
            with m.If(use_head):
                m.d.sync += [cur.payload.eq(q.payload), cur.mask.eq(q.mask), cur.rec.eq(q.rec),
                             s1_ev.payload.eq(q.payload), s1_ev.mask.eq(q.mask), s1_ev.rec.eq(q.rec)]
            with m.Else():
                m.d.sync += s1_ev.eq(cur)
        m.d.comb += [self.o.valid.eq(s1), self.o.payload.block.eq(self.rd_data),
                     self.o.payload.payload.eq(s1_ev.payload), self.o.payload.mask.eq(s1_ev.mask),
                     self.o.payload.rec.eq(s1_ev.rec), self.idle.eq((cur_rem == 0) & ~s1)]
        return m


class AccUnit(wiring.Component):
    """The PE array over the accumulator memory (one word = ``T`` x ``P`` accumulators of a chunk). A block on
    ``i`` (always taken) whose chunk is below ``chunks`` reads its chunk's word; the cycle after, every PE ``p``
    adds ``w_p * payload << shift`` (``shift`` = ``shift_rec`` for a recurrent event) to the accumulators of the
    time steps in the mask and writes the word back. A block naming a chunk at or past ``chunks`` is skipped
    and pulses ``bad_chunk``. The sweep port (``sw_addr``, used while no block is in its read stage) reads a chunk's word (on ``sw_data`` the
    cycle after) and ``clr_en`` / ``clr_addr`` clears a chunk (its valid bit: a chunk not written since its last
    clear, or since reset, reads as zero). ``busy``: a block is in flight. The counters'
    increments of the accumulating cycle are on ``n_nz`` (non-zero weights) and ``n_acc`` (their additions)."""

    def __init__(self, in_layout, P: int, T: int, ab: int, kmax: int, max_shift: int, fault: str | None = None):
        self.P, self.T, self.ab, self.kmax, self.fault = P, T, ab, kmax, fault
        self.word = data.ArrayLayout(data.ArrayLayout(signed(ab), P), T)
        super().__init__({
            "i": In(stream.Signature(in_layout)), "chunks": In(range(kmax + 1)),
            "shift_in": In(range(max_shift + 1)), "shift_rec": In(range(max_shift + 1)),
            "sw_addr": In(range(max(kmax, 2))), "sw_data": Out(self.word),
            "clr_en": In(1), "clr_addr": In(range(max(kmax, 2))),
            "bad_chunk": Out(1), "busy": Out(1), "accumulate": Out(1),
            "n_nz": Out(range(P + 1)), "n_acc": Out(range(P * T + 1)),
        })

    def elaborate(self, platform):
        m = Module()
        P, T, ab = self.P, self.T, self.ab
        m.submodules.mem = mem = memory.Memory(shape=self.word, depth=self.kmax, init=[])
        wr = mem.write_port()
        rd = mem.read_port(domain="sync", transparent_for=() if self.fault == "acc_not_transparent" else (wr,))
        blk = self.i.payload
        m.d.comb += self.i.ready.eq(1)
        ok = Signal()
        m.d.comb += ok.eq(self.i.valid & (blk.block.chunk < self.chunks))
        m.d.comb += self.bad_chunk.eq(self.i.valid & ~ok)
        s2 = Signal()
        s2_blk = Signal.like(blk)
        m.d.sync += [s2.eq(ok), s2_blk.eq(blk)]
        m.d.comb += rd.addr.eq(Mux(ok, blk.block.chunk, self.sw_addr))
        # A valid bit per chunk (cleared by reset and by the sweep, set by an accumulation): a chunk never written
        # since reads as zero, so no clearing pass is needed, even after a reset in the middle of a frame.
        valid = Signal(self.kmax)
        rd_ok = Signal()
        hit_acc = s2 & (s2_blk.block.chunk == rd.addr)
        hit_clr = ~s2 & self.clr_en & (self.clr_addr == rd.addr)
        m.d.sync += rd_ok.eq(Mux(hit_acc, 1, Mux(hit_clr, 0, valid.bit_select(rd.addr, 1))))
        data_in = Signal(self.word)
        m.d.comb += data_in.eq(Mux(rd_ok, rd.data, 0))
        m.d.comb += self.sw_data.eq(data_in)
        shift = Mux(s2_blk.rec, self.shift_rec, self.shift_in)
        new = Signal(self.word)
        nz = []
        for p in range(P):
            w = s2_blk.block.weights[p]
            add = Signal(signed(ab), name=f"add{p}")
            m.d.comb += add.eq((w * s2_blk.payload.as_unsigned()) << shift)
            nz.append(w != 0)
            for t in range(T):
                m.d.comb += new[t][p].eq(Mux(s2_blk.mask[t], data_in[t][p] + add, data_in[t][p]))
        n_nz = sum((Cat(b).as_unsigned() for b in nz), Const(0, range(P + 1)))
        n_mask = sum((s2_blk.mask[t].as_unsigned() for t in range(T)), Const(0, range(T + 1)))
        m.d.comb += [self.n_nz.eq(n_nz), self.n_acc.eq(n_nz * n_mask), self.accumulate.eq(s2),
                     self.busy.eq(s2)]
        with m.If(s2):
            m.d.comb += [wr.en.eq(1), wr.addr.eq(s2_blk.block.chunk), wr.data.eq(new)]
            m.d.sync += valid.bit_select(s2_blk.block.chunk, 1).eq(1)
        with m.Elif(self.clr_en if self.fault != "valid_not_cleared" else Const(0, 1)):
            m.d.sync += valid.bit_select(self.clr_addr, 1).eq(0)
        return m


class Core(wiring.Component):
    """The configurable core. Ports: ``cfg`` (stream of configuration writes, see :mod:`golden.image`; ready only
    while idle), ``inp`` (stream: ``first`` clears all state before the frame, ``features`` up to
    ``max_features``), ``out`` (stream, one word per frame: the result, plus with ``debug`` the readout
    potentials, the spikes and the counters), ``dense`` (1: every source is an event, for the benchmark),
    ``busy`` and ``status`` (the flags)."""

    def __init__(self, hw: HardwareParams, debug: bool = True, fault: str | None = None):
        hw.validate()
        if fault is not None and fault not in CORE_FAULTS:
            raise ValueError(f"unknown fault {fault!r}: choose one of {sorted(CORE_FAULTS)}")
        self.hw, self.debug, self.fault = hw, debug, fault
        self.lay = core_layouts(hw, debug)
        super().__init__({
            "cfg": In(stream.Signature(self.lay["cfg"])),
            "inp": In(stream.Signature(self.lay["input"])),
            "out": Out(stream.Signature(self.lay["output"])),
            "dense": In(1), "busy": Out(1), "status": Out(self.lay["status"]),
        })

    def elaborate(self, platform):
        hw, lay, fault = self.hw, self.lay, self.fault
        m = Module()
        P, T, S, wb = hw.pe_count, hw.time_steps, hw.scan_width, hw.weight_bits
        fb, sbm, Lmax = hw.max_feature_bits, hw.max_state_bits, hw.max_layers
        Nmax, Fmax, Cmax = hw.max_neurons, hw.max_features, hw.max_classes
        Kmax = max_chunks(hw)
        Kn, Kc = ceil_div(Nmax, P), ceil_div(Cmax, P)
        W = max(Fmax, Nmax)
        ab = hw.acc_bits

        # ------------------------------------------------------------------ configuration registers
        widths = register_widths(hw)
        # The configuration survives a reset (reset_less: a reset aborts the frame and clears the state, the
        # loaded model stays, like the memories); the sticky flags are cleared by it.
        g = {n: Signal(widths[n], name=f"reg_{n.lower()}", reset_less=True) for n in GLOBAL_REGS if n != "CLEAR"}
        lr = [{n: Signal(widths[n], name=f"reg_{n.lower()}{l}", reset_less=True) for n in LAYER_REGS}
              for l in range(Lmax)]
        sticky = Signal(4)
        ob = offset_bits(hw)
        cfg = self.cfg.payload
        region = cfg.addr[ob:]
        off = cfg.addr[:ob]

        m.submodules.imem = imem = memory.Memory(shape=lay["index"], depth=hw.index_rows, init=[])
        iw, ir = imem.write_port(), imem.read_port(domain="sync")
        take_cfg = self.cfg.valid & self.cfg.ready
        ab_bits, cb_bits = word_addr_bits(hw), count_bits(hw)
        eb = lay["entry"].size
        m.d.comb += [iw.addr.eq(off), iw.data.eq(cfg.data[:ab_bits + P * cb_bits])]
        # The weight memory is one memory per lane (the lane's slice of every word: lanes read different
        # addresses at once), each single-ported: one address for the configuration's writes (taken only while
        # idle; a word writes every lane at the same address) and the lane fetch's reads (only while running; no
        # read in a write cycle), so that it maps to a single-port RAM (an iCE40 UP5K SPRAM, a single-port SRAM
        # macro).
        wports = []
        for p in range(P):
            wmem = memory.Memory(shape=lay["entry"], depth=hw.weight_words, init=[])
            m.submodules[f"wmem{p}"] = wmem
            ww_p, wr_p = wmem.write_port(), wmem.read_port(domain="sync")
            m.d.comb += ww_p.data.eq(cfg.data[p * eb:(p + 1) * eb])
            wports.append((ww_p, wr_p))
        w_en = Signal()
        m.d.comb += [ww_p.en.eq(w_en) for ww_p, _ in wports]
        with m.If(take_cfg):
            with m.Switch(region):
                with m.Case(REGION_REGS):
                    with m.Switch(off):
                        with m.Case(reg_addr("CLEAR")):
                            m.d.sync += sticky.eq(0)
                        regs = [(reg_addr(n), sig, widths[n]) for n, sig in g.items()]
                        for l in range(Lmax):
                            regs += [(reg_addr(n, l), sig, widths[n]) for n, sig in lr[l].items()]
                        for a, sig, w in regs:
                            with m.Case(a):
                                with m.If(cfg.data[w:] != 0):
                                    m.d.sync += sticky[1].eq(1)
                                with m.Else():
                                    m.d.sync += sig.eq(cfg.data[:w])
                        with m.Default():
                            m.d.sync += sticky[0].eq(1)
                with m.Case(REGION_INDEX):
                    base = cfg.data[:ab_bits]
                    counts = [cfg.data[ab_bits + p * cb_bits:ab_bits + (p + 1) * cb_bits] for p in range(P)]
                    past_end = Cat(*[base + c > hw.weight_words for c in counts]).any()
                    too_many = Cat(*[c > Kmax for c in counts]).any()
                    if fault == "bad_index_not_flagged":
                        past_end = Const(0, 1)
                    with m.If(off >= hw.index_rows):
                        m.d.sync += sticky[0].eq(1)
                    with m.Elif((cfg.data[ab_bits + P * cb_bits:] != 0) | too_many | past_end):
                        m.d.sync += sticky[2].eq(1)
                    with m.Else():
                        m.d.comb += iw.en.eq(1)
                with m.Case(REGION_BLOCKS):
                    with m.If(off >= hw.weight_words):
                        m.d.sync += sticky[0].eq(1)
                    with m.Else():
                        m.d.comb += w_en.eq(1)
                with m.Default():
                    m.d.sync += sticky[0].eq(1)

        # BAD_CONFIG: golden.image.config_errors, in hardware
        def above(sig, limit):     # sig > limit, or nothing when the register cannot hold more (no constant compare)
            return sig > limit if (1 << len(sig)) - 1 > limit else Const(0, 1)

        L = g["N_LAYERS"]
        Tr = g["TIME_STEPS"]
        errs = [(L < 1) | above(L, Lmax), (Tr < 1) | above(Tr, T), (g["N_FEATURES"] < 1) | above(g["N_FEATURES"], Fmax),
                (g["N_CLASSES"] < 2) | above(g["N_CLASSES"], Cmax),
                (g["READOUT_BITS"] < 2) | above(g["READOUT_BITS"], sbm), above(g["READOUT_SHIFT"], hw.max_shift)]
        for l in range(Lmax):
            r = lr[l]
            fan_in = g["N_FEATURES"] if l == 0 else lr[l - 1]["SIZE"]
            sb = r["STATE_BITS"]
            e = ((r["SIZE"] < 1) | above(r["SIZE"], Nmax) | (sb < 2) | above(sb, sbm) | (r["THRESHOLD"] < 1)
                 | (r["THRESHOLD"] >= (Const(1, sbm + 1) << (sb - 1)[:len(sb)])) | (r["LEAK_SHIFT"] >= sb)
                 | above(r["IN_SHIFT"], hw.max_shift) | above(r["REC_SHIFT"], hw.max_shift)
                 | (r["IN_INDEX_BASE"] + fan_in > hw.index_rows)
                 | (r["REC_INDEX_BASE"] + r["SIZE"] > hw.index_rows)
                 | (r["SPIKE_LEVELS"] < 1) | above(r["SPIKE_LEVELS"], hw.max_spike_level)
                 | (above(r["SPIKE_LEVELS"], 1) & above(Tr, 1)))
            errs.append(e & (l < L))
            errs.append((L == l + 1) & (g["OUT_INDEX_BASE"] + r["SIZE"] > hw.index_rows))
        bad_config = Signal()
        m.d.comb += bad_config.eq(Cat(*errs).any())
        m.d.comb += [self.status.bad_address.eq(sticky[0]), self.status.bad_value.eq(sticky[1]),
                     self.status.bad_pointer.eq(sticky[2]), self.status.bad_chunk.eq(sticky[3]),
                     self.status.bad_config.eq(bad_config)]

        # ------------------------------------------------------------------ state
        features = Signal(data.ArrayLayout(unsigned(fb), Fmax))
        sbits = hw.spike_bits         # bits of a spike level (1: binary spikes only)
        spikes = [[Signal(data.ArrayLayout(unsigned(sbits), Nmax), name=f"spikes{l}_t{t}") for t in range(T)]
                  for l in range(Lmax)]
        fresh = Signal(Lmax + 1, init=(1 << (Lmax + 1)) - 1)    # after a reset every state reads as zero
        stage = Signal(range(Lmax + 1))
        counters = {c: Signal(COUNTER_BITS, name=f"cnt_{c}") for c in CORE_COUNTERS}
        m.submodules.smem = smem = memory.Memory(shape=data.ArrayLayout(signed(sbm), P), depth=Lmax * Kn + Kc,
                                                 init=[])
        sw_, sr_ = smem.write_port(), smem.read_port(domain="sync")
        readout_dbg = Signal(data.ArrayLayout(signed(sbm), Cmax)) if self.debug else None
        best_val = Signal(signed(sbm))
        best_idx = Signal(_bits(Cmax))
        ran = Signal()

        # stage parameters (runtime muxes over the stage index)
        is_ro = Signal()
        m.d.comb += is_ro.eq(stage == L)
        # the per-stage register sets are laid out as layers 0 .. Lmax-1, then the readout at Lmax: the readout
        # stage (stage == L, the configured layer count) selects entry Lmax
        sel = Signal(range(Lmax + 1))
        m.d.comb += sel.eq(Mux(is_ro, Lmax, stage))
        sizes = Array([lr[l]["SIZE"] for l in range(Lmax)] + [Const(0, widths["SIZE"])])
        n_out = Signal(range(max(Nmax, Cmax) + 1))
        m.d.comb += n_out.eq(Mux(is_ro, g["N_CLASSES"], sizes[stage]))
        chunks = Signal(range(Kmax + 1))
        m.d.comb += chunks.eq((n_out + P - 1) // P)
        n_ff = Signal(range(W + 1))
        m.d.comb += n_ff.eq(Mux(stage == 0, g["N_FEATURES"], sizes[stage - 1]))
        n_rec = Signal(range(W + 1))
        m.d.comb += n_rec.eq(Mux(is_ro, 0, sizes[stage]))
        tmask = Signal(T)
        m.d.comb += tmask.eq((Const(1, T + 1) << Tr) - 1)
        spk_any = [Signal(Nmax, name=f"spk_any{l}") for l in range(Lmax)]
        for l in range(Lmax):
            m.d.comb += spk_any[l].eq(_or_all([_nonzero(spikes[l][t], Nmax) for t in range(T)]))
        feat_nz = Signal(Fmax)
        m.d.comb += feat_nz.eq(Cat(*[features[i] != 0 for i in range(Fmax)]))
        all_ones = Const((1 << W) - 1, W)

        # ------------------------------------------------------------------ the RUN units
        # sources: the features' activity, each layer's spikes, all ones (the dense baseline). Stage s scans
        # source s (features or the layer below) then source s + 1 (its own spikes; none for the readout).
        srcs = [feat_nz] + spk_any + [all_ones]
        m.submodules.gen = gen = EventGen(W, S, len(srcs))
        m.d.comb += [gen.sources[i].eq(v) for i, v in enumerate(srcs)]
        m.d.comb += [gen.ff_sel.eq(Mux(self.dense, len(srcs) - 1, stage)),
                     gen.rec_sel.eq(Mux(self.dense, len(srcs) - 1, stage + 1)),
                     gen.n_ff.eq(n_ff), gen.n_rec.eq(n_rec)]
        # row lookup: the index entry of each event (one cycle), then to the lanes whose lists of the row are not empty
        idx_ff = Array([lr[0]["IN_INDEX_BASE"]] + [lr[l]["IN_INDEX_BASE"] for l in range(1, Lmax)]
                       + [g["OUT_INDEX_BASE"]])
        idx_rec = Array([lr[l]["REC_INDEX_BASE"] for l in range(Lmax)] + [Const(0, widths["REC_INDEX_BASE"])])
        ev = gen.o.payload
        m.d.comb += [gen.o.ready.eq(1), ir.addr.eq(Mux(ev.rec, idx_rec[sel], idx_ff[sel]) + ev.index)]
        ev_index = ev.index
        src_mask = Signal(T)
        src_payload = Signal(fb)
        feat_arr = Array([features[i] for i in range(Fmax)] + [Const(0, fb)] * (W - Fmax))
        lay_sel = Mux(ev.rec, stage, stage - 1)
        with m.If((stage == 0) & ~ev.rec):
            m.d.comb += [src_payload.eq(feat_arr[ev_index]), src_mask.eq(tmask)]
        with m.Else():     # the source's level of each layer first, then the layer (sbits, not Nmax, muxed)
            # The event's payload is the level; a multi-level layer runs only at TIME_STEPS = 1 (BAD_CONFIG
            # otherwise) and binary levels are 1, so the OR of the steps' levels is the payload of every step
            # in the mask.
            lv = [Signal(sbits, name=f"src_level_t{t}") for t in range(T)]
            for t in range(T):
                m.d.comb += lv[t].eq(Array([spikes[l_][t].as_value().word_select(ev_index, sbits)
                                            for l_ in range(Lmax)] + [Const(0, sbits)])[lay_sel])
            payload = Const(1, sbits) if fault == "spike_payload_one" else _or_all(lv)
            m.d.comb += [src_payload.eq(payload), src_mask.eq(Cat(*[lv[t] != 0 for t in range(T)]))]
        pend = Signal()
        pend_ev = Signal(data.StructLayout({"payload": fb, "mask": T, "rec": 1}))
        m.d.sync += [pend.eq(gen.o.valid), pend_ev.payload.eq(src_payload), pend_ev.mask.eq(src_mask),
                     pend_ev.rec.eq(ev.rec)]
        # Each lane: a queue, a fetch walking the lane's entries of the queued events in its own weight memory, and
        # an accumulator unit (a PE array of one PE over the lane's accumulator memory). The row lookup reads the
        # index once; the event goes to every lane whose list of the row is not empty: straight to the lane's fetch
        # when the lane's queue is empty and its fetch takes a new event this cycle, else into the lane's queue.
        in_shifts = Array([lr[l]["IN_SHIFT"] for l in range(Lmax)] + [g["READOUT_SHIFT"]])
        rec_shifts = Array([lr[l]["REC_SHIFT"] for l in range(Lmax)] + [Const(0, widths["REC_SHIFT"])])
        queues, fetches, accs = [], [], []
        q_clear = Signal()
        for p in range(P):
            queue = EventQueue(lay["queued"], event_queue_depth(hw))
            fetch = BlockFetch(lay["queued"], lay["entry"], fb, T, ab_bits, cb_bits, fault)
            m.submodules[f"queue{p}"], m.submodules[f"fetch{p}"] = queue, fetch
            looked = Signal(lay["queued"], name=f"looked{p}")   # the event with the lane's row entry
            cp = 0 if fault == "lanes_share_count" else p
            m.d.comb += [looked.payload.eq(pend_ev.payload), looked.mask.eq(pend_ev.mask), looked.rec.eq(pend_ev.rec),
                         looked.base.eq(ir.data.base), looked.count.eq(ir.data.count[cp])]
            has = Signal(name=f"has{p}")
            m.d.comb += has.eq(pend & (ir.data.count[cp] != 0))
            bypass = Signal(name=f"bypass{p}")
            q_free = Const(1, 1) if fault == "bypass_ignores_queue" else queue.empty
            m.d.comb += bypass.eq(q_free & fetch.q.ready & has)
            m.d.comb += [queue.w.valid.eq(has & ~bypass), queue.w.payload.eq(looked),
                         fetch.q.valid.eq(queue.r.valid | bypass),
                         fetch.q.payload.eq(Mux(queue.empty, looked, queue.r.payload)),
                         queue.r.ready.eq(fetch.q.ready), queue.clear.eq(q_clear)]
            ww_p, wr_p = wports[p]
            waddr = Signal.like(ww_p.addr, name=f"waddr{p}")
            m.d.comb += [waddr.eq(Mux(take_cfg, off, fetch.rd_addr)), ww_p.addr.eq(waddr), wr_p.addr.eq(waddr),
                         wr_p.en.eq(~ww_p.en), fetch.rd_data.eq(wr_p.data)]
            acc = AccUnit(fetch.o.payload.shape(), 1, T, ab, Kmax, hw.max_shift, fault)
            m.submodules[f"acc{p}"] = acc
            wiring.connect(m, fetch.o, acc.i)
            m.d.comb += [acc.chunks.eq(chunks), acc.shift_in.eq(in_shifts[sel]),
                         acc.shift_rec.eq((in_shifts if fault == "rec_uses_in_shift" else rec_shifts)[sel])]
            queues.append(queue)
            fetches.append(fetch)
            accs.append(acc)
        # The sweep may start while the lanes' last accumulations are written: the accumulator read ports are
        # transparent, and no later write goes to any chunk.
        sweep_ok = Signal()
        drained = Const(1, 1) if fault == "sweep_before_drain" else Cat(*[f.idle for f in fetches]).all()
        m.d.comb += sweep_ok.eq(gen.finished & ~pend & Cat(*[q.empty for q in queues]).all() & drained)
        # the accumulators of chunk k, every lane's side by side
        acc_word = data.ArrayLayout(data.ArrayLayout(signed(ab), P), T)
        acc_rd = Signal(acc_word)
        for p in range(P):
            m.d.comb += [acc_rd[t][p].eq(accs[p].sw_data[t][0]) for t in range(T)]

        # ------------------------------------------------------------------ the neuron sweep
        k = Signal(range(Kmax + 1))
        u_valid = Signal()
        u_k = Signal(range(Kmax + 1))
        sbase = Array([Const(l * Kn, range(Lmax * Kn + Kc + 1)) for l in range(Lmax + 1)])
        # The state memory is read one chunk ahead of the accumulators: chunk 0's state while the stage runs,
        # chunk k + 1's in the cycle that reads chunk k's accumulators (`ahead`), so that the first step's leak is
        # computed and registered (`lk_pf`) in the cycle before the update. The state memory is written
        # only by the update, one chunk behind, so no read sees a stale word; no cycle is added.
        ahead = Signal()
        m.d.comb += [a.sw_addr.eq(k) for a in accs]
        m.d.comb += sr_.addr.eq(sbase[sel] + k + ahead)
        # The update's parameters are registers, loaded every cycle from the stage index and the configuration
        # (an update comes at least two cycles after the stage changes: the RUN cycle in which the stage is new,
        # then the cycle that reads chunk 0), so that the update's path starts at a register and not at `stage`
        # through the register multiplexers (the FPGA's critical path). No cycle is added.
        lanes = Signal(P)              # the lanes of chunk u_k that hold a neuron: loaded with k, as u_k is
        for p in range(P):
            m.d.sync += lanes[p].eq(k * P + p < n_out)
        n_lanes = sum((lanes[p].as_unsigned() for p in range(P)), Const(0, range(P + 1)))
        st_bits = Array([lr[l]["STATE_BITS"] for l in range(Lmax)] + [g["READOUT_BITS"]])[sel]
        smax = Signal(signed(sbm + 2))
        smin = Signal(signed(sbm + 2))
        th = Signal(widths["THRESHOLD"])
        smax_th = Signal(signed(sbm + 2))          # smax - th: a saturated potential after a reset by subtraction
        th_sel = Array([lr[l]["THRESHOLD"] for l in range(Lmax)] + [Const(0, widths["THRESHOLD"])])[sel]
        top = Const(1, signed(sbm + 2)) << (st_bits - 1)[:len(st_bits)]
        m.d.sync += [smax.eq(top - 1), smin.eq(-top), th.eq(th_sel), smax_th.eq(top - 1 - th_sel)]
        # Multi-level spikes: level m (2 .. max_spike_level) is reached when v >= m * th; its registers hold
        # m * th, smax - m * th (the reset by subtraction of a saturated potential) and whether the level exists
        # (m <= the layer's SPIKE_LEVELS and m * th <= smax: above smax the saturated v never reaches it).
        Dmax = hw.max_spike_level
        d_sel = Array([lr[l]["SPIKE_LEVELS"] for l in range(Lmax)] + [Const(1, widths["SPIKE_LEVELS"])])[sel]
        th_m, smax_th_m, ok_m = {1: th}, {1: smax_th}, {}
        for lvl in range(2, Dmax + 1):
            th_m[lvl] = Signal(widths["THRESHOLD"] + Dmax.bit_length(), name=f"th_x{lvl}")
            smax_th_m[lvl] = Signal(signed(sbm + 2 + Dmax.bit_length()), name=f"smax_th_x{lvl}")
            ok_m[lvl] = Signal(name=f"level{lvl}_ok")
            below = Const(1, 1) if fault == "level_past_smax" else th_sel * lvl <= top - 1
            m.d.sync += [th_m[lvl].eq(th_sel * lvl), smax_th_m[lvl].eq(top - 1 - th_sel * lvl),
                         ok_m[lvl].eq((d_sel >= lvl) & below)]
        leak = Signal(widths["LEAK_SHIFT"])
        rzero, is_fresh, u_ro = Signal(), Signal(), Signal()
        m.d.sync += [leak.eq(Array([lr[l]["LEAK_SHIFT"] for l in range(Lmax)]
                                   + [Const(0, widths["LEAK_SHIFT"])])[sel]),
                     rzero.eq(Array([lr[l]["RESET"] for l in range(Lmax)] + [Const(0, 1)])[sel]),
                     is_fresh.eq(fresh.bit_select(stage, 1)), u_ro.eq(is_ro)]

        def leaky(v):
            return Mux(leak == 0, v, v - (v >> (leak + 1 if fault == "leak_off_by_one" else leak)))

        # The prefetched state of the next chunk (zero while the layer's state is fresh) after its first leak;
        # the readout's leak register is 0, so for the readout stage this is the state itself.
        lk_pf = Signal(data.ArrayLayout(signed(sbm + 1), P))
        for p in range(P):
            m.d.sync += lk_pf[p].eq(leaky(Mux(is_fresh, 0, sr_.data[p])))
        # Operand isolation: the update logic sees the accumulators only in a sweep cycle (u_valid), so it does
        # not toggle with every accumulator read of the RUN phase (less switching; much faster event-driven
        # simulation). The prefetched state (lk_pf) changes only when the state read moves to another chunk.
        acc_in = Signal(acc_word)
        m.d.comb += acc_in.eq(Mux(u_valid, acc_rd, 0))
        new_state = Signal(data.ArrayLayout(signed(sbm), P))
        fired = [Signal(data.ArrayLayout(unsigned(sbits), P), name=f"fired_t{t}") for t in range(T)]
        # Widths: a potential (after a reset by subtraction) fits sbm + 1 bits; a potential plus the accumulators
        # of up to T steps fits `wide`; the saturation brings every step back into the state format.
        # A step's compares are side by side, not in series (the update's path is the FPGA's critical path): as
        # 1 <= th <= smax (BAD_CONFIG otherwise), sat >= th exactly when tot >= th, and a reset by subtraction
        # of a saturated potential is smax - th.
        wide = max(sbm + 1, ab + T.bit_length()) + 1
        for p in range(P):
            cur = None                      # the potential after step t - 1 (step 0 starts from lk_pf)
            for t in range(T):
                leaked = lk_pf[p] if t == 0 else leaky(cur)
                tot_t = Signal(signed(wide + 1), name=f"tot{p}_{t}")
                m.d.comb += tot_t.eq(leaked + acc_in[t][p])
                over = Signal(name=f"over{p}_{t}")
                m.d.comb += over.eq(tot_t > smax)
                sat = Signal(signed(sbm), name=f"sat{p}_{t}")
                if fault == "no_saturation":     # wraps to the layer's state bits
                    wrapped = Signal(signed(sbm + 2), name=f"wrap{p}_{t}")
                    m.d.comb += wrapped.eq(((tot_t - smin) & (2 * smax + 1)) + smin)
                    m.d.comb += sat.eq(wrapped)
                else:
                    m.d.comb += sat.eq(Mux(over, smax, Mux(tot_t < smin, smin, tot_t)))
                # the spike level: the highest level reached (the levels reached are 1 .. k), and the potential
                # after a reset by k thresholds
                # Levels above 1 exist only at step 0: a multi-level layer runs at TIME_STEPS = 1 (BAD_CONFIG
                # otherwise), so the later steps of a frame keep the binary compare (half the level logic at T = 2).
                level, sub = Const(0, sbits), Const(0, 1)
                for lvl in range(1, (Dmax if t == 0 else 1) + 1):
                    if fault in ("no_saturation", "fire_above"):   # compares on the (wrapped) saturated v
                        hit = sat > th_m[lvl] if fault == "fire_above" else sat >= th_m[lvl]
                        sub_l = sat - th_m[lvl]
                    else:
                        hit = tot_t >= th_m[lvl]
                        sub_l = Mux(over, smax_th_m[lvl], tot_t - th_m[lvl])
                    if lvl > 1:
                        hit = hit & ok_m[lvl]
                    reached = Signal(name=f"reach{p}_{t}_{lvl}")
                    m.d.comb += reached.eq(hit)
                    level, sub = Mux(reached, lvl, level), Mux(reached, sub_l, sub)
                f = fired[t][p]
                m.d.comb += f.eq(Mux(lanes[p] & (t < Tr), level, 0))
                nxt = Mux(f != 0, Mux(rzero, 0, sub), sat)
                cur_t = Signal(signed(sbm + 1), name=f"v{p}_{t}")
                m.d.comb += cur_t.eq(nxt if t == 0 else Mux(t < Tr, nxt, cur))    # TIME_STEPS >= 1
                cur = cur_t
                if t == 0:
                    tot0, sat0 = tot_t, sat
            # readout: u + the sum over the steps of the accumulators, one saturation. Its state is lk_pf (its
            # leak register is 0), so the sum starts from step 0's; with T = 1 it is step 0's saturated sum.
            if T == 1 and fault != "no_saturation":     # the fault wraps the layers' potentials only
                ro_new = sat0
            else:
                tot = tot0 + sum((Mux(t < Tr, acc_in[t][p], 0) for t in range(1, T)), Const(0, 1))
                ro_new = Mux(tot > smax, smax, Mux(tot < smin, smin, tot))
            m.d.comb += new_state[p].eq(Mux(u_ro, ro_new, cur))
        # argmax of the chunk's new readout potentials (lowest index wins a tie), against the running best
        cand_v, cand_i, cand_ok = new_state[0], Const(0, range(P)), lanes[0]
        for p in range(1, P):   # a signal per step: the expressions would otherwise double at each step
            better = Signal(name=f"better{p}")
            above_v = new_state[p] >= cand_v if fault == "argmax_last_on_tie" else new_state[p] > cand_v
            m.d.comb += better.eq(lanes[p] & (~cand_ok | above_v))
            nv, ni = Signal(signed(sbm), name=f"cand_v{p}"), Signal(range(P), name=f"cand_i{p}")
            m.d.comb += [nv.eq(Mux(better, new_state[p], cand_v)), ni.eq(Mux(better, p, cand_i))]
            cand_v, cand_i = nv, ni
            cand_ok = cand_ok | lanes[p]
        chunk_best = Signal(signed(sbm))
        chunk_idx = Signal(_bits(Cmax) + 1)
        m.d.comb += [chunk_best.eq(cand_v), chunk_idx.eq(u_k * P + cand_i)]
        # The running argmax over the chunks is one cycle behind the update: a chunk's best (cb_*) is registered
        # and folded into best_val / best_idx in the next cycle, so that the update's path does not go on through
        # the compare with best_val. The decision folds a candidate still pending (the last chunk's, in the first
        # cycle of OUT). No cycle is added.
        cb_val, cb_idx, cb_first, cb_pend = Signal(signed(sbm)), Signal(_bits(Cmax)), Signal(), Signal()
        m.d.sync += cb_pend.eq(u_valid & is_ro)
        cb_wins = Signal()
        m.d.comb += cb_wins.eq(cb_pend & (cb_first | ((cb_val >= best_val) if fault == "argmax_last_on_tie"
                                                      else (cb_val > best_val))))
        with m.If(cb_wins):
            m.d.sync += [best_val.eq(cb_val), best_idx.eq(cb_idx)]
        decision = Signal(_bits(Cmax))
        m.d.comb += decision.eq(Mux(cb_wins, cb_idx, best_idx))

        with m.If(u_valid):
            m.d.comb += [sw_.en.eq(1), sw_.addr.eq(sbase[sel] + u_k), sw_.data.eq(new_state)]
            m.d.comb += [x for a in accs for x in (a.clr_en.eq(1), a.clr_addr.eq(u_k))]
            m.d.sync += [counters["state_reads"].eq(counters["state_reads"] + n_lanes),
                         counters["state_writes"].eq(counters["state_writes"] + n_lanes)]
            with m.If(is_ro):
                m.d.sync += [cb_val.eq(chunk_best), cb_idx.eq(chunk_idx), cb_first.eq(u_k == 0)]
                if self.debug:
                    for c in range(Cmax):
                        with m.If((u_k == c // P) & lanes[c % P]):
                            m.d.sync += readout_dbg[c].eq(new_state[c % P])
            with m.Else():
                for l in range(Lmax):
                    with m.If(stage == l):
                        for t in range(T):
                            m.d.sync += spikes[l][t].as_value().word_select(u_k, P * sbits).eq(fired[t])

        # ------------------------------------------------------------------ counters of the RUN units
        def add(name, value):
            m.d.sync += counters[name].eq(counters[name] + value)

        with m.If(gen.o.valid):
            with m.If(ev.rec):
                add("rec_events", 1)
            with m.Else():
                add("in_events", 1)
            add("weight_reads", n_out)
        add("weight_words", sum((a.accumulate.as_unsigned() for a in accs), Const(0, range(P + 1))))
        add("nz_weight_reads", sum((Mux(a.accumulate, a.n_nz, 0) for a in accs), Const(0, range(P + 1))))
        add("accumulations", sum((Mux(a.accumulate, a.n_acc, 0) for a in accs), Const(0, range(P * T + 1))))
        with m.If(Cat(*[a.bad_chunk for a in accs]).any()):
            m.d.sync += sticky[3].eq(1)

        # ------------------------------------------------------------------ control
        in_compute = Signal()
        with m.If(in_compute):
            add("cycles", 1)
        m.d.comb += self.busy.eq(1)
        if fault == "cfg_ready_while_busy":
            m.d.comb += self.cfg.ready.eq(1)
        m.d.sync += u_valid.eq(0)
        with m.FSM(init="IDLE"):
            with m.State("IDLE"):
                # a configuration write goes first: a frame is taken only in a cycle without one
                m.d.comb += [self.busy.eq(0), self.inp.ready.eq(~self.cfg.valid), self.cfg.ready.eq(1)]
                with m.If(self.inp.valid & ~self.cfg.valid):
                    m.d.sync += [features.eq(self.inp.payload.features), stage.eq(0), k.eq(0)]
                    m.d.sync += [c.eq(0) for c in counters.values()]
                    with m.If(self.inp.payload.first):
                        m.d.sync += [s.eq(0) for row in spikes for s in row] + [fresh.eq(-1)]
                    with m.If(bad_config | (sticky != 0)):
                        m.d.sync += ran.eq(0)
                        m.next = "OUT"
                    with m.Else():
                        m.d.sync += ran.eq(1)
                        m.d.comb += [gen.start.eq(1), q_clear.eq(1)]
                        m.next = "RUN"
            with m.State("RUN"):
                m.d.comb += in_compute.eq(1)
                with m.If(sweep_ok):      # chunk 0 is read in this cycle (k = 0)
                    m.d.comb += ahead.eq(chunks > 1)
                    m.d.sync += [u_valid.eq(1), u_k.eq(0), k.eq(1)]
                    with m.If(chunks == 1):
                        m.next = "LAST"
                    with m.Else():
                        m.next = "SWEEP"
            with m.State("SWEEP"):
                m.d.comb += [in_compute.eq(1), ahead.eq(k + 1 < chunks)]
                m.d.sync += [u_valid.eq(1), u_k.eq(k), k.eq(k + 1)]
                with m.If(k == chunks - 1):
                    m.next = "LAST"
            with m.State("LAST"):
                if fault != "counter_skips_last":
                    m.d.comb += in_compute.eq(1)
                m.d.sync += [fresh.bit_select(stage, 1).eq(0), stage.eq(stage + 1), k.eq(0)]
                with m.If(is_ro):
                    m.next = "OUT"
                with m.Else():
                    m.d.comb += [gen.start.eq(1), q_clear.eq(1)]
                    m.next = "RUN"
                if fault == "hang":     # the readout's last update never ends
                    with m.If(is_ro):
                        m.d.sync += [fresh.bit_select(stage, 1).eq(fresh.bit_select(stage, 1)), stage.eq(stage)]
                        m.next = "LAST"
            with m.State("OUT"):
                m.d.comb += self.out.valid.eq(1)
                with m.If(self.out.ready):
                    m.next = "GAP" if fault == "slow_output" else "IDLE"
            if fault == "slow_output":
                with m.State("GAP"):
                    m.next = "IDLE"

        res = self.out.payload.result
        m.d.comb += [res.decision.eq(decision), res.ran.eq(ran), res.status.eq(self.status)]
        if self.debug:
            o = self.out.payload
            m.d.comb += o.readout.eq(readout_dbg)
            for l in range(Lmax):
                for t in range(T):
                    m.d.comb += o.spikes[l][t].eq(spikes[l][t])
            for c in CORE_COUNTERS:
                m.d.comb += getattr(o.counters, c).eq(counters[c])
        return m


def _nonzero(levels, n: int):
    """Bit ``j``: element ``j`` of the array ``levels`` (``n`` unsigned levels) is not zero."""
    return Cat(*[levels[j] != 0 for j in range(n)])


def _or_all(vals):
    out = vals[0]
    for v in vals[1:]:
        out = out | v
    return out
