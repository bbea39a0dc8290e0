"""spikegrad — exact, fast, verified spiking-neuron kernels.

    spikegrad.ref        the readable NumPy reference (forward + hand-written BPTT)
    spikegrad.kernels    the compiled C++ kernels on NumPy arrays (NumPy only)
    spikegrad.neuron     the torch autograd op (needs PyTorch: pip install 'spikegrad[torch]')

The mathematics is docs/spec.md; `spikegrad verify` checks the compiled kernels against the
reference.
"""

from __future__ import annotations

import os as _os

# Between kernels, spikegrad's OpenMP threads sleep instead of spinning. libgomp reads
# OMP_WAIT_POLICY once, when the compiled module loads; spinning threads hold the cores that
# the caller's next torch op needs (on 2 cores, a 0.3 ms torch op then took 10 ms or more:
# docs/performance.md). A policy the user set is kept, and the variable is restored, so that
# other OpenMP runtimes loaded later (torch's own) are not affected.
_wait_policy = _os.environ.get("OMP_WAIT_POLICY")
if _wait_policy is None:
    _os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
try:
    from . import _core  # noqa: F401
finally:
    if _wait_policy is None:
        del _os.environ["OMP_WAIT_POLICY"]

__version__ = "0.1.0"
__all__ = ["ref", "kernels", "nn", "neuron", "NeuronOutput", "multilevel", "pnb_loss",
           "__version__"]

# The torch API is loaded on first use, so that `import spikegrad` (the reference, the
# kernels, `spikegrad verify`) works with NumPy alone; the reference too, so that the
# library never loads the oracle it is tested against.
_TORCH_API = {"neuron": "ops.neuron_ops", "NeuronOutput": "ops.neuron_ops",
              "multilevel": "ops.multilevel_ops", "pnb_loss": "ops.multilevel_ops"}
_SUBMODULES = ("ref", "kernels", "ops", "testing", "nn", "tools")


def __getattr__(name):
    from importlib import import_module

    if name in _TORCH_API:
        return getattr(import_module(f".{_TORCH_API[name]}", __name__), name)
    if name in _SUBMODULES:
        return import_module(f".{name}", __name__)
    raise AttributeError(f"module 'spikegrad' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
