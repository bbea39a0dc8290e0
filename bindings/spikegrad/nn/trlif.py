"""spikegrad.nn.TrLIF: MP-Init + the threshold-robust surrogate gradient (the MP-Init/TrSG paper),
and the AS-SG / RS-SG baselines of the same paper (docs/trsg.md).

    layer = TrLIF(tau=2.0, threshold=1.0)            # learnable w (lam = 1/tau) and k
    out = layer(x)                                    # x [T, B, ...] -> theta * spikes

The neuron (docs/spec.md §9): `decay_input` charge (or `no_decay_input`), lam = 1/tau = sigmoid(w),
theta = softplus(k), z = h / theta - 1, output theta * s, soft reset v = h - o. MP-Init
(docs/spec.md §7): every window starts from the buffer `running_mean`, which each training window
moves towards the mean membrane of the active neurons at the last step. The reduction has a
fixed order, in float64 (spikegrad._statistics; the reference's is spikegrad.ref.mp_init);
with `sync_stats=True` the per-sample partial sums of every process are gathered over the
default torch.distributed group, so N processes compute exactly the bits one process
computes on the whole batch.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor, nn

from .._options import SCALES, SURROGATES, check_number
from ..ops.neuron_ops import neuron
from .. import _statistics as stats
from ._base import SpikingLayer
from ._params import (check_bool, check_fraction, check_layer_input, check_positive,
                      inverse_softplus, shown)

__all__ = ["TrLIF"]


def _check_tau(tau) -> float:
    tau = check_number("tau", tau)
    if not (math.isfinite(tau) and tau > 1):
        raise ValueError(f"tau must be a finite number > 1 (lam = 1/tau = sigmoid(w) must "
                         f"lie in (0, 1)), got {tau}")
    return tau


class TrLIF(SpikingLayer):
    """MP-Init + TrSG. Parameters `w` (lam = 1/tau = sigmoid(w), initialised to
    w = -log(tau - 1)) and `k` (theta = softplus(k), initialised to log(exp(threshold) - 1));
    buffer `running_mean` (0-d, the initial membrane, starts at 0).

    Args:
        tau: initial time constant, > 1 (paper and code: 2).
        threshold: initial threshold, > 0 (paper 1.0; the released code's default is 2.0).
        decay_input: charge "decay_input" (True) or "no_decay_input" (False).
        scale: "threshold_robust" (TrSG), "absolute" (AS-SG) or "relative" (RS-SG).
        surrogate, sg_param: docs/spec.md §5 (rect width 1 by default).
        mp_init: start from `running_mean` and update it in training (False: from 0).
        momentum: m of the running-mean update, in [0, 1].
        detach_reset: docs/spec.md §4 (the released code keeps the gradient).
        sync_stats: gather the MP-Init statistics over the default process group in
            training (without an initialised group the layer is its own world).
    """

    def __init__(self, tau=2.0, threshold=1.0, decay_input=True, scale="threshold_robust",
                 surrogate="rect", sg_param=1.0, mp_init=True, momentum=0.1,
                 detach_reset=False, sync_stats=False):
        super().__init__()
        tau = _check_tau(tau)
        threshold = check_positive("threshold", threshold)
        if scale not in SCALES:
            raise ValueError(f"scale must be one of {SCALES}, got {scale!r}")
        if surrogate not in SURROGATES:
            raise ValueError(f"surrogate must be one of {SURROGATES}, got {surrogate!r}")
        self.decay_input = check_bool("decay_input", decay_input)
        self.mp_init = check_bool("mp_init", mp_init)
        self.detach_reset = check_bool("detach_reset", detach_reset)
        self.sync_stats = check_bool("sync_stats", sync_stats)
        self.momentum = check_fraction("momentum", momentum)
        self.sg_param = check_positive("sg_param", sg_param)
        self.scale, self.surrogate = scale, surrogate
        self.smooth = False
        self.w = nn.Parameter(torch.tensor(-math.log(tau - 1)))
        self.k = nn.Parameter(torch.tensor(inverse_softplus(threshold)))
        self.register_buffer("running_mean", torch.zeros(()))

    @property
    def charge(self) -> str:
        return "decay_input" if self.decay_input else "no_decay_input"

    @property
    def decay(self) -> Tensor:
        """lam = 1/tau = sigmoid(w)."""
        return torch.sigmoid(self.w)

    @property
    def tau(self) -> Tensor:
        return 1 / self.decay

    @property
    def threshold(self) -> Tensor:
        """theta = softplus(k)."""
        return nn.functional.softplus(self.k)

    def forward(self, x: Tensor) -> Tensor:
        check_layer_input(x)
        threshold = self.threshold.to(x.dtype)
        # a copy: the buffer is updated in place below, after the op saved v_init
        v_init = self.running_mean.detach().to(x.dtype, copy=True) if self.mp_init else None
        out = neuron(x, charge=self.charge, decay=self.decay.to(x.dtype),
                     threshold=threshold, reset="soft", v_reset=0.0,
                     detach_reset=self.detach_reset, scale=self.scale,
                     surrogate=self.surrogate, sg_param=self.sg_param, v_init=v_init,
                     smooth=self.smooth, return_membrane=self.record_diagnostics)
        if self.mp_init and self.training:
            self._update_running_mean(out.output, out.v_last)
        if self.record_diagnostics:
            self._record(out.output, out.membrane, threshold.detach(),
                         torch.tensor(self.sg_param, dtype=x.dtype), scale=self.scale,
                         surrogate=self.surrogate)
        return out.output

    @torch.no_grad()
    def _update_running_mean(self, output: Tensor, v_last: Tensor) -> None:
        """docs/spec.md §7, in the fixed reduction order of spikegrad._statistics."""
        counts, sums = stats.per_sample_sums(output.detach().cpu().numpy(),
                                             v_last.detach().cpu().numpy())
        if self.sync_stats:
            counts, sums = _gather_over_processes(counts, sums)
        mu_batch = stats.batch_mean(math.fsum(counts), math.fsum(sums))
        new_mean = stats.update_running_mean(float(self.running_mean), mu_batch,
                                             self.momentum)
        self.running_mean.fill_(new_mean)

    def extra_repr(self):
        return (f"tau={shown(self.tau):.4g}, threshold={shown(self.threshold):.4g}, "
                f"charge={self.charge!r}, scale={self.scale!r}, "
                f"surrogate={self.surrogate!r}, sg_param={self.sg_param:g}, "
                f"mp_init={self.mp_init}, momentum={self.momentum:g}, "
                f"sync_stats={self.sync_stats}")


def _gather_over_processes(counts: np.ndarray, sums: np.ndarray):
    """Every process's per-sample (count, sum) arrays, concatenated in rank order. The sums
    are combined with fsum afterwards, so the result does not depend on how the batch was
    split."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return counts, sums
    gathered = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, (counts, sums))
    return (np.concatenate([c for c, _ in gathered]),
            np.concatenate([s for _, s in gathered]))
