"""Issue #16: the command line against hostile input.

Every bad input gives exit status 2 and exactly one ``rsnn: error:`` line naming the problem (no traceback, no
numpy warning), or, where the input is valid but suspicious, a ``rsnn: warning:`` line and the result; no input
of a run is changed and nothing else is created (every file under the test's folder is hashed before and after);
the memory bombs run in a child process under an address-space limit and their peak memory is measured. Every
bad file is generated here, in ``tmp_path``; none is stored in the repository.
"""
import hashlib
import importlib.util
import io
import json
import os
import re
import resource
import signal
import struct
import subprocess
import sys
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest

from conftest import tone, tone_dataset, write_wav
from golden import random_model, save_model
from golden.data import PROJECT_ROOT
from golden.modelfile import model_to_bytes
from golden.params import LayerParams, NetworkParams, ReadoutParams
from rsnn.cli import main

_spec = importlib.util.spec_from_file_location("hostile_memory", PROJECT_ROOT / "scripts" / "hostile_memory.py")
hm = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(hm)


# ---------------------------------------------------------------------------------------------------- helpers

def snapshot(root: Path) -> dict:
    """Every entry under ``root``: files by content hash, folders and others by kind."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            rel = str(p.relative_to(root))
            if p.is_symlink():
                out[rel] = "link:" + os.readlink(p)
            elif p.is_file():
                out[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
            else:
                out[rel] = "dir" if p.is_dir() else "other"
    return out


def cli(capsys, *argv, timeout=30):
    """Run ``rsnn`` in this process: (exit status, stdout, stderr, warnings raised). A FIFO opened by mistake
    would block: the alarm turns that into a failure."""
    def alarm(*_):
        raise TimeoutError("rsnn blocked (opened a FIFO?)")
    old = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(timeout)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                rc = main([str(a) for a in argv])
            except SystemExit as e:
                rc = e.code
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    out, err = capsys.readouterr()
    return rc, out, err, [str(w.message) for w in caught]


def assert_one_error(rc, out, err, caught, match):
    assert "Traceback" not in out + err, err
    assert not caught, caught
    lines = [x for x in err.splitlines() if not x.startswith("rsnn: note: ")]
    assert rc == 2, (rc, err)
    assert len(lines) == 1 and lines[0].startswith("rsnn: error: "), err
    assert re.search(match, lines[0]), lines[0]


@pytest.fixture
def ds(tmp_path):
    """A small data folder (4 tones) and a small model file, inside ``tmp_path``."""
    d = tone_dataset(tmp_path)
    save_model(random_model(seed=5), tmp_path / "m.npz")
    return d


def zip_entries(data: bytes):
    """(name, local header offset, central header offset) of every member of a zip archive."""
    out, i = [], data.rfind(b"PK\x05\x06")
    n, cd = struct.unpack_from("<H", data, i + 10)[0], struct.unpack_from("<I", data, i + 16)[0]
    for _ in range(n):
        assert data[cd:cd + 4] == b"PK\x01\x02"
        nlen, elen, clen = struct.unpack_from("<HHH", data, cd + 28)
        local = struct.unpack_from("<I", data, cd + 42)[0]
        out.append((data[cd + 46:cd + 46 + nlen].decode(), local, cd))
        cd += 46 + nlen + elen + clen
    return out


def patch_member(data: bytes, member: str, flags: int = None, method: int = None, corrupt: bool = False) -> bytes:
    """Set a member's flag bits / compression method in both its headers, or damage its compressed data."""
    b = bytearray(data)
    for name, local, central in zip_entries(data):
        if name != member:
            continue
        if flags is not None:
            struct.pack_into("<H", b, local + 6, flags)
            struct.pack_into("<H", b, central + 8, flags)
        if method is not None:
            struct.pack_into("<H", b, local + 8, method)
            struct.pack_into("<H", b, central + 10, method)
        if corrupt:
            nlen, elen = struct.unpack_from("<HH", data, local + 26)
            start = local + 30 + nlen + elen
            for k in range(40, 80):
                b[start + k] ^= 0x5A
    return bytes(b)


