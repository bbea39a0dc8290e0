"""The CUDA kernels of spikegrad's torch ops (docs/cuda.md).

Each op of ops.py, multilevel_ops.py and adaptive_ops.py registers, next to its CPU kernel,
a CUDA kernel from here (`op.register_kernel("cuda")`). They call the extension module
`spikegrad._cuda` with device pointers (`tensor.data_ptr()`) and the current stream
(`torch.cuda.current_stream().cuda_stream`), both integers: the module is not built against
PyTorch and never links libcudart dynamically. Nothing here touches CUDA until a CUDA tensor
reaches an op: `import spikegrad` and the CPU ops work without a GPU and without the module.

dtypes: float32 and float64; float16 and bfloat16 x with float32 state (parameters, v_init
and their gradients in float32; output, membrane, v_last and grad_x in x's dtype).
"""

from __future__ import annotations

import contextlib

import torch
from torch import Tensor

__all__ = ["cuda_module", "register_neuron_kernels", "register_multilevel_kernels",
           "register_adaptive_kernel", "HALF_DTYPES"]

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
    stream); the autograd formula moves it where a parameter needs it (ops.parameter_gradient)."""
    return grad.to(dtype=parameter.dtype)


def _decay(decay: Tensor, x: Tensor):
    """The 0-d decay as the launchers take it: (value, device pointer). A decay on the CPU (a
    fixed number: ops.py makes it there) is read on the host; a decay on x's device (a
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


# ---------------------------------------------------------------------------------------
# spikegrad::neuron_forward / neuron_backward
# ---------------------------------------------------------------------------------------

def _neuron_forward_cuda(x, decay, threshold, sg_param, v_init, v_reset, charge, reset, scale,
                         surrogate, smooth, detach_reset, return_membrane):
    cuda = cuda_module()
    state = state_dtype(x.dtype)
    x = x.contiguous()
    threshold = _contiguous(threshold, "threshold", x, state)
    sg_param = _contiguous(sg_param, "sg_param", x, state)
    v_init = _contiguous(v_init, "v_init", x, state)
    decay_value, decay_device = _decay(decay, x)
    T, N = x.shape
    output, membrane, v_last = _forward_outputs(x, return_membrane)
    with _device_guard(x):
        cuda.neuron_forward(
            _dtype_name(x), T, N, decay_value, float(v_reset), _ptr(threshold), _ptr(sg_param),
            _ptr(v_init), _ptr(x), _ptr(output), _ptr(membrane) if return_membrane else 0,
            _ptr(v_last), charge=charge, reset=reset, scale=scale, surrogate=surrogate,
            smooth=smooth, decay_device=decay_device, stream=_stream(x))
    return output, membrane, v_last


def _neuron_backward_cuda(x, decay, threshold, sg_param, v_init, grad_output, grad_membrane,
                          grad_v_last, v_reset, charge, reset, scale, surrogate, smooth,
                          detach_reset, param_grads=True):
    # v_init None: the kernel starts from zeros. param_grads=False: the kernel makes no
    # parameter sums (null pointers) and the three parameter gradients are zeros, as on the CPU.
    cuda = cuda_module()
    state = state_dtype(x.dtype)
    x = x.contiguous()
    threshold = _contiguous(threshold, "threshold", x, state)
    sg_param = _contiguous(sg_param, "sg_param", x, state)
    v_init = _contiguous(v_init, "v_init", x, state)
    grad_output, grad_membrane, grad_v_last = _upstream(x, grad_output, grad_membrane,
                                                        grad_v_last)
    decay_value, decay_device = _decay(decay, x)
    T, N = x.shape
    name = _dtype_name(x)
    grad_x = torch.empty((T, N), dtype=x.dtype, device=x.device)
    grad_v_init = torch.empty((N,), dtype=state, device=x.device)
    # decay, theta[T], p[T] in float64; each its own tensor (custom-op outputs must not alias)
    grads = [torch.empty(shape, dtype=torch.float64, device=x.device)
             for shape in ((), (T,), (T,))] if param_grads else [None] * 3
    workspace = _workspace(cuda.neuron_backward_workspace_bytes(name, T, N), x)
    with _device_guard(x):
        cuda.neuron_backward(
            name, T, N, decay_value, float(v_reset), _ptr(threshold), _ptr(sg_param),
            _ptr(v_init), _ptr(x), _ptr(grad_output), _ptr(grad_membrane), _ptr(grad_v_last),
            _ptr(grad_x), _ptr(grad_v_init), *map(_ptr, grads),
            _ptr(workspace), charge=charge, reset=reset, scale=scale, surrogate=surrogate,
            smooth=smooth, detach_reset=detach_reset, decay_device=decay_device,
            stream=_stream(x))
    if not param_grads:
        return (grad_x, grad_v_init, x.new_zeros((), dtype=decay.dtype),
                x.new_zeros((T,), dtype=threshold.dtype), x.new_zeros((T,), dtype=sg_param.dtype))
    return (grad_x, grad_v_init, _like(grads[0], decay), _like(grads[1], threshold),
            _like(grads[2], sg_param))


