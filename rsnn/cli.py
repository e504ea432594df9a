"""``rsnn``: run the golden model on speech from the command line.

Every failure the user can cause (missing file, not audio, bad manifest, bad model file, unknown label, a bad
option) ends in one line ``rsnn: error: ...`` on stderr and exit status 2; nothing else is caught. Valid but
suspicious input (a readout tie, silence) gives a line ``rsnn: warning: ...`` on stderr and the result.

``--json PATH`` is checked before any work: it must not be an input of the same run (the model file, the
manifest, a WAV read; compared by resolved path and by inode), must be a regular file or not exist yet, and its
folder must exist (only the default report folder under ``build/`` is created). It is written atomically (a
temporary file in the same folder, then ``os.replace``), so a failed write leaves the old file as it was.
Memory is bounded whatever the input: the golden model runs in batches of bounded padded size
(``BATCH_BYTES``), never all utterances padded to the longest.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import stat
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from golden.data import PROJECT_ROOT, DataError, default_data_dir, file_kind, read_manifest
from golden.frontend import AudioError, features_from_file
from golden.model import Model, random_model
from golden.modelfile import ModelFileError, load_model
from golden.network import COUNTERS, InputError, dense_counts, run_batch
from golden.cycles import FRAME_OVERHEAD, lower_bound, realtime_clock_hz
from golden.params import HardwareParams, ParamError

MODELS_DIR = PROJECT_ROOT / "models"
DEFAULT_MODEL = "fsdd"
USER_ERRORS = (AudioError, DataError, ModelFileError, ParamError, InputError)
BUILD_DIR = PROJECT_ROOT / "build"
BATCH_BYTES = 64 << 20       # golden's arrays for one batch of utterances (padded to the batch's longest)
SIM_BATCH_BYTES = 1 << 30    # rsnn sim keeps the whole split as one batch (the cycle model needs it)
SIM_JSON = str(BUILD_DIR / "report" / "sim.json")
IMAGE_JSON = str(BUILD_DIR / "image.json")
TRAIN_JSON = str(BUILD_DIR / "report" / "train.json")


class CliError(ValueError):
    pass


def warn(msg: str) -> None:
    print(f"rsnn: warning: {msg}", file=sys.stderr, flush=True)


def _model_file(spec: str | None) -> Path | None:
    """The file a ``--model`` spec loads (``None`` for the random stand-in), without loading it: a path (it has a
    ``/`` or ends in ``.npz`` or exists), else a shipped model's name; an unknown name raises :class:`CliError`."""
    if spec is None:
        spec = DEFAULT_MODEL if (MODELS_DIR / f"{DEFAULT_MODEL}.npz").is_file() else "random"
    if spec == "random":
        return None
    path = Path(spec)
    if path.suffix == ".npz" or os.path.lexists(path) or "/" in spec:
        return path
    shipped = MODELS_DIR / f"{spec}.npz"
    if shipped.is_file():
        return shipped
    raise CliError(f"no model named '{spec}': shipped models are {shipped_models() or 'none yet'}; "
                   "give a path to a model file or 'random'")


def shipped_models() -> list[str]:
    return sorted(p.stem for p in MODELS_DIR.glob("*.npz"))


def resolve_model(spec: str | None, seed: int = 0) -> tuple[Model, str]:
    """A model and a one-line description of where it came from.

    ``spec`` is a shipped model's name (``models/<name>.npz``), a path to a model file, or ``random`` (an
    untrained stand-in). ``None`` means the default shipped model, or ``random`` while none is shipped.
    """
    path = _model_file(spec)
    if path is None:
        if spec is None:
            return random_model(seed=seed), (f"random (untrained, seed {seed}): no shipped model '{DEFAULT_MODEL}' "
                                             f"in {MODELS_DIR} yet, so accuracy is chance level")
        return random_model(seed=seed), f"random (untrained, seed {seed}): accuracy is chance level"
    shipped = spec is None or path != Path(spec)
    return _described(load_model(path), f"{path.stem} ({path})" if shipped else str(path))


def _described(model: Model, desc: str) -> tuple[Model, str]:
    if model.meta.get("kind") == "random":
        desc += " (an untrained random model: accuracy is chance level)"
    return model, desc


def _features(model: Model, paths) -> list[np.ndarray]:
    return [features_from_file(p, model.frontend) for p in paths]


def _layer_names(model: Model) -> list[str]:
    return [f"layer{i}" for i in range(len(model.network.layers))] + ["readout"]


def _tie(potentials) -> int:
    """How many classes share the highest readout potential (1: no tie)."""
    p = np.asarray(potentials)
    return int((p == p.max()).sum())


def cmd_infer(args) -> int:
    model, desc = resolve_model(args.model, args.seed)
    hw = _hardware(args)  # checked whether or not --rtl is given: a bad --pe is never silently ignored
    if model.meta.get("kind") == "random":
        print(f"rsnn: note: model {desc}", file=sys.stderr)
    for path in args.files:
        feats = _features(model, [path])
        tr = run_batch(model, feats)[0]
        line = {"path": str(path), "label": model.labels[tr.decision], "decision": tr.decision,
                "frames": tr.n_frames, "potentials": [int(v) for v in tr.potentials],
                "counters": {k: dict(zip(_layer_names(model), v)) for k, v in tr.totals().items()}}
        tied = _tie(tr.potentials)
        if tied > 1:
            silent = int(tr.counters["in_events"][:, 0].sum()) == 0
            warn(f"{path}: {tied} classes tie at readout potential {int(tr.potentials.max())}"
                 + (" (no input events: the file is silent or too quiet)" if silent else "")
                 + f"; label '{model.labels[tr.decision]}' is only the tie rule's pick (lowest class), not a "
                   "recognition")
        if args.rtl:
            r = rtl_run(model, hw, feats, [args.simulator], PROJECT_ROOT / "build" / "sim",
                        log=lambda *a: print(*a, file=sys.stderr))[args.simulator]
            line["rtl"] = {"simulator": args.simulator, "decision": r["decisions"][0],
                           "label": model.labels[r["decisions"][0]], "mismatching_frames": r["mismatches"],
                           "cycle_mismatches": r["cycle_mismatches"],
                           "latency_mismatches": r["latency_mismatches"], "cycles": sum(r["cycles"])}
        print(json.dumps(line), flush=True)
    return 0


