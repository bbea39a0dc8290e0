"""spikegrad.ref — the readable NumPy reference of every neuron variant (docs/spec.md).

Every other backend of spikegrad is tested against this package. Start with
`formulas.py` (one function per equation), then `neuron.py` (the loop over t and its
hand-written backward); the methods' extras follow: `adaptive` (DS-ATGO),
`mpdagl` (MPD-AGL widths), `mp_init` (MP-Init + TrSG), `tdbn` (threshold-dependent BN).
"""

from . import formulas
from .neuron import NeuronGrads, NeuronOptions, NeuronResult, backward, error_scale, forward
from . import adaptive, mp_init, mpdagl, tdbn  # noqa: E402  (they build on neuron)

__all__ = ["formulas", "forward", "backward", "error_scale", "NeuronOptions", "NeuronResult",
           "NeuronGrads", "adaptive", "mp_init", "mpdagl", "tdbn", "multilevel", "pnb"]

# docs/spec.md §6, the multi-level circulate-firing neuron and the PNB loss (the CF paper)
from . import multilevel, pnb  # noqa: E402
