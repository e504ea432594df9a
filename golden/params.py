"""Parameters of the network, the audio front end and the hardware: frozen dataclasses, JSON in and out.

Every class has ``validate()``, which raises :class:`ParamError` naming the field and the offending value, and
returns the object so that ``X(...).validate()`` can be chained. ``to_dict()`` / ``from_dict()`` give the JSON
form; ``from_dict`` rejects unknown and missing fields.

The one place where the meaning of these numbers (the update order) is written down is
:mod:`golden.network`.
"""
from __future__ import annotations

import dataclasses
import enum
import math
from dataclasses import dataclass
from typing import Any

from .arith import IntFormat, signed_bits_for

__all__ = [
    "ParamError", "ResetMode", "LayerParams", "ReadoutParams", "NetworkParams", "FrontEndParams",
    "HardwareParams", "MAX_TIME_STEPS", "EXACT_LIMIT", "default_network",
]

#: Most time steps per frame the event mask can carry.
MAX_TIME_STEPS = 4
#: Every sum the golden model forms is bounded below this, even at the largest parameters ``validate()``
#: accepts (tests/test_params.py checks it), so float64 matmuls of these integers are exact.
EXACT_LIMIT = 1 << 52


class ParamError(ValueError):
    """A parameter is out of range or of the wrong type; the message names the field and the value."""


class ResetMode(str, enum.Enum):
    """What happens to a neuron's potential after it spikes."""

    SUBTRACT = "subtract"  #: ``v -= threshold``
    ZERO = "zero"          #: ``v = 0``


def _int(name: str, value: Any, lo: int, hi: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ParamError(f"{name} must be an integer, not {value!r}")
    if not lo <= value <= hi:
        raise ParamError(f"{name} must be in {lo}..{hi}, not {value!r}")
    return value


def _num(name: str, value: Any, lo: float, hi: float) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        raise ParamError(f"{name} must be a finite number, not {value!r}")
    if not lo <= value <= hi:
        raise ParamError(f"{name} must be in {lo}..{hi}, not {value!r}")
    return float(value)


class _Json:
    """JSON round trip for the frozen dataclasses below (nested dataclasses, tuples and enums)."""

    def to_dict(self) -> dict:
        out = {}
        for f in dataclasses.fields(self):
            out[f.name] = _to_json(getattr(self, f.name))
        return out

    @classmethod
    def from_dict(cls, d: Any, where: str | None = None):
        where = where or cls.__name__
        if not isinstance(d, dict):
            raise ParamError(f"{where} must be a JSON object, not {type(d).__name__}")
        names = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - set(names))
        if unknown:
            raise ParamError(f"{where} has unknown field(s) {unknown}; known: {sorted(names)}")
        kwargs = {}
        for name, f in names.items():
            if name not in d:
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                    raise ParamError(f"{where}.{name} is missing")
                continue
            kwargs[name] = _from_json(cls._FIELD_TYPES.get(name), d[name], f"{where}.{name}")
        try:
            obj = cls(**kwargs)
        except TypeError as e:  # pragma: no cover - guarded by the checks above
            raise ParamError(f"{where}: {e}") from None
        return obj.validate(where)

    _FIELD_TYPES: dict = {}


def _to_json(v):
    if isinstance(v, enum.Enum):
        return v.value
    if isinstance(v, _Json):
        return v.to_dict()
    if isinstance(v, tuple):
        return [_to_json(x) for x in v]
    return v


def _from_json(kind, v, where):
    if kind is None:
        return v
    if isinstance(kind, tuple):  # (tuple, element kind)
        if not isinstance(v, list):
            raise ParamError(f"{where} must be a JSON list, not {v!r}")
        return tuple(_from_json(kind[1], x, f"{where}[{i}]") for i, x in enumerate(v))
    if isinstance(kind, type) and issubclass(kind, enum.Enum):
        try:
            return kind(v)
        except ValueError:
            raise ParamError(f"{where} must be one of {[m.value for m in kind]}, not {v!r}") from None
    if isinstance(kind, type) and issubclass(kind, _Json):
        return kind.from_dict(v, where)
    return v