def _frame_bytes(model: Model) -> int:
    """Bytes golden's batch arrays take per padded frame (features, spikes, readout, counters, temporaries)."""
    net = model.network
    L = len(net.layers)
    return (8 * net.n_features * (1 + net.time_steps) + sum(net.time_steps * lp.size * 17 for lp in net.layers)
            + 16 * net.readout.size + 8 * 7 * (L + 1))


def _batches(model: Model, paths, budget: int):
    """Features of ``paths`` in manifest order, grouped into batches whose padded size (utterances x longest
    utterance x bytes per frame) stays within ``budget`` (a longer utterance runs alone). Yields lists of
    (index, features)."""
    per_frame = _frame_bytes(model)
    batch, longest = [], 0
    for i, p in enumerate(paths):
        f = features_from_file(p, model.frontend)
        if batch and (len(batch) + 1) * max(longest, len(f)) * per_frame > budget:
            yield batch
            batch, longest = [], 0
        batch.append((i, f))
        longest = max(longest, len(f))
    if batch:
        yield batch


def evaluate(model: Model, utts: list, keep: bool = False) -> dict:
    """Golden accuracy, confusion matrix and activity over the utterances of a manifest (``read_manifest``).
    Labels must be model classes.

    Golden runs in batches of bounded padded size (``BATCH_BYTES``); the results are those of one big batch,
    utterance by utterance. ``keep`` (for ``rsnn sim``): also return every utterance's features and the trace
    of the whole split as one batch (refused beyond ``SIM_BATCH_BYTES``)."""
    index = {lab: i for i, lab in enumerate(model.labels)}
    for u in utts:
        if u.label not in index:
            raise CliError(f"label '{u.label}' of {u.path} is not one of the model's classes {list(model.labels)}; "
                           "choose the label column with --label-column")
    net = model.network
    L = len(net.layers)
    t_feat = t_gold = 0.0
    if keep:
        t0 = time.perf_counter()
        feats = _features(model, [u.path for u in utts])
        t1 = time.perf_counter()
        need = len(feats) * max(len(f) for f in feats) * _frame_bytes(model)
        if need > SIM_BATCH_BYTES:
            raise CliError(f"rsnn sim runs the whole split as one batch for the cycle model: {len(feats)} "
                           f"utterances padded to {max(len(f) for f in feats):,} frames need about {need >> 20:,} MiB, "
                           f"more than {SIM_BATCH_BYTES >> 20:,} MiB; use --limit, or rsnn eval for accuracy")
        trace = run_batch(model, feats)
        t_feat, t_gold = t1 - t0, time.perf_counter() - t1
        pred, lengths = trace.decisions, trace.lengths
        potentials = trace.potentials
        totals = {k: v.sum(axis=(0, 1)) for k, v in trace.counters.items()}
        spike_sums = [int(np.count_nonzero(trace.spikes[l])) for l in range(L)]   # a spike of any level: one
        silent = trace.counters["in_events"][:, :, 0].sum(axis=1) == 0
    else:
        pred = np.zeros(len(utts), dtype=np.int64)
        lengths = np.zeros(len(utts), dtype=np.int64)
        potentials = np.zeros((len(utts), net.readout.size), dtype=np.int64)
        silent = np.zeros(len(utts), dtype=bool)
        totals = {k: np.zeros(L + 1, dtype=np.int64) for k in COUNTERS}
        spike_sums = [0] * L
        t0 = time.perf_counter()
        for batch in _batches(model, [u.path for u in utts], BATCH_BYTES):
            t1 = time.perf_counter()
            idx = np.array([i for i, _ in batch])
            tr = run_batch(model, [f for _, f in batch])
            pred[idx], lengths[idx], potentials[idx] = tr.decisions, tr.lengths, tr.potentials
            silent[idx] = tr.counters["in_events"][:, :, 0].sum(axis=1) == 0
            for k, v in tr.counters.items():
                totals[k] += v.sum(axis=(0, 1))
            for l in range(L):
                spike_sums[l] += int(np.count_nonzero(tr.spikes[l]))
            t2 = time.perf_counter()
            t_feat += t1 - t0
            t_gold += t2 - t1
            t0 = t2
    ties = np.array([_tie(p) > 1 for p in potentials], dtype=bool)
    if ties.any():
        first = utts[int(np.flatnonzero(ties)[0])].path
        warn(f"{int(ties.sum())} of {len(utts)} utterances end in a readout tie, so their label is only the tie "
             f"rule's pick (lowest class), not a recognition ({int((ties & silent).sum())} of them have no input "
             f"events: silent or too quiet); the first is {first}")
    truth = np.array([index[u.label] for u in utts])
    C = len(model.labels)
    confusion = np.zeros((C, C), dtype=np.int64)
    np.add.at(confusion, (truth, pred), 1)
    frames = int(lengths.sum())
    dense = dense_counts(model)
    names = _layer_names(model)
    activity = {
        "events_per_frame": dict(zip(names, (totals["in_events"] / frames).round(3).tolist())),
        "spikes_per_frame": {names[l]: round(float(spike_sums[l]) / frames, 3)
                             for l in range(len(net.layers))},
        "spike_rate": {names[l]: round(float(spike_sums[l]) / (frames * net.time_steps * lp.size), 4)
                       for l, lp in enumerate(net.layers)},
        "input_feature_density": round(float(totals["in_events"][0]) / (frames * net.n_features), 4),
        "accumulations_per_frame": dict(zip(names, (totals["accumulations"] / frames).round(1).tolist())),
        "dense_accumulations_per_frame": dict(zip(names, dense["accumulations"])),
        "weight_reads_per_frame": dict(zip(names, (totals["weight_reads"] / frames).round(1).tolist())),
        "dense_weight_reads_per_frame": dict(zip(names, dense["weight_reads"])),
    }
    activity["zero_skip_work_fraction"] = round(
        float(totals["accumulations"].sum()) / (frames * sum(dense["accumulations"])), 4)
    out = {"_truth": truth, "_decisions": pred,
           "accuracy": float((pred == truth).mean()), "n": len(utts), "frames": frames,
           "labels": list(model.labels), "confusion": confusion.tolist(), "activity": activity,
           "wall_s": {"features": round(t_feat, 3), "golden": round(t_gold, 3)}}
    if keep:
        out.update({"_features": feats, "_trace": trace})
    return out


