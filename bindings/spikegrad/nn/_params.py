"""Checks and parameterisations shared by the spikegrad layers.

Learnable leak (PLIF, Fang et al. 2021): lam = sigmoid(w), w initialised to
-log(1/lam0 - 1) (DS-ATGO/MPD-AGL: init_a = 1/lam0 = 5, w = -log(init_a - 1); TrSG:
lam = 1/tau, w = -log(tau0 - 1), SpikingJelly's ParametricLIFNode).
Learnable threshold (TrSG): theta = softplus(k), k initialised to log(exp(theta0) - 1).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .._options import check_number

__all__ = ["leak_logit", "inverse_softplus", "check_decay", "check_positive",
           "check_fraction", "check_bool", "as_number", "check_layer_input", "shown"]


def leak_logit(decay: float) -> float:
    """w with sigmoid(w) = decay, written as the PLIF code writes it: -log(1/decay - 1)."""
    return -math.log(1 / decay - 1)


def inverse_softplus(threshold: float) -> float:
    """k with softplus(k) = log(1 + exp(k)) = threshold, written as
    threshold + log(1 - exp(-threshold)) so that large thresholds do not overflow exp."""
    return threshold + math.log(-math.expm1(-threshold))


def check_bool(name, value):
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool, got {type(value).__name__}")
    return value


def check_decay(value, *, learnable: bool, name: str = "decay") -> float:
    """The leak factor lam: in [0, 1] when fixed, in (0, 1) when learnable (sigmoid(w) never
    reaches 0 or 1)."""
    value = check_number(name, value)
    if learnable and not 0 < value < 1:
        raise ValueError(f"{name} must be in (0, 1) when learnable (lam = sigmoid(w)), "
                         f"got {value}")
    if not 0 <= value <= 1:
        raise ValueError(f"{name} must be in [0, 1], got {value}")
    return value


def check_positive(name, value) -> float:
    value = check_number(name, value)
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {value}")
    return value


def check_fraction(name, value) -> float:
    value = check_number(name, value)
    if not 0 <= value <= 1:
        raise ValueError(f"{name} must be in [0, 1], got {value}")
    return value


def as_number(name, value) -> float:
    """A Python float or a 0-d tensor (detached) as a float."""
    if isinstance(value, Tensor):
        if value.dim() != 0:
            raise ValueError(f"{name} must be a float or a 0-d tensor, got shape "
                             f"{tuple(value.shape)}")
        if not value.is_floating_point():
            raise TypeError(f"{name} must be a floating-point tensor, got {value.dtype}")
        return float(value.detach())
    return check_number(name, value)


def check_layer_input(x) -> None:
    """x must be a float32/float64 tensor [T, B, ...] with T >= 1 and B >= 1 (the base
    class's check, then the dtype and the sizes)."""
    from ._base import SpikingLayer

    SpikingLayer._check_input(x)
    if x.dtype not in (torch.float32, torch.float64):
        raise TypeError(f"x must be float32 or float64, got {x.dtype}")
    if x.dim() < 2 or x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"x must be [T, B, ...] with T >= 1 and B >= 1, got shape "
                         f"{tuple(x.shape)}")


def shown(value) -> float:
    """A float or a (possibly learnable) 0-d tensor as a float, for extra_repr."""
    return float(value.detach()) if isinstance(value, Tensor) else float(value)
