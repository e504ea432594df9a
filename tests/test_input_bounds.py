"""The hostile-input checks of golden (model file, manifest, audio) at their exact edges (the CLI-level tests in
test_hostile.py only show that far-out inputs are refused)."""
from __future__ import annotations

import io

import numpy as np
import pytest

from golden import random_model
from golden.modelfile import MAX_MEMBERS, ModelFileError, _check_directory, model_from_bytes, model_to_bytes
from golden.params import LayerParams, NetworkParams, ReadoutParams

LIMIT = MAX_MEMBERS * (46 + 0xFFFF)      # the most directory bytes that MAX_MEMBERS entries can take


def _end_record(entries: int, size: int, pad: bytes = b"junk") -> bytes:
    """Bytes ending in a zip end-of-central-directory record declaring ``entries`` and ``size``."""
    return pad + b"PK\x05\x06" + bytes(6) + entries.to_bytes(2, "little") + size.to_bytes(4, "little") \
        + bytes(4) + bytes(2)


def test_directory_checked_at_its_exact_limits():
    _check_directory(_end_record(MAX_MEMBERS, LIMIT), "m")                      # at both limits: accepted
    with pytest.raises(ModelFileError, match=f"declares {MAX_MEMBERS + 1} members in 1,234 bytes"):
        _check_directory(_end_record(MAX_MEMBERS + 1, 1234), "m")
    with pytest.raises(ModelFileError, match=f"declares 1 members in {LIMIT + 1:,} bytes"):
        _check_directory(_end_record(1, LIMIT + 1), "m")
    # the fields are read at their offsets: a size whose bytes all differ is reported exactly
    with pytest.raises(ModelFileError, match=f"declares 2 members in {0x7F3A2B1C:,} bytes"):
        _check_directory(_end_record(2, 0x7F3A2B1C), "m")
    # the record found is the last one; a record cut short (under 22 bytes) is left to zipfile's own error
    _check_directory(_end_record(MAX_MEMBERS + 1, 1) + b"PK\x05\x06" + b"\xff" * 17, "m")
    _check_directory(b"no zip here", "m")


def test_a_real_archive_of_exactly_max_members_passes_the_directory_check():
    import zipfile
    for n, refused in ((MAX_MEMBERS, False), (MAX_MEMBERS + 1, True)):
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as z:
            for i in range(n):
                z.writestr(f"m{i}.npy", b"")
        if refused:
            with pytest.raises(ModelFileError, match="directory declares"):
                model_from_bytes(buf.getvalue())
        else:
            with pytest.raises(ModelFileError) as e:
                model_from_bytes(buf.getvalue())
            assert "directory declares" not in str(e.value)


def _three_bit_model_with(nibble: str) -> bytes:
    net = NetworkParams(n_features=6, weight_bits=3, readout=ReadoutParams(size=3), layers=(LayerParams(size=4),))
    z = np.load(io.BytesIO(model_to_bytes(random_model(net, seed=1, density=1.0))))
    arrays = {k: z[k] for k in z.files}
    val = arrays["l0.w_in.nzval"].copy()
    val[0] = (val[0] & 0xF0) | 0x08 if nibble == "low" else (val[0] & 0x0F) | 0x80
    arrays["l0.w_in.nzval"] = val
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return buf.getvalue()


@pytest.mark.parametrize("nibble", ["low", "high"])
def test_three_bit_codes_out_of_range_in_either_nibble_are_refused(nibble):
    with pytest.raises(ModelFileError, match="codes wider than 3 bits"):
        model_from_bytes(_three_bit_model_with(nibble))


# ------------------------------------------------------------------ the data folder's and the audio reader's edges

