"""spikegrad.ref — the readable NumPy reference of every neuron variant (SPEC.md).

Every other backend of spikegrad is tested against this package. Start with
`formulas.py` (one function per equation), then `neuron.py` (the loop over t and its
hand-written backward).
"""

from . import formulas
from .neuron import NeuronGrads, NeuronOptions, NeuronResult, backward, error_scale, forward

__all__ = ["formulas", "forward", "backward", "error_scale", "NeuronOptions", "NeuronResult",
           "NeuronGrads"]

# SPEC 6, the multi-level circulate-firing neuron and the PNB loss (seed 002)
from . import multilevel, pnb  # noqa: E402

__all__ += ["multilevel", "pnb"]
