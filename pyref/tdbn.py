"""Threshold-dependent batch normalisation (tdBN, Zheng et al. 2021), as the MPD-AGL paper
Eqs. 5-6 write it, in float64 NumPy.

    y, mean, var = forward(x, gamma, beta, alpha=1.0, v_th=1.0, eps=1e-5)   # training
    y = forward_eval(x, gamma, beta, running_mean, running_var, ...)         # evaluation

x is [T, B, C, ...]; each channel c is normalised over time, batch and every spatial
position together (I_c = (I_c^1, ..., I_c^T), Sec. 3.3) to N(0, (alpha V_th)^2), then scaled
and shifted per channel:

    I_hat_c = alpha * V_th * (I_c - E[I_c]) / sqrt(VAR[I_c] + eps)       (Eq. 5)
    I_bar_c = gamma_c * I_hat_c + beta_c                                  (Eq. 6)

VAR is the biased (population) variance in training, as in every batch norm; the running
variance kept for evaluation is updated with the unbiased one (n / (n - 1)), as torch's
BatchNorm and the tdBN code do.
"""

from __future__ import annotations

import numpy as np

__all__ = ["channel_statistics", "forward", "forward_eval", "update_running"]


def _channel_first(x):
    """[T, B, C, ...] -> [C, n] with n = T * B * prod(spatial)."""
    x = np.asarray(x, dtype=np.float64)
    return np.moveaxis(x, 2, 0).reshape(x.shape[2], -1)


def _per_channel(value, x):
    """A [C] vector shaped to broadcast against x [T, B, C, ...]."""
    return np.asarray(value, dtype=np.float64).reshape((1, 1, -1) + (1,) * (x.ndim - 3))


def channel_statistics(x):
    """E[I_c] and the biased VAR[I_c] over time, batch and space: two [C] arrays."""
    flat = _channel_first(x)
    mean = flat.mean(axis=1)
    var = ((flat - mean[:, None]) ** 2).mean(axis=1)
    return mean, var


def _normalise(x, mean, var, gamma, beta, alpha, v_th, eps):
    x = np.asarray(x, dtype=np.float64)
    centred = x - _per_channel(mean, x)
    x_hat = alpha * v_th * centred / np.sqrt(_per_channel(var, x) + eps)     # Eq. 5
    return _per_channel(gamma, x) * x_hat + _per_channel(beta, x)           # Eq. 6


def forward(x, gamma, beta, *, alpha=1.0, v_th=1.0, eps=1e-5):
    """Training: normalise with the batch statistics. Returns (y, mean, biased var)."""
    mean, var = channel_statistics(x)
    return _normalise(x, mean, var, gamma, beta, alpha, v_th, eps), mean, var


def forward_eval(x, gamma, beta, running_mean, running_var, *, alpha=1.0, v_th=1.0, eps=1e-5):
    """Evaluation: normalise with the running statistics."""
    return _normalise(x, running_mean, running_var, gamma, beta, alpha, v_th, eps)


def update_running(running_mean, running_var, mean, var, n, momentum=0.1):
    """r <- (1 - m) r + m stat, with the unbiased variance var * n / (n - 1)."""
    unbiased = var * n / (n - 1)
    return ((1 - momentum) * np.asarray(running_mean) + momentum * mean,
            (1 - momentum) * np.asarray(running_var) + momentum * unbiased)
