"""Training data: golden's front end over a data set's manifest, seeded waveform augmentation, length-bucketed
batches. Features are cached under ``build/cache/`` (derived from the data: never committed)."""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from golden.data import PROJECT_ROOT, read_manifest
from golden.frontend import features, mel_band_edges, read_audio, triangles
from golden.params import FrontEndParams

__all__ = ["FeatureSet", "load_features", "augment_waveform", "vtlp_filterbank", "batches", "to_tensor"]

CACHE = PROJECT_ROOT / "build" / "cache"


@dataclass
class FeatureSet:
    feats: list          # int64 arrays (F, n_features)
    labels: np.ndarray   # class indices
    speakers: list
    paths: list

    def __len__(self):
        return len(self.feats)

    def subset(self, idx) -> "FeatureSet":
        idx = list(idx)
        return FeatureSet([self.feats[i] for i in idx], self.labels[idx], [self.speakers[i] for i in idx],
                          [self.paths[i] for i in idx])

    def concat(self, other: "FeatureSet") -> "FeatureSet":
        return FeatureSet(self.feats + other.feats, np.concatenate([self.labels, other.labels]),
                          self.speakers + other.speakers, self.paths + other.paths)


def augment_waveform(x: np.ndarray, rate: int, rng: np.random.Generator, speed: float = 0.0) -> np.ndarray:
    """Random gain (+-6 dB), white noise at 15-35 dB SNR, and a time shift (-50..+150 ms of padding).

    ``speed > 0`` first resamples the waveform by a random factor in ``[1 - speed, 1 + speed]`` (linear
    interpolation: tempo and pitch change together, a cheap stand-in for another speaker's vocal tract and rate).
    ``speed = 0`` draws nothing for it, so the other draws stay as they were.
    """
    if speed:
        if not 0 < speed < 0.5:
            raise ValueError(f"speed perturbation must be in (0, 0.5), not {speed}")
        factor = rng.uniform(1 - speed, 1 + speed)
        n = max(2, int(round(len(x) / factor)))
        x = np.interp(np.arange(n) * factor, np.arange(len(x)), x)
    x = x * 10 ** (rng.uniform(-6, 6) / 20)
    shift = int(rng.uniform(-0.05, 0.15) * rate)
    x = np.concatenate([np.zeros(shift), x]) if shift > 0 else x[-shift:]
    rms = np.sqrt(np.mean(x ** 2)) + 1e-9
    return x + rng.normal(0, rms * 10 ** (-rng.uniform(15, 35) / 20), size=len(x))


def vtlp_filterbank(p: FrontEndParams, alpha: float) -> np.ndarray:
    """The front end's filterbank with its band edges warped by vocal-tract-length perturbation (Jaitly and
    Hinton, 2013): ``f -> alpha f`` up to a knee, then linear so that the Nyquist frequency maps onto itself; a
    factor ``alpha`` stands in for a speaker whose formants sit ``alpha`` times higher."""
    nyq = p.sample_rate / 2
    hi = 0.85 * nyq
    knee = hi * min(alpha, 1.0) / alpha
    f = mel_band_edges(p)
    warped = np.where(f <= knee, alpha * f, nyq - (nyq - hi * min(alpha, 1.0)) / (nyq - knee) * (nyq - f))
    return triangles(warped, p.sample_rate, p.n_fft)


def load_features(data_dir, split, labels, frontend: FrontEndParams, label_column="digit", copies: int = 0,
                  seed: int = 0, cache: bool = True, speed: float = 0.0, vtlp: float = 0.0) -> FeatureSet:
    """Features of every utterance of ``split`` (plus ``copies`` augmented copies of each, seeded; ``speed``: see
    :func:`augment_waveform`; ``vtlp > 0``: each augmented copy's filterbank is warped by a factor drawn in
    ``[1 - vtlp, 1 + vtlp]`` (:func:`vtlp_filterbank`, a generator of its own: the other draws stay as they
    were))."""
    if not 0.0 <= vtlp < 0.5:
        raise ValueError(f"vtlp must be in [0, 0.5), not {vtlp}")
    utts = read_manifest(data_dir, split, label_column)
    index = {lab: i for i, lab in enumerate(labels)}
    key = json.dumps([str(Path(data_dir).resolve()), split, label_column, frontend.to_dict(), copies, seed,
                      len(utts), 1] + ([speed] if speed and copies else [])
                     + ([["vtlp", vtlp]] if vtlp and copies else []), sort_keys=True)
    path = CACHE / f"features-{hashlib.sha1(key.encode()).hexdigest()[:16]}.npz"
    feats = _cached(path) if cache else None
    if feats is None:
        feats = []
        for copy in range(copies + 1):
            for i, u in enumerate(utts):
                x, rate = read_audio(u.path)
                fb = None
                if copy:
                    x = augment_waveform(x, rate, np.random.default_rng([seed, copy, i]), speed)
                    if vtlp:
                        alpha = np.random.default_rng([seed, copy, i, 0x7C1]).uniform(1 - vtlp, 1 + vtlp)
                        fb = vtlp_filterbank(frontend, alpha)
                feats.append(features(x, rate, frontend, fb))
        if cache:      # written whole, then renamed: a run reading it meanwhile sees no file or all of it
            CACHE.mkdir(parents=True, exist_ok=True)
            offsets = np.cumsum([0] + [len(f) for f in feats])
            with tempfile.NamedTemporaryFile(dir=CACHE, prefix=path.stem + ".", suffix=".tmp", delete=False) as f:
                np.savez(f, flat=np.concatenate(feats), offsets=offsets)
            os.replace(f.name, path)
    lab = np.array([index[u.label] for u in utts] * (copies + 1), dtype=np.int64)
    return FeatureSet(feats, lab, [u.speaker for u in utts] * (copies + 1), [str(u.path) for u in utts] * (copies + 1))


def _cached(path: Path):
    """The features a cache file holds, or None when it is missing or not a whole cache file (then they are
    computed again and the file rewritten)."""
    if not path.is_file():
        return None
    try:
        with open(path, "rb") as fh:      # our handle: closed whatever np.load raises
            z = np.load(fh, allow_pickle=False)
            flat, offsets = z["flat"], z["offsets"]
    except (OSError, ValueError, KeyError, AttributeError, TypeError, zipfile.BadZipFile, EOFError):
        return None
    if offsets.ndim != 1 or len(offsets) < 1 or offsets[-1] != len(flat):
        return None
    return [flat[offsets[i]:offsets[i + 1]] for i in range(len(offsets) - 1)]


def to_tensor(feats: list) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad a list of (F, n) int arrays into a (B, F_max, n) float32 tensor and a (B,) lengths tensor."""
    lengths = torch.tensor([len(f) for f in feats])
    x = torch.zeros(len(feats), int(lengths.max()), feats[0].shape[1])
    for b, f in enumerate(feats):
        x[b, :len(f)] = torch.from_numpy(f.astype(np.float32))
    return x, lengths


def batches(n_items: int, lengths, batch_size: int, rng: np.random.Generator):
    """Shuffled batches of indices, each of similar lengths (sorted within random pools of 8 batches)."""
    order = rng.permutation(n_items)
    pool = 8 * batch_size
    out = []
    for s in range(0, n_items, pool):
        chunk = sorted(order[s:s + pool], key=lambda i: lengths[i])
        out += [chunk[k:k + batch_size] for k in range(0, len(chunk), batch_size)]
    rng.shuffle(out)
    return out