def model_with_header(header_bytes: bytes) -> bytes:
    good = model_to_bytes(random_model(seed=0))
    buf = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(good)) as src, zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename == "header.npy":
                data = hm.npy_header((len(header_bytes),)) + header_bytes
            dst.writestr(info.filename, data)
    return buf.getvalue()


def two_bit_model_bad_codes() -> bytes:
    """A 2-bit model whose first stored code nibble is 0xF (only 0..3 exist): it used to load as -1."""
    net = NetworkParams(n_features=32, weight_bits=2, readout=ReadoutParams(size=10),
                        layers=(LayerParams(size=8), LayerParams(size=8)))
    good = model_to_bytes(random_model(net, seed=3))
    z = np.load(io.BytesIO(good))
    arrays = {k: z[k] for k in z.files}
    val = arrays["l0.w_in.nzval"].copy()
    val[0] = (val[0] & 0xF0) | 0x0F
    arrays["l0.w_in.nzval"] = val
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return buf.getvalue()


# --------------------------------------------------------------- bad input: one error line, exit 2, no change

def _w(path: Path, data) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    (path.write_bytes if isinstance(data, bytes) else path.write_text)(data)
    return path


def _manifest(d: Path, text: str | bytes) -> list:
    _w(d / "manifest.csv", text)
    return ["eval", "--data", d, "--model", "random"]


def _model(t: Path, data: bytes) -> list:
    return ["infer", t / "data" / "wav" / "1.wav", "--model", _w(t / "bad.npz", data)]


def _wav(t: Path, samples, rate=8000, subtype="PCM_16") -> list:
    return ["infer", write_wav(t / "odd.wav", samples, rate, subtype), "--model", "random"]


