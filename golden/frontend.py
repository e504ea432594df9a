"""The audio front end: a WAV file -> log-mel energies every 10 ms -> unsigned integer features.

Shared by golden, training and the CLI, so a model always sees the features it was trained on. Steps, all in
float64 and deterministic:

1. **Read** with ``soundfile`` (1 to 192 kHz, at most 2 minutes, see :func:`read_audio`; mono or stereo, mixed
   to mono by averaging; 8/16/24/32-bit PCM or float), samples in [-1, 1].
2. **Resample** to ``sample_rate`` with ``scipy.signal.resample_poly`` (polyphase, Kaiser window).
3. **Frame**: window of ``win_length`` samples every ``hop_length`` samples, starting at sample 0 (causal: frame
   ``f`` covers samples ``[f*hop, f*hop + win)``); ``F = 1 + (n - win) // hop`` frames, the signal zero-padded to
   one window when shorter. A Hann window; power spectrum ``|rfft(frame, n_fft)|**2``.
4. **Mel**: ``n_mels`` triangular filters equally spaced on the HTK mel scale ``2595 log10(1 + f/700)``
   between ``fmin_hz`` and ``fmax_hz``; energies in dB: ``10 log10(mel + 1e-10)``.
5. **Band normalisation** (only when ``band_norm_frames = N > 0``; off by default): each band's causal running
   mean ``m`` (the mean of the frames so far while there are fewer than ``N``, then an exponential average with
   weight ``1 / N``) is subtracted, and the frame's mean over bands of ``m`` added back::

       m[f, b] = m[f-1, b] + (dB[f, b] - m[f-1, b]) / min(f + 1, N)        (m[-1, b] = 0)
       dB[f, b] -> dB[f, b] - s * (m[f, b] - mean over b of m[f, b])        (s = band_norm_strength, default 1)

   A speaker's or a microphone's lasting spectral shape goes (the part ``s`` of it); the level (what the
   quantizer's reference follows) stays.
6. **Noise gate** (only when ``noise_gate_db > 0``; off by default): each band tracks its own noise floor, a
   running minimum that may rise by at most ``noise_rise_db`` per frame, and passes only where it stands at least
   ``noise_gate_db`` above it::

       noise[0, b] = dB[0, b];   noise[f, b] = min(dB[f, b], noise[f-1, b] + noise_rise_db)
       dB[f, b] -> -inf (no event) where dB[f, b] < noise[f, b] + noise_gate_db

   Most of a steady background (hum, hiss, a noisy microphone) is removed, at any recording level; a band of
   noise swings by several dB and its deepest dips set its floor, so some of its peaks still pass. The first
   frame, which starts the estimate, gives no event.
7. **Quantize** causally against a running reference level (an automatic gain control with instant attack)::

       ref[f] = max(peak[f], ref[f-1] - release_db, floor_db)      with peak[f] = max over bands of dB[f]
       q[f, b] = clip(floor((dB[f, b] - ref[f] + range_db) * L / range_db), 0, L),   L = 2**feature_bits - 1

   So a band at the reference level gives ``L`` and anything ``range_db`` or more below it gives 0 (no event).
   Unlike normalising each utterance to its own peak, this needs no look-ahead.
"""
from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path

import numpy as np
import scipy.signal
import soundfile

from .data import check_regular_file
from .params import FrontEndParams

__all__ = ["AudioError", "read_audio", "resample", "log_mel", "band_norm", "noise_gate", "quantize", "features",
           "features_from_file", "mel_filterbank", "mel_band_edges", "triangles"]


class AudioError(ValueError):
    """An audio file that cannot be used; the message names the file and the problem."""


MIN_SAMPLE_RATE = 1_000
MAX_SAMPLE_RATE = 192_000
MAX_SECONDS = 120.0
MAX_SAMPLES = 1 << 24     # samples read at once (all channels): 128 MiB as float64
MAX_ANALYSIS = 1 << 23    # frames x FFT size analysed at once (log_mel's arrays take about 30 bytes per unit)
MAX_ABS_SAMPLE = 1e3      # float WAVs hold samples in [-1, 1]; far beyond that the power spectrum overflows


