"""Peak memory of ``rsnn`` on the memory bombs of issue #16, measured.

Each bomb is generated into a temporary folder (nothing is stored in the repository), the command line runs on it
in a child process under an address-space limit (``RLIMIT_AS``: a bomb that is not bounded dies there instead of
taking the machine), and the child's peak resident memory is read from ``os.wait4``'s resource usage. A baseline
(``rsnn infer`` on a 0.4 s WAV) is measured the same way. ``tests/test_hostile.py`` runs the same cases and
asserts the bounds; this script prints the table of docs/cli.md, section "Hostile input"::

    PYTHONPATH=$PWD .venv/bin/python scripts/hostile_memory.py
"""
from __future__ import annotations

import io
import json
import os
import resource
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import soundfile

ROOT = Path(__file__).resolve().parents[1]
AS_LIMIT = 3 << 30          # address space of a child: a bomb that is not bounded fails here
CPU_LIMIT_S = 120


def run_cli(argv, extra_limits=(), cwd=None, root=None) -> tuple[int, str, str, int]:
    """``python -m rsnn *argv`` in a child (the checkout ``root``, this one by default): (exit status, stdout,
    stderr, peak RSS in bytes)."""
    def limits():
        resource.setrlimit(resource.RLIMIT_AS, (AS_LIMIT, AS_LIMIT))
        resource.setrlimit(resource.RLIMIT_CPU, (CPU_LIMIT_S, CPU_LIMIT_S))
        for which, value in extra_limits:
            resource.setrlimit(which, (value, value))

    root = Path(root or ROOT)
    env = {**os.environ, "PYTHONPATH": str(root), "PYTHONDONTWRITEBYTECODE": "1"}
    with tempfile.TemporaryFile() as fo, tempfile.TemporaryFile() as fe:
        p = subprocess.Popen([sys.executable, "-m", "rsnn", *map(str, argv)], stdout=fo, stderr=fe,
                             preexec_fn=limits, env=env, cwd=cwd or root)
        _, status, usage = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
        fo.seek(0)
        fe.seek(0)
        return p.returncode, fo.read().decode(errors="replace"), fe.read().decode(errors="replace"), \
            usage.ru_maxrss * 1024


def write_wav(path, samples, rate, subtype="PCM_16") -> Path:
    soundfile.write(str(path), samples, rate, subtype=subtype)
    return Path(path)


def tone(freq, seconds, rate, amp=0.5) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return amp * np.sin(2 * np.pi * freq * t)


def wav_with_rate(path, rate: int) -> Path:
    """A 4.8 KB WAV (2,400 16-bit samples) whose header claims ``rate`` Hz."""
    write_wav(path, tone(440, 0.3, 8000), 8000)
    b = bytearray(Path(path).read_bytes())
    assert b[:4] == b"RIFF" and b[12:16] == b"fmt "
    b[24:28] = rate.to_bytes(4, "little")
    b[28:32] = (rate * 2).to_bytes(4, "little")
    Path(path).write_bytes(bytes(b))
    return Path(path)


def npy_header(shape, dtype="|u1") -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": dtype, "fortran_order": False, "shape": shape})
    return buf.getvalue()


def _header_bytes(model_bytes: bytes) -> bytes:
    with zipfile.ZipFile(io.BytesIO(model_bytes)) as zf:
        return zf.read("header.npy")


def zip_bomb(path, member: str, unpacked: int = 256 << 20) -> Path:
    """A model file: a valid small model in which member ``member`` (replaced, or added when it is not one of
    the model's) unpacks to ``unpacked`` bytes of zeros (a .npy array that says so), deflated to a few hundred KB.
    """
    from golden import random_model
    from golden.modelfile import model_to_bytes
    good = model_to_bytes(random_model(seed=0))
    with zipfile.ZipFile(io.BytesIO(good)) as src, \
            zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for info in src.infolist():
            if info.filename != member:
                zf.writestr(info.filename, src.read(info))
        with zf.open(member, "w", force_zip64=True) as fh:
            fh.write(npy_header((unpacked,)))
            chunk = bytes(1 << 20)
            for _ in range(unpacked >> 20):
                fh.write(chunk)
    return Path(path)


