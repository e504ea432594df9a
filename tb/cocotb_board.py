"""cocotb testbench of the board link (``rtl.board.BoardLink``, issue #17) at the bit level: it drives the UART ``rx``
line with the job's packets (``divisor`` clock cycles a bit), decodes the ``tx`` line into reply bytes, and writes
them to ``$RSNN_TB_RESULT``. A packet marked ``wait`` is sent only once every earlier packet has its reply (the
host waits for a FRAME's RESULT); the others follow back to back. Driven by :func:`tb.board_sim.simulate_board`.
"""
from __future__ import annotations

import json
import os

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge, Timer

from rsnn.board_protocol import SYNC_BOARD
from rtl.uart import uart_bits

PERIOD_NS = 10


def complete_replies(got: bytearray) -> int:
    """Replies fully received in ``got`` (sync, code, length, payload, checksum); stops at a byte that is not a
    sync byte where one must be (the caller's parser then names it)."""
    n, i = 0, 0
    while i + 4 <= len(got) and got[i] == SYNC_BOARD:
        end = i + 4 + (got[i + 2] | got[i + 3] << 8)
        if end >= len(got):
            break
        n, i = n + 1, end + 1
    return n


@cocotb.test()
async def board(dut):
    job = np.load(os.environ["RSNN_TB_JOB"])
    d = int(job["divisor"])
    data, starts, wait = bytes(job["data"].astype(np.uint8)), [int(x) for x in job["starts"]], job["wait"]
    watchdog = int(job["watchdog_cycles"])
    cocotb.start_soon(Clock(dut.clk, PERIOD_NS, unit="ns").start())
    dut.rx.value = 1
    dut.rst.value = 1
    await ClockCycles(dut.clk, 4)
    dut.rst.value = 0
    await ClockCycles(dut.clk, 4)
    got = bytearray()
    error = None

    bit = PERIOD_NS * d                        # one bit time; waits by time, not cycle by cycle (much faster)

    async def monitor():
        while True:
            await FallingEdge(dut.tx)
            await Timer(bit // 2 + 1, unit="ns")   # the middle of the start bit (tx moves only at bit edges)
            if int(dut.tx.value):
                continue                       # a glitch, not a start bit
            byte = 0
            for k in range(8):
                await Timer(bit, unit="ns")
                byte |= int(dut.tx.value) << k
            await Timer(bit, unit="ns")
            if not int(dut.tx.value):
                got.extend(b"\xff\xff")        # a stop bit that is low: garbage that the parser refuses
            got.append(byte)

    cocotb.start_soon(monitor())

    async def until_replies(n: int) -> bool:
        waited = 0
        while complete_replies(got) < n:
            await Timer(bit, unit="ns")
            waited += d
            if waited > watchdog:
                return False
        return True

    for k in range(len(starts) - 1):
        if wait[k] and not await until_replies(k):
            error = f"watchdog: no reply to packet {complete_replies(got)} within {watchdog} cycles"
            break
        for byte in data[starts[k]:starts[k + 1]]:
            for level in uart_bits(byte):
                dut.rx.value = level
                await Timer(bit, unit="ns")
    if error is None and not await until_replies(len(starts) - 1):
        error = f"watchdog: {complete_replies(got)} replies for {len(starts) - 1} packets"
    await ClockCycles(dut.clk, 12 * d)
    with open(os.environ["RSNN_TB_RESULT"], "w") as fh:
        json.dump({"bytes": list(got), "error": error}, fh)
