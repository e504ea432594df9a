"""The model file: a versioned, compressed, self-describing container for a :class:`golden.model.Model`.

Format ``rsnn-model`` version 1 (binary spikes) or 2 (a layer may set ``spike_levels``, multi-level spikes; the
only difference) is a NumPy ``.npz`` archive (zip, deflate) holding only plain arrays (never
pickles):

=====================  =========  =====================================================================
array                  dtype      content
=====================  =========  =====================================================================
``header``             uint8      UTF-8 JSON: ``{"format": "rsnn-model", "version": 1 or 2, "network": {..},
                                  "frontend": {..}, "labels": [..], "meta": {..}}`` (see golden.params)
``<m>.nzmask``         uint8      for weight matrix ``<m>`` (``l0.w_in``, ``l0.w_rec``, .., ``out.w``):
                                  the bitmap of its non-zero weights, row-major, ``np.packbits`` order
``<m>.nzval``          uint8      the non-zero weights in the same order, as ``weight_bits``-bit two's
                                  complement codes, two per byte (low nibble first) when
                                  ``weight_bits <= 4``, else one per byte
=====================  =========  =====================================================================

The bitmap is the pruning index: a pruned weight costs one bit. :func:`load_model` checks everything (format,
version, parameters, the set of arrays, their sizes, that every stored code fits ``weight_bits`` and none decodes
to zero) and raises :class:`ModelFileError` with a message naming the problem.

Reading is bounded whatever the file holds: a file over ``MAX_MODEL_BYTES`` or one that does not start like a zip
archive is refused before it is read; the archive's member list is checked (names, count, no encryption, deflate
or no compression) before any member is unpacked; the header member may hold ``MAX_HEADER_BYTES`` and nest
``MAX_HEADER_DEPTH`` deep; the network it describes may have ``MAX_WEIGHTS`` weights; and each weight member is
unpacked only up to the size its matrix needs (its declared size is checked first, its ``.npy`` shape is parsed
here, never allocated by NumPy).
"""
from __future__ import annotations

import io
import json
import zipfile
import zlib
from pathlib import Path

import numpy as np

from .data import check_regular_file
from .model import LayerWeights, Model
from .params import FrontEndParams, NetworkParams, ParamError

__all__ = ["FORMAT", "VERSION", "ModelFileError", "save_model", "load_model", "model_to_bytes",
           "model_from_bytes"]

FORMAT = "rsnn-model"
#: The version this golden writes for a model with multi-level spikes (a layer's ``spike_levels`` > 1). A model
#: of binary spikes is written as version 1, the same format without that field, so that its bytes stay what
#: they were (an older golden still reads it unless it sets a field added since, such as a front-end option,
#: which such a golden refuses by name). Both versions are read.
VERSION = 2
VERSIONS = (1, 2)
MAX_MODEL_BYTES = 64 << 20
MAX_HEADER_BYTES = 1 << 20
MAX_HEADER_DEPTH = 32
MAX_WEIGHTS = 1 << 23
MAX_MEMBERS = 64
_NPY_HEADER_SLACK = 4096   # bytes a .npy member may hold on top of its data (its own header)
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")
_UNPACK_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, OSError, RuntimeError, NotImplementedError, ValueError)


class ModelFileError(ValueError):
    """A model file that cannot be used; the message says why and what to do."""


def _pack_codes(codes: np.ndarray, bits: int) -> np.ndarray:
    codes = codes.astype(np.uint8)
    if bits > 4:
        return codes
    if len(codes) % 2:
        codes = np.append(codes, np.uint8(0))
    return (codes[0::2] | (codes[1::2] << 4)).astype(np.uint8)


def _unpack_codes(packed: np.ndarray, bits: int, n: int) -> np.ndarray:
    if bits > 4:
        return packed.astype(np.int64)[:n]
    out = np.empty(2 * len(packed), dtype=np.int64)
    out[0::2] = packed & 0xF
    out[1::2] = packed >> 4
    return out[:n]


