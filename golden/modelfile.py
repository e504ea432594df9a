"""The model file: a versioned, compressed, self-describing container for a :class:`golden.model.Model`.

Format ``rsnn-model`` version 1 is a NumPy ``.npz`` archive (zip, deflate) holding only plain arrays (never
pickles):

=====================  =========  =====================================================================
array                  dtype      content
=====================  =========  =====================================================================
``header``             uint8      UTF-8 JSON: ``{"format": "rsnn-model", "version": 1, "network": {..},
                                  "frontend": {..}, "labels": [..], "meta": {..}}`` (see golden.params)
``<m>.nzmask``         uint8      for weight matrix ``<m>`` (``l0.w_in``, ``l0.w_rec``, .., ``out.w``):
                                  the bitmap of its non-zero weights, row-major, ``np.packbits`` order
``<m>.nzval``          uint8      the non-zero weights in the same order, as ``weight_bits``-bit two's
                                  complement codes, two per byte (low nibble first) when
                                  ``weight_bits <= 4``, else one per byte
=====================  =========  =====================================================================

The bitmap is the pruning index: a pruned weight costs one bit. :func:`load_model` checks everything (format,
version, parameters, the set of arrays, their sizes, that no stored non-zero weight decodes to zero) and raises
:class:`ModelFileError` with a message naming the problem.
"""
from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np

from .model import LayerWeights, Model
from .params import FrontEndParams, NetworkParams, ParamError

__all__ = ["FORMAT", "VERSION", "ModelFileError", "save_model", "load_model", "model_to_bytes",
           "model_from_bytes"]

FORMAT = "rsnn-model"
VERSION = 1


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
    header = {"format": FORMAT, "version": VERSION, "network": net.to_dict(),
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
    if not path.is_file():
        raise ModelFileError(f"model file {path} does not exist")
    return model_from_bytes(path.read_bytes(), str(path))


def model_from_bytes(data: bytes, name: str = "<bytes>") -> Model:
    bad = f"{name} is not an {FORMAT} file"
    try:
        z = np.load(io.BytesIO(data), allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise ModelFileError(f"{bad}: it is not a readable .npz archive ({e}); write it with "
                             "golden.modelfile.save_model or `rsnn train`") from None
    if not isinstance(z, np.lib.npyio.NpzFile):
        raise ModelFileError(f"{bad}: it holds a single array, not an .npz archive")
    try:
        with z:
            arrays = {k: z[k] for k in z.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as e:
        raise ModelFileError(f"{bad}: an array in it cannot be read ({e})") from None
    for k, v in arrays.items():
        if not isinstance(v, np.ndarray):
            raise ModelFileError(f"{bad}: member {k!r} is not a NumPy array")
    if "header" not in arrays:
        raise ModelFileError(f"{bad}: it has no 'header' array")
    h = arrays.pop("header")
    if h.dtype != np.uint8 or h.ndim != 1:
        raise ModelFileError(f"{bad}: its header must be a 1-D uint8 array, not {h.dtype} {h.shape}")
    try:
        header = json.loads(h.tobytes().decode())
    except (ValueError, UnicodeDecodeError, TypeError) as e:
        raise ModelFileError(f"{bad}: its header is not UTF-8 JSON ({e})") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise ModelFileError(f"{bad}: header.format is {header.get('format') if isinstance(header, dict) else header!r}")
    if header.get("version") != VERSION:
        raise ModelFileError(f"{name}: model file version {header.get('version')!r} is not supported (this "
                             f"golden reads version {VERSION}); re-export the model with this version")
    missing = {"network", "frontend", "labels", "meta"} - set(header)
    if missing:
        raise ModelFileError(f"{name}: header lacks {sorted(missing)}")
    try:
        net = NetworkParams.from_dict(header["network"], "network")
        fe = FrontEndParams.from_dict(header["frontend"], "frontend")
    except ParamError as e:
        raise ModelFileError(f"{name}: {e}") from None
    if not isinstance(header["labels"], list):
        raise ModelFileError(f"{name}: header.labels must be a list, not {header['labels']!r}")
    shell = Model(net, [], np.zeros(0), tuple(header["labels"]), fe, header["meta"])
    shapes = shell.expected_shapes()
    expected = {f"{m}.{part}" for m in shapes for part in ("nzmask", "nzval")}
    if set(arrays) != expected:
        extra, lost = sorted(set(arrays) - expected), sorted(expected - set(arrays))
        raise ModelFileError(f"{name}: weight arrays do not match the network (missing {lost}, unexpected {extra})")
    wf = net.weight_format
    mats = {}
    for m, shape in shapes.items():
        mask, val = arrays[f"{m}.nzmask"], arrays[f"{m}.nzval"]
        size = shape[0] * shape[1]
        if mask.dtype != np.uint8 or val.dtype != np.uint8 or mask.ndim != 1 or val.ndim != 1:
            raise ModelFileError(f"{name}: {m} arrays must be 1-D uint8")
        if len(mask) != (size + 7) // 8:
            raise ModelFileError(f"{name}: {m}.nzmask has {len(mask)} bytes, expected {(size + 7) // 8} "
                                 f"for shape {shape}")
        nz = np.unpackbits(mask, count=size).astype(bool)
        if np.unpackbits(mask)[size:].any():
            raise ModelFileError(f"{name}: {m}.nzmask has bits set past the end of the matrix")
        n = int(nz.sum())
        want = n if net.weight_bits > 4 else (n + 1) // 2
        if len(val) != want:
            raise ModelFileError(f"{name}: {m}.nzval has {len(val)} bytes, expected {want} for {n} non-zero weights")
        if net.weight_bits > 4 and (val >> net.weight_bits).any():
            raise ModelFileError(f"{name}: {m}.nzval holds codes wider than {net.weight_bits} bits")
        if net.weight_bits <= 4 and n % 2 and val[-1] >> 4:
            raise ModelFileError(f"{name}: {m}.nzval has a non-zero padding nibble")
        values = wf.from_code(_unpack_codes(val, net.weight_bits, n))
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
