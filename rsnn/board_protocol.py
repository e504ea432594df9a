"""The byte protocol of the board's host link (issue #17; the board side is :class:`rtl.board.LinkEngine`).

Every packet, either way::

    sync | code | length (2 bytes, little-endian) | payload (length bytes) | crc8

``sync`` is 0xA5 from the host, 0x5A from the board; ``crc8`` (polynomial 0x07, initial value 0, no reflection) runs
over ``code``, both ``length`` bytes and the payload. Host commands and the board's replies:

============  ==========================================  ==================================================
command       payload                                     reply
============  ==========================================  ==================================================
0x01 CONFIG   one configuration word of the core          0x00 ACK: the status flags (1 byte)
              (``rtl.core.core_layouts(hw)["cfg"]``: address
              low, then data), little-endian, pad bits 0
0x02 FRAME    one input word (bit 0: ``first``, then the  0x11 RESULT: the result word (decision, ran,
              features), little-endian, pad bits 0        status), little-endian
0x03 STATUS   none                                        0x12 STATUS: flags (1 byte), busy (1 byte)
============  ==========================================  ==================================================

Anything else is answered with 0xE0 ERROR and one reason byte (:data:`ERRORS`), and the board waits for the next
sync byte: a bad checksum, a length that is not the command's, an unknown command, a pad bit set, a packet left
incomplete for longer than the timeout, a UART framing error or overrun. A command's effect happens only after its
checksum was checked, so a corrupted packet never reaches the core.

Flow control: the board (:class:`rtl.board.BoardLink`) buffers 32 received and 16 reply bytes, and every reply is
shorter than the packet it answers, so CONFIG packets may follow each other back to back. While a frame is
computed the board reads nothing; a host sends the next packet after a FRAME's RESULT (or keeps what it sends
meanwhile within the 32 bytes).
"""
from __future__ import annotations

__all__ = ["SYNC_HOST", "SYNC_BOARD", "CMD", "REPLY", "ERRORS", "crc8", "packet", "config_packets", "frame_packet",
           "parse_replies", "word_bytes", "session", "result_fields", "complete_replies", "BoardSession", "BoardError"]

SYNC_HOST, SYNC_BOARD = 0xA5, 0x5A
CMD = {"CONFIG": 0x01, "FRAME": 0x02, "STATUS": 0x03}
REPLY = {"ACK": 0x00, "RESULT": 0x11, "STATUS": 0x12, "ERROR": 0xE0}
ERRORS = {1: "bad checksum", 2: "bad length", 3: "unknown command", 4: "pad bits set", 5: "timeout",
          6: "UART framing error or overrun"}


def crc8(data, crc: int = 0) -> int:
    """CRC-8, polynomial x^8 + x^2 + x + 1 (0x07), MSB first, over ``data`` (bytes), starting from ``crc``."""
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = ((crc << 1) ^ 0x07) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc


def word_bytes(bits: int) -> int:
    return (bits + 7) // 8


def packet(code: int, payload: bytes = b"", sync: int = SYNC_HOST) -> bytes:
    if not 0 <= code <= 255 or len(payload) > 0xFFFF:
        raise ValueError(f"a packet has a code of 0..255 and at most 65535 payload bytes, not {code}, {len(payload)}")
    body = bytes([code, len(payload) & 0xFF, len(payload) >> 8]) + bytes(payload)
    return bytes([sync]) + body + bytes([crc8(body)])


def _le(value: int, bits: int) -> bytes:
    if value < 0 or value >> bits:
        raise ValueError(f"{value} does not fit {bits} bits")
    return value.to_bytes(word_bytes(bits), "little")


def config_packets(writes, hw) -> list:
    """The CONFIG packets of a load image (``golden.image.load_image``: ``(addr, data)`` writes) for ``hw``."""
    from golden.image import addr_bits, data_bits
    ab, bits = addr_bits(hw), addr_bits(hw) + data_bits(hw)
    return [packet(CMD["CONFIG"], _le(a | d << ab, bits)) for a, d in writes]


def frame_packet(features, first: bool, hw) -> bytes:
    """The FRAME packet of one feature frame (unsigned values of ``hw.max_feature_bits``; fewer features than
    ``hw.max_features`` are padded with zeros)."""
    fb, F = hw.max_feature_bits, hw.max_features
    feats = [int(v) for v in features]
    if len(feats) > F or any(not 0 <= v < 1 << fb for v in feats):
        raise ValueError(f"a frame holds at most {F} features of 0..{(1 << fb) - 1}")
    word = int(bool(first))
    for i, v in enumerate(feats):
        word |= v << (1 + i * fb)
    return packet(CMD["FRAME"], _le(word, 1 + F * fb))


def parse_replies(stream: bytes) -> list:
    """The board's replies in ``stream``: ``[(code, payload bytes)]``. Raises ValueError on a byte that does not
    belong to a well-formed reply (a wrong sync byte, a truncated packet, a bad checksum)."""
    out, i = [], 0
    while i < len(stream):
        if stream[i] != SYNC_BOARD:
            raise ValueError(f"byte {i}: 0x{stream[i]:02x} where a reply's sync byte 0x{SYNC_BOARD:02x} was expected")
        if i + 4 > len(stream):
            raise ValueError(f"byte {i}: a truncated reply header")
        code, n = stream[i + 1], stream[i + 2] | stream[i + 3] << 8
        end = i + 4 + n
        if end + 1 > len(stream):
            raise ValueError(f"byte {i}: a reply of {n} payload bytes is truncated")
        if crc8(stream[i + 1:end]) != stream[end]:
            raise ValueError(f"byte {i}: reply checksum 0x{stream[end]:02x}, expected 0x{crc8(stream[i + 1:end]):02x}")
        out.append((code, bytes(stream[i + 4:end])))
        i = end + 1
    return out


