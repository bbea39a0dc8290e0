"""The one comparison helper. Tolerances are derived here, once, and explained.

Forward (outside smooth mode): every backend evaluates the same expressions in the same
order without FMA contraction, so the outputs must be **bit-identical**: compared exactly,
NaN in the same places.

Everything else may differ by rounding only, from two sources:
- exp and atan (the sigmoid and atan surrogates, and every primitive in smooth mode) come
  from different libraries (NumPy's SIMD loops, libm), which may differ by up to
  `TRANSCENDENTAL_ULPS` units in the last place;
- parameter gradients are sums over neurons accumulated in float64 in different orders.
Each surrogate or primitive evaluation adds at most a few roundings on top of its
transcendental, and the backward recursion over T steps carries each step's error forward
linearly (|dh/dv_prev| <= 1 for decays in [0, 1]), so after T steps an element's error is
at most `(T + 1) * ULPS * eps` times the magnitude that flowed through it. Sums may cancel
to far less than their terms, so that magnitude is not the result's: it is the sum of
|every term| that reached each entry, which `spikegrad.ref.error_scale` computes by running
the backward recursion on absolute values (the running error bound). For a forward output
outside smooth mode the magnitude is simply the array's largest |value|.

In smooth mode the forward itself carries such errors: the spike s = F(z) lies in [0, 1]
and the primitives are built by adding 1/2 or 1 (atan(a)/pi + 1/2, 1 - a^2/2), so s is
accurate to a few ulps *of 1*, however small s is. It enters the output as s or theta * s
and the reset as (v_reset - h) * s or theta * s, so the smooth forward's magnitude is
max(1, |theta|, |h|, |v_reset|) — `smooth_forward_magnitude`. Those differences then travel
through the smooth recursion, whose step Jacobian |dv/dv_prev| can reach
1 + |h - v_reset| * max f' * |dz/dh| (the reset's dependence on s = F(z)), and reach the
backward through f'(z). A rounding bound cannot absorb that amplification: it is the
problem's conditioning, not the backends' disagreement. So smooth-mode comparisons across
backends keep it O(1): thresholds in [0.25, 4], inputs within about one threshold of their
mean, and surrogates at their default or wider (max f' <= its default); the extreme scales
and sharp surrogates are compared outside smooth mode, where the forward is bit-identical
and only f' itself may differ by its ulps.
"""

from __future__ import annotations

import numpy as np

__all__ = ["ULPS", "assert_bitwise_equal", "assert_close", "tolerance", "max_error",
           "error_ratio", "smooth_forward_magnitude"]

TRANSCENDENTAL_ULPS = 4
# a transcendental's ulps plus the roundings of the formula that uses it
ULPS = 4 * TRANSCENDENTAL_ULPS
FLOAT64_SUM_RTOL = 1e-12   # reordering a float64 sum of <= 10^6 terms: n * 2^-53 < 1.2e-10


def _eps(dtype):
    return float(np.finfo(dtype).eps)


def smooth_forward_magnitude(membrane, threshold, v_reset=0.0):
    """The scale of the smooth-mode forward's rounding (see the module docstring)."""
    values = [1.0, abs(float(v_reset))]
    for array in (membrane, threshold):
        array = np.abs(np.asarray(array, dtype=np.float64))
        array = array[np.isfinite(array)]
        if array.size:
            values.append(float(array.max()))
    return max(values)


def tolerance(expected, *, dtype, T, magnitude=None):
    """The absolute bound for comparing `expected` (an array or scalar) across backends."""
    expected = np.asarray(expected, dtype=np.float64)
    if magnitude is None:
        finite = np.abs(expected[np.isfinite(expected)])
        magnitude = finite.max() if finite.size else 0.0
    magnitude = np.asarray(magnitude, dtype=np.float64)
    # relative rounding (1 + delta) per operation, plus the absolute underflow term eta of
    # results in the subnormal range (Higham's model fl(x op y) = (x op y)(1 + delta) + eta)
    underflow = (T + 1) * ULPS * float(np.finfo(dtype).smallest_subnormal)
    bound = ((T + 1) * ULPS * _eps(dtype) * magnitude + FLOAT64_SUM_RTOL * magnitude
             + underflow)
    # a magnitude that overflowed to NaN (0 * inf) bounds nothing: demand exact equality
    return np.where(np.isnan(bound), 0.0, bound)


def max_error(actual, expected):
    """max |actual - expected| over finite entries (NaN/inf must match exactly)."""
    a = np.asarray(actual, dtype=np.float64)
    e = np.asarray(expected, dtype=np.float64)
    if a.shape != e.shape:
        raise AssertionError(f"shape {a.shape} != expected {e.shape}")
    finite = np.isfinite(e)
    if not np.array_equal(np.isfinite(a), finite) or not np.array_equal(a[~finite], e[~finite],
                                                                         equal_nan=True):
        return float("inf")
    return float(np.abs(a[finite] - e[finite]).max()) if finite.any() else 0.0


def error_ratio(actual, expected, *, dtype, T, magnitude=None):
    """max over elements of |actual - expected| / bound: <= 1 passes, inf if non-finite
    entries disagree or a nonzero difference meets a zero bound."""
    a = np.asarray(actual, dtype=np.float64)
    e = np.asarray(expected, dtype=np.float64)
    if a.shape != e.shape:
        return float("inf")
    finite = np.isfinite(e)
    if not np.array_equal(a[~finite], e[~finite], equal_nan=True):
        return float("inf")
    bound = np.broadcast_to(tolerance(e, dtype=dtype, T=T, magnitude=magnitude), e.shape)
    diff = np.where(finite, np.abs(a - e), 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(diff == 0, 0.0, diff / bound)
    return float(ratio.max()) if ratio.size else 0.0


def assert_bitwise_equal(actual, expected, what):
    """Exact equality, NaN in the same places (-0.0 == 0.0)."""
    a, e = np.asarray(actual), np.asarray(expected)
    if a.shape != e.shape:
        raise AssertionError(f"{what}: shape {a.shape} != expected {e.shape}")
    if a.dtype != e.dtype:
        raise AssertionError(f"{what}: dtype {a.dtype} != expected {e.dtype}")
    if not np.array_equal(a, e, equal_nan=True):
        bad = np.argwhere(~((a == e) | (np.isnan(a) & np.isnan(e))))
        first = tuple(int(i) for i in bad[0])
        raise AssertionError(
            f"{what}: {len(bad)} of {a.size} elements differ; first at index {first}: "
            f"got {a[first]!r}, expected {e[first]!r}")


def assert_close(actual, expected, what, *, dtype, T, magnitude=None):
    """Within `tolerance` (elementwise, against the bound for the whole array)."""
    a = np.asarray(actual, dtype=np.float64)
    e = np.asarray(expected, dtype=np.float64)
    if a.shape != e.shape:
        raise AssertionError(f"{what}: shape {a.shape} != expected {e.shape}")
    bound = np.broadcast_to(tolerance(e, dtype=dtype, T=T, magnitude=magnitude), e.shape)
    finite = np.isfinite(e)
    if not np.array_equal(a[~finite], e[~finite], equal_nan=True):
        raise AssertionError(f"{what}: non-finite entries differ")
    diff = np.where(finite, np.abs(a - e), 0.0)
    over = diff > bound
    if over.any():
        first = tuple(int(i) for i in np.argwhere(over)[0])
        raise AssertionError(
            f"{what}: {int(over.sum())} of {e.size} elements beyond the bound; first at "
            f"{first}: got {a[first]!r}, expected {e[first]!r}, |diff| = {diff[first]:.3g} "
            f"> bound {bound[first]:.3g}")
