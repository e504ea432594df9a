"""``verilator --lint-only -Wall`` on the generated Verilog, with the waiver file ``rtl/lint_waivers.vlt``.

``python -m rtl.lint [VERILOG]`` (default: the configurable core for the default ``HardwareParams``, and the first
accelerator for the shipped FSDD model's configuration) prints the warnings left and exits 1 if any."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from golden.data import PROJECT_ROOT
from golden.params import HardwareParams

WAIVERS = Path(__file__).with_name("lint_waivers.vlt")


def lint(verilog: Path) -> list[str]:
    """The warnings and errors Verilator reports that the waivers do not cover."""
    from tb.runner import ensure_simulator
    ensure_simulator("verilator")
    p = subprocess.run(["verilator", "--lint-only", "-Wall", str(WAIVERS), str(verilog)], capture_output=True,
                       text=True)
    lines = [ln for ln in (p.stdout + p.stderr).splitlines() if ln.startswith("%")]
    if p.returncode and not lines:
        lines = [f"verilator exited {p.returncode}: {p.stderr.strip()[:500]}"]
    return lines


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv:
        files = [Path(argv[0])]
    else:
        from golden.modelfile import load_model
        from rtl.build import build_core_verilog, build_verilog
        model = load_model(PROJECT_ROOT / "models" / "fsdd.npz")
        files = [build_core_verilog(HardwareParams(), PROJECT_ROOT / "build" / "lint"),
                 build_verilog(model.network, HardwareParams(), None, PROJECT_ROOT / "build" / "lint")]
    left = []
    for verilog in files:
        found = lint(verilog)
        for ln in found:
            print(ln)
        print(f"verilator --lint-only -Wall {verilog}: {len(found)} warnings left after {WAIVERS.name}")
        left += found
    return 1 if left else 0


if __name__ == "__main__":
    sys.exit(main())
