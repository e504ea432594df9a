"""cocotb testbench of the board link (``rtl.board.BoardLink``, issue #17) inside :class:`tb.board_sim.HostLine`:
cocotb hands the host's bytes to the harness, which puts them on the board's ``rx`` line bit by bit (``divisor``
clock cycles a bit), and collects the bytes the harness decodes from the board's ``tx`` line; they are written to
``$RSNN_TB_RESULT``. A packet marked ``wait`` is sent only once every earlier packet has its reply (the host waits
for a FRAME's RESULT); the others follow back to back. Driven by :func:`tb.board_sim.simulate_board`.
"""
from __future__ import annotations

import json
import os

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, ReadOnly, RisingEdge, Timer

from rsnn.board_protocol import complete_replies

PERIOD_NS = 10


@cocotb.test()
async def board(dut):
    job = np.load(os.environ["RSNN_TB_JOB"])
    d = int(job["divisor"])
    data, starts, wait = bytes(job["data"].astype(np.uint8)), [int(x) for x in job["starts"]], job["wait"]
    watchdog = int(job["watchdog_cycles"])
    # the clock toggles in the simulator interface (C++), not in a Python coroutine: twice a cycle less Python
    cocotb.start_soon(Clock(dut.clk, PERIOD_NS, unit="ns", impl="gpi").start())
    dut.h_valid.value = 0
    dut.rst.value = 1
    await ClockCycles(dut.clk, 4)
    dut.rst.value = 0
    await ClockCycles(dut.clk, 4)
    # Every write from here on happens half a cycle away from a rising edge (the clock runs in the simulator
    # interface, whose edges and our writes would otherwise race): waits are whole periods from this point.
    await Timer(PERIOD_NS // 2, unit="ns")
    got = bytearray()
    error = None

    async def stb_monitor():                   # woken only when a byte arrives (cheap): the edges of r_stb / r_bad
        while True:
            await RisingEdge(dut.r_stb)
            await ReadOnly()                   # r_data settles in the same time step as r_stb
            got.append(int(dut.r_data.value))

    async def bad_monitor():
        while True:
            await RisingEdge(dut.r_bad)
            got.extend(b"\xff\xff")

    cocotb.start_soon(stb_monitor())
    cocotb.start_soon(bad_monitor())
    seen = [0, 0]                              # replies counted so far, and where they end in `got`

    def replies() -> int:                      # incremental: a long run must not rescan every reply
        more = complete_replies(got[seen[1]:])
        for _ in range(more):
            seen[1] += 4 + (got[seen[1] + 2] | got[seen[1] + 3] << 8) + 1
        seen[0] += more
        return seen[0]

    async def until_replies(n: int) -> bool:
        waited = 0
        while replies() < n:
            await Timer(10 * d * PERIOD_NS, unit="ns")
            waited += 10 * d
            if waited > watchdog:
                return False
        return True

    for k in range(len(starts) - 1):
        if wait[k] and not await until_replies(k):
            error = f"watchdog: no reply to packet {replies()} within {watchdog} cycles"
            break
        for byte in data[starts[k]:starts[k + 1]]:
            if int(dut.h_busy.value):
                error = "the harness was still sending when the next byte came"
                break
            dut.h_data.value = byte
            dut.h_valid.value = 1
            await Timer(PERIOD_NS, unit="ns")      # one rising edge: the harness takes the byte
            dut.h_valid.value = 0
            # the frame's 10 bits of d cycles (the harness is free after them): waits by time, not by cycle
            await Timer(10 * d * PERIOD_NS, unit="ns")
        if error:
            break
    if error is None and not await until_replies(len(starts) - 1):
        error = f"watchdog: {replies()} replies for {len(starts) - 1} packets"
    await ClockCycles(dut.clk, 12 * d)
    with open(os.environ["RSNN_TB_RESULT"], "w") as fh:
        json.dump({"bytes": list(got), "error": error}, fh)