CASES = {
    # memory bombs (their memory is measured below, in a child process)
    "wav_rate_4MHz": (lambda t: ["infer", hm.wav_with_rate(t / "r.wav", 4_000_001)], r"sample rate of 4,000,001 Hz"),
    "wav_rate_0": (lambda t: ["infer", hm.wav_with_rate(t / "r.wav", 1)], r"sample rate of 1 Hz"),
    "wav_too_long": (lambda t: ["infer", write_wav(t / "long.wav", np.zeros(8000 * 121), 8000)],
                     r"lasts 121\.0 s; at most 120 s are read: cut it"),
    "wav_too_many_samples": (lambda t: ["infer", write_wav(t / "many.wav", np.zeros((192_000 * 90, 1)), 192_000)],
                             r"holds 17,280,000 samples x 1 channels, more than the 16,777,216"),
    "analysis_too_big_96kHz_model": (lambda t: ["infer", write_wav(t / "w.wav", np.zeros(8000 * 25), 8000),
                                                "--model", _model_96k(t)],
                                     r"gives 2,498 frames at the model's 96,000 Hz; at most 2,048"),
    "zip_bomb_foreign_member": (lambda t: _model(t, hm.zip_bomb(t / "b.npz", "zzzzzzzzzzzzzz.npy", 8 << 20)
                                                 .read_bytes()), r"unexpected \['zzzzzzzzzzzzzz'\]"),
    "zip_bomb_weight_member": (lambda t: _model(t, hm.zip_bomb(t / "b.npz", "l0.w_in.nzmask.npy", 8 << 20)
                                                .read_bytes()), r"declares 8,388,736 bytes unpacked"),
    "npy_huge_shape": (lambda t: ["infer", t / "data" / "wav" / "1.wav", "--model", hm.huge_shape(t / "s.npz")],
                       r"declares 1,099,511,627,776 bytes of data but holds 16"),
    "model_file_too_big": (lambda t: ["infer", t / "data" / "wav" / "1.wav", "--model",
                                      hm.sparse_file(t / "big.npz", 65 << 20)], r"68,157,440 bytes, more than"),
    "model_not_zip_junk": (lambda t: _model(t, b"\0" * 4096), r"does not start like a zip file"),
    "manifest_too_big": (lambda t: ["eval", "--data", hm.sparse_file(t / "data" / "manifest.csv", 17 << 20).parent],
                         r"more than the 16,777,216 a manifest may have"),
    "manifest_too_many_rows": (lambda t: _manifest(t / "data", "path,digit\n" + "a,0\n" * 100_001),
                               r"lists more than 100,000 utterances; split the data set"),
    "zip_directory_bomb": (lambda t: _model(t, _many_members(20_000)), r"directory declares 20,000 members"),
    # tracebacks before
    "manifest_latin1": (lambda t: _manifest(t / "data", "path,digit\nwav/1.wav,caf\xe9\n".encode("latin-1")),
                        r"not UTF-8 text.*0xe9.*save it as UTF-8"),
    "manifest_huge_field": (lambda t: _manifest(t / "data", "path,digit\n\"" + "x" * 200_000 + "\",1\n"),
                            r"not a readable CSV file \(line \d+: field larger than field limit"),
    "manifest_nul_label": (lambda t: _manifest(t / "data", b"path,digit\nwav/1.wav,1\x00\n"),
                           r"line 2: the digit '1\\x00' holds a control character"),
    "manifest_nul_path": (lambda t: _manifest(t / "data", b"path,digit\nwav/1.wav\x00,1\n"),
                          r"line 2: the path 'wav/1.wav\\x00' holds a control character"),
    "manifest_too_few_fields": (lambda t: _manifest(t / "data", "path,digit,speaker,official_split\nwav/1.wav\n"),
                                r"line 2 has 1 fields but the header has 4"),
    "manifest_too_few_fields_split": (
        lambda t: _manifest(t / "data", "path,digit,speaker,official_split\nwav/1.wav,1\n") + ["--split", "test"],
        r"line 2 has 2 fields but the header has 4"),
    "manifest_too_many_fields": (lambda t: _manifest(t / "data", "path,digit\nwav/1.wav,1,extra\n"),
                                 r"line 2 has 3 fields but the header has 2"),
    "zip_member_corrupt": (lambda t: _model(t, patch_member(model_to_bytes(random_model(seed=0)),
                                                            "l0.w_rec.nzval.npy", corrupt=True)),
                           r"member 'l0.w_rec.nzval' cannot be unpacked"),
    "zip_member_encrypted": (lambda t: _model(t, patch_member(model_to_bytes(random_model(seed=0)),
                                                              "l0.w_in.nzval.npy", flags=1)),
                             r"member 'l0.w_in.nzval' is encrypted"),
    "zip_member_compression": (lambda t: _model(t, patch_member(model_to_bytes(random_model(seed=0)),
                                                                "header.npy", method=6)),
                               r"'header' uses zip compression method 6"),
    "header_nested_200000": (lambda t: _model(t, model_with_header(b"[" * 200_000 + b"]" * 200_000)),
                             r"header JSON nests more than 32 levels"),
    "header_nested_40": (lambda t: _model(t, model_with_header(b'{"a":' * 40 + b"1" + b"}" * 40)),
                         r"header JSON nests more than 32 levels"),
    "json_empty": (lambda t: ["eval", "--data", t / "data", "--model", "random", "--json", ""],
                   r"--json needs a file name, not an empty string"),
    "sim_no_simulator": (lambda t: ["sim", "--data", t / "data", "--model", "random", "--simulators", ","],
                         r"unknown simulator in --simulators ','"),
    "json_dev_full": (lambda t: ["eval", "--data", t / "data", "--model", "random", "--json", "/dev/full"],
                      r"--json /dev/full is a device, not a regular file"),
    "json_is_folder": (lambda t: ["eval", "--data", t / "data", "--model", "random", "--json", t / "data"],
                       r"is a folder, not a regular file"),
    "json_under_a_file": (lambda t: ["eval", "--data", t / "data", "--model", "random", "--json",
                                     t / "data" / "manifest.csv" / "r.json"], r"a part of its folder is a file"),
    "json_missing_folder": (lambda t: ["eval", "--data", t / "data", "--model", "random", "--json",
                                       t / "new" / "deeper" / "r.json"], r"does not exist; create it first"),
    "seed_negative": (lambda t: ["eval", "--data", t / "data", "--model", "random", "--seed", "-1"],
                      r"argument --seed: must be at least 0, not -1"),
    "seed_not_a_number": (lambda t: ["infer", t / "data" / "wav" / "1.wav", "--seed", "x"],
                          r"argument --seed: must be a whole number"),
    "limit_zero": (lambda t: ["eval", "--data", t / "data", "--limit", "0"], r"--limit: must be at least 1"),
    "unknown_option": (lambda t: ["eval", "--dta", t / "data"], r"unrecognized arguments: --dta"),
    "train_json_malformed": (lambda t: ["train", "--recipe", "fsdd", "--json", _w(t / "rep.json", "{not json")],
                             r"--json .*rep.json exists but is not a JSON report"),
    "train_json_not_object": (lambda t: ["train", "--recipe", "fsdd", "--json", _w(t / "rep.json", "[1, 2]")],
                              r"holds JSON list, not a report"),
    "train_json_deep": (lambda t: ["train", "--recipe", "fsdd", "--json", _w(t / "rep.json", "[" * 200_000)],
                        r"is not a JSON report"),
    "train_json_is_model": (lambda t: ["train", "--recipe", "fsdd", "--json", PROJECT_ROOT / "models" / "fsdd.npz"],
                            r"is the model file .*fsdd.npz, which this run reads"),
    # silent acceptances before
    "two_bit_codes_out_of_range": (lambda t: _model(t, two_bit_model_bad_codes()),
                                   r"codes wider than 2 bits"),
    "manifest_absolute_path": (lambda t: _manifest(t / "data", f"path,digit\n{t / 'data' / 'wav' / '1.wav'},1\n"),
                               r"leads outside the data folder.*--allow-outside-data"),
    "manifest_climbs_out": (lambda t: _manifest(t / "data", "path,digit\nwav/../../m.npz,1\n"),
                            r"path 'wav/../../m.npz' leads outside the data folder"),
    "pe_zero_without_rtl": (lambda t: ["infer", t / "data" / "wav" / "1.wav", "--pe", "0"],
                            r"pe_count.*--pe"),
    "wav_nan": (lambda t: _wav(t, np.r_[tone(500, 0.3, 8000), np.nan], subtype="FLOAT"), r"NaN or infinite"),
    "wav_inf": (lambda t: _wav(t, np.r_[tone(500, 0.3, 8000), np.inf], subtype="DOUBLE"), r"NaN or infinite"),
    "wav_huge_float": (lambda t: _wav(t, tone(500, 0.3, 8000) * 1e30, subtype="DOUBLE"),
                       r"samples as large as 5e\+29.*normalise"),
    "wav_is_folder": (lambda t: ["infer", t / "data" / "wav"], r"audio file .*wav is a folder, not a file"),
    "wav_is_fifo": (lambda t: ["infer", _fifo(t / "pipe.wav")], r"pipe.wav is a FIFO \(named pipe\), not a regular"),
    "wav_is_device": (lambda t: ["infer", "/dev/zero"], r"/dev/zero is a device, not a regular file"),
    "wav_missing": (lambda t: ["infer", t / "nope.wav"], r"audio file .*nope.wav does not exist"),
    "model_is_folder": (lambda t: ["infer", t / "data" / "wav" / "1.wav", "--model", t / "data"],
                        r"model file .*data is a folder"),
    "model_is_fifo": (lambda t: ["infer", t / "data" / "wav" / "1.wav", "--model", _fifo(t / "pipe.npz")],
                      r"pipe.npz is a FIFO"),
    "manifest_is_fifo": (lambda t: ["eval", "--data", _fifo(t / "data" / "manifest.csv", replace=True).parent],
                         r"manifest .* is a FIFO"),
    "data_is_file": (lambda t: ["eval", "--data", t / "m.npz"], r"data folder .*m.npz is not a folder"),
    "manifest_wav_is_fifo": (lambda t: _manifest(t / "data", f"path,digit\n{_fifo(t / 'data' / 'p.wav').name},1\n"),
                             r"p.wav is a FIFO"),
}


