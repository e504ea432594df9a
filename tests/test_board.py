"""The board's host link (issue #17) in Amaranth's simulator: rsnn.board_protocol's packets into rtl.board's engine in
front of a small core (a random model loaded, frames run, results equal to golden's decisions), malformed packets
(each answered with its ERROR reason, the engine working afterwards), and the whole link over UART lines."""
from __future__ import annotations

import numpy as np
import pytest
from amaranth import Module
from amaranth.sim import Simulator

from golden.image import load_image
from golden.model import random_model
from golden.network import run_batch
from golden.params import HardwareParams, LayerParams, NetworkParams, ReadoutParams
from rsnn.board_protocol import (CMD, ERRORS, REPLY, crc8, config_packets, frame_packet, packet, parse_replies,
                                 word_bytes)
from rtl.board import BoardLink, LinkEngine
from rtl.core import Core, core_layouts
from rtl.uart import uart_bits

HW = HardwareParams(pe_count=4, time_steps=1, max_features=8, max_neurons=12, max_classes=4, max_layers=1,
                    scan_width=4, weight_words=64, index_rows=32, acc_bits=16, max_state_bits=12,
                    max_feature_bits=4)


def small_model(seed=1):
    net = NetworkParams(n_features=6, time_steps=1, feature_bits=4,
                        layers=(LayerParams(size=10, state_bits=10, threshold=12, leak_shift=2),),
                        readout=ReadoutParams(size=3, state_bits=12)).validate()
    return random_model(net, seed=seed, density=0.5)


def run_engine(data, timeout=4000, max_cycles=200_000, gap=0) -> bytes:
    """``data`` (bytes, or a list of chunks sent ``gap`` idle cycles apart) into the engine (one byte every 3
    cycles, as a fast UART would), the engine's reply bytes out."""
    chunks = [data] if isinstance(data, (bytes, bytearray)) else list(data)
    starts = [sum(len(c) for c in chunks[:k]) for k in range(len(chunks))]
    data = b"".join(chunks)
    m = Module()
    m.submodules.core = core = Core(HW, debug=False)
    m.submodules.link = link = LinkEngine(HW, timeout=timeout)
    from amaranth.lib import wiring
    wiring.connect(m, link.cfg, core.cfg)
    wiring.connect(m, link.inp, core.inp)
    wiring.connect(m, core.out, link.out)
    m.d.comb += [link.status.eq(core.status), link.busy.eq(core.busy)]
    out = bytearray()

    async def bench(ctx):
        i, wait = 0, 0
        ctx.set(link.tx.ready, 1)
        for _ in range(max_cycles):
            if i < len(data) and wait == 0:
                ctx.set(link.rx.valid, 1)
                ctx.set(link.rx.payload, data[i])
            if ctx.get(link.tx.valid):
                out.append(ctx.get(link.tx.payload))
            if ctx.get(link.rx.valid) and ctx.get(link.rx.ready):
                i, wait = i + 1, 3 + (gap if i + 1 in starts else 0)
            await ctx.tick()
            ctx.set(link.rx.valid, 0)
            wait = max(0, wait - 1)
            if i == len(data) and not ctx.get(link.tx.valid) and _settled(out, data):
                break

    sim = Simulator(m)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return bytes(out)


def _settled(out: bytearray, data: bytes) -> bool:
    """Every host packet has had its reply (one per packet, counted by sync bytes; good enough for these tests)."""
    try:
        return len(parse_replies(bytes(out))) >= data.count(bytes([0xA5]))
    except ValueError:
        return False


def result_fields(payload: bytes) -> dict:
    lay = core_layouts(HW)["output"]["result"].shape
    w = int.from_bytes(payload, "little")
    f = {n: (w >> lay[n].offset) & ((1 << lay[n].width) - 1) for n in ("decision", "ran", "status")}
    return f


def test_crc8_is_the_standard_one():
    assert crc8(b"123456789") == 0xF4          # CRC-8 (poly 0x07, init 0): its published check value
    p = packet(CMD["STATUS"])
    assert p == bytes([0xA5, 0x03, 0, 0, crc8(bytes([0x03, 0, 0]))])


