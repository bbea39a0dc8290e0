"""The torch autograd op `spikegrad.neuron`, registered with `torch.library`.

    neuron(x) -> user-facing checks -> spikegrad::neuron_forward   (custom_op)
    backward  ->                       spikegrad::neuron_backward  (custom_op)

Each op stands with its fake (meta), CPU and CUDA kernels side by side. The fake kernels
make `torch.compile(fullgraph=True)` trace `neuron`
without graph breaks. so `torch.compile(fullgraph=True)` traces `neuron`
without graph breaks. Checks on shapes, dtypes and options happen in Python before the op;
checks on parameter *values* (threshold <= 0, sg_param <= 0, NaN) happen inside the kernel,
which raises ValueError, so that tracing never branches on data.

The backward recomputes the membrane from x (only x and the small parameters are saved).
Double backward is not supported.
"""

from __future__ import annotations

import math
from typing import Optional

import torch

from torch import Tensor

from .._options import DEFAULT_SG_PARAM, check_number, check_options
from . import _device
from ._buffers import (NeuronOutput, _check_device, _check_x_dtype, _initial_membrane,
                       _parameter, parameter_gradient)
from ._device import (_contiguous, _decay, _forward_outputs, _gradient_sums, _like, _upstream,
                      _workspace, state_dtype)

__all__ = ["neuron", "NeuronOutput", "neuron_forward", "neuron_backward"]


# ---------------------------------------------------------------------------------------
# The ops: x [T, N]; decay 0-d; threshold, sg_param [T]; v_init [N] or None (zeros: the kernel
# starts from 0 without reading an [N] array); all of x's dtype (float16 and bfloat16 x on
# CUDA: float32 parameters and state).
# ---------------------------------------------------------------------------------------

@torch.library.custom_op("spikegrad::neuron_forward", mutates_args=())
def neuron_forward(x: Tensor, decay: Tensor, threshold: Tensor, sg_param: Tensor,
                   v_init: Optional[Tensor], v_reset: float, charge: str, reset: str, scale: str,
                   surrogate: str, smooth: bool, detach_reset: bool,
                   return_membrane: bool) -> tuple[Tensor, Tensor, Tensor]:
    """Returns (output [T, N], membrane [T, N] or [0], v_last [N]). The default kernel: a
    device without a kernel of its own is refused by name (CPU and CUDA have theirs below)."""
    _check_device(x)
    return _forward_kernel(x, decay, threshold, sg_param, v_init, v_reset, charge, reset,
                           scale, surrogate, smooth, detach_reset, return_membrane)


@neuron_forward.register_fake
def _(x, decay, threshold, sg_param, v_init, v_reset, charge, reset, scale, surrogate,
      smooth, detach_reset, return_membrane):
    T, N = x.shape
    membrane = x.new_empty((T, N) if return_membrane else (0,))
    return x.new_empty((T, N)), membrane, x.new_empty((N,))


def _launch_forward(launch, x, decay, threshold, sg_param, v_init, v_reset, charge, reset,
                    scale, surrogate, smooth, detach_reset, return_membrane):
    """spikegrad::neuron_forward on the module `launch` gives for x (_device.host_launch,
    _device.cuda_launch): the CPU and CUDA kernels are this one body."""
    del detach_reset  # only the backward uses it
    module, launch_keywords, device_context = launch(x)
    x = x.contiguous()
    output, membrane, v_last = _forward_outputs(x, return_membrane)
    with device_context:
        module.neuron_forward(
            _decay(decay, x), v_reset, _contiguous(threshold), _contiguous(sg_param),
            _contiguous(v_init), x, output, membrane if return_membrane else None, v_last,
            charge=charge, reset=reset, scale=scale, surrogate=surrogate, smooth=smooth,
            **launch_keywords)
    return output, membrane, v_last


@neuron_forward.register_kernel("cpu")
def _neuron_forward_cpu(*args):
    """spikegrad::neuron_forward's CPU kernel."""
    return _launch_forward(_device.host_launch, *args)


@neuron_forward.register_kernel("cuda")
def _neuron_forward_cuda(*args):
    """spikegrad::neuron_forward's CUDA kernel."""
    return _launch_forward(_device.cuda_launch, *args)


