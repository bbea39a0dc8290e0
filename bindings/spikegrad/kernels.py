"""The compiled CPU kernels on NumPy arrays, with the reference's calling convention.

    out = spikegrad.kernels.forward(x, charge="mul", ...)      # like spikegrad.ref.forward
    grads = spikegrad.kernels.backward(out, grad_output, ...)  # like spikegrad.ref.backward

This is the layer `spikegrad verify` and the tests compare against `spikegrad.ref`; it needs
NumPy only. It allocates the buffers the kernels write, workspaces included (the kernels never
allocate), and calls spikegrad._core in its calling convention (docs/cpp.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import _core
from ._options import (DEFAULT_SG_PARAM, LEVEL_SURROGATES, check_adaptive_options,
                       check_level_parameters, check_options, check_pnb_parameters,
                       initial_membrane)
from ._options import per_step as _per_step

__all__ = ["forward", "backward", "KernelResult", "KernelGrads", "adaptive_forward",
           "AdaptiveKernelResult", "multilevel_forward", "multilevel_backward",
           "MultilevelKernelGrads", "pnb_partial_sums"]


@dataclass
class KernelResult:
    output: np.ndarray      # [T, ...]
    membrane: np.ndarray | None
    v_last: np.ndarray      # [...]
    x: np.ndarray
    options: dict           # every keyword forward was called with, normalised
    params: dict            # the parameter arrays passed to the kernel


@dataclass
class KernelGrads:
    x: np.ndarray
    v_init: np.ndarray | float
    decay: float
    threshold: np.ndarray | float
    sg_param: np.ndarray | float


def _dtype_of(x):
    x = np.asarray(x)
    if x.dtype not in (np.float32, np.float64):
        raise TypeError(f"x must be float32 or float64, got {x.dtype}")
    return x.dtype


def _time_major(x):
    """x [T, ...] -> (x, x as a contiguous [T, N] array, dtype), with the checks."""
    dtype = _dtype_of(x)
    x = np.asarray(x)
    if x.ndim < 1 or x.shape[0] == 0:
        raise ValueError(f"x must have a time axis with T >= 1, got shape {x.shape}")
    N = int(np.prod(x.shape[1:], dtype=np.int64))
    return x, np.ascontiguousarray(x.reshape(x.shape[0], N)), dtype


def _workspace(num_bytes):
    """A kernel's workspace: num_bytes bytes (NumPy's allocations are aligned beyond the 8 the
    kernels need)."""
    return np.empty(max(int(num_bytes), 8), dtype=np.uint8)


def _initial_membrane(v_init, neuron_shape, N, dtype):
    """v_init as the kernels take it: [N], contiguous, x's dtype (and its given shape)."""
    v, v_init_shape = initial_membrane(v_init, neuron_shape, dtype)
    return np.ascontiguousarray(v.reshape(N)), v_init_shape


def forward(x, *, charge="mul", decay=0.2, threshold=1.0, reset="hard", v_reset=0.0,
            detach_reset=False, scale="absolute", surrogate="rect", sg_param=None,
            v_init=None, smooth=False, return_membrane=True, num_threads=0) -> KernelResult:
    check_options(charge=charge, reset=reset, scale=scale, surrogate=surrogate,
                  detach_reset=bool(detach_reset), smooth=bool(smooth),
                  return_membrane=bool(return_membrane))
    x, x2, dtype = _time_major(x)
    T, N = x2.shape
    neuron_shape = x.shape[1:]
    if sg_param is None:
        sg_param = DEFAULT_SG_PARAM[surrogate]
    theta, theta_scalar = _per_step(threshold, T, dtype, "threshold")
    p, p_scalar = _per_step(sg_param, T, dtype, "sg_param")
    v0, v_init_shape = _initial_membrane(v_init, neuron_shape, N, dtype)

    output = np.empty((T, N), dtype=dtype)
    membrane = np.empty((T, N), dtype=dtype) if return_membrane else None
    v_last = np.empty(N, dtype=dtype)
    _core.neuron_forward(float(decay), float(v_reset), theta, p, v0, x2, output, membrane,
                         v_last, charge=charge, reset=reset, scale=scale, surrogate=surrogate,
                         smooth=bool(smooth), num_threads=num_threads)
    options = dict(charge=charge, reset=reset, scale=scale, surrogate=surrogate,
                   smooth=bool(smooth), detach_reset=bool(detach_reset))
    params = dict(decay=float(decay), v_reset=float(v_reset), threshold=theta, sg_param=p,
                  v_init=v0, threshold_is_scalar=theta_scalar, sg_param_is_scalar=p_scalar,
                  v_init_shape=v_init_shape, x2=x2)
    return KernelResult(
        output=output.reshape(x.shape),
        membrane=None if membrane is None else membrane.reshape(x.shape),
        v_last=v_last.reshape(neuron_shape), x=x, options=options, params=params)