def test_a_model_loaded_over_the_link_runs_frames_like_golden(rng):
    model = small_model()
    writes = load_image(model, HW)
    frames = rng.integers(0, 16, (5, 6)) * (rng.random((5, 6)) < 0.7)
    data = b"".join(config_packets(writes, HW))
    data += b"".join(frame_packet(f, k == 0, HW) for k, f in enumerate(frames))
    replies = parse_replies(run_engine(data))
    acks, results = replies[:len(writes)], replies[len(writes):]
    # each ACK carries the flags after its write: BAD_CONFIG while the registers are half written, none at the end
    assert all(code == REPLY["ACK"] and len(p) == 1 for code, p in acks) and acks[-1][1] == b"\x00"
    assert [c for c, _ in results] == [REPLY["RESULT"]] * len(frames)
    trace = run_batch(model, [frames])
    got = [result_fields(p) for _, p in results]
    assert [g["ran"] for g in got] == [1] * len(frames) and all(g["status"] == 0 for g in got)
    want = [int(np.argmax(trace.readout[0, f])) for f in range(len(frames))]
    assert [g["decision"] for g in got] == want


def _bad_packets():
    wc = word_bytes(core_layouts(HW)["cfg"].size)
    good_cfg = packet(CMD["CONFIG"], bytes(wc))
    bad_crc = bytearray(good_cfg)
    bad_crc[-1] ^= 0xFF
    pad = bytearray(bytes(wc))
    pad[-1] = 0x80                                   # the top pad bit of the configuration word
    return {1: bytes(bad_crc), 2: packet(CMD["CONFIG"], bytes(wc + 1)), 3: packet(0x7F),
            4: packet(CMD["CONFIG"], bytes(pad)), 5: bytes([0xA5, CMD["STATUS"], 0])}


@pytest.mark.parametrize("reason", [1, 2, 3, 4, 5])
def test_malformed_packets_get_their_error_and_the_link_keeps_working(reason):
    bad = _bad_packets()[reason]
    status = packet(CMD["STATUS"])
    # (reason 2: the surplus payload byte and the checksum are read as garbage while waiting for a sync byte; 5: the
    # host goes quiet in the middle of a packet for longer than the timeout)
    replies = parse_replies(run_engine([bad, status], timeout=300, gap=400))
    assert replies[0] == (REPLY["ERROR"], bytes([reason])), (ERRORS[reason], replies)
    assert replies[-1][0] == REPLY["STATUS"] and len(replies) == 2


def test_the_whole_link_over_uart_lines():
    d = 4
    m = Module()
    m.submodules.board = board = BoardLink(HW, d, timeout=2000)
    model = small_model(2)
    data = b"".join(config_packets(load_image(model, HW), HW)[:3]) + packet(CMD["STATUS"])
    line = [1] * 10 + [lvl for b in data for lvl in uart_bits(b) for _ in range(d)] + [1] * 4000
    tx = []

    async def bench(ctx):
        for level in line:
            ctx.set(board.rx, level)
            await ctx.tick()
            tx.append(ctx.get(board.tx))

    sim = Simulator(m)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    got, t = bytearray(), 0
    while True:                                        # decode the tx line: start bit, 8 bits mid-bit, stop
        try:
            t = tx.index(0, t)
        except ValueError:
            break
        bits = [tx[t + d // 2 + k * d] for k in range(10)]
        assert bits[0] == 0 and bits[9] == 1
        got.append(sum(b << k for k, b in enumerate(bits[1:9])))
        t += 10 * d - d // 2
    replies = parse_replies(bytes(got))
    assert [c for c, _ in replies] == [REPLY["ACK"]] * 3 + [REPLY["STATUS"]]


def test_crc8_step_expression_equals_the_protocol_crc(rng):
    from amaranth import Signal
    from amaranth.sim import Simulator
    from rtl.board import crc8_step
    a, b = Signal(8), Signal(8)
    out = Signal(8)
    from amaranth import Module
    m = Module()
    m.d.comb += out.eq(crc8_step(a, b))
    sim = Simulator(m)
    pairs = [(int(x), int(y)) for x, y in rng.integers(0, 256, (64, 2))] + [(0, 0), (255, 255), (0x80, 0)]

    async def bench(ctx):
        for x, y in pairs:
            ctx.set(a, x)
            ctx.set(b, y)
            assert ctx.get(out) == crc8(bytes([y]), crc=x), (x, y)

    sim.add_testbench(bench)
    sim.run()