@torch.library.custom_op("spikegrad::neuron_backward", mutates_args=())
def neuron_backward(x: Tensor, decay: Tensor, threshold: Tensor, sg_param: Tensor,
                    v_init: Optional[Tensor], grad_output: Optional[Tensor],
                    grad_membrane: Optional[Tensor], grad_v_last: Optional[Tensor],
                    v_reset: float, charge: str, reset: str, scale: str, surrogate: str,
                    smooth: bool, detach_reset: bool, param_grads: bool = True
                    ) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Returns (grad_x [T, N], grad_v_init [N], grad_decay 0-d, grad_threshold [T],
    grad_sg_param [T]), the parameter gradients accumulated in float64, then cast to the
    parameters' dtypes, on x's device.
    param_grads=False: the kernel skips the parameter sums and the last three are zeros.
    The default kernel, as neuron_forward's."""
    _check_device(x)
    return _backward_kernel(x, decay, threshold, sg_param, v_init, grad_output,
                            grad_membrane, grad_v_last, v_reset, charge, reset, scale,
                            surrogate, smooth, detach_reset, param_grads)


@neuron_backward.register_fake
def _(x, decay, threshold, sg_param, v_init, grad_output, grad_membrane, grad_v_last,
      v_reset, charge, reset, scale, surrogate, smooth, detach_reset, param_grads=True):
    T, N = x.shape
    # the parameter gradients on x's device (a fixed decay may be a CPU scalar beside CUDA x)
    return (x.new_empty((T, N)), x.new_empty((N,), dtype=state_dtype(x.dtype)),
            x.new_empty((), dtype=decay.dtype), x.new_empty((T,), dtype=threshold.dtype),
            x.new_empty((T,), dtype=sg_param.dtype))


def _launch_backward(launch, x, decay, threshold, sg_param, v_init, grad_output, grad_membrane,
                     grad_v_last, v_reset, charge, reset, scale, surrogate, smooth, detach_reset,
                     param_grads=True):
    """spikegrad::neuron_backward on the module `launch` gives for x, as _launch_forward.
    v_init None: the kernel starts from zeros. param_grads=False: the kernel makes no parameter
    sums (no gradient buffers) and the three parameter gradients are zeros."""
    module, launch_keywords, device_context = launch(x)
    x = x.contiguous()
    T, N = x.shape
    grad_x = torch.empty((T, N), dtype=x.dtype, device=x.device)
    grad_v_init = torch.empty((N,), dtype=state_dtype(x.dtype), device=x.device)
    # decay, theta[T], p[T] in float64
    grads = _gradient_sums(x, ((), (T,), (T,))) if param_grads else [None] * 3
    workspace = _workspace(module.neuron_backward_workspace_bytes(x), x)
    with device_context:
        module.neuron_backward(
            _decay(decay, x), v_reset, _contiguous(threshold), _contiguous(sg_param),
            _contiguous(v_init), x, *_upstream(grad_output, grad_membrane, grad_v_last), grad_x,
            grad_v_init, *grads, workspace, charge=charge, reset=reset, scale=scale,
            surrogate=surrogate, smooth=smooth, detach_reset=detach_reset, **launch_keywords)
    if not param_grads:
        return (grad_x, grad_v_init, x.new_zeros((), dtype=decay.dtype),
                x.new_zeros((T,), dtype=threshold.dtype), x.new_zeros((T,), dtype=sg_param.dtype))
    return (grad_x, grad_v_init, _like(grads[0], decay), _like(grads[1], threshold),
            _like(grads[2], sg_param))


@neuron_backward.register_kernel("cpu")
def _neuron_backward_cpu(*args, **kwargs):
    """spikegrad::neuron_backward's CPU kernel."""
    return _launch_backward(_device.host_launch, *args, **kwargs)


@neuron_backward.register_kernel("cuda")
def _neuron_backward_cuda(*args, **kwargs):
    """spikegrad::neuron_backward's CUDA kernel."""
    return _launch_backward(_device.cuda_launch, *args, **kwargs)