def backward(result: KernelResult, grad_output, grad_membrane=None, grad_v_last=None,
             num_threads=0) -> KernelGrads:
    x2 = result.params["x2"]
    T, N = x2.shape
    dtype = x2.dtype

    def as_buffer(g, shape, name):
        if g is None:
            return None
        g = np.asarray(g)
        if g.size != int(np.prod(shape)):
            raise ValueError(f"{name} has {g.size} elements, expected {int(np.prod(shape))}")
        return np.ascontiguousarray(g.reshape(shape), dtype=dtype)

    grad_x = np.empty((T, N), dtype=dtype)
    grad_v_init = np.empty(N, dtype=dtype)
    grad_decay, grad_threshold, grad_sg_param = np.empty(()), np.empty(T), np.empty(T)
    pr = result.params
    _core.neuron_backward(
        pr["decay"], pr["v_reset"], pr["threshold"], pr["sg_param"], pr["v_init"], x2,
        as_buffer(grad_output, (T, N), "grad_output"),
        as_buffer(grad_membrane, (T, N), "grad_membrane"),
        as_buffer(grad_v_last, (N,), "grad_v_last"),
        grad_x, grad_v_init, grad_decay, grad_threshold, grad_sg_param,
        _workspace(_core.neuron_backward_workspace_bytes(x2)), num_threads=num_threads,
        **result.options)
    neuron_shape = result.x.shape[1:]
    v_init_shape = pr["v_init_shape"]
    if v_init_shape == ():
        g_v_init = float(np.sum(grad_v_init, dtype=np.float64))
    else:
        g_v_init = grad_v_init.reshape(neuron_shape)
    return KernelGrads(
        x=grad_x.reshape(result.x.shape),
        v_init=g_v_init,
        decay=float(grad_decay),
        threshold=float(np.sum(grad_threshold)) if pr["threshold_is_scalar"] else grad_threshold,
        sg_param=float(np.sum(grad_sg_param)) if pr["sg_param_is_scalar"] else grad_sg_param,
    )


# ---------------------------------------------------------------------------------------
# DS-ATGO: the adaptive-threshold forward (docs/spec.md §2 "AT", docs/spec.md §5 "TGO"); spikegrad.ref.adaptive
# ---------------------------------------------------------------------------------------

@dataclass
class AdaptiveKernelResult(KernelResult):
    """A KernelResult (so `backward` applies: theta[t] and k_t are detached) plus what the
    adaptive threshold used at every step."""

    threshold: np.ndarray = None   # theta[t], [T], x's dtype
    sg_param: np.ndarray = None    # k_t, the rect width, [T], x's dtype
    mean: np.ndarray = None        # mean(h[t]), float64 [T]
    std: np.ndarray = None         # std(h[t]) (Bessel), float64 [T]