def _print_eval(res: dict, desc: str, data: Path, split) -> None:
    print(f"model: {desc}")
    print(f"data: {data}" + (f" (split {split})" if split else "") + f": {res['n']} utterances, "
          f"{res['frames']} frames")
    print(f"golden accuracy: {res['accuracy'] * 100:.2f} % ({round(res['accuracy'] * res['n'])}/{res['n']})")
    labels = res["labels"]
    w = max(4, max(len(x) for x in labels) + 1)
    print("confusion (rows: true label, columns: predicted):")
    print(" " * w + "".join(f"{x:>{w}}" for x in labels))
    for lab, row in zip(labels, res["confusion"]):
        print(f"{lab:>{w}}" + "".join(f"{v:>{w}}" for v in row))


def check_output(spec, inputs=(), option: str = "--json", default=None) -> Path:
    """The resolved path ``spec`` names, checked before any work: not one of ``inputs`` (same resolved path or
    same inode), a regular file or absent, in a folder that exists (the default path's folder under ``build/``
    is created when written). Raises :class:`CliError` naming the problem and the fix."""
    if not str(spec).strip():
        raise CliError(f"{option} needs a file name, not an empty string")
    given = Path(spec)
    target = Path(os.path.realpath(given))
    is_default = default is not None and str(spec) == str(default)
    try:
        st = os.stat(target)
    except FileNotFoundError:
        st = None
    except NotADirectoryError:
        raise CliError(f"{option} {spec}: a part of its folder is a file, not a folder; give a path in an "
                       "existing folder") from None
    except OSError as e:
        raise CliError(f"{option} {spec} cannot be checked: {e.strerror}") from None
    if st is not None and not stat.S_ISREG(st.st_mode):
        raise CliError(f"{option} {spec} is {file_kind(st.st_mode)}, not a regular file; give a path to a "
                       "file")
    parent = target.parent
    if not parent.is_dir():
        if os.path.lexists(parent):
            raise CliError(f"{option} {spec}: its folder {parent} is a file, not a folder; give a path in an "
                           "existing folder")
        if not (is_default and BUILD_DIR in parent.parents or parent == BUILD_DIR):
            raise CliError(f"{option} {spec}: its folder {parent} does not exist; create it first (rsnn creates "
                           "no folders except its default report folder under build/)")
    elif not os.access(parent, os.W_OK):
        raise CliError(f"{option} {spec}: its folder {parent} is not writable; choose another path")
    for what, p in inputs:
        if p is None:
            continue
        same = os.path.realpath(p) == str(target)
        if not same and st is not None:
            try:
                other = os.stat(p)
                same = (other.st_dev, other.st_ino) == (st.st_dev, st.st_ino)
            except OSError:
                pass
        if same:
            raise CliError(f"{option} {spec} is {what} {p}, which this run reads; write the results to another "
                           "file")
    return target


def _write_json(path, obj, make_parent: bool = False) -> None:
    """Write ``obj`` as JSON to ``path`` atomically: a temporary file in the same folder, then ``os.replace``; on
    failure the old file is left as it was and no temporary file remains. The folder is created only under
    ``build/`` or with ``make_parent`` (the project's own models folder)."""
    path = Path(path)
    text = json.dumps(obj, indent=1) + "\n"
    tmp = None
    try:
        if make_parent or BUILD_DIR in path.parents:  # check_output refused any other missing folder
            path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        try:                        # a report that is replaced keeps its permissions
            mode = stat.S_IMODE(os.stat(path).st_mode)
        except OSError:
            umask = os.umask(0)
            os.umask(umask)
            mode = 0o666 & ~umask
        os.chmod(tmp, mode)
        os.replace(tmp, path)
        tmp = None
    except OSError as e:
        raise CliError(f"cannot write {path}: {e.strerror or e}; the old file, if any, is unchanged") from None
    finally:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass


def _run_inputs(args, utts) -> list:
    """The files a run reads: its model file, the manifest, every WAV."""
    data = Path(args.data) if args.data else default_data_dir("fsdd")
    return ([("the model file", _model_file(args.model)), ("the manifest", data / "manifest.csv")]
            + [("the audio file", u.path) for u in utts])


def _utterances(args):
    data = Path(args.data) if args.data else default_data_dir("fsdd")
    utts = read_manifest(data, args.split, args.label_column, allow_outside=args.allow_outside_data)
    return data, utts[:args.limit] if args.limit is not None else utts


def cmd_eval(args) -> int:
    data, utts = _utterances(args)
    out = check_output(args.json, _run_inputs(args, utts)) if args.json is not None else None
    model, desc = resolve_model(args.model, args.seed)
    res = evaluate(model, utts)
    for k in ("_truth", "_decisions"):
        res.pop(k)
    res.update({"model": desc, "data": str(data), "split": args.split})
    _print_eval(res, desc, data, args.split)
    if out:
        _write_json(out, res)
        print(f"wrote {args.json}")
    return 0