@dataclass(frozen=True)
class LayerParams(_Json):
    """One recurrent layer of leaky integrate-and-fire neurons.

    Parameters
    ----------
    size : int
        Number of neurons ``N``.
    state_bits : int
        Width of the signed membrane potential ``v``; it saturates at both ends.
    threshold : int
        A neuron spikes when ``v >= threshold`` (after leak and integration). Positive.
    leak_shift : int
        ``k`` of :func:`golden.arith.leak`; 0 means no leak.
    reset : ResetMode
        ``subtract`` (``v -= threshold``) or ``zero`` (``v = 0``) after a spike.
    in_shift, rec_shift : int
        Power-of-two scale of the input and of the recurrent weights: a weight ``w`` adds ``w * payload << shift``.
    spike_levels : int
        ``D``, the largest spike: a neuron emits ``k = clip(floor(v / threshold), 0, D)`` and its potential drops by
        ``k`` thresholds (or to zero). 1 (the default) is the binary spike; ``D > 1`` is a multi-level spike,
        an event whose payload is ``k``. Written by :meth:`to_dict` only when not 1, so that a model file of
        binary spikes keeps its bytes (and its format version 1).
    """

    size: int
    state_bits: int = 16
    threshold: int = 64
    leak_shift: int = 3
    reset: ResetMode = ResetMode.SUBTRACT
    in_shift: int = 0
    rec_shift: int = 0
    spike_levels: int = 1

    _FIELD_TYPES = {"reset": ResetMode}
    #: the largest ``spike_levels`` the spec allows (a payload of at most 4 bits)
    MAX_SPIKE_LEVELS = 15

    def to_dict(self) -> dict:
        out = super().to_dict()
        if out["spike_levels"] == 1:
            del out["spike_levels"]
        return out

    @property
    def state_format(self) -> IntFormat:
        return IntFormat(self.state_bits, True)

    def validate(self, where: str = "layer") -> "LayerParams":
        _int(f"{where}.size", self.size, 1, 4096)
        _int(f"{where}.state_bits", self.state_bits, 2, 32)
        _int(f"{where}.threshold", self.threshold, 1, (1 << (self.state_bits - 1)) - 1)
        _int(f"{where}.leak_shift", self.leak_shift, 0, self.state_bits - 1)
        if not isinstance(self.reset, ResetMode):
            raise ParamError(f"{where}.reset must be one of {[m.value for m in ResetMode]}, not {self.reset!r}")
        _int(f"{where}.in_shift", self.in_shift, 0, 16)
        _int(f"{where}.rec_shift", self.rec_shift, 0, 16)
        _int(f"{where}.spike_levels", self.spike_levels, 1, self.MAX_SPIKE_LEVELS)
        return self


@dataclass(frozen=True)
class ReadoutParams(_Json):
    """The fully connected readout: ``size`` class potentials that integrate (no leak, no spikes).

    Parameters
    ----------
    size : int
        Number of classes ``C``.
    state_bits : int
        Width of each signed, saturating class potential ``u``.
    in_shift : int
        Power-of-two scale of the readout weights.
    """

    size: int
    state_bits: int = 24
    in_shift: int = 0

    @property
    def state_format(self) -> IntFormat:
        return IntFormat(self.state_bits, True)

    def validate(self, where: str = "readout") -> "ReadoutParams":
        _int(f"{where}.size", self.size, 2, 256)
        _int(f"{where}.state_bits", self.state_bits, 2, 32)
        _int(f"{where}.in_shift", self.in_shift, 0, 16)
        return self


