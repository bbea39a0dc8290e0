"""The multi-level circulate-firing (CF) neuron of docs/spec.md section 6 (the CF paper), forward and
BPTT backward.

    result = forward(x, decay=0.25, theta_p=1.0, theta_n=1.0, k_p=2, k_n=2,
                     surrogate="tsg", a=1.0, ...)                         # x: [T, ...]
    grads = backward(result, grad_output, grad_membrane=None, grad_v_last=None)

Per step t (the CF paper's Eqs. 10-13, with docs/spec.md §6's sign conventions):

    h    = lam * v[t-1] + x[t]                              charge (docs/spec.md §1, `mul`)
    n_p  = sum_{k=1..K_P} 1(h > k theta_P)                   Eq. 12, strict
    n_n  = sum_{k=1..K_N} 1(h < -k theta_N)                  Eq. 13, strict
    o    = n_p - n_n                                         Eq. 11, the signed spike count
    v    = h - n_p theta_P + n_n theta_N                     Eq. 10, subtract the emitted charge

Smooth mode (`smooth=True`) replaces each count by the primitive of its level surrogate,
so that d(count)/dh is exactly the surrogate the backward uses and the whole forward is
differentiable (the backward must then equal finite differences):
- tsg:  n_p = sum_k F_a(h - k theta_P),  n_n = sum_k (1 - F_a(h + k theta_N));
- span: n_p = a * (clamp(h, theta_P/2, (K_P + 1/2) theta_P) - theta_P/2),
        n_n = a * (-theta_N/2 - clamp(h, -(K_N + 1/2) theta_N, -theta_N/2)).
o and v are then made from n_p and n_n by the same Eqs. 10-11.

Shapes: T timesteps, "..." any neuron shape. `a` is a scalar or a length-T vector. All
arithmetic runs in the dtype of x (float64 unless x is float32); the parameter gradients
(decay, a) are accumulated in float64.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import formulas as F
from .neuron import (_per_step, _reduce_like, _working_dtype, initial_membrane,
                     upstream_gradients)

__all__ = ["MultilevelOptions", "MultilevelResult", "MultilevelGrads", "forward",
           "backward", "error_scale"]


@dataclass(frozen=True)
class MultilevelOptions:
    surrogate: str = "tsg"
    detach_reset: bool = False
    smooth: bool = False

    def __post_init__(self):
        if self.surrogate not in F.LEVEL_SURROGATES:
            raise ValueError(f"surrogate must be one of {F.LEVEL_SURROGATES}, "
                             f"got {self.surrogate!r}")


@dataclass
class MultilevelResult:
    output: np.ndarray          # o[t], [T, ...]
    membrane: np.ndarray        # h[t], [T, ...] (pre-reset)
    v_last: np.ndarray          # v[T-1], [...]
    v_prev: np.ndarray          # v[t-1], [T, ...]
    x: np.ndarray
    options: MultilevelOptions
    decay: np.floating          # lam, working dtype
    theta_p: np.floating        # theta_P > 0, working dtype
    theta_n: np.floating        # theta_N > 0 (a magnitude), working dtype
    k_p: int
    k_n: int
    a: np.ndarray               # a[t], [T], working dtype
    a_is_scalar: bool
    v_init_shape: tuple | None


@dataclass
class MultilevelGrads:
    x: np.ndarray
    v_init: np.ndarray | float
    decay: float
    a: np.ndarray | float | None   # None for surrogate="span" (a constant height)


def check_level_parameters(theta_p, theta_n, k_p, k_n):
    """The checks every entry point shares (ValueError / TypeError naming the argument)."""
    for name, value in (("k_p", k_p), ("k_n", k_n)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise TypeError(f"{name} must be an int, got {type(value).__name__}")
        if value < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")
    for name, value in (("theta_p", theta_p), ("theta_n", theta_n)):
        if not np.isfinite(value) or value <= 0:
            raise ValueError(f"{name} must be a finite magnitude > 0, got {float(value)}")


def forward(x, *, decay=0.25, theta_p=1.0, theta_n=1.0, k_p=2, k_n=2, surrogate="tsg",
            a=1.0, detach_reset=False, v_init=None, smooth=False,
            return_membrane=True) -> MultilevelResult:
    """Run the CF neuron over the T steps of x ([T, ...]). See the module docstring."""
    del return_membrane  # the reference always keeps the membrane
    options = MultilevelOptions(surrogate, bool(detach_reset), bool(smooth))
    dtype = _working_dtype(x)
    x = np.asarray(x, dtype=dtype)
    if x.ndim < 1 or x.shape[0] == 0:
        raise ValueError(f"x must have a time axis with T >= 1, got shape {x.shape}")
    T = x.shape[0]
    lam, theta_p, theta_n = dtype(decay), dtype(theta_p), dtype(theta_n)
    if np.isnan(lam):
        raise ValueError("decay is NaN")
    check_level_parameters(theta_p, theta_n, k_p, k_n)
    a, a_scalar = _per_step(a, T, dtype, "a")
    if not (np.isfinite(a).all() and (a > 0).all()):
        raise ValueError(f"a must be finite and > 0, got {a}")

    v, v_init_shape = initial_membrane(v_init, x.shape[1:], dtype)

    h_all, o_all, v_prev_all = np.empty_like(x), np.empty_like(x), np.empty_like(x)
    for t in range(T):
        v_prev_all[t] = v
        h = F.charge("mul", v, x[t], lam, dtype(0))                       # docs/spec.md §1
        n_p, n_n = level_counts(options, h, theta_p, theta_n, k_p, k_n, a[t])  # Eqs. 12-13
        o_all[t] = n_p - n_n                                              # Eq. 11
        v = (h - n_p * theta_p) + n_n * theta_n                           # Eq. 10 (docs/spec.md §6)
        h_all[t] = h

    return MultilevelResult(
        output=o_all, membrane=h_all, v_last=v, v_prev=v_prev_all, x=x, options=options,
        decay=lam, theta_p=theta_p, theta_n=theta_n, k_p=int(k_p), k_n=int(k_n), a=a,
        a_is_scalar=a_scalar, v_init_shape=v_init_shape)


def span_bounds(theta_p, theta_n, k_p, k_n):
    """Eq. 14's windows, in the working precision: (lower_p, upper_p, lower_n, upper_n)."""
    half = theta_p.dtype.type(0.5)
    return (theta_p * half, (theta_p.dtype.type(k_p) + half) * theta_p,
            -((theta_n.dtype.type(k_n) + half) * theta_n), -(theta_n * half))