def model_to_bytes(model: Model) -> bytes:
    model.validate()
    net = model.network
    version = VERSION if any(lp.spike_levels > 1 for lp in net.layers) else 1
    header = {"format": FORMAT, "version": version, "network": net.to_dict(),
              "frontend": model.frontend.to_dict(), "labels": list(model.labels), "meta": model.meta}
    arrays = {"header": np.frombuffer(json.dumps(header, sort_keys=True).encode(), dtype=np.uint8)}
    wf = net.weight_format
    for name, w in model.matrices().items():
        flat = w.reshape(-1)
        nz = flat != 0
        arrays[f"{name}.nzmask"] = np.packbits(nz)
        arrays[f"{name}.nzval"] = _pack_codes(wf.to_code(flat[nz]), net.weight_bits)
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return buf.getvalue()


def save_model(model: Model, path) -> int:
    """Write ``model`` to ``path``; returns the number of bytes written."""
    data = model_to_bytes(model)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_bytes(data)
    return len(data)


def load_model(path) -> Model:
    path = Path(path)
    st = check_regular_file(path, "model file", ModelFileError)
    bad = f"{path} is not an {FORMAT} file"
    if st.st_size > MAX_MODEL_BYTES:
        raise ModelFileError(f"{bad}: it is {st.st_size:,} bytes, more than the {MAX_MODEL_BYTES:,} a model file "
                             "may have")
    try:
        with open(path, "rb") as fh:
            head = fh.read(6)
            if head[:4] not in _ZIP_MAGIC and not head.startswith(b"\x93NUMPY"):
                raise ModelFileError(f"{bad}: it is not a readable .npz archive (it does not start like a zip "
                                     "file); write it with golden.modelfile.save_model or `rsnn train`")
            data = head + fh.read(MAX_MODEL_BYTES + 1 - len(head))
    except OSError as e:
        raise ModelFileError(f"model file {path} cannot be read: {e.strerror}") from None
    return model_from_bytes(data, str(path))


def _depth_exceeds(obj, limit: int) -> bool:
    stack = [(obj, 1)]
    while stack:
        o, d = stack.pop()
        if isinstance(o, (dict, list)):
            if d > limit:
                return True
            stack.extend((v, d + 1) for v in (o.values() if isinstance(o, dict) else o))
    return False


def _member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, limit: int, name: str, what: str) -> np.ndarray:
    """Member ``info`` as a 1-D uint8 array of at most ``limit`` bytes; ModelFileError ``what`` otherwise."""
    key = info.filename[:-4]
    if info.file_size > limit + _NPY_HEADER_SLACK:
        raise ModelFileError(f"{name}: member {key!r} declares {info.file_size:,} bytes unpacked, more than the "
                             f"{limit:,} it can need; the file is damaged or not a model: write it again")
    try:
        with zf.open(info) as fh:
            raw = fh.read(limit + _NPY_HEADER_SLACK + 1)
    except _UNPACK_ERRORS as e:
        raise ModelFileError(f"{name}: member {key!r} cannot be unpacked ({e}); the file is damaged: write it "
                             "again") from None
    buf = io.BytesIO(raw)
    try:
        version = np.lib.format.read_magic(buf)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(buf)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(buf)
        else:
            raise ValueError(f"unsupported .npy version {version}")
    except (ValueError, EOFError, SyntaxError, TypeError, OverflowError) as e:
        raise ModelFileError(f"{name}: member {key!r} is not a readable .npy array ({e})") from None
    if dtype != np.uint8 or len(shape) != 1:
        raise ModelFileError(f"{what}, not {dtype} {shape}")
    body = raw[buf.tell():]
    if shape[0] != len(body):
        raise ModelFileError(f"{name}: member {key!r} declares {shape[0]:,} bytes of data but holds "
                             f"{len(body):,}; the file is damaged: write it again")
    if len(body) > limit:
        raise ModelFileError(f"{name}: member {key!r} holds {len(body):,} bytes, more than the {limit:,} it can "
                             "need")
    return np.frombuffer(body, dtype=np.uint8)


