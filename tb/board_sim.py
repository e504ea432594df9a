"""The board link (``rtl.board.BoardLink``: UART, protocol engine, core) on a simulator at the bit level (issue
#17): a model loaded over the link with :mod:`rsnn.board_protocol`'s packets, utterances streamed frame by frame,
the decisions read back and compared with golden; malformed packets mixed in must each get their ERROR reply and
leave the link working. :func:`simulate_board` runs it; the cocotb side is :mod:`tb.cocotb_board`.
"""
from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import numpy as np

from golden.image import load_image
from golden.model import Model
from golden.network import run_batch
from golden.params import HardwareParams
from rsnn.board_protocol import REPLY, config_packets, frame_packet, parse_replies
from rtl.core import core_layouts

from .runner import SimError, build_sim, ensure_simulator, run_job

__all__ = ["BOARD_TOP", "simulate_board", "build_board_verilog"]

BOARD_TOP = "rsnn_board"


def build_board_verilog(hw: HardwareParams, divisor: int, timeout: int, out_dir: Path) -> Path:
    """``<out_dir>/rsnn_board_<hash>.v``: :class:`rtl.board.BoardLink` for ``hw`` (cached by the RTL sources)."""
    from rtl.board import BoardLink
    from rtl.build import _cached, _to_verilog
    src = "".join(p.read_text() for p in sorted((Path(__file__).parent.parent / "rtl").glob("*.py")))
    key = repr((src, hw.to_dict(), divisor, timeout))
    path = Path(out_dir) / f"{BOARD_TOP}_{hashlib.sha1(key.encode()).hexdigest()[:12]}.v"
    return _cached(path, lambda: _to_verilog(BoardLink(hw, divisor, timeout), BOARD_TOP))


def simulate_board(sim: str, model: Model, hw: HardwareParams, utterances, work_dir: Path, *, divisor: int = 4,
                   timeout: int = 4096, bad_packets=()) -> dict:
    """Load ``model`` over the link, then run ``utterances`` (each frame a FRAME packet, the next sent after its
    RESULT); ``bad_packets`` (``(position, bytes)``: before the frame packet number ``position``) are sent in
    between. Returns ``replies`` (code, payload), ``decisions`` (per frame), ``golden`` (golden's decision per
    frame: the argmax of the readout so far), ``errors`` (the ERROR reasons, in order), ``acks``, ``wall_s``."""
    ensure_simulator(sim)
    work_dir = Path(work_dir).resolve()
    t0 = time.perf_counter()
    cfg = config_packets(load_image(model, hw), hw)
    packets, wait = list(cfg), [False] * len(cfg)
    bad = sorted(bad_packets, key=lambda b: b[0])
    n = 0
    for u in utterances:
        for f, x in enumerate(np.asarray(u)):
            while bad and bad[0][0] == n:
                packets.append(bad.pop(0)[1])
                wait.append(True)
            packets.append(frame_packet(x, f == 0, hw))
            wait.append(True)
            n += 1
    for _, p in bad:
        packets.append(p)
        wait.append(True)
    starts = np.cumsum([0] + [len(p) for p in packets])
    verilog = build_board_verilog(hw, divisor, timeout, work_dir / "verilog")
    flags = os.environ.get("MAKEFLAGS")
    if sim == "verilator":   # unoptimised C++ (as the regression builds it): the build dominates a short run
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
    res_lay = core_layouts(hw)["output"]["result"].shape
    decisions = []
    for code, payload in replies:
        if code == REPLY["RESULT"]:
            w = int.from_bytes(payload, "little")
            f = res_lay["decision"]
            decisions.append((w >> f.offset) & ((1 << f.width) - 1))
    trace = run_batch(model, [np.asarray(u) for u in utterances])
    golden = [int(np.argmax(trace.readout[b, f])) for b, u in enumerate(utterances) for f in range(len(u))]
    return {"replies": replies, "decisions": decisions, "golden": golden,
            "errors": [p[0] for c, p in replies if c == REPLY["ERROR"]],
            "acks": [p for c, p in replies if c == REPLY["ACK"]], "packets": len(packets),
            "config_packets": len(cfg), "wall_s": round(time.perf_counter() - t0, 1), "sim_s": round(wall, 1)}
