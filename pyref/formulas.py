"""The formulas of docs/spec.md §1-5, one function each, in NumPy.

Every function works element-wise on arrays (or scalars) of one dtype and evaluates its
formula in exactly the written order of operations. The C++ kernels
(`cpp/include/spikegrad/formulas.hpp`) spell the same expressions in the same order, which is
what makes the forward pass bit-identical across backends: change one, change both.

Names follow docs/spec.md: `x` input current, `h` membrane after charging (before reset),
`v` membrane after reset, `z` the spike argument, `s` the spike, `o` the output,
`lam` the leak factor, `theta` the threshold, `p` the surrogate parameter.
"""

from __future__ import annotations

import numpy as np

CHARGES = ("mul", "decay_input", "no_decay_input", "if")
RESETS = ("hard", "soft", "none")
SCALES = ("absolute", "relative", "threshold_robust")
SURROGATES = ("rect", "triangle", "sigmoid", "atan")

# Width-type parameters widen the window as they grow; sharpness-type ones narrow it.
# The sign of dF/dp follows (docs/spec.md §5).
WIDTH_SHAPES = ("rect", "triangle")
SHARPNESS_SHAPES = ("sigmoid", "atan")


# --------------------------------------------------------------------------------------
# Section 1: charge, h[t] from v[t-1] and x[t]
# --------------------------------------------------------------------------------------

def charge(kind, v_prev, x, lam, v_reset):
    """docs/spec.md §1. `mul` is the iterative LIF of Wu et al. (DS-ATGO, MPD-AGL, CF);
    `decay_input` is SpikingJelly's LIF (TrSG default); `no_decay_input` the TrSG option;
    `if` the integrate-and-fire neuron."""
    if kind == "mul":
        return lam * v_prev + x
    if kind == "decay_input":
        return v_prev + lam * (x - (v_prev - v_reset))
    if kind == "no_decay_input":
        return v_prev - lam * (v_prev - v_reset) + x
    if kind == "if":
        return v_prev + x
    raise ValueError(f"unknown charge {kind!r}")


def charge_partials(kind, v_prev, x, lam, v_reset):
    """docs/spec.md §1, partial derivatives of h: returns (dh/dx, dh/dv_prev, dh/dlam)."""
    one = np.ones_like(v_prev)
    if kind == "mul":
        return one, lam * one, v_prev
    if kind == "decay_input":
        return lam * one, (1 - lam) * one, x - (v_prev - v_reset)
    if kind == "no_decay_input":
        return one, (1 - lam) * one, -(v_prev - v_reset)
    if kind == "if":
        return one, one, np.zeros_like(v_prev)
    raise ValueError(f"unknown charge {kind!r}")


# --------------------------------------------------------------------------------------
# Section 3: fire and output
# --------------------------------------------------------------------------------------

def spike_argument(scale, h, theta):
    """docs/spec.md §3, z: `absolute` (AS-SG) is h - theta; `relative` (RS-SG) and
    `threshold_robust` (TrSG, the MP-Init/TrSG paper's Sec. 5) are h / theta - 1."""
    if scale == "absolute":
        return h - theta
    if scale in ("relative", "threshold_robust"):
        return h / theta - 1
    raise ValueError(f"unknown scale {scale!r}")


def spike_argument_partials(scale, h, theta):
    """docs/spec.md §3: returns (dz/dh, dz/dtheta)."""
    if scale == "absolute":
        return np.ones_like(h), -np.ones_like(h)
    return np.ones_like(h) / theta, -h / (theta * theta)


def heaviside(z):
    """docs/spec.md §0: H(z) = 1 if z >= 0 else 0. The ordered comparison gives H(NaN) = 0."""
    return (z >= 0).astype(z.dtype)


def output(scale, s, theta):
    """docs/spec.md §3: the spike itself, or theta * s for the threshold-robust scale (TrSG)."""
    if scale == "threshold_robust":
        return theta * s
    return s


# --------------------------------------------------------------------------------------
# Section 4: reset
# --------------------------------------------------------------------------------------