@dataclass(frozen=True)
class NetworkParams(_Json):
    """Sizes and formats of the whole network: features -> recurrent LIF layers -> integrating readout.

    Parameters
    ----------
    n_features : int
        Features per frame ``F`` (unsigned, ``feature_bits`` wide).
    feature_bits : int
        Width of an input feature; it is also the payload width of an input event.
    time_steps : int
        ``T``: how many time steps each frame is presented for (1 or 2 in the accelerator; at most
        ``MAX_TIME_STEPS``).
    weight_bits : int
        Width of every signed weight (4 in the accelerator).
    layers : tuple of LayerParams
        The recurrent layers, input side first.
    readout : ReadoutParams
        The classifier.
    """

    n_features: int
    layers: tuple
    readout: ReadoutParams
    feature_bits: int = 4
    time_steps: int = 1
    weight_bits: int = 4

    _FIELD_TYPES = {"layers": (tuple, LayerParams), "readout": ReadoutParams}

    @property
    def weight_format(self) -> IntFormat:
        return IntFormat(self.weight_bits, True)

    @property
    def feature_format(self) -> IntFormat:
        return IntFormat(self.feature_bits, False)

    @property
    def n_classes(self) -> int:
        return self.readout.size

    def fan_in(self, layer: int) -> int:
        """Feed-forward inputs of layer ``layer`` (``len(layers)`` is the readout)."""
        return self.n_features if layer == 0 else self.layers[layer - 1].size

    def acc_bounds(self, layer: int) -> tuple[int, int]:
        """The exact range of one time step's input sum into layer ``layer`` (``len(layers)``: the readout's
        per-frame sum), over every possible input and weight. An accumulator this wide never overflows."""
        wmin, wmax = self.weight_format.min, self.weight_format.max
        pmax = self.feature_format.max if layer == 0 else self.layers[layer - 1].spike_levels
        if layer == len(self.layers):
            n = self.fan_in(layer) * pmax * self.time_steps * (1 << self.readout.in_shift)
            return wmin * n, wmax * n
        lp = self.layers[layer]
        ff = self.fan_in(layer) * pmax * (1 << lp.in_shift)
        rec = lp.size * lp.spike_levels * (1 << lp.rec_shift)
        return wmin * (ff + rec), wmax * (ff + rec)

    def acc_bits(self, layer: int) -> int:
        """Signed width of an accumulator of layer ``layer`` that holds :meth:`acc_bounds` exactly."""
        return signed_bits_for(*self.acc_bounds(layer))

    def validate(self, where: str = "network") -> "NetworkParams":
        _int(f"{where}.n_features", self.n_features, 1, 4096)
        _int(f"{where}.feature_bits", self.feature_bits, 1, 16)
        _int(f"{where}.time_steps", self.time_steps, 1, MAX_TIME_STEPS)
        _int(f"{where}.weight_bits", self.weight_bits, 2, 8)
        if not isinstance(self.layers, tuple) or not 1 <= len(self.layers) <= 8:
            raise ParamError(f"{where}.layers must be a list of 1..8 layers, not {self.layers!r}")
        for i, lp in enumerate(self.layers):
            if not isinstance(lp, LayerParams):
                raise ParamError(f"{where}.layers[{i}] must be a LayerParams, not {lp!r}")
            lp.validate(f"{where}.layers[{i}]")
        if not isinstance(self.readout, ReadoutParams):
            raise ParamError(f"{where}.readout must be a ReadoutParams, not {self.readout!r}")
        self.readout.validate(f"{where}.readout")
        return self


