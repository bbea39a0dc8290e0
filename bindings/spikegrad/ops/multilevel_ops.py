"""The torch ops of docs/spec.md §6 (the CF paper): `spikegrad.multilevel` (the circulate-firing
neuron) and `spikegrad.pnb_loss` (the positive-negative balanced loss).

    multilevel(x) -> checks -> spikegrad::multilevel_forward   (custom_op)
    backward      ->           spikegrad::multilevel_backward  (custom_op)
    pnb_loss(hs)  -> spikegrad::pnb_partial_sums per layer     (custom_op)
                  -> Eqs. 20-22 in float64 torch arithmetic (autograd)
    backward      -> spikegrad::pnb_partial_sums_backward      (custom_op)

Each op stands with its fake (torch.compile traces without graph breaks), CPU and CUDA
kernels side by side. The neuron's
backward recomputes the membrane from x. Double backward is not supported.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence, Union

import torch
from torch import Tensor

from .. import _core
from .._options import LEVEL_SURROGATES, check_number
from . import _device
from ._buffers import (NeuronOutput, _check_device, _check_x_dtype, _initial_membrane,
                       _parameter, parameter_gradient)
from ._device import (_contiguous, _decay, _forward_outputs, _gradient_sums, _like, _upstream,
                      _workspace, state_dtype)

__all__ = ["multilevel", "pnb_loss", "multilevel_forward", "multilevel_backward",
           "pnb_partial_sums", "pnb_partial_sums_backward"]


# ---------------------------------------------------------------------------------------
# The neuron ops: x [T, N]; decay 0-d; a [T]; v_init [N]; all of x's dtype.
# ---------------------------------------------------------------------------------------

@torch.library.custom_op("spikegrad::multilevel_forward", mutates_args=())
def multilevel_forward(x: Tensor, decay: Tensor, a: Tensor, v_init: Tensor, theta_p: float,
                       theta_n: float, k_p: int, k_n: int, surrogate: str, smooth: bool,
                       detach_reset: bool, return_membrane: bool
                       ) -> tuple[Tensor, Tensor, Tensor]:
    """Returns (output [T, N], membrane [T, N] or [0], v_last [N]). The default kernel: a
    device without a kernel of its own is refused by name (CPU and CUDA have theirs below)."""
    _check_device(x)
    kernel = _multilevel_forward_cuda if x.is_cuda else _multilevel_forward_cpu
    return kernel(x, decay, a, v_init, theta_p, theta_n, k_p, k_n, surrogate, smooth,
                  detach_reset, return_membrane)


@multilevel_forward.register_fake
def _(x, decay, a, v_init, theta_p, theta_n, k_p, k_n, surrogate, smooth, detach_reset,
      return_membrane):
    T, N = x.shape
    return (x.new_empty((T, N)), x.new_empty((T, N) if return_membrane else (0,)),
            x.new_empty((N,)))


def _launch_multilevel_forward(launch, x, decay, a, v_init, theta_p, theta_n, k_p, k_n,
                               surrogate, smooth, detach_reset, return_membrane):
    """spikegrad::multilevel_forward on the module `launch` gives for x (_device.host_launch,
    _device.cuda_launch): the CPU and CUDA kernels are this one body."""
    del detach_reset  # only the backward uses it
    module, launch_keywords, device_context = launch(x)
    x = x.contiguous()
    output, membrane, v_last = _forward_outputs(x, return_membrane)
    with device_context:
        module.multilevel_forward(
            _decay(decay, x), theta_p, theta_n, k_p, k_n, _contiguous(a), _contiguous(v_init), x,
            output, membrane if return_membrane else None, v_last, surrogate=surrogate,
            smooth=smooth, **launch_keywords)
    return output, membrane, v_last


@multilevel_forward.register_kernel("cpu")
def _multilevel_forward_cpu(*args):
    """spikegrad::multilevel_forward's CPU kernel."""
    return _launch_multilevel_forward(_device.host_launch, *args)


@multilevel_forward.register_kernel("cuda")
def _multilevel_forward_cuda(*args):
    """spikegrad::multilevel_forward's CUDA kernel."""
    return _launch_multilevel_forward(_device.cuda_launch, *args)


