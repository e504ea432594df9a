"""The board link (``rtl.board.BoardLink``: UART, protocol engine, core) on a simulator at the bit level (issue
#17): a model loaded over the link with :mod:`rsnn.board_protocol`'s packets, utterances streamed frame by frame,
the decisions read back and compared with golden; malformed packets mixed in must each get their ERROR reply and
leave the link working. :func:`simulate_board` runs it; the cocotb side is :mod:`tb.cocotb_board`.
"""
from __future__ import annotations

import hashlib
import inspect
import os
import time
from pathlib import Path

import numpy as np
from amaranth import Cat, Const, Elaboratable, Module, Signal

from golden.image import load_image
from golden.model import Model
from golden.network import run_batch
from golden.params import HardwareParams
from rsnn.board_protocol import REPLY, parse_replies, result_fields, session

from .runner import SimError, build_sim, ensure_simulator, run_job

__all__ = ["BOARD_TOP", "HostLine", "simulate_board", "build_board_verilog"]

BOARD_TOP = "rsnn_board"


class HostLine(Elaboratable):
    """The testbench around :class:`rtl.board.BoardLink`: the host's end of the UART, written apart from
    :mod:`rtl.uart` (a witness of its own), so that cocotb hands over whole bytes while the board sees its ``rx``
    line move bit by bit. ``h_valid`` (one cycle, while ``h_busy`` is low) sends ``h_data`` as one 8N1 frame of
    ``divisor`` cycles a bit; each frame the board sends on ``tx`` pulses ``r_stb`` with ``r_data`` at the middle
    of its stop bit, and ``r_bad`` instead when that stop bit is low."""

    def __init__(self, hw: HardwareParams, divisor: int, timeout: int):
        self.hw, self.divisor, self.timeout = hw, divisor, timeout
        for name, width in (("h_data", 8), ("h_valid", 1), ("h_busy", 1), ("r_data", 8), ("r_stb", 1),
                            ("r_bad", 1), ("led_ok", 1), ("led_error", 1), ("led_busy", 1)):
            setattr(self, name, Signal(width, name=name))

    def elaborate(self, platform):
        from rtl.board import BoardLink
        m = Module()
        d = self.divisor
        m.submodules.board = board = BoardLink(self.hw, d, self.timeout)
        m.d.comb += [self.led_ok.eq(board.led_ok), self.led_error.eq(board.led_error),
                     self.led_busy.eq(board.led_busy)]
        # host -> board: a 10-bit frame (start 0, data LSB first, stop 1) shifted out every d cycles
        frame, left, tick = Signal(10, init=0x3FF), Signal(range(11)), Signal(range(d))
        m.d.comb += [board.rx.eq(frame[0]), self.h_busy.eq(left != 0)]
        with m.If(left == 0):
            with m.If(self.h_valid):
                m.d.sync += [frame.eq(Cat(Const(0, 1), self.h_data, Const(1, 1))), left.eq(10), tick.eq(d - 1)]
        with m.Elif(tick == 0):
            m.d.sync += [frame.eq(Cat(frame[1:], Const(1, 1))), left.eq(left - 1), tick.eq(d - 1)]
        with m.Else():
            m.d.sync += tick.eq(tick - 1)
        # board -> host: find a start bit, sample each bit in its middle
        got, nbit, wait, busy = Signal(8), Signal(range(10)), Signal(range(2 * d)), Signal()
        m.d.sync += [self.r_stb.eq(0), self.r_bad.eq(0)]
        with m.If(~busy):
            with m.If(~board.tx):
                m.d.sync += [busy.eq(1), nbit.eq(0), wait.eq(d + d // 2 - 1)]
        with m.Elif(wait != 0):
            m.d.sync += wait.eq(wait - 1)
        with m.Elif(nbit < 8):
            m.d.sync += [got.eq(Cat(got[1:], board.tx)), nbit.eq(nbit + 1), wait.eq(d - 1)]
        with m.Else():                       # the middle of the stop bit
            m.d.sync += [busy.eq(0), self.r_data.eq(got)]
            with m.If(board.tx):
                m.d.sync += self.r_stb.eq(1)
            with m.Else():
                m.d.sync += self.r_bad.eq(1)
        return m


def build_board_verilog(hw: HardwareParams, divisor: int, timeout: int, out_dir: Path) -> Path:
    """``<out_dir>/rsnn_board_<hash>.v``: :class:`HostLine` around :class:`rtl.board.BoardLink` for ``hw``
    (cached by the RTL and testbench sources)."""
    from rtl.build import _cached, _to_verilog
    root = Path(__file__).parent.parent
    src = "".join(p.read_text() for p in sorted((root / "rtl").glob("*.py"))) + inspect.getsource(HostLine)
    key = repr((src, hw.to_dict(), divisor, timeout))
    path = Path(out_dir) / f"{BOARD_TOP}_{hashlib.sha1(key.encode()).hexdigest()[:12]}.v"

    def make():
        top = HostLine(hw, divisor, timeout)
        ports = [top.h_data, top.h_valid, top.h_busy, top.r_data, top.r_stb, top.r_bad, top.led_ok, top.led_error,
                 top.led_busy]
        return _to_verilog(top, BOARD_TOP, ports)
    return _cached(path, make)


def simulate_board(sim: str, model: Model, hw: HardwareParams, utterances, work_dir: Path, *, divisor: int = 4,
                   timeout: int = 4096, bad_packets=(), optimize: bool = False) -> dict:
    """Load ``model`` over the link, then run ``utterances`` (each frame a FRAME packet, the next sent after its
    RESULT); ``bad_packets`` (``(position, bytes)``: before the frame packet number ``position``) are sent in
    between. ``optimize``: Verilator's C++ built optimised (for a long run; unoptimised builds faster). Returns
    ``replies`` (code, payload), ``decisions`` (per frame), ``golden`` (golden's decision per
    frame: the argmax of the readout so far), ``errors`` (the ERROR reasons, in order), ``acks``, ``wall_s``."""
    ensure_simulator(sim)
    work_dir = Path(work_dir).resolve()
    t0 = time.perf_counter()
    writes = load_image(model, hw)
    packets, wait = session(writes, [np.asarray(u) for u in utterances], hw, bad_packets)
    starts = np.cumsum([0] + [len(p) for p in packets])
    verilog = build_board_verilog(hw, divisor, timeout, work_dir / "verilog")
    flags = os.environ.get("MAKEFLAGS")
    if sim == "verilator" and not optimize:   # unoptimised C++ (as the regression builds it): the build dominates a short run
        os.environ["MAKEFLAGS"] = ((flags or "") + " OPT_FAST=-O0 OPT_SLOW=-O0 OPT_GLOBAL=-O0").strip()
    try:
        built = build_sim(sim, verilog, BOARD_TOP, work_dir)
    finally:
        if flags is None:
            os.environ.pop("MAKEFLAGS", None)
        else:
            os.environ["MAKEFLAGS"] = flags
    watchdog = 40 * divisor * 12 + 20 * (hw.max_neurons + hw.max_features) * 64
    job = {"data": np.frombuffer(b"".join(packets), dtype=np.uint8), "starts": starts,
           "wait": np.array(wait, dtype=np.int8), "divisor": np.array(divisor), "watchdog_cycles": np.array(watchdog)}
    result, wall = run_job(sim, built, BOARD_TOP, job, work_dir / f"run_board_{sim}", test_module="tb.cocotb_board")
    try:
        replies = parse_replies(bytes(result["bytes"]))
    except ValueError as e:
        raise SimError(f"{sim}: the board's reply bytes are malformed: {e}") from None
    decisions = [result_fields(payload, hw)["decision"] for code, payload in replies if code == REPLY["RESULT"]]
    trace = run_batch(model, [np.asarray(u) for u in utterances])
    golden = [int(np.argmax(trace.readout[b, f])) for b, u in enumerate(utterances) for f in range(len(u))]
    return {"replies": replies, "decisions": decisions, "golden": golden,
            "errors": [p[0] for c, p in replies if c == REPLY["ERROR"]],
            "acks": [p for c, p in replies if c == REPLY["ACK"]], "packets": len(packets),
            "config_packets": len(writes), "wall_s": round(time.perf_counter() - t0, 1), "sim_s": round(wall, 1)}


def main(argv=None) -> int:
    """``make board-sim``: each shipped model loaded over the UART of the board top (``rtl.icebreaker`` capacities)
    on Verilator, real test utterances streamed, malformed packets in between; the decisions against golden's."""
    import argparse
    import json

    from golden.data import PROJECT_ROOT, DataError, dataset_of, default_data_dir, read_manifest
    from golden.frontend import features_from_file
    from golden.modelfile import load_model
    from rsnn.board_protocol import CMD, ERRORS, packet, word_bytes
    from rtl.core import core_layouts
    from rtl.icebreaker import BOARD_MODELS, board_hardware
    ap = argparse.ArgumentParser(prog="python -m tb.board_sim", description=main.__doc__.split(";")[0])
    ap.add_argument("--model", default=",".join(BOARD_MODELS),
                    help=f"comma-separated shipped models (default {','.join(BOARD_MODELS)})")
    ap.add_argument("--utterances", type=int, default=2, help="test utterances per model, evenly spaced (default 2)")
    ap.add_argument("--divisor", type=int, default=4, help="clock cycles per UART bit in simulation (default 4)")
    ap.add_argument("--json", type=Path, default=PROJECT_ROOT / "build" / "report" / "board_sim.json")
    a = ap.parse_args(argv)
    if a.utterances < 1 or a.divisor < 4:
        ap.error("--utterances must be at least 1 and --divisor at least 4")
    hw = board_hardware()
    wc = word_bytes(core_layouts(hw)["cfg"].size)
    good = packet(CMD["CONFIG"], bytes(wc))
    bad = [(1, good[:-1] + bytes([good[-1] ^ 0x5A])), (2, packet(0x42)), (3, packet(CMD["FRAME"], b"\x00")),
           (4, packet(CMD["CONFIG"], bytes(wc - 1) + b"\x80"))]
    want_errors = [1, 3, 2, 4]
    out = {"hardware": hw.to_dict(), "divisor": a.divisor, "simulator": "verilator", "models": {}}
    ok = True
    for name in a.model.split(","):
        try:
            model = load_model(PROJECT_ROOT / "models" / f"{name}.npz")
            items = read_manifest(default_data_dir(dataset_of(model.meta, name)), "test")
        except (DataError, OSError) as e:
            raise SystemExit(f"python -m tb.board_sim: {name}: {e}") from None
        pick = np.linspace(0, len(items) - 1, min(a.utterances, len(items))).round().astype(int)
        utts = [features_from_file(items[i].path, model.frontend) for i in pick]
        r = simulate_board("verilator", model, hw, utts, PROJECT_ROOT / "build" / "board_sim",
                           divisor=a.divisor, bad_packets=bad, optimize=True)
        res = {"utterances": [Path(items[i].path).name for i in pick], "labels": [items[i].label for i in pick],
               "frames": len(r["golden"]), "config_packets": r["config_packets"], "packets": r["packets"],
               "decisions_equal_golden": r["decisions"] == r["golden"],
               "mismatching_frames": sum(x != y for x, y in zip(r["decisions"], r["golden"]))
               + abs(len(r["decisions"]) - len(r["golden"])),
               "final_decisions": [], "error_replies": [ERRORS.get(e, e) for e in r["errors"]],
               "error_replies_as_expected": r["errors"] == want_errors,
               "flags_after_load": r["acks"][r["config_packets"] - 1].hex() if len(r["acks"]) >= r["config_packets"]
               else None, "wall_s": r["wall_s"], "sim_s": r["sim_s"]}
        end = np.cumsum([len(u) for u in utts]) - 1
        res["final_decisions"] = [int(r["decisions"][k]) if k < len(r["decisions"]) else None for k in end]
        ok &= res["decisions_equal_golden"] and res["error_replies_as_expected"] and res["flags_after_load"] == "00"
        out["models"][name] = res
        print(f"{name}: {res['frames']} frames of {len(utts)} utterances over the UART after {r['config_packets']} "
              f"CONFIG packets: {res['mismatching_frames']} decisions differ from golden; error replies "
              f"{res['error_replies']} ({'as expected' if res['error_replies_as_expected'] else 'NOT as expected'})"
              f"; {r['wall_s']} s", flush=True)
    out["passed"] = bool(ok)
    a.json.parent.mkdir(parents=True, exist_ok=True)
    a.json.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {a.json}")
    return 0 if ok else 1


if __name__ == "__main__":
    import sys
    sys.exit(main())