def reset(kind, h, s, theta, v_reset):
    """docs/spec.md §4. `hard` sets the membrane to v_reset, `soft` subtracts the threshold
    (for TrSG this is h - o), `none` keeps it."""
    if kind == "hard":
        return h * (1 - s) + v_reset * s
    if kind == "soft":
        return h - theta * s
    if kind == "none":
        return h
    raise ValueError(f"unknown reset {kind!r}")


def reset_dv_dh(kind, s):
    """docs/spec.md §4, dv/dh with the spike held fixed: 1 - s for hard, 1 otherwise."""
    if kind == "hard":
        return 1 - s
    return np.ones_like(s)


def reset_dv_ds(kind, h, theta, v_reset):
    """docs/spec.md §4, dv/ds (dropped when detach_reset): v_reset - h, -theta, or 0."""
    if kind == "hard":
        return v_reset - h
    if kind == "soft":
        return -theta * np.ones_like(h)
    return np.zeros_like(h)


# --------------------------------------------------------------------------------------
# Section 5: surrogate derivatives f'(z; p) and their primitives F(z; p)
# --------------------------------------------------------------------------------------

def rect_derivative(z, p):
    """Rectangle: f'(z; p) = (1/p) * 1(|z| < p/2). p is the width, default 1
    (DS-ATGO, MPD-AGL, TrSG). The window is open (docs/spec.md §9)."""
    return np.where(np.abs(z) < p / 2, 1 / p, 0).astype(z.dtype)


def rect_primitive(z, p):
    """Rectangle primitive: F(z; p) = clamp(z/p + 1/2, 0, 1)."""
    return np.clip(z / p + z.dtype.type(0.5), 0, 1).astype(z.dtype)


def triangle_derivative(z, p):
    """Triangle: f'(z; p) = (1/p^2) * max(0, p - |z|), p the half base, default 1.
    The piecewise-linear (PLG) form a * max(0, 1 - a|z|) of the CF paper is p = 1/a."""
    return (1 / (p * p)) * np.maximum(p - np.abs(z), 0)


def triangle_primitive(z, p):
    """Triangle primitive, the piecewise quadratic: with a = max(0, p - |z|) / p,
    F = a^2 / 2 for z < 0 and 1 - a^2 / 2 for z >= 0."""
    a = np.maximum(p - np.abs(z), 0) / p
    half = z.dtype.type(0.5)
    return np.where(z < 0, half * a * a, 1 - half * a * a).astype(z.dtype)


def sigmoid_derivative(z, p):
    """Sigmoid: f'(z; p) = p * sg(p z) * (1 - sg(p z)), p the sharpness, default 4
    (SpikingJelly's surrogate.Sigmoid alpha).

    Evaluated as p * e / (1 + e)^2 with e = exp(-|p z|), the same function without the
    cancellation in 1 - sg(p z) when sg is near 1 (which costs float32 up to 1e-3 relative
    error in the tails, and lets an ulp of exp between libraries grow a thousandfold)."""
    e = _exp(-np.abs(p * z))
    one_plus_e = 1 + e
    return p * (e / (one_plus_e * one_plus_e))


def _exp(u):
    with np.errstate(over="ignore"):
        return np.exp(u)


def sigmoid_primitive(z, p):
    """Sigmoid primitive: F(z; p) = sg(p z) = 1 / (1 + exp(-p z))."""
    with np.errstate(over="ignore"):
        return 1 / (1 + np.exp(-(p * z)))


def atan_derivative(z, p):
    """Arctangent: f'(z; p) = p / (2 * (1 + (pi/2 * p * z)^2)), p the sharpness, default 2
    (SpikingJelly's surrogate.ATan alpha)."""
    a = _half_pi(z) * p * z
    with np.errstate(over="ignore"):
        return p / (2 * (1 + a * a))


def atan_primitive(z, p):
    """Arctangent primitive: F(z; p) = atan(pi/2 * p * z) / pi + 1/2."""
    a = _half_pi(z) * p * z
    return np.arctan(a) / z.dtype.type(np.pi) + z.dtype.type(0.5)


