"""spikegrad.nn.tdBatchNorm: threshold-dependent batch norm (Zheng et al. 2021) over time
and batch, as the MPD-AGL paper's Eqs. 5-6 write it, and `gamma_bar` for MPD-AGL.

    bn = tdBatchNorm(C, alpha=1.0, v_th=0.5)
    y = bn(x)                                 # x [T, B, C, ...]
    gbar = gamma_bar(bn)                      # mean of bn.weight, a detached float

The reference is spikegrad.ref.tdbn (float64 NumPy).
"""

from __future__ import annotations

from torch import Tensor, nn
from torch.nn import functional as F

from ._params import check_bool, check_fraction, check_layer_input, check_positive

__all__ = ["tdBatchNorm", "gamma_bar"]


class tdBatchNorm(nn.BatchNorm1d):  # noqa: N801 - the name the seeds use
    """tdBN: each channel of x [T, B, C, ...] is normalised over time, batch and space
    together to N(0, (alpha V_th)^2) (Eq. 5), then scaled by `weight` (gamma) and shifted by
    `bias` (beta) (Eq. 6). Training uses the batch statistics (biased variance) and updates
    `running_mean` / `running_var` (unbiased variance, momentum m); evaluation uses them.

    As in Zheng et al.'s code, alpha V_th multiplies gamma: y = (alpha V_th gamma) x_hat +
    beta with x_hat the standard batch-norm normalisation."""

    def __init__(self, num_features, alpha=1.0, v_th=1.0, eps=1e-5, momentum=0.1,
                 affine=True):
        check_positive("alpha", alpha)
        check_positive("v_th", v_th)
        check_positive("eps", eps)
        check_fraction("momentum", momentum)
        check_bool("affine", affine)
        if isinstance(num_features, bool) or not isinstance(num_features, int) \
                or num_features < 1:
            raise ValueError(f"num_features must be an int >= 1, got {num_features!r}")
        super().__init__(num_features, eps=eps, momentum=momentum, affine=affine,
                         track_running_stats=True)
        self.alpha = float(alpha)
        self.v_th = float(v_th)

    def forward(self, x: Tensor) -> Tensor:
        check_layer_input(x)
        if x.dim() < 3 or x.shape[2] != self.num_features:
            raise ValueError(f"x must be [T, B, C, ...] with C = {self.num_features}, got "
                             f"shape {tuple(x.shape)}")
        T, B, C = x.shape[:3]
        flat = x.reshape(T * B, C, -1)           # time and batch together, then space
        if self.training and T * B * flat.shape[2] < 2:
            raise ValueError("tdBatchNorm needs more than one value per channel in training "
                             f"(T * B * spatial = {T * B * flat.shape[2]})")
        scale = self.alpha * self.v_th
        weight = self.weight * scale if self.affine else \
            x.new_full((C,), scale)
        y = F.batch_norm(flat, self.running_mean, self.running_var, weight, self.bias,
                         self.training, self.momentum, self.eps)
        if self.training:
            self.num_batches_tracked.add_(1)
        return y.reshape(x.shape)

    def extra_repr(self):
        return (f"{self.num_features}, alpha={self.alpha:g}, v_th={self.v_th:g}, "
                f"eps={self.eps:g}, momentum={self.momentum}, affine={self.affine}")


def gamma_bar(bn: nn.Module) -> float:
    """The mean of a batch norm's affine weights gamma_c (the MPD-AGL paper's Theorem 1), detached:
    what MPDAGL's forward takes as `gamma_bar`. A norm without affine weights has gamma = 1."""
    if not isinstance(bn, nn.modules.batchnorm._NormBase):
        raise TypeError(f"bn must be a tdBatchNorm (or another torch batch norm), got "
                        f"{type(bn).__name__}")
    if bn.weight is None:
        return 1.0
    return float(bn.weight.detach().double().mean())