def huge_shape(path) -> Path:
    """A model file whose weight member's .npy header declares 2**40 bytes (it holds 16)."""
    from golden import random_model
    from golden.modelfile import model_to_bytes
    good = model_to_bytes(random_model(seed=0))
    with zipfile.ZipFile(io.BytesIO(good)) as src, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename == "l0.w_in.nzmask.npy":
                data = npy_header((1 << 40,)) + bytes(16)
            dst.writestr(info.filename, data)
    return Path(path)


def sparse_file(path, size: int) -> Path:
    """A file of ``size`` zero bytes that takes no disk space."""
    with open(path, "wb") as fh:
        fh.truncate(size)
    return Path(path)


def padding_manifest(folder, n_short: int = 150, long_s: float = 60.0) -> Path:
    """A data folder: ``n_short`` 0.1 s utterances and one of ``long_s`` seconds (padding every utterance to the
    longest asks for about 700 MB)."""
    folder = Path(folder)
    (folder / "wav").mkdir(parents=True, exist_ok=True)
    rows = ["path,digit"]
    short = tone(700, 0.1, 8000)
    for i in range(n_short):
        write_wav(folder / "wav" / f"s{i}.wav", short, 8000)
        rows.append(f"wav/s{i}.wav,{i % 10}")
    write_wav(folder / "wav" / "long.wav", tone(300, long_s, 8000, amp=0.3), 8000)
    rows.append("wav/long.wav,3")
    (folder / "manifest.csv").write_text("\n".join(rows) + "\n")
    return folder


def cases(folder) -> dict:
    """name -> (description, argv) of every memory bomb (files made in ``folder``) and the baseline."""
    f = Path(folder)
    write_wav(f / "tiny.wav", tone(500, 0.4, 8000), 8000)
    out = {"baseline": ("rsnn infer on a 0.4 s WAV (reference)", ["infer", f / "tiny.wav"])}
    out["wav_rate"] = ("4.8 KB WAV whose header claims 4,000,001 Hz",
                       ["infer", wav_with_rate(f / "rate.wav", 4_000_001)])
    out["zip_bomb_name"] = ("model file: a 256 MiB zero member with a foreign name (256 KB file)",
                            ["infer", f / "tiny.wav", "--model", zip_bomb(f / "bomb1.npz", "zzzzzzzzzzzzzz.npy")])
    out["zip_bomb_size"] = ("model file: a 256 MiB zero member under a weight's name (256 KB file)",
                            ["infer", f / "tiny.wav", "--model", zip_bomb(f / "bomb2.npz", "l0.w_in.nzmask.npy")])
    out["npy_shape"] = (".npz member whose .npy header declares 2**40 bytes",
                        ["infer", f / "tiny.wav", "--model", huge_shape(f / "shape.npz")])
    out["big_model"] = ("60 MB model file that is not a zip archive (read before its format was checked)",
                        ["infer", f / "tiny.wav", "--model", sparse_file(f / "junk.npz", 60 << 20)])
    out["eval_padding"] = ("rsnn eval: 150 utterances of 0.1 s and one of 60 s (padded to the longest: about 700 MB)",
                           ["eval", "--data", padding_manifest(f / "pad"), "--model", "random"])
    return out


def main() -> int:
    """``--root DIR``: measure another checkout of the project (e.g. an older commit) on the same files."""
    args = sys.argv[1:]
    root = Path(args[args.index("--root") + 1]) if "--root" in args else ROOT
    print(f"rsnn of {root}; each child limited to {AS_LIMIT >> 20} MiB of address space")
    with tempfile.TemporaryDirectory() as tmp:
        rows = []
        for name, (desc, argv) in cases(tmp).items():
            rc, out, err, peak = run_cli(argv, root=root)
            last = (err.strip().splitlines() or ["(no message)"])[-1]
            rows.append({"case": name, "description": desc, "exit": rc, "peak_mib": round(peak / 2**20, 1),
                         "stderr": last[:160]})
            print(f"{name:>14}  exit {rc}  peak {peak / 2**20:7.1f} MiB  {desc}\n{'':>16}{last[:160]}", flush=True)
        if "--json" in args:
            print(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
