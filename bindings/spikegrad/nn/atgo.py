"""spikegrad.nn.ATGO — DS-ATGO: adaptive threshold + TGO width schedule.

    layer = spikegrad.nn.ATGO(decay=0.2, v_th=1.0, f_c=1.0, momentum=0.1)
    out = layer(x)                  # x: [T, B, ...], one whole window from v = 0

Training (docs/spec.md §2 "AT", docs/spec.md §5 "TGO", docs/spec.md §9 preset): mul charge, hard reset to 0, absolute
scale, rect surrogate. At every step the threshold is f_c * (mean + std) of h[t] over the
whole layer and batch ("true", default) or f_c * sqrt(1 + lam^2) * V_th ("estimated"); the
rect width is width * (1 + tanh(d_t - V_th)) with d_t = std(h[t]) (released code, default)
or theta[t] (paper Eq. 7). `running_threshold[t] <- (1 - m) r[t] + m theta[t]`.

Evaluation: theta[t] = running_threshold[t] ("true"; a window longer than the trained T is
an error; before any training every step uses v_th, the buffer's initial value) or the
estimated formula ("estimated"), and the constant width `width` (no schedule).

See docs/atgo.md for the paper's equations, the released code's differences and our choices.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ..ops import adaptive_ops
from ..ops.neuron_ops import neuron
from .._options import check_adaptive_options
from .._statistics import estimated_threshold
from ._base import SpikingLayer

__all__ = ["ATGO"]


def _finite(name, value, *, positive=False):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a float, got {type(value).__name__}")
    value = float(value)
    if not math.isfinite(value) or (positive and value <= 0):
        raise ValueError(f"{name} must be a finite number{' > 0' if positive else ''}, "
                         f"got {value}")
    return value


class ATGO(SpikingLayer):
    """DS-ATGO spiking layer; see the module docstring and docs/atgo.md.

    Args:
        decay: the leak lam of h = lam * v + x (0.2). With learn_decay, the initial
            value of lam = sigmoid(w) (must be in (0, 1)); w = -log(1/decay - 1).
        learn_decay: make the leak a PLIF parameter `w`.
        v_th: V_th, the running threshold's initial value, the estimated threshold's
            base and the centre of the TGO schedule (1.0; > 0).
        f_c: the threshold's factor (1.0; > 0).
        momentum: m of the running-threshold update (0.1; in [0, 1]).
        threshold_mode: "true" (mean + std of h[t]) or "estimated" (sqrt(1 + lam^2) V_th).
        tgo: the TGO width schedule in training (True); False: the constant `width`.
        tgo_driver: "std" (released code) or "threshold" (paper Eq. 7).
        width: k0, the rect surrogate's base width (1.0; > 0).
        sync_stats: all-gather the statistics of h[t] over the default torch.distributed
            process group in training (a Python loop over t around the CPU step kernels;
            on CUDA x they run on a host copy of x, one per forward, and the neuron itself
            then runs on the GPU with the synced thresholds and widths).
    """

    def __init__(self, decay=0.2, learn_decay=False, v_th=1.0, f_c=1.0, momentum=0.1,
                 threshold_mode="true", tgo=True, tgo_driver="std", width=1.0, *,
                 sync_stats=False):
        super().__init__()
        for name, value in (("learn_decay", learn_decay), ("tgo", tgo),
                            ("sync_stats", sync_stats)):
            if not isinstance(value, bool):
                raise TypeError(f"{name} must be a bool, got {type(value).__name__}")
        decay = _finite("decay", decay)
        self.v_th = _finite("v_th", v_th, positive=True)
        self.f_c = _finite("f_c", f_c, positive=True)
        self.momentum = _finite("momentum", momentum)
        if not 0 <= self.momentum <= 1:
            raise ValueError(f"momentum must be in [0, 1], got {self.momentum}")
        self.width = _finite("width", width, positive=True)
        check_adaptive_options(threshold_mode, tgo_driver, self.f_c, self.v_th, self.width)
        self.threshold_mode = threshold_mode
        self.tgo = tgo
        self.tgo_driver = tgo_driver
        self.learn_decay = learn_decay
        self.sync_stats = sync_stats
        self.decay = decay
        if learn_decay:
            if not 0 < decay < 1:
                raise ValueError(f"decay must be in (0, 1) with learn_decay=True (lam = "
                                 f"sigmoid(w)), got {decay}")
            # docs/spec.md §1: w = -log(init_a - 1) with lam = 1 / init_a; decay 0.2 gives -log(4)
            self.w = nn.Parameter(torch.tensor(-math.log(1 / decay - 1)))
        # length T once the first training call fixes T; empty until then
        self.register_buffer("running_threshold", torch.empty(0))

    def extra_repr(self):
        return (f"decay={self.decay}, learn_decay={self.learn_decay}, v_th={self.v_th}, "
                f"f_c={self.f_c}, momentum={self.momentum}, "
                f"threshold_mode={self.threshold_mode!r}, tgo={self.tgo}, "
                f"tgo_driver={self.tgo_driver!r}, width={self.width}")

    def leak(self, dtype=torch.float32) -> Tensor:
        """lam as a 0-d tensor of `dtype`: sigmoid(w) (differentiable) or the fixed decay."""
        if self.learn_decay:
            return torch.sigmoid(self.w).to(dtype)
        return torch.tensor(self.decay, dtype=dtype)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # running_threshold's length is the trained T, unknown at construction: take the saved one
        key = prefix + "running_threshold"
        if key in state_dict:
            self.running_threshold = torch.empty_like(state_dict[key],
                                                      dtype=self.running_threshold.dtype)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def forward(self, x: Tensor) -> Tensor:
        self._check_input(x)
        if x.dtype not in (torch.float32, torch.float64):
            raise TypeError(f"x must be float32 or float64, got {x.dtype}")
        T = x.shape[0]
        N = x[0].numel()
        # a fixed decay stays a CPU scalar (the CUDA kernels read it on the host, no copy from
        # the device); a learnable one lives with w
        lam = self.leak(x.dtype)
        neuron_decay = lam if self.learn_decay else self.decay  # spikegrad.neuron: a float
        options = dict(charge="mul", reset="hard", v_reset=0.0, detach_reset=False,
                       scale="absolute", surrogate="rect")
        membrane = None
        if self.training:
            if T > self.running_threshold.numel() > 0:
                raise ValueError(f"training window T = {T} is longer than the T = "
                                 f"{self.running_threshold.numel()} fixed by the first "
                                 f"training call (running_threshold has one entry per step)")
            settings = dict(threshold_mode=self.threshold_mode, f_c=self.f_c, v_th=self.v_th,
                            tgo=self.tgo, tgo_driver=self.tgo_driver, width=self.width)
            if self.sync_stats:
                # CUDA x: the statistics on a host copy of x; theta and k_t come back on x's
                # device, where the fused neuron op then runs
                threshold, sg_param, _, _ = adaptive_ops.synced_adaptive_statistics(
                    x.detach().reshape(T, N), lam.item(), **settings)
                result = neuron(x, decay=neuron_decay, threshold=threshold, sg_param=sg_param,
                                return_membrane=self.record_diagnostics, **options)
                output, membrane = result.output, result.membrane
            else:
                if N < 2:
                    raise ValueError(f"ATGO training needs at least 2 neurons per step (the "
                                     f"std divides by N - 1), got N = {N} for x of shape "
                                     f"{tuple(x.shape)}")
                output, membrane, _, threshold, sg_param, _, _ = adaptive_ops.adaptive_forward(
                    x.reshape(T, N), lam, None, 0.0, "mul", "hard", False,
                    return_membrane=self.record_diagnostics, **settings)
                output = output.reshape(x.shape)
                membrane = membrane.reshape(x.shape) if self.record_diagnostics else None
            self._update_running_threshold(threshold)
        else:
            threshold = self._evaluation_threshold(T, lam, x.device)
            sg_param = torch.full((T,), self.width, dtype=x.dtype)
            result = neuron(x, decay=neuron_decay, threshold=threshold, sg_param=self.width,
                            return_membrane=self.record_diagnostics, **options)
            output, membrane = result.output, result.membrane
        if self.record_diagnostics:
            self._record(output, membrane, threshold, sg_param, scale="absolute",
                         surrogate="rect")
            self.diagnostics["threshold"] = threshold.detach().clone()
            self.diagnostics["width"] = sg_param.detach().clone()
        return output

    @torch.no_grad()
    def _update_running_threshold(self, threshold: Tensor) -> None:
        """docs/spec.md §2: r[t] <- (1 - m) r[t] + m theta[t], in the buffer's dtype. The first
        training call fixes T (r starts at v_th); a shorter window updates its first steps."""
        T = threshold.shape[0]
        if self.running_threshold.numel() == 0:
            self.running_threshold = torch.full((T,), self.v_th,
                                                dtype=self.running_threshold.dtype,
                                                device=self.running_threshold.device)
        r = self.running_threshold[:T]
        theta = threshold.detach().to(r.dtype)
        m = self.momentum
        r.copy_((1 - m) * r + m * theta)  # two products and a sum, no fused multiply-add

    def _evaluation_threshold(self, T: int, lam: Tensor, device) -> Tensor:
        dtype = lam.dtype
        if self.threshold_mode == "estimated":
            theta = estimated_threshold(lam.item(), self.f_c, self.v_th)
            return torch.full((T,), theta, dtype=torch.float64, device=device).to(dtype)
        r = self.running_threshold
        if r.numel() == 0:
            return torch.full((T,), self.v_th, dtype=torch.float64, device=device).to(dtype)
        if T > r.numel():
            raise ValueError(f"evaluation window T = {T} is longer than the trained T = "
                             f"{r.numel()} (running_threshold has one entry per trained step)")
        return r[:T].detach().to(dtype)