def model_from_bytes(data: bytes, name: str = "<bytes>") -> Model:
    bad = f"{name} is not an {FORMAT} file"
    if data[:6] == b"\x93NUMPY":
        raise ModelFileError(f"{bad}: it holds a single array, not an .npz archive")
    if len(data) > MAX_MODEL_BYTES:
        raise ModelFileError(f"{bad}: it is {len(data):,} bytes, more than the {MAX_MODEL_BYTES:,} a model file "
                             "may have")
    _check_directory(data, bad)
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
        infos = zf.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError, NotImplementedError) as e:
        raise ModelFileError(f"{bad}: it is not a readable .npz archive ({e}); write it with "
                             "golden.modelfile.save_model or `rsnn train`") from None
    with zf:
        return _from_zip(zf, infos, name, bad)


def _check_directory(data: bytes, bad: str) -> None:
    """Refuse an archive whose central directory declares more than ``MAX_MEMBERS`` entries or more bytes than
    that many entries can take, from its end record alone: :mod:`zipfile` builds an object per entry before the
    member list could be checked (a 64 MiB directory of tiny entries would take about 500 MiB)."""
    end = data.rfind(b"PK\x05\x06", max(0, len(data) - (22 + 0xFFFF)))
    if end < 0 or len(data) < end + 22:
        return                      # not a zip archive: zipfile's own error names it
    entries = int.from_bytes(data[end + 10:end + 12], "little")
    size = int.from_bytes(data[end + 12:end + 16], "little")
    if entries > MAX_MEMBERS or size > MAX_MEMBERS * (46 + 0xFFFF):
        raise ModelFileError(f"{bad}: its directory declares {entries:,} members in {size:,} bytes (a model has "
                             f"at most {MAX_MEMBERS} members)")