def read_audio(path) -> tuple[np.ndarray, int]:
    """Samples (float64 in [-1, 1], mono) and the sample rate of an audio file.

    Bounded: the header is checked before any sample is read. The rate must lie in ``MIN_SAMPLE_RATE`` ..
    ``MAX_SAMPLE_RATE`` Hz, the file may last at most ``MAX_SECONDS`` and hold at most ``MAX_SAMPLES`` samples
    (all channels together); every sample must be finite and at most ``MAX_ABS_SAMPLE`` in magnitude. Anything
    else raises :class:`AudioError` naming the file, the problem and the fix."""
    path = Path(path)
    check_regular_file(path, "audio file", AudioError)
    try:
        info = soundfile.info(str(path))
        rate, n, channels = int(info.samplerate), int(info.frames), int(info.channels)
    except (soundfile.LibsndfileError, RuntimeError, TypeError, ValueError, OSError) as e:
        raise AudioError(f"{path} is not a readable audio file (expected WAV PCM): {e}") from None
    if not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
        raise AudioError(f"{path} declares a sample rate of {rate:,} Hz; rsnn reads {MIN_SAMPLE_RATE:,} to "
                         f"{MAX_SAMPLE_RATE:,} Hz: resample the file (or repair its header)")
    if n > MAX_SECONDS * rate:
        raise AudioError(f"{path} lasts {n / rate:,.1f} s; at most {MAX_SECONDS:.0f} s are read: cut it into "
                         "shorter files")
    if n * channels > MAX_SAMPLES:
        raise AudioError(f"{path} holds {n:,} samples x {channels} channels, more than the {MAX_SAMPLES:,} "
                         "samples read at once: mix it to mono or cut it into shorter files")
    try:
        data, rate = soundfile.read(str(path), dtype="float64", always_2d=True, frames=n)
    except (soundfile.LibsndfileError, RuntimeError, TypeError, ValueError, OSError) as e:
        raise AudioError(f"{path} is not a readable audio file (expected WAV PCM): {e}") from None
    if data.shape[0] == 0:
        raise AudioError(f"{path} holds no samples")
    if not np.isfinite(data).all():
        raise AudioError(f"{path} holds NaN or infinite samples (a corrupt float WAV); re-export it")
    peak = float(np.abs(data).max())
    if peak > MAX_ABS_SAMPLE:
        raise AudioError(f"{path} holds samples as large as {peak:.3g}; audio samples lie in [-1, 1]: normalise "
                         "the file")
    return data.mean(axis=1), int(rate)


