"""train: the PyTorch twin of golden's RSNN, quantization-aware training, mixed-level pruning and the export.

Nothing here is a second specification: the twin follows the update order written in :mod:`golden.network`
step by step, on float32 tensors that only ever hold integers (exact below 2**24), so that in quantized mode
its spikes and readout potentials equal golden's bit for bit (tests/test_train.py checks it).
"""
