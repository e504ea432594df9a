"""Verilog from the Amaranth design: Amaranth -> RTLIL -> Yosys (``proc; opt_clean; write_verilog``).

The Yosys pass over RTLIL (rather than Amaranth's default Verilog) avoids the Icarus trap in ../shared/TOOLCHAIN.md
(a combinational ``always @*`` that never triggers and leaves ``X``). Amaranth's built-in Yosys is always used,
so a system Yosys never changes the output.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

os.environ.setdefault("AMARANTH_USE_YOSYS", "builtin")

from amaranth.back import rtlil  # noqa: E402
from amaranth._toolchain.yosys import find_yosys  # noqa: E402

from golden.model import Model  # noqa: E402
from golden.params import HardwareParams, NetworkParams  # noqa: E402

from .accel import Accelerator  # noqa: E402

__all__ = ["TOP", "CORE_TOP", "generate_verilog", "build_verilog", "build_core_verilog"]

TOP = "rsnn_accel"
CORE_TOP = "rsnn_core"


def _to_verilog(top, name: str, ports=None) -> str:
    il = rtlil.convert(top, name=name, emit_src=False, **({"ports": ports} if ports is not None else {}))
    yosys = find_yosys(lambda ver: ver >= (0, 40))
    script = "read_rtlil <<rtlil\n" + il + "\nrtlil\nproc\nmemory_collect\nopt_clean\nwrite_verilog -noattr\n"
    return yosys.run(["-q", "-"], script, ignore_warnings=True)


def generate_verilog(net: NetworkParams, hw: HardwareParams, model: Model | None = None,
                     fault: str | None = None) -> str:
    return _to_verilog(Accelerator(net, hw, model, fault=fault), TOP)


def _cached(path: Path, make) -> Path:
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(make())
        tmp.replace(path)
    return path


def build_core_verilog(hw: HardwareParams, out_dir: Path, debug: bool = True, fault: str | None = None) -> Path:
    """Write ``<out_dir>/rsnn_core_<hash>.v``, the configurable core for ``hw`` (cached by the RTL sources, the
    hardware, ``debug`` and the injected fault, see :data:`rtl.core.CORE_FAULTS`), and return it. Every model that
    fits ``hw`` runs on this one file."""
    from .core import Core
    rtl_src = "".join(p.read_text() for p in sorted(Path(__file__).parent.glob("*.py")))
    gold = "".join((Path(__file__).parent.parent / "golden" / f).read_text() for f in ("image.py", "sparse.py"))
    key = repr((rtl_src, gold, hw.to_dict(), debug) + ((fault,) if fault is not None else ()))
    path = Path(out_dir) / f"{CORE_TOP}_{hashlib.sha1(key.encode()).hexdigest()[:12]}.v"
    return _cached(path, lambda: _to_verilog(Core(hw, debug=debug, fault=fault), CORE_TOP))


def build_verilog(net: NetworkParams, hw: HardwareParams, model: Model | None, out_dir: Path,
                  fault: str | None = None) -> Path:
    """Write ``<out_dir>/rsnn_accel_<hash>.v`` (cached by the RTL sources, the configuration, the weights and the
    injected fault, see :data:`rtl.accel.FAULTS`) and return it."""
    rtl_src = "".join(p.read_text() for p in sorted(Path(__file__).parent.glob("*.py")))  # a code change rebuilds
    key = repr((rtl_src, net.to_dict(), hw.to_dict(), fault, None if model is None else
                [model.w_out.tobytes()] + [lw.w_in.tobytes() + lw.w_rec.tobytes() for lw in model.layers]))
    path = Path(out_dir) / f"{TOP}_{hashlib.sha1(key.encode()).hexdigest()[:12]}.v"
    return _cached(path, lambda: generate_verilog(net, hw, model, fault))
