"""The tensor plumbing the op families share: the boundary checks of the public functions
(x's dtype, parameters as tensors of x's dtype and device), the default kernel's device check,
and the parameter gradients handed to autograd.

The public functions (spikegrad.neuron, spikegrad.multilevel, spikegrad.pnb_loss) check the
user's arguments here, once; the buffers the ops hand to the compiled modules are checked there
(bindings/buffers.hpp: dtype, shape, order, device, overlap), not again in Python.
"""

from __future__ import annotations

from typing import NamedTuple, Optional

import torch
from torch import Tensor

from .._options import check_number
from ._device import HALF_DTYPES, state_dtype

__all__ = ["NeuronOutput", "parameter_gradient"]


class NeuronOutput(NamedTuple):
    output: Tensor               # o[t], shaped like x
    membrane: Optional[Tensor]   # h[t] (pre-reset), shaped like x; None unless asked for
    v_last: Tensor               # v[T-1], shaped like x[0]


# ---------------------------------------------------------------------------------------
# The ops' devices and their gradients
# ---------------------------------------------------------------------------------------

def _check_device(x: Tensor):
    """The default kernel of the neuron and multilevel ops: a device with no kernel of its own
    (CPU and CUDA have theirs) is refused by name."""
    if x.device.type not in ("cpu", "cuda"):
        raise NotImplementedError(
            f"spikegrad.neuron has no kernel for device {x.device.type!r}; "
            "CPU and CUDA tensors are supported")


def parameter_gradient(grad: Tensor, parameter: Tensor, needed: bool):
    """A backward op's parameter gradient (on x's device) for autograd: None when the
    parameter needs none; moved to the parameter's device where that differs (a CPU scalar
    beside CUDA x; the public API never makes one that requires grad, since a copy to the host
    synchronizes the stream)."""
    if not needed:
        return None
    return grad if grad.device == parameter.device else grad.to(parameter.device)


# ---------------------------------------------------------------------------------------
# The boundary: the public functions' checks, and their arguments as the ops take them
# ---------------------------------------------------------------------------------------

def _parameter(value, name, x, *, per_step=False, scale=None, positive=False, host=False):
    """A float or tensor parameter as a tensor of x's dtype and device: 0-d, or [T] where
    per_step allows it. host: a number becomes a CPU scalar (the decay, which the CUDA
    launchers read on the host without a copy from the device, which would synchronize)."""
    T = x.shape[0]
    if isinstance(value, Tensor):
        value = _check_tensor(value, name, x)   # float16/bfloat16 x: cast to float32
        if value.dim() == 0:
            return value
        if per_step and value.shape == (T,):
            return value
        allowed = "a float, a 0-d tensor or a length-T tensor" if per_step else \
            "a float or a 0-d tensor"
        raise ValueError(f"{name} must be {allowed} (T = {T}), got shape "
                         f"{tuple(value.shape)}")
    number = check_number(name, value, scale=scale, positive=positive)
    if host:
        return torch.tensor(number, dtype=state_dtype(x.dtype))
    # torch.full launches a fill on x's device; torch.tensor(number, device=...) would copy
    # from the host and synchronize the stream. Per-step parameters come out [T] and
    # contiguous, as the kernels read them (no second copy from an expanded view).
    return torch.full((T,) if per_step else (), number, dtype=state_dtype(x.dtype),
                      device=x.device)


def _initial_membrane(v_init, x: Tensor) -> Tensor:
    """v_init (None, float, 0-d tensor or shaped like x[0]) as the ops take it: [N]."""
    N = x[0].numel()
    if v_init is None:
        return x.new_zeros((N,), dtype=state_dtype(x.dtype))
    if isinstance(v_init, Tensor) and v_init.dim() > 0:
        if v_init.shape != x.shape[1:]:
            raise ValueError(f"v_init must be a float, a 0-d tensor or shaped like x[0] "
                             f"{tuple(x.shape[1:])}, got shape {tuple(v_init.shape)}")
        return _check_tensor(v_init, "v_init", x).reshape(N)
    if isinstance(v_init, Tensor):
        return _parameter(v_init, "v_init", x).expand(N)
    number = check_number("v_init", v_init)
    return torch.full((N,), number, dtype=state_dtype(x.dtype), device=x.device)


def _check_x_dtype(x: Tensor):
    """float32 or float64; float16 and bfloat16 on CUDA only (with float32 state)."""
    if x.dtype in (torch.float32, torch.float64):
        return
    if x.dtype in HALF_DTYPES:
        if x.device.type == "cuda":
            return
        raise TypeError(f"x has dtype {x.dtype} on {x.device.type}: float16 and bfloat16 "
                        f"are supported on CUDA only; use float32 or float64 on the CPU")
    raise TypeError(f"x must be float32 or float64 (or float16/bfloat16 on CUDA), "
                    f"got {x.dtype}")


def _check_tensor(value: Tensor, name: str, x: Tensor) -> Tensor:
    """A tensor argument must match x in dtype (no silent casts) and device. For float16
    and bfloat16 x it may also be float32 (the state dtype), and is cast to it."""
    if not value.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got {value.dtype}")
    if value.dtype not in (x.dtype, state_dtype(x.dtype)):
        raise TypeError(f"{name} has dtype {value.dtype} but x has {x.dtype}; "
                        f"cast one of them so that they match")
    if value.device != x.device:
        raise ValueError(f"{name} is on {value.device} but x is on {x.device}")
    return value.to(state_dtype(x.dtype))