def _hardware(args) -> HardwareParams:
    try:
        return HardwareParams(pe_count=args.pe, time_steps=args.hw_time_steps, scan_width=args.scan_width,
                              weight_words=args.weight_words, index_rows=args.index_rows,
                              max_spike_level=args.max_spike_level).validate()
    except ParamError as e:
        raise CliError(f"{e}; fix --pe / --hw-time-steps / --scan-width / --weight-words / --index-rows / "
                       "--max-spike-level") from None


def cmd_image(args) -> int:
    """Write the load image of a model for the configurable core: the configuration writes that make it run it."""
    from golden.image import addr_bits, data_bits, load_image
    from golden.sparse import memory_bits
    hw = _hardware(args)
    model, desc = resolve_model(args.model, args.seed)
    out = check_output(args.out, [("the model file", _model_file(args.model))], option="--out", default=IMAGE_JSON)
    try:
        writes = load_image(model, hw)
    except ParamError as e:
        raise CliError(f"the model does not fit the hardware: {e}") from None
    bits = memory_bits(model, hw)
    _write_json(out, {
        "model": desc, "hardware": hw.to_dict(), "addr_bits": addr_bits(hw), "data_bits": data_bits(hw),
        "format": "each write is [addr, data] (hex): the core's cfg stream payload is addr | data << addr_bits; "
                  "the map is golden/image.py", "memory_bits": bits,
        "writes": [[hex(a), hex(d)] for a, d in writes]})
    print(f"{desc}: {len(writes)} configuration writes ({bits['words']} weight words of {hw.pe_count} lane entries, {bits['total']:,} bits of "
          f"weights and index) for P = {hw.pe_count}; wrote {args.out}")
    return 0


def rtl_run(model: Model, hw: HardwareParams, feats: list, simulators, work_dir: Path, dense: bool = False,
            log=print, verilog: Path | None = None) -> dict:
    """Load ``model`` into the configurable core (``rtl/core.py``) through its configuration stream and run
    ``feats`` through it on each simulator; compare every frame with golden and the core's cycle model."""
    from golden.image import check_fits
    from rtl.build import build_core_verilog
    from tb.core_runner import compare_core, simulate_core
    from tb.runner import SimError
    try:
        check_fits(model, hw)
    except ParamError as e:
        raise CliError(f"the model does not fit the hardware: {e}") from None
    if verilog is None:
        verilog = build_core_verilog(hw, work_dir / "verilog")
    out = {}
    for sim in simulators:
        log(f"RTL on {sim}: {len(feats)} utterances, {sum(len(f) for f in feats)} frames ...")
        try:
            r = simulate_core(sim, model, hw, feats, work_dir, dense=dense, verilog=verilog)
        except SimError as e:
            raise CliError(str(e)) from None
        c = compare_core(model, hw, feats, r, dense=dense)
        out[sim] = {"utterances": len(feats), "frames": c["frames"], "mismatches": c["mismatches"],
                    "cycle_mismatches": c["cycle_mismatches"], "latency_mismatches": c["latency_mismatches"],
                    "wall_s": round(r.wall_s, 2),
                    "build_s": round(r.build_s, 2), "frames_per_s": round(c["frames"] / r.wall_s, 1),
                    "details": c["details"], "decisions": c["decisions"], "cycles": c["cycles"],
                    "counters_total": c["counters_total"]}
        log(f"  {sim}: {c['mismatches']} mismatching frames, {c['cycle_mismatches']} cycle mismatches, "
            f"{c['latency_mismatches']} latency mismatches "
            f"({r.wall_s:.1f} s simulation, {r.build_s:.1f} s build)")
        for d in c["details"]:
            log(f"    {d}")
    return out


