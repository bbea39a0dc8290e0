"""The CUDA launch plumbing every op family shares (docs/cuda.md).

The families' CUDA kernels (neuron_ops, multilevel_ops, adaptive_ops, each next to its CPU
kernel) call the extension module `spikegrad._cuda` with device pointers
(`tensor.data_ptr()`) and the current stream (`torch.cuda.current_stream().cuda_stream`),
both integers: the module is not built against PyTorch and never links libcudart
dynamically. Nothing here touches CUDA until a CUDA tensor reaches an op: `import spikegrad`
and the CPU ops work without a GPU and without the module.

dtypes: float32 and float64; float16 and bfloat16 x with float32 state (parameters, v_init
and their gradients in float32; output, membrane, v_last and grad_x in x's dtype).
"""

from __future__ import annotations

import contextlib

import torch
from torch import Tensor

__all__ = ["cuda_module", "state_dtype", "HALF_DTYPES"]

HALF_DTYPES = (torch.float16, torch.bfloat16)
_DTYPE_NAMES = {torch.float32: "float32", torch.float64: "float64",
                torch.float16: "float16", torch.bfloat16: "bfloat16"}


def cuda_module():
    """spikegrad._cuda, or NotImplementedError saying why it is missing."""
    try:
        from . import _cuda
    except ImportError as error:
        raise NotImplementedError(
            "spikegrad has no CUDA kernels in this installation: it was built without a CUDA "
            "compiler (nvcc), so the module spikegrad._cuda is missing. Reinstall with nvcc on "
            "PATH (pip install --no-build-isolation .; see docs/cuda.md), or move the tensors "
            "to the CPU.") from error
    return _cuda


def state_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype of the state and the parameters for x of `dtype`."""
    return torch.float32 if dtype in HALF_DTYPES else dtype


def _ptr(t):
    return 0 if t is None else t.data_ptr()


_raw_stream = getattr(torch._C, "_cuda_getCurrentRawStream", None)
_NO_GUARD = contextlib.nullcontext()


def _stream(x: Tensor) -> int:
    """The current stream of x's device as an integer (a cudaStream_t)."""
    if _raw_stream is not None:   # what torch.compile's generated code calls: no Stream object
        return _raw_stream(x.device.index)
    return torch.cuda.current_stream(x.device).cuda_stream


def _device_guard(x: Tensor):
    """x's device made current for a launch; nothing to do when it is already current (a few
    microseconds saved per call)."""
    if x.device.index == torch.cuda.current_device():
        return _NO_GUARD
    return torch.cuda.device(x.device)


def _contiguous(t, name, x: Tensor, dtype=None):
    """t (or None) as a contiguous tensor on x's device, checked against `dtype`."""
    if t is None:
        return None
    if t.device != x.device:
        raise ValueError(f"{name} is on {t.device} but x is on {x.device}")
    if dtype is not None and t.dtype != dtype:
        raise TypeError(f"{name} has dtype {t.dtype}, expected {dtype} (x is {x.dtype})")
    return t.contiguous()


def _upstream(x: Tensor, grad_output, grad_membrane, grad_v_last):
    """A backward's three upstream gradients (each may be None), contiguous, in x's dtype."""
    return tuple(_contiguous(g, name, x, x.dtype) for g, name in (
        (grad_output, "grad_output"), (grad_membrane, "grad_membrane"),
        (grad_v_last, "grad_v_last")))


def _forward_outputs(x: Tensor, return_membrane: bool):
    """A forward's output [T, N], membrane ([T, N], or an empty tensor when not wanted) and
    v_last [N], in x's dtype."""
    T, N = x.shape
    like = dict(dtype=x.dtype, device=x.device)
    return (torch.empty((T, N), **like), torch.empty((T, N) if return_membrane else (0,), **like),
            torch.empty((N,), **like))


def _workspace(num_bytes: int, x: Tensor) -> Tensor:
    # torch's caching allocator aligns blocks to 512 bytes (the kernels need 8)
    return torch.empty((max(int(num_bytes), 8),), dtype=torch.uint8, device=x.device)


def _like(grad: Tensor, parameter: Tensor) -> Tensor:
    """A float64 parameter gradient (a tensor of its own) in the parameter's dtype, on x's
    device: never copied to a CPU parameter's device here (that would synchronize the
    stream); the autograd formula moves it where a parameter needs it (parameter_gradient)."""
    return grad.to(dtype=parameter.dtype)


def _decay(decay: Tensor, x: Tensor):
    """The 0-d decay as the launchers take it: (value, device pointer). A decay on the CPU (a
    fixed number: _parameter makes it there) is read on the host; a decay on x's device (a
    learnable one, computed there) is read by the kernels from its address, since reading it
    on the host would synchronize the stream."""
    if decay.device.type == "cpu":
        return float(decay), 0
    decay = _contiguous(decay, "decay", x, state_dtype(x.dtype))
    return 0.0, decay.data_ptr()


def _dtype_name(x: Tensor) -> str:
    try:
        return _DTYPE_NAMES[x.dtype]
    except KeyError:
        raise TypeError(f"x must be float32, float64, float16 or bfloat16, got {x.dtype}") from None
