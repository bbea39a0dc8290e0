"""spikegrad's torch ops, one module per kernel family (needs PyTorch).

    neuron_ops       spikegrad.neuron: the single-level neuron (docs/spec.md §1-5)
    multilevel_ops   spikegrad.multilevel and spikegrad.pnb_loss: the circulate-firing
                     neuron and the positive-negative balanced loss (docs/spec.md §6)
    adaptive_ops     DS-ATGO's adaptive threshold and its data-parallel statistics
                     (docs/spec.md §2, §5), behind spikegrad.nn.ATGO

In each family module every custom op stands with its fake, CPU and CUDA kernels side by
side (one body, launched on spikegrad._core or spikegrad._cuda); the public function checks its
arguments once, before the op. _buffers holds the boundary checks the families share, _device
the launch plumbing (outputs, workspaces, the module and stream for x's device).
"""

# every family needs torch: say so once, before any of them imports it
try:
    import torch  # noqa: F401
except ModuleNotFoundError as error:  # pragma: no cover - exercised without torch only
    raise ModuleNotFoundError(
        "spikegrad.neuron and the torch layers need PyTorch, which is not installed. "
        "Install it with `pip install 'spikegrad[torch]'` (or `pip install torch`). "
        "The NumPy reference (spikegrad.ref), the kernels (spikegrad.kernels) and "
        "`spikegrad verify` work without it."
    ) from error

from .adaptive_ops import adaptive_forward, synced_adaptive_statistics
from .multilevel_ops import multilevel, pnb_loss
from .neuron_ops import NeuronOutput, neuron

__all__ = ["neuron", "NeuronOutput", "multilevel", "pnb_loss", "adaptive_forward",
           "synced_adaptive_statistics"]
