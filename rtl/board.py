"""The board's host link (issue #17): :class:`LinkEngine` speaks the byte protocol of
:mod:`rsnn.board_protocol` between a byte stream in, a byte stream out and the configurable core's ``cfg``,
``inp`` and ``out`` streams; :class:`BoardLink` puts it between a UART (:mod:`rtl.uart`) and a core.

The engine reads one packet at a time into a buffer as wide as the longest payload (a configuration word or an
input word), checks its length as soon as the header is in, its checksum at the end, its pad bits, and only then
writes the word to the core (CONFIG), offers it as a frame and waits for the result (FRAME), or reads the status
(STATUS); each command gets one reply. Every malformed packet gets an ERROR reply with its reason, after which the
engine waits for the next sync byte: the board keeps working. A packet left incomplete for ``timeout`` cycles is
abandoned the same way.
"""
from __future__ import annotations

from amaranth import Cat, Const, Module, Mux, Signal
from amaranth.lib import fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from golden.params import HardwareParams
from rsnn.board_protocol import CMD, REPLY, SYNC_BOARD, SYNC_HOST, word_bytes

from .core import Core, core_layouts
from .uart import UARTRx, UARTTx

__all__ = ["LinkEngine", "BoardLink", "crc8_step"]

ERR_CRC, ERR_LENGTH, ERR_COMMAND, ERR_PAD, ERR_TIMEOUT, ERR_UART = 1, 2, 3, 4, 5, 6


def _crc8_columns() -> list:
    """CRC-8 over one byte is linear over GF(2) in ``crc ^ byte``: output bit ``i`` is the XOR of the input bits in
    column ``i``, found by running the bitwise algorithm on each unit vector."""
    cols = [set() for _ in range(8)]
    for j in range(8):
        c = 1 << j
        for _ in range(8):
            c = ((c << 1) ^ 0x07) & 0xFF if c & 0x80 else (c << 1) & 0xFF
        for i in range(8):
            if c >> i & 1:
                cols[i].add(j)
    return [sorted(c) for c in cols]


_CRC8_COLS = _crc8_columns()


def crc8_step(crc, byte):
    """One byte of CRC-8 (polynomial 0x07, MSB first) as an expression: ``rsnn.board_protocol.crc8``'s step, as
    eight XORs of a few bits each (the shift-and-conditional-XOR loop written as expressions would double its
    expression tree at each of its eight steps)."""
    c = crc ^ byte
    bits = []
    for col in _CRC8_COLS:
        b = Const(0, 1)
        for j in col:
            b = b ^ c[j]
        bits.append(b)
    return Cat(*bits)