def register_neuron_kernels(neuron_forward, neuron_backward):
    neuron_forward.register_kernel("cuda")(_neuron_forward_cuda)
    neuron_backward.register_kernel("cuda")(_neuron_backward_cuda)


# ---------------------------------------------------------------------------------------
# spikegrad::multilevel_forward / multilevel_backward / pnb_partial_sums
# ---------------------------------------------------------------------------------------

def _multilevel_forward_cuda(x, decay, a, v_init, theta_p, theta_n, k_p, k_n, surrogate, smooth,
                             detach_reset, return_membrane):
    cuda = cuda_module()
    state = state_dtype(x.dtype)
    x = x.contiguous()
    a = _contiguous(a, "a", x, state)
    v_init = _contiguous(v_init, "v_init", x, state)
    decay_value, decay_device = _decay(decay, x)
    T, N = x.shape
    output, membrane, v_last = _forward_outputs(x, return_membrane)
    with _device_guard(x):
        cuda.multilevel_forward(
            _dtype_name(x), T, N, decay_value, theta_p, theta_n, k_p, k_n, _ptr(a),
            _ptr(v_init), _ptr(x), _ptr(output), _ptr(membrane) if return_membrane else 0,
            _ptr(v_last), surrogate=surrogate, smooth=smooth, decay_device=decay_device,
            stream=_stream(x))
    return output, membrane, v_last


def _multilevel_backward_cuda(x, decay, a, v_init, grad_output, grad_membrane, grad_v_last,
                              theta_p, theta_n, k_p, k_n, surrogate, smooth, detach_reset,
                              need_grad_decay=True, need_grad_a=True):
    # no parameter sums (null pointers) when neither gradient is needed; both otherwise
    cuda = cuda_module()
    state = state_dtype(x.dtype)
    x = x.contiguous()
    a = _contiguous(a, "a", x, state)
    v_init = _contiguous(v_init, "v_init", x, state)
    grad_output, grad_membrane, grad_v_last = _upstream(x, grad_output, grad_membrane,
                                                        grad_v_last)
    decay_value, decay_device = _decay(decay, x)
    T, N = x.shape
    name = _dtype_name(x)
    grad_x = torch.empty((T, N), dtype=x.dtype, device=x.device)
    grad_v_init = torch.empty((N,), dtype=state, device=x.device)
    param_grads = need_grad_decay or need_grad_a
    # decay, a[T] in float64, each its own tensor (custom-op outputs must not alias)
    grads = [torch.empty(shape, dtype=torch.float64, device=x.device)
             for shape in ((), (T,))] if param_grads else [None] * 2
    workspace = _workspace(cuda.multilevel_backward_workspace_bytes(name, T, N), x)
    with _device_guard(x):
        cuda.multilevel_backward(
            name, T, N, decay_value, theta_p, theta_n, k_p, k_n, _ptr(a), _ptr(v_init), _ptr(x),
            _ptr(grad_output), _ptr(grad_membrane), _ptr(grad_v_last), _ptr(grad_x),
            _ptr(grad_v_init), *map(_ptr, grads), _ptr(workspace), surrogate=surrogate,
            smooth=smooth, detach_reset=detach_reset, decay_device=decay_device,
            stream=_stream(x))
    if not param_grads:   # as the CPU kernel: an unwanted gradient is NaN, never plausible
        nan = float("nan")
        return (grad_x, grad_v_init, x.new_full((), nan, dtype=decay.dtype),
                x.new_full((T,), nan, dtype=a.dtype))
    return grad_x, grad_v_init, _like(grads[0], decay), _like(grads[1], a)


