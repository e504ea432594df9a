"""The audio front end on audio the tests synthesise, and on a real FSDD file when the data is there."""
import dataclasses

import numpy as np
import pytest
import soundfile
from hypothesis import given, settings, strategies as st

from conftest import real_data, tone, write_wav
from golden.frontend import (AudioError, features, features_from_file, log_mel, mel_filterbank, noise_gate,
                             quantize, read_audio)
from golden.params import FrontEndParams, ParamError

P = FrontEndParams()


def band_centres(p):
    fb = mel_filterbank(p)
    freqs = np.arange(fb.shape[1]) * p.sample_rate / p.n_fft
    return freqs[fb.argmax(axis=1)]


@pytest.mark.parametrize("freq", [300.0, 1000.0, 2500.0])
def test_tone_lands_in_its_band(freq):
    q = features(tone(freq, 0.5, 8000), 8000, P)
    loudest = int(np.bincount(q.argmax(axis=1)).argmax())
    assert abs(band_centres(P)[loudest] - freq) < 0.15 * freq + 60
    assert q.max() == 15


def test_frame_count_and_range():
    for n in (1, 199, 200, 279, 280, 8000):
        q = features(np.random.default_rng(n).normal(0, 0.1, n), 8000, P)
        assert q.shape == (max(1, 1 + (n - 200) // 80), 32)
        assert q.dtype == np.int64 and q.min() >= 0 and q.max() <= 15


def test_silence_gives_no_events():
    assert not features(np.zeros(4000), 8000, P).any()
    assert not features(1e-6 * np.random.default_rng(0).normal(size=4000), 8000, P).any()


def test_chirp_moves_up_the_bands():
    rate = 8000
    t = np.arange(rate) / rate
    f0, f1 = 200.0, 3500.0
    x = 0.5 * np.sin(2 * np.pi * (f0 * t + (f1 - f0) * t ** 2 / 2))
    q = features(x, rate, P)
    top = q.argmax(axis=1)
    assert np.corrcoef(np.arange(len(top)), top)[0, 1] > 0.95
    assert top[-5:].min() > top[:5].max()


def test_rates_channels_and_sample_formats_agree(tmp_path):
    ref = features_from_file(write_wav(tmp_path / "a.wav", tone(800, 0.5, 8000), 8000), P)
    variants = [
        write_wav(tmp_path / "b.wav", tone(800, 0.5, 16000), 16000),
        write_wav(tmp_path / "c.wav", tone(800, 0.5, 44100), 44100, "PCM_24"),
        write_wav(tmp_path / "d.wav", tone(800, 0.5, 8000), 8000, "PCM_U8"),
        write_wav(tmp_path / "e.wav", np.stack([tone(800, 0.5, 22050)] * 2, axis=1), 22050, "FLOAT"),
    ]
    for path in variants:
        q = features_from_file(path, P)
        assert abs(len(q) - len(ref)) <= 1
        n = min(len(q), len(ref)) - 2
        assert np.array_equal(q[1:n].argmax(axis=1), ref[1:n].argmax(axis=1)), path.name


def test_stereo_is_the_mean_of_its_channels(tmp_path):
    left, right = tone(500, 0.3, 8000), tone(1500, 0.3, 8000, amp=0.2)
    write_wav(tmp_path / "s.wav", np.stack([left, right], axis=1), 8000, "FLOAT")
    x, rate = read_audio(tmp_path / "s.wav")
    assert rate == 8000 and np.allclose(x, (left.astype(np.float32) + right.astype(np.float32)) / 2, atol=1e-7)


def test_deterministic():
    x = np.random.default_rng(1).normal(0, 0.2, 12345)
    assert np.array_equal(features(x, 11025, P), features(x.copy(), 11025, P))


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 40), st.integers(0, 2**31), st.sampled_from([0.0, 6.0]))
def test_gate_and_quantizer_are_causal(cut, seed, gate_db):
    rng = np.random.default_rng(seed)
    db = rng.normal(-20, 15, size=(40, 8))
    changed = db.copy()
    changed[cut:] = rng.normal(10, 30, size=changed[cut:].shape)
    p = FrontEndParams(n_mels=8, noise_gate_db=gate_db)
    for stage in (lambda d: noise_gate(d, p), lambda d: quantize(noise_gate(d, p), p)):
        assert np.array_equal(stage(db)[:cut], stage(changed)[:cut])


def test_quantizer_levels():
    p = FrontEndParams(n_mels=3, range_db=30.0, release_db=0.0, floor_db=-100.0)
    db = np.array([[0.0, -15.0, -30.0], [0.0, -2.0, -29.0]])
    # reference = 0 dB: level = floor((db + 30) * 15 / 30)
    assert quantize(db, p).tolist() == [[15, 7, 0], [15, 14, 0]]


def test_noise_gate_levels():
    p = FrontEndParams(n_mels=2, noise_gate_db=6.0, noise_rise_db=1.0)
    db = np.array([[0.0, 10.0], [10.0, 4.0], [5.0, 20.0], [7.0, 9.0]])
    # floors: [0, 10], [1, 4], [2, 5], [3, 6]; a value passes when >= floor + 6 (7.0 would pass a floor that
    # did not rise)
    out = noise_gate(db, p)
    assert np.array_equal(np.isfinite(out), [[False, False], [True, False], [False, True], [False, False]])
    assert np.array_equal(out[np.isfinite(out)], [10.0, 20.0])
    assert noise_gate(db, FrontEndParams(n_mels=2)) is db  # off by default