# ---------------------------------------------------------------------------------------
# Autograd: the backward recomputes the membrane from x and the saved parameters
# ---------------------------------------------------------------------------------------

def _setup_context(ctx, inputs, output):
    (x, decay, threshold, sg_param, v_init, v_reset, charge, reset, scale, surrogate,
     smooth, detach_reset, return_membrane) = inputs
    ctx.save_for_backward(x, decay, threshold, sg_param, v_init)
    ctx.options = dict(v_reset=v_reset, charge=charge, reset=reset, scale=scale,
                       surrogate=surrogate, smooth=smooth, detach_reset=detach_reset)
    ctx.set_materialize_grads(False)


def _backward(ctx, grad_output, grad_membrane, grad_v_last, backward_op=None):
    x, decay, threshold, sg_param, v_init = ctx.saved_tensors
    if grad_membrane is not None and grad_membrane.numel() == 0:
        grad_membrane = None  # return_membrane=False: the [0] placeholder
    # the parameters' float64 sums only when one of decay, threshold, sg_param needs them
    param_grads = any(ctx.needs_input_grad[1:4])
    grad_x, grad_v_init, grad_decay, grad_threshold, grad_sg_param = (
        backward_op or neuron_backward)(
        x, decay, threshold, sg_param, v_init, grad_output, grad_membrane, grad_v_last,
        **ctx.options, param_grads=param_grads)
    grad_decay, grad_threshold, grad_sg_param = (
        parameter_gradient(grad, parameter, needed) for grad, parameter, needed in zip(
            (grad_decay, grad_threshold, grad_sg_param), (decay, threshold, sg_param),
            ctx.needs_input_grad[1:4]))
    if v_init is None:
        grad_v_init = None
    return (grad_x, grad_decay, grad_threshold, grad_sg_param, grad_v_init,
            None, None, None, None, None, None, None, None)


torch.library.register_autograd("spikegrad::neuron_forward", _backward,
                                setup_context=_setup_context)


# ---------------------------------------------------------------------------------------
# The eager path. torch.library's autograd wrapper and the dispatcher cost tens of
# microseconds of Python per call, which is most of a call's time at small sizes on a GPU
# (N = 2^16: 0.25 ms for a forward whose kernel takes 4 us). In eager mode spikegrad.neuron
# runs the very same kernels and autograd formula (_setup_context, _backward) through a plain
# torch.autograd.Function; under torch.compile and functorch transforms (vmap, grad) it calls
# the registered ops, which those need. Tests hold the two paths to the same bits.
# ---------------------------------------------------------------------------------------

def _forward_kernel(x, *args):
    """spikegrad::neuron_forward's kernel for x's device, called directly."""
    return (_neuron_forward_cuda if x.is_cuda else _neuron_forward_cpu)(x, *args)


def _backward_kernel(x, *args, **kwargs):
    """spikegrad::neuron_backward's kernel for x's device, called directly."""
    return (_neuron_backward_cuda if x.is_cuda else _neuron_backward_cpu)(x, *args, **kwargs)


class _NeuronFunction(torch.autograd.Function):
    # forward(ctx, ...) rather than a setup_context staticmethod: with one, Function.apply
    # binds the arguments through inspect.signature on every call (~20 us); this path never
    # runs under functorch transforms, which are what need setup_context
    @staticmethod
    def forward(ctx, x, *args):
        outputs = _forward_kernel(x, *args)
        _setup_context(ctx, (x,) + args, outputs)
        return outputs

    @staticmethod
    def backward(ctx, grad_output, grad_membrane, grad_v_last):
        return _backward(ctx, grad_output, grad_membrane, grad_v_last,
                         backward_op=_backward_kernel)


_functorch_active = getattr(torch._C, "_are_functorch_transforms_active", None)


def _eager(x: Tensor) -> bool:
    """Whether the eager path may run: a CPU or CUDA tensor, no tracing, no transform."""
    if x.device.type not in ("cpu", "cuda") or torch.compiler.is_compiling():
        return False
    return _functorch_active is not None and not _functorch_active()


def _run_neuron_forward(*args):
    """neuron_forward with autograd: the eager path or the registered op."""
    return _NeuronFunction.apply(*args) if _eager(args[0]) else neuron_forward(*args)


