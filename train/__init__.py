"""train: the PyTorch twin of golden's RSNN, quantization-aware training, mixed-level pruning and the export.

Nothing here is a second specification: the twin follows the update order written in :mod:`golden.network`
step by step, on float32 tensors that only ever hold integers (exact below 2**24), so that in quantized mode
its spikes and readout potentials equal golden's bit for bit (tests/test_train.py checks it).
"""

import os as _os

#: The CPU kernels training pins itself to (see :func:`pin_cpu_kernels`).
PINNED_ISA = "AVX2"
#: The environment variables that choose them, with the pinned values.
KERNEL_ENV = {"ATEN_CPU_CAPABILITY": PINNED_ISA.lower(), "MKL_CBWR": PINNED_ISA, "ONEDNN_MAX_CPU_ISA": PINNED_ISA}


def pin_cpu_kernels() -> None:
    """Make PyTorch (ATen's vector kernels), MKL (its BLAS) and oneDNN compute with AVX2 code even on a CPU that has
    AVX-512, so that a recipe trains to the same bits on any x86-64 machine with AVX2 (measured: the FSDD recipe on
    an AVX-512 EPYC wrote a model with other weights than on an AVX2 one; with these three settings it wrote the
    AVX2 machine's file byte for byte). The settings must be in the environment before torch runs its first kernel,
    so this runs when :mod:`train` is imported; a value already set by the user wins, and ``RSNN_TRAIN_ISA=native``
    turns the pin off."""
    if _os.environ.get("RSNN_TRAIN_ISA", "").strip().lower() == "native":
        return
    for key, value in KERNEL_ENV.items():
        _os.environ.setdefault(key, value)


def kernel_settings() -> dict:
    """For the training report: the three settings as they are, and ``pinned_isa``: :data:`PINNED_ISA` when all
    three hold their pinned values, else None (pin turned off or overridden)."""
    now = {k: _os.environ.get(k) for k in KERNEL_ENV}
    return {"kernel_settings": now, "pinned_isa": PINNED_ISA if now == KERNEL_ENV else None}


pin_cpu_kernels()