@torch.library.custom_op("spikegrad::multilevel_backward", mutates_args=())
def multilevel_backward(x: Tensor, decay: Tensor, a: Tensor, v_init: Tensor,
                        grad_output: Optional[Tensor], grad_membrane: Optional[Tensor],
                        grad_v_last: Optional[Tensor], theta_p: float, theta_n: float,
                        k_p: int, k_n: int, surrogate: str, smooth: bool, detach_reset: bool,
                        need_grad_decay: bool = True, need_grad_a: bool = True
                        ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Returns (grad_x [T, N], grad_v_init [N], grad_decay 0-d, grad_a [T]); the parameter
    gradients are accumulated in float64, then cast. need_grad_decay / need_grad_a False
    skips that gradient's float64 sums (about a third of the work with TSG); it is then
    returned as NaN, never as a plausible number. The default kernel, as
    multilevel_forward's."""
    _check_device(x)
    kernel = _multilevel_backward_cuda if x.is_cuda else _multilevel_backward_cpu
    return kernel(x, decay, a, v_init, grad_output, grad_membrane, grad_v_last, theta_p,
                  theta_n, k_p, k_n, surrogate, smooth, detach_reset, need_grad_decay,
                  need_grad_a)


@multilevel_backward.register_fake
def _(x, decay, a, v_init, grad_output, grad_membrane, grad_v_last, theta_p, theta_n, k_p,
      k_n, surrogate, smooth, detach_reset, need_grad_decay=True, need_grad_a=True):
    T, N = x.shape
    # the parameter gradients on x's device (a fixed decay may be a CPU scalar beside CUDA x)
    return (x.new_empty((T, N)), v_init.new_empty((N,)), x.new_empty((), dtype=decay.dtype),
            x.new_empty((T,), dtype=a.dtype))


def _launch_multilevel_backward(launch, x, decay, a, v_init, grad_output, grad_membrane,
                                grad_v_last, theta_p, theta_n, k_p, k_n, surrogate, smooth,
                                detach_reset, need_grad_decay, need_grad_a):
    """spikegrad::multilevel_backward on the module `launch` gives for x, as
    _launch_multilevel_forward. A gradient not needed gets no buffer (its float64 sums are
    skipped) and is returned as NaN, never as a plausible number."""
    module, launch_keywords, device_context = launch(x)
    x = x.contiguous()
    T, N = x.shape
    grad_x = torch.empty((T, N), dtype=x.dtype, device=x.device)
    grad_v_init = torch.empty((N,), dtype=state_dtype(x.dtype), device=x.device)
    grad_decay, grad_a = _gradient_sums(x, ((), (T,)))   # float64
    workspace = _workspace(module.multilevel_backward_workspace_bytes(x), x)
    with device_context:
        module.multilevel_backward(
            _decay(decay, x), theta_p, theta_n, k_p, k_n, _contiguous(a), _contiguous(v_init), x,
            *_upstream(grad_output, grad_membrane, grad_v_last), grad_x, grad_v_init,
            grad_decay if need_grad_decay else None, grad_a if need_grad_a else None, workspace,
            surrogate=surrogate, smooth=smooth, detach_reset=detach_reset, **launch_keywords)
    nan = float("nan")
    return (grad_x, grad_v_init,
            _like(grad_decay, decay) if need_grad_decay else x.new_full((), nan, dtype=decay.dtype),
            _like(grad_a, a) if need_grad_a else x.new_full((T,), nan, dtype=a.dtype))


@multilevel_backward.register_kernel("cpu")
def _multilevel_backward_cpu(x, decay, a, v_init, grad_output, grad_membrane, grad_v_last,
                             theta_p, theta_n, k_p, k_n, surrogate, smooth, detach_reset,
                             need_grad_decay=True, need_grad_a=True):
    """spikegrad::multilevel_backward's CPU kernel: each gradient's sums apart."""
    return _launch_multilevel_backward(
        _device.host_launch, x, decay, a, v_init, grad_output, grad_membrane, grad_v_last,
        theta_p, theta_n, k_p, k_n, surrogate, smooth, detach_reset, need_grad_decay,
        need_grad_a)


@multilevel_backward.register_kernel("cuda")
def _multilevel_backward_cuda(x, decay, a, v_init, grad_output, grad_membrane, grad_v_last,
                              theta_p, theta_n, k_p, k_n, surrogate, smooth, detach_reset,
                              need_grad_decay=True, need_grad_a=True):
    """spikegrad::multilevel_backward's CUDA kernel: the launcher makes both gradients' sums or
    neither (cuda.hpp)."""
    param_grads = need_grad_decay or need_grad_a
    return _launch_multilevel_backward(
        _device.cuda_launch, x, decay, a, v_init, grad_output, grad_membrane, grad_v_last,
        theta_p, theta_n, k_p, k_n, surrogate, smooth, detach_reset, param_grads, param_grads)


def _multilevel_setup_context(ctx, inputs, output):
    (x, decay, a, v_init, theta_p, theta_n, k_p, k_n, surrogate, smooth, detach_reset,
     return_membrane) = inputs
    ctx.save_for_backward(x, decay, a, v_init)
    ctx.options = dict(theta_p=theta_p, theta_n=theta_n, k_p=k_p, k_n=k_n,
                       surrogate=surrogate, smooth=smooth, detach_reset=detach_reset)
    ctx.set_materialize_grads(False)


def _multilevel_backward(ctx, grad_output, grad_membrane, grad_v_last):
    x, decay, a, v_init = ctx.saved_tensors
    if grad_membrane is not None and grad_membrane.numel() == 0:
        grad_membrane = None  # return_membrane=False: the [0] placeholder
    need_decay, need_a = ctx.needs_input_grad[1], ctx.needs_input_grad[2]
    grad_x, grad_v_init, grad_decay, grad_a = multilevel_backward(
        x, decay, a, v_init, grad_output, grad_membrane, grad_v_last, **ctx.options,
        need_grad_decay=need_decay, need_grad_a=need_a)
    return ((grad_x, parameter_gradient(grad_decay, decay, need_decay),
             parameter_gradient(grad_a, a, need_a), grad_v_init) + (None,) * 8)


torch.library.register_autograd("spikegrad::multilevel_forward", _multilevel_backward,
                                setup_context=_multilevel_setup_context)


def _check_int(name, value):
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value}")
    return value


