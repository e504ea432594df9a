"""Each component of the configurable core (rtl/core.py) on its own, in Amaranth's simulator, against a golden
function of its own: the event generator against golden's scan (golden/core_cycles.py), the event queue against a
list, the block fetch against the concatenation of its events' blocks, the PE array against numpy."""
from __future__ import annotations

import numpy as np
import pytest
from amaranth import signed
from amaranth.lib import data
from amaranth.sim import Simulator

from golden.core_cycles import _scan
from rtl.core import AccUnit, BlockFetch, EventGen, EventQueue


def _bits(flags) -> int:
    return sum(1 << i for i, f in enumerate(flags) if f)


def run(dut, bench):
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()


@pytest.mark.parametrize("W,S", [(16, 4), (20, 8), (12, 1)])
def test_event_generator_follows_the_golden_scan(W, S, rng):
    for trial in range(4):
        n_ff, n_rec = int(rng.integers(1, W + 1)), int(rng.integers(0, W + 1))
        ff = rng.random(W) < 0.3
        rec = rng.random(W) < 0.3
        src_ff, src_rec, other = (int(i) for i in rng.permutation(3))
        dut = EventGen(W, S, 3)
        got = {}

        async def bench(ctx):
            ctx.set(dut.sources[src_ff], _bits(ff))
            ctx.set(dut.sources[src_rec], _bits(rec))
            ctx.set(dut.sources[other], _bits(~ff))        # a source not selected must not leak in
            ctx.set(dut.ff_sel, src_ff)
            ctx.set(dut.rec_sel, src_rec)
            ctx.set(dut.n_ff, n_ff)
            ctx.set(dut.n_rec, n_rec)
            ctx.set(dut.o.ready, 1)
            ctx.set(dut.start, 1)
            await ctx.tick()
            ctx.set(dut.start, 0)
            events, cycle = [], 0
            while not ctx.get(dut.finished):
                if ctx.get(dut.o.valid):
                    events.append((cycle, ctx.get(dut.o.payload.index), ctx.get(dut.o.payload.rec)))
                await ctx.tick()
                cycle += 1
                assert cycle < 10 * W
            got["events"], got["cycles"] = events, cycle

        run(dut, bench)
        t_ff, G_ff, _ = _scan(ff[:n_ff], S)
        want = [(int(t_ff[i]), i, 0) for i in range(n_ff) if ff[i]]
        G = int(G_ff)
        if n_rec:
            t_rec, G_rec, _ = _scan(rec[:n_rec], S)
            want += [(G + int(t_rec[i]), i, 1) for i in range(n_rec) if rec[i]]
            G += int(G_rec)
        assert got["events"] == want
        assert got["cycles"] == G     # `finished` is high from the cycle after the last scan cycle


def test_event_generator_holds_an_event_until_taken(rng):
    W, S = 16, 4
    ff = rng.random(W) < 0.5
    dut = EventGen(W, S)
    seen = []

    async def bench(ctx):
        ctx.set(dut.sources[0], _bits(ff))
        ctx.set(dut.n_ff, W)
        ctx.set(dut.n_rec, 0)
        ctx.set(dut.start, 1)
        await ctx.tick()
        ctx.set(dut.start, 0)
        for _ in range(200):
            if ctx.get(dut.finished):
                break
            ready = int(rng.random() < 0.4)
            ctx.set(dut.o.ready, ready)
            if ctx.get(dut.o.valid) and ready:
                seen.append(ctx.get(dut.o.payload.index))
            await ctx.tick()

    run(dut, bench)
    assert seen == [i for i in range(W) if ff[i]]


def test_event_queue_is_a_fifo_one_cycle_behind_its_writes(rng):
    lay = data.StructLayout({"v": 8})
    dut = EventQueue(lay, 6)
    errors = []

    async def bench(ctx):
        model, nxt = [], 0
        for cycle in range(300):
            w = rng.random() < 0.5
            r = rng.random() < 0.5
            clear = rng.random() < 0.02
            ctx.set(dut.w.valid, int(w))
            ctx.set(dut.w.payload.v, nxt & 0xFF)
            ctx.set(dut.r.ready, int(r))
            ctx.set(dut.clear, int(clear))
            valid = ctx.get(dut.r.valid)
            if valid != bool(model) or (valid and ctx.get(dut.r.payload.v) != model[0]):
                errors.append((cycle, valid, model[:3]))
            wrote = w and ctx.get(dut.w.ready)
            popped = valid and r
            await ctx.tick()
            if clear:
                model = []
                continue
            if popped:
                model.pop(0)
            if wrote:
                model.append(nxt & 0xFF)
                nxt += 1
            # w.ready is low when full: depth 6 counts writes since the last clear
        assert not errors, errors[:3]

    run(dut, bench)


