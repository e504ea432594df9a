import os
import zlib

import numpy as np
import pytest
import soundfile

from golden.data import default_data_dir

collect_ignore_glob = []


@pytest.fixture
def seed(request):
    """A per-test seed derived from the test's name (override with RSNN_TEST_SEED); printed on failure."""
    s = int(os.environ.get("RSNN_TEST_SEED", zlib.crc32(request.node.nodeid.encode()) & 0xFFFF))
    request.node.user_properties.append(("seed", s))
    print(f"seed = {s}")
    return s


@pytest.fixture
def rng(seed):
    return np.random.default_rng(seed)


def real_data(name: str):
    d = default_data_dir(name)
    if not (d / "manifest.csv").is_file():
        pytest.skip(f"real speech data '{name}' not found at {d} (set RSNN_DATA to the folder of the data sets)")
    return d


def write_wav(path, samples, rate, subtype="PCM_16"):
    soundfile.write(str(path), samples, rate, subtype=subtype)
    return path


def tone_dataset(root):
    """A small data folder ``root/data`` with a manifest of 4 tones (digits 3, 1, 7, 0; the first in split
    ``train``, the others in ``test``)."""
    d = root / "data"
    (d / "wav").mkdir(parents=True)
    rows = ["path,digit,speaker,official_split"]
    for i, (freq, digit, split) in enumerate([(300, 3, "train"), (900, 1, "test"), (1800, 7, "test"),
                                              (2500, 0, "test")]):
        write_wav(d / "wav" / f"{i}.wav", tone(freq, 0.4, 8000), 8000)
        rows.append(f"wav/{i}.wav,{digit},s{i},{split}")
    (d / "manifest.csv").write_text("\n".join(rows) + "\n")
    return d


def tone(freq, seconds, rate, amp=0.5):
    t = np.arange(int(seconds * rate)) / rate
    return amp * np.sin(2 * np.pi * freq * t)
