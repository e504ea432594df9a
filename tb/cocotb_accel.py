"""cocotb test: stream the frames of a job through the accelerator, time every handshake, and record every output
word.

The job (``RSNN_TB_JOB``, an .npz written by :mod:`tb.runner`) holds the frames, the weight words to load through
the write port (or none: weights were set at elaboration), the dense switch, the random input bubbles, output
backpressure (short stalls and outputs held for thousands of cycles), inputs presented while the accelerator is
still busy, weight writes attempted while busy, resets asserted in the middle of a frame or of an utterance, and
the watchdog limit. The result (``RSNN_TB_RESULT``, JSON) is the output words and, per frame, the clock edges at
which the testbench saw the handshakes happen: the testbench is a witness of its own and does not trust the
RTL's ``cycles`` counter. Comparing words and timing with golden is the caller's job (:func:`tb.runner.compare`,
one comparison in Python for every simulator). A signal that is X or Z makes ``int()`` raise: the test fails.

Timing: the clock has a 10 ns period with rising edges at multiples of 10 ns; edge ``k`` is at ``10 k`` ns. The
testbench drives and samples at falling edges. Per frame it records ``t_in`` (the edge that took the input word),
``t_valid`` (the edge after which ``out.valid`` went high), ``t_out`` (the first edge at which the testbench had
``out.ready`` high), the cycles it held ``out.ready`` low, whether ``inp.ready`` was high right after ``t_out``,
whether it had already presented the next frame while this one's output was pending, and ``t_taken``: the edge
after which the DUT dropped ``out.valid`` (seen by a monitor, -1 if it did not), i.e. where the DUT let go of the
word.
"""
from __future__ import annotations

import json
import os
import random

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, RisingEdge, SimTimeoutError, Timer, with_timeout
from cocotb.utils import get_sim_time

from rtl.layout import pack_features

PERIOD_NS = 10


class ProtocolError(AssertionError):
    """The DUT broke the stream protocol: no answer within the watchdog limit, ``out.valid`` rising more than
    once for a frame, ``busy`` low while computing."""


def _edge_now() -> int:
    """The index of the latest rising edge (at a rising edge: that edge)."""
    return int(get_sim_time("ns")) // PERIOD_NS


async def _watch(trigger, signal, times: list):
    while True:
        await trigger(signal)
        times.append(_edge_now())


async def _cycles(dut, n: int):
    """Wait ``n`` clock cycles, from a falling edge to a falling edge (one trigger for long waits)."""
    if n > 4:
        await Timer(n * PERIOD_NS - 2, unit="ns")
        await FallingEdge(dut.clk)
    else:
        for _ in range(n):
            await FallingEdge(dut.clk)