def _check_magnitude(name, value):
    if isinstance(value, Tensor):
        raise TypeError(f"{name} must be a float (a fixed level magnitude), got a Tensor")
    value = check_number(name, value, positive=True)
    if math.isinf(value):
        raise ValueError(f"{name} must be finite, got {value}")
    return value


def multilevel(x: Tensor, *, decay=0.25, theta_p: float = 1.0, theta_n: float = 1.0,
               k_p: int = 2, k_n: int = 2, surrogate: str = "span", a=1.0,
               detach_reset: bool = False, v_init=None, smooth: bool = False,
               return_membrane: bool = False) -> NeuronOutput:
    """The multi-level circulate-firing neuron (docs/spec.md §6, the CF paper) over the T steps of x.

    Per step: h = decay * v + x[t]; n_p = #{k <= k_p: h > k theta_p},
    n_n = #{k <= k_n: h < -k theta_n}; output o = n_p - n_n (the signed spike count);
    v = h - n_p theta_p + n_n theta_n (the reset subtracts the emitted charge).

    Args:
        x: input current, [T, ...], float32 or float64.
        decay: the leak factor; float or 0-d tensor (differentiable).
        theta_p, theta_n: the positive level magnitudes (floats > 0); the negative levels
            sit at -k * theta_n.
        k_p, k_n: the numbers of positive and negative levels (ints >= 1).
        surrogate: "span" (Eq. 14, do/dh = a on (theta_p/2, (k_p + 1/2) theta_p) and on
            (-(k_n + 1/2) theta_n, -theta_n/2)) or "tsg" (Eqs. 15-16, one PLG triangle
            max(0, a (1 - a |d|)) per level).
        a: the span height (float, or a length-T tensor not requiring grad) or the TSG
            parameter (float or length-T tensor, differentiable by the straight-through
            primitive rule), > 0.
        detach_reset: the counts inside the reset carry no gradient.
        v_init: None (zeros), float, 0-d tensor or shaped like x[0] (differentiable).
        smooth: the counts become the primitives of the level surrogates (docs/cf.md).
        return_membrane: also return h (pre-reset), e.g. for spikegrad.pnb_loss.

    Returns:
        NeuronOutput(output, membrane, v_last); gradients may flow in through all three.
    """
    if not isinstance(x, Tensor):
        raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
    _check_x_dtype(x)
    if x.dim() < 1 or x.shape[0] == 0:
        raise ValueError(f"x must have a time axis with T >= 1 ([T, ...]), got shape "
                         f"{tuple(x.shape)}")
    if not isinstance(surrogate, str) or surrogate not in LEVEL_SURROGATES:
        raise ValueError(f"surrogate must be one of {', '.join(map(repr, LEVEL_SURROGATES))}; "
                         f"got {surrogate!r}")
    for name, flag in (("detach_reset", detach_reset), ("smooth", smooth),
                       ("return_membrane", return_membrane)):
        if not isinstance(flag, bool):
            raise TypeError(f"{name} must be a bool, got {type(flag).__name__}")
    theta_p = _check_magnitude("theta_p", theta_p)
    theta_n = _check_magnitude("theta_n", theta_n)
    k_p, k_n = _check_int("k_p", k_p), _check_int("k_n", k_n)
    if surrogate == "span" and isinstance(a, Tensor) and a.requires_grad:
        raise ValueError("a is learnable only with surrogate='tsg'; for 'span' it is the "
                         "fixed height of Eq. 14 (pass a float or a tensor without grad)")

    T = x.shape[0]
    neuron_shape = x.shape[1:]
    N = x[0].numel()
    decay_t = _parameter(decay, "decay", x, host=True)
    a_t = _parameter(a, "a", x, per_step=True, positive=True)
    v_init_t = _initial_membrane(v_init, x)

    output, membrane, v_last = multilevel_forward(
        x.reshape(T, N), decay_t, a_t.expand(T), v_init_t, theta_p, theta_n, k_p, k_n,
        surrogate, smooth, detach_reset, return_membrane)
    return NeuronOutput(
        output=output.reshape(x.shape),
        membrane=membrane.reshape(x.shape) if return_membrane else None,
        v_last=v_last.reshape(neuron_shape))


