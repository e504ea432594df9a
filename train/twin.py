"""The PyTorch twin of :mod:`golden.network` (see its docstring for the update order, cited step by step below).

Values are integers held in float32 tensors: potentials in state LSBs, weights as ``w_int * 2**shift``.
Every operation keeps them integers (floor shift, clamp, additions of integers), and every magnitude stays far
below 2**24, so the arithmetic is exact and the quantized twin equals golden bit for bit.

Modes
-----
``float``  the latent weights are used as they are (the float baseline of the ablation);
``quant``  weights are ``clamp(round(w), wmin, wmax)`` with a straight-through gradient (QAT); the only mode
           that can be exported.
A pruning mask (1 = kept) multiplies every weight matrix in both modes.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from golden.params import LayerParams, NetworkParams, ResetMode

__all__ = ["SpikeFn", "floor_leak", "quantize_ste", "RSNN", "TwinOutput"]


class SpikeFn(torch.autograd.Function):
    """Heaviside spike of the normalised distance to threshold ``x = (v - threshold) / threshold``.

    Forward: ``s = 1 if x >= 0 else 0`` (exactly golden's ``v >= threshold``, since ``threshold > 0``).
    Backward (fast-sigmoid surrogate): ``ds/dx = 1 / (1 + slope * |x|)**2``.
    """

    @staticmethod
    def forward(ctx, x, slope: float):
        ctx.save_for_backward(x)
        ctx.slope = slope
        return (x >= 0).to(x.dtype)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad / (1.0 + ctx.slope * x.abs()) ** 2, None


def floor_leak(v: torch.Tensor, k: int) -> torch.Tensor:
    """``golden.arith.leak``: ``v - floor(v / 2**k)`` (``k = 0``: ``v``); gradient as for ``v * (1 - 2**-k)``."""
    if k == 0:
        return v
    d = v / (1 << k)
    return v - (d + (torch.floor(d) - d).detach())


def quantize_ste(w: torch.Tensor, lo: int, hi: int) -> torch.Tensor:
    """``clamp(round(w), lo, hi)`` forward, identity gradient inside ``[lo - 0.5, hi + 0.5]``."""
    q = torch.clamp(torch.round(w), lo, hi)
    return w + (q - w).detach()


@dataclass
class TwinOutput:
    spikes: list          # per layer: (B, F, T, N) float spike levels (0 / 1 for binary spikes)
    readout: torch.Tensor  # (B, F, C) class potentials after each frame
    final: torch.Tensor    # (B, C) potentials after each utterance's last frame


class RSNN(nn.Module):
    """Recurrent LIF layers and an integrating readout with golden's semantics.

    Latent weights are stored output-major like ``nn.Linear`` (``(N_out, N_in)``), in units of the matrix's
    quantization step ``2**shift``; :mod:`train.export` transposes them into golden's input-major layout.
    """

    def __init__(self, net: NetworkParams, init_std: tuple, seed: int = 0):
        super().__init__()
        self.net = net.validate()
        g = torch.Generator().manual_seed(seed)
        self.w_in = nn.ParameterList()
        self.w_rec = nn.ParameterList()
        for i, lp in enumerate(net.layers):
            self.w_in.append(nn.Parameter(torch.randn(lp.size, net.fan_in(i), generator=g) * init_std[i][0]))
            self.w_rec.append(nn.Parameter(torch.randn(lp.size, lp.size, generator=g) * init_std[i][1]))
        self.w_out = nn.Parameter(torch.randn(net.readout.size, net.layers[-1].size, generator=g) * init_std[-1])
        self.masks = {}  # parameter name -> 0/1 tensor of the same shape (pruning)
        self.mode = "float"
        self.slope = 5.0

    def named_matrices(self):
        for i in range(len(self.net.layers)):
            yield f"l{i}.w_in", self.w_in[i]
            yield f"l{i}.w_rec", self.w_rec[i]
        yield "out.w", self.w_out

    def effective(self, name: str, w: torch.Tensor) -> torch.Tensor:
        """The weight as golden sees it (integer steps, before the power-of-two shift)."""
        if self.mode == "quant":
            wf = self.net.weight_format
            w = quantize_ste(w, wf.min, wf.max)
        elif self.mode != "float":
            raise ValueError(f"mode must be 'float' or 'quant', not {self.mode!r}")
        m = self.masks.get(name)
        return w if m is None else w * m

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> TwinOutput:
        """``x``: (B, F, n_features) integer features as float32; ``lengths``: (B,) valid frames."""
        net = self.net
        B, F, _ = x.shape
        T = net.time_steps
        mats = {n: self.effective(n, w) for n, w in self.named_matrices()}
        w_in = [mats[f"l{i}.w_in"].t() * float(1 << lp.in_shift) for i, lp in enumerate(net.layers)]
        w_rec = [mats[f"l{i}.w_rec"].t() * float(1 << lp.rec_shift) for i, lp in enumerate(net.layers)]
        w_out = mats["out.w"].t() * float(1 << net.readout.in_shift)
        v = [x.new_zeros(B, lp.size) for lp in net.layers]
        s_prev = [x.new_zeros(B, T, lp.size) for lp in net.layers]
        u = x.new_zeros(B, net.readout.size)
        spikes = [[] for _ in net.layers]
        readout = []
        ufmt = net.readout.state_format
        for f in range(F):
            active = (lengths > f).to(x.dtype)
            a = x[:, f].unsqueeze(1).expand(B, T, x.shape[-1])
            for l, lp in enumerate(net.layers):
                # golden.network step 2: this frame's events from below, the previous frame's own spikes
                acc = a @ w_in[l] + s_prev[l] @ w_rec[l]
                s, vv = self._neuron_steps(v[l], acc, lp)
                s = s * active[:, None, None]
                v[l] = torch.where(active[:, None] > 0, vv, v[l])
                s_prev[l] = s
                spikes[l].append(s)
                a = s
            # readout: once per frame, one saturation
            u_new = torch.clamp(u + (a @ w_out).sum(dim=1), ufmt.min, ufmt.max)
            u = torch.where(active[:, None] > 0, u_new, u)
            readout.append(u)
        readout = torch.stack(readout, dim=1)
        final = readout[torch.arange(B), lengths.long() - 1]
        return TwinOutput([torch.stack(s, dim=1) for s in spikes], readout, final)

    def _neuron_steps(self, v, acc, lp: LayerParams):
        """golden.network step 3 for t = 0 .. T-1: leak, integrate with saturation, fire, reset."""
        fmt = lp.state_format
        th = float(lp.threshold)
        out = []
        for t in range(acc.shape[1]):
            v = torch.clamp(floor_leak(v, lp.leak_shift) + acc[:, t], fmt.min, fmt.max)
            # k = clip(floor(v / th), 0, D) as the number of thresholds reached, m * th <= v for m = 1 .. D: exact
            # (integer compares), and its surrogate gradient is the sum of the D steps' (a staircase)
            s = SpikeFn.apply((v - th) / th, self.slope)
            for level in range(2, lp.spike_levels + 1):
                s = s + SpikeFn.apply((v - level * th) / th, self.slope)
            out.append(s)
            if lp.reset is ResetMode.SUBTRACT:
                v = v - th * s.detach()
            else:
                v = v * (s.detach() == 0).to(v.dtype)
        return torch.stack(out, dim=1), v


def init_stds(net: NetworkParams, mean_input: float) -> tuple:
    """Initial latent-weight standard deviations that put each layer's input sum near half its threshold."""
    out = []
    for i, lp in enumerate(net.layers):
        ff = max(1.0, mean_input if i == 0 else 0.1 * net.layers[i - 1].size)
        scale = float(1 << lp.in_shift)
        out.append((0.5 * lp.threshold / (math.sqrt(ff) * scale), 0.2 * lp.threshold / math.sqrt(0.1 * lp.size)
                    / float(1 << lp.rec_shift)))
    out.append(2.0)
    return tuple(out)