def level_counts(options, h, theta_p, theta_n, k_p, k_n, a):
    """(n_p, n_n): the positive and negative spike counts (Eqs. 12-13), or in smooth mode
    the primitives of the level surrogates (module docstring). Summed over k in order."""
    n_p = np.zeros_like(h)
    n_n = np.zeros_like(h)
    if not options.smooth:
        for k in range(1, k_p + 1):
            n_p = n_p + F.above_level(h, F.level(k, theta_p))             # Eq. 12
        for k in range(1, k_n + 1):
            n_n = n_n + F.below_level(h, -F.level(k, theta_n))            # Eq. 13
    elif options.surrogate == "tsg":
        one = h.dtype.type(1)
        for k in range(1, k_p + 1):
            n_p = n_p + F.tsg_primitive(h - F.level(k, theta_p), a)
        for k in range(1, k_n + 1):
            n_n = n_n + (one - F.tsg_primitive(h + F.level(k, theta_n), a))
    else:
        lower_p, upper_p, lower_n, upper_n = span_bounds(theta_p, theta_n, k_p, k_n)
        n_p = a * F.span_ramp(h, lower_p, upper_p)
        n_n = a * ((upper_n - lower_n) - F.span_ramp(h, lower_n, upper_n))
    return n_p, n_n


def level_surrogates(options, h, theta_p, theta_n, k_p, k_n, a):
    """(sp, sn, a_p, a_n): the summed positive- and negative-level surrogate derivatives
    (Eq. 14 or Eqs. 15-16) and, for tsg, the summed dF_a/da of each sign (docs/spec.md §6)."""
    zeros = np.zeros_like(h)
    if options.surrogate == "span":
        lower_p, upper_p, lower_n, upper_n = span_bounds(theta_p, theta_n, k_p, k_n)
        return (F.span_window(h, lower_p, upper_p, a), F.span_window(h, lower_n, upper_n, a),
                zeros, zeros)
    sp, sn, a_p, a_n = zeros, zeros, zeros, zeros
    for k in range(1, k_p + 1):
        d = h - F.level(k, theta_p)
        sp = sp + F.tsg_derivative(d, a)                                  # Eq. 15
        a_p = a_p + F.tsg_a_derivative(d, a)
    for k in range(1, k_n + 1):
        d = h + F.level(k, theta_n)
        sn = sn + F.tsg_derivative(d, a)                                  # Eq. 16
        a_n = a_n + F.tsg_a_derivative(d, a)
    return sp, sn, a_p, a_n


