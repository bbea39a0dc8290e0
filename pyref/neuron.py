"""The single-level spiking neuron of docs/spec.md §1-5 and 8, forward and BPTT backward.

    result = forward(x, charge="mul", decay=0.2, threshold=1.0, ...)   # x: [T, ...]
    grads = backward(result, grad_output, grad_membrane=None, grad_v_last=None)

`forward` runs the explicit loop over t: charge -> fire -> reset, and keeps every
intermediate in `result` (the "cache" of llm.c's layernorm.py). `backward` walks t in reverse
with the recursion of docs/spec.md §8. No autograd anywhere: this file is the oracle of every test.

Shapes: T = timesteps, and "..." any neuron shape (batch and features). Per-step parameters
(threshold, sg_param) are length-T vectors; a scalar is broadcast to all steps. All arithmetic
runs in the dtype of x (float64 unless x is float32); parameter gradients are accumulated in
float64.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import formulas as F

__all__ = ["NeuronOptions", "NeuronResult", "NeuronGrads", "forward", "backward",
           "error_scale"]


@dataclass(frozen=True)
class NeuronOptions:
    """The variant: which formula of each the spec section. Numbers live in NeuronResult."""

    charge: str = "mul"
    reset: str = "hard"
    detach_reset: bool = False
    scale: str = "absolute"
    surrogate: str = "rect"
    smooth: bool = False

    def __post_init__(self):
        for name, allowed in (("charge", F.CHARGES), ("reset", F.RESETS),
                              ("scale", F.SCALES), ("surrogate", F.SURROGATES)):
            value = getattr(self, name)
            if value not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {value!r}")


@dataclass
class NeuronResult:
    """Everything the forward computed. `output`, `membrane` (h, pre-reset) and `v_last`
    are the public outputs; the rest is the cache the backward needs."""

    output: np.ndarray          # o[t], [T, ...]
    membrane: np.ndarray        # h[t], [T, ...]
    v_last: np.ndarray          # v[T-1], [...]
    spike: np.ndarray           # s[t], [T, ...] (F(z) in smooth mode)
    v_prev: np.ndarray          # v[t-1], [T, ...]; v_prev[0] = v_init
    x: np.ndarray
    options: NeuronOptions
    decay: np.floating          # lam, in the working dtype
    threshold: np.ndarray       # theta[t], [T], working dtype
    sg_param: np.ndarray        # p[t], [T], working dtype
    v_reset: np.floating
    # how the caller passed the parameters, so gradients come back in the same shape
    threshold_is_scalar: bool
    sg_param_is_scalar: bool
    v_init_shape: tuple | None  # None: v_init was None (zeros)


@dataclass
class NeuronGrads:
    """dL/d(each input), shaped like the input as passed (scalars give scalars)."""

    x: np.ndarray
    v_init: np.ndarray | float
    decay: float
    threshold: np.ndarray | float
    sg_param: np.ndarray | float


def _working_dtype(x):
    x = np.asarray(x)
    return np.float32 if x.dtype == np.float32 else np.float64


def _per_step(value, T, dtype, name):
    """A scalar or a length-T vector, as a length-T vector of the working dtype."""
    array = np.asarray(value, dtype=np.float64)
    if array.ndim == 0:
        return np.full(T, array, dtype=dtype), True
    if array.shape != (T,):
        raise ValueError(f"{name} must be a scalar or a length-T vector (T = {T}), "
                         f"got shape {array.shape}")
    return array.astype(dtype), False


def forward(x, *, charge="mul", decay=0.2, threshold=1.0, reset="hard", v_reset=0.0,
            detach_reset=False, scale="absolute", surrogate="rect", sg_param=None,
            v_init=None, smooth=False, return_membrane=True) -> NeuronResult:
    """Run the neuron over the T steps of x ([T, ...]). See docs/spec.md §1-5.

    `sg_param` defaults to the shape's usual value (rect 1, triangle 1, sigmoid 4, atan 2).
    `return_membrane` is accepted for symmetry with `spikegrad.neuron`; the reference always
    keeps the membrane.
    """
    del return_membrane
    options = NeuronOptions(charge, reset, bool(detach_reset), scale, surrogate, bool(smooth))
    dtype = _working_dtype(x)
    x = np.asarray(x, dtype=dtype)
    if x.ndim < 1 or x.shape[0] == 0:
        raise ValueError(f"x must have a time axis with T >= 1, got shape {x.shape}")
    T = x.shape[0]
    if sg_param is None:
        sg_param = F.DEFAULT_SG_PARAM[surrogate]
    lam = dtype(decay)
    v_reset = dtype(v_reset)
    theta, theta_scalar = _per_step(threshold, T, dtype, "threshold")
    p, p_scalar = _per_step(sg_param, T, dtype, "sg_param")
    _check_parameters(options, lam, theta, p)

    v, v_init_shape = initial_membrane(v_init, x.shape[1:], dtype)

    arrays = run_loop(options, x, v, lam, v_reset, theta, p)
    return NeuronResult(
        **arrays, x=x, options=options, decay=lam, threshold=theta, sg_param=p,
        v_reset=v_reset, threshold_is_scalar=theta_scalar, sg_param_is_scalar=p_scalar,
        v_init_shape=v_init_shape)


def run_loop(options: NeuronOptions, x, v, lam, v_reset, theta, p, after_charge=None):
    """The loop over t: charge -> fire -> reset, from v = v[-1] (an array shaped like x[0]).

    theta and p are length-T vectors of the working dtype. `after_charge(t, h)`, if given,
    is called between charge and fire at every step and may write theta[t] and p[t]: this
    is how a threshold computed from h[t] itself (DS-ATGO, spikegrad.ref.adaptive) reuses
    this loop. Returns the arrays of a NeuronResult: output, membrane, v_last, spike, v_prev.
    """
    opt = options
    h_all = np.empty_like(x)
    s_all = np.empty_like(x)
    o_all = np.empty_like(x)
    v_prev_all = np.empty_like(x)
    for t in range(x.shape[0]):
        v_prev_all[t] = v
        h = F.charge(opt.charge, v, x[t], lam, v_reset)               # docs/spec.md §1
        if after_charge is not None:
            after_charge(t, h)                                        # e.g. docs/spec.md §2, AT
        z = F.spike_argument(opt.scale, h, theta[t])                  # docs/spec.md §3
        if opt.smooth:
            s = F.surrogate_primitive(opt.surrogate, z, p[t])         # docs/spec.md §5, smooth mode
        else:
            s = F.heaviside(z)                                        # docs/spec.md §3, s = H(z)
        o_all[t] = F.output(opt.scale, s, theta[t])                   # docs/spec.md §3
        v = F.reset(opt.reset, h, s, theta[t], v_reset)               # docs/spec.md §4
        h_all[t] = h
        s_all[t] = s
    return dict(output=o_all, membrane=h_all, v_last=v, spike=s_all, v_prev=v_prev_all)


def initial_membrane(v_init, neuron_shape, dtype):
    """v[-1] (docs/spec.md §0): zeros for None, else a scalar broadcast or an array shaped like
    x[0]. Returns (v, the shape v_init was given in, or None)."""
    if v_init is None:
        return np.zeros(neuron_shape, dtype=dtype), None
    v_init = np.asarray(v_init, dtype=np.float64)
    if v_init.ndim != 0 and v_init.shape != tuple(neuron_shape):
        raise ValueError(f"v_init must be a scalar or shaped like x[0] {tuple(neuron_shape)}, "
                         f"got {v_init.shape}")
    return np.broadcast_to(v_init.astype(dtype), neuron_shape).copy(), v_init.shape


def _check_parameters(options, lam, theta, p):
    if np.isnan(lam):
        raise ValueError("decay is NaN")
    if np.isnan(theta).any():
        raise ValueError("threshold contains NaN")
    if np.isnan(p).any():
        raise ValueError("sg_param contains NaN")
    if options.scale != "absolute" and (theta <= 0).any():
        raise ValueError(f"threshold must be > 0 for scale={options.scale!r}, "
                         f"got {theta.min()}")
    if (p <= 0).any():
        raise ValueError(f"sg_param must be > 0, got {p.min()}")


def upstream_gradients(result, grad_output, grad_membrane, grad_v_last):
    """dL/do, dL/dh ([T, ...]) and dL/dv[T-1] in the working dtype; None means zero.
    dL/dv[T-1] is a fresh copy: the backward recursion overwrites it."""
    dtype = result.x.dtype.type
    zeros = np.zeros_like(result.x)
    g_out = zeros if grad_output is None else np.asarray(grad_output, dtype=dtype)
    g_mem = zeros if grad_membrane is None else np.asarray(grad_membrane, dtype=dtype)
    g_v = (np.zeros_like(result.v_last) if grad_v_last is None
           else np.asarray(grad_v_last, dtype=dtype).copy())
    return g_out, g_mem, g_v


def backward(result: NeuronResult, grad_output, grad_membrane=None, grad_v_last=None):
    """BPTT of docs/spec.md §8: walk t from T-1 to 0 with g_v the gradient reaching v[t].

        g_s = dL/do * do/ds + g_v * dv/ds            (the reset term dropped if detach_reset)
        g_h = dL/dh + g_v * dv/dh + g_s * f'(z) * dz/dh
        dL/dx[t] = g_h * dh/dx ;  g_v <- g_h * dh/dv_prev ;  dL/dlam += g_h * dh/dlam
        dL/dtheta[t] = sum(g_s * f'(z) * dz/dtheta + dL/do * s [TrSG] - g_v * s [soft])
        dL/dp[t]     = sum(g_s * dF(z; p)/dp)        (straight-through primitive rule)

    Any of the three upstream gradients may be None (zero).
    """
    r = result
    opt = r.options
    x = r.x
    dtype = x.dtype.type
    T = x.shape[0]
    g_out, g_mem, g_v = upstream_gradients(r, grad_output, grad_membrane, grad_v_last)

    grad_x = np.empty_like(x)
    grad_decay = 0.0
    grad_threshold = np.zeros(T, dtype=np.float64)
    grad_sg_param = np.zeros(T, dtype=np.float64)
    for t in reversed(range(T)):
        theta, p = r.threshold[t], r.sg_param[t]
        h, s, v_prev = r.membrane[t], r.spike[t], r.v_prev[t]
        z = F.spike_argument(opt.scale, h, theta)
        dz_dh, dz_dtheta = F.spike_argument_partials(opt.scale, h, theta)
        surrogate = F.surrogate_derivative(opt.surrogate, z, p)       # f'(z) for dH/dz

        do_ds = theta if opt.scale == "threshold_robust" else dtype(1)
        g_s = g_out[t] * do_ds                                        # docs/spec.md §3
        if not opt.detach_reset:
            g_s = g_s + g_v * F.reset_dv_ds(opt.reset, h, theta, r.v_reset)  # docs/spec.md §4
        g_h = g_mem[t] + g_v * F.reset_dv_dh(opt.reset, s) + g_s * surrogate * dz_dh

        # threshold: through z, through o = theta * s (TrSG), through v = h - theta * s
        g_theta = g_s * surrogate * dz_dtheta
        if opt.scale == "threshold_robust":
            g_theta = g_theta + g_out[t] * s
        if opt.reset == "soft":
            g_theta = g_theta - g_v * s
        grad_threshold[t] = np.sum(g_theta, dtype=np.float64)
        g_p = g_s * F.surrogate_param_derivative(opt.surrogate, z, p)
        grad_sg_param[t] = np.sum(g_p, dtype=np.float64)

        dh_dx, dh_dv_prev, dh_dlam = F.charge_partials(opt.charge, v_prev, x[t], r.decay,
                                                       r.v_reset)      # docs/spec.md §1
        grad_x[t] = g_h * dh_dx
        grad_decay += float(np.sum(g_h * dh_dlam, dtype=np.float64))
        g_v = g_h * dh_dv_prev

    return NeuronGrads(
        x=grad_x,
        v_init=_reduce_like(g_v, r.v_init_shape),
        decay=grad_decay,
        threshold=float(grad_threshold.sum()) if r.threshold_is_scalar else grad_threshold,
        sg_param=float(grad_sg_param.sum()) if r.sg_param_is_scalar else grad_sg_param,
    )


def _reduce_like(g_v, shape):
    if shape is None or shape != ():
        return g_v
    return float(np.sum(g_v, dtype=np.float64))


def error_scale(result: NeuronResult, grad_output, grad_membrane=None, grad_v_last=None):
    """The scale of rounding in each gradient: `backward`'s recursion on absolute values.

    Every product becomes a product of magnitudes and every sum a sum of magnitudes, so each
    entry is the sum of |every term| that reached the gradient (the running error bound of
    Higham, "Accuracy and Stability of Numerical Algorithms", sec. 3.3). Two backends whose
    roundings differ disagree by at most a few ulps of this, however much the terms cancel.
    Used by spikegrad.testing.compare; returns a NeuronGrads of float64 magnitudes.
    """
    r = result
    T = r.x.shape[0]

    def upstream(g, like):
        return np.zeros(like.shape) if g is None else np.abs(np.asarray(g, dtype=np.float64))

    m_out = upstream(grad_output, r.x)
    m_mem = upstream(grad_membrane, r.x)
    m_v = upstream(grad_v_last, r.v_last)
    m_x = np.empty(r.x.shape)
    m_decay, m_threshold, m_sg_param = 0.0, np.zeros(T), np.zeros(T)
    with np.errstate(over="ignore", invalid="ignore"):
        for t in reversed(range(T)):
            m_v, m_decay = _error_scale_step(r, t, m_out, m_mem, m_v, m_x, m_threshold,
                                             m_sg_param, m_decay)
    return NeuronGrads(
        x=m_x,
        v_init=_reduce_like(m_v, r.v_init_shape),
        decay=m_decay,
        threshold=float(m_threshold.sum()) if r.threshold_is_scalar else m_threshold,
        sg_param=float(m_sg_param.sum()) if r.sg_param_is_scalar else m_sg_param,
    )


def _error_scale_step(r, t, m_out, m_mem, m_v, m_x, m_threshold, m_sg_param, m_decay):
    """One reverse step of error_scale; writes m_x[t], m_threshold[t], m_sg_param[t].
    A partial derivative that is itself a difference (1 - lam, v_reset - h, ...) counts
    with the sum of its terms' magnitudes: another backend may distribute the product."""
    opt = r.options
    a = np.abs
    theta, p = r.threshold[t], r.sg_param[t]
    h, s, v_prev, x = r.membrane[t], r.spike[t], r.v_prev[t], r.x[t]
    lam, v_reset = a(r.decay), a(r.v_reset)
    z = F.spike_argument(opt.scale, h, theta)
    dz_dh, dz_dtheta = (a(d) for d in F.spike_argument_partials(opt.scale, h, theta))
    surrogate = a(F.surrogate_derivative(opt.surrogate, z, p))
    do_ds = a(theta) if opt.scale == "threshold_robust" else 1.0
    dv_ds = {"hard": v_reset + a(h), "soft": a(theta), "none": 0.0}[opt.reset]
    dv_dh = 1 + a(s) if opt.reset == "hard" else 1.0
    dh_dx, dh_dv_prev, dh_dlam = {
        "mul": (1.0, lam, a(v_prev)),
        "decay_input": (lam, 1 + lam, a(x) + a(v_prev) + v_reset),
        "no_decay_input": (1.0, 1 + lam, a(v_prev) + v_reset),
        "if": (1.0, 1.0, 0.0),
    }[opt.charge]

    m_s = m_out[t] * do_ds
    if not opt.detach_reset:
        m_s = m_s + m_v * dv_ds
    m_h = m_mem[t] + m_v * dv_dh + m_s * surrogate * dz_dh
    m_theta = m_s * surrogate * dz_dtheta
    if opt.scale == "threshold_robust":
        m_theta = m_theta + m_out[t] * a(s)
    if opt.reset == "soft":
        m_theta = m_theta + m_v * a(s)
    m_threshold[t] = m_theta.sum()
    m_sg_param[t] = (m_s * a(F.surrogate_param_derivative(opt.surrogate, z, p))).sum()
    m_x[t] = m_h * dh_dx
    m_decay += float((m_h * dh_dlam).sum())
    return m_h * dh_dv_prev, m_decay