def cmd_board(args) -> int:
    """Talk to the board (rtl/icebreaker.py) over its UART, or write the byte stream (--dry-run)."""
    from golden.image import load_image
    from rsnn.board_protocol import REPLY, BoardError, BoardSession, result_fields, session
    from rtl.icebreaker import BAUD, board_hardware, divisor_for
    if not args.timeout > 0:
        raise CliError(f"--timeout must be a positive number of seconds, not {args.timeout}")
    try:
        hw = board_hardware(args.pe, args.scan, args.weight_words).validate()
        divisor_for(args.baud)
    except (ParamError, ValueError) as e:
        raise CliError(str(e)) from None
    model, desc = resolve_model(args.model, args.seed)
    if model.meta.get("kind") == "random":
        print(f"rsnn: note: model {desc}", file=sys.stderr)
    out = None
    if args.dry_run:
        out = check_output(args.dry_run, [("the model file", _model_file(args.model))]
                           + [("an input WAV", Path(f)) for f in args.files], option="--dry-run")
    try:
        writes = None if args.no_load else load_image(model, hw)
    except ParamError as e:
        hint = ("; the board is built for binary spikes (multi-level spikes do not fit the UP5K): give it a binary "
                "model, e.g. --model fsdd_binary" if any(lp.spike_levels > 1 for lp in model.network.layers) else "")
        raise CliError(f"the model does not fit the board's hardware: {e}{hint}") from None
    feats = _features(model, args.files)
    for path, f in zip(args.files, feats):
        if len(f) == 0:
            raise CliError(f"{path}: no feature frame (the file is shorter than one frame)")
    packets, wait = session(writes, feats, hw)
    n_bytes = sum(len(p) for p in packets)
    n_cfg = len(writes) if writes is not None else 0
    if out is not None:
        tmp = out.with_name(f".{out.name}.tmp{os.getpid()}")
        try:
            tmp.write_bytes(b"".join(packets))
            os.replace(tmp, out)
        except OSError as e:
            tmp.unlink(missing_ok=True)
            raise CliError(f"--dry-run {args.dry_run} cannot be written: {e.strerror}") from None
        print(f"{desc}: {n_cfg} CONFIG + {len(packets) - n_cfg} FRAME packets, {n_bytes:,} bytes "
              f"({n_bytes * 10 / args.baud:.1f} s at {args.baud} baud, 8N1); wrote {args.dry_run}")
        return 0
    try:
        import serial
    except ImportError:
        raise CliError("pyserial is missing: run `make venv` (it is in pyproject's dependencies)") from None
    try:
        link = serial.serial_for_url(args.port, baudrate=args.baud, timeout=0.05)
    except (serial.SerialException, ValueError, OSError) as e:
        raise CliError(f"cannot open --port {args.port}: {e}") from None
    t0 = time.perf_counter()
    try:
        with link:
            link.reset_input_buffer()
            replies = BoardSession(link, args.timeout).send(packets, wait)
    except BoardError as e:
        raise CliError(str(e)) from None
    except TimeoutError as e:
        raise CliError(f"{e}: is the bitstream loaded (iceprog build/fpga/rsnn_icebreaker.bin), the port "
                       f"{args.port} the board's UART and the rate {args.baud} baud?") from None
    except (serial.SerialException, OSError) as e:
        raise CliError(f"--port {args.port}: {e}") from None
    except ValueError as e:
        raise CliError(f"the board's replies are malformed: {e}") from None
    flags = [p[0] if p else None for c, p in replies if c == REPLY["ACK"]]
    if flags and flags[-1] != 0:
        raise CliError(f"the board's status flags are {flags[-1]} after the load: the model was not taken "
                       "(see golden/image.py FLAGS)")
    results = [result_fields(p, hw) for c, p in replies if c == REPLY["RESULT"]]
    if len(results) != sum(len(f) for f in feats):
        raise CliError(f"the board sent {len(results)} results for {sum(len(f) for f in feats)} frames")
    refused = [r for r in results if not r["ran"]]
    if refused:
        raise CliError(f"the board did not run {len(refused)} frames (status flags {refused[0]['status']:#x}): no "
                       "model loaded (--no-load) or a bad configuration; load it again without --no-load")
    golden = run_batch(model, feats)
    i = 0
    for b, (path, f) in enumerate(zip(args.files, feats)):
        res = results[i:i + len(f)]
        i += len(f)
        d = res[-1]["decision"]
        line = {"path": str(path), "label": model.labels[d] if d < len(model.labels) else None, "decision": d,
                "frames": len(f), "golden_decision": int(golden[b].decision),
                "equals_golden": [r["decision"] for r in res] == [int(np.argmax(golden.readout[b, k]))
                                                                  for k in range(len(f))]}
        print(json.dumps(line))
    print(f"rsnn board: {len(packets)} packets in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    return 0


#: what ``rsnn sim`` runs when neither --model nor --data is given: every shipped model on one core
SIM_MODELS = ("fsdd", "arabic_digits")


def cmd_sim(args) -> int:
    """The main job: golden over the split, the configurable core on Icarus and Verilator over (a part of) it,
    compared; without --model / --data, both shipped models on ONE Verilog file of the core."""
    hw = _hardware(args)
    sims = [] if args.no_rtl else [s.strip() for s in args.simulators.split(",") if s.strip()]
    from tb.runner import SIMULATORS
    if not args.no_rtl and (not sims or any(s not in SIMULATORS for s in sims)):
        raise CliError(f"unknown simulator in --simulators {args.simulators!r}: list some of {', '.join(SIMULATORS)} "
                       "(or use --no-rtl)")
    if args.rtl_utterances < 1 and not args.all and sims:
        raise CliError(f"--rtl-utterances must be at least 1, not {args.rtl_utterances} (or use --no-rtl)")
    if args.model is None and args.data is None and all(_model_file(n) for n in SIM_MODELS):
        jobs = []
        for name in SIM_MODELS:
            data = default_data_dir(name)
            utts = read_manifest(data, args.split, args.label_column, allow_outside=args.allow_outside_data)
            jobs.append((name, data, utts[:args.limit] if args.limit is not None else utts))
        inputs = []
        for name, data, utts in jobs:
            inputs += [("the model file", _model_file(name)), ("the manifest", data / "manifest.csv")]
            inputs += [("the audio file", u.path) for u in utts]
        out = check_output(args.json, inputs, default=SIM_JSON)
        jobs = [(name, data, utts) + resolve_model(name) for name, data, utts in jobs]
    else:
        data, utts = _utterances(args)
        out = check_output(args.json, _run_inputs(args, utts), default=SIM_JSON)
        model, desc = resolve_model(args.model, args.seed)
        jobs = [(None, data, utts, model, desc)]
    verilog = None
    if sims:
        from rtl.build import build_core_verilog
        for _, _, _, model, _ in jobs:   # every model must fit before anything is simulated
            try:
                check_fits_core(model, hw)
            except ParamError as e:
                raise CliError(f"the model does not fit the hardware: {e}") from None
        verilog = build_core_verilog(hw, PROJECT_ROOT / "build" / "sim" / "verilog")
    report = {"hardware": hw.to_dict()}
    if verilog is not None:
        report["verilog"] = str(verilog)
        report["verilog_sha256"] = hashlib.sha256(verilog.read_bytes()).hexdigest()
    ok = True
    models = {}
    for name, data, utts, model, desc in jobs:
        res, good = _sim_one(model, desc, data, utts, hw, sims, args, verilog)
        ok &= good
        models[name] = res
    if len(jobs) == 1:
        report.update(models[None])
    else:
        report["models"] = models
    _write_json(out, report)
    print(f"wrote {args.json}")
    if verilog is not None:
        print(f"one Verilog file for {'both models' if len(jobs) > 1 else 'the model'}: {verilog} "
              f"(sha256 {report['verilog_sha256'][:16]}...)")
    return 0 if ok else 1


def check_fits_core(model: Model, hw: HardwareParams) -> None:
    from golden.image import check_fits
    check_fits(model, hw)


def _sim_one(model: Model, desc: str, data: Path, utts: list, hw: HardwareParams, sims: list, args, verilog):
    """``rsnn sim`` for one model: (the report, everything exact)."""
    from golden.core_cycles import core_cycle_counts
    res = evaluate(model, utts, keep=True)
    res.update({"model": desc, "data": str(data), "split": args.split})
    _print_eval(res, desc, data, args.split)
    act = res["activity"]
    print("activity per frame (golden counters):")
    for name, ev in act["events_per_frame"].items():
        print(f"  {name:>8}: {ev:8.2f} input events, {act['accumulations_per_frame'][name]:10.1f} accumulations "
              f"(dense: {act['dense_accumulations_per_frame'][name]})")
    print(f"zero-skip and pruning together: {act['zero_skip_work_fraction'] * 100:.2f} % of the dense "
          "accumulations are done")
    feats, truth, trace = res.pop("_features"), res.pop("_truth"), res.pop("_trace")
    cyc = core_cycle_counts(model, hw, feats, trace).sum(-1)
    valid = cyc[cyc > 0]
    period = valid + FRAME_OVERHEAD
    res["golden_accuracy"] = res["accuracy"]
    res["cycles_per_frame"] = {"mean": round(float(period.mean()), 2), "max": int(period.max()),
                               "compute_mean": round(float(valid.mean()), 2), "compute_max": int(valid.max()),
                               "source": "the core's cycle model (golden/core_cycles.py) over every frame of the "
                                         "split (checked against the RTL on the simulated utterances)",
                               "pe_count": hw.pe_count}
    res["realtime_clock_hz"] = realtime_clock_hz(int(valid.max()))
    print(f"cycles per frame (P = {hw.pe_count}, incl. 2 handshake cycles): mean {period.mean():.1f}, max "
          f"{period.max()} -> real time at {res['realtime_clock_hz'] / 1e3:.1f} kHz")
    bound = lower_bound(model, hw, trace)[cyc > 0]
    res["cycles_per_frame"]["lower_bound_mean"] = round(float(bound.mean()), 2)
    res["cycles_per_frame"]["compute_over_lower_bound"] = round(float(valid.mean() / bound.mean()), 3)
    print(f"lower bound (non-zero weights / P + state writes / P): mean {bound.mean():.1f}; the core's compute "
          f"cycles are {valid.mean() / bound.mean():.2f} x that")
    from golden.sparse import format_bits
    res["memory_bits"] = format_bits(model, hw)
    table = {}
    for P in (1, 2, 4, 8, 16, 32):
        hp = HardwareParams(**{**hw.to_dict(), "pe_count": P})
        c = core_cycle_counts(model, hp, feats, trace).sum(-1)
        c = c[c > 0]
        table[P] = {"mean": round(float(c.mean()) + FRAME_OVERHEAD, 1), "max": int(c.max()) + FRAME_OVERHEAD,
                    "realtime_clock_hz": realtime_clock_hz(int(c.max())),
                    "lower_bound_mean": round(float(lower_bound(model, hp, trace)[cyc > 0].mean()), 1),
                    "memory_bits": format_bits(model, hp)["lane_lists"]["total"]}
    res["cycles_over_pe"] = table
    print("P: mean / max cycles per frame -> real-time clock: " + "; ".join(
        f"{P}: {t['mean']:.0f} / {t['max']} -> {t['realtime_clock_hz'] / 1e3:.1f} kHz" for P, t in table.items()))
    n_rtl = len(feats) if args.all else min(args.rtl_utterances, len(feats))
    pick = np.linspace(0, len(feats) - 1, n_rtl).round().astype(int) if n_rtl else np.zeros(0, dtype=int)
    res["rtl_utterances"] = pick.tolist()
    res["simulators"], picks = {}, {}
    for sim in sims:    # Icarus is slow on the full-size core: it runs the first --icarus-utterances of them
        picks[sim] = pick[:max(1, args.icarus_utterances)] if sim == "icarus" and not args.all else pick
        res["simulators"].update(rtl_run(model, hw, [feats[i] for i in picks[sim]], [sim],
                                         PROJECT_ROOT / "build" / "sim", verilog=verilog))
    ok = True
    for sim, r in res["simulators"].items():
        acc = float(np.mean(np.array(r["decisions"]) == truth[picks[sim]]))
        gacc = float(np.mean(res["_decisions"][picks[sim]] == truth[picks[sim]]))
        r["rtl_utterances"] = picks[sim].tolist()
        r["accuracy"], r["golden_accuracy_same_utterances"] = acc, gacc
        ok &= r["mismatches"] == 0 and r["cycle_mismatches"] == 0 and r["latency_mismatches"] == 0 and acc == gacc
        del r["cycles"]
    if sims:
        first = res["simulators"][sims[0]]
        res["accuracy"] = first["accuracy"]
        res["accuracy_measured_on"] = (f"RTL ({sims[0]}), {first['utterances']} utterances evenly spaced over the "
                                       "split (rtl_utterances)")
        print(f"RTL accuracy {first['accuracy'] * 100:.2f} % on {first['utterances']} utterances (golden on the same: "
              f"{first['golden_accuracy_same_utterances'] * 100:.2f} %); golden on all {res['n']}: "
              f"{res['golden_accuracy'] * 100:.2f} %")
        print("RTL == golden: " + ("yes, every frame bit-exact and cycle-exact" if ok else "NO (see above)"))
    else:
        res["accuracy_measured_on"] = "golden only (--no-rtl)"
    res.pop("_decisions")
    return res, ok


def _overrides(pairs) -> dict:
    """``--set KEY=VALUE`` pairs (:func:`train.recipes.parse_overrides`) or a :class:`CliError`."""
    from train.recipes import parse_overrides
    try:
        return parse_overrides(pairs)
    except ValueError as e:
        raise CliError(str(e)) from None


def _read_report(path: Path, spec) -> dict:
    """An existing JSON report to merge into (``{}`` when there is none); CliError when it is not one."""
    if not path.is_file():
        return {}
    try:
        size = path.stat().st_size
        if size > 64 << 20:
            raise CliError(f"--json {spec} is {size:,} bytes, too large for a report; give another --json path")
        report = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError, RecursionError) as e:
        raise CliError(f"--json {spec} exists but is not a JSON report ({type(e).__name__}: "
                       f"{str(e)[:120]}); give another --json path or remove the file") from None
    except OSError as e:
        raise CliError(f"--json {spec} cannot be read: {e.strerror}") from None
    if not isinstance(report, dict):
        raise CliError(f"--json {spec} holds JSON {type(report).__name__}, not a report (an object of runs); "
                       "give another --json path or remove the file")
    return report


