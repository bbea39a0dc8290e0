"""The surrogate derivatives the layers' diagnostics evaluate (docs/spec.md §3, §5, §6), in
NumPy on the detached membrane.

The same formulas as spikegrad.ref.formulas, in the same order of operations, written here so
that the layers do not run on the oracle they are tested against; tests/nn/test_surrogates.py
checks that both give the same bits.
"""

from __future__ import annotations

import numpy as np

__all__ = ["spike_argument", "surrogate_derivative", "level_surrogate_sums"]


def spike_argument(scale, h, theta):
    """z: h - theta (absolute), h / theta - 1 (relative, threshold_robust)."""
    if scale == "absolute":
        return h - theta
    if scale in ("relative", "threshold_robust"):
        return h / theta - 1
    raise ValueError(f"unknown scale {scale!r}")


def _rect(z, p):
    return np.where(np.abs(z) < p / 2, 1 / p, 0).astype(z.dtype)


def _triangle(z, p):
    return (1 / (p * p)) * np.maximum(p - np.abs(z), 0)


def _sigmoid(z, p):
    with np.errstate(over="ignore"):
        e = np.exp(-np.abs(p * z))
    one_plus_e = 1 + e
    return p * (e / (one_plus_e * one_plus_e))


def _atan(z, p):
    a = z.dtype.type(np.pi / 2) * p * z
    with np.errstate(over="ignore"):
        return p / (2 * (1 + a * a))


_DERIVATIVES = {"rect": _rect, "triangle": _triangle, "sigmoid": _sigmoid, "atan": _atan}


def surrogate_derivative(shape, z, p):
    """f'(z; p) of docs/spec.md §5."""
    return _DERIVATIVES[shape](z, p)


def _level(k, theta):
    return theta.dtype.type(k) * theta


def _tsg_derivative(d, a):
    return np.maximum(a * (1 - a * np.abs(d)), 0).astype(d.dtype)


def _span_window(h, lower, upper, a):
    return np.where((lower < h) & (h < upper), a, 0).astype(h.dtype)


def level_surrogate_sums(surrogate, h, theta_p, theta_n, k_p, k_n, a):
    """(sp, sn): the summed positive- and negative-level surrogate derivatives of the CF
    neuron (docs/spec.md §6: the span windows, or the tsg triangles summed over k in order).
    theta_p, theta_n: NumPy scalars of h's dtype."""
    if surrogate == "span":
        half = theta_p.dtype.type(0.5)
        lower_p, upper_p = theta_p * half, (theta_p.dtype.type(k_p) + half) * theta_p
        lower_n, upper_n = -((theta_n.dtype.type(k_n) + half) * theta_n), -(theta_n * half)
        return _span_window(h, lower_p, upper_p, a), _span_window(h, lower_n, upper_n, a)
    sp = sn = np.zeros_like(h)
    for k in range(1, k_p + 1):
        sp = sp + _tsg_derivative(h - _level(k, theta_p), a)
    for k in range(1, k_n + 1):
        sn = sn + _tsg_derivative(h + _level(k, theta_n), a)
    return sp, sn
