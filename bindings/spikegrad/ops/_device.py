"""The launch plumbing every op family shares (docs/cuda.md), for the CPU and the CUDA kernels.

The families' kernels (neuron_ops, multilevel_ops, adaptive_ops) call `spikegrad._core` (CPU)
and `spikegrad._cuda` (CUDA) in one calling convention: the tensors themselves as buffers, in
the order of the C++ entry point; outputs and workspaces made here; the CUDA module also takes
the current stream (`stream=`, an integer cudaStream_t). The modules check every buffer
(bindings/buffers.hpp); this module only converts (a contiguous copy, a CPU decay as a number
beside CUDA x). `host_launch` and `cuda_launch` give the module, its launch keywords and the
device context for x. Nothing here touches CUDA until a CUDA tensor reaches an op: `import
spikegrad` and the CPU ops work without a GPU and without the CUDA module, which is not built
against PyTorch and never links libcudart dynamically.

dtypes: float32 and float64; on CUDA also float16 and bfloat16 x with float32 state
(parameters, v_init and their gradients in float32; output, membrane, v_last and grad_x in x's
dtype).
"""

from __future__ import annotations

import contextlib

import torch
from torch import Tensor

from .. import _core

__all__ = ["cuda_module", "state_dtype", "HALF_DTYPES", "host_launch", "cuda_launch"]

HALF_DTYPES = (torch.float16, torch.bfloat16)


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


def host_launch(x: Tensor):
    """(module, launch keywords, context) of the CPU kernels."""
    return _core, {}, _NO_GUARD


def cuda_launch(x: Tensor):
    """(module, launch keywords, context) of the CUDA kernels on x's device and stream."""
    return cuda_module(), {"stream": _stream(x)}, _device_guard(x)


def _contiguous(t):
    """t (or None) as a contiguous tensor (a per-step parameter may be an expanded 0-d one)."""
    return None if t is None else t.contiguous()


def _upstream(grad_output, grad_membrane, grad_v_last):
    """A backward's three upstream gradients (each may be None), contiguous."""
    return _contiguous(grad_output), _contiguous(grad_membrane), _contiguous(grad_v_last)


def _forward_outputs(x: Tensor, return_membrane: bool):
    """A forward's output [T, N], membrane ([T, N], or an empty tensor when not wanted) and
    v_last [N], in x's dtype."""
    T, N = x.shape
    like = dict(dtype=x.dtype, device=x.device)
    return (torch.empty((T, N), **like), torch.empty((T, N) if return_membrane else (0,), **like),
            torch.empty((N,), **like))


def _gradient_sums(x: Tensor, shapes):
    """The float64 parameter gradients the kernels write, one tensor each (custom-op outputs
    must not alias), on x's device."""
    return [torch.empty(shape, dtype=torch.float64, device=x.device) for shape in shapes]


def _workspace(num_bytes: int, x: Tensor) -> Tensor:
    # torch's allocators align blocks to 64 bytes (CPU) and 512 bytes (CUDA); the kernels need 8
    return torch.empty((max(int(num_bytes), 8),), dtype=torch.uint8, device=x.device)


def _like(grad: Tensor, parameter: Tensor) -> Tensor:
    """A float64 parameter gradient (a tensor of its own) in the parameter's dtype, on x's
    device: never copied to a CPU parameter's device here (that would synchronize the
    stream); the autograd formula moves it where a parameter needs it (parameter_gradient)."""
    return grad.to(dtype=parameter.dtype)


def _decay(decay: Tensor, x: Tensor):
    """The 0-d decay as the modules take it: on x's device, the tensor itself (a learnable decay
    on the GPU is read by the kernels from its address: reading it on the host would synchronize
    the stream); a CPU decay beside CUDA x (a fixed number: _parameter makes it there), its
    value."""
    if decay.device == x.device:
        return decay
    return float(decay)