@dataclass(frozen=True)
class FrontEndParams(_Json):
    """The audio front end: WAV -> log-mel energies -> unsigned integer features (see :mod:`golden.frontend`).

    Parameters
    ----------
    sample_rate : int
        Every input is resampled to this rate (Hz).
    n_mels : int
        Mel bands; equals the network's ``n_features``.
    win_ms, hop_ms : float
        Analysis window and hop. The hop is 10 ms in the accelerator (real time is judged against it).
    fmin_hz, fmax_hz : float
        Band edges of the mel filterbank (``fmax_hz <= sample_rate / 2``).
    feature_bits : int
        Width of the quantized features.
    range_db : float
        Dynamic range mapped onto the ``2**feature_bits - 1`` levels, below the running reference.
    release_db : float
        How fast (dB per frame) the running reference level falls after a loud frame (attack is instant).
    floor_db : float
        The reference never falls below this level, so digital silence and faint noise give zero features.
    noise_gate_db : float
        0 (the default): no noise gate. Otherwise each band tracks its own noise floor (a running minimum that
        rises by at most ``noise_rise_db`` per frame) and passes only where it is at least this far above it;
        below, the band gives no event. Removes most of a steady background, at any recording level.
    noise_rise_db : float
        How fast (dB per frame) a band's noise-floor estimate may rise (it falls instantly to a quieter frame).
    band_norm_frames : int
        0 (the default): off. Otherwise a causal per-band mean normalisation (:func:`golden.frontend.band_norm`):
        each band's running mean over the last ``band_norm_frames`` frames or so (the mean of all frames so far
        until there are that many) is subtracted and the frame's mean over bands of those means added back, so a
        voice's or a microphone's lasting spectral shape is removed and the level stays.
    band_norm_strength : float
        1 (the default): the band normalisation removes the whole running shape. A value ``s`` in (0, 1) removes
        only that part of it, ``dB - s * (m - mean(m))``, keeping some of what a known voice's spectrum says
        (the shipped FSDD model: 0.5). Only with ``band_norm_frames > 0``; otherwise it must stay 1.

    Fields added after models were shipped (the noise gate) are written by :meth:`to_dict` only when they differ
    from their defaults, so a model file that does not use them keeps its bytes.
    """

    sample_rate: int = 8000
    n_mels: int = 32
    win_ms: float = 25.0
    hop_ms: float = 10.0
    fmin_hz: float = 50.0
    fmax_hz: float = 4000.0
    feature_bits: int = 4
    range_db: float = 30.0
    release_db: float = 0.2
    floor_db: float = -10.0
    noise_gate_db: float = 0.0
    noise_rise_db: float = 0.1
    band_norm_frames: int = 0
    band_norm_strength: float = 1.0

    #: Written by :meth:`to_dict` only when not at their defaults (see above).
    RECORDED_WHEN_SET = ("noise_gate_db", "noise_rise_db", "band_norm_frames", "band_norm_strength")

    def to_dict(self) -> dict:
        out = super().to_dict()
        for name in self.RECORDED_WHEN_SET:
            if out[name] == getattr(type(self), name):
                del out[name]
        return out

    @property
    def win_length(self) -> int:
        return int(round(self.win_ms * self.sample_rate / 1000))

    @property
    def hop_length(self) -> int:
        return int(round(self.hop_ms * self.sample_rate / 1000))

    @property
    def n_fft(self) -> int:
        return 1 << (self.win_length - 1).bit_length()

    def validate(self, where: str = "frontend") -> "FrontEndParams":
        _int(f"{where}.sample_rate", self.sample_rate, 4000, 96000)
        _int(f"{where}.n_mels", self.n_mels, 1, 256)
        _num(f"{where}.win_ms", self.win_ms, 1.0, 200.0)
        _num(f"{where}.hop_ms", self.hop_ms, 1.0, 200.0)
        for name in ("win_ms", "hop_ms"):
            samples = getattr(self, name) * self.sample_rate / 1000
            if abs(samples - round(samples)) > 1e-9:
                raise ParamError(f"{where}.{name} = {getattr(self, name)!r} is not a whole number of samples "
                                 f"at {self.sample_rate} Hz")
        _num(f"{where}.fmin_hz", self.fmin_hz, 0.0, self.sample_rate / 2)
        _num(f"{where}.fmax_hz", self.fmax_hz, 0.0, self.sample_rate / 2)
        if not self.fmin_hz < self.fmax_hz:
            raise ParamError(f"{where}.fmin_hz ({self.fmin_hz!r}) must be below fmax_hz ({self.fmax_hz!r})")
        _int(f"{where}.feature_bits", self.feature_bits, 1, 16)
        _num(f"{where}.range_db", self.range_db, 1.0, 150.0)
        _num(f"{where}.release_db", self.release_db, 0.0, 100.0)
        _num(f"{where}.floor_db", self.floor_db, -200.0, 200.0)
        _num(f"{where}.noise_gate_db", self.noise_gate_db, 0.0, 100.0)
        _int(f"{where}.band_norm_frames", self.band_norm_frames, 0, 10_000)
        _num(f"{where}.band_norm_strength", self.band_norm_strength, 0.0, 1.0)
        if self.band_norm_strength == 0.0:
            raise ParamError(f"{where}.band_norm_strength must be above 0 (to turn the normalisation off, set "
                             f"band_norm_frames = 0)")
        if self.band_norm_frames == 0 and self.band_norm_strength != 1.0:
            raise ParamError(f"{where}.band_norm_strength ({self.band_norm_strength!r}) acts only with the "
                             f"normalisation on: with band_norm_frames = 0 leave it at 1 (or set band_norm_frames "
                             f"above 0)")
        _num(f"{where}.noise_rise_db", self.noise_rise_db, 0.0, 100.0)
        return self