def cmd_train(args) -> int:
    """Train recipes (PyTorch is imported only here), save models/<name>.npz, merge into the JSON report (and, when
    a shipped model was written, into models/train.json, the shipped models' own report)."""
    inputs = [("the model file", MODELS_DIR / f"{n}.npz") for n in args.recipe or ()]
    if args.data:
        inputs.append(("the manifest", Path(args.data) / "manifest.csv"))
    path = check_output(args.json, inputs, default=TRAIN_JSON)
    report = _read_report(path, args.json)
    from train.recipes import RECIPES, run_recipe, variant_name, with_overrides
    names = args.recipe or list(RECIPES)
    for n in names:
        if n not in RECIPES:
            raise CliError(f"no recipe named '{n}': recipes are {sorted(RECIPES)}")
    if args.data and len(names) != 1:
        raise CliError("--data applies to one recipe: give exactly one --recipe with it")
    overrides = _overrides(args.set)
    for n in names:
        try:
            with_overrides(RECIPES[n], overrides)
        except ValueError as e:
            raise CliError(f"recipe {n}: {e}") from None
    keys = [variant_name(n, args.quick, args.validate, overrides) for n in names]
    for n, key in zip(names, keys):
        report[key] = run_recipe(n, data_dir=args.data, models_dir=args.models_dir, quick=args.quick,
                                 loso=not args.no_loso, ablations=not args.no_ablations,
                                 progress=not args.no_progress, log=lambda msg: print(msg, flush=True),
                                 validate=args.validate, overrides=overrides)
        _write_json(path, report)
        print(f"wrote {path}")
        if report[key]["model_file"] == f"models/{n}.npz":  # a shipped file was replaced: so is its report
            shipped = MODELS_DIR / "train.json"
            record = _read_report(shipped, str(shipped))
            record[n] = report[key]
            _write_json(shipped, record, make_parent=True)
            print(f"wrote {shipped} (the report of the shipped models)")
    from train.report import markdown
    for key in keys:
        print("\n" + markdown(key, report[key]))
    return 0


