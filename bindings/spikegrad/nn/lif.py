"""spikegrad.nn.LIF: the generic spiking layer (every option of docs/spec.md §1-5) and its PLIF and
learnable-threshold variants, on the fused op spikegrad.neuron (one call per window).

    layer = LIF(charge="mul", decay=0.2, learn_decay=True)
    out = layer(x)           # x [T, B, ...] -> spikes (or theta * spikes) [T, B, ...]
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .._options import check_number, check_options
from ..ops.neuron_ops import neuron
from ._base import SpikingLayer
from ._params import (check_bool, check_decay, check_layer_input, check_positive, shown,
                      inverse_softplus, leak_logit)

__all__ = ["LIF"]


class LIF(SpikingLayer):
    """A layer of spiking neurons, docs/spec.md §1-5, over whole windows [T, B, ...].

    Args:
        charge: "mul" (h = lam v + x), "decay_input", "no_decay_input" or "if" (docs/spec.md §1).
        decay: the leak lam; in [0, 1], or in (0, 1) with learn_decay.
        learn_decay: PLIF: a parameter `w` with lam = sigmoid(w), initialised so that
            lam = decay (w = -log(1/decay - 1)).
        threshold: theta (any sign for scale="absolute", > 0 otherwise).
        learn_threshold: a parameter `k` with theta = softplus(k), initialised so that
            theta = threshold (which must then be > 0).
        reset, v_reset, detach_reset: docs/spec.md §4.
        scale: "absolute", "relative" or "threshold_robust" (docs/spec.md §3).
        surrogate, sg_param: the surrogate shape and its width or sharpness (docs/spec.md §5).

    Each call starts from the membrane v_reset (0 for every seed method; SpikingJelly's
    convention) and returns the output o[t]. Attributes `decay` and `threshold` give the
    current lam and theta (floats, or 0-d tensors when learnable). Set `smooth = True` to
    run the forward with the surrogate's primitive (a differentiable neuron, for gradient
    checks); see SpikingLayer for `record_diagnostics`.
    """

    def __init__(self, charge="mul", decay=0.2, learn_decay=False, threshold=1.0,
                 learn_threshold=False, reset="hard", v_reset=0.0, detach_reset=False,
                 scale="absolute", surrogate="rect", sg_param=1.0):
        super().__init__()
        check_options(charge=charge, reset=reset, scale=scale, surrogate=surrogate,
                      detach_reset=detach_reset)
        self.learn_decay = check_bool("learn_decay", learn_decay)
        self.learn_threshold = check_bool("learn_threshold", learn_threshold)
        decay = check_decay(decay, learnable=learn_decay)
        if learn_threshold:
            threshold = check_positive("threshold", threshold)
        else:
            threshold = check_number("threshold", threshold, scale=scale)
        self.charge, self.reset, self.scale, self.surrogate = charge, reset, scale, surrogate
        self.v_reset = check_number("v_reset", v_reset)
        self.detach_reset = detach_reset
        self.sg_param = check_positive("sg_param", sg_param)
        self.smooth = False
        if learn_decay:
            self.w = nn.Parameter(torch.tensor(leak_logit(decay)))
        else:
            self._decay = decay
        if learn_threshold:
            self.k = nn.Parameter(torch.tensor(inverse_softplus(threshold)))
        else:
            self._threshold = threshold

    @property
    def decay(self):
        """lam: sigmoid(w) when learnable, else the fixed float."""
        return torch.sigmoid(self.w) if self.learn_decay else self._decay

    @property
    def threshold(self):
        """theta: softplus(k) when learnable, else the fixed float."""
        return nn.functional.softplus(self.k) if self.learn_threshold else self._threshold

    def forward(self, x: Tensor) -> Tensor:
        check_layer_input(x)
        decay, threshold = _in_dtype(self.decay, x), _in_dtype(self.threshold, x)
        out = neuron(x, charge=self.charge, decay=decay, threshold=threshold,
                     reset=self.reset, v_reset=self.v_reset, detach_reset=self.detach_reset,
                     scale=self.scale, surrogate=self.surrogate, sg_param=self.sg_param,
                     v_init=self.v_reset, smooth=self.smooth,
                     return_membrane=self.record_diagnostics)
        if self.record_diagnostics:
            self._record(out.output, out.membrane, _as_tensor(threshold, x),
                         _as_tensor(self.sg_param, x), scale=self.scale,
                         surrogate=self.surrogate)
        return out.output

    def extra_repr(self):
        return (f"charge={self.charge!r}, decay={shown(self.decay):.4g}, "
                f"learn_decay={self.learn_decay}, threshold={shown(self.threshold):.4g}, "
                f"learn_threshold={self.learn_threshold}, reset={self.reset!r}, "
                f"scale={self.scale!r}, surrogate={self.surrogate!r}, "
                f"sg_param={self.sg_param:g}")


def _in_dtype(value, x: Tensor):
    """A learnable parameter cast (differentiably) to x's dtype; floats stay floats."""
    return value.to(x.dtype) if isinstance(value, Tensor) else value


def _as_tensor(value, x: Tensor) -> Tensor:
    if isinstance(value, Tensor):
        return value.detach().to(x.dtype)
    return torch.tensor(value, dtype=x.dtype)
