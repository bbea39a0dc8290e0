"""spikegrad.nn — torch.nn layers for the seed methods, on the fused kernels (needs PyTorch).

Every layer takes a whole window `[T, B, ...]` per call, starting from its initial membrane,
keeps its state in buffers (saved in `state_dict`) and records, when asked, the diagnostics
the papers plot (see `SpikingLayer`).
"""

from ._base import SpikingLayer
from .atgo import ATGO
from .cf import CF
from .lif import LIF
from .mpdagl import MPDAGL
from .tdbn import gamma_bar, tdBatchNorm
from .trlif import TrLIF

__all__ = ["SpikingLayer", "LIF", "ATGO", "MPDAGL", "TrLIF", "CF", "tdBatchNorm", "gamma_bar"]