def test_band_norm_by_hand_and_removes_a_lasting_tilt():
    from golden.frontend import band_norm
    p = FrontEndParams(n_mels=2, band_norm_frames=2)
    db = np.array([[0.0, 10.0], [4.0, 10.0], [8.0, 20.0]])
    # means: [0, 10]; [2, 10] (mean of 2 frames); [5, 15] (weight 1 / 2); out = db - m + mean(m)
    assert np.allclose(band_norm(db, p), [[5.0, 5.0], [8.0, 6.0], [13.0, 15.0]])
    assert band_norm(db, FrontEndParams(n_mels=2)) is db       # off by default
    # a lasting tilt (a different voice or microphone) is gone after the warm-up: two signals that differ by a
    # fixed per-band gain give the same normalised frames
    rng = np.random.default_rng(1)
    x = rng.normal(0, 5, (60, 8))
    tilt = np.linspace(-9, 9, 8)
    q = FrontEndParams(n_mels=8, band_norm_frames=10)
    assert np.allclose(band_norm(x + tilt, q), band_norm(x, q))
    assert "band_norm_frames" not in FrontEndParams().to_dict()
    assert FrontEndParams(band_norm_frames=5).to_dict()["band_norm_frames"] == 5


def test_band_norm_strength_removes_that_part_of_the_shape():
    from golden.frontend import band_norm
    db = np.array([[0.0, 10.0], [4.0, 10.0], [8.0, 20.0]])
    # means as above: [0, 10]; [2, 10]; [5, 15]; m - mean(m): [-5, 5]; [-4, 4]; [-5, 5]; out = db - s (m - mean m)
    half = FrontEndParams(n_mels=2, band_norm_frames=2, band_norm_strength=0.5)
    assert np.allclose(band_norm(db, half), [[2.5, 7.5], [6.0, 8.0], [10.5, 17.5]])
    full = FrontEndParams(n_mels=2, band_norm_frames=2)
    rng = np.random.default_rng(2)
    x = rng.normal(0, 5, (40, 6))
    # s = 1 is the plain normalisation, to the bit (shipped models use it); s interpolates linearly
    assert np.array_equal(band_norm(x, dataclasses.replace(full, band_norm_strength=1.0)), band_norm(x, full))
    q = dataclasses.replace(half, n_mels=6)
    assert np.allclose(band_norm(x, q), 0.5 * x + 0.5 * band_norm(x, dataclasses.replace(q, band_norm_strength=1.0)))
    assert "band_norm_strength" not in full.to_dict()
    assert half.to_dict()["band_norm_strength"] == 0.5
    for bad in (0.0, -0.5, 1.5):
        with pytest.raises(ParamError, match="band_norm_strength"):
            FrontEndParams(band_norm_frames=2, band_norm_strength=bad).validate()
    # a strength with the normalisation off would do nothing but be recorded: refused, naming the fix
    with pytest.raises(ParamError, match="band_norm_strength .* band_norm_frames = 0"):
        FrontEndParams(band_norm_strength=0.5).validate()


@pytest.mark.parametrize("noise_level", [3e-3, 3e-2, 0.3])
def test_noise_gate_removes_steady_noise_and_keeps_a_tone(noise_level):
    rate = 8000
    noise = np.random.default_rng(0).normal(0, noise_level, 2 * rate)
    burst = noise.copy()
    burst[rate // 2:rate] += tone(1000.0, 0.5, rate, amp=30 * noise_level)
    p = FrontEndParams(noise_gate_db=10.0, noise_rise_db=0.1)
    plain = features(noise, rate, FrontEndParams())
    assert plain[50:].sum() > 0  # without the gate, noise at any of these levels gives events
    # a narrow band of white noise swings by several dB, so its deepest dips set the floor and some peaks pass
    assert features(noise, rate, p)[20:].sum() < 0.2 * plain[20:].sum()
    q = features(burst, rate, p)
    on = q[52:98]  # frames inside the burst
    assert (on.max(axis=1) == 15).all() and abs(band_centres(p)[int(np.bincount(on.argmax(1)).argmax())] - 1000) < 200
    assert q[110:].sum() < 0.2 * plain[110:].sum()


def test_log_mel_of_short_input_is_one_frame():
    assert log_mel(np.ones(10), P).shape == (1, 32)


def test_bad_audio_files(tmp_path):
    with pytest.raises(AudioError, match="does not exist"):
        read_audio(tmp_path / "missing.wav")
    (tmp_path / "text.wav").write_text("this is not audio\n" * 50)
    with pytest.raises(AudioError, match="text.wav is not a readable audio file"):
        read_audio(tmp_path / "text.wav")
    soundfile.write(str(tmp_path / "empty.wav"), np.zeros(0), 8000, subtype="PCM_16")
    with pytest.raises(AudioError, match="no samples"):
        read_audio(tmp_path / "empty.wav")


@pytest.mark.data
def test_real_fsdd_file():
    d = real_data("fsdd")
    path = d / "recordings" / "7_jackson_0.wav"
    x, rate = read_audio(path)
    assert rate == 8000
    q = features_from_file(path, P)
    assert q.shape == (1 + (len(x) - 200) // 80, 32)
    assert 0.1 < (q > 0).mean() < 0.9          # speech: neither silent nor saturated
    assert q.max() == 15                        # the loudest band of a loud frame reaches the top level
