"""The host side of the board link (issue #17): `rsnn board --dry-run` writes the session's byte stream, and
`rsnn board --port` drives a board through pyserial. No board here: a stand-in answers like the board's protocol
engine, from golden (its decisions) and the protocol's own packet format, so the CLI's sending, waiting, parsing
and reporting are checked; the board top itself is checked at the bit level in test_board_sim.py."""
from __future__ import annotations

import json

import numpy as np
import pytest

from golden.image import load_image
from golden.modelfile import load_model
from golden.network import run_batch
from golden.data import PROJECT_ROOT
from rsnn import cli
from rsnn.board_protocol import CMD, REPLY, SYNC_BOARD, crc8, packet, parse_replies
from rtl.core import core_layouts
from rtl.icebreaker import board_hardware, divisor_for

HW = board_hardware()


def _wav(path, seconds=0.4, seed=0):
    import soundfile as sf
    rng = np.random.default_rng(seed)
    t = np.arange(int(8000 * seconds)) / 8000
    x = 0.3 * np.sin(2 * np.pi * 300 * t) * (1 + rng.standard_normal(t.size) * 0.2)
    sf.write(path, x.astype(np.float32), 8000, subtype="PCM_16")
    return path


def _split_packets(stream: bytes):
    """Host packets back out of a byte stream, each checked (sync, length, checksum) by code independent of the
    CLI's."""
    out, i = [], 0
    while i < len(stream):
        assert stream[i] == 0xA5
        n = stream[i + 2] | stream[i + 3] << 8
        body = stream[i + 1:i + 4 + n]
        assert crc8(body) == stream[i + 4 + n]
        out.append((stream[i + 1], bytes(stream[i + 4:i + 4 + n])))
        i += 5 + n
    return out


def test_dry_run_writes_the_whole_session(tmp_path, capsys):
    wavs = [str(_wav(tmp_path / f"a{k}.wav", 0.3 + 0.1 * k, k)) for k in range(2)]
    out = tmp_path / "stream.bin"
    assert cli.main(["board", *wavs, "--model", "fsdd_binary", "--dry-run", str(out)]) == 0
    pk = _split_packets(out.read_bytes())
    model = load_model(PROJECT_ROOT / "models" / "fsdd_binary.npz")
    writes = load_image(model, HW)
    feats = cli._features(model, wavs)
    assert [c for c, _ in pk] == [CMD["CONFIG"]] * len(writes) + [CMD["FRAME"]] * sum(len(f) for f in feats)
    ab = core_layouts(HW)["cfg"]["addr"].width
    first = int.from_bytes(pk[0][1], "little")
    assert (first & ((1 << ab) - 1), first >> ab) == writes[0]
    firsts = [int.from_bytes(p, "little") & 1 for c, p in pk if c == CMD["FRAME"]]
    assert firsts == [1] + [0] * (len(feats[0]) - 1) + [1] + [0] * (len(feats[1]) - 1)
    assert "CONFIG" in capsys.readouterr().out


def test_dry_run_refuses_to_overwrite_an_input_and_bad_options(tmp_path, capsys):
    wav = str(_wav(tmp_path / "a.wav"))
    assert cli.main(["board", wav, "--model", "fsdd_binary", "--dry-run", wav]) == 2
    assert "input" in capsys.readouterr().err
    assert cli.main(["board", wav, "--model", "fsdd_binary", "--dry-run", str(tmp_path / "x"), "--baud", "5000000"]) == 2
    assert "baud" in capsys.readouterr().err
    assert cli.main(["board", wav, "--model", "fsdd_binary", "--dry-run", str(tmp_path / "x"), "--weight-words", "8"]) == 2
    assert "weight_words" in capsys.readouterr().err
    assert cli.main(["board", wav, "--model", "fsdd_binary", "--port", "loop://", "--timeout", "0"]) == 2
    assert "--timeout" in capsys.readouterr().err
    # the shipped FSDD model fires multi-level spikes, which the board's bitstream is not built for
    assert load_model(PROJECT_ROOT / "models" / "fsdd.npz").network.layers[0].spike_levels == 2
    assert cli.main(["board", wav, "--model", "fsdd", "--dry-run", str(tmp_path / "y")]) == 2
    err = capsys.readouterr().err
    assert "spike_levels" in err and "--model fsdd_binary" in err and not (tmp_path / "y").exists()