def test_block_fetch_reads_one_block_per_cycle_back_to_back(rng):
    ab, cb, fb, T = 8, 3, 4, 2
    qlay = data.StructLayout({"payload": fb, "mask": T, "rec": 1, "base": ab, "count": cb})
    blay = data.StructLayout({"chunk": 3, "weights": 8})
    dut = BlockFetch(qlay, blay, fb, T, ab, cb)
    mem = [int(rng.integers(0, 1 << 11)) for _ in range(1 << ab)]
    entries = [(int(rng.integers(1, 16)), int(rng.integers(1, 4)), int(rng.integers(0, 2)),
                int(rng.integers(0, 200)), int(rng.integers(1, 6))) for _ in range(12)]
    want = [(mem[base + i], pay, mask, rec) for pay, mask, rec, base, count in entries for i in range(count)]
    got = {}

    async def bench(ctx):
        queue = list(entries)
        out, cycle, last_addr, idle_seen = [], 0, None, []
        while cycle < 200:
            if queue:
                pay, mask, rec, base, count = queue[0]
                for k, v in (("payload", pay), ("mask", mask), ("rec", rec), ("base", base), ("count", count)):
                    ctx.set(getattr(dut.q.payload, k), v)
            ctx.set(dut.q.valid, int(bool(queue)))
            ctx.set(dut.rd_data.as_value(), mem[last_addr] if last_addr is not None else 0)
            if ctx.get(dut.o.valid):
                out.append((ctx.get(dut.o.payload.block.as_value()), ctx.get(dut.o.payload.payload),
                            ctx.get(dut.o.payload.mask), ctx.get(dut.o.payload.rec)))
            popped = queue and ctx.get(dut.q.ready)
            last_addr = ctx.get(dut.rd_addr)
            idle_seen.append(ctx.get(dut.idle))
            await ctx.tick()
            cycle += 1
            if popped:
                queue.pop(0)
            if not queue and idle_seen[-1] and out:
                break
        got["out"], got["cycles"] = out, cycle

    run(dut, bench)
    assert got["out"] == want
    assert got["cycles"] <= len(want) + 2      # no bubble between events


@pytest.mark.parametrize("P", [1, 4])     # 1: a lane's accumulator unit in the core
def test_pe_array_accumulates_blocks_exactly_and_skips_bad_chunks(rng, P):
    T, ab, K, wb, fb = 2, 16, 5, 4, 4
    blay = data.StructLayout({"chunk": 3, "weights": data.ArrayLayout(signed(wb), P)})
    ilay = data.StructLayout({"block": blay, "payload": fb, "mask": T, "rec": 1})
    dut = AccUnit(ilay, P, T, ab, K + 2, 3)
    chunks = K
    acc = np.zeros((K + 2, T, P), dtype=np.int64)
    blocks = []
    for _ in range(60):
        chunk = int(rng.integers(0, K + 2))
        w = rng.integers(-8, 8, P)
        pay, mask, rec = int(rng.integers(0, 16)), int(rng.integers(0, 4)), int(rng.integers(0, 2))
        blocks.append((chunk, w, pay, mask, rec))
    shift_in, shift_rec = 1, 2
    flags = []
    result = {}

    async def bench(ctx):
        ctx.set(dut.chunks, chunks)
        ctx.set(dut.shift_in, shift_in)
        ctx.set(dut.shift_rec, shift_rec)
        for chunk, w, pay, mask, rec in blocks:
            valid = rng.random() < 0.7
            ctx.set(dut.i.valid, int(valid))
            ctx.set(dut.i.payload.block.chunk, chunk)
            for p in range(P):
                ctx.set(dut.i.payload.block.weights[p], int(w[p]))
            ctx.set(dut.i.payload.payload, pay)
            ctx.set(dut.i.payload.mask, mask)
            ctx.set(dut.i.payload.rec, rec)
            if valid:
                flags.append(ctx.get(dut.bad_chunk))
                if chunk < chunks:
                    for t in range(T):
                        if mask >> t & 1:
                            acc[chunk, t] += w * pay << (shift_rec if rec else shift_in)
                else:
                    assert ctx.get(dut.bad_chunk)
            await ctx.tick()
        ctx.set(dut.i.valid, 0)
        await ctx.tick()
        await ctx.tick()
        out = np.zeros((K, T, P), dtype=np.int64)
        for k in range(K):
            ctx.set(dut.sw_addr, k)
            await ctx.tick()
            for t in range(T):
                for p in range(P):
                    out[k, t, p] = ctx.get(dut.sw_data[t][p])
        result["acc"] = out

    run(dut, bench)
    assert np.array_equal(result["acc"], acc[:K])
    assert any(flags)