def adaptive_forward(x, *, decay=0.2, v_th=1.0, f_c=1.0, threshold_mode="true", tgo=True,
                     tgo_driver="std", width=1.0, v_init=None, charge="mul", reset="hard",
                     v_reset=0.0, detach_reset=False, return_membrane=True,
                     num_threads=0) -> AdaptiveKernelResult:
    """The C++ twin of spikegrad.ref.adaptive.forward (same keywords), bit-identical."""
    check_options(charge=charge, reset=reset, scale="absolute", surrogate="rect",
                  detach_reset=bool(detach_reset), return_membrane=bool(return_membrane))
    check_adaptive_options(threshold_mode, tgo_driver, f_c, v_th, width)
    x, x2, dtype = _time_major(x)
    T, N = x2.shape
    neuron_shape = x.shape[1:]
    v0, v_init_shape = _initial_membrane(v_init, neuron_shape, N, dtype)
    output = np.empty((T, N), dtype=dtype)
    membrane = np.empty((T, N), dtype=dtype) if return_membrane else None
    v_last = np.empty(N, dtype=dtype)
    theta, p = np.empty(T, dtype=dtype), np.empty(T, dtype=dtype)
    mean, std = np.empty(T), np.empty(T)
    h_scratch = None if return_membrane else np.empty(N, dtype=dtype)
    _core.adaptive_forward(float(decay), float(v_reset), v0, x2, output, membrane, v_last, theta,
                           p, mean, std, h_scratch,
                           _workspace(_core.adaptive_workspace_bytes(x2)), charge=charge, reset=reset,
                           threshold_mode=threshold_mode, f_c=float(f_c), v_th=float(v_th),
                           tgo=bool(tgo), tgo_driver=tgo_driver, width=float(width),
                           num_threads=num_threads)
    options = dict(charge=charge, reset=reset, scale="absolute", surrogate="rect",
                   smooth=False, detach_reset=bool(detach_reset))
    params = dict(decay=float(decay), v_reset=float(v_reset), threshold=theta, sg_param=p,
                  v_init=v0, threshold_is_scalar=False, sg_param_is_scalar=False,
                  v_init_shape=v_init_shape, x2=x2)
    return AdaptiveKernelResult(
        output=output.reshape(x.shape),
        membrane=None if membrane is None else membrane.reshape(x.shape),
        v_last=v_last.reshape(neuron_shape), x=x, options=options, params=params,
        threshold=theta, sg_param=p, mean=mean, std=std)


__all__ += ["adaptive_forward", "AdaptiveKernelResult"]


# ---------------------------------------------------------------------------------------
# docs/spec.md §6: the multi-level circulate-firing neuron and the PNB partial sums (the CF paper),
# with the calling convention of spikegrad.ref.multilevel / spikegrad.ref.pnb.
# ---------------------------------------------------------------------------------------

def multilevel_forward(x, *, decay=0.25, theta_p=1.0, theta_n=1.0, k_p=2, k_n=2,
                       surrogate="tsg", a=1.0, detach_reset=False, v_init=None, smooth=False,
                       return_membrane=True, num_threads=0) -> KernelResult:
    """The CF neuron's C++ forward, like spikegrad.ref.multilevel.forward."""
    if surrogate not in LEVEL_SURROGATES:
        raise ValueError(f"surrogate must be one of {LEVEL_SURROGATES}, got {surrogate!r}")
    dtype = _dtype_of(x)
    x = np.asarray(x)
    if x.ndim < 1 or x.shape[0] == 0:
        raise ValueError(f"x must have a time axis with T >= 1, got shape {x.shape}")
    check_level_parameters(dtype.type(theta_p), dtype.type(theta_n), k_p, k_n)
    T = x.shape[0]
    neuron_shape = x.shape[1:]
    N = int(np.prod(neuron_shape, dtype=np.int64))
    x2 = np.ascontiguousarray(x.reshape(T, N))
    a_arr, a_scalar = _per_step(a, T, dtype, "a")
    v0, v_init_shape = _initial_membrane(v_init, neuron_shape, N, dtype)
    output = np.empty((T, N), dtype=dtype)
    membrane = np.empty((T, N), dtype=dtype) if return_membrane else None
    v_last = np.empty(N, dtype=dtype)
    scalars = dict(decay=float(decay), theta_p=float(theta_p), theta_n=float(theta_n),
                   k_p=int(k_p), k_n=int(k_n))
    _core.multilevel_forward(scalars["decay"], scalars["theta_p"], scalars["theta_n"],
                             scalars["k_p"], scalars["k_n"], a_arr, v0, x2, output, membrane, v_last,
                             surrogate=surrogate, smooth=bool(smooth), num_threads=num_threads)
    options = dict(surrogate=surrogate, smooth=bool(smooth), detach_reset=bool(detach_reset))
    params = dict(scalars, a=a_arr, a_is_scalar=a_scalar, v_init=v0,
                  v_init_shape=v_init_shape, x2=x2)
    return KernelResult(
        output=output.reshape(x.shape),
        membrane=None if membrane is None else membrane.reshape(x.shape),
        v_last=v_last.reshape(neuron_shape), x=x, options=options, params=params)


