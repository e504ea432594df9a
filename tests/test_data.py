"""golden/data.py: where the data sets are looked for, and how a manifest is read (its refusals name the line)."""
import dataclasses
from pathlib import Path

import pytest

from golden.data import PROJECT_ROOT, DataError, Utterance, data_root, default_data_dir, read_manifest


def test_project_root_and_data_root(monkeypatch, tmp_path):
    assert (PROJECT_ROOT / "golden" / "data.py").is_file() and (PROJECT_ROOT / "pyproject.toml").is_file()
    monkeypatch.delenv("RSNN_DATA", raising=False)
    assert data_root() == PROJECT_ROOT.parent / "shared" / "data"
    monkeypatch.setenv("RSNN_DATA", str(tmp_path))
    assert data_root() == tmp_path and default_data_dir("fsdd") == tmp_path / "fsdd"
    monkeypatch.setenv("RSNN_DATA", "")
    assert data_root() == PROJECT_ROOT.parent / "shared" / "data"


def manifest(tmp_path, text):
    (tmp_path / "manifest.csv").write_text(text)
    return tmp_path


def test_read_manifest_rows_and_splits(tmp_path):
    d = manifest(tmp_path, "path,digit,speaker,official_split\na.wav, 3 ,s1,train\nb.wav,4,s2,test\nc.wav,5,,test\n")
    all_rows = read_manifest(d)
    assert all_rows == [Utterance(d / "a.wav", "3", "s1"), Utterance(d / "b.wav", "4", "s2"),
                        Utterance(d / "c.wav", "5", "")]
    assert [u.label for u in read_manifest(d, "test")] == ["4", "5"]
    assert [u.label for u in read_manifest(d, label_column="speaker", split="train")] == ["s1"]
    (tmp_path / "x").mkdir()
    d2 = manifest(tmp_path / "x", "path,word\nq.wav,yes\n")
    assert read_manifest(d2, label_column="word") == [Utterance(d2 / "q.wav", "yes", None)]
    with pytest.raises(dataclasses.FrozenInstanceError):
        all_rows[0].label = "9"


@pytest.mark.parametrize("text,kw,match", [
    ("path,label\na.wav,1\n", {}, "has no 'digit' column.*--label-column"),
    ("file,digit\na.wav,1\n", {}, "has no 'path' column.*required"),
    ("path,digit\n", {}, "lists no utterances"),
    ("path,digit\na.wav,1\n", {"split": "test"}, "no 'official_split' column, so --split test"),
    ("path,digit,official_split\na.wav,1,train\nb.wav,2,val\n", {"split": "test"},
     r"no row in split 'test' \(splits present: \['train', 'val'\]\)"),
    ("path,digit\na.wav,1\nb.wav, \n", {}, "line 3: empty path or label"),
    ("path,digit\na.wav,1\n ,2\n", {}, "line 3: empty path or label"),
    ("path,digit\na.wav\n", {}, "line 2 has 1 fields but the header has 2"),
])
def test_read_manifest_refusals(tmp_path, text, kw, match):
    with pytest.raises(DataError, match=match):
        read_manifest(manifest(tmp_path, text), **kw)


def test_missing_folder_and_manifest(tmp_path):
    with pytest.raises(DataError, match="does not exist.*RSNN_DATA"):
        read_manifest(tmp_path / "nowhere")
    with pytest.raises(DataError, match="has no manifest.csv"):
        read_manifest(tmp_path)
    assert isinstance(DataError("x"), ValueError)
    assert Path(PROJECT_ROOT).is_absolute()


def test_dataset_of_a_model_file_names_a_folder_and_nothing_else():
    """The data set a model file belongs to: its training's ``data`` when that is a plain folder name; a path, an
    empty or non-text value falls back to the file's name (``fsdd_binary.npz`` is FSDD)."""
    from golden.data import PROJECT_ROOT, dataset_of
    from golden.modelfile import load_model
    for name, want in (("fsdd", "fsdd"), ("fsdd_binary", "fsdd"), ("arabic_digits", "arabic_digits")):
        assert dataset_of(load_model(PROJECT_ROOT / "models" / f"{name}.npz").meta, f"{name}.npz") == want
    for hostile in ("../../etc", "a/b", "..", "", "  ", 7, None, ["fsdd"], "x\x00y", "c:\\data"):
        assert dataset_of({"data": hostile}, "arabic_x.npz") == "arabic_digits"
        assert dataset_of({"data": hostile}, "fsdd_binary.npz") == "fsdd"
    assert dataset_of({"data": "my_set"}, "fsdd.npz") == "my_set" and dataset_of(None, "m.npz") == "fsdd"
