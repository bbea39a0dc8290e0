"""An independent eager PyTorch transcription of docs/spec.md 1-5, differentiated by autograd.

Written from the spec tables, not from spikegrad's code: the spike is a custom autograd
Function whose backward is the surrogate derivative (and, for the surrogate parameter, the
straight-through primitive rule dF/dp); `detach_reset` detaches the spike inside the reset,
as SpikingJelly does. This is the oracle for the non-smooth and detached backward paths,
which finite differences cannot check.
"""

import math

import torch


def surrogate_derivative(shape, z, p):
    if shape == "rect":
        return (z.abs() < p / 2).to(z.dtype) * (1 / p)
    if shape == "triangle":
        return (1 / (p * p)) * torch.clamp(p - z.abs(), min=0)
    if shape == "sigmoid":
        # sg(u) (1 - sg(u)) written as sg(u) sg(-u): no cancellation when sg is near 1
        return p * torch.sigmoid(p * z) * torch.sigmoid(-(p * z))
    if shape == "atan":
        return p / (2 * (1 + (math.pi / 2 * p * z) ** 2))
    raise ValueError(shape)


def surrogate_primitive(shape, z, p):
    if shape == "rect":
        return torch.clamp(z / p + 0.5, 0, 1)
    if shape == "triangle":
        a = torch.clamp(p - z.abs(), min=0) / p
        return torch.where(z < 0, 0.5 * a * a, 1 - 0.5 * a * a)
    if shape == "sigmoid":
        return torch.sigmoid(p * z)
    if shape == "atan":
        return torch.atan(math.pi / 2 * p * z) / math.pi + 0.5
    raise ValueError(shape)


class Spike(torch.autograd.Function):
    """s = H(z); ds/dz := f'(z; p); ds/dp := dF(z; p)/dp = -+(z/p) f'(z; p)."""

    @staticmethod
    def forward(ctx, z, p, shape):
        ctx.save_for_backward(z, p)
        ctx.shape = shape
        return (z >= 0).to(z.dtype)

    @staticmethod
    def backward(ctx, grad):
        z, p = ctx.saved_tensors
        d = surrogate_derivative(ctx.shape, z, p)
        sign = -1 if ctx.shape in ("rect", "triangle") else 1
        return grad * d, (grad * sign * (z / p) * d).sum(), None


def eager_neuron(x, *, charge, decay, threshold, reset, v_reset, detach_reset, scale,
                 surrogate, sg_param, v_init, smooth):
    """x [T, N]; decay 0-d; threshold, sg_param [T]; v_init [N] — all tensors."""
    v = v_init
    outputs, membranes = [], []
    for t in range(x.shape[0]):
        theta, p = threshold[t], sg_param[t]
        if charge == "mul":
            h = decay * v + x[t]
        elif charge == "decay_input":
            h = v + decay * (x[t] - (v - v_reset))
        elif charge == "no_decay_input":
            h = v - decay * (v - v_reset) + x[t]
        else:
            h = v + x[t]
        z = h - theta if scale == "absolute" else h / theta - 1
        s = surrogate_primitive(surrogate, z, p) if smooth else Spike.apply(z, p, surrogate)
        outputs.append(theta * s if scale == "threshold_robust" else s)
        s_reset = s.detach() if detach_reset else s
        if reset == "hard":
            v = h * (1 - s_reset) + v_reset * s_reset
        elif reset == "soft":
            v = h - theta * s_reset
        else:
            v = h
        membranes.append(h)
    return torch.stack(outputs), torch.stack(membranes), v
