"""spikegrad.nn.CF — the circulate-firing layer of the CF paper with the time-step-wise
learnable surrogate (TSG) and its membranes kept for the PNB loss.

    cf = spikegrad.nn.CF(T=4, keep_membrane=True)    # surrogate="tsg", learnable q [T]
    out = cf(x)                                      # x [T, B, ...] -> signed spike counts
    loss = ce + 0.25 * spikegrad.pnb_loss([layer.membrane for layer in cf_layers])

With surrogate="tsg", a[t] = s_a * sigmoid(q[t]) + b_a, q initialised so that a = a0
(docs/spec.md §6: s_a = 2, b_a = 0.5, a0 = 1, hence q0 = -ln 3). With surrogate="span", a is the
fixed height a0 of Eq. 14 and the layer has no parameter.

The membrane is made only on request: keep_membrane=True writes h in the forward (one kernel
call and one fused backward for the output and a loss on h, as the PNB loss needs); otherwise
reading `layer.membrane` after the forward recomputes h from the saved input, the same bits,
with a second kernel call (and a second backward call for its gradient).
"""

from __future__ import annotations

import math
from typing import Optional

import numpy as np
import torch
from torch import Tensor, nn

from ..ops.multilevel_ops import multilevel
from .._options import LEVEL_SURROGATES
from ._surrogates import level_surrogate_sums
from ._base import SpikingLayer

__all__ = ["CF"]


class CF(SpikingLayer):
    """Circulate-firing neurons (docs/spec.md §6). `membrane` is the last forward's pre-reset
    membranes h ([T, B, ...], attached to the graph) for spikegrad.pnb_loss: written by the
    forward with keep_membrane=True, else recomputed from the saved input when first read
    (see the module docstring).

    Diagnostics (record_diagnostics = True), per timestep: `firing_rate`, the fraction of
    nonzero outputs; `gradient_available`, the fraction of neurons with a nonzero
    level-surrogate derivative (sp + sn > 0)."""

    def __init__(self, decay: float = 0.25, theta_p: float = 1.0, theta_n: float = 1.0,
                 k_p: int = 2, k_n: int = 2, surrogate: str = "tsg", s_a: float = 2.0,
                 b_a: float = 0.5, a0: float = 1.0, T: Optional[int] = None,
                 detach_reset: bool = False, keep_membrane: bool = False):
        super().__init__()
        if not isinstance(keep_membrane, bool):
            raise TypeError(f"keep_membrane must be a bool, got {type(keep_membrane).__name__}")
        self.keep_membrane = keep_membrane
        if surrogate not in LEVEL_SURROGATES:
            raise ValueError(f"surrogate must be one of {LEVEL_SURROGATES}; got {surrogate!r}")
        for name, value in (("s_a", s_a), ("b_a", b_a), ("a0", a0)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or not math.isfinite(value):
                raise ValueError(f"{name} must be a finite float, got {value!r}")
        self.decay, self.theta_p, self.theta_n = float(decay), float(theta_p), float(theta_n)
        self.k_p, self.k_n = k_p, k_n
        self.surrogate = surrogate
        self.detach_reset = detach_reset
        self.s_a, self.b_a, self.a0 = float(s_a), float(b_a), float(a0)
        self._membrane: Optional[Tensor] = None
        # without keep_membrane: (x, a, x's version) of the last forward, to make h on request
        self._membrane_source: Optional[tuple] = None
        if surrogate == "tsg":
            if isinstance(T, bool) or not isinstance(T, int) or T < 1:
                raise ValueError(f"T must be an int >= 1 for surrogate='tsg' (one learnable "
                                 f"q per timestep), got {T!r}")
            if not (b_a >= 0 and s_a > 0 and b_a < a0 < b_a + s_a):
                raise ValueError(f"TSG needs b_a >= 0, s_a > 0 and b_a < a0 < b_a + s_a, got "
                                 f"s_a = {s_a}, b_a = {b_a}, a0 = {a0}")
            u = (a0 - b_a) / s_a                  # sigmoid(q0) = u
            self.q = nn.Parameter(torch.full((T,), math.log(u / (1 - u)), dtype=torch.float64))
        else:
            if not a0 > 0:
                raise ValueError(f"a0 (the span height) must be > 0, got {a0}")
            self.q = None
        self.T = T

    def a(self) -> Tensor:
        """a[t] = s_a * sigmoid(q[t]) + b_a (tsg), or the 0-d height a0 (span)."""
        if self.q is None:
            return torch.tensor(self.a0, dtype=torch.float64)
        return self.s_a * torch.sigmoid(self.q) + self.b_a

    def forward(self, x: Tensor) -> Tensor:
        self._check_input(x)
        if self.q is not None and x.shape[0] != self.T:
            raise ValueError(f"x has T = {x.shape[0]} steps but the layer was built for "
                             f"T = {self.T}")
        a = self.a().to(x.dtype)
        if self.q is None:
            a = float(a)
        out = self._run(x, a, self.keep_membrane)
        self._membrane = out.membrane
        self._membrane_source = None if self.keep_membrane else (x, a, x._version)
        if self.record_diagnostics:
            self._record_cf(out.output, self.membrane, a)
        return out.output

    def _run(self, x: Tensor, a, return_membrane: bool):
        return multilevel(x, decay=self.decay, theta_p=self.theta_p, theta_n=self.theta_n,
                          k_p=self.k_p, k_n=self.k_n, surrogate=self.surrogate, a=a,
                          detach_reset=self.detach_reset, return_membrane=return_membrane)

    @property
    def membrane(self) -> Optional[Tensor]:
        """h of the last forward ([T, B, ...], in the graph), or None before the first."""
        if self._membrane is None and self._membrane_source is not None:
            x, a, version = self._membrane_source
            if x._version != version:
                raise RuntimeError("CF.membrane: the layer's input was modified in place after "
                                   "the forward, so its membrane can no longer be recomputed; "
                                   "read it before, or build the layer with keep_membrane=True")
            self._membrane = self._run(x, a, True).membrane
            self._membrane_source = None
        return self._membrane

    def _record_cf(self, output: Tensor, membrane: Tensor, a) -> None:
        with torch.no_grad():
            T = output.shape[0]
            h = membrane.detach().reshape(T, -1).cpu().double().numpy()
            a_t = np.broadcast_to(np.asarray(torch.as_tensor(a).detach().cpu().double()), (T,))
            tp, tn = np.float64(self.theta_p), np.float64(self.theta_n)
            available = np.empty(T)
            for t in range(T):
                sp, sn = level_surrogate_sums(self.surrogate, h[t], tp, tn, self.k_p, self.k_n,
                                              a_t[t])
                available[t] = ((sp + sn) > 0).mean() if h[t].size else 0.0
            self.diagnostics = {
                "firing_rate": (output.detach() != 0).reshape(T, -1).to(output.dtype).mean(1),
                "gradient_available": torch.from_numpy(available).to(output.dtype),
            }

    def extra_repr(self) -> str:
        return (f"decay={self.decay}, theta_p={self.theta_p}, theta_n={self.theta_n}, "
                f"k_p={self.k_p}, k_n={self.k_n}, surrogate={self.surrogate!r}, T={self.T}, "
                f"keep_membrane={self.keep_membrane}")
