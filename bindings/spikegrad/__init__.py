"""spikegrad — exact, fast, verified spiking-neuron kernels.

    spikegrad.ref        the readable NumPy reference (forward + hand-written BPTT)
    spikegrad.kernels    the compiled C++ kernels on NumPy arrays (NumPy only)
    spikegrad.neuron     the torch autograd op (needs PyTorch: pip install 'spikegrad[torch]')

The mathematics is SPEC.md; `spikegrad verify` checks the compiled kernels against the
reference.
"""

from __future__ import annotations

from . import ref

__version__ = "0.1.0"
__all__ = ["ref", "kernels", "nn", "neuron", "NeuronOutput", "multilevel", "pnb_loss",
           "__version__"]

# The torch API is loaded on first use, so that `import spikegrad` (the reference, the
# kernels, `spikegrad verify`) works with NumPy alone.
_TORCH_API = {"neuron": "ops", "NeuronOutput": "ops",
              "multilevel": "multilevel_ops", "pnb_loss": "multilevel_ops"}
_SUBMODULES = ("kernels", "ops", "multilevel_ops", "cli", "testing", "nn")


def __getattr__(name):
    from importlib import import_module

    if name in _TORCH_API:
        return getattr(import_module(f".{_TORCH_API[name]}", __name__), name)
    if name in _SUBMODULES:
        return import_module(f".{name}", __name__)
    raise AttributeError(f"module 'spikegrad' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
