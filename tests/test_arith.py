"""Property tests of every arithmetic primitive in golden.arith."""
import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, strategies as st

from golden.arith import IntFormat, floor_shift, leak, saturate, signed_bits_for

ints = st.integers(-(1 << 40), 1 << 40)
shifts = st.integers(0, 30)
formats = st.builds(IntFormat, st.integers(2, 40), st.booleans())


@given(ints, shifts)
def test_floor_shift_is_floor_division(x, k):
    assert floor_shift(x, k) == math.floor(Fraction(x, 1 << k))
    assert int(floor_shift(np.array([x]), k)[0]) == floor_shift(x, k)


def test_floor_shift_negative_rounds_down():
    assert floor_shift(-1, 1) == -1
    assert floor_shift(-3, 1) == -2
    assert floor_shift(3, 1) == 1


@given(ints, formats)
def test_saturate(x, fmt):
    y = saturate(x, fmt)
    assert fmt.min <= y <= fmt.max
    if fmt.min <= x <= fmt.max:
        assert y == x
    else:
        assert y == (fmt.min if x < fmt.min else fmt.max)
    assert int(saturate(np.array([x]), fmt)[0]) == y


@given(ints, ints, formats)
def test_saturate_monotone(a, b, fmt):
    lo, hi = sorted((a, b))
    assert saturate(lo, fmt) <= saturate(hi, fmt)


@given(ints, st.integers(1, 30))
def test_leak_is_ceil_of_decay_and_moves_towards_zero(v, k):
    y = leak(v, k)
    assert y == math.ceil(Fraction(v) * (1 - Fraction(1, 1 << k)))
    assert abs(y) <= abs(v)
    assert (y >= 0) == (v >= 0) or y == 0
    assert int(leak(np.array([v]), k)[0]) == y


@given(ints)
def test_leak_zero_is_no_leak(v):
    assert leak(v, 0) == v


def test_leak_small_values():
    # hand-computed: v - floor(v / 2**k)
    assert [leak(v, 1) for v in (-3, -2, -1, 0, 1, 2, 3)] == [-1, -1, 0, 0, 1, 1, 2]
    assert leak(100, 3) == 100 - 12
    assert leak(-100, 3) == -100 + 13


@given(formats, st.data())
def test_code_round_trip(fmt, data):
    x = data.draw(st.integers(fmt.min, fmt.max))
    code = int(fmt.to_code(x))
    assert 0 <= code < (1 << fmt.bits)
    assert int(fmt.from_code(code)) == x


@given(formats)
def test_format_range(fmt):
    assert fmt.max - fmt.min + 1 == 1 << fmt.bits
    assert fmt.contains(np.array([fmt.min, fmt.max]))
    assert not fmt.contains(np.array([fmt.max + 1]))
    assert not fmt.contains(np.array([fmt.min - 1]))
    assert not fmt.contains(np.array([0.5]))


def test_weight_format():
    w = IntFormat(4, True)
    assert (w.min, w.max) == (-8, 7)
    assert str(w) == "s4"


@pytest.mark.parametrize("bits,signed", [(0, True), (1, True), (63, False), (4.0, True), (4, "yes")])
def test_bad_format(bits, signed):
    with pytest.raises(ValueError, match="bits|signed"):
        IntFormat(bits, signed).validate()


@given(ints, ints)
def test_signed_bits_for_is_minimal(a, b):
    lo, hi = sorted((a, b))
    n = signed_bits_for(lo, hi)
    assert IntFormat(n, True).min <= lo and hi <= IntFormat(n, True).max
    if n > 2:
        f = IntFormat(n - 1, True)
        assert lo < f.min or hi > f.max
