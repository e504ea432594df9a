"""Events: the zero-skip specification (frame_events), its vectorized count, and the event word layout."""
import numpy as np
import pytest
from hypothesis import given, strategies as st
from hypothesis.extra.numpy import arrays

from golden.events import Event, EventFormat, count_events, decode_events, frame_events, full_mask
from golden.params import ParamError

activities = st.integers(1, 4).flatmap(lambda T: st.integers(0, 12).flatmap(
    lambda N: arrays(np.int64, (T, N), elements=st.sampled_from([0, 0, 0, 1, 2, 3, 15]))))


@given(activities)
def test_events_round_trip_and_form(a):
    T, N = a.shape
    ev = frame_events(a)
    assert np.array_equal(decode_events(ev, T, N), a)
    assert all(e.payload > 0 and 0 < e.mask <= full_mask(T) for e in ev)
    assert ev == sorted(ev, key=lambda e: (e.index, e.payload))
    # zero-skip: a source silent at every step makes no event
    assert {e.index for e in ev} == set(np.flatnonzero(a.any(axis=0)).tolist())
    # merged: one event per distinct non-zero value of a source
    assert np.array_equal(count_events(a), np.bincount([e.index for e in ev], minlength=N).astype(np.int64))


@given(st.integers(1, 4), arrays(np.int64, (5, 9), elements=st.integers(0, 1)))
def test_binary_spikes_merge_into_one_event(T, raw):
    s = raw[:T]
    ev = frame_events(s)
    assert len(ev) == int(s.any(axis=0).sum())
    for e in ev:
        assert e.payload == 1
        assert e.mask == sum(int(s[t, e.index]) << t for t in range(T))


def test_graded_input_event_hand_case():
    x = np.array([[0, 5, 0, 15]] * 2)
    assert frame_events(x) == [Event(1, 5, 0b11), Event(3, 15, 0b11)]
    multi = np.array([[2, 0], [3, 1]])  # different payloads at different steps: two events
    assert frame_events(multi) == [Event(0, 2, 0b01), Event(0, 3, 0b10), Event(1, 1, 0b10)]


def test_count_events_batched():
    a = np.array([[[0, 1, 2], [0, 1, 3]], [[4, 0, 0], [0, 0, 0]]])
    assert count_events(a).tolist() == [[0, 1, 2], [1, 0, 0]]


def test_frame_events_rejects_bad_activity():
    with pytest.raises(ValueError, match="shape"):
        frame_events(np.zeros(3))
    with pytest.raises(ValueError, match="non-negative"):
        frame_events(np.array([[-1]]))


@given(st.integers(1, 10), st.integers(1, 8), st.integers(1, 4), st.data())
def test_event_word_round_trip(ib, pb, T, data):
    fmt = EventFormat(ib, pb, T).validate()
    e = Event(data.draw(st.integers(0, (1 << ib) - 1)), data.draw(st.integers(1, (1 << pb) - 1)),
              data.draw(st.integers(1, (1 << T) - 1)))
    w = fmt.pack(e)
    assert 0 <= w < 1 << fmt.width
    assert fmt.unpack(w) == e


def test_event_word_layout_and_misfits():
    fmt = EventFormat.for_sources(128, 1, 2)
    assert (fmt.index_bits, fmt.width) == (7, 10)
    assert fmt.pack(Event(5, 1, 0b10)) == 5 | 1 << 7 | 0b10 << 8
    for bad in (Event(128, 1, 1), Event(0, 0, 1), Event(0, 2, 1), Event(0, 1, 0), Event(0, 1, 4)):
        with pytest.raises(ValueError, match="does not fit"):
            fmt.pack(bad)
    with pytest.raises(ParamError, match="time_steps"):
        EventFormat(4, 4, 9).validate()