class _Parser(argparse.ArgumentParser):
    """argparse with the CLI's one-line errors: ``rsnn: error: ...`` and exit status 2."""

    def error(self, message):
        print(f"rsnn: error: {message} (see '{self.prog} --help')", file=sys.stderr)
        sys.exit(2)


def _at_least(lo: int):
    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a whole number, not {text!r}") from None
        if v < lo:
            raise argparse.ArgumentTypeError(f"must be at least {lo}, not {v}")
        return v
    parse.__name__ = "number"
    return parse


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="rsnn", description="Verified RSNN speech accelerator: golden model tools.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def model_opts(sp):
        sp.add_argument("--model", default=None, metavar="NAME|PATH",
                        help=f"a shipped model ({', '.join(shipped_models()) or 'none yet'}), a model file, or "
                             f"'random' (default: '{DEFAULT_MODEL}' when shipped, else 'random')")
        sp.add_argument("--seed", type=_at_least(0), default=0,
                        help="seed of the 'random' stand-in model (default 0)")

    def hw_opts(sp):
        d = HardwareParams()
        sp.add_argument("--pe", type=int, default=d.pe_count, help=f"processing elements P (default {d.pe_count})")
        sp.add_argument("--hw-time-steps", type=int, default=d.time_steps,
                        help=f"accumulator sets per PE (default {d.time_steps})")
        sp.add_argument("--scan-width", type=int, default=d.scan_width,
                        help=f"sources per find-first-set group (default {d.scan_width})")
        sp.add_argument("--weight-words", type=int, default=d.weight_words,
                        help=f"weight-memory capacity of the core, in words of P lane entries (default {d.weight_words})")
        sp.add_argument("--index-rows", type=int, default=d.index_rows,
                        help=f"index-memory capacity of the core, in source rows (default {d.index_rows})")
        sp.add_argument("--max-spike-level", type=int, default=d.max_spike_level,
                        help=f"largest multi-level spike the core runs (default {d.max_spike_level}; "
                             "1: binary spikes only)")

    def data_opts(sp, json_default=None):
        sp.add_argument("--data", default=None, metavar="DIR",
                        help="data folder with manifest.csv (default: $RSNN_DATA/fsdd or ../shared/data/fsdd)")
        sp.add_argument("--split", default=None, metavar="NAME",
                        help="only rows whose official_split is NAME (e.g. test)")
        sp.add_argument("--label-column", default="digit", metavar="COL", help="manifest label column (default digit)")
        sp.add_argument("--limit", type=_at_least(1), default=None, metavar="N", help="only the first N utterances")
        sp.add_argument("--allow-outside-data", action="store_true",
                        help="read manifest paths that are absolute or climb out of DIR with '..' (refused by "
                             "default)")
        sp.add_argument("--json", default=json_default, metavar="PATH",
                        help="also write the results as JSON here: never over an input of the run, atomically, "
                             "in an existing folder" + (f" (default {json_default})" if json_default else ""))

    sp = sub.add_parser("infer", help="classify WAV files; one JSON line per file",
                        description="Classify audio files with the golden model: one JSON line per file with the "
                                    "path, predicted label, frame count, readout potentials and golden counters.")
    sp.add_argument("files", nargs="+", metavar="FILE.wav")
    model_opts(sp)
    sp.add_argument("--rtl", action="store_true", help="also run each file through the simulated RTL and compare")
    sp.add_argument("--simulator", default="icarus", choices=("icarus", "verilator"),
                    help="simulator for --rtl (default icarus)")
    hw_opts(sp)
    sp.set_defaults(func=cmd_infer)

    sp = sub.add_parser("eval", help="accuracy and confusion matrix over a data set",
                        description="Evaluate a model with the golden model over DIR/manifest.csv.")
    model_opts(sp)
    data_opts(sp)
    sp.set_defaults(func=cmd_eval)

    sp = sub.add_parser("sim", help="the main job: run real speech through the accelerator flow and report",
                        description="Run real speech through the golden model (and, once built, the RTL), "
                                    "print a summary and write a JSON report.")
    model_opts(sp)
    data_opts(sp, json_default=SIM_JSON)
    hw_opts(sp)
    sp.add_argument("--simulators", default="verilator,icarus", metavar="LIST",
                    help="comma-separated RTL simulators (default verilator,icarus; the first gives the RTL "
                         "accuracy)")
    sp.add_argument("--rtl-utterances", type=int, default=20, metavar="N",
                    help="utterances of the split run through the RTL, evenly spaced (default 20; golden runs "
                         "them all)")
    sp.add_argument("--icarus-utterances", type=int, default=1, metavar="M",
                    help="of those, how many Icarus runs (default 1: Icarus simulates the full-size core at a few "
                         "hundred cycles per second; --all runs them all on every simulator)")
    sp.add_argument("--all", action="store_true", help="run every utterance of the split through the RTL")
    sp.add_argument("--no-rtl", action="store_true", help="golden only")
    sp.set_defaults(func=cmd_sim, split="test")

    sp = sub.add_parser("image", help="write a model's load image for the configurable core (rtl/core.py)",
                        description="Write the configuration writes (registers, weight index, weight words) that "
                                    "make the configurable core run a model, for the given hardware; a model "
                                    "that does not fit is refused with the field named.")
    model_opts(sp)
    hw_opts(sp)
    sp.add_argument("--out", default=IMAGE_JSON, metavar="PATH",
                    help=f"where to write the image (JSON; default {IMAGE_JSON})")
    sp.set_defaults(func=cmd_image)

    sp = sub.add_parser("board", help="run WAV files on the iCEBreaker board over its UART (or --dry-run)",
                        description="Load a model into the board top (rtl/icebreaker.py, bitstream from `make "
                                    "fpga`) over its UART, stream each WAV's feature frames and print the board's "
                                    "decision per file as a JSON line, with golden's decision beside it; or write "
                                    "the byte stream to a file (--dry-run). Protocol: rsnn/board_protocol.py.")
    sp.add_argument("files", nargs="+", metavar="FILE.wav")
    model_opts(sp)
    where = sp.add_mutually_exclusive_group(required=True)
    where.add_argument("--port", metavar="PORT",
                       help="the board's serial port (e.g. /dev/ttyUSB1: the iCEBreaker's FTDI second channel) or "
                            "a pyserial URL")
    where.add_argument("--dry-run", metavar="FILE", help="write the bytes the host would send to FILE instead")
    sp.add_argument("--baud", type=_at_least(1), default=115200, help="UART rate (default 115200, the bitstream's)")
    sp.add_argument("--timeout", type=float, default=2.0, metavar="S",
                    help="seconds to wait for a reply before giving up (default 2)")
    sp.add_argument("--no-load", action="store_true", help="the model is already loaded: send the frames only")
    from rtl.icebreaker import BOARD_PE, BOARD_SCAN, BOARD_WEIGHT_WORDS
    sp.add_argument("--pe", type=_at_least(1), default=BOARD_PE,
                    help=f"the bitstream's P (default {BOARD_PE}, as make fpga builds)")
    sp.add_argument("--scan", type=_at_least(1), default=BOARD_SCAN,
                    help=f"the bitstream's scan width (default {BOARD_SCAN})")
    sp.add_argument("--weight-words", type=_at_least(1), default=BOARD_WEIGHT_WORDS,
                    help=f"the bitstream's weight-memory depth (default {BOARD_WEIGHT_WORDS})")
    sp.set_defaults(func=cmd_board)

    sp = sub.add_parser("train", help="train the shipped models from scratch (seeded) and export them",
                        description="Train a recipe (float -> 4-bit QAT -> structured + unstructured pruning), "
                                    "export it to golden's model file models/<recipe>.npz and write the figures "
                                    "(golden accuracy of every stage, ablations, sizes, activity) to a JSON report.")
    sp.add_argument("--recipe", action="append", metavar="NAME",
                    help="fsdd or arabic_digits (repeatable; default: all)")
    sp.add_argument("--data", default=None, metavar="DIR", help="data folder (default: $RSNN_DATA/<dataset>)")
    sp.add_argument("--models-dir", default=None, metavar="DIR", help="where to write <recipe>.npz (default models/)")
    sp.add_argument("--json", default=TRAIN_JSON, metavar="PATH",
                    help="report to merge the results into (default build/report/train.json)")
    sp.add_argument("--quick", action="store_true", help="a smoke run of the pipeline in minutes (not for shipping)")
    sp.add_argument("--validate", action="store_true",
                    help="choose recipes this way: train on the train split only and measure on val (never test)")
    sp.add_argument("--set", action="append", metavar="KEY=VALUE",
                    help="override a TrainConfig field, aug_copies / speed_perturb or a front-end field such as "
                         "noise_gate_db (repeatable; VALUE is JSON, "
                         "e.g. --set aug_copies=2 --set keep_neurons=null). A variant (--quick, --validate, --set) "
                         "writes its model to build/models/ unless --models-dir says otherwise")
    sp.add_argument("--no-loso", action="store_true", help="skip the leave-one-speaker-out runs")
    sp.add_argument("--no-ablations", action="store_true", help="skip the T = 2 ablation run")
    sp.add_argument("--no-progress", action="store_true", help="no progress bars")
    sp.set_defaults(func=cmd_train)
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except USER_ERRORS + (CliError,) as e:
        print(f"rsnn: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