# ---------------------------------------------------------------------------------------
# The public function: every user-facing check, then the op.
# ---------------------------------------------------------------------------------------

def neuron(x: Tensor, *, charge: str = "mul", decay=0.2, threshold=1.0, reset: str = "hard",
           v_reset: float = 0.0, detach_reset: bool = False, scale: str = "absolute",
           surrogate: str = "rect", sg_param=None, v_init=None, smooth: bool = False,
           return_membrane: bool = False) -> NeuronOutput:
    """Run a layer of spiking neurons over the T steps of `x` ([T, ...]), docs/spec.md 1-5.

    Per step: charge h[t] from v[t-1] and x[t]; fire s[t] = H(z) (or the surrogate's
    primitive in `smooth` mode); output o[t]; reset v[t]. The backward replaces dH/dz by
    the surrogate derivative f'(z; sg_param).

    Args:
        x: input current, [T, ...], float32 or float64.
        charge: "mul" (h = decay * v + x), "decay_input", "no_decay_input" or "if".
        decay: the leak factor lam; float or 0-d tensor (differentiable).
        threshold: float, 0-d tensor or length-T tensor (differentiable).
        reset: "hard" (to v_reset), "soft" (subtract the threshold) or "none".
        v_reset: the hard-reset value (and the rest potential of the decay charges).
        detach_reset: treat the spike inside the reset as a constant in the backward.
        scale: "absolute" (z = h - theta), "relative" (z = h / theta - 1) or
            "threshold_robust" (relative, with output theta * s: TrSG).
        surrogate: "rect", "triangle", "sigmoid" or "atan".
        sg_param: the surrogate's width or sharpness; float or length-T tensor
            (differentiable). Default: rect 1, triangle 1, sigmoid 4, atan 2.
        v_init: the membrane before the first step: None (zeros), a float, a 0-d tensor or
            a tensor shaped like x[0] (differentiable).
        smooth: use the surrogate primitive in the forward (a differentiable neuron).
        return_membrane: also return h[t] (pre-reset), e.g. for a membrane loss.

    Returns:
        NeuronOutput(output, membrane, v_last); gradients may flow in through all three.

    Inputs that are NaN or infinite inside `x` follow IEEE arithmetic (H(NaN) = 0).
    """
    if not isinstance(x, Tensor):
        raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
    _check_x_dtype(x)
    if x.dim() < 1 or x.shape[0] == 0:
        raise ValueError(f"x must have a time axis with T >= 1 ([T, ...]), got shape "
                         f"{tuple(x.shape)}")
    check_options(charge=charge, reset=reset, scale=scale, surrogate=surrogate,
                  detach_reset=detach_reset, smooth=smooth, return_membrane=return_membrane)
    v_reset = check_number("v_reset", v_reset)
    if sg_param is None:
        sg_param = DEFAULT_SG_PARAM[surrogate]

    T = x.shape[0]
    neuron_shape = x.shape[1:]
    N = x[0].numel()
    decay_t = _parameter(decay, "decay", x, host=True)
    threshold_t = _parameter(threshold, "threshold", x, per_step=True, scale=scale)
    sg_param_t = _parameter(sg_param, "sg_param", x, per_step=True, positive=True)
    # None stays None: the kernel starts from zeros without an [N] array to read; so does the
    # number +0.0 (the same state; a number has no gradient to return)
    starts_at_zero = v_init is None or (
        isinstance(v_init, (int, float)) and not isinstance(v_init, bool)
        and v_init == 0 and math.copysign(1.0, v_init) > 0)
    v_init_t = None if starts_at_zero else _initial_membrane(v_init, x)

    output, membrane, v_last = _run_neuron_forward(
        x.reshape(T, N), decay_t, threshold_t.expand(T), sg_param_t.expand(T), v_init_t,
        v_reset, charge, reset, scale, surrogate, smooth, detach_reset, return_membrane)
    return NeuronOutput(
        output=output.reshape(x.shape),
        membrane=membrane.reshape(x.shape) if return_membrane else None,
        v_last=v_last.reshape(neuron_shape))