@dataclass
class MultilevelKernelGrads:
    x: np.ndarray
    v_init: np.ndarray | float
    decay: float
    a: np.ndarray | float | None   # None for surrogate="span"


def multilevel_backward(result: KernelResult, grad_output, grad_membrane=None,
                        grad_v_last=None, num_threads=0) -> MultilevelKernelGrads:
    """The CF neuron's C++ backward, like spikegrad.ref.multilevel.backward."""
    pr = result.params
    x2 = pr["x2"]
    T, N = x2.shape

    def as_buffer(g, shape, name):
        if g is None:
            return None
        g = np.asarray(g)
        if g.size != int(np.prod(shape)):
            raise ValueError(f"{name} has {g.size} elements, expected {int(np.prod(shape))}")
        return np.ascontiguousarray(g.reshape(shape), dtype=x2.dtype)

    grad_x = np.empty((T, N), dtype=x2.dtype)
    grad_v_init = np.empty(N, dtype=x2.dtype)
    grad_decay, grad_a = np.empty(()), np.empty(T)
    _core.multilevel_backward(
        pr["decay"], pr["theta_p"], pr["theta_n"], pr["k_p"], pr["k_n"], pr["a"], pr["v_init"],
        x2, as_buffer(grad_output, (T, N), "grad_output"),
        as_buffer(grad_membrane, (T, N), "grad_membrane"),
        as_buffer(grad_v_last, (N,), "grad_v_last"), grad_x, grad_v_init, grad_decay, grad_a,
        _workspace(_core.multilevel_backward_workspace_bytes(x2)), num_threads=num_threads,
        **result.options)
    if pr["v_init_shape"] == ():
        g_v_init = float(np.sum(grad_v_init, dtype=np.float64))
    else:
        g_v_init = grad_v_init.reshape(result.x.shape[1:])
    return MultilevelKernelGrads(
        x=grad_x.reshape(result.x.shape), v_init=g_v_init, decay=float(grad_decay),
        a=None if result.options["surrogate"] == "span"
        else float(np.sum(grad_a)) if pr["a_is_scalar"] else grad_a)


def pnb_partial_sums(h, theta_p=1.0, theta_n=1.0, k=2, num_threads=0):
    """[K, 2, 2] float64 partial sums of one layer, like spikegrad.ref.pnb.partial_sums."""
    h = np.asarray(h)
    _dtype_of(h)
    check_pnb_parameters(theta_p, theta_n, k, 0.0)
    h = np.ascontiguousarray(h)
    sums = np.empty((int(k), 2, 2))
    _core.pnb_partial_sums(h, float(theta_p), float(theta_n), int(k), sums,
                           _workspace(_core.pnb_workspace_bytes(h, int(k))),
                           num_threads=num_threads)
    return sums