# ---------------------------------------------------------------------------------------
# The PNB loss: per-layer partial sums (kernel), then Eqs. 20-22 in float64.
# ---------------------------------------------------------------------------------------

@torch.library.custom_op("spikegrad::pnb_partial_sums", mutates_args=())
def pnb_partial_sums(h: Tensor, theta_p: float, theta_n: float, k: int) -> Tensor:
    """float64 [k, 2, 2]: [level-1, sign (0: R+, 1: R-), (sum w, sum h w)]. The default
    kernel, as multilevel_forward's."""
    _check_device(h)
    kernel = _pnb_partial_sums_cuda if h.is_cuda else _pnb_partial_sums_cpu
    return kernel(h, theta_p, theta_n, k)


@pnb_partial_sums.register_fake
def _(h, theta_p, theta_n, k):
    return h.new_empty((k, 2, 2), dtype=torch.float64)


def _launch_pnb_partial_sums(launch, h, theta_p, theta_n, k):
    """spikegrad::pnb_partial_sums on the module `launch` gives for h (CPU and CUDA)."""
    module, launch_keywords, device_context = launch(h)
    h = h.contiguous()
    sums = torch.empty((k, 2, 2), dtype=torch.float64, device=h.device)
    workspace = _workspace(module.pnb_workspace_bytes(h, k), h)
    with device_context:
        module.pnb_partial_sums(h, theta_p, theta_n, k, sums, workspace, **launch_keywords)
    return sums


@pnb_partial_sums.register_kernel("cpu")
def _pnb_partial_sums_cpu(h, theta_p, theta_n, k):
    return _launch_pnb_partial_sums(_device.host_launch, h, theta_p, theta_n, k)


@pnb_partial_sums.register_kernel("cuda")
def _pnb_partial_sums_cuda(h, theta_p, theta_n, k):
    return _launch_pnb_partial_sums(_device.cuda_launch, h, theta_p, theta_n, k)


@torch.library.custom_op("spikegrad::pnb_partial_sums_backward", mutates_args=())
def pnb_partial_sums_backward(h: Tensor, grad_sums: Tensor, theta_p: float, theta_n: float,
                              k: int) -> Tensor:
    """dL/dh from dL/d(sums): inside the region of level value c (k theta_p or
    -k theta_n), w = exp(-|c - h|), dw/dh = w sign(c - h), d(h w)/dh = w + h dw/dh.
    Elementwise, in float64, then cast to h's dtype. Region membership carries no gradient.
    The default kernel (CUDA's) is this arithmetic in torch; the CPU kernel is the C++ one
    (one pass over h)."""
    h64 = h.detach().to(torch.float64)
    grad = torch.zeros_like(h64)
    one = torch.ones((), dtype=h.dtype, device=h.device)
    tp, tn = one * theta_p, one * theta_n   # the bounds in h's precision, as the kernel
    for level_k in range(1, k + 1):
        top_p, bottom_p = tp * level_k, tp * (level_k - 1)
        top_n, bottom_n = -(tn * level_k), -(tn * (level_k - 1))
        masks = ((bottom_p < h) & (h <= top_p), (top_n <= h) & (h < bottom_n))   # Eqs. 18-19
        for sign, (mask, lvl) in enumerate(zip(masks, (top_p, top_n))):
            c = lvl.to(torch.float64)
            w = torch.exp(-(c - h64).abs())
            dw = w * torch.sign(c - h64)
            g = grad_sums[level_k - 1, sign, 0] * dw + grad_sums[level_k - 1, sign, 1] * (
                w + h64 * dw)
            grad = grad + torch.where(mask, g, torch.zeros_like(g))
    return grad.to(h.dtype)


