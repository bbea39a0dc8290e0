"""spikegrad.nn.MPDAGL: the MPD-AGL layer (docs/mpdagl.md).

    bn = tdBatchNorm(C, v_th=0.5); lif = MPDAGL(learn_decay=True)
    out = lif(bn(x), gamma_bar=gamma_bar(bn))      # x [T, B, C, ...]

The iterative LIF of Wu et al. (Eqs. 2-3: mul charge, hard reset to 0, threshold V_th)
with the rectangular surrogate whose width follows the membrane potential distribution,
Eq. 7 (docs/spec.md §5): kappa[0] = 2 gbar V_th, kappa[t >= 1] = 2 sqrt(1 + lam^2) gbar V_th, lam
detached. The widths are computed on the host (T numbers) and passed to the fused op.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ..ops.neuron_ops import neuron
from ._base import SpikingLayer
from ._params import (as_number, check_bool, check_decay, check_layer_input, check_positive,
                      leak_logit, shown)

__all__ = ["MPDAGL", "mpdagl_widths"]


def mpdagl_widths(T: int, lam: float, gamma_bar: float, v_th: float) -> list[float]:
    """Eq. 7 of the MPD-AGL paper, in float64, left to right (the reference is
    spikegrad.ref.mpdagl.surrogate_widths)."""
    first = 2 * gamma_bar * v_th                                   # t = 1
    later = 2 * math.sqrt(1 + lam * lam) * gamma_bar * v_th        # t > 1 (Theorem 2)
    return [first] + [later] * (T - 1)


class MPDAGL(SpikingLayer):
    """MPD-AGL. `decay` lam (0.2; with learn_decay a PLIF parameter `w`,
    lam = sigmoid(w), Eq. 8, initialised to lam = decay), `v_th` the threshold (0.5, which
    makes the first width 1 when gbar = 1).

    forward(x, gamma_bar=1.0): x [T, B, ...]; gamma_bar the mean of the preceding tdBN
    layer's affine weights (spikegrad.nn.gamma_bar), a float or 0-d tensor > 0 (detached).
    With record_diagnostics, `diagnostics["sg_width"]` holds the widths used."""

    def __init__(self, decay=0.2, learn_decay=False, v_th=0.5):
        super().__init__()
        self.learn_decay = check_bool("learn_decay", learn_decay)
        decay = check_decay(decay, learnable=learn_decay)
        self.v_th = check_positive("v_th", v_th)
        if learn_decay:
            self.w = nn.Parameter(torch.tensor(leak_logit(decay)))
        else:
            self._decay = decay
        self.smooth = False

    @property
    def decay(self):
        """lam: sigmoid(w) (Eq. 8) when learnable, else the fixed float."""
        return torch.sigmoid(self.w) if self.learn_decay else self._decay

    def widths(self, T: int, lam: float, gamma_bar) -> list[float]:
        gbar = as_number("gamma_bar", gamma_bar)
        if not math.isfinite(gbar) or gbar <= 0:
            raise ValueError(f"gamma_bar must be a finite number > 0 (the mean of the tdBN "
                             f"affine weights), got {gbar}")
        return mpdagl_widths(T, lam, gbar, self.v_th)

    def forward(self, x: Tensor, gamma_bar=1.0) -> Tensor:
        check_layer_input(x)
        decay = self.decay
        if isinstance(decay, Tensor):
            decay = decay.to(x.dtype)
            lam = float(decay.detach())    # the value the kernel uses, detached (docs/spec.md §5)
        else:
            lam = float(torch.tensor(decay, dtype=x.dtype))
        widths = torch.tensor(self.widths(x.shape[0], lam, gamma_bar), dtype=x.dtype,
                              device=x.device)
        out = neuron(x, charge="mul", decay=decay, threshold=self.v_th, reset="hard",
                     v_reset=0.0, detach_reset=False, scale="absolute", surrogate="rect",
                     sg_param=widths, smooth=self.smooth,
                     return_membrane=self.record_diagnostics)
        if self.record_diagnostics:
            self._record(out.output, out.membrane, torch.tensor(self.v_th, dtype=x.dtype),
                         widths, scale="absolute", surrogate="rect")
            self.diagnostics["sg_width"] = widths
        return out.output

    def extra_repr(self):
        return (f"decay={shown(self.decay):.4g}, learn_decay={self.learn_decay}, "
                f"v_th={self.v_th:g}")
