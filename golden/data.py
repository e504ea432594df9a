"""Speech data sets on disk: where they are and how their ``manifest.csv`` is read.

A data folder holds ``manifest.csv`` (UTF-8 CSV, at most ``MAX_MANIFEST_BYTES``) with at least a ``path`` column
(relative to the folder, and staying inside it: no absolute paths, no ``..`` climbing out, unless the caller
allows it) and a label column (``digit`` by default); an ``official_split`` column, when present, names each row's
split. Every row has as many fields as the header. The folder is
given explicitly, or found as ``$RSNN_DATA/<set>``, or as ``../shared/data/<set>`` beside the project's root.
The data is never copied into the project.
"""
from __future__ import annotations

import csv
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path

__all__ = ["DataError", "Utterance", "PROJECT_ROOT", "MAX_MANIFEST_BYTES", "MAX_MANIFEST_ROWS", "data_root",
           "default_data_dir", "dataset_of",
           "read_manifest", "check_regular_file", "file_kind"]

PROJECT_ROOT = Path(__file__).resolve().parents[1]
MAX_MANIFEST_BYTES = 16 << 20  # a manifest line per utterance
MAX_MANIFEST_ROWS = 100_000     # rows held in memory while a manifest is read (about 600 bytes each)


class DataError(ValueError):
    """A data folder or manifest that cannot be used; the message names the problem and the fix."""


@dataclass(frozen=True)
class Utterance:
    path: Path
    label: str
    speaker: str | None = None


def check_regular_file(path, what: str, error=None) -> os.stat_result:
    """``os.stat`` of ``path`` when it is a regular file (following links); else raise ``error`` (a ValueError
    subclass, :class:`DataError` by default) saying what it is instead. Never opens it (a FIFO would block)."""
    error = error or DataError
    path = Path(path)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise error(f"{what} {path} does not exist") from None
    except NotADirectoryError:
        raise error(f"{what} {path} does not exist (a part of its path is a file, not a folder)") from None
    except (OSError, ValueError) as e:
        raise error(f"{what} {str(path)!r} cannot be read: {getattr(e, 'strerror', None) or e}") from None
    if stat.S_ISDIR(st.st_mode):
        raise error(f"{what} {path} is a folder, not a file")
    if not stat.S_ISREG(st.st_mode):
        raise error(f"{what} {path} is {file_kind(st.st_mode)}, not a regular file; give a file")
    return st


def file_kind(mode: int) -> str:
    """What a file that is not a regular one is, in words (for error messages)."""
    return ("a folder" if stat.S_ISDIR(mode) else "a FIFO (named pipe)" if stat.S_ISFIFO(mode) else "a device"
            if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "a socket" if stat.S_ISSOCK(mode) else
            "not a regular file")


def data_root() -> Path:
    """``$RSNN_DATA`` when set, else ``../shared/data`` beside the project's root."""
    env = os.environ.get("RSNN_DATA")
    return Path(env) if env else PROJECT_ROOT.parent / "shared" / "data"


def default_data_dir(name: str) -> Path:
    return data_root() / name


def dataset_of(meta, file_name: str) -> str:
    """The data set (a folder name under :func:`data_root`) a model file belongs to: the ``data`` its training
    recorded in the file's meta when that is a plain folder name, else ``arabic_digits`` when the file's name says
    so, else ``fsdd`` (``fsdd_binary.npz`` is an FSDD model)."""
    name = (meta or {}).get("data")
    if isinstance(name, str) and name.strip() and name not in (".", "..") and not re.search(r"[/\\\x00]", name):
        return name
    return "arabic_digits" if "arabic" in str(file_name) else "fsdd"


def _inside(rel: str) -> bool:
    """Whether a manifest path, taken relative to its folder, stays inside it (judged on the text: no absolute
    path, no drive, no ``..`` that climbs above the folder)."""
    if os.path.isabs(rel) or rel.startswith(("/", "\\")):
        return False
    norm = os.path.normpath(rel)
    return norm != ".." and not norm.startswith(".." + os.sep)


def read_manifest(folder, split: str | None = None, label_column: str = "digit",
                  allow_outside: bool = False) -> list[Utterance]:
    """The utterances of ``folder/manifest.csv`` (only split ``split`` when given), in manifest order.

    Raises :class:`DataError` for anything unusable: a missing folder or manifest, one that is not UTF-8 or too
    large, malformed CSV, a row with the wrong number of fields, a missing column, an empty path or label, or a
    path that leads outside ``folder`` (absolute or climbing out with ``..``) unless ``allow_outside``."""
    folder = Path(folder)
    if not folder.is_dir():
        what = "is not a folder" if folder.exists() else "does not exist"
        raise DataError(f"data folder {folder} {what}; pass --data DIR or set RSNN_DATA to the folder "
                        "that holds the data sets (see ../shared/data/README.md)")
    manifest = folder / "manifest.csv"
    if not manifest.exists():
        raise DataError(f"{folder} has no manifest.csv (a CSV with columns 'path' and '{label_column}')")
    st = check_regular_file(manifest, "manifest")
    if st.st_size > MAX_MANIFEST_BYTES:
        raise DataError(f"{manifest} is {st.st_size:,} bytes, more than the {MAX_MANIFEST_BYTES:,} a manifest may "
                        "have; split the data set into several folders")
    try:
        with open(manifest, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh, restkey="\0extra", restval=None)
            columns = reader.fieldnames or []
            rows = []
            for r in reader:
                rows.append((reader.line_num, r))
                if len(rows) > MAX_MANIFEST_ROWS:
                    raise DataError(f"{manifest} lists more than {MAX_MANIFEST_ROWS:,} utterances; split the data "
                                    "set into several folders")
    except UnicodeDecodeError as e:
        raise DataError(f"{manifest} is not UTF-8 text (it holds the byte 0x{e.object[e.start]:02x}, which "
                        "is not UTF-8 there); save it as UTF-8") from None
    except csv.Error as e:
        raise DataError(f"{manifest} is not a readable CSV file (line {reader.line_num}: {e}); fix that line")\
            from None
    except OSError as e:
        raise DataError(f"{manifest} cannot be read: {e.strerror}") from None
    for n, r in rows:
        if "\0extra" in r or None in r.values():
            got = len(columns) - sum(v is None for v in r.values()) + len(r.get("\0extra", ()))
            raise DataError(f"{manifest} line {n} has {got} fields but the header has {len(columns)}; "
                            "every row needs one field per column")
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
        for what in ("path", label_column):
            if any(ord(ch) < 32 for ch in r[what]):
                raise DataError(f"{manifest} line {n}: the {what} {r[what]!r} holds a control character; remove it")
        if not allow_outside and not _inside(r["path"]):
            raise DataError(f"{manifest} line {n}: path {r['path']!r} leads outside the data folder {folder}; "
                            "paths must be relative to it (or pass --allow-outside-data to read them anyway)")
        out.append(Utterance(folder / r["path"], r[label_column].strip(), r.get("speaker")))
    return out
