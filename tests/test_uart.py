"""rtl/uart.py in Amaranth's simulator against its specification (rtl.uart.uart_bits: the line levels of one 8N1
frame): bytes through the receiver at the exact rate and a few percent off, the transmitter's line sampled bit by
bit, the two in a loop, a framing error and an overrun."""
from __future__ import annotations

import pytest
from amaranth import Module
from amaranth.sim import Simulator

from rtl.uart import UARTRx, UARTTx, uart_bits


def _line(data: list, divisor: float, gaps: list) -> list:
    """Line level per clock cycle: each byte's frame, ``divisor`` cycles a bit (rounded per bit edge, so a
    non-integer divisor models a mismatched baud rate), after ``gaps[k]`` idle cycles."""
    out = [1] * 7
    for b, gap in zip(data, gaps):
        out += [1] * gap
        t0 = len(out)
        for k, level in enumerate(uart_bits(b)):
            out += [level] * (round(t0 + (k + 1) * divisor) - len(out))
    return out + [1] * 40


def _receive(levels: list, divisor: int, ready=lambda cycle: True) -> dict:
    dut = UARTRx(divisor)
    got = {"bytes": [], "framing": 0, "overrun": 0}

    async def bench(ctx):
        for cycle, level in enumerate(levels):
            ctx.set(dut.rx, level)
            ctx.set(dut.o.ready, ready(cycle))
            if ctx.get(dut.o.valid) and ready(cycle):
                got["bytes"].append(ctx.get(dut.o.payload))
            got["framing"] += ctx.get(dut.framing_error)
            got["overrun"] += ctx.get(dut.overrun)
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return got


@pytest.mark.parametrize("divisor,rate", [(8, 1.0), (8, 1.03), (8, 0.97), (16, 1.0), (5, 1.0)])
def test_receiver_delivers_every_byte(divisor, rate, rng):
    data = [0x00, 0xFF, 0x55, 0xAA] + [int(x) for x in rng.integers(0, 256, 12)]
    gaps = [int(x) for x in rng.integers(0, 3 * divisor, len(data))]
    got = _receive(_line(data, divisor * rate, gaps), divisor)
    assert got == {"bytes": data, "framing": 0, "overrun": 0}


def test_receiver_flags_a_low_stop_bit_and_recovers():
    d = 8
    bad = [0] + [0] * 8 + [0] * 3              # start, 0x00, a stop bit that is low (a break), then idle
    levels = [1] * 5 + [lvl for lvl in bad for _ in range(d)] + [1] * 20 + _line([0x3C], d, [0])
    got = _receive(levels, d)
    assert got == {"bytes": [0x3C], "framing": 1, "overrun": 0}


def test_receiver_drops_a_byte_that_finds_the_last_one_not_taken():
    d = 8
    levels = _line([1, 2, 3], d, [0, 0, 0])
    got = _receive(levels, d, ready=lambda cycle: cycle > 25 * d)    # the consumer wakes up after byte 2 is done
    assert got["overrun"] == 1 and got["bytes"] == [1, 3]


def test_receiver_ignores_a_glitch_shorter_than_half_a_bit():
    d = 16
    levels = [1] * 10 + [0] * 3 + [1] * 40 + _line([0x81], d, [0])
    assert _receive(levels, d) == {"bytes": [0x81], "framing": 0, "overrun": 0}


@pytest.mark.parametrize("divisor", [4, 7, 12])
def test_transmitter_line_is_the_frame_of_each_byte_back_to_back(divisor, rng):
    data = [int(x) for x in rng.integers(0, 256, 6)]
    dut = UARTTx(divisor)
    levels = []

    async def bench(ctx):
        k = 0
        for _ in range(12 * divisor * len(data) + 50):
            if k < len(data):
                ctx.set(dut.i.valid, 1)
                ctx.set(dut.i.payload, data[k])
                if ctx.get(dut.i.ready):
                    k += 1
            else:
                ctx.set(dut.i.valid, 0)
            await ctx.tick()
            levels.append(ctx.get(dut.tx))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    want = [lvl for b in data for lvl in uart_bits(b) for _ in range(divisor)]
    start = levels.index(0)
    assert all(v == 1 for v in levels[:start])
    assert levels[start:start + len(want)] == want          # no idle bit between the frames
    assert all(v == 1 for v in levels[start + len(want):])


def test_transmitter_into_receiver(rng):
    d = 6
    data = [int(x) for x in rng.integers(0, 256, 10)]
    m = Module()
    m.submodules.tx = tx = UARTTx(d)
    m.submodules.rx = rx = UARTRx(d)
    m.d.comb += rx.rx.eq(tx.tx)
    got = []

    async def bench(ctx):
        k = 0
        ctx.set(rx.o.ready, 1)
        for _ in range(12 * d * len(data) + 80):
            ctx.set(tx.i.valid, k < len(data))
            if k < len(data):
                ctx.set(tx.i.payload, data[k])
                if ctx.get(tx.i.ready):
                    k += 1
            if ctx.get(rx.o.valid):
                got.append(ctx.get(rx.o.payload))
            await ctx.tick()

    sim = Simulator(m)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert got == data


def test_bad_divisor_and_byte_are_refused():
    from rtl.uart import _check_divisor          # what both constructors call first
    for bad in (3, 0, 2.5, True):
        with pytest.raises(ValueError, match="divisor"):
            _check_divisor(bad)
    with pytest.raises(ValueError, match="0..255"):
        uart_bits(256)