@pnb_partial_sums_backward.register_fake
def _(h, grad_sums, theta_p, theta_n, k):
    return torch.empty_like(h)


@pnb_partial_sums_backward.register_kernel("cpu")
def _pnb_partial_sums_backward_cpu(h, grad_sums, theta_p, theta_n, k):
    h = h.contiguous()
    grad_h = torch.empty_like(h)
    _core.pnb_partial_sums_backward(h, theta_p, theta_n, k,
                                    grad_sums.to(torch.float64).contiguous(), grad_h)
    return grad_h


def _pnb_setup_context(ctx, inputs, output):
    h, theta_p, theta_n, k = inputs
    ctx.save_for_backward(h)
    ctx.options = (theta_p, theta_n, k)


def _pnb_backward(ctx, grad_sums):
    (h,) = ctx.saved_tensors
    return pnb_partial_sums_backward(h, grad_sums, *ctx.options), None, None, None


torch.library.register_autograd("spikegrad::pnb_partial_sums", _pnb_backward,
                                setup_context=_pnb_setup_context)


def _pnb_from_sums(sums: Tensor, eps: float) -> Tensor:
    """Eqs. 20-22 from [K, 2, 2] float64 sums."""
    mu_p = sums[:, 0, 1] / (sums[:, 0, 0] + eps)                        # Eq. 20
    mu_n = sums[:, 1, 1] / (sums[:, 1, 0] + eps)                        # Eq. 21
    return torch.log(mu_p.abs() / (mu_n.abs() + eps) + eps).abs().mean()  # Eq. 22


def pnb_loss(membranes: Union[Tensor, Sequence[Tensor]], *, theta_p: float = 1.0,
             theta_n: float = 1.0, k: int = 2, eps: float = 1e-8,
             pooled: bool = True) -> Tensor:
    """The positive-negative balanced loss (docs/spec.md §6, the CF paper's Eqs. 18-22).

    Args:
        membranes: the pre-reset membranes h of one CF layer (a tensor, any shape) or a
            list of them (one per layer), all of one dtype (float32 or float64).
        theta_p, theta_n: the level magnitudes (> 0); k: the number of levels per sign.
        eps: the epsilon of Eqs. 20-22 (>= 0).
        pooled: one set of regions over all layers (default), or the loss of each layer,
            then averaged.

    Returns:
        the 0-d loss in the membranes' dtype (computed in float64); exact gradients flow to
        every membrane. Empty regions follow the formula literally (docs/cf.md).
    """
    layers = [membranes] if isinstance(membranes, Tensor) else membranes
    if not isinstance(layers, (list, tuple)) or len(layers) == 0:
        raise TypeError("membranes must be a tensor or a non-empty list of tensors")
    for i, h in enumerate(layers):
        if not isinstance(h, Tensor):
            raise TypeError(f"membranes[{i}] must be a torch.Tensor, got {type(h).__name__}")
        if h.dtype not in (torch.float32, torch.float64):
            raise TypeError(f"membranes[{i}] must be float32 or float64, got {h.dtype}")
        if h.dtype != layers[0].dtype:
            raise TypeError(f"membranes[{i}] has dtype {h.dtype} but membranes[0] has "
                            f"{layers[0].dtype}")
    theta_p = _check_magnitude("theta_p", theta_p)
    theta_n = _check_magnitude("theta_n", theta_n)
    k = _check_int("k", k)
    eps = check_number("eps", eps)
    if eps < 0 or math.isinf(eps):
        raise ValueError(f"eps must be finite and >= 0, got {eps}")
    if not isinstance(pooled, bool):
        raise TypeError(f"pooled must be a bool, got {type(pooled).__name__}")

    sums = [pnb_partial_sums(h.contiguous(), theta_p, theta_n, k) for h in layers]
    if pooled:
        total = sums[0]
        for s in sums[1:]:
            total = total + s
        loss = _pnb_from_sums(total, eps)
    else:
        loss = torch.stack([_pnb_from_sums(s, eps) for s in sums]).mean()
    return loss.to(layers[0].dtype)
