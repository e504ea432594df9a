"""Speech data sets on disk: where they are and how their ``manifest.csv`` is read.

A data folder holds ``manifest.csv`` with at least a ``path`` column (relative to the folder) and a label
column (``digit`` by default); an ``official_split`` column, when present, names each row's split. The folder is
given explicitly, or found as ``$RSNN_DATA/<set>``, or as ``../shared/data/<set>`` beside the project's root.
The data is never copied into the project.
"""
from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path

__all__ = ["DataError", "Utterance", "PROJECT_ROOT", "data_root", "default_data_dir", "read_manifest"]

PROJECT_ROOT = Path(__file__).resolve().parents[1]


class DataError(ValueError):
    """A data folder or manifest that cannot be used; the message names the problem and the fix."""


@dataclass(frozen=True)
class Utterance:
    path: Path
    label: str
    speaker: str | None = None


def data_root() -> Path:
    """``$RSNN_DATA`` when set, else ``../shared/data`` beside the project's root."""
    env = os.environ.get("RSNN_DATA")
    return Path(env) if env else PROJECT_ROOT.parent / "shared" / "data"


def default_data_dir(name: str) -> Path:
    return data_root() / name


def read_manifest(folder, split: str | None = None, label_column: str = "digit") -> list[Utterance]:
    """The utterances of ``folder/manifest.csv`` (only split ``split`` when given), in manifest order."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"data folder {folder} does not exist; pass --data DIR or set RSNN_DATA to the folder "
                        "that holds the data sets (see ../shared/data/README.md)")
    manifest = folder / "manifest.csv"
    if not manifest.is_file():
        raise DataError(f"{folder} has no manifest.csv (a CSV with columns 'path' and '{label_column}')")
    with open(manifest, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        columns = reader.fieldnames or []
        rows = [(n, r) for n, r in enumerate(reader, start=2)]
    for col in ("path", label_column):
        if col not in columns:
            raise DataError(f"{manifest} has no '{col}' column (columns: {columns}); "
                            + ("choose one with --label-column" if col == label_column else "it is required"))
    if not rows:
        raise DataError(f"{manifest} lists no utterances")
    if split is not None:
        if "official_split" not in columns:
            raise DataError(f"{manifest} has no 'official_split' column, so --split {split} cannot be applied")
        present = sorted({r["official_split"] for _, r in rows})
        rows = [(n, r) for n, r in rows if r["official_split"] == split]
        if not rows:
            raise DataError(f"{manifest} has no row in split '{split}' (splits present: {present})")
    out = []
    for n, r in rows:
        if not (r["path"] or "").strip() or not (r[label_column] or "").strip():
            raise DataError(f"{manifest} line {n}: empty path or label")
        out.append(Utterance(folder / r["path"], r[label_column].strip(), r.get("speaker")))
    return out
