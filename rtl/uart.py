"""A UART for the board's host link (issue #17): 8 data bits, no parity, 1 stop bit (8N1), least significant bit
first, idle high, at ``clock / divisor`` baud (the iCEBreaker: 12 MHz / 104 = 115,384 baud, 0.16 % from 115,200).

:class:`UARTRx` turns the ``rx`` line into a stream of bytes, :class:`UARTTx` a stream of bytes into the ``tx``
line. Both count ``divisor`` clock cycles per bit; the receiver synchronises ``rx`` through two flip-flops, finds
the start bit's falling edge, checks the line is still low half a bit later and samples each bit in its middle.
A byte whose stop bit is low is not delivered and pulses ``framing_error``; a byte that completes while the
previous one still waits on ``o`` is dropped and pulses ``overrun`` (the protocol above answers both with an error
reply). The receiver needs ``divisor >= 4``; it tolerates a baud-rate mismatch of a few percent.
"""
from __future__ import annotations

from amaranth import Cat, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["UARTRx", "UARTTx", "uart_bits"]


def uart_bits(byte: int) -> list:
    """The line levels of one 8N1 frame of ``byte`` (start, 8 data bits LSB first, stop): the specification both
    components are tested against."""
    if not 0 <= byte <= 255:
        raise ValueError(f"a UART byte is 0..255, not {byte!r}")
    return [0] + [byte >> i & 1 for i in range(8)] + [1]


def _check_divisor(divisor: int) -> int:
    if isinstance(divisor, bool) or not isinstance(divisor, int) or divisor < 4:
        raise ValueError(f"the UART divisor (clock cycles per bit) must be an integer >= 4, not {divisor!r}")
    return divisor


class UARTRx(wiring.Component):
    """``rx`` (the line) -> ``o`` (stream of bytes); ``framing_error`` / ``overrun`` pulse for one cycle."""

    def __init__(self, divisor: int):
        self.divisor = _check_divisor(divisor)
        super().__init__({"rx": In(1, init=1), "o": Out(stream.Signature(8)), "framing_error": Out(1),
                          "overrun": Out(1)})

    def elaborate(self, platform):
        m = Module()
        d = self.divisor
        sync = Signal(2, init=0b11)
        m.d.sync += sync.eq(Cat(self.rx, sync[0]))
        line = sync[1]
        timer = Signal(range(d))
        bit = Signal(range(10))
        shift = Signal(8)
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        with m.FSM():
            with m.State("IDLE"):
                with m.If(~line):
                    m.d.sync += timer.eq(d // 2 - 1)
                    m.next = "START"
            with m.State("START"):             # half a bit: still low in the middle, or a glitch
                with m.If(timer != 0):
                    m.d.sync += timer.eq(timer - 1)
                with m.Elif(line):
                    m.next = "IDLE"
                with m.Else():
                    m.d.sync += [timer.eq(d - 1), bit.eq(0)]
                    m.next = "DATA"
            with m.State("DATA"):
                with m.If(timer != 0):
                    m.d.sync += timer.eq(timer - 1)
                with m.Else():
                    m.d.sync += [shift.eq(Cat(shift[1:], line)), timer.eq(d - 1), bit.eq(bit + 1)]
                    with m.If(bit == 7):
                        m.next = "STOP"
            with m.State("STOP"):
                with m.If(timer != 0):
                    m.d.sync += timer.eq(timer - 1)
                with m.Else():
                    with m.If(~line):
                        m.d.comb += self.framing_error.eq(1)
                        m.next = "BREAK"       # wait for the line to go idle again
                    with m.Elif(self.o.valid & ~self.o.ready):
                        m.d.comb += self.overrun.eq(1)
                        m.next = "IDLE"
                    with m.Else():
                        m.d.sync += [self.o.payload.eq(shift), self.o.valid.eq(1)]
                        m.next = "IDLE"
            with m.State("BREAK"):
                with m.If(line):
                    m.next = "IDLE"
        return m


class UARTTx(wiring.Component):
    """``i`` (stream of bytes) -> ``tx`` (the line); ``i.ready`` is high while idle and in the last cycle of a
    stop bit."""

    def __init__(self, divisor: int):
        self.divisor = _check_divisor(divisor)
        super().__init__({"i": In(stream.Signature(8)), "tx": Out(1, init=1)})

    def elaborate(self, platform):
        m = Module()
        d = self.divisor
        frame = Signal(10, init=0x3FF)         # start, 8 data, stop: shifted out LSB first
        left = Signal(range(11))
        timer = Signal(range(d))
        # ready while idle, and in the last cycle of a stop bit: frames follow back to back
        m.d.comb += [self.tx.eq(frame[0]), self.i.ready.eq((left == 0) | ((left == 1) & (timer == 0)))]
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += [frame.eq(Cat(0, self.i.payload, 1)), left.eq(10), timer.eq(d - 1)]
        with m.Elif(left != 0):
            with m.If(timer != 0):
                m.d.sync += timer.eq(timer - 1)
            with m.Else():
                m.d.sync += [frame.eq(Cat(frame[1:], 1)), left.eq(left - 1), timer.eq(d - 1)]
        return m
