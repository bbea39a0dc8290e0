"""spikegrad.ref — the readable NumPy reference of every neuron variant (SPEC.md).

Every other backend of spikegrad is tested against this package. Start with
`formulas.py` (one function per equation), then `neuron.py` (the loop over t and its
hand-written backward).
"""

from . import formulas
from . import mp_init, mpdagl, tdbn
from .neuron import NeuronGrads, NeuronOptions, NeuronResult, backward, error_scale, forward

__all__ = ["formulas", "forward", "backward", "error_scale", "NeuronOptions", "NeuronResult",
           "NeuronGrads"]
__all__ += ["mp_init", "mpdagl", "tdbn"]      # the seed methods' extras (issue 3)