def _half_pi(z):
    return z.dtype.type(np.pi / 2)


_DERIVATIVES = {
    "rect": rect_derivative,
    "triangle": triangle_derivative,
    "sigmoid": sigmoid_derivative,
    "atan": atan_derivative,
}
_PRIMITIVES = {
    "rect": rect_primitive,
    "triangle": triangle_primitive,
    "sigmoid": sigmoid_primitive,
    "atan": atan_primitive,
}

DEFAULT_SG_PARAM = {"rect": 1.0, "triangle": 1.0, "sigmoid": 4.0, "atan": 2.0}


def surrogate_derivative(shape, z, p):
    """docs/spec.md §5: f'(z; p), what replaces dH/dz in the backward pass."""
    return _DERIVATIVES[shape](z, p)


def surrogate_primitive(shape, z, p):
    """docs/spec.md §5: F(z; p) with F' = f', F(-inf) = 0, F(+inf) = 1 (used in smooth mode)."""
    return _PRIMITIVES[shape](z, p)


def surrogate_param_derivative(shape, z, p):
    """docs/spec.md §5: dF(z; p)/dp, -(z/p) f' for width-type shapes, +(z/p) f' for sharpness-type."""
    ratio = z / p
    if shape in WIDTH_SHAPES:
        ratio = -ratio
    return ratio * surrogate_derivative(shape, z, p)


# --------------------------------------------------------------------------------------
# Section 6: the level formulas of the multi-level circulate-firing (CF) neuron (the CF paper)
# --------------------------------------------------------------------------------------

LEVEL_SURROGATES = ("span", "tsg")


def level(k, theta):
    """docs/spec.md §6: the k-th level magnitude k * theta, computed in the working precision."""
    return theta.dtype.type(k) * theta


def above_level(h, level_value):
    """the CF paper's Eq. 12: 1(h > k theta_P), a strict comparison (NaN gives 0)."""
    return (h > level_value).astype(h.dtype)


def below_level(h, level_value):
    """the CF paper's Eq. 13: 1(h < -k theta_N), with `level_value` = -k theta_N (NaN gives 0)."""
    return (h < level_value).astype(h.dtype)


def tsg_derivative(d, a):
    """the CF paper's Eqs. 15-16, one level's PLG triangle: f'_a(d) = max(0, a * (1 - a|d|)),
    d the distance of h from the level. The triangle shape of section 5 with p = 1/a."""
    return np.maximum(a * (1 - a * np.abs(d)), 0).astype(d.dtype)


def tsg_primitive(d, a):
    """The primitive of f'_a, rising from 0 to 1: with u = max(0, 1 - a|d|),
    F_a = u^2 / 2 for d < 0 and 1 - u^2 / 2 for d >= 0."""
    u = np.maximum(1 - a * np.abs(d), 0)
    half = d.dtype.type(0.5)
    return np.where(d < 0, half * u * u, 1 - half * u * u).astype(d.dtype)


def tsg_a_derivative(d, a):
    """dF_a(d)/da = d * (1 - a|d|) * 1(|d| < 1/a) (docs/spec.md §6); the indicator is evaluated as
    1 - a|d| > 0, the same rounding as the derivative's support."""
    m = 1 - a * np.abs(d)
    return np.where(m > 0, d * m, 0).astype(d.dtype)


def span_window(h, lower, upper, a):
    """the CF paper's Eq. 14, one sign's rectangle: a on the open interval (lower, upper), else 0.
    Positive levels: (theta_P / 2, (K_P + 1/2) theta_P); negative levels:
    (-(K_N + 1/2) theta_N, -theta_N / 2)."""
    return np.where((lower < h) & (h < upper), a, 0).astype(h.dtype)


def span_ramp(h, lower, upper):
    """The primitive of the unit window on (lower, upper): clamp(h, lower, upper) - lower,
    rising from 0 to upper - lower (the smooth mode of the span surrogate, times a)."""
    return (np.clip(h, lower, upper) - lower).astype(h.dtype)