def _pnb_partial_sums_cuda(h, theta_p, theta_n, k):
    cuda = cuda_module()
    if h.dtype not in (torch.float32, torch.float64):
        raise TypeError(f"h must be float32 or float64, got {h.dtype}")
    h = h.contiguous()
    sums = torch.empty((k, 2, 2), dtype=torch.float64, device=h.device)
    workspace = _workspace(cuda.pnb_workspace_bytes(h.numel(), k), h)
    with _device_guard(h):
        cuda.pnb_partial_sums(_dtype_name(h), _ptr(h), h.numel(), theta_p, theta_n, k,
                              _ptr(sums), _ptr(workspace), stream=_stream(h))
    return sums


def register_multilevel_kernels(multilevel_forward, multilevel_backward, pnb_partial_sums):
    multilevel_forward.register_kernel("cuda")(_multilevel_forward_cuda)
    multilevel_backward.register_kernel("cuda")(_multilevel_backward_cuda)
    pnb_partial_sums.register_kernel("cuda")(_pnb_partial_sums_cuda)


# ---------------------------------------------------------------------------------------
# spikegrad::adaptive_forward (DS-ATGO)
# ---------------------------------------------------------------------------------------

def _adaptive_forward_cuda(x, decay, v_init, v_reset, charge, reset, detach_reset,
                           threshold_mode, f_c, v_th, tgo, tgo_driver, width, return_membrane):
    cuda = cuda_module()
    if x.dtype not in (torch.float32, torch.float64):
        raise TypeError(f"x must be float32 or float64 for the adaptive threshold, got {x.dtype}")
    x = x.contiguous()
    T, N = x.shape
    v_init = _contiguous(v_init, "v_init", x, x.dtype)   # None: the kernel starts from zeros
    decay_value, decay_device = _decay(decay, x)
    like = dict(dtype=x.dtype, device=x.device)
    f64 = dict(dtype=torch.float64, device=x.device)
    output, membrane, v_last = _forward_outputs(x, return_membrane)
    h_scratch = torch.empty((0,) if return_membrane else (N,), **like)
    threshold, sg_param = torch.empty((T,), **like), torch.empty((T,), **like)
    mean, std = torch.empty((T,), **f64), torch.empty((T,), **f64)
    workspace = _workspace(cuda.adaptive_workspace_bytes(N), x)
    with _device_guard(x):
        cuda.adaptive_forward(
            _dtype_name(x), T, N, decay_value, float(v_reset), _ptr(v_init), _ptr(x),
            _ptr(output), _ptr(membrane) if return_membrane else 0, _ptr(v_last),
            _ptr(threshold), _ptr(sg_param), _ptr(mean), _ptr(std),
            0 if return_membrane else _ptr(h_scratch), _ptr(workspace), charge=charge,
            reset=reset, threshold_mode=threshold_mode, f_c=f_c, v_th=v_th, tgo=tgo,
            tgo_driver=tgo_driver, width=width, decay_device=decay_device, stream=_stream(x))
    return output, membrane, v_last, threshold, sg_param, mean, std


def register_adaptive_kernel(adaptive_forward):
    adaptive_forward.register_kernel("cuda")(_adaptive_forward_cuda)
