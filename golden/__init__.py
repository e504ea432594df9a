"""golden: the bit-exact integer specification of the RSNN accelerator (numpy only).

- :mod:`golden.arith`     number formats and the arithmetic primitives
- :mod:`golden.params`    network, front-end and hardware parameters (frozen dataclasses, JSON, validate())
- :mod:`golden.events`    events and the zero-skip specification
- :mod:`golden.network`   THE update order (its module docstring), the vectorized model and its counters
- :mod:`golden.reference` a plain pure-Python reference of the same semantics
- :mod:`golden.model`     weights + parameters; :mod:`golden.modelfile` the versioned model file
- :mod:`golden.frontend`  WAV -> integer features
- :mod:`golden.sparse`    the configurable core's weight format (per-lane lists); :mod:`golden.image` its
  configuration map and load image; :mod:`golden.core_cycles` its cycle model; :mod:`golden.placement` the
  neurons' order for its lanes
"""
from .arith import IntFormat, floor_shift, leak, saturate
from .events import Event, EventFormat, count_events, decode_events, frame_events
from .model import LayerWeights, Model, random_model
from .modelfile import ModelFileError, load_model, save_model
from .network import COUNTERS, BatchTrace, InputError, Trace, dense_counts, run, run_batch
from .params import (FrontEndParams, HardwareParams, LayerParams, NetworkParams, ParamError, ReadoutParams,
                     ResetMode, default_network)

__all__ = [
    "IntFormat", "floor_shift", "leak", "saturate", "Event", "EventFormat", "count_events", "decode_events",
    "frame_events", "LayerWeights", "Model", "random_model", "ModelFileError", "load_model", "save_model",
    "COUNTERS", "BatchTrace", "InputError", "Trace", "dense_counts", "run", "run_batch", "FrontEndParams",
    "HardwareParams", "LayerParams", "NetworkParams", "ParamError", "ReadoutParams", "ResetMode",
    "default_network",
]
