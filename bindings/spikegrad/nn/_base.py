"""What every spikegrad layer shares: input checks, flattening, and diagnostics.

Diagnostics cost nothing unless asked for: set `layer.record_diagnostics = True` and after
each forward `layer.diagnostics` holds, per timestep (tensors of length T):
- `firing_rate`: the fraction of neurons with a nonzero output;
- `gradient_available`: the fraction of neurons whose surrogate derivative is "non-zero" at
  their membrane: f'(z) > 0 for the compact shapes (rect, triangle, and the TSG triangles),
  and f'(z) >= f'(0) / 10 for the shapes with infinite support (sigmoid, atan), whose
  derivative is never exactly zero.
They are computed from the detached membrane with the formulas of docs/spec.md §3, §5
(spikegrad.nn._surrogates), so recording needs the membrane (one extra [T, N] buffer).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from . import _surrogates as F

__all__ = ["SpikingLayer", "gradient_available_fraction"]

COMPACT_SHAPES = ("rect", "triangle")


def gradient_available_fraction(membrane: Tensor, threshold: Tensor, sg_param: Tensor, *,
                                scale: str, surrogate: str) -> Tensor:
    """Per timestep, the fraction of neurons with a usable surrogate gradient.

    membrane: [T, ...]; threshold, sg_param: [T] (or scalars)."""
    h = membrane.detach().reshape(membrane.shape[0], -1).cpu().double().numpy()
    T = h.shape[0]
    theta = np.broadcast_to(np.asarray(threshold.detach().cpu().double()), (T,))
    p = np.broadcast_to(np.asarray(sg_param.detach().cpu().double()), (T,))
    fractions = np.empty(T)
    for t in range(T):
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            z = F.spike_argument(scale, h[t], theta[t])
            d = F.surrogate_derivative(surrogate, z, p[t])
        if surrogate in COMPACT_SHAPES:
            available = d > 0
        else:
            peak = F.surrogate_derivative(surrogate, np.zeros(1), p[t])[0]
            available = d >= peak / 10
        fractions[t] = available.mean() if available.size else 0.0
    return torch.from_numpy(fractions).to(membrane.dtype)


class SpikingLayer(nn.Module):
    """Base of the spikegrad layers: `[T, B, ...]` checks and diagnostics."""

    def __init__(self):
        super().__init__()
        self.record_diagnostics = False
        self.diagnostics: dict[str, Tensor] = {}

    @staticmethod
    def _check_input(x: Tensor) -> None:
        if not isinstance(x, Tensor):
            raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
        if x.dim() < 2:
            raise ValueError(f"x must be [T, B, ...] (at least 2 dimensions), got shape "
                             f"{tuple(x.shape)}")

    def _record(self, output: Tensor, membrane: Tensor, threshold: Tensor, sg_param: Tensor,
                *, scale: str, surrogate: str) -> None:
        """Fill self.diagnostics (call only when self.record_diagnostics)."""
        with torch.no_grad():
            T = output.shape[0]
            self.diagnostics = {
                "firing_rate": (output.detach() != 0).reshape(T, -1).to(output.dtype).mean(1),
                "gradient_available": gradient_available_fraction(
                    membrane, threshold, sg_param, scale=scale, surrogate=surrogate),
            }
