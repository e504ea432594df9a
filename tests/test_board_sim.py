"""The board link on a simulator at the bit level (tb/board_sim.py, tb/cocotb_board.py; issue #17): a model loaded
over the UART with the protocol's packets, frames streamed, the decisions read back equal golden's, and malformed
packets in between, each answered with its ERROR reason while the link keeps working."""
from __future__ import annotations

import numpy as np
import pytest

from rsnn.board_protocol import CMD, REPLY, packet, word_bytes
from rtl.core import core_layouts
from test_board import HW, small_model

sim = pytest.mark.sim


def _malformed():
    wc = word_bytes(core_layouts(HW)["cfg"].size)
    good = packet(CMD["CONFIG"], bytes(wc))
    bad_crc = good[:-1] + bytes([good[-1] ^ 0x5A])
    pad = bytes(wc - 1) + b"\x80"
    return [(0, bad_crc), (2, packet(0x42)), (4, packet(CMD["FRAME"], b"\x00")), (6, packet(CMD["CONFIG"], pad))]


@sim
@pytest.mark.parametrize("simulator", ["verilator", "icarus"])
def test_board_link_bit_level_matches_golden_and_survives_malformed_packets(simulator, tmp_path, rng):
    from tb.board_sim import simulate_board
    model = small_model(3)
    utts = [rng.integers(0, 16, (n, 6)) * (rng.random((n, 6)) < 0.7) for n in (4, 5)]
    r = simulate_board(simulator, model, HW, utts, tmp_path, divisor=4, bad_packets=_malformed())
    assert r["decisions"] == r["golden"] and len(r["decisions"]) == 9
    assert r["errors"] == [1, 3, 2, 4]                 # bad checksum, unknown command, bad length, pad bit
    assert len(r["acks"]) == r["config_packets"] and r["acks"][-1] == b"\x00"
    assert sum(1 for c, _ in r["replies"] if c == REPLY["RESULT"]) == 9


@sim
@pytest.mark.data
@pytest.mark.slow
def test_board_link_runs_the_shipped_fsdd_model_on_real_speech(tmp_path):
    """The quick version of `make board-sim`: the shipped FSDD model loaded over the UART of the board top at the
    bitstream's capacities (13,115 CONFIG packets: its load image), one real test utterance streamed, a malformed packet before
    its fourth frame; every frame's decision equals golden's."""
    from conftest import real_data
    from golden.data import PROJECT_ROOT, read_manifest
    from golden.frontend import features_from_file
    from golden.modelfile import load_model
    from rtl.icebreaker import board_hardware
    from tb.board_sim import simulate_board
    d = real_data("fsdd")
    items = read_manifest(d, "test")
    model = load_model(PROJECT_ROOT / "models" / "fsdd_binary.npz")
    utt = features_from_file(items[0].path, model.frontend)
    r = simulate_board("verilator", model, board_hardware(), [utt], tmp_path, divisor=4,
                       bad_packets=[(3, packet(CMD["FRAME"], b"\x00"))])
    from golden.image import load_image
    assert r["config_packets"] == len(load_image(model, board_hardware())) == 13115
    assert len(r["acks"]) == r["config_packets"] and r["acks"][-1] == b"\x00"
    assert r["errors"] == [2]
    assert r["decisions"] == r["golden"] and len(r["golden"]) == len(utt)