def backward(result: MultilevelResult, grad_output, grad_membrane=None, grad_v_last=None):
    """BPTT (docs/spec.md §6 and 8): walk t from T-1 to 0 with g_v the gradient reaching v[t].

        do/dh = sp + sn                 dv/dh = 1 - theta_P sp - theta_N sn (1 if detached)
        g_h = (dL/dh + g_v * dv/dh) + dL/do * do/dh
        dL/da[t] = sum((dL/do - theta_P g_v) a_p + (dL/do - theta_N g_v) a_n)
                   (the g_v terms dropped if detach_reset)
        dL/dx[t] = g_h ;  g_v <- lam g_h ;  dL/dlam += sum(g_h v[t-1])
    """
    r = result
    opt = r.options
    x = r.x
    dtype = x.dtype.type
    T = x.shape[0]
    g_out, g_mem, g_v = upstream_gradients(r, grad_output, grad_membrane, grad_v_last)
    one = dtype(1)

    grad_x = np.empty_like(x)
    grad_decay = 0.0
    grad_a = np.zeros(T, dtype=np.float64)
    for t in reversed(range(T)):
        h, v_prev = r.membrane[t], r.v_prev[t]
        sp, sn, a_p, a_n = level_surrogates(opt, h, r.theta_p, r.theta_n, r.k_p, r.k_n,
                                            r.a[t])
        do_dh = sp + sn
        if opt.detach_reset:
            dv_dh = np.ones_like(h)
            c_a = g_out[t] * (a_p + a_n)
        else:
            dv_dh = (one - r.theta_p * sp) - r.theta_n * sn
            c_a = ((g_out[t] - r.theta_p * g_v) * a_p + (g_out[t] - r.theta_n * g_v) * a_n)
        g_h = (g_mem[t] + g_v * dv_dh) + g_out[t] * do_dh
        grad_a[t] = np.sum(c_a, dtype=np.float64)
        grad_x[t] = g_h                                                   # dh/dx = 1
        grad_decay += float(np.sum(g_h * v_prev, dtype=np.float64))       # dh/dlam = v_prev
        g_v = g_h * r.decay                                               # dh/dv_prev = lam

    return MultilevelGrads(
        x=grad_x, v_init=_reduce_like(g_v, r.v_init_shape), decay=grad_decay,
        a=_a_gradient(r, grad_a))


def _a_gradient(r, grad_a):
    """dL/da: for tsg, summed like a was passed; None for span, whose height is a constant
    (docs/spec.md §6 defines the straight-through rule for the TSG parameter only)."""
    if r.options.surrogate == "span":
        return None
    return float(grad_a.sum()) if r.a_is_scalar else grad_a


def _level_magnitudes(options, h, theta_p, theta_n, k_p, k_n, a):
    """level_surrogates with every level's term replaced by its magnitude, in float64: the
    dF_a/da of two levels have opposite signs and may cancel, their rounding does not."""
    if options.surrogate == "span":
        return tuple(np.abs(s).astype(np.float64)
                     for s in level_surrogates(options, h, theta_p, theta_n, k_p, k_n, a))
    sp, sn, a_p, a_n = (np.zeros(h.shape) for _ in range(4))
    for k in range(1, k_p + 1):
        d = h - F.level(k, theta_p)
        sp = sp + np.abs(F.tsg_derivative(d, a))
        a_p = a_p + np.abs(F.tsg_a_derivative(d, a))
    for k in range(1, k_n + 1):
        d = h + F.level(k, theta_n)
        sn = sn + np.abs(F.tsg_derivative(d, a))
        a_n = a_n + np.abs(F.tsg_a_derivative(d, a))
    return sp, sn, a_p, a_n


def error_scale(result: MultilevelResult, grad_output, grad_membrane=None, grad_v_last=None):
    """`backward`'s recursion on magnitudes (the running error bound, see
    spikegrad.ref.error_scale): the scale of rounding in each gradient, for
    spikegrad.testing.compare. A partial derivative that is a sum counts with the sum of its
    terms' magnitudes."""
    r = result
    opt = r.options
    T = r.x.shape[0]

    def upstream(g, like):
        return np.zeros(like.shape) if g is None else np.abs(np.asarray(g, dtype=np.float64))

    m_out = upstream(grad_output, r.x)
    m_mem = upstream(grad_membrane, r.x)
    m_v = upstream(grad_v_last, r.v_last)
    m_x = np.empty(r.x.shape)
    m_decay, m_a = 0.0, np.zeros(T)
    tp, tn, lam = abs(float(r.theta_p)), abs(float(r.theta_n)), abs(float(r.decay))
    with np.errstate(over="ignore", invalid="ignore"):
        for t in reversed(range(T)):
            sp, sn, a_p, a_n = _level_magnitudes(opt, r.membrane[t], r.theta_p, r.theta_n,
                                                 r.k_p, r.k_n, r.a[t])
            if opt.detach_reset:
                dv_dh = 1.0
                c_a = m_out[t] * (a_p + a_n)
            else:
                dv_dh = 1.0 + tp * sp + tn * sn
                c_a = (m_out[t] + tp * m_v) * a_p + (m_out[t] + tn * m_v) * a_n
            m_h = m_mem[t] + m_v * dv_dh + m_out[t] * (sp + sn)
            m_a[t] = c_a.sum()
            m_x[t] = m_h
            m_decay += float((m_h * np.abs(r.v_prev[t])).sum())
            m_v = m_h * lam
    return MultilevelGrads(
        x=m_x, v_init=_reduce_like(m_v, r.v_init_shape), decay=m_decay,
        a=_a_gradient(r, m_a))