def _model_96k(t: Path) -> Path:
    from golden.params import FrontEndParams
    save_model(random_model(seed=1, frontend=FrontEndParams(sample_rate=96_000)), t / "m96.npz")
    return t / "m96.npz"


def _many_members(n: int) -> bytes:
    """A small zip whose directory lists ``n`` empty members (zipfile would build an object for each)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for i in range(n):
            z.writestr(f"{i}.npy", b"")
    return buf.getvalue()


def _fifo(path: Path, replace=False) -> Path:
    if replace and path.exists():
        path.unlink()
    os.mkfifo(path)
    return path


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_gives_one_error_line(capsys, ds, tmp_path, case):
    make, match = CASES[case]
    argv = make(tmp_path)
    before = snapshot(tmp_path)
    models = snapshot(PROJECT_ROOT / "models")
    assert_one_error(*cli(capsys, *argv), match)
    assert snapshot(tmp_path) == before, "an input was changed or a file / folder was created"
    assert snapshot(PROJECT_ROOT / "models") == models


# ------------------------------------------------------------------------- --json never overwrites an input

@pytest.mark.parametrize("target", ["model", "manifest", "wav", "hard_link_to_manifest", "symlink_to_model",
                                    "symlink_to_wav_folder"])
def test_json_never_overwrites_an_input(capsys, ds, tmp_path, target):
    path = {"model": tmp_path / "m.npz", "manifest": ds / "manifest.csv", "wav": ds / "wav" / "2.wav",
            "hard_link_to_manifest": tmp_path / "link.json", "symlink_to_model": tmp_path / "sym.json",
            "symlink_to_wav_folder": tmp_path / "wavlink" / "3.wav"}[target]
    if target == "hard_link_to_manifest":
        os.link(ds / "manifest.csv", path)
    elif target == "symlink_to_model":
        path.symlink_to(tmp_path / "m.npz")
    elif target == "symlink_to_wav_folder":
        (tmp_path / "wavlink").symlink_to(ds / "wav")
    before = snapshot(tmp_path)
    assert_one_error(*cli(capsys, "eval", "--data", ds, "--split", "test", "--model", tmp_path / "m.npz",
                          "--json", path), r"which this run reads; write the results to another file")
    assert snapshot(tmp_path) == before


def test_json_written_atomically_and_replaces_an_old_report(capsys, ds, tmp_path):
    out = tmp_path / "report.json"
    out.write_text("old")
    rc, stdout, err, caught = cli(capsys, "eval", "--data", ds, "--split", "test", "--model", "random",
                                  "--json", out)
    assert rc == 0 and not caught and "Traceback" not in err
    assert json.loads(out.read_text())["n"] == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "m.npz", "report.json"]  # no temporary left


def test_failed_json_write_leaves_the_old_file(ds, tmp_path):
    """The write fails (a file-size limit of 300 bytes in the child; its output goes to pipes, which the limit
    does not touch); the old report must survive whole and no temporary file may remain."""
    out = tmp_path / "report.json"
    out.write_text('{"old": "report"}\n')
    before = snapshot(tmp_path)
    r = subprocess.run([sys.executable, "-m", "rsnn", "eval", "--data", str(ds), "--split", "test", "--model",
                        "random", "--json", str(out)], capture_output=True, text=True, cwd=PROJECT_ROOT,
                       env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT), "PYTHONDONTWRITEBYTECODE": "1"},
                       preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (300, 300)), timeout=120)
    assert "Traceback" not in r.stdout + r.stderr, r.stderr
    assert r.returncode == 2 and r.stderr.count("rsnn: error:") == 1, r.stderr
    assert re.search(r"rsnn: error: cannot write .*report.json: .*; the old file, if any, is unchanged", r.stderr)
    assert snapshot(tmp_path) == before


def test_default_report_folder_is_the_only_one_created(capsys, ds, tmp_path, monkeypatch):
    """rsnn sim's default --json lies under build/ and its folder is created; a user's missing folder is not."""
    import rsnn.cli as c
    monkeypatch.setattr(c, "BUILD_DIR", tmp_path / "build")
    default = str(tmp_path / "build" / "report" / "sim.json")
    assert c.check_output(default, default=default) == Path(default)
    c._write_json(Path(default), {"a": 1})
    assert json.loads(Path(default).read_text()) == {"a": 1}
    with pytest.raises(c.CliError, match="does not exist; create it first"):
        c.check_output(str(tmp_path / "elsewhere" / "sim.json"), default=default)


def test_outside_paths_allowed_on_request(capsys, ds, tmp_path):
    (tmp_path / "other").mkdir()
    write_wav(tmp_path / "other" / "x.wav", tone(900, 0.4, 8000), 8000)
    (ds / "manifest.csv").write_text(f"path,digit\n../other/x.wav,1\n{tmp_path / 'other' / 'x.wav'},1\n")
    rc, out, err, caught = cli(capsys, "eval", "--data", ds, "--model", "random", "--allow-outside-data")
    assert rc == 0 and "2 utterances" in out and not caught


# -------------------------------------------------------------------------- valid but suspicious: a warning

@pytest.mark.parametrize("samples", ["silence", "one_sample"])
def test_silence_and_one_sample_warn(capsys, tmp_path, samples):
    x = np.zeros(8000) if samples == "silence" else np.array([0.5])
    write_wav(tmp_path / "s.wav", x, 8000)
    before = snapshot(tmp_path)
    rc, out, err, caught = cli(capsys, "infer", tmp_path / "s.wav")
    assert rc == 0 and not caught and "Traceback" not in err
    line = json.loads(out)
    assert line["label"] == "0"  # the tie rule's pick ...
    warns = [x for x in err.splitlines() if x.startswith("rsnn: warning: ")]
    assert len(warns) == 1 and err.strip() == warns[0], err  # ... and it says so
    assert re.search(r"10 classes tie at readout potential 0 \(no input events: the file is silent or too quiet\); "
                     r"label '0' is only the tie rule's pick", warns[0])
    assert snapshot(tmp_path) == before


def test_eval_warns_once_about_ties(capsys, ds, tmp_path):
    write_wav(ds / "wav" / "quiet.wav", np.zeros(4000), 8000)
    with open(ds / "manifest.csv", "a") as fh:
        fh.write("wav/quiet.wav,5,s9,test\n")
    rc, out, err, caught = cli(capsys, "eval", "--data", ds, "--split", "test")
    assert rc == 0 and not caught and "golden accuracy" in out
    assert err.count("rsnn: warning:") == 1 and "1 of 4 utterances end in a readout tie" in err
    assert "1 of them have no input events" in err and "quiet.wav" in err


def test_a_clean_run_has_no_warning(capsys, ds):
    rc, out, err, caught = cli(capsys, "infer", ds / "wav" / "1.wav")
    assert rc == 0 and err == "" and not caught


# --------------------------------------------------------------------- memory: bounded, measured in a child

@pytest.fixture(scope="module")
def bombs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bombs")
    cases = hm.cases(folder)
    rc, out, err, base = hm.run_cli(cases.pop("baseline")[1])
    assert rc == 0, err
    return cases, base


@pytest.mark.parametrize("case", ["wav_rate", "zip_bomb_name", "zip_bomb_size", "npy_shape", "big_model",
                                  "eval_padding"])
def test_memory_bombs_are_bounded(bombs, case):
    cases, base = bombs
    desc, argv = cases[case]
    rc, out, err, peak = hm.run_cli(argv)
    print(f"{case}: peak {peak / 2**20:.1f} MiB (baseline {base / 2**20:.1f} MiB): {desc}")
    assert "Traceback" not in out + err, err
    if case == "eval_padding":  # valid input: it runs, in batches
        assert rc == 0 and "151 utterances" in out, err
        margin = 96 << 20       # BATCH_BYTES (64 MiB) + one utterance's front end
    else:
        assert rc == 2 and err.count("rsnn: error:") == 1, err
        margin = 32 << 20
    assert peak < base + margin, f"{case}: peak {peak / 2**20:.1f} MiB, baseline {base / 2**20:.1f} MiB"