class LinkEngine(wiring.Component):
    """``rx`` (bytes from the host) -> the core's ``cfg`` / ``inp`` / ``out`` -> ``tx`` (reply bytes).
    ``uart_error`` (a receiver's framing error or overrun) aborts the packet with an ERROR reply; ``status`` and
    ``busy`` come from the core; ``error_led`` is high from an ERROR reply until the next good reply."""

    def __init__(self, hw: HardwareParams, timeout: int = 1 << 20):
        self.hw, self.timeout = hw, timeout
        lay = core_layouts(hw)
        self.cfg_bits, self.inp_bits = lay["cfg"].size, lay["input"].size
        self.res_bits = lay["output"].size
        super().__init__({
            "rx": In(stream.Signature(8)), "tx": Out(stream.Signature(8)), "uart_error": In(1),
            "cfg": Out(stream.Signature(lay["cfg"])), "inp": Out(stream.Signature(lay["input"])),
            "out": In(stream.Signature(lay["output"])),
            "status": In(lay["status"]), "busy": In(1), "error_led": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        wc, wi = word_bytes(self.cfg_bits), word_bytes(self.inp_bits)
        nbuf = max(wc, wi)
        buf = Signal(8 * nbuf)
        cmd = Signal(8)
        length = Signal(16)
        count = Signal(range(nbuf + 1))
        crc = Signal(8)
        idle = Signal(range(self.timeout + 1))
        # the reply: up to 4 header bytes + 2 payload bytes + crc, sent from a small register file
        r_code = Signal(8)
        r_len = Signal(2)
        r_data = Signal(16)
        r_idx = Signal(range(8))
        r_crc = Signal(8)
        err = Signal(8)
        n_res = word_bytes(self.res_bits)

        byte = self.rx.payload
        took = self.rx.valid & self.rx.ready

        def reply(code, n, data):
            return [r_code.eq(code), r_len.eq(n), r_data.eq(data), r_idx.eq(0), r_crc.eq(0)]

        expected = Mux(cmd == CMD["CONFIG"], wc, Mux(cmd == CMD["FRAME"], wi, 0))
        known = (cmd == CMD["CONFIG"]) | (cmd == CMD["FRAME"]) | (cmd == CMD["STATUS"])
        pad_cfg = buf[self.cfg_bits:8 * wc] if 8 * wc > self.cfg_bits else Const(0, 1)
        pad_inp = buf[self.inp_bits:8 * wi] if 8 * wi > self.inp_bits else Const(0, 1)
        m.d.comb += [self.cfg.payload.eq(buf[:self.cfg_bits]), self.inp.payload.eq(buf[:self.inp_bits])]

        with m.FSM():
            with m.State("SYNC"):
                m.d.comb += self.rx.ready.eq(1)
                with m.If(took & (byte == SYNC_HOST)):
                    m.d.sync += [crc.eq(0), count.eq(0), buf.eq(0), idle.eq(0)]
                    m.next = "CMD"
            def receive(on_byte):
                """A state that waits for a byte: a UART error or the timeout ends the packet with an ERROR."""
                m.d.comb += self.rx.ready.eq(1)
                with m.If(self.uart_error):
                    m.d.sync += err.eq(ERR_UART)
                    m.next = "ERROR"
                with m.Elif(took):
                    m.d.sync += idle.eq(0)
                    on_byte()
                with m.Elif(idle == self.timeout):
                    m.d.sync += err.eq(ERR_TIMEOUT)
                    m.next = "ERROR"
                with m.Else():
                    m.d.sync += idle.eq(idle + 1)

            for state, nxt, field in (("CMD", "LEN0", cmd), ("LEN0", "LEN1", length[:8]),
                                      ("LEN1", "CHECK", length[8:])):
                with m.State(state):
                    def header(field=field, nxt=nxt):
                        m.d.sync += [field.eq(byte), crc.eq(crc8_step(crc, byte))]
                        m.next = nxt
                    receive(header)
            with m.State("CHECK"):
                with m.If(~known):
                    m.d.sync += err.eq(ERR_COMMAND)
                    m.next = "ERROR"
                with m.Elif(length != expected):
                    m.d.sync += err.eq(ERR_LENGTH)
                    m.next = "ERROR"
                with m.Elif(length == 0):
                    m.next = "CRC"
                with m.Else():
                    m.next = "PAYLOAD"
            with m.State("PAYLOAD"):
                def payload():
                    m.d.sync += [buf.word_select(count, 8).eq(byte), count.eq(count + 1),
                                 crc.eq(crc8_step(crc, byte))]
                    with m.If(count + 1 == length):
                        m.next = "CRC"
                receive(payload)
            with m.State("CRC"):
                def check():
                    with m.If(byte != crc):
                        m.d.sync += err.eq(ERR_CRC)
                        m.next = "ERROR"
                    with m.Else():
                        m.next = "EXEC"
                receive(check)
            with m.State("EXEC"):
                with m.If((cmd == CMD["CONFIG"]) & (pad_cfg != 0) | (cmd == CMD["FRAME"]) & (pad_inp != 0)):
                    m.d.sync += err.eq(ERR_PAD)
                    m.next = "ERROR"
                with m.Elif(cmd == CMD["CONFIG"]):
                    m.next = "CFG"
                with m.Elif(cmd == CMD["FRAME"]):
                    m.next = "FRAME"
                with m.Else():
                    m.d.sync += reply(REPLY["STATUS"], 2, Cat(self.status.as_value(), Const(0, 3), self.busy))
                    m.next = "REPLY"
            with m.State("CFG"):
                m.d.comb += self.cfg.valid.eq(1)
                with m.If(self.cfg.ready):
                    m.next = "CFG_DONE"
            with m.State("CFG_DONE"):          # the flags after the write
                m.d.sync += reply(REPLY["ACK"], 1, self.status.as_value())
                m.next = "REPLY"
            with m.State("FRAME"):
                m.d.comb += self.inp.valid.eq(1)
                with m.If(self.inp.ready):
                    m.next = "RESULT"
            with m.State("RESULT"):
                m.d.comb += self.out.ready.eq(1)
                with m.If(self.out.valid):
                    m.d.sync += reply(REPLY["RESULT"], n_res, self.out.payload.as_value())
                    m.next = "REPLY"
            with m.State("ERROR"):
                m.d.sync += reply(REPLY["ERROR"], 1, err)
                m.d.sync += self.error_led.eq(1)
                m.next = "REPLY"
            with m.State("REPLY"):
                # bytes: sync, code, len lo, len hi, payload (r_len), crc
                cur = Signal(8)
                last = Signal()
                with m.Switch(r_idx):
                    with m.Case(0):
                        m.d.comb += cur.eq(SYNC_BOARD)
                    with m.Case(1):
                        m.d.comb += cur.eq(r_code)
                    with m.Case(2):
                        m.d.comb += cur.eq(r_len)
                    with m.Case(3):
                        m.d.comb += cur.eq(0)
                    with m.Default():
                        m.d.comb += [cur.eq(Mux(r_idx - 4 < r_len, r_data.word_select((r_idx - 4)[:1], 8), r_crc)),
                                     last.eq(r_idx - 4 == r_len)]
                m.d.comb += [self.tx.valid.eq(1), self.tx.payload.eq(cur)]
                with m.If(self.tx.ready):
                    m.d.sync += r_idx.eq(r_idx + 1)
                    with m.If(r_idx != 0):
                        m.d.sync += r_crc.eq(crc8_step(r_crc, cur))
                    with m.If(last):
                        with m.If(r_code != REPLY["ERROR"]):
                            m.d.sync += self.error_led.eq(0)
                        m.next = "SYNC"
        return m


class BoardLink(wiring.Component):
    """A core behind the link: ``rx`` / ``tx`` are the UART lines at ``clock / divisor`` baud; ``led_ok`` (a
    model is loaded: no flag set), ``led_error`` (the last reply was an ERROR), ``led_busy``. A FIFO on each side
    (``rx_depth`` / ``tx_depth`` bytes) lets the host send CONFIG packets back to back while the replies drain (a
    reply is shorter than a CONFIG packet); it waits for a FRAME's RESULT when a frame's compute time exceeds
    ``rx_depth`` byte times."""

    def __init__(self, hw: HardwareParams, divisor: int, timeout: int = 1 << 20, rx_depth: int = 32,
                 tx_depth: int = 16):
        self.hw, self.divisor, self.timeout = hw, divisor, timeout
        self.rx_depth, self.tx_depth = rx_depth, tx_depth
        super().__init__({"rx": In(1, init=1), "tx": Out(1, init=1), "led_ok": Out(1), "led_error": Out(1),
                          "led_busy": Out(1)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.urx = urx = UARTRx(self.divisor)
        m.submodules.utx = utx = UARTTx(self.divisor)
        m.submodules.core = core = Core(self.hw, debug=False)
        m.submodules.link = link = LinkEngine(self.hw, self.timeout)
        m.d.comb += [urx.rx.eq(self.rx), self.tx.eq(utx.tx), link.uart_error.eq(urx.framing_error | urx.overrun),
                     link.status.eq(core.status), link.busy.eq(core.busy), core.dense.eq(0),
                     self.led_ok.eq(core.status.as_value() == 0), self.led_error.eq(link.error_led),
                     self.led_busy.eq(core.busy)]
        m.submodules.rxq = rxq = fifo.SyncFIFOBuffered(width=8, depth=self.rx_depth)
        m.submodules.txq = txq = fifo.SyncFIFOBuffered(width=8, depth=self.tx_depth)
        wiring.connect(m, urx.o, rxq.w_stream)
        wiring.connect(m, rxq.r_stream, link.rx)
        wiring.connect(m, link.tx, txq.w_stream)
        wiring.connect(m, txq.r_stream, utx.i)
        wiring.connect(m, link.cfg, core.cfg)
        wiring.connect(m, link.inp, core.inp)
        wiring.connect(m, core.out, link.out)
        return m