class Bench:
    def __init__(self, dut, meta: dict, rng: random.Random):
        self.dut, self.meta, self.rng = dut, meta, rng
        self.rises: list = []
        self.falls: list = []
        self.words: list = []
        self.timing: list = []
        self.stimulus = {"input_bubble": 0, "busy_write": 0, "reset_mid_frame": 0, "reset_output_pending": 0,
                         "reset_between_frames": 0}
        self.watchdog = int(meta["watchdog_cycles"])
        self.where = ""

    def fail(self, msg: str):
        raise ProtocolError(f"{msg} ({self.where}; watchdog {self.watchdog} cycles)")

    async def reset(self, cycles: int):
        dut = self.dut
        dut.inp__valid.value = 0
        dut.rst.value = 1
        await _cycles(dut, cycles)
        dut.rst.value = 0

    def present(self, frame, first: bool):
        self.dut.inp__payload.value = int(first) | pack_features(frame, self.meta["feature_bits"]) << 1
        self.dut.inp__valid.value = 1

    async def accept(self) -> int:
        """At a falling edge with ``inp.valid`` high: wait for ``inp.ready``; return the edge that takes the word.
        Returns at the falling edge after it, with ``inp.valid`` low."""
        dut, waited = self.dut, 0
        while int(dut.inp__ready.value) == 0:
            await FallingEdge(dut.clk)
            waited += 1
            if waited > self.watchdog:
                self.fail("watchdog: inp.ready stayed low")
        t_in = _edge_now() + 1
        await FallingEdge(dut.clk)
        dut.inp__valid.value = 0
        return t_in

    async def busy_write(self):
        """A weight write while the accelerator is busy: documented to be ignored (the results must not change)."""
        dut = self.dut
        if int(dut.busy.value) != 1:
            self.fail("busy is low while a frame is being computed")
        dut.wr__en.value = 1
        dut.wr__addr.value = self.rng.randrange(self.meta["wmem_depth"])
        dut.wr__data.value = self.rng.getrandbits(self.meta["wdata_bits"])
        self.stimulus["busy_write"] += 1
        await FallingEdge(dut.clk)
        dut.wr__en.value = 0

    async def configure(self, words):
        """The configurable core: every configuration write through the ``cfg`` stream, each held until taken."""
        dut, waited = self.dut, 0
        dut.cfg__valid.value = 1
        for w in words:
            dut.cfg__payload.value = int(w, 16)
            while int(dut.cfg__ready.value) == 0:
                await FallingEdge(dut.clk)
                waited += 1
                if waited > self.watchdog:
                    self.fail("watchdog: cfg.ready stayed low")
            await FallingEdge(dut.clk)
        dut.cfg__valid.value = 0
        await FallingEdge(dut.clk)   # inp.ready depends on cfg.valid: let it settle before a frame is offered

    async def held_write(self, word: str):
        """The configurable core: a configuration write (a word of the image again, so nothing changes) offered
        while a frame is computed. It must not be taken while ``busy`` is high (back-pressure, never dropped) and
        must be taken once the core is idle. Runs as a task of its own: a broken rule is returned, not raised
        (the caller raises it, so that it reaches the result file like any other)."""
        try:
            await self._held_write(word)
        except ProtocolError as e:
            return e
        return None

    async def _held_write(self, word: str):
        dut, waited = self.dut, 0
        dut.cfg__payload.value = int(word, 16)
        dut.cfg__valid.value = 1
        self.stimulus["busy_write"] += 1
        while True:
            await FallingEdge(dut.clk)
            if int(dut.cfg__ready.value):
                if int(dut.busy.value):
                    self.fail("cfg.ready is high while the core is busy")
                break
            waited += 1
            if waited > self.watchdog + 6000:     # the frame, then an output the testbench may hold 5000 cycles
                self.fail("watchdog: a configuration write was never taken")
        await FallingEdge(dut.clk)       # taken on the rising edge before this one
        dut.cfg__valid.value = 0
        await FallingEdge(dut.clk)       # inp.ready depends on cfg.valid: let it settle

    def hold_cycles(self) -> int:
        m, r = self.meta, self.rng
        if r.random() < m["long_stall_p"]:
            return r.randint(1000, 5000)
        if r.random() < m["stall_p"]:
            return r.randint(1, 8)
        return 0

    async def collect(self, rises_before: int, next_frame=None) -> tuple:
        """Wait for this frame's output word and take it; optionally present ``next_frame`` (frame, first) while
        the output is pending. Returns (t_valid, t_out, hold, ready_back, t_taken)."""
        dut = self.dut
        if int(dut.out__valid.value) == 0:
            try:
                await with_timeout(RisingEdge(dut.out__valid), self.watchdog * PERIOD_NS, "ns")
            except SimTimeoutError:
                self.fail("watchdog: no output word")
            await FallingEdge(dut.clk)
        if len(self.rises) != rises_before + 1:
            self.fail(f"out.valid rose {len(self.rises) - rises_before} times for one frame")
        t_valid = self.rises[-1]
        if self.meta["ready_always"]:
            if _edge_now() != t_valid:
                self.fail("the testbench reached the output late")
            hold = 0
        else:
            hold = self.hold_cycles()
            await _cycles(dut, hold)
            hold = _edge_now() - t_valid
        if next_frame is not None:
            self.present(*next_frame)
        word = dut.out__payload.value
        if not word.is_resolvable:      # name the X / Z bits (from the low end) instead of failing on int()
            bad = [i for i, b in enumerate(reversed(str(word))) if b not in "01"]
            self.fail(f"the output word has {len(bad)} bits that are not 0/1, bits {bad[:8]}...")
        self.words.append(hex(int(word)))
        falls_before = len(self.falls)
        dut.out__ready.value = 1
        await FallingEdge(dut.clk)
        t_out = _edge_now()
        ready_back = int(dut.inp__ready.value) == 1 and int(dut.out__valid.value) == 0
        t_taken = self.falls[-1] if len(self.falls) == falls_before + 1 else -1
        if not self.meta["ready_always"]:
            dut.out__ready.value = 0
        return t_valid, t_out, hold, ready_back, t_taken