def resample(x: np.ndarray, rate_from: int, rate_to: int) -> np.ndarray:
    if rate_from == rate_to:
        return np.asarray(x, dtype=np.float64)
    g = math.gcd(rate_from, rate_to)
    return scipy.signal.resample_poly(np.asarray(x, dtype=np.float64), rate_to // g, rate_from // g)


def _hz_to_mel(f):
    return 2595.0 * np.log10(1.0 + np.asarray(f, dtype=np.float64) / 700.0)


def _mel_to_hz(m):
    return 700.0 * (10.0 ** (np.asarray(m, dtype=np.float64) / 2595.0) - 1.0)


def mel_band_edges(p: FrontEndParams) -> np.ndarray:
    """The ``n_mels + 2`` edges (Hz) of the triangular filters: filter ``m`` rises from edge ``m`` to ``m + 1``
    and falls to ``m + 2``."""
    return _mel_to_hz(np.linspace(_hz_to_mel(p.fmin_hz), _hz_to_mel(p.fmax_hz), p.n_mels + 2))


def triangles(edges: np.ndarray, sample_rate: int, n_fft: int) -> np.ndarray:
    """The (len(edges) - 2, n_fft // 2 + 1) triangular filters on ``edges`` (Hz, ascending)."""
    return _triangles(tuple(float(e) for e in edges), sample_rate, n_fft)


def _triangles(edges: tuple, sample_rate: int, n_fft: int) -> np.ndarray:
    bins = np.arange(n_fft // 2 + 1) * sample_rate / n_fft
    n_mels = len(edges) - 2
    fb = np.zeros((n_mels, len(bins)))
    for m in range(n_mels):
        lo, mid, hi = edges[m], edges[m + 1], edges[m + 2]
        up = (bins - lo) / (mid - lo)
        down = (hi - bins) / (hi - mid)
        fb[m] = np.maximum(0.0, np.minimum(up, down))
    return fb


@lru_cache(maxsize=16)
def _filterbank(sample_rate, n_fft, n_mels, fmin, fmax) -> np.ndarray:
    edges = _mel_to_hz(np.linspace(_hz_to_mel(fmin), _hz_to_mel(fmax), n_mels + 2))
    fb = _triangles(tuple(float(e) for e in edges), sample_rate, n_fft)
    fb.setflags(write=False)
    return fb


def mel_filterbank(p: FrontEndParams) -> np.ndarray:
    """The (n_mels, n_fft // 2 + 1) triangular filterbank."""
    return _filterbank(p.sample_rate, p.n_fft, p.n_mels, p.fmin_hz, p.fmax_hz)


def log_mel(x: np.ndarray, p: FrontEndParams, filterbank: np.ndarray | None = None) -> np.ndarray:
    """Log-mel energies in dB, shape (F, n_mels), of samples ``x`` already at ``p.sample_rate``. ``filterbank``
    (training's augmentation only, e.g. a frequency-warped one): instead of :func:`mel_filterbank`."""
    win, hop = p.win_length, p.hop_length
    x = np.asarray(x, dtype=np.float64)
    if len(x) < win:
        x = np.concatenate([x, np.zeros(win - len(x))])
    n = 1 + (len(x) - win) // hop
    idx = np.arange(win)[None, :] + hop * np.arange(n)[:, None]
    frames = x[idx] * scipy.signal.get_window("hann", win, fftbins=True)[None, :]
    power = np.abs(np.fft.rfft(frames, n=p.n_fft, axis=1)) ** 2
    fb = mel_filterbank(p) if filterbank is None else filterbank
    return 10.0 * np.log10(power @ fb.T + 1e-10)


def band_norm(db: np.ndarray, p: FrontEndParams) -> np.ndarray:
    """Step 5: ``db`` (F, n_mels) with each band's causal running mean removed and the frame's mean of those means
    added back (the part ``band_norm_strength`` of that shape); ``db`` itself when it is off
    (``band_norm_frames == 0``)."""
    n = p.band_norm_frames
    if not n or len(db) == 0:
        return db
    s = p.band_norm_strength
    out = np.empty_like(db)
    m = np.zeros(db.shape[1])
    for f in range(len(db)):
        m = m + (db[f] - m) / min(f + 1, n)
        out[f] = db[f] - m + m.mean() if s == 1.0 else db[f] - s * (m - m.mean())
    return out


def noise_gate(db: np.ndarray, p: FrontEndParams) -> np.ndarray:
    """Step 6: ``db`` (F, n_mels) with every value less than ``noise_gate_db`` above its band's running noise floor
    set to ``-inf``; ``db`` itself when the gate is off (``noise_gate_db == 0``)."""
    if not p.noise_gate_db or len(db) == 0:
        return db
    floor = np.empty_like(db)
    cur = db[0].copy()
    for f in range(len(db)):
        cur = np.minimum(db[f], cur + p.noise_rise_db)
        floor[f] = cur
    return np.where(db >= floor + p.noise_gate_db, db, -np.inf)


def quantize(db: np.ndarray, p: FrontEndParams) -> np.ndarray:
    """Causal quantization of dB energies (F, n_mels) to integers in 0 .. 2**feature_bits - 1 (see above)."""
    levels = (1 << p.feature_bits) - 1
    peak = db.max(axis=1)
    ref = np.empty_like(peak)
    r = -np.inf
    for f, pk in enumerate(peak):
        r = max(pk, r - p.release_db, p.floor_db)
        ref[f] = r
    q = np.floor((db - ref[:, None] + p.range_db) * (levels / p.range_db))
    return np.clip(q, 0, levels).astype(np.int64)


def features(x: np.ndarray, rate: int, p: FrontEndParams, filterbank: np.ndarray | None = None) -> np.ndarray:
    """Integer features (F, n_mels) of mono samples ``x`` at ``rate`` Hz (``filterbank``: see :func:`log_mel`)."""
    return quantize(noise_gate(band_norm(log_mel(resample(x, rate, p.sample_rate), p, filterbank), p), p), p)


def features_from_file(path, p: FrontEndParams) -> np.ndarray:
    """Integer features (F, n_mels) of an audio file. Bounded as :func:`read_audio` says; the analysis too (frames
    x FFT size at the model's rate at most ``MAX_ANALYSIS``, which only a model above 16 kHz can reach)."""
    x, rate = read_audio(path)
    n = max(-(-len(x) * p.sample_rate // rate), p.win_length)
    frames = 1 + (n - p.win_length) // p.hop_length
    if frames * p.n_fft > MAX_ANALYSIS:
        raise AudioError(f"{path} gives {frames:,} frames at the model's {p.sample_rate:,} Hz; at most "
                         f"{MAX_ANALYSIS // p.n_fft:,} are analysed at once: cut it into shorter files")
    return features(x, rate, p)