def _from_zip(zf: zipfile.ZipFile, infos: list, name: str, bad: str) -> Model:
    if len(infos) > MAX_MEMBERS:
        raise ModelFileError(f"{bad}: it has {len(infos):,} members (a model has at most {MAX_MEMBERS})")
    members = {}
    for info in infos:
        if not info.filename.endswith(".npy"):
            raise ModelFileError(f"{bad}: member {info.filename!r} is not a NumPy array")
        key = info.filename[:-4]
        if key in members:
            raise ModelFileError(f"{bad}: member {key!r} appears twice")
        if info.flag_bits & 0x1:
            raise ModelFileError(f"{bad}: member {key!r} is encrypted; model files are never encrypted: write it "
                                 "again with golden.modelfile.save_model")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise ModelFileError(f"{bad}: member {key!r} uses zip compression method {info.compress_type}; model "
                                 "files use deflate (or none): write it again with golden.modelfile.save_model")
        members[key] = info
    if "header" not in members:
        raise ModelFileError(f"{bad}: it has no 'header' array")
    h = _member(zf, members.pop("header"), MAX_HEADER_BYTES, name, f"{bad}: its header must be a 1-D uint8 array")
    try:
        header = json.loads(h.tobytes().decode())
    except (ValueError, UnicodeDecodeError, TypeError) as e:
        raise ModelFileError(f"{bad}: its header is not UTF-8 JSON ({e})") from None
    except RecursionError:
        header = None
    if header is None or _depth_exceeds(header, MAX_HEADER_DEPTH):
        raise ModelFileError(f"{bad}: its header JSON nests more than {MAX_HEADER_DEPTH} levels deep")
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise ModelFileError(f"{bad}: header.format is {header.get('format') if isinstance(header, dict) else header!r}")
    version = header.get("version")
    if type(version) is not int or version not in VERSIONS:
        raise ModelFileError(f"{name}: model file version {version!r} is not supported (this golden reads "
                             f"versions {', '.join(map(str, VERSIONS))}); re-export the model with this version")
    missing = {"network", "frontend", "labels", "meta"} - set(header)
    if missing:
        raise ModelFileError(f"{name}: header lacks {sorted(missing)}")
    try:
        net = NetworkParams.from_dict(header["network"], "network")
        fe = FrontEndParams.from_dict(header["frontend"], "frontend")
    except ParamError as e:
        raise ModelFileError(f"{name}: {e}") from None
    if version == 1 and any(lp.spike_levels != 1 for lp in net.layers):
        raise ModelFileError(f"{name}: a version 1 model file has binary spikes only, but its header sets "
                             "spike_levels; multi-level spikes need version 2 (write it with "
                             "golden.modelfile.save_model)")
    if not isinstance(header["labels"], list):
        raise ModelFileError(f"{name}: header.labels must be a list, not {header['labels']!r}")
    shell = Model(net, [], np.zeros(0), tuple(header["labels"]), fe, header["meta"])
    shapes = shell.expected_shapes()
    expected = {f"{m}.{part}" for m in shapes for part in ("nzmask", "nzval")}
    if set(members) != expected:
        extra, lost = sorted(set(members) - expected), sorted(expected - set(members))
        raise ModelFileError(f"{name}: weight arrays do not match the network (missing {lost}, unexpected {extra})")
    total = sum(r * c for r, c in shapes.values())
    if total > MAX_WEIGHTS:
        raise ModelFileError(f"{name}: its network has {total:,} weights, more than the {MAX_WEIGHTS:,} this golden "
                             "loads")
    wf = net.weight_format
    bits = net.weight_bits
    mats = {}
    for m, shape in shapes.items():
        size = shape[0] * shape[1]
        mask = _member(zf, members[f"{m}.nzmask"], (size + 7) // 8, name, f"{name}: {m} arrays must be 1-D uint8")
        if len(mask) != (size + 7) // 8:
            raise ModelFileError(f"{name}: {m}.nzmask has {len(mask)} bytes, expected {(size + 7) // 8} "
                                 f"for shape {shape}")
        nz = np.unpackbits(mask, count=size).astype(bool)
        if np.unpackbits(mask)[size:].any():
            raise ModelFileError(f"{name}: {m}.nzmask has bits set past the end of the matrix")
        n = int(nz.sum())
        want = n if bits > 4 else (n + 1) // 2
        vinfo = members[f"{m}.nzval"]
        if vinfo.file_size > want + _NPY_HEADER_SLACK:  # the message of old: the size, not "declares"
            raise ModelFileError(f"{name}: {m}.nzval declares {vinfo.file_size:,} bytes, expected {want} for {n} "
                                 "non-zero weights")
        val = _member(zf, vinfo, want + 1, name, f"{name}: {m} arrays must be 1-D uint8")
        if len(val) != want:
            raise ModelFileError(f"{name}: {m}.nzval has {len(val)} bytes, expected {want} for {n} non-zero weights")
        if bits > 4 and (val >> bits).any():
            raise ModelFileError(f"{name}: {m}.nzval holds codes wider than {bits} bits")
        if bits < 4 and (((val & 0xF) >> bits).any() or ((val >> 4) >> bits).any()):
            raise ModelFileError(f"{name}: {m}.nzval holds codes wider than {bits} bits (each nibble must be "
                                 f"below {1 << bits}); the file is damaged: write it again")
        if bits <= 4 and n % 2 and val[-1] >> 4:
            raise ModelFileError(f"{name}: {m}.nzval has a non-zero padding nibble")
        values = wf.from_code(_unpack_codes(val, bits, n))
        if (values == 0).any():
            raise ModelFileError(f"{name}: {m} stores a zero where its bitmap says non-zero")
        w = np.zeros(size, dtype=np.int64)
        w[nz] = values
        mats[m] = w.reshape(shape)
    layers = [LayerWeights(mats[f"l{i}.w_in"], mats[f"l{i}.w_rec"]) for i in range(len(net.layers))]
    model = Model(net, layers, mats["out.w"], tuple(header["labels"]), fe, header["meta"])
    try:
        return model.validate()
    except ParamError as e:
        raise ModelFileError(f"{name}: {e}") from None