@cocotb.test()
async def run_job(dut):
    job = np.load(os.environ["RSNN_TB_JOB"])
    meta = json.loads(str(job["meta"]))
    rng = random.Random(meta["seed"])
    frames, lengths = job["frames"], job["lengths"]
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(int)
    aborts = {(int(u), int(f)): int(d) for u, f, d in meta["aborts"]}
    cocotb.start_soon(Clock(dut.clk, PERIOD_NS, unit="ns").start())
    bench = Bench(dut, meta, rng)
    cocotb.start_soon(_watch(RisingEdge, dut.out__valid, bench.rises))
    cocotb.start_soon(_watch(FallingEdge, dut.out__valid, bench.falls))
    dut.rst.value = 1
    dut.inp__valid.value = 0
    dut.inp__payload.value = 0
    dut.out__ready.value = 1 if meta["ready_always"] else 0
    core = meta.get("core", False)     # the configurable core (rtl/core.py): configuration through `cfg`
    if core:
        dut.cfg__valid.value = 0
        dut.cfg__payload.value = 0
    else:
        dut.wr__en.value = 0
        dut.wr__addr.value = 0
        dut.wr__data.value = 0
    dut.dense.value = int(meta["dense"])
    await FallingEdge(dut.clk)
    await bench.reset(3)
    if "config" in job.files:
        await bench.configure(job["config"])
    if "weights" in job.files:
        for addr, word in enumerate(job["weights"]):
            dut.wr__en.value = 1
            dut.wr__addr.value = addr
            dut.wr__data.value = int(word, 16)
            await FallingEdge(dut.clk)
        dut.wr__en.value = 0
    error = None
    try:
        presented = False
        for u, n in enumerate(lengths.tolist()):
            for f in range(n):
                bench.where = f"utterance {u} frame {f}"
                delay = aborts.get((u, f))
                if delay is not None and delay < 0:        # reset between two frames of the utterance
                    await bench.reset(rng.randint(1, 3))
                    bench.stimulus["reset_between_frames"] += 1
                    break
                if not presented:
                    bubbles = 0
                    while rng.random() < meta["bubble_p"]:   # input bubbles: valid low for a while
                        await FallingEdge(dut.clk)
                        bubbles += 1
                    bench.stimulus["input_bubble"] += bubbles > 0
                    bench.present(frames[starts[u] + f], f == 0)
                rises_before = len(bench.rises)       # before the take: a refused frame answers at once
                t_in = await bench.accept()
                held = None
                if rng.random() < meta["busy_write_p"]:
                    if core and delay is None:   # a configuration write offered while busy: held back until
                        #                              the frame is out (not on a frame that a reset aborts)
                        held = cocotb.start_soon(bench.held_write(rng.choice(list(job["config"]))))
                    elif not core:
                        await bench.busy_write()
                if delay is not None:                      # reset in the middle of this frame
                    await _cycles(dut, delay)
                    computing = int(dut.busy.value) == 1 and int(dut.out__valid.value) == 0
                    await bench.reset(rng.randint(1, 3))
                    bench.stimulus["reset_mid_frame" if computing else "reset_output_pending"] += 1
                    presented = False
                    break
                nxt = None
                if held is not None:
                    pass          # the held write goes first once idle: no next frame waits beside it
                elif f + 1 < n and (u, f + 1) not in aborts and rng.random() < meta["preload_p"]:
                    nxt = (frames[starts[u] + f + 1], False)
                elif f + 1 == n and u + 1 < len(lengths) and (u + 1, 0) not in aborts \
                        and rng.random() < meta["preload_p"]:
                    nxt = (frames[starts[u + 1]], True)
                presented = nxt is not None
                t_valid, t_out, hold, ready_back, t_taken = await bench.collect(rises_before, nxt)
                bench.timing.append([u, f, t_in, t_valid, t_out, hold, int(ready_back), int(presented), t_taken,
                                     int(held is not None)])
                if held is not None:
                    err = await held
                    if err is not None:
                        raise err
    except ProtocolError as e:
        error = str(e)
    with open(os.environ["RSNN_TB_RESULT"], "w") as fh:
        json.dump({"words": bench.words, "timing": bench.timing, "stimulus": bench.stimulus, "error": error}, fh)
    assert error is None, error