class FakeBoard:
    """A pyserial stand-in that answers like the board: ACK 0 to CONFIG, RESULT with golden's running decision to
    FRAME (``model``), or nothing at all (``silent``), or ERROR 1 to the n-th packet (``error_at``)."""

    def __init__(self, model, silent=False, error_at=None, ran=1):
        self.model, self.silent, self.error_at, self.ran = model, silent, error_at, ran
        self.rx, self.tx, self.frames, self.n = bytearray(), bytearray(), [], 0
        self.lay = core_layouts(HW)["result"]

    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False

    def reset_input_buffer(self):
        pass

    @property
    def in_waiting(self):
        return len(self.tx)

    def _reply(self, code, payload):
        body = bytes([code, len(payload), 0]) + payload
        self.tx += bytes([SYNC_BOARD]) + body + bytes([crc8(body)])

    def write(self, data):
        self.rx += data
        while len(self.rx) >= 5 and len(self.rx) >= 5 + (self.rx[2] | self.rx[3] << 8):
            n = self.rx[2] | self.rx[3] << 8
            code, payload = self.rx[1], bytes(self.rx[4:4 + n])
            del self.rx[:5 + n]
            self.n += 1
            if self.silent:
                continue
            if self.error_at == self.n:
                self._reply(REPLY["ERROR"], b"\x01")
            elif code == CMD["CONFIG"]:
                self._reply(REPLY["ACK"], b"\x00")
            else:
                w = int.from_bytes(payload, "little")
                x = [(w >> (1 + i * HW.max_feature_bits)) & 15 for i in range(self.model.network.n_features)]
                if w & 1:
                    self.frames = []
                self.frames.append(x)
                tr = run_batch(self.model, [np.array(self.frames)])
                d = int(np.argmax(tr.readout[0, len(self.frames) - 1]))
                word = d << self.lay["decision"].offset | self.ran << self.lay["ran"].offset
                self._reply(REPLY["RESULT"], word.to_bytes((self.lay.size + 7) // 8, "little"))

    def read(self, n):
        out = bytes(self.tx[:n])
        del self.tx[:n]
        return out


@pytest.mark.parametrize("mode", ["ok", "silent", "error", "not_run"])
def test_port_session_against_a_stand_in_board(mode, tmp_path, monkeypatch, capsys):
    serial = pytest.importorskip("serial")
    model = load_model(PROJECT_ROOT / "models" / "fsdd_binary.npz")
    fake = FakeBoard(model, silent=mode == "silent", error_at=5 if mode == "error" else None,
                     ran=0 if mode == "not_run" else 1)
    monkeypatch.setattr(serial, "serial_for_url", lambda *a, **k: fake)
    wav = str(_wav(tmp_path / "a.wav", 0.5))
    rc = cli.main(["board", wav, "--model", "fsdd_binary", "--port", "fake", "--timeout", "0.3"])
    out, err = capsys.readouterr()
    if mode == "ok":
        assert rc == 0, err
        line = json.loads(out.strip().splitlines()[-1])
        feats = cli._features(model, [wav])
        assert line["frames"] == len(feats[0]) and line["equals_golden"]
        assert line["decision"] == line["golden_decision"] == run_batch(model, feats)[0].decision
    elif mode == "silent":
        assert rc == 2 and "no reply" in err and "iceprog" in err
    elif mode == "error":     # stopped at the first wait after the ERROR: not every packet was sent
        assert rc == 2 and "ERROR to packet 4: bad checksum" in err
        assert fake.n < 10446
    else:
        assert rc == 2 and "did not run" in err


def test_divisor_for_the_standard_rates():
    assert divisor_for(115200) == 104
    assert divisor_for(1_000_000) == 12
    with pytest.raises(ValueError, match="off"):
        divisor_for(2_600_000)         # 12 MHz / 5 = 2.4 Mbaud: 7.7 % off
    assert parse_replies(packet(REPLY["ACK"], b"\x00", sync=SYNC_BOARD)) == [(0, b"\x00")]
