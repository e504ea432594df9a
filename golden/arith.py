"""Integer number formats and the arithmetic primitives of the RSNN.

Every arithmetic operation the accelerator performs is defined here exactly once; the vectorized golden model,
the pure-Python reference, the PyTorch twin (``train/``) and the RTL (``rtl/``) all follow these definitions.

All golden arithmetic is on Python ``int`` or ``np.int64``. There is no rounding anywhere in the network: the
only non-trivial operations are

* ``floor_shift(x, k) = floor(x / 2**k)``: an arithmetic right shift (``x >> k``), rounding towards minus
  infinity. Note that ``-1 >> 1 == -1``, and that ``x / 2**k`` in floating point is *not* this operation for
  negative ``x``;
* ``saturate(x, fmt)``: clamp to ``[fmt.min, fmt.max]``. Values never wrap.
* ``leak(v, k) = v - floor_shift(v, k)`` for ``k >= 1`` (the potential decays by a factor ``1 - 2**-k``,
  rounded so that the result is ``ceil(v * (1 - 2**-k))``); ``k == 0`` means no leak (``leak(v, 0) == v``).
  The leak moves ``v`` towards zero and never past it, so it cannot overflow.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["IntFormat", "floor_shift", "saturate", "leak", "signed_bits_for"]


@dataclass(frozen=True)
class IntFormat:
    """A two's complement (``signed``) or unsigned integer format of ``bits`` bits.

    Parameters
    ----------
    bits : int
        Width in bits, 1 to 62 (62 keeps every intermediate of the golden model inside ``np.int64``).
    signed : bool
        Two's complement when true.
    """

    bits: int
    signed: bool

    def validate(self, name: str = "format") -> "IntFormat":
        if not isinstance(self.bits, int) or isinstance(self.bits, bool) or not 1 <= self.bits <= 62:
            raise ValueError(f"{name}.bits must be an integer in 1..62, not {self.bits!r}")
        if self.signed and self.bits < 2:
            raise ValueError(f"{name}.bits must be at least 2 for a signed format, not {self.bits!r}")
        if not isinstance(self.signed, bool):
            raise ValueError(f"{name}.signed must be true or false, not {self.signed!r}")
        return self

    @property
    def min(self) -> int:
        return -(1 << (self.bits - 1)) if self.signed else 0

    @property
    def max(self) -> int:
        return (1 << (self.bits - 1)) - 1 if self.signed else (1 << self.bits) - 1

    def contains(self, x) -> bool:
        """True when every element of ``x`` is an integer inside the format's range."""
        a = np.asarray(x)
        if a.size == 0:
            return True
        if a.dtype.kind not in "iub":
            return False
        return bool(a.min() >= self.min and a.max() <= self.max)

    def saturate(self, x):
        return saturate(x, self)

    def to_code(self, x) -> np.ndarray:
        """The unsigned ``bits``-bit code of ``x`` (two's complement for signed formats)."""
        a = np.asarray(x, dtype=np.int64)
        return (a & ((1 << self.bits) - 1)).astype(np.int64)

    def from_code(self, code) -> np.ndarray:
        """Inverse of :meth:`to_code`."""
        c = np.asarray(code, dtype=np.int64) & ((1 << self.bits) - 1)
        if self.signed:
            c = np.where(c >= (1 << (self.bits - 1)), c - (1 << self.bits), c)
        return c.astype(np.int64)

    def __str__(self) -> str:
        return f"{'s' if self.signed else 'u'}{self.bits}"


def floor_shift(x, k):
    """``floor(x / 2**k)`` for integer ``x`` and ``k >= 0``: the arithmetic right shift ``x >> k``."""
    if isinstance(x, (int, np.integer)) and isinstance(k, (int, np.integer)):
        return int(x) >> int(k)
    return np.right_shift(np.asarray(x, dtype=np.int64), k)


def saturate(x, fmt: IntFormat):
    """Clamp ``x`` to ``[fmt.min, fmt.max]`` (never wrap)."""
    if isinstance(x, (int, np.integer)):
        return min(max(int(x), fmt.min), fmt.max)
    return np.clip(np.asarray(x, dtype=np.int64), fmt.min, fmt.max)


def leak(v, k):
    """The leak of a membrane potential: ``v - floor_shift(v, k)`` for ``k >= 1``, ``v`` for ``k == 0``."""
    if k == 0:
        return v if isinstance(v, (int, np.integer)) else np.asarray(v, dtype=np.int64)
    return v - floor_shift(v, k)


def signed_bits_for(lo: int, hi: int) -> int:
    """The fewest two's complement bits that hold every integer in ``[lo, hi]`` (at least 2)."""
    bits = 2
    while not (-(1 << (bits - 1)) <= lo and hi <= (1 << (bits - 1)) - 1):
        bits += 1
    return bits


def ceil_div(a: int, b: int) -> int:
    """``ceil(a / b)`` for integers (chunks of ``b`` needed to cover ``a``)."""
    return -(-a // b)