def session(writes, utterances, hw, bad_packets=()) -> tuple[list, list]:
    """A host's whole conversation: the CONFIG packets of the load image ``writes`` (none when ``writes`` is None),
    then every frame of ``utterances`` as a FRAME packet (``first`` on each utterance's first frame). Returns
    ``(packets, wait)``: ``wait[k]`` says that packet ``k`` is sent only once every earlier packet has its reply
    (each FRAME, as the board reads nothing while it computes; CONFIG packets go back to back). ``bad_packets``
    (``(position, bytes)``: before the FRAME packet number ``position``; the rest at the end) is for tests."""
    packets = list(config_packets(writes, hw)) if writes is not None else []
    wait = [False] * len(packets)
    bad = sorted(bad_packets, key=lambda b: b[0])
    n = 0
    for u in utterances:
        for f, x in enumerate(u):
            while bad and bad[0][0] == n:
                packets.append(bad.pop(0)[1])
                wait.append(True)
            packets.append(frame_packet(x, f == 0, hw))
            wait.append(True)
            n += 1
    for _, b in bad:
        packets.append(b)
        wait.append(True)
    return packets, wait


def result_fields(payload: bytes, hw) -> dict:
    """A RESULT reply's payload -> ``{"decision", "ran", "status"}`` (``rtl.core.core_layouts(hw)["result"]``)."""
    from rtl.core import core_layouts
    lay = core_layouts(hw)["result"]
    w = int.from_bytes(payload, "little")
    out = {}
    for name in ("decision", "ran", "status"):
        f = lay[name]
        out[name] = (w >> f.offset) & ((1 << f.width) - 1)
    return out


def complete_replies(got) -> int:
    """How many replies are complete at the start of ``got`` (sync, code, length, payload, checksum); stops at a
    byte that is not a sync byte where one must be (:func:`parse_replies` then names it)."""
    n, i = 0, 0
    while i + 4 <= len(got) and got[i] == SYNC_BOARD:
        end = i + 4 + (got[i + 2] | got[i + 3] << 8)
        if end >= len(got):
            break
        n, i = n + 1, end + 1
    return n


class BoardError(Exception):
    """The board answered ERROR (``reason``: a key of :data:`ERRORS`) to packet ``packet``."""

    def __init__(self, reason: int, packet: int):
        super().__init__(f"the board answered ERROR to packet {packet}: {ERRORS.get(reason, f'reason {reason}')}")
        self.reason, self.packet = reason, packet


class BoardSession:
    """The host side over a byte link (``write(bytes)``; ``read(n)`` returns up to ``n`` bytes, b"" after its
    timeout: a pyserial ``Serial`` or anything alike). :meth:`send` sends packets honouring ``wait`` and returns
    every reply in order. It stops at the first ERROR reply it sees (:class:`BoardError`, checked as replies come
    in); a reply missing for ``timeout_s`` (counted from the last complete reply, so a babbling line
    cannot hold it) raises TimeoutError, or ValueError when what arrived is not well-formed replies."""

    def __init__(self, link, timeout_s: float = 2.0):
        self.link, self.timeout_s = link, timeout_s
        self.got = bytearray()
        self._scan = (0, 0)            # (replies, bytes) already counted in `got`
        self._checked = (0, 0)         # (replies, bytes) already checked for ERROR

    def _count(self) -> int:
        n, i = self._scan
        more = complete_replies(self.got[i:])
        if more:
            for _ in range(more):
                i = i + 4 + (self.got[i + 2] | self.got[i + 3] << 8) + 1
            n += more
            self._scan = (n, i)
        return n

    def _check_errors(self) -> None:
        """Raise BoardError for the first ERROR among the complete replies not checked yet."""
        n, i = self._scan
        k0, j0 = self._checked
        for k, (code, payload) in enumerate(parse_replies(bytes(self.got[j0:i])), start=k0):
            if code == REPLY["ERROR"]:
                raise BoardError(payload[0] if payload else 0, k)
        self._checked = (n, i)

    def _until(self, n: int, what: str) -> None:
        import time
        deadline = time.monotonic() + self.timeout_s
        seen = self._count()
        while seen < n:
            chunk = self.link.read(256)
            if chunk:
                self.got.extend(chunk)
                now = self._count()
                if now > seen:
                    seen, deadline = now, time.monotonic() + self.timeout_s
            elif time.monotonic() > deadline:
                parse_replies(bytes(self.got))     # raises ValueError when the bytes are not replies
                raise TimeoutError(f"no reply to {what} within {self.timeout_s:g} s ({seen} replies so far)")
        self._check_errors()

    def send(self, packets, wait, progress=None) -> list:
        for k, (p, w) in enumerate(zip(packets, wait)):
            if w:
                self._until(k, f"packet {k - 1}")
            self.link.write(p)
            waiting = getattr(self.link, "in_waiting", 0)    # drain the replies as they come (pyserial)
            if waiting:
                self.got.extend(self.link.read(waiting))
                self._count()
                self._check_errors()
            if progress:
                progress(k + 1, len(packets))
        self._until(len(packets), f"packet {len(packets) - 1}")
        return parse_replies(bytes(self.got))