@dataclass(frozen=True)
class HardwareParams(_Json):
    """The accelerator instance: what it was built for. A model runs on it when :meth:`check` accepts it.

    Parameters
    ----------
    pe_count : int
        ``P`` processing elements; each owns ``ceil(N / P)`` neurons of the layer being computed.
    time_steps : int
        Accumulator sets per PE (parallel time steps); models with ``time_steps`` up to this run.
    max_features, max_neurons, max_classes, max_layers : int
        Capacity of the weight and state memories.
    weight_bits, max_state_bits, max_feature_bits : int
        Datapath widths.
    scan_width : int
        Sources the event generator's find-first-set looks at per cycle: a group of ``scan_width`` sources
        costs one cycle per event in it, or one cycle when it holds none (what a zero costs).
    weight_words : int
        Capacity of the weight memory of the configurable core (``rtl/core.py``), in words: the depth of each
        lane's memory, a word holding one entry (chunk id, weight) per lane (see :mod:`golden.sparse`).
    index_rows : int
        Capacity of its row-pointer (index) memory: one entry per source row of every matrix of a model.
    acc_bits : int
        Width of its accumulators; a model runs when every layer's exact sum range
        (:meth:`NetworkParams.acc_bits`) fits.
    max_shift : int
        Largest input / recurrent / readout power-of-two shift its datapath applies.
    max_spike_level : int
        Largest ``spike_levels`` (``D``) of a layer it runs: its spike memory holds ``bits(D)`` bits per neuron
        and step. The default, 2, runs the shipped FSDD model (``D = 2``); 1 is binary spikes only.
        A multi-level layer (``D > 1``) runs only in a model of ``time_steps = 1``: the core makes one
        event per active source, while golden makes one per distinct level when a source's level changes
        across the steps of a frame (:func:`golden.events.frame_events`).

    The last four are used only by the configurable core (``rtl/core.py``); the model-specific accelerator of
    ``rtl/accel.py`` sizes those memories from its model at elaboration.
    """

    pe_count: int = 16
    time_steps: int = 2
    max_features: int = 64
    max_neurons: int = 128
    max_classes: int = 16
    max_layers: int = 2
    weight_bits: int = 4
    max_state_bits: int = 24
    max_feature_bits: int = 8
    scan_width: int = 16
    weight_words: int = 3584
    index_rows: int = 576
    acc_bits: int = 20
    max_shift: int = 7
    max_spike_level: int = 2

    def validate(self, where: str = "hardware") -> "HardwareParams":
        _int(f"{where}.pe_count", self.pe_count, 1, 256)
        _int(f"{where}.time_steps", self.time_steps, 1, MAX_TIME_STEPS)
        _int(f"{where}.max_features", self.max_features, 1, 4096)
        _int(f"{where}.max_neurons", self.max_neurons, 1, 4096)
        _int(f"{where}.max_classes", self.max_classes, 2, 256)
        _int(f"{where}.max_layers", self.max_layers, 1, 8)
        _int(f"{where}.weight_bits", self.weight_bits, 2, 8)
        _int(f"{where}.max_state_bits", self.max_state_bits, 2, 32)
        _int(f"{where}.max_feature_bits", self.max_feature_bits, 1, 16)
        _int(f"{where}.scan_width", self.scan_width, 1, 64)
        _int(f"{where}.weight_words", self.weight_words, 1, 1 << 20)
        _int(f"{where}.index_rows", self.index_rows, 1, 1 << 16)
        _int(f"{where}.acc_bits", self.acc_bits, 2, 48)
        _int(f"{where}.max_shift", self.max_shift, 0, 16)
        _int(f"{where}.max_spike_level", self.max_spike_level, 1, LayerParams.MAX_SPIKE_LEVELS)
        if self.max_spike_level >= 1 << self.max_feature_bits:
            raise ParamError(f"{where}.max_spike_level = {self.max_spike_level} does not fit the "
                             f"{self.max_feature_bits}-bit event payload (max_feature_bits)")
        return self

    @property
    def spike_bits(self) -> int:
        """Bits of one neuron's spike level in the spike memory."""
        return self.max_spike_level.bit_length()

    def check(self, net: NetworkParams) -> None:
        """Raise :class:`ParamError` naming the first network field that this hardware cannot run."""
        checks = [
            ("n_features", net.n_features, self.max_features, "max_features"),
            ("time_steps", net.time_steps, self.time_steps, "time_steps"),
            ("feature_bits", net.feature_bits, self.max_feature_bits, "max_feature_bits"),
            ("readout.size", net.readout.size, self.max_classes, "max_classes"),
            ("readout.state_bits", net.readout.state_bits, self.max_state_bits, "max_state_bits"),
            ("len(layers)", len(net.layers), self.max_layers, "max_layers"),
        ]
        for i, lp in enumerate(net.layers):
            checks.append((f"layers[{i}].size", lp.size, self.max_neurons, "max_neurons"))
            checks.append((f"layers[{i}].state_bits", lp.state_bits, self.max_state_bits, "max_state_bits"))
            checks.append((f"layers[{i}].spike_levels", lp.spike_levels, self.max_spike_level,
                           "max_spike_level"))
        for name, value, limit, hw_name in checks:
            if value > limit:
                raise ParamError(f"network.{name} = {value} does not fit this hardware "
                                 f"(hardware.{hw_name} = {limit})")
        if net.weight_bits != self.weight_bits:
            raise ParamError(f"network.weight_bits = {net.weight_bits} differs from hardware.weight_bits = "
                             f"{self.weight_bits}")
        multi = [i for i, lp in enumerate(net.layers) if lp.spike_levels > 1]
        if multi and net.time_steps > 1:
            raise ParamError(f"network.layers[{multi[0]}].spike_levels = {net.layers[multi[0]].spike_levels} with "
                             f"network.time_steps = {net.time_steps}: the hardware runs multi-level spikes only at "
                             "time_steps = 1 (one event per active source)")


def default_network(n_features: int = 32, hidden: tuple = (128, 128), n_classes: int = 10,
                    time_steps: int = 1) -> NetworkParams:
    """A network of the shape the accelerator is built around (used for random stand-in models and tests)."""
    return NetworkParams(
        n_features=n_features, time_steps=time_steps,
        layers=tuple(LayerParams(size=n) for n in hidden),
        readout=ReadoutParams(size=n_classes),
    ).validate()
