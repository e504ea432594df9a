"""cocotb test: stream the frames of a job through the accelerator and record every output word.

The job (``RSNN_TB_JOB``, an .npz written by :mod:`tb.runner`) holds the frames, the weight words to load through
the write port (or none: weights were set at elaboration), the dense switch and the random input bubbles / output
backpressure. The output words go to ``RSNN_TB_RESULT`` (JSON). Comparing them with golden is the caller's job
(one comparison, in Python, for every simulator). A signal that is X or Z makes ``int()`` raise: the test fails.
"""
from __future__ import annotations

import json
import os
import random

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge, RisingEdge

from rtl.layout import pack_features


async def _load_weights(dut, words):
    for addr, word in enumerate(words):
        await FallingEdge(dut.clk)
        dut.wr__en.value = 1
        dut.wr__addr.value = addr
        dut.wr__data.value = int(word)
    await FallingEdge(dut.clk)
    dut.wr__en.value = 0


async def _drive(dut, frames, firsts, feature_bits, rng, bubble_p):
    for frame, first in zip(frames, firsts):
        await FallingEdge(dut.clk)
        while rng.random() < bubble_p:            # input bubbles: valid low for a while
            dut.inp__valid.value = 0
            await FallingEdge(dut.clk)
        dut.inp__payload.value = int(first) | pack_features(frame, feature_bits) << 1   # {first, features}
        dut.inp__valid.value = 1
        if int(dut.inp__ready.value) == 0:
            await RisingEdge(dut.inp__ready)
            await FallingEdge(dut.clk)
        # ready is high at this falling edge: the next rising edge takes the word
    await FallingEdge(dut.clk)
    dut.inp__valid.value = 0


async def _collect(dut, n, rng, stall_p, out):
    for _ in range(n):
        if int(dut.out__valid.value) == 0:
            await RisingEdge(dut.out__valid)
        await FallingEdge(dut.clk)
        while rng.random() < stall_p:            # backpressure: keep ready low a few cycles
            dut.out__ready.value = 0
            await FallingEdge(dut.clk)
        out.append(hex(int(dut.out__payload.value)))
        dut.out__ready.value = 1
        await FallingEdge(dut.clk)
        dut.out__ready.value = 0 if stall_p > 0 else 1


@cocotb.test()
async def run_job(dut):
    job = np.load(os.environ["RSNN_TB_JOB"])
    meta = json.loads(str(job["meta"]))
    rng = random.Random(meta["seed"])
    frames, lengths = job["frames"], job["lengths"]
    firsts = np.zeros(len(frames), dtype=np.int64)
    firsts[np.concatenate([[0], np.cumsum(lengths)[:-1]])] = 1
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    dut.rst.value = 1
    dut.inp__valid.value = 0
    dut.out__ready.value = 0 if meta["stall_p"] > 0 else 1
    dut.wr__en.value = 0
    dut.wr__addr.value = 0
    dut.wr__data.value = 0
    dut.dense.value = int(meta["dense"])
    await ClockCycles(dut.clk, 3)
    await FallingEdge(dut.clk)
    dut.rst.value = 0
    if "weights" in job.files:
        await _load_weights(dut, [int(w, 16) for w in job["weights"]])
    out = []
    collector = cocotb.start_soon(_collect(dut, len(frames), rng, meta["stall_p"], out))
    await _drive(dut, frames, firsts, meta["feature_bits"], rng, meta["bubble_p"])
    await collector
    with open(os.environ["RSNN_TB_RESULT"], "w") as f:
        json.dump({"words": out}, f)
