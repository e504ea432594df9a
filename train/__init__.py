"""train: the PyTorch twin of golden's RSNN, quantization-aware training, mixed-level pruning and the export.

Nothing here is a second specification: the twin follows the update order written in :mod:`golden.network`
step by step, on float32 tensors that only ever hold integers (exact below 2**24), so that in quantized mode
its spikes and readout potentials equal golden's bit for bit (tests/test_train.py checks it).
"""

import os as _os

#: The CPU kernels training pins itself to (see :func:`pin_cpu_kernels`).
PINNED_ISA = "AVX2"


def pin_cpu_kernels() -> dict:
    """Make PyTorch (ATen's vector kernels), MKL (its BLAS) and oneDNN compute with AVX2 code even on a CPU that has
    AVX-512, so that a recipe trains to the same bits on any x86-64 machine with AVX2 (measured: the FSDD recipe on
    an AVX-512 EPYC wrote a model with other weights than on an AVX2 one; with these three settings it wrote the
    AVX2 machine's file byte for byte). The settings must be in the environment before torch runs its first kernel,
    so this runs when :mod:`train` is imported; a value already set by the user wins, and ``RSNN_TRAIN_ISA=native``
    turns the pin off. Returns what it set (for the training report)."""
    if _os.environ.get("RSNN_TRAIN_ISA", "").strip().lower() == "native":
        return {}
    wanted = {"ATEN_CPU_CAPABILITY": PINNED_ISA.lower(), "MKL_CBWR": PINNED_ISA, "ONEDNN_MAX_CPU_ISA": PINNED_ISA}
    for key, value in wanted.items():
        _os.environ.setdefault(key, value)
    return {k: _os.environ[k] for k in wanted}


pin_cpu_kernels()