def test_manifest_limits_at_their_exact_edges(tmp_path, monkeypatch):
    import golden.data as gd
    d = tmp_path / "data"
    d.mkdir()
    (d / "manifest.csv").write_text("path,digit\n" + "a.wav,0\n" * 5)
    monkeypatch.setattr(gd, "MAX_MANIFEST_ROWS", 5)
    assert len(gd.read_manifest(d)) == 5                                   # exactly the row limit: read
    monkeypatch.setattr(gd, "MAX_MANIFEST_ROWS", 4)
    with pytest.raises(gd.DataError, match="more than 4 utterances"):
        gd.read_manifest(d)
    size = (d / "manifest.csv").stat().st_size
    monkeypatch.setattr(gd, "MAX_MANIFEST_ROWS", 100)
    monkeypatch.setattr(gd, "MAX_MANIFEST_BYTES", size)
    assert len(gd.read_manifest(d)) == 5                                   # exactly the byte limit: read
    monkeypatch.setattr(gd, "MAX_MANIFEST_BYTES", size - 1)
    with pytest.raises(gd.DataError, match="bytes, more than"):
        gd.read_manifest(d)


@pytest.mark.parametrize("path", ["/etc/x.wav", "../x.wav", "a/../../x.wav"])
def test_manifest_paths_outside_the_folder_are_refused_by_default(tmp_path, path):
    import golden.data as gd
    d = tmp_path / "data"
    d.mkdir()
    (d / "manifest.csv").write_text(f"path,digit\n{path},0\n")
    with pytest.raises(gd.DataError, match="leads outside the data folder"):
        gd.read_manifest(d)
    assert gd.read_manifest(d, allow_outside=True)[0].label == "0"


def test_control_characters_up_to_31_are_refused(tmp_path):
    import golden.data as gd
    d = tmp_path / "data"
    d.mkdir()
    (d / "manifest.csv").write_text("path,digit\na.wav,1\x1f\n")
    with pytest.raises(gd.DataError, match="control character"):
        gd.read_manifest(d)


@pytest.mark.parametrize("rate,ok", [(999, False), (1000, True), (192_000, True), (192_001, False)])
def test_audio_rate_limits_at_their_exact_edges(tmp_path, rate, ok):
    import soundfile
    from golden.frontend import AudioError, read_audio
    path = tmp_path / "r.wav"
    soundfile.write(str(path), np.zeros(rate // 100 + 1), rate)
    if ok:
        assert read_audio(path)[1] == rate
    else:
        with pytest.raises(AudioError, match="declares a sample rate"):
            read_audio(path)


def test_audio_length_and_sample_limits_at_their_exact_edges(tmp_path, monkeypatch):
    import soundfile
    import golden.frontend as fe
    path = tmp_path / "s.wav"
    soundfile.write(str(path), np.zeros((1000, 2)), 1000)                  # 1 s, 2 channels, 2000 samples
    monkeypatch.setattr(fe, "MAX_SECONDS", 1.0)
    monkeypatch.setattr(fe, "MAX_SAMPLES", 2000)
    assert len(fe.read_audio(path)[0]) == 1000                              # exactly at both limits
    monkeypatch.setattr(fe, "MAX_SAMPLES", 1999)
    with pytest.raises(fe.AudioError, match="2 channels"):
        fe.read_audio(path)
    monkeypatch.setattr(fe, "MAX_SAMPLES", 2000)
    monkeypatch.setattr(fe, "MAX_SECONDS", 0.999)
    with pytest.raises(fe.AudioError, match="lasts 1.0 s"):
        fe.read_audio(path)


def test_sample_magnitude_limit_at_its_exact_edge(tmp_path):
    import soundfile
    from golden.frontend import MAX_ABS_SAMPLE, AudioError, read_audio
    path = tmp_path / "f.wav"
    soundfile.write(str(path), np.array([0.0, MAX_ABS_SAMPLE, -0.5]), 8000, subtype="DOUBLE")
    assert read_audio(path)[0][1] == MAX_ABS_SAMPLE
    soundfile.write(str(path), np.array([0.0, MAX_ABS_SAMPLE * 1.001]), 8000, subtype="DOUBLE")
    with pytest.raises(AudioError, match="samples as large as"):
        read_audio(path)
